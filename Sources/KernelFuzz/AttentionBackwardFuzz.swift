// The attention backward (ck_f32_attention_grad_pack_kv + ck_f32_attention_backward, with the
// table's attn_grad_step) and the forward's saved log-sum-exp (ck_f32_attention_block_lse),
// against AttentionGradReference in Double.
import Attend
import CKernels
import Foundation

/// One K/V head read by `group` query heads (grouped-query attention: every query head adds
/// into the same dK/dV accumulators): seq_q and seq_k around the backward's blocks (64
/// queries, ~96 keys) and odd, seq_k 0 too; head_dim around mr and nr; padded strides; scale
/// (negative too); causal with offsets (queries that see nothing); key padding with -inf
/// (every key of the row too) and finite key biases; the relative-bias table with its
/// gradient; Shaw relative positions (one query head); dropout on the probabilities (its
/// factors recomputed from the counter hash, p from 0.1 to 0.9). The kernel gets O and lse from the
/// reference (rounded to float), so only the backward is measured; the forward's lse is
/// checked on its own. Checked: dQ, dK, dV, d rel_bias, the Shaw bucket sums, the guards of
/// every output, the workspace and the packed buffer, and that no input was written; with
/// dropout, also the forward's output (the same hash in the forward's tile loop).
struct AttentionBackwardFuzz: FuzzKernel {
    let name = "attn-backward"

    final class Case: CustomStringConvertible {
        var seqQ = 0, seqK = 0, d = 1, group = 1, scale: Float = 1, causal = false, causalOffset = 0, shawClip = 0, amp: Float = 1
        var q: [GuardedMatrix] = [], dO: [GuardedMatrix] = [], k: GuardedMatrix!, v: GuardedMatrix!
        var keyBias: GuardedMatrix?, relBias: GuardedMatrix?, shawK: [Float] = [], shawV: [Float] = []
        var wsMisalign = 0
        /// Dropout on the probabilities (nil: none): query head h's counters start at
        /// `counter0 + h * seqQ * seqK`.
        var dropout: AttentionDropout?
        var counter0: UInt64 = 0
        var description: String {
            "seq_q=\(seqQ) seq_k=\(seqK) head_dim=\(d) group=\(group) scale=\(scale) causal=\(causal) causal_offset=\(causalOffset) key_bias=\(keyBias != nil) rel_bias=\(relBias != nil) shaw_clip=\(shawClip) dropout=\(dropout.map { "\($0.probability) seed \($0.seed) counter0 \(counter0)" } ?? "none") amplitude \(amp) ldq=\(q.first?.ld ?? 0) ldk=\(k.ld) ldv=\(v.ld)"
        }

