internal import CKernels

// Self-attention for short sequences, on the GEMM micro-kernel.
//
// The fused attention kernel streams key blocks with an online softmax, which is what long
// sequences need (no seq x seq matrix). For a sentence of a few dozen tokens its fixed costs
// per head (query blocks of 64 rows, packing, rescaling) dominate: at seq 32 and head size 32
// it reaches ~10% of the FMA peak. Here each (batch row, head) instead computes its small
// score matrix S = Q Kᵀ with the micro-kernel, a masked row softmax with the vectorized row
// kernel, and O = P V with the micro-kernel again. All operands are packed into zero-padded
// panels, so every micro-kernel call is a full tile; only the real part of O is copied out.

/// The longest sequence for which ``shortSelfAttention`` is used: at 128 tokens it is still
/// faster than the fused kernel on AVX2, and its per-head scratch (S is seq²) stays in L2.
let shortAttentionMaxSeq = 128

/// Self-attention of a fused projection `qkv` `[T, 3d]` (queries, keys, values side by side;
/// head h at columns h*headDim of each third) into `[T, d]`, for sequences lying in row
/// ranges: sequence i is rows `starts[i] ..< starts[i] + lengths[i]` (rows of no sequence are
/// left unwritten). Per sequence and head: `softmax(Q Kᵀ * scale + keyBias) V`, where key j
/// of sequence i gets `-inf` when `keyPadding[i][j]` is false. A query whose keys are all
/// masked gets zeros. Cost: `4 * heads * Σ length² * headDim` flops (on zero-padded tiles)
/// plus packing of Q, K, V and P; scratch per item O(length² + length * headDim).
func shortSelfAttention(qkv: Tensor, starts: [Int], lengths: [Int], heads: Int, headDim: Int, keyPadding: [[Bool]]?,
                        scale: Float, variant: KernelVariant, threads: Int) -> Tensor {
    let d = heads * headDim, dh = headDim
    let rows = qkv.rank == 2 ? qkv.shape[0] : 0
    precondition(qkv.rank == 2 && qkv.shape[1] == 3 * d, "shortSelfAttention: qkv \(qkv.shape) must be [rows, \(3 * d)]")
    precondition(starts.count == lengths.count && zip(starts, lengths).allSatisfy { $0 >= 0 && $1 >= 0 && $0 + $1 <= rows },
                 "shortSelfAttention: sequences (starts \(starts.prefix(8)), lengths \(lengths.prefix(8))) must lie in \(rows) rows")
    precondition(keyPadding == nil || (keyPadding!.count == lengths.count && zip(keyPadding!, lengths).allSatisfy { $0.count == $1 }),
                 "shortSelfAttention: keyPadding must have one row per sequence, of its length")
    var out = Tensor.uninitialized([rows, d])
    if rows == 0 || heads == 0 || lengths.isEmpty { return out }
    let kern = variant.kernels
    let g = kern.pointee.gemm
    let mr = Int(g.mr), nr = Int(g.nr)
    let ukr = kern.pointee.gemm_ukr!
    let softmax = kern.pointee.softmax_rows!
    let ld3 = 3 * d
    let dN = (dh + nr - 1) / nr * nr  // head dims padded for B panels (columns of O)
    func up16(_ x: Int) -> Int { (x + 15) / 16 * 16 }

    qkv.withUnsafeBufferPointer { qp in
        out.withUnsafeMutableBufferPointer { op in
            let src = qp.baseAddress!, dst = op.baseAddress!
            parallelFor(lengths.count * heads, threads: threads) { item in
                let b = item / heads, h = item % heads
                let s = lengths[b]
                if s == 0 { return }
                let sM = (s + mr - 1) / mr * mr  // rows padded for A panels
                let sN = (s + nr - 1) / nr * nr  // keys padded for B panels (columns of S)
                // Scratch, in floats (each region 64-byte aligned).
                let qSize = up16(sM * dh), kSize = up16(sN * dh), sSize = up16(sM * sN), pSize = up16(sM * s)
                let vSize = up16(dN * s), oSize = up16(sM * dN), biasSize = up16(s)
                let scratch = qSize + kSize + sSize + pSize + vSize + oSize + biasSize
                let raw = UnsafeMutableRawPointer.allocate(byteCount: scratch * 4, alignment: 64)
                defer { raw.deallocate() }
                let q = raw.bindMemory(to: Float.self, capacity: scratch)
                let k = q + qSize, sc = k + kSize, p = sc + sSize, v = p + pSize, o = v + vSize, bias = o + oSize
                let rowBase = src + starts[b] * ld3 + h * dh  // query i at rowBase + i*ld3
                // Q as A panels (kc = dh): q[ir*dh + t*mr + i] = Q[ir+i][t].
                for ir in stride(from: 0, to: sM, by: mr) {
                    let panel = q + ir * dh
                    for i in 0..<mr {
                        if ir + i < s {
                            let row = rowBase + (ir + i) * ld3
                            for t in 0..<dh { panel[t * mr + i] = row[t] }
                        } else {
                            for t in 0..<dh { panel[t * mr + i] = 0 }
                        }
                    }
                }
                // K as B panels (k = dh, n = keys): k[jp*dh + t*nr + jj] = K[jp+jj][t].
                for jp in stride(from: 0, to: sN, by: nr) {
                    let panel = k + jp * dh
                    for jj in 0..<nr {
                        if jp + jj < s {
                            let row = rowBase + d + (jp + jj) * ld3
                            for t in 0..<dh { panel[t * nr + jj] = row[t] }
                        } else {
                            for t in 0..<dh { panel[t * nr + jj] = 0 }
                        }
                    }
                }
                // S = Q Kᵀ, [sM, sN], full tiles only.
                for ir in stride(from: 0, to: sM, by: mr) {
                    for jp in stride(from: 0, to: sN, by: nr) {
                        ukr(dh, q + ir * dh, k + jp * dh, sc + ir * sN + jp, sN, 1, 0)
                    }
                }
                // P = softmax(S * scale + bias) over the s real keys of each real query.
                var masked = false
                if let pad = keyPadding?[b] {
                    for j in 0..<s {
                        bias[j] = pad[j] ? 0 : -.infinity
                        masked = masked || !pad[j]
                    }
                }
                softmax(s, s, sc, sN, sc, sN, scale, masked ? UnsafePointer(bias) : nil, 0)
                // P as A panels (kc = keys): p[ir*s + j*mr + i] = P[ir+i][j].
                for ir in stride(from: 0, to: sM, by: mr) {
                    let panel = p + ir * s
                    for i in 0..<mr {
                        if ir + i < s {
                            let row = sc + (ir + i) * sN
                            for j in 0..<s { panel[j * mr + i] = row[j] }
                        } else {
                            for j in 0..<s { panel[j * mr + i] = 0 }
                        }
                    }
                }
                // V as B panels (k = keys, n = head dims): v[cp*s + j*nr + cc] = V[j][cp+cc].
                for cp in stride(from: 0, to: dN, by: nr) {
                    let panel = v + cp * s
                    let cols = min(nr, dh - cp)
                    for j in 0..<s {
                        let row = rowBase + 2 * d + j * ld3 + cp
                        let to = panel + j * nr
                        for cc in 0..<cols { to[cc] = row[cc] }
                        for cc in cols..<nr { to[cc] = 0 }
                    }
                }
                // O = P V, [sM, dN]; copy the real part into the output rows of this head.
                for ir in stride(from: 0, to: sM, by: mr) {
                    for cp in stride(from: 0, to: dN, by: nr) {
                        ukr(s, p + ir * s, v + cp * s, o + ir * dN + cp, dN, 1, 0)
                    }
                }
                for i in 0..<s {
                    (dst + (starts[b] + i) * d + h * dh).update(from: o + i * dN, count: dh)
                }
            }
        }
    }
    return out
}
