// Training forward and backward of the encoder and decoder blocks, post-LN and pre-LN, on
// token rows `[batch * seq, d]`. The forward returns the block's output and a value holding
// every sublayer's activations (the caller owns it and drops it after the backward).

/// The Hugging Face names of an encoder block's parameters.
package struct EncoderLayerParameterNames: Sendable {
    package var attention: AttentionParameterNames
    package var attentionNorm: NormParameterNames
    package var feedForward: FeedForwardParameterNames
    package var feedForwardNorm: NormParameterNames

    /// The names of each sublayer's parameters.
    package init(
        attention: AttentionParameterNames, attentionNorm: NormParameterNames, feedForward: FeedForwardParameterNames,
        feedForwardNorm: NormParameterNames
    ) {
        (self.attention, self.attentionNorm, self.feedForward, self.feedForwardNorm) = (attention, attentionNorm, feedForward, feedForwardNorm)
    }
}

/// The Hugging Face names of a decoder block's parameters.
struct DecoderLayerParameterNames: Sendable {
    var selfAttention: AttentionParameterNames
    var selfAttentionNorm: NormParameterNames
    var crossAttention: AttentionParameterNames?
    var crossAttentionNorm: NormParameterNames?
    var feedForward: FeedForwardParameterNames
    var feedForwardNorm: NormParameterNames
}

/// An encoder block's activations (and the hidden dropout's masks on its two branches).
package struct EncoderLayerActivations {
    var attention: AttentionActivations
    var attentionNorm: NormRowStatistics
    var feedForward: FeedForwardActivations
    var feedForwardNorm: NormRowStatistics
    var attentionDropout: Tensor? = nil
    var feedForwardDropout: Tensor? = nil
}

/// A decoder block's activations.
struct DecoderLayerActivations {
    var selfAttention: AttentionActivations
    var selfAttentionNorm: NormRowStatistics
    var crossAttention: AttentionActivations?
    var crossAttentionNorm: NormRowStatistics?
    var feedForward: FeedForwardActivations
    var feedForwardNorm: NormRowStatistics
    var selfAttentionDropout: Tensor? = nil
    var crossAttentionDropout: Tensor? = nil
    var feedForwardDropout: Tensor? = nil
}

extension EncoderLayer {
    /// The block on rows `x` `[batch * seq, d]` (`visibility` says which keys each query
    /// sees; `bias` is added to the scores: T5's table, ALiBi, Shaw's tables; `rotary`
    /// rotates queries and keys by position, RoPE), keeping its activations.
    /// `dropout`: on the attention probabilities, the hidden dropout on each branch's output
    /// before its residual sum, the activation dropout inside the feed-forward (none without
    /// a sampler).
    package func trainingForward(
        _ x: Tensor, _ visibility: AttentionVisibility, bias: AttentionBias = .none, rotary: RotaryEmbedding? = nil,
        dropout: DropoutSampler? = nil, compute: Compute
    ) -> (Tensor, EncoderLayerActivations) {
        precondition(relativePositions == nil, "EncoderLayer: training with relative_key positions is not supported")
        switch placement {
        case .post:
            let (a0, att) = selfAttention.trainingForward(
                selfAttention: x, visibility, bias: bias, rotary: rotary, dropout: dropout?.attentionProbabilities(), compute: compute)
            let (a, ma) = hiddenDropout(a0, dropout)
            let (h, n1) = attentionNorm.trainingForward(a, residual: x, compute: compute)  // Norm(x + a)
            let (f0, ff) = feedForward.trainingForward(h, dropout: dropout, compute: compute)
            let (f, mf) = hiddenDropout(f0, dropout)
            let (y, n2) = feedForwardNorm.trainingForward(f, residual: h, compute: compute)  // Norm(h + f)
            return (
                y,
                EncoderLayerActivations(
                    attention: att, attentionNorm: n1, feedForward: ff, feedForwardNorm: n2, attentionDropout: ma, feedForwardDropout: mf)
            )
        case .pre:
            let (n, n1) = attentionNorm.trainingForward(x, compute: compute)
            let (a0, att) = selfAttention.trainingForward(
                selfAttention: n, visibility, bias: bias, rotary: rotary, dropout: dropout?.attentionProbabilities(), compute: compute)
            let (a, ma) = hiddenDropout(a0, dropout)
            let h = Tensor.sum(x, a, compute: compute)
            let (m, n2) = feedForwardNorm.trainingForward(h, compute: compute)
            let (f0, ff) = feedForward.trainingForward(m, dropout: dropout, compute: compute)
            let (f, mf) = hiddenDropout(f0, dropout)
            return (
                Tensor.sum(h, f, compute: compute),
                EncoderLayerActivations(
                    attention: att, attentionNorm: n1, feedForward: ff, feedForwardNorm: n2, attentionDropout: ma, feedForwardDropout: mf)
            )
        }
    }

