"""Makes the Hugging Face fixtures beyond shared/golden's t5 and marian: the variants real
checkpoints use and the tiny golden models do not.

  t5_gated/      T5 v1.1 / Flan-T5 style: gated-gelu, a separate lm_head.weight and
                 tie_word_embeddings false (so no d^-0.5 output scale), heads x d_kv (48) !=
                 d_model (32), 3 encoder layers for 2 decoder layers (the other way round trips transformers 5.24's cache, sized by num_layers); saved SHARDED
                 (model.safetensors.index.json + shards).
  marian_split/  Marian with separate source and target embeddings
                 (share_encoder_decoder_embeddings false, decoder_vocab_size 48 != vocab_size
                 64), unscaled embeddings, relu, 3 encoder heads.

Each folder is what save_pretrained writes; NAME.io.safetensors holds in.input_ids,
in.attention_mask (2 rows, the second padded), in.decoder_input_ids, and out.* =
encoder_last_hidden_state, logits, greedy_ids (min_new_tokens 12), beam3_ids (num_beams 3,
length_penalty 0.8, early_stopping false). Run from this folder:
python3 make_hf_fixtures.py (needs torch, transformers, safetensors).
"""
import json
import os
import shutil
import tempfile

import torch
from safetensors.torch import load_file, save_file
from transformers import MarianConfig, MarianMTModel, T5Config, T5ForConditionalGeneration

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures")


def reference(model, name, start, pad):
    torch.manual_seed(1)
    v_src = model.get_encoder().get_input_embeddings().weight.shape[0]
    v_tgt = model.get_output_embeddings().weight.shape[0]
    ids = torch.randint(3, min(v_src, 60), (2, 11))
    mask = torch.ones(2, 11, dtype=torch.long)
    ids[1, 7:] = pad
    mask[1, 7:] = 0
    dec = torch.randint(3, v_tgt, (2, 6))
    dec[:, 0] = start
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, min_new_tokens=12, num_beams=1, do_sample=False)
        beam = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, num_beams=3, length_penalty=0.8,
                              early_stopping=False, do_sample=False)
    out = {
        "in.input_ids": ids.to(torch.int64).contiguous(),
        "in.attention_mask": mask.to(torch.int64).contiguous(),
        "in.decoder_input_ids": dec.to(torch.int64).contiguous(),
        "out.encoder_last_hidden_state": enc.contiguous(),
        "out.logits": logits.contiguous(),
        "out.greedy_ids": greedy.to(torch.int64).contiguous(),
        "out.beam3_ids": beam.to(torch.int64).contiguous(),
    }
    save_file(out, os.path.join(HERE, name + ".io.safetensors"))
    print(name, "greedy", greedy.tolist(), "beam", beam.tolist())


def t5_gated():
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=40, num_layers=3, num_decoder_layers=2, num_heads=6,
                   relative_attention_num_buckets=16, relative_attention_max_distance=20,
                   feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
                   eos_token_id=1, pad_token_id=0)
    model = T5ForConditionalGeneration(cfg)
    tmp = tempfile.mkdtemp()
    model.save_pretrained(tmp)
    # A Flan-T5 folder as the hub has it: a separate lm_head.weight and tie_word_embeddings false.
    state = load_file(os.path.join(tmp, "model.safetensors"))
    state["lm_head.weight"] = torch.randn(64, 32) * 0.5
    save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    config = json.load(open(os.path.join(tmp, "config.json")))
    config["tie_word_embeddings"] = False
    config.pop("scale_decoder_outputs", None)
    json.dump(config, open(os.path.join(tmp, "config.json"), "w"), indent=2)
    loaded = T5ForConditionalGeneration.from_pretrained(tmp).eval()
    assert not loaded.config.scale_decoder_outputs
    assert torch.equal(loaded.lm_head.weight, state["lm_head.weight"])
    dest = os.path.join(HERE, "t5_gated")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    # Sharded, as large checkpoints are; keep the v4-style config (transformers rewrites it).
    for f in os.listdir(tmp):
        if f.startswith("model"):
            os.remove(os.path.join(tmp, f))
    loaded.save_pretrained(dest, max_shard_size="100KB")
    json.dump(config, open(os.path.join(dest, "config.json"), "w"), indent=2)
    again = T5ForConditionalGeneration.from_pretrained(dest).eval()
    assert torch.equal(again.lm_head.weight, state["lm_head.weight"]) and not again.config.scale_decoder_outputs
    assert os.path.exists(os.path.join(dest, "model.safetensors.index.json"))
    reference(again, "t5_gated", start=0, pad=0)


def marian_split():
    torch.manual_seed(0)
    cfg = MarianConfig(vocab_size=64, decoder_vocab_size=48, d_model=24, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=3, decoder_attention_heads=2, encoder_ffn_dim=40, decoder_ffn_dim=36,
                       activation_function="relu", max_position_embeddings=40, scale_embedding=False,
                       share_encoder_decoder_embeddings=False, pad_token_id=47, decoder_start_token_id=47,
                       eos_token_id=2, forced_eos_token_id=2)
    model = MarianMTModel(cfg).eval()
    with torch.no_grad():  # the default init (std 0.02) makes every row generate the same token
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
            elif "embed_tokens" in name:
                param.normal_(0, 1.0)
            else:
                param.normal_(0, 0.3)
        model.final_logits_bias.normal_(0, 0.1)
    dest = os.path.join(HERE, "marian_split")
    shutil.rmtree(dest, ignore_errors=True)
    model.save_pretrained(dest)
    again = MarianMTModel.from_pretrained(dest).eval()
    reference(again, "marian_split", start=47, pad=47)


if __name__ == "__main__":
    t5_gated()
    marian_split()
