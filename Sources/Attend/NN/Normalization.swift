/// Layer normalization (Ba et al.) over the last axis, optionally fused with the residual
/// add that precedes it in a Transformer block: `LayerNorm(x + residual)`.
///
/// Shapes: `weight` and `bias` `[n]`; input `[..., n]`, output the same. Cost: three passes.
public struct LayerNorm: Sendable {
    /// Scale, `[n]`.
    public let weight: Tensor
    /// Shift, `[n]` (nil for a norm without bias).
    public let bias: Tensor?
    /// Added to the variance before the square root.
    public let eps: Float

    /// A layer norm from its parameters.
    public init(weight: Tensor, bias: Tensor?, eps: Float = 1e-5) {
        precondition(
            weight.rank == 1 && (bias == nil || bias!.shape == weight.shape),
            "LayerNorm: weight \(weight.shape) and bias \(bias?.shape ?? []) must be equal vectors")
        self.weight = weight
        self.bias = bias
        self.eps = eps
    }

    /// `(t - mean(t)) / sqrt(var(t) + eps) * weight + bias` with `t = x + residual`, per row.
    public func callAsFunction(_ x: Tensor, residual: Tensor? = nil, compute: Compute = .default) -> Tensor {
        var out = Tensor.uninitialized(x.shape)  // every row written by normRows
        normRows(rms: false, x, residual: residual, gamma: weight, beta: bias, eps: eps, into: &out, compute: compute)
        return out
    }
}

/// Root-mean-square normalization (T5's "layer norm"): `t / sqrt(mean(t²) + eps) * weight`
/// with `t = x + residual`; no mean subtraction, no bias.
///
/// Shapes: `weight` `[n]`; input `[..., n]`, output the same. Cost: two passes.
public struct RMSNorm: Sendable {
    /// Scale, `[n]`.
    public let weight: Tensor
    /// Added to the mean square before the square root.
    public let eps: Float

    /// An RMS norm from its weight.
    public init(weight: Tensor, eps: Float = 1e-6) {
        precondition(weight.rank == 1, "RMSNorm: weight must be a vector, got \(weight.shape)")
        self.weight = weight
        self.eps = eps
    }

    /// The normalized rows of `x + residual`.
    public func callAsFunction(_ x: Tensor, residual: Tensor? = nil, compute: Compute = .default) -> Tensor {
        var out = Tensor.uninitialized(x.shape)  // every row written by normRows
        normRows(rms: true, x, residual: residual, gamma: weight, beta: nil, eps: eps, into: &out, compute: compute)
        return out
    }
}

/// Either normalization, as a Transformer block uses it.
public enum Norm: Sendable {
    /// Layer norm with mean subtraction and bias.
    case layer(LayerNorm)
    /// RMS norm (T5).
    case rms(RMSNorm)

    /// The normalized rows of `x + residual`. Shapes: `[..., n]` in and out.
    public func callAsFunction(_ x: Tensor, residual: Tensor? = nil, compute: Compute = .default) -> Tensor {
        switch self {
        case .layer(let n): return n(x, residual: residual, compute: compute)
        case .rms(let n): return n(x, residual: residual, compute: compute)
        }
    }
}
