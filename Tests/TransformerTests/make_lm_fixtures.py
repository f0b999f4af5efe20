"""Decoder-only fixtures beyond shared/golden/lm: the variants real checkpoints use.

Usage: python make_lm_fixtures.py OUTDIR   (transformers 5.24, torch 2.15, CPU, float32 compute)

Per model a folder as save_pretrained writes it and OUTDIR/lm_extra.json:
  cases[name] = {"prompts": [[...], [...]],          two prompts of different lengths
                 "greedy": [[...], [...]],           generate on the LEFT-PADDED batch (attention mask),
                 "beam3": [[...], [...]],            max_new_tokens=8, greedy with min_new_tokens=8
                 "logits_last": [[...], [...]],      last position's logits of each prompt alone
                 "logits_long": [...]}               last logits of greedy row 0 (prompt + 8 tokens) in one pass
Models (tiny, weights from a scaled normal so that greedy does not repeat one token):
  llama_linear_untied   rope linear factor 2, untied lm_head, sharded (max_shard_size), float16 file
  llama3_rope           rope llama3 (factor 8, low 1, high 4, original 16), attention_bias, mlp_bias, bfloat16 file
  llama_yarn            rope yarn factor 4 (original 16), GQA 4/1
  llama_dynamic         rope dynamic factor 2, max_position_embeddings 12 (the last 4 steps feed positions past it)
  mistral_window        MistralForCausalLM, sliding_window 64 (never reached here), GQA 4/2
  qwen2_untied          Qwen2 untied, QKV bias
  gpt2_padded           GPT-2, 3 layers, n_inner 40, eos 5 (so beams end early)
And `llama_text`: a Llama whose vocabulary is ../TokenizerTests/Fixtures/llama_bpe's (1200 pieces),
with that folder's tokenizer files copied in; lm_text.json holds, per text, the prompt ids
(`tokenizer(text)`), the greedy ids (max_new_tokens=12) and the continuation text
(`decode(new ids, skip_special_tokens=True)`), for `attend generate --prompt`.
Half-precision files are made by saving the float32 model in that dtype: the reference
runs on the weights rounded to that dtype, computed in float32.
"""
import json
import os
import shutil
import sys

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)


def scaled_init(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "ln_" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / p.shape[-1] ** 0.5 if p.dim() > 1 else 0.1))


def llama_like(cls, cfg_cls, **kw):
    base = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=None)
    base.update(kw)
    return cls(cfg_cls(**base))


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    models = {
        "llama_linear_untied": (llama_like(LlamaForCausalLM, LlamaConfig, tie_word_embeddings=False,
                                           rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
                                dict(max_shard_size="40KB"), torch.float16),
        "llama3_rope": (llama_like(LlamaForCausalLM, LlamaConfig, tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
                                   head_dim=16, num_attention_heads=4, num_key_value_heads=2,
                                   rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 16,
                                                    "rope_theta": 500000.0}),
                        {}, torch.bfloat16),
        "llama_yarn": (llama_like(LlamaForCausalLM, LlamaConfig, tie_word_embeddings=True, num_key_value_heads=1,
                                  rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
                                                   "rope_theta": 10000.0}),
                       {}, None),
        "llama_dynamic": (llama_like(LlamaForCausalLM, LlamaConfig, tie_word_embeddings=True, max_position_embeddings=12,
                                     rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}),
                          {}, None),
        "mistral_window": (llama_like(MistralForCausalLM, MistralConfig, tie_word_embeddings=False, sliding_window=64), {}, None),
        "qwen2_untied": (llama_like(Qwen2ForCausalLM, Qwen2Config, tie_word_embeddings=False), {}, None),
        "gpt2_padded": (GPT2LMHeadModel(GPT2Config(vocab_size=97, n_embd=32, n_layer=3, n_head=4, n_inner=40, n_positions=64,
                                                   bos_token_id=0, eos_token_id=5)), {}, None),
    }
    cases = {}
    for i, (name, (model, save_kw, dtype)) in enumerate(models.items()):
        scaled_init(model, 100 + i)
        folder = os.path.join(out, name)
        if dtype is not None:
            model.to(dtype).save_pretrained(folder, **save_kw)
        else:
            model.save_pretrained(folder, **save_kw)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        lengths = [7, 3] if name != "llama_dynamic" else [9, 4]
        cases[name] = generation_case(model, 1000 + i, lengths)
        print(name, cases[name]["greedy"], cases[name]["beam3"])
    note = __doc__
    with open(os.path.join(out, "lm_extra.json"), "w") as f:
        json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                   "note": note, "cases": cases}, f)


def generation_case(model, seed, lengths):
    """Random prompts of `lengths` (seeded), left-padded into one batch: greedy and 3-beam ids
    (8 new tokens), each prompt's last logits alone, and row 0 with its generated tokens in one
    pass (for llama_dynamic this passes max_position_embeddings, so the scaled frequencies apply)."""
    g = torch.Generator().manual_seed(seed)
    v = model.config.vocab_size
    prompts = [torch.randint(6, v, (n,), generator=g).tolist() for n in lengths]
    eos = model.generation_config.eos_token_id
    pad = eos if isinstance(eos, int) else eos[0]
    width = max(lengths)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        greedy = model.generate(ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, do_sample=False,
                                pad_token_id=pad).tolist()
        beam3 = model.generate(ids, attention_mask=mask, max_new_tokens=8, num_beams=3, early_stopping=True,
                               do_sample=False, pad_token_id=pad).tolist()
        logits = [model(torch.tensor([p])).logits[0, -1].tolist() for p in prompts]
        long_logits = model(torch.tensor([greedy[0]])).logits[0, -1].tolist()
    return {"prompts": prompts, "greedy": greedy, "beam3": beam3,
            "logits_last": [[round(x, 6) for x in row] for row in logits],
            "logits_long": [round(x, 6) for x in long_logits]}

def text_case(out):
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(here, "..", "TokenizerTests", "Fixtures", "llama_bpe")
    folder = os.path.join(out, "llama_text")
    model = llama_like(LlamaForCausalLM, LlamaConfig, vocab_size=1200, tie_word_embeddings=True)
    scaled_init(model, 77)
    model.save_pretrained(folder)
    for name in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
        shutil.copy(os.path.join(source, name), folder)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    cases = []
    for text in ["Hello world, this is", "The quick brown fox"]:
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            seq = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0].tolist()
        new = seq[len(ids):]
        cases.append({"text": text, "prompt": ids, "greedy": seq, "continuation": tok.decode(new, skip_special_tokens=True)})
        print(cases[-1])
    with open(os.path.join(out, "lm_text.json"), "w") as f:
        json.dump({"note": "llama_text: see make_lm_fixtures.py", "cases": cases}, f, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1])
    text_case(sys.argv[1])
