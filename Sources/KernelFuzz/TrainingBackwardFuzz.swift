// The training kernels of the non-attention layers (attend_kernels_backward.h): the fused
// softmax cross-entropy, the norm training forward and backward, the activation and gated
// backward passes, and the embedding backward, against the Double oracles of
// SwiftSIMDTraining.swift.
import Attend
import CKernels
import Foundation

/// The absolute error floor of a float32 result that may land in the subnormal range: one
/// rounding there errs by up to 2^-150, a few of them by 2^-147.
let subnormalFloor = 0x1p-147

// MARK: - cross-entropy

/// The table's fused softmax cross-entropy (loss and gradient in one kernel): vocabularies
/// of 1, around every vector width and the kernel's 2048-float chunk (tails of every width,
/// odd sizes), rows with the ignore index -100 (and all of them ignored), label smoothing 0
/// and > 0, logits of magnitude 1 to ±80 (the exp's range) and ±1e4, logits at a large
/// common offset (±1000, 3e4), ties (most logits equal, or integers), one-hot rows, -inf
/// logits (masked vocabulary), a NaN row, the gradient written to its own
/// buffer, aliasing the logits (same stride) or not at all (loss only), padded strides, and
/// grad_scale of 1 / count, an upstream factor or 0.
struct CrossEntropyFuzz: FuzzKernel {
    let name = "cross-entropy"
    static let ignoreIndex: Int32 = -100

