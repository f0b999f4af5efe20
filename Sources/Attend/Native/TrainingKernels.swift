internal import CKernels
import Foundation

/// The training kernels at the Swift boundary: optimizer steps, gradient-norm helpers and the
/// backward passes of the non-attention layers, on raw float32 buffers (row-major, explicit
/// row strides in floats where a kernel works on rows) or on ``Tensor``s.
///
/// Conventions of every entry point:
/// - sizes are checked with `precondition` here (this is the kernel boundary: the callers are
///   Attend's own training code, which validates user data before it gets here);
/// - `compute.backend == .native(v)` runs variant `v`'s C kernel, `.swiftSIMD` the Swift
///   oracle (`KernelOracle`, slow, for checking);
/// - work is split over `compute.threads` threads in pieces whose boundaries do not depend on
///   the thread count, and every sum runs in a fixed order, so results are bitwise identical
///   for any thread count;
/// - "accumulates" in a name or a parameter's doc means `+=` onto the caller's buffer (as
///   PyTorch accumulates `.grad`); everything else overwrites.
package enum TrainingKernels {
    /// Elements per parallel piece of the element-wise kernels: a multiple of every vector
    /// width, so a split never moves an element onto a kernel's tail path.
    static let elementChunk = 1 << 15

    // MARK: - Optimizers

    /// The hyper-parameters of `torch.optim.AdamW` (non-amsgrad, `maximize=False`), PyTorch's
    /// defaults.
    package struct AdamW: Sendable, Hashable {
        /// Learning rate.
        package var lr: Double
        /// The first moment's decay.
        package var beta1: Double
        /// The second moment's decay.
        package var beta2: Double
        /// Added to the denominator.
        package var eps: Double
        /// Decoupled weight decay: `param *= 1 - lr * weightDecay` before the update.
        package var weightDecay: Double

        /// A configuration (PyTorch's defaults: lr 1e-3, betas 0.9 / 0.999, eps 1e-8, weight decay 0.01).
        package init(lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0.01) {
            self.lr = lr
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.weightDecay = weightDecay
        }

        /// The float32 constants of step `step` (1 for the first step), computed in Double
        /// exactly as PyTorch's `_single_tensor_adam` does (`beta ** step` is `pow`, the
        /// square root of the second bias correction is `pow(_, 0.5)`) and rounded once.
        func constants(step: Int) -> ck_adamw_params {
            let s = Double(step)
            let bias1 = 1 - Foundation.pow(beta1, s), bias2 = 1 - Foundation.pow(beta2, s)
            let stepSize = lr / bias1
            return ck_adamw_params(
                decay: weightDecay == 0 ? 1 : Float(1 - lr * weightDecay), beta1_weight: Float(1 - beta1),
                beta2: Float(beta2), one_minus_beta2: Float(1 - beta2), bias2_sqrt: Float(Foundation.pow(bias2, 0.5)),
                eps: Float(eps), neg_step_size: Float(-stepSize))
        }
    }

    /// One AdamW step, in place: `param`, `m` (first moment, `exp_avg`) and `v` (second
    /// moment, `exp_avg_sq`) are updated from `grad`, each `count` floats. `step` counts from
    /// 1 (PyTorch increments its step before using it; moments start at zero). Matches
    /// `torch.optim.AdamW(foreach=False)` on the CPU bit for bit on the variants with fused
    /// multiply-add (operation order in attend_kernels_backward.h). `grad` is not written.
    /// Cost: one pass over four arrays; parallel over chunks.
    package static func adamW(
        param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, count: Int, step: Int, hyper: AdamW, compute: Compute = .default
    ) {
        precondition(count >= 0 && step >= 1, "adamW: count \(count) must be >= 0 and step \(step) >= 1")
        var h = hyper.constants(step: step)
        withUnsafePointer(to: &h) { hp in
            switch compute.backend {
            case .native(let variant):
                let fn = variant.kernels.pointee.adamw!
                forChunks(count, compute.threads) { lo, n in fn(n, param + lo, grad + lo, m + lo, v + lo, hp) }
            case .swiftSIMD:
                KernelOracle.adamW(count: count, param: param, grad: grad, m: m, v: v, constants: AdamWConstants(hp.pointee))
            }
        }
    }

    /// ``adamW(param:grad:m:v:count:step:hyper:compute:)`` on tensors of one shape.
    package static func adamW(
        param: inout Tensor, grad: Tensor, m: inout Tensor, v: inout Tensor, step: Int, hyper: AdamW,
        compute: Compute = .default
    ) {
        precondition(
            grad.shape == param.shape && m.shape == param.shape && v.shape == param.shape,
            "adamW: shapes differ: param \(param.shape), grad \(grad.shape), m \(m.shape), v \(v.shape)")
        let n = param.count
        param.withUnsafeMutableBufferPointer { p in
            grad.withUnsafeBufferPointer { g in
                m.withUnsafeMutableBufferPointer { mb in
                    v.withUnsafeMutableBufferPointer { vb in
                        guard n > 0 else { return }
                        adamW(
                            param: p.baseAddress!, grad: g.baseAddress!, m: mb.baseAddress!, v: vb.baseAddress!, count: n, step: step,
                            hyper: hyper, compute: compute)
                    }
                }
            }
        }
    }

    /// The hyper-parameters of `torch.optim.SGD` (`maximize=False`).
    package struct SGD: Sendable, Hashable {
        /// Learning rate.
        package var lr: Double
        /// Momentum factor (0: plain SGD, no buffer).
        package var momentum: Double
        /// Dampening of the momentum's gradient term.
        package var dampening: Double
        /// L2 penalty added to the gradient (`grad + weightDecay * param`).
        package var weightDecay: Double
        /// Nesterov momentum (needs momentum > 0 and dampening 0, as PyTorch requires).
        package var nesterov: Bool

        /// A configuration.
        package init(lr: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0, nesterov: Bool = false) {
            precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov momentum requires a momentum and zero dampening")
            self.lr = lr
            self.momentum = momentum
            self.dampening = dampening
            self.weightDecay = weightDecay
            self.nesterov = nesterov
        }

        func constants(firstStep: Bool) -> ck_sgd_params {
            ck_sgd_params(
                weight_decay: Float(weightDecay), momentum: Float(momentum), dampening_weight: Float(1 - dampening),
                neg_lr: Float(-lr), nesterov: nesterov ? 1 : 0, first_step: firstStep ? 1 : 0)
        }
    }

    /// One SGD step, in place on `count` floats of `param` (and of the momentum buffer `buffer`
    /// when `hyper.momentum != 0`; nil otherwise). `firstStep`: the buffer does not hold a
    /// value yet and is set to the (decayed) gradient, as PyTorch's first step clones it.
    /// Matches `torch.optim.SGD(foreach=False)` bit for bit on the FMA variants.
    /// Cost: one pass; parallel over chunks.
    package static func sgd(
        param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>?, count: Int,
        firstStep: Bool, hyper: SGD, compute: Compute = .default
    ) {
        precondition(count >= 0, "sgd: negative count \(count)")
        precondition(hyper.momentum == 0 || buffer != nil, "sgd: momentum \(hyper.momentum) needs a momentum buffer")
        var h = hyper.constants(firstStep: firstStep)
        withUnsafePointer(to: &h) { hp in
            switch compute.backend {
            case .native(let variant):
                let fn = variant.kernels.pointee.sgd!
                forChunks(count, compute.threads) { lo, n in fn(n, param + lo, grad + lo, buffer.map { $0 + lo }, hp) }
            case .swiftSIMD:
                KernelOracle.sgd(count: count, param: param, grad: grad, buffer: buffer, constants: SGDConstants(hp.pointee))
            }
        }
    }

    /// The sum of squares of `count` floats (each square exact, summed in Double), for the
    /// global gradient norm: `sqrt` of the sum over every gradient tensor. Deterministic: fixed
    /// chunks, partial sums added in chunk order. Cost: one pass; parallel over chunks.
    package static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int, compute: Compute = .default) -> Double {
        precondition(count >= 0, "sumOfSquares: negative count \(count)")
        let chunks = (count + elementChunk - 1) / elementChunk
        if chunks == 0 { return 0 }
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { pp in
            let pb = pp.baseAddress!
            switch compute.backend {
            case .native(let variant):
                let fn = variant.kernels.pointee.sum_squares!
                forChunks(count, compute.threads) { lo, n in pb[lo / elementChunk] = fn(n, x + lo) }
            case .swiftSIMD:
                for c in 0..<chunks {
                    let lo = c * elementChunk
                    pb[c] = KernelOracle.sumOfSquares(count: min(elementChunk, count - lo), x + lo)
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// `x *= s` on `count` floats, in place (gradient clipping's rescale). Cost: one pass.
    package static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by s: Float, compute: Compute = .default) {
        precondition(count >= 0, "scale: negative count \(count)")
        switch compute.backend {
        case .native(let variant):
            let fn = variant.kernels.pointee.scale!
            forChunks(count, compute.threads) { lo, n in fn(n, s, x + lo) }
        case .swiftSIMD:
            for i in 0..<count { x[i] *= s }
        }
    }

    /// The factor `torch.nn.utils.clip_grad_norm_` multiplies every gradient by, from the total
    /// norm (`sqrt` of the summed ``sumOfSquares(_:count:compute:)``): `min(1, maxNorm /
    /// (totalNorm + 1e-6))` in float32 as PyTorch computes it; nil when no scaling is needed
    /// (the factor is 1), so the caller can skip the pass.
    package static func clipFactor(totalNorm: Double, maxNorm: Double) -> Float? {
        let norm = Float(totalNorm)
        let coef = Float(maxNorm) / (norm + Float(1e-6))
        return coef < 1 ? coef : nil
    }

    // MARK: - Splitting

    /// Calls `body(lo, n)` for consecutive pieces of `elementChunk` elements of `0..<count`,
    /// over `threads` threads. The pieces do not depend on the thread count.
    static func forChunks(_ count: Int, _ threads: Int, _ body: (Int, Int) -> Void) {
        let chunks = (count + elementChunk - 1) / elementChunk
        parallelFor(chunks, threads: threads) { c in
            let lo = c * elementChunk
            body(lo, min(elementChunk, count - lo))
        }
    }
}
