import Foundation

/// The Swift SIMD kernels as a low-level oracle, visible inside this package only (`package`:
/// not part of Attend's public API): the reference implementations the C kernels are checked
/// against (by the tests and by the `kernel-fuzz` differential fuzzer),
/// on raw row-major buffers with explicit row strides, exactly as `attend_kernels.h` states
/// each kernel's contract. They accumulate in `Double` in a fixed order, run on the calling
/// thread and never validate their arguments (the caller guarantees every index is in bounds,
/// like the C kernels' callers do). They are slow by design: use them to check results, not
/// to compute them.
package enum KernelOracle {
    /// `C = alpha * op(A) * op(B) + beta * C`, the contract of `ck_f32_gemm`:
    /// op(A) is m x k (`transA`: `A[p*lda + i]`, else `A[i*lda + p]`), op(B) is k x n
    /// (`transB`: `B[j*ldb + p]`, else `B[p*ldb + j]`), C is m x n at `C[i*ldc + j]`.
    /// `beta == 0` does not read C; `alpha == 0` or `k == 0` does not evaluate the product.
    /// Each element is accumulated in Double and rounded to Float once.
    /// Cost: 2*m*n*k Double flops, one thread.
    package static func gemm(
        m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, transA: Bool,
        b: UnsafePointer<Float>, ldb: Int, transB: Bool, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0 && n > 0 else { return }
        SwiftSIMDKernels.gemm(
            m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, transA: transA, b: b, ldb: ldb, transB: transB,
            beta: beta, c: c, ldc: ldc, threads: 1)
    }

    /// `exp(x)` in Double (Foundation's): rounded to Float it is the correctly rounded
    /// single-precision result except in rare double-rounding cases (within 2^-29 ulp of a
    /// Float midpoint). Cost: one Double exp.
    package static func exp(_ x: Float) -> Double { Foundation.exp(Double(x)) }

    /// Row softmax `y = softmax(x * scale + mask)` of `rows` rows of n, the contract of
    /// `ck_f32_softmax_rows`: `x[r*ldx + j]`, `y[r*ldy + j]`, `mask[r*ldmask + j]` (nil: none;
    /// `ldmask == 0`: one mask row for all rows). `x * scale` is the Float product, the rest is
    /// Double; a row with a NaN term is NaN, a row whose every term is `-inf` is zeros.
    /// `y` may alias `x` with the same stride. Cost: O(rows * n), O(n) memory.
    package static func softmaxRows(
        rows: Int, n: Int, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
        scale: Float, mask: UnsafePointer<Float>?, ldmask: Int
    ) {
        SwiftSIMDKernels.softmaxRows(
            rows: rows, n: n, x: x, ldx: ldx, y: y, ldy: ldy, scale: scale, mask: mask, maskRowStride: ldmask)
    }

    /// The activation `f(x)` evaluated in Double with Foundation's erf, tanh and exp, rounded
    /// once to Float (the contract of `ck_f32_activation`). Note that `1 + erf` and
    /// `1 + tanh` cancel for very negative x: the result is then accurate to about
    /// `|x| * 2^-53` absolute only. Cost: O(1).
    package static func activation(_ kind: Activation, _ x: Float) -> Float {
        SwiftSIMDKernels.activation(kind, x)
    }

    /// Layer norm (`rms == false`) or RMS norm of `t = x + residual` per row, in Double with
    /// two passes, the contract of `ck_f32_norm_rows`: rows of n at `x[r*ldx]`,
    /// `residual[r*ldr]` (nil: none), `y[r*ldy]`; gamma and beta (nil: none; ignored for RMS)
    /// hold n floats. `y` may alias `x` or `residual` with the same stride.
    /// Cost: O(rows * n), O(n) memory.
    package static func normRows(
        rms: Bool, rows: Int, n: Int, x: UnsafePointer<Float>, ldx: Int, residual: UnsafePointer<Float>?, ldr: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?, eps: Float, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        SwiftSIMDKernels.normRows(
            rms: rms, rows: rows, n: n, x: x, ldx: ldx, residual: residual, ldr: ldr, gamma: gamma, beta: beta,
            eps: eps, y: y, ldy: ldy)
    }

    /// One attention head, the contract of `ck_attention_head` / `ck_f32_attention_block` on
    /// unpacked keys and values: for query i < seqQ and key j < seqK,
    /// `s(i, j) = scale * q_i·k_j + keyBias[j] + relBias[(i - j) + relBiasZero] + shawQK[i*W + c(i, j)]`
    /// (each term only when its pointer is non-nil, Shaw only when `shawClip > 0`), `-inf` when
    /// `causal` and `j > i + causalOffset` or when `window > 0` and `i + causalOffset - j >= window`
    /// (the sliding window); `o_i = sum_j softmax_j(s(i, .)) (v_j + shawV[c(i, j)])`,
    /// and `o_i = 0` when every score is `-inf`. With `W = 2 shawClip + 1` and
    /// `c(i, j) = clamp(j - (i + causalOffset), -shawClip, shawClip) + shawClip`; `shawQK` is
    /// seqQ x W, `shawV` is W x headDim. Query i is at `q + i*ldq`, key j at `k + j*ldk`,
    /// value j at `v + j*ldv`, output i at `o + i*ldo`. Scores, softmax and sums in Double.
    /// Cost: 4 * seqQ * seqK * headDim Double flops, O(seqK + headDim) memory.
    package static func attentionHead(
        seqQ: Int, seqK: Int, headDim: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
        v: UnsafePointer<Float>, ldv: Int, o: UnsafeMutablePointer<Float>, ldo: Int, scale: Float,
        causal: Bool, causalOffset: Int, keyBias: UnsafePointer<Float>?, relBias: UnsafePointer<Float>?,
        relBiasZero: Int, shawClip: Int, shawQK: UnsafePointer<Float>?, shawV: UnsafePointer<Float>?, window: Int = 0
    ) {
        SwiftSIMDKernels.attentionHead(
            seqQ: seqQ, seqK: seqK, headDim: headDim, q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv, o: o, ldo: ldo,
            scale: scale, causal: causal, causalOffset: causalOffset, keyBias: keyBias, relBias: relBias,
            relBiasZero: relBiasZero, shawClip: shawClip, shawQK: shawQK, shawV: shawV, window: window)
    }

    /// The float32 value of a 16-bit weight (BF16 when `bfloat16`, else IEEE binary16), by the
    /// safetensors reader's bit-by-bit Swift conversions (independent of the C widening):
    /// exact, NaN payloads kept. Cost: O(1).
    package static func widen16(_ bits: UInt16, bfloat16: Bool) -> Float {
        bfloat16 ? SafeTensorsConvert.float(fromBFloat16Bits: bits) : SafeTensorsConvert.float(fromHalfBits: bits)
    }

    /// The contract of `ck_w16_gemv` (and, with `rows` any count, of `ck_w16_gemm`'s
    /// product): for r < rows and j < n,
    /// `y[r*ldy + j] = alpha * sum_p x[r*ldx + p] * widen(w[j*ldw + p]) + beta * y[r*ldy + j]`
    /// (`beta == 0`: y not read), each sum in Double in order p = 0, 1, ..., rounded to Float
    /// once. Cost: 2 * rows * n * k Double flops, one thread.
    package static func w16Product(
        bfloat16: Bool, rows: Int, n: Int, k: Int, alpha: Float, x: UnsafePointer<Float>, ldx: Int,
        w: UnsafePointer<UInt16>, ldw: Int, beta: Float, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        for r in 0..<rows {
            for j in 0..<n {
                var d = 0.0
                for p in 0..<k { d += Double(x[r * ldx + p]) * Double(widen16(w[j * ldw + p], bfloat16: bfloat16)) }
                let old = beta == 0 ? 0 : Double(beta) * Double(y[r * ldy + j])
                y[r * ldy + j] = Float(Double(alpha) * d + old)
            }
        }
    }

    /// `x` rounded to a 16-bit weight (BF16 when `bfloat16`, else IEEE binary16), to nearest
    /// with ties to even (what `WeightPrecision` conversion stores). Cost: O(1).
    package static func round16(_ x: Float, bfloat16: Bool) -> UInt16 {
        bfloat16 ? HalfType.bfloat16Bits(x) : HalfType.halfBits(x)
    }
}
