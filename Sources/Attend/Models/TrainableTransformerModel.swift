import Foundation

// The paper's encoder-decoder (TransformerModel: src_embed, tgt_embed, an nn.Transformer under
// `transformer`, generator), trainable with teacher forcing: the shared seq2seq forward and
// backward (Seq2SeqTraining) over its parts, parameters named as the PyTorch state dict names
// them (the fused `in_proj_weight` is one parameter).

/// A trainable ``TransformerModel``: mean cross-entropy of the generator's logits against
/// `labels` (-100 ignored) with teacher forcing, and gradients for every parameter named and
/// ordered as the PyTorch module's `named_parameters()` (`src_embed.weight`, `tgt_embed.weight`,
/// `transformer.encoder.layers.0.self_attn.in_proj_weight`, ..., `transformer.decoder.norm.bias`,
/// `generator.weight`, `generator.bias`; names adjustable as in
/// ``TransformerModel/init(loading:config:names:)``).
///
/// Batches give `input_ids` (sources), `decoder_input_ids` (the targets as the decoder reads
/// them: the model has no start-token convention of its own), `labels` (what each decoder
/// position predicts; -100 ignored) and optionally `attention_mask` (source padding) and
/// `decoder_attention_mask`. While ``dropout`` is on, the configuration's
/// ``TransformerConfig/dropout`` applies as `nn.Transformer` and the positional encoding
/// apply it in train mode: after the embeddings, on the attention probabilities, on each
/// attention and feed-forward output before its residual sum, and inside the feed-forward
/// after the activation.
/// Cost per step: one forward and a backward of about twice its flops; memory: every block's
/// activations.
public final class TrainableTransformerModel: TrainableModel {
    /// Large step buffers are recycled while this model lives (see `LargeBufferRecycler`).
    private let recycling = LargeBufferRecycler.Token()
    /// Sizes and conventions.
    public let config: TransformerConfig
    /// The state dict's module names.
    public let names: TransformerModel.ParameterNames
    /// The kernels and threads every step runs on.
    public let compute: Compute
    /// The parameters by state-dict name, in `named_parameters()` order. Setting them (same
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
    /// Dropout on (``TransformerConfig/dropout``, default) or off, and its seed (see
    /// ``TrainableModel/dropout``).
    public var dropout: TrainingDropout {
        get { dropoutState.setting }
        set { dropoutState.setting = newValue }
    }
    private var dropoutState: ModelDropout
    private var built: TransformerModel?
    private var saved: (parts: Seq2SeqTrainingParts, activations: Seq2SeqActivations)?

    /// The model of `config` with the parameters of `weights` (a state dict, e.g. a
    /// `SafeTensorsFile`). Throws `CheckpointError` naming the first missing or misshapen
    /// tensor, every tensor left unused, or an impossible configuration.
    public init(
        loading weights: TensorSource, config: TransformerConfig, names: TransformerModel.ParameterNames = .init(), compute: Compute = .default
    ) throws {
        try config.validate()
        self.config = config
        self.names = names
        let p = config.dropout
        dropoutState = ModelDropout(rates: DropoutRates(hidden: p, attention: p, activation: p))
        self.compute = compute
        let loader = ParameterLoader(weights)
        var set = ParameterSet()
        layout = Self.parameterShapes(config, names, hasGeneratorBias: weights.tensorNames.contains(names.generator + ".bias"))
        for (name, shape) in layout { set[name] = try loader.load(name, shape: shape) }
        try loader.finish()
        parameters = set
    }

