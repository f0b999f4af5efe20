// T5 (Raffel et al., 2020) as Hugging Face's T5ForConditionalGeneration computes it:
//
//   x = shared[ids]                                  (no scale, no absolute positions)
//   encoder block: x += SelfAttention(RMSNorm(x), bias = relative bias of layer 0)
//                  x += FF(RMSNorm(x))
//   decoder block: y += SelfAttention(RMSNorm(y), causal, bias of layer 0 at the cache offset)
//                  y += EncDecAttention(RMSNorm(y), memory)
//                  y += FF(RMSNorm(y))
//   each stack ends with RMSNorm; logits = lm_head(y * d^-0.5 if tied else y)
//
// Attention scores are not scaled by 1/sqrt(d_kv) (T5 folds it into the initialization); the
// relative bias is a learned scalar per (bucket of key - query distance, head), shared by all
// layers of a stack (bidirectional buckets in the encoder, causal ones in the decoder).

import Foundation

/// The settings of a T5 model, as in a Hugging Face `config.json` (`T5Config`); absent keys
/// take `T5Config`'s defaults (t5-small's sizes).
public struct T5Config: Sendable, Equatable {
    /// The feed-forward form (`feed_forward_proj`): `"relu"` (original T5: `wo(relu(wi x))`),
    /// `"gated-gelu"` (T5 v1.1, mT5, Flan-T5: `wo(gelu_tanh(wi_0 x) * wi_1 x)`), or another
    /// activation with or without the `gated-` prefix.
    public var feedForwardActivation: Activation
    /// Whether the feed-forward is gated (`wi_0`, `wi_1`) rather than one `wi`.
    public var gatedFeedForward: Bool
    /// Vocabulary size (`vocab_size`, 32128).
    public var vocabSize: Int
    /// Model width d (`d_model`, 512).
    public var dModel: Int
    /// Head size (`d_kv`, 64); heads x d_kv may differ from d.
    public var dKV: Int
    /// Feed-forward width (`d_ff`, 2048).
    public var dFF: Int
    /// Encoder blocks (`num_layers`, 6).
    public var numLayers: Int
    /// Decoder blocks (`num_decoder_layers`, defaults to `num_layers`).
    public var numDecoderLayers: Int
    /// Attention heads (`num_heads`, 8).
    public var numHeads: Int
    /// Relative position buckets (`relative_attention_num_buckets`, 32).
    public var relativeAttentionNumBuckets: Int
    /// Distance beyond which buckets stop growing (`relative_attention_max_distance`, 128).
    public var relativeAttentionMaxDistance: Int
    /// RMS norm epsilon (`layer_norm_epsilon`, 1e-6).
    public var layerNormEpsilon: Float
    /// `tie_word_embeddings` (true). T5 v1.1, mT5 and Flan-T5 say false: their checkpoints
    /// store a separate `lm_head.weight` and their decoder output is not scaled. (Loading
    /// follows the weights: a stored `lm_head.weight` is used, else the shared embedding.)
    public var tieWordEmbeddings: Bool
    /// Whether the decoder output is scaled by d^-0.5 before the head
    /// (`scale_decoder_outputs`, as transformers 5 saves it; absent, it follows
    /// `tie_word_embeddings`, as T5 has always done).
    public var scaleDecoderOutputs: Bool
    /// `pad_token_id` (0): fills shorter sources.
    public var padTokenID: Int
    /// `decoder_start_token_id` (0, the pad token).
    public var decoderStartTokenID: Int
    /// `eos_token_id` (1).
    public var eosTokenID: Int

    /// t5-small's configuration, as `T5Config()` gives it.
    public init() {
        feedForwardActivation = .relu
        gatedFeedForward = false
        vocabSize = 32128
        dModel = 512
        dKV = 64
        dFF = 2048
        numLayers = 6
        numDecoderLayers = 6
        numHeads = 8
        relativeAttentionNumBuckets = 32
        relativeAttentionMaxDistance = 128
        layerNormEpsilon = 1e-6
        tieWordEmbeddings = true
        scaleDecoderOutputs = true
        padTokenID = 0
        decoderStartTokenID = 0
        eosTokenID = 1
    }

