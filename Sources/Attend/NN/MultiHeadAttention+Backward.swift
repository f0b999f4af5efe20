// Training forward and backward of multi-head attention, self (one fused QKV projection) and
// cross (queries from the decoder, keys and values from the encoder's memory). The forward
// keeps the projections and the attention probabilities; the backward returns the inputs'
// gradients (and the score bias's, for T5's relative positions) and adds every projection's
// gradients by name.

/// The Hugging Face names of an attention's projections: the fused input projection's blocks
/// (query, key, value) and the output projection.
struct AttentionParameterNames: Sendable {
    var input: LinearParameterNames
    var output: LinearParameterNames

    /// `query`, `key`, `value` and `out` prefixes, each `inner` (out: `d`) rows, with biases
    /// when `bias`.
    init(query: String, key: String, value: String, out: String, inner: Int, modelDim: Int, bias: Bool) {
        input = LinearParameterNames(parts: [query, key, value].map { ($0 + ".weight", bias ? $0 + ".bias" : nil, inner) })
        output = LinearParameterNames(out, rows: modelDim, bias: bias)
    }
}

/// Which keys each query sees: `batch` sequences of `seqQ` queries and `seqK` keys, padded
/// keys hidden (`keyPadding[b][j] == false`), and, when `causal`, keys after the query.
struct AttentionVisibility: Sendable {
    var batch: Int
    var seqQ: Int
    var seqK: Int
    var keyPadding: [[Bool]]?
    var causal: Bool

    var mask: AttentionMask { AttentionMask(causal: causal, keyPadding: keyPadding) }
}

/// What the attention backward needs: the inputs of the projections, the problem (its
/// operands are the projections' outputs, read in place), the attention's output and each
/// query's log-sum-exp.
struct AttentionActivations {
    /// The queries' input `[batch * seqQ, d]`.
    var input: Tensor
    /// Cross-attention: the memory `[batch * seqK, d]`; nil for self-attention.
    var memory: Tensor?
    var problem: AttentionTrainingProblem
    var context: Tensor  // [batch * seqQ, inner]
    var lse: Tensor  // [batch, heads, seqQ]
}

extension MultiHeadAttention {
    /// Self-attention over rows `x` `[batch * seq, d]` with `bias` on the scores (T5's
    /// bucketed table, ALiBi, or none), keeping the activations: the fused QKV projection
    /// `[T, 3 inner]` is read in place by the fused training kernel. `dropout`: on the
    /// attention probabilities (recomputed in the backward from its hash). Returns `[batch * seq, d]`.
    func trainingForward(
        selfAttention x: Tensor, _ visibility: AttentionVisibility, bias: AttentionBias = .none, dropout: AttentionDropout? = nil,
        compute: Compute
    ) -> (Tensor, AttentionActivations) {
        let inner = innerDim
        let qkv = inProjection.forward(x, compute: compute)  // [T, 3 inner]
        return finish(
            x, memory: nil, q: AttentionOperand(qkv, column: 0), k: AttentionOperand(qkv, column: inner), v: AttentionOperand(qkv, column: 2 * inner),
            visibility, bias: bias, dropout: dropout, compute: compute)
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
    /// (cross-attention), and the T5 bias table's `[buckets, heads]` (when the forward had
    /// one); adds the projections' gradients into `grads`.
    func backward(
        _ s: AttentionActivations, outputGradient dY: Tensor, names: AttentionParameterNames, into grads: inout ParameterSet, compute: Compute
    ) -> (input: Tensor, memory: Tensor?, bias: Tensor?) {
        let inner = innerDim
        let dContext = outProjection.backward(input: s.context, outputGradient: dY, names: names.output, into: &grads, compute: compute)!
        let g = attentionBackward(s.problem, out: s.context, lse: s.lse, dOut: dContext, compute: compute)
        guard let memory = s.memory else {
            // q, k and v share the fused projection, so their gradients share one [T, 3 inner] tensor.
            let dX = inProjection.backward(input: s.input, outputGradient: g.query.tensor, names: names.input, into: &grads, compute: compute)!
            return (dX, nil, g.biasTable)
        }
        let dX = inProjection.backward(
            input: s.input, outputGradient: g.query.tensor, outputs: 0..<inner, names: names.input, into: &grads, compute: compute)!
        let dM = inProjection.backward(
            input: memory, outputGradient: g.key.tensor, outputs: inner..<(3 * inner), names: names.input, into: &grads, compute: compute)!
        return (dX, dM, g.biasTable)
    }
}
