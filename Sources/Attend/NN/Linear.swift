/// A fully connected layer, `y = x Wᵀ + b`, with the weight stored as PyTorch stores it.
///
/// Shapes: `weight` `[out, in]`, `bias` `[out]`; input `[..., in]`, output `[..., out]`.
/// Cost: `2 * rows * in * out` flops. On a native kernel variant the layer packs its weight
/// once, the first time a product of more than two rows runs on that variant (one copy of
/// the weight per variant used, kept for the layer's lifetime and shared by its copies), and
/// every later product streams the packed weight with the bias added in the same pass; a row
/// or two (decoding) read the weight as stored, once per product, through matrix-vector
/// products.
public struct Linear: Sendable {
    /// `[outFeatures, inFeatures]`.
    public let weight: Tensor
    /// `[outFeatures]`, or nil for a layer without bias.
    public let bias: Tensor?
    /// The weight packed per kernel variant, made on first use.
    let packed = PackedWeightCache()
    /// The int8 weight of a layer loaded from an `attend quantize` folder (see Linear+Int8.swift):
    /// native products run on it; `weight` is its dequantization.
    let quantized: QuantizedWeight?

    /// A layer from its parameters; `bias` must have `weight.shape[0]` scalars.
    public init(weight: Tensor, bias: Tensor?) {
        self.init(weight: weight, bias: bias, quantized: nil)
    }

    init(weight: Tensor, bias: Tensor?, quantized: QuantizedWeight?) {
        precondition(weight.rank == 2, "Linear: weight must be [out, in], got \(weight.shape)")
        if let bias {
            precondition(bias.shape == [weight.shape[0]], "Linear: bias \(bias.shape) does not match weight \(weight.shape)")
        }
        self.weight = weight
        self.bias = bias
        self.quantized = quantized
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
        forward(x, outputs: outputs, compute: compute)
    }

    /// Packs the weight for `compute`'s kernel variant now (a no-op off the native backend or
    /// when already packed), so the first product does not pay for it. Cost: one read and
    /// write of the weight; memory: one packed copy.
    func prepack(for compute: Compute) {
        if case .native(let variant) = compute.backend, quantized == nil { _ = packed.packed(weight, variant: variant, threads: compute.threads) }
    }

    /// `activation(x Wᵀ + b) + residual` in one pass over the output (the activation and the
    /// residual add are fused into the product's epilogue on the packed path): `[..., in]` to
    /// `[..., outputs.count]`; `residual` holds the output's scalars (any shape of that count
    /// ending in `outputs.count`).
    func forward(
        _ x: Tensor, outputs: Range<Int>? = nil, activation: Activation? = nil, residual: Tensor? = nil,
        compute: Compute
    ) -> Tensor {
        let outputs = outputs ?? 0..<outFeatures
        precondition(
            x.rank >= 1 && x.shape.last == inFeatures,
            "Linear: input \(x.shape) does not end in inFeatures \(inFeatures) (weight \(weight.shape))")
        precondition(
            outputs.lowerBound >= 0 && outputs.upperBound <= outFeatures,
            "Linear: outputs \(outputs) out of range for weight \(weight.shape)")
        if let quantized, case .native(let variant) = compute.backend {
            return linearForwardInt8(
                x, weight: quantized, bias: bias, outputs: outputs, activation: activation, residual: residual, variant: variant,
                compute: compute)
        }
        return linearForward(
            x, weight: weight, bias: bias, outputs: outputs, cache: packed, activation: activation,
            residual: residual, compute: compute)
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
        for id in ids {
            precondition(id >= 0 && id < count, "Embedding: id \(id) out of range for table \(weight.shape)")
        }
        return weight.gatherRows(ids, scale: scale)
    }
}
