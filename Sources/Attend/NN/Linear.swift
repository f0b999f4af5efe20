/// A fully connected layer, `y = x Wᵀ + b`, with the weight stored as PyTorch stores it.
///
/// Shapes: `weight` `[out, in]`, `bias` `[out]`; input `[..., in]`, output `[..., out]`.
/// Cost: `2 * rows * in * out` flops. On a native kernel variant a float32 layer packs its
/// weight once, the first time a product of more than a few rows (more than 4 on AVX-512 and
/// NEON, 2 on AVX2 and scalar) runs on that variant (one copy
/// of the weight per variant used, kept for the layer's lifetime and shared by its copies), and
/// every later product streams the packed weight with the bias added in the same pass; that
/// few rows (decoding) read the weight as stored, once per product, through matrix-vector
/// products.
///
/// The weight may be kept in 16 bits (``weightPrecision`` `.float16` or `.bfloat16`: loaded
/// so from an F16 or BF16 checkpoint, or rounded by ``init(weight:bias:precision:)``). It is
/// then never widened in memory: the products widen it in registers (the float32 product of
/// the widened weight, exactly), decoding reads half the bytes, and the weight is not packed
/// ahead (products of more than 8 rows widen and pack it block by block per call).
///
/// A layer loaded from an `attend quantize` folder holds its weight as int8 values and scales
/// only (``weightFormat`` `.int8Channel` or `.int8Group32`, borrowed from the mapped file): native
/// products run on the int8 kernels; the Swift SIMD backend dequantizes blocks of rows per
/// product; ``weight`` is a dequantized copy made on every access.
public struct Linear: Sendable {
    /// The weight as held: float32, 16-bit as stored, or int8 with its scales.
    let storage: WeightStorage
    /// `[outFeatures]`, or nil for a layer without bias.
    public let bias: Tensor?
    /// The weight packed per kernel variant, made on first use (float32 weights only).
    let packed = PackedWeightCache()

    /// The int8 weight of a layer loaded from an `attend quantize` folder (see
    /// Linear+Int8.swift), nil for a float weight.
    var quantized: QuantizedWeight? {
        if case .int8(let q) = storage { return q }
        return nil
    }

    /// `[outFeatures, inFeatures]` as float32. For a float32 layer this is the weight itself
    /// (no cost); for a 16-bit or int8 layer it is a widened (dequantized) copy made on every
    /// access (one pass over the weight, four bytes per weight, exact), so read it once, not
    /// per product.
    public var weight: Tensor { storage.float32 }

    /// The float element type the weight is held in; `.float32` for an int8 weight (see
    /// ``weightFormat``), whose products compute in float32.
    public var weightPrecision: WeightPrecision { storage.precision }

    /// How the weight values are held: float32, 16-bit, or int8 (per channel or per group
    /// of 32). O(1).
    public var weightFormat: WeightFormat { storage.format }

    /// Bytes the layer holds for its weight values (int8: values and scales; the bias and
    /// packed copies are not counted). O(1).
    public var weightByteCount: Int { storage.byteCount }

