internal import CKernels

// Products against a 16-bit weight (F16 or BF16 kept as stored): the boundary to
// `ck_w16_gemv` / `ck_w16_gemm` (attend_kernels.h, "16-bit weights"). Swift validates the
// shapes, picks the path and splits the work over threads; the kernels widen the weight in
// registers, so the weight is never copied to float32 (except by the Swift SIMD backend, the
// oracle, which widens the rows it uses into a temporary).

/// `C = A · W[columns]ᵀ + beta * C` for A `[m, k]` (row stride `lda`), W a 16-bit `[n, k]`
/// weight and C `[m, columns.count]` (row stride `ldc`; `beta == 0`: C not read).
///
/// Paths on a native backend: at most ``halfGEMVMaxRows`` rows run the 16-bit GEMV (every row
/// in one pass over the weight, split over output features by ``parallelGEMVColumns``; each
/// output one dot product, so the split changes no sum), more rows the 16-bit GEMM, which widens and packs the weight per
/// kc x nc block in its workspace (split like ``nativeGEMM``: over the longer side of C).
/// Cost: `2 m n k` flops; one read of the weight's 16-bit bytes (the GEMM: once per thread
/// that holds columns of it, plus its packing).
func halfWeightGEMM(
    a: UnsafePointer<Float>, lda: Int, m: Int, weight w: HalfMatrix, columns: Range<Int>,
    c: UnsafeMutablePointer<Float>, ldc: Int, beta: Float, compute: Compute
) {
    let k = w.cols, n = columns.count
    precondition(
        columns.lowerBound >= 0 && columns.upperBound <= w.rows,
        "halfWeightGEMM: columns \(columns) out of range for a [\(w.rows), \(k)] weight")
    precondition(m >= 0 && lda >= max(k, 1) && ldc >= max(n, 1), "halfWeightGEMM: lda \(lda) < k \(k) or ldc \(ldc) < n \(n)")
    if m == 0 || n == 0 { return }
    let wp = w.base + columns.lowerBound * k
    withExtendedLifetime(w.owner) {
        switch compute.backend {
        case .swiftSIMD:
            // The oracle path: the rows used, widened once (exactly), then the Swift product.
            let wide = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * k))
            defer { wide.deallocate() }
            for j in 0..<n { for p in 0..<k { wide[j * k + p] = w.type.float(wp[j * k + p]) } }
            SwiftSIMDKernels.gemm(
                m: m, n: n, k: k, alpha: 1, a: a, lda: lda, transA: false, b: wide, ldb: k, transB: true,
                beta: beta, c: c, ldc: ldc, threads: compute.threads)
        case .native(let variant):
            let kern = variant.kernels
            let dtype = w.type.cValue
            let threads = compute.threads
            let flops = 2 * m * n * max(k, 1)
            if m <= halfGEMVMaxRows {
                let gemv = kern.pointee.w16_gemv!
                parallelGEMVColumns(n: n, flops: flops, threads: threads) { j0, count in
                    gemv(dtype, m, count, k, 1, a, lda, wp + j0 * k, k, beta, c + j0, ldc)
                }
                return
            }
            parallelGEMMBlocks(kernels: kern, m: m, n: n, flops: flops, threads: threads) { byRows, lo, hi in
                let (mm, nn) = byRows ? (hi - lo, n) : (m, hi - lo)
                let pa = byRows ? a + lo * lda : a
                let pw = byRows ? wp : wp + lo * k
                let pc = byRows ? c + lo * ldc : c + lo
                let wsCount = ck_w16_gemm_workspace(kern, mm, nn, k)
                let ws = UnsafeMutablePointer<Float>.allocate(capacity: wsCount)
                defer { ws.deallocate() }
                ck_w16_gemm(kern, dtype, mm, nn, k, pa, lda, pw, k, beta, pc, ldc, ws)
            }
        }
    }
}
