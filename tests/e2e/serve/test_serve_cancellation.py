"""Cancellation at scale (issue 18) on `tandem serve -c` (one prefill and one decode worker, KV over
UCX): 100 streams opened at once, each client disconnecting at a random moment (right after sending,
before its first token, during its prefill or KV transfer, mid-decode); afterwards both workers'
KV usage returns to idle (0 blocks) within seconds, every stream was answered or refused (none hangs),
and the next requests are served in full."""
import json
import pathlib
import random
import socket
import sys
import threading
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server  # noqa: E402
from serve_util import wait_for, worker_metric  # noqa: E402

QUICKSTART = str(ROOT / "configs/quickstart.yaml")
STREAMS = 100


@pytest.fixture(scope="module")
def served():
    s = Server(extra_args=["-c", QUICKSTART])
    yield s
    s.stop()


def stream_and_cancel(port, i, plan, outcome):
    """One streaming completion; `plan` = ("send", 0) closes right after sending, ("wait", s) after s
    seconds, ("events", n) after the n-th SSE event. `outcome[i]`: what happened before the close."""
    body = json.dumps({"model": MODEL_NAME, "prompt": f"stream {i}: " + "a river of small boats " * (5 + i % 40),
                       "max_tokens": 32, "stream": True, "ignore_eos": True}).encode()
    request = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    s = socket.create_connection(("127.0.0.1", port), timeout=240)
    try:
        s.sendall(request)
        kind, value = plan
        if kind == "wait":
            time.sleep(value)
        elif kind == "events":
            got, seen = b"", 0
            while seen < value:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
                seen = got.count(b"data: ")
                if b" 429 " in got[:20] or b" 503 " in got[:20]:
                    outcome[i] = "refused"
                    return
            outcome[i] = f"read {seen} events"
            return
        outcome[i] = kind
    except OSError as e:
        outcome[i] = f"error {e!r}"
    finally:
        s.close()


def test_hundreds_of_cancelled_streams_leave_no_blocks_and_serving_goes_on(served):
    rng = random.Random(18)
    plans = []
    for i in range(STREAMS):
        r = rng.random()
        if r < 0.2:
            plans.append(("send", 0))
        elif r < 0.6:
            plans.append(("wait", rng.uniform(0.01, 3.0)))
        else:
            plans.append(("events", rng.randint(1, 30)))
    outcome = [None] * STREAMS
    threads = [threading.Thread(target=stream_and_cancel, args=(served.http_port, i, plans[i], outcome))
               for i in range(STREAMS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a stream hung"
    bad = {i: (plans[i], o) for i, o in enumerate(outcome) if o is None or o.startswith("error")}
    assert not bad, bad
    cancelled_at = time.time()
    # Every block the cancelled streams held is freed on both workers.
    idle_at = wait_for(lambda: worker_metric(served, "tandem_worker_kv_blocks_used", "decode") == 0 and
                       worker_metric(served, "tandem_worker_kv_blocks_used", "prefill") == 0, 30,
                       "both workers back to 0 KV blocks", served)
    print(f"{STREAMS} streams cancelled; both workers idle {idle_at - cancelled_at:.2f} s after the last close; "
          f"outcomes: { {k: sum(1 for o in outcome if o.split()[0] == k) for k in ('send', 'wait', 'read', 'refused')} }")
    assert idle_at - cancelled_at < 10
    # Serving goes on: complete requests, every token.
    for n in range(3):
        r = requests.post(served.url + "/v1/completions", timeout=120, json={
            "model": MODEL_NAME, "prompt": f"after the storm {n}", "max_tokens": 8, "ignore_eos": True})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 8
