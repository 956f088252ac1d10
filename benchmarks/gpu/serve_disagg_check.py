#!/usr/bin/env python3
"""On a GPU machine: `tandem serve` aggregated (one CUDA engine in process) against `tandem serve -c
configs/gpu-1gpu-1p1d.yaml` (a prefill and a decode worker sharing one GPU, KV over UCX cuda_ipc),
greedy (and seeded sampling), on prompts of 10 to ~2000 tokens; prints whether each completion is the same, the KV bytes the
workers moved (frontend /metrics) and TTFT side by side. Standard library only (the GPU machines have
no `requests`). Usage: serve_disagg_check.py TANDEM_BINARY MODEL [CONFIG]
$TANDEM_SERVE_SETS: "key=value ..." applied to both servers (e.g. dummy weights with a tokenizer
directory as MODEL: "model.load_format=dummy model.dummy_config=llama-3-8b"); $TANDEM_AGG_CONFIG: a
deployment file for the aggregated server (default: none, the in-process engine of `tandem serve
--model`, which loads GGUF files only).
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

WORDS = ("the river carried small boats past the old mill while children counted the clouds "
         "and a baker sang about bread ").split()


def post(url, body, timeout=600):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def model_id(url):
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
        return json.loads(r.read())["data"][0]["id"]


def ttft(url, prompt, model=None):
    """Seconds to the first streamed chunk of a 1-token completion (`prompt`: text or token ids)."""
    body = {"model": model or model_id(url), "prompt": prompt, "max_tokens": 1, "temperature": 0, "stream": True}
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        r.readline()
        t = time.perf_counter() - t0
        r.read()
    return t


def stop(*procs, timeout=30):
    """SIGTERM each server's process group, then SIGKILL what has not exited after `timeout` s."""
    for proc in procs:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def wait_healthy(url, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(1)
    raise SystemExit("server not healthy in time")


def main():
    tandem, gguf = sys.argv[1], sys.argv[2]
    config = sys.argv[3] if len(sys.argv) > 3 else "configs/gpu-1gpu-1p1d.yaml"
    log_a, log_d = open("/tmp/serve_agg.log", "w"), open("/tmp/serve_disagg.log", "w")
    sets = [a for kv in os.environ.get("TANDEM_SERVE_SETS", "").split() for a in ("--set", kv)]
    agg_config = ["-c", os.environ["TANDEM_AGG_CONFIG"]] if os.environ.get("TANDEM_AGG_CONFIG") else []
    agg = subprocess.Popen([tandem, "serve", *agg_config, "--model", gguf, "--set", "backend=cuda", "--set",
                            "frontend.http.port=8100", "--set", "frontend.grpc.port=8101", "--set",
                            "kv_cache.gpu_memory_utilization=0.15", "--set", "model.max_model_len=4096", *sets],
                           stdout=log_a, stderr=subprocess.STDOUT, start_new_session=True)
    dis = subprocess.Popen([tandem, "serve", "-c", config, "--set", f"model.path={gguf}", "--set",
                            "frontend.http.port=8200", "--set", "frontend.grpc.port=8201", *sets],
                           stdout=log_d, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy("http://127.0.0.1:8100", agg)
        wait_healthy("http://127.0.0.1:8200", dis)
        prompts = ["Hello", "The capital of France is", "1, 2, 3, 4,", "def fibonacci(n):"]
        for n in (10, 30, 60, 100, 150, 200, 300, 400, 500, 700, 900, 1100, 1300, 1500, 1700, 1900):
            prompts.append(f"Story {n}: " + " ".join(WORDS[i % len(WORDS)] for i in range(n)))
        same = 0
        for p in prompts:
            body = {"prompt": p, "max_tokens": 32, "temperature": 0}
            a = post("http://127.0.0.1:8100/v1/completions", dict(body, model=model_id("http://127.0.0.1:8100")))
            d = post("http://127.0.0.1:8200/v1/completions", dict(body, model=model_id("http://127.0.0.1:8200")))
            ta, td = a["choices"][0]["text"], d["choices"][0]["text"]
            ok = ta == td
            same += ok
            print(f"{'same' if ok else 'DIFF'}  prompt {a['usage']['prompt_tokens']:5d} tokens: {td[:60]!r}"
                  + ("" if ok else f"  (aggregated: {ta[:60]!r})"))
        print(f"disaggregated == aggregated on {same} of {len(prompts)} prompts")
        # Seeded sampling on the GPU: a request's draws depend on its seed only, so both servers (and a
        # repeat) give the same text unless the logits themselves differ.
        same = repeat = 0
        sampled = prompts[:10]
        for k, p in enumerate(sampled):
            body = {"prompt": p, "max_tokens": 32, "temperature": 0.8, "top_p": 0.95, "top_k": 200, "seed": 1000 + k}
            a = post("http://127.0.0.1:8100/v1/completions", dict(body, model=model_id("http://127.0.0.1:8100")))
            d = post("http://127.0.0.1:8200/v1/completions", dict(body, model=model_id("http://127.0.0.1:8200")))
            d2 = post("http://127.0.0.1:8200/v1/completions", dict(body, model=model_id("http://127.0.0.1:8200")))
            ta, td, td2 = (r["choices"][0]["text"] for r in (a, d, d2))
            same += ta == td
            repeat += td == td2
            print(f"{'same' if ta == td else 'DIFF'}  sampled, seed {1000 + k}: {td[:50]!r}"
                  + ("" if ta == td else f"  (aggregated: {ta[:50]!r})"))
        print(f"sampled (T 0.8, top_p 0.95, top_k 200, seeded): disaggregated == aggregated on {same} of "
              f"{len(sampled)}, a repeat equal on {repeat} of {len(sampled)}")
        with urllib.request.urlopen("http://127.0.0.1:8200/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if re.match(r"tandem_worker_(kv_transfer_(bytes|blocks)_total|kv_transfer_bandwidth|kv_blocks_used)", line):
                    print(line)
        for n in (2000, 4000):
            p = "T: " + " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(int(n * 0.78)))
            ta = sorted(ttft("http://127.0.0.1:8100", f"{k} {p}") for k in range(5))[2]
            td = sorted(ttft("http://127.0.0.1:8200", f"{k} {p}") for k in range(5))[2]
            print(f"TTFT ~{n} tokens: aggregated {ta * 1e3:.1f} ms, disaggregated {td * 1e3:.1f} ms (median of 5)")
    finally:
        stop(dis, agg)


if __name__ == "__main__":
    main()
