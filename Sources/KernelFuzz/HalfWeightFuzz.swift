// The 16-bit weight kernels (attend_kernels.h, "16-bit weights"): w16_gemv (1 to 8 rows; the
// float32 multi-row gemv_rows with it, the same kernel body over a float32 weight) and ck_w16_gemm against KernelOracle.gemm on the widened weight. Widening is exact, so the
// bound is the float32 product's (gemmTolerance on sum |x| |widen(w)|): a wrong widening (a
// lost subnormal, a misplaced exponent, the wrong type) or a wrong row breaks it. The weight
// is drawn like a float32 operand of the same value mixes and rounded to F16 or BF16 (so
// F16 overflows to infinity and underflows to subnormals); its 16-bit buffer has guard words
// before and after every row's padding, which must stay untouched, as must x.
import Attend
import CKernels

/// A 16-bit copy of a GuardedMatrix's layout (same ld and offset), with guard words.
final class GuardedHalfMatrix {
    let rows: Int, cols: Int, ld: Int, offset: Int, count: Int
    let storage: UnsafeMutablePointer<UInt16>
    static let guardWord: UInt16 = 0x7E5A  // an F16 / BF16 NaN with a recognisable payload

    /// `w`'s values rounded to 16 bits (BF16 when `bfloat16`); `w` is rewritten with the
    /// widened values, so the oracle and the bounds see exactly what the kernel reads.
    init(rounding w: GuardedMatrix, bfloat16: Bool) {
        (rows, cols, ld, offset, count) = (w.rows, w.cols, w.ld, w.offset, w.count)
        storage = .allocate(capacity: max(count, 1))
        storage.initialize(repeating: GuardedHalfMatrix.guardWord, count: max(count, 1))
        for i in 0..<rows {
            for j in 0..<cols {
                let bits = KernelOracle.round16(w[i, j], bfloat16: bfloat16)
                storage[offset + i * ld + j] = bits
                w.base[i * ld + j] = KernelOracle.widen16(bits, bfloat16: bfloat16)
            }
        }
    }
    deinit { storage.deallocate() }

    var base: UnsafeMutablePointer<UInt16> { storage + offset }
    func snapshot() -> [UInt16] { Array(UnsafeBufferPointer(start: storage, count: count)) }
    func unchanged(since snap: [UInt16]) -> Bool { (0..<count).allSatisfy { storage[$0] == snap[$0] } }
}

/// `w16_gemv` and `gemv_rows`: 1 to 8 rows (rows of x at stride ldx, of y at ldy: both sides
/// of every variant's row group), n and k at the vector and unroll edges and both sides of the
/// short-row switch (8192), F16, BF16 and float32 weights, alpha/beta including 0,
/// y_old NaN when beta == 0.
struct W16GEMVFuzz: FuzzKernel {
    let name = "w16-gemv"

