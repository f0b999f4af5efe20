// The sequence-to-sequence model of "Attention Is All You Need" (Vaswani et al., 2017):
//
//   source ids -> Embedding * sqrt(d) + positions -> encoder (N layers)       -> memory
//   target ids -> Embedding * sqrt(d) + positions -> decoder (N layers, memory) -> generator -> logits
//
// Its state dict follows the usual PyTorch layout: an nn.Transformer under `transformer`, the
// two embeddings and a generator Linear(d, vocab) beside it.

import Foundation

/// The sizes and conventions of a ``TransformerModel``. ``base(sourceVocabularySize:targetVocabularySize:)``
/// is the paper's base model.
public struct TransformerConfig: Sendable, Hashable {
    /// Source vocabulary size.
    public var sourceVocabularySize: Int
    /// Target vocabulary size (the generator's output width).
    public var targetVocabularySize: Int
    /// Width, heads, feed-forward size, activation, norm placement and eps of every layer.
    public var layer: PyTorchLayerConfig
    /// Encoder blocks (the paper: 6).
    public var encoderLayers: Int
    /// Decoder blocks (the paper: 6).
    public var decoderLayers: Int
    /// Whether each stack ends with a LayerNorm (`nn.Transformer` always has them).
    public var finalNorms: Bool = true
    /// Sines at even and cosines at odd dimensions (true, the paper) or in two halves.
    public var interleavedPositions: Bool = true
    /// Sinusoid rows computed at load time (longer inputs compute theirs on demand).
    public var precomputedPositions: Int = 512
    /// Embeddings are multiplied by this; nil means `sqrt(d)` (the paper, §3.4).
    public var embeddingScale: Float? = nil
    /// The id that fills the tail of shorter sources in a batch (it is masked out; any valid id works).
    public var sourcePadTokenID: Int = 0
    /// The dropout probability training applies (``TrainableTransformerModel``: `nn.Transformer`'s
    /// `dropout` and the positional encoding's; the paper and PyTorch's default use 0.1).
    /// Inference ignores it. Default 0.
    public var dropout: Float = 0

    /// A configuration; the remaining settings take the defaults above.
    public init(
        sourceVocabularySize: Int, targetVocabularySize: Int, layer: PyTorchLayerConfig,
        encoderLayers: Int = 6, decoderLayers: Int = 6
    ) {
        self.sourceVocabularySize = sourceVocabularySize
        self.targetVocabularySize = targetVocabularySize
        self.layer = layer
        self.encoderLayers = encoderLayers
        self.decoderLayers = decoderLayers
    }

    /// The paper's base model: 6 + 6 layers, d = 512, 8 heads, d_ff = 2048, ReLU, post-LN.
    public static func base(sourceVocabularySize: Int, targetVocabularySize: Int) -> TransformerConfig {
        TransformerConfig(
            sourceVocabularySize: sourceVocabularySize, targetVocabularySize: targetVocabularySize,
            layer: PyTorchLayerConfig(modelDim: 512, heads: 8, feedForwardDim: 2048))
    }

    /// Throws `CheckpointError.invalidConfig` naming the first impossible setting.
    public func validate() throws {
        try layer.validate()
        guard sourceVocabularySize >= 1, targetVocabularySize >= 1 else {
            throw CheckpointError.invalidConfig("vocabulary sizes \(sourceVocabularySize) and \(targetVocabularySize) must be positive")
        }
        guard encoderLayers >= 1, decoderLayers >= 1 else {
            throw CheckpointError.invalidConfig("layer counts \(encoderLayers) + \(decoderLayers) must be positive")
        }
        guard precomputedPositions >= 0 else { throw CheckpointError.invalidConfig("precomputedPositions \(precomputedPositions) is negative") }
        guard sourcePadTokenID >= 0 && sourcePadTokenID < sourceVocabularySize else {
            throw CheckpointError.invalidConfig("sourcePadTokenID \(sourcePadTokenID) is not in the source vocabulary of \(sourceVocabularySize)")
        }
        guard dropout >= 0 && dropout < 1 else { throw CheckpointError.invalidConfig("dropout \(dropout) must be a probability in [0, 1)") }
        if let s = embeddingScale, !s.isFinite { throw CheckpointError.invalidConfig("embeddingScale \(s) is not finite") }
    }
}

