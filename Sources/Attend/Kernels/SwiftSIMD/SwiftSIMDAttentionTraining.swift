import Foundation

/// The attention backward the textbook way, in Double with the whole `seqQ x seqK` score
/// matrix materialized: the oracle of the fused training kernels
/// (`attentionForwardTraining(_:compute:)`, `attentionBackward(_:out:lse:dOut:compute:)`
/// and `ck_f32_attention_backward`), and what the finite-difference tests differentiate.
package enum AttentionGradReference {
    /// Shaw relative positions of one head: tables `[W * headDim]` (W = 2 clip + 1), the
    /// bucket of (i, j) being `clamp(j - (i + offset), -clip, clip) + clip`.
    package struct Shaw {
        package var keys: [Double], values: [Double]
        package var clip: Int, offset: Int
        package init(keys: [Double], values: [Double], clip: Int, offset: Int) {
            (self.keys, self.values, self.clip, self.offset) = (keys, values, clip, offset)
        }
        package func bucket(_ i: Int, _ j: Int) -> Int { min(max(j - (i + offset), -clip), clip) + clip }
    }

    /// One head's forward and (with `dOut`) backward.
    package struct Head {
        /// `[seqQ * d]`, `[seqQ]` (`-inf` where a query sees no key).
        package var out: [Double], lse: [Double]
        /// `[seqQ * seqK]`: the probabilities, and dS = P (dP - D) (zero without `dOut`).
        package var p: [Double], ds: [Double]
        /// Gradients `[seqQ * d]`, `[seqK * d]`, `[seqK * d]`; Shaw tables `[W * d]`.
        package var dq: [Double], dk: [Double], dv: [Double], dShawKeys: [Double], dShawValues: [Double]
    }

    /// One head, rows dense: `q` `[seqQ * d]`, `k`, `v` `[seqK * d]`, `bias` `[seqQ * seqK]`
    /// additive (`-inf` = masked), `dOut` `[seqQ * d]`, `dropout` `[seqQ * seqK]` the dropout
    /// factors Z (0 or 1 / (1 - p); nil: all 1, no Shaw with them):
    ///
    ///     s_ij = scale q_i.k_j + bias_ij [+ scale q_i.a^K_c(i,j)],  P = softmax_j s,
    ///     o_i = sum_j P_ij Z_ij (v_j [+ a^V_c(i,j)]),   dS = P (Z dP - rowsum(dO o)),
    ///     dQ = scale dS (K [+ a^K_c]),  dK = scale dS^T Q,  dV = (P Z)^T dO,  d bias = dS.
    ///
    /// Cost: O(seqQ * seqK * d) Double flops, O(seqQ * seqK) memory.
    package static func head(
        seqQ sq: Int, seqK sk: Int, d: Int, scale: Double, q: [Double], k: [Double], v: [Double], bias: [Double],
        shaw: Shaw?, dOut: [Double]?, dropout: [Double]? = nil
    ) -> Head {
        precondition(dropout == nil || shaw == nil, "AttentionGradReference: dropout with Shaw positions")
        let w = shaw.map { 2 * $0.clip + 1 } ?? 0
        var r = Head(
            out: Array(repeating: 0, count: sq * d), lse: Array(repeating: -.infinity, count: sq),
            p: Array(repeating: 0, count: sq * sk), ds: Array(repeating: 0, count: sq * sk),
            dq: Array(repeating: 0, count: sq * d), dk: Array(repeating: 0, count: sk * d), dv: Array(repeating: 0, count: sk * d),
            dShawKeys: Array(repeating: 0, count: w * d), dShawValues: Array(repeating: 0, count: w * d))
        func dot(_ a: [Double], _ ai: Int, _ b: [Double], _ bi: Int) -> Double {
            var s = 0.0
            for c in 0..<d { s += a[ai + c] * b[bi + c] }
            return s
        }
        var s = [Double](repeating: 0, count: sk)
        for i in 0..<sq {
            var m = -Double.infinity
            for j in 0..<sk {
                var x = bias[i * sk + j]
                if x != -.infinity {
                    x += scale * dot(q, i * d, k, j * d)
                    if let shaw { x += scale * dot(q, i * d, shaw.keys, shaw.bucket(i, j) * d) }
                }
                s[j] = x
                m = max(m, x)
            }
            if m == -.infinity { continue }
            var sum = 0.0
            for j in 0..<sk { sum += Foundation.exp(s[j] - m) }
            r.lse[i] = m + Foundation.log(sum)
            for j in 0..<sk {
                let pij = Foundation.exp(s[j] - r.lse[i])
                r.p[i * sk + j] = pij
                let z = dropout?[i * sk + j] ?? 1
                if pij * z == 0 { continue }
                for c in 0..<d {
                    var vv = z * v[j * d + c]
                    if let shaw { vv += shaw.values[shaw.bucket(i, j) * d + c] }
                    r.out[i * d + c] += pij * vv
                }
            }
        }
        guard let dOut else { return r }
        for i in 0..<sq {
            var delta = 0.0
            for c in 0..<d { delta += dOut[i * d + c] * r.out[i * d + c] }
            for j in 0..<sk {
                let pij = r.p[i * sk + j]
                if pij == 0 { continue }
                let z = dropout?[i * sk + j] ?? 1
                var dp = z * dot(dOut, i * d, v, j * d)
                if let shaw { dp += dot(dOut, i * d, shaw.values, shaw.bucket(i, j) * d) }
                let ds = pij * (dp - delta)
                r.ds[i * sk + j] = ds
                for c in 0..<d {
                    r.dq[i * d + c] += scale * ds * k[j * d + c]
                    r.dk[j * d + c] += scale * ds * q[i * d + c]
                    r.dv[j * d + c] += pij * z * dOut[i * d + c]
                }
                if let shaw {
                    let b = shaw.bucket(i, j) * d
                    for c in 0..<d {
                        r.dq[i * d + c] += scale * ds * shaw.keys[b + c]
                        r.dShawKeys[b + c] += scale * ds * q[i * d + c]
                        r.dShawValues[b + c] += pij * dOut[i * d + c]
                    }
                }
            }
        }
        return r
    }

    /// Dense Double inputs of a training problem: `q` `[batch, seqQ, heads, d]`, `k`, `v`
    /// `[batch, seqK, kvHeads, d]`, the T5 table `[buckets, heads]` and Shaw tables `[W, d]`
    /// (BERT `relative_key` as its Shaw key table, see `AttentionTrainingProblem.kernelBias`).
    package struct Inputs {
        package var q: [Double], k: [Double], v: [Double]
        package var table: [Double]?, shawKeys: [Double]?, shawValues: [Double]?
    }

    /// Dense gradients, laid out as `Inputs`.
    package struct Gradients {
        package var q: [Double], k: [Double], v: [Double]
        package var table: [Double]?, shawKeys: [Double]?, shawValues: [Double]?
    }

    /// The operands of `t` read out into Double.
    package static func inputs(_ t: AttentionTrainingProblem) -> Inputs {
        func read(_ o: AttentionOperand, rows: Int, heads: Int) -> [Double] {
            let w = o.tensor.shape[1], x = o.tensor.scalars, n = heads * t.headDim
            var out = [Double](repeating: 0, count: rows * n)
            for r in 0..<rows { for c in 0..<n { out[r * n + c] = Double(x[r * w + o.column + c]) } }
            return out
        }
        var inp = Inputs(
            q: read(t.q, rows: t.batch * t.seqQ, heads: t.heads), k: read(t.k, rows: t.batch * t.seqK, heads: t.kvHeads),
            v: read(t.v, rows: t.batch * t.seqK, heads: t.kvHeads))
        if case .t5(let table, _, _) = t.bias { inp.table = table.scalars.map(Double.init) }
        if let shaw = t.kernelBias.shaw {
            inp.shawKeys = shaw.keys.scalars.map(Double.init)
            inp.shawValues = shaw.values.scalars.map(Double.init)
        }
        return inp
    }

    /// Forward (and with `dOut` `[batch * seqQ * heads * d]`, backward) of the whole problem
    /// on Double inputs: output `[batch * seqQ * heads * d]`, lse `[batch * heads * seqQ]` and
    /// the gradients. K/V head of query head h: `h / (heads / kvHeads)`.
    /// Cost: O(batch * heads * seqQ * seqK * d) Double flops.
    package static func problem(
        _ t: AttentionTrainingProblem, _ x: Inputs, dOut: [Double]?
    ) -> (out: [Double], lse: [Double], gradients: Gradients?) {
        let (nb, nh, kvh, d, sq, sk, g) = (t.batch, t.heads, t.kvHeads, t.headDim, t.seqQ, t.seqK, t.group)
        var out = [Double](repeating: 0, count: nb * sq * nh * d), lse = [Double](repeating: 0, count: nb * nh * sq)
        var gr = Gradients(
            q: Array(repeating: 0, count: x.q.count), k: Array(repeating: 0, count: x.k.count), v: Array(repeating: 0, count: x.v.count),
            table: x.table.map { Array(repeating: 0, count: $0.count) },
            shawKeys: x.shawKeys.map { Array(repeating: 0, count: $0.count) },
            shawValues: x.shawValues.map { Array(repeating: 0, count: $0.count) })
        let qs = t.mask.queryStart
        let kernelBias = t.kernelBias
        var buckets: [Int: Int] = [:]
        func biasValue(_ h: Int, _ rel: Int) -> Double {
            switch t.bias {
            case .t5(let table, let bidirectional, let maxDistance):
                let b = t5RelativePositionBucket(rel, bidirectional: bidirectional, numBuckets: table.shape[0], maxDistance: maxDistance)
                buckets[rel] = b
                return x.table![b * nh + h]
            default: return Double(kernelBias.value(head: h, relative: rel))
            }
        }
        for b in 0..<nb {
            for h in 0..<nh {
                let kh = h / g
                func rows(_ a: [Double], _ seq: Int, _ n: Int, _ hh: Int) -> [Double] {
                    var r = [Double](repeating: 0, count: seq * d)
                    for i in 0..<seq { for c in 0..<d { r[i * d + c] = a[((b * seq + i) * n + hh) * d + c] } }
                    return r
                }
                var bias = [Double](repeating: 0, count: sq * sk)
                for i in 0..<sq {
                    for j in 0..<sk {
                        let hidden = (t.mask.causal && j > i + qs) || (t.mask.keyPadding.map { !$0[b][j] } ?? false)
                        bias[i * sk + j] = hidden ? -.infinity : biasValue(h, j - i - qs)
                    }
                }
                let shaw = x.shawKeys.map { Shaw(keys: $0, values: x.shawValues!, clip: kernelBias.shaw!.clip, offset: qs) }
                // Dropout factors from the counter-based hash (stream position of (b, h, i, j)).
                let z = t.dropout.map { drop in
                    (0..<(sq * sk)).map { Double(drop.factor(counter: UInt64((b * nh + h) * sq * sk + $0))) }
                }
                let r = head(
                    seqQ: sq, seqK: sk, d: d, scale: Double(t.scale), q: rows(x.q, sq, nh, h), k: rows(x.k, sk, kvh, kh),
                    v: rows(x.v, sk, kvh, kh), bias: bias, shaw: shaw, dOut: dOut.map { rows($0, sq, nh, h) }, dropout: z)
                for i in 0..<sq {
                    lse[(b * nh + h) * sq + i] = r.lse[i]
                    for c in 0..<d { out[((b * sq + i) * nh + h) * d + c] = r.out[i * d + c] }
                }
                guard dOut != nil else { continue }
                for i in 0..<sq { for c in 0..<d { gr.q[((b * sq + i) * nh + h) * d + c] += r.dq[i * d + c] } }
                for j in 0..<sk {
                    for c in 0..<d {
                        gr.k[((b * sk + j) * kvh + kh) * d + c] += r.dk[j * d + c]
                        gr.v[((b * sk + j) * kvh + kh) * d + c] += r.dv[j * d + c]
                    }
                }
                if gr.table != nil {
                    for i in 0..<sq {
                        for j in 0..<sk where r.ds[i * sk + j] != 0 { gr.table![buckets[j - i - qs]! * nh + h] += r.ds[i * sk + j] }
                    }
                }
                if shaw != nil {
                    for e in 0..<r.dShawKeys.count {
                        gr.shawKeys![e] += r.dShawKeys[e]
                        gr.shawValues![e] += r.dShawValues[e]
                    }
                }
            }
        }
        return (out, lse, dOut == nil ? nil : gr)
    }
}

