import Foundation

// T5's sequence-to-sequence objective as transformers' T5ForConditionalGeneration computes
// it, trainable:
//
//   decoder_input_ids = [decoder_start] + labels[:-1]   (-100 -> pad), unless given
//   memory = Encoder(shared[input_ids])                  (pre-LN RMSNorm blocks, final norm)
//   y      = Decoder(shared[decoder_input_ids], memory)
//   logits = lm_head(y * d^-0.5)                          (tied head: lm_head = shared)
//   loss   = CE(logits, labels; -100 ignored, mean)
//
// Each stack's relative-position bias is one table (block 0's), shared by every layer of the
// stack, so its gradient is the sum over the stack's layers of the attention backward's
// table gradients (the fused kernel sums dS per bucket and head). The shared embedding's gradient sums the encoder's and
// decoder's lookups and (tied) the head's product.

/// A trainable `T5ForConditionalGeneration` (T5 and T5 v1.1 layouts: relu or gated
/// feed-forward, tied or separate `lm_head`), with gradients for every parameter, named and
/// ordered as `transformers`' `named_parameters()` (`shared.weight`,
/// `encoder.block.0.layer.0.SelfAttention.q.weight`, ..., `decoder.final_layer_norm.weight`,
/// then `lm_head.weight` when untied).
///
/// Batches give `input_ids`, `labels` (-100 ignored) and optionally `attention_mask`,
/// `decoder_input_ids` (default: `labels` shifted right as `transformers` does) and
/// `decoder_attention_mask`. While ``dropout`` is on, `dropout_rate` applies where
/// `transformers`' T5 applies it in train mode: after the embeddings, on the attention
/// probabilities, on each attention and feed-forward output before its residual sum, inside
/// the feed-forward after the activation, and after each stack's final norm.
/// Cost per step: one forward (encoder and decoder blocks, plus `2 T d vocab` for the
/// logits) and a backward of about twice that; memory: every block's activations, including
/// the attention probabilities (`rows x heads x length²` per attention).
public final class T5ForConditionalGeneration: TrainableModel {
    /// Large step buffers are recycled while this model lives (see `LargeBufferRecycler`).
    private let recycling = LargeBufferRecycler.Token()
    /// The model's configuration (`config.json`).
    public let config: T5Config
    /// The kernels and threads every step runs on.
    public let compute: Compute
    /// The parameters by Hugging Face name, in `named_parameters()` order. Setting them (same
    /// names and shapes) replaces the weights the next ``loss(_:)`` uses; an optimizer's
    /// `step(&model.parameters, ...)` updates them in place (no copy).
    /// A set whose names, order or shapes differ is refused by the next ``loss(_:)``,
    /// ``backward()`` or ``save(to:)`` with a `TrainingError` naming the first difference.
    public var parameters: ParameterSet {
        didSet {  // (no oldValue: a mutation through the property is in place)
            built = nil
        }
    }
    /// The parameters' names and shapes.
    private let layout: [(String, [Int])]
    /// Dropout on (`dropout_rate`, default) or off, and its seed (see
    /// ``TrainableModel/dropout``).
    public var dropout: TrainingDropout {
        get { dropoutState.setting }
        set { dropoutState.setting = newValue }
    }
    private var dropoutState: ModelDropout
    /// `config.json` as read (written back by ``save(to:)``).
    let configJSON: Data
    /// `generation_config.json` as read, when the folder has one (written back by ``save(to:)``).
    let generationConfigJSON: Data?
    /// Whether the head has its own weight (`lm_head.weight`) rather than the shared table.
    let separateHead: Bool
    private var built: Seq2SeqModel?
    private var saved: (parts: Seq2SeqTrainingParts, activations: Seq2SeqActivations)?

