// The attention kernels that read keys and values in place (ck_attention_rows): the
// short-sequence kernel ck_f32_attention_short and the few-query decode kernel
// ck_f32_attention_few, on every C table this machine runs (the test-only AVX-512-layout
// table too), called directly, against the Double oracle (KernelOracle.attentionHead):
// sequence lengths at the micro-tile edges (queries pad to mr, keys and head dimensions to
// nr), primes, seq_k 0 and long key caches; key padding (every key too: exact zeros), causal
// masks with decode and negative offsets, relative-position tables, scale 0 and negative;
// strides with NaN sentinel padding (read by mistake it poisons the result) and output
// padding that must stay untouched; misaligned workspaces with a guard after the size the
// header promises; query ranges (the rows of other queries must stay untouched).
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

struct RowsAttentionCase: Sendable, CustomStringConvertible {
    var seqQ: Int
    var seqK: Int
    var d: Int
    /// 0 none, 1 random key padding (-inf), 2 every key padded.
    var keyBias = 0
    var causal = false
    var causalOffset = 0
    var relBias = false
    /// 0: 1/sqrt(d), 1: 0, 2: -0.5.
    var scaleKind = 0
    var magnitude: Float = 1
    var pad = 0
    /// ck_f32_attention_few: queries per call (0: all in one call); `only`: just the first call.
    var perCall = 0
    var only = false
    var tag = 0
    /// Sliding window (0: none): query i sees key j only if i + causalOffset - j < window.
    var window = 0

    var scale: Float { [1 / Float(max(d, 1)).squareRoot(), 0, -0.5][scaleKind] }
    var seed: UInt64 {
        caseSeed(seqQ, seqK, d, keyBias, causal ? 1 : 0, causalOffset, relBias ? 1 : 0, scaleKind, Int(magnitude), pad, perCall, only ? 1 : 0, tag)
    }
    var description: String {
        "seq_q=\(seqQ) seq_k=\(seqK) head_dim=\(d) scale=\(scale) key_bias=\(["none", "padding", "all padded"][keyBias]) "
            + "causal=\(causal)\(causal ? " offset \(causalOffset)" : "")\(window > 0 ? " window \(window) (offset \(causalOffset))" : "") rel_bias=\(relBias) data ±\(magnitude) pad=\(pad)"
            + (perCall > 0 ? " \(perCall) queries per call\(only ? " (first call only)" : "")" : "") + " \(SeededRNG(seed: seed))"
    }
}

/// The inputs of one head laid out with padded strides and sentinels.
struct RowsAttentionData {
    let q: StridedMatrix, k: StridedMatrix, v: StridedMatrix
    var o: StridedMatrix
    let keyBias: [Float]?, relBias: [Float]?

    init(_ tc: RowsAttentionCase) {
        var rng = SeededRNG(seed: tc.seed)
        let mag = tc.magnitude
        q = StridedMatrix(
            rows: tc.seqQ, cols: tc.d, ld: tc.d + tc.pad, values: rng.floats(tc.seqQ * tc.d, in: -mag...mag), sentinel: .nan, leading: 1)
        k = StridedMatrix(
            rows: tc.seqK, cols: tc.d, ld: tc.d + 2 * tc.pad, values: rng.floats(tc.seqK * tc.d, in: -mag...mag), sentinel: .nan, leading: 2)
        v = StridedMatrix(rows: tc.seqK, cols: tc.d, ld: tc.d + tc.pad + 1, values: rng.floats(tc.seqK * tc.d), sentinel: .nan, leading: 3)
        o = StridedMatrix(
            rows: tc.seqQ, cols: tc.d, ld: tc.d + tc.pad, values: [Float](repeating: -7, count: tc.seqQ * tc.d),
            sentinel: Float(bitPattern: 0xFFC3_C3C3), leading: 1)
        switch tc.seqK == 0 ? 0 : tc.keyBias {
        case 1: keyBias = (0..<tc.seqK).map { j in j % 3 == 2 || rng.nextUnit() < 0.2 ? -.infinity : rng.nextFloat(in: -1...1) }
        case 2: keyBias = [Float](repeating: -.infinity, count: tc.seqK)
        default: keyBias = nil
        }
        // (i - j) + seq_k - 1 for i < seq_q, j < seq_k; a NaN past each end: read by mistake, it shows.
        relBias = tc.relBias ? [.nan] + (0..<max(0, tc.seqQ + tc.seqK - 1)).map { _ in rng.nextFloat(in: -2...2) } + [.nan] : nil
    }

