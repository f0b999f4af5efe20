// The fused attention (pack + block driver) and its online-softmax step.
import Attend
import CKernels
import Foundation

// MARK: - the online-softmax step

/// The table's `attn_softmax_step` alone, on one panel of nr queries: rows >= valid_rows
/// (padding), key blocks anywhere in the sequence, running max -inf (nothing seen yet) or
/// finite, key-padding bias with -inf (all-masked included), the relative-position table,
/// causal masks with offsets, sliding windows (1, a few, about a panel, past the sequence,
/// huge), scores of magnitude 1 to 1e30. Checked against the contract in
/// Double: m exactly, p = exp(s - m_new) (exactly 0 where masked or padding), corr =
/// exp(m_old - m_new), l = l * corr + sum p, with exp's 2 ulp and flushes below e^-87.
struct AttentionStepFuzz: FuzzKernel {
    let name = "attn-step"

    final class Case: CustomStringConvertible {
        var rows = 0, valid = 0, key0 = 0, query0 = 0, seqQ = 0, seqK = 0, causal = false, causalOffset = 0, window = 0, range: Float = 1
        var s: GuardedMatrix!, m: GuardedMatrix!, l: GuardedMatrix!, corr: GuardedMatrix!
        var keyBias: GuardedMatrix?, relBias: GuardedMatrix?
        var description: String {
            "rows=\(rows) valid_rows=\(valid) key0=\(key0) query0=\(query0) seq_q=\(seqQ) seq_k=\(seqK) causal=\(causal) causal_offset=\(causalOffset) window=\(window) key_bias=\(keyBias != nil) rel_bias=\(relBias != nil) score range ±\(range)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        let mr = table.attnMr, nr = table.attnNr
        c.seqK = max(1, boundarySize(&rng, edges: [1, mr, table.keyBlock], small: 40, maxLarge: 500))
        c.key0 = rng.chance(0.4) ? 0 : rng.below(c.seqK)
        c.valid = rng.int(1...min(c.seqK - c.key0, table.keyBlock + 2))
        c.rows = rng.chance(0.7) ? (c.valid + mr - 1) / mr * mr : c.valid + rng.int(0...3)
        c.seqQ = max(1, boundarySize(&rng, edges: [1, nr, table.queryBlock], small: 40, maxLarge: 200))
        c.query0 = nr * rng.below((c.seqQ + nr - 1) / nr)
        c.causal = rng.chance(0.5)
        c.causalOffset = rng.chance(0.5) ? c.seqK - c.seqQ : rng.int(-(c.seqQ + 2)...(c.seqK + 2))
        c.window = fuzzWindow(&rng, seqQ: c.seqQ, seqK: c.seqK, nr: nr)
        c.range = rng.pick([1, 5, 100, 1000, 1e30])
        let range = c.range
        c.s = GuardedMatrix(rows: c.rows, cols: nr, ld: nr, sentinel: outputSentinel)
        c.s.fill { _, _ in rng.float(-range, range) }
        let mOld = (0..<nr).map { _ in rng.chance(0.4) ? -Float.infinity : rng.float(-range, range) }
        c.m = guardedVector(mOld, misalign: 0, sentinel: outputSentinel)
        c.l = guardedVector(mOld.map { $0 == -.infinity ? 0 : rng.float(1, 10) }, misalign: 0, sentinel: outputSentinel)
        c.corr = guardedVector((0..<nr).map { _ in rng.float(-1, 1) }, misalign: 0, sentinel: outputSentinel)
        if rng.chance(0.4) {
            let allMasked = rng.chance(0.1)
            c.keyBias = guardedVector(
                (0..<c.seqK).map { _ in allMasked || rng.chance(0.25) ? -.infinity : rng.float(-2, 2) }, misalign: rng.below(16),
                sentinel: inputSentinel)
        }
        if rng.chance(0.4) {
            let len = ck_f32_attention_rel_bias_length(table.kernels, c.seqQ, c.seqK)
            c.relBias = guardedVector((0..<len).map { _ in rng.float(-3, 3) }, misalign: rng.below(16), sentinel: inputSentinel)
        }
        return c
    }

    struct Run { let s: GuardedMatrix, m: GuardedMatrix, l: GuardedMatrix, corr: GuardedMatrix }

