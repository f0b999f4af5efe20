// Training forward and backward of the feed-forward block (plain and gated).

/// The Hugging Face names of a feed-forward block's projections.
package struct FeedForwardParameterNames: Sendable {
    package var up: LinearParameterNames
    package var gate: LinearParameterNames?
    package var down: LinearParameterNames

    /// The up, gate (gated form; nil otherwise) and down projections' names.
    package init(up: LinearParameterNames, gate: LinearParameterNames?, down: LinearParameterNames) {
        (self.up, self.gate, self.down) = (up, gate, down)
    }
}

/// What the feed-forward backward needs: the input `[T, d]`, the up projection before the
/// activation `[T, dFF]` (for ReLU without gate its output, which has the same sign pattern), the gate's output (gated form) and the down projection's input
/// `[T, dFF]` (after the activation dropout, whose mask is `dropoutMask`).
package struct FeedForwardActivations {
    var input: Tensor
    var preActivation: Tensor
    var gate: Tensor?
    var hidden: Tensor
    var dropoutMask: Tensor? = nil
}

extension FeedForward {
    /// `down(dropout(f(up x) [* gate x]))` on rows `x` `[T, d]` (the activation dropout of
    /// `dropout`, none without it), keeping the activations. Cost: the forward's flops;
    /// memory: two or three `[T, dFF]` tensors (four with a dropout mask); one for ReLU
    /// without gate and dropout (its output serves as the derivative's input).
    func trainingForward(_ x: Tensor, dropout: DropoutSampler? = nil, compute: Compute) -> (Tensor, FeedForwardActivations) {
        let u = up.forward(x, compute: compute)  // [T, dFF]
        let a = u.applying(activation, compute: compute)
        var g: Tensor? = nil
        var h = a
        if let gate {
            g = gate.forward(x, compute: compute)
            h = a * g!
        }
        var mask: Tensor? = nil
        if let dropout { (h, mask) = dropout.activation(h) }
        let y = down.forward(h, compute: compute)  // [T, d]
        // ReLU's derivative needs only the sign: relu(u) <= 0 exactly where u <= 0, so the
        // output `a` (kept anyway as the down projection's input without dropout, as PyTorch
        // keeps it) stands in for `u`, which is freed: one [T, dFF] tensor less per layer.
        let pre = activation == .relu && gate == nil ? a : u
        return (y, FeedForwardActivations(input: x, preActivation: pre, gate: g, hidden: h, dropoutMask: mask))
    }

    /// The input's gradient `[T, d]` from the output's `dY` `[T, d]`; adds every projection's
    /// gradients into `grads`. Cost: twice the forward's flops.
    func backward(
        _ s: FeedForwardActivations, outputGradient dY: Tensor, names: FeedForwardParameterNames, into grads: inout ParameterSet, compute: Compute
    ) -> Tensor {
        let dH = dropoutBackward(down.backward(input: s.hidden, outputGradient: dY, names: names.down, into: &grads, compute: compute)!, s.dropoutMask)
        let dU: Tensor
        var dX: Tensor? = nil
        if let gate, let g = s.gate, let gateNames = names.gate {
            let (dA, dG) = TrainingOps.gatedBackward(activation, a: s.preActivation, b: g, outputGradient: dH, compute: compute)
            dU = dA
            dX = gate.backward(input: s.input, outputGradient: dG, names: gateNames, into: &grads, compute: compute)
        } else {
            dU = TrainingOps.activationBackward(activation, input: s.preActivation, outputGradient: dH, compute: compute)
        }
        var dIn = up.backward(input: s.input, outputGradient: dU, names: names.up, into: &grads, compute: compute)!
        if let dX { dIn.add(dX, compute: compute) }
        return dIn
    }
}
