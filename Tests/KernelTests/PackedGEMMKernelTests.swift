// The packed-weight GEMM (ck_f32_pack_weight, ck_f32_pack_a, ck_f32_gemm_packed and its
// epilogue) and the transposed GEMV slot (gemv_t) of every C table this machine runs (the
// test-only AVX-512-layout table too), called directly, against the Double reference of
// AttendTestSupport: boundary shapes (1, primes, micro-tile ±1, k over kc, m over mc), the
// column offset into a taller weight, the work split into row x panel ranges (or one block
// alone: the rest of C must stay bitwise untouched), strides with sentinel padding that must
// stay untouched, NaN in C with beta 0, non-finite inputs. Each failure names the table, the
// case, its seed and the element.
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// `ck_act` kinds and a Double version of each (the activation contract of attend_kernels.h).
private let activations: [(kind: Int32, name: String, f: @Sendable (Double) -> Double)] = [
    (Int32(CK_ACT_RELU), "relu", { max($0, 0) }),
    (Int32(CK_ACT_GELU), "gelu", { $0 / 2 * (1 + erf($0 / 2.0.squareRoot())) }),
    (Int32(CK_ACT_GELU_TANH), "gelu_tanh", { $0 / 2 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }),
    (Int32(CK_ACT_SILU), "silu", { $0 / (1 + exp(-$0)) }),
]

/// A 64-byte aligned buffer of `count` floats followed by 16 guard floats (sentinel), for
/// the buffers the header sizes (packed weight, packed A).
private final class AlignedGuarded {
    let count: Int
    let base: UnsafeMutablePointer<Float>
    init(_ count: Int) {
        self.count = count
        base = UnsafeMutableRawPointer.allocate(byteCount: (count + 16) * 4, alignment: 64).bindMemory(to: Float.self, capacity: count + 16)
        base.initialize(repeating: outputSentinel, count: count + 16)
    }
    deinit { base.deallocate() }
    /// Whether the 16 floats past `count` still hold the sentinel.
    var guardIntact: Bool { (count..<(count + 16)).allSatisfy { base[$0].bitPattern == outputSentinel.bitPattern } }
}

struct PackedKernelCase: Sendable, CustomStringConvertible {
    var m: Int
    var n: Int
    var k: Int
    /// weight_col0, in micro-panels of the table (the product uses weight rows col0*nr ...).
    var colPanels = 0
    /// Weight rows after the product's.
    var extraRows = 0
    var beta: Float = 0
    /// C_old NaN (beta 0: it must not be read).
    var nanC = false
    var bias = false
    /// Index into `activations`, or nil.
    var activation: Int? = nil
    var residual = false
    /// A packed up front by ck_f32_pack_a.
    var packedA = false
    /// The calls: rows in `rowParts` ranges x panels in `panelParts` ranges.
    var rowParts = 1
    var panelParts = 1
    /// Only the block (last row range, first panel range) is computed.
    var partial = false
    var pad = 0
    var off = 0
    /// A few ±inf / NaN in A.
    var nonFinite = false
    var tag = 0

    var seed: UInt64 {
        caseSeed(
            m, n, k, colPanels, extraRows, Int(beta.bitPattern), nanC ? 1 : 0, bias ? 1 : 0, activation ?? -1, residual ? 1 : 0,
            packedA ? 1 : 0, rowParts, panelParts, partial ? 1 : 0, pad, off, nonFinite ? 1 : 0, tag)
    }

    var description: String {
        "m=\(m) n=\(n) k=\(k) col0=\(colPanels) panels extra=\(extraRows) beta=\(beta)\(nanC ? " C_old=NaN" : "") bias=\(bias) "
            + "act=\(activation.map { activations[$0].name } ?? "none") residual=\(residual) packedA=\(packedA) "
            + "calls \(rowParts)x\(panelParts)\(partial ? " (one block)" : "") pad=\(pad) off=\(off)\(nonFinite ? " non-finite A" : "") "
            + "\(SeededRNG(seed: seed))"
    }

