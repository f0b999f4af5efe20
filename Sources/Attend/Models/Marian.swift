// Marian (Junczys-Dowmunt et al., 2018; the opus-mt translation models) as Hugging Face's
// MarianMTModel computes it: the paper's post-LN encoder-decoder with
//
//   x = embed_tokens[ids] * sqrt(d) (scale_embedding) + sinusoids(position)
//       sinusoids: sin(p / 10000^(2i/d)) in the first d/2 dimensions, cos in the second half
//   block: x = LayerNorm(x + SelfAttention(x)); [decoder: x = LayerNorm(x + CrossAttention(x))]
//          x = LayerNorm(x + fc2(swish(fc1 x)))
//   logits = lm_head(x) + final_logits_bias
//
// No final norm after either stack, no norm on the embeddings.

import Foundation

/// The settings of a Marian model, as in a Hugging Face `config.json` (`MarianConfig`); absent
/// keys take `MarianConfig`'s defaults.
public struct MarianConfig: Sendable, Equatable {
    /// Source vocabulary size (`vocab_size`, 58101).
    public var vocabSize: Int
    /// Target vocabulary size (`decoder_vocab_size`, defaults to `vocab_size`).
    public var decoderVocabSize: Int
    /// Model width d (`d_model`, 1024).
    public var dModel: Int
    /// Encoder blocks (`encoder_layers`, 12).
    public var encoderLayers: Int
    /// Decoder blocks (`decoder_layers`, 12).
    public var decoderLayers: Int
    /// Encoder heads (`encoder_attention_heads`, 16).
    public var encoderAttentionHeads: Int
    /// Decoder heads (`decoder_attention_heads`, 16).
    public var decoderAttentionHeads: Int
    /// Encoder feed-forward width (`encoder_ffn_dim`, 4096).
    public var encoderFFNDim: Int
    /// Decoder feed-forward width (`decoder_ffn_dim`, 4096).
    public var decoderFFNDim: Int
    /// Feed-forward activation (`activation_function`, gelu; opus-mt uses swish).
    public var activation: Activation
    /// Longest source or target (`max_position_embeddings`, 1024): the sinusoid table's rows.
    public var maxPositionEmbeddings: Int
    /// Embeddings are multiplied by `sqrt(d)` (`scale_embedding`, false; opus-mt: true).
    public var scaleEmbedding: Bool
    /// One embedding table for source and target (`share_encoder_decoder_embeddings`, true).
    public var shareEncoderDecoderEmbeddings: Bool
    /// `tie_word_embeddings` (true): `lm_head` is the target embedding table. Loading follows
    /// the weights: a stored `lm_head.weight` is used, as transformers does.
    public var tieWordEmbeddings: Bool
    /// `pad_token_id` (58100): fills shorter sources.
    public var padTokenID: Int
    /// `decoder_start_token_id` (58100, the pad token).
    public var decoderStartTokenID: Int
    /// `eos_token_id` (0).
    public var eosTokenID: Int
    /// `forced_eos_token_id` (0): forced as the last token at the maximum length.
    public var forcedEOSTokenID: Int?

    /// `MarianConfig()`'s defaults.
    public init() {
        vocabSize = 58101
        decoderVocabSize = 58101
        dModel = 1024
        encoderLayers = 12
        decoderLayers = 12
        encoderAttentionHeads = 16
        decoderAttentionHeads = 16
        encoderFFNDim = 4096
        decoderFFNDim = 4096
        activation = .gelu
        maxPositionEmbeddings = 1024
        scaleEmbedding = false
        shareEncoderDecoderEmbeddings = true
        tieWordEmbeddings = true
        padTokenID = 58100
        decoderStartTokenID = 58100
        eosTokenID = 0
        forcedEOSTokenID = 0
    }

    /// Reads a Hugging Face `config.json`. Throws `ModelFileError` naming the file and key.
    public init(contentsOf url: URL) throws {
        try self.init(fields: try JSONFields(try readModelJSON(url), path: url.path))
    }