/// The encoder-decoder Transformer: embeddings scaled by `sqrt(d)` plus sinusoidal
/// positions, an encoder stack, a decoder stack and a generator (a linear layer to target
/// vocabulary logits). Immutable and `Sendable`; per-call state (the ``KVCache``) belongs to
/// the caller.
///
/// Cost of a forward pass with source length S and target length T, per batch row:
/// encoder `N * (8 S d² + 4 S d dFF + 4 S² d)` flops, decoder `N * (12 T d² + 4 T d dFF +
/// 2 T² d + 4 T S d)` plus `4 S d²` per layer for the memory keys/values, generator `2 T d V`.
public struct TransformerModel: EncoderDecoderModel {
    /// Sizes and conventions.
    public let config: TransformerConfig
    /// Source token embeddings `[sourceVocabularySize, d]`.
    public let sourceEmbedding: Embedding
    /// Target token embeddings `[targetVocabularySize, d]`.
    public let targetEmbedding: Embedding
    /// Absolute positions added to both embeddings.
    public let positions: AbsolutePositions
    /// The encoder stack.
    public let encoder: TransformerEncoder
    /// The decoder stack.
    public let decoder: TransformerDecoder
    /// `d -> targetVocabularySize` logits.
    public let generator: Linear
    /// How decoding and teacher forcing hold the encoder memory's cross-attention keys and
    /// values (``Seq2SeqModel/memoryPrecision``): `.automatic` (bfloat16 with int8 weights,
    /// else float32) unless set.
    public var memoryPrecision: MemoryPrecision = .automatic

    /// Model width d.
    public var modelDim: Int { encoder.modelDim }
    /// The factor applied to embeddings (`sqrt(d)` unless the config says otherwise).
    public var embeddingScale: Float { config.embeddingScale ?? Float(Double(modelDim).squareRoot()) }
    /// Generator output width (``AutoregressiveDecoder`` conformance).
    public var vocabularySize: Int { generator.outFeatures }
    /// Source vocabulary size (``EncoderDecoderModel`` conformance).
    public var sourceVocabularySize: Int { sourceEmbedding.count }
    /// nil: no limit (sinusoids past the precomputed table are computed on demand).
    public var maxPositions: Int? { nil }

    /// A model from its parts; sizes must agree with `config` (a precondition).
    public init(
        config: TransformerConfig, sourceEmbedding: Embedding, targetEmbedding: Embedding,
        encoder: TransformerEncoder, decoder: TransformerDecoder, generator: Linear
    ) {
        let d = config.layer.modelDim
        precondition(
            sourceEmbedding.storage.shape == [config.sourceVocabularySize, d]
                && targetEmbedding.storage.shape == [config.targetVocabularySize, d]
                && encoder.modelDim == d && decoder.modelDim == d && decoder.hasCrossAttention
                && generator.weightShape == [config.targetVocabularySize, d],
            "TransformerModel: embeddings \(sourceEmbedding.storage.shape) / \(targetEmbedding.storage.shape), stacks of width \(encoder.modelDim) / \(decoder.modelDim), generator \(generator.weightShape) do not fit d = \(d), vocabularies \(config.sourceVocabularySize) / \(config.targetVocabularySize)"
        )
        self.config = config
        self.sourceEmbedding = sourceEmbedding
        self.targetEmbedding = targetEmbedding
        self.positions = .sinusoidal(dim: d, precomputed: config.precomputedPositions, interleaved: config.interleavedPositions)
        self.encoder = encoder
        self.decoder = decoder
        self.generator = generator
    }