    /// The head for the kernels, `o` at `op` (the output's first element).
    func rows(
        _ tc: RowsAttentionCase, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        o op: UnsafeMutablePointer<Float>, keyBias kb: UnsafePointer<Float>?, relBias rb: UnsafePointer<Float>?
    ) -> ck_attention_rows {
        ck_attention_rows(
            seq_q: tc.seqQ, seq_k: tc.seqK, head_dim: tc.d, q: q, ldq: self.q.ld, k: k, ldk: self.k.ld, v: v, ldv: self.v.ld, o: op,
            ldo: o.ld, scale: tc.scale, causal: tc.causal ? 1 : 0, causal_offset: tc.causalOffset, key_bias: kb,
            rel_bias: rb.map { $0 + 1 }, rel_bias_zero: tc.seqK - 1, window: tc.window)
    }

    /// Runs `kernel(head, workspace)` on this data; returns the output.
    func run(
        _ tc: RowsAttentionCase, workspace wsCount: Int, guardWritten: inout Bool,
        _ kernel: (inout ck_attention_rows, UnsafeMutablePointer<Float>) -> Void
    ) -> StridedMatrix {
        var out = o
        let qb = q.body, kb = k.body, vb = v.body
        // Any alignment: one float in, then a guard of 16 after the promised size.
        var ws = [Float](repeating: .nan, count: wsCount + 17)
        let guardBits = ws[0].bitPattern
        qb.withUnsafeBufferPointer { qp in
            kb.withUnsafeBufferPointer { kp in
                vb.withUnsafeBufferPointer { vp in
                    (keyBias ?? [0]).withUnsafeBufferPointer { kbp in
                        (relBias ?? [0]).withUnsafeBufferPointer { rbp in
                            out.storage.withUnsafeMutableBufferPointer { op in
                                ws.withUnsafeMutableBufferPointer { wsp in
                                    var head = rows(
                                        tc, q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, o: op.baseAddress! + out.leading,
                                        keyBias: keyBias == nil ? nil : kbp.baseAddress!, relBias: relBias == nil ? nil : rbp.baseAddress!)
                                    kernel(&head, wsp.baseAddress! + 1)
                                }
                            }
                        }
                    }
                }
            }
        }
        guardWritten = ws[(wsCount + 1)...].contains { $0.bitPattern != guardBits }
        return out
    }

    /// Checks queries `queries` of `got` against the Double oracle (bound as in the fused
    /// attention tests: score errors u*((D + 6) S + 5 B) moving each weight by exp(delta),
    /// the softmax and the sum over seq_k keys at most (2 seq_k + 18) u, times max|V|); the
    /// others must hold what they held. Returns the first problem.
    func check(_ tc: RowsAttentionCase, got: StridedMatrix, queries: Range<Int>) -> String? {
        if let bad = got.firstDamagedPadding() { return "O padding at storage index \(bad.index) overwritten with \(bad.value)" }
        var expected = [Float](repeating: 0, count: tc.seqQ * tc.d)
        let qb = q.body, kb = k.body, vb = v.body
        qb.withUnsafeBufferPointer { qp in
            kb.withUnsafeBufferPointer { kp in
                vb.withUnsafeBufferPointer { vp in
                    (keyBias ?? [0]).withUnsafeBufferPointer { kbp in
                        (relBias ?? [0]).withUnsafeBufferPointer { rbp in
                            expected.withUnsafeMutableBufferPointer { ep in
                                KernelOracle.attentionHead(
                                    seqQ: tc.seqQ, seqK: tc.seqK, headDim: tc.d, q: qp.baseAddress!, ldq: q.ld, k: kp.baseAddress!, ldk: k.ld,
                                    v: vp.baseAddress!, ldv: v.ld, o: ep.baseAddress!, ldo: tc.d, scale: tc.scale, causal: tc.causal,
                                    causalOffset: tc.causalOffset, keyBias: keyBias == nil ? nil : kbp.baseAddress!,
                                    relBias: relBias == nil ? nil : rbp.baseAddress! + 1, relBiasZero: tc.seqK - 1, shawClip: 0, shawQK: nil,
                                    shawV: nil, window: tc.window)
                            }
                        }
                    }
                }
            }
        }
        let u = float32UnitRoundoff
        let norm = { (m: StridedMatrix, i: Int) in (0..<m.cols).reduce(0.0) { $0 + Double(m.at(i, $1)) * Double(m.at(i, $1)) }.squareRoot() }
        let maxQ = (0..<tc.seqQ).map { norm(q, $0) }.max() ?? 0, maxK = (0..<tc.seqK).map { norm(k, $0) }.max() ?? 0
        let maxV = v.values.map { Double($0.magnitude) }.max() ?? 0
        let b = (keyBias ?? []).filter(\.isFinite).map { Double($0.magnitude) }.max() ?? 0
        let rb = (relBias ?? []).filter(\.isFinite).map { Double($0.magnitude) }.max() ?? 0
        let scoreErr = u * (Double(tc.d + 6) * Double(tc.scale.magnitude) * maxQ * maxK + 5 * (b + rb))
        let tol = maxV * (u * (18 + 2 * Double(tc.seqK)) + 2 * scoreErr) + 0x1p-140
        for i in 0..<tc.seqQ {
            let sees = (0..<tc.seqK).contains { j in
                !(tc.causal && j > i + tc.causalOffset) && !(tc.window > 0 && i + tc.causalOffset - j >= tc.window)
                    && (keyBias?[j] ?? 0) != -.infinity
            }
            for dd in 0..<tc.d {
                let g = got.at(i, dd)
                if !queries.contains(i) {
                    if g.bitPattern != o.at(i, dd).bitPattern {
                        return "query \(i) is outside the queries computed (\(queries)) but O[\(i)][\(dd)] changed to \(g)"
                    }
                    continue
                }
                if !sees {
                    if g != 0 { return "query \(i) sees no key, so O[\(i)][\(dd)] must be exactly 0; got \(g)" }
                    continue
                }
                let e = Double(expected[i * tc.d + dd])
                if !matches(g, e, tolerance: tol) { return "O[\(i)][\(dd)] = \(g), expected \(e) (|diff| \(abs(Double(g) - e)) > tol \(tol))" }
            }
        }
        return nil
    }
}

