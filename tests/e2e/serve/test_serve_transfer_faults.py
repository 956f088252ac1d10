"""KV transfers that fail or stall (issue 18), on `tandem serve -c` with real worker processes: the
prefill worker's KV writes are broken on purpose by the tests' fault injection
(TANDEM_TEST_TRANSFER_FAULT, src/transfer/fault_transport.cc) — every write fails at once, never
completes, or is refused when posted. Expected: no request hangs (each ends within the configured
deadlines: disaggregation.kv_transfer_timeout_s on the prefill worker, remote_prefill_timeout_s on the
decode worker), each either fails with a clear server error (on_prefill_failure: fail) or is
recomputed on the decode worker with the same greedy text as an unbroken deployment (recompute), and
neither worker holds a KV block afterwards."""
import json
import pathlib
import sys
import threading
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server  # noqa: E402
from serve_util import wait_for, worker_metric  # noqa: E402

QUICKSTART = str(ROOT / "configs/quickstart.yaml")
# One block, a few blocks, many blocks of KV (block size 16).
PROMPTS = ["Hi", "the river carried small boats " * 8, "a long list of numbers: " + " ".join(map(str, range(100)))]
# Short deadlines, so a stalled write ends quickly; the bounds below leave room for a loaded machine
# (CI runs tests side by side on two cores), and stay far below a hang (the clients wait 120 s).
DEADLINES = ["--set", "disaggregation.kv_transfer_timeout_s=2", "--set", "disaggregation.remote_prefill_timeout_s=10"]


def complete_all(server):
    """The PROMPTS sent at once (greedy, 8 tokens); (status, body, seconds) for each."""
    results = [None] * len(PROMPTS)

    def one(i):
        t0 = time.time()
        try:
            r = requests.post(server.url + "/v1/completions", timeout=120, json={
                "model": MODEL_NAME, "prompt": PROMPTS[i], "max_tokens": 8, "temperature": 0, "ignore_eos": True})
            results[i] = (r.status_code, r.text, time.time() - t0)
        except requests.RequestException as e:
            results[i] = (None, repr(e), time.time() - t0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150)
    assert not any(t.is_alive() for t in threads), "a request hung"
    return results


def assert_no_blocks_held(server):
    wait_for(lambda: worker_metric(server, "tandem_worker_kv_blocks_used", "decode") == 0 and
             worker_metric(server, "tandem_worker_kv_blocks_used", "prefill") == 0, 15,
             "both workers back to 0 KV blocks", server)


@pytest.fixture(scope="module")
def reference_texts():
    s = Server(extra_args=["-c", QUICKSTART])
    try:
        results = complete_all(s)
        for status, body, _ in results:
            assert status == 200, body
        return [json.loads(body)["choices"][0]["text"] for _, body, _ in results]
    finally:
        s.stop()


@pytest.mark.parametrize("fault", ["fail", "stall", "post"])
def test_broken_transfer_fails_the_request_clearly_and_frees_every_block(fault):
    s = Server(extra_args=["-c", QUICKSTART, *DEADLINES], env={"TANDEM_TEST_TRANSFER_FAULT": fault})
    try:
        results = complete_all(s)
        for status, body, seconds in results:
            assert status is not None and status >= 500, (status, body)
            assert "prefill" in body, body
            assert seconds < 45, (seconds, body)
        assert_no_blocks_held(s)
        log = "".join(s.log)
        assert "TANDEM_TEST_TRANSFER_FAULT" in log, log[-2000:]
        print(f"{fault}: {[(r[0], round(r[2], 2)) for r in results]}")
    finally:
        s.stop()


@pytest.mark.parametrize("fault", ["fail", "stall"])
def test_broken_transfer_is_recomputed_on_the_decode_worker(fault, reference_texts):
    s = Server(extra_args=["-c", QUICKSTART, *DEADLINES, "--set", "disaggregation.on_prefill_failure=recompute"],
               env={"TANDEM_TEST_TRANSFER_FAULT": fault})
    try:
        results = complete_all(s)
        texts = []
        for status, body, seconds in results:
            assert status == 200, (status, body)
            assert seconds < 90, (seconds, body)
            texts.append(json.loads(body)["choices"][0]["text"])
        assert texts == reference_texts
        assert_no_blocks_held(s)
        print(f"{fault} recomputed: {[round(r[2], 2) for r in results]} s")
    finally:
        s.stop()
