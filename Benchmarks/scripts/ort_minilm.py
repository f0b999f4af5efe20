"""The bert benchmark's batch job on ONNX Runtime, for a side-by-side comparison with
`bench --only bert`: sentence embeddings of all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads,
intermediate 1536) end to end from strings: 256 sentences of 20-40 words, the same ones bench
makes (its word list, read from Benchmarks/bench/BertBench.swift, and its SplitMix64 draws,
seed 2024), at batch 32, on each thread count of --threads.

With --model DIR (a sentence-transformers folder: config.json, model.safetensors or
pytorch_model.bin, tokenizer.json) the real model and its fast tokenizer; without, a BERT of
the same shape with random weights (transformers' initialization) and a WordPiece vocabulary
holding bench's words, as bench's random stand-in has, so every sentence has the same number
of tokens on both sides (the mean is printed; compare.py checks it against bench's).

One call: the sentences tokenized (Hugging Face's Rust tokenizer), sorted by token length,
longest first (as Attend and sentence-transformers do), run 32 at a time padded to the longest
of the batch through the model exported from PyTorch to ONNX and fused by ONNX Runtime's BERT
optimizer (Attention, SkipLayerNormalization, BiasGelu; checked against PyTorch), then mean
pooling over the attention mask and L2 normalization in numpy. ONNX Runtime's CPU execution
provider, all graph optimizations, intra_op_num_threads = t, inter_op_num_threads = 1.
Timing mirrors bench's batch rows: one warm-up call, then at least 4 calls and at least 3 s.

    pip install onnx onnxruntime torch transformers
    python3 Benchmarks/scripts/ort_minilm.py [--model DIR] [--threads 1,2]

Stdout: one JSON line per thread count,
  {"peer": "onnxruntime", "model": "all-MiniLM-L6-v2" | "random", "threads": t, "sentences": 256,
   "batch": 32, "ms_median": ..., "ms_min": ..., "ms_max": ..., "sentences_per_s": ...,
   "mean_tokens": ..., "reps": ..., "version": ...}
"""
import argparse
import collections
import hashlib
import json
import os
import re
import statistics
import sys
import tempfile
import time

import numpy as np

import ort_common

HERE = os.path.dirname(os.path.abspath(__file__))
BERT_BENCH = os.path.join(HERE, "..", "bench", "BertBench.swift")
MASK64 = (1 << 64) - 1


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class SplitMix64:
    """Attend's SplitMix64 (Sources/Attend/Models/LogitsProcessors.swift)."""

    def __init__(self, state):
        self.state = state & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def bench_words(path=BERT_BENCH):
    """The word list of bench's benchmark sentences (`benchWords` in BertBench.swift)."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r'let benchWords = """\n(.*?)"""', text, re.S)
    if not m:
        sys.exit(f"ort_minilm.py: no benchWords list in {path}")
    body = m.group(1).replace("\\\n", " ")
    return [w for w in re.split(r"[ \n]+", body) if w]


def bench_sentences(count, seed, words):
    """`benchSentences(count:seed:)` of BertBench.swift, draw for draw."""
    rng = SplitMix64(seed)
    out = []
    for _ in range(count):
        n = 20 + rng.next() % 21
        ws = [words[rng.next() % len(words)] for _ in range(n)]
        ws[0] = ws[0][:1].upper() + ws[0][1:]
        for i in range(1, n - 1):
            if rng.next() % 9 == 0:
                ws[i] += ","
        out.append(" ".join(ws) + ".")
    return out


def random_vocabulary(words):
    """The vocabulary of bench's random stand-in (`randomMiniLM` in BertBench.swift)."""
    return ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + words