    /// The parameter names and shapes in `named_parameters()` order.
    static func parameterShapes(_ c: TransformerConfig, _ n: TransformerModel.ParameterNames, hasGeneratorBias: Bool) -> [(String, [Int])] {
        let d = c.layer.modelDim, f = c.layer.feedForwardDim, bias = c.layer.bias
        var out: [(String, [Int])] = [
            (n.sourceEmbedding + ".weight", [c.sourceVocabularySize, d]), (n.targetEmbedding + ".weight", [c.targetVocabularySize, d]),
        ]
        func linear(_ p: String, _ o: Int, _ i: Int) { out.append((p + ".weight", [o, i])); if bias { out.append((p + ".bias", [o])) } }
        func attention(_ p: String) {
            out.append((p + ".in_proj_weight", [3 * d, d]))
            if bias { out.append((p + ".in_proj_bias", [3 * d])) }
            linear(p + ".out_proj", d, d)
        }
        func norm(_ p: String) { out.append((p + ".weight", [d])); if bias { out.append((p + ".bias", [d])) } }
        let t = n.transformer
        for i in 0..<c.encoderLayers {
            let l = "\(t).encoder.layers.\(i)"
            attention(l + ".self_attn"); linear(l + ".linear1", f, d); linear(l + ".linear2", d, f); norm(l + ".norm1"); norm(l + ".norm2")
        }
        if c.finalNorms { norm("\(t).encoder.norm") }
        for i in 0..<c.decoderLayers {
            let l = "\(t).decoder.layers.\(i)"
            attention(l + ".self_attn"); attention(l + ".multihead_attn"); linear(l + ".linear1", f, d); linear(l + ".linear2", d, f)
            norm(l + ".norm1"); norm(l + ".norm2"); norm(l + ".norm3")
        }
        if c.finalNorms { norm("\(t).decoder.norm") }
        out.append((n.generator + ".weight", [c.targetVocabularySize, d]))
        if hasGeneratorBias { out.append((n.generator + ".bias", [c.targetVocabularySize])) }
        return out
    }

    /// The inference model over the current parameters, built on first use after they change
    /// (training does not use it: its forward builds its layers over the parameters in place).
    /// Throws `TrainingError` when ``parameters`` no longer hold this model's names and shapes.
    /// Cost: the first access after a change builds the layers over the parameters (no copy).
    public var model: TransformerModel {
        get throws(TrainingError) {
            if let built { return built }
            try parameters.checkLayout(layout, owner: "TrainableTransformerModel")
            let m = build()
            built = m
            return m
        }
    }

    /// A model over the parameter tensors in place (the training forward's, kept with the
    /// activations until `backward()` returns, so no reference outlives the step).
    private func build() -> TransformerModel {
        do {
            return try TransformerModel(loading: parameters, config: config, names: names)
        } catch {
            preconditionFailure("TrainableTransformerModel: the parameter set no longer builds a model: \(error)")
        }
    }

    /// Every parameter's name, by part.
    var parameterNames: Seq2SeqParameterNames {
        let d = config.layer.modelDim, f = config.layer.feedForwardDim, bias = config.layer.bias, t = names.transformer
        func attention(_ p: String) -> AttentionParameterNames {
            var a = AttentionParameterNames(query: "", key: "", value: "", out: p + ".out_proj", inner: d, modelDim: d, bias: bias)
            a.input = LinearParameterNames(parts: [(p + ".in_proj_weight", bias ? p + ".in_proj_bias" : nil, 3 * d)])
            return a
        }
        func feedForward(_ l: String) -> FeedForwardParameterNames {
            FeedForwardParameterNames(
                up: LinearParameterNames(l + ".linear1", rows: f, bias: bias), gate: nil,
                down: LinearParameterNames(l + ".linear2", rows: d, bias: bias))
        }
        let generatorBias = parameters.contains(names.generator + ".bias") ? names.generator + ".bias" : nil
        return Seq2SeqParameterNames(
            encoderEmbedding: names.sourceEmbedding + ".weight", decoderEmbedding: names.targetEmbedding + ".weight",
            head: names.generator + ".weight", headBias: generatorBias,
            encoderLayers: (0..<config.encoderLayers).map { i in
                let l = "\(t).encoder.layers.\(i)"
                return EncoderLayerParameterNames(
                    attention: attention(l + ".self_attn"), attentionNorm: NormParameterNames(l + ".norm1", bias: bias),
                    feedForward: feedForward(l), feedForwardNorm: NormParameterNames(l + ".norm2", bias: bias))
            },
            decoderLayers: (0..<config.decoderLayers).map { i in
                let l = "\(t).decoder.layers.\(i)"
                return DecoderLayerParameterNames(
                    selfAttention: attention(l + ".self_attn"), selfAttentionNorm: NormParameterNames(l + ".norm1", bias: bias),
                    crossAttention: attention(l + ".multihead_attn"), crossAttentionNorm: NormParameterNames(l + ".norm2", bias: bias),
                    feedForward: feedForward(l), feedForwardNorm: NormParameterNames(l + ".norm3", bias: bias))
            },
            encoderFinalNorm: config.finalNorms ? NormParameterNames("\(t).encoder.norm", bias: bias) : nil,
            decoderFinalNorm: config.finalNorms ? NormParameterNames("\(t).decoder.norm", bias: bias) : nil,
            encoderTable: nil, decoderTable: nil, paddingIndex: nil)
    }