    func head(_ c: Case) -> ck_attention_head {
        ck_attention_head(
            seq_q: c.seqQ, seq_k: c.seqK, head_dim: 1, q: nil, ldq: 0, packed_kv: nil, o: nil, ldo: 0, scale: 1,
            causal: c.causal ? 1 : 0, causal_offset: c.causalOffset, key_bias: c.keyBias.map { UnsafePointer($0.base) },
            rel_bias: c.relBias.map { UnsafePointer($0.base) }, rel_bias_zero: c.seqK - 1, shaw_clip: 0, shaw_qk: nil, shaw_v: nil, dropout: nil,
            window: c.window)
    }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let r = Run(s: c.s.copy(), m: c.m.copy(), l: c.l.copy(), corr: c.corr.copy())
        var h = head(c)
        table.kernels.pointee.attn_softmax_step(c.rows, c.valid, r.s.base, r.m.base, r.l.base, r.corr.base, c.key0, c.query0, &h)
        return r
    }

    /// exp(x) within 2 ulp (4u relative), where x < -87 may also give 0 (flush); -inf gives 0.
    static func expNonposOK(_ got: Float, _ x: Float) -> (Bool, Double) {
        if x == -.infinity { return (got == 0, 0) }
        let e = Foundation.exp(Double(x))
        let tol = 4 * u * e + (x < -87 ? 0x1p-125 : 0x1p-149)
        return (got.isFinite && abs(Double(got) - e) <= tol, e)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        for (buf, what) in [(r.s, "the score tile"), (r.m, "m"), (r.l, "l"), (r.corr, "corr")] {
            if let bad = buf.damagedPadding(what) { return bad }
        }
        let nr = table.attnNr
        for lane in 0..<nr {
            let qi = c.query0 + lane
            var v = [Float](repeating: -.infinity, count: c.rows)
            var bmax = -Float.infinity
            for row in 0..<c.valid {
                let key = c.key0 + row
                var t = c.s[row, lane] + (c.keyBias?.base[key] ?? 0)
                if let rel = c.relBias { t += rel.base[qi - key + c.seqK - 1] }
                if c.causal && key > qi + c.causalOffset { t = -.infinity }
                if c.window > 0 && qi + c.causalOffset - key >= c.window { t = -.infinity }
                v[row] = t
                bmax = max(bmax, t)
            }
            let mOld = c.m.base[lane], mNew = max(mOld, bmax)
            let where_ = "query lane \(lane) (query \(qi))"
            if r.m.base[lane] != mNew { return "\(where_): m = \(r.m.base[lane]), expected max(m_old \(mOld), block max \(bmax)) = \(mNew)" }
            let muse: Float = mNew == -.infinity ? 0 : mNew
            let (corrOK, corrRef) = AttentionStepFuzz.expNonposOK(r.corr.base[lane], mOld - muse)
            if !corrOK { return "\(where_): corr = \(r.corr.base[lane]), expected exp(\(mOld) - \(muse)) = \(corrRef)" }
            var sum = 0.0
            for row in 0..<c.rows {
                let got = r.s[row, lane]
                if v[row] == -.infinity {
                    if got != 0 { return "\(where_) row \(row)\(row >= c.valid ? " (padding row)" : " (masked)"): p = \(got), must be exactly 0" }
                    continue
                }
                let (ok, e) = AttentionStepFuzz.expNonposOK(got, v[row] - muse)
                if !ok { return "\(where_) row \(row): p = \(got), expected exp(\(v[row]) - \(muse)) = \(e)" }
                sum += e
            }
            let lRef = Double(c.l.base[lane]) * corrRef + sum
            let tol = u * (8 * Double(c.l.base[lane]) * corrRef + Double(c.rows + 8) * sum) + Double(c.rows + 1) * 0x1p-125
            if !matches(r.l.base[lane], lRef, tolerance: tol) {
                return "\(where_): l = l_old * corr + sum p: \(mismatchText(r.l.base[lane], lRef, tol))"
            }
        }
        return nil
    }
}

// MARK: - fused attention

/// The fused attention of one head through `ck_f32_attention_pack_kv` and
/// `ck_f32_attention_block` over every query block: seq_q and seq_k around the query and key
/// blocks, head_dim around mr, padded strides, scale (0 and negative too), key padding with
/// -inf (fully masked queries must give exact zeros), causal with offsets, sliding windows
/// (with and without causal), the relative-bias table, Shaw relative positions, and scores far beyond exp's range (integer data: exact
/// scores up to thousands). Checked against KernelOracle.attentionHead, plus the guards of
/// O, the packed K/V buffer and the workspace, and that Q, K, V were not written.
struct AttentionFuzz: FuzzKernel {
    let name = "attention"

