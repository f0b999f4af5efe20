import Foundation

/// The settings of a BERT model, as in a Hugging Face `config.json` (`BertConfig`).
///
/// Keys this type does not know (`architectures`, `transformers_version`, dropout rates, ...)
/// are ignored; known keys that are absent take `BertConfig`'s defaults.
public struct BERTConfig: Sendable, Equatable {
    /// How positions enter the model.
    public enum PositionEmbeddingType: String, Sendable, CaseIterable {
        /// Learned absolute positions added to the token embeddings (BERT's original).
        case absolute
        /// Shaw et al.'s learned relative positions on the keys: each layer adds
        /// `q_l · E[l - r]` to the score of query l and key r (`distance_embedding`).
        case relativeKey = "relative_key"
        /// Huang et al.'s variant: adds `q_l · E[l - r] + k_r · E[l - r]`.
        case relativeKeyQuery = "relative_key_query"
    }

    /// Rows of the word embedding table (`vocab_size`, default 30522).
    public var vocabSize: Int
    /// Model width d (`hidden_size`, default 768).
    public var hiddenSize: Int
    /// Encoder layers (`num_hidden_layers`, default 12).
    public var numHiddenLayers: Int
    /// Attention heads; must divide `hiddenSize` (`num_attention_heads`, default 12).
    public var numAttentionHeads: Int
    /// Feed-forward width (`intermediate_size`, default 3072).
    public var intermediateSize: Int
    /// Feed-forward (and MLM transform) activation (`hidden_act`, default `gelu`: exact erf GELU).
    public var hiddenAct: Activation
    /// Rows of the position table: the longest input (`max_position_embeddings`, default 512).
    public var maxPositionEmbeddings: Int
    /// Rows of the token type (segment) table (`type_vocab_size`, default 2).
    public var typeVocabSize: Int
    /// Layer norm epsilon (`layer_norm_eps`, default 1e-12).
    public var layerNormEps: Float
    /// The padding token's id (`pad_token_id`, default 0).
    public var padTokenID: Int
    /// `position_embedding_type` (default absolute).
    public var positionEmbeddingType: PositionEmbeddingType

    /// A configuration; the defaults are BERT-base's (as `BertConfig()`).
    public init(
        vocabSize: Int = 30522, hiddenSize: Int = 768, numHiddenLayers: Int = 12, numAttentionHeads: Int = 12,
        intermediateSize: Int = 3072, hiddenAct: Activation = .gelu, maxPositionEmbeddings: Int = 512,
        typeVocabSize: Int = 2, layerNormEps: Float = 1e-12, padTokenID: Int = 0,
        positionEmbeddingType: PositionEmbeddingType = .absolute
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.padTokenID = padTokenID
        self.positionEmbeddingType = positionEmbeddingType
    }

    /// Head size: `hiddenSize / numAttentionHeads`.
    public var headDim: Int { hiddenSize / max(numAttentionHeads, 1) }

    /// Reads a Hugging Face `config.json`. Throws `ModelFileError` naming the file and key
    /// (a missing file, invalid JSON, a value of the wrong type or out of range, an
    /// activation or position type this library does not implement, a `model_type` other
    /// than `bert`).
    public init(contentsOf url: URL) throws {
        let path = url.path
        let c = try JSONFields(try readModelJSON(url), path: path)
        if let type = try c.string("model_type"), type != "bert" {
            throw ModelFileError.unsupported(path: path, what: "model_type \"\(type)\" (this is the BERT loader)")
        }
        let big = 1 << 24  // far above any real model; keeps every product of sizes inside Int
        var cfg = BERTConfig()
        cfg.vocabSize = try c.int("vocab_size", in: 1...big) ?? cfg.vocabSize
        cfg.hiddenSize = try c.int("hidden_size", in: 1...big) ?? cfg.hiddenSize
        cfg.numHiddenLayers = try c.int("num_hidden_layers", in: 0...4096) ?? cfg.numHiddenLayers
        cfg.numAttentionHeads = try c.int("num_attention_heads", in: 1...big) ?? cfg.numAttentionHeads
        cfg.intermediateSize = try c.int("intermediate_size", in: 1...big) ?? cfg.intermediateSize
        cfg.maxPositionEmbeddings = try c.int("max_position_embeddings", in: 1...big) ?? cfg.maxPositionEmbeddings
        cfg.typeVocabSize = try c.int("type_vocab_size", in: 1...big) ?? cfg.typeVocabSize
        cfg.padTokenID = try c.int("pad_token_id", in: 0...big) ?? cfg.padTokenID
        if let eps = try c.double("layer_norm_eps") {
            guard eps > 0, Float(eps).isNormal else { throw c.fail("layer_norm_eps", "\(eps) must be a positive float32") }
            cfg.layerNormEps = Float(eps)
        }
        if let act = try c.string("hidden_act") {
            guard let a = Activation(configName: act) else {
                throw ModelFileError.unsupported(
                    path: path, what: "hidden_act \"\(act)\" (known: gelu, relu, silu, swish, gelu_new, gelu_pytorch_tanh)")
            }
            cfg.hiddenAct = a
        }
        if let p = try c.string("position_embedding_type") {
            guard let t = PositionEmbeddingType(rawValue: p) else {
                throw ModelFileError.unsupported(
                    path: path, what: "position_embedding_type \"\(p)\" (known: absolute, relative_key, relative_key_query)")
            }
            cfg.positionEmbeddingType = t
        }
        guard cfg.hiddenSize % cfg.numAttentionHeads == 0 else {
            throw c.fail("num_attention_heads", "\(cfg.numAttentionHeads) heads do not divide hidden_size \(cfg.hiddenSize)")
        }
        self = cfg
    }

    /// Checks what the model code relies on; throws `CheckpointError.invalidConfig` naming the
    /// setting (for configurations built in code).
    func validate() throws {
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw CheckpointError.invalidConfig(what) } }
        let big = 1 << 24
        try check((1...big).contains(vocabSize), "vocabSize \(vocabSize) out of range 1...\(big)")
        try check((1...big).contains(hiddenSize), "hiddenSize \(hiddenSize) out of range 1...\(big)")
        try check((0...4096).contains(numHiddenLayers), "numHiddenLayers \(numHiddenLayers) out of range 0...4096")
        try check(
            (1...big).contains(numAttentionHeads) && hiddenSize % numAttentionHeads == 0,
            "numAttentionHeads \(numAttentionHeads) must divide hiddenSize \(hiddenSize)")
        try check((1...big).contains(intermediateSize), "intermediateSize \(intermediateSize) out of range 1...\(big)")
        try check((1...big).contains(maxPositionEmbeddings), "maxPositionEmbeddings \(maxPositionEmbeddings) out of range 1...\(big)")
        try check((1...big).contains(typeVocabSize), "typeVocabSize \(typeVocabSize) out of range 1...\(big)")
        try check(layerNormEps > 0 && layerNormEps.isFinite, "layerNormEps \(layerNormEps) must be positive")
    }
}
