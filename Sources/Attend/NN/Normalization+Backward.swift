// Training forward and backward of the row norms. The forward keeps the normalized input
// (`x + residual`) and each row's mean and 1/std; the backward returns the gradient of that
// sum (which is both addends' gradient) and adds the weight's and bias's gradients by name.

/// The Hugging Face names of a norm's parameters (`bias` nil for RMSNorm or a bias-free norm).
struct NormParameterNames: Sendable {
    var weight: String
    var bias: String?

    /// `prefix.weight` and, when `bias`, `prefix.bias`.
    init(_ prefix: String, bias: Bool = true) {
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
    func trainingForward(_ x: Tensor, residual: Tensor? = nil) -> (Tensor, NormRowStatistics) {
        let p = parts
        let t = residual.map { x + $0 } ?? x
        return InterimOps.normForward(t.reshaped([-1, p.weight.count]), weight: p.weight, bias: p.bias, eps: p.eps, rms: p.rms)
    }

    /// The gradient of the normalized input `[T, n]` from the output's `dY`; adds the weight
    /// (and bias) gradients into `grads` under `names`. Cost: two passes.
    func backward(_ saved: NormRowStatistics, outputGradient dY: Tensor, names: NormParameterNames, into grads: inout ParameterSet) -> Tensor {
        let p = parts
        let (dT, dW, dB) = InterimOps.normBackward(saved, weight: p.weight, outputGradient: dY.reshaped(saved.input.shape), rms: p.rms)
        grads.modify(names.weight) { $0 += dW }
        if let dB, let b = names.bias { grads.modify(b) { $0 += dB } }
        return dT
    }
}