    /// Reads a Hugging Face `config.json`. Throws `ModelFileError` naming the file and key.
    public init(contentsOf url: URL) throws {
        try self.init(fields: try JSONFields(try readModelJSON(url), path: url.path))
    }

    init(fields c: JSONFields) throws {
        var t = T5Config()
        let big = 1 << 24
        t.vocabSize = try c.int("vocab_size", in: 1...big) ?? t.vocabSize
        t.dModel = try c.int("d_model", in: 1...big) ?? t.dModel
        t.dKV = try c.int("d_kv", in: 1...big) ?? t.dKV
        t.dFF = try c.int("d_ff", in: 1...big) ?? t.dFF
        t.numLayers = try c.int("num_layers", in: 1...4096) ?? t.numLayers
        t.numDecoderLayers = try c.int("num_decoder_layers", in: 1...4096) ?? t.numLayers
        t.numHeads = try c.int("num_heads", in: 1...4096) ?? t.numHeads
        t.relativeAttentionNumBuckets = try c.int("relative_attention_num_buckets", in: 2...big) ?? t.relativeAttentionNumBuckets
        t.relativeAttentionMaxDistance = try c.int("relative_attention_max_distance", in: 1...big) ?? t.relativeAttentionMaxDistance
        if let eps = try c.double("layer_norm_epsilon") {
            guard eps > 0, Float(eps).isNormal else { throw c.fail("layer_norm_epsilon", "\(eps) must be a positive float32") }
            t.layerNormEpsilon = Float(eps)
        }
        if let proj = try c.string("feed_forward_proj") {
            let parts = proj.split(separator: "-", omittingEmptySubsequences: false)
            guard (parts.count == 1 || (parts.count == 2 && parts[0] == "gated")), let name = parts.last,
                let act = Activation(configName: String(name))
            else {
                throw ModelFileError.unsupported(
                    path: c.path, what: "feed_forward_proj \"\(proj)\" (known: relu, gelu, gated-gelu, gated-relu, gated-silu, ...)")
            }
            t.gatedFeedForward = parts.count == 2
            // transformers maps "gated-gelu" to the tanh approximation ("gelu_new").
            t.feedForwardActivation = proj == "gated-gelu" ? .geluTanh : act
        }
        t.tieWordEmbeddings = try c.bool("tie_word_embeddings") ?? true
        t.scaleDecoderOutputs = try c.bool("scale_decoder_outputs") ?? t.tieWordEmbeddings
        t.padTokenID = try c.int("pad_token_id", in: 0...(t.vocabSize - 1)) ?? 0
        t.decoderStartTokenID = try c.int("decoder_start_token_id", in: 0...(t.vocabSize - 1)) ?? t.padTokenID
        t.eosTokenID = try c.int("eos_token_id", in: 0...(t.vocabSize - 1)) ?? min(1, t.vocabSize - 1)
        self = t
    }

    /// Checks what building a T5 ``Seq2SeqModel`` relies on, for a configuration built or
    /// edited in code (``init(contentsOf:)`` gives only valid ones): sizes in range, at least
    /// 2 relative buckets, a positive epsilon, and the pad, start and end tokens in the
    /// vocabulary. Throws `CheckpointError.invalidConfig` naming the first setting at fault.
    /// Cost: O(1).
    public func validate() throws {
        func check(_ ok: Bool, _ what: @autoclosure () -> String) throws { if !ok { throw CheckpointError.invalidConfig(what()) } }
        let big = 1 << 24
        for (name, value) in [("vocabSize", vocabSize), ("dModel", dModel), ("dKV", dKV), ("dFF", dFF)] {
            try check((1...big).contains(value), "\(name) \(value) out of range 1...\(big)")
        }
        for (name, value) in [("numLayers", numLayers), ("numDecoderLayers", numDecoderLayers), ("numHeads", numHeads)] {
            try check((1...4096).contains(value), "\(name) \(value) out of range 1...4096")
        }
        try check(
            (2...big).contains(relativeAttentionNumBuckets), "relativeAttentionNumBuckets \(relativeAttentionNumBuckets) out of range 2...\(big)")
        try check(
            (1...big).contains(relativeAttentionMaxDistance),
            "relativeAttentionMaxDistance \(relativeAttentionMaxDistance) out of range 1...\(big)")
        try check(layerNormEpsilon > 0 && layerNormEpsilon.isFinite, "layerNormEpsilon \(layerNormEpsilon) must be a positive number")
        for (name, id) in [("padTokenID", padTokenID), ("decoderStartTokenID", decoderStartTokenID), ("eosTokenID", eosTokenID)] {
            try check((0..<vocabSize).contains(id), "\(name) \(id) is outside the vocabulary of \(vocabSize)")
        }
    }
}

