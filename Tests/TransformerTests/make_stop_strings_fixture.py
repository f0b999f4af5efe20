"""Stop strings: transformers' generate(..., stop_strings=..., tokenizer=tok) on the llama_text fixture.

Usage: python make_stop_strings_fixture.py   (transformers 5.24, torch 2.15, CPU, float32)

Writes Fixtures/lm/stop_strings.json: cases of {"texts", "stop", "max_new_tokens", "sequences"}, where
sequences are generate's rows for the (left-padded) batch of `tokenizer(texts)` with greedy search.
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

here = os.path.dirname(os.path.abspath(__file__))
folder = os.path.join(here, "Fixtures", "lm", "llama_text")
tok = AutoTokenizer.from_pretrained(folder)
tok.padding_side = "left"
tok.pad_token = tok.eos_token
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
cases = []
for texts, stop in [
    (["The quick brown fox"], ["PPP"]),  # three generated pieces
    (["The quick brown fox"], ["xPPPy"]),  # never matches
    (["The quick brown fox"], ["zzz", "PP"]),  # the first of several to match
    (["Hello world, this is"], ["is is"]),  # straddles the prompt's end: stops at the first token
    (["Hello world, this is"], ["s is i"]),  # overhangs a token on both ends
    (["Hello world, this is", "The quick brown fox"], ["PPPP"]),  # batch: one row stops, the other runs on
]:
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        seq = model.generate(**enc, max_new_tokens=10, do_sample=False, stop_strings=stop, tokenizer=tok)
    cases.append({"texts": texts, "stop": stop, "max_new_tokens": 10, "prompts": [tok(t)["input_ids"] for t in texts],
                  "sequences": seq.tolist()})
    print(cases[-1])
with open(os.path.join(here, "Fixtures", "lm", "stop_strings.json"), "w") as f:
    json.dump({"note": "make_stop_strings_fixture.py: generate with stop_strings on llama_text", "cases": cases}, f)
