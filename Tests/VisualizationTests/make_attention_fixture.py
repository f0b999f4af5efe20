"""Builds Fixtures/attention_golden.json from Fixtures/bert (a tiny BertModel with a word
vocabulary, the encoder of the BERT tests' fill-mask fixture): transformers' attention
probabilities (`output_attentions`) and hidden states (`output_hidden_states`) for a padded
batch of two texts of different lengths, and, for `attend context`, the cosines between a
word's contextual vectors (the mean over its word pieces, found with the tokenizer's
word_ids) across sentences, layer by layer, and between its input embeddings.
Run from this folder: python3 make_attention_fixture.py   (transformers 5.24, torch 2.x)
"""
import itertools
import json
import os

import torch
from transformers import AutoTokenizer, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDER = os.path.join(HERE, "Fixtures", "bert")
OUT = os.path.join(HERE, "Fixtures", "attention_golden.json")

BATCH = ["The cat sat on the mat.", "Paris is the capital of France and Berlin is big!"]
CONTEXT_WORD = "runs"
CONTEXT = ["The cat Runs.", "A small dog runs in the big house.", "the red dog runs on the mat!"]


def word_pieces(enc, b, words_text, word):
    """Positions of the first whole-word, case-insensitive occurrence of `word`."""
    ids = enc.word_ids(b)
    groups = {}
    for pos, w in enumerate(ids):
        if w is not None:
            groups.setdefault(w, []).append(pos)
    for w in sorted(groups):
        start, end = enc.word_to_chars(b, w)
        if words_text[start:end].lower() == word.lower():
            return groups[w]
    raise ValueError(f"{word!r} not in {words_text!r}")


def main():
    tok = AutoTokenizer.from_pretrained(FOLDER)
    model = BertModel.from_pretrained(FOLDER, attn_implementation="eager").eval()
    enc = tok(BATCH, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True, output_hidden_states=True)
    golden = {
        "texts": BATCH,
        "input_ids": enc["input_ids"].tolist(),
        "attention_mask": enc["attention_mask"].tolist(),
        "tokens": [tok.convert_ids_to_tokens(row) for row in enc["input_ids"].tolist()],
        "attentions": [a.flatten().tolist() for a in out.attentions],
        "attention_shape": list(out.attentions[0].shape),
        "hidden_states": [h.flatten().tolist() for h in out.hidden_states],
        "hidden_shape": list(out.hidden_states[0].shape),
    }
    # Context: each sentence on its own (no padding), as `attend context` runs them.
    vectors = []  # per sentence: (input embedding mean, [layer means])
    pieces = []
    for s in CONTEXT:
        e = tok([s], return_tensors="pt")
        pos = word_pieces(e, 0, s, CONTEXT_WORD)
        pieces.append([tok.convert_ids_to_tokens(e["input_ids"][0, p].item()) for p in pos])
        with torch.no_grad():
            o = model(**e, output_hidden_states=True)
        inputs = model.embeddings.word_embeddings.weight[e["input_ids"][0, pos]].mean(0)
        vectors.append((inputs, [h[0, pos].mean(0) for h in o.hidden_states]))
    pairs = list(itertools.combinations(range(len(CONTEXT)), 2))
    cos = torch.nn.functional.cosine_similarity
    golden["context"] = {
        "word": CONTEXT_WORD,
        "sentences": CONTEXT,
        "pieces": pieces,
        "pairs": [list(p) for p in pairs],
        "input": [cos(vectors[i][0], vectors[j][0], dim=0).item() for i, j in pairs],
        "layers": [
            [cos(vectors[i][1][layer], vectors[j][1][layer], dim=0).item() for i, j in pairs]
            for layer in range(len(vectors[0][1]))
        ],
    }
    with open(OUT, "w") as f:
        json.dump(golden, f)
    print("wrote", OUT, golden["attention_shape"], golden["context"]["pieces"])


if __name__ == "__main__":
    main()
