"""Times numpy's SGEMM (OpenBLAS) on the shapes `swift run bench --only gemm` uses.

Run with OPENBLAS_NUM_THREADS=1 or 2 (and OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines,
where numpy's OpenBLAS otherwise misdetects Zen 5 and uses its AVX2 kernels):
    OPENBLAS_NUM_THREADS=1 python3 Benchmarks/scripts/numpy_gemm.py
Prints the median of repeated runs after a warm-up, same shapes and layout (C = A @ B.T).
"""
import os, time
import numpy as np

shapes = [(n, n, n) for n in (512, 1024, 2048, 4096)] + [(4096, 512, 512), (4096, 2048, 512), (4096, 512, 2048)]
rng = np.random.default_rng(0)
print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
      f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
for m, n, k in shapes:
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k)).astype(np.float32)
    c = np.empty((m, n), np.float32)
    np.matmul(a, b.T, out=c)
    times, total = [], 0.0
    while len(times) < 5 or total < 1.0:
        t0 = time.perf_counter(); np.matmul(a, b.T, out=c); dt = time.perf_counter() - t0
        times.append(dt); total += dt
    s = sorted(times)[len(times) // 2]
    print(f"{m}x{n}x{k}: {s*1e3:9.2f} ms {2*m*n*k/s*1e-9:8.1f} GFLOP/s")
