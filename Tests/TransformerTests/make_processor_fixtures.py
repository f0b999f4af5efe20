"""Makes the logits-processor fixtures: what transformers' processors and warpers compute, so
that Attend's repetition penalty, no-repeat n-grams and sampling warpers can be checked
against them exactly.

  processors.json              per case: the folder, the generate settings, and the ids
                               `model.generate` returns for the two sources of NAME.io
                               (greedy and beam search with repetition_penalty and
                               no_repeat_ngram_size; every value a generation_config key).
  warpers.safetensors          in.logits [8, 40] fixed scores (ties, -inf entries, a flat row),
                               in.input_ids [8, 9] earlier tokens; per warper case
                               out.CASE.scores (the processed scores, -inf where dropped) and
                               out.CASE.probs (their softmax).
  warpers.json                 per warper case: its settings (temperature, top_k, top_p, min_p,
                               min_tokens_to_keep, repetition_penalty, no_repeat_ngram_size).

Run from this folder: python3 make_processor_fixtures.py (needs torch, transformers,
safetensors; made with torch 2.15 and transformers 5.24).
"""
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures")

GENERATE_CASES = [
    {"repetition_penalty": 1.3},
    {"repetition_penalty": 0.7},
    {"no_repeat_ngram_size": 1},
    {"no_repeat_ngram_size": 2},
    {"repetition_penalty": 1.2, "no_repeat_ngram_size": 3, "min_new_tokens": 12},
    {"num_beams": 3, "repetition_penalty": 1.5},
    {"num_beams": 3, "no_repeat_ngram_size": 2, "length_penalty": 0.8},
    {"num_beams": 4, "repetition_penalty": 0.8, "no_repeat_ngram_size": 3, "early_stopping": True},
]


def generate_cases():
    cases = []
    for name in ["t5", "marian", "t5_gated", "marian_split"]:
        model = AutoModelForSeq2SeqLM.from_pretrained(os.path.join(HERE, name)).eval()
        io = load_file(os.path.join(HERE, name + ".io.safetensors"))
        ids, mask = io["in.input_ids"], io["in.attention_mask"]
        for settings in GENERATE_CASES:
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False, **settings)
            cases.append({"folder": name, "settings": dict(settings, max_new_tokens=12), "ids": out.tolist()})
            print(name, settings, out.tolist())
    with open(os.path.join(HERE, "processors.json"), "w") as f:
        json.dump({"made_with": f"torch {torch.__version__}, transformers {__import__('transformers').__version__}",
                   "cases": cases}, f, indent=1)


WARPER_CASES = {
    "temperature_0.7": {"temperature": 0.7},
    "temperature_1.9": {"temperature": 1.9},
    "top_k_5": {"top_k": 5},
    "top_k_1": {"top_k": 1},
    "top_k_5_keep_8": {"top_k": 5, "min_tokens_to_keep": 8},
    "top_p_0.9": {"top_p": 0.9},
    "top_p_0.3": {"top_p": 0.3},
    "top_p_0.3_keep_3": {"top_p": 0.3, "min_tokens_to_keep": 3},
    "min_p_0.1": {"min_p": 0.1},
    "min_p_0.5_keep_2": {"min_p": 0.5, "min_tokens_to_keep": 2},
    "all": {"temperature": 0.6, "top_k": 12, "top_p": 0.85, "min_p": 0.05},
    "repetition_1.4": {"repetition_penalty": 1.4},
    "repetition_0.6": {"repetition_penalty": 0.6},
    "ngram_2": {"no_repeat_ngram_size": 2},
    "ngram_3": {"no_repeat_ngram_size": 3},
    "penalties_then_warpers": {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "temperature": 0.8, "top_k": 20,
                               "top_p": 0.9},
}


def warpers(settings):
    """The processors in transformers' _get_logits_processor order."""
    keep = settings.get("min_tokens_to_keep", 1)
    out = LogitsProcessorList()
    if "repetition_penalty" in settings:
        out.append(RepetitionPenaltyLogitsProcessor(settings["repetition_penalty"]))
    if "no_repeat_ngram_size" in settings:
        out.append(NoRepeatNGramLogitsProcessor(settings["no_repeat_ngram_size"]))
    if "temperature" in settings:
        out.append(TemperatureLogitsWarper(settings["temperature"]))
    if "top_k" in settings:
        out.append(TopKLogitsWarper(settings["top_k"], min_tokens_to_keep=keep))
    if "top_p" in settings:
        out.append(TopPLogitsWarper(settings["top_p"], min_tokens_to_keep=keep))
    if "min_p" in settings:
        out.append(MinPLogitsWarper(settings["min_p"], min_tokens_to_keep=keep))
    return out


def warper_cases():
    torch.manual_seed(3)
    logits = torch.randn(8, 40) * 3
    logits[1, 5:9] = logits[1, 4]  # ties
    logits[2, ::3] = -float("inf")  # already forbidden tokens
    logits[3] = 0.25  # flat
    logits[4, 7] = 12.0  # one dominant token
    logits[5] = torch.linspace(-4, 4, 40)
    input_ids = torch.randint(0, 40, (8, 9))
    input_ids[6] = torch.tensor([3, 4, 5, 3, 4, 5, 3, 4, 5])  # repeated n-grams
    input_ids[7] = torch.tensor([1, 2, 1, 2, 1, 2, 7, 1, 2])
    tensors = {"in.logits": logits.contiguous(), "in.input_ids": input_ids.contiguous()}
    for name, settings in WARPER_CASES.items():
        scores = warpers(settings)(input_ids, logits.clone())
        tensors[f"out.{name}.scores"] = scores.contiguous()
        tensors[f"out.{name}.probs"] = scores.softmax(dim=-1).contiguous()
    save_file(tensors, os.path.join(HERE, "warpers.safetensors"))
    with open(os.path.join(HERE, "warpers.json"), "w") as f:
        json.dump(WARPER_CASES, f, indent=1)


if __name__ == "__main__":
    generate_cases()
    warper_cases()
