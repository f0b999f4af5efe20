"""Trains freshly drawn random models that no test has seen, once in PyTorch (float64) and once
with `attend train`, and compares the two runs: the loss of every step (before its update)
within 1e-5 relative, the gradient norm before clipping within 1e-5 relative, and every tensor
of the saved folder within 2e-5 absolute of PyTorch's trained parameter, or within twice the
distance between PyTorch's own float32 and float64 runs where that is larger (AdamW moves a
weight whose gradient stays near 0 by about the learning rate whichever way rounding tips it).

Each case draws its own shapes and options from its seed:
- bert: `BertForPreTraining` (MLM + NSP, tied decoder), hidden 32-64, 1-3 layers, GELU (erf),
  tanh-GELU or ReLU, padded rows, 15% of positions labelled, token types (absolute
  positions: transformers 5 has no `relative_key` BERT to compare with);
- t5: `T5ForConditionalGeneration`, ReLU or gated-GELU feed-forward, the original layout (tied
  head, scaled decoder output) or T5 v1.1's (its own head, unscaled), 8-32 relative-position
  buckets, a maximum distance of 16-128 (some not above the exact buckets);
- marian: `MarianMTModel` (opus-mt layout: shared, scaled embeddings, tied head), swish, GELU
  or ReLU, a non-zero `final_logits_bias`.

The recipe is the golden runs' (`../shared/golden/training`): torch.optim.AdamW, lr 1e-3,
betas 0.9/0.999, eps 1e-8, weight decay 0.01 except biases and LayerNorm weights,
`clip_grad_norm_(1.0)`, every dropout 0, 5 steps over 3 batches in order, cycling. The
initial folder is written in float32 (`save_pretrained`), then PyTorch trains a float64 copy.

    swift build -c release --product attend
    pip install torch transformers safetensors
    python3 scripts/check_training_unseen.py [--attend .build/release/attend] [--seeds 3]
            [--families bert,t5,marian] [--threads 2] [--out DIR]

Prints one line per case and a summary; exit status 1 if any case is outside the tolerances.
"""
import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

LOSS_RTOL = 1e-5
PARAM_ATOL = 2e-5
STEPS = 5


def decays(name):
    return not (name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name)


def padded_rows(rng, rows, width, draw, pad, end=None):
    """Rows of `width` ids: the first full, the others 2..width long, padded with `pad`."""
    ids, mask = [], []
    for r in range(rows):
        n = width if r == 0 else rng.randint(2, width)
        row = [draw() for _ in range(n)]
        if end is not None:
            row[-1] = end
        ids.append(row + [pad] * (width - n))
        mask.append([1] * n + [0] * (width - n))
    return ids, mask


def bert_case(seed):
    from transformers import BertConfig, BertForPreTraining

    rng = random.Random(seed)
    hidden = rng.choice([32, 48, 64])
    heads = rng.choice([h for h in (2, 4, 8) if hidden % h == 0])
    config = BertConfig(
        vocab_size=rng.randint(60, 200), hidden_size=hidden, num_hidden_layers=rng.randint(1, 3),
        num_attention_heads=heads, intermediate_size=hidden * rng.choice([2, 4]),
        hidden_act=rng.choice(["gelu", "gelu_new", "relu"]), max_position_embeddings=64,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, type_vocab_size=2, pad_token_id=0,
        tie_word_embeddings=True)
    model = BertForPreTraining(config)
    v = config.vocab_size

    def batch(rows, width):
        ids, mask = padded_rows(rng, rows, width, lambda: rng.randint(5, v - 1), 0)
        types, labels = [], []
        for row, m in zip(ids, mask):
            n = sum(m)
            cut = rng.randint(1, max(1, n - 1))
            types.append([0] * cut + [1] * (n - cut) + [0] * (width - n))
            lab = [t if (i < n and rng.random() < 0.15) else -100 for i, t in enumerate(row)]
            if all(x == -100 for x in lab):
                lab[0] = row[0]
            labels.append(lab)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": labels,
                "next_sentence_label": [rng.randint(0, 1) for _ in ids]}

    summary = f"layers {config.num_hidden_layers}, hidden {hidden}, heads {heads}, {config.hidden_act}"
    return model, [batch(3, rng.randint(8, 16)), batch(2, rng.randint(8, 16)), batch(4, rng.randint(8, 16))], summary


