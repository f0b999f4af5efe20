/// Scales `gradients` in place so their total L2 norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_(parameters, maxNorm)` does, and returns the total norm
/// before clipping.
///
/// The total norm is the square root of the sum of the squares of every scalar of every
/// tensor, summed in double precision in the set's order (deterministic; PyTorch sums each
/// tensor's float32 norm instead, so the two agree to about 1e-7 relative). Then, in float32
/// as PyTorch: `coefficient = min(1, (1 / (norm + 1e-6)) * maxNorm)` and every gradient scalar
/// is multiplied by it (also when it is 1, which changes nothing). A NaN or infinite norm is
/// returned and scales the gradients as PyTorch's arithmetic does (with
/// `error_if_nonfinite=False`). Throws `TrainingError` when `maxNorm` is not a finite number
/// > 0. Cost: two passes over the gradients.
@discardableResult
public func clipGradientNorm(_ gradients: inout ParameterSet, maxNorm: Float) throws(TrainingError) -> Float {
    guard maxNorm.isFinite, maxNorm > 0 else {
        throw TrainingError("clipGradientNorm: invalid maxNorm \(maxNorm): it must be finite and > 0")
    }
    var sum: Double = 0
    for (_, g) in gradients.entries {
        sum += g.withUnsafeBufferPointer { sumOfSquares($0) }
    }
    let total = Float(sum.squareRoot())
    let reciprocal = 1 / (total + Float(1e-6))
    var coefficient = reciprocal * maxNorm
    if !(coefficient.isNaN) { coefficient = min(coefficient, 1) }
    for name in gradients.names {
        gradients.modify(name) { g in
            g.withUnsafeMutableBufferPointer { scale($0, by: coefficient) }
        }
    }
    return total
}

/// The sum of the squares of `x`, accumulated in double precision from the first scalar to
/// the last.
func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
    var s: Double = 0
    for v in x {
        let d = Double(v)
        s += d * d
    }
    return s
}

/// `x[i] *= factor` for every scalar.
func scale(_ x: UnsafeMutableBufferPointer<Float>, by factor: Float) {
    for i in x.indices { x[i] *= factor }
}
