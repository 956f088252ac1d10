"""Raw-HTTP table of bad requests against the real server: each gets the right status and
OpenAI's error JSON ({"error": {"message", "type", "param", "code"}}), never a 500."""
import json
import socket

import pytest
import requests

from conftest import MODEL_NAME, Server

M = MODEL_NAME
MSGS = [{"role": "user", "content": "hi"}]

# (name, path, body (dict, or str sent raw), status, param, code)
CASES = [
    ("unknown_model", "/v1/chat/completions", {"model": "gpt-9", "messages": MSGS}, 404, "model", "model_not_found"),
    ("unknown_model_completions", "/v1/completions", {"model": "nope", "prompt": "x"}, 404, "model", None),
    ("invalid_json", "/v1/chat/completions", "{\"model\": ", 400, None, None),
    ("body_not_object", "/v1/completions", "[1, 2, 3]", 400, None, None),
    ("missing_model", "/v1/chat/completions", {"messages": MSGS}, 400, "model", None),
    ("missing_messages", "/v1/chat/completions", {"model": M}, 400, "messages", None),
    ("empty_messages", "/v1/chat/completions", {"model": M, "messages": []}, 400, "messages", None),
    ("bad_role", "/v1/chat/completions", {"model": M, "messages": [{"role": "robot", "content": "x"}]}, 400,
     "messages[0].role", None),
    ("image_content", "/v1/chat/completions",
     {"model": M, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     400, "messages[0].content", None),
    ("missing_prompt", "/v1/completions", {"model": M}, 400, "prompt", None),
    ("prompt_wrong_type", "/v1/completions", {"model": M, "prompt": {"a": 1}}, 400, "prompt", None),
    ("max_tokens_zero", "/v1/completions", {"model": M, "prompt": "x", "max_tokens": 0}, 400, "max_tokens", None),
    ("max_tokens_over_context", "/v1/completions", {"model": M, "prompt": "x", "max_tokens": 5000}, 400,
     "max_tokens", "context_length_exceeded"),
    ("prompt_over_context", "/v1/completions", {"model": M, "prompt": [1] * 3000}, 400, "prompt",
     "context_length_exceeded"),
    ("prompt_id_outside_vocab", "/v1/completions", {"model": M, "prompt": [1, 9999999]}, 400, "prompt", None),
    ("temperature_too_high", "/v1/chat/completions", {"model": M, "messages": MSGS, "temperature": 3}, 400,
     "temperature", None),
    ("top_p_zero", "/v1/chat/completions", {"model": M, "messages": MSGS, "top_p": 0}, 400, "top_p", None),
    ("n_zero", "/v1/chat/completions", {"model": M, "messages": MSGS, "n": 0}, 400, "n", None),
    ("stop_number", "/v1/chat/completions", {"model": M, "messages": MSGS, "stop": 5}, 400, "stop", None),
    ("seed_string", "/v1/completions", {"model": M, "prompt": "x", "seed": "abc"}, 400, "seed", None),
    ("presence_penalty", "/v1/completions", {"model": M, "prompt": "x", "presence_penalty": 5}, 400,
     "presence_penalty", None),
    ("logit_bias_outside_vocab", "/v1/completions", {"model": M, "prompt": "x", "logit_bias": {"9999999": 5}}, 400,
     "logit_bias", None),
    ("logit_bias_value", "/v1/completions", {"model": M, "prompt": "x", "logit_bias": {"5": 500}}, 400,
     "logit_bias", None),
    ("stop_token_ids_outside_vocab", "/v1/completions", {"model": M, "prompt": "x", "stop_token_ids": [9999999]},
     400, "stop_token_ids", None),
    ("top_logprobs_too_many", "/v1/chat/completions",
     {"model": M, "messages": MSGS, "logprobs": True, "top_logprobs": 30}, 400, "top_logprobs", None),
    ("stream_options_without_stream", "/v1/chat/completions",
     {"model": M, "messages": MSGS, "stream_options": {"include_usage": True}}, 400, "stream_options", None),
    ("echo_with_logprobs", "/v1/completions", {"model": M, "prompt": "x", "echo": True, "logprobs": 1}, 400, "echo",
     None),
    ("min_tokens_over_max", "/v1/completions", {"model": M, "prompt": "x", "max_tokens": 2, "min_tokens": 5}, 400,
     "min_tokens", None),
    ("detokenize_outside_vocab", "/detokenize", {"tokens": [9999999]}, 400, "tokens", None),
    ("detokenize_id_wrapping_to_5", "/detokenize", {"tokens": [4294967301]}, 400, "tokens", None),
    ("detokenize_negative_id", "/detokenize", {"tokens": [-1]}, 400, "tokens", None),
    ("tokenize_missing_prompt", "/tokenize", {"model": M}, 400, "prompt", None),
]


def check_error(r, status, param=None, code=None):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


@pytest.mark.parametrize("name,path,body,status,param,code", CASES, ids=[c[0] for c in CASES])
def test_bad_request(server, name, path, body, status, param, code):
    data = body if isinstance(body, str) else json.dumps(body)
    r = requests.post(server.url + path, data=data, headers={"Content-Type": "application/json"}, timeout=30)
    check_error(r, status, param, code)


def test_detokenize_names_the_out_of_range_id(server):
    # Issue 17 (6): 4294967301 was read as int32 and returned the text of token 5.
    for bad in (4294967301, 2**31, 2**64 - 1):
        r = requests.post(server.url + "/detokenize", json={"tokens": [1, bad]}, timeout=10)
        assert str(bad) in check_error(r, 400, "tokens")["message"]
    assert requests.post(server.url + "/detokenize", json={"tokens": [5]}, timeout=10).status_code == 200


def test_unknown_route_and_wrong_method(server):
    check_error(requests.get(server.url + "/v1/engines", timeout=10), 404)
    check_error(requests.get(server.url + "/v1/chat/completions", timeout=10), 405)
    check_error(requests.post(server.url + "/v1/models", timeout=10), 405)
    check_error(requests.get(server.url + "/v1/models/gpt-9", timeout=10), 404, code="model_not_found")


def test_server_survives_garbage_and_keeps_alive(server):
    # Not HTTP at all: the connection is closed, the server keeps serving.
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01 hello\r\n\r\n")
        s.recv(4096)
    # Two requests on one keep-alive connection, the first a bad one.
    with requests.Session() as session:
        check_error(session.post(server.url + "/v1/completions", data="{", timeout=10), 400)
        assert session.get(server.url + "/v1/models", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def guarded():
    s = Server(extra_args=["--set", "frontend.max_request_bytes=4096", "--set", "frontend.max_queued_requests=1",
                           "--set", "frontend.api_keys_env=TANDEM_TEST_KEYS"],
               env={"TANDEM_TEST_KEYS": "sk-one, sk-two"})
    yield s
    s.stop()


def test_api_keys(guarded):
    body = {"model": M, "prompt": "x", "max_tokens": 1}
    check_error(requests.post(guarded.url + "/v1/completions", json=body, timeout=30), 401, code="invalid_api_key")
    check_error(requests.post(guarded.url + "/v1/completions", json=body, timeout=30,
                              headers={"Authorization": "Bearer sk-three"}), 401)
    check_error(requests.get(guarded.url + "/v1/models", timeout=30, headers={"Authorization": "sk-one"}), 401)
    for key in ("sk-one", "sk-two"):
        r = requests.post(guarded.url + "/v1/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
    # Health and metrics stay open (load balancers and scrapers carry no key).
    assert requests.get(guarded.url + "/health", timeout=10).status_code == 200
    assert requests.get(guarded.url + "/metrics", timeout=10).status_code == 200


def test_body_too_large(guarded):
    body = {"model": M, "prompt": "x" * 10000}
    r = requests.post(guarded.url + "/v1/completions", json=body, timeout=30, headers={"Authorization": "Bearer sk-one"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_overloaded_gets_429(guarded):
    headers = {"Authorization": "Bearer sk-one"}
    long = json.dumps({"model": M, "prompt": "Count to a thousand:", "max_tokens": 400, "ignore_eos": True,
                       "stream": True}).encode()
    # A raw socket holds the first request open (requests' per-call sessions may close a streamed
    # connection early, which the server rightly treats as a disconnect).
    with socket.create_connection(("127.0.0.1", guarded.http_port), timeout=60) as first:
        first.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-one\r\n"
                      b"Content-Length: " + str(len(long)).encode() + b"\r\n\r\n" + long)
        got = b""
        while b"data: " not in got:  # the request is in flight
            chunk = first.recv(65536)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200")
        r = requests.post(guarded.url + "/v1/completions", json={"model": M, "prompt": "x", "max_tokens": 1},
                          headers=headers, timeout=30)
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "server_overloaded"


def test_expect_100_continue(server):
    body = json.dumps({"model": M, "prompt": [1, 2], "max_tokens": 1}).encode()
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=60) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: "
                  b"application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        reply = b""
        while b"text_completion" not in reply:
            chunk = s.recv(65536)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
