import Foundation

// BERT (Devlin et al., 2019): token + position + segment embeddings, a stack of post-LN
// Transformer encoder layers, and the pre-training heads. Parameters keep Hugging Face's
// names (`embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, ...), so a
// `BertModel` / `BertForPreTraining` / `BertForMaskedLM` checkpoint loads as it is (see
// BERTLoading.swift).
//
//   ids, segments -> word + segment (+ position) embeddings -> LayerNorm        x: [T, d]
//   per layer:  a = SelfAttention(x)          (fused QKV projection, fused kernel)
//               h = LayerNorm(x + a)
//               y = LayerNorm(h + W2 act(W1 h))
//   pooler:     tanh(W h_[CLS])              MLM: decoder(LayerNorm(act(W h)))   NSP: W pooled
//
// T = batch x seq tokens are processed as one matrix, so every projection is one GEMM.

/// BERT's embedding block: the sum of word, segment (token type) and, for absolute
/// positions, position embeddings, then a layer norm.
public struct BERTEmbeddings: Sendable {
    /// `[vocabSize, d]`.
    public let word: Embedding
    /// `[maxPositionEmbeddings, d]` (kept, but not added, for relative position types).
    public let position: Embedding
    /// `[typeVocabSize, d]`.
    public let tokenType: Embedding
    /// The layer norm after the sum.
    public let norm: LayerNorm
    /// Whether position embeddings are added (absolute position type).
    public let addsPositions: Bool
}

/// One BERT layer: an ``EncoderLayer`` configured as BERT's (post-LN, LayerNorm, the
/// query/key/value projections fused into one `[3d, d]` weight, `hidden_act` in the
/// feed-forward block, ``RelativeKeyPositions`` for the relative position types). The
/// checkpoint names map as `attention.self.{query,key,value}` -> `selfAttention.inProjection`,
/// `attention.output.dense` -> `selfAttention.outProjection`, `attention.output.LayerNorm` ->
/// `attentionNorm`, `intermediate.dense` / `output.dense` -> `feedForward.up` / `.down`,
/// `output.LayerNorm` -> `feedForwardNorm`.
public typealias BERTLayer = EncoderLayer

/// The masked-language-model head (`cls.predictions`): a transform (dense, activation, layer
/// norm) and a decoder to the vocabulary whose weight is usually the word embedding table.
public struct BERTMaskedLMHead: Sendable {
    /// `transform.dense`: d -> d.
    public let transform: Linear
    /// `hidden_act`.
    public let activation: Activation
    /// `transform.LayerNorm`.
    public let norm: LayerNorm
    /// `decoder`: weight `[vocab, d]` (tied to the word embeddings when the checkpoint stores
    /// it once), bias `cls.predictions.bias` `[vocab]`.
    public let decoder: Linear
}

/// What one forward pass returns.
public struct BERTOutput: Sendable {
    /// The last layer's output, `[batch, seq, d]` (padding positions included, computed as
    /// Hugging Face computes them).
    public let lastHiddenState: Tensor
    /// When asked for: the embedding block's output followed by every layer's output, each
    /// `[batch, seq, d]` (Hugging Face's `hidden_states`); otherwise empty.
    public let hiddenStates: [Tensor]
    /// The attention probabilities of the layers asked for (`outputAttentions`), by layer
    /// index (0 = first encoder layer, Hugging Face's `attentions[i]`): `[batch, heads, seq,
    /// seq]`, row = query, column = key, each row summing to 1 over the real keys (padded keys
    /// get 0); empty when none was asked for.
    public let attentions: [Int: Tensor]
}

/// A BERT encoder with its optional pooler and pre-training heads, loaded from a Hugging Face
/// checkpoint (``init(directory:)``, ``init(config:weights:ignoringUnusedTensors:)``).
///
/// Immutable and `Sendable`: run it from any number of threads. Every heavy step is a GEMM,
/// the fused attention kernel (absolute positions) or a fused row kernel; `compute` chooses
/// the kernels and threads.
public struct BERTModel: Sendable {
    /// The configuration the model was built from.
    public let config: BERTConfig
    /// The embedding block.
    public let embeddings: BERTEmbeddings
    /// The encoder layers, first to last.
    public let layers: [BERTLayer]
    /// `pooler.dense` (d -> d, then tanh on the first token), when the checkpoint has it.
    public let pooler: Linear?
    /// `cls.predictions`, when the checkpoint has it.
    public let maskedLMHead: BERTMaskedLMHead?
    /// `cls.seq_relationship` (d -> 2, on the pooled output), when the checkpoint has it.
    public let nextSentenceHead: Linear?