    init(fields c: JSONFields) throws {
        var m = MarianConfig()
        let big = 1 << 24
        m.vocabSize = try c.int("vocab_size", in: 1...big) ?? m.vocabSize
        m.decoderVocabSize = try c.int("decoder_vocab_size", in: 1...big) ?? m.vocabSize
        m.dModel = try c.int("d_model", in: 1...big) ?? m.dModel
        m.encoderLayers = try c.int("encoder_layers", in: 1...4096) ?? m.encoderLayers
        m.decoderLayers = try c.int("decoder_layers", in: 1...4096) ?? m.decoderLayers
        m.encoderAttentionHeads = try c.int("encoder_attention_heads", in: 1...4096) ?? m.encoderAttentionHeads
        m.decoderAttentionHeads = try c.int("decoder_attention_heads", in: 1...4096) ?? m.decoderAttentionHeads
        m.encoderFFNDim = try c.int("encoder_ffn_dim", in: 1...big) ?? m.encoderFFNDim
        m.decoderFFNDim = try c.int("decoder_ffn_dim", in: 1...big) ?? m.decoderFFNDim
        m.maxPositionEmbeddings = try c.int("max_position_embeddings", in: 1...big) ?? m.maxPositionEmbeddings
        if let act = try c.string("activation_function") {
            guard let a = Activation(configName: act) else {
                throw ModelFileError.unsupported(path: c.path, what: "activation_function \"\(act)\" (known: gelu, relu, silu, swish, gelu_new)")
            }
            m.activation = a
        }
        m.scaleEmbedding = try c.bool("scale_embedding") ?? m.scaleEmbedding
        m.shareEncoderDecoderEmbeddings = try c.bool("share_encoder_decoder_embeddings") ?? m.shareEncoderDecoderEmbeddings
        m.tieWordEmbeddings = try c.bool("tie_word_embeddings") ?? m.tieWordEmbeddings
        for (key, heads) in [("encoder_attention_heads", m.encoderAttentionHeads), ("decoder_attention_heads", m.decoderAttentionHeads)]
        where m.dModel % heads != 0 {
            throw c.fail(key, "\(heads) heads do not divide d_model \(m.dModel)")
        }
        if m.shareEncoderDecoderEmbeddings && m.vocabSize != m.decoderVocabSize {
            throw c.fail("decoder_vocab_size", "\(m.decoderVocabSize) differs from vocab_size \(m.vocabSize) while the embeddings are shared")
        }
        let ids = 0...(min(m.vocabSize, m.decoderVocabSize) - 1)
        m.padTokenID = try c.int("pad_token_id", in: ids) ?? min(m.padTokenID, ids.upperBound)
        m.decoderStartTokenID = try c.int("decoder_start_token_id", in: ids) ?? m.padTokenID
        m.eosTokenID = try c.int("eos_token_id", in: ids) ?? 0
        m.forcedEOSTokenID = c.raw("forced_eos_token_id") == nil ? nil : try c.int("forced_eos_token_id", in: ids)
        self = m
    }

    /// Checks what building a Marian ``Seq2SeqModel`` relies on, for a configuration built or
    /// edited in code (``init(contentsOf:)`` gives only valid ones): sizes in range, heads
    /// that divide `dModel`, equal vocabularies when the embeddings are shared, and the pad,
    /// start, end and forced end tokens in both vocabularies. Throws
    /// `CheckpointError.invalidConfig` naming the first setting at fault. Cost: O(1).
    public func validate() throws {
        func check(_ ok: Bool, _ what: @autoclosure () -> String) throws { if !ok { throw CheckpointError.invalidConfig(what()) } }
        let big = 1 << 24
        let sizes = [
            ("vocabSize", vocabSize), ("decoderVocabSize", decoderVocabSize), ("dModel", dModel), ("encoderFFNDim", encoderFFNDim),
            ("decoderFFNDim", decoderFFNDim), ("maxPositionEmbeddings", maxPositionEmbeddings),
        ]
        for (name, value) in sizes { try check((1...big).contains(value), "\(name) \(value) out of range 1...\(big)") }
        for (name, value) in [("encoderLayers", encoderLayers), ("decoderLayers", decoderLayers)] {
            try check((1...4096).contains(value), "\(name) \(value) out of range 1...4096")
        }
        for (name, heads) in [("encoderAttentionHeads", encoderAttentionHeads), ("decoderAttentionHeads", decoderAttentionHeads)] {
            try check((1...4096).contains(heads) && dModel % heads == 0, "\(name) \(heads) must divide dModel \(dModel)")
        }
        try check(
            !shareEncoderDecoderEmbeddings || vocabSize == decoderVocabSize,
            "decoderVocabSize \(decoderVocabSize) differs from vocabSize \(vocabSize) while the embeddings are shared")
        let ids = 0..<min(vocabSize, decoderVocabSize)
        let special = [("padTokenID", padTokenID), ("decoderStartTokenID", decoderStartTokenID), ("eosTokenID", eosTokenID)]
        for (name, id) in special + (forcedEOSTokenID.map { [("forcedEOSTokenID", $0)] } ?? []) {
            try check(ids.contains(id), "\(name) \(id) is outside the vocabularies (\(ids.count) ids in both)")
        }
    }
}

