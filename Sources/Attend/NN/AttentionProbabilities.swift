// Attention probabilities for inspection (transformers' `output_attentions`): the softmax of
// one layer's scaled scores, recomputed from that layer's queries and keys the materialized
// way. The fused kernels never form these probabilities, so nothing changes for a forward
// pass that does not ask for them; a layer that is asked pays its Q/K projection again plus
// `2 * batch * heads * seq² * headDim` flops and `batch * heads * seq²` floats.
import Foundation

extension MultiHeadAttention {
    /// Self-attention probabilities of token rows `x` `[batch * seq, d]` forming a padded
    /// batch (`rows` uniform): `[batch, heads, seq, seq]`, row = query, column = key. Padded
    /// keys get exactly 0; a query whose keys are all padding gets a row of zeros (its
    /// attention output is zero too). `relative` adds BERT's `relative_key` terms.
    func attentionProbabilities(rows x: Tensor, _ rows: TokenRows, relative: RelativeKeyPositions?, compute: Compute) -> Tensor {
        let seq = rows.uniformLength ?? 0
        let batch = rows.lengths.count
        let d = innerDim, dh = headDim, h = heads
        precondition(rows.uniformLength != nil && x.shape == [rows.total, modelDim], "attentionProbabilities: rows must form a padded batch")
        var out = Tensor.zeros([batch, h, seq, seq])
        if batch == 0 || seq == 0 { return out }
        let qk = inProjection(x, outputs: 0..<(2 * d), compute: compute)  // [T, 2d]: queries, keys
        let scale = Double(self.scale ?? 1 / Float(dh).squareRoot())
        let m = relative?.maxPositions ?? 0
        let distance = relative?.distance.scalars ?? []
        qk.withUnsafeBufferPointer { q in
            out.withUnsafeMutableBufferPointer { o in
                let base = o.baseAddress!
                parallelFor(batch * h, threads: compute.threads) { item in
                    let b = item / h, head = item % h
                    let pad = rows.keyPadding?[b]
                    var scores = [Double](repeating: 0, count: seq)
                    for l in 0..<seq {
                        let qRow = (b * seq + l) * 2 * d + head * dh
                        var top = -Double.infinity
                        for r in 0..<seq {
                            if pad?[r] == false {
                                scores[r] = -.infinity
                                continue
                            }
                            let kRow = (b * seq + r) * 2 * d + d + head * dh
                            var s = 0.0
                            for c in 0..<dh { s += Double(q[qRow + c]) * Double(q[kRow + c]) }
                            if let relative {
                                // score(l, r) += q_l · E[l - r + M - 1] (+ k_r · E[...] for key-query).
                                let e = (l - r + m - 1) * dh
                                for c in 0..<dh { s += Double(q[qRow + c]) * Double(distance[e + c]) }
                                if relative.keyQuery {
                                    for c in 0..<dh { s += Double(q[kRow + c]) * Double(distance[e + c]) }
                                }
                            }
                            scores[r] = s * scale
                            top = max(top, scores[r])
                        }
                        let row = base + ((b * h + head) * seq + l) * seq
                        guard top > -.infinity else { continue }  // every key is padding: zeros
                        var sum = 0.0
                        for r in 0..<seq {
                            scores[r] = scores[r] == -.infinity ? 0 : Foundation.exp(scores[r] - top)
                            sum += scores[r]
                        }
                        for r in 0..<seq { row[r] = Float(scores[r] / sum) }
                    }
                }
            }
        }
        return out
    }
}

extension EncoderLayer {
    /// This layer's self-attention probabilities for its input `x` (token rows of a padded
    /// batch): `[batch, heads, seq, seq]` (see ``MultiHeadAttention``'s inspection path).
    /// A pre-LN layer attends over `Norm(x)`, a post-LN one over `x`.
    func attentionProbabilities(rows x: Tensor, _ rows: TokenRows, compute: Compute) -> Tensor {
        let input = placement == .pre ? attentionNorm(x, compute: compute) : x
        return selfAttention.attentionProbabilities(rows: input, rows, relative: relativePositions, compute: compute)
    }
}
