// The training kernels (attend_kernels_backward.h): optimizer steps and gradient-norm helpers.
import Attend
import CKernels
import Foundation

/// Whether a table evaluates the contract's fused multiply-adds as such (every table but the
/// portable scalar one, which rounds the product first).
func tableFuses(_ table: FuzzTable) -> Bool { table.name != "scalar" }

/// Bitwise comparison of `n` floats (any NaN matches any NaN), the first difference described.
func firstBitDifference(_ what: String, got: UnsafePointer<Float>, want: UnsafePointer<Float>, n: Int) -> String? {
    for i in 0..<n where got[i].bitPattern != want[i].bitPattern && !(got[i].isNaN && want[i].isNaN) {
        return
            "\(what)[\(i)] of \(n): got \(got[i]) (bits 0x\(String(got[i].bitPattern, radix: 16))), the oracle's \(want[i]) (bits 0x\(String(want[i].bitPattern, radix: 16)))"
    }
    return nil
}

/// Gradient-like values: uniform at a random scale (1e-8 ... 1e4), with zeros, signed zeros,
/// subnormals and (in a `nonFinite` case) NaN and ±inf mixed in.
func gradientValue(_ rng: inout FuzzRNG, scale: Float, nonFinite: Bool) -> Float {
    let r = rng.unit()
    if nonFinite && r < 0.02 { return rng.pick([.nan, .infinity, -.infinity]) }
    if r < 0.06 { return rng.pick([0, -0.0, .leastNonzeroMagnitude, -.leastNormalMagnitude, 1e-30]) }
    return rng.float(-1, 1) * scale
}

// MARK: - AdamW

/// The table's AdamW step: lengths around the vector widths, hyper-parameters over PyTorch's
/// useful range (both lerp forms: 1 - beta1 below and above 1/2; with and without decay; early
/// and late steps), moments and gradients at many scales, NaN and ±inf. The oracle rounds
/// exactly where the table does (fused or not), so the check is bitwise.
struct AdamWFuzz: FuzzKernel {
    let name = "adamw"

    final class Case: CustomStringConvertible {
        var n = 0, step = 1, hyper = TrainingKernels.AdamW()
        var param: GuardedMatrix!, grad: GuardedMatrix!, m: GuardedMatrix!, v: GuardedMatrix!
        var description: String {
            "n=\(n) step=\(step) lr=\(hyper.lr) betas=(\(hyper.beta1), \(hyper.beta2)) eps=\(hyper.eps) wd=\(hyper.weightDecay)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.n = boundarySize(&rng, edges: vectorEdges, small: 40, maxLarge: 2000)
        c.step = rng.pick([1, 2, 3, 10, 1000, 100_000])
        c.hyper = TrainingKernels.AdamW(
            lr: rng.pick([1e-3, 1e-4, 3e-2, 1]), beta1: rng.pick([0.9, 0.8, 0.3, 0, 0.99]), beta2: rng.pick([0.999, 0.98, 0.9, 0.5]),
            eps: rng.pick([1e-8, 1e-6, 1e-12, 0]), weightDecay: rng.pick([0, 0.01, 0.1]))
        let scale = rng.pick([1e-8, 1e-3, 1, 1e4] as [Float]), nonFinite = rng.chance(0.1)
        func vec(_ f: (inout FuzzRNG) -> Float) -> GuardedMatrix {
            guardedVector((0..<c.n).map { _ in f(&rng) }, misalign: rng.below(16), sentinel: inputSentinel)
        }
        c.param = vec { $0.float(-2, 2) }
        c.grad = vec { gradientValue(&$0, scale: scale, nonFinite: nonFinite) }
        c.m = vec { gradientValue(&$0, scale: scale * 0.3, nonFinite: false) }
        c.v = vec {
            let g = gradientValue(&$0, scale: scale, nonFinite: false); return g * g
        }
        return c
    }