def seq2seq_batches(rng, vocab, pad, eos):
    def batch(rows, src, tgt):
        ids, mask = padded_rows(rng, rows, src, lambda: rng.randint(1, vocab - 1), pad, end=eos)
        labels, _ = padded_rows(rng, rows, tgt, lambda: rng.randint(1, vocab - 1), -100, end=eos)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return [batch(3, rng.randint(6, 12), rng.randint(4, 9)), batch(2, rng.randint(6, 12), rng.randint(4, 9)),
            batch(4, rng.randint(6, 12), rng.randint(4, 9))]


def t5_case(seed):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    rng = random.Random(seed)
    d_model = rng.choice([32, 48, 64])
    heads = rng.choice([2, 4])
    config = T5Config(
        vocab_size=rng.randint(60, 200), d_model=d_model, d_kv=rng.choice([8, 16]), d_ff=d_model * 2,
        num_layers=rng.randint(1, 3), num_decoder_layers=rng.randint(1, 3), num_heads=heads,
        relative_attention_num_buckets=rng.choice([8, 16, 32]), relative_attention_max_distance=rng.choice([16, 32, 128]),
        feed_forward_proj=rng.choice(["relu", "gated-gelu"]), dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0, tie_word_embeddings=rng.choice([True, False]))
    model = T5ForConditionalGeneration(config)
    # T5 v1.1's layout as transformers 5 holds it: tie_word_embeddings=False becomes
    # scale_decoder_outputs=False (the config keeps tie_word_embeddings true), and the head is
    # its own weight (a checkpoint's lm_head.weight that differs from shared.weight).
    untied = not config.scale_decoder_outputs
    if untied:
        model.lm_head.weight = torch.nn.Parameter(torch.randn(config.vocab_size, d_model) * d_model ** -0.5)
    summary = (f"layers {config.num_layers}/{config.num_decoder_layers}, d {d_model}, heads {heads}, {config.feed_forward_proj}, "
               f"{'own head, unscaled' if untied else 'tied, scaled'}, {config.relative_attention_num_buckets} buckets, max distance "
               f"{config.relative_attention_max_distance}")
    return model, seq2seq_batches(rng, config.vocab_size, 0, 1), summary


