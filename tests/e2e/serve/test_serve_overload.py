"""Overload soak (issue 18) on `tandem serve -c` (one prefill and one decode worker on the CPU):
Poisson arrivals at several times the rate the deployment sustains, for TANDEM_SOAK_SECONDS (40 in
CI; run it longer by hand). Every request is answered in bounded time: served in full (200, every
token), refused with 429/503 and a Retry-After header, or (a few, at most 5 %) failed by a hop's
deadline with a 504 naming it: admission's wait estimate lets some requests in that then wait past
disaggregation.remote_prefill_timeout_s (30 s) on a starved machine; nothing hangs; the frontend's and the
workers' anonymous resident memory (heap) stays flat; afterwards the deployment is healthy, holds no KV blocks, and
serves a request."""
import os
import pathlib
import random
import sys
import threading
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server  # noqa: E402
from serve_util import wait_for, worker_metric, worker_pids  # noqa: E402

QUICKSTART = str(ROOT / "configs/quickstart.yaml")
SECONDS = float(os.environ.get("TANDEM_SOAK_SECONDS", "40"))
RATE = 8.0  # requests/s; the 2-core quickstart serves about 1-2 of these (64 tokens in, 16 out)


def rss_anon_kib(pid):
    """Anonymous resident memory (heap, stacks): what a leak grows. The workers' KV pools are shared
    memory (RssShmem), resident as their blocks are first used, so they are left out."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def one_request(url, i, results):
    t0 = time.time()
    try:
        r = requests.post(url + "/v1/completions", timeout=180, json={
            "model": MODEL_NAME, "prompt": f"soak {i}: " + "the mill by the river " * 12,
            "max_tokens": 16, "ignore_eos": True})
        ok = r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 16
        results[i] = (r.status_code, ok, r.headers.get("Retry-After"), time.time() - t0, r.text[:200])
    except requests.RequestException as e:
        results[i] = (None, False, None, time.time() - t0, repr(e))


def test_twice_the_sustainable_rate_is_refused_cleanly_with_flat_memory():
    s = Server(extra_args=["-c", QUICKSTART])
    try:
        pids = [s.proc.pid] + worker_pids(s, "prefill") + worker_pids(s, "decode")
        assert len(pids) == 3
        rng = random.Random(18)
        results, threads, samples = {}, [], []
        start = time.time()
        i = 0
        next_at = start
        while time.time() - start < SECONDS:
            now = time.time()
            if now >= next_at:
                t = threading.Thread(target=one_request, args=(s.url, i, results))
                t.start()
                threads.append(t)
                i += 1
                next_at += rng.expovariate(RATE)
            if not samples or now - samples[-1][0] >= 1.0:
                samples.append((now, sum(rss_anon_kib(p) for p in pids)))
            time.sleep(0.005)
        for t in threads:
            t.join(timeout=200)
        assert not any(t.is_alive() for t in threads), "a request hung"
        served = sum(1 for r in results.values() if r[0] == 200)
        refused = [r for r in results.values() if r[0] in (429, 503)]
        timed_out = [r for r in results.values() if r[0] == 504 and "Deadline Exceeded" in r[4]]
        bad = [r for r in results.values()
               if not (r[1] or (r[0] in (429, 503) and r[2]) or (r[0] == 504 and "Deadline Exceeded" in r[4]))]
        third = max(1, len(samples) // 3)
        early = sum(v for _, v in samples[:third]) / third
        late = sum(v for _, v in samples[-third:]) / third
        longest = max(r[3] for r in results.values())
        print(f"{i} requests in {SECONDS:.0f} s ({i / SECONDS:.1f}/s): {served} served, {len(refused)} refused "
              f"(429/503 with Retry-After), {len(timed_out)} past a deadline (504), {len(bad)} otherwise; longest {longest:.1f} s; "
              f"anonymous RSS of frontend + workers {early / 1024:.0f} MiB in the first third, {late / 1024:.0f} MiB in the last")
        assert not bad, bad[:5]
        assert len(timed_out) <= 0.05 * i, timed_out[:5]
        assert served > 0 and refused, "the rate should be past capacity, so some requests are refused"
        assert late <= early * 1.25 + 32 * 1024, (early, late)
        # Healthy afterwards: no blocks held, /health 200, a request served in full.
        wait_for(lambda: worker_metric(s, "tandem_worker_kv_blocks_used", "decode") == 0 and
                 worker_metric(s, "tandem_worker_kv_blocks_used", "prefill") == 0, 30, "idle workers", s)
        wait_for(lambda: requests.get(s.url + "/health", timeout=10).status_code == 200, 30, "/health 200", s)
        r = requests.post(s.url + "/v1/completions", timeout=120, json={
            "model": MODEL_NAME, "prompt": "after the soak", "max_tokens": 8, "ignore_eos": True})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 8
    finally:
        s.stop()
