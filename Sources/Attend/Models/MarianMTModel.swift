import Foundation

// Marian's translation objective as transformers' MarianMTModel computes it, trainable: the
// shared forward/backward of Seq2SeqTraining with Marian's parts (post-LN blocks with biases,
// swish or another activation, embeddings scaled by sqrt(d) when `scale_embedding`, fixed
// sinusoidal positions, the head tied to the shared table plus the fixed final_logits_bias).

/// A trainable `MarianMTModel` (the opus-mt layout: encoder and decoder share `model.shared`,
/// and the head is tied to it), with gradients for every trainable parameter, named and
/// ordered as `transformers`' `named_parameters()` minus the frozen sinusoidal position
/// tables (`model.shared.weight`, `model.encoder.layers.0.self_attn.k_proj.weight`, ...).
/// `final_logits_bias` is a buffer: kept as loaded and saved back, never trained.
///
/// Batches give `input_ids`, `labels` (-100 ignored) and optionally `attention_mask`,
/// `decoder_input_ids` (default: `labels` shifted right, starting with
/// `decoder_start_token_id`, -100 replaced by the pad id) and `decoder_attention_mask`.
/// The pad token's embedding row gets no gradient from the lookups (`padding_idx`), only
/// from the tied head. While ``dropout`` is on, `dropout` applies after the embeddings and on
/// each attention and feed-forward output before its residual sum, `attention_dropout` on the
/// attention probabilities and `activation_dropout` inside the feed-forward after the
/// activation, as `transformers` in train mode.
/// Cost per step: as ``T5ForConditionalGeneration``.
public final class MarianMTModel: TrainableModel {
    /// Large step buffers are recycled while this model lives (see `LargeBufferRecycler`).
    private let recycling = LargeBufferRecycler.Token()
    /// The model's configuration (`config.json`).
    public let config: MarianConfig
    /// The kernels and threads every step runs on.
    public let compute: Compute
    /// The trainable parameters by Hugging Face name, in `named_parameters()` order. Setting
    /// them (same names and shapes) replaces the weights the next ``loss(_:)`` uses; an
    /// optimizer's `step(&model.parameters, ...)` updates them in place (no copy).
    /// A set whose names, order or shapes differ is refused by the next ``loss(_:)``,
    /// ``backward()`` or ``save(to:)`` with a `TrainingError` naming the first difference.
    public var parameters: ParameterSet {
        didSet {  // (no oldValue: a mutation through the property is in place)
            built = nil
        }
    }
    /// The parameters' names and shapes.
    private let layout: [(String, [Int])]
    /// Tensors of the checkpoint that are not trained (`final_logits_bias`), saved back as loaded.
    let buffers: ParameterSet
    /// Dropout on (`dropout`, `attention_dropout`, `activation_dropout`, default) or off, and its seed (see
    /// ``TrainableModel/dropout``).
    public var dropout: TrainingDropout {
        get { dropoutState.setting }
        set { dropoutState.setting = newValue }
    }
    private var dropoutState: ModelDropout
    let configJSON: Data
    let generationConfigJSON: Data?
    private var built: Seq2SeqModel?
    private var saved: (parts: Seq2SeqTrainingParts, activations: Seq2SeqActivations)?

