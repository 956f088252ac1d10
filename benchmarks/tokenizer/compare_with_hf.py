#!/usr/bin/env python3
"""Tokenizer throughput: tandem's tokenizer_bench next to the Python `tokenizers` package, single thread,
on the same text and tokenizers.

  /root/.cache/tandem/venv-tokenizer/bin/python benchmarks/tokenizer/compare_with_hf.py \
      --bench build/bin/tokenizer_bench [--fixtures DIR] [--text FILE] [--seconds 2]

The tokenizers are the test fixtures the build unpacks (tests/golden/tokenizer/fixtures/README.md);
--fixtures defaults to where a build in build/ puts them.

Without --text, a ~1 MB mixed text is made from the golden corpus, the repo's Markdown and C++ sources.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(REPO, "build", "tests", "golden", "tokenizer", "fixtures")
GOLDEN = os.path.join(REPO, "tests", "golden", "tokenizer")


def make_text(target_bytes=1_000_000):
    parts = []
    with open(os.path.join(GOLDEN, "corpus.json"), encoding="utf-8") as f:
        parts += [line for line in json.load(f) if len(line) < 1000]
    for pattern in ("**/*.md", "src/**/*.cc", "include/**/*.h"):
        for path in sorted(glob.glob(os.path.join(REPO, pattern), recursive=True)):
            if "/build" in path:
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                parts.append(f.read())
    text = "\n".join(parts)
    while len(text.encode()) < target_bytes:
        text += "\n" + text
    return text.encode()[:target_bytes].decode("utf-8", errors="ignore")


def timeit(seconds, fn):
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / n


def hf_bench(tok, text, seconds):
    # Lines split at "\n" only, keeping it, as tokenizer_bench does.
    lines = [line + "\n" for line in text.split("\n")]
    if lines[-1] == "\n":
        lines.pop()
    else:
        lines[-1] = lines[-1][:-1]
    ids = tok.encode(text, add_special_tokens=False).ids
    mb = len(text.encode()) / 1e6
    whole = timeit(seconds, lambda: tok.encode(text, add_special_tokens=False))
    line_tokens = sum(len(tok.encode(line, add_special_tokens=False).ids) for line in lines)
    per_line = timeit(seconds, lambda: [tok.encode(line, add_special_tokens=False) for line in lines])
    decode = timeit(seconds, lambda: tok.decode(ids, skip_special_tokens=False))
    return {"impl": "tokenizers", "bytes": len(text.encode()), "tokens": len(ids), "lines": len(lines),
            "encode_whole_mb_s": round(mb / whole, 2), "encode_whole_tok_s": round(len(ids) / whole),
            "encode_lines_mb_s": round(mb / per_line, 2), "encode_lines_tok_s": round(line_tokens / per_line),
            "decode_mb_s": round(mb / decode, 2), "decode_tok_s": round(len(ids) / decode)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="path of the tokenizer_bench binary")
    ap.add_argument("--fixtures", default=FIXTURES, help="folder with one folder per tokenizer")
    ap.add_argument("--text")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--models", default="llama3,qwen3,deepseek_v3")
    args = ap.parse_args()
    if args.text:
        text_path = args.text
    else:
        fd, text_path = tempfile.mkstemp(suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(make_text())
    with open(text_path, encoding="utf-8", newline="") as f:  # bytes as the C++ side reads them
        text = f.read()
    print(f"text: {len(text.encode())} bytes, {text.count(chr(10)) + 1} lines", file=sys.stderr)
    rows = []
    for name in args.models.split(","):
        d = os.path.join(args.fixtures, name)
        ours = json.loads(subprocess.check_output(
            [args.bench, "--model", d, "--text", text_path, "--seconds", str(args.seconds)]))
        theirs = hf_bench(Tokenizer.from_file(os.path.join(d, "tokenizer.json")), text, args.seconds)
        if ours["tokens"] != theirs["tokens"]:
            print(f"WARNING {name}: token counts differ: tandem {ours['tokens']} vs tokenizers {theirs['tokens']}")
        rows.append((name, ours, theirs))
    print(f"{'tokenizer':<12} {'metric':<20} {'tandem':>12} {'tokenizers':>12} {'ratio':>7}")
    for name, ours, theirs in rows:
        for key in ("encode_whole_mb_s", "encode_lines_mb_s", "decode_mb_s", "encode_whole_tok_s"):
            ratio = ours[key] / theirs[key] if theirs[key] else float("nan")
            print(f"{name:<12} {key:<20} {ours[key]:>12.2f} {theirs[key]:>12.2f} {ratio:>6.2f}x")


if __name__ == "__main__":
    main()