    /// Loads a `transformers` `T5ForConditionalGeneration` folder (`config.json`,
    /// `model.safetensors`). Throws `ModelFileError`, `SafeTensorsError` or `CheckpointError`
    /// naming the file or tensor at fault.
    /// An int8 folder (written by `attend quantize`) is a thrown `TrainingError`.
    public init(directory: URL, compute: Compute = .default) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        try rejectInt8Folder(directory)
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw ModelFileError.missingFile(path: configURL.path) }
        configJSON = try Data(contentsOf: configURL)
        config = try T5Config(contentsOf: configURL)
        let rate = try DropoutRates.read(try JSONFields(try readModelJSON(configURL), path: configURL.path), "dropout_rate", default: 0.1)
        dropoutState = ModelDropout(rates: DropoutRates(hidden: rate, attention: rate, activation: rate))
        let generationURL = directory.appendingPathComponent("generation_config.json")
        generationConfigJSON = FileManager.default.fileExists(atPath: generationURL.path) ? try Data(contentsOf: generationURL) : nil
        self.compute = compute
        let checkpoint = try ModelQuantization.checkpoint(directory: directory)
        let loader = ParameterLoader(checkpoint)
        let shape = [config.vocabSize, config.dModel]
        let shared = try loader.load("shared.weight", shape: shape)
        // As transformers (5) ties: a copy stored under its own name is the shared table only
        // when its values are the same; a different `lm_head.weight` is the model's own head
        // (T5 v1.1 and Flan-T5 folders saved by transformers 5 say tie_word_embeddings true and
        // keep their separate head that way).
        // A differing stored head is kept as read here (read once).
        let differingHead = try loader.storedDifferent("lm_head.weight", from: shared)
        separateHead = !config.tieWordEmbeddings || differingHead != nil
        try loader.refuseDifferingCopies(["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"], of: "shared.weight", shared, in: directory)
        var set = ParameterSet()
        layout = Self.parameterShapes(config, separateHead: separateHead)
        for (name, shape) in layout {
            switch name {
            case "shared.weight": set[name] = shared
            case "lm_head.weight" where differingHead != nil: set[name] = differingHead
            default: set[name] = try loader.load(name, shape: shape)
            }
        }
        // Tied copies some checkpoints store under their own names.
        for n in ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"] { loader.skip(n) }
        if !separateHead { loader.skip("lm_head.weight") }
        try loader.finish()
        parameters = set
    }

    /// The parameter names and shapes in `named_parameters()` order.
    static func parameterShapes(_ c: T5Config, separateHead: Bool) -> [(String, [Int])] {
        let d = c.dModel, inner = c.numHeads * c.dKV
        var out: [(String, [Int])] = [("shared.weight", [c.vocabSize, d])]
        func attention(_ p: String, relative: Bool) {
            out += [(p + ".q.weight", [inner, d]), (p + ".k.weight", [inner, d]), (p + ".v.weight", [inner, d]), (p + ".o.weight", [d, inner])]
            if relative { out.append((p + ".relative_attention_bias.weight", [c.relativeAttentionNumBuckets, c.numHeads])) }
        }
        func feedForward(_ p: String) {
            let f = p + ".DenseReluDense"
            if c.gatedFeedForward {
                out += [(f + ".wi_0.weight", [c.dFF, d]), (f + ".wi_1.weight", [c.dFF, d])]
            } else {
                out.append((f + ".wi.weight", [c.dFF, d]))
            }
            out += [(f + ".wo.weight", [d, c.dFF]), (p + ".layer_norm.weight", [d])]
        }
        for i in 0..<c.numLayers {
            let b = "encoder.block.\(i).layer"
            attention(b + ".0.SelfAttention", relative: i == 0)
            out.append((b + ".0.layer_norm.weight", [d]))
            feedForward(b + ".1")
        }
        out.append(("encoder.final_layer_norm.weight", [d]))
        for i in 0..<c.numDecoderLayers {
            let b = "decoder.block.\(i).layer"
            attention(b + ".0.SelfAttention", relative: i == 0)
            out.append((b + ".0.layer_norm.weight", [d]))
            attention(b + ".1.EncDecAttention", relative: false)
            out.append((b + ".1.layer_norm.weight", [d]))
            feedForward(b + ".2")
        }
        out.append(("decoder.final_layer_norm.weight", [d]))
        if separateHead { out.append(("lm_head.weight", [c.vocabSize, d])) }
        return out
    }

    /// The inference model over the current parameters, built on first use after they change.
    var model: Seq2SeqModel {
        get throws(TrainingError) {
            if let built { return built }
            try parameters.checkLayout(layout, owner: "T5ForConditionalGeneration")
            let m = build()
            built = m
            return m
        }
    }

    /// A model over the parameter tensors in place (the training forward's, kept with the
    /// activations until `backward()` returns, so no reference outlives the step).
    private func build() -> Seq2SeqModel {
        do {
            return try Seq2SeqModel(t5: config, weights: parameters)
        } catch {
            preconditionFailure("T5ForConditionalGeneration: the parameter set no longer builds a model: \(error)")
        }
    }

    /// The training forward's parts (T5 drops out after the final norms).
    private func trainingParts() -> Seq2SeqTrainingParts {
        var parts = Seq2SeqTrainingParts(build())
        parts.dropoutAfterFinalNorms = true
        return parts
    }

    /// The stacks' relative-position tables (block 0's, shared by every block of the stack).
    static let encoderTable = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    static let decoderTable = "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"

    private func attentionNames(_ p: String) -> AttentionParameterNames {
        AttentionParameterNames(
            query: p + ".q", key: p + ".k", value: p + ".v", out: p + ".o", inner: config.numHeads * config.dKV,
            modelDim: config.dModel, bias: false)
    }

    private func feedForwardNames(_ p: String) -> FeedForwardParameterNames {
        let f = p + ".DenseReluDense", d = config.dModel, ff = config.dFF
        if config.gatedFeedForward {
            return FeedForwardParameterNames(
                up: LinearParameterNames(f + ".wi_0", rows: ff, bias: false), gate: LinearParameterNames(f + ".wi_1", rows: ff, bias: false),
                down: LinearParameterNames(f + ".wo", rows: d, bias: false))
        }
        return FeedForwardParameterNames(
            up: LinearParameterNames(f + ".wi", rows: ff, bias: false), gate: nil, down: LinearParameterNames(f + ".wo", rows: d, bias: false))
    }

    func encoderLayerNames(_ i: Int) -> EncoderLayerParameterNames {
        let b = "encoder.block.\(i).layer"
        return EncoderLayerParameterNames(
            attention: attentionNames(b + ".0.SelfAttention"), attentionNorm: NormParameterNames(b + ".0.layer_norm", bias: false),
            feedForward: feedForwardNames(b + ".1"), feedForwardNorm: NormParameterNames(b + ".1.layer_norm", bias: false))
    }

    func decoderLayerNames(_ i: Int) -> DecoderLayerParameterNames {
        let b = "decoder.block.\(i).layer"
        return DecoderLayerParameterNames(
            selfAttention: attentionNames(b + ".0.SelfAttention"), selfAttentionNorm: NormParameterNames(b + ".0.layer_norm", bias: false),
            crossAttention: attentionNames(b + ".1.EncDecAttention"), crossAttentionNorm: NormParameterNames(b + ".1.layer_norm", bias: false),
            feedForward: feedForwardNames(b + ".2"), feedForwardNorm: NormParameterNames(b + ".2.layer_norm", bias: false))
    }

    /// Every parameter's name, by part.
    var names: Seq2SeqParameterNames {
        Seq2SeqParameterNames(
            encoderEmbedding: "shared.weight", decoderEmbedding: "shared.weight", head: separateHead ? "lm_head.weight" : "shared.weight",
            encoderLayers: (0..<config.numLayers).map(encoderLayerNames), decoderLayers: (0..<config.numDecoderLayers).map(decoderLayerNames),
            encoderFinalNorm: NormParameterNames("encoder.final_layer_norm", bias: false),
            decoderFinalNorm: NormParameterNames("decoder.final_layer_norm", bias: false),
            encoderTable: Self.encoderTable, decoderTable: Self.decoderTable, paddingIndex: nil,
            relativeMaxDistance: config.relativeAttentionMaxDistance)
    }

    /// The decoder's input ids: `batch.decoderInputIDs`, or `labels` shifted right with the
    /// decoder start id first and -100 replaced by the pad id (`_shift_right`).
    func decoderInput(_ batch: TrainingBatch) -> [[Int]] {
        batch.decoderInputIDs ?? Seq2SeqTraining.shiftRight(batch.labels!, start: config.decoderStartTokenID, pad: config.padTokenID)
    }

    /// The mean cross-entropy of the decoder's logits against `batch.labels` (-100 ignored),
    /// as `T5ForConditionalGeneration(...).loss`, keeping the activations. Throws
    /// `TrainingError` for a batch the model cannot take or one whose labels are all -100.
    public func loss(_ batch: TrainingBatch) throws(TrainingError) -> Float {
        try parameters.checkLayout(layout, owner: "T5ForConditionalGeneration")
        try batch.validate(vocabularySize: config.vocabSize, labelsMatchInput: false, needsLabels: true, where: "T5ForConditionalGeneration batch")
        guard batch.labels!.contains(where: { $0.contains { $0 != -100 } }) else {
            throw TrainingError("T5ForConditionalGeneration batch: every label is -100 (no position to learn from)")
        }
        saved = nil
        let parts = trainingParts()
        let (loss, activations) = Seq2SeqTraining.loss(
            parts, parameters: parameters, names: names, batch: batch, decoderInput: decoderInput(batch), dropout: dropoutState.nextSampler(),
            compute: compute)
        saved = (parts, activations)
        return loss
    }

    /// The gradient of the last ``loss(_:)`` for every parameter (``parameters``' names,
    /// order and shapes), then frees the activations. Throws when no loss is pending.
    public func backward() throws(TrainingError) -> ParameterSet {
        guard let s = saved else { throw TrainingError("T5ForConditionalGeneration.backward: no loss was computed since the last backward") }
        try parameters.checkLayout(layout, owner: "T5ForConditionalGeneration")
        saved = nil
        return Seq2SeqTraining.backward(s.parts, s.activations, parameters: parameters, names: names, compute: compute)
    }

    /// Writes `config.json` and `generation_config.json` (as loaded) and `model.safetensors`
    /// with every parameter under its name; as `transformers` saves a tied T5, the tied copies
    /// (`encoder.embed_tokens`, `decoder.embed_tokens`, `lm_head`) are not stored: they are
    /// `shared.weight`. Files are written to temporary names and renamed.
    public func save(to directory: URL) throws {
        try parameters.checkLayout(layout, owner: "T5ForConditionalGeneration")
        try saveTrainingFolder(
            to: directory, configJSON: configJSON, parameters: parameters,
            extraFiles: generationConfigJSON.map { [("generation_config.json", $0)] } ?? [])
    }
}