    struct Run { let p: GuardedMatrix, m: GuardedMatrix, v: GuardedMatrix, gradSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let p = c.param.copy(), m = c.m.copy(), v = c.v.copy(), snap = c.grad.snapshot()
        var h = c.hyper.constantsForFuzz(step: c.step)
        table.kernels.pointee.adamw(c.n, p.base, c.grad.base, m.base, v.base, &h)
        return Run(p: p, m: m, v: v, gradSnap: snap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        for (what, g) in [("param", r.p), ("m", r.m), ("v", r.v)] { if let bad = g.damagedPadding(what) { return bad } }
        if !c.grad.unchanged(since: r.gradSnap) { return "the kernel wrote into grad" }
        let p = c.param.copy(), m = c.m.copy(), v = c.v.copy()
        KernelOracle.adamW(
            count: c.n, param: p.base, grad: c.grad.base, m: m.base, v: v.base, constants: AdamWConstants(c.hyper, step: c.step),
            fused: tableFuses(table))
        return firstBitDifference("param", got: r.p.base, want: p.base, n: c.n)
            ?? firstBitDifference("m", got: r.m.base, want: m.base, n: c.n)
            ?? firstBitDifference("v", got: r.v.base, want: v.base, n: c.n)
    }
}

extension TrainingKernels.AdamW {
    /// The C constants of step `step` (what TrainingKernels passes to the kernel).
    func constantsForFuzz(step: Int) -> ck_adamw_params {
        let c = AdamWConstants(self, step: step)
        return ck_adamw_params(
            decay: c.decay, beta1_weight: c.beta1Weight, beta2: c.beta2, one_minus_beta2: c.oneMinusBeta2, bias2_sqrt: c.bias2Sqrt,
            eps: c.eps, neg_step_size: c.negStepSize)
    }
}

// MARK: - SGD

/// The table's SGD step: plain, momentum with and without dampening, Nesterov, weight decay,
/// the first step (buffer set from the gradient, never read), gradients at many scales, NaN
/// and ±inf. Bitwise against the oracle (fused as the table is); without momentum the buffer
/// must stay untouched.
struct SGDFuzz: FuzzKernel {
    let name = "sgd"

    final class Case: CustomStringConvertible {
        var n = 0, c = SGDConstants(weightDecay: 0, momentum: 0, dampeningWeight: 1, negLR: -0.1, nesterov: false, firstStep: false)
        var param: GuardedMatrix!, grad: GuardedMatrix!, buf: GuardedMatrix!
        var description: String {
            "n=\(n) wd=\(c.weightDecay) momentum=\(c.momentum) 1-dampening=\(c.dampeningWeight) -lr=\(c.negLR) nesterov=\(c.nesterov) first=\(c.firstStep)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.n = boundarySize(&rng, edges: vectorEdges, small: 40, maxLarge: 2000)
        let momentum: Float = rng.pick([0, 0.9, 0.5, 0.99])
        let nesterov = momentum > 0 && rng.chance(0.3)
        c.c = SGDConstants(
            weightDecay: rng.pick([0, 0, 1e-4, 0.01]), momentum: momentum, dampeningWeight: nesterov ? 1 : rng.pick([1, 0.9, 0.5]),
            negLR: -rng.pick([0.1, 1e-3, 1, 0.5]), nesterov: nesterov, firstStep: rng.chance(0.25))
        let scale = rng.pick([1e-6, 1, 1e3] as [Float]), nonFinite = rng.chance(0.1)
        c.param = guardedVector((0..<c.n).map { _ in rng.float(-2, 2) }, misalign: rng.below(16), sentinel: inputSentinel)
        c.grad = guardedVector(
            (0..<c.n).map { _ in gradientValue(&rng, scale: scale, nonFinite: nonFinite) }, misalign: rng.below(16), sentinel: inputSentinel)
        // With a first step the buffer's old contents are garbage the kernel must not read.
        c.buf = guardedVector(
            (0..<c.n).map { _ in c.c.firstStep ? Float.nan : gradientValue(&rng, scale: scale, nonFinite: false) }, misalign: rng.below(16),
            sentinel: inputSentinel)
        return c
    }

