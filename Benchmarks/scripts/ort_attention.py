"""The attention benchmark's job on ONNX Runtime, for a side-by-side comparison with
`bench --only attention --fused-only`: scaled dot-product attention at batch 1, 8 heads, head
size 64, --seq tokens, no mask (non-causal), scale 1/sqrt(64), on each thread count of
--threads.

The graph is one com.microsoft MultiHeadAttention node (num_heads 8) taking query, key and
value as [1, seq, 512] (the layout of bench's [1, seq, 8, 64] tensors), no projections, no
bias, no mask; ONNX Runtime's CPU execution provider, all graph optimizations,
intra_op_num_threads = t, inter_op_num_threads = 1, sequential execution. Inputs uniform in
[-1, 1]. Checked once against numpy on a short sequence. Timing mirrors bench's attention
rows: one warm-up run, then at least 3 runs and at least 1 s; median, min and max.

    pip install onnx onnxruntime
    python3 Benchmarks/scripts/ort_attention.py [--seq 4096] [--threads 1,2]

Stdout: one JSON line per thread count,
  {"peer": "onnxruntime", "op": "MultiHeadAttention", "threads": t, "seq": n, "ms_median": ...,
   "ms_min": ..., "ms_max": ..., "gflops": ..., "reps": ..., "version": ...}
Stderr: versions and the check.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

import ort_common

HEADS, HEAD_DIM = 8, 64


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def model_bytes():
    import onnx
    from onnx import TensorProto, helper

    hidden = HEADS * HEAD_DIM
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "seq", hidden]) for n in ("query", "key", "value")]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "seq", hidden])
    node = helper.make_node("MultiHeadAttention", ["query", "key", "value"], ["out"], domain="com.microsoft",
                            num_heads=HEADS)
    graph = helper.make_graph([node], "attention", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model.SerializeToString()


def reference(q, k, v):
    """Attention in float64 numpy, inputs [1, s, heads * 64]."""
    s = q.shape[1]
    split = lambda x: x.reshape(s, HEADS, HEAD_DIM).transpose(1, 0, 2).astype(np.float64)  # noqa: E731
    qh, kh, vh = split(q), split(k), split(v)
    scores = qh @ kh.transpose(0, 2, 1) / np.sqrt(HEAD_DIM)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    p = scores / scores.sum(-1, keepdims=True)
    return (p @ vh).transpose(1, 0, 2).reshape(1, s, HEADS * HEAD_DIM)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-reps", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    args = ap.parse_args()
    if args.seq <= 0:
        ap.error("--seq must be positive")
    thread_counts = ort_common.thread_counts(ap, args.threads)

    import onnxruntime as ort

    data = model_bytes()
    log(f"onnxruntime {ort.__version__}, numpy {np.__version__}")
    rng = np.random.default_rng(0)
    small = [rng.uniform(-1, 1, (1, 96, HEADS * HEAD_DIM)).astype(np.float32) for _ in range(3)]
    got = ort_common.session(ort, data, 1).run(None, dict(zip(("query", "key", "value"), small)))[0]
    err = float(np.max(np.abs(got - reference(*small))))
    log(f"check: MultiHeadAttention vs numpy (seq 96) max |diff| {err:.2e}")
    if not err < 1e-4:
        sys.exit(f"ort_attention.py: MultiHeadAttention does not match the reference (max |diff| {err:.3g})")

    n = args.seq
    feed = {name: rng.uniform(-1, 1, (1, n, HEADS * HEAD_DIM)).astype(np.float32) for name in ("query", "key", "value")}
    flops = 4.0 * n * n * HEAD_DIM * HEADS
    for t in thread_counts:
        sess = ort_common.session(ort, data, t)
        run = lambda: sess.run(None, feed)  # noqa: E731
        for _ in range(args.warmup):
            run()
        times, total = [], 0.0
        while len(times) < args.min_reps or total < args.min_seconds:
            t0 = time.perf_counter()
            run()
            dt = time.perf_counter() - t0
            times.append(dt)
            total += dt
        med = statistics.median(times)
        print(json.dumps({"peer": "onnxruntime", "op": "MultiHeadAttention", "threads": t, "seq": n,
                          "ms_median": med * 1e3, "ms_min": min(times) * 1e3, "ms_max": max(times) * 1e3,
                          "gflops": flops / med * 1e-9, "reps": len(times), "version": ort.__version__}), flush=True)
        del sess


if __name__ == "__main__":
    main()
