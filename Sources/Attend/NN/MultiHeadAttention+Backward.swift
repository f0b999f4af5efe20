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
}

/// What the attention backward needs.
struct AttentionActivations {
    /// The queries' input `[batch * seqQ, d]`.
    var input: Tensor
    /// Cross-attention: the memory `[batch * seqK, d]`; nil for self-attention.
    var memory: Tensor?
    var q: Tensor, k: Tensor, v: Tensor  // [rows, inner]
    var probabilities: Tensor  // [batch, heads, seqQ, seqK]
    var context: Tensor  // [batch * seqQ, inner]
    var visibility: AttentionVisibility
    var hasBias: Bool
}

extension Tensor {
    /// `[T, a] | [T, b] | ...` side by side: `[T, a + b + ...]`.
    static func concatenateColumns(_ parts: [Tensor]) -> Tensor {
        let rows = parts[0].shape[0]
        precondition(parts.allSatisfy { $0.rank == 2 && $0.shape[0] == rows }, "concatenateColumns: shapes \(parts.map(\.shape))")
        let widths = parts.map { $0.shape[1] }, total = widths.reduce(0, +)
        var out = Tensor.zeros([rows, total])
        out.withUnsafeMutableBufferPointer { o in
            var offset = 0
            for (p, w) in zip(parts, widths) {
                p.withUnsafeBufferPointer { s in
                    for r in 0..<rows { for c in 0..<w { o[r * total + offset + c] = s[r * w + c] } }
                }
                offset += w
            }
        }
        return out
    }
}

extension MultiHeadAttention {
    /// Self-attention over rows `x` `[batch * seq, d]` with `bias` `[heads, seq, seq]` added
    /// to the scores (nil: none), keeping the activations. Returns `[batch * seq, d]`.
    func trainingForward(selfAttention x: Tensor, _ visibility: AttentionVisibility, bias: Tensor?, compute: Compute) -> (Tensor, AttentionActivations) {
        let inner = innerDim
        let qkv = inProjection.forward(x, compute: compute)  // [T, 3 inner]
        let q = qkv.columns(0..<inner), k = qkv.columns(inner..<(2 * inner)), v = qkv.columns((2 * inner)..<(3 * inner))
        return finish(x, memory: nil, q: q, k: k, v: v, visibility, bias: bias, compute: compute)
    }

    /// Cross-attention of rows `x` `[batch * seqQ, d]` over `memory` `[batch * seqK, d]`,
    /// keeping the activations. Returns `[batch * seqQ, d]`.
    func trainingForward(cross x: Tensor, memory: Tensor, _ visibility: AttentionVisibility, compute: Compute) -> (Tensor, AttentionActivations) {
        let inner = innerDim
        let q = inProjection.forward(x, outputs: 0..<inner, compute: compute)
        let kv = inProjection.forward(memory, outputs: inner..<(3 * inner), compute: compute)
        return finish(x, memory: memory, q: q, k: kv.columns(0..<inner), v: kv.columns(inner..<(2 * inner)), visibility, bias: nil, compute: compute)
    }

    private func finish(
        _ x: Tensor, memory: Tensor?, q: Tensor, k: Tensor, v: Tensor, _ vis: AttentionVisibility, bias: Tensor?, compute: Compute
    ) -> (Tensor, AttentionActivations) {
        let (context, probs) = InterimOps.attentionForward(
            q: q, k: k, v: v, batch: vis.batch, heads: heads, seqQ: vis.seqQ, seqK: vis.seqK,
            keyPadding: vis.keyPadding, causal: vis.causal, bias: bias, scale: resolvedScale)
        let y = outProjection.forward(context, compute: compute)
        return (y, AttentionActivations(input: x, memory: memory, q: q, k: k, v: v, probabilities: probs, context: context, visibility: vis, hasBias: bias != nil))
    }

    /// The score scale: `scale`, or `1/sqrt(headDim)`.
    var resolvedScale: Float { scale ?? 1 / Float(headDim).squareRoot() }

    /// The backward: the queries' input gradient `[batch * seqQ, d]`, the memory's
    /// (cross-attention), and the score bias's `[heads, seqQ, seqK]` summed over the batch
    /// (when the forward had one); adds the projections' gradients into `grads`.
    func backward(
        _ s: AttentionActivations, outputGradient dY: Tensor, names: AttentionParameterNames, into grads: inout ParameterSet, compute: Compute
    ) -> (input: Tensor, memory: Tensor?, bias: Tensor?) {
        let inner = innerDim, vis = s.visibility
        let dContext = outProjection.backward(input: s.context, outputGradient: dY, names: names.output, into: &grads, compute: compute)!
        let (dQ, dK, dV, dBias) = InterimOps.attentionBackward(
            q: s.q, k: s.k, v: s.v, probabilities: s.probabilities, outputGradient: dContext,
            batch: vis.batch, heads: heads, seqQ: vis.seqQ, seqK: vis.seqK, scale: resolvedScale, wantsBias: s.hasBias)
        guard let memory = s.memory else {
            let dQKV = Tensor.concatenateColumns([dQ, dK, dV])
            let dX = inProjection.backward(input: s.input, outputGradient: dQKV, names: names.input, into: &grads, compute: compute)!
            return (dX, nil, dBias)
        }
        let dX = inProjection.backward(input: s.input, outputGradient: dQ, outputs: 0..<inner, names: names.input, into: &grads, compute: compute)!
        let dM = inProjection.backward(
            input: memory, outputGradient: Tensor.concatenateColumns([dK, dV]), outputs: inner..<(3 * inner), names: names.input,
            into: &grads, compute: compute)!
        return (dX, dM, dBias)
    }
}