    final class Case: CustomStringConvertible {
        var seqQ = 0, seqK = 0, d = 1, scale: Float = 1, causal = false, causalOffset = 0, window = 0, shawClip = 0
        var integers = false, magnitude: Float = 1
        var q: GuardedMatrix!, k: GuardedMatrix!, v: GuardedMatrix!, o: GuardedMatrix!
        var keyBias: GuardedMatrix?, relBias: GuardedMatrix?, shawQK: GuardedMatrix?, shawV: GuardedMatrix?
        var description: String {
            "seq_q=\(seqQ) seq_k=\(seqK) head_dim=\(d) scale=\(scale) ldq=\(q.ld) ldk=\(k.ld) ldv=\(v.ld) ldo=\(o.ld) causal=\(causal) causal_offset=\(causalOffset) window=\(window) "
                + "key_bias=\(keyBias != nil) rel_bias=\(relBias != nil) shaw_clip=\(shawClip) data \(integers ? "integers (exact scores)" : "uniform ±\(magnitude)")"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        let mr = table.attnMr, nr = table.attnNr, qb = table.queryBlock, kb = table.keyBlock
        c.seqK = boundarySize(&rng, edges: [1, mr, 2 * mr, kb], small: 24, maxLarge: 70)
        c.seqQ = max(1, boundarySize(&rng, edges: [1, nr, qb, 2 * qb], small: 12, maxLarge: 40))
        c.d = max(1, boundarySize(&rng, edges: [1, mr, 2 * mr, 16, 32], small: 20, maxLarge: 80))
        if c.seqK > 100 {  // long key sequences (key-block edges): keep the case cheap
            c.seqQ = min(c.seqQ, rng.int(1...nr + 1))
            c.d = min(c.d, rng.int(1...16))
        }
        if c.seqQ * c.seqK * c.d > 40_000 { c.d = max(1, 40_000 / (c.seqQ * max(c.seqK, 1))) }
        fillAttentionCase(c, &rng, relBiasLength: ck_f32_attention_rel_bias_length(table.kernels, c.seqQ, c.seqK), shaw: true)
        return c
    }

    struct Run { let o: GuardedMatrix, packed: GuardedMatrix, workspace: GuardedMatrix, snaps: [[UInt32]] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let snaps = [c.q.snapshot(), c.k.snapshot(), c.v.snapshot()]
        let o = c.o.copy()
        let packedCount = ck_f32_attention_packed_kv_size(table.kernels, c.seqK, c.d)
        let packed = GuardedMatrix(rows: 1, cols: packedCount, ld: max(packedCount, 1), sentinel: outputSentinel)
        let wsCount = ck_f32_attention_workspace(table.kernels, c.d, c.shawClip)
        let ws = GuardedMatrix(rows: 1, cols: wsCount, ld: wsCount, sentinel: outputSentinel)
        ck_f32_attention_pack_kv(table.kernels, c.seqK, c.d, c.k.base, c.k.ld, c.v.base, c.v.ld, packed.base)
        var h = ck_attention_head(
            seq_q: c.seqQ, seq_k: c.seqK, head_dim: c.d, q: c.q.base, ldq: c.q.ld, packed_kv: packed.base, o: o.base,
            ldo: o.ld, scale: c.scale, causal: c.causal ? 1 : 0, causal_offset: c.causalOffset,
            key_bias: c.keyBias.map { UnsafePointer($0.base) }, rel_bias: c.relBias.map { UnsafePointer($0.base) },
            rel_bias_zero: c.seqK - 1, shaw_clip: c.shawClip, shaw_qk: c.shawQK.map { UnsafePointer($0.base) },
            shaw_v: c.shawV.map { UnsafePointer($0.base) }, dropout: nil, window: c.window)
        let qb = table.queryBlock
        var q0 = 0
        while q0 < c.seqQ {
            ck_f32_attention_block(table.kernels, &h, q0, min(qb, c.seqQ - q0), ws.base)
            q0 += qb
        }
        return Run(o: o, packed: packed, workspace: ws, snaps: snaps)
    }

