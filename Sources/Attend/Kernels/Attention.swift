import Foundation

/// How the four axes of an attention tensor are ordered.
public enum AttentionLayout: Sendable {
    /// `[batch, seq, heads, headDim]`: what a projection `[batch*seq, heads*headDim]` gives
    /// without any transpose. The default.
    case bshd
    /// `[batch, heads, seq, headDim]`: PyTorch's `scaled_dot_product_attention` layout.
    case bhsd
}

/// Which keys each query may attend to.
public struct AttentionMask: Sendable {
    /// When true, query `i` sees key `j` only if `j <= i + queryStart` (causal decoding).
    public var causal: Bool
    /// The position of query 0 among the keys: 0 when queries and keys are the same sequence;
    /// `p` when `seqQ` new queries are appended to a cache that now holds `p + seqQ` keys.
    /// Used by the causal mask and by relative-position biases.
    public var queryStart: Int
    /// Key padding per batch row, `[batch][seqK]`, `true` = attend (a real token), `false` =
    /// padding. `nil` means every key is real.
    public var keyPadding: [[Bool]]?

    /// A mask; see the properties.
    public init(causal: Bool = false, queryStart: Int = 0, keyPadding: [[Bool]]? = nil) {
        self.causal = causal
        self.queryStart = queryStart
        self.keyPadding = keyPadding
    }

    /// Every query sees every key.
    public static let none = AttentionMask()
    /// Query `i` sees keys `0...i`.
    public static let causal = AttentionMask(causal: true)
}

/// An additive bias on the attention scores that depends only on the heads and the relative
/// position `key - query` (with the query at position `i + queryStart`). The fused kernel looks
/// it up inside its tile loop from a table of O(seqQ + seqK) floats per head; no
/// `seqQ x seqK` tensor is ever built.
public enum AttentionBias: Sendable {
    /// No bias.
    case none
    /// ALiBi (Press et al.): `slopes[h] * (key - query)`; with `symmetric`,
    /// `-slopes[h] * |key - query|` (for encoders). See ``alibiSlopes(heads:)``.
    case alibi(slopes: [Float], symmetric: Bool)
    /// T5's learned bias: `table[bucket(key - query), h]`, `table` of shape
    /// `[numBuckets, heads]` (the checkpoint's `relative_attention_bias.weight`). See
    /// ``t5RelativePositionBucket(_:bidirectional:numBuckets:maxDistance:)``.
    case t5(table: Tensor, bidirectional: Bool, maxDistance: Int)

    /// The bias for head `h` at relative position `rel = key - query`.
    func value(head h: Int, relative rel: Int) -> Float {
        switch self {
        case .none: return 0
        case .alibi(let slopes, let symmetric):
            return symmetric ? -slopes[h] * Float(abs(rel)) : slopes[h] * Float(rel)
        case .t5(let table, let bidirectional, let maxDistance):
            let b = t5RelativePositionBucket(rel, bidirectional: bidirectional, numBuckets: table.shape[0], maxDistance: maxDistance)
            return table[b, h]
        }
    }

    var isNone: Bool {
        if case .none = self { return true }
        return false
    }

    func validate(heads: Int) {
        switch self {
        case .none: break
        case .alibi(let slopes, _):
            precondition(slopes.count == heads, "AttentionBias.alibi: \(slopes.count) slopes for \(heads) heads")
        case .t5(let table, _, let maxDistance):
            precondition(table.rank == 2 && table.shape[1] == heads && table.shape[0] >= 2,
                         "AttentionBias.t5: table shape \(table.shape) must be [numBuckets >= 2, heads = \(heads)]")
            precondition(maxDistance > 0, "AttentionBias.t5: maxDistance \(maxDistance) must be positive")
        }
    }
}

/// ALiBi head slopes (Press et al., 2022): for `n` a power of two, `2^(-8i/n)` for
/// i = 1...n; otherwise the slopes of the next lower power of two followed by every other
/// slope of twice that many (the reference implementation's rule). Cost: O(heads).
public func alibiSlopes(heads: Int) -> [Float] {
    precondition(heads >= 1, "alibiSlopes: heads must be at least 1, got \(heads)")
    func powerOfTwo(_ n: Int) -> [Double] {
        let start = pow(2.0, -pow(2.0, -(log2(Double(n)) - 3)))
        return (0..<n).map { start * pow(start, Double($0)) }
    }
    let p = 1 << Int(log2(Double(heads)).rounded(.down))
    var slopes = powerOfTwo(p)
    if p < heads {
        slopes += powerOfTwo(2 * p).enumerated().filter { $0.offset % 2 == 0 }.map(\.element).prefix(heads - p)
    }
    return slopes.map { Float($0) }
}

