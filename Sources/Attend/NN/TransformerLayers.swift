// The encoder and decoder blocks of "Attention Is All You Need" (Vaswani et al., 2017, §3.1)
// and their stacks, written so that the paper's model, BERT, T5 and Marian are all the same
// code with a different norm, norm placement, activation, attention scale and position bias.
//
//   encoder layer:  x -> self-attention -> add & norm -> feed-forward -> add & norm
//   decoder layer:  y -> causal self-attention -> add & norm -> cross-attention over the
//                   encoder memory -> add & norm -> feed-forward -> add & norm
//
// "add & norm" is `Norm(x + Sublayer(x))` after the sublayer (post-LN, the paper, BERT,
// Marian) or `x + Sublayer(Norm(x))` (pre-LN, PyTorch `norm_first=True`, T5, GPT-2). The
// post-LN add is fused into the norm kernel (one pass reads both operands).

/// Where a Transformer block normalizes.
public enum NormPlacement: Sendable, Hashable {
    /// Post-LN, the paper's: `x = Norm(x + Sublayer(x))` (BERT, Marian, PyTorch's default).
    case post
    /// Pre-LN: `x = x + Sublayer(Norm(x))` (PyTorch `norm_first=True`, T5, GPT-2).
    case pre
}

extension Norm {
    /// The normalized width (the length of the weight vector).
    var size: Int {
        switch self {
        case .layer(let n): return n.weight.count
        case .rms(let n): return n.weight.count
        }
    }
}

/// One encoder block: self-attention and a position-wise feed-forward network, each wrapped
/// in a residual connection and a normalization (placed as `placement` says). The paper's
/// encoder, BERT's layers (post-LN, GELU, optionally `relative_key` positions), T5's and
/// Marian's encoder layers are all this block.
///
/// Shapes: input and output `[batch, seq, d]`. Cost per call: the attention's
/// `8 * tokens * d²` flops of projections plus `4 * batch * seq² * d` of attention, the
/// feed-forward's `4 * tokens * d * dFF` (6 when gated), and two row-norm passes. Every
/// projection runs on its weight packed once (see ``Linear``), with the bias, the activation
/// and the pre-LN residual add fused into the product's epilogue.
/// Parameters keep PyTorch's `nn.TransformerEncoderLayer` names: `self_attn`, `norm1`,
/// `linear1`, `linear2`, `norm2` (see ``init(loadingPyTorch:_:_:)``).
public struct EncoderLayer: Sendable {
    /// Multi-head self-attention (its `scale` is the layer's attention scale).
    public let selfAttention: MultiHeadAttention
    /// The norm around the attention sublayer (PyTorch `norm1`).
    public let attentionNorm: Norm
    /// The position-wise feed-forward network.
    public let feedForward: FeedForward
    /// The norm around the feed-forward sublayer (PyTorch `norm2`).
    public let feedForwardNorm: Norm
    /// Post-LN or pre-LN.
    public let placement: NormPlacement
    /// BERT's learned `relative_key` / `relative_key_query` positions of this layer, or nil.
    public let relativePositions: RelativeKeyPositions?

    /// Model width d.
    public var modelDim: Int { selfAttention.modelDim }

    /// A block from its parts; every part must work on the same width d.
    public init(
        selfAttention: MultiHeadAttention, attentionNorm: Norm, feedForward: FeedForward,
        feedForwardNorm: Norm, placement: NormPlacement, relativePositions: RelativeKeyPositions? = nil
    ) {
        let d = selfAttention.modelDim
        precondition(
            attentionNorm.size == d && feedForwardNorm.size == d && feedForward.up.inFeatures == d,
            "EncoderLayer: attention width \(d), norms \(attentionNorm.size) and \(feedForwardNorm.size), feed-forward input \(feedForward.up.inFeatures) must agree"
        )
        if let r = relativePositions {
            precondition(
                r.distance.shape == [2 * r.maxPositions - 1, selfAttention.headDim],
                "EncoderLayer: relative position table \(r.distance.shape) must be [\(2 * r.maxPositions - 1), \(selfAttention.headDim)]")
        }
        self.selfAttention = selfAttention
        self.attentionNorm = attentionNorm
        self.feedForward = feedForward
        self.feedForwardNorm = feedForwardNorm
        self.placement = placement
        self.relativePositions = relativePositions
    }