    /// Where the parts of the model live in a state dict.
    public struct ParameterNames: Sendable, Hashable {
        /// The source `nn.Embedding` (its `weight`).
        public var sourceEmbedding = "src_embed"
        /// The target `nn.Embedding`.
        public var targetEmbedding = "tgt_embed"
        /// The `nn.Transformer` (its `encoder.*` and `decoder.*`).
        public var transformer = "transformer"
        /// The generator `nn.Linear`.
        public var generator = "generator"
        /// The default names: `src_embed`, `tgt_embed`, `transformer`, `generator`.
        public init() {}
    }

    /// Loads the model from a state dict (a safetensors file or checkpoint): `src_embed.weight`,
    /// `tgt_embed.weight`, `transformer.encoder.layers.{i}.*`, `transformer.encoder.norm.*`,
    /// `transformer.decoder.layers.{i}.*`, `transformer.decoder.norm.*`, `generator.weight`,
    /// `generator.bias` (names adjustable through `names`). Throws `CheckpointError` naming
    /// the first missing or misshapen tensor, every tensor left unused, or an impossible
    /// configuration. Cost: one read of every tensor.
    public init(loading source: TensorSource, config: TransformerConfig, names: ParameterNames = ParameterNames()) throws {
        try self.init(loading: source, config: config, names: names, weightPrecision: nil)
    }

    /// Loads the model from a state dict as ``init(loading:config:names:)`` does, with its
    /// weight matrices (the `Linear` weights and the embedding tables) held in `weightPrecision`:
    /// nil keeps each as the source stores it (F16 and BF16 tensors of a safetensors file stay
    /// 16-bit, mapped), `.float32` widens 16-bit ones, `.float16` / `.bfloat16` round float32
    /// ones at load (one pass). Biases and norms stay float32. Throws as that initializer.
    public init(
        loading source: TensorSource, config: TransformerConfig, names: ParameterNames = ParameterNames(), weightPrecision: WeightPrecision?
    ) throws {
        try config.validate()
        let p = ParameterLoader(WeightPrecisionSource.wrap(source, weightPrecision))
        let d = config.layer.modelDim
        let j = { ParameterLoader.join(names.transformer, $0) }
        let src = try p.loadEmbedding(ParameterLoader.join(names.sourceEmbedding, "weight"), shape: [config.sourceVocabularySize, d])
        let tgt = try p.loadEmbedding(ParameterLoader.join(names.targetEmbedding, "weight"), shape: [config.targetVocabularySize, d])
        let encoder = try TransformerEncoder(
            loadingPyTorch: p, j("encoder"), layers: config.encoderLayers, config.layer, finalNorm: config.finalNorms)
        let decoder = try TransformerDecoder(
            loadingPyTorch: p, j("decoder"), layers: config.decoderLayers, config.layer, finalNorm: config.finalNorms)
        let generator = try Linear(
            loading: p, names.generator, in: d, out: config.targetVocabularySize,
            bias: p.has(ParameterLoader.join(names.generator, "bias")))
        try p.finish()
        self.init(config: config, sourceEmbedding: src, targetEmbedding: tgt, encoder: encoder, decoder: decoder, generator: generator)
    }

    /// The encoder's output for a batch of sources (see ``Attend/EncodedSource``).
    public typealias EncodedSource = Attend.EncodedSource

    /// Encodes sources of any lengths (at least 1 token each): right-padded into one batch,
    /// with padding masked out of every attention, so each row equals encoding that source
    /// alone. Throws ``GenerationError/invalidInput(_:)`` for sources
    /// ``EncoderDecoderModel/checkSources(_:)`` rejects. Cost: see the type's summary.
    public func encode(_ sources: [[Int]], compute: Compute = .default) throws -> EncodedSource {
        try checkSources(sources)
        let batch = PaddedSources(sources, pad: config.sourcePadTokenID, caller: "TransformerModel.encode")
        let x = embed(batch.ids, table: sourceEmbedding, scale: embeddingScale, positions: positions, offset: 0)  // [b, s, d]
        let memory = encoder(x, keyPadding: batch.padding, compute: compute)  // [b, s, d]
        return EncodedSource(encoded: memory, padding: batch.padding, lengths: batch.lengths)
    }

