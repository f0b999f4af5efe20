/// Matrix products and element-wise arithmetic on tensors.
extension Tensor {
    /// The matrix product `op(self) * op(other)`, where `op` transposes when asked.
    ///
    /// Shapes: `self` is `[m, k]` (or `[k, m]` with `transposeSelf`), `other` is `[k, n]` (or
    /// `[n, k]` with `transposeOther`, the layout of a PyTorch `Linear` weight); the result is
    /// `[m, n]`. Cost: `2*m*n*k` flops, parallel over `compute.threads`.
    public func matmul(
        _ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false,
        compute: Compute = .default
    ) -> Tensor {
        precondition(rank == 2 && other.rank == 2, "matmul: operands must be matrices, got \(shape) and \(other.shape)")
        let m = transposeSelf ? shape[1] : shape[0]
        let n = transposeOther ? other.shape[0] : other.shape[1]
        var out = Tensor.zeros([m, n])
        out.gemm(self, transposeA: transposeSelf, other, transposeB: transposeOther, compute: compute)
        return out
    }

    /// In place: `self = alpha * op(a) * op(b) + beta * self` (BLAS SGEMM).
    ///
    /// Shapes: `op(a)` is `[m, k]`, `op(b)` is `[k, n]`, `self` is `[m, n]`. With `beta == 0`
    /// the old contents of `self` are not read (NaN in `self` does not leak through).
    /// Cost: `2*m*n*k` flops, parallel over `compute.threads`.
    public mutating func gemm(
        alpha: Float = 1, _ a: Tensor, transposeA: Bool = false, _ b: Tensor, transposeB: Bool = false,
        beta: Float = 0, compute: Compute = .default
    ) {
        precondition(a.rank == 2 && b.rank == 2 && rank == 2, "gemm: operands must be matrices, got A \(a.shape), B \(b.shape), C \(shape)")
        let opA = MatrixOperand(
            rows: transposeA ? a.shape[1] : a.shape[0], cols: transposeA ? a.shape[0] : a.shape[1],
            ld: max(a.shape[1], 1), transposed: transposeA)
        let opB = MatrixOperand(
            rows: transposeB ? b.shape[1] : b.shape[0], cols: transposeB ? b.shape[0] : b.shape[1],
            ld: max(b.shape[1], 1), transposed: transposeB)
        precondition(
            opA.cols == opB.rows && shape == [opA.rows, opB.cols],
            "gemm: A \(a.shape)\(transposeA ? "ᵀ" : "") x B \(b.shape)\(transposeB ? "ᵀ" : "") does not fit C \(shape)")
        let ldc = max(shape[1], 1)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                withUnsafeMutableBufferPointer { pc in
                    Attend.gemm(alpha: alpha, a: pa, opA, b: pb, opB, beta: beta, c: pc, ldc: ldc, compute: compute)
                }
            }
        }
    }

    private func zipMap(_ other: Tensor, _ op: String, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(shape == other.shape, "Tensor \(op): shapes differ: \(shape) and \(other.shape)")
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                Tensor(shape: shape, generating: { f(a[$0], b[$0]) })
            }
        }
    }

    /// Element-wise sum of two tensors of the same shape. Cost: O(count).
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, "+", +) }

    /// Element-wise difference of two tensors of the same shape. Cost: O(count).
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, "-", -) }

    /// Element-wise (Hadamard) product of two tensors of the same shape. Cost: O(count).
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipMap(rhs, "*", *) }

    /// Every scalar multiplied by `scale`. Cost: O(count).
    public static func * (lhs: Tensor, scale: Float) -> Tensor {
        lhs.withUnsafeBufferPointer { a in Tensor(shape: lhs.shape, generating: { a[$0] * scale }) }
    }

    /// Every scalar multiplied by `scale`. Cost: O(count).
    public static func * (scale: Float, rhs: Tensor) -> Tensor { rhs * scale }

    /// In place: `self += other` (same shape). Cost: O(count).
    public static func += (lhs: inout Tensor, rhs: Tensor) {
        precondition(lhs.shape == rhs.shape, "Tensor +=: shapes differ: \(lhs.shape) and \(rhs.shape)")
        rhs.withUnsafeBufferPointer { b in
            lhs.withUnsafeMutableBufferPointer { a in
                for i in a.indices { a[i] += b[i] }
            }
        }
    }

    /// In place: every scalar multiplied by `scale`. Cost: O(count).
    public static func *= (lhs: inout Tensor, scale: Float) {
        lhs.withUnsafeMutableBufferPointer { a in
            for i in a.indices { a[i] *= scale }
        }
    }
}