    /// A layer from its parameters; `bias` must have `weight.shape[0]` scalars. The weight is
    /// kept as given (float32).
    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Linear: weight must be [out, in], got \(weight.shape)")
        self.init(storage: .float32(weight), bias: bias)
    }

    /// A layer whose weight is held in `precision`: float32 keeps `weight`; `.float16` and
    /// `.bfloat16` round it to 16 bits (to nearest, ties to even) and keep only those. Cost:
    /// one pass over the weight.
    public init(weight: Tensor, bias: Tensor?, precision: WeightPrecision) {
        precondition(weight.rank == 2, "Linear: weight must be [out, in], got \(weight.shape)")
        self.init(storage: WeightStorage.float32(weight).converted(to: precision), bias: bias)
    }

    /// A layer over a weight as held (shared, not copied; except that an owned float32 weight
    /// of a size `WeightArena` places is copied there, onto huge pages).
    init(storage: WeightStorage, bias: Tensor?) {
        if let bias {
            precondition(bias.shape == [storage.shape[0]], "Linear: bias \(bias.shape) does not match weight \(storage.shape)")
        }
        if case .float32(let t) = storage {
            self.storage = .float32(t.placedInWeightArena())
        } else {
            self.storage = storage
        }
        self.bias = bias
    }

    /// A layer (an output head) whose weight is `embedding`'s table, shared and held as the
    /// table is (tied input and output embeddings): `[count, dim]` as `[out, in]`. No copy.
    public init(tiedTo embedding: Embedding, bias: Tensor? = nil) {
        self.init(storage: embedding.storage, bias: bias)
    }

    /// The same layer with its weight held in `precision` (self when it already is, and for
    /// an int8 weight, which stays int8). Cost: one pass over the weight when it changes.
    public func converted(to precision: WeightPrecision) -> Linear {
        precision == weightPrecision || weightFormat.isInt8 ? self : Linear(storage: storage.converted(to: precision), bias: bias)
    }

    /// `[outFeatures, inFeatures]`, without widening a 16-bit weight.
    var weightShape: [Int] { storage.shape }

    /// Input size (`weight.shape[1]`).
    public var inFeatures: Int { storage.shape[1] }
    /// Output size (`weight.shape[0]`).
    public var outFeatures: Int { storage.shape[0] }

    /// `x Wᵀ + b` over the last axis of `x`: `[..., in]` to `[..., out]`.
    public func callAsFunction(_ x: Tensor, compute: Compute = .default) -> Tensor {
        callAsFunction(x, outputs: 0..<outFeatures, compute: compute)
    }

    /// Only the outputs in `outputs` (a row range of the weight): `[..., in]` to
    /// `[..., outputs.count]`. A fused QKV weight uses this to project keys and values alone.
    public func callAsFunction(_ x: Tensor, outputs: Range<Int>, compute: Compute = .default) -> Tensor {
        forward(x, outputs: outputs, compute: compute)
    }

    /// Packs the weight for `compute`'s kernel variant now (a no-op off the native backend, for
    /// a 16-bit weight, or when already packed), so the first product does not pay for it.
    /// Cost: one read and write of the weight; memory: one packed copy.
    func prepack(for compute: Compute) {
        if case .parts(let parts) = storage { parts.forEach { $0.prepack(for: compute) } }
        if case .native(let variant) = compute.backend, case .float32(let weight) = storage {
            _ = packed.packed(weight, variant: variant, threads: compute.threads)
        }
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
            "Linear: input \(x.shape) does not end in inFeatures \(inFeatures) (weight \(weightShape))")
        precondition(
            outputs.lowerBound >= 0 && outputs.upperBound <= outFeatures,
            "Linear: outputs \(outputs) out of range for weight \(weightShape)")
        if let quantized, case .native(let variant) = compute.backend {
            return linearForwardInt8(
                x, weight: quantized, bias: bias, outputs: outputs, activation: activation, residual: residual, variant: variant,
                compute: compute)
        }
        return linearForward(
            x, weight: storage, bias: bias, outputs: outputs, cache: packed, activation: activation,
            residual: residual, compute: compute)
    }
}

/// A lookup table of learned vectors, one row per token id (or position).
///
/// Shapes: `weight` `[count, dim]`; `ids` of length n give `[n, dim]`. Cost: a copy of n rows
/// (widened to float32 when the table is held in 16 bits, see ``WeightPrecision``).
public struct Embedding: Sendable {
    /// The table as held: float32, or 16-bit as stored.
    let storage: WeightStorage

    /// `[count, dim]` as float32: the table itself when it is float32 (no cost), a widened
    /// copy made on every access when it is held in 16 bits (one pass, twice its memory).
    public var weight: Tensor { storage.float32 }

    /// The element type the table is held in.
    public var weightPrecision: WeightPrecision { storage.precision }

    /// A table from its weight `[count, dim]`, kept as given (float32).
    public init(weight: Tensor) {
        precondition(weight.rank == 2, "Embedding: weight must be [count, dim], got \(weight.shape)")
        self.storage = .float32(weight)
    }

    /// A table held in `precision` (`.float16` and `.bfloat16` round `weight` to 16 bits, to
    /// nearest with ties to even, and keep only those). Cost: one pass over the table.
    public init(weight: Tensor, precision: WeightPrecision) {
        precondition(weight.rank == 2, "Embedding: weight must be [count, dim], got \(weight.shape)")
        self.storage = WeightStorage.float32(weight).converted(to: precision)
    }

    /// A table over a weight as held (shared, not copied).
    init(storage: WeightStorage) {
        precondition(storage.shape.count == 2, "Embedding: weight must be [count, dim], got \(storage.shape)")
        self.storage = storage
    }

    /// The same table held in `precision` (self when it already is).
    public func converted(to precision: WeightPrecision) -> Embedding {
        precision == weightPrecision ? self : Embedding(storage: storage.converted(to: precision))
    }

    /// Number of rows (the vocabulary size).
    public var count: Int { storage.shape[0] }
    /// Width of each row.
    public var dim: Int { storage.shape[1] }

    /// The rows for `ids`, `[ids.count, dim]`, each multiplied by `scale`. Every id must be in
    /// `0..<count` (ids from outside are validated by the tokenizer or the caller).
    public func callAsFunction(_ ids: [Int], scale: Float = 1) -> Tensor {
        for id in ids {
            precondition(id >= 0 && id < count, "Embedding: id \(id) out of range for table \(storage.shape)")
        }
        return storage.gatherRows(ids, scale: scale)
    }
}
