import Foundation

// BERT's pre-training objective as transformers' BertForPreTraining computes it, trainable:
//
//   loss = CE(MLM logits over every position, labels; -100 ignored, mean)
//        + CE(NSP logits of the pooled [CLS], next_sentence_label; mean)
//
// or, for a batch without next_sentence_label, the masked-LM term alone (BertForMaskedLM's
// loss; the pooler and the NSP head are not run and get zero gradients).
//
// The forward builds the layers over the parameter tensors themselves (no copy but the fused
// QKV weight; nothing packed ahead) and runs their training forwards, keeping each layer's
// activations; the backward walks them in reverse (llm.c's shape: no tape, one explicit
// backward per layer) and drops them, so an optimizer then updates the parameters in place.
// The MLM decoder's weight is the word embedding table: one parameter, whose gradient is the
// sum of the lookup's scatter-add and the decoder's product.

/// A trainable `BertForPreTraining`: masked-language-model plus next-sentence loss, with
/// gradients for every parameter, named and ordered as `transformers`' `named_parameters()`
/// (`bert.embeddings.word_embeddings.weight`, ..., `cls.seq_relationship.bias`; the tied MLM
/// decoder weight is the word embeddings, listed once).
///
/// Batches give `input_ids`, `labels` (MLM targets, -100 ignored) and optionally
/// `next_sentence_label`, `attention_mask` and `token_type_ids` (see ``TrainingBatch``). A
/// batch with `next_sentence_label` trains both objectives; one without trains the masked-LM
/// loss alone, as `BertForMaskedLM` computes it (the pooler and `cls.seq_relationship` get zero
/// gradients; an optimizer's weight decay still applies to them unless excluded). While
/// ``dropout`` is on, `hidden_dropout_prob` applies after the embeddings' LayerNorm and on each
/// attention and feed-forward output before its residual sum, and `attention_probs_dropout_prob`
/// on the attention probabilities (inside the fused kernels, the mask recomputed from a hash in
/// the backward), as `transformers` in train mode.
/// Cost per step: one forward (`(8 d² + 4 d dFF) T` flops per layer, T = rows x length,
/// plus `2 T d vocab` for the MLM logits) and a backward of about twice that; memory: every
/// layer's activations, including the attention probabilities (`rows x heads x length²`).
public final class BERTForPreTraining: TrainableModel {
    /// Large step buffers are recycled while this model lives (see `LargeBufferRecycler`).
    private let recycling = LargeBufferRecycler.Token()
    /// The model's configuration (`config.json`).
    public let config: BERTConfig
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
    /// Dropout on (`hidden_dropout_prob`, `attention_probs_dropout_prob`, default) or off, and its seed (see
    /// ``TrainableModel/dropout``).
    public var dropout: TrainingDropout {
        get { dropoutState.setting }
        set { dropoutState.setting = newValue }
    }
    private var dropoutState: ModelDropout
    /// `config.json` as read (written back by ``save(to:)``).
    let configJSON: Data
    private var built: BERTModel?
    private var saved: Activations?