    /// The input's gradient `[batch * seq, d]` and the learned position tables' (T5's bias
    /// table, Shaw's tables, when the forward had them), from the output's `dY`; adds every
    /// parameter's gradient into `grads`.
    package func backward(
        _ s: EncoderLayerActivations, outputGradient dY: Tensor, names: EncoderLayerParameterNames, into grads: inout ParameterSet, compute: Compute
    ) -> (input: Tensor, positions: AttentionPositionGradients) {
        switch placement {
        case .post:
            let dT2 = feedForwardNorm.backward(s.feedForwardNorm, outputGradient: dY, names: names.feedForwardNorm, into: &grads, compute: compute)
            var dH = feedForward.backward(
                s.feedForward, outputGradient: dropoutBackward(dT2, s.feedForwardDropout), names: names.feedForward, into: &grads, compute: compute)
            dH.add(dT2, compute: compute)
            let dT1 = attentionNorm.backward(s.attentionNorm, outputGradient: dH, names: names.attentionNorm, into: &grads, compute: compute)
            var (dX, _, dBias) = selfAttention.backward(
                s.attention, outputGradient: dropoutBackward(dT1, s.attentionDropout), names: names.attention, into: &grads, compute: compute)
            dX.add(dT1, compute: compute)
            return (dX, dBias)
        case .pre:
            let dM = feedForward.backward(
                s.feedForward, outputGradient: dropoutBackward(dY, s.feedForwardDropout), names: names.feedForward, into: &grads, compute: compute)
            var dH = feedForwardNorm.backward(s.feedForwardNorm, outputGradient: dM, names: names.feedForwardNorm, into: &grads, compute: compute)
            dH.add(dY, compute: compute)
            let (dN, _, dBias) = selfAttention.backward(
                s.attention, outputGradient: dropoutBackward(dH, s.attentionDropout), names: names.attention, into: &grads, compute: compute)
            var dX = attentionNorm.backward(s.attentionNorm, outputGradient: dN, names: names.attentionNorm, into: &grads, compute: compute)
            dX.add(dH, compute: compute)
            return (dX, dBias)
        }
    }
}

extension DecoderLayer {
    /// The block on target rows `x` `[batch * seq, d]`: causal self-attention (`selfVisibility`,
    /// `bias`: T5's table), cross-attention over `memory` `[batch * seqMemory, d]`
    /// (`crossVisibility`), feed-forward; keeps its activations. `dropout`: on each attention's
    /// probabilities, the hidden dropout on each branch's output, the activation dropout
    /// inside the feed-forward.
    func trainingForward(
        _ x: Tensor, selfVisibility: AttentionVisibility, bias: AttentionBias = .none, memory: Tensor?, crossVisibility: AttentionVisibility?,
        dropout: DropoutSampler? = nil, compute: Compute
    ) -> (Tensor, DecoderLayerActivations) {
        func cross(_ h: Tensor) -> (Tensor, AttentionActivations) {
            guard let crossAttention, let memory, let crossVisibility else {
                preconditionFailure("DecoderLayer: this layer has cross-attention but no memory was given")
            }
            return crossAttention.trainingForward(
                cross: h, memory: memory, crossVisibility, dropout: dropout?.attentionProbabilities(), compute: compute)
        }
        switch placement {
        case .post:
            let (a0, sa) = selfAttention.trainingForward(
                selfAttention: x, selfVisibility, bias: bias, dropout: dropout?.attentionProbabilities(), compute: compute)
            let (a, ma) = hiddenDropout(a0, dropout)
            var (h, n1) = selfAttentionNorm.trainingForward(a, residual: x, compute: compute)
            var ca: AttentionActivations? = nil, n2: NormRowStatistics? = nil, mc: Tensor? = nil
            if let crossAttentionNorm {
                let (c0, act) = cross(h)
                let c: Tensor
                (c, mc) = hiddenDropout(c0, dropout)
                ca = act
                let (h2, stats) = crossAttentionNorm.trainingForward(c, residual: h, compute: compute)
                (h, n2) = (h2, stats)
            }
            let (f0, ff) = feedForward.trainingForward(h, dropout: dropout, compute: compute)
            let (f, mf) = hiddenDropout(f0, dropout)
            let (y, n3) = feedForwardNorm.trainingForward(f, residual: h, compute: compute)
            return (
                y,
                DecoderLayerActivations(
                    selfAttention: sa, selfAttentionNorm: n1, crossAttention: ca, crossAttentionNorm: n2, feedForward: ff, feedForwardNorm: n3,
                    selfAttentionDropout: ma, crossAttentionDropout: mc, feedForwardDropout: mf)
            )
        case .pre:
            let (n, n1) = selfAttentionNorm.trainingForward(x, compute: compute)
            let (a0, sa) = selfAttention.trainingForward(
                selfAttention: n, selfVisibility, bias: bias, dropout: dropout?.attentionProbabilities(), compute: compute)
            let (a, ma) = hiddenDropout(a0, dropout)
            var h = Tensor.sum(x, a, compute: compute)
            var ca: AttentionActivations? = nil, n2: NormRowStatistics? = nil, mc: Tensor? = nil
            if let crossAttentionNorm {
                let (m, stats) = crossAttentionNorm.trainingForward(h, compute: compute)
                let (c0, act) = cross(m)
                let c: Tensor
                (c, mc) = hiddenDropout(c0, dropout)
                (ca, n2) = (act, stats)
                h.add(c, compute: compute)
            }
            let (m, n3) = feedForwardNorm.trainingForward(h, compute: compute)
            let (f0, ff) = feedForward.trainingForward(m, dropout: dropout, compute: compute)
            let (f, mf) = hiddenDropout(f0, dropout)
            return (
                Tensor.sum(h, f, compute: compute),
                DecoderLayerActivations(
                    selfAttention: sa, selfAttentionNorm: n1, crossAttention: ca, crossAttentionNorm: n2, feedForward: ff, feedForwardNorm: n3,
                    selfAttentionDropout: ma, crossAttentionDropout: mc, feedForwardDropout: mf)
            )
        }
    }

