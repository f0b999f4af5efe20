"""Builds Fixtures/attentions.safetensors: transformers' attention probabilities
(`output_attentions=True`, eager attention) for the encoder-decoder folders t5/ and marian/ and
the decoder-only folders lm/gpt2, lm/llama (grouped-query attention 6/3) and lm/qwen2.

Per model NAME (every tensor float32 unless it says ids):
  NAME.in.input_ids, NAME.in.attention_mask      ids [2, S]: two rows, the second padded
                                                 (encoder-decoder: right-padded sources;
                                                 decoder-only: right-padded prompts)
  NAME.in.decoder_input_ids                      ids [2, T] (encoder-decoder only)
  NAME.encoder.L, NAME.decoder.L, NAME.cross.L   [2, heads, S or T, S or T] (encoder-decoder:
                                                 encoder_attentions, decoder_attentions,
                                                 cross_attentions of layer L)
  NAME.attn.L                                    [2, heads, S, S] (decoder-only: attentions)
  NAME.logits                                    [2, T or S, V]
Run from this folder: python3 make_attention_fixtures.py   (transformers 5.24, torch 2.15)
"""
import os

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "Fixtures")


def padded(rows, pad):
    width = max(len(r) for r in rows)
    ids = [r + [pad] * (width - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    return torch.tensor(ids), torch.tensor(mask)


def main():
    out = {}
    g = torch.Generator().manual_seed(15)
    for name in ["t5", "marian"]:
        model = AutoModelForSeq2SeqLM.from_pretrained(os.path.join(FIX, name), attn_implementation="eager").eval()
        c = model.config
        v = c.vocab_size
        sources = [torch.randint(3, v - 1, (7,), generator=g).tolist(), torch.randint(3, v - 1, (4,), generator=g).tolist()]
        ids, mask = padded(sources, c.pad_token_id)
        targets = torch.randint(3, v - 1, (2, 5), generator=g)
        targets[:, 0] = c.decoder_start_token_id
        with torch.no_grad():
            o = model(input_ids=ids, attention_mask=mask, decoder_input_ids=targets, output_attentions=True)
        out[f"{name}.in.input_ids"] = ids
        out[f"{name}.in.attention_mask"] = mask
        out[f"{name}.in.decoder_input_ids"] = targets
        for part, maps in [("encoder", o.encoder_attentions), ("decoder", o.decoder_attentions), ("cross", o.cross_attentions)]:
            for layer, a in enumerate(maps):
                out[f"{name}.{part}.{layer}"] = a.contiguous()
        out[f"{name}.logits"] = o.logits.contiguous()
        print(name, [tuple(a.shape) for a in o.encoder_attentions + o.decoder_attentions + o.cross_attentions])
    for name in ["gpt2", "llama", "qwen2"]:
        model = AutoModelForCausalLM.from_pretrained(os.path.join(FIX, "lm", name), attn_implementation="eager").eval()
        v = model.config.vocab_size
        prompts = [torch.randint(3, v, (6,), generator=g).tolist(), torch.randint(3, v, (4,), generator=g).tolist()]
        ids, mask = padded(prompts, 0)
        with torch.no_grad():
            o = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        out[f"{name}.in.input_ids"] = ids
        out[f"{name}.in.attention_mask"] = mask
        for layer, a in enumerate(o.attentions):
            out[f"{name}.attn.{layer}"] = a.contiguous()
        out[f"{name}.logits"] = o.logits.contiguous()
        print(name, [tuple(a.shape) for a in o.attentions])
    save_file(out, os.path.join(FIX, "attentions.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
