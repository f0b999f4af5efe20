// Training forward and backward of the row norms. The forward keeps the normalized input
// (`x + residual`) and each row's mean and 1/std; the backward returns the gradient of that
// sum (which is both addends' gradient) and adds the weight's and bias's gradients by name.

/// The Hugging Face names of a norm's parameters (`bias` nil for RMSNorm or a bias-free norm).
package struct NormParameterNames: Sendable {
    package var weight: String
    package var bias: String?

    /// `prefix.weight` and, when `bias`, `prefix.bias`.
    package init(_ prefix: String, bias: Bool = true) {
        weight = prefix + ".weight"
        self.bias = bias ? prefix + ".bias" : nil
    }
}

extension Norm {
    private var parts: (weight: Tensor, bias: Tensor?, eps: Float, rms: Bool) {
        switch self {
        case .layer(let n): return (n.weight, n.bias, n.eps, false)
        case .rms(let n): return (n.weight, nil, n.eps, true)
        }
    }

    /// The norm of `x + residual` over rows `[T, n]`, and what its backward needs.
    /// Cost: three passes (one more for the residual add).
    package func trainingForward(_ x: Tensor, residual: Tensor? = nil, compute: Compute) -> (Tensor, NormRowStatistics) {
        let p = parts
        return TrainingOps.normForward(x, residual: residual, weight: p.weight, bias: p.bias, eps: p.eps, rms: p.rms, compute: compute)
    }

    /// The gradient of the normalized input `[T, n]` from the output's `dY`; adds the weight
    /// (and bias) gradients into `grads` under `names`. Cost: two passes.
    package func backward(
        _ saved: NormRowStatistics, outputGradient dY: Tensor, names: NormParameterNames, into grads: inout ParameterSet, compute: Compute
    ) -> Tensor {
        let p = parts
        guard !p.rms, let bias = names.bias else {
            return grads.modify(names.weight) { dW in
                TrainingOps.normBackward(saved, weight: p.weight, outputGradient: dY, rms: p.rms, dWeight: &dW, dBias: nil, compute: compute)
            }
        }
        // The bias gradient is accumulated in place too: take it out of the set while the weight's is borrowed.
        var dB = grads[bias]!
        grads[bias] = Tensor.zeros([0])
        defer { grads[bias] = dB }
        return grads.modify(names.weight) { dW in
            dB.withUnsafeMutableBufferPointer { b in
                TrainingOps.normBackward(
                    saved, weight: p.weight, outputGradient: dY, rms: p.rms, dWeight: &dW, dBias: b.baseAddress, compute: compute)
            }
        }
    }
}
