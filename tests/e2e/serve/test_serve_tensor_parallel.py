"""`tandem serve -c` with an aggregated tensor-parallel worker on the CPU backend
(configs/aggregated.yaml at pools.both.tensor_parallel 2: one worker process, two rank threads over
the host collective group): its greedy output equals the in-process TP 1 engine's token for token, and
its log says it runs two ranks. A disaggregated pool at tensor_parallel 2 is refused before any model
loads, with the config line named.
"""
import pathlib
import subprocess
import sys

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server, model_path, tandem_bin  # noqa: E402

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


def test_disaggregated_tensor_parallel_pool_is_refused():
    out = subprocess.run([tandem_bin(), "serve", "-c", str(ROOT / "configs/quickstart.yaml"), "--model", model_path(),
                          "--set", "pools.decode.tensor_parallel=2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "pools.decode.tensor_parallel: KV hand-off between tensor-parallel workers is not built yet" in (
        out.stdout + out.stderr), out.stdout + out.stderr
