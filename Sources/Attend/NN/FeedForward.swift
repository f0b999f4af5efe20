/// The position-wise feed-forward block: `W2 f(W1 x + b1) + b2` (the paper's FFN), or the
/// gated form `W2 (f(W1 x) * (V x))` of T5's gated-GELU and GLU variants.
///
/// Shapes: input `[..., d]`, hidden `[..., dFF]`, output `[..., d]`.
/// Cost: `4 * rows * d * dFF` flops (6 for the gated form) plus one activation pass.
public struct FeedForward: Sendable {
    /// `d -> dFF`.
    public let up: Linear
    /// `d -> dFF`, multiplied element-wise into the activated `up` output (nil: not gated).
    public let gate: Linear?
    /// `dFF -> d`.
    public let down: Linear
    /// Applied to `up`'s output.
    public let activation: Activation

    /// A block from its layers; `up`/`gate` must map d to dFF and `down` dFF back to d.
    public init(up: Linear, down: Linear, activation: Activation, gate: Linear? = nil) {
        precondition(
            down.inFeatures == up.outFeatures && down.outFeatures == up.inFeatures,
            "FeedForward: up \(up.weightShape) and down \(down.weightShape) do not chain d -> dFF -> d")
        if let gate {
            precondition(gate.weightShape == up.weightShape, "FeedForward: gate \(gate.weightShape) differs from up \(up.weightShape)")
        }
        self.up = up
        self.gate = gate
        self.down = down
        self.activation = activation
    }

    /// The block applied to every position of `x` (`[..., d]`).
    public func callAsFunction(_ x: Tensor, compute: Compute = .default) -> Tensor {
        forward(x, compute: compute)
    }

    /// The block plus `residual` (a tensor like the output, added in the down projection's
    /// epilogue: the pre-LN residual connection). Without a gate the activation runs in the
    /// up projection's epilogue.
    func forward(_ x: Tensor, residual: Tensor? = nil, compute: Compute) -> Tensor {
        var h: Tensor  // [..., dFF]
        if let gate {
            h = up(x, compute: compute)
            h.apply(activation, compute: compute)
            h = h * gate(x, compute: compute)
        } else {
            // Hidden rows of a multiple of 4 KiB: padded, so the down product reads them in place.
            if let out = paddedFeedForward(x, up: up, down: down, activation: activation, residual: residual, compute: compute) {
                return out
            }
            h = up.forward(x, activation: activation, compute: compute)
        }
        return down.forward(h, residual: residual, compute: compute)  // [..., d]
    }
}