    final class Case: CustomStringConvertible {
        var rows = 0, vocab = 1, smoothing: Float = 0, gradScale: Float = 1, amplitude: Float = 1, profile = 0
        /// 0: dlogits is its own buffer, 1: dlogits aliases the logits, 2: no gradient.
        var gradMode = 0
        var logits: GuardedMatrix!, dlogits: GuardedMatrix?, targets: [Int32] = []
        var description: String {
            "rows=\(rows) vocab=\(vocab) ld=\(logits.ld) smoothing=\(smoothing) grad_scale=\(gradScale) amplitude \(amplitude) profile \(["uniform", "ties", "integers", "masked", "nan row", "one hot", "offset"][profile]) gradient \(["own buffer", "aliases logits", "none"][gradMode]) ldd=\(dlogits.map { "\($0.ld)" } ?? "-") targets \(targets.prefix(8))\(targets.count > 8 ? "..." : "")"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.rows = rng.chance(0.03) ? 0 : rng.int(1...4)
        c.vocab =
            rng.chance(0.1)
            ? rng.pick([1, 2, 3, 2047, 2048, 2049, 4095, 4097, 2048 + 15, 2048 + 17])
            : boundarySize(&rng, edges: vectorEdges + [2048], zero: false, small: 40, maxLarge: rng.chance(0.2) ? 9000 : 1200)
        c.smoothing = rng.chance(0.5) ? 0 : rng.pick([0.1, 0.01, 0.5, 1, 0.3])
        c.amplitude = rng.pick([1, 5, 20, 80, 1e4])
        c.profile = rng.pick([0, 0, 0, 1, 2, 3, 4, 5, 6])
        let ld = c.vocab + rowPadding(&rng)
        c.logits = GuardedMatrix(rows: c.rows, cols: c.vocab, ld: ld, misalign: rng.below(16), sentinel: inputSentinel)
        let amp = c.amplitude, profile = c.profile
        let tie = rng.float(-amp, amp), offset = rng.pick([1000, -1000, 3e4] as [Float])
        let nanRow = rng.below(max(c.rows, 1))
        let maskedAll = rng.chance(0.1)
        let hot = (0..<max(c.rows, 1)).map { _ in rng.below(c.vocab) }
        c.logits.fill { r, j in
            switch profile {
            case 1: return rng.chance(0.8) ? tie : rng.float(-amp, amp)
            case 2: return Float(rng.int(-3...3)) * (amp / 4).rounded(.up)
            case 3: return (maskedAll && r == 0) || rng.chance(0.3) ? -.infinity : rng.float(-amp, amp)
            case 4: return r == nanRow && rng.chance(0.05) ? .nan : rng.float(-amp, amp)
            case 5: return j == hot[r] ? amp : -amp
            case 6: return offset + rng.float(-min(amp, 20), min(amp, 20))
            default: return rng.float(-amp, amp)
            }
        }
        let allIgnored = rng.chance(0.08)
        c.targets = (0..<c.rows).map { r in
            if allIgnored || rng.chance(0.2) { return CrossEntropyFuzz.ignoreIndex }
            return Int32(profile == 5 && rng.chance(0.7) ? hot[r] : rng.below(c.vocab))
        }
        let count = c.targets.filter { $0 != CrossEntropyFuzz.ignoreIndex }.count
        c.gradScale = count == 0 ? 0 : rng.pick([1, 1, 2.5, -0.75, 1e-3]) / Float(count)
        c.gradMode = rng.pick([0, 0, 1, 2])
        if c.gradMode == 0 {
            c.dlogits = GuardedMatrix(
                rows: c.rows, cols: c.vocab, ld: c.vocab + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        }
        return c
    }

    struct Run { let loss: GuardedMatrix, grad: GuardedMatrix?, logits: GuardedMatrix, logitsSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let logits = c.logits.copy(), snap = logits.snapshot()
        let loss = GuardedMatrix(rows: 1, cols: max(c.rows, 1), ld: max(c.rows, 1), sentinel: outputSentinel)
        let grad: GuardedMatrix? = c.gradMode == 1 ? logits : c.dlogits?.copy()
        c.targets.withUnsafeBufferPointer { tp in
            table.kernels.pointee.cross_entropy(
                c.rows, c.vocab, logits.base, logits.ld, tp.baseAddress, CrossEntropyFuzz.ignoreIndex, c.smoothing, c.gradScale,
                loss.base, grad?.base, grad?.ld ?? 0)
        }
        return Run(loss: loss, grad: grad, logits: logits, logitsSnap: snap)
    }

    /// Error bounds against the Double oracle (each input float exact in Double), per row,
    /// with M = the row max, V the vocabulary and L = min(V, 2048) the kernel's chunk:
    ///  - the exp-sum s: every term exp(x_j - M) has its argument rounded once (u|x_j - M|
    ///    absolute: the term's relative error; summed over the terms against s >= 1 that is
    ///    at most u * min(max|x_j - M|, V/e), as |d| exp(-|d|) <= 1/e) and the exp errs by
    ///    2 ulp (4u); the terms are summed in float lanes within a chunk (at most L + 2
    ///    roundings, (L + 2)u relative), then in Double: rel(s) = u * (min(max|x_j - M|,
    ///    0.37 V) + L + 8). log s then errs by rel(s) absolute, and lse = M + log s too;
    ///  - the loss: (1 - e)(lse - x_t) + e(lse - sum(x)/V) takes lse's error once; the Double
    ///    additions 2^-51 (|M| + |x_t|) (logits of a large common offset: no float32 term);
    ///    sum(x) is a float sum within each chunk ((L + 2)u * sum|x| over the row), so
    ///    e(L + 2)u * mean|x|; the final rounding u|loss|, and u|loss| again for the oracle's
    ///    own rounding of its Double result (the two floats may sit on either side of a
    ///    midpoint: a logit row of magnitude 1e4 has m - x_t on a float midpoint and log s ~
    ///    1e-9, lost in the float exp-sum's 1 + tiny; the kernel rounds the tie down, the
    ///    oracle up: 1 ulp apart, each within half an ulp of the exact loss);
    ///  - the gradient element j: p_j = exp((x_j - M) - float(log s)): its argument errs by
    ///    u|x_j - M| (the subtraction), u log s + rel(s) (the rounded log s) and u|arg| (the
    ///    second subtraction), the exp 4u more; p_j's error is p_j times that. Then
    ///    elsewhere p_j - e/V rounds once and e/V once: 2u(p_j + e/V); at the target
    ///    (p_t - (1 - e)) - e/V rounds twice and 1 - e and e/V once each: 4u(p_t + 1); times
    ///    |grad_scale|, then u|g| for the product and u|g| for the oracle's rounding. Probabilities below exp(-87) ~ 2^-125.5 are flushed to 0 (the contract's
    ///    2^-126, with exp_nonpos's clamp at -87), |grad_scale| * 2^-125 absolute; results in
    ///    the subnormal range 2^-147.
    /// The bounds are on each element's own scale (p_j), not relative to the row's largest,
    /// except the cancellation at the target (p_t - (1 - e), bounded by 4u absolute times
    /// |grad_scale|). Ignored rows must be exactly 0 (loss and gradient); NaN rows NaN.
    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.loss.damagedPadding("loss") { return bad }
        if let g = r.grad, let bad = g.damagedPadding(c.gradMode == 1 ? "dlogits = logits" : "dlogits") { return bad }
        if c.gradMode != 1 && !r.logits.unchanged(since: r.logitsSnap) { return "the kernel wrote into the logits" }
        if c.rows == 0 { return nil }
        let oLoss = UnsafeMutablePointer<Float>.allocate(capacity: c.rows)
        defer { oLoss.deallocate() }
        let oGrad = GuardedMatrix(rows: c.rows, cols: c.vocab, ld: c.vocab, sentinel: outputSentinel)
        c.targets.withUnsafeBufferPointer { tp in
            KernelOracle.crossEntropy(
                rows: c.rows, vocab: c.vocab, logits: c.logits.base, ld: c.logits.ld, targets: tp.baseAddress!,
                ignoreIndex: CrossEntropyFuzz.ignoreIndex, smoothing: c.smoothing, gradScale: c.gradScale, loss: oLoss,
                dlogits: oGrad.base, ldd: oGrad.ld)
        }
        let v = Double(c.vocab), chunk = Double(min(c.vocab, 2048)), eps = Double(c.smoothing), scale = Double(c.gradScale.magnitude)
        for row in 0..<c.rows {
            let gotLoss = r.loss.base[row]
            if c.targets[row] == CrossEntropyFuzz.ignoreIndex {
                if gotLoss.bitPattern != 0 { return "row \(row) is ignored: loss \(gotLoss), want +0" }
                if let g = r.grad {
                    for j in 0..<c.vocab where g[row, j].bitPattern != 0 {
                        return "row \(row) is ignored: dlogits[\(j)] = \(g[row, j]), want +0"
                    }
                }
                continue
            }
            let x = (0..<c.vocab).map { Double(c.logits[row, $0]) }
            let m = x.max()!
            let finite = x.filter(\.isFinite)
            let spread = finite.reduce(0) { max($0, m - $1) }
            let relS = u * (min(spread, 0.37 * v) + chunk + 8)
            let logS = m.isFinite ? Foundation.log(x.reduce(0) { $0 + Foundation.exp($1 - m) }) : 0
            let meanAbs = finite.reduce(0) { $0 + abs($1) } / v
            let want = Double(oLoss[row])
            let lossTol =
                relS + 0x1p-51 * (abs(m) + abs(x[Int(c.targets[row])])) + eps * (chunk + 2) * u * meanAbs + 2 * u * abs(want) + subnormalFloor
            if !matches(gotLoss, want, tolerance: lossTol) {
                return
                    "row \(row) loss (vocab \(c.vocab), target \(c.targets[row])): \(mismatchText(gotLoss, want, lossTol)) (max \(m), log s \(logS))"
            }
            guard let g = r.grad else { continue }
            let lse = m + logS
            for j in 0..<c.vocab {
                let e = Double(oGrad[row, j]), got = g[row, j]
                let p = x[j].isNaN ? 0 : Foundation.exp(x[j] - lse)
                let argErr = x[j].isFinite ? u * (2 * abs(x[j] - m) + 2 * logS) + relS + 4 * u : 0
                let sub = Int32(j) == c.targets[row] ? 4 * u * (p + 1) : 2 * u * (p + eps / v)
                let tol = scale * (p * argErr + sub + 0x1p-125) + 2 * u * abs(e) + subnormalFloor
                if !matches(got, e, tolerance: tol) {
                    return
                        "row \(row) dlogits[\(j)] (vocab \(c.vocab), target \(c.targets[row])): \(mismatchText(got, e, tol)) (logit \(x[j]), max \(m), p \(p))"
                }
            }
        }
        return nil
    }
}

// MARK: - norm training forward and backward

/// The table's layer norm / RMS norm for training: the forward (`norm_rows_train`: y, the
/// saved t = x + residual, mean and rstd) and the backward (`norm_backward`: dx written or
/// accumulated onto the residual stream's gradient, dgamma and dbeta accumulated). Widths
/// around the vector widths (long rows too), padded strides, eps 1e-12 ... 0.1, with and
/// without residual, beta, t, dgamma, dbeta; y aliasing x or the residual, t aliasing x or
/// the residual; dx aliasing dy; data with a common offset and at small and large scales.
struct NormBackwardFuzz: FuzzKernel {
    let name = "norm-backward"

