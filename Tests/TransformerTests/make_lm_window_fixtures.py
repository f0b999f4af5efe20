"""Sliding-window decoder-only fixtures: generation well past the window.

Usage: python make_lm_window_fixtures.py OUTDIR   (transformers 5.24, torch 2.15, CPU, float32)

Models (tiny, random weights from a scaled normal, saved with save_pretrained):
  mistral_window8   MistralForCausalLM, sliding_window 8 on every layer, GQA 4/2, 2 layers
  qwen2_window      Qwen2ForCausalLM, use_sliding_window, sliding_window 6, max_window_layers 1 of 3:
                    layer 0 attends to everything, layers 1 and 2 (i >= max_window_layers) use the
                    window (config.layer_types as transformers derives it), QKV bias
transformers masks a sliding layer with `kv_idx > q_idx - sliding_window` and `kv_idx <= q_idx`
(masking_utils.sliding_window_causal_mask_function): query i sees key j iff 0 <= i - j < window,
indices counted in cache positions (left padding included).

OUTDIR/lm_window.json: cases[name] = {
  "prompts": [[5 ids], [20 ids]],
  "greedy": [...], "beam3": [...]          each prompt ALONE: generate(max_new_tokens=24; greedy with
                                            min_new_tokens=24; beams: num_beams=3, early_stopping=True)
  "greedy_batch", "beam3_batch"             both prompts as ONE left-padded batch (attention mask)
  "logits_last": [[V], [V]]                 the last position's logits of each prompt (one pass)
  "logits_long": [V]                        the last logits of greedy row 1 (20 + 24 ids) in one pass
  "ids_160", "logits_160": [V]              160 random ids (past Attend's 128-token short path, so its
                                            fused kernel runs) and their last position's logits, one pass
}
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

NEW = 24


def scaled_init(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / p.shape[-1] ** 0.5 if p.dim() > 1 else 0.1))


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    base = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=None, tie_word_embeddings=False)
    models = {
        "mistral_window8": MistralForCausalLM(MistralConfig(num_hidden_layers=2, sliding_window=8, **base)),
        "qwen2_window": Qwen2ForCausalLM(Qwen2Config(num_hidden_layers=3, use_sliding_window=True, sliding_window=6,
                                                     max_window_layers=1, **base)),
    }
    cases = {}
    for i, (name, model) in enumerate(models.items()):
        scaled_init(model, 300 + i)
        folder = os.path.join(out, name)
        model.save_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        print(name, "layer_types", getattr(model.config, "layer_types", None), "window", model.config.sliding_window)
        g = torch.Generator().manual_seed(2000 + i)
        v = model.config.vocab_size
        prompts = [torch.randint(6, v, (n,), generator=g).tolist() for n in (5, 20)]
        pad = model.generation_config.eos_token_id
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        greedy_kw = dict(max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=pad)
        beam_kw = dict(max_new_tokens=NEW, num_beams=3, early_stopping=True, do_sample=False, pad_token_id=pad)
        with torch.no_grad():
            greedy = [model.generate(torch.tensor([p]), **greedy_kw)[0].tolist() for p in prompts]
            beam3 = [model.generate(torch.tensor([p]), **beam_kw)[0].tolist() for p in prompts]
            greedy_batch = model.generate(ids, attention_mask=mask, **greedy_kw).tolist()
            beam3_batch = model.generate(ids, attention_mask=mask, **beam_kw).tolist()
            logits = [model(torch.tensor([p])).logits[0, -1].tolist() for p in prompts]
            long_logits = model(torch.tensor([greedy[1]])).logits[0, -1].tolist()
            ids_160 = torch.randint(6, v, (160,), generator=g).tolist()
            logits_160 = model(torch.tensor([ids_160])).logits[0, -1].tolist()
        cases[name] = {"prompts": prompts, "greedy": greedy, "beam3": beam3, "greedy_batch": greedy_batch,
                       "beam3_batch": beam3_batch, "logits_last": [[round(x, 6) for x in row] for row in logits],
                       "logits_long": [round(x, 6) for x in long_logits],
                       "ids_160": ids_160, "logits_160": [round(x, 6) for x in logits_160]}
        print(name, greedy, beam3, greedy_batch, beam3_batch, sep="\n  ")
    with open(os.path.join(out, "lm_window.json"), "w") as f:
        json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                   "note": __doc__, "cases": cases}, f)


if __name__ == "__main__":
    main(sys.argv[1])
