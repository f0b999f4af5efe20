"""What the golden training-run scripts share (make_marian_training_fixture.py,
make_t5v11_training_fixture.py): padded seq2seq batches and the golden recipe — 5 steps of
torch.optim.AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 except biases and
LayerNorm weights, clip_grad_norm_(1.0), batches in order, cycling) written as batches.jsonl,
run.json (loss before each update, grad norm before clipping), grads0.safetensors (step-0
gradient of every trainable parameter) and trained/ (save_pretrained)."""
import json, os
import torch
from safetensors.torch import save_file


def seq2seq_batch(g, rows, src, tgt, low, high, eos, pad):
    """`rows` sources of up to `src` ids and labels of up to `tgt` ids drawn from low..<high,
    each ending in `eos`; the first row full, sources padded with `pad`, labels with -100."""
    ids, mask, labels = [], [], []
    for r in range(rows):
        n = src if r == 0 else int(torch.randint(2, src + 1, (1,), generator=g))
        m = tgt if r == 0 else int(torch.randint(1, tgt + 1, (1,), generator=g))
        s = torch.randint(low, high, (n - 1,), generator=g).tolist() + [eos]
        t = torch.randint(low, high, (m - 1,), generator=g).tolist() + [eos]
        ids.append(s + [pad] * (src - n)); mask.append([1] * n + [0] * (src - n)); labels.append(t + [-100] * (tgt - m))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def decays(n):
    return not (n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n)


def adamw_steps(model, params, batches, out, decays=decays, loss_of=lambda model, b: model(**b).loss):
    """The golden recipe's 5 steps over `params` (name, parameter) of `model`; writes
    batches.jsonl and grads0.safetensors into `out` and returns (losses, grad norms)."""
    with open(os.path.join(out, "batches.jsonl"), "w") as f:
        for b in batches: f.write(json.dumps(b) + "\n")
    opt = torch.optim.AdamW([
        {"params": [p for n, p in params if decays(n)], "weight_decay": 0.01},
        {"params": [p for n, p in params if not decays(n)], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    losses, norms = [], []
    model.train()
    for step in range(5):
        b = {k: torch.tensor(v) for k, v in batches[step % len(batches)].items()}
        opt.zero_grad()
        loss = loss_of(model, b)
        loss.backward()
        if step == 0:
            save_file({n: p.grad.detach().clone().contiguous() for n, p in params}, os.path.join(out, "grads0.safetensors"))
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)))
        losses.append(loss.item())
        opt.step()
    return losses, norms


def train_golden(model, batches, out):
    """Runs the golden recipe on the transformers `model` over `batches` and writes the run
    into `out`."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    losses, norms = adamw_steps(model, params, batches, out)
    model.save_pretrained(os.path.join(out, "trained"))
    json.dump({"steps": 5, "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "clip_grad_norm": 1.0,
               "weight_decay_excludes": "parameters whose name ends in 'bias' or contains 'LayerNorm' / 'layer_norm'",
               "losses": losses, "grad_norms_before_clipping": norms, "parameters": [n for n, _ in params],
               "torch": torch.__version__, "transformers": __import__("transformers").__version__},
              open(os.path.join(out, "run.json"), "w"), indent=1)
