"""Admission control (issue 17, 12): with frontend.max_queue_wait_s, requests that would wait longer
than that to start are refused at once with 429 and Retry-After, while the admitted ones are served."""
import concurrent.futures

import pytest
import requests

from conftest import MODEL_NAME, Server


@pytest.fixture(scope="module")
def small():
    # Two sequences at a time, so a queue forms quickly on the CPU.
    s = Server(extra_args=["--set", "pools.decode.max_num_seqs=2", "--set", "frontend.max_queue_wait_s=3"])
    yield s
    s.stop()


def complete(server, i):
    r = requests.post(server.url + "/v1/completions", timeout=300, json={
        "model": MODEL_NAME, "prompt": f"Request {i}: count to fifty:", "max_tokens": 24, "ignore_eos": True,
        "temperature": 0})
    return r.status_code, r.headers.get("Retry-After"), r.json()


def burst(server, n):
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda i: complete(server, i), range(n)))


def test_overload_is_refused_with_retry_after(small):
    # Issue 17 (12): 200 concurrent requests on the quickstart were all accepted (p50 latency 63 s).
    # A first burst forms a queue: the server measures how fast it takes queued work.
    first = burst(small, 8)
    assert all(status == 200 for status, _, _ in first), first
    results = burst(small, 40)
    served = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert refused, "40 concurrent requests against 2 sequences and a 3 s wait limit were all admitted"
    assert len(served) >= 2
    for status, retry_after, body in refused:
        assert status == 429, body
        assert body["error"]["code"] == "server_overloaded"
        assert int(retry_after) >= 1
    for _, _, body in served:
        assert body["usage"]["completion_tokens"] == 24
    text = requests.get(small.url + "/metrics", timeout=10).text
    assert 'tandem_requests_total{endpoint="/v1/completions",status="429"}' in text
