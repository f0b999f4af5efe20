import Foundation

// The training math that has no kernel yet, written as plain loops over float32 with double
// accumulators: the row norms' training forward (keeping mean and 1/std) and backward, the
// activations' derivatives, the embedding gradient's scatter-add, and softmax cross-entropy
// with its gradient.
// Each function is replaced by its fused kernel as those land; the layers call only these
// entry points, so the swap touches this file and its callers' one line each.

/// What a row norm's backward needs: the normalized input `t` (`x + residual`) `[T, n]` and,
/// per row, its mean (0 for RMS) and `1 / sqrt(var + eps)` (or `1 / sqrt(mean(t²) + eps)`).
struct NormRowStatistics {
    var input: Tensor
    var mean: [Float]
    var rstd: [Float]
}

enum InterimOps {
    /// LayerNorm (`rms == false`: `(t - mean) * rstd * w + b`) or RMSNorm (`t * rstd * w`)
    /// over the rows of `t` `[T, n]`, keeping the statistics. Cost: three passes.
    static func normForward(_ t: Tensor, weight: Tensor, bias: Tensor?, eps: Float, rms: Bool) -> (Tensor, NormRowStatistics) {
        let n = weight.count
        precondition(t.rank == 2 && t.shape[1] == n, "normForward: input \(t.shape) must be [T, \(n)]")
        let rows = t.shape[0]
        var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
        var out = Tensor.zeros(t.shape)
        let w = weight.scalars, b = bias?.scalars
        t.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                for r in 0..<rows {
                    let row = r * n
                    var m = 0.0
                    if !rms {
                        for i in 0..<n { m += Double(x[row + i]) }
                        m /= Double(n)
                    }
                    var v = 0.0
                    for i in 0..<n {
                        let c = Double(x[row + i]) - m
                        v += c * c
                    }
                    v /= Double(n)
                    let s = Float(1 / (v + Double(eps)).squareRoot())
                    mean[r] = Float(m)
                    rstd[r] = s
                    for i in 0..<n {
                        let h = (x[row + i] - Float(m)) * s
                        y[row + i] = h * w[i] + (b?[i] ?? 0)
                    }
                }
            }
        }
        return (out, NormRowStatistics(input: t, mean: mean, rstd: rstd))
    }

    /// The norm's backward: `dT` `[T, n]`, plus the weight gradient `[n]` and (LayerNorm) the
    /// bias gradient `[n]`. Cost: two passes.
    static func normBackward(_ s: NormRowStatistics, weight: Tensor, outputGradient dY: Tensor, rms: Bool) -> (dT: Tensor, dW: Tensor, dB: Tensor?) {
        let n = weight.count, rows = s.input.shape[0]
        precondition(dY.shape == s.input.shape, "normBackward: gradient \(dY.shape) does not match input \(s.input.shape)")
        let w = weight.scalars
        var dW = [Double](repeating: 0, count: n), dB = [Double](repeating: 0, count: n)
        var dT = Tensor.zeros(s.input.shape)
        s.input.withUnsafeBufferPointer { x in
            dY.withUnsafeBufferPointer { g in
                dT.withUnsafeMutableBufferPointer { d in
                    for r in 0..<rows {
                        let row = r * n, m = s.mean[r], rs = s.rstd[r]
                        var sumG = 0.0, sumGH = 0.0
                        for i in 0..<n {
                            let h = (x[row + i] - m) * rs
                            let gw = Double(g[row + i] * w[i])
                            sumG += gw
                            sumGH += gw * Double(h)
                            dW[i] += Double(g[row + i] * h)
                            dB[i] += Double(g[row + i])
                        }
                        let meanG = rms ? 0 : sumG / Double(n), meanGH = sumGH / Double(n)
                        for i in 0..<n {
                            let h = Double((x[row + i] - m) * rs)
                            d[row + i] = Float(Double(rs) * (Double(g[row + i] * w[i]) - meanG - h * meanGH))
                        }
                    }
                }
            }
        }
        return (dT, Tensor(shape: [n], scalars: dW.map { Float($0) }), rms ? nil : Tensor(shape: [n], scalars: dB.map { Float($0) }))
    }

    /// `dU = dA * f'(u)` for the activation `f` applied to `u` (same shapes). Cost: one pass.
    static func activationBackward(_ activation: Activation, input u: Tensor, outputGradient dA: Tensor) -> Tensor {
        precondition(u.shape == dA.shape, "activationBackward: \(u.shape) and \(dA.shape) differ")
        let derivative: (Double) -> Double
        switch activation {
        case .relu: derivative = { $0 > 0 ? 1 : 0 }
        case .gelu:
            derivative = { x in 0.5 * (1 + erf(x / 2.0.squareRoot())) + x * exp(-0.5 * x * x) / (2 * Double.pi).squareRoot() }
        case .geluTanh:
            derivative = { x in
                let k = (2 / Double.pi).squareRoot()
                let t = tanh(k * (x + 0.044715 * x * x * x))
                return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
            }
        case .silu:
            derivative = { x in
                let s = 1 / (1 + exp(-x))
                return s * (1 + x * (1 - s))
            }
        }
        return u.withUnsafeBufferPointer { x in
            dA.withUnsafeBufferPointer { g in
                Tensor(shape: u.shape, generating: { Float(Double(g[$0]) * derivative(Double(x[$0]))) })
            }
        }
    }

    /// Adds row `i` of `dY` `[ids.count, dim]` to row `ids[i]` of `grad` `[count, dim]`,
    /// skipping `paddingIndex` (PyTorch's `padding_idx`: that row gets no gradient).
    static func embeddingBackward(ids: [Int], outputGradient dY: Tensor, paddingIndex: Int?, into grad: inout Tensor) {
        let (rows, dim) = (grad.shape[0], grad.shape[1])
        precondition(dY.shape == [ids.count, dim], "embeddingBackward: gradient \(dY.shape) must be [\(ids.count), \(dim)]")
        dY.withUnsafeBufferPointer { g in
            grad.withUnsafeMutableBufferPointer { t in
                for (i, id) in ids.enumerated() where id != paddingIndex {
                    precondition(id >= 0 && id < rows, "embeddingBackward: id \(id) outside the table")
                    for c in 0..<dim { t[id * dim + c] += g[i * dim + c] }
                }
            }
        }
    }

    /// Mean cross-entropy of `logits` `[N, V]` against `labels` (-100: ignored), as
    /// `torch.nn.CrossEntropyLoss()` computes it, and its gradient `[N, V]` (ignored rows
    /// zero). `count` is the number of rows that count (the loss is NaN when 0, as in PyTorch).
    static func softmaxCrossEntropy(logits: Tensor, labels: [Int], ignoreIndex: Int = -100) -> (loss: Float, count: Int, gradient: Tensor) {
        precondition(logits.rank == 2 && logits.shape[0] == labels.count, "softmaxCrossEntropy: logits \(logits.shape), \(labels.count) labels")
        let (rows, v) = (logits.shape[0], logits.shape[1])
        let count = labels.filter { $0 != ignoreIndex }.count
        var total = 0.0
        var grad = Tensor.zeros(logits.shape)
        logits.withUnsafeBufferPointer { z in
            grad.withUnsafeMutableBufferPointer { g in
                for r in 0..<rows where labels[r] != ignoreIndex {
                    let row = r * v
                    var m = -Float.infinity
                    for j in 0..<v { m = max(m, z[row + j]) }
                    var sum = 0.0
                    for j in 0..<v { sum += exp(Double(z[row + j] - m)) }
                    total += log(sum) - Double(z[row + labels[r]] - m)
                    for j in 0..<v {
                        let p = exp(Double(z[row + j] - m)) / sum
                        g[row + j] = Float((p - (j == labels[r] ? 1 : 0)) / Double(count))
                    }
                }
            }
        }
        return (count == 0 ? .nan : Float(total / Double(count)), count, grad)
    }
}