    /// Teacher forcing: the logits after every target position, `[batch, T, V]`, for targets
    /// `[batch][T]` (equal lengths; position t sees targets 0...t and the whole source).
    /// Throws ``GenerationError/invalidInput(_:)`` for targets
    /// ``EncoderDecoderModel/checkTargets(_:encoded:)`` rejects, or an `encoded` of another
    /// width than the decoder's (another model's encoding).
    public func decode(_ targets: [[Int]], encoded: EncodedSource, compute: Compute = .default) throws -> Tensor {
        try checkTargets(targets, encoded: encoded)
        try decoder.checkMemory(encoded)
        let y = embed(targets, table: targetEmbedding, scale: embeddingScale, positions: positions, offset: 0)  // [b, T, d]
        let h = decoder(y, memory: encoded.memory, memoryPadding: encoded.padding, memoryPrecision: memoryPrecision, compute: compute)  // [b, T, d]
        return generator(h, compute: compute)  // [b, T, V]
    }

    /// Teacher-forced logits `[batch, T, V]` of `targets` given `sources`. Throws as
    /// ``encode(_:compute:)`` and ``decode(_:encoded:compute:)`` do.
    public func callAsFunction(sources: [[Int]], targets: [[Int]], compute: Compute = .default) throws -> Tensor {
        try decode(targets, encoded: encode(sources, compute: compute), compute: compute)
    }

    /// Teacher forcing with attention probabilities: the logits `[batch, T, V]` of `targets`
    /// given `sources` (as ``callAsFunction(sources:targets:compute:)``, the same bits) and
    /// the encoder self-attention `[batch, heads, S, S]`, decoder self-attention `[batch,
    /// heads, T, T]` and cross-attention `[batch, heads, T, S]` probabilities of the layers
    /// asked for (0-based), recomputed beside the fused kernels: each asked map costs its
    /// layer's Q/K projection again plus `2 batch heads query key headDim` flops and `batch
    /// heads query key` floats. Padded source keys and future target keys get 0.
    /// Throws ``ModelInputError`` for a layer index out of range, and as ``encode(_:compute:)``
    /// and ``decode(_:encoded:compute:)`` do.
    public func forward(
        sources: [[Int]], targets: [[Int]], outputEncoderAttentions: Set<Int> = [], outputDecoderAttentions: Set<Int> = [],
        outputCrossAttentions: Set<Int> = [], compute: Compute = .default
    ) throws -> EncoderDecoderOutput {
        try checkAttentionLayers(
            "TransformerModel", encoder: outputEncoderAttentions, decoder: outputDecoderAttentions, cross: outputCrossAttentions,
            encoderLayers: encoder.layers.count, decoderLayers: decoder.layers.count)
        try checkSources(sources)
        let batch = PaddedSources(sources, pad: config.sourcePadTokenID, caller: "TransformerModel.forward")
        let x = embed(batch.ids, table: sourceEmbedding, scale: embeddingScale, positions: positions, offset: 0)  // [b, S, d]
        let (memory, encoderMaps) = encoder.forward(x, keyPadding: batch.padding, outputAttentions: outputEncoderAttentions, compute: compute)
        let encoded = EncodedSource(encoded: memory, padding: batch.padding, lengths: batch.lengths)
        try checkTargets(targets, encoded: encoded)
        let y = embed(targets, table: targetEmbedding, scale: embeddingScale, positions: positions, offset: 0)  // [b, T, d]
        let (h, decoderMaps, crossMaps) = decoder.forward(
            y, memory: memory, memoryPadding: batch.padding, selfAttentions: outputDecoderAttentions,
            crossAttentions: outputCrossAttentions, memoryPrecision: memoryPrecision, compute: compute)  // [b, T, d]
        return EncoderDecoderOutput(
            logits: generator(h, compute: compute), encoderLastHiddenState: memory, encoderAttentions: encoderMaps,
            decoderAttentions: decoderMaps, crossAttentions: crossMaps)
    }

