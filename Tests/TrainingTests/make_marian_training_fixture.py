"""Writes Fixtures/marian: a tiny random MarianMTModel (opus-mt settings: swish, scaled and
shared embeddings, tied head, every dropout 0) trained 5 steps with torch.optim.AdamW (lr 1e-3,
betas 0.9/0.999, eps 1e-8, weight decay 0.01 except biases and LayerNorm weights,
clip_grad_norm_(1.0), batches in order, cycling), as the bert and t5 golden runs were made:
initial/ and trained/ (save_pretrained), batches.jsonl, run.json (loss before each update,
grad norm before clipping), grads0.safetensors (step-0 gradient of every trainable parameter).

    python3 make_marian_training_fixture.py   # torch 2.15, transformers 5.24
"""
import json, os
import torch
from safetensors.torch import save_file
from transformers import MarianConfig, MarianMTModel

torch.manual_seed(0)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "marian")
config = MarianConfig(
    vocab_size=90, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
    decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
    pad_token_id=89, decoder_start_token_id=89, eos_token_id=0, forced_eos_token_id=0,
    activation_function="swish", scale_embedding=True, share_encoder_decoder_embeddings=True,
    dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
model = MarianMTModel(config)
with torch.no_grad():
    model.final_logits_bias.normal_(0, 0.1)  # a non-zero buffer, to check that it is kept
model.save_pretrained(os.path.join(out, "initial"))

g = torch.Generator().manual_seed(1)
def batch(rows, src, tgt):
    ids, mask, labels = [], [], []
    for r in range(rows):
        n = src if r == 0 else int(torch.randint(2, src + 1, (1,), generator=g))
        m = tgt if r == 0 else int(torch.randint(1, tgt + 1, (1,), generator=g))
        s = torch.randint(1, 89, (n - 1,), generator=g).tolist() + [0]
        t = torch.randint(1, 89, (m - 1,), generator=g).tolist() + [0]
        ids.append(s + [89] * (src - n)); mask.append([1] * n + [0] * (src - n)); labels.append(t + [-100] * (tgt - m))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
batches = [batch(3, 9, 6), batch(2, 12, 8), batch(4, 7, 5)]
with open(os.path.join(out, "batches.jsonl"), "w") as f:
    for b in batches: f.write(json.dumps(b) + "\n")

def decays(n): return not (n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n)
params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
opt = torch.optim.AdamW([
    {"params": [p for n, p in params if decays(n)], "weight_decay": 0.01},
    {"params": [p for n, p in params if not decays(n)], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
losses, norms = [], []
model.train()
for step in range(5):
    b = {k: torch.tensor(v) for k, v in batches[step % len(batches)].items()}
    opt.zero_grad()
    loss = model(**b).loss
    loss.backward()
    if step == 0:
        save_file({n: p.grad.detach().clone().contiguous() for n, p in params}, os.path.join(out, "grads0.safetensors"))
    norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)))
    losses.append(float(loss))
    opt.step()
model.save_pretrained(os.path.join(out, "trained"))
json.dump({"steps": 5, "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "clip_grad_norm": 1.0,
           "weight_decay_excludes": "parameters whose name ends in 'bias' or contains 'LayerNorm' / 'layer_norm'",
           "losses": losses, "grad_norms_before_clipping": norms, "parameters": [n for n, _ in params],
           "torch": torch.__version__, "transformers": __import__("transformers").__version__},
          open(os.path.join(out, "run.json"), "w"), indent=1)
