// The GEMM on a packed weight (ck_f32_pack_weight, ck_f32_pack_b, ck_f32_pack_a, ck_f32_gemm_packed with its
// bias / activation / residual epilogue) and the transposed GEMV, against KernelOracle.gemm.
import Attend
import CKernels
import Foundation

/// Cuts 0..<count into 1...parts consecutive non-empty ranges whose inner bounds are
/// multiples of `step` (count 0: one empty range): how a caller splits work over threads.
func splitRanges(_ rng: inout FuzzRNG, count: Int, step: Int, parts: Int) -> [Range<Int>] {
    let units = (count + step - 1) / step
    guard units > 1 && parts > 1 else { return [0..<count] }
    var bounds = Set<Int>()
    for _ in 1..<parts { bounds.insert(rng.int(1...units - 1) * step) }
    let sorted = [0] + bounds.sorted() + [count]
    return zip(sorted, sorted.dropFirst()).map { $0..<$1 }
}

// MARK: - ck_f32_gemm_packed

/// `ck_f32_gemm_packed` on a weight packed by `ck_f32_pack_weight`: m, n, k at the tile and
/// cache-block edges (k over kc: several k blocks; m over mc: several row blocks), a column
/// range starting at a multiple of nr inside a taller weight (`weight_col0`, a fused QKV's
/// keys), A read in place, packed up front by `ck_f32_pack_a` or stored transposed (`trans_a`,
/// packed per block), the weight stored `[n, k]` or as op(B) `[k, n]` (`ck_f32_pack_b`
/// with `trans_b` 0), beta (0 with NaN in C:
/// not read), the epilogue's bias, activation and residual in every combination, the weight
/// packed in several panel ranges (the last past the end: clamped) and the product run as a
/// grid of row ranges x panel ranges (as the Swift split calls it), or one sub-block only
/// (everything outside it must stay bitwise untouched). Checks every element, C's padding, the
/// guards of the packed weight, packed A and workspace, and that the inputs were not written.
struct GEMMPackedFuzz: FuzzKernel {
    let name = "gemm-packed"

