internal import CKernels
import Foundation

/// The float32 constants of one AdamW step (`ck_adamw_params` of attend_kernels_backward.h):
/// `decay = 1 - lr*wd` (1: none), `beta1Weight = 1 - beta1`, `beta2`, `oneMinusBeta2`,
/// `bias2Sqrt = sqrt(1 - beta2^step)`, `eps`, `negStepSize = -lr / (1 - beta1^step)`.
package struct AdamWConstants: Sendable, Hashable {
    package var decay, beta1Weight, beta2, oneMinusBeta2, bias2Sqrt, eps, negStepSize: Float

    /// The constants as given.
    package init(decay: Float, beta1Weight: Float, beta2: Float, oneMinusBeta2: Float, bias2Sqrt: Float, eps: Float, negStepSize: Float) {
        self.decay = decay
        self.beta1Weight = beta1Weight
        self.beta2 = beta2
        self.oneMinusBeta2 = oneMinusBeta2
        self.bias2Sqrt = bias2Sqrt
        self.eps = eps
        self.negStepSize = negStepSize
    }

    /// The constants PyTorch uses at step `step` (from 1) of `hyper`.
    package init(_ hyper: TrainingKernels.AdamW, step: Int) { self.init(hyper.constants(step: step)) }

    init(_ c: ck_adamw_params) {
        self.init(
            decay: c.decay, beta1Weight: c.beta1_weight, beta2: c.beta2, oneMinusBeta2: c.one_minus_beta2, bias2Sqrt: c.bias2_sqrt,
            eps: c.eps, negStepSize: c.neg_step_size)
    }
}

/// The float32 constants of one SGD step (`ck_sgd_params`): `weightDecay`, `momentum`,
/// `dampeningWeight = 1 - dampening`, `negLR = -lr`, `nesterov`, `firstStep`.
package struct SGDConstants: Sendable, Hashable {
    package var weightDecay, momentum, dampeningWeight, negLR: Float
    package var nesterov, firstStep: Bool

    /// The constants as given.
    package init(weightDecay: Float, momentum: Float, dampeningWeight: Float, negLR: Float, nesterov: Bool, firstStep: Bool) {
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.dampeningWeight = dampeningWeight
        self.negLR = negLR
        self.nesterov = nesterov
        self.firstStep = firstStep
    }

    init(_ c: ck_sgd_params) {
        self.init(
            weightDecay: c.weight_decay, momentum: c.momentum, dampeningWeight: c.dampening_weight, negLR: c.neg_lr,
            nesterov: c.nesterov != 0, firstStep: c.first_step != 0)
    }
}

extension KernelOracle {
    /// One AdamW step in PyTorch's float32 operation order (the contract of `ck_f32_adamw`),
    /// every fused multiply-add of PyTorch's CPU kernels as one (`addingProduct`) when `fused`,
    /// else as a rounded product and a rounded sum (what the portable scalar variant does):
    /// the C variants give the same bits. Cost: O(count).
    package static func adamW(
        count: Int, param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, constants h: AdamWConstants, fused: Bool = true
    ) {
        func fma(_ a: Float, _ b: Float, _ c: Float) -> Float { fused ? c.addingProduct(a, b) : a * b + c }
        let small = abs(h.beta1Weight) < 0.5
        for i in 0..<count {
            var p = param[i]
            let g = grad[i]
            if h.decay != 1 { p = p * h.decay }
            let diff = g - m[i]
            m[i] = small ? fma(h.beta1Weight, diff, m[i]) : fma(h.beta1Weight - 1, diff, g)
            v[i] = fma(h.oneMinusBeta2 * g, g, v[i] * h.beta2)
            let denom = v[i].squareRoot() / h.bias2Sqrt + h.eps
            param[i] = p + (h.negStepSize * m[i]) / denom
        }
    }

