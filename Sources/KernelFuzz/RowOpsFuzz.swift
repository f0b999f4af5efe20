// The row kernels: exp, softmax, activations, layer/RMS norm.
import Attend
import CKernels
import Foundation

/// Lengths around every vector width in use (1, 4, 8, 16 lanes; 2 vectors per step).
let vectorEdges = [1, 2, 4, 8, 16, 24, 32, 48, 64]

/// The output of an element-wise kernel (`y = f(x)`, `n` values in one row): `x` itself when
/// the case runs in place, else a fresh guarded row at a random misalignment.
func elementwiseOutput(for x: GuardedMatrix, n: Int, inPlace: Bool, _ rng: inout FuzzRNG) -> GuardedMatrix {
    inPlace ? x : GuardedMatrix(rows: x.rows, cols: n, ld: max(n, 1), misalign: rng.below(16), sentinel: outputSentinel)
}

/// What an element-wise kernel leaves for its check: its output (a copy of the case's, so the
/// case can run again), the input values and a bit snapshot of the input buffer.
struct ElementwiseRun { let out: GuardedMatrix, input: [Float], xSnap: [UInt32] }

/// Runs an element-wise kernel `kernel(x, y)` on the case's `n` values of `x`, into a copy of
/// `y` (or of `x` itself, in place).
func runElementwise(
    x: GuardedMatrix, y: GuardedMatrix, n: Int, inPlace: Bool,
    _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
) -> ElementwiseRun {
    let input = (0..<n).map { x.base[$0] }
    let xSnap = x.snapshot()
    let out = inPlace ? x.copy() : y.copy()
    kernel(inPlace ? out.base : x.base, out.base)
    return ElementwiseRun(out: out, input: input, xSnap: xSnap)
}

// MARK: - exp

/// The table's vector exp: inputs over the whole float range (random bit patterns), dense
/// around the clamps, the underflow, subnormal and overflow thresholds, and the specials;
/// in place or not. At most 2 ulp from the correctly rounded result (header), exp(-inf) = 0,
/// exp(+inf) = +inf, NaN gives NaN.
struct ExpFuzz: FuzzKernel {
    let name = "exp"

    final class Case: CustomStringConvertible {
        var n = 0, inPlace = false, profile = 0
        var x: GuardedMatrix!, y: GuardedMatrix!
        var description: String { "n=\(n) inPlace=\(inPlace) misalign(x,y)=(\(x.offset - 16),\(y.offset - 16)) profile \(profile)" }
    }

