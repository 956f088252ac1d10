#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python's low-level API) on the same GGUF, thread count, prompt length
and batch sizes as tandem's cpu_model_bench, printed side by side with tandem's figures.

Usage: python benchmarks/llama_cpp_bench.py [--model PATH] [--threads 2] [--prompt-tokens 128]
           [--decode-tokens 32] [--runs 5] [--batches 1,8] [--tandem-bench build/bin/cpu_model_bench]
Needs llama-cpp-python (pip install llama-cpp-python, in a venv outside the repo). Without
--tandem-bench only llama.cpp's figures are printed. llama.cpp is a yardstick here, never a
dependency of tandem.
"""
import argparse
import ctypes
import os
import re
import statistics
import subprocess
import time

import numpy as np


def llama_cpp_figures(args, batches):
    import llama_cpp as L

    L.llama_backend_init()
    global _quiet_log  # keep the callback alive while llama.cpp may call it
    _quiet_log = L.llama_log_callback(lambda level, text, data: None)
    L.llama_log_set(_quiet_log, ctypes.c_void_p())
    mparams = L.llama_model_default_params()
    model = L.llama_model_load_from_file(args.model.encode(), mparams)
    if not model:
        raise SystemExit(f"llama.cpp could not load {args.model}")
    vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    max_batch = max(batches)
    max_len = args.prompt_tokens + args.decode_tokens + 1
    cparams = L.llama_context_default_params()
    cparams.n_ctx = max_batch * max_len + 64
    cparams.n_batch = max(max_batch * args.prompt_tokens, 512)
    cparams.n_ubatch = cparams.n_batch
    cparams.n_seq_max = max_batch
    cparams.n_threads = args.threads
    cparams.n_threads_batch = args.threads
    ctx = L.llama_init_from_model(model, cparams)
    if not ctx:
        raise SystemExit("llama.cpp could not create a context")
    mem = L.llama_get_memory(ctx)
    prompt = [(i * 7919 + 13) % vocab for i in range(args.prompt_tokens)]
    results = {}
    for batch in batches:
        prefill, decode = [], []
        for _ in range(args.runs):
            L.llama_memory_clear(mem, True)
            b = L.llama_batch_init(batch * args.prompt_tokens, 0, 1)
            k = 0
            for s in range(batch):
                for i, tok in enumerate(prompt):
                    b.token[k] = (tok + s) % vocab if i == 0 else tok
                    b.pos[k] = i
                    b.n_seq_id[k] = 1
                    b.seq_id[k][0] = s
                    b.logits[k] = 1 if i == args.prompt_tokens - 1 else 0
                    k += 1
            b.n_tokens = k
            t0 = time.perf_counter()
            if L.llama_decode(ctx, b) != 0:
                raise SystemExit("llama_decode failed (prefill)")
            t1 = time.perf_counter()
            L.llama_batch_free(b)
            nxt = []
            for s in range(batch):
                row = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, (s + 1) * args.prompt_tokens - 1), (vocab,))
                nxt.append(int(row.argmax()))
            d = L.llama_batch_init(batch, 0, 1)
            t2 = time.perf_counter()
            for step in range(args.decode_tokens):
                for s in range(batch):
                    d.token[s] = nxt[s]
                    d.pos[s] = args.prompt_tokens + step
                    d.n_seq_id[s] = 1
                    d.seq_id[s][0] = s
                    d.logits[s] = 1
                d.n_tokens = batch
                if L.llama_decode(ctx, d) != 0:
                    raise SystemExit("llama_decode failed (decode)")
                for s in range(batch):
                    row = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, s), (vocab,))
                    nxt[s] = int(row.argmax())
            t3 = time.perf_counter()
            L.llama_batch_free(d)
            prefill.append(batch * args.prompt_tokens / (t1 - t0))
            decode.append(batch * args.decode_tokens / (t3 - t2))
        results[batch] = (statistics.median(prefill), statistics.median(decode))
    L.llama_free(ctx)
    L.llama_model_free(model)
    return results


def tandem_figures(args, batches):
    cmd = [args.tandem_bench, "--model", args.model, "--threads", str(args.threads), "--prompt-tokens",
           str(args.prompt_tokens), "--decode-tokens", str(args.decode_tokens), "--runs", str(args.runs),
           "--batches", ",".join(map(str, batches))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    results = {}
    for m in re.finditer(r"batch (\d+): prefill ([\d.]+) tok/s, decode ([\d.]+) tok/s", out):
        results[int(m.group(1))] = (float(m.group(2)), float(m.group(3)))
    return results, out


def main():
    default_model = os.environ.get("TANDEM_SMOLLM2_GGUF",
                                   os.path.expanduser("~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=default_model)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--tandem-bench", default="")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    print(f"model {args.model}, {args.threads} threads, prompt {args.prompt_tokens}, decode {args.decode_tokens}, "
          f"median of {args.runs} runs")
    tandem = {}
    if args.tandem_bench:
        tandem, raw = tandem_figures(args, batches)
        print(raw.strip())
    llama = llama_cpp_figures(args, batches)
    print(f"{'':10} {'tandem prefill':>15} {'llama.cpp prefill':>18} {'tandem decode':>14} {'llama.cpp decode':>17} "
          f"{'decode ratio':>13}")
    for b in batches:
        lp, ld = llama[b]
        tp, td = tandem.get(b, (float("nan"), float("nan")))
        print(f"batch {b:<4} {tp:15.1f} {lp:18.1f} {td:14.1f} {ld:17.1f} {td / ld:13.2f}")


if __name__ == "__main__":
    main()