    /// The cases for a table with this blocking.
    static func sweep(_ g: ck_gemm_blocking) -> [PackedKernelCase] {
        let mr = Int(g.mr), nr = Int(g.nr), mc = Int(g.mc), kc = Int(g.kc)
        var out: [PackedKernelCase] = []
        // Tile edges: every m x n pair, k, epilogue, split and layout cycling.
        let ms = edgeSizes(mr, includeZero: false).filter { $0 <= 2 * mr + 1 }
        let ns = edgeSizes(nr, includeZero: false).filter { $0 <= 2 * nr + 3 }
        let ks = [1, 2, 7, 17, 64]
        var sel = 0
        for m in ms {
            for n in ns {
                var c = PackedKernelCase(m: m, n: n, k: ks[sel % ks.count])
                c.colPanels = sel % 3 == 2 ? 1 + sel % 2 : 0
                c.extraRows = sel % 4
                c.beta = [0, 0, 1, -1.5][sel % 4]
                c.nanC = sel % 8 == 1
                c.bias = sel % 2 == 0
                c.activation = sel % 3 == 0 ? nil : (sel / 3) % activations.count
                c.residual = sel % 5 < 2
                c.packedA = sel % 3 == 1
                c.rowParts = 1 + sel % 2
                c.panelParts = 1 + (sel / 2) % 3
                c.partial = sel % 7 == 3
                c.pad = sel % 4
                c.off = sel % 3
                out.append(c)
                sel += 1
            }
        }
        // k over kc (the epilogue after the last k block only), with and without packed A.
        for (i, k) in [kc - 1, kc, kc + 1, 2 * kc + 3].enumerated() {
            for packedA in [false, true] {
                var c = PackedKernelCase(m: mr + 1, n: nr + 1, k: k)
                c.beta = i % 2 == 0 ? 0 : 0.5
                c.bias = true
                c.activation = i % activations.count
                c.residual = true
                c.packedA = packedA
                c.rowParts = 2
                c.panelParts = 2
                c.pad = 1
                out.append(c)
            }
        }
        // m over mc (several row blocks per call), split at non-tile rows unless A is packed.
        for (i, m) in [mc - 1, mc, mc + 1, 2 * mc + 3].enumerated() {
            var c = PackedKernelCase(m: m, n: 2 * nr + 1, k: 5)
            c.colPanels = i % 2
            c.bias = true
            c.activation = 1
            c.residual = i % 2 == 0
            c.packedA = i >= 2
            c.rowParts = 1 + i % 3
            c.panelParts = 2
            c.pad = 2
            c.off = 1
            out.append(c)
        }
        // Column offsets into a taller weight (a fused QKV's keys and values), every block alone.
        for colPanels in [1, 2] {
            for partial in [false, true] {
                var c = PackedKernelCase(m: 2 * mr + 3, n: 3 * nr - 1, k: 33)
                c.colPanels = colPanels
                c.extraRows = nr + 1
                c.bias = true
                c.residual = true
                c.activation = 0
                c.rowParts = 3
                c.panelParts = 3
                c.partial = partial
                c.pad = 3
                out.append(c)
            }
        }
        // Degenerate: k = 0 (C = beta * C, then the epilogue), non-finite inputs.
        for beta: Float in [0, 2] {
            var c = PackedKernelCase(m: mr + 2, n: nr + 2, k: 0)
            c.beta = beta
            c.bias = true
            c.activation = 3
            c.residual = true
            out.append(c)
        }
        for tag in 0..<2 {
            var c = PackedKernelCase(m: mr + 1, n: nr + 1, k: 9)
            c.nonFinite = true
            c.activation = tag == 0 ? 0 : nil
            c.bias = true
            c.tag = tag
            out.append(c)
        }
        return out
    }
}

/// Splits 0..<count into `parts` ranges with inner bounds at multiples of `step` (fewer when
/// count is small): how the Swift split calls the kernel.
private func ranges(_ count: Int, parts: Int, step: Int) -> [Range<Int>] {
    let units = (count + step - 1) / step
    let p = max(1, min(parts, units))
    var bounds = [0]
    for t in 1..<p { bounds.append(units * t / p * step) }
    bounds.append(count)
    return zip(bounds, bounds.dropFirst()).map { $0..<$1 }
}

