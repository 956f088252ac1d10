"""A 2 prefill : 3 decode deployment (configs/cpu-2p3d.yaml, kv_aware routing, conditional
disaggregation) under concurrent load: every request is served, the load reaches every worker, and a
repeated long prefix is routed back to the decode worker that caches it. Per-worker figures come
from each worker's own StreamLoad report (worker.proto), read with grpcio.
"""
import concurrent.futures
import importlib
import pathlib
import re
import sys

import pytest
import requests

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")
from grpc_tools import protoc  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server  # noqa: E402

CONFIG = str(ROOT / "configs/cpu-2p3d.yaml")
WORDS = "a quiet harbor town wakes as fishermen mend nets and gulls argue over bread crumbs".split()


def text(n, offset=0):
    return " ".join(WORDS[(i + offset) % len(WORDS)] for i in range(n))


@pytest.fixture(scope="module")
def worker_api(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(ROOT / "proto/tandem/v1/worker.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    return importlib.import_module("tandem.v1.worker_pb2"), importlib.import_module("tandem.v1.worker_pb2_grpc")


# The workers take RPCs only with the cluster token; given here, tandem serve uses it (else it makes one).
CLUSTER_TOKEN = "e2e-2p3d-cluster-token"


@pytest.fixture(scope="module")
def server():
    # The remote-prefill deadline and the admission limit are raised from their 30 s defaults: this test
    # is about routing under load, and on a loaded 2-core machine (another e2e test beside it) 24 long
    # prompts through two CPU prefill workers once passed the first (a 504 in CI) and once the second (a
    # 429); deadlines and admission have their own tests (test_serve_transfer_faults, test_serve_overload).
    s = Server(extra_args=["-c", CONFIG, "--set", "kv_cache.cpu_memory_mib=128",
                           "--set", "disaggregation.remote_prefill_timeout_s=300",
                           "--set", "frontend.max_queue_wait_s=300"],
               env={"TANDEM_CLUSTER_TOKEN": CLUSTER_TOKEN})
    yield s
    s.stop()


def workers(server):
    line = next(line for line in server.log if "worker(s) starting" in line)
    return re.findall(r"(prefill|decode) (127\.0\.0\.1:\d+)", line)


def load_report(worker_api, address):
    pb2, pb2_grpc = worker_api
    with grpc.insecure_channel(address) as channel:
        stub = pb2_grpc.WorkerStub(channel)
        for report in stub.StreamLoad(pb2.LoadRequest(interval_ms=50), timeout=10,
                                      metadata=(("x-tandem-cluster-token", CLUSTER_TOKEN),)):
            return report


def complete(server, prompt, max_tokens=8):
    r = requests.post(server.url + "/v1/completions", timeout=300, json={
        "model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    assert r.status_code == 200, r.text
    return r.json()


def test_load_reaches_every_worker_and_prefixes_come_back(server, worker_api):
    listed = workers(server)
    assert sorted(role for role, _ in listed) == ["decode"] * 3 + ["prefill"] * 2

    # Concurrent load: 24 distinct prompts of 80-200 words (longer than max_local_prefill_tokens: 64).
    prompts = [text(80 + 5 * i, offset=i) + f" Request {i}." for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda p: complete(server, p), prompts))
    assert all(r["choices"][0]["finish_reason"] in ("stop", "length") for r in results)

    reports = {address: load_report(worker_api, address) for _, address in listed}
    for role, address in listed:
        r = reports[address]
        if role == "decode":
            assert r.remote_prefills + r.local_prefills > 0, f"decode worker {address} got no request"
        else:
            assert r.kv_blocks_sent > 0, f"prefill worker {address} computed no prompt"
    assert sum(reports[a].remote_prefills for role, a in listed if role == "decode") > 0

    # kv_aware: the same long prefix with a new question lands where the prefix is cached.
    for k in range(3):
        prefix = text(150, offset=100 + 7 * k) + f" Topic {k}."
        complete(server, prefix + " First question?")
        again = complete(server, prefix + " Second question?")
        cached = again["usage"].get("prompt_tokens_details", {}).get("cached_tokens", 0)
        assert cached >= 128, f"prefix {k}: expected a prefix-cache hit, usage {again['usage']}"
