import Foundation

// Attention with BERT's relative positions (materialized: these models are rare and short).
// Like the rest of Native/, this is where pointers are touched; the model code above works
// with Tensor values.

/// Multi-head self-attention with Hugging Face BERT's relative positions
/// (`position_embedding_type` `relative_key` or `relative_key_query`):
///
///     score(l, r) = (q_l·k_r + q_l·E[l-r+M-1] [+ k_r·E[l-r+M-1]]) * scale,  masked keys -inf
///
/// per batch row and head, then a row softmax and the weighted sum of values. `qkv` is the
/// fused projection `[batch*seq, 3d]` (queries, keys, values side by side), `distance` the
/// layer's `distance_embedding` `[2M-1, headDim]` with M = max positions (seq <= M). A query
/// whose keys are all masked gets zeros. Returns `[batch*seq, d]`.
///
/// Cost: `4 * batch * heads * seq² * headDim` flops plus `2 * seq * (2 seq - 1) * headDim` per
/// term and head; memory `seq * seq` (+ `seq * (2 seq - 1)` per term) floats per head in
/// flight (the score matrix is materialized: these models are rare and short).
func relativeSelfAttention(
    qkv: Tensor, batch: Int, seq: Int, heads: Int, headDim: Int, distance: Tensor, maxPositions: Int,
    keyQuery: Bool, keyPadding: [[Bool]]?, scale: Float, compute: Compute
) -> Tensor {
    let d = heads * headDim, s = seq
    precondition(qkv.shape == [batch * seq, 3 * d], "relativeSelfAttention: qkv \(qkv.shape) must be [\(batch * seq), \(3 * d)]")
    precondition(
        distance.shape == [2 * maxPositions - 1, headDim] && seq <= maxPositions,
        "relativeSelfAttention: distance table \(distance.shape) must be [\(2 * maxPositions - 1), \(headDim)] and seq \(seq) <= \(maxPositions)")
    var out = Tensor.zeros([batch * seq, d])
    if batch == 0 || seq == 0 { return out }
    let serial = compute.serial
    let w = 2 * s - 1  // relative distances -(s-1) ... s-1
    qkv.withUnsafeBufferPointer { qp in
        distance.withUnsafeBufferPointer { ep in
            out.withUnsafeMutableBufferPointer { op in
                // Rows (M-1)-(s-1) ... (M-1)+(s-1) of the table: distance l - r = j - (s-1).
                let e = UnsafeBufferPointer(rebasing: ep[((maxPositions - s) * headDim)...])
                let eOp = MatrixOperand(rows: headDim, cols: w, ld: headDim, transposed: true)
                parallelFor(batch * heads, threads: compute.threads) { item in
                    let b = item / heads, h = item % heads
                    let base = b * s * 3 * d + h * headDim
                    let q = UnsafeBufferPointer(rebasing: qp[base...])
                    let k = UnsafeBufferPointer(rebasing: qp[(base + d)...])
                    let v = UnsafeBufferPointer(rebasing: qp[(base + 2 * d)...])
                    let rowsOp = MatrixOperand(rows: s, cols: headDim, ld: 3 * d, transposed: false)
                    var scores = [Float](repeating: 0, count: s * s)
                    var rel = [Float](repeating: 0, count: s * w)
                    scores.withUnsafeMutableBufferPointer { sc in
                        gemm(
                            alpha: 1, a: q, rowsOp, b: k, MatrixOperand(rows: headDim, cols: s, ld: 3 * d, transposed: true),
                            beta: 0, c: sc, ldc: s, compute: serial)
                        rel.withUnsafeMutableBufferPointer { rp in
                            // Query term: scores[l][r] += q_l · E[l - r].
                            gemm(alpha: 1, a: q, rowsOp, b: e, eOp, beta: 0, c: rp, ldc: w, compute: serial)
                            for l in 0..<s {
                                for r in 0..<s { sc[l * s + r] += rp[l * w + (l - r + s - 1)] }
                            }
                            if keyQuery {
                                // Key term: scores[l][r] += k_r · E[l - r].
                                gemm(alpha: 1, a: k, rowsOp, b: e, eOp, beta: 0, c: rp, ldc: w, compute: serial)
                                for l in 0..<s {
                                    for r in 0..<s { sc[l * s + r] += rp[r * w + (l - r + s - 1)] }
                                }
                            }
                        }
                        // Scale, mask, softmax per row (a row with every key masked becomes zeros).
                        let pad = keyPadding?[b]
                        for l in 0..<s {
                            let row = sc.baseAddress! + l * s
                            var m = -Float.infinity
                            for r in 0..<s {
                                let x = pad?[r] == false ? -Float.infinity : row[r] * scale
                                row[r] = x
                                m = max(m, x)
                            }
                            if m == -.infinity {
                                for r in 0..<s { row[r] = 0 }
                                continue
                            }
                            var sum: Float = 0
                            for r in 0..<s {
                                let y = (row[r] - m).isFinite ? expf(row[r] - m) : 0
                                row[r] = y
                                sum += y
                            }
                            let inv = 1 / sum
                            for r in 0..<s { row[r] *= inv }
                        }
                        let o = UnsafeMutableBufferPointer(rebasing: op[(b * s * d + h * headDim)...])
                        gemm(
                            alpha: 1, a: UnsafeBufferPointer(sc), MatrixOperand(rows: s, cols: s, ld: s, transposed: false),
                            b: v, MatrixOperand(rows: s, cols: headDim, ld: 3 * d, transposed: false),
                            beta: 0, c: o, ldc: d, compute: serial)
                    }
                }
            }
        }
    }
    return out
}
