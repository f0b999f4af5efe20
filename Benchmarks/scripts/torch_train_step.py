"""The training benchmark's job in PyTorch, for a side-by-side comparison with
`bench --only train`: one optimizer step (forward, backward, AdamW update) of

  base       the paper's base encoder: torch.nn.TransformerEncoder of 6 post-LN
             nn.TransformerEncoderLayer(d_model=512, nhead=8, dim_feedforward=2048, ReLU,
             dropout=0, batch_first=True) on already-embedded input [8, 512, 512]; the loss is
             the mean squared difference from a fixed random target (bench uses the same).
  bert-mini  BertForMaskedLM with BERT-mini's shape (4 layers, hidden 256, 4 heads,
             intermediate 1024, vocab 30522, GELU, dropout 0) on [8, 128] random token ids
             with 15% of the positions labelled (the rest -100): the MLM loss.

AdamW(lr=1e-4, weight_decay=0.01) over every parameter. Each measurement runs in its own
process per thread count (torch.set_num_threads(t), set_num_interop_threads(1)) so the peak
resident memory reported (VmHWM, else ru_maxrss) is that step's. Timing: --warmup steps, then at least
--min-steps steps and --min-seconds; median, min and max of the per-step wall time.

    pip install torch transformers   # CPU wheels are enough
    python3 Benchmarks/scripts/torch_train_step.py --model base --threads 1

Stdout: one JSON line,
  {"peer": "pytorch", "model": m, "threads": t, "tokens": n, "ms_median": ..., "ms_min": ...,
   "ms_max": ..., "tokens_per_s": ..., "peak_rss_mib": ...}
"""
import argparse
import json
import resource
import statistics
import sys
import time


def own_peak_rss_mib():
    """This process image's peak resident memory: VmHWM (starts afresh at exec), as bench's
    train child reads it; ru_maxrss would include the spawning process's high-water mark."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(model_name, torch, seed=0):
    from torch import nn

    torch.manual_seed(seed)
    if model_name == "base":
        layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, dim_feedforward=2048, dropout=0.0,
                                           activation="relu", batch_first=True, norm_first=False)
        model = nn.TransformerEncoder(layer, num_layers=6, norm=None, enable_nested_tensor=False).train()
        x = torch.randn(8, 512, 512)
        target = torch.randn(8, 512, 512)

        def loss_fn():
            return torch.nn.functional.mse_loss(model(x), target)

        return model, loss_fn, 8 * 512
    if model_name == "bert-mini":
        from transformers import BertConfig, BertForMaskedLM

        config = BertConfig(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                            intermediate_size=1024, hidden_act="gelu", hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, max_position_embeddings=512)
        model = BertForMaskedLM(config).train()
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, config.vocab_size, (8, 128), generator=g)
        labels = ids.clone()
        labels[torch.rand(8, 128, generator=g) >= 0.15] = -100

        def loss_fn():
            return model(input_ids=ids, labels=labels).loss

        return model, loss_fn, 8 * 128
    raise SystemExit(f"unknown --model {model_name!r} (base, bert-mini)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-steps", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=5.0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    model, loss_fn, tokens = build(args.model, torch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    times, cpu, start = [], [], time.perf_counter()
    while len(times) < args.min_steps or time.perf_counter() - start < args.min_seconds:
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    print(f"torch {torch.__version__}, {len(times)} steps", file=sys.stderr)
    print(json.dumps({
        "peer": "pytorch", "model": args.model, "threads": args.threads, "tokens": tokens,
        "ms_median": med * 1e3, "ms_min": min(times) * 1e3, "ms_max": max(times) * 1e3,
        "tokens_per_s": tokens / med,
        # process CPU time per step (all threads, user + system): the step's cost on a shared machine
        "cpu_ms_median": statistics.median(cpu) * 1e3,
        "peak_rss_mib": own_peak_rss_mib(),
    }))


if __name__ == "__main__":
    main()