@Suite("Attention on in-place keys and values (short sequences, few queries)")
struct RowsAttentionKernelTests {
    /// Cases for ck_f32_attention_short at the table's tile edges.
    static func shortCases(_ table: KernelTable) -> [RowsAttentionCase] {
        let g = table.kernels.pointee.gemm
        let mr = Int(g.mr), nr = Int(g.nr)
        let seqs = Array(Set([1, 2, 3, 7, 13, mr - 1, mr, mr + 1, nr - 1, nr, nr + 1, 2 * nr + 1, 41].filter { $0 >= 1 })).sorted()
        let ds = [1, 7, nr - 1, nr, nr + 1, 64].filter { $0 >= 1 }
        var out: [RowsAttentionCase] = []
        var sel = 0
        for sq in seqs {
            for sk in [sq, seqs[(sel * 5 + 3) % seqs.count]] {
                var c = RowsAttentionCase(seqQ: sq, seqK: sk, d: ds[sel % ds.count])
                c.keyBias = sel % 5 == 4 ? 2 : sel % 3
                c.causal = sel % 4 >= 2
                c.causalOffset = [0, sk - sq, -2, 3][sel % 4]
                c.relBias = sel % 3 == 1
                c.scaleKind = sel % 9 == 7 ? 1 : (sel % 9 == 8 ? 2 : 0)
                c.magnitude = sel % 6 == 5 ? 4 : 1
                c.pad = sel % 4
                out.append(c)
                sel += 1
            }
        }
        // Every option alone and together, at a mid size; seq_k 0 (zeros); a long sentence.
        for opt in 0..<8 {
            var c = RowsAttentionCase(seqQ: 2 * mr + 1, seqK: 2 * nr + 3, d: nr + 3)
            c.keyBias = opt & 1
            c.causal = opt & 2 != 0
            c.causalOffset = nr
            c.relBias = opt & 4 != 0
            c.pad = 1
            out.append(c)
        }
        out.append(RowsAttentionCase(seqQ: 5, seqK: 0, d: 9, pad: 2))
        var long = RowsAttentionCase(seqQ: 130, seqK: 130, d: 64, keyBias: 1)
        long.relBias = true
        out.append(long)
        out += windowCases(seqs: [1, 7, mr + 1, nr + 1, 41], d: nr + 1, decode: false)
        return out
    }

    @Test("ck_f32_attention_short against the Double oracle", arguments: KernelTable.all)
    func short(_ table: KernelTable) {
        let kern = table.kernels
        Self.runAll(table, "attention_short", Self.shortCases(table)) { tc in
            (ck_f32_attention_short_workspace(kern, tc.seqQ, tc.seqK, tc.d), [0..<tc.seqQ], { head, ws in ck_f32_attention_short(kern, &head, ws) })
        }
    }