    static let centers: [Float] = [-104, -103.972_08, -103.9, -87.336_54, -87.3, -87, 0, 88.72, 88.722_84, 88.7229, 88.73]

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.n = boundarySize(&rng, edges: vectorEdges, small: 40, maxLarge: 600)
        c.inPlace = rng.chance(0.3)
        c.profile = rng.below(4)
        let p = c.profile
        c.x = GuardedMatrix(rows: c.n == 0 ? 0 : 1, cols: c.n, ld: max(c.n, 1), misalign: rng.below(16), sentinel: inputSentinel)
        c.x.fill { _, _ in
            let r = rng.unit()
            if r < 0.04 {
                return rng.pick([.infinity, -.infinity, .nan, 0, -0.0, .leastNonzeroMagnitude, -.greatestFiniteMagnitude, .greatestFiniteMagnitude])
            }
            switch p {
            case 0: return Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))  // whole range
            case 1: return rng.float(-110, 95)
            case 2:  // consecutive floats around a threshold
                var v = rng.pick(ExpFuzz.centers)
                let steps = rng.int(-300...300)
                for _ in 0..<abs(steps) { v = steps < 0 ? v.nextDown : v.nextUp }
                return v
            default: return rng.float(-1, 1) * Float(rng.pick([1e-8, 1e-3, 1, 10, 100] as [Float]))
            }
        }
        c.y = elementwiseOutput(for: c.x, n: c.n, inPlace: c.inPlace, &rng)
        return c
    }

    typealias Run = ElementwiseRun

    func run(_ c: Case, on table: FuzzTable) -> Run {
        runElementwise(x: c.x, y: c.y, n: c.n, inPlace: c.inPlace) { table.kernels.pointee.exp(c.n, $0, $1) }
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("y") { return bad }
        if !c.inPlace && !c.x.unchanged(since: r.xSnap) { return "the kernel wrote into x" }
        for i in 0..<c.n {
            let x = r.input[i], got = r.out.base[i]
            if let why = ExpFuzz.expError(x: x, got: got) {
                return "element \(i) of \(c.n): exp(\(x)) (bits 0x\(String(x.bitPattern, radix: 16))): \(why)"
            }
        }
        return nil
    }

    /// Nil when `got` is within 2 ulp of the correctly rounded exp(x) (distance counted in
    /// float bit patterns, so subnormal results in units of 2^-149 and FLT_MAX..inf as 1),
    /// with the specials exact. When Double exp lies within 2^-20 ulp of a float midpoint the
    /// rounded reference may be the wrong neighbour, so either neighbour is accepted.
    static func expError(x: Float, got: Float) -> String? {
        let d = KernelOracle.exp(x)
        let ref = Float(d)
        if ref.isNaN { return got.isNaN ? nil : "got \(got), expected NaN" }
        if got.isNaN || got.sign == .minus { return "got \(got), expected \(ref)" }
        func dist(_ a: Float, _ b: Float) -> Int64 {
            (Int64(a.bitPattern) - Int64(b.bitPattern)).magnitude > 0 ? Int64((Int64(a.bitPattern) - Int64(b.bitPattern)).magnitude) : 0
        }
        if x == -.infinity { return got == 0 ? nil : "got \(got), expected 0" }
        if x == .infinity { return got == .infinity ? nil : "got \(got), expected +inf" }
        if dist(got, ref) <= 2 { return nil }
        if ref.isFinite && ref > 0 {
            let half = Double(ref.ulp) / 2
            let alt = Double(ref) > d ? ref.nextDown : ref.nextUp
            if abs(abs(Double(ref) - d) - half) <= Double(ref.ulp) * 0x1p-20 && dist(got, alt) <= 2 { return nil }
        }
        return "got \(got), expected \(ref) (exact \(d)): \(dist(got, ref)) ulp > 2"
    }
}

// MARK: - softmax

/// The table's row softmax: rows x n around the vector widths (and long rows), padded
/// strides, in place or not, scale (negative too), no mask / a full mask / one shared mask row
/// (ldmask 0), -inf padding, all-masked rows, NaN, huge (1e30) and large (100s) logits, ±0,
/// subnormals. Rules checked exactly: a NaN term makes its row NaN, an all -inf row gives
/// zeros, a -inf term gives exactly 0. Rows with a +inf term are not checked (the contract
/// leaves them open: inf - inf).
struct SoftmaxFuzz: FuzzKernel {
    let name = "softmax"