@Suite("Packed-weight GEMM and transposed GEMV kernels")
struct PackedGEMMKernelTests {
    /// Runs one case and checks it; returns the number of elements checked.
    @discardableResult
    static func check(_ table: TestedBackend, _ tc: PackedKernelCase, budget: inout FailureBudget) -> Int {
        let kern = table.kernels!
        let nr = Int(kern.pointee.gemm.nr), mr = Int(kern.pointee.gemm.mr)
        let col0 = tc.colPanels * nr, weightN = col0 + tc.n + tc.extraRows
        var rng = SeededRNG(seed: tc.seed)
        var av = rng.floats(tc.m * tc.k)
        if tc.nonFinite {
            for i in av.indices where rng.nextUnit() < 0.05 { av[i] = SpecialFloats.nonFinite[Int(rng.next() % 3)] }
        }
        let a = StridedMatrix(rows: tc.m, cols: tc.k, ld: max(tc.k, 1) + tc.pad, values: av, sentinel: operandSentinel, leading: tc.off)
        let w = StridedMatrix(
            rows: weightN, cols: tc.k, ld: max(tc.k, 1) + tc.pad + 1, values: rng.floats(weightN * tc.k), sentinel: operandSentinel,
            leading: 2 * tc.off)
        let cv: [Float] = tc.nanC ? [Float](repeating: .nan, count: tc.m * tc.n) : rng.floats(tc.m * tc.n)
        var c = StridedMatrix(rows: tc.m, cols: tc.n, ld: tc.n + tc.pad, values: cv, sentinel: outputSentinel, leading: tc.off + 1)
        let bias = rng.floats(tc.n, in: -2...2)
        let residual = StridedMatrix(rows: tc.m, cols: tc.n, ld: tc.n + 2, values: rng.floats(tc.m * tc.n), sentinel: operandSentinel, leading: 1)
        let what = "\(table) \(tc)"

        let packedW = AlignedGuarded(ck_f32_packed_weight_size(kern, weightN, tc.k))
        let panelsW = (weightN + nr - 1) / nr
        let aBody = a.body, wBody = w.body, rBody = residual.body
        // The weight packed in two panel ranges, the second running past the end (clamped).
        wBody.withUnsafeBufferPointer { wp in
            ck_f32_pack_weight(kern, weightN, tc.k, wp.baseAddress!, w.ld, 0, panelsW / 2, packedW.base)
            ck_f32_pack_weight(kern, weightN, tc.k, wp.baseAddress!, w.ld, panelsW / 2, panelsW + 2, packedW.base)
        }
        if !packedW.guardIntact { budget.record("\(what): ck_f32_pack_weight wrote past ck_f32_packed_weight_size") }
        let packedA = tc.packedA ? AlignedGuarded(ck_f32_packed_a_size(kern, tc.m, tc.k)) : nil
        if let packedA {
            aBody.withUnsafeBufferPointer { ap in ck_f32_pack_a(kern, tc.m, tc.k, ap.baseAddress!, a.ld, packedA.base) }
            if !packedA.guardIntact { budget.record("\(what): ck_f32_pack_a wrote past ck_f32_packed_a_size") }
        }
        var rowRanges = ranges(tc.m, parts: tc.rowParts, step: tc.packedA ? mr : 1)
        var panelRanges = ranges((tc.n + nr - 1) / nr, parts: tc.panelParts, step: 1)
        if tc.partial {
            rowRanges = [rowRanges.last!]
            panelRanges = [panelRanges.first!]
        }
        let wsCount = ck_f32_gemm_packed_workspace(kern, tc.m, tc.k)
        var ws = [Float](repeating: outputSentinel, count: wsCount + 1 + 16)
        let before = c.storage
        aBody.withUnsafeBufferPointer { ap in
            rBody.withUnsafeBufferPointer { rp in
                bias.withUnsafeBufferPointer { bp in
                    c.storage.withUnsafeMutableBufferPointer { cp in
                        ws.withUnsafeMutableBufferPointer { wsp in
                            var g = ck_gemm_packed(
                                m: tc.m, n: tc.n, k: tc.k, a: ap.baseAddress!, lda: a.ld, packed_a: packedA.map { UnsafePointer($0.base) },
                                packed_w: packedW.base, weight_n: weightN, weight_col0: col0, c: cp.baseAddress! + c.leading, ldc: c.ld,
                                beta: tc.beta,
                                epilogue: ck_gemm_epilogue(
                                    bias: tc.bias ? bp.baseAddress! : nil,
                                    activation: tc.activation.map { activations[$0].kind } ?? Int32(CK_ACT_NONE),
                                    residual: tc.residual ? rp.baseAddress! : nil, ldr: residual.ld), trans_a: 0)
                            for rows in rowRanges {
                                for panels in panelRanges {
                                    ck_f32_gemm_packed(
                                        kern, &g, rows.lowerBound, rows.upperBound, panels.lowerBound, panels.upperBound, wsp.baseAddress! + 1)
                                }
                            }
                        }
                    }
                }
            }
        }
        if ws[(wsCount + 1)...].contains(where: { $0.bitPattern != outputSentinel.bitPattern }) {
            budget.record("\(what): ck_f32_gemm_packed wrote past ck_f32_gemm_packed_workspace (\(wsCount) floats)")
        }
        if let bad = c.firstDamagedPadding() {
            budget.record("\(what): C padding at storage index \(bad.index) was overwritten with \(bad.value)")
        }
        let rows = tc.partial ? rowRanges[0] : 0..<tc.m
        let cols = tc.partial ? (panelRanges[0].lowerBound * nr)..<min(tc.n, panelRanges[0].upperBound * nr) : 0..<tc.n
        for i in 0..<tc.m {
            for j in 0..<tc.n where !(rows.contains(i) && cols.contains(j)) {
                let idx = c.leading + i * c.ld + j
                if c.storage[idx].bitPattern != before[idx].bitPattern {
                    budget.record("\(what): C[\(i)][\(j)] lies outside the block computed (rows \(rows), columns \(cols)) but changed")
                    return 0
                }
            }
        }
        let ref = referenceGEMM(
            m: tc.m, n: tc.n, k: tc.k, alpha: 1, a: aBody, lda: a.ld, transA: false, b: Array(wBody[(col0 * w.ld)...]), ldb: w.ld,
            transB: true, beta: tc.beta, c: Array(before[c.leading...]), ldc: c.ld)
        let u = float32UnitRoundoff
        var checked = 0
        for i in rows {
            for j in cols {
                let idx = i * tc.n + j
                var e = ref.value[idx]
                var tol = gemmTolerance(k: tc.k, alpha: 1, bound: ref.bound[idx], scaledC: ref.scaledC[idx])
                if tol.isNaN { tol = 0 }
                if tc.bias {
                    e += Double(bias[j])
                    tol += u * abs(e)
                }
                if let act = tc.activation {
                    // The kernel applies the activation to its float z: Lipschitz (<= 1.13) times
                    // z's error, plus the activation's own (2e-6 relative; GELU's grows like x^2).
                    let x = e
                    e = activations[act].f(x)
                    // An infinite input (non-finite A) has an exact result: relu(-inf) = 0.
                    tol = x.isFinite ? 1.13 * tol + (2e-6 + 1e-7 * x * x) * abs(e) + 0x1p-140 : 0
                }
                if tc.residual {
                    e += Double(residual.at(i, j))
                    tol += u * abs(e)
                }
                let got = c.at(i, j)
                checked += 1
                if !matches(got, e, tolerance: tol) {
                    budget.record("\(what): C[\(i)][\(j)] = \(got), expected \(e) (|diff| \(abs(Double(got) - e)) > tol \(tol))")
                    return checked
                }
            }
        }
        if !bitwiseEqual(a.body, aBody) || !bitwiseEqual(w.body, wBody) {
            budget.record("\(what): the kernel wrote into A or W")
        }
        return checked
    }

