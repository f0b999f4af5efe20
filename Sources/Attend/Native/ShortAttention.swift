internal import CKernels

/// Self-attention of a fused projection `qkv` `[T, 3d]` (queries, keys, values side by side;
/// head h at columns h*headDim of each third) into `[T, d]`, for sequences lying in row
/// ranges: sequence i is rows `starts[i] ..< starts[i] + lengths[i]` (rows of no sequence are
/// left unwritten), as BERT's unpadded batches stack them. Per sequence and head, through
/// `ck_f32_attention_short`: `softmax(Q Kᵀ * scale + keyBias) V`, where key j of sequence i
/// gets `-inf` when `keyPadding[i][j]` is false; a query whose keys are all masked gets
/// zeros. Cost: `4 * heads * Σ length² * headDim` flops (keys padded to a vector only) plus
/// one transposed copy of each head's keys; scratch per item O(length * headDim).
func shortSelfAttention(
    qkv: Tensor, starts: [Int], lengths: [Int], heads: Int, headDim: Int, keyPadding: [[Bool]]?,
    scale: Float, variant: KernelVariant, threads: Int
) -> Tensor {
    let d = heads * headDim, dh = headDim
    let rows = qkv.rank == 2 ? qkv.shape[0] : 0
    precondition(qkv.rank == 2 && qkv.shape[1] == 3 * d, "shortSelfAttention: qkv \(qkv.shape) must be [rows, \(3 * d)]")
    precondition(
        starts.count == lengths.count && zip(starts, lengths).allSatisfy { $0 >= 0 && $1 >= 0 && $0 + $1 <= rows },
        "shortSelfAttention: sequences (starts \(starts.prefix(8)), lengths \(lengths.prefix(8))) must lie in \(rows) rows")
    precondition(
        keyPadding == nil || (keyPadding!.count == lengths.count && zip(keyPadding!, lengths).allSatisfy { $0.count == $1 }),
        "shortSelfAttention: keyPadding must have one row per sequence, of its length")
    var out = Tensor.uninitialized([rows, d])
    if rows == 0 || heads == 0 || lengths.isEmpty { return out }
    let kern = variant.kernels
    let ld3 = 3 * d
    // Key padding as additive biases, one row per sequence (offsets into one buffer).
    var biasStart: [Int] = [], total = 0
    for n in lengths {
        biasStart.append(total)
        total += n
    }
    let keyBias = TensorStorage(uninitializedCount: max(total, 1))
    if let keyPadding {
        for (i, pad) in keyPadding.enumerated() {
            for (j, real) in pad.enumerated() { keyBias.base[biasStart[i] + j] = real ? 0 : -.infinity }
        }
    }
    qkv.withUnsafeBufferPointer { qp in
        out.withUnsafeMutableBufferPointer { op in
            withExtendedLifetime(keyBias) {
                let src = qp.baseAddress!, dst = op.baseAddress!
                parallelFor(lengths.count * heads, threads: threads) { item in
                    let b = item / heads, h = item % heads
                    let s = lengths[b]
                    if s == 0 { return }
                    let wsCount = ck_f32_attention_short_workspace(kern, s, s, dh)
                    let ws = UnsafeMutablePointer<Float>.allocate(capacity: wsCount)
                    defer { ws.deallocate() }
                    let q = src + starts[b] * ld3 + h * dh
                    var head = ck_attention_rows(
                        seq_q: s, seq_k: s, head_dim: dh, q: q, ldq: ld3, k: q + d, ldk: ld3, v: q + 2 * d, ldv: ld3,
                        o: dst + starts[b] * d + h * dh, ldo: d, scale: scale, causal: 0, causal_offset: 0,
                        key_bias: keyPadding == nil ? nil : UnsafePointer(keyBias.base + biasStart[b]),
                        rel_bias: nil, rel_bias_zero: 0, window: 0)
                    ck_f32_attention_short(kern, &head, ws)
                }
            }
        }
    }
    return out
}
