/// The Swift `SIMD` implementations of the kernels: the `.swiftSIMD` backend and the oracle
/// the C kernels are tested against. Written independently of the C code (no packing, no
/// blocking), in a fixed evaluation order, accumulating in `Double`.
enum SwiftSIMDKernels {
    /// `C = alpha * op(A) * op(B) + beta * C` (see `gemm(alpha:a:_:b:_:beta:c:ldc:compute:)`
    /// for the layouts; arguments are validated there). Each row of C is one parallel item.
    ///
    /// Two loop forms, chosen by how B lies in memory:
    /// - `op(B)` rows contiguous (B not transposed): row i of C accumulates
    ///   `a[i][p] * B[p][0..<n]` over p in order (an axpy per p), 4 lanes at a time in Double.
    /// - `op(B)` columns contiguous (B transposed, a PyTorch weight): each C[i][j] is a dot
    ///   product of row i of op(A) with row j of B, summed in 4 Double lanes, lanes added last.
    static func gemm(
        m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, transA: Bool,
        b: UnsafePointer<Float>, ldb: Int, transB: Bool, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int
    ) {
        let rowsPerItem = max(1, min(m, (1 << 20) / max(1, n * max(k, 1))))
        let items = (m + rowsPerItem - 1) / rowsPerItem
        parallelFor(items, threads: threads) { item in
            let rowA = UnsafeMutablePointer<Float>.allocate(capacity: max(k, 1))
            let acc = UnsafeMutablePointer<Double>.allocate(capacity: max(n, 1) + 3)
            defer {
                rowA.deallocate()
                acc.deallocate()
            }
            for i in item * rowsPerItem..<min(m, (item + 1) * rowsPerItem) {
                // Row i of op(A), gathered once.
                for p in 0..<k { rowA[p] = transA ? a[p * lda + i] : a[i * lda + p] }
                acc.initialize(repeating: 0, count: n + 3)
                if alpha != 0 && k > 0 {
                    if transB {
                        for j in 0..<n { acc[j] = dot(rowA, b + j * ldb, k) }
                    } else {
                        for p in 0..<k { axpy(Double(rowA[p]), b + p * ldb, acc, n) }
                    }
                }
                let crow = c + i * ldc
                for j in 0..<n {
                    let product = Double(alpha) * acc[j]
                    crow[j] = beta == 0 ? Float(product) : Float(product + Double(beta) * Double(crow[j]))
                }
            }
        }
    }

    /// `sum(x[p] * y[p])` over p in 0..<k, in 4 Double lanes (lane l takes p ≡ l mod 4), then
    /// the lanes in order 0...3.
    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ k: Int) -> Double {
        var s = SIMD4<Double>()
        var p = 0
        while p + 4 <= k {
            let xv = SIMD4<Double>(SIMD4<Float>(x[p], x[p + 1], x[p + 2], x[p + 3]))
            let yv = SIMD4<Double>(SIMD4<Float>(y[p], y[p + 1], y[p + 2], y[p + 3]))
            s += xv * yv
            p += 4
        }
        var tail = 0.0
        while p < k {
            tail += Double(x[p]) * Double(y[p])
            p += 1
        }
        return ((s[0] + s[1]) + (s[2] + s[3])) + tail
    }

    /// `acc[0..<n] += alpha * y[0..<n]`, 4 Double lanes at a time.
    @inline(__always)
    static func axpy(_ alpha: Double, _ y: UnsafePointer<Float>, _ acc: UnsafeMutablePointer<Double>, _ n: Int) {
        let av = SIMD4<Double>(repeating: alpha)
        var j = 0
        while j + 4 <= n {
            let yv = SIMD4<Double>(SIMD4<Float>(y[j], y[j + 1], y[j + 2], y[j + 3]))
            let cur = SIMD4<Double>(acc[j], acc[j + 1], acc[j + 2], acc[j + 3])
            let r = cur + av * yv
            acc[j] = r[0]; acc[j + 1] = r[1]; acc[j + 2] = r[2]; acc[j + 3] = r[3]
            j += 4
        }
        while j < n {
            acc[j] += alpha * Double(y[j])
            j += 1
        }
    }
}