extension Seq2SeqModel {
    /// Builds a T5 model from weights named as `T5ForConditionalGeneration` names them
    /// (`shared.weight`, `encoder.block.{i}.layer.{j}.*`, `encoder.final_layer_norm.weight`,
    /// the same under `decoder.`). As in `transformers`, `encoder.embed_tokens.weight`,
    /// `decoder.embed_tokens.weight` and `lm_head.weight` are used when stored and are the
    /// shared embedding otherwise. `generation` defaults
    /// to the config's special tokens with `transformers`' defaults (max_length 20, greedy).
    /// Throws `CheckpointError` naming a missing, misshapen or unused tensor or a setting out
    /// of range (``T5Config/validate()``, checked first, or a start token outside the target
    /// vocabulary), and ``GenerationError/invalidConfig(_:)`` for `generation` out of range.
    public init(t5 config: T5Config, weights: TensorSource, generation: GenerationConfig? = nil) throws {
        try self.init(t5: config, weights: weights, generation: generation, weightPrecision: nil)
    }

    /// The model as ``init(t5:weights:generation:)`` builds it, with its weight matrices held
    /// in `weightPrecision`.
    /// `weightPrecision` is the element type the `Linear` and `Embedding` weights are held in
    /// (see ``WeightPrecision``): nil keeps each as the checkpoint stores it (an F16 or BF16
    /// file stays 16-bit, mapped, never widened in memory: about half the memory and decoding
    /// time of float32), `.float32` widens 16-bit weights at load, `.float16` / `.bfloat16`
    /// round float32 weights to 16 bits at load (one pass). Biases and norms stay float32.
    public init(t5 config: T5Config, weights: TensorSource, generation: GenerationConfig? = nil, weightPrecision: WeightPrecision?) throws {
        let weights = WeightPrecisionSource.wrap(weights, weightPrecision)
        var settings = HFGenerationSettings.defaults(maxNewTokens: 19)
        settings.config = generation ?? GenerationConfig(maxNewTokens: 19, eosTokenID: config.eosTokenID)
        settings.decoderStartTokenID = config.decoderStartTokenID
        try self.init(t5: config, weights: weights, generation: settings)
    }

