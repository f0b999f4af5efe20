"""Writes Fixtures/transformer: the paper's encoder-decoder as Attend's TransformerModel reads
it (src_embed, tgt_embed, an nn.Transformer under `transformer` with batch_first, generator;
embeddings times sqrt(d) plus interleaved sinusoids; ReLU, post-LN, eps 1e-5, dropout 0),
tiny and random, trained 5 steps with torch.optim.AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8,
weight decay 0.01 except biases and norm weights, clip_grad_norm_(1.0), batches in order,
cycling): initial/model.safetensors, batches.jsonl (input_ids, attention_mask,
decoder_input_ids, labels), run.json (loss before each update, grad norm before clipping,
parameter names in named_parameters() order), grads0.safetensors, trained/model.safetensors.

    python3 make_transformer_training_fixture.py   # torch 2.15
"""
import json, math, os
import torch
from torch import nn
import torch.nn.functional as F
from safetensors.torch import save_file
from golden_training import adamw_steps

torch.manual_seed(0)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "transformer")
os.makedirs(os.path.join(out, "initial"), exist_ok=True)
os.makedirs(os.path.join(out, "trained"), exist_ok=True)
VS, VT, D, H, FF, L = 50, 60, 32, 4, 64, 2

def sinusoids(n, d):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(d)[None, :] // 2
    angle = pos / torch.pow(10000.0, (2 * i).double() / d)
    return torch.where(torch.arange(d)[None, :] % 2 == 0, torch.sin(angle), torch.cos(angle)).float()

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_embed = nn.Embedding(VS, D)
        self.tgt_embed = nn.Embedding(VT, D)
        self.transformer = nn.Transformer(D, H, L, L, FF, dropout=0.0, batch_first=True)
        self.generator = nn.Linear(D, VT)

    def forward(self, input_ids, attention_mask, decoder_input_ids, labels):
        s, t = input_ids.shape[1], decoder_input_ids.shape[1]
        pe = sinusoids(max(s, t), D)
        src = self.src_embed(input_ids) * math.sqrt(D) + pe[:s]
        tgt = self.tgt_embed(decoder_input_ids) * math.sqrt(D) + pe[:t]
        pad = attention_mask == 0
        causal = nn.Transformer.generate_square_subsequent_mask(t)
        h = self.transformer(src, tgt, tgt_mask=causal, src_key_padding_mask=pad, memory_key_padding_mask=pad, tgt_is_causal=True)
        logits = self.generator(h)
        return F.cross_entropy(logits.reshape(-1, VT), labels.reshape(-1), ignore_index=-100)

model = Model()
with torch.no_grad():  # the paper's embedding scale: d^-0.5, so that sqrt(d) * embedding is O(1) (no saturated softmax)
    for e in (model.src_embed, model.tgt_embed): e.weight.normal_(0, D ** -0.5)
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "initial", "model.safetensors"), metadata={"format": "pt"})

g = torch.Generator().manual_seed(1)
def batch(rows, src, tgt):
    ids, mask, dec, labels = [], [], [], []
    for r in range(rows):
        n = src if r == 0 else int(torch.randint(2, src + 1, (1,), generator=g))
        m = tgt if r == 0 else int(torch.randint(1, tgt + 1, (1,), generator=g))
        ids.append(torch.randint(3, VS, (n,), generator=g).tolist() + [0] * (src - n)); mask.append([1] * n + [0] * (src - n))
        y = torch.randint(3, VT, (m,), generator=g).tolist()
        dec.append([1] + y[:-1] + [0] * (tgt - m)); labels.append(y + [-100] * (tgt - m))
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec, "labels": labels}
batches = [batch(3, 9, 6), batch(2, 12, 8), batch(4, 7, 5)]
def decays(n): return not (n.endswith("bias") or "norm" in n.split(".")[-2])
params = list(model.named_parameters())
losses, norms = adamw_steps(model, params, batches, out, decays=decays, loss_of=lambda m, b: m(**b))
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "trained", "model.safetensors"), metadata={"format": "pt"})
json.dump({"steps": 5, "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "clip_grad_norm": 1.0,
           "weight_decay_excludes": "biases and the norms' weights (norm1..3, encoder.norm, decoder.norm)",
           "losses": losses, "grad_norms_before_clipping": norms, "parameters": [n for n, _ in params],
           "torch": torch.__version__}, open(os.path.join(out, "run.json"), "w"), indent=1)
