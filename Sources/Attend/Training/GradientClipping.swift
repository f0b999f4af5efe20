/// Scales `gradients` in place so their total L2 norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_(parameters, maxNorm)` does, and returns the total norm
/// before clipping.
///
/// The total norm is the square root of the sum of the squares of every scalar of every
/// tensor, summed in double precision by the sum-of-squares kernel in the set's order (deterministic; PyTorch sums each
/// tensor's float32 norm instead, so the two agree to about 1e-7 relative). Then, in float32
/// as PyTorch: `coefficient = min(1, (1 / (norm + 1e-6)) * maxNorm)` and every gradient scalar
/// is multiplied by it (also when it is 1, which changes nothing). A NaN or infinite norm is
/// returned and scales the gradients as PyTorch's arithmetic does (with
/// `error_if_nonfinite=False`). Throws `TrainingError` when `maxNorm` is not a finite number
/// > 0. `compute` chooses the kernels and threads (any thread count gives the same bits;
/// kernels whose sums add in another order can differ in the norm's last bit).
/// Cost: two passes over the gradients (one when nothing is clipped).
@discardableResult
public func clipGradientNorm(
    _ gradients: inout ParameterSet, maxNorm: Float, compute: Compute = .default
) throws(TrainingError) -> Float {
    guard maxNorm.isFinite, maxNorm > 0 else {
        throw TrainingError("clipGradientNorm: invalid maxNorm \(maxNorm): it must be finite and > 0")
    }
    var sum: Double = 0
    for (_, g) in gradients.entries {
        guard g.count > 0 else { continue }
        sum += g.withUnsafeBufferPointer { TrainingKernels.sumOfSquares($0.baseAddress!, count: $0.count, compute: compute) }
    }
    let total = Float(sum.squareRoot())
    let reciprocal = 1 / (total + Float(1e-6))
    var coefficient = reciprocal * maxNorm
    if !(coefficient.isNaN) { coefficient = min(coefficient, 1) }
    if coefficient == 1 { return total }  // x * 1 == x: PyTorch's multiply changes nothing
    for name in gradients.names where gradients[name]!.count > 0 {
        gradients.modify(name) { g in
            g.withUnsafeMutableBufferPointer { TrainingKernels.scale($0.baseAddress!, count: $0.count, by: coefficient, compute: compute) }
        }
    }
    return total
}