    final class Case: CustomStringConvertible {
        var rms = false, rows = 0, n = 1, eps: Float = 1e-5, scale: Float = 1, shift: Float = 0
        var hasBeta = false, accumulate = false, wantT = true, wantDGamma = true, wantDBeta = true
        /// Forward: y aliases 0 nothing, 1 x, 2 the residual; t aliases 0 nothing, 1 x, 2 the residual.
        var yAlias = 0, tAlias = 0
        /// Backward: dx aliases dy.
        var dxAliasesDy = false
        var x: GuardedMatrix!, res: GuardedMatrix?, gamma: GuardedMatrix!, beta: GuardedMatrix?
        var y: GuardedMatrix!, t: GuardedMatrix?
        var dy: GuardedMatrix!, dx: GuardedMatrix!, dgamma: GuardedMatrix!, dbeta: GuardedMatrix!
        var description: String {
            "\(rms ? "rms" : "layer") norm rows=\(rows) n=\(n) eps=\(eps) residual=\(res != nil) beta=\(hasBeta) t=\(wantT ? ["own", "aliases x", "aliases residual"][tAlias] : "none") y=\(["own", "aliases x", "aliases residual"][yAlias]) values shift \(shift) scale \(scale) | backward accumulate=\(accumulate) dx aliases dy=\(dxAliasesDy) dgamma=\(wantDGamma) dbeta=\(wantDBeta) ldx=\(x.ld) lddy=\(dy.ld) lddx=\(dx.ld)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.rms = rng.chance(0.4)
        c.rows = rng.chance(0.03) ? 0 : rng.int(1...4)
        c.n = boundarySize(&rng, edges: vectorEdges, zero: false, small: 40, maxLarge: rng.chance(0.1) ? 3000 : 700)
        c.eps = rng.pick([1e-5, 1e-6, 1e-12, 0.1])
        c.scale = rng.pick([1, 1, 1e-3, 1e3, 1e-15])
        c.shift = rng.chance(0.2) ? rng.pick([10, -1000]) * c.scale : 0
        let scale = c.scale, shift = c.shift
        func value(_ rng: inout FuzzRNG) -> Float { shift + rng.float(-1, 1) * scale }
        let ld = c.n + rowPadding(&rng)
        c.x = GuardedMatrix(rows: c.rows, cols: c.n, ld: ld, misalign: rng.below(16), sentinel: inputSentinel)
        c.x.fill { _, _ in value(&rng) }
        if rng.chance(0.5) {
            let r = GuardedMatrix(
                rows: c.rows, cols: c.n, ld: rng.chance(0.5) ? ld : c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
            r.fill { _, _ in rng.chance(0.3) ? 0 : value(&rng) * 0.5 }
            c.res = r
        }
        c.gamma = guardedVector((0..<c.n).map { _ in rng.chance(0.3) ? 1 : rng.float(-2, 2) }, misalign: rng.below(16), sentinel: inputSentinel)
        c.hasBeta = rng.chance(0.6)
        if c.hasBeta { c.beta = guardedVector((0..<c.n).map { _ in rng.float(-1, 1) }, misalign: rng.below(16), sentinel: inputSentinel) }
        // Forward outputs: y and t may each alias x or the residual (same stride), not each other.
        c.wantT = rng.chance(0.8)
        c.tAlias = c.wantT ? rng.pick([0, 0, 1, 2]) : 0
        if c.tAlias == 2 && (c.res == nil || c.res!.ld != ld) { c.tAlias = 0 }
        c.yAlias = rng.pick([0, 0, 1, 2])
        if c.yAlias == 2 && (c.res == nil || c.res!.ld != ld) { c.yAlias = 0 }
        if c.wantT && c.yAlias != 0 && c.yAlias == c.tAlias { c.yAlias = 0 }
        c.y = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        if c.wantT && c.tAlias == 0 {
            c.t = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        }
        // Backward.
        let dyScale = rng.pick([1, 1e-3, 1e3] as [Float])
        c.dy = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
        c.dy.fill { _, _ in rng.chance(0.05) ? 0 : rng.float(-1, 1) * dyScale }
        c.accumulate = rng.chance(0.5)
        c.dxAliasesDy = !c.accumulate && rng.chance(0.3)
        c.dx = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        let acc = c.accumulate
        c.dx.fill { _, _ in acc ? rng.float(-1, 1) * dyScale : .nan }  // not read when not accumulating
        c.wantDGamma = rng.chance(0.8)
        c.wantDBeta = !c.rms && rng.chance(0.8)
        c.dgamma = guardedVector((0..<c.n).map { _ in rng.chance(0.5) ? 0 : rng.float(-1, 1) }, misalign: rng.below(16), sentinel: outputSentinel)
        c.dbeta = guardedVector((0..<c.n).map { _ in rng.chance(0.5) ? 0 : rng.float(-1, 1) }, misalign: rng.below(16), sentinel: outputSentinel)
        return c
    }

    struct Run {
        let x: GuardedMatrix, res: GuardedMatrix?, y: GuardedMatrix, t: GuardedMatrix?, mean: [Float], rstd: [Float], inference: GuardedMatrix
        let inputSnaps: [[UInt32]]
        /// The backward's inputs (t, mean, rstd: the Double oracle's, rounded) and outputs.
        let tIn: GuardedMatrix, meanIn: [Float], rstdIn: [Float], dy: GuardedMatrix, dx: GuardedMatrix
        let dgamma: GuardedMatrix, dbeta: GuardedMatrix, backSnaps: [[UInt32]]
    }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let k = table.kernels.pointee
        let x = c.x.copy(), res = c.res?.copy()
        let y: GuardedMatrix = c.yAlias == 1 ? x : c.yAlias == 2 ? res! : c.y.copy()
        let t: GuardedMatrix? = !c.wantT ? nil : c.tAlias == 1 ? x : c.tAlias == 2 ? res! : c.t!.copy()
        var mean = [Float](repeating: .nan, count: max(c.rows, 1)), rstd = mean
        let inputSnaps = [x.snapshot(), res?.snapshot() ?? [], c.gamma.snapshot(), c.beta?.snapshot() ?? []]
        k.norm_rows_train(
            c.rms ? 1 : 0, c.rows, c.n, x.base, x.ld, res?.base, res?.ld ?? 0, c.gamma.base, c.beta?.base, c.eps, y.base, y.ld, t?.base,
            t?.ld ?? 0, &mean, &rstd)
        // The inference kernel on the same inputs: the training forward's y must be its bits.
        let inference = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n, sentinel: outputSentinel)
        k.norm_rows(
            c.rms ? 1 : 0, c.rows, c.n, c.x.base, c.x.ld, c.res?.base, c.res?.ld ?? 0, c.gamma.base, c.beta?.base, c.eps, inference.base,
            inference.ld)
        // The backward runs on the exact t and the Double mean / rstd rounded to float, so its
        // check measures the backward alone.
        let tIn = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n + (c.n % 3), misalign: 3, sentinel: inputSentinel)
        var meanIn = [Float](repeating: 0, count: max(c.rows, 1)), rstdIn = meanIn
        for row in 0..<c.rows {
            var td = [Double](repeating: 0, count: c.n)
            for i in 0..<c.n {
                tIn[row, i] = c.x[row, i] + (c.res?[row, i] ?? 0)
                td[i] = Double(tIn[row, i])
            }
            let (_, mu, rs) = TrainingMathFuzz.normStatistics(td, eps: Double(c.eps), rms: c.rms)
            meanIn[row] = Float(mu)
            rstdIn[row] = Float(rs)
        }
        let dy = c.dy.copy(), dx = c.dxAliasesDy ? dy : c.dx.copy()
        let dgamma = c.dgamma.copy(), dbeta = c.dbeta.copy()
        let backSnaps = [dy.snapshot(), tIn.snapshot()]
        k.norm_backward(
            c.rms ? 1 : 0, c.rows, c.n, dy.base, dy.ld, tIn.base, tIn.ld, meanIn, rstdIn, c.gamma.base, dx.base, dx.ld, c.accumulate ? 1 : 0,
            c.wantDGamma ? dgamma.base : nil, c.wantDBeta ? dbeta.base : nil)
        return Run(
            x: x, res: res, y: y, t: t, mean: mean, rstd: rstd, inference: inference, inputSnaps: inputSnaps, tIn: tIn, meanIn: meanIn,
            rstdIn: rstdIn, dy: dy, dx: dx, dgamma: dgamma, dbeta: dbeta, backSnaps: backSnaps)
    }

