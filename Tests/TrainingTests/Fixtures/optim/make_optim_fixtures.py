"""PyTorch references for the optimizer tests (OptimizerTests.swift, SafeTensorsWriterTests.swift).

Run from this folder: python3 make_optim_fixtures.py  (torch, transformers and safetensors
installed). Writes:
  params.safetensors        the initial tensors (names as a model's, so the decay mask matters)
  grads.safetensors         "step{k}.{name}": the gradient of every tensor at step k
  results.safetensors       "{case}.{name}": the parameters after the case's steps (and the
                            AdamW moments as "{case}.exp_avg.{name}", "{case}.exp_avg_sq.{name}",
                            the clipped gradients as "{case}.{name}")
  expected.json             each case's settings, the clipping norms, the schedules' rates
  written_by_python*.safetensors  safetensors.torch.save_file output for the writer tests

Every hyperparameter is a float32 value (np.float32 rounded, then used as a Python float),
so an implementation computing in float32 with float32 settings can match bit for bit.
Optimizers run with foreach=False (torch's CPU default anyway: _single_tensor_adam / _sgd).
"""
import json
import math

import numpy as np
import torch
from safetensors.torch import save_file
from transformers.optimization import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup


def f32(x):
    return float(np.float32(x))


torch.manual_seed(1234)
SHAPES = [
    ("encoder.dense.weight", [11, 13]),  # 143 scalars: vector body and scalar tail
    ("encoder.dense.bias", [13]),
    ("encoder.LayerNorm.weight", [13]),
    ("encoder.LayerNorm.bias", [13]),
    ("decoder.final_layer_norm.weight", [6]),
    ("decoder.embed.weight", [5, 7]),
    ("decoder.scale", []),
]
STEPS = 6
params0 = {n: torch.randn(s) for n, s in SHAPES}
grads = [{n: torch.randn(s) * (0.5 + k) * 0.1 for n, s in SHAPES} for k in range(STEPS)]
# A few extreme gradients: zeros, tiny and large values.
grads[0]["encoder.dense.bias"][0] = 0.0
grads[1]["encoder.dense.bias"][1] = 1e-20
grads[2]["encoder.dense.bias"][2] = 1e4

save_file({n: t.contiguous() for n, t in params0.items()}, "params.safetensors")
save_file({f"step{k}.{n}": t for k, g in enumerate(grads) for n, t in g.items()}, "grads.safetensors")

results = {}
expected = {"steps": STEPS, "cases": {}, "clip": {}, "schedules": {}}


def hf_no_decay(name):
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name


def run(case, make_opt, lrs=None):
    ps = {n: torch.nn.Parameter(t.clone()) for n, t in params0.items()}
    opt = make_opt(ps)
    for k in range(STEPS):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[k]
        for n, p in ps.items():
            p.grad = grads[k][n].clone()
        opt.step()
    for n, p in ps.items():
        results[f"{case}.{n}"] = p.detach().clone()
        state = opt.state[p]
        for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
            if key in state and state[key] is not None:
                results[f"{case}.{key}.{n}"] = state[key].clone()


def adamw(lr, betas, eps, wd, mask):
    def make(ps):
        if mask:
            groups = [
                {"params": [p for n, p in ps.items() if not hf_no_decay(n)], "weight_decay": wd},
                {"params": [p for n, p in ps.items() if hf_no_decay(n)], "weight_decay": 0.0},
            ]
        else:
            groups = [{"params": list(ps.values()), "weight_decay": wd}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=False)
    return make


cases = {
    "adamw_hf": dict(lr=f32(1e-3), betas=(f32(0.9), f32(0.999)), eps=f32(1e-8), wd=f32(0.01), mask=True),
    "adamw_all": dict(lr=f32(3e-2), betas=(f32(0.3), f32(0.95)), eps=f32(1e-6), wd=f32(0.1), mask=False),
    "adamw_nowd": dict(lr=f32(5e-3), betas=(f32(0.0), f32(0.0)), eps=f32(1e-3), wd=0.0, mask=False),
}
for case, c in cases.items():
    run(case, adamw(c["lr"], c["betas"], c["eps"], c["wd"], c["mask"]))
    expected["cases"][case] = {"optimizer": "AdamW", "lr": c["lr"], "betas": list(c["betas"]), "eps": c["eps"],
                               "weight_decay": c["wd"], "hf_mask": c["mask"]}

# AdamW under a linear warmup schedule; each step's rate rounded to float32 as Attend sets it.
sched_lrs = [f32(f32(2e-2) * (k / 2 if k < 2 else max(0.0, (STEPS - k) / (STEPS - 2)))) for k in range(STEPS)]
run("adamw_sched", adamw(f32(2e-2), (f32(0.9), f32(0.999)), f32(1e-8), f32(0.01), True), lrs=sched_lrs)
expected["cases"]["adamw_sched"] = {"optimizer": "AdamW", "lr": f32(2e-2), "betas": [f32(0.9), f32(0.999)],
                                    "eps": f32(1e-8), "weight_decay": f32(0.01), "hf_mask": True,
                                    "schedule": {"linear": [f32(2e-2), 2, STEPS]}, "lrs": sched_lrs}

