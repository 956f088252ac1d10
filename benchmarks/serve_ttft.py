#!/usr/bin/env python3
"""TTFT of disaggregated vs aggregated serving, side by side in one run.

Starts `tandem serve --model M` (one in-process engine) and `tandem serve -c configs/quickstart.yaml`
(frontend + prefill worker + decode worker, KV over UCX, every prompt prefilled remotely) twice: with
transfer.layerwise on (each layer's KV leaves the prefill worker as soon as the layer is computed)
and off (every layer after the prefill finished). Then times the first streamed token for prompts of
512 and 2048 tokens (distinct prompts, so no prefix-cache hits), median of N runs each, the servers
taking turns prompt by prompt. `--prefill-chunk N` caps the prefill worker's step
(pools.prefill.max_num_batched_tokens), so long prompts run as several chunks.
Usage: .venv/bin/python benchmarks/serve_ttft.py [--runs 5] [--prefill-chunk 512]
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
    parser.add_argument("--prefill-chunk", type=int, default=0,
                        help="pools.prefill.max_num_batched_tokens (0: the quickstart's 2048)")
    args = parser.parse_args()
    os.environ.setdefault("TANDEM_BIN", str(ROOT / "build/bin/tandem"))
    common = ["--set", "model.max_model_len=4096", "--set", "kv_cache.cpu_memory_mib=512"]
    disagg = ["-c", str(ROOT / "configs/quickstart.yaml"), *common]
    if args.prefill_chunk > 0:
        disagg += ["--set", f"pools.prefill.max_num_batched_tokens={args.prefill_chunk}"]
    names = ("aggregated", "layerwise", "after_prefill")
    servers = {}
    try:
        servers["aggregated"] = Server(extra_args=common)
        servers["layerwise"] = Server(extra_args=[*disagg, "--set", "transfer.layerwise=true"])
        servers["after_prefill"] = Server(extra_args=[*disagg, "--set", "transfer.layerwise=false"])
        rows = []
        salt = 0
        for n in (512, 2048):
            times = {name: [] for name in names}
            for server in servers.values():
                ttft(server, prompt_ids(n, salt := salt + 1))  # warm-up
            for _ in range(args.runs):  # interleaved, so background load hits every server alike
                for name in names:
                    times[name].append(ttft(servers[name], prompt_ids(n, salt := salt + 1)))
                    print(f"  {n} tokens, {name}: {times[name][-1] * 1e3:.1f} ms", file=sys.stderr, flush=True)
            rows.append((n, {name: statistics.median(t) for name, t in times.items()}))
        print(f"TTFT, median of {args.runs} (ms); disaggregated = 1P:1D over UCX"
              + (f", prefill chunk {args.prefill_chunk}" if args.prefill_chunk > 0 else ""))
        print(f"{'prompt':>7} {'aggregated':>11} {'layerwise':>10} {'after prefill':>14} "
              f"{'lw overhead':>12} {'ap overhead':>12} {'lw/ap':>6}")
        for n, m in rows:
            a, lw, ap = m["aggregated"], m["layerwise"], m["after_prefill"]
            print(f"{n:>7} {a * 1e3:>11.1f} {lw * 1e3:>10.1f} {ap * 1e3:>14.1f} "
                  f"{(lw - a) * 1e3:>12.1f} {(ap - a) * 1e3:>12.1f} {lw / ap:>6.3f}")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