extension SwiftSIMDKernels {
    /// The training forward (and with `dOut`, backward) of `t` through
    /// `AttentionGradReference`, rounded to Float: output `[batch * seqQ, heads * d]`, lse
    /// `[batch, heads, seqQ]`, gradients laid out as `attentionBackward(_:out:lse:dOut:compute:)`
    /// returns them. The `.swiftSIMD` backend of the training entry points. One thread.
    static func attentionTraining(
        _ t: AttentionTrainingProblem, dOut: Tensor?, threads: Int
    ) -> (out: Tensor, lse: Tensor, gradients: AttentionGradients?) {
        let x = AttentionGradReference.inputs(t)
        let r = AttentionGradReference.problem(t, x, dOut: dOut.map { $0.scalars.map(Double.init) })
        let out = Tensor(shape: t.outputShape, scalars: r.out.map { Float($0) })
        let lse = Tensor(shape: [t.batch, t.heads, t.seqQ], scalars: r.lse.map { Float($0) })
        guard let g = r.gradients else { return (out, lse, nil) }
        var (grads, which) = t.gradientTensors()
        func write(_ o: AttentionOperand, _ i: Int, _ src: [Double], rows: Int, heads: Int) {
            let w = o.tensor.shape[1], n = heads * t.headDim
            grads[which[i]].withUnsafeMutableBufferPointer { p in
                for r in 0..<rows { for c in 0..<n { p[r * w + o.column + c] = Float(src[r * n + c]) } }
            }
        }
        write(t.q, 0, g.q, rows: t.batch * t.seqQ, heads: t.heads)
        write(t.k, 1, g.k, rows: t.batch * t.seqK, heads: t.kvHeads)
        write(t.v, 2, g.v, rows: t.batch * t.seqK, heads: t.kvHeads)
        var result = AttentionGradients(
            query: AttentionOperand(grads[which[0]], column: t.q.column), key: AttentionOperand(grads[which[1]], column: t.k.column),
            value: AttentionOperand(grads[which[2]], column: t.v.column))
        if case .t5(let table, _, _) = t.bias { result.biasTable = Tensor(shape: table.shape, scalars: g.table!.map { Float($0) }) }
        if t.relative != nil {
            result.relative = t.relativeGradient(Tensor(shape: [g.shawKeys!.count / t.headDim, t.headDim], scalars: g.shawKeys!.map { Float($0) }))
        } else if let shaw = t.bias.shaw {
            result.shawKeys = Tensor(shape: shaw.keys.shape, scalars: g.shawKeys!.map { Float($0) })
            result.shawValues = Tensor(shape: shaw.values.shape, scalars: g.shawValues!.map { Float($0) })
        }
        return (out, lse, result)
    }
}