    /// The block applied to `x` `[batch, seq, d]`. `keyPadding` (`[batch][seq]`, true = real
    /// token) hides padded keys; `bias` is added to the attention scores (relative positions).
    /// Returns `[batch, seq, d]`.
    public func callAsFunction(
        _ x: Tensor, keyPadding: [[Bool]]? = nil, bias: AttentionBias = .none,
        compute: Compute = .default
    ) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == modelDim, "EncoderLayer: input \(x.shape) must be [batch, seq, \(modelDim)]")
        let (b, s, d) = (x.shape[0], x.shape[1], x.shape[2])
        let rows = TokenRows(batch: b, seq: s, keyPadding: keyPadding)
        return forward(rows: x.reshaped([b * s, d]), rows, bias: bias, compute: compute).reshaped([b, s, d])
    }

    /// Packs every projection weight for `compute`'s kernel variant now (see ``Linear``).
    func prepack(for compute: Compute) {
        for l in [selfAttention.inProjection, selfAttention.outProjection, feedForward.up, feedForward.down] { l.prepack(for: compute) }
        feedForward.gate?.prepack(for: compute)
    }

    /// The block on token rows `x` `[T, d]` forming the sequences `rows` says (a padded batch,
    /// or sequences of any lengths stacked without padding): `[T, d]`.
    func forward(rows x: Tensor, _ rows: TokenRows, bias: AttentionBias, compute: Compute) -> Tensor {
        switch placement {
        case .post:
            let a = selfAttention.attend(rows: x, rows, bias: bias, relative: relativePositions, compute: compute)  // [T, d]
            let h = attentionNorm(a, residual: x, compute: compute)  // [T, d] = Norm(x + a)
            let f = feedForward.forward(h, compute: compute)  // [T, d]
            return feedForwardNorm(f, residual: h, compute: compute)  // [T, d] = Norm(h + f)
        case .pre:
            let n = attentionNorm(x, compute: compute)  // [T, d]
            let h = selfAttention.attend(
                rows: n, rows, bias: bias, relative: relativePositions, residual: x,
                compute: compute)  // [T, d] = x + Attention(Norm(x))
            return feedForward.forward(feedForwardNorm(h, compute: compute), residual: h, compute: compute)  // h + FFN(Norm(h))
        }
    }
}

/// BERT's learned relative positions of one layer (`position_embedding_type` `relative_key` or
/// `relative_key_query`): `score(l, r) += q_l·E[l-r+M-1]` (and `+ k_r·E[l-r+M-1]` for
/// key-query), with `E` the layer's `distance_embedding` `[2M - 1, headDim]`, M the maximum
/// number of positions. The attention runs on the materialized path (seq <= M).
public struct RelativeKeyPositions: Sendable {
    /// `distance_embedding.weight` `[2 * maxPositions - 1, headDim]`.
    public let distance: Tensor
    /// M, the longest sequence the table covers.
    public let maxPositions: Int
    /// `relative_key_query` (true) or `relative_key` (false).
    public let keyQuery: Bool

    /// Positions from a layer's table; `distance` must be `[2 * maxPositions - 1, headDim]`.
    public init(distance: Tensor, maxPositions: Int, keyQuery: Bool) {
        precondition(
            maxPositions >= 1 && distance.rank == 2 && distance.shape[0] == 2 * maxPositions - 1,
            "RelativeKeyPositions: table \(distance.shape) must be [2 * \(maxPositions) - 1, headDim]")
        (self.distance, self.maxPositions, self.keyQuery) = (distance, maxPositions, keyQuery)
    }
}

/// How the rows of a token matrix `[T, d]` form sequences: sequence i is rows
/// `starts[i] ..< starts[i] + lengths[i]`. A padded batch is `batch` sequences of `seq` rows
/// (with its key padding); an unpadded one stacks sequences of any lengths.
struct TokenRows {
    let starts: [Int]
    let lengths: [Int]
    /// Per sequence, per key: attend (true) or padding (false); nil when nothing is padding.
    let keyPadding: [[Bool]]?
    /// Total rows.
    let total: Int

