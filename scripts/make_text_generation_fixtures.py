#!/usr/bin/env python3
"""Writes the text-to-text fixtures of Tests/TokenizerTests: the tiny random T5 and Marian
checkpoints of Tests/TransformerTests (vocabulary of 64) with tokenizers trained here to fit
them, and what transformers generates from text with them.

Needs transformers (5.24), torch, tokenizers (0.23.3), sentencepiece (0.2.3), protobuf.
Run from the package root:

    python3 scripts/make_text_generation_fixtures.py

Writes Tests/TokenizerTests/Fixtures/t5_text/      config, generation config and weights of
         Tests/TransformerTests/Fixtures/t5, with a T5 Unigram tokenizer.json of 64 pieces
       Tests/TokenizerTests/Fixtures/marian_text/  the same for Marian, with source.spm /
         target.spm / vocab.json (every id below 64; <pad> = 63, the decoder start)
       Tests/TokenizerTests/Fixtures/text_generation.json  per folder and text: the source
         ids, the greedy output ids (max_new_tokens=10, as generate returns them) and
         decode(output, skip_special_tokens=True)
"""
import json
import os
import shutil
import tempfile

import sentencepiece as spm
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, MarianMTModel, T5ForConditionalGeneration

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "Tests", "TransformerTests", "Fixtures")
FIX = os.path.join(ROOT, "Tests", "TokenizerTests", "Fixtures")
CORPUS = ["the house is wonderful", "translate english to german", "summarize the text", "a cat sat on the mat",
          "the quick brown fox", "hello world"] * 30
TEXTS = ["translate English to German: The house is wonderful.", "summarize: the cat sat on the mat", "hello world",
         "Unknown ✓ characters 東京"]


def copy_model(name, dest):
    os.makedirs(dest, exist_ok=True)
    for f in ["config.json", "generation_config.json", "model.safetensors"]:
        shutil.copy(os.path.join(SRC, name, f), os.path.join(dest, f))


def t5_folder():
    d = os.path.join(FIX, "t5_text")
    copy_model("t5", d)
    t = Tokenizer(models.Unigram())
    t.normalizer = normalizers.NFKC()
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace()])
    t.decoder = decoders.Metaspace()
    t.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=64, special_tokens=["<pad>", "</s>", "<unk>"],
                                                          unk_token="<unk>", max_piece_length=6))
    assert t.get_vocab_size() <= 64, t.get_vocab_size()
    t.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    t.save(os.path.join(d, "tokenizer.json"))
    json.dump({"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
               "extra_ids": 0}, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    return d, T5ForConditionalGeneration


def marian_folder():
    d = os.path.join(FIX, "marian_text")
    copy_model("marian", d)
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "c.txt")
        open(inp, "w").write("\n".join(CORPUS))
        spm.SentencePieceTrainer.train(input=inp, model_prefix=os.path.join(tmp, "m"), vocab_size=50, model_type="unigram",
                                       character_coverage=1.0, unk_id=1, eos_id=2, bos_id=-1, pad_id=0,
                                       pad_piece="<spm_pad>", hard_vocab_limit=False)
        shutil.copy(os.path.join(tmp, "m.model"), os.path.join(d, "source.spm"))
        shutil.copy(os.path.join(tmp, "m.model"), os.path.join(d, "target.spm"))
        sp = spm.SentencePieceProcessor(model_file=os.path.join(tmp, "m.model"))
        vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
        vocab["<pad>"] = 63
        # Ids the random model can produce but the small model lacks: placeholder tokens
        # (SentencePiece decodes a piece it does not know as " ⁇ ").
        for i in range(64):
            if i not in vocab.values():
                vocab[f"<fill_{i}>"] = i
        assert max(vocab.values()) < 64
    json.dump(vocab, open(os.path.join(d, "vocab.json"), "w"), ensure_ascii=False, indent=1)
    json.dump({"tokenizer_class": "MarianTokenizer", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
               "separate_vocabs": False, "model_max_length": 64}, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    return d, MarianMTModel


def main():
    result = {}
    for make in [t5_folder, marian_folder]:
        d, cls = make()
        tok = AutoTokenizer.from_pretrained(d)
        model = cls.from_pretrained(d).eval()
        rows = []
        for text in TEXTS:
            ids = tok(text)["input_ids"]
            with torch.no_grad():
                out = model.generate(torch.tensor([ids]), max_new_tokens=10, num_beams=1, do_sample=False)[0].tolist()
            rows.append({"text": text, "ids": ids, "output_ids": out, "output": tok.decode(out, skip_special_tokens=True)})
        result[os.path.basename(d)] = rows
    json.dump({"note": "greedy, max_new_tokens=10; output = decode(output_ids, skip_special_tokens=True)", "cases": result},
              open(os.path.join(FIX, "text_generation.json"), "w"), indent=1, ensure_ascii=False)
    print(json.dumps(result, ensure_ascii=False)[:1500])


if __name__ == "__main__":
    main()
