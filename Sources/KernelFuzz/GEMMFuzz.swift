// GEMM, its micro-kernel and GEMV against KernelOracle.gemm.
import Attend
import CKernels
import Foundation

/// The allowed |got - oracle| of one element of a float32 product, twice the bound each of
/// the two (C kernel, Double oracle) keeps from the exact value (see the GEMM tests):
/// a float32 dot product of length k in any order errs by at most ~k*u * sum|a||b| (Higham
/// 3.1); the driver adds per-kc-block roundings of alpha*acc and the add into C, so
/// 2*(k+1)*u*|alpha|*sum|a||b| bounds the product, (k+2)*u*|beta*C_old| the old C, and a
/// rounding in the subnormal range errs by 2^-150 absolute, at most 4*(k+1) of them:
/// (k+1)*2^-148. alpha == 0: the product is not evaluated.
func gemmTolerance(k: Int, alpha: Float, bound: Double, scaledC: Double) -> Double {
    let product = alpha == 0 ? 0 : 2 * Double(k + 1) * u * Double(alpha.magnitude) * bound
    return 2 * (product + Double(k + 2) * u * scaledC + Double(k + 1) * 0x1p-148)
}

let alphaChoices: [Float] = [1, 1, -1, 0, 0.5, 2.5, -0.75, 0x1p-20, 3]
let betaChoices: [Float] = [0, 0, 1, -1, 0.5, -1.5, 2]

/// Compares an m x n result with the oracle's element by element (gemmTolerance with
/// `bound[i*n+j]` = sum_p |a_ip||b_pj|), returning the first bad element described.
func checkProduct(
    m: Int, n: Int, k: Int, alpha: Float, beta: Float, got: GuardedMatrix, oracle: GuardedMatrix,
    bound: GuardedMatrix, oldC: GuardedMatrix
) -> String? {
    for i in 0..<m {
        for j in 0..<n {
            let scaledC = beta == 0 ? 0 : abs(Double(beta) * Double(oldC[i, j]))
            let tol = gemmTolerance(k: k, alpha: alpha, bound: Double(bound[i, j]), scaledC: scaledC)
            let e = Double(oracle[i, j]), g = got[i, j]
            if !matches(g, e, tolerance: tol.isNaN ? 0 : tol) {
                return
                    "first bad element (i, j) = (\(i), \(j)) of \(m) x \(n): \(mismatchText(g, e, tol)); C_old \(oldC[i, j]), sum|a||b| \(bound[i, j])"
            }
        }
    }
    return nil
}

/// sum_p |op(A)_ip| |op(B)_pj| for every element, through the oracle on absolute values
/// (op(B) starting `bOffset` floats into B: a range of a weight's rows).
func productBound(m: Int, n: Int, k: Int, a: GuardedMatrix, transA: Bool, b: GuardedMatrix, transB: Bool, bOffset: Int = 0) -> GuardedMatrix {
    let aa = a.copy(), bb = b.copy()
    for i in 0..<aa.count { aa.storage[i] = abs(aa.storage[i]) }
    for i in 0..<bb.count { bb.storage[i] = abs(bb.storage[i]) }
    let out = GuardedMatrix(rows: m, cols: n, ld: max(n, 1), sentinel: 0)
    KernelOracle.gemm(
        m: m, n: n, k: k, alpha: 1, a: aa.base, lda: aa.ld, transA: transA, b: bb.base + bOffset, ldb: bb.ld, transB: transB,
        beta: 0, c: out.base, ldc: out.ld)
    return out
}

/// The value mixes of a product's two operands: mostly uniform, else specials, non-finite,
/// exact integers, subnormal x huge (normal products) or tiny x tiny (subnormal products).
func productMixes(_ rng: inout FuzzRNG) -> (ValueMix, ValueMix) {
    switch rng.unit() {
    case ..<0.45: return (.uniform, .uniform)
    case ..<0.62: return (.finiteSpecials, .finiteSpecials)
    case ..<0.74: return (.nonFinite, .nonFinite)
    case ..<0.84: return (.integers, .integers)
    case ..<0.92: return rng.chance(0.5) ? (.subnormal, .huge) : (.huge, .subnormal)
    default: return (.tiny, .tiny)
    }
}