    final class Case: CustomStringConvertible {
        var rows = 0, n = 0, scale: Float = 1, inPlace = false, maskKind = 0, profile = 0
        var x: GuardedMatrix!, y: GuardedMatrix!, mask: GuardedMatrix?
        var ldmask: Int { maskKind == 2 ? 0 : (mask?.ld ?? 0) }
        var description: String {
            "rows=\(rows) n=\(n) scale=\(scale) ldx=\(x.ld) ldy=\(y.ld) inPlace=\(inPlace) mask=\(["none", "full", "shared row (ldmask 0)"][maskKind])"
                + (mask.map { " ldmask=\(maskKind == 2 ? 0 : $0.ld)" } ?? "") + " values profile \(profile)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.rows = rng.chance(0.03) ? 0 : rng.int(1...4)
        c.n = boundarySize(&rng, edges: vectorEdges, zero: false, small: 40, maxLarge: rng.chance(0.2) ? 4100 : 300)
        c.scale = rng.chance(0.7) ? rng.pick([1, 1, 0.125, 0.5, 2, 1 / Float(8).squareRoot()]) : rng.pick([rng.float(-4, 4), -1, 0])
        c.inPlace = rng.chance(0.25)
        c.maskKind = rng.below(3)
        c.profile = rng.below(6)
        let p = c.profile
        c.x = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
        let allMinusInfRow = rng.chance(0.15) ? rng.below(max(c.rows, 1)) : -1
        c.x.fill { i, _ in
            if i == allMinusInfRow && c.maskKind == 0 { return -.infinity }
            let r = rng.unit()
            switch p {
            case 0: return rng.float(-1, 1)
            case 1: return rng.float(-100, 100)  // naive exp overflows
            case 2: return r < 0.1 ? rng.pick([-.infinity, 0, -0.0, .leastNonzeroMagnitude, 1e30, -1e30]) : rng.float(-5, 5)
            case 3: return r < 0.05 ? rng.pick([.nan, -.infinity, .infinity]) : rng.float(-5, 5)
            case 4: return rng.float(-1, 1) * 1e30
            default: return r < 0.3 ? -.infinity : rng.float(-20, 20)
            }
        }
        if c.maskKind != 0 {
            let mrows = c.maskKind == 1 ? c.rows : 1
            let m = GuardedMatrix(rows: mrows, cols: c.n, ld: c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
            let padFrom = rng.chance(0.5) ? rng.int(0...c.n) : c.n
            m.fill { i, j in
                if i == allMinusInfRow { return -.infinity }
                if j >= padFrom { return -.infinity }
                return rng.chance(0.5) ? 0 : rng.float(-3, 3)
            }
            c.mask = m
        }
        if c.inPlace {
            c.y = c.x
        } else {
            c.y = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        }
        return c
    }

    struct Run { let out: GuardedMatrix, x: GuardedMatrix, xSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let xSnap = c.x.snapshot()
        let x = c.x.copy()
        let out = c.inPlace ? x : c.y.copy()
        table.kernels.pointee.softmax_rows(c.rows, c.n, x.base, x.ld, out.base, out.ld, c.scale, c.mask?.base, c.ldmask)
        return Run(out: out, x: x, xSnap: xSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if c.inPlace {
            if let bad = r.out.damagedPadding("x = y (in place)") { return bad }
        } else {
            if let bad = r.out.damagedPadding("y") { return bad }
            if !r.x.unchanged(since: r.xSnap) { return "the kernel wrote into x" }
        }
        if c.rows == 0 { return nil }
        let oracle = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n, sentinel: outputSentinel)
        KernelOracle.softmaxRows(
            rows: c.rows, n: c.n, x: c.x.base, ldx: c.x.ld, y: oracle.base, ldy: oracle.ld, scale: c.scale,
            mask: c.mask?.base, ldmask: c.ldmask)
        // Tolerance of y_j = exp(t_j - m) / sum_k exp(t_k - m), relative to y_j, with
        // t_j = x_j * scale + mask_j (see the softmax tests): the float32 add of a mask term
        // errs by u*|t_j| and t_j - m by u*|t_j - m| in the argument of exp (a relative error
        // of the same size in y_j); y_j = exp(t_j - m_b) * (exp(m_b - m) / sum) with m_b the
        // running max of t_j's block (header): two exps within 2 ulp (8u), the reciprocal and
        // two products 3u, the oracle's rounding 1u, the sum's own exp errors 4u: 16u; the sum
        // of n positive terms in any order errs by at most (n - 1)*u relative (worst case, no
        // statistical argument), and each rescale of the running sum (at most once per block
        // of >= 16 terms, at most 63 times) by up to 5u; the argument errors of the other
        // terms move the denominator by sum_k y_k * err_k relative (y_k from the oracle).
        // Terms with t_j - m < -87 may be flushed to 0 (header): absolute 2^-125.
        let xb = c.x.base
        var t = [Double](repeating: 0, count: c.n), rounded = [Double](repeating: 0, count: c.n)
        for row in 0..<c.rows {
            var m = -Double.infinity, mRounded = 0.0, nan = false, plusInf = false
            for j in 0..<c.n {
                var v = Double(xb[row * c.x.ld + j] * c.scale)
                rounded[j] = 0
                if let mask = c.mask {
                    let mv = mask.base[row * c.ldmask + j]
                    if mv != 0 {
                        v += Double(mv)
                        rounded[j] = v.magnitude
                    }
                }
                t[j] = v
                if v.isNaN { nan = true }
                if v == .infinity { plusInf = true }
                if v > m {
                    m = v
                    mRounded = rounded[j]
                }
            }
            if plusInf && !nan { continue }
            var denominator = 0.0
            if !nan && m > -.infinity {
                for j in 0..<c.n where t[j] > -.infinity {
                    denominator += Double(oracle[row, j]) * (rounded[j] + (t[j] - m).magnitude)
                }
            }
            for j in 0..<c.n {
                let g = r.out[row, j], e = oracle[row, j]
                if nan {
                    if !g.isNaN { return "row \(row) col \(j) (n \(c.n)): the row has a NaN term, so it must be NaN; got \(g)" }
                    continue
                }
                if t[j] == -.infinity {
                    if g != 0 {
                        return
                            "row \(row) col \(j) (n \(c.n)): the term is -inf\(m == -.infinity ? " (every term of the row is)" : ""), so the result must be exactly 0; got \(g)"
                    }
                    continue
                }
                let rel = u * (16 + 5 * Double(softmaxRescales(c.n)) + Double(c.n - 1) + rounded[j] + mRounded + (t[j] - m).magnitude + denominator)
                let tol = Double(e.magnitude) * rel + 0x1p-125
                if !matches(g, Double(e), tolerance: tol) {
                    return "row \(row) col \(j) (n \(c.n)): \(mismatchText(g, Double(e), tol)) (term t = \(t[j]), row max \(m))"
                }
            }
        }
        return nil
    }
}

/// The most times the row softmax rescales its running sum in a row of n terms: once per
/// block after the first, blocks of at least 16 terms (16 one-lane vectors on the scalar
/// variant), at most 64 blocks (header).
func softmaxRescales(_ n: Int) -> Int { min(63, max(0, (n + 15) / 16 - 1)) }

// MARK: - activations

/// The table's activations (relu, gelu, gelu-tanh, silu): lengths around the vector widths,
/// in place or not, values in several ranges (including where results underflow or 1 + erf
/// cancels), ±0, subnormals, huge, NaN, ±inf.
struct ActivationFuzz: FuzzKernel {
    let name = "activation"
    static let kinds: [(Activation, Int32)] = [
        (.relu, Int32(CK_ACT_RELU)), (.gelu, Int32(CK_ACT_GELU)), (.geluTanh, Int32(CK_ACT_GELU_TANH)), (.silu, Int32(CK_ACT_SILU)),
    ]

