"""16-bit copies of two golden models: weights kept as stored (F16 / BF16) against transformers.

Usage: python make_half_fixtures.py   (transformers 5.24, torch 2.15, CPU)

From Fixtures/t5 (the golden T5) and Fixtures/lm/llama (the golden Llama, GQA 6/3), each saved
with save_pretrained in bfloat16 and in float16 (every tensor, norms included). The references
run transformers on that saved file loaded with dtype=torch.float32: the 16-bit weights upcast
exactly to float32 and computed in float32, which is what widening in registers computes.

  Fixtures/t5_bf16, t5_f16 + NAME.io.safetensors   the inputs of t5.io.safetensors (two
      sources, the second padded; teacher-forced decoder ids), out.encoder_last_hidden_state,
      out.logits, out.greedy_ids (max_new_tokens 10, min_new_tokens 10), out.beam3_ids
      (3 beams, max_new_tokens 10, early_stopping True), as for the golden t5
  Fixtures/lm/llama_bf16, llama_f16 + lm/lm_half.json   as make_lm_fixtures.py's lm_extra.json:
      two prompts as one left-padded batch, greedy and 3-beam ids (8 new tokens), last logits
"""
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, T5ForConditionalGeneration
from make_lm_fixtures import generation_case  # the same prompts, ids and logits record

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures")
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16}


def t5():
    io = load_file(os.path.join(HERE, "t5.io.safetensors"))
    ids, mask, dec = io["in.input_ids"], io["in.attention_mask"], io["in.decoder_input_ids"]
    for tag, dtype in DTYPES.items():
        folder = os.path.join(HERE, "t5_" + tag)
        base = T5ForConditionalGeneration.from_pretrained(os.path.join(HERE, "t5"), dtype=torch.float32)
        base.to(dtype).save_pretrained(folder)
        model = T5ForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
        with torch.no_grad():
            enc = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
            greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, min_new_tokens=10, num_beams=1,
                                    do_sample=False)
            beam = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, num_beams=3, early_stopping=True,
                                  do_sample=False)
        out = {"in.input_ids": ids, "in.attention_mask": mask, "in.decoder_input_ids": dec,
               "out.encoder_last_hidden_state": enc.contiguous(), "out.logits": logits.contiguous(),
               "out.greedy_ids": greedy.to(torch.int64).contiguous(), "out.beam3_ids": beam.to(torch.int64).contiguous()}
        save_file(out, os.path.join(HERE, "t5_" + tag + ".io.safetensors"))
        print("t5_" + tag, "greedy", greedy.tolist(), "beam", beam.tolist())


def llama():
    lm = os.path.join(HERE, "lm")
    cases = {}
    for tag, dtype in DTYPES.items():
        name = "llama_" + tag
        folder = os.path.join(lm, name)
        base = AutoModelForCausalLM.from_pretrained(os.path.join(lm, "llama"), dtype=torch.float32)
        base.to(dtype).save_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        cases[name] = generation_case(model, 2024, [7, 3])
        print(name, cases[name]["greedy"], cases[name]["beam3"])
    with open(os.path.join(lm, "lm_half.json"), "w") as f:
        json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                   "note": __doc__, "cases": cases}, f)


if __name__ == "__main__":
    t5()
    llama()
