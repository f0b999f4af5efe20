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
    /// every fused multiply-add of PyTorch's CPU kernels as one (`addingProduct`): the C
    /// variants with FMA give the same bits. Cost: O(count).
    package static func adamW(
        count: Int, param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, constants h: AdamWConstants
    ) {
        let small = abs(h.beta1Weight) < 0.5
        for i in 0..<count {
            var p = param[i]
            let g = grad[i]
            if h.decay != 1 { p = p * h.decay }
            let diff = g - m[i]
            m[i] = small ? m[i].addingProduct(h.beta1Weight, diff) : g.addingProduct(h.beta1Weight - 1, diff)
            v[i] = (v[i] * h.beta2).addingProduct(h.oneMinusBeta2 * g, g)
            let denom = v[i].squareRoot() / h.bias2Sqrt + h.eps
            param[i] = p + (h.negStepSize * m[i]) / denom
        }
    }

    /// One SGD step in PyTorch's float32 operation order (the contract of `ck_f32_sgd`),
    /// fused multiply-adds where PyTorch fuses. `buffer` is read and written only when the
    /// momentum is nonzero. Cost: O(count).
    package static func sgd(
        count: Int, param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>?,
        constants h: SGDConstants
    ) {
        for i in 0..<count {
            let p = param[i]
            var g = grad[i]
            if h.weightDecay != 0 { g = g.addingProduct(p, h.weightDecay) }
            if h.momentum != 0, let buffer {
                buffer[i] = h.firstStep ? g : (buffer[i] * h.momentum).addingProduct(g, h.dampeningWeight)
                g = h.nesterov ? g.addingProduct(buffer[i], h.momentum) : buffer[i]
            }
            param[i] = p.addingProduct(g, h.negLR)
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