    final class Case: CustomStringConvertible {
        var kind = 0, n = 0, inPlace = false, range: Float = 1
        var x: GuardedMatrix!, y: GuardedMatrix!
        var description: String {
            "\(ActivationFuzz.kinds[kind].0) n=\(n) inPlace=\(inPlace) range ±\(range) misalign(x,y)=(\(x.offset - 16),\(y.offset - 16))"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.kind = rng.below(4)
        c.n = boundarySize(&rng, edges: vectorEdges, small: 40, maxLarge: 300)
        c.inPlace = rng.chance(0.3)
        c.range = rng.pick([1, 4, 10, 16, 100, 1e20])
        let range = c.range
        c.x = GuardedMatrix(rows: c.n == 0 ? 0 : 1, cols: c.n, ld: max(c.n, 1), misalign: rng.below(16), sentinel: inputSentinel)
        c.x.fill { _, _ in
            rng.chance(0.05)
                ? rng.pick([
                    0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, .nan, .infinity, -.infinity, 1e30, -1e30,
                ])
                : rng.float(-range, range)
        }
        c.y = elementwiseOutput(for: c.x, n: c.n, inPlace: c.inPlace, &rng)
        return c
    }

    typealias Run = ElementwiseRun

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let kind = ActivationFuzz.kinds[c.kind].1
        return runElementwise(x: c.x, y: c.y, n: c.n, inPlace: c.inPlace) { table.kernels.pointee.activation(kind, c.n, $0, $1) }
    }

