// Hugging Face encoder-decoder checkpoints (T5ForConditionalGeneration, MarianMTModel) as one
// model type: both are the paper's encoder-decoder, differing in norms, their placement,
// positions, attention scale, feed-forward and output head:
//
//                  T5                                  Marian (opus-mt)
//   embeddings     shared, unscaled                    shared, x sqrt(d) (scale_embedding)
//   positions      relative bias per (bucket, head),   sinusoids, sines in the first half
//                  computed in layer 0 of each stack
//   layers         pre-LN, RMS norm without bias,      post-LN, LayerNorm, biases,
//                  no 1/sqrt(d_kv) attention scale     scaled attention
//   feed-forward   relu, or gated-gelu (tanh GELU)     swish (activation_function)
//   final norms    one per stack                       none
//   output         x d^-0.5 when tied, then lm_head    lm_head + final_logits_bias
//
// The loaders (T5.swift, Marian.swift) read `config.json`, `generation_config.json` and the
// weights, and build this type from the package's layers.

import Foundation

/// The published architecture a ``Seq2SeqModel`` was loaded as.
public enum Seq2SeqArchitecture: String, Sendable, Hashable {
    /// `T5ForConditionalGeneration` (also mT5 checkpoints, `model_type` "mt5").
    case t5
    /// `MarianMTModel` (the opus-mt translation models).
    case marian
}

/// A Hugging Face encoder-decoder language model (T5 or Marian) ready to generate exactly what
/// `transformers`' `model.generate` does.
///
/// Load one with ``init(directory:)``; encode sources with ``encode(_:compute:)`` and
/// generate with ``generate(sources:config:compute:)`` (greedy or beam search, with the
/// checkpoint's `generation_config.json` as defaults in ``generationDefaults``), or stream
/// tokens with ``EncoderDecoderModel/greedy(sources:startTokenID:config:compute:onStep:)``.
/// Immutable and `Sendable`; per-call state (the ``KVCache``) belongs to the caller.
///
/// Shapes: sources and targets are token ids `[batch][length]`; the encoder output is
/// `[batch, S, d]`; logits are `[batch, T, V]` (teacher forcing) or `[rows, V]` (one step).
/// Cost per source of length S and T decoded tokens (L layers per stack, inner width
/// i = heads x d_kv): encoder `L (8 S d i + 4 S d dFF + 4 S² i)` flops (6 instead of 4 for a
/// gated feed-forward), memory keys/values `4 S d i` per decoder layer once, then per token
/// `L (8 d i + 4 d dFF + 4 (t + S) i) + 2 d V`.
public struct Seq2SeqModel: EncoderDecoderModel {
    /// What the checkpoint is.
    public let architecture: Seq2SeqArchitecture
    /// Source token embeddings `[sourceVocabulary, d]`.
    public let encoderEmbedding: Embedding
    /// Target token embeddings `[V, d]` (the same storage as the source ones when shared).
    public let decoderEmbedding: Embedding
    /// Both embeddings are multiplied by this (Marian: `sqrt(d)` with `scale_embedding`; T5: 1).
    public let embeddingScale: Float
    /// Absolute positions added to the source embeddings (T5: none).
    public let encoderPositions: AbsolutePositions
    /// Absolute positions added to the target embeddings, from the cache position on.
    public let decoderPositions: AbsolutePositions
    /// The encoder stack (with T5's relative bias, when T5).
    public let encoder: TransformerEncoder
    /// The decoder stack (causal relative bias, when T5).
    public let decoder: TransformerDecoder
    /// The decoder output is multiplied by this before the head (T5 with tied embeddings:
    /// `d^-0.5`; otherwise 1).
    public let outputScale: Float
    /// `d -> V` logits (Marian: with `final_logits_bias` as its bias).
    public let lmHead: Linear
    /// The first decoder token (`decoder_start_token_id`).
    public let decoderStartTokenID: Int
    /// The id that fills shorter sources in a batch (`pad_token_id`; masked out).
    public let padTokenID: Int
    /// The longest source or target the position table covers (nil: unlimited).
    public let maxPositions: Int?
    /// The generation settings of the checkpoint (`generation_config.json`, else
    /// `config.json`), as `generate` uses them when no other settings are given.
    public let generationDefaults: GenerationConfig
    /// Settings of the checkpoint's generation configuration that this library does not
    /// implement (multi-token `bad_words_ids`, beam-search sampling, `num_beam_groups`,
    /// `encoder_no_repeat_ngram_size`, `typical_p`, ...): `generationDefaults` ignores them,
    /// so `transformers` may generate differently. Empty for the usual T5 and Marian checkpoints.
    public let ignoredGenerationSettings: [String]
    /// The precision the decoder holds the encoder memory's cross-attention keys and values
    /// in, for generation (``makeCache(for:capacity:compute:)``) and teacher forcing
    /// (``decode(_:encoded:compute:)``, ``forward(sources:targets:outputEncoderAttentions:outputDecoderAttentions:outputCrossAttentions:compute:)``)
    /// alike. `.automatic` (the default): bfloat16 with int8 weights, else float32, so a
    /// float32 or 16-bit checkpoint matches transformers on its weights in float32.
    /// `.bfloat16` halves the memory's bytes every decoding step reads (12.6 MB a token at
    /// t5-small's shape with a 512-token source, beside 76.9 MB of BF16 weights) for a
    /// rounding of every key and value to 8 significant bits. Training computes over a
    /// float32 memory whatever this says.
    public var memoryPrecision: MemoryPrecision = .automatic