    /// Forward: y bitwise the inference norm_rows' (the contract: same row arithmetic), t
    /// bitwise the float sum x + residual, and mean / rstd against Double with the bounds of
    /// ``NormFuzz`` (mean: (n + 2)u * mean|t| for a float sum of n terms and the division;
    /// rstd: half the variance's relative error plus 3u).
    ///
    /// Backward, against the Double oracle on the same float t, mean and rstd (so only the
    /// backward's own roundings count), per row with g_i = dy_i * gamma_i, xhat_i =
    /// (t_i - mean) * rstd, A = mean|g| and B = mean|g * xhat|:
    ///  - xhat_i rounds twice (2u|xhat_i|), g_i once (u|g_i|);
    ///  - c1 = sum(g)/n is a float sum of n terms in any lane order plus a division:
    ///    (n + 2)u * A; c2 = sum(g * xhat)/n the same over products whose factors carry 3u:
    ///    (n + 6)u * B;
    ///  - dt_i = (g_i - c1 - xhat_i c2) * rstd: the inputs' errors (u|g_i| + err(c1) +
    ///    |xhat_i| err(c2) + 2u|xhat_i c2|), three roundings of the sums (3u(|g_i| + |c1| +
    ///    |xhat_i c2|)), times rstd, u|dt_i| for the product and u|dx_i| for the oracle's
    ///    rounding; accumulating, |dt_i| <= |dx_i| + |old dx_i| and the add rounds once more:
    ///    3u|dx_i| + u|old dx_i|;
    ///  - dgamma_i += sum_r dy xhat: each term carries 3u, the rows' float sum onto the old
    ///    value (rows + 1)u * (|dgamma_i| + sum|dy xhat|); dbeta_i the same with dy (exact terms);
    ///  - subnormal intermediates: (n + 8) * 2^-149 absolute on each sum, times rstd where it
    ///    multiplies.
    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        let yName = ["y", "x = y", "residual = y"][c.yAlias]
        if let bad = r.y.damagedPadding(yName) { return bad }
        if let t = r.t, c.tAlias == 0, let bad = t.damagedPadding("t") { return bad }
        if let bad = r.dx.damagedPadding(c.dxAliasesDy ? "dx = dy" : "dx") ?? r.dgamma.damagedPadding("dgamma")
            ?? r.dbeta.damagedPadding("dbeta")
        {
            return bad
        }
        let xWritten = c.yAlias == 1 || c.tAlias == 1, resWritten = c.yAlias == 2 || c.tAlias == 2
        if !xWritten && !r.x.unchanged(since: r.inputSnaps[0]) { return "the forward wrote into x" }
        if !resWritten, let res = r.res, !res.unchanged(since: r.inputSnaps[1]) { return "the forward wrote into the residual" }
        if !c.gamma.unchanged(since: r.inputSnaps[2]) { return "a kernel wrote into gamma" }
        if let b = c.beta, !b.unchanged(since: r.inputSnaps[3]) { return "the forward wrote into beta" }
        if !c.dxAliasesDy && !r.dy.unchanged(since: r.backSnaps[0]) { return "the backward wrote into dy" }
        if !r.tIn.unchanged(since: r.backSnaps[1]) { return "the backward wrote into t" }
        if !c.wantDGamma && !r.dgamma.unchanged(since: c.dgamma.snapshot()) { return "the backward wrote dgamma, given NULL" }
        if !c.wantDBeta && !r.dbeta.unchanged(since: c.dbeta.snapshot()) { return "the backward wrote dbeta, given NULL" }
        if c.rows == 0 { return nil }
        let n = Double(c.n)
        // Forward.
        for row in 0..<c.rows {
            for i in 0..<c.n {
                let yv = r.y[row, i], iv = r.inference[row, i]
                if yv.bitPattern != iv.bitPattern && !(yv.isNaN && iv.isNaN) {
                    return "forward y[\(row), \(i)] (n \(c.n)): got \(yv), the inference norm_rows gives \(iv) (must be the same bits)"
                }
                let tf = c.x[row, i] + (c.res?[row, i] ?? 0)
                if let t = r.t, t[row, i].bitPattern != tf.bitPattern {
                    return "forward t[\(row), \(i)]: got \(t[row, i]), want x + residual = \(tf)"
                }
            }
            let td = (0..<c.n).map { Double(r.tIn[row, $0]) }
            let (variance, mu, rs) = TrainingMathFuzz.normStatistics(td, eps: Double(c.eps), rms: c.rms)
            let maxT = td.reduce(0) { max($0, abs($1)) }, meanAbs = td.reduce(0) { $0 + abs($1) } / n
            let meanTol = c.rms ? 0 : (n + 2) * u * meanAbs + (n + 4) * 0x1p-150
            if !(c.rms ? r.mean[row] == 0 : matches(r.mean[row], mu, tolerance: meanTol)) {
                return "forward mean[\(row)] (n \(c.n)): \(mismatchText(r.mean[row], mu, meanTol))"
            }
            let delta = u * maxT + (c.rms ? 0 : (n + 2) * u * meanAbs) + (n + 4) * 0x1p-150
            let varErr = (n + 3) * u * variance + 2 * delta * variance.squareRoot() + delta * delta + (n + 3) * 0x1p-150
            let rstdTol = rs * (0.5 * varErr / (variance + Double(c.eps)) + 3 * u)
            if !matches(r.rstd[row], rs, tolerance: rstdTol) {
                return "forward rstd[\(row)] (n \(c.n), var \(variance), eps \(c.eps)): \(mismatchText(r.rstd[row], rs, rstdTol))"
            }
        }
        // Backward.
        let odx = GuardedMatrix(rows: c.rows, cols: c.n, ld: c.n, sentinel: outputSentinel)
        odx.fill { row, i in c.accumulate ? c.dx[row, i] : 0 }
        let odg = c.dgamma.copy(), odb = c.dbeta.copy()
        KernelOracle.normBackward(
            rms: c.rms, rows: c.rows, n: c.n, dy: c.dy.base, lddy: c.dy.ld, t: r.tIn.base, ldt: r.tIn.ld, mean: r.meanIn, rstd: r.rstdIn,
            gamma: c.gamma.base, dx: odx.base, lddx: odx.ld, accumulate: c.accumulate, dgamma: c.wantDGamma ? odg.base : nil,
            dbeta: c.wantDBeta ? odb.base : nil)
        var sumDyXhat = [Double](repeating: 0, count: c.n), sumDy = sumDyXhat
        let sub = (n + 8) * 0x1p-149
        for row in 0..<c.rows {
            let mu = c.rms ? 0 : Double(r.meanIn[row]), rs = Double(r.rstdIn[row])
            let xh = (0..<c.n).map { (Double(r.tIn[row, $0]) - mu) * rs }
            let g = (0..<c.n).map { Double(c.dy[row, $0]) * Double(c.gamma.base[$0]) }
            let a = g.reduce(0) { $0 + abs($1) } / n
            let b = (0..<c.n).reduce(0.0) { $0 + abs(g[$1] * xh[$1]) } / n
            let c1 = c.rms ? 0 : g.reduce(0, +) / n
            let c2 = (0..<c.n).reduce(0.0) { $0 + g[$1] * xh[$1] } / n
            let errC1 = c.rms ? 0 : (n + 2) * u * a + sub, errC2 = (n + 6) * u * b + sub
            for i in 0..<c.n {
                let e = Double(odx[row, i]), got = r.dx[row, i]
                let inner = u * abs(g[i]) + errC1 + abs(xh[i]) * errC2 + 2 * u * abs(xh[i] * c2) + 3 * u * (abs(g[i]) + abs(c1) + abs(xh[i] * c2))
                let tol = rs * (inner + sub) + (c.accumulate ? 3 * u * abs(e) + u * abs(Double(c.dx[row, i])) : 2 * u * abs(e)) + subnormalFloor
                if !matches(got, e, tolerance: tol) {
                    return
                        "backward dx[\(row), \(i)] (n \(c.n)): \(mismatchText(got, e, tol)) (g \(g[i]), xhat \(xh[i]), c1 \(c1), c2 \(c2), rstd \(rs))"
                }
                sumDyXhat[i] += abs(Double(c.dy[row, i]) * xh[i])
                sumDy[i] += abs(Double(c.dy[row, i]))
            }
        }
        let rows = Double(c.rows)
        for i in 0..<c.n {
            if c.wantDGamma {
                let e = Double(odg.base[i]), tol = (rows + 4) * u * (abs(Double(c.dgamma.base[i])) + sumDyXhat[i]) + (rows + 2) * subnormalFloor
                if !matches(r.dgamma.base[i], e, tolerance: tol) {
                    return "backward dgamma[\(i)] (rows \(c.rows)): \(mismatchText(r.dgamma.base[i], e, tol))"
                }
            }
            if c.wantDBeta {
                let e = Double(odb.base[i]), tol = (rows + 1) * u * (abs(Double(c.dbeta.base[i])) + sumDy[i]) + (rows + 2) * subnormalFloor
                if !matches(r.dbeta.base[i], e, tolerance: tol) {
                    return "backward dbeta[\(i)] (rows \(c.rows)): \(mismatchText(r.dbeta.base[i], e, tol))"
                }
            }
        }
        return nil
    }
}

