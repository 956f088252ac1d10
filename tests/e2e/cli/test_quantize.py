"""`tandem quantize` (issue 13): the checkpoint it writes is NVIDIA Model Optimizer's NVFP4 layout, its
bytes are what an independent implementation of Model Optimizer's rule (below, pure Python, fp32
emulated with struct) gives for the source weights, and tandem serves it exactly as it serves the
source model quantized at load (model.quantization: nvfp4)."""
import json
import os
import pathlib
import struct
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
TANDEM = os.environ.get("TANDEM_BIN", str(ROOT / "build/bin/tandem"))
LLAMA = ROOT / "tests/golden/models/llama"


def read_safetensors(path):
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    return {name: (e["dtype"], e["shape"], body[e["data_offsets"][0]:e["data_offsets"][1]])
            for name, e in header.items()}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bf16_values(raw):
    return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]


E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def e4m3_value(b):
    s = -1.0 if b & 0x80 else 1.0
    e, m = (b >> 3) & 0xF, b & 7
    return s * (m / 8.0 * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7))


def e4m3_encode(v):
    """Nearest float8_e4m3fn to a positive fp32 value, ties to the even code (saturating at 448)."""
    best = min(range(0x7F), key=lambda b: (abs(e4m3_value(b) - v), b & 1))
    return best


def e2m1_encode(v):
    sign = 8 if v < 0 else 0
    a = abs(v)
    best = min(range(8), key=lambda c: (abs(E2M1[c] - a), c & 1))
    return sign | best


def modelopt_nvfp4(w, rows, cols):
    """Model Optimizer's NVFP4QTensor.quantize for a [rows, cols] fp32 matrix: packed, scales, scale2."""
    amax = max(abs(x) for x in w)
    scale2 = f32(amax / f32(6.0 * 448.0))
    packed, scales = bytearray(), bytearray()
    for r in range(rows):
        for g in range(cols // 16):
            block = w[r * cols + g * 16:r * cols + g * 16 + 16]
            bscale = f32(max(abs(x) for x in block) / 6.0)
            code = e4m3_encode(f32(bscale / scale2)) if bscale != 0 else e4m3_encode(1.0)
            scales.append(code)
            denom = f32(e4m3_value(code) * scale2)
            q = [e2m1_encode(f32(x / denom)) for x in block]
            packed.extend(q[i] | (q[i + 1] << 4) for i in range(0, 16, 2))
    return bytes(packed), bytes(scales), scale2


def run(*args, check=True):
    p = subprocess.run([TANDEM, *map(str, args)], capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def generate(*args):
    out = run("generate", "--prompt-ids", "1,5,9,200,17,33", "--max-tokens", "16", *args).stdout
    return json.loads(out.split("ids:", 1)[1])


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "llama-nvfp4"
    p = run("quantize", "--model", LLAMA, "--format", "nvfp4", "--out", out)
    assert "14 linear weights in NVFP4 (excluded: lm_head)" in p.stdout
    return out


def test_layout_and_bytes_match_an_independent_model_optimizer_rule(quantized):
    src = read_safetensors(LLAMA / "model.safetensors")
    got = read_safetensors(quantized / "model.safetensors")
    hf_quant = json.loads((quantized / "hf_quant_config.json").read_text())["quantization"]
    assert hf_quant == {"quant_algo": "NVFP4", "kv_cache_quant_algo": None, "group_size": 16,
                        "exclude_modules": ["lm_head"]}
    config = json.loads((quantized / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "modelopt"
    assert config["num_hidden_layers"] == 2
    for name in ["model.layers.0.self_attn.k_proj", "model.layers.1.mlp.down_proj"]:
        dtype, shape, raw = src[name + ".weight"]
        assert dtype == "BF16"
        rows, cols = shape
        packed, scales, scale2 = modelopt_nvfp4(bf16_values(raw), rows, cols)
        assert got[name + ".weight"][:2] == ("U8", [rows, cols // 2])
        assert got[name + ".weight_scale"][:2] == ("F8_E4M3", [rows, cols // 16])
        assert got[name + ".weight_scale_2"][:2] == ("F32", [])
        assert got[name + ".weight"][2] == packed, name
        assert got[name + ".weight_scale"][2] == scales, name
        assert struct.unpack("<f", got[name + ".weight_scale_2"][2])[0] == scale2, name
    # Everything not quantized is the source's bf16, unchanged.
    for name in ["lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"]:
        assert got[name] == src[name], name
    assert (quantized / "reference.json").read_bytes() == (LLAMA / "reference.json").read_bytes()


def test_checkpoint_generates_what_quantizing_at_load_generates(quantized):
    from_checkpoint = generate("--model", quantized)
    at_load = generate("--model", LLAMA, "--quantization", "nvfp4")
    unquantized = generate("--model", LLAMA)
    assert from_checkpoint == at_load
    assert from_checkpoint != unquantized  # the 4-bit weights did change this random tiny model


def test_bad_requests_get_clear_errors(quantized, tmp_path):
    p = run("quantize", "--model", LLAMA, "--out", quantized, check=False)
    assert p.returncode == 1 and "exists and is not empty" in p.stderr
    p = run("quantize", "--model", LLAMA, "--format", "int4", "--out", tmp_path / "x", check=False)
    assert p.returncode == 2 and "--format: expected nvfp4, found 'int4'" in p.stderr
    p = run("quantize", "--model", tmp_path / "model.gguf", "--out", tmp_path / "y", check=False)
    assert p.returncode == 2 and "model.quantization: nvfp4" in p.stderr
    p = run("generate", "--model", LLAMA, "--quantization", "int8", "--prompt-ids", "1", check=False)
    assert p.returncode == 2 and "--quantization: expected none or nvfp4" in p.stderr