    /// One SGD step in PyTorch's float32 operation order (the contract of `ck_f32_sgd`),
    /// fused multiply-adds where PyTorch fuses (separate roundings when `fused` is false, as
    /// the portable scalar variant). `buffer` is read and written only when the momentum is
    /// nonzero. Cost: O(count).
    package static func sgd(
        count: Int, param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>?,
        constants h: SGDConstants, fused: Bool = true
    ) {
        func fma(_ a: Float, _ b: Float, _ c: Float) -> Float { fused ? c.addingProduct(a, b) : a * b + c }
        for i in 0..<count {
            let p = param[i]
            var g = grad[i]
            if h.weightDecay != 0 { g = fma(p, h.weightDecay, g) }
            if h.momentum != 0, let buffer {
                buffer[i] = h.firstStep ? g : fma(g, h.dampeningWeight, buffer[i] * h.momentum)
                g = h.nesterov ? fma(buffer[i], h.momentum, g) : buffer[i]
            }
            param[i] = fma(g, h.negLR, p)
        }
    }

    /// The sum of `x[i]^2` in Double, in index order (the contract of `ck_f32_sum_squares`,
    /// whose lanes sum in another order: the two agree to Double rounding). Cost: O(count).
    package static func sumOfSquares(count: Int, _ x: UnsafePointer<Float>) -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(x[i]) * Double(x[i]) }
        return s
    }
}

// MARK: - Backward passes in Double

/// The training oracles' Double arithmetic, on plain arrays, so tests can also differentiate
/// the forward functions numerically (finite differences) and compare.
enum TrainingMath {
    /// The loss of one row of logits against `target` (PyTorch's cross-entropy with label
    /// smoothing) and its gradient with respect to the logits: `lse - x_t` weighted `1 - ε`
    /// plus `lse - mean(x)` weighted ε; `∂/∂x_j = softmax_j - (1 - ε)[j == t] - ε / V`.
    static func crossEntropy(_ x: [Double], target: Int, smoothing: Double) -> (loss: Double, grad: [Double]) {
        let m = x.max() ?? 0
        let s = x.reduce(0) { $0 + Foundation.exp($1 - m) }
        let lse = m + Foundation.log(s)
        let v = Double(x.count)
        let mean = x.reduce(0, +) / v
        let loss = (1 - smoothing) * (lse - x[target]) + (smoothing == 0 ? 0 : smoothing * (lse - mean))
        var grad = x.map { Foundation.exp($0 - lse) - smoothing / v }
        grad[target] -= 1 - smoothing
        return (loss, grad)
    }

    /// `y = (t - mean) * rstd * gamma + beta` (layer norm) or `t * rstd * gamma` (RMS norm) of one
    /// row, with its mean and rstd.
    static func normForward(_ t: [Double], gamma: [Double], beta: [Double]?, eps: Double, rms: Bool) -> (y: [Double], mean: Double, rstd: Double) {
        let n = Double(t.count)
        let mean = rms ? 0 : t.reduce(0, +) / n
        let variance = t.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        let rstd = 1 / (variance + eps).squareRoot()
        let y = t.indices.map { (t[$0] - mean) * rstd * gamma[$0] + (rms ? 0 : beta?[$0] ?? 0) }
        return (y, mean, rstd)
    }

    /// The gradients of one normalized row from its `t`, mean (ignored for RMS) and rstd:
    /// `dt`, and the row's terms of dgamma and dbeta.
    static func normBackward(
        _ dy: [Double], t: [Double], gamma: [Double], mean: Double, rstd: Double, rms: Bool
    ) -> (dt: [Double], dgamma: [Double], dbeta: [Double]) {
        let n = Double(t.count)
        let mean = rms ? 0 : mean
        let xhat = t.map { ($0 - mean) * rstd }
        let g = dy.indices.map { dy[$0] * gamma[$0] }
        let c1 = rms ? 0 : g.reduce(0, +) / n
        let c2 = g.indices.reduce(0.0) { $0 + g[$1] * xhat[$1] } / n
        let dt = g.indices.map { rstd * (g[$0] - c1 - xhat[$0] * c2) }
        return (dt, dy.indices.map { dy[$0] * xhat[$0] }, dy)
    }

