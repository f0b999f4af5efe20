// Tensor-level entry points of the training kernels the layers call (TrainingKernels is the
// pointer-level boundary): the row norms' training forward and backward, activation and gated
// backward, the embedding gradient's scatter-add, softmax cross-entropy with its gradient.

/// What a row norm's backward needs: the normalized input `t` (`x + residual`) `[T, n]` and,
/// per row, its mean (0 for RMS) and `1 / sqrt(var + eps)` (or `1 / sqrt(mean(t²) + eps)`).
package struct NormRowStatistics {
    var input: Tensor
    var mean: [Float]
    var rstd: [Float]
}

package enum TrainingOps {
    /// LayerNorm (`rms == false`: `(t - mean) * rstd * w + b`) or RMSNorm (`t * rstd * w`)
    /// of `t = x + residual` over rows `[T, n]`, keeping `t` and the statistics. Cost: three
    /// passes (the fused kernel).
    static func normForward(
        _ x: Tensor, residual: Tensor?, weight: Tensor, bias: Tensor?, eps: Float, rms: Bool, compute: Compute
    ) -> (Tensor, NormRowStatistics) {
        let n = weight.count, rows = x.count / n
        precondition(x.count == rows * n && x.shape.last == n, "normForward: input \(x.shape) must be [T, \(n)]")
        if let residual { precondition(residual.count == x.count, "normForward: residual \(residual.shape) for input \(x.shape)") }
        var y = Tensor.uninitialized([rows, n]), t = Tensor.uninitialized([rows, n])  // both written by the kernel
        var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                func run(_ rp: UnsafePointer<Float>?, _ bp: UnsafePointer<Float>?) {
                    y.withUnsafeMutableBufferPointer { yp in
                        t.withUnsafeMutableBufferPointer { tp in
                            TrainingKernels.normForward(
                                rms: rms, rows: rows, n: n, x: xp.baseAddress!, ldx: n, residual: rp, ldr: n, gamma: wp.baseAddress!, beta: bp,
                                eps: eps, y: yp.baseAddress!, ldy: n, t: tp.baseAddress!, ldt: n, mean: &mean, rstd: &rstd, compute: compute)
                        }
                    }
                }
                func withBias(_ rp: UnsafePointer<Float>?) {
                    if let bias { bias.withUnsafeBufferPointer { run(rp, $0.baseAddress) } } else { run(rp, nil) }
                }
                if let residual { residual.withUnsafeBufferPointer { withBias($0.baseAddress) } } else { withBias(nil) }
            }
        }
        return (y, NormRowStatistics(input: t, mean: mean, rstd: rstd))
    }

    /// The norm's backward: returns `dT` `[T, n]` and adds the weight's (and bias's) gradient
    /// into `dWeight` (`dBias`). Cost: two passes.
    static func normBackward(
        _ s: NormRowStatistics, weight: Tensor, outputGradient dY: Tensor, rms: Bool, dWeight: inout Tensor, dBias: UnsafeMutablePointer<Float>?,
        compute: Compute
    ) -> Tensor {
        let n = weight.count, rows = s.input.count / n
        precondition(dY.count == s.input.count, "normBackward: gradient \(dY.shape) does not match input \(s.input.shape)")
        var dT = Tensor.uninitialized([rows, n])  // overwritten (not accumulating)
        dY.withUnsafeBufferPointer { g in
            s.input.withUnsafeBufferPointer { t in
                weight.withUnsafeBufferPointer { w in
                    dT.withUnsafeMutableBufferPointer { d in
                        dWeight.withUnsafeMutableBufferPointer { dw in
                            TrainingKernels.normBackward(
                                rms: rms, rows: rows, n: n, dy: g.baseAddress!, lddy: n, t: t.baseAddress!, ldt: n, mean: s.mean, rstd: s.rstd,
                                gamma: w.baseAddress!, dx: d.baseAddress!, lddx: n, accumulate: false, dgamma: dw.baseAddress, dbeta: dBias,
                                compute: compute)
                        }
                    }
                }
            }
        }
        return dT
    }

    /// `dU = dA * f'(u)` for the activation `f` applied to `u` (same shapes). Cost: one pass.
    static func activationBackward(_ activation: Activation, input u: Tensor, outputGradient dA: Tensor, compute: Compute) -> Tensor {
        precondition(u.count == dA.count, "activationBackward: \(u.shape) and \(dA.shape) differ")
        var dU = Tensor.uninitialized(u.shape)  // overwritten
        u.withUnsafeBufferPointer { x in
            dA.withUnsafeBufferPointer { g in
                dU.withUnsafeMutableBufferPointer { d in
                    TrainingKernels.activationBackward(
                        activation, x: x.baseAddress!, dy: g.baseAddress!, dx: d.baseAddress!, count: u.count, compute: compute)
                }
            }
        }
        return dU
    }

    /// The backward of `h = f(a) * b`: `(dA, dB)` from `dH` (same shapes). Cost: one pass.
    static func gatedBackward(_ activation: Activation, a: Tensor, b: Tensor, outputGradient dH: Tensor, compute: Compute) -> (Tensor, Tensor) {
        precondition(a.count == b.count && a.count == dH.count, "gatedBackward: \(a.shape), \(b.shape), \(dH.shape) differ")
        var dA = Tensor.uninitialized(a.shape), dB = Tensor.uninitialized(b.shape)  // overwritten
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                dH.withUnsafeBufferPointer { g in
                    dA.withUnsafeMutableBufferPointer { da in
                        dB.withUnsafeMutableBufferPointer { db in
                            TrainingKernels.gatedBackward(
                                activation, a: ap.baseAddress!, b: bp.baseAddress!, dy: g.baseAddress!, da: da.baseAddress!, db: db.baseAddress!,
                                count: a.count, compute: compute)
                        }
                    }
                }
            }
        }
        return (dA, dB)
    }

    /// Adds row `i` of `dY` `[ids.count, dim]` to row `ids[i]` of `grad` `[count, dim]`,
    /// skipping `paddingIndex` (PyTorch's `padding_idx`: that row gets no gradient).
    static func embeddingBackward(ids: [Int], outputGradient dY: Tensor, paddingIndex: Int?, into grad: inout Tensor, compute: Compute) {
        let (vocab, dim) = (grad.shape[0], grad.shape[1])
        precondition(dY.count == ids.count * dim, "embeddingBackward: gradient \(dY.shape) must be [\(ids.count), \(dim)]")
        let ids32 = ids.map { Int32(truncatingIfNeeded: $0) }
        dY.withUnsafeBufferPointer { g in
            grad.withUnsafeMutableBufferPointer { t in
                TrainingKernels.embeddingBackward(
                    ids: ids32, rows: ids.count, dout: g.baseAddress!, ldo: dim, dtable: t.baseAddress!, vocab: vocab, dim: dim, ldt: dim,
                    paddingID: paddingIndex.map { Int32(truncatingIfNeeded: $0) }, compute: compute)
            }
        }
    }

    /// Mean cross-entropy of `logits` `[N, V]` against `labels` (-100: ignored; others in
    /// `0..<V`), as `torch.nn.CrossEntropyLoss()` computes it, and its gradient `[N, V]`
    /// (ignored rows zero), computed in place of the logits. `count` is the number of rows
    /// that count (the loss is NaN when 0, as in PyTorch). Cost: two passes over the logits.
    package static func softmaxCrossEntropy(logits: Tensor, labels: [Int], compute: Compute) -> (loss: Float, count: Int, gradient: Tensor) {
        precondition(logits.rank == 2 && logits.shape[0] == labels.count, "softmaxCrossEntropy: logits \(logits.shape), \(labels.count) labels")
        let (rows, vocab) = (logits.shape[0], logits.shape[1])
        let targets = labels.map { Int32(truncatingIfNeeded: $0) }
        var gradient = logits
        let sum = gradient.withUnsafeMutableBufferPointer { g in
            TrainingKernels.crossEntropy(
                logits: g.baseAddress!, rows: rows, vocab: vocab, ld: vocab, targets: targets, dlogits: g.baseAddress!, ldd: vocab, compute: compute)
        }
        return (sum.mean, sum.count, gradient)
    }
}