extension Seq2SeqModel {
    /// Builds a Marian model from weights named as `MarianMTModel` names them
    /// (`model.shared.weight` or separate `model.{encoder,decoder}.embed_tokens.weight`,
    /// `model.encoder.layers.{i}.*`, `model.decoder.layers.{i}.*`, `final_logits_bias`;
    /// `lm_head.weight` when stored, else the target embedding). The sinusoidal position tables are computed (as Marian
    /// does) unless the checkpoint stores them (`model.{encoder,decoder}.embed_positions.weight`),
    /// in which case the stored ones are used. `generation` defaults to the config's special
    /// tokens with `transformers`' defaults (max_length 20, greedy, forced EOS).
    /// Throws `CheckpointError` naming a missing, misshapen or unused tensor or a setting out
    /// of range (``MarianConfig/validate()``, checked first, or a start token outside the target
    /// vocabulary), and ``GenerationError/invalidConfig(_:)`` for `generation` out of range.
    public init(marian config: MarianConfig, weights: TensorSource, generation: GenerationConfig? = nil) throws {
        try self.init(marian: config, weights: weights, generation: generation, weightPrecision: nil)
    }

    /// The model as ``init(marian:weights:generation:)`` builds it, with its weight matrices
    /// held in `weightPrecision`.
    /// `weightPrecision` is the element type the `Linear` and `Embedding` weights are held in
    /// (see ``WeightPrecision``): nil keeps each as the checkpoint stores it (an F16 or BF16
    /// file stays 16-bit, mapped, never widened in memory: about half the memory and decoding
    /// time of float32), `.float32` widens 16-bit weights at load, `.float16` / `.bfloat16`
    /// round float32 weights to 16 bits at load (one pass). Biases and norms stay float32.
    public init(
        marian config: MarianConfig, weights: TensorSource, generation: GenerationConfig? = nil, weightPrecision: WeightPrecision?
    ) throws {
        let weights = WeightPrecisionSource.wrap(weights, weightPrecision)
        var settings = HFGenerationSettings.defaults(maxNewTokens: 19)
        settings.config =
            generation
            ?? {
                var g = GenerationConfig(maxNewTokens: 19, eosTokenID: config.eosTokenID)
                g.padTokenID = config.padTokenID
                g.forcedEOSTokenID = config.forcedEOSTokenID
                return g
            }()
        settings.decoderStartTokenID = config.decoderStartTokenID
        try self.init(marian: config, weights: weights, generation: settings)
    }

