#!/usr/bin/env python3
"""Writes Fixtures/training_kernels.json: inputs and PyTorch's float32 results for the
training kernels (TrainingKernelTests reads the committed file; rerun only to change it).

  adamw          torch.optim.AdamW(foreach=False) steps from zero moments
  sgd            torch.optim.SGD(foreach=False) steps (momentum, dampening, Nesterov, decay)
  clip           torch.nn.utils.clip_grad_norm_ over several tensors
  cross_entropy  F.cross_entropy(mean, ignore_index=-100, label_smoothing) and its dlogits
  norm           LayerNorm / T5 RMS norm of x + residual: y and dx, dgamma, dbeta
  activation     gelu (erf), gelu tanh, relu, silu and gated (gelu_new(a) * b, silu(a) * b) grads
  embedding      F.embedding backward with a padding index

A NaN loss (every target ignored: 0 / 0) is stored as null. Every float is stored as the shortest decimal of its float32 value (exact when read back).
Usage: python3 make_training_kernel_fixtures.py   (needs torch; CPU only)
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261203)
torch.set_num_threads(1)


def fl(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


out = {"torch": torch.__version__}

# ---------------------------------------------------------------- adamw
adamw = []
for n, hyper in [
    (37, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
    (100, dict(lr=3e-2, betas=(0.3, 0.98), eps=1e-6, weight_decay=0.0)),
    (19, dict(lr=5e-4, betas=(0.85, 0.9995), eps=1e-8, weight_decay=0.1)),
]:
    p = torch.nn.Parameter(torch.randn(n))
    opt = torch.optim.AdamW([p], foreach=False, **hyper)
    case = {"n": n, "lr": hyper["lr"], "beta1": hyper["betas"][0], "beta2": hyper["betas"][1], "eps": hyper["eps"],
            "weight_decay": hyper["weight_decay"], "param0": fl(p), "steps": []}
    for s in range(4):
        g = torch.randn(n) * (10.0 ** (s - 2))
        p.grad = g.clone()
        opt.step()
        st = opt.state[p]
        case["steps"].append({"grad": fl(g), "param": fl(p), "m": fl(st["exp_avg"]), "v": fl(st["exp_avg_sq"])})
    adamw.append(case)
out["adamw"] = adamw

# ---------------------------------------------------------------- sgd
sgd = []
for n, hyper in [
    (41, dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False)),
    (33, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False)),
    (50, dict(lr=0.02, momentum=0.8, dampening=0.0, weight_decay=1e-3, nesterov=True)),
    (17, dict(lr=0.3, momentum=0.0, dampening=0.0, weight_decay=0.05, nesterov=False)),
]:
    p = torch.nn.Parameter(torch.randn(n))
    opt = torch.optim.SGD([p], foreach=False, **hyper)
    case = dict(hyper, n=n, param0=fl(p), steps=[])
    for s in range(3):
        g = torch.randn(n)
        p.grad = g.clone()
        opt.step()
        buf = opt.state[p].get("momentum_buffer")
        case["steps"].append({"grad": fl(g), "param": fl(p), "buffer": fl(buf) if buf is not None else []})
    sgd.append(case)
out["sgd"] = sgd

# ---------------------------------------------------------------- clip
clip = []
for sizes, max_norm, scale in [([5, 300, 1], 1.0, 1.0), ([70, 9], 100.0, 1.0), ([1000], 0.5, 3.0)]:
    ps = [torch.nn.Parameter(torch.zeros(k)) for k in sizes]
    grads = [torch.randn(k) * scale for k in sizes]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm, foreach=False)
    clip.append({"max_norm": max_norm, "grads": [fl(g) for g in grads], "total_norm": float(total),
                 "clipped": [fl(p.grad) for p in ps]})
out["clip"] = clip

# ---------------------------------------------------------------- cross entropy
ce = []
for rows, vocab, smoothing, ignored in [(5, 11, 0.0, [1]), (7, 300, 0.1, [0, 6]), (3, 1000, 0.0, []), (4, 33, 0.2, [0, 1, 2, 3])]:
    logits = (torch.randn(rows, vocab) * 3).requires_grad_(True)
    targets = torch.randint(0, vocab, (rows,))
    for r in ignored:
        targets[r] = -100
    loss = F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=smoothing)
    loss.backward()
    ce.append({"rows": rows, "vocab": vocab, "label_smoothing": smoothing, "logits": fl(logits),
               "targets": [int(t) for t in targets], "loss": None if loss.isnan() else float(loss.detach()), "dlogits": fl(logits.grad)})
out["cross_entropy"] = ce

# ---------------------------------------------------------------- layer norm / rms norm
norm = []
for rms, rows, n, eps, offset in [(False, 3, 37, 1e-5, 0.0), (False, 2, 128, 1e-12, 3.0), (True, 3, 37, 1e-6, 0.0), (True, 2, 100, 1e-6, 1.0)]:
    x = (torch.randn(rows, n) + offset).requires_grad_(True)
    res = torch.randn(rows, n).requires_grad_(True)
    gamma = (1 + 0.5 * torch.randn(n)).requires_grad_(True)
    beta = (0.3 * torch.randn(n)).requires_grad_(True)
    dy = torch.randn(rows, n)
    t = x + res
    if rms:  # T5LayerNorm
        var = t.pow(2).mean(-1, keepdim=True)
        y = gamma * (t * torch.rsqrt(var + eps))
    else:
        y = F.layer_norm(t, (n,), gamma, beta, eps)
    y.backward(dy)
    norm.append({"rms": rms, "rows": rows, "n": n, "eps": eps, "x": fl(x), "residual": fl(res), "gamma": fl(gamma),
                 "beta": fl(beta), "dy": fl(dy), "y": fl(y), "dx": fl(x.grad), "dgamma": fl(gamma.grad),
                 "dbeta": fl(beta.grad) if not rms else []})
out["norm"] = norm

# ---------------------------------------------------------------- activations
acts = []
xs = torch.cat([torch.linspace(-9, 9, 61), torch.randn(40) * 2, torch.tensor([0.0, -0.0, 1e-30, -1e-30, 20.0, -20.0])])
for kind, fn in [("relu", F.relu), ("gelu", lambda v: F.gelu(v)), ("geluTanh", lambda v: F.gelu(v, approximate="tanh")),
                 ("silu", F.silu)]:
    x = xs.clone().requires_grad_(True)
    dy = torch.randn(x.shape)
    fn(x).backward(dy)
    acts.append({"kind": kind, "x": fl(x), "dy": fl(dy), "dx": fl(x.grad)})
gated = []
for kind, fn in [("geluTanh", lambda v: F.gelu(v, approximate="tanh")), ("silu", F.silu), ("gelu", lambda v: F.gelu(v))]:
    a = (torch.randn(53) * 3).requires_grad_(True)
    b = torch.randn(53).requires_grad_(True)
    dy = torch.randn(53)
    (fn(a) * b).backward(dy)
    gated.append({"kind": kind, "a": fl(a), "b": fl(b), "dy": fl(dy), "da": fl(a.grad), "db": fl(b.grad)})
out["activation"] = acts
out["gated"] = gated

# ---------------------------------------------------------------- embedding
emb = []
for rows, vocab, dim, pad in [(13, 7, 5, 0), (40, 50, 33, -1), (9, 3, 16, 2)]:
    table = torch.nn.Parameter(torch.randn(vocab, dim))
    ids = torch.randint(0, vocab, (rows,))
    dout = torch.randn(rows, dim)
    F.embedding(ids, table, padding_idx=pad if pad >= 0 else None).backward(dout)
    emb.append({"rows": rows, "vocab": vocab, "dim": dim, "padding": pad, "ids": [int(i) for i in ids], "dout": fl(dout),
                "dtable": fl(table.grad)})
out["embedding"] = emb

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "training_kernels.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"), allow_nan=False)
print("wrote", path, os.path.getsize(path), "bytes")