    final class Case: CustomStringConvertible {
        var rows = 1, n = 0, k = 0, alpha: Float = 1, beta: Float = 0, bf16 = false, f32 = false, mix = ValueMix.uniform, yMode = ""
        var x: GuardedMatrix!, w: GuardedMatrix!, w16: GuardedHalfMatrix!, y: GuardedMatrix!
        var description: String {
            "\(f32 ? "f32 (gemv_rows)" : bf16 ? "bf16" : "f16") rows=\(rows) n=\(n) k=\(k) alpha=\(alpha) beta=\(beta) ldx=\(x.ld) ldw=\(w.ld) ldy=\(y.ld) "
                + "misalign(x,W,y)=(\(x.offset - 16),\(w.offset - 16),\(y.offset - 16)) values \(mix), y_old \(yMode)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.bf16 = rng.chance(0.5)
        c.f32 = rng.chance(0.3)
        c.rows = rng.chance(0.3) ? rng.pick([1, 2]) : rng.int(1...8)
        c.n = boundarySize(&rng, edges: [1, 3, 4, 5, 8, 12, table.nr], small: 16, maxLarge: 100)
        c.k =
            rng.chance(0.15)
            ? rng.pick([511, 512, 513, 520, 1023, 1024, 1025, 8191, 8192, 8193])
            : boundarySize(&rng, edges: [1, 4, 8, 16, 32, 64, table.nr], small: 40, maxLarge: 1100)
        c.alpha = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(alphaChoices)
        c.beta = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(betaChoices)
        c.mix = rng.pick([.uniform, .uniform, .finiteSpecials, .integers, .nonFinite, .tiny])
        if c.alpha == 0 && c.mix == .nonFinite { c.mix = .finiteSpecials }
        if c.alpha == 0 && !c.bf16 && !c.f32 { c.mix = .uniform }  // F16 overflow would put infinities in W: alpha * inf is NaN
        c.x = makeOperand(&rng, rows: c.k == 0 ? 0 : c.rows, cols: c.k, mix: c.mix)
        c.w = makeOperand(&rng, rows: c.n, cols: c.k, mix: c.mix)
        // A float32 case keeps W as drawn (the 16-bit copy, unused, rounds a copy of it).
        c.w16 = GuardedHalfMatrix(rounding: c.f32 ? c.w.copy() : c.w, bfloat16: c.bf16)
        c.y = GuardedMatrix(rows: c.n == 0 ? 0 : c.rows, cols: c.n, ld: max(c.n, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        if c.beta == 0 && rng.chance(0.4) {
            c.yMode = "NaN (beta 0: not read)"
            c.y.fill { _, _ in .nan }
        } else {
            c.yMode = "uniform"
            c.y.fill { _, _ in rng.float(-1, 1) }
        }
        return c
    }

    struct Run { let out: GuardedMatrix, xSnap: [UInt32], wSnap: [UInt16], fSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let xSnap = c.x.snapshot(), wSnap = c.w16.snapshot(), fSnap = c.w.snapshot()
        let out = c.y.copy()
        // k == 0: x has no rows; any valid address serves (the kernel reads none of it).
        if c.f32 {
            table.kernels.pointee.gemv_rows(c.rows, c.n, c.k, c.alpha, c.x.base, c.x.ld, c.w.base, c.w.ld, c.beta, out.base, out.ld)
        } else {
            table.kernels.pointee.w16_gemv(
                c.bf16 ? 1 : 0, c.rows, c.n, c.k, c.alpha, c.x.base, c.x.ld, c.w16.base, c.w16.ld, c.beta, out.base, out.ld)
        }
        return Run(out: out, xSnap: xSnap, wSnap: wSnap, fSnap: fSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("y") { return bad }
        if !c.x.unchanged(since: r.xSnap) || !c.w16.unchanged(since: r.wSnap) || !c.w.unchanged(since: r.fSnap) {
            return "the kernel wrote into x or W"
        }
        if c.n == 0 { return nil }
        if c.k == 0 {
            for i in 0..<c.rows {
                for j in 0..<c.n {
                    let want = c.beta == 0 ? 0 : c.beta * c.y[i, j]
                    if !matches(r.out[i, j], Double(want), tolerance: Double(abs(want)) * u) { return "k = 0: y[\(i), \(j)] = \(r.out[i, j]), want \(want)" }
                }
            }
            return nil
        }
        let oracle = c.y.copy()
        KernelOracle.gemm(
            m: c.rows, n: c.n, k: c.k, alpha: c.alpha, a: c.x.base, lda: c.x.ld, transA: false, b: c.w.base, ldb: c.w.ld,
            transB: true, beta: c.beta, c: oracle.base, ldc: oracle.ld)
        let bound = productBound(m: c.rows, n: c.n, k: c.k, a: c.x, transA: false, b: c.w, transB: true)
        return checkProduct(m: c.rows, n: c.n, k: c.k, alpha: c.alpha, beta: c.beta, got: r.out, oracle: oracle, bound: bound, oldC: c.y)
    }
}

/// `ck_w16_gemm`: C = A W^T + beta C with W 16-bit, m, n, k at tile and cache-block edges,
/// padded strides, misaligned operands and workspace (whose guard must stay untouched),
/// F16 and BF16, C_old NaN when beta == 0.
struct W16GEMMFuzz: FuzzKernel {
    let name = "w16-gemm"

    final class Case: CustomStringConvertible {
        var m = 0, n = 0, k = 0, beta: Float = 0, bf16 = false, mix = ValueMix.uniform, cMode = "", wsMisalign = 0
        var a: GuardedMatrix!, w: GuardedMatrix!, w16: GuardedHalfMatrix!, c: GuardedMatrix!
        var description: String {
            "\(bf16 ? "bf16" : "f16") m=\(m) n=\(n) k=\(k) beta=\(beta) lda=\(a.ld) ldw=\(w.ld) ldc=\(c.ld) "
                + "misalign(A,W,C)=(\(a.offset - 16),\(w.offset - 16),\(c.offset - 16)) values \(mix), C_old \(cMode)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let g = table.gemm
        let mr = Int(g.mr), nr = Int(g.nr), mc = Int(g.mc), kc = Int(g.kc)
        let c = Case()
        c.bf16 = rng.chance(0.5)
        let shape = rng.unit()
        if shape < 0.8 {
            c.m = boundarySize(&rng, edges: [1, 2, 3, mr, 2 * mr, nr], small: 20)
            c.n = boundarySize(&rng, edges: [1, 2, nr, 2 * nr, mr], small: 20)
            c.k = boundarySize(&rng, edges: [1, 2, 4, 8, 16, 17], small: 24, maxLarge: 64)
        } else if shape < 0.9 {  // the kc block edge, and the 256-float widening chunks
            c.k = rng.pick([kc - 1, kc, kc + 1, 255, 257, 2 * kc + 1])
            c.m = rng.int(1...mr + 1)
            c.n = rng.int(1...nr + 1)
        } else {  // the mc block edge
            c.m = rng.pick([mc - 1, mc, mc + 1])
            c.n = rng.int(1...nr + 1)
            c.k = rng.int(1...6)
        }
        c.beta = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(betaChoices)
        c.mix = rng.pick([.uniform, .uniform, .finiteSpecials, .integers, .nonFinite, .tiny])
        c.a = makeOperand(&rng, rows: c.m, cols: c.k, mix: c.mix)
        c.w = makeOperand(&rng, rows: c.n, cols: c.k, mix: c.mix)
        c.w16 = GuardedHalfMatrix(rounding: c.w, bfloat16: c.bf16)
        c.c = GuardedMatrix(rows: c.m, cols: c.n, ld: max(c.n, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        if c.beta == 0 && rng.chance(0.4) {
            c.cMode = "NaN (beta 0: not read)"
            c.c.fill { _, _ in .nan }
        } else {
            c.cMode = "uniform"
            c.c.fill { _, _ in rng.float(-1, 1) }
        }
        c.wsMisalign = rng.below(16)
        return c
    }

    struct Run { let out: GuardedMatrix, aSnap: [UInt32], wSnap: [UInt16], workspace: GuardedMatrix }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let aSnap = c.a.snapshot(), wSnap = c.w16.snapshot()
        let out = c.c.copy()
        let wsCount = ck_w16_gemm_workspace(table.kernels, c.m, c.n, c.k)
        let ws = GuardedMatrix(rows: 1, cols: wsCount, ld: wsCount, misalign: c.wsMisalign, sentinel: outputSentinel)
        ck_w16_gemm(table.kernels, c.bf16 ? 1 : 0, c.m, c.n, c.k, c.a.base, c.a.ld, c.w16.base, c.w16.ld, c.beta, out.base, out.ld, ws.base)
        return Run(out: out, aSnap: aSnap, wSnap: wSnap, workspace: ws)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("C") { return bad }
        if let bad = r.workspace.damagedPadding("the workspace (ck_w16_gemm_workspace floats)") { return bad }
        if !c.a.unchanged(since: r.aSnap) || !c.w16.unchanged(since: r.wSnap) { return "the kernel wrote into A or W" }
        if c.m == 0 || c.n == 0 { return nil }
        let oracle = c.c.copy()
        KernelOracle.gemm(
            m: c.m, n: c.n, k: c.k, alpha: 1, a: c.a.base, lda: c.a.ld, transA: false, b: c.w.base, ldb: c.w.ld, transB: true,
            beta: c.beta, c: oracle.base, ldc: oracle.ld)
        let bound = productBound(m: c.m, n: c.n, k: c.k, a: c.a, transA: false, b: c.w, transB: true)
        return checkProduct(m: c.m, n: c.n, k: c.k, alpha: 1, beta: c.beta, got: r.out, oracle: oracle, bound: bound, oldC: c.c)
    }
}