    /// Relative error bounds of the float32 kernels (y = f(x), |y_ref| the oracle):
    ///  - relu: exact;
    ///  - silu x / (1 + exp(-x)): exp's 2 ulp and the argument's exactness give 4u, the add
    ///    and division 2u more, 1u oracle: 16u (margin included);
    ///  - gelu-tanh x / (1 + exp(-2w)), w = sqrt(2/pi)(x + 0.044715 x^3): w is rounded 4 times
    ///    (~4u|w| absolute in the exponent, 2*4u|w| after doubling), exp 4u, the rest 4u:
    ///    u*(16 + 8|w|);
    ///  - gelu through erfc: erfc = t Q(t) exp(-z^2) (z = |x|/sqrt 2, Q a fitted polynomial)
    ///    errs by 6.4e-8 relative (2.2e-7 with Q evaluated in float32; 1.2e-7 is kept from the
    ///    Numerical Recipes erfcc it replaced), and exp's argument is rounded at magnitude z^2:
    ///    u*(16 + 4z^2);
    ///  - and, for the three smooth ones, the oracle's own cancellation in 1 + erf / 1 + tanh
    ///    for very negative x: |x| * 2^-51 absolute; results in the subnormal range: 2^-147.
    /// For ±inf inputs only relu is checked (the other three leave them to IEEE arithmetic in
    /// an unspecified order: the contract does not state them).
    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding(c.inPlace ? "x = y (in place)" : "y") { return bad }
        if !c.inPlace && !c.x.unchanged(since: r.xSnap) { return "the kernel wrote into x" }
        let kind = ActivationFuzz.kinds[c.kind].0
        for i in 0..<c.n {
            let x = r.input[i], got = r.out.base[i]
            let e = KernelOracle.activation(kind, x)
            let ok: Bool
            var tol = 0.0
            switch kind {
            case .relu:
                ok = e.isNaN ? got.isNaN : got == e
            default:
                if x.isInfinite { continue }
                tol = activationTolerance(kind, x: x, expected: e)
                ok = matches(got, Double(e), tolerance: tol)
            }
            if !ok { return "element \(i) of \(c.n): \(kind)(\(x)): \(mismatchText(got, Double(e), tol))" }
        }
        return nil
    }
}

/// The error bound of the table's smooth activations (silu, gelu, gelu-tanh) at `x` against
/// the oracle's `expected` (derivation at ``ActivationFuzz/check(_:_:table:)``); relu is exact.
func activationTolerance(_ kind: Activation, x: Float, expected e: Float) -> Double {
    let dx = Double(x)
    let rel: Double
    switch kind {
    case .relu: return 0
    case .silu: rel = u * 16
    case .geluTanh:
        let w = (2 / Double.pi).squareRoot() * (dx + 0.044715 * dx * dx * dx)
        rel = u * (16 + 8 * abs(w))
    case .gelu: rel = 1.2e-7 + u * (16 + 2 * dx * dx)
    }
    return Double(e.magnitude) * rel + dx.magnitude * 0x1p-51 + 0x1p-147
}

// MARK: - layer norm / RMS norm

/// The table's row normalization fused with the residual add: layer norm and RMS norm,
/// rows x n around the vector widths (long rows too), padded strides, residual or not, beta or
/// not, y aliasing x or the residual, data with a large common offset (the two-pass variance),
/// small and large scales, ±0 and subnormals.
struct NormFuzz: FuzzKernel {
    let name = "norm"