    init(t5 c: T5Config, weights: TensorSource, generation: HFGenerationSettings) throws {
        try c.validate()
        let p = ParameterLoader(weights)
        let d = c.dModel, inner = c.numHeads * c.dKV, eps = c.layerNormEpsilon
        // transformers ties encoder.embed_tokens, decoder.embed_tokens and lm_head to `shared`
        // unless the checkpoint stores them separately (then it uses the stored tensors).
        let shared = try p.loadEmbedding("shared.weight", shape: [c.vocabSize, d])
        let encoderTable = try p.optionalMatrix("encoder.embed_tokens.weight", shape: [c.vocabSize, d]).map(Embedding.init(storage:)) ?? shared
        let decoderTable = try p.optionalMatrix("decoder.embed_tokens.weight", shape: [c.vocabSize, d]).map(Embedding.init(storage:)) ?? shared
        func norm(_ name: String) throws -> Norm { .rms(RMSNorm(weight: try p.load(name + ".weight", shape: [d]), eps: eps)) }
        func attention(_ prefix: String) throws -> MultiHeadAttention {
            MultiHeadAttention(
                heads: c.numHeads,
                query: try Linear(loading: p, prefix + ".q", in: d, out: inner, bias: false),
                key: try Linear(loading: p, prefix + ".k", in: d, out: inner, bias: false),
                value: try Linear(loading: p, prefix + ".v", in: d, out: inner, bias: false),
                out: try Linear(loading: p, prefix + ".o", in: inner, out: d, bias: false), scale: 1)
        }
        func feedForward(_ prefix: String) throws -> FeedForward {
            let ff = prefix + ".DenseReluDense"
            if c.gatedFeedForward {
                return FeedForward(
                    up: try Linear(loading: p, ff + ".wi_0", in: d, out: c.dFF, bias: false),
                    down: try Linear(loading: p, ff + ".wo", in: c.dFF, out: d, bias: false),
                    activation: c.feedForwardActivation,
                    gate: try Linear(loading: p, ff + ".wi_1", in: d, out: c.dFF, bias: false))
            }
            return FeedForward(
                up: try Linear(loading: p, ff + ".wi", in: d, out: c.dFF, bias: false),
                down: try Linear(loading: p, ff + ".wo", in: c.dFF, out: d, bias: false),
                activation: c.feedForwardActivation)
        }
        func relativeBias(_ stack: String, bidirectional: Bool) throws -> AttentionBias {
            let table = try p.load(
                "\(stack).block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                shape: [c.relativeAttentionNumBuckets, c.numHeads])
            return .t5(table: table, bidirectional: bidirectional, maxDistance: c.relativeAttentionMaxDistance)
        }

        let encoderLayers = try (0..<c.numLayers).map { i -> EncoderLayer in
            let b = "encoder.block.\(i).layer"
            return EncoderLayer(
                selfAttention: try attention("\(b).0.SelfAttention"), attentionNorm: try norm("\(b).0.layer_norm"),
                feedForward: try feedForward("\(b).1"), feedForwardNorm: try norm("\(b).1.layer_norm"), placement: .pre)
        }
        let decoderLayers = try (0..<c.numDecoderLayers).map { i -> DecoderLayer in
            let b = "decoder.block.\(i).layer"
            return DecoderLayer(
                selfAttention: try attention("\(b).0.SelfAttention"), selfAttentionNorm: try norm("\(b).0.layer_norm"),
                crossAttention: try attention("\(b).1.EncDecAttention"), crossAttentionNorm: try norm("\(b).1.layer_norm"),
                feedForward: try feedForward("\(b).2"), feedForwardNorm: try norm("\(b).2.layer_norm"), placement: .pre)
        }
        let encoder = TransformerEncoder(
            layers: encoderLayers, finalNorm: try norm("encoder.final_layer_norm"),
            selfAttentionBias: try relativeBias("encoder", bidirectional: true))
        let decoder = TransformerDecoder(
            layers: decoderLayers, finalNorm: try norm("decoder.final_layer_norm"),
            selfAttentionBias: try relativeBias("decoder", bidirectional: false))
        let head = try p.optionalHead("lm_head.weight", shape: [c.vocabSize, d], bias: nil) ?? Linear(tiedTo: shared)
        try p.finish()
        var g = generation
        if g.config.padTokenID == nil { g.config.padTokenID = c.padTokenID }
        let start = g.decoderStartTokenID ?? c.decoderStartTokenID
        try Self.checkSettings(
            decoderStartTokenID: start, padTokenID: c.padTokenID, generation: g.config, sourceVocabulary: encoderTable.count,
            targetVocabulary: head.outFeatures)
        self.init(
            architecture: .t5, encoderEmbedding: encoderTable, decoderEmbedding: decoderTable, embeddingScale: 1,
            encoderPositions: .none, decoderPositions: .none, encoder: encoder, decoder: decoder,
            outputScale: c.scaleDecoderOutputs ? Float(pow(Double(d), -0.5)) : 1, lmHead: head,
            decoderStartTokenID: start, padTokenID: c.padTokenID,
            maxPositions: nil, generationDefaults: g.config, ignoredGenerationSettings: g.ignored)
    }
}
