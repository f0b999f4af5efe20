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
    /// A sliding window (Mistral's `sliding_window`), 0 for none: query `i` sees key `j` only
    /// if `(i + queryStart) - j < window`, so with ``causal-property`` each query attends to the
    /// `window` most recent positions up to its own, as transformers masks them. The kernels
    /// skip key blocks left of every query's window: a causal windowed call costs
    /// O(seqQ * window) rather than O(seqQ * seqK). Must not be negative.
    public var window: Int

    /// A mask; see the properties.
    public init(causal: Bool = false, queryStart: Int = 0, keyPadding: [[Bool]]? = nil, window: Int = 0) {
        self.causal = causal
        self.queryStart = queryStart
        self.keyPadding = keyPadding
        self.window = window
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
    /// Shaw et al. (2018) learned relative positions: with `c = clamp(key - query, -clip,
    /// clip) + clip`, the score gains `scale * q · keys[c]` and the output gains
    /// `Σ softmax weight * values[c]`. `keys` and `values` are `[2*clip + 1, headDim]`,
    /// shared by all heads (as in the paper). The fused kernel looks the buckets up per
    /// element; extra memory is `seqQ x (2*clip + 1)` per head, never `seqQ x seqK`.
    case shaw(keys: Tensor, values: Tensor, clip: Int)

    /// The bias for head `h` at relative position `rel = key - query`.
    func value(head h: Int, relative rel: Int) -> Float {
        switch self {
        case .none: return 0
        case .alibi(let slopes, let symmetric):
            return symmetric ? -slopes[h] * Float(abs(rel)) : slopes[h] * Float(rel)
        case .t5(let table, let bidirectional, let maxDistance):
            let b = t5RelativePositionBucket(rel, bidirectional: bidirectional, numBuckets: table.shape[0], maxDistance: maxDistance)
            return table[b, h]
        case .shaw:
            return 0  // query-dependent: handled by the kernels' Shaw path, not a table
        }
    }

    /// ``value(head:relative:)`` of heads `0..<heads` at relative position `rel`, written to
    /// `out[h * stride]` (T5: the bucket found once for every head). Cost: O(heads).
    func values(relative rel: Int, heads: Int, into out: UnsafeMutablePointer<Float>, stride: Int) {
        if case .t5(let table, let bidirectional, let maxDistance) = self {
            let b = t5RelativePositionBucket(rel, bidirectional: bidirectional, numBuckets: table.shape[0], maxDistance: maxDistance)
            let width = table.shape[1]
            precondition(heads <= width, "AttentionBias.t5: \(heads) heads read a table of \(width)")
            table.withUnsafeBufferPointer { t in
                for h in 0..<heads { out[h * stride] = t[b * width + h] }
            }
            return
        }
        for h in 0..<heads { out[h * stride] = value(head: h, relative: rel) }
    }

    /// Whether the bias is a function of the relative position alone (a per-head table).
    var isDistanceTable: Bool {
        switch self {
        case .alibi, .t5: return true
        case .none, .shaw: return false
        }
    }

    /// Shaw tables and clip distance, if this is `.shaw`.
    var shaw: (keys: Tensor, values: Tensor, clip: Int)? {
        if case .shaw(let k, let v, let c) = self { return (k, v, c) }
        return nil
    }

    var isNone: Bool {
        if case .none = self { return true }
        return false
    }

    func validate(heads: Int, headDim: Int) {
        switch self {
        case .none: break
        case .shaw(let keys, let values, let clip):
            precondition(
                clip >= 1 && keys.shape == [2 * clip + 1, headDim] && values.shape == keys.shape,
                "AttentionBias.shaw: keys \(keys.shape) and values \(values.shape) must be [2 * clip + 1 = \(2 * clip + 1), headDim = \(headDim)] with clip >= 1"
            )
        case .alibi(let slopes, _):
            precondition(slopes.count == heads, "AttentionBias.alibi: \(slopes.count) slopes for \(heads) heads")
        case .t5(let table, _, let maxDistance):
            precondition(
                table.rank == 2 && table.shape[1] == heads && table.shape[0] >= 2,
                "AttentionBias.t5: table shape \(table.shape) must be [numBuckets >= 2, heads = \(heads)]")
            precondition(maxDistance >= 1, "AttentionBias.t5: maxDistance \(maxDistance) must be at least 1")
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
/// logarithmically up to `maxDistance`; farther distances share the last bucket.
///
/// When `maxDistance` does not exceed the exact distances (a configuration `transformers`
/// loads: its formula then divides by `log(maxDistance / exact) <= 0`, which it only reaches
/// for distances of at least `exact`, where its bucket is undefined), every distance of at
/// least `exact` takes the last bucket of its side; shorter ones are exact as always, so the
/// two agree wherever `transformers` is defined. Cost: O(1).
public func t5RelativePositionBucket(_ relativePosition: Int, bidirectional: Bool, numBuckets: Int, maxDistance: Int) -> Int {
    precondition(numBuckets >= 2 && maxDistance >= 1, "t5RelativePositionBucket: \(numBuckets) buckets (at least 2), maxDistance \(maxDistance) (at least 1)")
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
    if maxDistance <= maxExact || maxExact == 0 { return bucket + buckets - 1 }  // see above: no logarithmic range
    // The reference computes this in float32: log(n / maxExact) / log(maxDistance / maxExact).
    let ratio = Float(log(Float(n) / Float(maxExact))) / Float(log(Float(maxDistance) / Float(maxExact)))
    let large = Float(maxExact) + (ratio * Float(buckets - maxExact)).rounded(.towardZero)
    return bucket + Int(min(large, Float(buckets - 1)))
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
/// Cost: `4 * batch * heads * seqQ * seqK * headDim` flops (about half with a causal mask,
/// `seqK` replaced by about `window` with a sliding window: key blocks no query can see are
/// skipped); memory beyond the inputs and output: one packed
/// copy of K and V plus O(seqQ + seqK) per head. Parallel over batch x heads x query blocks.
public func scaledDotProductAttention(
    query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask = .none,
    bias: AttentionBias = .none, scale: Float? = nil, layout: AttentionLayout = .bshd,
    compute: Compute = .default
) -> Tensor {
    let p = AttentionProblem(query: query, key: key, value: value, mask: mask, bias: bias, scale: scale, layout: layout)
    var out = Tensor.zeros(query.shape)
    attention(p, query: query, key: key, value: value, into: &out, compute: compute)
    return out
}

/// Attention over operands whose layouts `p` describes (they may be one fused projection
/// output, or a KV cache), written into `out` at `p.o`. Dispatches to the backend. `prepacked`:
/// the keys and values already packed for the fused kernel (a fixed memory's), packed on
/// demand: only the paths that read packed keys and values ask for them.
func attention(
    _ p: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, into out: inout Tensor, compute: Compute,
    prepacked: LazyPackedKeysValues? = nil
) {
    switch compute.backend {
    case .native(let variant):
        if fewQueryAttentionApplies(p) {
            // Decoding: one or two queries per head, against a cache or an encoder memory (packed
            // or not; its rows are still stored). Matrix-vector products over K and V read in
            // place beat the fused kernel, whose 16- or 32-wide query panels would run one real
            // query, and beat packing a cache that grows every step.
            fewQueryAttention(p, query: query, key: key, value: value, output: &out, variant: variant, threads: compute.threads)
            return
        }
        let usable = prepacked.flatMap { $0.packed.fits(p, variant: variant) ? $0.packed : nil }
        if usable == nil && shortAttentionApplies(p) {
            // A sentence: the whole (short) score matrix per head on the GEMM micro-kernel.
            shortAttention(p, query: query, key: key, value: value, output: &out, variant: variant, threads: compute.threads)
            return
        }
        fusedAttention(
            p, query: query, key: key, value: value, output: &out, variant: variant, threads: compute.threads,
            prepacked: usable)
    case .swiftSIMD:
        SwiftSIMDKernels.attention(p, query: query, key: key, value: value, output: &out, threads: compute.threads)
    }
}

/// Where one attention operand's rows lie: (query) head `h` of batch row `b`, position `i`,
/// starts at `base + b*batchStride + (h / headGroup)*headStride + i*rowStride`, and holds
/// `headDim` contiguous floats. Lets the kernels read Q, K, V straight out of a fused
/// projection or a KV cache. `headGroup` > 1 is grouped-query attention on the keys and
/// values: `headGroup` consecutive query heads read one stored K/V head (never a copy per
/// query head); queries and outputs always have `headGroup` 1.
struct HeadLayout {
    var base = 0
    var batchStride: Int
    var headStride: Int
    var rowStride: Int
    /// Query heads that share each stored head (1: one stored head per query head).
    var headGroup = 1

    /// Start of the rows query head `h` of batch row `b` reads (its group's stored head).
    func offset(_ b: Int, _ h: Int) -> Int { base + b * batchStride + (h / headGroup) * headStride }

    /// A contiguous tensor `[batch, seq, heads, headDim]` (.bshd) or `[batch, heads, seq, headDim]`.
    init(_ layout: AttentionLayout, seq: Int, heads: Int, headDim: Int) {
        switch layout {
        case .bshd: (batchStride, headStride, rowStride) = (seq * heads * headDim, headDim, heads * headDim)
        case .bhsd: (batchStride, headStride, rowStride) = (heads * seq * headDim, seq * headDim, headDim)
        }
    }

    init(base: Int, batchStride: Int, headStride: Int, rowStride: Int, headGroup: Int = 1) {
        (self.base, self.batchStride, self.headStride, self.rowStride) = (base, batchStride, headStride, rowStride)
        self.headGroup = headGroup
    }

    /// One past the last scalar this layout reaches, for `batch x heads x seq` rows of
    /// `headDim` (`heads` query heads, so `heads / headGroup` stored heads).
    func extent(batch: Int, heads: Int, seq: Int, headDim: Int) -> Int {
        if batch == 0 || heads == 0 || seq == 0 { return 0 }
        return base + (batch - 1) * batchStride + ((heads - 1) / headGroup) * headStride + (seq - 1) * rowStride + headDim
    }
}

/// The validated sizes and strides of one attention call.
struct AttentionProblem {
    let batch, seqQ, seqK, heads, headDim: Int
    let scale: Float
    let mask: AttentionMask
    let bias: AttentionBias
    let q, k, v, o: HeadLayout

    init(query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask, bias: AttentionBias, scale: Float?, layout: AttentionLayout) {
        precondition(
            query.rank == 4 && key.rank == 4 && value.rank == 4,
            "scaledDotProductAttention: query \(query.shape), key \(key.shape), value \(value.shape) must all have 4 axes")
        let (s, h) = layout == .bshd ? (1, 2) : (2, 1)
        precondition(
            key.shape == value.shape,
            "scaledDotProductAttention: key \(key.shape) and value \(value.shape) differ")
        precondition(
            key.shape[0] == query.shape[0] && key.shape[h] == query.shape[h] && key.shape[3] == query.shape[3],
            "scaledDotProductAttention: query \(query.shape) and key \(key.shape) disagree on batch, heads or head size (\(layout))")
        let (nb, nq, nk, nh, d) = (query.shape[0], query.shape[s], key.shape[s], query.shape[h], query.shape[3])
        let ql = HeadLayout(layout, seq: nq, heads: nh, headDim: d)
        let kl = HeadLayout(layout, seq: nk, heads: nh, headDim: d)
        self.init(
            batch: nb, seqQ: nq, seqK: nk, heads: nh, headDim: d, q: ql, k: kl, v: kl, o: ql,
            counts: (query.count, key.count, value.count, query.count), mask: mask, bias: bias, scale: scale)
    }

    /// Sizes and explicit layouts; every layout is checked to stay inside its buffer's count.
    init(
        batch: Int, seqQ: Int, seqK: Int, heads: Int, headDim: Int, q: HeadLayout, k: HeadLayout, v: HeadLayout, o: HeadLayout,
        counts: (q: Int, k: Int, v: Int, o: Int), mask: AttentionMask, bias: AttentionBias, scale: Float?
    ) {
        precondition(headDim >= 1, "scaledDotProductAttention: head size must be at least 1, got \(headDim)")
        precondition(
            q.headGroup == 1 && o.headGroup == 1 && k.headGroup >= 1 && k.headGroup == v.headGroup
                && heads % k.headGroup == 0 && (k.headGroup == 1 || bias.shaw == nil),
            "scaledDotProductAttention: grouped K/V (group \(k.headGroup) keys, \(v.headGroup) values) must divide \(heads) heads, with ungrouped queries/outputs and no Shaw positions"
        )
        precondition(
            batch >= 0 && seqQ >= 0 && seqK >= 0 && heads >= 0,
            "scaledDotProductAttention: negative size (batch \(batch), seqQ \(seqQ), seqK \(seqK), heads \(heads))")
        precondition(
            q.extent(batch: batch, heads: heads, seq: seqQ, headDim: headDim) <= counts.q
                && o.extent(batch: batch, heads: heads, seq: seqQ, headDim: headDim) <= counts.o
                && k.extent(batch: batch, heads: heads, seq: seqK, headDim: headDim) <= counts.k
                && v.extent(batch: batch, heads: heads, seq: seqK, headDim: headDim) <= counts.v,
            "scaledDotProductAttention: a layout reaches past its buffer (batch \(batch), heads \(heads), seqQ \(seqQ), seqK \(seqK), headDim \(headDim); buffers \(counts))"
        )
        precondition(mask.window >= 0, "scaledDotProductAttention: the sliding window \(mask.window) must not be negative")
        if let pad = mask.keyPadding {
            precondition(
                pad.count == batch && pad.allSatisfy { $0.count == seqK },
                "scaledDotProductAttention: keyPadding must be [batch = \(batch)][seqK = \(seqK)], got \(pad.count) rows of \(pad.map(\.count))")
        }
        bias.validate(heads: heads, headDim: headDim)
        (self.batch, self.seqQ, self.seqK, self.heads, self.headDim) = (batch, seqQ, seqK, heads, headDim)
        (self.q, self.k, self.v, self.o) = (q, k, v, o)
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
        self.mask = mask
        self.bias = bias
    }

    // Shorthands (query and output share a layout in the public entry point).
    var rowStrideQ: Int { q.rowStride }
    func offsetQ(_ b: Int, _ h: Int) -> Int { q.offset(b, h) }
    var rowStrideK: Int { k.rowStride }
    func offsetK(_ b: Int, _ h: Int) -> Int { k.offset(b, h) }

    /// Query heads per stored K/V head (grouped-query attention; 1 otherwise).
    var headGroup: Int { k.headGroup }
    /// Stored K/V heads per batch row: `heads / headGroup`.
    var kvHeads: Int { heads / k.headGroup }

    /// Whether query `i` may see key `j` under the causal mask and the sliding window.
    func visible(_ i: Int, _ j: Int) -> Bool {
        (!mask.causal || j <= i + mask.queryStart) && (mask.window == 0 || i + mask.queryStart - j < mask.window)
    }
}