    @Test("ck_f32_gemm_packed with its epilogue against the Double reference", arguments: TestedBackend.nativeOnly)
    func packedGEMM(_ table: TestedBackend) {
        var budget = FailureBudget()
        var checked = 0
        let cases = PackedKernelCase.sweep(table.blocking)
        for tc in cases { checked += Self.check(table, tc, budget: &budget) }
        budget.finish()
        #expect(checked > 1000, "\(table): only \(checked) elements checked over \(cases.count) cases")
    }

    @Test("a product split over threads equals the one-call product bitwise", arguments: TestedBackend.nativeOnly)
    func splitIsBitwiseStable(_ table: TestedBackend) {
        // The header: every sum runs in the same order whatever the split. One call over
        // everything against a 3 x 3 grid of calls (and A packed up front).
        let kern = table.kernels!
        let g = kern.pointee.gemm
        let mr = Int(g.mr), nr = Int(g.nr)
        let (m, n, k) = (3 * mr + 2, 3 * nr + 5, Int(g.kc) + 7)
        var rng = SeededRNG(seed: caseSeed(m, n, k, 77))
        let a = rng.floats(m * k), w = rng.floats(n * k), bias = rng.floats(n)
        let packedW = AlignedGuarded(ck_f32_packed_weight_size(kern, n, k))
        let packedA = AlignedGuarded(ck_f32_packed_a_size(kern, m, k))
        var results: [[Float]] = []
        a.withUnsafeBufferPointer { ap in
            w.withUnsafeBufferPointer { wp in ck_f32_pack_weight(kern, n, k, wp.baseAddress!, k, 0, (n + nr - 1) / nr, packedW.base) }
            ck_f32_pack_a(kern, m, k, ap.baseAddress!, k, packedA.base)
            bias.withUnsafeBufferPointer { bp in
                for split in [false, true] {
                    var c = [Float](repeating: .nan, count: m * n)
                    var ws = [Float](repeating: 0, count: ck_f32_gemm_packed_workspace(kern, m, k))
                    c.withUnsafeMutableBufferPointer { cp in
                        var args = ck_gemm_packed(
                            m: m, n: n, k: k, a: ap.baseAddress!, lda: k, packed_a: split ? UnsafePointer(packedA.base) : nil,
                            packed_w: packedW.base, weight_n: n, weight_col0: 0, c: cp.baseAddress!, ldc: n, beta: 0,
                            epilogue: ck_gemm_epilogue(bias: bp.baseAddress!, activation: Int32(CK_ACT_GELU), residual: nil, ldr: 0), trans_a: 0)
                        for rows in split ? ranges(m, parts: 3, step: mr) : [0..<m] {
                            for panels in split ? ranges((n + nr - 1) / nr, parts: 3, step: 1) : [0..<((n + nr - 1) / nr)] {
                                ck_f32_gemm_packed(kern, &args, rows.lowerBound, rows.upperBound, panels.lowerBound, panels.upperBound, &ws)
                            }
                        }
                    }
                    results.append(c)
                }
            }
        }
        if let idx = firstBitwiseDifference(results[1], results[0]) {
            Issue.record(
                "\(table) m=\(m) n=\(n) k=\(k): the 3 x 3 split differs from one call at C[\(idx / n)][\(idx % n)]: \(results[1][idx]) vs \(results[0][idx])"
            )
        }
    }