/// The norm statistics in Double, as the oracle computes them.
enum TrainingMathFuzz {
    /// (variance, mean (0 for RMS), rstd = 1/sqrt(variance + eps)) of one row.
    static func normStatistics(_ t: [Double], eps: Double, rms: Bool) -> (variance: Double, mean: Double, rstd: Double) {
        let n = Double(t.count)
        let mean = rms ? 0 : t.reduce(0, +) / n
        let variance = t.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        return (variance, mean, 1 / (variance + eps).squareRoot())
    }
}

// MARK: - activation backward, gated backward

/// The table's activation backward (dx = dy * f'(x)) and gated-unit backward (da = dy * b *
/// f'(a), db = dy * f(a)) for relu, gelu (erf), gelu-tanh and silu: lengths around the
/// vector widths, x over ±1 ... ±1e4 with ±0, subnormals and the derivatives' zero crossings
/// (x ~ -0.75), dy at several scales, outputs aliasing their inputs (dx = x or dy; da = a or
/// dy, db = b or dy).
struct ActivationBackwardFuzz: FuzzKernel {
    let name = "act-backward"

    final class Case: CustomStringConvertible {
        var kind = 0, n = 0, gated = false, range: Float = 1
        /// Plain: dx aliases 0 nothing, 1 x, 2 dy. Gated: da aliases 0 nothing, 1 a, 2 dy; db
        /// aliases 0 nothing, 1 b, 2 dy (never both dy).
        var aliasA = 0, aliasB = 0
        var x: GuardedMatrix!, b: GuardedMatrix!, dy: GuardedMatrix!
        var description: String {
            "\(ActivationFuzz.kinds[kind].0) \(gated ? "gated" : "plain") n=\(n) range ±\(range) \(gated ? "da aliases \(["nothing", "a", "dy"][aliasA]), db aliases \(["nothing", "b", "dy"][aliasB])" : "dx aliases \(["nothing", "x", "dy"][aliasA])")"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.kind = rng.below(4)
        c.gated = rng.chance(0.5)
        c.n = boundarySize(&rng, edges: vectorEdges, small: 40, maxLarge: 400)
        c.range = rng.pick([1, 4, 10, 16, 100, 1e4])
        let range = c.range
        func vector(_ f: (inout FuzzRNG) -> Float) -> GuardedMatrix {
            guardedVector((0..<c.n).map { _ in f(&rng) }, misalign: rng.below(16), sentinel: inputSentinel)
        }
        c.x = vector { rng in
            let r = rng.unit()
            if r < 0.05 { return rng.pick([0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, 1e-30, -1e-30]) }
            if r < 0.1 { return rng.float(-0.8, -0.7) }  // near f'(x) = 0 of gelu, gelu-tanh, silu (~ -1.28)
            if r < 0.13 { return rng.float(-1.35, -1.2) }
            return rng.float(-range, range)
        }
        let dyScale = rng.pick([1, 1e-3, 1e3] as [Float])
        c.dy = vector { $0.chance(0.03) ? 0 : $0.float(-1, 1) * dyScale }
        c.b = vector { $0.float(-2, 2) }
        c.aliasA = rng.pick([0, 0, 1, 2])
        c.aliasB = c.gated ? rng.pick([0, 0, 1, 2]) : 0
        if c.aliasA == 2 && c.aliasB == 2 { c.aliasB = 0 }
        return c
    }

