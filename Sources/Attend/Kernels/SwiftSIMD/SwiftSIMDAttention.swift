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

    static func axpy(_ alpha: Double, _ y: UnsafePointer<Float>, _ acc: inout [Double], _ n: Int) {
        acc.withUnsafeMutableBufferPointer { a in axpy(alpha, y, a.baseAddress!, n) }
    }

    /// Row softmax in Double: `softmax(x * scale + mask)`, the same rules as the C kernel
    /// (all -inf gives zeros, any NaN gives NaN).
    static func softmaxRows(
        rows: Int, n: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        scale: Float, mask: UnsafePointer<Float>?, maskRowStride: Int
    ) {
        for r in 0..<rows {
            var t = [Double](repeating: 0, count: n)
            var m = -Double.infinity
            var nan = false
            for j in 0..<n {
                var v = Double(x[r * n + j] * scale)
                if let mask { v += Double(mask[r * maskRowStride + j]) }
                t[j] = v
                nan = nan || v.isNaN
                m = max(m, v)
            }
            if nan || m == -.infinity {
                for j in 0..<n { y[r * n + j] = nan ? .nan : 0 }
                continue
            }
            var sum = 0.0
            for j in 0..<n {
                t[j] = Foundation.exp(t[j] - m)
                sum += t[j]
            }
            for j in 0..<n { y[r * n + j] = Float(t[j] / sum) }
        }
    }
}
