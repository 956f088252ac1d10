"""HTTP/1.1 as a hostile but legitimate client speaks it, over raw sockets (issue 17): bytes that are
not UTF-8, malformed framing, pipelining and half-closes. Whatever is sent, the server answers with
OpenAI's error JSON or the response asked for, and keeps running."""
import json

import pytest
import requests

from conftest import MODEL_NAME, RawConnection

M = MODEL_NAME


def assert_alive(server):
    assert requests.get(server.url + "/health", timeout=10).status_code == 200
    assert server.proc.poll() is None, "".join(server.log)


def check_error_json(resp, status):
    assert resp.status == status, resp.body
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    return err


@pytest.mark.parametrize("target", [b"/\xff", b"/v1/models/abc\xfe", b"/\xc3", b"/v1/models/\xed\xa0\x80"])
def test_non_utf8_path_is_a_404_not_a_crash(server, target):
    # Issue 17 (1): the 404 body echoed the path and nlohmann's dump() threw, aborting the process.
    # Unknown routes are answered before the API-key check, so this needed no key.
    with RawConnection(server.http_port) as c:
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        err = check_error_json(c.read_response(), 404)
        assert "\ufffd" in err["message"]
        # The connection stays usable.
        c.send(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
    assert_alive(server)


BODY = json.dumps({"model": M, "prompt": "x", "max_tokens": 1}).encode()
POST = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

# (name, raw request, status). Issue 17 (4): each of these was closed with nothing sent.
FRAMING = [
    ("bad_chunk_size", POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + BODY + b"\r\n0\r\n\r\n", 400),
    ("chunked_and_content_length",
     POST + b"Transfer-Encoding: chunked\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY, 400),
    ("content_length_then_chunked",
     POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + BODY, 400),
    ("garbage_content_length", POST + b"Content-Length: abc\r\n\r\n" + BODY, 400),
    ("negative_content_length", POST + b"Content-Length: -5\r\n\r\n" + BODY, 400),
    ("two_content_lengths", POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n" + BODY, 400),
    ("header_without_colon", b"GET /v1/models HTTP/1.1\r\nHost x\r\n\r\n", 400),
    ("junk_request_line", b"HELLO THERE\r\n\r\n", 400),
    ("request_line_without_version", b"GET /v1/models\r\n\r\n", 400),
    ("control_byte_in_header_value", b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n", 400),
    ("bare_lf_line_endings", b"GET /v1/models HTTP/1.1\nHost: x\n\n", 400),
    ("tls_client_hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", 400),
    ("http_2_0", b"GET /v1/models HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("http_0_9", b"GET /v1/models HTTP/0.9\r\nHost: x\r\n\r\n", 505),
    ("http_3_1", POST.replace(b"HTTP/1.1", b"HTTP/3.1") + b"Content-Length: " + str(len(BODY)).encode() +
     b"\r\n\r\n" + BODY, 505),
]


@pytest.mark.parametrize("name,raw,status", FRAMING, ids=[f[0] for f in FRAMING])
def test_malformed_framing_gets_an_error_then_close(server, name, raw, status):
    with RawConnection(server.http_port, timeout=10) as c:
        c.send(raw)
        resp = c.read_response()
        err = check_error_json(resp, status)
        assert err["type"] == "invalid_request_error"
        assert err["code"] == ("http_version_not_supported" if status == 505 else "malformed_request")
        assert resp.headers.get("connection", "").lower() == "close"
        assert c.closed_by_server(timeout=10)
    assert_alive(server)


def test_connection_ending_inside_a_request_gets_a_400(server):
    with RawConnection(server.http_port, timeout=10) as c:
        c.send(POST + b"Content-Length: 100\r\n\r\n{\"model\"")
        c.sock.shutdown(__import__("socket").SHUT_WR)  # half-close: the body can never complete
        check_error_json(c.read_response(), 400)
    assert_alive(server)


def completion_request(max_tokens, stream=False, connection=None):
    body = json.dumps({"model": M, "prompt": "Count to one hundred:", "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": stream}).encode()
    extra = b"Connection: " + connection + b"\r\n" if connection else b""
    return POST + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def wait_in_flight(server, timeout_s=30):
    import time
    deadline = time.time() + timeout_s
    while server.metric("tandem_requests_in_flight") < 1:
        assert time.time() < deadline, "the request never started"
        time.sleep(0.02)


def stream_events(resp):
    """The SSE `data:` payloads of a streamed body, and whether [DONE] ended them."""
    lines = [l[len("data: "):] for l in resp.body.decode().split("\n") if l.startswith("data: ")]
    done = bool(lines) and lines[-1] == "[DONE]"
    return [json.loads(l) for l in lines if l != "[DONE]"], done


def completion_tokens(resp):
    assert resp.status == 200, resp.body
    return resp.json()["usage"]["completion_tokens"]


def test_pipelined_requests_are_answered_in_order(server):
    # Issue 17 (3): HTTP/1.1 pipelining: requests sent back to back, answers in order.
    with RawConnection(server.http_port) as c:
        c.send(completion_request(6) + b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n" +
               completion_request(4, stream=True) + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert completion_tokens(c.read_response()) == 6
        models = c.read_response()
        assert models.status == 200 and models.json()["data"][0]["id"] == M
        events, done = stream_events(c.read_response())
        assert done and sum(1 for e in events if e["choices"] and e["choices"][0]["text"]) >= 1
        assert c.read_response().status == 200


@pytest.mark.parametrize("stray", [b"\r\n", b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"], ids=["crlf", "request"])
def test_bytes_sent_during_a_generation_do_not_drop_it(server, stray):
    # Issue 17 (3): any byte sent while a non-streaming response was generated closed the connection:
    # the response had 0 bytes, generation stopped, nothing was logged.
    with RawConnection(server.http_port) as c:
        c.send(completion_request(48))
        wait_in_flight(server)
        c.send(stray)
        assert completion_tokens(c.read_response()) == 48
        if stray != b"\r\n":
            assert c.read_response().status == 200
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection is still usable
        assert c.read_response().status == 200


def test_bytes_sent_during_a_stream_do_not_cut_it(server):
    # Issue 17 (3): streams were cut with no [DONE] and no error.
    with RawConnection(server.http_port) as c:
        c.send(completion_request(48, stream=True))
        wait_in_flight(server)
        c.send(b"\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        events, done = stream_events(c.read_response())
        assert done
        assert events[-1]["choices"][0]["finish_reason"] == "length"
        assert c.read_response().status == 200


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_half_closed_client_still_gets_its_response(server, stream):
    # Issue 17 (3): a client that shuts down its sending side after the request still reads the answer.
    with RawConnection(server.http_port) as c:
        c.send(completion_request(24, stream=stream))
        wait_in_flight(server)
        c.sock.shutdown(__import__("socket").SHUT_WR)
        resp = c.read_response()
        if stream:
            events, done = stream_events(resp)
            assert done and events[-1]["choices"][0]["finish_reason"] == "length"
        else:
            assert completion_tokens(resp) == 24
        assert c.closed_by_server()


def test_half_close_right_after_pipelined_requests(server):
    with RawConnection(server.http_port) as c:
        c.send(completion_request(4) + completion_request(3))
        c.sock.shutdown(__import__("socket").SHUT_WR)
        assert completion_tokens(c.read_response()) == 4
        assert completion_tokens(c.read_response()) == 3
        assert c.closed_by_server()