    struct Run { let a: GuardedMatrix, b: GuardedMatrix, dy: GuardedMatrix, outA: GuardedMatrix, outB: GuardedMatrix?, snaps: [[UInt32]] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let kind = ActivationFuzz.kinds[c.kind].1
        let a = c.x.copy(), b = c.b.copy(), dy = c.dy.copy()
        func fresh() -> GuardedMatrix {
            GuardedMatrix(rows: c.n == 0 ? 0 : 1, cols: c.n, ld: max(c.n, 1), misalign: (c.n * 7) % 16, sentinel: outputSentinel)
        }
        let outA = c.aliasA == 1 ? a : c.aliasA == 2 ? dy : fresh()
        let snaps = [a.snapshot(), b.snapshot(), dy.snapshot()]
        if c.gated {
            let outB = c.aliasB == 1 ? b : c.aliasB == 2 ? dy : fresh()
            table.kernels.pointee.gated_backward(kind, c.n, a.base, b.base, dy.base, outA.base, outB.base)
            return Run(a: a, b: b, dy: dy, outA: outA, outB: outB, snaps: snaps)
        }
        table.kernels.pointee.activation_backward(kind, c.n, a.base, dy.base, outA.base)
        return Run(a: a, b: b, dy: dy, outA: outA, outB: nil, snaps: snaps)
    }