def marian_case(seed):
    import torch
    from transformers import MarianConfig, MarianMTModel

    rng = random.Random(seed)
    d_model = rng.choice([32, 48, 64])
    heads = rng.choice([2, 4])
    vocab = rng.randint(60, 200)
    config = MarianConfig(
        vocab_size=vocab, d_model=d_model, encoder_layers=rng.randint(1, 3), decoder_layers=rng.randint(1, 3),
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=d_model * 2, decoder_ffn_dim=d_model * 2,
        max_position_embeddings=64, pad_token_id=vocab - 1, decoder_start_token_id=vocab - 1, eos_token_id=0,
        forced_eos_token_id=0, activation_function=rng.choice(["swish", "gelu", "relu"]), scale_embedding=True,
        share_encoder_decoder_embeddings=True, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    model = MarianMTModel(config)
    with torch.no_grad():
        model.final_logits_bias.normal_(0, 0.1)
    summary = f"layers {config.encoder_layers}/{config.decoder_layers}, d {d_model}, heads {heads}, {config.activation_function}"
    rng_batches = random.Random(seed + 1)
    batches = seq2seq_batches(rng_batches, vocab - 1, vocab - 1, 0)
    return model, batches, summary


FAMILIES = {"bert": bert_case, "t5": t5_case, "marian": marian_case}


def torch_run(model, batches, dtype):
    """5 AdamW steps on `model` converted to `dtype`: (losses, grad norms, trained state dict
    as float64 numpy)."""
    import torch

    model = model.to(dtype)
    model.train()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([
        {"params": [p for n, p in params if decays(n)], "weight_decay": 0.01},
        {"params": [p for n, p in params if not decays(n)], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    losses, norms = [], []
    for step in range(STEPS):
        b = {k: torch.tensor(v) for k, v in batches[step % len(batches)].items()}
        opt.zero_grad()
        loss = model(**b).loss
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)))
        losses.append(loss.item())
        opt.step()
    state = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    return losses, norms, state


def worst_difference(a, b):
    """The largest absolute difference over the tensors both state dicts hold: (value, name)."""
    worst, name = 0.0, ""
    for key, value in a.items():
        if key in b and b[key].shape == value.shape and value.size:
            err = float(np.max(np.abs(value - b[key])))
            if err > worst:
                worst, name = err, key
    return worst, name


def attend_run(attend, folder, batches_file, out, threads):
    cmd = [attend, "train", "--model", folder, "--batches", batches_file, "--steps", str(STEPS), "--lr", "1e-3",
           "--weight-decay", "0.01", "--max-grad-norm", "1.0", "--dropout", "off", "--json", "--threads", str(threads),
           "--save", out]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"attend train failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [r["loss"] for r in rows], [r["grad_norm"] for r in rows]


def compare(name, losses, norms, state, a_losses, a_norms, saved, floor):
    """(ok, line). `floor`: how far PyTorch's own float32 run ends from its float64 run; the
    parameter bound is the larger of PARAM_ATOL and twice that (AdamW divides each gradient
    by its running RMS, so a weight whose gradient stays near 0 moves by about the learning
    rate in whichever direction the rounding says: float32 PyTorch shows the same spread)."""
    from safetensors.numpy import load_file

    problems = []
    if len(a_losses) != STEPS:
        problems.append(f"{len(a_losses)} steps reported")
    loss_err = max(abs(a - t) / max(abs(t), 1e-30) for a, t in zip(a_losses, losses)) if a_losses else float("inf")
    norm_err = max(abs(a - t) / max(abs(t), 1e-30) for a, t in zip(a_norms, norms)) if a_norms else float("inf")
    if loss_err > LOSS_RTOL:
        problems.append(f"loss rel err {loss_err:.2e}")
    if norm_err > LOSS_RTOL:
        problems.append(f"grad norm rel err {norm_err:.2e}")
    tensors = load_file(os.path.join(saved, "model.safetensors"))
    worst, worst_name, compared = 0.0, "", 0
    for key, value in tensors.items():
        if key not in state:
            problems.append(f"saved {key} is not a PyTorch parameter or buffer")
            continue
        ref = state[key]
        if ref.shape != value.shape:
            problems.append(f"{key} shape {value.shape} vs {ref.shape}")
            continue
        err = float(np.max(np.abs(value.astype(np.float64) - ref))) if ref.size else 0.0
        compared += 1
        if err > worst:
            worst, worst_name = err, key
    bound = max(PARAM_ATOL, 2 * floor)
    if worst > bound:
        problems.append(f"parameter abs err {worst:.2e} ({worst_name}) above {bound:.1e}")
    line = (f"{name}: losses rel {loss_err:.1e}, grad norms rel {norm_err:.1e}, {compared} saved tensors, "
            f"worst abs {worst:.1e} ({worst_name}); PyTorch float32 vs float64 {floor:.1e}")
    return not problems, line + ("" if not problems else " -- FAIL: " + "; ".join(problems))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attend", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "release", "attend"))
    parser.add_argument("--seeds", type=int, default=3, help="cases per family (seeds 1000, 1001, ...)")
    parser.add_argument("--families", default="bert,t5,marian")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="keep every case's folders here (default: a temporary folder)")
    args = parser.parse_args()
    if not os.access(args.attend, os.X_OK):
        sys.exit(f"check_training_unseen.py: no attend executable at {args.attend} (swift build -c release --product attend)")
    import torch
    import transformers

    families = [f for f in args.families.split(",") if f]
    for f in families:
        if f not in FAMILIES:
            sys.exit(f"check_training_unseen.py: unknown family '{f}' (bert, t5, marian)")
    root = args.out or tempfile.mkdtemp(prefix="attend-train-check-")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}; folders in {root}", flush=True)
    failures = 0
    total = 0
    for family in families:
        for i in range(args.seeds):
            seed = 1000 + i
            torch.manual_seed(seed)
            model, batches, summary = FAMILIES[family](seed)
            case = os.path.join(root, f"{family}-{seed}")
            os.makedirs(case, exist_ok=True)
            model.save_pretrained(os.path.join(case, "initial"))
            batches_file = os.path.join(case, "batches.jsonl")
            with open(batches_file, "w") as f:
                for b in batches:
                    f.write(json.dumps(b) + "\n")
            initial = copy.deepcopy(model)
            losses, norms, state = torch_run(model, batches, torch.float64)
            floor, _ = worst_difference(torch_run(initial, batches, torch.float32)[2], state)
            name = f"{family} seed {seed} ({summary})"
            total += 1
            try:
                a_losses, a_norms = attend_run(args.attend, os.path.join(case, "initial"), batches_file,
                                               os.path.join(case, "trained"), args.threads)
                ok, line = compare(name, losses, norms, state, a_losses, a_norms, os.path.join(case, "trained"), floor)
            except RuntimeError as e:
                ok, line = False, f"{name}: FAIL: {e}"
            failures += 0 if ok else 1
            print(line, flush=True)
    print(f"{total - failures} of {total} cases within loss rel {LOSS_RTOL:g} and parameters abs {PARAM_ATOL:g} "
          "(or twice PyTorch's own float32 spread, where that is larger)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
