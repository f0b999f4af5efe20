"""The encoder benchmark's job on ONNX Runtime (and optionally PyTorch), for a side-by-side
comparison with `bench --only encoder`: the paper's base encoder (6 post-LN layers, d_model 512,
8 heads, d_ff 2048, ReLU, biases, no final norm; random weights) on one sequence of --seq
already-embedded tokens, input [1, seq, 512], on each thread count of --threads.

The model is `torch.nn.TransformerEncoder` of 6 `nn.TransformerEncoderLayer(d_model=512,
nhead=8, dim_feedforward=2048, dropout=0, activation='relu', batch_first=True,
norm_first=False)` in eval mode, weights and biases drawn like bench's (uniform in [-1, 1]
scaled by 1/sqrt(fan_in); LayerNorm weight 1, bias 0), exported to ONNX once per seq and opset
(cached; --onnx picks the file) and checked against PyTorch. ONNX Runtime runs it on the CPU
execution provider with all graph optimizations, intra_op_num_threads = t,
inter_op_num_threads = 1, sequential execution. Timing mirrors bench's `measure`: warm-up
runs, then at least --min-reps runs and at least --min-seconds in total; median, min and max.

    pip install onnx onnxruntime onnxscript
    pip install torch --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
    python3 Benchmarks/scripts/ort_encoder.py [--seq 512] [--threads 1,2] [--torch] [--profile RUNS]

Stdout: one JSON line per peer and thread count,
  {"peer": "onnxruntime", "threads": t, "seq": n, "ms_median": ..., "ms_min": ..., "ms_max": ..., ...}
Stderr: versions, export check and the op types of ONNX Runtime's optimized graph; with
--profile RUNS, ONNX Runtime's own per-op-type kernel time (enable_profiling) per thread count.
"""
import argparse
import collections
import json
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import ort_common

