/// A fully connected layer, `y = x Wᵀ + b`, with the weight stored as PyTorch stores it.
///
/// Shapes: `weight` `[out, in]`, `bias` `[out]`; input `[..., in]`, output `[..., out]`.
/// Cost: `2 * rows * in * out` flops (one SGEMM; the bias is added by the GEMM's beta term).
public struct Linear: Sendable {
    /// `[outFeatures, inFeatures]`.
    public let weight: Tensor
    /// `[outFeatures]`, or nil for a layer without bias.
    public let bias: Tensor?

    /// A layer from its parameters; `bias` must have `weight.shape[0]` scalars.
    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Linear: weight must be [out, in], got \(weight.shape)")
        if let bias {
            precondition(bias.shape == [weight.shape[0]], "Linear: bias \(bias.shape) does not match weight \(weight.shape)")
        }
        self.weight = weight
        self.bias = bias
    }

    /// Input size (`weight.shape[1]`).
    public var inFeatures: Int { weight.shape[1] }
    /// Output size (`weight.shape[0]`).
    public var outFeatures: Int { weight.shape[0] }

    /// `x Wᵀ + b` over the last axis of `x`: `[..., in]` to `[..., out]`.
    public func callAsFunction(_ x: Tensor, compute: Compute = .default) -> Tensor {
        callAsFunction(x, outputs: 0..<outFeatures, compute: compute)
    }

    /// Only the outputs in `outputs` (a row range of the weight): `[..., in]` to
    /// `[..., outputs.count]`. A fused QKV weight uses this to project keys and values alone.
    public func callAsFunction(_ x: Tensor, outputs: Range<Int>, compute: Compute = .default) -> Tensor {
        precondition(x.rank >= 1 && x.shape.last == inFeatures,
                     "Linear: input \(x.shape) does not end in inFeatures \(inFeatures) (weight \(weight.shape))")
        precondition(outputs.lowerBound >= 0 && outputs.upperBound <= outFeatures,
                     "Linear: outputs \(outputs) out of range for weight \(weight.shape)")
        let rows = inFeatures == 0 ? x.count : x.count / inFeatures
        let n = outputs.count
        var out: Tensor
        if let bias {
            // Every output row starts as the bias (one row copy each; the GEMM adds onto it).
            let outRows = x.shape.dropLast().reduce(1, *)  // differs from `rows` only when in == 0
            let start = TensorStorage(uninitializedCount: outRows * n)
            bias.withUnsafeBufferPointer { b in
                for r in 0..<outRows where n > 0 { (start.base + r * n).initialize(from: b.baseAddress! + outputs.lowerBound, count: n) }
            }
            out = Tensor(shape: x.shape.dropLast() + [n], storage: start)
        } else {
            out = Tensor.zeros(x.shape.dropLast() + [n])
        }
        if rows == 0 || n == 0 { return out }
        let k = inFeatures
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                out.withUnsafeMutableBufferPointer { op in
                    let w = UnsafeBufferPointer(rebasing: wp[(outputs.lowerBound * k)...])
                    gemm(alpha: 1, a: xp, MatrixOperand(rows: rows, cols: k, ld: max(k, 1), transposed: false),
                         b: w, MatrixOperand(rows: k, cols: n, ld: max(k, 1), transposed: true),
                         beta: bias == nil ? 0 : 1, c: op, ldc: n, compute: compute)
                }
            }
        }
        return out
    }
}

/// A lookup table of learned vectors, one row per token id (or position).
///
/// Shapes: `weight` `[count, dim]`; `ids` of length n give `[n, dim]`. Cost: a copy of n rows.
public struct Embedding: Sendable {
    /// `[count, dim]`.
    public let weight: Tensor

    /// A table from its weight `[count, dim]`.
    public init(weight: Tensor) {
        precondition(weight.rank == 2, "Embedding: weight must be [count, dim], got \(weight.shape)")
        self.weight = weight
    }

    /// Number of rows (the vocabulary size).
    public var count: Int { weight.shape[0] }
    /// Width of each row.
    public var dim: Int { weight.shape[1] }

    /// The rows for `ids`, `[ids.count, dim]`, each multiplied by `scale`. Every id must be in
    /// `0..<count` (ids from outside are validated by the tokenizer or the caller).
    public func callAsFunction(_ ids: [Int], scale: Float = 1) -> Tensor {
        let d = dim
        for id in ids {
            precondition(id >= 0 && id < count, "Embedding: id \(id) out of range for table \(weight.shape)")
        }
        return weight.withUnsafeBufferPointer { w in
            var out = Tensor.zeros([ids.count, d])
            out.withUnsafeMutableBufferPointer { o in
                for (r, id) in ids.enumerated() {
                    for c in 0..<d { o[r * d + c] = w[id * d + c] * scale }
                }
            }
            return out
        }
    }
}