    /// The mean cross-entropy of the generator's logits against `batch.labels` (-100
    /// ignored), keeping the activations. Throws `TrainingError` for a batch the model cannot
    /// take: no `decoder_input_ids` or `labels`, shapes that differ, ids outside the
    /// vocabularies, or labels all -100.
    public func loss(_ batch: TrainingBatch) throws(TrainingError) -> Float {
        try parameters.checkLayout(layout, owner: "TrainableTransformerModel")
        let place = "TrainableTransformerModel batch"
        guard let decoderInput = batch.decoderInputIDs else {
            throw TrainingError("\(place): decoder_input_ids are missing (this model has no start-token convention)")
        }
        var source = batch
        (source.labels, source.decoderInputIDs, source.decoderAttentionMask) = (nil, nil, nil)
        try source.validate(vocabularySize: config.sourceVocabularySize, labelsMatchInput: false, needsLabels: false, where: place)
        guard let labels = batch.labels else { throw TrainingError("\(place): labels are missing") }
        guard decoderInput.count == batch.rows else {
            throw TrainingError("\(place): decoder_input_ids has \(decoderInput.count) rows, input_ids has \(batch.rows)")
        }
        // The decoder side, checked as a batch of its own against the target vocabulary.
        try TrainingBatch(inputIDs: decoderInput, attentionMask: batch.decoderAttentionMask, labels: labels).validate(
            vocabularySize: config.targetVocabularySize, labelsMatchInput: true,
            where: "\(place) (decoder side: input_ids = decoder_input_ids, attention_mask = decoder_attention_mask)")
        guard labels.contains(where: { $0.contains { $0 != -100 } }) else {
            throw TrainingError("\(place): every label is -100 (no position to learn from)")
        }
        saved = nil
        let parts = Seq2SeqTrainingParts(build())
        let (loss, activations) = Seq2SeqTraining.loss(
            parts, parameters: parameters, names: parameterNames, batch: batch, decoderInput: decoderInput,
            dropout: dropoutState.nextSampler(), compute: compute)
        saved = (parts, activations)
        return loss
    }

    /// The gradient of the last ``loss(_:)`` for every parameter (``parameters``' names,
    /// order and shapes), then frees the activations. Throws when no loss is pending.
    public func backward() throws(TrainingError) -> ParameterSet {
        guard let s = saved else { throw TrainingError("TrainableTransformerModel.backward: no loss was computed since the last backward") }
        try parameters.checkLayout(layout, owner: "TrainableTransformerModel")
        saved = nil
        return Seq2SeqTraining.backward(s.parts, s.activations, parameters: parameters, names: parameterNames, compute: compute)
    }

    /// Writes `model.safetensors` (the state dict, which ``TransformerModel/init(loading:config:names:)``
    /// and PyTorch's `load_state_dict` read) into `directory`; the configuration is the
    /// caller's (this model has no `config.json`). Written to a temporary name and renamed.
    public func save(to directory: URL) throws {
        try parameters.checkLayout(layout, owner: "TrainableTransformerModel")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try SafeTensorsWriter.write(parameters, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
    }
}