D_MODEL, HEADS, D_FF, LAYERS = 512, 8, 2048, 6


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build_model(seed):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(d_model=D_MODEL, nhead=HEADS, dim_feedforward=D_FF, dropout=0.0,
                                       activation="relu", batch_first=True, norm_first=False)
    # enable_nested_tensor only matters with a padding mask; there is none here.
    model = nn.TransformerEncoder(layer, num_layers=LAYERS, norm=None, enable_nested_tensor=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                continue  # LayerNorm: weight 1, bias 0, as in bench
            if name.endswith("bias"):
                # bench: bias ~ U[-1, 1] / sqrt(fan_in) of the layer it belongs to
                weight = dict(model.named_parameters())[name[: -len("bias")] + "weight"]
                p.uniform_(-1, 1).mul_(1 / math.sqrt(weight.shape[1]))
            else:
                p.uniform_(-1, 1).mul_(1 / math.sqrt(p.shape[1]))
    return model


def export(model, x, path, opset):
    import torch

    tmp = path + ".tmp"
    with torch.no_grad():
        try:
            torch.onnx.export(model, (x,), tmp, input_names=["x"], output_names=["y"], opset_version=opset,
                              dynamo=True, external_data=False)
            how = "torch.export (dynamo) exporter"
        except Exception as e:  # fall back to the TorchScript exporter
            log(f"dynamo export failed ({type(e).__name__}: {str(e)[:200]}); trying the TorchScript exporter")
            # The TorchScript exporter has no ONNX form of the fused eval-mode encoder layer
            # (aten::_transformer_encoder_layer_fwd): trace the layer's plain operators instead.
            torch.backends.mha.set_fastpath_enabled(False)
            torch.onnx.export(model, (x,), tmp, input_names=["x"], output_names=["y"], opset_version=opset,
                              dynamo=False)
            how = "TorchScript exporter"
    os.replace(tmp, path)
    log(f"exported {path} with the {how}, opset {opset}")


def timed(run, warmup, min_reps, min_seconds, max_reps=1000):
    for _ in range(warmup):
        run()
    times = []
    total = 0.0
    cpu = []
    while len(times) < min_reps or (total < min_seconds and len(times) < max_reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        cpu.append(time.process_time() - c0)
        times.append(dt)
        total += dt
    timed.last_cpu = cpu  # process CPU time per run (robust to other load for 1 thread)
    return times


def record(peer, threads, seq, times, extra):
    med = statistics.median(times)
    row = {"peer": peer, "threads": threads, "seq": seq, "ms_median": round(med * 1e3, 3),
           "ms_min": round(min(times) * 1e3, 3), "ms_max": round(max(times) * 1e3, 3),
           "tokens_per_s": round(seq / med, 1), "reps": len(times),
           "cpu_ms_median": round(statistics.median(getattr(timed, "last_cpu", [float("nan")])) * 1e3, 3)}
    row.update(extra)
    print(json.dumps(row), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--onnx", help="ONNX file to use / create (default: a cache file under the temp dir)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--reexport", action="store_true", help="export again even if the ONNX file exists")
    ap.add_argument("--torch", action="store_true", help="also time PyTorch eager (inference_mode)")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime (with --torch)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-reps", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, metavar="RUNS",
                    help="after the timings, RUNS more runs per thread count under ONNX Runtime's profiler; "
                         "prints kernel time per op type to stderr (untimed; the JSON lines are unchanged)")
    ap.add_argument("--save-optimized", help="write ONNX Runtime's optimized graph here (default: a temp file)")
    args = ap.parse_args()
    if args.seq <= 0:
        ap.error("--seq must be positive")
    thread_counts = ort_common.thread_counts(ap, args.threads)

    n = args.seq
    rng = np.random.default_rng(args.seed + 1)
    x_np = rng.uniform(-1, 1, size=(1, n, D_MODEL)).astype(np.float32)
    onnx_path = args.onnx or os.path.join(tempfile.gettempdir(),
                                          f"attend_base_encoder_seq{n}_opset{args.opset}_seed{args.seed}.onnx")

    model = None
    need_export = not args.no_ort and (args.reexport or not os.path.exists(onnx_path))
    if need_export or args.torch:
        import torch

        model = build_model(args.seed)
        log(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    if need_export:
        import torch

        export(model, torch.from_numpy(x_np), onnx_path, args.opset)

    if not args.no_ort:
        import onnx
        import onnxruntime as ort

        log(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, {ort.get_device()}, model {onnx_path}")
        # One untimed session (all optimizations, 1 thread) saves the optimized graph, to report
        # which fused kernels ONNX Runtime picked, and checks the export against PyTorch.
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = 1
        so.log_severity_level = 3  # no warning about serializing a hardware-specific graph
        optimized = args.save_optimized or os.path.join(tempfile.gettempdir(),
                                                        f"attend_base_encoder_seq{n}_ort_optimized.onnx")
        so.optimized_model_filepath = optimized
        s = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        ops = collections.Counter(node.op_type for node in onnx.load(optimized, load_external_data=False).graph.node)
        log("ONNX Runtime optimized graph: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items())))
        if model is not None:
            import torch

            with torch.inference_mode():
                ref = model(torch.from_numpy(x_np)).numpy()
            got = s.run(None, {s.get_inputs()[0].name: x_np})[0]
            err = float(np.max(np.abs(got - ref)))
            log(f"check: ONNX Runtime vs PyTorch max |diff| {err:.2e} over {ref.size} outputs")
            if not err < 1e-3:
                sys.exit(f"ort_encoder.py: the ONNX model does not match PyTorch (max |diff| {err:.3g})")
        del s
        for t in thread_counts:
            sess = ort_common.session(ort, onnx_path, t)
            feed = {sess.get_inputs()[0].name: x_np}
            times = timed(lambda: sess.run(None, feed), args.warmup, args.min_reps, args.min_seconds)
            record("onnxruntime", t, n, times, {"version": ort.__version__})
            del sess
            if args.profile > 0:
                # A separate session, so the timings above never pay for the profiler: one
                # warm-up run, then --profile runs (op_profile leaves the warm-up out).
                sess = ort_common.session(ort, onnx_path, t, profile_prefix=os.path.join(
                    tempfile.gettempdir(), f"attend_ort_encoder_seq{n}_t{t}"))
                feed = {sess.get_inputs()[0].name: x_np}
                for _ in range(args.profile + 1):
                    sess.run(None, feed)
                path = sess.end_profiling()
                log(f"ONNX Runtime kernel time per op type, {t} thread(s), {args.profile} profiled runs ({path}):")
                for op, ms, share, count in ort_common.op_profile(path, args.profile):
                    log(f"  {op:28s} {ms:8.2f} ms/run {100 * share:5.1f}%  ({count} nodes per run)")
                del sess

    if args.torch:
        import torch

        x = torch.from_numpy(x_np)
        for t in thread_counts:
            torch.set_num_threads(t)
            with torch.inference_mode():
                times = timed(lambda: model(x), args.warmup, args.min_reps, args.min_seconds)
            record("torch", t, n, times, {"version": torch.__version__})


if __name__ == "__main__":
    main()