        /// The kernel's description of query head h's dropout.
        func kernelDropout(_ h: Int) -> ck_attention_dropout {
            let p = dropout!.probability
            return ck_attention_dropout(
                seed: dropout!.seed, counter0: counter0 &+ UInt64(h * seqQ * seqK), threshold: UInt32((Double(p) * 16_777_216).rounded(.down)),
                keep_scale: 1 / (1 - p))
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        let mr = table.mr, nr = table.nr
        c.seqQ = boundarySize(&rng, edges: [1, nr, 64, 2 * nr, 128], zero: false, small: 24, maxLarge: 200)
        c.seqK = rng.chance(0.5) ? c.seqQ : boundarySize(&rng, edges: [1, mr, 96, 98, 2 * mr, 192], small: 30, maxLarge: 260)
        c.d = boundarySize(&rng, edges: [1, mr, nr, 2 * nr, 16, 64], zero: false, small: 20, maxLarge: 80)
        if c.seqQ * max(c.seqK, 1) * c.d > 150_000 { c.d = max(1, 150_000 / (c.seqQ * max(c.seqK, 1))) }
        c.amp = rng.pick([0.5, 1, 2])
        c.scale = rng.pick([1 / Float(c.d).squareRoot(), 1, 0.3, -0.5])
        c.causal = rng.chance(0.4)
        c.causalOffset = rng.chance(0.6) ? c.seqK - c.seqQ : rng.int(-3...3)
        if rng.chance(0.2) && c.seqK > 0 { c.shawClip = rng.int(1...4) } else { c.group = rng.chance(0.3) ? rng.int(2...3) : 1 }
        let amp = c.amp
        func matrix(_ rows: Int, input: Bool = true) -> GuardedMatrix {
            let m = GuardedMatrix(rows: rows, cols: c.d, ld: c.d + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
            m.fill { _, _ in rng.float(-amp, amp) }
            return m
        }
        c.q = (0..<c.group).map { _ in matrix(c.seqQ) }
        c.dO = (0..<c.group).map { _ in matrix(c.seqQ) }
        c.k = matrix(c.seqK)
        c.v = matrix(c.seqK)
        if rng.chance(0.4) && c.seqK > 0 {
            let allMasked = rng.chance(0.1)
            c.keyBias = guardedVector(
                (0..<c.seqK).map { _ in allMasked || rng.chance(0.2) ? -.infinity : rng.float(-2, 2) }, misalign: rng.below(16),
                sentinel: inputSentinel)
        }
        if rng.chance(0.4) {
            let len = ck_f32_attention_grad_rel_bias_length(table.kernels, c.seqQ, c.seqK)
            c.relBias = guardedVector((0..<len).map { _ in rng.float(-2, 2) }, misalign: rng.below(16), sentinel: inputSentinel)
        }
        if c.shawClip > 0 {
            let n = (2 * c.shawClip + 1) * c.d
            c.shawK = (0..<n).map { _ in rng.float(-amp, amp) }
            c.shawV = (0..<n).map { _ in rng.float(-amp, amp) }
        }
        if c.shawClip == 0 && rng.chance(0.35) {
            c.dropout = AttentionDropout(probability: rng.pick([0.1, 0.5, 0.9]), seed: UInt64(rng.below(1 << 30)) << 20 | UInt64(rng.below(1 << 20)))
            c.counter0 = rng.chance(0.5) ? 0 : UInt64(rng.below(1 << 30)) * 977
        }
        c.wsMisalign = rng.below(16)
        return c
    }

    /// The reference of query head `h`, and the float O and lse the kernel is given.
    func reference(_ c: Case, _ h: Int) -> AttentionGradReference.Head {
        func rows(_ m: GuardedMatrix) -> [Double] { (0..<m.rows).flatMap { i in (0..<c.d).map { Double(m[i, $0]) } } }
        var bias = [Double](repeating: 0, count: c.seqQ * c.seqK)
        for i in 0..<c.seqQ {
            for j in 0..<c.seqK {
                if c.causal && j > i + c.causalOffset {
                    bias[i * c.seqK + j] = -.infinity
                    continue
                }
                var b = Double(c.keyBias?.base[j] ?? 0)
                if let rel = c.relBias { b += Double(rel.base[i - j + c.seqK - 1]) }
                bias[i * c.seqK + j] = b
            }
        }
        let shaw =
            c.shawClip > 0
            ? AttentionGradReference.Shaw(keys: c.shawK.map(Double.init), values: c.shawV.map(Double.init), clip: c.shawClip, offset: c.causalOffset)
            : nil
        let z = c.dropout.map { drop in
            (0..<(c.seqQ * c.seqK)).map { Double(drop.factor(counter: c.counter0 &+ UInt64(h * c.seqQ * c.seqK + $0))) }
        }
        return AttentionGradReference.head(
            seqQ: c.seqQ, seqK: c.seqK, d: c.d, scale: Double(c.scale), q: rows(c.q[h]), k: rows(c.k), v: rows(c.v), bias: bias, shaw: shaw,
            dOut: rows(c.dO[h]), dropout: z)
    }

    final class Run {
        var refs: [AttentionGradReference.Head] = []
        var dq: [GuardedMatrix] = [], dk: GuardedMatrix!, dv: GuardedMatrix!, acc: GuardedMatrix!, packed: GuardedMatrix!
        var ws: GuardedMatrix!, dRel: GuardedMatrix?, shawP: [GuardedMatrix] = [], shawDS: [GuardedMatrix] = []
        var lse: [[Float]] = [], snaps: [[UInt32]] = []
        var forwardLSE: [Float] = []
        var forwardOut: GuardedMatrix?
    }

    func inputs(_ c: Case) -> [GuardedMatrix] { c.q + c.dO + [c.k, c.v] + [c.keyBias, c.relBias].compactMap { $0 } }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let kern = table.kernels
        let r = Run()
        r.snaps = inputs(c).map { $0.snapshot() }
        r.refs = (0..<c.group).map { reference(c, $0) }
        let accSize = ck_f32_attention_grad_acc_size(kern, c.seqK, c.d)
        r.acc = GuardedMatrix(rows: 1, cols: 2 * accSize, ld: max(2 * accSize, 1), sentinel: outputSentinel)
        r.acc.fill { _, _ in 0 }
        r.packed = GuardedMatrix(rows: 1, cols: ck_f32_attention_grad_packed_kv_size(kern, c.seqK, c.d), ld: 1 << 30, sentinel: outputSentinel)
        let wsCount = ck_f32_attention_grad_workspace(kern, c.d)
        r.ws = GuardedMatrix(rows: 1, cols: wsCount, ld: max(wsCount, 1), sentinel: outputSentinel)
        if c.seqK > 0 { ck_f32_attention_grad_pack_kv(kern, c.seqK, c.d, c.k.base, c.k.ld, c.v.base, c.v.ld, r.packed.base) }
        let relLength = ck_f32_attention_grad_rel_bias_length(kern, c.seqQ, c.seqK)
        if c.relBias != nil {
            r.dRel = GuardedMatrix(rows: 1, cols: relLength, ld: relLength, sentinel: outputSentinel)
            r.dRel!.fill { _, _ in 0 }
        }
        let w = 2 * c.shawClip + 1
        for h in 0..<c.group {
            let ref = r.refs[h]
            let o = GuardedMatrix(rows: c.seqQ, cols: c.d, ld: c.d, sentinel: inputSentinel)
            o.fill { i, j in Float(ref.out[i * c.d + j]) }
            let lse = ref.lse.map { Float($0) }
            r.lse.append(lse)
            let dq = GuardedMatrix(rows: c.seqQ, cols: c.d, ld: c.d + (h + 1) % 3, misalign: h, sentinel: outputSentinel)
            r.dq.append(dq)
            var qk = [Float](), dov = [Float]()
            if c.shawClip > 0 {
                for i in 0..<c.seqQ {
                    for t in 0..<w {
                        var a = 0.0, b = 0.0
                        for e in 0..<c.d {
                            a += Double(c.q[h][i, e]) * Double(c.shawK[t * c.d + e])
                            b += Double(c.dO[h][i, e]) * Double(c.shawV[t * c.d + e])
                        }
                        qk.append(Float(Double(c.scale) * a))
                        dov.append(Float(b))
                    }
                }
                r.shawP.append(GuardedMatrix(rows: c.seqQ, cols: w, ld: w, sentinel: outputSentinel))
                r.shawDS.append(GuardedMatrix(rows: c.seqQ, cols: w, ld: w, sentinel: outputSentinel))
            }
            lse.withUnsafeBufferPointer { lp in
                qk.withUnsafeBufferPointer { qkp in
                    dov.withUnsafeBufferPointer { dovp in
                        c.shawK.withUnsafeBufferPointer { akp in
                            var g = ck_attention_grad_head(
                                seq_q: c.seqQ, seq_k: c.seqK, head_dim: c.d, q: c.q[h].base, ldq: c.q[h].ld, o: o.base, ldo: o.ld,
                                dout: c.dO[h].base, lddo: c.dO[h].ld, lse: lp.baseAddress!, packed_kv: r.packed.base, dq: dq.base, lddq: dq.ld,
                                dk_acc: r.acc.base, dv_acc: r.acc.base + accSize, scale: c.scale, causal: c.causal ? 1 : 0,
                                causal_offset: c.causalOffset, key_bias: c.keyBias.map { UnsafePointer($0.base) },
                                rel_bias: c.relBias.map { UnsafePointer($0.base) }, rel_bias_zero: max(c.seqK, 1) - 1,
                                d_rel_bias: r.dRel?.base, shaw_clip: c.shawClip, shaw_qk: qkp.baseAddress, shaw_dov: dovp.baseAddress,
                                shaw_k: akp.baseAddress, shaw_p: r.shawP.last?.base, shaw_ds: r.shawDS.last?.base, dropout: nil)
                            if c.dropout != nil {
                                var drop = c.kernelDropout(h)
                                withUnsafePointer(to: &drop) { d in
                                    g.dropout = d
                                    ck_f32_attention_backward(kern, &g, r.ws.base)
                                }
                            } else {
                                ck_f32_attention_backward(kern, &g, r.ws.base)
                            }
                        }
                    }
                }
            }
        }
        r.dk = GuardedMatrix(rows: c.seqK, cols: c.d, ld: c.d + 1, sentinel: outputSentinel)
        r.dv = GuardedMatrix(rows: c.seqK, cols: c.d, ld: c.d + 2, misalign: 3, sentinel: outputSentinel)
        ck_f32_attention_grad_store_kv(kern, c.seqK, c.d, r.acc.base, r.acc.base + accSize, r.dk.base, r.dk.ld, r.dv.base, r.dv.ld)
        // The forward's lse (query head 0, no Shaw: its value term needs the tables as given above).
        if c.shawClip == 0 && c.seqK > 0 {
            let packed = GuardedMatrix(rows: 1, cols: ck_f32_attention_packed_kv_size(kern, c.seqK, c.d), ld: 1 << 30, sentinel: outputSentinel)
            ck_f32_attention_pack_kv(kern, c.seqK, c.d, c.k.base, c.k.ld, c.v.base, c.v.ld, packed.base)
            let fws = GuardedMatrix(rows: 1, cols: ck_f32_attention_workspace(kern, c.d, 0), ld: 1 << 30, sentinel: outputSentinel)
            let out = GuardedMatrix(rows: c.seqQ, cols: c.d, ld: c.d, sentinel: outputSentinel)
            var fl = [Float](repeating: .nan, count: c.seqQ)
            let rel = ck_f32_attention_rel_bias_length(kern, c.seqQ, c.seqK)
            let relCopy = c.relBias.map { rb in (0..<rel).map { $0 < rb.cols ? rb.base[$0] : 0 } }
            relCopy.withUnsafeBufferPointerOrNil { relp in
                var head = ck_attention_head(
                    seq_q: c.seqQ, seq_k: c.seqK, head_dim: c.d, q: c.q[0].base, ldq: c.q[0].ld, packed_kv: packed.base, o: out.base,
                    ldo: out.ld, scale: c.scale, causal: c.causal ? 1 : 0, causal_offset: c.causalOffset,
                    key_bias: c.keyBias.map { UnsafePointer($0.base) }, rel_bias: relp, rel_bias_zero: c.seqK - 1, shaw_clip: 0,
                    shaw_qk: nil, shaw_v: nil, dropout: nil, window: 0)
                let block = ck_f32_attention_query_block(kern)
                var drop = c.dropout != nil ? c.kernelDropout(0) : ck_attention_dropout()
                withUnsafePointer(to: &drop) { d in
                    if c.dropout != nil { head.dropout = d }
                    fl.withUnsafeMutableBufferPointer { lp in
                        for q0 in stride(from: 0, to: c.seqQ, by: block) {
                            ck_f32_attention_block_lse(kern, &head, q0, min(block, c.seqQ - q0), fws.base, lp.baseAddress!)
                        }
                    }
                }
            }
            r.forwardLSE = fl
            r.forwardOut = out
        }
        return r
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        for (m, snap) in zip(inputs(c), r.snaps) where !m.unchanged(since: snap) {
            return "the kernel wrote into an input (Q, dO, K, V or a bias: the \(m.rows) x \(m.cols) one)"
        }
        var guards: [(GuardedMatrix, String)] = [
            (r.dk, "dK"), (r.dv, "dV"), (r.acc, "the dK/dV accumulators"), (r.packed, "the packed K/V"), (r.ws, "the workspace"),
        ]
        guards += r.dq.map { ($0, "dQ") } + r.shawP.map { ($0, "shaw_p") } + r.shawDS.map { ($0, "shaw_ds") }
        if let d = r.dRel { guards.append((d, "d_rel_bias")) }
        for (m, what) in guards { if let bad = m.damagedPadding(what) { return bad } }
        // Error model: dS_ij = P_ij (dP_ij - D_i) cancels (exactly 0 when one key is visible),
        // so bounds come from the terms' magnitudes, not the results: with
        // A_ij = P_ij (Z_ij sum_c |dO_ic| (|v_jc| + |a^V|) + |D_i|) + |dS_ij| (what dS_ij is made of),
        // every gradient entry is a sum over at most seq_q + seq_k + d float terms with a few ulp
        // each (exp within 2 ulp, the given lse and O rounded once, scores of size S carrying
        // S * u into P), so |err| <= (16 (seq_q + seq_k + d) + 4 S) u * B, B the largest of:
        //   dQ_i: |scale| sum_j A_ij (|k_j| + |a^K|)   dK_j: |scale| sum_i A_ij |q_i|
        //   dV_j: sum_i P_ij Z_ij |dO_i|    shaw_ds: sum_j A_ij   shaw_p: sum_j P_ij   d rel: sum of all A
        // (Z_ij the dropout's factor, 1 without; the dP_ij term of A_ij carries it too).
        var maxScore = 1.0
        for ref in r.refs { for l in ref.lse where l.isFinite { maxScore = max(maxScore, abs(l)) } }
        let factor = (16 * Double(c.seqQ + c.seqK + c.d) + 4 * maxScore) * u
        func rowMax(_ m: GuardedMatrix, _ i: Int) -> Double { (0..<c.d).reduce(0) { max($0, abs(Double(m[i, $1]))) } }
        let aK = Double(c.shawK.map(abs).max() ?? 0), aV = Double(c.shawV.map(abs).max() ?? 0)
        let kMax = (0..<c.seqK).map { rowMax(c.k, $0) }, vMax = (0..<c.seqK).map { rowMax(c.v, $0) }
        var totalA = 0.0, boundQ = 0.0, boundK = [Double](repeating: 0, count: c.seqK), boundV = boundK, boundA = 0.0, boundP = 0.0
        for (h, ref) in r.refs.enumerated() {
            for i in 0..<c.seqQ {
                let dOMax = rowMax(c.dO[h], i), qMax = rowMax(c.q[h], i)
                var delta = 0.0
                for e in 0..<c.d { delta += abs(Double(c.dO[h][i, e]) * ref.out[i * c.d + e]) }
                var rowQ = 0.0, rowA = 0.0, rowP = 0.0
                for j in 0..<c.seqK {
                    let p = ref.p[i * c.seqK + j]
                    // With dropout the probability is used as Z P (Z = 0 or 1 / (1 - p)): in dV,
                    // and in dP = Z (dO . v).
                    let z = c.dropout.map { Double($0.factor(counter: c.counter0 &+ UInt64(h * c.seqQ * c.seqK + i * c.seqK + j))) } ?? 1
                    let a = p * (z * Double(c.d) * dOMax * (vMax[j] + aV) + delta) + abs(ref.ds[i * c.seqK + j])
                    rowQ += a * (kMax[j] + aK)
                    rowA += a
                    rowP += p
                    boundK[j] += a * qMax
                    boundV[j] += p * z * dOMax
                }
                boundQ = max(boundQ, rowQ * Double(abs(c.scale)))
                boundA = max(boundA, rowA)
                totalA += rowA
                boundP = max(boundP, rowP)
            }
        }
        let tolK = factor * Double(abs(c.scale)) * (boundK.max() ?? 0), tolV = factor * (boundV.max() ?? 0)
        func compare(_ got: (Int, Int) -> Float, rows: Int, cols: Int, _ want: (Int, Int) -> Double, _ what: String, bound: Double) -> String? {
            let tol = factor * bound + 0x1p-100
            for i in 0..<rows {
                for j in 0..<cols where !matches(got(i, j), want(i, j), tolerance: tol) {
                    return "\(what)[\(i)][\(j)]: \(mismatchText(got(i, j), want(i, j), tol))"
                }
            }
            return nil
        }
        let d = c.d
        for h in 0..<c.group {
            let ref = r.refs[h]
            if let bad = compare({ r.dq[h][$0, $1] }, rows: c.seqQ, cols: d, { ref.dq[$0 * d + $1] }, "dQ (query head \(h))", bound: boundQ) {
                return bad
            }
            if c.shawClip > 0 {
                let w = 2 * c.shawClip + 1
                let shaw = AttentionGradReference.Shaw(keys: [], values: [], clip: c.shawClip, offset: c.causalOffset)
                var bp = [Double](repeating: 0, count: c.seqQ * w), bd = bp
                for i in 0..<c.seqQ {
                    for j in 0..<c.seqK {
                        bp[i * w + shaw.bucket(i, j)] += ref.p[i * c.seqK + j]
                        bd[i * w + shaw.bucket(i, j)] += ref.ds[i * c.seqK + j]
                    }
                }
                if let bad = compare({ r.shawP[h][$0, $1] }, rows: c.seqQ, cols: w, { bp[$0 * w + $1] }, "shaw_p", bound: boundP) { return bad }
                if let bad = compare({ r.shawDS[h][$0, $1] }, rows: c.seqQ, cols: w, { bd[$0 * w + $1] }, "shaw_ds", bound: boundA) { return bad }
            }
        }
        func summed(_ f: (AttentionGradReference.Head) -> [Double]) -> [Double] {
            r.refs.map(f).reduce(into: [Double](repeating: 0, count: c.seqK * d)) { acc, x in for i in 0..<acc.count { acc[i] += x[i] } }
        }
        let dk = summed(\.dk), dv = summed(\.dv)
        if let bad = compare({ r.dk[$0, $1] }, rows: c.seqK, cols: d, { dk[$0 * d + $1] }, "dK", bound: tolK / factor) { return bad }
        if let bad = compare({ r.dv[$0, $1] }, rows: c.seqK, cols: d, { dv[$0 * d + $1] }, "dV", bound: tolV / factor) { return bad }
        if let dRel = r.dRel {
            var want = [Double](repeating: 0, count: dRel.cols)
            for ref in r.refs {
                for i in 0..<c.seqQ { for j in 0..<c.seqK { want[i - j + c.seqK - 1] += ref.ds[i * c.seqK + j] } }
            }
            if let bad = compare({ dRel[$0, $1] }, rows: 1, cols: dRel.cols, { want[$1] }, "d_rel_bias", bound: totalA) { return bad }
        }
        if !r.forwardLSE.isEmpty {
            for (i, (got, want)) in zip(r.forwardLSE, r.refs[0].lse).enumerated() {
                let tol = 8 * u * max(1, abs(want)) + Double(c.seqK + c.d) * u * maxScore
                if !matches(got, want, tolerance: tol) { return "forward lse[\(i)]: \(mismatchText(got, want, tol))" }
            }
        }
        if let out = r.forwardOut {
            if let bad = out.damagedPadding("the forward's output") { return bad }
            // o_i = sum_j P_ij Z_ij v_j: seq_k products of terms a few ulp off (exp, the running
            // max's rescaling, scores of size S), bounded by sum_j P_ij Z_ij |v_j|.
            let ref = r.refs[0]
            for i in 0..<c.seqQ {
                var bound = 0.0
                for j in 0..<c.seqK {
                    let z = c.dropout.map { Double($0.factor(counter: c.counter0 &+ UInt64(i * c.seqK + j))) } ?? 1
                    bound += ref.p[i * c.seqK + j] * z * vMax[j]
                }
                let tol = (16 * Double(c.seqK + c.d) + 4 * maxScore) * u * bound + 0x1p-100
                for e in 0..<d where !matches(out[i, e], ref.out[i * d + e], tolerance: tol) {
                    return "forward out[\(i)][\(e)]: \(mismatchText(out[i, e], ref.out[i * d + e], tol))"
                }
            }
        }
        return nil
    }
}

extension Optional where Wrapped == [Float] {
    /// The array's base address inside `body` (nil for nil).
    fileprivate func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let a = self else { return body(nil) }
        return a.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}