    @Test("ck_f32_pack_a_rows over row ranges writes exactly ck_f32_pack_a's bytes", arguments: TestedBackend.nativeOnly)
    func packARowsEqualsPackA(_ table: TestedBackend) {
        // Threads pack disjoint row ranges of one A (PackedGEMM.swift): the pieces together
        // must be ck_f32_pack_a's layout bit for bit, zero padding included, with nothing
        // written past the buffer. A row0 inside a panel is rounded down to the panel.
        let kern = table.kernels!
        let g = kern.pointee.gemm
        let mr = Int(g.mr), kc = Int(g.kc)
        for (m, k, lda) in [(1, 3, 3), (mr, kc, kc + 1), (3 * mr + 5, kc + 9, kc + 16), (7 * mr - 1, 2 * kc + 1, 2 * kc + 1)] {
            var rng = SeededRNG(seed: caseSeed(m, k, lda, 91))
            let a = rng.floats(m * lda)
            let whole = AlignedGuarded(ck_f32_packed_a_size(kern, m, k))
            let size = ck_f32_packed_a_size(kern, m, k)
            let tiles = (m + mr - 1) / mr
            a.withUnsafeBufferPointer { ap in
                ck_f32_pack_a(kern, m, k, ap.baseAddress!, lda, whole.base)
                for parts in [1, 2, 3, tiles] {
                    let pieces = AlignedGuarded(size)
                    pieces.base.update(repeating: .nan, count: size)
                    for part in (0..<parts).reversed() {
                        let r0 = part * tiles / parts * mr, r1 = (part + 1) * tiles / parts * mr
                        // A row0 one past the panel start must still fill the whole panel.
                        ck_f32_pack_a_rows(kern, m, k, ap.baseAddress!, lda, r0 + (r1 > r0 + 1 ? 1 : 0), r1, pieces.base)
                    }
                    #expect(pieces.guardIntact, "\(table) m=\(m) k=\(k) parts=\(parts): ck_f32_pack_a_rows wrote past the buffer")
                    let same = (0..<size).allSatisfy { whole.base[$0].bitPattern == pieces.base[$0].bitPattern }
                    #expect(same, "\(table) m=\(m) k=\(k) lda=\(lda) parts=\(parts): the pieces differ from ck_f32_pack_a")
                }
            }
        }
    }