/// T5's bucket for a relative position `key - query` (Raffel et al.; `transformers`'
/// `T5Attention._relative_position_bucket`): half the buckets (all when not bidirectional,
/// where only `key <= query` counts) hold exact small distances, the rest grow
/// logarithmically up to `maxDistance`; farther distances share the last bucket. Cost: O(1).
public func t5RelativePositionBucket(_ relativePosition: Int, bidirectional: Bool, numBuckets: Int, maxDistance: Int) -> Int {
    precondition(numBuckets >= 2 && maxDistance >= 1, "t5RelativePositionBucket: numBuckets \(numBuckets), maxDistance \(maxDistance)")
    var buckets = numBuckets
    var bucket = 0
    var n: Int
    if bidirectional {
        buckets /= 2
        if relativePosition > 0 { bucket += buckets }
        n = abs(relativePosition)
    } else {
        n = max(-relativePosition, 0)
    }
    let maxExact = buckets / 2
    if n < maxExact { return bucket + n }
    // The reference computes this in float32: log(n / maxExact) / log(maxDistance / maxExact).
    let ratio = Float(log(Float(n) / Float(maxExact))) / Float(log(Float(maxDistance) / Float(maxExact)))
    let large = maxExact + Int(ratio * Float(buckets - maxExact))
    return bucket + min(large, buckets - 1)
}

/// Scaled dot-product attention, fused: `softmax(Q Kᵀ * scale + bias + mask) V` per batch
/// row and head, without ever materializing the `seqQ x seqK` score matrix (an online
/// softmax runs over key blocks, FlashAttention-style).
///
/// Shapes (layout ``AttentionLayout/bshd``): `query` `[batch, seqQ, heads, headDim]`, `key`
/// and `value` `[batch, seqK, heads, headDim]`; the result has `query`'s shape. With
/// ``AttentionLayout/bhsd`` the middle axes swap. `scale` defaults to `1/sqrt(headDim)`.
/// A query that can see no key (all masked) gets a zero output, never NaN.
///
/// Cost: `4 * batch * heads * seqQ * seqK * headDim` flops (about half with a causal mask:
/// key blocks no query can see are skipped); memory beyond the inputs and output: one packed
/// copy of K and V plus O(seqQ + seqK) per head. Parallel over batch x heads x query blocks.
public func scaledDotProductAttention(
    query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask = .none,
    bias: AttentionBias = .none, scale: Float? = nil, layout: AttentionLayout = .bshd,
    compute: Compute = .default
) -> Tensor {
    let p = AttentionProblem(query: query, key: key, value: value, mask: mask, bias: bias, scale: scale, layout: layout)
    var out = Tensor.zeros(query.shape)
    switch compute.backend {
    case .native(let variant):
        fusedAttention(p, query: query, key: key, value: value, output: &out, variant: variant, threads: compute.threads)
    case .swiftSIMD:
        SwiftSIMDKernels.attention(p, query: query, key: key, value: value, output: &out, threads: compute.threads)
    }
    return out
}

/// The validated sizes and strides of one attention call.
struct AttentionProblem {
    let batch, seqQ, seqK, heads, headDim: Int
    let scale: Float
    let mask: AttentionMask
    let bias: AttentionBias
    let layout: AttentionLayout

    init(query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask, bias: AttentionBias, scale: Float?, layout: AttentionLayout) {
        precondition(query.rank == 4 && key.rank == 4 && value.rank == 4,
                     "scaledDotProductAttention: query \(query.shape), key \(key.shape), value \(value.shape) must all have 4 axes")
        let (s, h) = layout == .bshd ? (1, 2) : (2, 1)
        batch = query.shape[0]
        seqQ = query.shape[s]
        seqK = key.shape[s]
        heads = query.shape[h]
        headDim = query.shape[3]
        precondition(key.shape == value.shape,
                     "scaledDotProductAttention: key \(key.shape) and value \(value.shape) differ")
        precondition(key.shape[0] == batch && key.shape[h] == heads && key.shape[3] == headDim,
                     "scaledDotProductAttention: query \(query.shape) and key \(key.shape) disagree on batch, heads or head size (\(layout))")
        precondition(headDim >= 1, "scaledDotProductAttention: head size is 0 in \(query.shape)")
        if let pad = mask.keyPadding {
            let (nb, nk) = (query.shape[0], key.shape[s])
            precondition(pad.count == nb && pad.allSatisfy { $0.count == nk },
                         "scaledDotProductAttention: keyPadding must be [batch = \(nb)][seqK = \(nk)], got \(pad.count) rows of \(pad.map(\.count))")
        }
        bias.validate(heads: heads)
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
        self.mask = mask
        self.bias = bias
        self.layout = layout
    }

    /// Row stride between consecutive positions of one head, and the offset of (b, h).
    var rowStrideQ: Int { layout == .bshd ? heads * headDim : headDim }
    func offsetQ(_ b: Int, _ h: Int) -> Int {
        layout == .bshd ? b * seqQ * heads * headDim + h * headDim : (b * heads + h) * seqQ * headDim
    }
    var rowStrideK: Int { rowStrideQ }
    func offsetK(_ b: Int, _ h: Int) -> Int {
        layout == .bshd ? b * seqK * heads * headDim + h * headDim : (b * heads + h) * seqK * headDim
    }

    /// Whether query `i` may see key `j` under the causal mask.
    func visible(_ i: Int, _ j: Int) -> Bool { !mask.causal || j <= i + mask.queryStart }
}
