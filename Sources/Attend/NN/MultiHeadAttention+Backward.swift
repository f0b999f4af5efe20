// Training forward and backward of multi-head attention, self (one fused QKV projection) and
// cross (queries from the decoder, keys and values from the encoder's memory). The forward
// keeps the projections and the attention probabilities; the backward returns the inputs'
// gradients (and the learned position tables': T5's score bias, Shaw's key and value
// tables) and adds every projection's gradients by name. Rotary positions (RoPE) rotate the
// queries and keys after the projection; the backward rotates their gradients back.


/// The Hugging Face names of an attention's projections: the fused input projection's blocks
/// (query, key, value) and the output projection.
package struct AttentionParameterNames: Sendable {
    package var input: LinearParameterNames
    package var output: LinearParameterNames

    /// `query`, `key`, `value` and `out` prefixes, each `inner` (out: `d`) rows, with biases
    /// when `bias`.
    package init(query: String, key: String, value: String, out: String, inner: Int, modelDim: Int, bias: Bool) {
        input = LinearParameterNames(parts: [query, key, value].map { ($0 + ".weight", bias ? $0 + ".bias" : nil, inner) })
        output = LinearParameterNames(out, rows: modelDim, bias: bias)
    }
}

/// Which keys each query sees: `batch` sequences of `seqQ` queries and `seqK` keys, padded
/// keys hidden (`keyPadding[b][j] == false`), and, when `causal`, keys after the query.
package struct AttentionVisibility: Sendable {
    package var batch: Int
    package var seqQ: Int
    package var seqK: Int
    package var keyPadding: [[Bool]]?
    package var causal: Bool

    /// `batch` sequences of `seqQ` queries over `seqK` keys.
    package init(batch: Int, seqQ: Int, seqK: Int, keyPadding: [[Bool]]? = nil, causal: Bool) {
        (self.batch, self.seqQ, self.seqK, self.keyPadding, self.causal) = (batch, seqQ, seqK, keyPadding, causal)
    }

    var mask: AttentionMask { AttentionMask(causal: causal, keyPadding: keyPadding) }
}

/// What the attention backward needs: the inputs of the projections, the problem (its
/// operands are the projections' outputs, read in place), the attention's output and each
/// query's log-sum-exp.
package struct AttentionActivations {
    /// The queries' input `[batch * seqQ, d]`.
    var input: Tensor
    /// Cross-attention: the memory `[batch * seqK, d]`; nil for self-attention.
    var memory: Tensor?
    var problem: AttentionTrainingProblem
    var context: Tensor  // [batch * seqQ, inner]
    var lse: Tensor  // [batch, heads, seqQ]
    /// The rotation applied to the queries and keys (self-attention with RoPE), or nil.
    var rotary: RotaryEmbedding? = nil
}

/// The gradients of an attention's learned position tables, when its bias had any.
package struct AttentionPositionGradients: Sendable {
    /// T5: the bias table's `[buckets, heads]`.
    package var biasTable: Tensor?
    /// Shaw: the key table's `[2 clip + 1, headDim]`.
    package var shawKeys: Tensor?
    /// Shaw: the value table's `[2 clip + 1, headDim]`.
    package var shawValues: Tensor?
}

extension MultiHeadAttention {
    /// Self-attention over rows `x` `[batch * seq, d]` with `bias` on the scores (T5's
    /// bucketed table, ALiBi, Shaw's tables, or none) and, with `rotary`, the queries and keys
    /// rotated by their positions `0..<seq` (RoPE), keeping the activations: the fused QKV
    /// projection `[T, 3 inner]` is read in place by the fused training kernel. `dropout`: on
    /// the attention probabilities (recomputed in the backward from its hash). Returns
    /// `[batch * seq, d]`.
    func trainingForward(
        selfAttention x: Tensor, _ visibility: AttentionVisibility, bias: AttentionBias = .none, rotary: RotaryEmbedding? = nil,
        dropout: AttentionDropout? = nil,
        compute: Compute
    ) -> (Tensor, AttentionActivations) {
        let inner = innerDim
        var qkv = inProjection.forward(x, compute: compute)  // [T, 3 inner]
        if let rotary {
            precondition(rotary.headDim == headDim, "MultiHeadAttention: rotary head size \(rotary.headDim) for heads of \(headDim)")
            for column in [0, inner] { rotary.rotate(rows: &qkv, seq: visibility.seqQ, column: column, heads: heads) }
        }
        var (y, saved) = finish(
            x, memory: nil, q: AttentionOperand(qkv, column: 0), k: AttentionOperand(qkv, column: inner), v: AttentionOperand(qkv, column: 2 * inner),
            visibility, bias: bias, dropout: dropout, compute: compute)
        saved.rotary = rotary
        return (y, saved)
    }