    /// Tolerance per output, relative to max|V| (+ max|Shaw V|), from the worst case: each
    /// score errs by at most u*((D + 6) S + 5 B) with S = |scale| max|q_i| max|k_j| (2-norms,
    /// Cauchy-Schwarz bounds scale * sum|q||k|), B the largest bias magnitude: the rounding
    /// of scale*q, a D-term dot product, three bias adds and s - max. A score error delta
    /// scales a weight by exp(delta), moving o_i by at most 2 max|V| delta. With integer data
    /// the scores are exact (products and sums of small integers), delta = 0. The weights:
    /// exp 4u, 6u per key block for the running-max corrections, 12u for the final division,
    /// Shaw's extra terms and the oracle's rounding; the sums of seq_k terms (numerator and
    /// denominator) at most seq_k*u each. A query that sees no key must give exact zeros.
    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.o.damagedPadding("O") { return bad }
        if let bad = r.packed.damagedPadding("the packed K/V (ck_f32_attention_packed_kv_size floats)") { return bad }
        if let bad = r.workspace.damagedPadding("the workspace (ck_f32_attention_workspace floats)") { return bad }
        if !c.q.unchanged(since: r.snaps[0]) || !c.k.unchanged(since: r.snaps[1]) || !c.v.unchanged(since: r.snaps[2]) {
            return "the kernel wrote into Q, K or V"
        }
        let blocks = max(1, (c.seqK + table.keyBlock - 1) / table.keyBlock)
        return checkAttentionHead(c, got: r.o, queries: 0..<c.seqQ, keyBlocks: blocks)
    }
}