    /// Assembles a model from its parts (loading does this; see BERTLoading.swift).
    init(
        config: BERTConfig, embeddings: BERTEmbeddings, layers: [BERTLayer], pooler: Linear?,
        maskedLMHead: BERTMaskedLMHead?, nextSentenceHead: Linear?
    ) {
        self.config = config
        self.embeddings = embeddings
        self.layers = layers
        self.pooler = pooler
        self.maskedLMHead = maskedLMHead
        self.nextSentenceHead = nextSentenceHead
    }

    /// Model width d.
    public var hiddenSize: Int { config.hiddenSize }

    // MARK: Forward

    /// The encoder on a batch of equal-length rows.
    ///
    /// - `inputIDs`: `[batch][seq]` token ids in `0 ..< vocabSize`, `seq <= maxPositionEmbeddings`.
    /// - `tokenTypeIDs`: the same shape, in `0 ..< typeVocabSize`; nil means all 0.
    /// - `attentionMask`: the same shape, 1 = real token, 0 = padding (keys hidden from every
    ///   query); nil means all 1. A row whose mask is all 0 attends to nothing and gets zero
    ///   attention output (Hugging Face's additive mask averages all values there instead).
    /// - `outputHiddenStates`: also return the embedding output and every layer's output.
    /// - `outputAttentions`: the layers (0-based) whose attention probabilities to return
    ///   (Hugging Face's `output_attentions`, for these layers only). The fused kernel never
    ///   forms them: each asked layer recomputes its queries and keys and the probabilities
    ///   the materialized way, `4 T d² + 2 batch seq² d` more flops and `batch heads seq²`
    ///   floats per layer. A layer index out of range throws.
    ///
    /// Input the model cannot take (ragged rows, an id or token type out of range, too long a
    /// sequence, a mask of other values than 0/1) throws ``ModelInputError`` naming what and
    /// where. Cost per layer: `(8 d² + 4 d dFF) T` flops for the projections
    /// (T = batch x seq) plus `4 batch seq² d` for attention.
    public func forward(
        inputIDs: [[Int]], tokenTypeIDs: [[Int]]? = nil, attentionMask: [[Int]]? = nil,
        outputHiddenStates: Bool = false, outputAttentions: Set<Int> = [], compute: Compute = .default
    ) throws(ModelInputError) -> BERTOutput {
        let batch = inputIDs.count
        let seq = inputIDs.first?.count ?? 0
        let d = config.hiddenSize
        try check(
            inputIDs.allSatisfy { $0.count == seq },
            "inputIDs rows have different lengths \(Set(inputIDs.map(\.count)).sorted()) (pad them)")
        try check(
            seq <= config.maxPositionEmbeddings,
            "sequence length \(seq) exceeds maxPositionEmbeddings \(config.maxPositionEmbeddings) (truncate)")
        if let t = tokenTypeIDs {
            try check(
                t.count == batch && t.allSatisfy { $0.count == seq },
                "tokenTypeIDs \(t.count) x \(Set(t.map(\.count)).sorted()) must be [\(batch)][\(seq)] like inputIDs")
        }
        if let m = attentionMask {
            try check(
                m.count == batch && m.allSatisfy { $0.count == seq },
                "attentionMask \(m.count) x \(Set(m.map(\.count)).sorted()) must be [\(batch)][\(seq)] like inputIDs")
            try check(m.allSatisfy { $0.allSatisfy { $0 == 0 || $0 == 1 } }, "attentionMask values must be 0 or 1")
        }
        try checkIDs(inputIDs, tokenTypeIDs)
        if let bad = outputAttentions.sorted().first(where: { !layers.indices.contains($0) }) {
            throw ModelInputError("BERTModel: outputAttentions asks for layer \(bad); the model has layers 0..<\(layers.count)")
        }
        let keyPadding: [[Bool]]? = attentionMask.flatMap { m in
            m.contains(where: { $0.contains(0) }) ? m.map { $0.map { $0 != 0 } } : nil
        }
        let rows = TokenRows(batch: batch, seq: seq, keyPadding: keyPadding)
        var x = embed(inputIDs, tokenTypeIDs, rows, compute: compute)  // [T, d]
        var states: [Tensor] = []
        if outputHiddenStates { states.append(x.reshaped([batch, seq, d])) }
        var attentions: [Int: Tensor] = [:]
        for (i, layer) in layers.enumerated() {
            if outputAttentions.contains(i) { attentions[i] = layer.attentionProbabilities(rows: x, rows, compute: compute) }
            x = encode(layer, x, rows, compute: compute)  // [T, d]
            if outputHiddenStates { states.append(x.reshaped([batch, seq, d])) }
        }
        return BERTOutput(lastHiddenState: x.reshaped([batch, seq, d]), hiddenStates: states, attentions: attentions)
    }

