"""Builds Fixtures/fill_mask (a tiny BertForMaskedLM with a word vocabulary and its tokenizer),
Fixtures/fill_mask_golden.json (transformers' fill-mask pipeline on it) and
Fixtures/fill_mask_no_head (its encoder alone, BertModel, with the tokenizer: no MLM head).

The model is trained for a few hundred steps on a handful of sentences so that its predictions
are peaked rather than uniform (a stricter check of the probabilities than a random model).
Run from this folder: python3 make_fill_mask_fixture.py   (transformers 5.24, torch 2.x)
"""
import json
import os

import torch
import transformers
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast, pipeline

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "Fixtures", "fill_mask")
GOLDEN = os.path.join(HERE, "Fixtures", "fill_mask_golden.json")

WORDS = (
    "the of is a an and in on to it was capital city country river paris france berlin germany rome italy "
    "london england madrid spain cat dog sat mat big small house red blue green sky sea . , ! ? ' "
    "run ##s ##ing ##ed walk jump play"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS

SENTENCES = [
    "paris is the capital of france.",
    "berlin is the capital of germany.",
    "rome is the capital of italy.",
    "london is the capital of england.",
    "madrid is the capital of spain.",
    "the cat sat on the mat.",
    "the dog sat on the mat.",
    "the sky is blue and the sea is blue.",
    "a small cat runs in the big house.",
    "the dog was walking and jumping.",
]

CASES = [
    ("Paris is the [MASK] of France.", 5),
    ("The cat sat on the [MASK].", 3),
    ("[MASK] is the capital of Germany.", 5),
    ("The [MASK] sat on the [MASK].", 4),
    ("The sky is [MASK]!", 1),
    ("rome is the capital of [MASK]", 10),
]


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    vocab_path = os.path.join(OUT, "vocab.txt")
    with open(vocab_path, "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(VOCAB)}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32, type_vocab_size=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    model = BertForMaskedLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    gen = torch.Generator().manual_seed(0)
    special = (enc["input_ids"] < 5)
    model.train()
    for _ in range(300):
        select = (torch.rand(enc["input_ids"].shape, generator=gen) < 0.25) & ~special
        labels = torch.where(select, enc["input_ids"], torch.full_like(enc["input_ids"], -100))
        inputs = torch.where(select, torch.full_like(enc["input_ids"], tokenizer.mask_token_id), enc["input_ids"])
        loss = model(input_ids=inputs, attention_mask=enc["attention_mask"], labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(OUT)
    tokenizer.save_pretrained(OUT)
    model.bert.save_pretrained(OUT + "_no_head")
    tokenizer.save_pretrained(OUT + "_no_head")

    fill = pipeline("fill-mask", model=OUT, tokenizer=OUT, device="cpu")
    cases = []
    for text, k in CASES:
        out = fill(text, top_k=k)
        if out and isinstance(out[0], dict):
            out = [out]  # one [MASK]: the pipeline returns the list itself
        cases.append({"text": text, "top_k": k, "predictions": [[
            {"score": p["score"], "token": p["token"], "token_str": p["token_str"], "sequence": p["sequence"]} for p in row
        ] for row in out]})
    with open(GOLDEN, "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "cases": cases}, f, indent=1)
    print(json.dumps(cases[0], indent=1))


if __name__ == "__main__":
    main()
