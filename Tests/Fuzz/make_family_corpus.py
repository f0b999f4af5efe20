#!/usr/bin/env python3
"""Writes the seed corpus of the FuzzTokenizerFamilies target (run once; outputs are committed).

    python3 Tests/Fuzz/make_family_corpus.py

Needs sentencepiece (0.2.3), protobuf and tokenizers (0.23.3). Every seed stays under the
8 KB that scripts/ci-fuzz-files.sh lets libFuzzer read (-max_len=8192).

Corpus/FuzzTokenizerFamilies/   (first byte: the mode, see FuzzTokenizerFamilies.swift)
  json-<name>   mode 0: tiny tokenizer.json files of each family (Unigram with a small
                Precompiled charsmap, byte-level BPE, Llama-style BPE with byte fallback,
                BPE with prefix/suffix/unk, WordLevel), and malformed ones (cut short, wrong
                types, unknown components, merges of missing tokens, bad base64);
  spm-<name>    mode 1: tiny SentencePiece model files (Unigram with custom normalization
                rules, BPE with byte fallback), and malformed ones (cut short, a length that
                runs past the end, a bad piece type, a corrupt charsmap);
  text-<n>      mode 2: texts for the golden tokenizers (bits 2-3 of the first byte choose one).
"""
import io
import json
import os
import random
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "Corpus", "FuzzTokenizerFamilies")
CORPUS = ["the quick brown fox jumps over the lazy dog", "attention is all you need", "café déjà vu",
          "東京は日本の首都です", "numbers 3.14 and 2026", "Hello, world! Hello again."] * 20


def write(name, mode, payload):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([mode]) + payload)
    assert len(payload) < 8191, (name, len(payload))


def spm_model(model_type, vocab, **kw):
    with tempfile.TemporaryDirectory() as d:
        inp = os.path.join(d, "c.txt")
        open(inp, "w").write("\n".join(CORPUS))
        spm.SentencePieceTrainer.train(input=inp, model_prefix=os.path.join(d, "m"), vocab_size=vocab,
                                       model_type=model_type, character_coverage=1.0, hard_vocab_limit=False, **kw)
        return open(os.path.join(d, "m.model"), "rb").read()


def text_mode(folder):
    """A first byte in mode 2 (byte % 3 == 2) that picks golden folder `folder` (bits 2-3)."""
    return next(b for b in range(256) if b % 3 == 2 and (b >> 2) % 4 == folder)


def main():
    os.makedirs(OUT, exist_ok=True)
    rules = os.path.join(tempfile.mkdtemp(), "rules.tsv")
    # A tiny normalization table: fullwidth A-C to ASCII, "ﬁ" to "fi", e + U+0301 to é.
    open(rules, "w").write("FF21\t41\nFF22\t42\nFF23\t43\nFB01\t66 69\n65 301\tE9\n")
    uni = spm_model("unigram", 60, normalization_rule_tsv=rules)
    bpe = spm_model("bpe", 320, byte_fallback=True, normalization_rule_name="identity")
    write("spm-unigram", 1, uni)
    write("spm-bpe-bytefallback", 1, bpe)
    write("spm-cut", 1, uni[: len(uni) // 3])
    m = pb.ModelProto()
    # An extra piece "x" of type 9 (no such type), written by hand (protobuf refuses it).
    write("spm-bad-type", 1, uni + bytes([0x0A, 0x09, 0x0A, 0x01, 0x78, 0x15, 0, 0, 0, 0, 0x18, 0x09]))
    m.ParseFromString(uni)
    m.normalizer_spec.precompiled_charsmap = m.normalizer_spec.precompiled_charsmap[:37]
    write("spm-bad-charsmap", 1, m.SerializeToString())
    write("spm-long-length", 1, b"\x0a\xff\xff\xff\x0f" + uni[5:200])

    # tokenizer.json: Unigram with the tiny charsmap, as transformers converts T5.
    m.ParseFromString(uni)
    t = Tokenizer(models.Unigram([(p.piece, p.score) for p in m.pieces], unk_id=m.trainer_spec.unk_id))
    t.normalizer = normalizers.Precompiled(m.normalizer_spec.precompiled_charsmap)
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace()])
    t.decoder = decoders.Metaspace()
    t.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    write("json-unigram-precompiled", 0, t.to_str().encode())

    gpt = Tokenizer(models.BPE())
    gpt.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    gpt.decoder = decoders.ByteLevel()
    gpt.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=60, special_tokens=["<|endoftext|>"]))
    write("json-bytelevel-bpe", 0, gpt.to_str().encode())

    llama = Tokenizer(models.BPE(byte_fallback=True, fuse_unk=True))
    llama.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    llama.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                       decoders.Strip(content=" ", left=1)])
    llama.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=40, special_tokens=["<unk>", "<s>", "</s>"]))
    vocab = json.loads(llama.to_str())
    for b in range(0, 256, 37):  # a few byte pieces (all 256 would pass the 8 KB limit)
        vocab["model"]["vocab"][f"<0x{b:02X}>"] = len(vocab["model"]["vocab"])
    write("json-llama-bpe", 0, json.dumps(vocab, ensure_ascii=False).encode())

    suffix = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    suffix.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Strip()])
    suffix.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits()])
    suffix.decoder = decoders.BPEDecoder()
    suffix.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=50, special_tokens=["[UNK]"],
                                                           continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    write("json-bpe-suffix", 0, suffix.to_str().encode())

    wl = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, unk_token="[UNK]"))
    wl.pre_tokenizer = pre_tokenizers.Split(" ", "removed")
    write("json-wordlevel", 0, wl.to_str().encode())

    def edited(tok, change):
        d = json.loads(tok.to_str())
        change(d)
        return json.dumps(d, ensure_ascii=False).encode()

    write("json-cut", 0, gpt.to_str().encode()[:700])
    write("json-unknown-normalizer", 0, edited(gpt, lambda d: d.update(normalizer={"type": "Nmt"})))
    write("json-bad-merge", 0, edited(gpt, lambda d: d["model"]["merges"].insert(0, ["zzz", "qqq"])))
    write("json-regex-split", 0, edited(gpt, lambda d: d.update(pre_tokenizer={
        "type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": False})))
    write("json-bad-base64", 0, edited(t, lambda d: d["normalizer"].update(precompiled_charsmap="!!" + d["normalizer"]["precompiled_charsmap"])))
    write("json-vocab-string", 0, edited(gpt, lambda d: d["model"]["vocab"].update(x="y")))
    write("json-unigram-no-unk", 0, edited(t, lambda d: d["model"].update(unk_id=None)))

    rng = random.Random(0)
    texts = ["The quick brown fox.", "Café déjà vu — naïve résumé!", "東京は日本の首都です。", "",
             "  spaces  \t\n", "</s><s><unk><extra_id_3>", "a\x00b", "😀👍🏽 👨‍👩‍👧", "ｆｕｌｌ ﬁ", "x" * 500]
    for i, text in enumerate(texts):
        write(f"text-{i:03d}", text_mode(i % 4), text.encode())
    for i in range(6):
        write(f"text-bytes-{i}", text_mode(i % 4), bytes(rng.randrange(256) for _ in range(60)))
    print("wrote", len(os.listdir(OUT)), "seeds to", OUT)


if __name__ == "__main__":
    main()
