import Foundation

extension SwiftSIMDKernels {
    /// Attention the textbook way, one query row at a time: all scores of the row in Double
    /// (`scale * q·k + bias`, `-inf` where masked), max-subtracted softmax in Double, then the
    /// probability-weighted sum of the values. The oracle for the fused C kernel, and the
    /// `.swiftSIMD` backend. Memory: O(seqK) per row. Parallel over batch x heads.
    static func attention(
        _ p: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, output: inout Tensor, threads: Int
    ) {
        let d = p.headDim
        let shaw = p.bias.shaw
        func shawBucket(_ i: Int, _ j: Int, _ clip: Int) -> Int {
            min(max(j - (i + p.mask.queryStart), -clip), clip) + clip
        }
        query.withUnsafeBufferPointer { q in
            key.withUnsafeBufferPointer { k in
                value.withUnsafeBufferPointer { v in
                    output.withUnsafeMutableBufferPointer { o in
                        let qb = q.baseAddress!, ob = o.baseAddress!
                        guard let kb = k.baseAddress, let vb = v.baseAddress else { return }
                        parallelFor(p.batch * p.heads, threads: threads) { bh in
                            let b = bh / p.heads, h = bh % p.heads
                            var scores = [Double](repeating: 0, count: p.seqK)
                            var acc = [Double](repeating: 0, count: d)
                            for i in 0..<p.seqQ {
                                let qi = qb + p.q.offset(b, h) + i * p.q.rowStride
                                var maxScore = -Double.infinity
                                for j in 0..<p.seqK {
                                    let masked = !p.visible(i, j) || (p.mask.keyPadding.map { !$0[b][j] } ?? false)
                                    if masked {
                                        scores[j] = -.infinity
                                        continue
                                    }
                                    let kj = kb + p.k.offset(b, h) + j * p.k.rowStride
                                    var s = Double(p.scale) * dot(qi, kj, d)
                                    s += Double(p.bias.value(head: h, relative: j - i - p.mask.queryStart))
                                    if let shaw {
                                        let c = shawBucket(i, j, shaw.clip)
                                        shaw.keys.withUnsafeBufferPointer { ak in s += Double(p.scale) * dot(qi, ak.baseAddress! + c * d, d) }
                                    }
                                    scores[j] = s
                                    maxScore = max(maxScore, s)
                                }
                                for c in 0..<d { acc[c] = 0 }
                                var sum = 0.0
                                if maxScore > -.infinity {
                                    for j in 0..<p.seqK where scores[j] > -.infinity {
                                        let w = Foundation.exp(scores[j] - maxScore)
                                        sum += w
                                        let vj = vb + p.v.offset(b, h) + j * p.v.rowStride
                                        axpy(w, vj, &acc, d)
                                        if let shaw {
                                            let c = shawBucket(i, j, shaw.clip)
                                            shaw.values.withUnsafeBufferPointer { av in axpy(w, av.baseAddress! + c * d, &acc, d) }
                                        }
                                    }
                                }
                                let oi = ob + p.o.offset(b, h) + i * p.o.rowStride
                                for c in 0..<d { oi[c] = sum > 0 ? Float(acc[c] / sum) : 0 }
                            }
                        }
                    }
                }
            }
        }
    }

