"""/health of `tandem serve -c` says whether a request can be served now (issue 17, 7): with the
quickstart (disaggregation.mode always) that takes a live decode worker and a live prefill worker.
A worker is live while its load stream reports: a stopped (SIGSTOP) or dead one is not."""
import os
import pathlib
import signal
import sys

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import ROOT, Server  # noqa: E402
from serve_util import wait_for, worker_metric, worker_pids  # noqa: E402

QUICKSTART = str(ROOT / "configs/quickstart.yaml")


@pytest.fixture(scope="module")
def served():
    s = Server(extra_args=["-c", QUICKSTART])
    yield s
    for role in ("prefill", "decode"):  # never leave a worker stopped
        for pid in worker_pids(s, role):
            os.kill(pid, signal.SIGCONT)
    s.stop()


def health(server):
    return requests.get(server.url + "/health", timeout=10).status_code


@pytest.mark.parametrize("role", ["prefill", "decode"])
def test_stopped_worker_makes_health_503_until_it_continues(served, role):
    # Issue 17 (7): /health stayed 200 while the prefill worker was stopped (every request needs it).
    assert health(served) == 200
    [pid] = worker_pids(served, role)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: health(served) == 503, 10, f"/health 503 with the {role} worker stopped", served)
        assert worker_metric(served, "tandem_worker_up", role) == 0
        assert requests.get(served.url + "/health", timeout=10).json()["status"] == "unavailable"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: health(served) == 200, 10, f"/health 200 with the {role} worker continued", served)
    assert worker_metric(served, "tandem_worker_up", role) == 1


def test_dead_decode_worker_makes_health_503_until_restarted(served):
    # Issue 17 (7): /health stayed 200 while the only decode worker was dead (requests got 503).
    [pid] = worker_pids(served, "decode")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: health(served) == 503, 5, "/health 503 with the decode worker dead", served)
    wait_for(lambda: health(served) == 200, 60, "/health 200 with the decode worker restarted", served)
    r = requests.post(served.url + "/v1/completions", timeout=120,
                      json={"model": "smollm2", "prompt": "Hello", "max_tokens": 2})
    assert r.status_code == 200, r.text


def timed_completion(server, tag, result):
    import time
    t0 = time.time()
    try:
        r = requests.post(server.url + "/v1/completions", timeout=120, json={
            "model": "smollm2", "prompt": f"{tag}: " + "the river carried small boats " * 40, "max_tokens": 4})
        result["status"], result["body"] = r.status_code, r.text
    except requests.RequestException as e:
        result["status"], result["body"] = None, repr(e)
    result["seconds"] = time.time() - t0


def requests_while_prefill_stopped(server, n):
    """`n` requests sent right after SIGSTOPping the prefill worker; their results once they end."""
    import threading
    [pid] = worker_pids(server, "prefill")
    os.kill(pid, signal.SIGSTOP)
    results = [{} for _ in range(n)]
    threads = [threading.Thread(target=timed_completion, args=(server, f"stopped {i}", results[i])) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "requests hung with the prefill worker stopped"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: health(server) == 200, 15, "/health 200 with the prefill worker continued", server)
    r = requests.post(server.url + "/v1/completions", timeout=120,
                      json={"model": "smollm2", "prompt": "Hello again", "max_tokens": 2})
    assert r.status_code == 200, r.text
    return results


def test_requests_on_a_silent_prefill_worker_fail_within_the_report_timeout():
    # Issue 17 (8): with the prefill worker SIGSTOPped, 5 requests hung for 30 s with no error and no
    # log line. Its load reports stop, so after router.load_report_timeout_s it is down: the frontend
    # fails the requests waiting on it, and new ones are refused at once (503, /health says why).
    s = Server(extra_args=["-c", QUICKSTART, "--set", "router.load_report_timeout_s=1"])
    try:
        results = requests_while_prefill_stopped(s, 5)
        for r in results:
            assert r["status"] == 503, r
            assert r["seconds"] < 10, r
            assert "stopped responding" in r["body"] or "No worker can take requests" in r["body"], r
    finally:
        s.stop()


def test_remote_prefill_deadline_is_configuration():
    # Issue 17 (8): the remote-prefill timeout was 120 s and not configurable. With the frontend's
    # liveness check out of the way, the decode worker's own deadline ends the request.
    s = Server(extra_args=["-c", QUICKSTART, "--set", "router.load_report_timeout_s=600",
                           "--set", "disaggregation.remote_prefill_timeout_s=2"])
    try:
        [result] = requests_while_prefill_stopped(s, 1)
        assert result["status"] is not None and result["status"] >= 500, result
        assert 1.5 < result["seconds"] < 15, result
        assert "remote prefill failed" in "".join(s.log), "".join(s.log[-30:])
    finally:
        s.stop()
