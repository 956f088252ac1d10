#!/usr/bin/env python3
"""TTFT of the Llama-3-8B shape (dummy weights; MODEL_DIR holds its config.json and a tokenizer) served
aggregated (one worker, `disaggregation.mode: off`, GPU 0) and disaggregated (prefill worker on GPU 0,
decode worker on GPU 1 — or on GPU 0 too with `one-gpu`, the two workers then taking 42 % of its
memory each — KV over UCX cuda_ipc, layer-wise), both through `tandem serve -c` so the frontend path is
the same. Prompts are token ids, distinct per run (no prefix hits); median of 5 per size.
Usage: ttft_8b_check.py TANDEM_BINARY MODEL_DIR [one-gpu]
"""
import pathlib
import statistics
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serve_disagg_check import model_id, stop, ttft, wait_healthy  # noqa: E402

COMMON = """model: {{path: {model}, load_format: dummy, seed: 1, max_model_len: 8192}}
backend: cuda
frontend: {{http: {{host: 127.0.0.1, port: {port}}}, grpc: {{host: 127.0.0.1, port: {grpc}}}}}
kv_cache: {{block_size: 16, gpu_memory_utilization: {utilization}, prefix_caching: false}}
transfer: {{backend: ucx, layerwise: true}}
discovery: {{type: embedded}}
logging: {{level: warn}}
"""
AGG = ("disaggregation: {mode: off}\npools:\n  prefill: {replicas: 0}\n  decode: {replicas: 0}\n"
       "  both: {replicas: 1, devices: [0], max_num_batched_tokens: 8192, max_num_seqs: 32}\n")
DIS = ("disaggregation: {mode: always}\npools:\n  prefill: {replicas: 1, devices: [0], max_num_batched_tokens: 8192, "
       "max_num_seqs: 8}\n  decode: {replicas: 1, devices: [1], max_num_batched_tokens: 8192, max_num_seqs: 32}\n")


def measure(tandem, model_dir, name, pools, port, utilization=0.85):
    path = f"/tmp/ttft_{name}.yaml"
    with open(path, "w") as f:
        f.write(COMMON.format(model=model_dir, port=port, grpc=port + 1, utilization=utilization) + pools)
    log = open(f"/tmp/ttft_{name}.log", "w")
    proc = subprocess.Popen([tandem, "serve", "-c", path], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=600)
        model = model_id(url)
        out = {}
        for n in (2048, 7936):
            ttft(url, [1000 + (i * 104729 + 17) % 100000 for i in range(n)], model)  # warm-up of this size
            runs = [ttft(url, [1000 + (s * 7919 + i * 104729) % 100000 for i in range(n)], model) for s in range(1, 6)]
            out[n] = statistics.median(runs)
        return out
    finally:
        stop(proc, timeout=60)


def main():
    tandem, model_dir = sys.argv[1], sys.argv[2]
    one_gpu = len(sys.argv) > 3 and sys.argv[3] == "one-gpu"
    # One GPU: both workers on GPU 0, each with its share of the memory.
    dis_pools = DIS.replace("devices: [1]", "devices: [0]") if one_gpu else DIS
    agg = measure(tandem, model_dir, "aggregated", AGG, 8300)
    dis = measure(tandem, model_dir, "disaggregated", dis_pools, 8400, 0.42 if one_gpu else 0.85)
    for n in agg:
        print(f"TTFT {n} tokens (Llama-3-8B shape, bf16, {'one GPU' if one_gpu else 'two GPUs'}): aggregated {agg[n] * 1e3:.1f} ms, disaggregated "
              f"{dis[n] * 1e3:.1f} ms ({100 * (dis[n] / agg[n] - 1):+.1f} %), median of 5")


if __name__ == "__main__":
    main()
