"""What the ONNX Runtime side-by-side scripts (ort_attention.py, ort_encoder.py, ort_minilm.py)
share: the --threads list and the session every timing runs in (CPU provider, all graph
optimizations, sequential execution, intra_op_num_threads = t, inter_op_num_threads = 1)."""


def thread_counts(ap, text):
    """The positive thread counts of a comma-separated --threads value; ap.error otherwise."""
    try:
        counts = [int(t) for t in text.split(",")]
        assert counts and all(t > 0 for t in counts)
    except (ValueError, AssertionError):
        ap.error(f"--threads needs positive integers separated by commas, got '{text}'")
    return counts


def session(ort, model, threads, profile_prefix=None):
    """An InferenceSession of `model` (a path or ONNX bytes) timed on `threads` threads; with
    `profile_prefix`, ONNX Runtime's own profiler records every node run (enable_profiling)
    into a JSON file under that prefix (see op_profile)."""
    so = ort.SessionOptions()
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def op_profile(path, runs):
    """Per op type, the kernel time of a session's profile file (`end_profiling()`'s path) as
    (op type, ms per run, share of all kernel time, nodes per run), longest first, over the
    `runs` runs after the first (the session's first run, its warm-up, is left out)."""
    import json

    events = json.load(open(path))
    starts = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                    if e.get("cat") == "Session" and e.get("name") == "model_run")
    after = starts[0][1] if starts else 0
    total, nodes = {}, {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= after:
            op = e.get("args", {}).get("op_name", "?")
            total[op] = total.get(op, 0) + e["dur"]
            nodes[op] = nodes.get(op, 0) + 1
    all_us = sum(total.values()) or 1
    return [(op, us / runs / 1e3, us / all_us, nodes[op] // runs)
            for op, us in sorted(total.items(), key=lambda kv: -kv[1])]