    /// The gradients of the input `[batch * seq, d]`, the memory (cross-attention) and the
    /// self-attention's learned position tables, from the output's `dY`; adds every
    /// parameter's gradient.
    func backward(
        _ s: DecoderLayerActivations, outputGradient dY: Tensor, names: DecoderLayerParameterNames, into grads: inout ParameterSet, compute: Compute
    ) -> (input: Tensor, memory: Tensor?, positions: AttentionPositionGradients) {
        var dMemory: Tensor? = nil
        switch placement {
        case .post:
            let dT3 = feedForwardNorm.backward(s.feedForwardNorm, outputGradient: dY, names: names.feedForwardNorm, into: &grads, compute: compute)
            var dH = feedForward.backward(
                s.feedForward, outputGradient: dropoutBackward(dT3, s.feedForwardDropout), names: names.feedForward, into: &grads, compute: compute)
            dH.add(dT3, compute: compute)
            if let crossAttention, let crossAttentionNorm, let ca = s.crossAttention, let n2 = s.crossAttentionNorm,
                let cn = names.crossAttention, let nn = names.crossAttentionNorm
            {
                let dT2 = crossAttentionNorm.backward(n2, outputGradient: dH, names: nn, into: &grads, compute: compute)
                let (dC, dM, _) = crossAttention.backward(
                    ca, outputGradient: dropoutBackward(dT2, s.crossAttentionDropout), names: cn, into: &grads, compute: compute)
                dMemory = dM
                dH = Tensor.sum(dT2, dC, compute: compute)
            }
            let dT1 = selfAttentionNorm.backward(
                s.selfAttentionNorm, outputGradient: dH, names: names.selfAttentionNorm, into: &grads, compute: compute)
            var (dX, _, dBias) = selfAttention.backward(
                s.selfAttention, outputGradient: dropoutBackward(dT1, s.selfAttentionDropout), names: names.selfAttention, into: &grads,
                compute: compute)
            dX.add(dT1, compute: compute)
            return (dX, dMemory, dBias)
        case .pre:
            let dM3 = feedForward.backward(
                s.feedForward, outputGradient: dropoutBackward(dY, s.feedForwardDropout), names: names.feedForward, into: &grads, compute: compute)
            var dH = feedForwardNorm.backward(s.feedForwardNorm, outputGradient: dM3, names: names.feedForwardNorm, into: &grads, compute: compute)
            dH.add(dY, compute: compute)
            if let crossAttention, let crossAttentionNorm, let ca = s.crossAttention, let n2 = s.crossAttentionNorm,
                let cn = names.crossAttention, let nn = names.crossAttentionNorm
            {
                let (dC, dM, _) = crossAttention.backward(
                    ca, outputGradient: dropoutBackward(dH, s.crossAttentionDropout), names: cn, into: &grads, compute: compute)
                dMemory = dM
                dH.add(crossAttentionNorm.backward(n2, outputGradient: dC, names: nn, into: &grads, compute: compute), compute: compute)
            }
            let (dN, _, dBias) = selfAttention.backward(
                s.selfAttention, outputGradient: dropoutBackward(dH, s.selfAttentionDropout), names: names.selfAttention, into: &grads,
                compute: compute)
            var dX = selfAttentionNorm.backward(
                s.selfAttentionNorm, outputGradient: dN, names: names.selfAttentionNorm, into: &grads, compute: compute)
            dX.add(dH, compute: compute)
            return (dX, dMemory, dBias)
        }
    }
}