    /// Loads a `transformers` `BertForPreTraining` folder (`config.json`, `model.safetensors`
    /// with the `bert.` prefix and both `cls.` heads). Throws `ModelFileError`,
    /// `SafeTensorsError` or `CheckpointError` naming the file or tensor at fault, including
    /// settings training does not support (relative positions, an untied MLM decoder).
    /// An int8 folder (written by `attend quantize`) is a thrown `TrainingError`.
    public init(directory: URL, compute: Compute = .default) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        try rejectInt8Folder(directory)
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw ModelFileError.missingFile(path: configURL.path) }
        configJSON = try Data(contentsOf: configURL)
        config = try BERTConfig(contentsOf: configURL)
        let fields = try JSONFields(try readModelJSON(configURL), path: configURL.path)
        dropoutState = ModelDropout(
            rates: DropoutRates(
                hidden: try DropoutRates.read(fields, "hidden_dropout_prob", default: 0.1),
                attention: try DropoutRates.read(fields, "attention_probs_dropout_prob", default: 0.1)))
        if try fields.bool("tie_word_embeddings") == false {
            throw CheckpointError.invalidConfig("\(configURL.path): training supports the tied MLM decoder only (tie_word_embeddings false)")
        }
        guard config.positionEmbeddingType == .absolute else {
            throw CheckpointError.invalidConfig(
                "\(configURL.path): training supports absolute positions only, not \(config.positionEmbeddingType.rawValue)")
        }
        self.compute = compute
        let checkpoint = try ModelQuantization.checkpoint(directory: directory)
        let loader = ParameterLoader(
            checkpoint,
            ignoring: { $0.hasSuffix("position_ids") || $0.hasSuffix("embeddings.token_type_ids") })
        var set = ParameterSet()
        layout = Self.parameterShapes(config)
        for (name, shape) in layout { set[name] = try loader.load(name, shape: shape) }
        // The tied decoder, when stored, is the same tensor as the word embeddings.
        try loader.refuseDifferingCopies(
            ["cls.predictions.decoder.weight"], of: "bert.embeddings.word_embeddings.weight", set["bert.embeddings.word_embeddings.weight"]!,
            in: directory)
        try loader.refuseDifferingCopies(["cls.predictions.decoder.bias"], of: "cls.predictions.bias", set["cls.predictions.bias"]!, in: directory)
        loader.skip("cls.predictions.decoder.weight")
        loader.skip("cls.predictions.decoder.bias")
        try loader.finish()
        parameters = set
    }

    /// The parameter names and shapes in `named_parameters()` order.
    static func parameterShapes(_ c: BERTConfig) -> [(String, [Int])] {
        let d = c.hiddenSize, f = c.intermediateSize
        var out: [(String, [Int])] = [
            ("bert.embeddings.word_embeddings.weight", [c.vocabSize, d]),
            ("bert.embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, d]),
            ("bert.embeddings.token_type_embeddings.weight", [c.typeVocabSize, d]),
            ("bert.embeddings.LayerNorm.weight", [d]), ("bert.embeddings.LayerNorm.bias", [d]),
        ]
        for i in 0..<c.numHiddenLayers {
            let l = "bert.encoder.layer.\(i)."
            for p in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                out += [(l + p + ".weight", [d, d]), (l + p + ".bias", [d])]
            }
            out += [(l + "attention.output.LayerNorm.weight", [d]), (l + "attention.output.LayerNorm.bias", [d])]
            out += [(l + "intermediate.dense.weight", [f, d]), (l + "intermediate.dense.bias", [f])]
            out += [(l + "output.dense.weight", [d, f]), (l + "output.dense.bias", [d])]
            out += [(l + "output.LayerNorm.weight", [d]), (l + "output.LayerNorm.bias", [d])]
        }
        out += [
            ("bert.pooler.dense.weight", [d, d]), ("bert.pooler.dense.bias", [d]),
            ("cls.predictions.bias", [c.vocabSize]),
            ("cls.predictions.transform.dense.weight", [d, d]), ("cls.predictions.transform.dense.bias", [d]),
            ("cls.predictions.transform.LayerNorm.weight", [d]), ("cls.predictions.transform.LayerNorm.bias", [d]),
            ("cls.seq_relationship.weight", [2, d]), ("cls.seq_relationship.bias", [2]),
        ]
        return out
    }

    /// The inference model over the current parameters, built (and packed) on first use after
    /// they change. Training does not use it: see `trainingModel()`.
    var model: BERTModel {
        get throws(TrainingError) {
            if let built { return built }
            try parameters.checkLayout(layout, owner: "BERTForPreTraining")
            let m = build(prepacking: .default)
            built = m
            return m
        }
    }

    /// The layers the training forward runs, over the parameter tensors in place (nothing
    /// packed ahead: each product packs its weight as it runs). Kept with the activations
    /// until `backward()` returns, so no reference to a parameter outlives the step.
    private func trainingModel() -> BERTModel { build(prepacking: nil) }

    private func build(prepacking: Compute?) -> BERTModel {
        do {
            return try BERTModel(config: config, weights: parameters, ignoringUnusedTensors: false, prepacking: prepacking)
        } catch {
            preconditionFailure("BERTForPreTraining: the parameter set no longer builds a model: \(error)")
        }
    }

    /// Every layer's names under `bert.encoder.layer.i.`.
    func layerNames(_ i: Int) -> EncoderLayerParameterNames {
        let l = "bert.encoder.layer.\(i).", d = config.hiddenSize, f = config.intermediateSize
        return EncoderLayerParameterNames(
            attention: AttentionParameterNames(
                query: l + "attention.self.query", key: l + "attention.self.key", value: l + "attention.self.value",
                out: l + "attention.output.dense", inner: d, modelDim: d, bias: true),
            attentionNorm: NormParameterNames(l + "attention.output.LayerNorm"),
            feedForward: FeedForwardParameterNames(
                up: LinearParameterNames(l + "intermediate.dense", rows: f), gate: nil, down: LinearParameterNames(l + "output.dense", rows: d)),
            feedForwardNorm: NormParameterNames(l + "output.LayerNorm"))
    }

    /// What the backward needs from one forward.
    private struct Activations {
        var model: BERTModel
        var rows: Int, length: Int
        var ids: [Int], types: [Int], positions: [Int]
        var embeddingNorm: NormRowStatistics
        var embeddingDropout: Tensor?
        var layers: [EncoderLayerActivations]
        var last: Tensor  // [T, d]
        var transformPre: Tensor  // [T, d] before the activation
        var transformNorm: NormRowStatistics
        var normalized: Tensor  // [T, d], the decoder's input
        var mlmGradient: Tensor  // [T, vocab], dLoss/dLogits
        var first: Tensor  // [rows, d], the [CLS] rows
        var pooled: Tensor  // [rows, d] after tanh
        var nspGradient: Tensor?  // [rows, 2]; nil for a masked-LM-only batch
    }

    /// The pre-training loss of `batch` (MLM mean cross-entropy plus NSP mean cross-entropy,
    /// as `BertForPreTraining(...).loss`; without `next_sentence_label`, the MLM term alone, as
    /// `BertForMaskedLM(...).loss`), keeping the activations. Throws `TrainingError` for
    /// a batch the model cannot take (see ``TrainingBatch/validate(vocabularySize:typeVocabularySize:maxLength:labelsMatchInput:needsLabels:needsNextSentence:where:)``)
    /// or one with no MLM or NSP label that counts (all -100: the mean is undefined).
    public func loss(_ batch: TrainingBatch) throws(TrainingError) -> Float {
        try parameters.checkLayout(layout, owner: "BERTForPreTraining")
        try batch.validate(
            vocabularySize: config.vocabSize, typeVocabularySize: config.typeVocabSize, maxLength: config.maxPositionEmbeddings,
            labelsMatchInput: true, needsLabels: true, needsNextSentence: false, where: "BERTForPreTraining batch")
        let labels = batch.labels!.flatMap { $0 }, nextLabels = batch.nextSentenceLabel
        guard labels.contains(where: { $0 != -100 }) else {
            throw TrainingError("BERTForPreTraining batch: every MLM label is -100 (no position to learn from)")
        }
        if let nextLabels, !nextLabels.contains(where: { $0 != -100 }) {
            throw TrainingError(
                "BERTForPreTraining batch: every next_sentence_label is -100 (leave next_sentence_label out to train the masked-LM loss alone)")
        }
        saved = nil
        let m = trainingModel(), c = compute
        let (b, s) = (batch.rows, batch.length)
        let ids = batch.inputIDs.flatMap { $0 }
        let types = batch.tokenTypeIDs?.flatMap { $0 } ?? [Int](repeating: 0, count: b * s)
        let positions = (0..<b).flatMap { _ in 0..<s }
        let keyPadding: [[Bool]]? = batch.attentionMask.flatMap { mask in mask.contains { $0.contains(0) } ? mask.map { $0.map { $0 != 0 } } : nil }
        let e =
            m.embeddings.word.weight.gatherRows(ids) + m.embeddings.tokenType.weight.gatherRows(types)
            + m.embeddings.position.weight.gatherRows(positions)
        let dropout = dropoutState.nextSampler()
        let (normed, embeddingNorm) = Norm.layer(m.embeddings.norm).trainingForward(e, compute: c)
        var (x, embeddingDropout) = hiddenDropout(normed, dropout)
        let visibility = AttentionVisibility(batch: b, seqQ: s, seqK: s, keyPadding: keyPadding, causal: false)
        var layerActivations: [EncoderLayerActivations] = []
        for layer in m.layers {
            let (y, a) = layer.trainingForward(x, visibility, dropout: dropout, compute: c)
            layerActivations.append(a)
            x = y
        }
        guard let head = m.maskedLMHead, let pooler = m.pooler, let nsp = m.nextSentenceHead else {
            preconditionFailure("BERTForPreTraining: the model lost a head")
        }
        let transformPre = head.transform.forward(x, compute: c)
        let (normalized, transformNorm) = Norm.layer(head.norm).trainingForward(transformPre.applying(head.activation, compute: c), compute: c)
        let logits = head.decoder.forward(normalized, compute: c)  // [T, vocab]
        let mlm = TrainingOps.softmaxCrossEntropy(logits: logits, labels: labels, compute: c)
        // Next-sentence head on the pooled [CLS] rows, when the batch has its labels.
        var first = Tensor.zeros([0]), pooled = Tensor.zeros([0])
        var next: (loss: Float, gradient: Tensor)? = nil
        if let nextLabels {
            first = x.gatherRows((0..<b).map { $0 * s })  // [b, d]
            pooled = pooler.forward(first, compute: c).map { Float(tanh(Double($0))) }
            let nspLogits = nsp.forward(pooled, compute: c)  // [b, 2]
            let ce = TrainingOps.softmaxCrossEntropy(logits: nspLogits, labels: nextLabels, compute: c)
            next = (ce.loss, ce.gradient)
        }
        saved = Activations(
            model: m, rows: b, length: s, ids: ids, types: types, positions: positions, embeddingNorm: embeddingNorm, embeddingDropout: embeddingDropout,
            layers: layerActivations,
            last: x, transformPre: transformPre, transformNorm: transformNorm, normalized: normalized, mlmGradient: mlm.gradient,
            first: first, pooled: pooled, nspGradient: next?.gradient)
        return next.map { mlm.loss + $0.loss } ?? mlm.loss
    }

    /// The gradient of the last ``loss(_:)`` for every parameter (``parameters``' names,
    /// order and shapes), then frees the activations. Throws when no loss is pending.
    public func backward() throws(TrainingError) -> ParameterSet {
        guard let s = saved else { throw TrainingError("BERTForPreTraining.backward: no loss was computed since the last backward") }
        try parameters.checkLayout(layout, owner: "BERTForPreTraining")
        saved = nil
        let m = s.model, c = compute
        guard let head = m.maskedLMHead, let pooler = m.pooler, let nsp = m.nextSentenceHead else {
            preconditionFailure("BERTForPreTraining: the model lost a head")
        }
        var grads = parameters.zerosLike(compute: compute)
        let word = "bert.embeddings.word_embeddings.weight"
        // MLM head: the decoder's weight is the word table (tied).
        let dN = head.decoder.backward(
            input: s.normalized, outputGradient: s.mlmGradient,
            names: LinearParameterNames(parts: [(word, "cls.predictions.bias", config.vocabSize)]), into: &grads, compute: c)!
        let dA = Norm.layer(head.norm).backward(
            s.transformNorm, outputGradient: dN, names: NormParameterNames("cls.predictions.transform.LayerNorm"), into: &grads, compute: c)
        let dU = TrainingOps.activationBackward(head.activation, input: s.transformPre, outputGradient: dA, compute: c)
        var dX = head.transform.backward(
            input: s.last, outputGradient: dU, names: LinearParameterNames("cls.predictions.transform.dense", rows: config.hiddenSize),
            into: &grads, compute: c)!
        // NSP head on the pooled [CLS] rows (a masked-LM-only batch leaves its gradients 0).
        if let nspGradient = s.nspGradient {
            let dPooled = nsp.backward(
                input: s.pooled, outputGradient: nspGradient, names: LinearParameterNames("cls.seq_relationship", rows: 2), into: &grads,
                compute: c)!
            let dPre = s.pooled.withUnsafeBufferPointer { p in
                dPooled.withUnsafeBufferPointer { g in Tensor(shape: dPooled.shape, generating: { g[$0] * (1 - p[$0] * p[$0]) }) }
            }
            let dFirst = pooler.backward(
                input: s.first, outputGradient: dPre, names: LinearParameterNames("bert.pooler.dense", rows: config.hiddenSize), into: &grads,
                compute: c)!
            let d = config.hiddenSize
            dFirst.withUnsafeBufferPointer { g in
                dX.withUnsafeMutableBufferPointer { x in
                    for r in 0..<s.rows { for j in 0..<d { x[r * s.length * d + j] += g[r * d + j] } }
                }
            }
        }
        for i in stride(from: m.layers.count - 1, through: 0, by: -1) {
            dX = m.layers[i].backward(s.layers[i], outputGradient: dX, names: layerNames(i), into: &grads, compute: c).input
        }
        let dE = Norm.layer(m.embeddings.norm).backward(
            s.embeddingNorm, outputGradient: dropoutBackward(dX, s.embeddingDropout), names: NormParameterNames("bert.embeddings.LayerNorm"), into: &grads, compute: c)
        m.embeddings.word.backward(ids: s.ids, outputGradient: dE, name: word, paddingIndex: config.padTokenID, into: &grads, compute: c)
        m.embeddings.position.backward(
            ids: s.positions, outputGradient: dE, name: "bert.embeddings.position_embeddings.weight", into: &grads, compute: c)
        m.embeddings.tokenType.backward(
            ids: s.types, outputGradient: dE, name: "bert.embeddings.token_type_embeddings.weight", into: &grads, compute: c)
        return grads
    }

    /// Writes `config.json` (as loaded) and `model.safetensors` with every parameter under its
    /// name (the tied decoder stored once, as `transformers` saves it).
    public func save(to directory: URL) throws {
        try parameters.checkLayout(layout, owner: "BERTForPreTraining")
        try saveTrainingFolder(to: directory, configJSON: configJSON, parameters: parameters)
    }
}
