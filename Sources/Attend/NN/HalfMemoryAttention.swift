// Cross-attention of an int8-weight model over its encoder memory kept in bfloat16: the
// memory's keys and values are the one large read of a decoding step besides the weights (at
// t5-small's shape, 512 keys x 6 layers: 12.6 MB of float32 per token against 38.5 MB of int8
// weights), so an int8 model keeps them at half the bytes (any model when asked,
// `MemoryPrecision.bfloat16`), laid out so that both products are
// 16-bit matrix-vector products (`ck_w16_gemv`) reading one head's block in one sequential run.

/// How a decoder keeps an encoder memory's cross-attention keys and values while it decodes
/// (``MultiHeadAttention/keysValues(of:precision:compute:)``, ``Seq2SeqModel/memoryPrecision``).
/// At t5-small's shape with a 512-token source those keys and values are 12.6 MB of float32 a
/// decoding step reads beside the weights (76.9 MB in BF16, 38.5 MB in int8), so their width
/// shows in the decoding speed of a model with narrow weights.
public enum MemoryPrecision: Sendable, Equatable {
    /// bfloat16 when the attention's in-projection holds int8 weights (an approximation
    /// already), else float32: a float32 or 16-bit model then matches transformers on the same
    /// weights in float32 (1e-4), and an int8 one reads half the memory bytes.
    case automatic
    /// float32 whatever the weights.
    case float32
    /// Rounded to bfloat16 (to nearest even) once, read as such by every decoding step:
    /// half the bytes, about 3 significant digits per key and value (a relative error up to
    /// 2^-9 before the scores' softmax), with float32's exponent range.
    case bfloat16
}

/// A fixed memory's keys and values rounded to bfloat16 (to nearest, ties to even), head by
/// head: per batch row `b` and head `h`, the keys `[seqK, headDim]` (block `b * heads + h` of
/// ``keys``) and the values transposed, `[headDim, seqK]` (block `b * heads + h` of
/// ``valuesT``), so the scores of a query are `K q` and its output `Vᵀ p`, two products
/// against a 16-bit row-major matrix. Memory: `2 * batch * seqK * 2 * heads * headDim` bytes,
/// half of the float32 keys and values. Immutable.
struct HalfKeysValues: Sendable {
    let batch: Int, heads: Int, headDim: Int, seqK: Int
    /// `[batch * heads * seqK, headDim]`.
    let keys: HalfMatrix
    /// `[batch * heads * headDim, seqK]`.
    let valuesT: HalfMatrix

    /// From a K/V projection `kv` `[batch * seqK, 2 * heads * headDim]` (rows batch-major, keys
    /// in the first half of each row, as ``AttentionKV/append(_:steps:)`` takes it).
    /// Cost: one pass over `kv`, a transposing write of the values.
    init(_ kv: Tensor, batch: Int, seqK: Int, heads: Int, headDim: Int) {
        let inner = heads * headDim, w = 2 * inner
        precondition(
            batch >= 1 && seqK >= 1 && kv.shape == [batch * seqK, w],
            "HalfKeysValues: \(kv.shape) is not [\(batch) x \(seqK), \(w)] (\(heads) heads of \(headDim))")
        (self.batch, self.heads, self.headDim, self.seqK) = (batch, heads, headDim, seqK)
        let blocks = batch * heads
        var keys: HalfMatrix? = nil, values: HalfMatrix? = nil
        kv.withUnsafeBufferPointer { src in
            let s = src.baseAddress!
            keys = HalfMatrix.owned(.bf16, rows: blocks * seqK, cols: headDim) { dst in
                for b in 0..<batch {
                    for h in 0..<heads {
                        let to = dst + (b * heads + h) * seqK * headDim
                        for t in 0..<seqK {
                            let from = s + (b * seqK + t) * w + h * headDim
                            for c in 0..<headDim { to[t * headDim + c] = HalfType.bfloat16Bits(from[c]) }
                        }
                    }
                }
            }
            values = HalfMatrix.owned(.bf16, rows: blocks * headDim, cols: seqK) { dst in
                for b in 0..<batch {
                    for h in 0..<heads {
                        let to = dst + (b * heads + h) * headDim * seqK
                        for t in 0..<seqK {
                            let from = s + (b * seqK + t) * w + inner + h * headDim
                            for c in 0..<headDim { to[c * seqK + t] = HalfType.bfloat16Bits(from[c]) }
                        }
                    }
                }
            }
        }
        self.keys = keys!
        self.valuesT = values!
    }

