import Foundation

// The training forward and backward every encoder-decoder of the package shares (T5, Marian),
// over the inference model's parts (Seq2SeqModel) built from the parameter set:
//
//   x = table[ids] * embeddingScale + positions      (encoder; fixed positions get no gradient)
//   memory = finalNorm?(EncoderLayers(x, bias))
//   y = finalNorm?(DecoderLayers(table[decoderIDs] * scale + positions, memory, causal bias))
//   logits = lmHead(y * outputScale)                 (+ a fixed bias: Marian's final_logits_bias)
//   loss = CE(logits, labels; -100 ignored, mean)
//
// In training mode (a DropoutSampler) the hidden dropout follows each embedding sum, each
// block's branches (see the layers' training forwards) and, for T5, each stack's final norm.
//
// A model supplies the Hugging Face names of its parameters; tied weights (one name used by the
// embedding tables and the head) get the sum of every use's gradient.

/// The parts of an encoder-decoder that training runs through (Seq2SeqModel's, or the
/// paper's TransformerModel's).
struct Seq2SeqTrainingParts {
    var encoderEmbedding: Embedding, decoderEmbedding: Embedding
    var embeddingScale: Float
    var encoderPositions: AbsolutePositions, decoderPositions: AbsolutePositions
    var encoder: TransformerEncoder, decoder: TransformerDecoder
    var outputScale: Float
    var lmHead: Linear
    /// Whether the hidden dropout follows each stack's final norm (T5).
    var dropoutAfterFinalNorms = false
    var modelDim: Int { encoder.modelDim }

    init(_ m: Seq2SeqModel) {
        (encoderEmbedding, decoderEmbedding, embeddingScale) = (m.encoderEmbedding, m.decoderEmbedding, m.embeddingScale)
        (encoderPositions, decoderPositions, encoder, decoder) = (m.encoderPositions, m.decoderPositions, m.encoder, m.decoder)
        (outputScale, lmHead) = (m.outputScale, m.lmHead)
    }

    init(_ m: TransformerModel) {
        (encoderEmbedding, decoderEmbedding, embeddingScale) = (m.sourceEmbedding, m.targetEmbedding, m.embeddingScale)
        (encoderPositions, decoderPositions, encoder, decoder) = (m.positions, m.positions, m.encoder, m.decoder)
        (outputScale, lmHead) = (1, m.generator)
    }
}

/// The names a seq2seq model's parameters have, and which of its parts are trained.
struct Seq2SeqParameterNames {
    var encoderEmbedding: String
    var decoderEmbedding: String
    /// The head's weight (the shared table's name when tied).
    var head: String
    /// The head's bias when trained (nil: none, or a buffer such as Marian's final_logits_bias).
    var headBias: String? = nil
    var encoderLayers: [EncoderLayerParameterNames]
    var decoderLayers: [DecoderLayerParameterNames]
    var encoderFinalNorm: NormParameterNames?
    var decoderFinalNorm: NormParameterNames?
    /// T5's relative-position tables (block 0's of each stack), or nil.
    var encoderTable: String?
    var decoderTable: String?
    /// The embeddings' `padding_idx` (its row gets no gradient from the lookups), or nil.
    var paddingIndex: Int?
    /// T5's `relative_attention_max_distance` (for the bias tables).
    var relativeMaxDistance: Int = 128
}

/// What a seq2seq backward needs from one forward.
struct Seq2SeqActivations {
    var sourceIDs: [Int], targetIDs: [Int]
    var encoderLayers: [EncoderLayerActivations]
    var encoderNorm: NormRowStatistics?
    var memoryShape: [Int]
    var decoderLayers: [DecoderLayerActivations]
    var decoderNorm: NormRowStatistics?
    var headInput: Tensor  // [T, d], scaled
    var logitsGradient: Tensor  // [T, vocab]
    /// The hidden dropout's masks on the embeddings and after the final norms (nil: none).
    var encoderEmbeddingDropout: Tensor? = nil, decoderEmbeddingDropout: Tensor? = nil
    var encoderFinalDropout: Tensor? = nil, decoderFinalDropout: Tensor? = nil
}

