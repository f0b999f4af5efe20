// Attention probabilities for inspection (transformers' `output_attentions`): the softmax of
// one layer's scaled scores, recomputed the materialized way from that layer's queries and
// keys, with its masks and position terms (padding, causal, T5's relative bias, ALiBi, Shaw,
// BERT's relative_key, grouped-query heads). The fused kernels never form these
// probabilities, so nothing changes for a forward pass that does not ask for them; a layer
// that is asked pays its Q/K projection again (or reads the Q and K its kernel read) plus
// `2 * batch * heads * seqQ * seqK * headDim` flops and `batch * heads * seqQ * seqK` floats.
import Foundation

/// The probabilities of the attention problem `p` over `query` and `key` (read through `p`'s
/// layouts, grouped K/V heads included): `[batch, heads, seqQ, seqK]`, row = query, column =
/// key. Scores are formed in Double as the oracle forms them, `scale * q·k + bias`, plus
/// BERT's `relative` terms (`scale * (q·E + k·E)`) when given; masked keys (causal, padding)
/// get exactly 0, and a query that sees no key gets a row of zeros (its attention output is
/// zero too). Cost: `2 * batch * heads * seqQ * seqK * headDim` flops, parallel over batch x heads.
func attentionProbabilities(
    _ p: AttentionProblem, query: Tensor, key: Tensor, relative: RelativeKeyPositions? = nil, threads: Int
) -> Tensor {
    let (sq, sk, h, dh) = (p.seqQ, p.seqK, p.heads, p.headDim)
    var out = Tensor.zeros([p.batch, h, sq, sk])
    if p.batch == 0 || h == 0 || sq == 0 || sk == 0 { return out }
    precondition(relative.map { $0.distance.shape[1] == dh } ?? true, "attentionProbabilities: relative table width must be the head size \(dh)")
    let scale = Double(p.scale)
    let m = relative?.maxPositions ?? 0
    let distance = relative?.distance.scalars ?? []
    let shaw = p.bias.shaw
    let shawKeys = shaw?.keys.scalars ?? []
    let tableBias = p.bias.isDistanceTable
    query.withUnsafeBufferPointer { q in
        key.withUnsafeBufferPointer { k in
            out.withUnsafeMutableBufferPointer { o in
                let base = o.baseAddress!
                parallelFor(p.batch * h, threads: threads) { item in
                    let b = item / h, head = item % h
                    let pad = p.mask.keyPadding?[b]
                    var scores = [Double](repeating: 0, count: sk)
                    for i in 0..<sq {
                        let qRow = p.q.offset(b, head) + i * p.q.rowStride
                        var top = -Double.infinity
                        for j in 0..<sk {
                            if !p.visible(i, j) || pad?[j] == false {
                                scores[j] = -.infinity
                                continue
                            }
                            let kRow = p.k.offset(b, head) + j * p.k.rowStride
                            var s = 0.0
                            for c in 0..<dh { s += Double(q[qRow + c]) * Double(k[kRow + c]) }
                            if let relative {
                                // score(i, j) += q_i · E[i - j + M - 1] (+ k_j · E[...] for key-query).
                                let e = (i - j + m - 1) * dh
                                for c in 0..<dh { s += Double(q[qRow + c]) * Double(distance[e + c]) }
                                if relative.keyQuery {
                                    for c in 0..<dh { s += Double(k[kRow + c]) * Double(distance[e + c]) }
                                }
                            }
                            s *= scale
                            let rel = j - i - p.mask.queryStart
                            if tableBias { s += Double(p.bias.value(head: head, relative: rel)) }
                            if let shaw {
                                let e = (min(max(rel, -shaw.clip), shaw.clip) + shaw.clip) * dh
                                var t = 0.0
                                for c in 0..<dh { t += Double(q[qRow + c]) * Double(shawKeys[e + c]) }
                                s += scale * t
                            }
                            scores[j] = s
                            top = max(top, s)
                        }
                        let row = base + ((b * h + head) * sq + i) * sk
                        guard top > -.infinity else { continue }  // no visible key: zeros
                        var sum = 0.0
                        for j in 0..<sk {
                            scores[j] = scores[j] == -.infinity ? 0 : Foundation.exp(scores[j] - top)
                            sum += scores[j]
                        }
                        for j in 0..<sk { row[j] = Float(scores[j] / sum) }
                    }
                }
            }
        }
    }
    return out
}