    /// `batch` sequences of `seq` rows each.
    init(batch: Int, seq: Int, keyPadding: [[Bool]]?) {
        starts = (0..<batch).map { $0 * seq }
        lengths = Array(repeating: seq, count: batch)
        self.keyPadding = keyPadding
        total = batch * seq
    }

    /// Sequences of these lengths, stacked without padding.
    init(lengths: [Int]) {
        var s: [Int] = [], t = 0
        for n in lengths {
            s.append(t)
            t += n
        }
        starts = s
        self.lengths = lengths
        keyPadding = nil
        total = t
    }

    /// The common length when every sequence has the same one (and they are stacked in order).
    var uniformLength: Int? {
        guard let first = lengths.first, lengths.allSatisfy({ $0 == first }) else { return lengths.isEmpty ? 0 : nil }
        return first
    }
}

/// One decoder block: causal self-attention, cross-attention over the encoder's output (the
/// "memory"), and a position-wise feed-forward network, each with a residual connection and
/// a normalization. Without `crossAttention` it is a decoder-only (GPT-style) block.
///
/// Two ways to run it: all target positions at once (teacher forcing, training-style
/// evaluation), or a few new positions at a time against a ``KVCache`` (generation); both
/// give the same numbers. Shapes: input and output `[rows, steps, d]`. Cost per call: the
/// self-attention's `8 * tokens * d²` flops plus `4 * rows * steps * visible * d`, the
/// cross-attention's `4 * tokens * d²` (its keys and values are computed once per source, by
/// ``TransformerDecoder/makeCache(memory:memoryPadding:rows:capacity:memoryPrecision:compute:)``) plus
/// `4 * tokens * seqMemory * d`, and the feed-forward's `4 * tokens * d * dFF`.
/// PyTorch `nn.TransformerDecoderLayer` names: `self_attn`, `norm1`, `multihead_attn`,
/// `norm2`, `linear1`, `linear2`, `norm3`.
public struct DecoderLayer: Sendable {
    /// Causal multi-head self-attention.
    public let selfAttention: MultiHeadAttention
    /// The norm around the self-attention sublayer (PyTorch `norm1`).
    public let selfAttentionNorm: Norm
    /// Attention over the encoder memory (PyTorch `multihead_attn`); nil in a decoder-only block.
    public let crossAttention: MultiHeadAttention?
    /// The norm around the cross-attention sublayer (PyTorch `norm2`); nil without cross-attention.
    public let crossAttentionNorm: Norm?
    /// The position-wise feed-forward network.
    public let feedForward: FeedForward
    /// The norm around the feed-forward sublayer (PyTorch `norm3`).
    public let feedForwardNorm: Norm
    /// Post-LN or pre-LN.
    public let placement: NormPlacement

    /// Model width d.
    public var modelDim: Int { selfAttention.modelDim }

    /// A block from its parts; `crossAttention` and `crossAttentionNorm` are both given or
    /// both nil, and every part works on the same width d.
    public init(
        selfAttention: MultiHeadAttention, selfAttentionNorm: Norm,
        crossAttention: MultiHeadAttention?, crossAttentionNorm: Norm?,
        feedForward: FeedForward, feedForwardNorm: Norm, placement: NormPlacement
    ) {
        let d = selfAttention.modelDim
        precondition(
            (crossAttention == nil) == (crossAttentionNorm == nil),
            "DecoderLayer: cross-attention and its norm must be given together")
        precondition(
            selfAttentionNorm.size == d && feedForwardNorm.size == d && feedForward.up.inFeatures == d
                && (crossAttention?.modelDim ?? d) == d && (crossAttentionNorm?.size ?? d) == d,
            "DecoderLayer: self-attention width \(d), cross-attention \(crossAttention?.modelDim ?? d), norms \(selfAttentionNorm.size)/\(crossAttentionNorm?.size ?? d)/\(feedForwardNorm.size), feed-forward input \(feedForward.up.inFeatures) must agree"
        )
        self.selfAttention = selfAttention
        self.selfAttentionNorm = selfAttentionNorm
        self.crossAttention = crossAttention
        self.crossAttentionNorm = crossAttentionNorm
        self.feedForward = feedForward
        self.feedForwardNorm = feedForwardNorm
        self.placement = placement
    }