    struct Run { let p: GuardedMatrix, b: GuardedMatrix, gradSnap: [UInt32], bufSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let p = c.param.copy(), b = c.buf.copy(), gs = c.grad.snapshot(), bs = b.snapshot()
        var h = ck_sgd_params(
            weight_decay: c.c.weightDecay, momentum: c.c.momentum, dampening_weight: c.c.dampeningWeight, neg_lr: c.c.negLR,
            nesterov: c.c.nesterov ? 1 : 0, first_step: c.c.firstStep ? 1 : 0)
        table.kernels.pointee.sgd(c.n, p.base, c.grad.base, b.base, &h)
        return Run(p: p, b: b, gradSnap: gs, bufSnap: bs)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.p.damagedPadding("param") ?? r.b.damagedPadding("buffer") { return bad }
        if !c.grad.unchanged(since: r.gradSnap) { return "the kernel wrote into grad" }
        if c.c.momentum == 0 && !r.b.unchanged(since: r.bufSnap) { return "the kernel wrote into the buffer without momentum" }
        let p = c.param.copy(), b = c.buf.copy()
        KernelOracle.sgd(count: c.n, param: p.base, grad: c.grad.base, buffer: b.base, constants: c.c, fused: tableFuses(table))
        return firstBitDifference("param", got: r.p.base, want: p.base, n: c.n)
            ?? (c.c.momentum == 0 ? nil : firstBitDifference("buffer", got: r.b.base, want: b.base, n: c.n))
    }
}

// MARK: - sum of squares, scale

/// The table's sum of squares (against the Double sum in index order: the lanes' order
/// differs, so within n * 2^-53 relative; overflow-free since every square is a double) and
/// in-place scale (bitwise: one rounded product per element), over every value mix.
struct SumSquaresFuzz: FuzzKernel {
    let name = "sum-squares"

    final class Case: CustomStringConvertible {
        var n = 0, mix = ValueMix.uniform, s: Float = 1
        var x: GuardedMatrix!
        var description: String { "n=\(n) values \(mix) scale by \(s) misalign \(x.offset - 16)" }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.n = boundarySize(&rng, edges: vectorEdges, small: 40, maxLarge: 5000)
        c.mix = rng.pick(ValueMix.allCases)
        c.s = rng.pick([0.5, 0.123, -3, 0, 1e-30, 1e30])
        let mix = c.mix
        c.x = guardedVector((0..<c.n).map { _ in mix.value(&rng) }, misalign: rng.below(16), sentinel: inputSentinel)
        return c
    }

    struct Run { let sum: Double, scaled: GuardedMatrix, snap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let snap = c.x.snapshot()
        let sum = table.kernels.pointee.sum_squares(c.n, c.x.base)
        let y = c.x.copy()
        table.kernels.pointee.scale(c.n, c.s, y.base)
        return Run(sum: sum, scaled: y, snap: snap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if !c.x.unchanged(since: r.snap) { return "sum_squares wrote into x" }
        if let bad = r.scaled.damagedPadding("x (scaled)") { return bad }
        let want = KernelOracle.sumOfSquares(count: c.n, c.x.base)
        let tol = Double(c.n) * 0x1p-52 * want
        if want.isNaN ? !r.sum.isNaN : (want.isInfinite ? r.sum != want : !(abs(r.sum - want) <= tol)) {
            return "sum of squares of \(c.n): got \(r.sum), oracle \(want) (tolerance \(tol))"
        }
        for i in 0..<c.n {
            let e = c.x.base[i] * c.s, g = r.scaled.base[i]
            if g.bitPattern != e.bitPattern && !(g.isNaN && e.isNaN) { return "scale: element \(i) of \(c.n): got \(g), want \(e)" }
        }
        return nil
    }
}