    /// `f(x)` and `f'(x)` of an activation in Double (Foundation's erfc, tanh and exp).
    static func activation(_ kind: Activation, _ x: Double) -> (f: Double, df: Double) {
        switch kind {
        case .relu: return (x < 0 ? 0 : x, x > 0 ? 1 : 0)
        case .gelu:
            let cdf = 0.5 * erfc(-x / 2.0.squareRoot()), pdf = Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
            return (x * cdf, cdf + x * pdf)
        case .geluTanh:
            // (1 + tanh u) / 2 = s = 1 / (1 + e), e = exp(-2u), and 1 - s = e s: no cancellation
            // in either tail (1 + tanh u in Double would round to 0 below u ~ -19).
            let k = (2 / Double.pi).squareRoot(), c = 0.044715
            let e = Foundation.exp(-2 * k * (x + c * x * x * x)), s = 1 / (1 + e)
            let oms = s == 0 ? 1 : e * s
            return (x * s, s + 2 * x * s * oms * k * (1 + 3 * c * x * x))
        case .silu:
            let e = Foundation.exp(-x), s = 1 / (1 + e)
            let oms = s == 0 ? 1 : e * s
            return (x * s, s + x * s * oms)
        }
    }
}

extension KernelOracle {
    /// Softmax cross-entropy per row in Double (the contract of `ck_f32_cross_entropy`): for
    /// row r of `vocab` logits at `logits[r*ld]` with target `targets[r]`, `loss[r]` (0 when
    /// the target is `ignoreIndex`) and, when `dlogits` is given, `gradScale * ∂loss/∂x` at
    /// `dlogits[r*ldd]` (zeros for ignored rows), each rounded once. A row holding NaN gives
    /// NaN. Cost: O(rows * vocab).
    package static func crossEntropy(
        rows: Int, vocab: Int, logits: UnsafePointer<Float>, ld: Int, targets: UnsafePointer<Int32>, ignoreIndex: Int32,
        smoothing: Float, gradScale: Float, loss: UnsafeMutablePointer<Float>, dlogits: UnsafeMutablePointer<Float>?, ldd: Int
    ) {
        for r in 0..<rows {
            if targets[r] == ignoreIndex {
                loss[r] = 0
                if let d = dlogits { for j in 0..<vocab { d[r * ldd + j] = 0 } }
                continue
            }
            let x = (0..<vocab).map { Double(logits[r * ld + $0]) }
            if x.contains(where: \.isNaN) || x.allSatisfy({ $0 == -.infinity }) {
                loss[r] = .nan
                if let d = dlogits { for j in 0..<vocab { d[r * ldd + j] = .nan } }
                continue
            }
            let (l, g) = TrainingMath.crossEntropy(x, target: Int(targets[r]), smoothing: Double(smoothing))
            loss[r] = Float(l)
            if let d = dlogits { for j in 0..<vocab { d[r * ldd + j] = Float(Double(gradScale) * g[j]) } }
        }
    }

    /// The training norm forward in Double (the contract of `ck_f32_norm_rows_train`): `y` as
    /// ``normRows(rms:rows:n:x:ldx:residual:ldr:gamma:beta:eps:y:ldy:)``, `t = x + residual`
    /// (the float sum, when `t` is given), and per row `mean` (0 for RMS) and `rstd`.
    /// Cost: O(rows * n).
    package static func normRowsTrain(
        rms: Bool, rows: Int, n: Int, x: UnsafePointer<Float>, ldx: Int, residual: UnsafePointer<Float>?, ldr: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?, eps: Float, y: UnsafeMutablePointer<Float>, ldy: Int,
        t: UnsafeMutablePointer<Float>?, ldt: Int, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>
    ) {
        let g = (0..<n).map { Double(gamma[$0]) }, b = beta.map { bp in (0..<n).map { Double(bp[$0]) } }
        for r in 0..<rows {
            let tf = (0..<n).map { x[r * ldx + $0] + (residual?[r * ldr + $0] ?? 0) }
            let (yr, mu, rs) = TrainingMath.normForward(tf.map(Double.init), gamma: g, beta: b, eps: Double(eps), rms: rms)
            for i in 0..<n {
                y[r * ldy + i] = Float(yr[i])
                t?[r * ldt + i] = tf[i]
            }
            mean[r] = Float(mu)
            rstd[r] = Float(rs)
        }
    }