def build(model_dir, words, work):
    """(torch model, fast tokenizer, name)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

    if model_dir:
        model = BertModel.from_pretrained(model_dir, attn_implementation="eager")
        return model.eval(), AutoTokenizer.from_pretrained(model_dir), "all-MiniLM-L6-v2"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512, hidden_act="gelu")
    vocab = os.path.join(work, "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(random_vocabulary(words)) + "\n")
    config._attn_implementation = "eager"  # the graph ONNX Runtime's BERT optimizer fuses
    return BertModel(config).eval(), BertTokenizerFast(vocab_file=vocab, do_lower_case=True), "random"


def export(model, path):
    """The model to ONNX (TorchScript exporter, dynamic batch and length), then fused by ONNX
    Runtime's BERT optimizer. Returns the fused file's op counts."""
    import torch
    from onnxruntime.transformers import optimizer

    class Wrapped(torch.nn.Module):  # keyword arguments: forward's positional order varies by version
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    raw = path + ".raw.onnx"
    ids = torch.ones(2, 16, dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a padded row, so the mask is traced as an input (all ones could be folded away)
    axes = {0: "batch", 1: "seq"}
    with torch.no_grad():
        torch.onnx.export(Wrapped(model), (ids, mask, torch.zeros_like(ids)), raw,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["hidden"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "hidden": axes},
                          opset_version=17, dynamo=False)
    fused = optimizer.optimize_model(raw, model_type="bert", num_heads=12, hidden_size=384)
    fused.save_model_to_file(path)
    os.remove(raw)
    return collections.Counter(node.op_type for node in fused.model.graph.node)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="all-MiniLM-L6-v2 folder (default: a random model of its shape)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--sentences", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-reps", type=int, default=4)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--print-sentences", action="store_true", help="print the sentences and exit")
    args = ap.parse_args()
    thread_counts = ort_common.thread_counts(ap, args.threads)
    if args.model and not os.path.isfile(os.path.join(args.model, "config.json")):
        ap.error(f"--model {args.model}: no config.json there")

    words = bench_words()
    sentences = bench_sentences(args.sentences, 2024, words)
    if args.print_sentences:
        print("\n".join(sentences))
        return

    import onnxruntime as ort
    import torch
    import transformers

    work = tempfile.mkdtemp(prefix="attend_minilm_")
    model, tokenizer, name = build(args.model, words, work)
    # PyTorch's embeddings of a few sentences, before the export (tracing leaves the model altered).
    check = sentences[:4]
    with torch.inference_mode():
        b = tokenizer(check, padding=True, return_tensors="pt")
        h = model(**b).last_hidden_state
        m = b["attention_mask"][:, :, None].float()
        ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1).numpy()
    key = hashlib.sha256((os.path.abspath(args.model) if args.model else "random-seed0").encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"attend_minilm_{key}_t{torch.__version__}_o{ort.__version__}.onnx")
    if not os.path.exists(path):
        ops = export(model, path)
        log(f"exported and fused {path}: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items())))
    log(f"onnxruntime {ort.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, model {name}")

    def embed(sess, texts):
        enc = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
        order = sorted(range(len(enc)), key=lambda i: (-len(enc[i]), i))
        out = np.empty((len(texts), 384), np.float32)
        for start in range(0, len(order), args.batch):
            idx = order[start:start + args.batch]
            width = len(enc[idx[0]])
            ids = np.zeros((len(idx), width), np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            for r, i in enumerate(idx):
                ids[r, :len(enc[i])] = enc[i]
                mask[r, :len(enc[i])] = 1
            hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out, [len(e) for e in enc]

    # The fused graph against PyTorch on a few sentences.
    got, _ = embed(ort_common.session(ort, path, 1), check)
    err = float(np.max(np.abs(got - ref)))
    log(f"check: fused ONNX Runtime graph vs PyTorch, max |diff| of the embeddings {err:.2e}")
    if not err < 1e-3:
        sys.exit(f"ort_minilm.py: the fused graph does not match PyTorch (max |diff| {err:.3g})")

    for t in thread_counts:
        sess = ort_common.session(ort, path, t)
        for _ in range(args.warmup):
            embed(sess, sentences)
        times, total = [], 0.0
        while len(times) < args.min_reps or total < args.min_seconds:
            t0 = time.perf_counter()
            _, lengths = embed(sess, sentences)
            dt = time.perf_counter() - t0
            times.append(dt)
            total += dt
        med = statistics.median(times)
        print(json.dumps({"peer": "onnxruntime", "model": name, "threads": t, "sentences": len(sentences), "batch": args.batch,
                          "ms_median": med * 1e3, "ms_min": min(times) * 1e3, "ms_max": max(times) * 1e3,
                          "sentences_per_s": len(sentences) / med, "mean_tokens": sum(lengths) / len(lengths),
                          "min_tokens": min(lengths), "max_tokens": max(lengths), "reps": len(times),
                          "version": ort.__version__}), flush=True)
        del sess


if __name__ == "__main__":
    main()