    /// Teacher forcing: every position of `x` `[batch, seq, d]` attends causally to itself
    /// and its predecessors, then (with cross-attention) to the encoder memory `[batch,
    /// seqMemory, d]`. `memoryPadding` (`[batch][seqMemory]`, true = real token) hides padded
    /// memory; `targetPadding` (`[batch][seq]`) hides padded target keys; `memoryPrecision`
    /// is the precision the memory's keys and values are held in, as decoding holds them
    /// (``MultiHeadAttention/keysValues(of:precision:compute:)``). Returns `[batch, seq, d]`.
    public func callAsFunction(
        _ x: Tensor, memory: Tensor?, memoryPadding: [[Bool]]? = nil,
        targetPadding: [[Bool]]? = nil, selfAttentionBias: AttentionBias = .none,
        memoryPrecision: MemoryPrecision = .automatic, compute: Compute = .default
    ) -> Tensor {
        forward(
            x, memory: memory, memoryPadding: memoryPadding, targetPadding: targetPadding, selfAttentionBias: selfAttentionBias,
            selfAttentions: false, crossAttentions: false, memoryPrecision: memoryPrecision, compute: compute
        ).output
    }

    /// Teacher forcing as ``callAsFunction(_:memory:memoryPadding:targetPadding:selfAttentionBias:memoryPrecision:compute:)``,
    /// also returning, when asked, the causal self-attention probabilities `[batch, heads, seq,
    /// seq]` and the cross-attention probabilities `[batch, heads, seq, seqMemory]`, recomputed
    /// from the inputs the fused calls read (the output is the same bits either way).
    func forward(
        _ x: Tensor, memory: Tensor?, memoryPadding: [[Bool]]?, targetPadding: [[Bool]]?, selfAttentionBias: AttentionBias,
        selfAttentions: Bool, crossAttentions: Bool, memoryPrecision: MemoryPrecision = .automatic, compute: Compute
    ) -> (output: Tensor, selfAttention: Tensor?, crossAttention: Tensor?) {
        precondition(x.rank == 3 && x.shape[2] == modelDim, "DecoderLayer: input \(x.shape) must be [batch, seq, \(modelDim)]")
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        var memoryKV: AttentionKV? = nil
        if let crossAttention {
            guard let memory else { preconditionFailure("DecoderLayer: this layer has cross-attention but no memory was given") }
            precondition(
                memory.rank == 3 && memory.shape[0] == b,
                "DecoderLayer: memory \(memory.shape) must be [batch = \(b), seqMemory, \(modelDim)]")
            memoryKV = crossAttention.keysValues(of: memory, precision: memoryPrecision, compute: compute)
        }
        let mask = AttentionMask(causal: true, keyPadding: targetPadding)
        var selfProbabilities: Tensor? = nil, crossProbabilities: Tensor? = nil
        var observe: ((Tensor) -> Void)? = nil
        if crossAttentions, let crossAttention, let memory {
            let s = memory.shape[1]
            observe = { h in
                crossProbabilities = crossAttention.attentionProbabilities(
                    rows: h.reshaped([b * t, d]), memory: memory.reshaped([b * s, d]), batch: b, seqQ: t, seqK: s,
                    mask: AttentionMask(keyPadding: memoryPadding), bias: .none, compute: compute)
            }
        }
        let y = forward(x, memory: memoryKV, memoryPadding: memoryPadding, rowsPerSource: 1, compute: compute, observeCrossInput: observe) { h in
            if selfAttentions {
                selfProbabilities = selfAttention.attentionProbabilities(
                    rows: h.reshaped([b * t, d]), batch: b, seqQ: t, seqK: t, mask: mask, bias: selfAttentionBias, compute: compute)
            }
            return selfAttention(h, mask: mask, bias: selfAttentionBias, compute: compute)
        }
        return (y, selfProbabilities, crossProbabilities)
    }