    /// Model width d.
    public var modelDim: Int { encoder.modelDim }
    /// Target vocabulary size V (the head's output width).
    public var vocabularySize: Int { lmHead.outFeatures }
    /// Source vocabulary size.
    public var sourceVocabularySize: Int { encoderEmbedding.count }

    /// A model from its parts; widths and vocabularies must agree (a precondition naming them).
    public init(
        architecture: Seq2SeqArchitecture, encoderEmbedding: Embedding, decoderEmbedding: Embedding,
        embeddingScale: Float, encoderPositions: AbsolutePositions, decoderPositions: AbsolutePositions,
        encoder: TransformerEncoder, decoder: TransformerDecoder, outputScale: Float, lmHead: Linear,
        decoderStartTokenID: Int, padTokenID: Int, maxPositions: Int?,
        generationDefaults: GenerationConfig, ignoredGenerationSettings: [String] = []
    ) {
        let d = encoder.modelDim
        precondition(
            encoderEmbedding.dim == d && decoderEmbedding.dim == d && decoder.modelDim == d && decoder.hasCrossAttention
                && lmHead.inFeatures == d && lmHead.outFeatures == decoderEmbedding.count,
            "Seq2SeqModel: embeddings \(encoderEmbedding.storage.shape) / \(decoderEmbedding.storage.shape), stacks of width \(encoder.modelDim) / \(decoder.modelDim), head \(lmHead.weightShape) do not fit d = \(d)"
        )
        precondition(
            (0..<decoderEmbedding.count).contains(decoderStartTokenID) && (0..<encoderEmbedding.count).contains(padTokenID),
            "Seq2SeqModel: start token \(decoderStartTokenID) or pad token \(padTokenID) outside the vocabularies \(decoderEmbedding.count) / \(encoderEmbedding.count)"
        )
        do { try generationDefaults.validate(vocabularySize: lmHead.outFeatures) } catch {
            preconditionFailure("Seq2SeqModel: generationDefaults: \(error)")
        }
        self.architecture = architecture
        self.encoderEmbedding = encoderEmbedding
        self.decoderEmbedding = decoderEmbedding
        self.embeddingScale = embeddingScale
        self.encoderPositions = encoderPositions
        self.decoderPositions = decoderPositions
        self.encoder = encoder
        self.decoder = decoder
        self.outputScale = outputScale
        self.lmHead = lmHead
        self.decoderStartTokenID = decoderStartTokenID
        self.padTokenID = padTokenID
        self.maxPositions = maxPositions
        self.generationDefaults = generationDefaults
        self.ignoredGenerationSettings = ignoredGenerationSettings
    }

