import Foundation

// Loading a BERT checkpoint by Hugging Face's parameter names. Both layouts load:
//   bare    (BertModel, sentence-transformers):  embeddings.*, encoder.layer.N.*, pooler.*
//   prefixed (BertForPreTraining / ForMaskedLM): bert.embeddings.*, ..., cls.predictions.*,
//                                                cls.seq_relationship.*
// Non-parameter buffers that some checkpoints store (embeddings.position_ids,
// embeddings.token_type_ids) are skipped.

extension BERTModel {
    /// Loads a Hugging Face model folder: `config.json` and `model.safetensors` (or a sharded
    /// checkpoint with `model.safetensors.index.json`). Float32 weights are memory-mapped, not
    /// copied; see ``init(config:weights:ignoringUnusedTensors:)`` for the copies loading
    /// makes. Throws `ModelFileError` (config), `SafeTensorsError` (weights file) or
    /// `CheckpointError` (a weight missing, of the wrong shape, or unexpected), each naming
    /// the file or tensor.
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
        let configURL = directory.appendingPathComponent("config.json")
        if !FileManager.default.fileExists(atPath: directory.path) {
            throw ModelFileError.missingFile(path: directory.path)
        }
        let config = try BERTConfig(contentsOf: configURL)
        let checkpoint = try ModelQuantization.checkpoint(directory: directory)
        try self.init(config: config, weights: WeightPrecisionSource.wrap(checkpoint, weightPrecision))
    }

    /// Builds the model from `weights` named as Hugging Face names them, with or without the
    /// `bert.` prefix. The pooler, MLM head and NSP head are loaded when present. The MLM
    /// decoder uses `cls.predictions.decoder.weight` when stored, else the word embeddings
    /// (tied). Tensors left unused throw `CheckpointError.unexpectedTensors` unless
    /// `ignoringUnusedTensors` (e.g. a checkpoint with a classification head).
    ///
    /// Copies made: the query, key and value weights fused into one `[3d, d]` matrix per
    /// layer, and, when ``Compute/default`` is a native kernel variant, every layer's four
    /// projection weights packed once into that variant's micro-kernel layout (`(4 d + 2 dFF) d`
    /// floats per layer), so that a short input does not repack them on
    /// every call. Calls with another `Compute` use the general GEMM instead: same results
    /// to float rounding. Cost: one pass over the projection weights (about 15 ms for
    /// all-MiniLM-L6-v2).
    public init(config: BERTConfig, weights: TensorSource, ignoringUnusedTensors: Bool = false) throws {
        try self.init(config: config, weights: weights, ignoringUnusedTensors: ignoringUnusedTensors, prepacking: .default)
    }

    /// The model as ``init(config:weights:ignoringUnusedTensors:)`` builds it, with its weight
    /// matrices held in `weightPrecision`.
    /// `weightPrecision` is the element type the `Linear` and `Embedding` weights are held in
    /// (see ``WeightPrecision``): nil keeps each as the checkpoint stores it (an F16 or BF16
    /// file stays 16-bit, mapped, never widened in memory: about half the memory and decoding
    /// time of float32), `.float32` widens 16-bit weights at load, `.float16` / `.bfloat16`
    /// round float32 weights to 16 bits at load (one pass). Biases and norms stay float32.
    public init(
        config: BERTConfig, weights: TensorSource, ignoringUnusedTensors: Bool = false, weightPrecision: WeightPrecision?
    ) throws {
        try self.init(
            config: config, weights: WeightPrecisionSource.wrap(weights, weightPrecision),
            ignoringUnusedTensors: ignoringUnusedTensors, prepacking: .default)
    }

    /// The model as ``init(config:weights:ignoringUnusedTensors:)`` loads it, its projections
    /// packed for `prepacking` (nil: none packed ahead, as training wants: its weights change
    /// every step).
    init(config: BERTConfig, weights: TensorSource, ignoringUnusedTensors: Bool, prepacking: Compute?) throws {
        try config.validate()
        let p = ParameterLoader(
            weights,
            ignoring: { name in
                ignoringUnusedTensors || name.hasSuffix("embeddings.position_ids") || name.hasSuffix("embeddings.token_type_ids")
            })
        let prefix: String
        if p.has("bert.embeddings.word_embeddings.weight") {
            prefix = "bert."
        } else if p.has("embeddings.word_embeddings.weight") {
            prefix = ""
        } else {
            throw CheckpointError.missingTensor(name: "embeddings.word_embeddings.weight")
        }
        let d = config.hiddenSize, dFF = config.intermediateSize, eps = config.layerNormEps
        func name(_ s: String) -> String { prefix + s }

        let word = try p.loadMatrix(name("embeddings.word_embeddings.weight"), shape: [config.vocabSize, d])
        let embeddings = BERTEmbeddings(
            word: Embedding(storage: word),
            position: try p.loadEmbedding(name("embeddings.position_embeddings.weight"), shape: [config.maxPositionEmbeddings, d]),
            tokenType: try p.loadEmbedding(name("embeddings.token_type_embeddings.weight"), shape: [config.typeVocabSize, d]),
            norm: try LayerNorm(loading: p, name("embeddings.LayerNorm"), size: d, eps: eps),
            addsPositions: config.positionEmbeddingType == .absolute)

        var layers: [BERTLayer] = []
        for i in 0..<config.numHiddenLayers {
            let l = name("encoder.layer.\(i).")
            let attention = MultiHeadAttention(
                heads: config.numAttentionHeads,
                query: try Linear(loading: p, l + "attention.self.query", in: d, out: d),
                key: try Linear(loading: p, l + "attention.self.key", in: d, out: d),
                value: try Linear(loading: p, l + "attention.self.value", in: d, out: d),
                out: try Linear(loading: p, l + "attention.output.dense", in: d, out: d))
            var relative: RelativeKeyPositions? = nil
            if config.positionEmbeddingType != .absolute {
                relative = RelativeKeyPositions(
                    distance: try p.load(
                        l + "attention.self.distance_embedding.weight",
                        shape: [2 * config.maxPositionEmbeddings - 1, config.headDim]),
                    maxPositions: config.maxPositionEmbeddings, keyQuery: config.positionEmbeddingType == .relativeKeyQuery)
            }
            let feedForward = FeedForward(
                up: try Linear(loading: p, l + "intermediate.dense", in: d, out: dFF),
                down: try Linear(loading: p, l + "output.dense", in: dFF, out: d),
                activation: config.hiddenAct)
            let layer = EncoderLayer(
                selfAttention: attention,
                attentionNorm: .layer(try LayerNorm(loading: p, l + "attention.output.LayerNorm", size: d, eps: eps)),
                feedForward: feedForward,
                feedForwardNorm: .layer(try LayerNorm(loading: p, l + "output.LayerNorm", size: d, eps: eps)),
                placement: .post, relativePositions: relative)
            // Pack the projections once for the default kernel variant now, so the first call
            // does not pay for it (other variants pack on their first use).
            if let prepacking { layer.prepack(for: prepacking) }
            layers.append(layer)
        }

        var pooler: Linear? = nil
        if p.has(name("pooler.dense.weight")) {
            pooler = try Linear(loading: p, name("pooler.dense"), in: d, out: d)
        }

        var mlm: BERTMaskedLMHead? = nil
        if p.has("cls.predictions.transform.dense.weight") {
            let decoderWeight = try p.optionalMatrix("cls.predictions.decoder.weight", shape: [config.vocabSize, d]) ?? word
            let bias: Tensor
            if let b = try p.optional("cls.predictions.bias", shape: [config.vocabSize]) {
                bias = b
                p.skip("cls.predictions.decoder.bias")  // the same parameter, when stored twice
            } else {
                bias = try p.load("cls.predictions.decoder.bias", shape: [config.vocabSize])
            }
            mlm = BERTMaskedLMHead(
                transform: try Linear(loading: p, "cls.predictions.transform.dense", in: d, out: d),
                activation: config.hiddenAct,
                norm: try LayerNorm(loading: p, "cls.predictions.transform.LayerNorm", size: d, eps: eps),
                decoder: Linear(storage: decoderWeight, bias: bias))
        }
        var nsp: Linear? = nil
        if p.has("cls.seq_relationship.weight") {
            nsp = try Linear(loading: p, "cls.seq_relationship", in: d, out: 2)
        }
        try p.finish()
        self.init(config: config, embeddings: embeddings, layers: layers, pooler: pooler, maskedLMHead: mlm, nextSentenceHead: nsp)
    }
}