    /// Generation: the `steps` new positions of `x` `[rows, steps, d]` append their keys and
    /// values to `selfCache` and attend causally to everything cached, then to the memory
    /// keys/values `memory` (batch = `rows / rowsPerSource` sources: rows `s*rowsPerSource
    /// ..< (s+1)*rowsPerSource` all read source `s`, as beams of one input do). Returns
    /// `[rows, steps, d]`, equal to the last `steps` positions of the teacher-forced call.
    public func callAsFunction(
        _ x: Tensor, selfCache: inout AttentionKV, memory: AttentionKV?,
        memoryPadding: [[Bool]]? = nil, rowsPerSource: Int = 1,
        selfAttentionBias: AttentionBias = .none, compute: Compute = .default
    ) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == modelDim, "DecoderLayer: input \(x.shape) must be [rows, steps, \(modelDim)]")
        precondition(
            selfCache.batch == x.shape[0] && selfCache.modelDim == selfAttention.innerDim,
            "DecoderLayer: self-attention cache for \(selfCache.batch) rows of width \(selfCache.modelDim), input \(x.shape)")
        return forward(x, memory: memory, memoryPadding: memoryPadding, rowsPerSource: rowsPerSource, compute: compute) { h in
            selfAttention(h, appendingTo: &selfCache, bias: selfAttentionBias, compute: compute)
        }
    }

    /// The block around a self-attention call (full or cached).
    private func forward(
        _ x: Tensor, memory: AttentionKV?, memoryPadding: [[Bool]]?, rowsPerSource: Int,
        compute: Compute, observeCrossInput: ((Tensor) -> Void)? = nil, selfAttend: (Tensor) -> Tensor
    ) -> Tensor {
        switch placement {
        case .post:
            let a = selfAttend(x)  // [r, t, d]
            var h = selfAttentionNorm(a, residual: x, compute: compute)  // [r, t, d] = Norm(x + a)
            if let crossAttentionNorm {
                observeCrossInput?(h)
                let c = attendToMemory(h, memory: memory, memoryPadding: memoryPadding, rowsPerSource: rowsPerSource, compute: compute)  // [r, t, d]
                h = crossAttentionNorm(c, residual: h, compute: compute)  // [r, t, d] = Norm(h + c)
            }
            let f = feedForward(h, compute: compute)  // [r, t, d]
            return feedForwardNorm(f, residual: h, compute: compute)  // [r, t, d] = Norm(h + f)
        case .pre:
            var h = x  // [r, t, d]
            h += selfAttend(selfAttentionNorm(x, compute: compute))
            if let crossAttentionNorm {
                let n = crossAttentionNorm(h, compute: compute)
                observeCrossInput?(n)
                h += attendToMemory(n, memory: memory, memoryPadding: memoryPadding, rowsPerSource: rowsPerSource, compute: compute)
            }
            h += feedForward(feedForwardNorm(h, compute: compute), compute: compute)
            return h
        }
    }

    /// Cross-attention of `x` `[rows, t, d]` over memory keys/values of `rows / rowsPerSource`
    /// sources. Rows of one source are consecutive, so `x` viewed as `[sources, rowsPerSource
    /// * t, d]` puts every query of a source in one batch row: the source's keys and values
    /// are stored (and packed by the kernel) once, however many beams read them.
    private func attendToMemory(
        _ x: Tensor, memory: AttentionKV?, memoryPadding: [[Bool]]?, rowsPerSource: Int,
        compute: Compute
    ) -> Tensor {
        guard let crossAttention, let memory else {
            preconditionFailure("DecoderLayer: this layer has cross-attention but no memory keys/values were given")
        }
        let (rows, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(
            rowsPerSource >= 1 && rows == memory.batch * rowsPerSource,
            "DecoderLayer: \(rows) rows do not match \(memory.batch) memory sources x \(rowsPerSource) rows per source")
        let grouped = x.reshaped([memory.batch, rowsPerSource * t, d])  // [sources, k*t, d]
        let out = crossAttention(grouped, keysValues: memory, mask: AttentionMask(keyPadding: memoryPadding), compute: compute)
        return out.reshaped([rows, t, d])  // [r, t, d]
    }
}