    /// Throws what the initializer from parts would stop at (a precondition) for the
    /// settings a loader takes from its caller:
    /// `CheckpointError.invalidConfig` for a start token outside the `targetVocabulary` or a
    /// pad token outside the `sourceVocabulary`, ``GenerationError/invalidConfig(_:)`` for
    /// `generation` out of range for the head's `targetVocabulary` tokens. Cost: O(settings).
    static func checkSettings(
        decoderStartTokenID start: Int, padTokenID pad: Int, generation: GenerationConfig, sourceVocabulary: Int, targetVocabulary: Int
    ) throws {
        guard (0..<targetVocabulary).contains(start) else {
            throw CheckpointError.invalidConfig("decoder start token \(start) is outside the target vocabulary of \(targetVocabulary)")
        }
        guard (0..<sourceVocabulary).contains(pad) else {
            throw CheckpointError.invalidConfig("pad token \(pad) is outside the source vocabulary of \(sourceVocabulary)")
        }
        try generation.validate(vocabularySize: targetVocabulary)
    }

    /// Loads a Hugging Face model folder: `config.json` (its `model_type` picks T5 or
    /// Marian), `generation_config.json` when present, and the weights, `model.safetensors`
    /// or a sharded checkpoint (`model.safetensors.index.json`). Float32 weights are
    /// memory-mapped. Throws `ModelFileError` (a configuration file: missing, invalid JSON,
    /// a value out of range or not supported, naming the file and key), `SafeTensorsError`
    /// (a weights file) or `CheckpointError` (a weight missing, misshapen or left unused).
    /// Cost: one read of every tensor, plus the fused Q/K/V copies (`3 d i` floats per attention).
    public init(directory: URL) throws {
        try self.init(directory: directory, weightPrecision: nil)
    }