    /// Loads a `transformers` `MarianMTModel` folder (`config.json`, `model.safetensors`,
    /// `generation_config.json` when present). Throws `ModelFileError`, `SafeTensorsError` or
    /// `CheckpointError` naming the file or tensor at fault, including layouts training does
    /// not support (separate encoder and decoder vocabularies, an untied head).
    /// An int8 folder (written by `attend quantize`) is a thrown `TrainingError`.
    public init(directory: URL, compute: Compute = .default) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        try rejectInt8Folder(directory)
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw ModelFileError.missingFile(path: configURL.path) }
        configJSON = try Data(contentsOf: configURL)
        config = try MarianConfig(contentsOf: configURL)
        let fields = try JSONFields(try readModelJSON(configURL), path: configURL.path)
        dropoutState = ModelDropout(
            rates: DropoutRates(
                hidden: try DropoutRates.read(fields, "dropout", default: 0.1),
                attention: try DropoutRates.read(fields, "attention_dropout", default: 0),
                activation: try DropoutRates.read(fields, "activation_dropout", default: 0)))
        guard config.shareEncoderDecoderEmbeddings, config.tieWordEmbeddings, config.decoderVocabSize == config.vocabSize else {
            throw CheckpointError.invalidConfig(
                "\(configURL.path): training supports shared encoder/decoder embeddings with a tied head only (share_encoder_decoder_embeddings, tie_word_embeddings)"
            )
        }
        let generationURL = directory.appendingPathComponent("generation_config.json")
        generationConfigJSON = FileManager.default.fileExists(atPath: generationURL.path) ? try Data(contentsOf: generationURL) : nil
        self.compute = compute
        let checkpoint = try ModelQuantization.checkpoint(directory: directory)
        let loader = ParameterLoader(checkpoint)
        var set = ParameterSet()
        layout = Self.parameterShapes(config)
        for (name, shape) in layout { set[name] = try loader.load(name, shape: shape) }
        buffers = ParameterSet([("final_logits_bias", try loader.load("final_logits_bias", shape: [1, config.vocabSize]))])
        try loader.refuseDifferingCopies(
            ["model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"], of: "model.shared.weight",
            set["model.shared.weight"]!, in: directory)
        // Tied copies and the frozen sinusoidal tables some checkpoints store.
        for n in [
            "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight",
            "model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight",
        ] { loader.skip(n) }
        try loader.finish()
        parameters = set
    }

    /// The trainable parameter names and shapes in `named_parameters()` order.
    static func parameterShapes(_ c: MarianConfig) -> [(String, [Int])] {
        let d = c.dModel
        var out: [(String, [Int])] = [("model.shared.weight", [c.vocabSize, d])]
        func linear(_ p: String, _ o: Int, _ i: Int) { out += [(p + ".weight", [o, i]), (p + ".bias", [o])] }
        func attention(_ p: String) { for x in ["k_proj", "v_proj", "q_proj", "out_proj"] { linear(p + "." + x, d, d) } }
        func norm(_ p: String) { out += [(p + ".weight", [d]), (p + ".bias", [d])] }
        for i in 0..<c.encoderLayers {
            let b = "model.encoder.layers.\(i)"
            attention(b + ".self_attn"); norm(b + ".self_attn_layer_norm")
            linear(b + ".fc1", c.encoderFFNDim, d); linear(b + ".fc2", d, c.encoderFFNDim); norm(b + ".final_layer_norm")
        }
        for i in 0..<c.decoderLayers {
            let b = "model.decoder.layers.\(i)"
            attention(b + ".self_attn"); norm(b + ".self_attn_layer_norm")
            attention(b + ".encoder_attn"); norm(b + ".encoder_attn_layer_norm")
            linear(b + ".fc1", c.decoderFFNDim, d); linear(b + ".fc2", d, c.decoderFFNDim); norm(b + ".final_layer_norm")
        }
        return out
    }

    /// The inference model over the current parameters and buffers, built on first use after
    /// a change.
    var model: Seq2SeqModel {
        get throws(TrainingError) {
            if let built { return built }
            try parameters.checkLayout(layout, owner: "MarianMTModel")
            let m = build()
            built = m
            return m
        }
    }

    /// A model over the parameter tensors in place (the training forward's, kept with the
    /// activations until `backward()` returns, so no reference outlives the step).
    private func build() -> Seq2SeqModel {
        var all = parameters
        for (n, t) in buffers.entries { all[n] = t }
        do {
            return try Seq2SeqModel(marian: config, weights: all)
        } catch {
            preconditionFailure("MarianMTModel: the parameter set no longer builds a model: \(error)")
        }
    }

    /// Every parameter's name, by part.
    var names: Seq2SeqParameterNames {
        let d = config.dModel
        func attention(_ p: String) -> AttentionParameterNames {
            AttentionParameterNames(
                query: p + ".q_proj", key: p + ".k_proj", value: p + ".v_proj", out: p + ".out_proj", inner: d, modelDim: d, bias: true)
        }
        func feedForward(_ b: String, _ f: Int) -> FeedForwardParameterNames {
            FeedForwardParameterNames(up: LinearParameterNames(b + ".fc1", rows: f), gate: nil, down: LinearParameterNames(b + ".fc2", rows: d))
        }
        return Seq2SeqParameterNames(
            encoderEmbedding: "model.shared.weight", decoderEmbedding: "model.shared.weight", head: "model.shared.weight",
            encoderLayers: (0..<config.encoderLayers).map { i in
                let b = "model.encoder.layers.\(i)"
                return EncoderLayerParameterNames(
                    attention: attention(b + ".self_attn"), attentionNorm: NormParameterNames(b + ".self_attn_layer_norm"),
                    feedForward: feedForward(b, config.encoderFFNDim), feedForwardNorm: NormParameterNames(b + ".final_layer_norm"))
            },
            decoderLayers: (0..<config.decoderLayers).map { i in
                let b = "model.decoder.layers.\(i)"
                return DecoderLayerParameterNames(
                    selfAttention: attention(b + ".self_attn"), selfAttentionNorm: NormParameterNames(b + ".self_attn_layer_norm"),
                    crossAttention: attention(b + ".encoder_attn"), crossAttentionNorm: NormParameterNames(b + ".encoder_attn_layer_norm"),
                    feedForward: feedForward(b, config.decoderFFNDim), feedForwardNorm: NormParameterNames(b + ".final_layer_norm"))
            },
            encoderFinalNorm: nil, decoderFinalNorm: nil, encoderTable: nil, decoderTable: nil, paddingIndex: config.padTokenID)
    }

    /// The decoder's input ids: `batch.decoderInputIDs`, or `labels` shifted right
    /// (`shift_tokens_right`).
    func decoderInput(_ batch: TrainingBatch) -> [[Int]] {
        batch.decoderInputIDs ?? Seq2SeqTraining.shiftRight(batch.labels!, start: config.decoderStartTokenID, pad: config.padTokenID)
    }

    /// The mean cross-entropy of the decoder's logits against `batch.labels` (-100 ignored),
    /// as `MarianMTModel(...).loss`, keeping the activations. Throws `TrainingError` for a
    /// batch the model cannot take (ids outside the vocabulary, sources or labels longer than
    /// `max_position_embeddings`) or one whose labels are all -100.
    public func loss(_ batch: TrainingBatch) throws(TrainingError) -> Float {
        try parameters.checkLayout(layout, owner: "MarianMTModel")
        let place = "MarianMTModel batch"
        try batch.validate(
            vocabularySize: config.vocabSize, maxLength: config.maxPositionEmbeddings, labelsMatchInput: false, needsLabels: true, where: place)
        if let n = batch.labels?.first?.count, n > config.maxPositionEmbeddings {
            throw TrainingError("\(place): labels rows have \(n) tokens, more than the model's \(config.maxPositionEmbeddings) positions")
        }
        guard batch.labels!.contains(where: { $0.contains { $0 != -100 } }) else {
            throw TrainingError("\(place): every label is -100 (no position to learn from)")
        }
        saved = nil
        let parts = Seq2SeqTrainingParts(build())
        let (loss, activations) = Seq2SeqTraining.loss(
            parts, parameters: parameters, names: names, batch: batch, decoderInput: decoderInput(batch),
            dropout: dropoutState.nextSampler(), compute: compute)
        saved = (parts, activations)
        return loss
    }

    /// The gradient of the last ``loss(_:)`` for every parameter (``parameters``' names,
    /// order and shapes), then frees the activations. Throws when no loss is pending.
    public func backward() throws(TrainingError) -> ParameterSet {
        guard let s = saved else { throw TrainingError("MarianMTModel.backward: no loss was computed since the last backward") }
        try parameters.checkLayout(layout, owner: "MarianMTModel")
        saved = nil
        return Seq2SeqTraining.backward(s.parts, s.activations, parameters: parameters, names: names, compute: compute)
    }

    /// Writes `config.json` and `generation_config.json` (as loaded) and `model.safetensors`
    /// with every parameter plus `final_logits_bias`, as `transformers` saves the model (tied
    /// copies and the sinusoidal tables are not stored).
    public func save(to directory: URL) throws {
        try parameters.checkLayout(layout, owner: "MarianMTModel")
        var all = parameters
        for (n, t) in buffers.entries { all[n] = t }
        try saveTrainingFolder(
            to: directory, configJSON: configJSON, parameters: all,
            extraFiles: generationConfigJSON.map { [("generation_config.json", $0)] } ?? [])
    }
}
