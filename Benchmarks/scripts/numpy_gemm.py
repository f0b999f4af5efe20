"""Times numpy's SGEMM (OpenBLAS) on the shapes `swift run bench --only gemm` uses.

Run with OPENBLAS_NUM_THREADS=1 or 2 (and OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines,
where numpy's OpenBLAS otherwise misdetects Zen 5 and uses its AVX2 kernels):
    OPENBLAS_NUM_THREADS=1 python3 Benchmarks/scripts/numpy_gemm.py [--sizes 512,1024] [--json]
Prints the median of repeated runs after a warm-up, same shapes and layout (C = A @ B.T), and
the timing rule of bench's gemm rows (one warm-up, then at least 5 runs and 1 s). --sizes
runs only those square sizes (as `bench --gemm-sizes`); --json prints one JSON line per shape
  {"peer": "numpy", "m": m, "n": n, "k": k, "threads": t, "ms_median": ..., "ms_min": ...,
   "ms_max": ..., "gflops": ..., "reps": ..., "numpy": version, "openblas_core": name}
"""
import argparse
import ctypes
import glob
import json
import os
import statistics
import time

import numpy as np


def openblas_core():
    """The kernel family numpy's bundled OpenBLAS picked ("SkylakeX", "Haswell", ...), or None."""
    for lib in glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*")):
        try:
            so = ctypes.CDLL(lib)
        except OSError:
            continue
        for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename64_",
                    "openblas_get_corename"):
            f = getattr(so, sym, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", help="comma-separated square sizes (default: bench's gemm shapes)")
    ap.add_argument("--json", action="store_true", help="one JSON line per shape")
    args = ap.parse_args()
    if args.sizes:
        try:
            sizes = [int(s) for s in args.sizes.split(",")]
            assert all(s > 0 for s in sizes)
        except (ValueError, AssertionError):
            ap.error(f"--sizes needs positive integers separated by commas, got '{args.sizes}'")
        shapes = [(n, n, n) for n in sizes]
    else:
        shapes = [(n, n, n) for n in (512, 1024, 2048, 4096)] + [(4096, 512, 512), (4096, 2048, 512), (4096, 512, 2048)]
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    core = openblas_core()
    rng = np.random.default_rng(0)
    if not args.json:
        print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={threads}, "
              f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, OpenBLAS kernels {core}")
    for m, n, k in shapes:
        a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, k)).astype(np.float32)
        c = np.empty((m, n), np.float32)
        np.matmul(a, b.T, out=c)
        times, total = [], 0.0
        while len(times) < 5 or total < 1.0:
            t0 = time.perf_counter(); np.matmul(a, b.T, out=c); dt = time.perf_counter() - t0
            times.append(dt); total += dt
        s = statistics.median(times)
        if args.json:
            print(json.dumps({"peer": "numpy", "m": m, "n": n, "k": k, "threads": int(threads) if threads else None,
                              "ms_median": s * 1e3, "ms_min": min(times) * 1e3, "ms_max": max(times) * 1e3,
                              "gflops": 2 * m * n * k / s * 1e-9, "reps": len(times), "numpy": np.__version__,
                              "openblas_core": core}), flush=True)
        else:
            print(f"{m}x{n}x{k}: {s*1e3:9.2f} ms {2*m*n*k/s*1e-9:8.1f} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
