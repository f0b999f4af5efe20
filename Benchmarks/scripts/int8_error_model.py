#!/usr/bin/env python3
"""Where all-MiniLM-L6-v2's int8 error comes from: a numpy model of Attend's int8 products.

Weights: symmetric int8, one scale per 32 inputs of a row (binary16) or per row (float32),
each scale the clip of the block's largest magnitude (100% down to 50% in steps of 1%) with the
least squared error, as `attend quantize` chooses it. Activations: uint8 per 32 inputs of a
row with the group's minimum as offset and (max - min) / 255 as scale, as ck_q8_quantize_rows
computes them. Products then run in float64 on the dequantized values (Attend's integer sums
are exact; its float rounding is far below the quantization error). The model reproduces the
bench's `int8-group32 --keep-float none` worst cosine (0.998926) to six digits.

For each configuration it prints the worst and mean cosine of the mean-pooled embeddings to
float32 over the golden texts, and 1 - cosine x 1e4 per text.

    python3 Benchmarks/scripts/int8_error_model.py --minilm .cache/minilm
"""
import argparse
import json
import struct
from math import erf

import numpy as np

LAYERS, HEADS, HEAD_DIM = 6, 12, 32
KINDS = ["attention.self.query", "attention.self.key", "attention.self.value",
         "attention.output.dense", "intermediate.dense", "output.dense"]


def load_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + start:8 + n + end], dtype=dtypes[info["dtype"]]).reshape(info["shape"]).astype(np.float32)
    return out


def f16(x):
    return x.astype(np.float16).astype(np.float32)


def quantize_weight(w, group):
    """Dequantized int8 weight: per `group` inputs (32) with binary16 scales, or per row (0)."""
    n, k = w.shape
    span = group or k
    blocks = (k + span - 1) // span
    padded = np.zeros((n, blocks * span), np.float32)
    padded[:, :k] = w
    wb = padded.reshape(n, blocks, span).astype(np.float64)
    amax = np.abs(wb).max(-1)
    best, best_err = None, None
    for i in range(51):
        s = (amax * np.float32(1 - i / 100) / 127).astype(np.float32)
        if group:
            s = f16(s)
        s = s.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.nan_to_num(np.clip(np.round(wb / s[..., None]), -127, 127))
        err = ((wb - s[..., None] * q) ** 2).sum(-1)
        if best is None:
            best, best_err = s.copy(), err
        else:
            better = err < best_err
            best[better], best_err[better] = s[better], err[better]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.nan_to_num(np.clip(np.round(wb / best[..., None]), -127, 127))
    return (best[..., None] * q).reshape(n, blocks * span)[:, :k].astype(np.float32)


def quantize_activations(x, group=32, bits=8):
    """Dequantized activations: uint8 per `group` inputs of a row, offset = the group's minimum."""
    levels = 2 ** bits - 1
    out = np.empty_like(x)
    for g0 in range(0, x.shape[1], group):
        xs = x[:, g0:g0 + group].astype(np.float64)
        lo, hi = xs.min(1, keepdims=True), xs.max(1, keepdims=True)
        s = ((hi - lo) / levels).astype(np.float32).astype(np.float64)
        s[s == 0] = 1
        out[:, g0:g0 + group] = lo + s * np.clip(np.round((xs - lo) / s), 0, levels)
    return out.astype(np.float32)


class Model:
    def __init__(self, weights):
        self.w = weights
        self.qw, self.act = {}, {}  # per projection: replacement weight, activation quantizer

    def linear(self, x, name):
        if name in self.act:
            x = self.act[name](x)
        return x @ self.qw.get(name, self.w[name + ".weight"]).T + self.w[name + ".bias"]

    @staticmethod
    def norm(x, g, b, eps=1e-12):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * g + b

    def embed(self, ids):
        w = self.w
        h = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:len(ids)] \
            + w["embeddings.token_type_embeddings.weight"][0]
        h = self.norm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        t = len(ids)
        gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}."
            q, k, v = (self.linear(h, p + kind).reshape(t, HEADS, HEAD_DIM).transpose(1, 0, 2) for kind in KINDS[:3])
            s = q @ k.transpose(0, 2, 1) / np.sqrt(HEAD_DIM)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            context = (s @ v).transpose(1, 0, 2).reshape(t, HEADS * HEAD_DIM)
            h = self.norm(self.linear(context, p + KINDS[3]) + h, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            inner = gelu(self.linear(h, p + KINDS[4]))
            h = self.norm(self.linear(inner, p + KINDS[5]) + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return h.mean(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minilm", default=".cache/minilm", help="the all-MiniLM-L6-v2 folder (scripts/fetch-minilm.sh)")
    ap.add_argument("--golden", default="Tests/BERTTests/Fixtures/minilm_golden.json")
    args = ap.parse_args()
    weights = load_safetensors(args.minilm + "/model.safetensors")
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    cases = json.load(open(args.golden))["cases"]
    ids = [json.loads(c["input_ids"]) if isinstance(c["input_ids"], str) else c["input_ids"] for c in cases]
    model = Model(weights)
    reference = [model.embed(i) for i in ids]
    names = [f"encoder.layer.{l}.{kind}" for l in range(LAYERS) for kind in KINDS]
    g32 = {n: quantize_weight(weights[n + ".weight"], 32) for n in names}
    channel = {n: quantize_weight(weights[n + ".weight"], 0) for n in names}

    def run(label, quantized, weight_q=True, act=quantize_activations, keep=lambda n: False):
        model.qw, model.act = {}, {}
        for n in names:
            if keep(n):
                model.qw[n] = f16(weights[n + ".weight"])  # kept 16-bit: float16 weights, float activations
                continue
            if weight_q:
                model.qw[n] = quantized[n]
            if act:
                model.act[n] = act
        errors = []
        for i, r in zip(ids, reference):
            e = model.embed(i)
            errors.append(1 - float(e @ r / np.linalg.norm(e) / np.linalg.norm(r)))
        print(f"{label:52s} worst {1 - max(errors):.6f} mean {1 - np.mean(errors):.6f}   1-cos x1e4: "
              + " ".join(f"{x * 1e4:.1f}" for x in errors), flush=True)

    def relative_error(n, q):
        w = weights[n + ".weight"]
        return np.linalg.norm(w - q[n]) / np.linalg.norm(w)

    run("group32, every matrix int8 (--keep-float none)", g32)
    run("group32, weights only", g32, act=None)
    run("group32, activations only", g32, weight_q=False)
    for kind in KINDS:
        run(f"group32, {kind} kept float16", g32, keep=lambda n, k=kind: n.endswith(k) and not (k == "output.dense" and "attention" in n))
    run("group32, value and intermediate kept float16", g32, keep=lambda n: n.endswith("value") or n.endswith("intermediate.dense"))
    run("group32, activations per 16 inputs", g32, act=lambda x: quantize_activations(x, 16))
    run("group32, activations 9-bit", g32, act=lambda x: quantize_activations(x, 32, 9))
    run("group32, value kept (--keep-float auto)", g32, keep=lambda n: n.endswith("value") or relative_error(n, g32) > 0.01)
    run("channel, above 0.01 kept (the old auto)", channel, keep=lambda n: relative_error(n, channel) > 0.01)
    run("channel, value and above 0.01 kept (--keep-float auto)", channel, keep=lambda n: n.endswith("value") or relative_error(n, channel) > 0.01)
    run("channel, every matrix int8 (--keep-float none)", channel)


if __name__ == "__main__":
    main()
