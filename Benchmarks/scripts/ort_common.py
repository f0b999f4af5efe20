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


def session(ort, model, threads):
    """An InferenceSession of `model` (a path or ONNX bytes) timed on `threads` threads."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