extension MultiHeadAttention {
    /// Attention probabilities of queries from token rows `x` `[batch * seqQ, d]` over keys
    /// from `memory` `[batch * seqK, d]` (cross-attention), or from `x` itself when `memory`
    /// is nil (self-attention, seqK = seqQ): `[batch, heads, seqQ, seqK]`, with `mask` and
    /// `bias` as the fused call applies them and BERT's `relative` positions (self-attention
    /// only). Recomputes the query and key projections: `2 (seqQ + seqK) batch d inner` flops
    /// more than the probabilities themselves.
    func attentionProbabilities(
        rows x: Tensor, memory: Tensor? = nil, batch: Int, seqQ: Int, seqK: Int, mask: AttentionMask,
        bias: AttentionBias, relative: RelativeKeyPositions? = nil, compute: Compute
    ) -> Tensor {
        let d = innerDim, dh = headDim
        precondition(
            x.shape == [batch * seqQ, modelDim] && (memory?.shape ?? [batch * seqK, modelDim]) == [batch * seqK, modelDim]
                && (memory != nil || seqK == seqQ),
            "attentionProbabilities: rows \(x.shape) and memory \(memory?.shape ?? []) do not form a batch of \(batch) x \(seqQ) (x \(seqK) keys)")
        precondition(memory == nil || relative == nil, "attentionProbabilities: relative_key positions are for self-attention")
        let query: Tensor, key: Tensor
        let q: HeadLayout, k: HeadLayout
        if let memory {
            query = inProjection(x, outputs: 0..<d, compute: compute)  // [b * sq, d]
            key = inProjection(memory, outputs: d..<(2 * d), compute: compute)  // [b * sk, d]
            q = HeadLayout(base: 0, batchStride: seqQ * d, headStride: dh, rowStride: d)
            k = HeadLayout(base: 0, batchStride: seqK * d, headStride: dh, rowStride: d)
        } else {
            query = inProjection(x, outputs: 0..<(2 * d), compute: compute)  // [T, 2d]: queries, keys
            key = query
            q = HeadLayout(base: 0, batchStride: seqQ * 2 * d, headStride: dh, rowStride: 2 * d)
            k = HeadLayout(base: d, batchStride: seqQ * 2 * d, headStride: dh, rowStride: 2 * d)
        }
        let p = AttentionProblem(
            batch: batch, seqQ: seqQ, seqK: seqK, heads: heads, headDim: dh, q: q, k: k, v: k, o: q,
            counts: (query.count, key.count, key.count, query.count), mask: mask, bias: bias, scale: scale)
        return Attend.attentionProbabilities(p, query: query, key: key, relative: relative, threads: compute.threads)
    }

    /// Self-attention probabilities of token rows `x` `[batch * seq, d]` forming a padded
    /// batch (`rows` uniform): `[batch, heads, seq, seq]` (see
    /// ``attentionProbabilities(rows:memory:batch:seqQ:seqK:mask:bias:relative:compute:)``).
    func attentionProbabilities(
        rows x: Tensor, _ rows: TokenRows, bias: AttentionBias = .none, relative: RelativeKeyPositions?, compute: Compute
    ) -> Tensor {
        precondition(rows.uniformLength != nil && x.shape == [rows.total, modelDim], "attentionProbabilities: rows must form a padded batch")
        let seq = rows.uniformLength ?? 0
        return attentionProbabilities(
            rows: x, batch: rows.lengths.count, seqQ: seq, seqK: seq, mask: AttentionMask(keyPadding: rows.keyPadding), bias: bias,
            relative: relative, compute: compute)
    }
}

extension EncoderLayer {
    /// This layer's self-attention probabilities for its input `x` (token rows of a padded
    /// batch), with `bias` on the scores: `[batch, heads, seq, seq]` (see
    /// ``MultiHeadAttention``'s inspection path). A pre-LN layer attends over `Norm(x)`, a
    /// post-LN one over `x`.
    func attentionProbabilities(rows x: Tensor, _ rows: TokenRows, bias: AttentionBias = .none, compute: Compute) -> Tensor {
        let input = placement == .pre ? attentionNorm(x, compute: compute) : x
        return selfAttention.attentionProbabilities(rows: input, rows, bias: bias, relative: relativePositions, compute: compute)
    }
}

/// Which layers' attention probabilities a forward pass returns, checked against the layer
/// count: throws ``ModelInputError`` naming `model` and the first index out of `0..<count`.
func checkAttentionLayers(_ layers: Set<Int>, count: Int, _ what: String) throws(ModelInputError) {
    if let bad = layers.sorted().first(where: { !(0..<count).contains($0) }) {
        throw ModelInputError("\(what) asks for layer \(bad); there are layers 0..<\(count)")
    }
}