/// A stack of encoder blocks (the paper's N = 6), with an optional final norm (pre-LN models
/// and PyTorch's `nn.Transformer` have one) and a position bias shared by or given per layer
/// (T5 computes its relative bias in layer 0 and reuses it in every layer; ALiBi is one
/// fixed bias). Shapes: `[batch, seq, d]` in and out. Cost: the sum of its layers plus one norm.
public struct TransformerEncoder: Sendable {
    /// The blocks, applied in order.
    public let layers: [EncoderLayer]
    /// Applied after the last block (nil: none).
    public let finalNorm: Norm?
    /// The bias added to layer i's attention scores: `selfAttentionBiases[i]`.
    public let selfAttentionBiases: [AttentionBias]

    /// A stack whose layers all add `selfAttentionBias` to their attention scores.
    public init(layers: [EncoderLayer], finalNorm: Norm?, selfAttentionBias: AttentionBias = .none) {
        self.init(layers: layers, finalNorm: finalNorm, selfAttentionBiases: Array(repeating: selfAttentionBias, count: layers.count))
    }

    /// A stack with one bias per layer (`selfAttentionBiases.count == layers.count`).
    public init(layers: [EncoderLayer], finalNorm: Norm?, selfAttentionBiases: [AttentionBias]) {
        precondition(!layers.isEmpty, "TransformerEncoder: no layers")
        let d = layers[0].modelDim
        precondition(
            layers.allSatisfy { $0.modelDim == d } && (finalNorm?.size ?? d) == d,
            "TransformerEncoder: layer widths \(layers.map(\.modelDim)) and final norm \(finalNorm?.size ?? d) differ")
        precondition(
            selfAttentionBiases.count == layers.count,
            "TransformerEncoder: \(selfAttentionBiases.count) biases for \(layers.count) layers")
        self.layers = layers
        self.finalNorm = finalNorm
        self.selfAttentionBiases = selfAttentionBiases
    }

    /// Model width d.
    public var modelDim: Int { layers[0].modelDim }

    /// The encoder's output ("memory") for `x` `[batch, seq, d]` (embedded tokens plus
    /// positions). `keyPadding` (`[batch][seq]`, true = real token) keeps padding out of every
    /// attention; the outputs at padded positions are computed but meaningless.
    public func callAsFunction(_ x: Tensor, keyPadding: [[Bool]]? = nil, compute: Compute = .default) -> Tensor {
        forward(x, keyPadding: keyPadding, outputAttentions: [], compute: compute).output
    }

    /// The stack on `x` `[batch, seq, d]` as ``callAsFunction(_:keyPadding:compute:)``, also
    /// returning the self-attention probabilities `[batch, heads, seq, seq]` of the layers in
    /// `outputAttentions` (indices already checked), recomputed beside the fused pass: the
    /// output is the same bits whatever is asked.
    func forward(_ x: Tensor, keyPadding: [[Bool]]?, outputAttentions: Set<Int>, compute: Compute) -> (output: Tensor, attentions: [Int: Tensor]) {
        var h = x  // [b, s, d]
        var attentions: [Int: Tensor] = [:]
        for (i, (layer, bias)) in zip(layers, selfAttentionBiases).enumerated() {
            if outputAttentions.contains(i) {
                let (b, s, d) = (h.shape[0], h.shape[1], h.shape[2])
                attentions[i] = layer.attentionProbabilities(
                    rows: h.reshaped([b * s, d]), TokenRows(batch: b, seq: s, keyPadding: keyPadding), bias: bias, compute: compute)
            }
            h = layer(h, keyPadding: keyPadding, bias: bias, compute: compute)  // [b, s, d]
        }
        if let finalNorm { h = finalNorm(h, compute: compute) }
        return (h, attentions)  // [b, s, d]
    }
}