    /// The last hidden state `[batch, seq, d]` of a batch of encodings of equal length (pad
    /// them with ``WordPieceTokenizer/pad(_:_:)`` or encode with `padding: .longest`).
    public func callAsFunction(_ encodings: [Encoding], compute: Compute = .default) throws(ModelInputError) -> Tensor {
        try forward(
            inputIDs: encodings.map(\.ids), tokenTypeIDs: encodings.map(\.tokenTypeIDs),
            attentionMask: encodings.map(\.attentionMask), compute: compute
        ).lastHiddenState
    }

    /// The encoder on sequences of any lengths, without padding: their tokens are stacked
    /// into one `[Σ lengths, d]` matrix (sequence i from row `rows.starts[i]`), so no work is
    /// spent on padding. Each sequence's rows equal what ``forward(inputIDs:tokenTypeIDs:attentionMask:outputHiddenStates:outputAttentions:compute:)``
    /// gives for its real tokens in a padded batch (to float rounding).
    func forwardUnpadded(_ ids: [[Int]], tokenTypeIDs: [[Int]], compute: Compute) throws(ModelInputError) -> (hidden: Tensor, rows: TokenRows) {
        try check(
            tokenTypeIDs.count == ids.count && zip(ids, tokenTypeIDs).allSatisfy { $0.count == $1.count },
            "tokenTypeIDs must have the shape of the ids")
        for (i, s) in ids.enumerated() {
            try check(
                s.count <= config.maxPositionEmbeddings,
                "sequence \(i) has \(s.count) tokens, more than maxPositionEmbeddings \(config.maxPositionEmbeddings) (truncate)")
        }
        try checkIDs(ids, tokenTypeIDs)
        let rows = TokenRows(lengths: ids.map(\.count))
        var x = embed(ids, tokenTypeIDs, rows, compute: compute)
        for layer in layers { x = encode(layer, x, rows, compute: compute) }
        return (x, rows)
    }

    /// word + segment (+ position) embeddings, then LayerNorm: `[T, d]`, sequence i at rows
    /// `rows.starts[i] ..< + rows.lengths[i]` with positions 0, 1, ... (ids already checked).
    func embed(_ ids: [[Int]], _ types: [[Int]]?, _ rows: TokenRows, compute: Compute) -> Tensor {
        let total = rows.total
        var flatIDs: [Int] = [], flatTypes: [Int] = [], positionIDs: [Int] = []
        flatIDs.reserveCapacity(total)
        for (b, _) in rows.starts.enumerated() {
            for i in 0..<rows.lengths[b] {
                let id = ids[b][i], tt = types?[b][i] ?? 0
                flatIDs.append(id)
                flatTypes.append(tt)
                positionIDs.append(i)
            }
        }
        let sum = embeddings.word.storage.gatherRows(flatIDs) + embeddings.tokenType.storage.gatherRows(flatTypes)  // [T, d]
        let positions = embeddings.addsPositions ? embeddings.position.storage.gatherRows(positionIDs) : nil  // [T, d]
        var x = Tensor.uninitialized([total, config.hiddenSize])
        // LayerNorm((word + segment) + position): the position add is fused into the norm.
        normRows(
            rms: false, sum, residual: positions, gamma: embeddings.norm.weight, beta: embeddings.norm.bias,
            eps: embeddings.norm.eps, into: &x, compute: compute)
        return x
    }