    /// The error of f'(x) (the derivation of each form is at ``derivativeTolerance(_:x:)``)
    /// times |dy| (|dy b| gated), plus 2u of the result for the products with dy (and b);
    /// f(a) of the gated form within ``activationTolerance(_:x:expected:)`` times |dy| plus
    /// u|db|. relu is exact: dx = x > 0 (or NaN) ? dy : 0, db = dy * relu(a) bitwise.
    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        let names = c.gated ? ["da", "a = da", "dy = da"] : ["dx", "x = dx", "dy = dx"]
        if let bad = r.outA.damagedPadding(names[c.aliasA]) { return bad }
        if let ob = r.outB, let bad = ob.damagedPadding(["db", "b = db", "dy = db"][c.aliasB]) { return bad }
        let written = [c.aliasA == 1, c.aliasB == 1, c.aliasA == 2 || c.aliasB == 2]
        for (i, what) in ["x / a", "b", "dy"].enumerated() where !written[i] {
            if ![r.a, r.b, r.dy][i].unchanged(since: r.snaps[i]) { return "the kernel wrote into \(what)" }
        }
        let kind = ActivationFuzz.kinds[c.kind].0
        for i in 0..<c.n {
            let x = c.x.base[i], dy = c.dy.base[i], b = c.b.base[i]
            if c.gated {
                let (ea, eb) = KernelOracle.gatedBackward(kind, a: x, b: b, dy: dy)
                let ga = r.outA.base[i], gb = r.outB!.base[i]
                if kind == .relu {
                    if ga.bitPattern != ea.bitPattern && !(ga.isNaN && ea.isNaN) {
                        return "element \(i): relu gated da(a \(x), b \(b), dy \(dy)): got \(ga), want \(ea)"
                    }
                    if gb.bitPattern != eb.bitPattern && !(gb.isNaN && eb.isNaN) {
                        return "element \(i): relu gated db(a \(x), dy \(dy)): got \(gb), want \(eb)"
                    }
                    continue
                }
                let tolA = Double(abs(dy * b)) * derivativeTolerance(kind, x: x) + 3 * u * Double(ea.magnitude) + subnormalFloor
                if !matches(ga, Double(ea), tolerance: tolA) {
                    return "element \(i) of \(c.n): \(kind) gated da(a \(x), b \(b), dy \(dy)): \(mismatchText(ga, Double(ea), tolA))"
                }
                let f = KernelOracle.activation(kind, x)
                let tolB = Double(dy.magnitude) * activationTolerance(kind, x: x, expected: f) + 2 * u * Double(eb.magnitude) + subnormalFloor
                if !matches(gb, Double(eb), tolerance: tolB) {
                    return "element \(i) of \(c.n): \(kind) gated db(a \(x), dy \(dy)): \(mismatchText(gb, Double(eb), tolB))"
                }
            } else {
                let e = KernelOracle.activationBackward(kind, x: x, dy: dy), got = r.outA.base[i]
                if kind == .relu {
                    if got.bitPattern != e.bitPattern && !(got.isNaN && e.isNaN) {
                        return "element \(i): relu backward(x \(x), dy \(dy)): got \(got), want \(e)"
                    }
                    continue
                }
                let tol = Double(dy.magnitude) * derivativeTolerance(kind, x: x) + 2 * u * Double(e.magnitude) + subnormalFloor
                if !matches(got, Double(e), tolerance: tol) {
                    return "element \(i) of \(c.n): \(kind) backward(x \(x), dy \(dy)): \(mismatchText(got, Double(e), tol))"
                }
            }
        }
        return nil
    }

    /// The absolute error of the float32 f'(x) of the smooth kinds. Each form is a sum of two
    /// terms that cancel where f' crosses 0, so the bound is on the terms' magnitudes, not on
    /// f' itself:
    ///  - gelu: cdf + x * pdf. The erfc half e = erfc(|x|/sqrt 2)/2 errs by 1.2e-7 relative
    ///    (the fitted erfc, as in the forward's bound) plus u(16 + 2x^2) (its exp's argument is rounded at
    ///    magnitude x^2/2); cdf = 1 - e adds u; pdf = exp(-x^2/2)/sqrt(2 pi) has its argument
    ///    rounded (u x^2/2 absolute) and the exp's 4u, the product with x and the fma 3u:
    ///    u(8 + x^2) on |x pdf|;
    ///  - gelu-tanh: s + 2 (x s)(e s) k (1 + 3c x^2), e = exp(-2w): w is rounded 4 times and
    ///    doubled, 8u|w| + 4u on e (as in the forward's bound), s = 1/(1 + e) the same + 2u,
    ///    the product of 5 rounded factors 3 times that + 10u: u(40 + 24|w|) on both terms;
    ///  - silu: s + (x s)(e s), e = exp(-x) exact argument: 4u, s 6u, the product 19u: 32u.
    /// Then 2^-109 absolute (the contract flushes derivatives below about 2^-110 in the far
    /// negative tails) and 2^-147 (subnormal results).
    func derivativeTolerance(_ kind: Activation, x: Float) -> Double {
        let dx = Double(x)
        switch kind {
        case .relu: return 0
        case .gelu:
            let e = 0.5 * erfc(abs(dx) / 2.0.squareRoot()), cdf = dx < 0 ? e : 1 - e
            let xpdf = abs(dx) * Foundation.exp(-0.5 * dx * dx) / (2 * Double.pi).squareRoot()
            return e * (1.2e-7 + u * (16 + 2 * dx * dx)) + u * cdf + xpdf * u * (8 + dx * dx) + 0x1p-109 + subnormalFloor
        case .geluTanh:
            let k = (2 / Double.pi).squareRoot(), w = k * (dx + 0.044715 * dx * dx * dx)
            let e = Foundation.exp(-2 * w), s = 1 / (1 + e), oms = s == 0 ? 1 : e * s
            let terms = s + abs(2 * dx * s * oms * k * (1 + 3 * 0.044715 * dx * dx))
            return terms * u * (40 + 24 * abs(w)) + 0x1p-109 + subnormalFloor
        case .silu:
            let e = Foundation.exp(-dx), s = 1 / (1 + e), oms = s == 0 ? 1 : e * s
            return (s + abs(dx * s * oms)) * 32 * u + 0x1p-109 + subnormalFloor
        }
    }
}

