#!/usr/bin/env python3
"""Attend's tokenizers side by side with Hugging Face's, in interleaved rounds, one thread.

    swift build -c release --product bench
    python3 scripts/bench_tokenizers.py [--rounds 5]

Each round runs `bench --only tokenizers --json` (Attend, release build) and then the
reference on the same 1000 sentences (Benchmarks/bench/tokenizer_sentences.txt) and the same
four folders (Tests/TokenizerTests/Fixtures): `tokenizers` (Rust) `Tokenizer.encode` /
`decode` one sentence at a time for t5_unigram, llama_bpe and gpt2_bytelevel (their
tokenizer.json), and transformers' MarianTokenizer (SentencePiece, C++; it has no fast form)
for marian_spm. RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false keep the reference on
one thread. Prints, per family and direction, the medians and ranges of sentences/s over the
rounds and the ratio of medians. Needs: pip install tokenizers transformers sentencepiece.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402
from transformers import MarianTokenizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "TokenizerTests", "Fixtures")
FAMILIES = ["t5_unigram", "marian_spm", "llama_bpe", "gpt2_bytelevel"]


def timed(fn, min_reps=5, min_seconds=1.0):
    fn()  # warm-up
    times = []
    while len(times) < min_reps or sum(times) < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reference_round(sentences, tokenizers):
    rows = {}
    for family in FAMILIES:
        tok = tokenizers[family]
        if family == "marian_spm":
            encode = lambda: [tok(s)["input_ids"] for s in sentences]  # noqa: E731
            ids = encode()
            decode = lambda: [tok.decode(i, skip_special_tokens=True) for i in ids]  # noqa: E731
        else:
            encode = lambda: [tok.encode(s).ids for s in sentences]  # noqa: E731
            ids = encode()
            decode = lambda: [tok.decode(i, skip_special_tokens=True) for i in ids]  # noqa: E731
        n = len(sentences)
        rows[family] = (n / timed(encode), n / timed(decode))
    return rows


def ours_round(bench):
    out = subprocess.run([bench, "--only", "tokenizers", "--json"], capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        d = json.loads(line)
        if d.get("family") in FAMILIES:
            rows[d["family"]] = (d["encode_sentences_per_s"], d["decode_sentences_per_s"])
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bench", default=os.path.join(ROOT, ".build", "release", "bench"))
    args = ap.parse_args()
    sentences = open(os.path.join(ROOT, "Benchmarks", "bench", "tokenizer_sentences.txt"), encoding="utf-8").read().splitlines()
    tokenizers = {f: Tokenizer.from_file(os.path.join(FIX, f, "tokenizer.json")) for f in FAMILIES if f != "marian_spm"}
    tokenizers["marian_spm"] = MarianTokenizer.from_pretrained(os.path.join(FIX, "marian_spm"))
    ours, theirs = [], []
    for r in range(args.rounds):
        ours.append(ours_round(args.bench))
        theirs.append(reference_round(sentences, tokenizers))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    print(f"\n{len(sentences)} sentences, one thread, {args.rounds} interleaved rounds (median [min-max] sentences/s)")
    print(f"{'family':16} {'direction':9} {'Attend':>28} {'reference':>28} {'ratio':>7}")
    for family in FAMILIES:
        ref = "tokenizers" if family != "marian_spm" else "MarianTokenizer"
        for k, direction in enumerate(["encode", "decode"]):
            a = [o[family][k] for o in ours]
            b = [t[family][k] for t in theirs]
            fa = f"{statistics.median(a):9.0f} [{min(a):.0f}-{max(a):.0f}]"
            fb = f"{statistics.median(b):9.0f} [{min(b):.0f}-{max(b):.0f}]"
            print(f"{family:16} {direction:9} {fa:>28} {fb:>28} {statistics.median(a) / statistics.median(b):6.2f}x  ({ref})")


if __name__ == "__main__":
    main()