    /// Loads a Hugging Face model folder as ``init(directory:)`` does, with its weight
    /// matrices held in `weightPrecision`.
    /// `weightPrecision` is the element type the `Linear` and `Embedding` weights are held in
    /// (see ``WeightPrecision``): nil keeps each as the checkpoint stores it (an F16 or BF16
    /// file stays 16-bit, mapped, never widened in memory: about half the memory and decoding
    /// time of float32), `.float32` widens 16-bit weights at load, `.float16` / `.bfloat16`
    /// round float32 weights to 16 bits at load (one pass). Biases and norms stay float32.
    public init(directory: URL, weightPrecision: WeightPrecision?) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        let (config, configURL, generation) = try readHFModelConfigs(directory)
        let type = try config.string("model_type")
        switch type {
        case "t5", "mt5":
            let c = try T5Config(fields: config)
            self = try Seq2SeqModel(
                t5: c, weights: WeightPrecisionSource.wrap(try ModelQuantization.checkpoint(directory: directory), weightPrecision),
                generation: try HFGenerationSettings(config: config, generation: generation, vocabularySize: c.vocabSize))
        case "marian":
            let c = try MarianConfig(fields: config)
            self = try Seq2SeqModel(
                marian: c, weights: WeightPrecisionSource.wrap(try ModelQuantization.checkpoint(directory: directory), weightPrecision),
                generation: try HFGenerationSettings(config: config, generation: generation, vocabularySize: c.decoderVocabSize))
        default:
            throw ModelFileError.unsupported(
                path: configURL.path,
                what: "model_type \(type.map { "\"\($0)\"" } ?? "(absent)") (this loader reads \"t5\", \"mt5\" and \"marian\")")
        }
    }

    /// Encodes sources of any lengths (at least 1 token each, at most ``maxPositions``):
    /// right-padded with ``padTokenID`` into one batch, with the padding masked out of every
    /// attention, so each row equals encoding that source alone. Returns `[batch, S, d]`
    /// memory and the padding. Throws ``GenerationError/invalidInput(_:)`` for sources
    /// ``EncoderDecoderModel/checkSources(_:)`` rejects (empty, ids outside the source
    /// vocabulary, longer than ``maxPositions``). Cost: see the type's summary.
    public func encode(_ sources: [[Int]], compute: Compute = .default) throws -> EncodedSource {
        try checkSources(sources)
        let batch = PaddedSources(sources, pad: padTokenID, caller: "Seq2SeqModel.encode")
        let x = embed(batch.ids, table: encoderEmbedding, scale: embeddingScale, positions: encoderPositions, offset: 0)  // [b, S, d]
        let memory = encoder(x, keyPadding: batch.padding, compute: compute)  // [b, S, d]
        return EncodedSource(encoded: memory, padding: batch.padding, lengths: batch.lengths)
    }

    /// Teacher forcing: the logits after every target position, `[batch, T, V]`, for
    /// `targets` `[batch][T]` (equal lengths, starting with the decoder start token; position
    /// t sees targets 0...t and the whole source), as `transformers`' forward pass with
    /// `decoder_input_ids` returns them. Throws ``GenerationError/invalidInput(_:)`` for
    /// targets ``EncoderDecoderModel/checkTargets(_:encoded:)`` rejects, or an `encoded` of
    /// another width than the decoder's (another model's encoding).
    public func decode(_ targets: [[Int]], encoded: EncodedSource, compute: Compute = .default) throws -> Tensor {
        try checkTargets(targets, encoded: encoded)
        try decoder.checkMemory(encoded)
        let y = embed(targets, table: decoderEmbedding, scale: embeddingScale, positions: decoderPositions, offset: 0)  // [b, T, d]
        var h = decoder(y, memory: encoded.memory, memoryPadding: encoded.padding, memoryPrecision: memoryPrecision, compute: compute)  // [b, T, d]
        if outputScale != 1 { h = h * outputScale }
        return lmHead(h, compute: compute)  // [b, T, V]
    }

    /// Teacher forcing with the attention probabilities transformers returns for
    /// `output_attentions=True`: encodes `sources` (any lengths, right-padded as
    /// ``encode(_:compute:)`` pads them), runs the decoder on `targets` (`[batch][T]`, as
    /// ``decode(_:encoded:compute:)`` takes them) and returns the logits with the encoder
    /// self-attention, decoder self-attention and cross-attention probabilities of the layers
    /// asked for (0-based; T5's relative bias and every mask included). The fused kernels
    /// stay in charge of the outputs, which are the same bits as ``decode(_:encoded:compute:)``'s
    /// whatever is asked; each asked map is recomputed beside them, its layer's Q/K projection
    /// again plus `2 batch heads query key d_kv` flops and `batch heads query key` floats.
    /// Throws ``ModelInputError`` for a layer index out of range and ``GenerationError/invalidInput(_:)``
    /// for sources or targets ``encode(_:compute:)`` or ``decode(_:encoded:compute:)`` reject.
    public func forward(
        sources: [[Int]], targets: [[Int]], outputEncoderAttentions: Set<Int> = [], outputDecoderAttentions: Set<Int> = [],
        outputCrossAttentions: Set<Int> = [], compute: Compute = .default
    ) throws -> EncoderDecoderOutput {
        try checkAttentionLayers(
            "Seq2SeqModel", encoder: outputEncoderAttentions, decoder: outputDecoderAttentions, cross: outputCrossAttentions,
            encoderLayers: encoder.layers.count, decoderLayers: decoder.layers.count)
        try checkSources(sources)
        let batch = PaddedSources(sources, pad: padTokenID, caller: "Seq2SeqModel.forward")
        let x = embed(batch.ids, table: encoderEmbedding, scale: embeddingScale, positions: encoderPositions, offset: 0)  // [b, S, d]
        let (memory, encoderMaps) = encoder.forward(x, keyPadding: batch.padding, outputAttentions: outputEncoderAttentions, compute: compute)
        let encoded = EncodedSource(encoded: memory, padding: batch.padding, lengths: batch.lengths)
        try checkTargets(targets, encoded: encoded)
        let y = embed(targets, table: decoderEmbedding, scale: embeddingScale, positions: decoderPositions, offset: 0)  // [b, T, d]
        var (h, decoderMaps, crossMaps) = decoder.forward(
            y, memory: memory, memoryPadding: batch.padding, selfAttentions: outputDecoderAttentions,
            crossAttentions: outputCrossAttentions, memoryPrecision: memoryPrecision, compute: compute)  // [b, T, d]
        if outputScale != 1 { h = h * outputScale }
        return EncoderDecoderOutput(
            logits: lmHead(h, compute: compute), encoderLastHiddenState: memory, encoderAttentions: encoderMaps,
            decoderAttentions: decoderMaps, crossAttentions: crossMaps)
    }

    /// A fresh cache for decoding from `encoded`: the memory's keys and values are computed
    /// here, once per decoder layer. Cost: `4 * batch * S * d * i` flops per layer.
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
    /// `cache.length ..<`, runs the decoder against the cache (T5's causal bias measured from
    /// the cache position), and returns the logits of each row's last new position,
    /// `[cache.rows, V]`.
    /// Token ids outside the vocabulary, rows that do not match the cache, another model's
    /// cache or a length past ``positionLimit`` are precondition failures (generation checks
    /// them first); for tokens or a cache handed in, call
    /// ``AutoregressiveDecoder/checkedNextTokenLogits(appending:to:compute:)``, which throws.
    public func nextTokenLogits(appending tokens: [[Int]], to cache: inout KVCache, compute: Compute = .default) -> Tensor {
        precondition(
            tokens.count == cache.rows && !tokens[0].isEmpty,
            "Seq2SeqModel.nextTokenLogits: \(tokens.count) rows of \(tokens.first?.count ?? 0) tokens for a cache of \(cache.rows) rows")
        checkStep(tokens, start: cache.length)
        let n = tokens[0].count, r = tokens.count, d = modelDim
        let y = embed(tokens, table: decoderEmbedding, scale: embeddingScale, positions: decoderPositions, offset: cache.length)  // [r, n, d]
        let h = decoder(y, cache: &cache, compute: compute)  // [r, n, d]
        var last = n == 1 ? h.reshaped([r, d]) : lastPositions(h)  // [r, d]
        if outputScale != 1 { last = last * outputScale }
        return lmHead(last, compute: compute)  // [r, V]
    }

    /// Attend's invariant for a decoding step (``generate`` checked the ids and the length).
    private func checkStep(_ tokens: [[Int]], start: Int) {
        let v = vocabularySize
        precondition(
            tokens.allSatisfy { $0.allSatisfy { (0..<v).contains($0) } },
            "Seq2SeqModel: target token ids must lie in 0..<\(v)")
        if let maxPositions {
            precondition(
                start + tokens[0].count <= maxPositions,
                "Seq2SeqModel: target positions \(start)..<\(start + tokens[0].count) pass the \(maxPositions) positions of the model")
        }
    }

    /// Generates from each source as `transformers`' `model.generate(input_ids,
    /// attention_mask)` does, starting the decoder at ``decoderStartTokenID``: greedy search,
    /// or beam search when `config.numBeams > 1`. `config` defaults to
    /// ``generationDefaults``. Sources may differ in length (a padded batch; each result
    /// equals generating from that source alone). Returns the sequences as `generate` returns
    /// them: start token included, padded with the pad token to one length.
    /// Throws ``GenerationError`` for a request the model cannot carry out (ids outside the
    /// vocabulary, a length past ``maxPositions``, settings out of range), checked before any
    /// work; `CancellationError` when the task is cancelled.
    public func generate(sources: [[Int]], config: GenerationConfig? = nil, compute: Compute = .default) throws -> GenerationOutput {
        try generate(sources: sources, startTokenID: decoderStartTokenID, config: config ?? generationDefaults, compute: compute)
    }
}