    @Test("gemv_t against the Double reference, each column independent of the block", arguments: TestedBackend.nativeOnly)
    func gemvT(_ table: TestedBackend) {
        let kern = table.kernels!
        var budget = FailureBudget()
        // n around the vector widths (4, 8, 16 lanes) and the 4-vector column groups.
        let ns = Array(Set([1, 2, 3, 5, 7, 13, 31, 127, 129] + [4, 8, 16, 32, 64, 128].flatMap { [$0 - 1, $0, $0 + 1] })).sorted()
        let ks = [0, 1, 2, 3, 17, 300]
        var sel = 0
        for n in ns {
            for k in ks {
                sel += 1
                let alpha: Float = [1, -0.5, 2.5][sel % 3], beta: Float = [0, 1, -1.5, 0][sel % 4]
                let pad = sel % 4, nanY = beta == 0 && sel % 2 == 0, nonFinite = sel % 11 == 5
                let seed = caseSeed(n, k, sel, 31)
                var rng = SeededRNG(seed: seed)
                var wv = rng.floats(k * n)
                if nonFinite {
                    for i in wv.indices where rng.nextUnit() < 0.05 { wv[i] = SpecialFloats.nonFinite[Int(rng.next() % 3)] }
                }
                let x = StridedMatrix(rows: 1, cols: k, ld: max(k, 1), values: rng.floats(k), sentinel: operandSentinel, leading: sel % 3)
                let w = StridedMatrix(rows: k, cols: n, ld: n + pad, values: wv, sentinel: operandSentinel, leading: 1)
                let yv: [Float] = nanY ? [Float](repeating: .nan, count: n) : rng.floats(n)
                var y = StridedMatrix(rows: 1, cols: n, ld: n, values: yv, sentinel: outputSentinel, leading: 1 + sel % 5)
                let what =
                    "\(table) gemv_t n=\(n) k=\(k) alpha=\(alpha) beta=\(beta) ldw=\(w.ld)\(nanY ? " y_old=NaN" : "")\(nonFinite ? " non-finite W" : "") \(SeededRNG(seed: seed))"
                let yOld = y.body, xb = x.body, wb = w.body
                func run(_ d0: Int, into out: UnsafeMutablePointer<Float>) {
                    xb.withUnsafeBufferPointer { xp in
                        wb.withUnsafeBufferPointer { wp in
                            kern.pointee.gemv_t(n - d0, k, alpha, xp.baseAddress!, wp.baseAddress! + d0, w.ld, beta, out)
                        }
                    }
                }
                y.storage.withUnsafeMutableBufferPointer { run(0, into: $0.baseAddress! + y.leading) }
                if let bad = y.firstDamagedPadding() { budget.record("\(what): y padding at \(bad.index) overwritten with \(bad.value)") }
                let ref = referenceGEMM(
                    m: 1, n: n, k: k, alpha: alpha, a: xb, lda: max(k, 1), transA: false, b: wb, ldb: w.ld, transB: false,
                    beta: beta, c: yOld, ldc: n)
                if let bad = firstMismatch(ref, k: k, alpha: alpha, got: { y.at($0, $1) }) {
                    budget.record("\(what): \(bad)")
                    continue
                }
                // Columns d0 ..< n alone give bitwise the same values (the in-order sum per column).
                for d0 in Set([1, 3, 4, 8, n / 2]) where d0 < n {
                    var part = Array(yOld[d0..<n])
                    part.withUnsafeMutableBufferPointer { run(d0, into: $0.baseAddress!) }
                    let full = Array(y.values[d0...])
                    // Bitwise, but any NaN equals any NaN (their sign and payload are not specified).
                    if let idx = part.indices.first(where: { part[$0].bitPattern != full[$0].bitPattern && !(part[$0].isNaN && full[$0].isNaN) }) {
                        budget.record(
                            "\(what): column \(d0 + idx) computed with columns \(d0)..<\(n) alone is \(part[idx]), in the full call \(y.at(0, d0 + idx))"
                        )
                        break
                    }
                }
            }
        }
        budget.finish()
    }
}
