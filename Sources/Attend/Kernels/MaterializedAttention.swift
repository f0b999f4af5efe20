/// Attention the memory-hungry way, for comparison with the fused kernel: for each batch
/// row and head, the full `seqQ x seqK` score matrix `Q Kᵀ` (one SGEMM), a row softmax over
/// it, and `P V` (a second SGEMM). Supports the causal mask (with `queryStart`) and the
/// sliding window (`window` > 0: query `i` sees key `j` only if `i + queryStart - j < window`,
/// as ``AttentionMask/window``) but no padding or bias. Same shapes and result as
/// ``scaledDotProductAttention(query:key:value:mask:bias:scale:layout:compute:)``.
///
/// Cost: `4 * batch * heads * seqQ * seqK * headDim` flops whether causal or windowed or not,
/// and `seqQ * seqK` floats of scores (one head at a time).
public func materializedAttention(
    query: Tensor, key: Tensor, value: Tensor, causal: Bool = false, queryStart: Int = 0, window: Int = 0,
    scale: Float? = nil, layout: AttentionLayout = .bshd, compute: Compute = .default
) -> Tensor {
    let p = AttentionProblem(
        query: query, key: key, value: value, mask: AttentionMask(causal: causal, queryStart: queryStart, window: window),
        bias: .none, scale: scale, layout: layout)
    var out = Tensor.zeros(query.shape)
    var scores = Tensor.zeros([p.seqQ, p.seqK])
    for b in 0..<p.batch {
        for h in 0..<p.heads {
            let qOp = MatrixOperand(rows: p.seqQ, cols: p.headDim, ld: p.q.rowStride, transposed: false)
            let kOp = MatrixOperand(rows: p.headDim, cols: p.seqK, ld: p.k.rowStride, transposed: true)
            query.withUnsafeBufferPointer { q in
                key.withUnsafeBufferPointer { k in
                    scores.withUnsafeMutableBufferPointer { s in
                        let qh = UnsafeBufferPointer(rebasing: q[p.q.offset(b, h)...])
                        let kh = UnsafeBufferPointer(rebasing: k[p.k.offset(b, h)...])
                        gemm(alpha: p.scale, a: qh, qOp, b: kh, kOp, beta: 0, c: s, ldc: p.seqK, compute: compute)
                    }
                }
            }
            // Row softmax; a causal or windowed row i covers only its visible keys
            // lo ..< hi, the rest is 0.
            scores.withUnsafeMutableBufferPointer { s in
                let base = s.baseAddress!
                if !causal && window == 0 {
                    softmaxRows(
                        backend: compute.backend, rows: p.seqQ, n: p.seqK, x: base, y: base, scale: 1, mask: nil, maskRowStride: 0,
                        threads: compute.threads)
                    return
                }
                parallelFor(p.seqQ, threads: compute.threads) { i in
                    let row = base + i * p.seqK
                    let hi = causal ? max(0, min(p.seqK, i + queryStart + 1)) : p.seqK
                    let lo = window > 0 ? min(hi, max(0, i + queryStart - window + 1)) : 0
                    softmaxRows(
                        backend: compute.backend, rows: 1, n: hi - lo, x: row + lo, y: row + lo, scale: 1, mask: nil, maskRowStride: 0,
                        threads: 1)
                    for j in 0..<lo { row[j] = 0 }
                    for j in hi..<p.seqK { row[j] = 0 }
                }
            }
            let pOp = MatrixOperand(rows: p.seqQ, cols: p.seqK, ld: p.seqK, transposed: false)
            let vOp = MatrixOperand(rows: p.seqK, cols: p.headDim, ld: p.v.rowStride, transposed: false)
            scores.withUnsafeBufferPointer { s in
                value.withUnsafeBufferPointer { v in
                    out.withUnsafeMutableBufferPointer { o in
                        let vh = UnsafeBufferPointer(rebasing: v[p.v.offset(b, h)...])
                        let oh = UnsafeMutableBufferPointer(rebasing: o[p.o.offset(b, h)...])
                        gemm(alpha: 1, a: s, pOp, b: vh, vOp, beta: 0, c: oh, ldc: p.o.rowStride, compute: compute)
                    }
                }
            }
        }
    }
    return out
}