sgd_cases = {
    "sgd_plain": dict(lr=f32(0.1), momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    "sgd_momentum": dict(lr=f32(0.05), momentum=f32(0.9), dampening=0.0, weight_decay=0.0, nesterov=False),
    "sgd_damped": dict(lr=f32(0.05), momentum=f32(0.9), dampening=f32(0.1), weight_decay=f32(0.01), nesterov=False),
    "sgd_nesterov": dict(lr=f32(0.02), momentum=f32(0.8), dampening=0.0, weight_decay=f32(1e-3), nesterov=True),
}
for case, c in sgd_cases.items():
    run(case, lambda ps, c=c: torch.optim.SGD(list(ps.values()), foreach=False, **c))
    expected["cases"][case] = {"optimizer": "SGD", **c}

# clip_grad_norm_ on step 3's gradients: a clipping and a non-clipping max norm.
for case, max_norm in (("clip_1", 1.0), ("clip_100", 100.0)):
    ps = {n: torch.nn.Parameter(t.clone()) for n, t in params0.items()}
    for n, p in ps.items():
        p.grad = grads[3][n].clone()
    norm = torch.nn.utils.clip_grad_norm_(list(ps.values()), max_norm)
    expected["clip"][case] = {"max_norm": max_norm, "total_norm": float(norm)}
    for n, p in ps.items():
        results[f"{case}.{n}"] = p.grad.clone()


def lambda_lrs(make, base_lr, n):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(repr(float(opt.param_groups[0]["lr"])))  # text: parsed exactly (Double(String))
        opt.step()
        sched.step()
    return out


peak = f32(1e-3)
expected["schedules"]["linear"] = {
    "peak": peak, "warmup": 3, "total": 10,
    "lrs": lambda_lrs(lambda o: get_linear_schedule_with_warmup(o, 3, 10), peak, 13)}
expected["schedules"]["linear_nowarmup"] = {
    "peak": peak, "warmup": 0, "total": 4,
    "lrs": lambda_lrs(lambda o: get_linear_schedule_with_warmup(o, 0, 4), peak, 6)}
expected["schedules"]["cosine"] = {
    "peak": peak, "warmup": 2, "total": 10, "cycles": 0.5,
    "lrs": lambda_lrs(lambda o: get_cosine_schedule_with_warmup(o, 2, 10), peak, 13)}
expected["schedules"]["cosine_2cycles"] = {
    "peak": peak, "warmup": 1, "total": 9, "cycles": 2.0,
    "lrs": lambda_lrs(lambda o: get_cosine_schedule_with_warmup(o, 1, 9, num_cycles=2.0), peak, 10)}
d_model, warmup, scale = 512, 4, f32(2.0)
noam = lambda s: scale * (d_model ** -0.5 * min((s + 1) ** -0.5, (s + 1) * warmup ** -1.5))
expected["schedules"]["inverse_sqrt"] = {
    "model_dimension": d_model, "warmup": warmup, "scale": scale,
    "lrs": lambda_lrs(lambda o: torch.optim.lr_scheduler.LambdaLR(o, noam), 1.0, 12)}



def check_op_order():
    """One AdamW step on 100003 scalars replayed in numpy float32 in the order Attend uses
    (fused multiply-adds in lerp and addcmul, unfused addcdiv), with PyTorch's own sqrt: every
    scalar must agree. (PyTorch's CPU sqrt is not correctly rounded in this build, so that one
    operation is taken from PyTorch here; Attend's is correctly rounded.)"""
    def fma(a, b, c):
        return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)
    F = np.float32
    n = 100003
    g0 = torch.Generator().manual_seed(7)
    p0, g = torch.randn(n, generator=g0), torch.randn(n, generator=g0) * 0.1
    for lr, b1, b2, eps, wd in ((f32(3e-2), f32(0.3), f32(0.95), f32(1e-6), f32(0.1)),
                                (f32(1e-3), f32(0.9), f32(0.999), f32(1e-8), f32(0.01))):
        p = torch.nn.Parameter(p0.clone())
        p.grad = g.clone()
        opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False)
        opt.step()
        P, G = (p0.numpy() * F(1 - lr * wd)).astype(F), g.numpy()
        w = F(1 - b1)
        m = fma(np.full(n, w - F(1)), G, G) if w >= 0.5 else fma(np.full(n, w), G, np.zeros(n, F))
        v = fma((F(1 - b2) * G).astype(F), G, np.zeros(n, F))
        assert (m == opt.state[p]["exp_avg"].numpy()).all() and (v == opt.state[p]["exp_avg_sq"].numpy()).all()
        root = opt.state[p]["exp_avg_sq"].sqrt().numpy()
        den = (root / F((1 - b2) ** 0.5)).astype(F) + F(eps)
        want = (P + ((F(-(lr / (1 - b1))) * m).astype(F) / den).astype(F)).astype(F)
        assert (want == p.detach().numpy()).all(), "AdamW op order"
        exact = np.sqrt(v)
        print(f"torch sqrt differs from the correctly rounded one in {(exact != root).sum()} of {n} scalars")


check_op_order()
save_file({k: v.contiguous() for k, v in results.items()}, "results.safetensors")
expected["torch"] = torch.__version__
with open("expected.json", "w") as f:
    json.dump(expected, f, indent=1)

# The writer's references: awkward names, a scalar, an empty tensor. The reference writer
# keeps metadata in a hash map (its key order changes from run to run), so the byte-for-byte
# file has one metadata key; the second file has several (compared after parsing).
ramp = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8 - 0.5
writer_tensors = {
    "b.weight": ramp,
    "a": torch.tensor([1.5, -0.0, float("inf")]),
    "quote\"back\\slash": torch.tensor(3.25),
    "new\nline\ttab\u0001": torch.zeros(0, 2),
    "caf\u00e9.\u4e2d": torch.tensor([[1e-30], [-7.0]]),
}
save_file(writer_tensors, "written_by_python.safetensors", metadata={"format": "pt"})
save_file(writer_tensors, "written_by_python_metadata.safetensors",
          metadata={"format": "pt", "z": "last", "a key": "x\"y\u00e9\n"})
print("wrote fixtures")
