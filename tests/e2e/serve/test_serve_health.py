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
