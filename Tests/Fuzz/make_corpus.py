#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (run once; the outputs are committed).

    python3 Tests/Fuzz/make_corpus.py

Corpus/FuzzSafeTensors/
  file-<name>     every safetensors fixture of CheckpointTests (valid, edge and malformed;
                  not the 66 KB mha.safetensors) as a whole file;
  header-<name>   the same files that have a parseable layout, in the harness's second form:
                  header JSON, a NUL byte, the data (the harness writes the length prefix).
Corpus/FuzzTokenizer/   (first byte: the mode, see FuzzTokenizer.swift)
  json-<name>     mode 0: the small tokenizer.json fixtures of BERTTests, and a cut-down
                  all-MiniLM-L6-v2 tokenizer.json (its first 200 vocabulary entries);
  vocab-<name>    mode 1: vocab.txt files (the same vocabularies; one with a duplicate line);
  text-<n>        modes 2 and 3: texts of BERTTests' tokenizer_cases.json (some as pairs,
                  some with a truncation length).
Crash inputs found by fuzzing are added by hand as crash-<what> (they stay in the corpus as
regression seeds; each also has a test in CheckpointTests or BERTTests).
Needs nothing beyond Python 3.
"""
import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ST = os.path.join(HERE, "Corpus", "FuzzSafeTensors")
TOK = os.path.join(HERE, "Corpus", "FuzzTokenizer")


def clear(d):
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if not name.startswith("crash-"):
            os.remove(os.path.join(d, name))


def put(d, name, content):
    with open(os.path.join(d, name), "wb") as f:
        f.write(content)


def safetensors_corpus():
    clear(ST)
    root = os.path.join(TESTS, "CheckpointTests", "Fixtures")
    for dirpath, _, files in sorted(os.walk(root)):
        for fn in sorted(files):
            if not fn.endswith(".safetensors") or fn == "mha.safetensors":
                continue
            rel = os.path.relpath(os.path.join(dirpath, fn), root)
            name = rel[:-len(".safetensors")].replace(os.sep, "-")
            data = open(os.path.join(dirpath, fn), "rb").read()
            put(ST, "file-" + name, data)
            if len(data) >= 8:
                n = struct.unpack("<Q", data[:8])[0]
                if 8 + n <= len(data) and data[8:9] == b"{" and b"\0" not in data[8:8 + n]:
                    put(ST, "header-" + name, data[8:8 + n] + b"\0" + data[8 + n:])


def tokenizer_corpus():
    clear(TOK)
    fx = os.path.join(TESTS, "BERTTests", "Fixtures")
    vocabs = {}
    for name in ["addedtokens_tokenizer", "cased_tokenizer", "stripcased_tokenizer"]:
        raw = open(os.path.join(fx, name, "tokenizer.json"), "rb").read()
        put(TOK, "json-" + name, b"\x00" + raw)
        vocabs[name] = json.loads(raw)["model"]["vocab"]
    # all-MiniLM-L6-v2's tokenizer.json with its vocabulary cut to the first 200 entries.
    minilm = json.load(open(os.path.join(fx, "minilm_tokenizer", "tokenizer.json"), encoding="utf-8"))
    vocab = minilm["model"]["vocab"]
    keep = dict(sorted(vocab.items(), key=lambda kv: kv[1])[:200])
    for t in ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]:
        keep[t] = vocab[t]
    minilm["model"]["vocab"] = keep
    put(TOK, "json-minilm_cut", b"\x00" + json.dumps(minilm, ensure_ascii=False, indent=1).encode())
    vocabs["minilm_cut"] = keep

    for name, v in vocabs.items():
        lines = [t for t, _ in sorted(v.items(), key=lambda kv: kv[1])]
        text = ("\n".join(lines) + "\n").encode()
        # Mode 1; bits 2-7 of the first byte pick the normalizer settings (0x55: clean, CJK,
        # accents unset, lowercase).
        put(TOK, "vocab-" + name, bytes([0x01 | (0b010011 << 2)]) + text)
    put(TOK, "vocab-duplicate", b"\x05[UNK]\n[CLS]\n[SEP]\na\nb\na\n")
    put(TOK, "vocab-no-unk", b"\x01[CLS]\n[SEP]\nx\n")

    cases = json.load(open(os.path.join(fx, "tokenizer_cases.json"), encoding="utf-8"))["tokenizers"]
    texts = []
    for name in ["addedtokens_tokenizer", "cased_tokenizer"]:
        for c in cases[name]["single"]:
            texts.append(c["text"])
    for c in cases["minilm_tokenizer"]["single"][::12] + cases["minilm_tokenizer"]["pairs"]:
        texts.append(c["text"] if "pair" not in c or c["pair"] is None else c["text"] + "\uffff" + c["pair"])
    seen = set()
    for i, t in enumerate(texts):
        b = t.encode("utf-8").replace("\uffff".encode(), b"\xff")
        if len(b) > 600 or b in seen:
            continue
        seen.add(b)
        mode = 2 + i % 2
        trunc = [0, 0, 5, 9][i % 4]
        put(TOK, "text-%03d" % i, bytes([mode, trunc]) + b)


if __name__ == "__main__":
    safetensors_corpus()
    tokenizer_corpus()
    for d in [ST, TOK]:
        files = os.listdir(d)
        print("%s: %d files, %d bytes" % (os.path.relpath(d, HERE), len(files),
                                          sum(os.path.getsize(os.path.join(d, f)) for f in files)))
