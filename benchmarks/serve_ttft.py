#!/usr/bin/env python3
"""TTFT of disaggregated vs aggregated serving, side by side in one run.

Starts `tandem serve --model M` (one in-process engine) and `tandem serve -c configs/quickstart.yaml`
(frontend + prefill worker + decode worker, KV over UCX, every prompt prefilled remotely), then times
the first streamed token for prompts of 512 and 2048 tokens (distinct prompts, so no prefix-cache
hits), median of N runs each. Usage: .venv/bin/python benchmarks/serve_ttft.py [--runs 5]
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/e2e/frontend"))
from conftest import MODEL_NAME, Server  # noqa: E402


def prompt_ids(n, salt):
    # Token ids drawn from the ordinary-text range of SmolLM2's vocabulary; distinct per run.
    return [1000 + (salt * 7919 + i * 104729) % 40000 for i in range(n)]


def ttft(server, ids):
    t0 = time.perf_counter()
    with requests.post(server.url + "/v1/completions", stream=True, timeout=600, json={
            "model": MODEL_NAME, "prompt": ids, "max_tokens": 2, "temperature": 0, "stream": True}) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines():
            if line.startswith(b"data: {") and b'"text":"' in line and b'"text":""' not in line:
                return time.perf_counter() - t0
    raise RuntimeError("no token streamed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TANDEM_BIN", str(ROOT / "build/bin/tandem"))
    common = ["--set", "model.max_model_len=4096", "--set", "kv_cache.cpu_memory_mib=512"]
    servers = {"aggregated": Server(extra_args=common),
               "disaggregated": Server(extra_args=["-c", str(ROOT / "configs/quickstart.yaml"), *common])}
    try:
        rows = []
        salt = 0
        for n in (512, 2048):
            med = {}
            for name, server in servers.items():
                ttft(server, prompt_ids(n, salt := salt + 1))  # warm-up
                times = [ttft(server, prompt_ids(n, salt := salt + 1)) for _ in range(args.runs)]
                med[name] = statistics.median(times)
            rows.append((n, med["aggregated"], med["disaggregated"]))
        print(f"{'prompt':>7} {'aggregated ms':>14} {'disaggregated ms':>17} {'overhead ms':>12} {'ratio':>6}")
        for n, a, d in rows:
            print(f"{n:>7} {a * 1e3:>14.1f} {d * 1e3:>17.1f} {(d - a) * 1e3:>12.1f} {d / a:>6.2f}")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