    /// The norm backward in Double (the contract of `ck_f32_norm_backward`), from each row's
    /// `t`, `mean` and `rstd`: `dx` written or, with `accumulate`, added; `dgamma`, `dbeta`
    /// (each optional) accumulated, each element's row sum in Double added once.
    /// Cost: O(rows * n).
    package static func normBackward(
        rms: Bool, rows: Int, n: Int, dy: UnsafePointer<Float>, lddy: Int, t: UnsafePointer<Float>, ldt: Int,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, lddx: Int, accumulate: Bool,
        dgamma: UnsafeMutablePointer<Float>?, dbeta: UnsafeMutablePointer<Float>?
    ) {
        let g = (0..<n).map { Double(gamma[$0]) }
        var sg = [Double](repeating: 0, count: n), sb = sg
        for r in 0..<rows {
            let (dt, dg, db) = TrainingMath.normBackward(
                (0..<n).map { Double(dy[r * lddy + $0]) }, t: (0..<n).map { Double(t[r * ldt + $0]) }, gamma: g,
                mean: Double(mean[r]), rstd: Double(rstd[r]), rms: rms)
            for i in 0..<n {
                dx[r * lddx + i] = accumulate ? Float(Double(dx[r * lddx + i]) + dt[i]) : Float(dt[i])
                sg[i] += dg[i]
                sb[i] += db[i]
            }
        }
        for i in 0..<n {
            if let dgamma { dgamma[i] = Float(Double(dgamma[i]) + sg[i]) }
            if let dbeta { dbeta[i] = Float(Double(dbeta[i]) + sb[i]) }
        }
    }

    /// `dy * f'(x)` in Double, rounded once (the contract of `ck_f32_activation_backward`;
    /// relu as PyTorch's threshold_backward: `dy` itself where `x > 0` or NaN, else 0).
    package static func activationBackward(_ kind: Activation, x: Float, dy: Float) -> Float {
        if kind == .relu { return x <= 0 ? 0 : dy }
        return Float(Double(dy) * TrainingMath.activation(kind, Double(x)).df)
    }

    /// The gated unit's gradients `(dy * b * f'(a), dy * f(a))` in Double, each rounded once
    /// (the contract of `ck_f32_gated_backward`).
    package static func gatedBackward(_ kind: Activation, a: Float, b: Float, dy: Float) -> (da: Float, db: Float) {
        if kind == .relu { return (a <= 0 ? 0 : dy * b, dy * (a < 0 ? 0 : a)) }
        let (f, df) = TrainingMath.activation(kind, Double(a))
        return (Float(Double(dy) * Double(b) * df), Float(Double(dy) * f))
    }

    /// The embedding gradient in float, rows in order (the contract of
    /// `ck_f32_embedding_backward`, whose sums run in the same order: bitwise equal).
    /// Cost: O(rows * dim).
    package static func embeddingBackward(
        rows: Int, dim: Int, ids: UnsafePointer<Int32>, dout: UnsafePointer<Float>, ldo: Int, dtable: UnsafeMutablePointer<Float>,
        ldt: Int, paddingID: Int32
    ) {
        for r in 0..<rows where ids[r] != paddingID {
            let row = Int(ids[r]) * ldt
            for j in 0..<dim { dtable[row + j] += dout[r * ldo + j] }
        }
    }
}