/// A stack of decoder blocks with an optional final norm and a self-attention position bias
/// shared by or given per layer. Runs teacher-forced (all positions at once) or
/// incrementally against a ``KVCache``, with equal results.
/// Shapes: `[rows, steps, d]` in and out. Cost: the sum of its layers plus one norm.
public struct TransformerDecoder: Sendable {
    /// The blocks, applied in order.
    public let layers: [DecoderLayer]
    /// Applied after the last block (nil: none).
    public let finalNorm: Norm?
    /// The bias added to layer i's self-attention scores (relative to the cache position).
    public let selfAttentionBiases: [AttentionBias]

    /// A stack whose layers all add `selfAttentionBias` to their self-attention scores.
    public init(layers: [DecoderLayer], finalNorm: Norm?, selfAttentionBias: AttentionBias = .none) {
        self.init(layers: layers, finalNorm: finalNorm, selfAttentionBiases: Array(repeating: selfAttentionBias, count: layers.count))
    }

    /// A stack with one self-attention bias per layer.
    public init(layers: [DecoderLayer], finalNorm: Norm?, selfAttentionBiases: [AttentionBias]) {
        precondition(!layers.isEmpty, "TransformerDecoder: no layers")
        let d = layers[0].modelDim
        precondition(
            layers.allSatisfy { $0.modelDim == d } && (finalNorm?.size ?? d) == d,
            "TransformerDecoder: layer widths \(layers.map(\.modelDim)) and final norm \(finalNorm?.size ?? d) differ")
        let cross = layers[0].crossAttention != nil
        precondition(
            layers.allSatisfy { ($0.crossAttention != nil) == cross },
            "TransformerDecoder: either every layer has cross-attention or none has")
        precondition(
            selfAttentionBiases.count == layers.count,
            "TransformerDecoder: \(selfAttentionBiases.count) biases for \(layers.count) layers")
        self.layers = layers
        self.finalNorm = finalNorm
        self.selfAttentionBiases = selfAttentionBiases
    }

    /// Model width d.
    public var modelDim: Int { layers[0].modelDim }
    /// Whether the layers attend to an encoder memory.
    public var hasCrossAttention: Bool { layers[0].crossAttention != nil }

    /// Teacher forcing: `x` `[batch, seq, d]` (embedded target tokens plus positions), each
    /// position seeing itself and earlier ones, over `memory` `[batch, seqMemory, d]` (nil for
    /// a decoder-only stack). Padding masks and `memoryPrecision` as in ``DecoderLayer``.
    /// Returns `[batch, seq, d]`.
    public func callAsFunction(
        _ x: Tensor, memory: Tensor?, memoryPadding: [[Bool]]? = nil,
        targetPadding: [[Bool]]? = nil, memoryPrecision: MemoryPrecision = .automatic, compute: Compute = .default
    ) -> Tensor {
        forward(
            x, memory: memory, memoryPadding: memoryPadding, targetPadding: targetPadding, selfAttentions: [], crossAttentions: [],
            memoryPrecision: memoryPrecision, compute: compute
        )
        .output
    }

    /// Teacher forcing as ``callAsFunction(_:memory:memoryPadding:targetPadding:memoryPrecision:compute:)``,
    /// also returning the causal self-attention probabilities `[batch, heads, seq, seq]` of the
    /// layers in `selfAttentions` and the cross-attention probabilities `[batch, heads, seq,
    /// seqMemory]` of those in `crossAttentions` (indices already checked); the output is the
    /// same bits whatever is asked.
    func forward(
        _ x: Tensor, memory: Tensor?, memoryPadding: [[Bool]]?, targetPadding: [[Bool]]? = nil,
        selfAttentions: Set<Int>, crossAttentions: Set<Int>, memoryPrecision: MemoryPrecision = .automatic, compute: Compute
    ) -> (output: Tensor, selfAttentions: [Int: Tensor], crossAttentions: [Int: Tensor]) {
        var h = x  // [b, t, d]
        var selfMaps: [Int: Tensor] = [:], crossMaps: [Int: Tensor] = [:]
        for (i, (layer, bias)) in zip(layers, selfAttentionBiases).enumerated() {
            let r = layer.forward(
                h, memory: memory, memoryPadding: memoryPadding, targetPadding: targetPadding, selfAttentionBias: bias,
                selfAttentions: selfAttentions.contains(i), crossAttentions: crossAttentions.contains(i), memoryPrecision: memoryPrecision,
                compute: compute)
            h = r.output  // [b, t, d]
            selfMaps[i] = r.selfAttention
            crossMaps[i] = r.crossAttention
        }
        if let finalNorm { h = finalNorm(h, compute: compute) }
        return (h, selfMaps, crossMaps)
    }