    /// Runs each case through the kernel `setup` returns (with its workspace size and the
    /// query ranges it computes) and checks it; stops after 8 failures.
    static func runAll(
        _ table: KernelTable, _ name: String, _ cases: [RowsAttentionCase],
        _ setup: (RowsAttentionCase) -> (Int, [Range<Int>], (inout ck_attention_rows, UnsafeMutablePointer<Float>) -> Void)
    ) {
        var failures = 0
        for tc in cases {
            let data = RowsAttentionData(tc)
            let (wsCount, calls, kernel) = setup(tc)
            var guardWritten = false
            let got = data.run(tc, workspace: wsCount, guardWritten: &guardWritten, kernel)
            var problem = guardWritten ? "wrote past the workspace size the header gives (\(wsCount) floats)" : nil
            if problem == nil { problem = data.check(tc, got: got, queries: calls.first!.lowerBound..<calls.last!.upperBound) }
            if let problem {
                failures += 1
                Issue.record("\(table) \(name) \(tc): \(problem)")
                if failures >= 8 { return }
            }
        }
    }

    /// Cases for ck_f32_attention_few: decode steps against key caches of many lengths.
    static func fewCases(_ table: KernelTable) -> [RowsAttentionCase] {
        let nr = Int(table.kernels.pointee.gemm.nr)
        let seqKs = [0, 1, 3, 4, 5, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, nr + 1, 130, 1000]
        let ds = [1, 3, 4, 8, 13, 16, 17, 64, 65, 128]
        var out: [RowsAttentionCase] = []
        var sel = 0
        for sk in seqKs {
            for sq in [1, 2, 3] {
                var c = RowsAttentionCase(seqQ: sq, seqK: sk, d: ds[sel % ds.count])
                if sk >= 1000 { c.d = min(c.d, 16) }
                c.keyBias = sel % 7 == 6 ? 2 : sel % 2
                c.causal = sel % 3 != 0
                c.causalOffset = [sk - sq, sk - sq, 0, -1][sel % 4]
                c.relBias = sel % 4 == 1
                c.scaleKind = sel % 11 == 10 ? 2 : 0
                c.magnitude = sel % 5 == 4 ? 4 : 1
                c.pad = sel % 3
                c.perCall = sq > 1 && sel % 2 == 0 ? 1 : 0
                c.only = c.perCall > 0 && sel % 4 == 0
                out.append(c)
                sel += 1
            }
        }
        out += windowCases(seqs: [1, 5, 17, 65, 300], d: 13, decode: true)
        return out
    }

    /// Sliding windows of 1, a few positions, about half the keys and more than the keys, on
    /// causal self-attention (`decode`: one or two queries at the end of a cache) and alone
    /// (no causal mask: the window still hides keys far left of the query), with key padding
    /// and relative biases on some.
    static func windowCases(seqs: [Int], d: Int, decode: Bool) -> [RowsAttentionCase] {
        var out: [RowsAttentionCase] = []
        var sel = 0
        for sk in seqs {
            for w in Set([1, 2, 3, 5, max(1, sk / 2), sk, sk + 4]).sorted() {
                let sq = decode ? 1 + sel % 2 : sk
                var c = RowsAttentionCase(seqQ: sq, seqK: sk, d: d)
                c.window = w
                c.causal = sel % 5 != 4
                c.causalOffset = decode ? sk - sq : (sel % 7 == 6 ? -2 : 0)
                c.keyBias = sel % 3 == 2 ? 1 : 0
                c.relBias = sel % 4 == 1
                c.pad = sel % 3
                c.tag = 1
                out.append(c)
                sel += 1
            }
        }
        return out
    }

    @Test("ck_f32_attention_few against the Double oracle", arguments: KernelTable.all)
    func few(_ table: KernelTable) {
        let kern = table.kernels
        Self.runAll(table, "attention_few", Self.fewCases(table)) { tc in
            let calls: [Range<Int>] =
                tc.perCall == 0 ? [0..<tc.seqQ] : stride(from: 0, to: tc.seqQ, by: tc.perCall).map { $0..<min(tc.seqQ, $0 + tc.perCall) }
            let run = tc.only ? [calls.last!] : calls
            return (
                ck_f32_attention_few_workspace(tc.seqK, tc.d), run,
                { head, ws in
                    for r in run { ck_f32_attention_few(kern, &head, r.lowerBound, r.count, ws) }
                }
            )
        }
    }
}