    /// Head `h` of batch row `b`: its keys `[seqK, headDim]` and transposed values
    /// `[headDim, seqK]`, views into this memory (no copy).
    func head(_ b: Int, _ h: Int) -> (keys: HalfMatrix, valuesT: HalfMatrix) {
        let block = b * heads + h
        return (
            HalfMatrix(type: .bf16, rows: seqK, cols: headDim, base: keys.base + block * seqK * headDim, owner: keys.owner),
            HalfMatrix(type: .bf16, rows: headDim, cols: seqK, base: valuesT.base + block * headDim * seqK, owner: valuesT.owner)
        )
    }
}

/// `softmax(Q Kᵀ * scale + padding) V` per batch row and head over a bfloat16 memory: `query`
/// `[batch, seqQ, heads * headDim]` (heads side by side in each row) into `out` of the same
/// shape. `keyPadding` (`[batch][seqK]`, true = a real key) masks keys out; a query that sees no
/// key gets zeros. Per head, queries go in groups of up to ``halfGEMVMaxRows``: the scores by
/// one 16-bit product against the keys (``halfWeightGEMM``), the row softmax (scale and padding
/// applied there), the outputs by one 16-bit product against the transposed values. A query's
/// result does not depend on how many queries share its call (the 16-bit GEMV gives every row
/// its one-row sums), so decoding one token at a time equals teacher forcing bit for bit.
/// Cost: `4 * batch * heads * seqQ * seqK * headDim` flops; one pass over the memory's 16-bit
/// bytes per group of queries; parallel over batch rows x heads when there is enough work.
func halfMemoryAttention(
    query: Tensor, memory m: HalfKeysValues, keyPadding: [[Bool]]?, scale: Float, into out: inout Tensor, compute: Compute
) {
    let (b, inner, seqK, dh) = (m.batch, m.heads * m.headDim, m.seqK, m.headDim)
    precondition(
        query.rank == 3 && query.shape[0] == b && query.shape[2] == inner && out.shape == query.shape,
        "halfMemoryAttention: query \(query.shape), output \(out.shape), memory of \(b) rows x \(m.heads) heads of \(dh)")
    if let keyPadding {
        precondition(
            keyPadding.count == b && keyPadding.allSatisfy { $0.count == seqK },
            "halfMemoryAttention: key padding \(keyPadding.count) rows for \(b) x \(seqK) keys")
    }
    let seqQ = query.shape[1], items = b * m.heads
    if seqQ == 0 { return }
    // Key padding as an additive row per batch row (0 or -inf), read by the softmax.
    let keyBias: [Float]? = keyPadding.map { rows in rows.flatMap { $0.map { $0 ? 0 : -.infinity } } }
    let group = max(1, halfGEMVMaxRows)
    let one = compute.serial
    let work = 4 * seqQ * seqK * dh * items
    let parts = max(1, min(compute.threads, items, work / minimumGEMVFlopsPerThread))
    let perPart = (items + parts - 1) / parts
    let noBias: [Float] = []
    (keyBias ?? noBias).withUnsafeBufferPointer { kp in
        let biasBase = keyBias == nil ? nil : kp.baseAddress
        query.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { op in
                let (qb, ob) = (qp.baseAddress!, op.baseAddress!)
                parallelFor(parts, threads: parts) { part in
                    let scores = UnsafeMutablePointer<Float>.allocate(capacity: group * seqK)
                    defer { scores.deallocate() }
                    for item in (part * perPart)..<min(items, (part + 1) * perPart) {
                        let (bi, h) = (item / m.heads, item % m.heads)
                        let (keys, valuesT) = m.head(bi, h)
                        for i0 in stride(from: 0, to: seqQ, by: group) {
                            let rows = min(group, seqQ - i0), at = (bi * seqQ + i0) * inner + h * dh
                            halfWeightGEMM(
                                a: qb + at, lda: inner, m: rows, weight: keys, columns: 0..<seqK, c: scores, ldc: seqK, beta: 0, compute: one)
                            softmaxRows(
                                backend: compute.backend, rows: rows, n: seqK, x: scores, y: scores, scale: scale,
                                mask: biasBase.map { $0 + bi * seqK }, maskRowStride: 0, threads: 1)
                            halfWeightGEMM(
                                a: scores, lda: seqK, m: rows, weight: valuesT, columns: 0..<dh, c: ob + at, ldc: inner, beta: 0, compute: one)
                        }
                    }
                }
            }
        }
    }
}
