#!/usr/bin/env python3
"""Generates the tokenizer goldens with the Python `tokenizers` and `jinja2` packages.

  python3 -m venv /root/.cache/tandem/venv-tokenizer
  /root/.cache/tandem/venv-tokenizer/bin/pip install tokenizers jinja2 gguf
  /root/.cache/tandem/venv-tokenizer/bin/python tests/golden/tokenizer/generate_goldens.py

Inputs: corpus.json and conversations.json (from make_corpus.py), the tokenizer fixtures in
fixtures/tokenizers.tar.xz (read in place; fixtures/README.md) and the SmolLM2 GGUF
($HOME/.cache/tandem/models/). Output:
<name>.golden.json per tokenizer with, for every corpus line, the ids with and without special tokens
and the decoded texts, and for every conversation the chat template rendered as transformers'
apply_chat_template renders it (with and without add_generation_prompt).
"""
import json
import os
import sys
import tarfile
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, AddedToken

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "tokenizers.tar.xz")
GGUF = os.path.expanduser("~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf")


class AssistantTracker(Extension):
    """transformers' {% generation %} block: renders its body unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def compile_template(source):
    """As transformers.utils.chat_template_utils._compile_jinja_template."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def token_content(value):
    if isinstance(value, dict):
        return value.get("content")
    return value


def special_tokens_map(config):
    out = {}
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        if config.get(key) is not None:
            out[key] = token_content(config[key])
    if config.get("additional_special_tokens"):
        out["additional_special_tokens"] = [token_content(t) for t in config["additional_special_tokens"]]
    return out


def smollm2_from_gguf():
    """A `tokenizers` Tokenizer built from the GGUF vocabulary, as SmolLM2's tokenizer.json is built."""
    import gguf
    reader = gguf.GGUFReader(GGUF)

    def strings(key):
        f = reader.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def scalar(key):
        f = reader.fields[key]
        v = f.parts[f.data[0]]
        return bytes(v).decode("utf-8") if f.types[0] == gguf.GGUFValueType.STRING else v[0]

    tokens = strings("tokenizer.ggml.tokens")
    ttype = reader.fields["tokenizer.ggml.token_type"]
    types = [int(ttype.parts[i][0]) for i in ttype.data]
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    assert scalar("tokenizer.ggml.model") == "gpt2" and scalar("tokenizer.ggml.pre") == "smollm"
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    config = {
        "bos_token": tokens[int(scalar("tokenizer.ggml.bos_token_id"))],
        "eos_token": tokens[int(scalar("tokenizer.ggml.eos_token_id"))],
        "unk_token": tokens[int(scalar("tokenizer.ggml.unknown_token_id"))],
        "pad_token": tokens[int(scalar("tokenizer.ggml.padding_token_id"))],
        "chat_template": scalar("tokenizer.chat_template"),
    }
    return tok, config


def load(name):
    if name == "smollm2":
        return smollm2_from_gguf()
    if name == "spm_tiny":
        return spm_tiny()
    with tarfile.open(FIXTURES, "r:xz") as archive:
        def read(member):
            return archive.extractfile(f"{name}/{member}").read().decode("utf-8")
        config = json.loads(read("tokenizer_config.json"))
        return Tokenizer.from_str(read("tokenizer.json")), config


def spm_tiny():
    """A small sentencepiece-style tokenizer (Metaspace-like normalizer, byte fallback, TemplateProcessing
    BOS, added tokens with each flag) trained on the corpus; its tokenizer.json is committed."""
    from tokenizers import normalizers, processors, trainers
    with open(os.path.join(HERE, "corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=120)
    tok.train_from_iterator(corpus * 3, trainer)
    # Byte tokens <0x00>..<0xFF> join the vocabulary so characters outside it fall back to bytes.
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.add_special_tokens([AddedToken("<|im_start|>", special=True, normalized=False),
                            AddedToken("<|im_end|>", special=True, normalized=False, rstrip=True)])
    tok.add_tokens([AddedToken("<think>", lstrip=True, normalized=False),
                    AddedToken("ALLCAPS", single_word=True, normalized=False),
                    AddedToken(" fox", normalized=True)])
    path = os.path.join(HERE, "spm_tiny", "tokenizer.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tok.save(path)
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "chat_template": "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}
    with open(os.path.join(HERE, "spm_tiny", "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)
    return Tokenizer.from_file(path), config


def jinja_goldens():
    sys.dont_write_bytecode = True
    sys.path.insert(0, HERE)
    from jinja_cases import CASES
    out = []
    for name, source, variables in CASES:
        try:
            text, error = compile_template(source).render(**variables), None
        except Exception as e:
            text, error = None, f"{type(e).__name__}: {e}"
        out.append({"name": name, "template": source, "variables": variables, "text": text, "error": error})
    with open(os.path.join(HERE, "jinja_cases.golden.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"jinja_cases.golden.json: {len(out)} cases ({sum(c['error'] is not None for c in out)} errors)")


def main():
    jinja_goldens()
    with open(os.path.join(HERE, "corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    with open(os.path.join(HERE, "conversations.json"), encoding="utf-8") as f:
        conversations = json.load(f)
    names = sys.argv[1:] or ["llama3", "qwen3", "deepseek_v3", "smollm2", "spm_tiny"]
    for name in names:
        tok, config = load(name)
        encodings = []
        for text in corpus:
            plain = tok.encode(text, add_special_tokens=False).ids
            special = tok.encode(text, add_special_tokens=True).ids
            encodings.append({
                "ids": plain,
                "ids_with_special": special if special != plain else None,
                "decoded": tok.decode(plain, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(special, skip_special_tokens=True),
            })
        template = compile_template(config["chat_template"])
        renders = []
        for conv in conversations:
            for add_generation_prompt in (False, True):
                try:
                    text = template.render(messages=conv["messages"], tools=conv.get("tools"), documents=None,
                                           add_generation_prompt=add_generation_prompt,
                                           **special_tokens_map(config))
                    error = None
                except Exception as e:  # jinja2 errors; the C++ renderer must fail too
                    text, error = None, f"{type(e).__name__}: {e}"
                renders.append({"conversation": conv["name"], "add_generation_prompt": add_generation_prompt,
                                "text": text, "error": error})
        out = {"tokenizer": name, "encodings": encodings, "chat": renders}
        path = os.path.join(HERE, f"{name}.golden.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: {len(encodings)} encodings, {len(renders)} renders "
              f"({sum(r['error'] is not None for r in renders)} errors)")


if __name__ == "__main__":
    main()