func makeOperand(_ rng: inout FuzzRNG, rows: Int, cols: Int, mix: ValueMix) -> GuardedMatrix {
    let mtx = GuardedMatrix(rows: rows, cols: cols, ld: max(cols, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
    mtx.fill { _, _ in mix.value(&rng) }
    return mtx
}

// MARK: - ck_f32_gemm

/// `ck_f32_gemm`: random m, n, k at tile and cache-block edges (one large dimension at a
/// time, so cases stay cheap), both transposes, padded strides, misaligned operands,
/// alpha/beta including 0, ±1 and scales, value mixes with specials; C_old NaN when beta == 0
/// (must not be read). Checks every element, C's padding, A, B and the workspace's guard.
struct GEMMFuzz: FuzzKernel {
    let name = "gemm"

    final class Case: CustomStringConvertible {
        var m = 0, n = 0, k = 0, transA = false, transB = false, alpha: Float = 1, beta: Float = 0
        var mixA = ValueMix.uniform, mixB = ValueMix.uniform, cMode = ""
        var a: GuardedMatrix!, b: GuardedMatrix!, c: GuardedMatrix!
        var wsMisalign = 0
        var description: String {
            "m=\(m) n=\(n) k=\(k) transA=\(transA) transB=\(transB) alpha=\(alpha) beta=\(beta) lda=\(a.ld) ldb=\(b.ld) ldc=\(c.ld) "
                + "misalign(A,B,C)=(\(a.offset - 16),\(b.offset - 16),\(c.offset - 16)) values A \(mixA), B \(mixB), C_old \(cMode)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let g = table.gemm
        let mr = Int(g.mr), nr = Int(g.nr), mc = Int(g.mc), kc = Int(g.kc), nc = Int(g.nc)
        let c = Case()
        let mEdges = [1, 2, mr, 2 * mr, 3 * mr, nr], nEdges = [1, 2, nr, 2 * nr, 3 * nr, mr], kEdges = [1, 2, 4, 8, 16, 17]
        let shape = rng.unit()
        if shape < 0.80 {
            c.m = boundarySize(&rng, edges: mEdges, small: 20)
            c.n = boundarySize(&rng, edges: nEdges, small: 20)
            c.k = boundarySize(&rng, edges: kEdges, small: 24, maxLarge: 64)
        } else if shape < 0.87 {  // the kc block edge
            c.k = rng.pick([kc - 1, kc, kc + 1, 2 * kc + 1])
            c.m = rng.int(1...mr + 1)
            c.n = rng.int(1...nr + 1)
        } else if shape < 0.94 {  // the mc block edge
            c.m = rng.pick([mc - 1, mc, mc + 1, 2 * mc + rng.int(-1...1)])
            c.n = rng.int(1...nr + 1)
            c.k = rng.int(1...6)
        } else if shape < 0.97 {  // the nc block edge
            c.n = rng.pick([nc - 1, nc, nc + 1])
            c.m = rng.int(1...2)
            c.k = rng.int(1...3)
        } else {
            c.m = rng.int(1...64)
            c.n = rng.int(1...64)
            c.k = rng.int(1...64)
        }
        c.transA = rng.chance(0.5)
        c.transB = rng.chance(0.5)
        c.alpha = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(alphaChoices)
        c.beta = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(betaChoices)
        (c.mixA, c.mixB) = productMixes(&rng)
        let (ar, ac) = c.transA ? (c.k, c.m) : (c.m, c.k)
        let (br, bc) = c.transB ? (c.n, c.k) : (c.k, c.n)
        c.a = makeOperand(&rng, rows: ar, cols: ac, mix: c.mixA)
        c.b = makeOperand(&rng, rows: br, cols: bc, mix: c.mixB)
        c.c = GuardedMatrix(rows: c.m, cols: c.n, ld: max(c.n, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        if c.beta == 0 && rng.chance(0.4) {
            c.cMode = "NaN (beta 0: not read)"
            c.c.fill { _, _ in .nan }
        } else if c.mixA == .nonFinite && rng.chance(0.5) {
            c.cMode = "non-finite mix"
            c.c.fill { _, _ in ValueMix.nonFinite.value(&rng) }
        } else {
            c.cMode = "uniform"
            c.c.fill { _, _ in rng.float(-1, 1) }
        }
        c.wsMisalign = rng.below(16)
        return c
    }

    struct Run {
        let out: GuardedMatrix, aSnap: [UInt32], bSnap: [UInt32], workspace: GuardedMatrix
    }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let aSnap = c.a.snapshot(), bSnap = c.b.snapshot()
        let out = c.c.copy()
        let wsCount = ck_f32_gemm_workspace(table.kernels, c.m, c.n, c.k)
        let ws = GuardedMatrix(rows: 1, cols: wsCount, ld: wsCount, misalign: c.wsMisalign, sentinel: outputSentinel)
        ck_f32_gemm(
            table.kernels, c.transA ? 1 : 0, c.transB ? 1 : 0, c.m, c.n, c.k, c.alpha, c.a.base, c.a.ld, c.b.base, c.b.ld,
            c.beta, out.base, out.ld, ws.base)
        return Run(out: out, aSnap: aSnap, bSnap: bSnap, workspace: ws)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("C") { return bad }
        if let bad = r.workspace.damagedPadding("the workspace (ck_f32_gemm_workspace floats)") { return bad }
        if !c.a.unchanged(since: r.aSnap) { return "the kernel wrote into A" }
        if !c.b.unchanged(since: r.bSnap) { return "the kernel wrote into B" }
        if c.m == 0 || c.n == 0 { return r.out.unchanged(since: c.c.snapshot()) ? nil : "empty product changed C" }
        let oracle = c.c.copy()
        KernelOracle.gemm(
            m: c.m, n: c.n, k: c.k, alpha: c.alpha, a: c.a.base, lda: c.a.ld, transA: c.transA, b: c.b.base,
            ldb: c.b.ld, transB: c.transB, beta: c.beta, c: oracle.base, ldc: oracle.ld)
        let bound = productBound(m: c.m, n: c.n, k: c.k, a: c.a, transA: c.transA, b: c.b, transB: c.transB)
        return checkProduct(m: c.m, n: c.n, k: c.k, alpha: c.alpha, beta: c.beta, got: r.out, oracle: oracle, bound: bound, oldC: c.c)
    }
}

// MARK: - the micro-kernel

/// A packed A micro-panel (kc columns of mr, misaligned) and B micro-panel (kc rows of nr,
/// 64-byte aligned as the contract demands), filled from `mix`.
func packedPanels(_ rng: inout FuzzRNG, kc: Int, mr: Int, nr: Int, mix: ValueMix) -> (a: GuardedMatrix, b: GuardedMatrix) {
    let a = GuardedMatrix(rows: 1, cols: kc * mr, ld: max(1, kc * mr), misalign: rng.below(16), sentinel: inputSentinel)
    let b = GuardedMatrix(rows: 1, cols: kc * nr, ld: max(1, kc * nr), misalign: 0, sentinel: inputSentinel)
    a.fill { _, _ in mix.value(&rng) }
    b.fill { _, _ in mix.value(&rng) }
    return (a, b)
}

/// The panels as the oracle's operands: packed A is op(A) transposed (kc x mr, lda = mr),
/// packed B is op(B) (kc x nr, ldb = nr).
func unpackedPanels(a: GuardedMatrix, b: GuardedMatrix, kc: Int, mr: Int, nr: Int) -> (aT: GuardedMatrix, bM: GuardedMatrix) {
    let aT = GuardedMatrix(rows: max(kc, 1), cols: mr, ld: mr, sentinel: 0)
    let bM = GuardedMatrix(rows: max(kc, 1), cols: nr, ld: nr, sentinel: 0)
    for p in 0..<kc { for i in 0..<mr { aT[p, i] = a.base[p * mr + i] } }
    for p in 0..<kc { for j in 0..<nr { bM[p, j] = b.base[p * nr + j] } }
    return (aT, bM)
}

/// The table's GEMM micro-kernel alone: `C[0:mr, 0:nr] = alpha * Apanel * Bpanel + beta * C`
/// on packed panels of kc (0 included, block edges included), B 64-byte aligned as the
/// contract demands, A and C misaligned, ldc >= nr with guarded gaps. With `attention`, the
/// fused attention's micro-kernel (`attn_ukr`, an attn_mr x attn_nr tile) under the same
/// contract.
struct MicroKernelFuzz: FuzzKernel {
    var attention = false
    var name: String { attention ? "attn-ukr" : "gemm-ukr" }

    func tile(_ table: FuzzTable) -> (mr: Int, nr: Int) { attention ? (table.attnMr, table.attnNr) : (table.mr, table.nr) }

    final class Case: CustomStringConvertible {
        var kc = 0, alpha: Float = 1, beta: Float = 0, mix = ValueMix.uniform, cNaN = false
        var a: GuardedMatrix!, b: GuardedMatrix!, c: GuardedMatrix!
        var description: String {
            "kc=\(kc) alpha=\(alpha) beta=\(beta) tile \(c.rows)x\(c.cols) ldc=\(c.ld) misalign(A,C)=(\(a.offset - 16),\(c.offset - 16)) values \(mix)\(cNaN ? " C_old=NaN" : "")"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        let kc = Int(table.gemm.kc)
        c.kc = rng.chance(0.04) ? rng.pick([kc - 1, kc, kc + 1]) : boundarySize(&rng, edges: [1, 2, 4, 8, 16, 64], small: 40, maxLarge: 200)
        c.alpha = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(alphaChoices)
        c.beta = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(betaChoices)
        c.mix = rng.pick([.uniform, .uniform, .finiteSpecials, .integers, .tiny, .nonFinite])
        if c.alpha == 0 && c.mix == .nonFinite { c.mix = .finiteSpecials }  // 0 * inf: the formula says NaN
        let (mr, nr) = tile(table)
        (c.a, c.b) = packedPanels(&rng, kc: c.kc, mr: mr, nr: nr, mix: c.mix)
        c.c = GuardedMatrix(rows: mr, cols: nr, ld: nr + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        c.cNaN = c.beta == 0 && rng.chance(0.4)
        c.c.fill { _, _ in c.cNaN ? .nan : rng.float(-1, 1) }
        return c
    }

    struct Run { let out: GuardedMatrix, aSnap: [UInt32], bSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let aSnap = c.a.snapshot(), bSnap = c.b.snapshot()
        let out = c.c.copy()
        let ukr = attention ? table.kernels.pointee.attn_ukr : table.kernels.pointee.gemm_ukr
        ukr!(c.kc, c.a.base, c.b.base, out.base, out.ld, c.alpha, c.beta)
        return Run(out: out, aSnap: aSnap, bSnap: bSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("the C tile") { return bad }
        if !c.a.unchanged(since: r.aSnap) || !c.b.unchanged(since: r.bSnap) { return "the micro-kernel wrote into a packed panel" }
        let (mr, nr) = tile(table)
        let (aT, bM) = unpackedPanels(a: c.a, b: c.b, kc: c.kc, mr: mr, nr: nr)
        let oracle = c.c.copy()
        // kc == 0 with the contract's formula: C = alpha * 0 + beta * C (0 when beta == 0).
        KernelOracle.gemm(
            m: mr, n: nr, k: c.kc, alpha: c.kc == 0 ? 0 : c.alpha, a: aT.base, lda: mr, transA: true, b: bM.base, ldb: nr,
            transB: false, beta: c.beta, c: oracle.base, ldc: oracle.ld)
        let bound = productBound(m: mr, n: nr, k: c.kc, a: aT, transA: true, b: bM, transB: false)
        return checkProduct(m: mr, n: nr, k: c.kc, alpha: c.alpha, beta: c.beta, got: r.out, oracle: oracle, bound: bound, oldC: c.c)
    }
}

/// The fused attention's column-scaled micro-kernel (`attn_ukr_scaled`, an attn_mr x attn_nr
/// tile): `C[i][j] = C[i][j] * colscale[j] + (Apanel * Bpanel)[i][j]` on packed panels of kc
/// (0 included), B 64-byte aligned, A, C and colscale misaligned, ldc >= nr with guarded gaps.
/// colscale mixes 1 (a query whose running max held: the plain accumulate's bits), 0 (its
/// first visible block), factors in (0, 1] as exp(m_old - m_new) gives, and other values.
struct ScaledMicroKernelFuzz: FuzzKernel {
    let name = "attn-ukr-scaled"

    final class Case: CustomStringConvertible {
        var kc = 0, mix = ValueMix.uniform, scaleKind = ""
        var a: GuardedMatrix!, b: GuardedMatrix!, c: GuardedMatrix!, colscale: GuardedMatrix!
        var description: String {
            "kc=\(kc) tile \(c.rows)x\(c.cols) ldc=\(c.ld) misalign(A,C,colscale)=(\(a.offset - 16),\(c.offset - 16),\(colscale.offset - 16)) values \(mix), colscale \(scaleKind)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.kc = boundarySize(&rng, edges: [1, 2, 4, 8, 16, 64, 384], small: 40, maxLarge: 400)
        c.mix = rng.pick([.uniform, .uniform, .finiteSpecials, .integers, .tiny, .nonFinite])
        let (mr, nr) = (table.attnMr, table.attnNr)
        (c.a, c.b) = packedPanels(&rng, kc: c.kc, mr: mr, nr: nr, mix: c.mix)
        c.c = GuardedMatrix(rows: mr, cols: nr, ld: nr + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        let cMix: ValueMix = c.mix == .nonFinite && rng.chance(0.5) ? .nonFinite : .uniform
        c.c.fill { _, _ in cMix == .uniform ? rng.float(-1, 1) : cMix.value(&rng) }
        c.scaleKind = rng.pick(["ones", "ones", "zeros", "softmax", "mixed", "any"])
        let kind = c.scaleKind
        c.colscale = GuardedMatrix(rows: 1, cols: nr, ld: nr, misalign: rng.below(16), sentinel: inputSentinel)
        c.colscale.fill { _, _ in
            switch kind {
            case "ones": return 1
            case "zeros": return 0
            case "softmax": return Float(exp(-Double(rng.float(0, 30))))
            case "mixed": return rng.pick([1, 1, 0, 0.5, Float(exp(-Double(rng.float(0, 90))))])
            default: return rng.chance(0.1) ? rng.pick([.infinity, -.infinity, .nan]) : rng.float(-4, 4)
            }
        }
        return c
    }

    struct Run { let out: GuardedMatrix, plain: GuardedMatrix, aSnap: [UInt32], bSnap: [UInt32], sSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let aSnap = c.a.snapshot(), bSnap = c.b.snapshot(), sSnap = c.colscale.snapshot()
        let out = c.c.copy(), plain = c.c.copy()
        table.kernels.pointee.attn_ukr_scaled(c.kc, c.a.base, c.b.base, out.base, out.ld, c.colscale.base)
        table.kernels.pointee.attn_ukr(c.kc, c.a.base, c.b.base, plain.base, plain.ld, 1, 1)
        return Run(out: out, plain: plain, aSnap: aSnap, bSnap: bSnap, sSnap: sSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("the C tile") { return bad }
        if !c.a.unchanged(since: r.aSnap) || !c.b.unchanged(since: r.bSnap) || !c.colscale.unchanged(since: r.sSnap) {
            return "the micro-kernel wrote into a packed panel or colscale"
        }
        let (mr, nr) = (table.attnMr, table.attnNr)
        let (aT, bM) = unpackedPanels(a: c.a, b: c.b, kc: c.kc, mr: mr, nr: nr)
        // The product alone (beta = 0), then C * colscale + AB in Double.
        let ab = GuardedMatrix(rows: mr, cols: nr, ld: nr, sentinel: 0)
        KernelOracle.gemm(
            m: mr, n: nr, k: c.kc, alpha: 1, a: aT.base, lda: mr, transA: true, b: bM.base, ldb: nr,
            transB: false, beta: 0, c: ab.base, ldc: ab.ld)
        let bound = productBound(m: mr, n: nr, k: c.kc, a: aT, transA: true, b: bM, transB: false)
        for i in 0..<mr {
            for j in 0..<nr {
                let scaledC = Double(c.c[i, j]) * Double(c.colscale[0, j])
                let e = scaledC + Double(ab[i, j])
                let tol = gemmTolerance(k: c.kc, alpha: 1, bound: Double(bound[i, j]), scaledC: abs(scaledC))
                if !matches(r.out[i, j], e, tolerance: tol.isNaN ? 0 : tol) {
                    return "first bad element (i, j) = (\(i), \(j)) of \(mr) x \(nr): \(mismatchText(r.out[i, j], e, tol)); C_old \(c.c[i, j]), colscale \(c.colscale[0, j]), sum|a||b| \(bound[i, j])"
                }
                // A factor of 1 gives the plain accumulate's bits (attn_ukr, alpha = beta = 1).
                if c.colscale[0, j] == 1 {
                    let g = r.out[i, j], p = r.plain[i, j]
                    if g.isNaN ? !p.isNaN : g.bitPattern != p.bitPattern {
                        return "element (\(i), \(j)) with colscale 1: got \(g) (bits 0x\(String(g.bitPattern, radix: 16))), attn_ukr with alpha = beta = 1 gave \(p) (bits 0x\(String(p.bitPattern, radix: 16)))"
                    }
                }
            }
        }
        return nil
    }
}

// MARK: - GEMV

/// The table's GEMV `y = alpha * W x + beta * y` (W [n, k] row-major, ldw >= k): n around
/// the 4-row groups, k around vector widths (and long), misaligned x, W, y; y NaN when
/// beta == 0 (must not be read). Guard bands around y, W's gaps and x checked.
struct GEMVFuzz: FuzzKernel {
    let name = "gemv"

    final class Case: CustomStringConvertible {
        var n = 0, k = 0, alpha: Float = 1, beta: Float = 0, mix = ValueMix.uniform, yMode = ""
        var x: GuardedMatrix!, w: GuardedMatrix!, y: GuardedMatrix!
        var description: String {
            "n=\(n) k=\(k) alpha=\(alpha) beta=\(beta) ldw=\(w.ld) misalign(x,W,y)=(\(x.offset - 16),\(w.offset - 16),\(y.offset - 16)) values \(mix), y_old \(yMode)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.n = boundarySize(&rng, edges: [1, 4, 8, 12, table.nr], small: 16, maxLarge: 100)
        c.k = boundarySize(&rng, edges: [1, 4, 8, 16, 32, 64, table.nr], small: 40, maxLarge: 1100)
        fillGEMVCase(c, &rng, transposed: false)
        return c
    }

    struct Run { let out: GuardedMatrix, xSnap: [UInt32], wSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let xSnap = c.x.snapshot(), wSnap = c.w.snapshot()
        let out = c.y.copy()
        table.kernels.pointee.gemv(c.n, c.k, c.alpha, c.x.base, c.w.base, c.w.ld, c.beta, out.base)
        return Run(out: out, xSnap: xSnap, wSnap: wSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("y") { return bad }
        if !c.x.unchanged(since: r.xSnap) || !c.w.unchanged(since: r.wSnap) { return "the kernel wrote into x or W" }
        if c.n == 0 { return nil }
        let oracle = c.y.copy()
        KernelOracle.gemm(
            m: 1, n: c.n, k: c.k, alpha: c.alpha, a: c.x.base, lda: max(c.k, 1), transA: false, b: c.w.base, ldb: c.w.ld,
            transB: true, beta: c.beta, c: oracle.base, ldc: oracle.ld)
        let bound = productBound(m: 1, n: c.n, k: c.k, a: c.x, transA: false, b: c.w, transB: true)
        return checkProduct(m: 1, n: c.n, k: c.k, alpha: c.alpha, beta: c.beta, got: r.out, oracle: oracle, bound: bound, oldC: c.y)
    }
}

/// The scalars (alpha, beta), value mix and data of a GEMV case whose n and k are set: x (k),
/// W (n x k, or k x n when `transposed`: the weighted sum of rows), y (n; NaN sometimes when
/// beta == 0, as it must not be read).
func fillGEMVCase(_ c: GEMVFuzz.Case, _ rng: inout FuzzRNG, transposed: Bool) {
    c.alpha = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(alphaChoices)
    c.beta = rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(betaChoices)
    c.mix = rng.pick([.uniform, .uniform, .finiteSpecials, .integers, .nonFinite, .tiny])
    if c.alpha == 0 && c.mix == .nonFinite { c.mix = .finiteSpecials }  // alpha * inf: the formula says NaN
    c.x = makeOperand(&rng, rows: c.k == 0 ? 0 : 1, cols: c.k, mix: c.mix)
    c.w = transposed ? makeOperand(&rng, rows: c.k, cols: c.n, mix: c.mix) : makeOperand(&rng, rows: c.n, cols: c.k, mix: c.mix)
    c.y = GuardedMatrix(rows: c.n == 0 ? 0 : 1, cols: c.n, ld: max(c.n, 1), misalign: rng.below(16), sentinel: outputSentinel)
    if c.beta == 0 && rng.chance(0.4) {
        c.yMode = "NaN (beta 0: not read)"
        c.y.fill { _, _ in .nan }
    } else {
        c.yMode = "uniform"
        c.y.fill { _, _ in rng.float(-1, 1) }
    }
}
