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