    final class Case: CustomStringConvertible {
        var rms = false, rows = 0, n = 0, eps: Float = 1e-5, alias = 0, hasBeta = false, scale: Float = 1, shift: Float = 0
        var x: GuardedMatrix!, res: GuardedMatrix?, y: GuardedMatrix!, gamma: GuardedMatrix!, beta: GuardedMatrix?
        var description: String {
            "\(rms ? "rms" : "layer") norm rows=\(rows) n=\(n) eps=\(eps) ldx=\(x.ld) ldr=\(res.map { "\($0.ld)" } ?? "-") ldy=\(y.ld) residual=\(res != nil) beta=\(hasBeta) y aliases \(["nothing", "x", "residual"][alias]) values shift \(shift) scale \(scale)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.rms = rng.chance(0.4)
        c.rows = rng.chance(0.03) ? 0 : rng.int(1...3)
        c.n = boundarySize(&rng, edges: vectorEdges, zero: false, small: 40, maxLarge: rng.chance(0.1) ? 4100 : 800)
        c.eps = rng.pick([1e-5, 1e-6, 1e-12, 0.1])
        c.scale = rng.pick([1, 1, 1e-3, 1e3, 1e10, 1e-20])
        c.shift = rng.chance(0.2) ? rng.pick([10, -1000, 1e4]) * c.scale : 0
        let scale = c.scale, shift = c.shift
        let special = rng.chance(0.1)
        func value(_ rng: inout FuzzRNG) -> Float {
            if special && rng.chance(0.1) { return rng.pick([0, -0.0, .leastNonzeroMagnitude, -.leastNormalMagnitude]) }
            return shift + rng.float(-1, 1) * scale
        }
        let ld = c.n + rowPadding(&rng)
        c.x = GuardedMatrix(rows: c.rows, cols: c.n, ld: ld, misalign: rng.below(16), sentinel: inputSentinel)
        c.x.fill { _, _ in value(&rng) }
        if rng.chance(0.5) {
            let r = GuardedMatrix(
                rows: c.rows, cols: c.n, ld: rng.chance(0.5) ? ld : c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
            r.fill { _, _ in rng.chance(0.5) ? 0 : value(&rng) * 0.5 }
            c.res = r
        }
        c.alias = rng.below(3)
        if c.alias == 2 && c.res == nil { c.alias = 0 }
        c.gamma = guardedVector((0..<c.n).map { _ in rng.chance(0.3) ? 1 : rng.float(-2, 2) }, misalign: rng.below(16), sentinel: inputSentinel)
        c.hasBeta = rng.chance(0.6)
        if c.hasBeta { c.beta = guardedVector((0..<c.n).map { _ in rng.float(-1, 1) }, misalign: rng.below(16), sentinel: inputSentinel) }
        switch c.alias {
        case 1: c.y = c.x
        case 2: c.y = c.res!
        default: c.y = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        }
        return c
    }

    struct Run { let out: GuardedMatrix, x: GuardedMatrix, res: GuardedMatrix?, snaps: [[UInt32]] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let x = c.x.copy(), res = c.res?.copy()
        let out: GuardedMatrix
        switch c.alias {
        case 1: out = x
        case 2: out = res!
        default: out = c.y.copy()
        }
        let snaps = [x.snapshot(), res?.snapshot() ?? [], c.gamma.snapshot(), c.beta?.snapshot() ?? []]
        table.kernels.pointee.norm_rows(
            c.rms ? 1 : 0, c.rows, c.n, x.base, x.ld, res?.base, res?.ld ?? 0, c.gamma.base, c.beta?.base, c.eps, out.base, out.ld)
        return Run(out: out, x: x, res: res, snaps: snaps)
    }

    /// Error bound of y_i = (t_i - mean) * rstd * gamma_i + beta_i against the Double oracle,
    /// from the float32 evaluation: t = x + r rounds by u|t|; the mean of n terms errs by
    /// (n + 2)u * mean|t| (sum in any order plus the division), so each d_i = t_i - mean is
    /// off by delta = u*max|t| + that (+ u|d_i| for the subtraction); the variance of n
    /// squares errs by (n + 3)u * var plus 2 delta sqrt(var) + delta^2 from the d_i; rstd =
    /// 1/sqrt(var + eps) is then off relatively by half the variance's relative error plus 3u.
    /// The output: |gamma_i| (|d_i| rstd * rel(rstd) + rstd (delta + u|d_i|)) + 3u|y_i| + u|beta_i|.
    /// RMS norm is the same with mean = 0. Roundings in the subnormal range add 2^-150
    /// absolute each.
    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding(["y", "x = y", "residual = y"][c.alias]) { return bad }
        if c.alias != 1 && !r.x.unchanged(since: r.snaps[0]) { return "the kernel wrote into x" }
        if c.alias != 2, let res = r.res, !res.unchanged(since: r.snaps[1]) { return "the kernel wrote into the residual" }
        if !c.gamma.unchanged(since: r.snaps[2]) { return "the kernel wrote into gamma" }
        if let b = c.beta, !b.unchanged(since: r.snaps[3]) { return "the kernel wrote into beta" }
        if c.rows == 0 { return nil }
        let oracle = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n, sentinel: outputSentinel)
        KernelOracle.normRows(
            rms: c.rms, rows: c.rows, n: c.n, x: c.x.base, ldx: c.x.ld, residual: c.res?.base, ldr: c.res?.ld ?? 0,
            gamma: c.gamma.base, beta: c.beta?.base, eps: c.eps, y: oracle.base, ldy: oracle.ld)
        let n = Double(c.n)
        for row in 0..<c.rows {
            var t = [Double](repeating: 0, count: c.n)
            for i in 0..<c.n { t[i] = Double(c.x[row, i]) + (c.res.map { Double($0[row, i]) } ?? 0) }
            let maxT = t.reduce(0) { max($0, abs($1)) }, meanAbs = t.reduce(0) { $0 + abs($1) } / n
            let mean = c.rms ? 0 : t.reduce(0, +) / n
            let variance = t.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
            // In the subnormal range a rounding errs by up to 2^-150 absolute instead of
            // relatively: n + 4 of them in the mean (and the residual add), n + 3 in the variance.
            let delta = u * maxT + (c.rms ? 0 : (n + 2) * u * meanAbs) + (n + 4) * 0x1p-150
            let varErr = (n + 3) * u * variance + 2 * delta * variance.squareRoot() + delta * delta + (n + 3) * 0x1p-150
            let denom = variance + Double(c.eps)
            let rstd = 1 / denom.squareRoot()
            let rstdRel = 0.5 * varErr / denom + 3 * u
            for i in 0..<c.n {
                let d = abs(t[i] - mean), g = Double(c.gamma.base[i].magnitude)
                let bi = c.rms ? 0 : Double(c.beta?.base[i].magnitude ?? 0)
                let e = Double(oracle[row, i]), got = r.out[row, i]
                let tol = g * (d * rstd * rstdRel + rstd * (delta + u * d)) + 3 * u * abs(e) + u * bi + 0x1p-147
                if !matches(got, e, tolerance: tol) {
                    return "row \(row) element \(i) (n \(c.n)): \(mismatchText(got, e, tol)) (t \(t[i]), mean \(mean), var \(variance))"
                }
            }
        }
        return nil
    }
}