    final class Case: CustomStringConvertible {
        var m = 0, n = 0, k = 0, col0 = 0, weightN = 0, beta: Float = 0
        var mixA = ValueMix.uniform, mixW = ValueMix.uniform, cMode = ""
        var activation: Int?  // index into ActivationFuzz.kinds
        var packedA = false
        /// A stored transposed, `[k, m]` (`trans_a`: a weight gradient's dYᵀ).
        var transA = false
        /// The weight stored as op(B) itself, `[k, weightN]`, packed by `ck_f32_pack_b` with
        /// `trans_b` 0 (activations as the right operand); else `[weightN, k]`.
        var plainB = false
        var a: GuardedMatrix!, w: GuardedMatrix!, c: GuardedMatrix!
        var bias: GuardedMatrix?, residual: GuardedMatrix?
        /// Panel ranges `ck_f32_pack_weight` is called with (in order).
        var packRanges: [Range<Int>] = []
        /// The calls: row ranges x panel ranges of the product.
        var rowRanges: [Range<Int>] = [], panelRanges: [Range<Int>] = []
        /// Only one call (its block is all that may change).
        var partial = false
        /// Workspace sized from the call's rows (else from m).
        var wsPerCall = false
        var wsMisalign = 0
        var description: String {
            let act = activation.map { "\(ActivationFuzz.kinds[$0].0)" } ?? "none"
            return "m=\(m) n=\(n) k=\(k) weight [\(weightN), \(k)] columns \(col0)..<\(col0 + n) beta=\(beta) lda=\(a.ld) ldw=\(w.ld) ldc=\(c.ld) "
                + "packed_a=\(packedA) trans_a=\(transA) B stored \(plainB ? "[k, n] (pack_b trans 0)" : "[n, k]") bias=\(bias != nil) activation=\(act) residual=\(residual.map { "ldr \($0.ld)" } ?? "none") "
                + "pack panels \(packRanges) calls rows \(rowRanges) x panels \(panelRanges)\(partial ? " (partial)" : "") "
                + "workspace \(wsPerCall ? "per call" : "from m") misalign(A,W,C)=(\(a.offset - 16),\(w.offset - 16),\(c.offset - 16)) "
                + "values A \(mixA), W \(mixW), C_old \(cMode)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let g = table.gemm
        let mr = Int(g.mr), nr = Int(g.nr), mc = Int(g.mc), kc = Int(g.kc)
        let c = Case()
        let shape = rng.unit()
        if shape < 0.75 {
            c.m = boundarySize(&rng, edges: [1, 2, mr, 2 * mr, 3 * mr], small: 20)
            c.n = boundarySize(&rng, edges: [1, nr, 2 * nr, 3 * nr, mr], small: 20)
            c.k = boundarySize(&rng, edges: [1, 2, 4, 8, 16, 17], small: 24, maxLarge: 64)
        } else if shape < 0.85 {  // k over kc: several k blocks, the epilogue after the last
            c.k = rng.pick([kc - 1, kc, kc + 1, 2 * kc + 1])
            c.m = rng.int(1...mr + 1)
            c.n = rng.int(1...nr + 1)
        } else if shape < 0.95 {  // m over mc: several row blocks
            c.m = rng.pick([mc - 1, mc, mc + 1, 2 * mc + rng.int(-1...1)])
            c.n = rng.int(1...nr + 1)
            c.k = rng.int(1...6)
        } else {
            c.m = rng.int(1...40)
            c.n = rng.int(1...4 * nr)
            c.k = rng.int(1...64)
        }
        c.col0 = rng.chance(0.6) ? 0 : nr * rng.int(1...2)
        c.weightN = c.col0 + c.n + (rng.chance(0.5) ? 0 : rng.int(1...nr + 1))
        c.beta = rng.chance(0.6) ? 0 : (rng.chance(0.15) ? rng.float(-4, 4) : rng.pick(betaChoices))
        (c.mixA, c.mixW) = productMixes(&rng)
        c.packedA = c.k > 0 && rng.chance(0.35)
        c.transA = !c.packedA && rng.chance(0.35)
        c.plainB = rng.chance(0.35)
        c.a = c.transA ? makeOperand(&rng, rows: c.k, cols: c.m, mix: c.mixA) : makeOperand(&rng, rows: c.m, cols: c.k, mix: c.mixA)
        c.w = c.plainB ? makeOperand(&rng, rows: c.k, cols: c.weightN, mix: c.mixW) : makeOperand(&rng, rows: c.weightN, cols: c.k, mix: c.mixW)
        c.c = GuardedMatrix(rows: c.m, cols: c.n, ld: max(c.n, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        if c.beta == 0 && rng.chance(0.5) {
            c.cMode = "NaN (beta 0: not read)"
            c.c.fill { _, _ in .nan }
        } else {
            c.cMode = "uniform"
            c.c.fill { _, _ in rng.float(-1, 1) }
        }
        let epilogueValue: (inout FuzzRNG) -> Float = { rng in
            rng.chance(0.05) ? rng.pick(ValueMix.finiteSpecialValues) : rng.float(-2, 2)
        }
        if rng.chance(0.5) {
            c.bias = guardedVector((0..<c.n).map { _ in epilogueValue(&rng) }, misalign: rng.below(16), sentinel: inputSentinel)
        }
        if rng.chance(0.45) { c.activation = rng.below(ActivationFuzz.kinds.count) }
        if rng.chance(0.4) {
            let r = GuardedMatrix(rows: c.m, cols: c.n, ld: max(c.n, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
            r.fill { _, _ in epilogueValue(&rng) }
            c.residual = r
        }
        let panels = (c.weightN + nr - 1) / nr
        c.packRanges = splitRanges(&rng, count: panels, step: 1, parts: rng.int(1...3))
        if rng.chance(0.3), let last = c.packRanges.popLast() {  // a last range past the end: clamped
            c.packRanges.append(last.lowerBound..<(last.upperBound + rng.int(1...3)))
        }
        let productPanels = (c.n + nr - 1) / nr
        c.rowRanges = splitRanges(&rng, count: c.m, step: c.packedA ? mr : 1, parts: rng.int(1...3))
        c.panelRanges = splitRanges(&rng, count: productPanels, step: 1, parts: rng.int(1...3))
        if rng.chance(0.25) {
            c.partial = true
            c.rowRanges = [rng.pick(c.rowRanges)]
            c.panelRanges = [rng.pick(c.panelRanges)]
        } else if rng.chance(0.2), let last = c.panelRanges.popLast() {  // panel1 past the product's last panel
            c.panelRanges.append(last.lowerBound..<(last.upperBound + rng.int(1...2)))
        }
        c.wsPerCall = rng.chance(0.5)
        c.wsMisalign = rng.below(16)
        return c
    }

    struct Run {
        let out: GuardedMatrix, packedW: GuardedMatrix, packedA: GuardedMatrix?, workspace: GuardedMatrix
        let snaps: [[UInt32]]
    }

    func inputs(_ c: Case) -> [GuardedMatrix] { [c.a, c.w] + [c.bias, c.residual].compactMap { $0 } }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let kern = table.kernels
        let snaps = inputs(c).map { $0.snapshot() }
        let out = c.c.copy()
        let wCount = ck_f32_packed_weight_size(kern, c.weightN, c.k)
        let packedW = GuardedMatrix(rows: 1, cols: wCount, ld: max(wCount, 1), sentinel: outputSentinel)
        for r in c.packRanges {
            if c.plainB {
                ck_f32_pack_b(kern, 0, c.weightN, c.k, c.w.base, c.w.ld, r.lowerBound, r.upperBound, packedW.base)
            } else {
                ck_f32_pack_weight(kern, c.weightN, c.k, c.w.base, c.w.ld, r.lowerBound, r.upperBound, packedW.base)
            }
        }
        var packedA: GuardedMatrix?
        if c.packedA {
            let count = ck_f32_packed_a_size(kern, c.m, c.k)
            let p = GuardedMatrix(rows: 1, cols: count, ld: max(count, 1), sentinel: outputSentinel)
            ck_f32_pack_a(kern, c.m, c.k, c.a.base, c.a.ld, p.base)
            packedA = p
        }
        let wsRows = c.wsPerCall ? c.rowRanges.map(\.count).max() ?? 0 : c.m
        let wsCount = ck_f32_gemm_packed_workspace(kern, wsRows, c.k)
        let ws = GuardedMatrix(rows: 1, cols: wsCount, ld: max(wsCount, 1), misalign: c.wsMisalign, sentinel: outputSentinel)
        let act = c.activation.map { ActivationFuzz.kinds[$0].1 } ?? Int32(CK_ACT_NONE)
        var g = ck_gemm_packed(
            m: c.m, n: c.n, k: c.k, a: c.a.base, lda: c.a.ld, packed_a: packedA.map { UnsafePointer($0.base) },
            packed_w: packedW.base, weight_n: c.weightN, weight_col0: c.col0, c: out.base, ldc: out.ld, beta: c.beta,
            epilogue: ck_gemm_epilogue(
                bias: c.bias.map { UnsafePointer($0.base) }, activation: act, residual: c.residual.map { UnsafePointer($0.base) },
                ldr: c.residual?.ld ?? 0), trans_a: c.transA ? 1 : 0)
        for rows in c.rowRanges {
            for panels in c.panelRanges {
                ck_f32_gemm_packed(kern, &g, rows.lowerBound, rows.upperBound, panels.lowerBound, panels.upperBound, ws.base)
            }
        }
        return Run(out: out, packedW: packedW, packedA: packedA, workspace: ws, snaps: snaps)
    }

    /// Tolerance, per element, from the product's (``gemmTolerance``, which bounds the kernel
    /// and the oracle) through the epilogue: the kernel rounds C + bias once (u|z|) and the
    /// oracle rounds z to float for the activation (u|z|), 2^-148 for both in the subnormal
    /// range; an activation moves that error by at most its Lipschitz constant (1 for relu,
    /// under 1.13 for gelu, gelu-tanh and silu) and adds its own (``activationTolerance``, at
    /// the kernel's input, twice: its relative part moves with the input too); the residual add rounds
    /// once more (u|result|). ±inf into gelu, gelu-tanh or silu is not checked (as in the
    /// activation fuzz: the contract leaves it to IEEE arithmetic).
    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("C") { return bad }
        if let bad = r.packedW.damagedPadding("the packed weight (ck_f32_packed_weight_size floats)") { return bad }
        if let bad = r.packedA?.damagedPadding("packed A (ck_f32_packed_a_size floats)") { return bad }
        if let bad = r.workspace.damagedPadding("the workspace (ck_f32_gemm_packed_workspace floats)") { return bad }
        for (m, snap) in zip(inputs(c), r.snaps) where !m.unchanged(since: snap) {
            return "the kernel wrote into an input (A, W, bias or residual: the \(m.rows) x \(m.cols) one)"
        }
        let nr = table.nr
        let rows = c.partial ? c.rowRanges[0] : 0..<c.m
        let cols = c.partial ? (c.panelRanges[0].lowerBound * nr)..<min(c.n, c.panelRanges[0].upperBound * nr) : 0..<c.n
        for i in 0..<c.m {
            for j in 0..<c.n where !(rows.contains(i) && cols.contains(j)) {
                if r.out[i, j].bitPattern != c.c[i, j].bitPattern {
                    return
                        "element (\(i), \(j)) lies outside the block computed (rows \(rows), columns \(cols)) but changed from \(c.c[i, j]) to \(r.out[i, j])"
                }
            }
        }
        if rows.isEmpty || cols.isEmpty { return nil }
        let oracle = c.c.copy()
        let bOffset = c.plainB ? c.col0 : c.col0 * c.w.ld
        KernelOracle.gemm(
            m: c.m, n: c.n, k: c.k, alpha: 1, a: c.a.base, lda: c.a.ld, transA: c.transA, b: c.w.base + bOffset,
            ldb: c.w.ld, transB: !c.plainB, beta: c.beta, c: oracle.base, ldc: oracle.ld)
        let bound = productBound(m: c.m, n: c.n, k: c.k, a: c.a, transA: c.transA, b: c.w, transB: !c.plainB, bOffset: bOffset)
        let act = c.activation.map { ActivationFuzz.kinds[$0].0 }
        for i in rows {
            for j in cols {
                let scaledC = c.beta == 0 ? 0 : abs(Double(c.beta) * Double(c.c[i, j]))
                var tol = gemmTolerance(k: c.k, alpha: 1, bound: Double(bound[i, j]), scaledC: scaledC)
                if tol.isNaN { tol = 0 }
                var e = Double(oracle[i, j])
                var steps = ""
                if let b = c.bias {
                    e += Double(b.base[j])
                    tol += u * abs(e) + 0x1p-148
                    steps += " + bias \(b.base[j])"
                }
                if let act {
                    let z = Float(e)
                    tol += u * abs(e) + 0x1p-148
                    if z.isInfinite && act != .relu { continue }
                    let y = KernelOracle.activation(act, z)
                    let lipschitz = act == .relu ? 1 : 1.13
                    tol = lipschitz * tol + 2 * activationTolerance(act, x: z, expected: y)
                    e = Double(y)
                    steps += ", \(act)(\(z))"
                }
                if let res = c.residual {
                    e += Double(res[i, j])
                    tol += u * abs(e) + 0x1p-148
                    steps += " + residual \(res[i, j])"
                }
                if !matches(r.out[i, j], e, tolerance: tol) {
                    return "first bad element (i, j) = (\(i), \(j)) of \(c.m) x \(c.n): \(mismatchText(r.out[i, j], e, tol)); "
                        + "product \(oracle[i, j])\(steps), C_old \(c.c[i, j]), sum|a||w| \(bound[i, j])"
                }
            }
        }
        return nil
    }
}

// MARK: - transposed GEMV

/// The table's transposed GEMV `y = alpha * Wᵀ x + beta * y` (W [k, n] row-major, ldw >= n, a
/// weighted sum of k rows): n around the vector widths and the 4-vector column groups, k short
/// and long, padded ldw, misaligned x, W, y; y NaN when beta == 0 (must not be read). Beyond
/// the oracle, the contract's promise that each column is the same in-order sum whatever the
/// block: the columns d0..<n computed alone (y and W offset by d0) must equal the full run's
/// bitwise.
struct GEMVTFuzz: FuzzKernel {
    let name = "gemv-t"

    final class Case: CustomStringConvertible {
        /// n, k, scalars, x, W (k x n) and y.
        let v = GEMVFuzz.Case()
        /// The first column of the second run (columns d0 ..< n alone).
        var d0 = 0
        var description: String { "\(v.description), columns from \(d0) alone" }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case(), v = c.v
        v.n = boundarySize(&rng, edges: vectorEdges + [12, 96, 128, table.nr], small: 40, maxLarge: 300)
        v.k = boundarySize(&rng, edges: [1, 2, 4, 8, 16, 64], small: 40, maxLarge: 1100)
        fillGEMVCase(v, &rng, transposed: true)
        c.d0 = v.n == 0 ? 0 : rng.below(v.n)
        return c
    }

    struct Run { let out: GuardedMatrix, part: GuardedMatrix, xSnap: [UInt32], wSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let v = c.v
        let xSnap = v.x.snapshot(), wSnap = v.w.snapshot()
        let out = v.y.copy()
        table.kernels.pointee.gemv_t(v.n, v.k, v.alpha, v.x.base, v.w.base, v.w.ld, v.beta, out.base)
        // Columns d0 ..< n alone, into a fresh row holding the same y_old.
        let part = GuardedMatrix(
            rows: v.n == 0 ? 0 : 1, cols: v.n - c.d0, ld: max(v.n - c.d0, 1), misalign: (v.y.offset - 16 + c.d0) % 16, sentinel: outputSentinel)
        for j in 0..<(v.n - c.d0) { part.base[j] = v.y.base[c.d0 + j] }
        table.kernels.pointee.gemv_t(v.n - c.d0, v.k, v.alpha, v.x.base, v.w.base + c.d0, v.w.ld, v.beta, part.base)
        return Run(out: out, part: part, xSnap: xSnap, wSnap: wSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        let v = c.v
        if let bad = r.out.damagedPadding("y") { return bad }
        if let bad = r.part.damagedPadding("y (the columns-from-d0 run)") { return bad }
        if !v.x.unchanged(since: r.xSnap) || !v.w.unchanged(since: r.wSnap) { return "the kernel wrote into x or W" }
        if v.n == 0 { return nil }
        let oracle = v.y.copy()
        KernelOracle.gemm(
            m: 1, n: v.n, k: v.k, alpha: v.alpha, a: v.x.base, lda: max(v.k, 1), transA: false, b: v.w.base, ldb: v.w.ld,
            transB: false, beta: v.beta, c: oracle.base, ldc: oracle.ld)
        let bound = productBound(m: 1, n: v.n, k: v.k, a: v.x, transA: false, b: v.w, transB: false)
        if let bad = checkProduct(m: 1, n: v.n, k: v.k, alpha: v.alpha, beta: v.beta, got: r.out, oracle: oracle, bound: bound, oldC: v.y) {
            return bad
        }
        for j in 0..<(v.n - c.d0) {
            let x = r.part.base[j], y = r.out.base[c.d0 + j]
            if x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN) { continue }  // NaN sign and payload are not specified
            return
                "column \(c.d0 + j): computed with columns \(c.d0)..<\(v.n) alone it is \(x), in the full run \(y) (the contract: the same in-order sum whatever the block)"
        }
        return nil
    }
}