// MARK: - embedding backward

/// The table's embedding backward (dtable[ids[r]] += dout[r], rows in order): tables of 1 to
/// a few hundred rows, dims around the vector widths and long, repeated ids (a few hot rows),
/// a padding id or none (-1), padded strides, a non-zero starting table. Bitwise against the
/// oracle (the same float sums in the same order); and the thread split of the Swift boundary
/// (column ranges, one kernel call each) at a random column, on a vector boundary or not,
/// must give the same bits as one call: what makes 1 and 2 (or any number of) threads agree;
/// for the production variants also through `TrainingKernels.embeddingBackward` with 1 and 2
/// threads.
struct EmbeddingBackwardFuzz: FuzzKernel {
    let name = "embedding-backward"

    final class Case: CustomStringConvertible {
        var rows = 0, dim = 0, vocab = 1, padding: Int32 = -1, split = 0
        var ids: [Int32] = [], dout: GuardedMatrix!, table: GuardedMatrix!
        var description: String {
            "rows=\(rows) dim=\(dim) vocab=\(vocab) padding id \(padding) ldo=\(dout.ld) ldt=\(table.ld) column split at \(split) ids \(ids.prefix(10))\(ids.count > 10 ? "..." : "")"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.rows = rng.chance(0.03) ? 0 : rng.int(1...40)
        c.dim = boundarySize(&rng, edges: vectorEdges + [256], small: 40, maxLarge: 1100)
        c.vocab = rng.pick([1, 2, 5, 30, 300])
        let hot = rng.chance(0.5)
        c.ids = (0..<c.rows).map { _ in Int32(hot ? rng.below(min(c.vocab, 3)) : rng.below(c.vocab)) }
        c.padding = rng.chance(0.5) ? -1 : Int32(rng.below(c.vocab))
        c.split = c.dim == 0 ? 0 : rng.chance(0.5) ? rng.int(0...c.dim) : min(c.dim, rng.pick([8, 16, 32, 64, 256]))
        let scale = rng.pick([1, 1e-3, 1e5] as [Float])
        c.dout = GuardedMatrix(rows: c.rows, cols: c.dim, ld: c.dim + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
        c.dout.fill { _, _ in rng.chance(0.05) ? 0 : rng.float(-1, 1) * scale }
        c.table = GuardedMatrix(rows: c.vocab, cols: c.dim, ld: c.dim + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        let start = rng.chance(0.5)
        c.table.fill { _, _ in start ? rng.float(-1, 1) * scale : 0 }
        return c
    }

    /// `threaded`: through the Swift boundary (`TrainingKernels.embeddingBackward`, its own
    /// column pieces) with 1 and 2 threads, for the production variants.
    struct Run { let whole: GuardedMatrix, split: GuardedMatrix, threaded: [GuardedMatrix], doutSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let fn = table.kernels.pointee.embedding_backward!
        let whole = c.table.copy(), split = c.table.copy(), snap = c.dout.snapshot()
        c.ids.withUnsafeBufferPointer { ids in
            fn(c.rows, c.dim, ids.baseAddress, c.dout.base, c.dout.ld, whole.base, whole.ld, c.padding)
            // The columns in two pieces, the second first (threads finish in any order).
            fn(c.rows, c.dim - c.split, ids.baseAddress, c.dout.base + c.split, c.dout.ld, split.base + c.split, split.ld, c.padding)
            fn(c.rows, c.split, ids.baseAddress, c.dout.base, c.dout.ld, split.base, split.ld, c.padding)
        }
        var threaded: [GuardedMatrix] = []
        // Compute refuses a variant this CPU cannot run: those tables get no threaded runs.
        if let variant = KernelVariant(rawValue: table.name), c.rows > 0,
            let one = try? Compute(backend: .native(variant), threads: 1), let two = try? one.with(threads: 2)
        {
            for compute in [one, two] {
                let t = c.table.copy()
                c.ids.withUnsafeBufferPointer { ids in
                    TrainingKernels.embeddingBackward(
                        ids: ids.baseAddress!, rows: c.rows, dout: c.dout.base, ldo: c.dout.ld, dtable: t.base, vocab: c.vocab, dim: c.dim,
                        ldt: t.ld, paddingID: c.padding < 0 ? nil : c.padding, compute: compute)
                }
                threaded.append(t)
            }
        }
        return Run(whole: whole, split: split, threaded: threaded, doutSnap: snap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.whole.damagedPadding("dtable") ?? r.split.damagedPadding("dtable (column split)") { return bad }
        for t in r.threaded { if let bad = t.damagedPadding("dtable (TrainingKernels)") { return bad } }
        if !c.dout.unchanged(since: r.doutSnap) { return "the kernel wrote into dout" }
        let want = c.table.copy()
        if c.rows > 0 {
            c.ids.withUnsafeBufferPointer { ids in
                KernelOracle.embeddingBackward(
                    rows: c.rows, dim: c.dim, ids: ids.baseAddress!, dout: c.dout.base, ldo: c.dout.ld, dtable: want.base, ldt: want.ld,
                    paddingID: c.padding)
            }
        }
        for v in 0..<c.vocab {
            for j in 0..<c.dim {
                if r.whole[v, j].bitPattern != want[v, j].bitPattern {
                    return "dtable[\(v), \(j)]: got \(r.whole[v, j]), the oracle's \(want[v, j]) (rows in order: must be the same bits)"
                }
                if r.split[v, j].bitPattern != r.whole[v, j].bitPattern {
                    return "dtable[\(v), \(j)] with the columns split at \(c.split): got \(r.split[v, j]), one call gives \(r.whole[v, j])"
                }
                for (k, t) in r.threaded.enumerated() where t[v, j].bitPattern != r.whole[v, j].bitPattern {
                    return "dtable[\(v), \(j)] through TrainingKernels with \(k + 1) thread(s): got \(t[v, j]), one call gives \(r.whole[v, j])"
                }
            }
        }
        return nil
    }
}