enum Seq2SeqTraining {
    /// `labels` shifted right with `start` first and -100 replaced by `pad`
    /// (`transformers`' `_shift_right` / `shift_tokens_right`).
    static func shiftRight(_ labels: [[Int]], start: Int, pad: Int) -> [[Int]] {
        labels.map { row in ([start] + row.dropLast()).map { $0 == -100 ? pad : $0 } }
    }

    /// The padding rows of a 0/1 mask, or nil when nothing is masked.
    static func padding(_ mask: [[Int]]?) -> [[Bool]]? {
        mask.flatMap { m in m.contains { $0.contains(0) } ? m.map { $0.map { $0 != 0 } } : nil }
    }

    /// The mean cross-entropy of the decoder's logits against `labels` (validated by the
    /// caller, not all -100), and the activations; with `dropout`, in training mode.
    static func loss(
        _ m: Seq2SeqTrainingParts, parameters p: ParameterSet, names: Seq2SeqParameterNames, batch: TrainingBatch, decoderInput: [[Int]],
        dropout: DropoutSampler? = nil, compute c: Compute
    ) -> (Float, Seq2SeqActivations) {
        let labels = batch.labels!.flatMap { $0 }
        let (b, s, t, d) = (batch.rows, batch.length, decoderInput[0].count, m.modelDim)
        let sourcePadding = padding(batch.attentionMask), targetPadding = padding(batch.decoderAttentionMask)
        let encoderBias =
            names.encoderTable.map { AttentionBias.t5(table: p[$0]!, bidirectional: true, maxDistance: names.relativeMaxDistance) } ?? .none
        let decoderBias =
            names.decoderTable.map { AttentionBias.t5(table: p[$0]!, bidirectional: false, maxDistance: names.relativeMaxDistance) } ?? .none
        var (x, encoderEmbeddingDropout) = hiddenDropout(
            embed(batch.inputIDs, table: m.encoderEmbedding, scale: m.embeddingScale, positions: m.encoderPositions, offset: 0)
                .reshaped([b * s, d]), dropout)
        let encoderVisibility = AttentionVisibility(batch: b, seqQ: s, seqK: s, keyPadding: sourcePadding, causal: false)
        var encoderLayers: [EncoderLayerActivations] = []
        for layer in m.encoder.layers {
            let (y, a) = layer.trainingForward(x, encoderVisibility, bias: encoderBias, dropout: dropout, compute: c)
            encoderLayers.append(a)
            x = y
        }
        var encoderNorm: NormRowStatistics? = nil
        var encoderFinalDropout: Tensor? = nil, decoderFinalDropout: Tensor? = nil
        if let norm = m.encoder.finalNorm {
            (x, encoderNorm) = norm.trainingForward(x, compute: c)
            if m.dropoutAfterFinalNorms { (x, encoderFinalDropout) = hiddenDropout(x, dropout) }
        }
        let memory = x
        var (h, decoderEmbeddingDropout) = hiddenDropout(
            embed(decoderInput, table: m.decoderEmbedding, scale: m.embeddingScale, positions: m.decoderPositions, offset: 0)
                .reshaped([b * t, d]), dropout)
        let selfVisibility = AttentionVisibility(batch: b, seqQ: t, seqK: t, keyPadding: targetPadding, causal: true)
        let crossVisibility = AttentionVisibility(batch: b, seqQ: t, seqK: s, keyPadding: sourcePadding, causal: false)
        var decoderLayers: [DecoderLayerActivations] = []
        for layer in m.decoder.layers {
            let (y, a) = layer.trainingForward(
                h, selfVisibility: selfVisibility, bias: decoderBias, memory: memory, crossVisibility: crossVisibility, dropout: dropout,
                compute: c)
            decoderLayers.append(a)
            h = y
        }
        var decoderNorm: NormRowStatistics? = nil
        if let norm = m.decoder.finalNorm {
            (h, decoderNorm) = norm.trainingForward(h, compute: c)
            if m.dropoutAfterFinalNorms { (h, decoderFinalDropout) = hiddenDropout(h, dropout) }
        }
        let headInput = m.outputScale == 1 ? h : h * m.outputScale
        let logits = m.lmHead.forward(headInput, compute: c)  // [b t, vocab]
        let ce = TrainingOps.softmaxCrossEntropy(logits: logits, labels: labels, compute: c)
        return (
            ce.loss,
            Seq2SeqActivations(
                sourceIDs: batch.inputIDs.flatMap { $0 }, targetIDs: decoderInput.flatMap { $0 }, encoderLayers: encoderLayers,
                encoderNorm: encoderNorm, memoryShape: memory.shape, decoderLayers: decoderLayers, decoderNorm: decoderNorm,
                headInput: headInput, logitsGradient: ce.gradient, encoderEmbeddingDropout: encoderEmbeddingDropout,
                decoderEmbeddingDropout: decoderEmbeddingDropout, encoderFinalDropout: encoderFinalDropout, decoderFinalDropout: decoderFinalDropout)
        )
    }

