"""`tandem serve -c` with an aggregated tensor-parallel worker on the CPU backend
(configs/aggregated.yaml at pools.both.tensor_parallel 2: one worker process, two rank threads over
the host collective group): its greedy output equals the in-process TP 1 engine's token for token, and
its log says it runs two ranks. Disaggregated, prefill TP 2 -> decode TP 1 and TP 1 -> TP 2 equal it too.
A rank that fails a step (injected: TANDEM_FAULT_TP_RANK) ends the requests in that step with an error
naming the rank, the worker stops itself, the supervisor restarts it, and requests succeed again.
"""
import pathlib
import sys

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server  # noqa: E402
from serve_util import wait_for  # noqa: E402

CONFIG = str(ROOT / "configs/aggregated.yaml")
PROMPTS = ["Hello", "The capital of France is", "1, 2, 3, 4,", "def fibonacci(n):",
           "Write a haiku about the sea.", "Tensor parallelism splits each layer across",
           "The quick brown fox", "Once upon a time, in a land far away,"]


def complete(server, prompt, max_tokens=24):
    r = requests.post(server.url + "/v1/completions", timeout=300, json={
        "model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "logprobs": 0})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["logprobs"]["tokens"]


@pytest.fixture(scope="module")
def servers():
    reference = Server()
    tp2 = Server(extra_args=["-c", CONFIG, "--set", "pools.both.tensor_parallel=2",
                             "--set", "pools.both.replicas=1", "--set", "kv_cache.cpu_memory_mib=128"],
                 env={"TANDEM_LOG_LEVEL": "info"})
    yield reference, tp2
    tp2.stop()
    reference.stop()


def test_tp2_greedy_output_equals_tp1(servers):
    reference, tp2 = servers
    for prompt in PROMPTS:
        assert complete(tp2, prompt) == complete(reference, prompt), prompt
    assert any("tensor_parallel 2" in line for line in tp2.log), "".join(tp2.log)


@pytest.mark.parametrize("prefill_tp,decode_tp", [(2, 1), (1, 2)])
def test_disaggregated_across_widths_equals_tp1(servers, prefill_tp, decode_tp):
    """configs/quickstart.yaml (every request prefilled remotely, KV over UCX) with the prefill and
    decode pools at different tensor-parallel widths: each decode rank's heads come straight from the
    prefill rank holding them (whole blocks never fit: the head slabs are written one by one; a TP 1
    prefill worker streams them layer by layer), and the output equals the in-process TP 1 engine's."""
    reference, _ = servers
    server = Server(extra_args=["-c", str(ROOT / "configs/quickstart.yaml"),
                                "--set", f"pools.prefill.tensor_parallel={prefill_tp}",
                                "--set", f"pools.decode.tensor_parallel={decode_tp}",
                                "--set", "kv_cache.cpu_memory_mib=128"])
    try:
        for prompt in PROMPTS:
            assert complete(server, prompt) == complete(reference, prompt), prompt
        text = requests.get(server.url + "/metrics", timeout=10).text
        sent = [float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("tandem_worker_kv_transfer_blocks_total") and 'direction="sent"' in line]
        assert sent and sum(sent) > 0, text
        # A TP 1 prefill worker streams layer by layer into the decode ranks' head slabs.
        layerwise = [float(line.split()[-1]) for line in text.splitlines()
                     if line.startswith("tandem_worker_kv_sends_total") and 'mode="layerwise"' in line]
        if prefill_tp == 1:
            assert layerwise and sum(layerwise) >= len(PROMPTS), text
    finally:
        server.stop()


def test_failed_rank_ends_its_requests_and_the_worker_restarts(tmp_path):
    fired = tmp_path / "fault-fired"
    server = Server(extra_args=["-c", CONFIG, "--set", "pools.both.tensor_parallel=2",
                                "--set", "pools.both.replicas=1", "--set", "kv_cache.cpu_memory_mib=128"],
                    env={"TANDEM_LOG_LEVEL": "info", "TANDEM_FAULT_TP_RANK": f"1:5:{fired}"})
    try:
        # Step 1 is the prompt, 2-5 decode: rank 1 fails the request's 5th step.
        r = requests.post(server.url + "/v1/completions", timeout=120, json={
            "model": MODEL_NAME, "prompt": "The capital of France is", "max_tokens": 24, "temperature": 0})
        assert fired.exists()
        assert r.status_code >= 500, r.text
        # The worker's output reaches server.log through a reader thread: the response can come first.
        wait_for(lambda: "tensor-parallel rank 1: injected fault" in "".join(server.log), 30,
                 "the worker's log line of the injected fault", server)

        def serves():
            try:
                return requests.post(server.url + "/v1/completions", timeout=60, json={
                    "model": MODEL_NAME, "prompt": "Hello", "max_tokens": 8, "temperature": 0}).status_code == 200
            except requests.RequestException:
                return False
        wait_for(serves, 120, "the restarted worker to serve", server)
        log = "".join(server.log)
        assert "stopping so that it restarts" in log, log
        assert "exited with code 1" in log, log
    finally:
        server.stop()
