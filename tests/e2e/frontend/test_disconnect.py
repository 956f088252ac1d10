"""A client that goes away mid-stream cancels its request all the way down: the engine stops
running it and frees its KV blocks long before max_tokens would have been reached."""
import json
import socket
import time

from conftest import MODEL_NAME


def wait_idle(server, timeout_s=30):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if (server.metric("tandem_num_requests_running") == 0 and server.metric("tandem_num_requests_waiting") == 0
                and server.metric("tandem_requests_in_flight") == 0):
            return time.time()
        time.sleep(0.1)
    raise AssertionError("the engine still runs the request after the client left")


def open_stream(server, body):
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=60)
    payload = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    got = b""
    while b"data: " not in got:  # the first token has been streamed: the request is running
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200")
    return s


def test_disconnect_mid_stream_cancels(server):
    body = {"model": MODEL_NAME, "prompt": "Count from one to a million:", "max_tokens": 1500, "ignore_eos": True,
            "temperature": 0, "stream": True}
    s = open_stream(server, body)
    try:
        # The engine publishes its gauges after each step, so they may trail the first token a little.
        deadline = time.time() + 10
        while server.metric("tandem_num_requests_running") + server.metric("tandem_num_requests_waiting") < 1:
            assert time.time() < deadline, "the streaming request is not in the engine"
            time.sleep(0.05)
        assert server.metric("tandem_kv_blocks_used") > 0
    finally:
        t0 = time.time()
        s.close()
    t_idle = wait_idle(server)
    assert t_idle - t0 < 10
    assert server.metric("tandem_kv_blocks_used") == 0
    text = __import__("requests").get(server.url + "/metrics", timeout=10).text
    assert 'tandem_requests_total{endpoint="/v1/completions",status="499"}' in text


def test_disconnect_while_waiting_non_streaming(server):
    body = json.dumps({"model": MODEL_NAME, "prompt": "Count:", "max_tokens": 1500, "ignore_eos": True}).encode()
    before = server.metric("tandem_generation_tokens_total")
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=60)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() +
              b"\r\n\r\n" + body)
    try:
        deadline = time.time() + 60
        while (server.metric("tandem_generation_tokens_total") == before or
               server.metric("tandem_requests_in_flight") == 0):
            assert time.time() < deadline
            time.sleep(0.1)
    finally:
        s.close()
    wait_idle(server)
    assert server.metric("tandem_kv_blocks_used") == 0