    /// One attention head on raw strided buffers, the way the fused C kernel's contract states
    /// it (`ck_attention_head` in attend_kernels.h), computed like ``attention(_:query:key:value:output:threads:)``:
    /// per query, every score in Double (`scale * q·k + keyBias[j] + relBias[i - j + relBiasZero]
    /// + shawQK[i * W + c(i, j)]`, `-inf` where causal hides key j, i.e. `j > i + causalOffset`,
    /// or the sliding window does, i.e. `window > 0` and `i + causalOffset - j >= window`),
    /// a max-subtracted softmax in Double and the weighted sum of `v_j + shawV[c(i, j)]`; a
    /// query whose scores are all `-inf` gets zeros. Shaw buckets:
    /// `c(i, j) = clamp(j - (i + causalOffset), -shawClip, shawClip) + shawClip`, `W = 2 shawClip + 1`.
    /// Cost: 4 * seqQ * seqK * headDim flops in Double; memory O(seqK + headDim).
    static func attentionHead(
        seqQ: Int, seqK: Int, headDim d: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
        v: UnsafePointer<Float>, ldv: Int, o: UnsafeMutablePointer<Float>, ldo: Int, scale: Float,
        causal: Bool, causalOffset: Int, keyBias: UnsafePointer<Float>?, relBias: UnsafePointer<Float>?,
        relBiasZero: Int, shawClip: Int, shawQK: UnsafePointer<Float>?, shawV: UnsafePointer<Float>?, window: Int = 0
    ) {
        let w = 2 * shawClip + 1
        var scores = [Double](repeating: 0, count: seqK)
        let acc = UnsafeMutablePointer<Double>.allocate(capacity: d + 1)
        defer { acc.deallocate() }
        for i in 0..<seqQ {
            let qi = q + i * ldq
            var maxScore = -Double.infinity
            for j in 0..<seqK {
                if (causal && j > i + causalOffset) || (window > 0 && i + causalOffset - j >= window) {
                    scores[j] = -.infinity
                    continue
                }
                var s = Double(scale) * dot(qi, k + j * ldk, d)
                if let keyBias { s += Double(keyBias[j]) }
                if let relBias { s += Double(relBias[i - j + relBiasZero]) }
                if shawClip > 0, let shawQK {
                    let c = min(max(j - (i + causalOffset), -shawClip), shawClip) + shawClip
                    s += Double(shawQK[i * w + c])
                }
                scores[j] = s
                maxScore = max(maxScore, s)
            }
            acc.initialize(repeating: 0, count: d + 1)
            var sum = 0.0
            if maxScore > -.infinity {
                for j in 0..<seqK where scores[j] > -.infinity {
                    let p = Foundation.exp(scores[j] - maxScore)
                    sum += p
                    axpy(p, v + j * ldv, acc, d)
                    if shawClip > 0, let shawV {
                        let c = min(max(j - (i + causalOffset), -shawClip), shawClip) + shawClip
                        axpy(p, shawV + c * d, acc, d)
                    }
                }
            }
            let oi = o + i * ldo
            for c in 0..<d { oi[c] = sum > 0 ? Float(acc[c] / sum) : 0 }
        }
    }

    static func axpy(_ alpha: Double, _ y: UnsafePointer<Float>, _ acc: inout [Double], _ n: Int) {
        acc.withUnsafeMutableBufferPointer { a in axpy(alpha, y, a.baseAddress!, n) }
    }

    /// Row softmax in Double: `softmax(x * scale + mask)`, the same rules as the C kernel
    /// (all -inf gives zeros, any NaN gives NaN), on packed rows (row stride `n`).
    static func softmaxRows(
        rows: Int, n: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        scale: Float, mask: UnsafePointer<Float>?, maskRowStride: Int
    ) {
        softmaxRows(rows: rows, n: n, x: x, ldx: n, y: y, ldy: n, scale: scale, mask: mask, maskRowStride: maskRowStride)
    }

    /// Row softmax in Double with row strides `ldx` and `ldy` (in floats); `y` may alias `x`
    /// with the same stride (each row is read completely before it is written).
    static func softmaxRows(
        rows: Int, n: Int, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
        scale: Float, mask: UnsafePointer<Float>?, maskRowStride: Int
    ) {
        for r in 0..<rows {
            var t = [Double](repeating: 0, count: n)
            var m = -Double.infinity
            var nan = false
            for j in 0..<n {
                var v = Double(x[r * ldx + j] * scale)
                if let mask { v += Double(mask[r * maskRowStride + j]) }
                t[j] = v
                nan = nan || v.isNaN
                m = max(m, v)
            }
            if nan || m == -.infinity {
                for j in 0..<n { y[r * ldy + j] = nan ? .nan : 0 }
                continue
            }
            var sum = 0.0
            for j in 0..<n {
                t[j] = Foundation.exp(t[j] - m)
                sum += t[j]
            }
            for j in 0..<n { y[r * ldy + j] = Float(t[j] / sum) }
        }
    }
}
