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

    // MARK: - Softmax cross-entropy

    /// A summed loss and the number of tokens it counts, so losses of several calls (micro-
    /// batches, data-parallel shards) combine by adding both before dividing.
    package struct LossSum: Sendable, Hashable {
        /// The sum of the per-token losses (in Double, in row order).
        package var sum: Double
        /// Tokens counted (targets other than the ignore index).
        package var count: Int
        /// `sum / count` as float (NaN when nothing was counted, as PyTorch's mean gives).
        package var mean: Float { Float(sum / Double(count)) }
    }

    /// Softmax cross-entropy of `rows` rows of `vocab` logits (row r at `logits + r*ld`)
    /// against `targets[r]`, PyTorch's `F.cross_entropy(reduction="mean", ignore_index:,
    /// label_smoothing:)`, fused with its gradient: when `dlogits` is given, row r of
    /// `dlogits` (stride `ldd`; it may be `logits` itself with `ldd == ld`) is overwritten with
    /// `upstream / count * ∂loss_r/∂logits_r` (zeros for ignored rows), i.e. the gradient of
    /// `upstream * mean loss`. Returns the summed loss and the count; `rowLoss` (optional,
    /// `rows` floats) receives each row's loss (0 when ignored). Targets must be in
    /// `0..<vocab` or equal `ignoreIndex` (checked). Cost: two passes over the logits, one exp
    /// per element per pass; parallel over rows, deterministic.
    @discardableResult
    package static func crossEntropy(
        logits: UnsafePointer<Float>, rows: Int, vocab: Int, ld: Int, targets: UnsafePointer<Int32>, ignoreIndex: Int32 = -100,
        labelSmoothing: Float = 0, upstream: Float = 1, dlogits: UnsafeMutablePointer<Float>?, ldd: Int,
        rowLoss: UnsafeMutablePointer<Float>? = nil, compute: Compute = .default
    ) -> LossSum {
        precondition(
            rows >= 0 && vocab >= 1 && ld >= vocab && (dlogits == nil || ldd >= vocab),
            "crossEntropy: rows \(rows), vocab \(vocab), ld \(ld), ldd \(ldd)")
        precondition(labelSmoothing >= 0 && labelSmoothing <= 1, "crossEntropy: label smoothing \(labelSmoothing) outside [0, 1]")
        var count = 0
        for r in 0..<rows where targets[r] != ignoreIndex {
            precondition(targets[r] >= 0 && Int(targets[r]) < vocab, "crossEntropy: target \(targets[r]) of row \(r) outside 0..<\(vocab)")
            count += 1
        }
        let scale = count == 0 ? 0 : upstream / Float(count)
        let losses = rowLoss ?? UnsafeMutablePointer<Float>.allocate(capacity: max(rows, 1))
        defer { if rowLoss == nil { losses.deallocate() } }
        switch compute.backend {
        case .native(let variant):
            let fn = variant.kernels.pointee.cross_entropy!
            let per = max(1, (1 << 16) / vocab)
            parallelFor((rows + per - 1) / per, threads: compute.threads) { c in
                let r0 = c * per, n = min(per, rows - r0)
                fn(n, vocab, logits + r0 * ld, ld, targets + r0, ignoreIndex, labelSmoothing, scale, losses + r0, dlogits.map { $0 + r0 * ldd }, ldd)
            }
        case .swiftSIMD:
            KernelOracle.crossEntropy(
                rows: rows, vocab: vocab, logits: logits, ld: ld, targets: targets, ignoreIndex: ignoreIndex, smoothing: labelSmoothing,
                gradScale: scale, loss: losses, dlogits: dlogits, ldd: ldd)
        }
        var sum = 0.0
        for r in 0..<rows { sum += Double(losses[r]) }
        return LossSum(sum: sum, count: count)
    }

    // MARK: - Layer norm / RMS norm

    /// The training forward of layer norm (`rms == false`) or RMS norm on `rows` rows of `n`:
    /// `y = norm(x + residual) * gamma + beta` (bitwise the inference `norm_rows`), saving for
    /// ``normBackward(rms:rows:n:dy:lddy:t:ldt:mean:rstd:gamma:dx:lddx:accumulate:dgamma:dbeta:compute:)``
    /// `t = x + residual` (written when `t` is given; it may be `x` or `residual` itself, with the
    /// same stride: the residual stream), `mean[r]` (0 for RMS) and `rstd[r] = 1/sqrt(var + eps)`
    /// (`rows` floats each). `residual`, `beta`: optional (beta is ignored by RMS norm). Strides in
    /// floats; `y` may also alias `x` or `residual`, not `t`. Cost: 3 passes per row; parallel
    /// over rows.
    package static func normForward(
        rms: Bool, rows: Int, n: Int, x: UnsafePointer<Float>, ldx: Int, residual: UnsafePointer<Float>?, ldr: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?, eps: Float, y: UnsafeMutablePointer<Float>, ldy: Int,
        t: UnsafeMutablePointer<Float>?, ldt: Int, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
        compute: Compute = .default
    ) {
        precondition(
            rows >= 0 && n >= 1 && ldx >= n && ldy >= n && (residual == nil || ldr >= n) && (t == nil || ldt >= n),
            "normForward: rows \(rows), n \(n), strides x \(ldx) residual \(ldr) y \(ldy) t \(ldt)")
        switch compute.backend {
        case .native(let variant):
            let fn = variant.kernels.pointee.norm_rows_train!
            let per = max(1, (1 << 15) / n)
            parallelFor((rows + per - 1) / per, threads: compute.threads) { c in
                let r0 = c * per, cnt = min(per, rows - r0)
                fn(
                    rms ? 1 : 0, cnt, n, x + r0 * ldx, ldx, residual.map { $0 + r0 * ldr }, ldr, gamma, beta, eps, y + r0 * ldy, ldy,
                    t.map { $0 + r0 * ldt }, ldt, mean + r0, rstd + r0)
            }
        case .swiftSIMD:
            KernelOracle.normRowsTrain(
                rms: rms, rows: rows, n: n, x: x, ldx: ldx, residual: residual, ldr: ldr, gamma: gamma, beta: beta, eps: eps, y: y, ldy: ldy,
                t: t, ldt: ldt, mean: mean, rstd: rstd)
        }
    }

    /// Rows per piece of the norm backward's parameter gradients: a function of `rows` only
    /// (at most 64 pieces of at least 16 rows), so the reduction order never depends on the
    /// thread count.
    static func normPieceRows(_ rows: Int) -> Int { max(16, (rows + 63) / 64) }

    /// Backward of ``normForward(rms:rows:n:x:ldx:residual:ldr:gamma:beta:eps:y:ldy:t:ldt:mean:rstd:compute:)``
    /// from its `t`, `mean` and `rstd` and the output gradient `dy`:
    /// - `dx` (stride `lddx`) is overwritten with `∂/∂t`, or with `accumulate` the gradient is
    ///   added onto it (the residual stream's gradient: `t = x + residual` gives `x` and
    ///   `residual` the same gradient, so one buffer serves both); `dx` may be `dy` itself when
    ///   not accumulating;
    /// - `dgamma` and `dbeta` (`n` floats each, optional; dbeta unused by RMS norm) accumulate
    ///   the sums over rows: per piece of ``normPieceRows(_:)`` rows into zeroed partials, the
    ///   partials then added in piece order, so the bits do not depend on the thread count.
    /// Cost: 2 passes over dy and t; parallel over row pieces, then over columns.
    package static func normBackward(
        rms: Bool, rows: Int, n: Int, dy: UnsafePointer<Float>, lddy: Int, t: UnsafePointer<Float>, ldt: Int,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, gamma: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, lddx: Int,
        accumulate: Bool, dgamma: UnsafeMutablePointer<Float>?, dbeta: UnsafeMutablePointer<Float>?, compute: Compute = .default
    ) {
        precondition(
            rows >= 0 && n >= 1 && lddy >= n && ldt >= n && lddx >= n, "normBackward: rows \(rows), n \(n), strides dy \(lddy) t \(ldt) dx \(lddx)")
        let dbeta = rms ? nil : dbeta
        switch compute.backend {
        case .native(let variant):
            let fn = variant.kernels.pointee.norm_backward!
            let per = normPieceRows(rows), pieces = (rows + per - 1) / per
            if pieces == 0 { return }
            let wantParams = dgamma != nil || dbeta != nil
            let partial = UnsafeMutablePointer<Float>.allocate(capacity: wantParams ? pieces * 2 * n : 1)
            defer { partial.deallocate() }
            if wantParams { partial.initialize(repeating: 0, count: pieces * 2 * n) }
            parallelFor(pieces, threads: compute.threads) { c in
                let r0 = c * per, cnt = min(per, rows - r0)
                let pg = partial + c * 2 * n
                fn(
                    rms ? 1 : 0, cnt, n, dy + r0 * lddy, lddy, t + r0 * ldt, ldt, mean + r0, rstd + r0, gamma, dx + r0 * lddx, lddx,
                    accumulate ? 1 : 0, dgamma == nil ? nil : pg, dbeta == nil ? nil : pg + n)
            }
            guard wantParams else { return }
            let cols = 1024
            parallelFor((n + cols - 1) / cols, threads: compute.threads) { c in
                for i in c * cols..<min(n, (c + 1) * cols) {
                    if let dgamma {
                        var a = dgamma[i]
                        for p in 0..<pieces { a += partial[p * 2 * n + i] }
                        dgamma[i] = a
                    }
                    if let dbeta {
                        var a = dbeta[i]
                        for p in 0..<pieces { a += partial[p * 2 * n + n + i] }
                        dbeta[i] = a
                    }
                }
            }
        case .swiftSIMD:
            KernelOracle.normBackward(
                rms: rms, rows: rows, n: n, dy: dy, lddy: lddy, t: t, ldt: ldt, mean: mean, rstd: rstd, gamma: gamma, dx: dx, lddx: lddx,
                accumulate: accumulate, dgamma: dgamma, dbeta: dbeta)
        }
    }

    // MARK: - Activation backward

    /// `dx = dy * f'(x)` on `count` floats for an activation `f` (the derivative PyTorch's
    /// autograd gives: relu passes `dy` where `x > 0`, else 0). `dx` may be `x` or `dy` itself.
    /// Overwrites `dx`. Cost: one pass; parallel over chunks.
    package static func activationBackward(
        _ kind: Activation, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int,
        compute: Compute = .default
    ) {
        precondition(count >= 0, "activationBackward: negative count \(count)")
        switch compute.backend {
        case .native(let variant):
            let fn = variant.kernels.pointee.activation_backward!
            forChunks(count, compute.threads) { lo, n in fn(kind.cKind, n, x + lo, dy + lo, dx + lo) }
        case .swiftSIMD:
            for i in 0..<count { dx[i] = KernelOracle.activationBackward(kind, x: x[i], dy: dy[i]) }
        }
    }

    /// Backward of a gated unit `y = f(a) * b` on `count` floats (T5's gated-gelu: `f =
    /// .geluTanh`; SwiGLU / LLaMA: `f = .silu`): `da = dy * b * f'(a)`, `db = dy * f(a)`, both
    /// overwritten. `da` may be `a` or `dy` itself, `db` may be `b` or `dy` (not `da`).
    /// Cost: one pass; parallel over chunks.
    package static func gatedBackward(
        _ kind: Activation, a: UnsafePointer<Float>, b: UnsafePointer<Float>, dy: UnsafePointer<Float>, da: UnsafeMutablePointer<Float>,
        db: UnsafeMutablePointer<Float>, count: Int, compute: Compute = .default
    ) {
        precondition(count >= 0, "gatedBackward: negative count \(count)")
        precondition(count == 0 || da != db, "gatedBackward: da and db must be different buffers")
        switch compute.backend {
        case .native(let variant):
            let fn = variant.kernels.pointee.gated_backward!
            forChunks(count, compute.threads) { lo, n in fn(kind.cKind, n, a + lo, b + lo, dy + lo, da + lo, db + lo) }
        case .swiftSIMD:
            for i in 0..<count { (da[i], db[i]) = KernelOracle.gatedBackward(kind, a: a[i], b: b[i], dy: dy[i]) }
        }
    }

    // MARK: - Embedding backward

    /// Embedding gradient, accumulating: for every row r (in order) whose id is not
    /// `paddingID`, `dtable[ids[r]] += dout[r]` (`dim` floats; rows of `dout` at stride `ldo`,
    /// of `dtable` at stride `ldt`; `vocab` rows in the table). Ids must be in `0..<vocab`
    /// (checked). Deterministic for any thread count: threads split the columns, and each
    /// element adds its rows in order. Cost: rows * dim adds.
    package static func embeddingBackward(
        ids: UnsafePointer<Int32>, rows: Int, dout: UnsafePointer<Float>, ldo: Int, dtable: UnsafeMutablePointer<Float>, vocab: Int,
        dim: Int, ldt: Int, paddingID: Int32? = nil, compute: Compute = .default
    ) {
        precondition(rows >= 0 && dim >= 0 && ldo >= dim && ldt >= dim, "embeddingBackward: rows \(rows), dim \(dim), ldo \(ldo), ldt \(ldt)")
        for r in 0..<rows {
            precondition(ids[r] >= 0 && Int(ids[r]) < vocab, "embeddingBackward: id \(ids[r]) of row \(r) outside 0..<\(vocab)")
        }
        let pad = paddingID ?? -1
        switch compute.backend {
        case .native(let variant):
            let fn = variant.kernels.pointee.embedding_backward!
            let cols = 256
            parallelFor((dim + cols - 1) / cols, threads: compute.threads) { c in
                let j0 = c * cols
                fn(rows, min(cols, dim - j0), ids, dout + j0, ldo, dtable + j0, ldt, pad)
            }
        case .swiftSIMD:
            KernelOracle.embeddingBackward(rows: rows, dim: dim, ids: ids, dout: dout, ldo: ldo, dtable: dtable, ldt: ldt, paddingID: pad)
        }
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