    /// An empty cache for generating from `memory` `[sources, seqMemory, d]` (the encoder's
    /// output; nil for a decoder-only stack, then `rows` gives the batch): the keys and values
    /// of the memory are computed here, once per layer, and never again, held in
    /// `memoryPrecision` (``MultiHeadAttention/keysValues(of:precision:compute:)``). `capacity`
    /// is the number of positions to reserve (the cache grows past it as needed).
    /// Cost: `4 * sources * seqMemory * d²` flops per layer.
    public func makeCache(
        memory: Tensor?, memoryPadding: [[Bool]]? = nil, rows: Int? = nil, capacity: Int = 64,
        memoryPrecision: MemoryPrecision = .automatic, compute: Compute = .default
    ) -> KVCache {
        if hasCrossAttention {
            guard let memory else { preconditionFailure("TransformerDecoder.makeCache: the stack has cross-attention; give the encoder memory") }
            precondition(
                memory.rank == 3 && memory.shape[2] == modelDim,
                "TransformerDecoder.makeCache: memory \(memory.shape) must be [sources, seqMemory, \(modelDim)]")
            let sources = memory.shape[0]
            if let memoryPadding {
                precondition(
                    memoryPadding.count == sources && memoryPadding.allSatisfy { $0.count == memory.shape[1] },
                    "TransformerDecoder.makeCache: memoryPadding must be [\(sources)][\(memory.shape[1])], got \(memoryPadding.count) rows of \(memoryPadding.map(\.count))"
                )
            }
            let cross = layers.map { $0.crossAttention!.keysValues(of: memory, precision: memoryPrecision, compute: compute) }
            return KVCache(
                layers: layers.count, sources: sources, modelDim: layers[0].selfAttention.innerDim, cross: cross,
                memoryPadding: memoryPadding, capacity: capacity)
        }
        precondition(memory == nil, "TransformerDecoder.makeCache: the stack has no cross-attention; give no memory")
        guard let rows, rows >= 1 else { preconditionFailure("TransformerDecoder.makeCache: give the number of rows (at least 1)") }
        return KVCache(
            layers: layers.count, sources: rows, modelDim: layers[0].selfAttention.innerDim, cross: nil, memoryPadding: nil, capacity: capacity)
    }

    /// Generation: the `steps` new positions `x` `[cache.rows, steps, d]` (embedded tokens
    /// at positions `cache.length ..<`) extend `cache` and come out `[cache.rows, steps, d]`,
    /// equal to the last `steps` positions of the teacher-forced call on the whole prefix.
    /// Cost per token: the layers' projections and feed-forward (constant) plus attention
    /// over `cache.length` cached and `seqMemory` memory positions.
    public func callAsFunction(_ x: Tensor, cache: inout KVCache, compute: Compute = .default) -> Tensor {
        precondition(
            cache.selfAttention.count == layers.count && cache.modelDim == layers[0].selfAttention.innerDim,
            "TransformerDecoder: cache for \(cache.selfAttention.count) layers of width \(cache.modelDim), stack has \(layers.count) of attention width \(layers[0].selfAttention.innerDim)"
        )
        precondition(
            x.rank == 3 && x.shape[0] == cache.rows && x.shape[2] == modelDim,
            "TransformerDecoder: input \(x.shape) must be [cache rows = \(cache.rows), steps, \(modelDim)]")
        var h = x  // [r, t, d]
        for i in layers.indices {
            h = layers[i](
                h, selfCache: &cache.selfAttention[i], memory: cache.crossAttention?[i],
                memoryPadding: cache.memoryPadding, rowsPerSource: cache.rowsPerSource,
                selfAttentionBias: selfAttentionBiases[i], compute: compute)  // [r, t, d]
        }
        cache.length += x.shape[1]
        if let finalNorm { h = finalNorm(h, compute: compute) }
        return h
    }
}