    init(marian c: MarianConfig, weights: TensorSource, generation: HFGenerationSettings) throws {
        try c.validate()
        let p = ParameterLoader(weights)
        let d = c.dModel
        // transformers ties the stack embeddings to `model.shared` (when shared) and lm_head to
        // the target embedding, unless the checkpoint stores them separately (then it uses them).
        let sourceTable: Embedding, targetTable: Embedding
        if c.shareEncoderDecoderEmbeddings {
            let shared = try p.loadEmbedding("model.shared.weight", shape: [c.vocabSize, d])
            sourceTable = try p.optionalMatrix("model.encoder.embed_tokens.weight", shape: [c.vocabSize, d]).map(Embedding.init(storage:)) ?? shared
            targetTable = try p.optionalMatrix("model.decoder.embed_tokens.weight", shape: [c.vocabSize, d]).map(Embedding.init(storage:)) ?? shared
        } else {
            sourceTable = try p.loadEmbedding("model.encoder.embed_tokens.weight", shape: [c.vocabSize, d])
            targetTable = try p.loadEmbedding("model.decoder.embed_tokens.weight", shape: [c.decoderVocabSize, d])
        }
        func positions(_ stack: String) throws -> AbsolutePositions {
            if let stored = try p.optionalMatrix("model.\(stack).embed_positions.weight", shape: [c.maxPositionEmbeddings, d]) {
                return .learned(Embedding(storage: stored), offset: 0)
            }
            return .sinusoidal(dim: d, precomputed: min(c.maxPositionEmbeddings, 1024), interleaved: false)
        }
        func linear(_ name: String, _ i: Int, _ o: Int) throws -> Linear { try Linear(loading: p, name, in: i, out: o) }
        func attention(_ prefix: String, heads: Int) throws -> MultiHeadAttention {
            MultiHeadAttention(
                heads: heads, query: try linear(prefix + ".q_proj", d, d), key: try linear(prefix + ".k_proj", d, d),
                value: try linear(prefix + ".v_proj", d, d), out: try linear(prefix + ".out_proj", d, d))
        }
        func norm(_ prefix: String) throws -> Norm { .layer(try LayerNorm(loading: p, prefix, size: d, eps: 1e-5)) }
        func feedForward(_ prefix: String, width: Int) throws -> FeedForward {
            FeedForward(up: try linear(prefix + ".fc1", d, width), down: try linear(prefix + ".fc2", width, d), activation: c.activation)
        }
        let encoderLayers = try (0..<c.encoderLayers).map { i -> EncoderLayer in
            let b = "model.encoder.layers.\(i)"
            return EncoderLayer(
                selfAttention: try attention("\(b).self_attn", heads: c.encoderAttentionHeads),
                attentionNorm: try norm("\(b).self_attn_layer_norm"),
                feedForward: try feedForward(b, width: c.encoderFFNDim), feedForwardNorm: try norm("\(b).final_layer_norm"),
                placement: .post)
        }
        let decoderLayers = try (0..<c.decoderLayers).map { i -> DecoderLayer in
            let b = "model.decoder.layers.\(i)"
            return DecoderLayer(
                selfAttention: try attention("\(b).self_attn", heads: c.decoderAttentionHeads),
                selfAttentionNorm: try norm("\(b).self_attn_layer_norm"),
                crossAttention: try attention("\(b).encoder_attn", heads: c.decoderAttentionHeads),
                crossAttentionNorm: try norm("\(b).encoder_attn_layer_norm"),
                feedForward: try feedForward(b, width: c.decoderFFNDim), feedForwardNorm: try norm("\(b).final_layer_norm"),
                placement: .post)
        }
        let bias = try p.load("final_logits_bias", shape: [1, c.decoderVocabSize]).reshaped([c.decoderVocabSize])
        let head = try p.optionalHead("lm_head.weight", shape: [c.decoderVocabSize, d], bias: bias)
            ?? Linear(storage: targetTable.storage, bias: bias)
        let encoderPositions = try positions("encoder"), decoderPositions = try positions("decoder")
        try p.finish()
        var g = generation
        if g.config.padTokenID == nil { g.config.padTokenID = c.padTokenID }
        let start = g.decoderStartTokenID ?? c.decoderStartTokenID
        try Self.checkSettings(
            decoderStartTokenID: start, padTokenID: c.padTokenID, generation: g.config, sourceVocabulary: sourceTable.count,
            targetVocabulary: head.outFeatures)
        self.init(
            architecture: .marian, encoderEmbedding: sourceTable, decoderEmbedding: targetTable,
            embeddingScale: c.scaleEmbedding ? Float(Double(d).squareRoot()) : 1,
            encoderPositions: encoderPositions, decoderPositions: decoderPositions,
            encoder: TransformerEncoder(layers: encoderLayers, finalNorm: nil),
            decoder: TransformerDecoder(layers: decoderLayers, finalNorm: nil),
            outputScale: 1, lmHead: head,
            decoderStartTokenID: start, padTokenID: c.padTokenID,
            maxPositions: c.maxPositionEmbeddings, generationDefaults: g.config, ignoredGenerationSettings: g.ignored)
    }
}