    /// A fresh cache for decoding from `encoded`: the memory's keys and values are computed
    /// here, once per layer. `capacity`: positions to reserve. Cost: `4 * batch * S * d²` flops per layer.
    /// Throws ``GenerationError/invalidInput(_:)`` naming both widths, before any work, for an
    /// `encoded` of another width d than the decoder's (another model's encoding), as
    /// ``decode(_:encoded:compute:)`` does.
    public func makeCache(for encoded: EncodedSource, capacity: Int = 64, compute: Compute = .default) throws -> KVCache {
        try decoder.checkMemory(encoded)
        return decoder.makeCache(
            memory: encoded.memory, memoryPadding: encoded.padding, capacity: capacity, memoryPrecision: memoryPrecision, compute: compute)
    }

    /// Throws ``GenerationError/invalidInput(_:)`` unless `cache` fits this model's decoder
    /// (``AutoregressiveDecoder/checkCache(_:appending:)``): as many layers, self-attention
    /// keys/values of the decoder's width for ``KVCache/rows`` rows, and an encoder memory
    /// whose keys/values have the cross-attention width, one per ``KVCache/sources`` source,
    /// stored in heads of this model's head size — what ``makeCache(for:capacity:compute:)``
    /// makes. Generation calls it before any work, so that a cache another model (or a
    /// decoder stack built in code) made is a thrown error naming what differs, not a
    /// precondition failure. A cache of a model with the same layer count and widths cannot
    /// be told apart and is accepted. `appending` is not needed (a ``KVCache`` takes any
    /// number of new tokens). Cost: O(layers).
    public func checkCache(_ cache: KVCache, appending: Int) throws {
        try decoder.checkCache(cache)
    }

    /// One decoding step (``AutoregressiveDecoder``): embeds `tokens` at positions
    /// `cache.length ..<`, runs the decoder against the cache, and returns the generator's
    /// logits for each row's last new position, `[cache.rows, V]`.
    /// Token ids outside the vocabulary, rows that do not match the cache, another model's
    /// cache or a length past ``positionLimit`` are precondition failures (generation checks
    /// them first); for tokens or a cache handed in, call
    /// ``AutoregressiveDecoder/checkedNextTokenLogits(appending:to:compute:)``, which throws.
    public func nextTokenLogits(appending tokens: [[Int]], to cache: inout KVCache, compute: Compute = .default) -> Tensor {
        precondition(
            tokens.count == cache.rows && !tokens[0].isEmpty,
            "TransformerModel.nextTokenLogits: \(tokens.count) rows of \(tokens.first?.count ?? 0) tokens for a cache of \(cache.rows) rows")
        let n = tokens[0].count, r = tokens.count, d = modelDim
        let y = embed(tokens, table: targetEmbedding, scale: embeddingScale, positions: positions, offset: cache.length)  // [r, n, d]
        let h = decoder(y, cache: &cache, compute: compute)  // [r, n, d]
        let last = n == 1 ? h.reshaped([r, d]) : lastPositions(h)  // [r, d]
        return generator(last, compute: compute)  // [r, V]
    }
}

/// The last position of every row: `[rows, n, d]` to `[rows, d]`. Cost: O(rows * d).
func lastPositions(_ h: Tensor) -> Tensor {
    let (r, n, d) = (h.shape[0], h.shape[1], h.shape[2])
    return h.reshaped([r * n, d]).gatherRows((0..<r).map { $0 * n + n - 1 })  // [r, d]
}