/// Fills a head's data once its sizes are set: integer data (exact scores) or uniform of a
/// random magnitude, the scale, Q, K, V (with a few zeros, subnormals and 1e20), the output
/// (all sentinel), causal with an offset (decode-style or random), a sliding window (see
/// ``fuzzWindow(_:seqQ:seqK:nr:)``), key padding biases (-inf,
/// sometimes on every key), a relative-position table of `relBiasLength` floats (zero at
/// seq_k - 1) and, when `shaw`, sometimes Shaw relative positions.
func fillAttentionCase(_ c: AttentionFuzz.Case, _ rng: inout FuzzRNG, relBiasLength: Int, shaw: Bool) {
    c.integers = rng.chance(0.2)
    c.magnitude = rng.pick([1, 1, 3, 10])
    c.scale = c.integers ? rng.pick([1, 0.5, -1]) : (rng.chance(0.8) ? 1 / Float(c.d).squareRoot() : rng.pick([0, -0.5, 2]))
    let mag = c.magnitude, ints = c.integers
    func qk(_ rng: inout FuzzRNG) -> Float { ints ? Float(rng.int(-8...8)) : rng.float(-mag, mag) }
    c.q = GuardedMatrix(rows: c.seqQ, cols: c.d, ld: c.d + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
    c.q.fill { _, _ in qk(&rng) }
    c.k = GuardedMatrix(rows: c.seqK, cols: c.d, ld: c.d + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
    c.k.fill { _, _ in qk(&rng) }
    c.v = GuardedMatrix(rows: c.seqK, cols: c.d, ld: c.d + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
    c.v.fill { _, _ in rng.chance(0.03) ? rng.pick([0, -0.0, .leastNonzeroMagnitude, 1e20]) : rng.float(-1, 1) }
    c.o = GuardedMatrix(rows: c.seqQ, cols: c.d, ld: c.d + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
    c.causal = rng.chance(0.4)
    c.causalOffset = rng.chance(0.5) ? c.seqK - c.seqQ : rng.int(-(c.seqQ + 1)...(c.seqK + 1))
    c.window = fuzzWindow(&rng, seqQ: c.seqQ, seqK: c.seqK, nr: 16)
    if rng.chance(0.3) {
        let allMasked = rng.chance(0.1)
        c.keyBias = guardedVector(
            (0..<c.seqK).map { _ in allMasked || rng.chance(0.25) ? -.infinity : (ints ? Float(rng.int(-4...4)) : rng.float(-2, 2)) },
            misalign: rng.below(16), sentinel: inputSentinel)
    }
    if rng.chance(0.3) {
        c.relBias = guardedVector(
            (0..<relBiasLength).map { _ in ints ? Float(rng.int(-4...4)) : rng.float(-3, 3) }, misalign: rng.below(16), sentinel: inputSentinel)
    }
    if shaw && rng.chance(0.2) {
        c.shawClip = rng.int(1...4)
        let w = 2 * c.shawClip + 1
        c.shawQK = guardedVector(
            (0..<c.seqQ * w).map { _ in ints ? Float(rng.int(-4...4)) : rng.float(-2, 2) }, misalign: rng.below(16), sentinel: inputSentinel)
        c.shawV = guardedVector((0..<w * c.d).map { _ in rng.float(-1, 1) }, misalign: rng.below(16), sentinel: inputSentinel)
    }
}

/// A sliding window for a head of `seqQ` queries and `seqK` keys: none (0) most often, else
/// 1 (each query sees only its own position), a few positions, around a query panel `nr`,
/// past the sequence (no key hidden), or a huge value (the kernels' bounds must saturate).
func fuzzWindow(_ rng: inout FuzzRNG, seqQ: Int, seqK: Int, nr: Int) -> Int {
    if !rng.chance(0.35) { return 0 }
    switch rng.below(6) {
    case 0: return 1
    case 1: return rng.int(2...5)
    case 2: return max(1, nr + rng.int(-1...1))
    case 3: return rng.int(1...max(1, seqK))
    case 4: return max(seqQ, seqK) + rng.int(0...3)
    default: return rng.chance(0.5) ? Int(Int32.max) : 1 << 40
    }
}

/// Checks queries `queries` of `got` against KernelOracle.attentionHead for the head `c`
/// describes, with the error bound derived at ``AttentionFuzz/check(_:_:table:)`` (`keyBlocks`:
/// how many running-max corrections a query's weights go through). A query that sees no key
/// must give exact zeros. Returns the first bad output described, nil when all pass.
func checkAttentionHead(_ c: AttentionFuzz.Case, got: GuardedMatrix, queries: Range<Int>, keyBlocks: Int) -> String? {
    let oracle = GuardedMatrix(rows: c.seqQ, cols: c.d, ld: c.d, sentinel: outputSentinel)
    KernelOracle.attentionHead(
        seqQ: c.seqQ, seqK: c.seqK, headDim: c.d, q: c.q.base, ldq: c.q.ld, k: c.k.base, ldk: c.k.ld, v: c.v.base,
        ldv: c.v.ld, o: oracle.base, ldo: oracle.ld, scale: c.scale, causal: c.causal, causalOffset: c.causalOffset,
        keyBias: c.keyBias?.base, relBias: c.relBias?.base, relBiasZero: c.seqK - 1, shawClip: c.shawClip,
        shawQK: c.shawQK?.base, shawV: c.shawV?.base, window: c.window)
    func norm2(_ m: GuardedMatrix, _ i: Int) -> Double { (0..<m.cols).reduce(0.0) { $0 + Double(m[i, $1]) * Double(m[i, $1]) }.squareRoot() }
    func maxAbs(_ m: GuardedMatrix?) -> Double {
        guard let m else { return 0 }
        var x = 0.0
        for i in 0..<m.rows { for j in 0..<m.cols where m[i, j].isFinite { x = max(x, Double(m[i, j].magnitude)) } }
        return x
    }
    let maxQ = (0..<c.seqQ).reduce(0.0) { max($0, norm2(c.q, $1)) }
    let maxK = (0..<c.seqK).reduce(0.0) { max($0, norm2(c.k, $1)) }
    let maxV = maxAbs(c.v) + maxAbs(c.shawV)
    let s = Double(c.scale.magnitude) * maxQ * maxK
    let b = maxAbs(c.keyBias) + maxAbs(c.relBias) + maxAbs(c.shawQK)
    let scoreErr = c.integers ? 0 : u * (Double(c.d + 6) * s + 5 * b)
    let sumErr = u * (12 + 2 * Double(c.seqK) + 6 * Double(keyBlocks))
    let tol = maxV * (sumErr + 2 * scoreErr) + 0x1p-140
    for i in queries {
        var sees = false
        for j in 0..<c.seqK
        where !(c.causal && j > i + c.causalOffset) && !(c.window > 0 && i + c.causalOffset - j >= c.window)
            && (c.keyBias?.base[j] ?? 0) != -.infinity
        {
            sees = true
            break
        }
        for dd in 0..<c.d {
            let g = got[i, dd], e = oracle[i, dd]
            if !sees {
                if g != 0 { return "query \(i) dim \(dd): the query sees no key, so the output must be exactly 0; got \(g)" }
                continue
            }
            if !matches(g, Double(e), tolerance: tol) {
                return "query \(i) dim \(dd): \(mismatchText(g, Double(e), tol))"
            }
        }
    }
    return nil
}