    /// One encoder layer on `x` `[T, d]`.
    func encode(_ layer: EncoderLayer, _ x: Tensor, _ rows: TokenRows, compute: Compute) -> Tensor {
        layer.forward(rows: x, rows, bias: .none, compute: compute)  // [T, d]
    }

    /// Throws ``ModelInputError`` with `message` (prefixed by the model's name) unless `ok`.
    private func check(_ ok: Bool, _ message: @autoclosure () -> String) throws(ModelInputError) {
        if !ok { throw ModelInputError("BERTModel: " + message()) }
    }

    /// Every id in the vocabulary and every token type in the type vocabulary, or a throw
    /// naming the first that is not and where it is.
    private func checkIDs(_ ids: [[Int]], _ types: [[Int]]?) throws(ModelInputError) {
        let vocab = embeddings.word.count, typeVocab = embeddings.tokenType.count
        for (b, row) in ids.enumerated() {
            for (i, id) in row.enumerated() where id < 0 || id >= vocab {
                throw ModelInputError("BERTModel: token id \(id) at [\(b)][\(i)] out of range 0..<\(vocab)")
            }
        }
        for (b, row) in (types ?? []).enumerated() {
            for (i, t) in row.enumerated() where t < 0 || t >= typeVocab {
                throw ModelInputError("BERTModel: token type \(t) at [\(b)][\(i)] out of range 0..<\(typeVocab)")
            }
        }
    }

    // MARK: Heads

    /// The pooled output `tanh(W h_0 + b)` of each row's first token (`[CLS]`):
    /// `[batch, seq, d]` -> `[batch, d]`. Throws when the checkpoint has no pooler or the
    /// hidden state has another shape.
    public func pooled(_ lastHiddenState: Tensor, compute: Compute = .default) throws(ModelInputError) -> Tensor {
        guard let pooler else { throw ModelInputError("BERTModel.pooled: this checkpoint has no pooler (pooler.dense)") }
        let h = lastHiddenState
        try check(
            h.rank == 3 && h.shape[2] == hiddenSize && h.shape[1] >= 1,
            "pooled: hidden state \(h.shape) must be [batch, seq >= 1, \(hiddenSize)]")
        let (b, s, d) = (h.shape[0], h.shape[1], h.shape[2])
        let first = h.reshaped([b * s, d]).gatherRows((0..<b).map { $0 * s })  // [b, d]
        return pooler.forward(first, compute: compute).map { Float(tanh(Double($0))) }  // [b, d]
    }

    /// Masked-language-model logits `[batch, seq, vocab]` from the last hidden state
    /// `[batch, seq, d]`. Throws when the checkpoint has no MLM head or the hidden state has
    /// another shape. Cost: `2 T d (d + vocab)` flops.
    public func maskedLMLogits(_ lastHiddenState: Tensor, compute: Compute = .default) throws(ModelInputError) -> Tensor {
        guard let head = maskedLMHead else { throw ModelInputError("BERTModel.maskedLMLogits: this checkpoint has no MLM head (cls.predictions)") }
        let h = lastHiddenState
        try check(h.rank == 3 && h.shape[2] == hiddenSize, "maskedLMLogits: hidden state \(h.shape) must be [batch, seq, \(hiddenSize)]")
        let t = head.transform.forward(h.reshaped([-1, hiddenSize]), activation: head.activation, compute: compute)  // [T, d]
        let n = head.norm(t, compute: compute)
        let logits = head.decoder.forward(n, compute: compute)  // [T, vocab]
        return logits.reshaped([h.shape[0], h.shape[1], head.decoder.outFeatures])
    }

    /// Next-sentence-prediction logits `[batch, 2]` (index 0: B follows A) from the pooled
    /// output `[batch, d]`. Throws when the checkpoint has no NSP head or `pooled` has another
    /// shape.
    public func nextSentenceLogits(_ pooled: Tensor, compute: Compute = .default) throws(ModelInputError) -> Tensor {
        guard let head = nextSentenceHead else {
            throw ModelInputError("BERTModel.nextSentenceLogits: this checkpoint has no NSP head (cls.seq_relationship)")
        }
        try check(pooled.rank == 2 && pooled.shape[1] == hiddenSize, "nextSentenceLogits: pooled \(pooled.shape) must be [batch, \(hiddenSize)]")
        return head.forward(pooled, compute: compute)
    }
}
