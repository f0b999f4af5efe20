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
And `paper.*` (inputs, encoder/decoder/cross maps, logits as above): the paper's model of the
golden `seq2seq` (PyTorch nn.Transformer), each nn.MultiheadAttention's per-head weights.
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
    out.update(paper_model())
    save_file(out, os.path.join(FIX, "attentions.safetensors"), metadata={"format": "pt"})


def paper_model():
    """The paper's model of the golden `seq2seq` (nn.Transformer(64, 4 heads, 2 + 2 layers, ff 128,
    post-LN, final norms), embeddings x 8 + interleaved sinusoids, generator): every
    nn.MultiheadAttention asked for its per-head weights. Sources: the golden's two sources cut
    to 9 and 5 tokens, right-padded with 0 (masked); targets: the golden's."""
    from safetensors.torch import load_file
    w = load_file(os.path.join(FIX, "seq2seq.safetensors"))
    io = load_file(os.path.join(FIX, "seq2seq.io.safetensors"))
    t = torch.nn.Transformer(64, 4, 2, 2, 128, dropout=0.0, batch_first=True)
    t.load_state_dict({k[len("transformer."):]: v for k, v in w.items() if k.startswith("transformer.")})
    t.eval()
    maps = {}

    def record(mha, key):
        orig = mha.forward

        def forward(*args, **kwargs):
            kwargs["need_weights"] = True
            kwargs["average_attn_weights"] = False
            kwargs.pop("is_causal", None)
            o, weights = orig(*args, **kwargs)
            maps[key] = weights.detach().clone()
            return o, None
        mha.forward = forward

    for i, layer in enumerate(t.encoder.layers):
        record(layer.self_attn, f"paper.encoder.{i}")
    for i, layer in enumerate(t.decoder.layers):
        record(layer.self_attn, f"paper.decoder.{i}")
        record(layer.multihead_attn, f"paper.cross.{i}")

    def embed(ids, table):
        n, d = ids.shape[1], 64
        pos = torch.arange(n, dtype=torch.float64)[:, None]
        i = torch.arange(0, d, 2, dtype=torch.float64)
        angle = pos / torch.pow(10000.0, i / d)
        pe = torch.zeros(n, d, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
        return table[ids] * 8 + pe.float()

    def forward(src, tgt, pad):
        causal = torch.nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        h = t(embed(src, w["src_embed.weight"]), embed(tgt, w["tgt_embed.weight"]), tgt_mask=causal,
              src_key_padding_mask=pad, memory_key_padding_mask=pad)
        return h @ w["generator.weight"].T + w["generator.bias"]

    # Grad mode on keeps nn.TransformerEncoderLayer off its fused fast path (which returns no weights).
    full = forward(io["in.src"], io["in.tgt"], None)
    assert (full - io["out.logits"]).abs().max() < 1e-4, "the reconstruction must be the golden model"
    src = io["in.src"].clone()
    src[0, 9:] = 0
    src[1, 5:] = 0
    src = src[:, :9].contiguous()
    pad = torch.tensor([[False] * 9, [False] * 5 + [True] * 4])
    maps.clear()
    logits = forward(src, io["in.tgt"], pad)
    out = {k: v.contiguous() for k, v in maps.items()}
    out["paper.logits"] = logits.detach().contiguous()
    out["paper.in.input_ids"] = src
    out["paper.in.decoder_input_ids"] = io["in.tgt"]
    print("paper", {k: tuple(v.shape) for k, v in out.items()})
    return out


if __name__ == "__main__":
    main()