    /// Cross-attention of rows `x` `[batch * seqQ, d]` over `memory` `[batch * seqK, d]`,
    /// keeping the activations (`dropout` on the probabilities). Returns `[batch * seqQ, d]`.
    func trainingForward(
        cross x: Tensor, memory: Tensor, _ visibility: AttentionVisibility, dropout: AttentionDropout? = nil, compute: Compute
    ) -> (Tensor, AttentionActivations) {
        let inner = innerDim
        let q = inProjection.forward(x, outputs: 0..<inner, compute: compute)  // [T, inner]
        let kv = inProjection.forward(memory, outputs: inner..<(3 * inner), compute: compute)  // [Tm, 2 inner]
        return finish(
            x, memory: memory, q: AttentionOperand(q), k: AttentionOperand(kv, column: 0), v: AttentionOperand(kv, column: inner),
            visibility, bias: .none, dropout: dropout, compute: compute)
    }

    private func finish(
        _ x: Tensor, memory: Tensor?, q: AttentionOperand, k: AttentionOperand, v: AttentionOperand, _ vis: AttentionVisibility,
        bias: AttentionBias, dropout: AttentionDropout?, compute: Compute
    ) -> (Tensor, AttentionActivations) {
        let problem = AttentionTrainingProblem(
            q: q, k: k, v: v, batch: vis.batch, heads: heads, kvHeads: heads, headDim: headDim, seqQ: vis.seqQ, seqK: vis.seqK,
            mask: vis.mask, bias: bias, scale: resolvedScale, dropout: dropout)
        let (context, lse) = attentionForwardTraining(problem, compute: compute)
        let y = outProjection.forward(context, compute: compute)
        return (y, AttentionActivations(input: x, memory: memory, problem: problem, context: context, lse: lse))
    }

    /// The score scale: `scale`, or `1/sqrt(headDim)`.
    var resolvedScale: Float { scale ?? 1 / Float(headDim).squareRoot() }

    /// The backward: the queries' input gradient `[batch * seqQ, d]`, the memory's
    /// (cross-attention), and the learned position tables' (T5's bias table, Shaw's key and
    /// value tables, when the forward had them); adds the projections' gradients into `grads`.
    func backward(
        _ s: AttentionActivations, outputGradient dY: Tensor, names: AttentionParameterNames, into grads: inout ParameterSet, compute: Compute
    ) -> (input: Tensor, memory: Tensor?, positions: AttentionPositionGradients) {
        let inner = innerDim
        let dContext = outProjection.backward(input: s.context, outputGradient: dY, names: names.output, into: &grads, compute: compute)!
        let g = attentionBackward(s.problem, out: s.context, lse: s.lse, dOut: dContext, compute: compute)
        let positions = AttentionPositionGradients(biasTable: g.biasTable, shawKeys: g.shawKeys, shawValues: g.shawValues)
        guard let memory = s.memory else {
            // q, k and v share the fused projection, so their gradients share one [T, 3 inner] tensor.
            var dQKV = g.query.tensor
            if let rotary = s.rotary {
                // The rotation is orthogonal: the gradient before it is the gradient after it rotated back.
                for column in [0, inner] { rotary.rotate(rows: &dQKV, seq: s.problem.seqQ, column: column, heads: heads, inverse: true) }
            }
            let dX = inProjection.backward(input: s.input, outputGradient: dQKV, names: names.input, into: &grads, compute: compute)!
            return (dX, nil, positions)
        }
        let dX = inProjection.backward(
            input: s.input, outputGradient: g.query.tensor, outputs: 0..<inner, names: names.input, into: &grads, compute: compute)!
        let dM = inProjection.backward(
            input: memory, outputGradient: g.key.tensor, outputs: inner..<(3 * inner), names: names.input, into: &grads, compute: compute)!
        return (dX, dM, positions)
    }
}