    /// Every parameter's gradient (a set shaped as `parameters`).
    static func backward(
        _ m: Seq2SeqTrainingParts, _ s: Seq2SeqActivations, parameters: ParameterSet, names: Seq2SeqParameterNames, compute c: Compute
    ) -> ParameterSet {
        var grads = parameters.zerosLike(compute: c)
        var dOut = m.lmHead.backward(
            input: s.headInput, outputGradient: s.logitsGradient,
            names: LinearParameterNames(parts: [(names.head, names.headBias, m.lmHead.outFeatures)]),
            into: &grads, compute: c)!
        if m.outputScale != 1 { dOut *= m.outputScale }
        var dH = dOut
        if let norm = m.decoder.finalNorm, let stats = s.decoderNorm, let n = names.decoderFinalNorm {
            dH = norm.backward(stats, outputGradient: dropoutBackward(dOut, s.decoderFinalDropout), names: n, into: &grads, compute: c)
        }
        var dMemory = Tensor.zeros(s.memoryShape, compute: c)
        var dDecoderTable: Tensor? = nil
        for i in stride(from: m.decoder.layers.count - 1, through: 0, by: -1) {
            let r = m.decoder.layers[i].backward(s.decoderLayers[i], outputGradient: dH, names: names.decoderLayers[i], into: &grads, compute: c)
            dH = r.input
            if let dm = r.memory { dMemory.add(dm, compute: c) }
            if let db = r.positions.biasTable { if dDecoderTable == nil { dDecoderTable = db } else { dDecoderTable! += db } }
        }
        if let dDecoderTable, let name = names.decoderTable { grads.modify(name) { $0 += dDecoderTable } }
        dH = dropoutBackward(dH, s.decoderEmbeddingDropout)
        if m.embeddingScale != 1 { dH *= m.embeddingScale }
        m.decoderEmbedding.backward(
            ids: s.targetIDs, outputGradient: dH, name: names.decoderEmbedding, paddingIndex: names.paddingIndex, into: &grads, compute: c)
        var dX = dMemory
        if let norm = m.encoder.finalNorm, let stats = s.encoderNorm, let n = names.encoderFinalNorm {
            dX = norm.backward(stats, outputGradient: dropoutBackward(dMemory, s.encoderFinalDropout), names: n, into: &grads, compute: c)
        }
        var dEncoderTable: Tensor? = nil
        for i in stride(from: m.encoder.layers.count - 1, through: 0, by: -1) {
            let r = m.encoder.layers[i].backward(s.encoderLayers[i], outputGradient: dX, names: names.encoderLayers[i], into: &grads, compute: c)
            dX = r.input
            if let db = r.positions.biasTable { if dEncoderTable == nil { dEncoderTable = db } else { dEncoderTable! += db } }
        }
        if let dEncoderTable, let name = names.encoderTable { grads.modify(name) { $0 += dEncoderTable } }
        dX = dropoutBackward(dX, s.encoderEmbeddingDropout)
        if m.embeddingScale != 1 { dX *= m.embeddingScale }
        m.encoderEmbedding.backward(
            ids: s.sourceIDs, outputGradient: dX, name: names.encoderEmbedding, paddingIndex: names.paddingIndex, into: &grads, compute: c)
        return grads
    }
}
