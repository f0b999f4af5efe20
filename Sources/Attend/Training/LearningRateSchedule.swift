import Foundation

/// The learning rate as a function of the optimizer step, as the `transformers` and paper
/// schedules compute it (in double precision, rounded to float32 at the end).
///
/// `step` is the number of optimizer steps already taken (0 for the first step): the
/// `current_step` of `transformers`' `LambdaLR` schedules, and `optimizer.stepCount` in a loop
/// that sets the rate before each step:
///
/// ```swift
/// let schedule = LearningRateSchedule.linearWarmup(peak: 5e-5, warmupSteps: 100, totalSteps: 1000)
/// optimizer.learningRate = try schedule.learningRate(step: optimizer.stepCount)
/// ```
public enum LearningRateSchedule: Sendable, Equatable {
    /// The same rate at every step.
    case constant(Float)
    /// `get_linear_schedule_with_warmup`: from 0 up to `peak` linearly over `warmupSteps`,
    /// then linearly down to 0 at `totalSteps` (and 0 after).
    case linearWarmup(peak: Float, warmupSteps: Int, totalSteps: Int)
    /// `get_cosine_schedule_with_warmup`: linear warmup to `peak`, then
    /// `peak * max(0, (1 + cos(pi * cycles * 2 * progress)) / 2)` with `progress` going from 0
    /// to 1 between `warmupSteps` and `totalSteps` (`cycles` 0.5: one half cosine down to 0).
    case cosineWarmup(peak: Float, warmupSteps: Int, totalSteps: Int, cycles: Double = 0.5)
    /// "Attention Is All You Need", section 5.3:
    /// `scale * modelDimension^-0.5 * min(n^-0.5, n * warmupSteps^-1.5)` with `n = step + 1`
    /// (the paper's step number, counted from 1): linear growth for `warmupSteps` steps, then
    /// decay with the inverse square root of the step.
    case inverseSquareRootWarmup(modelDimension: Int, warmupSteps: Int, scale: Float = 1)

    /// Checks the settings: rates finite and >= 0, `warmupSteps >= 0`,
    /// `totalSteps >= max(1, warmupSteps)`, `cycles` finite and > 0, and for the inverse square
    /// root `modelDimension > 0`, `warmupSteps > 0`, `scale` finite and > 0. Throws a
    /// `TrainingError` naming the setting. Cost: O(1).
    public func validate() throws(TrainingError) {
        func rate(_ x: Float, _ name: String) throws(TrainingError) {
            guard x.isFinite, x >= 0 else { throw TrainingError("learning rate schedule: \(name) \(x) must be finite and >= 0") }
        }
        func steps(_ warmup: Int, _ total: Int) throws(TrainingError) {
            guard warmup >= 0 else { throw TrainingError("learning rate schedule: warmupSteps \(warmup) is negative") }
            guard total >= 1, total >= warmup else {
                throw TrainingError("learning rate schedule: totalSteps \(total) must be >= 1 and >= warmupSteps \(warmup)")
            }
        }
        switch self {
        case .constant(let lr):
            try rate(lr, "rate")
        case .linearWarmup(let peak, let warmup, let total):
            try rate(peak, "peak")
            try steps(warmup, total)
        case .cosineWarmup(let peak, let warmup, let total, let cycles):
            try rate(peak, "peak")
            try steps(warmup, total)
            guard cycles.isFinite, cycles > 0 else {
                throw TrainingError("learning rate schedule: cycles \(cycles) must be finite and > 0")
            }
        case .inverseSquareRootWarmup(let d, let warmup, let scale):
            guard d > 0 else { throw TrainingError("learning rate schedule: modelDimension \(d) must be > 0") }
            guard warmup > 0 else { throw TrainingError("learning rate schedule: warmupSteps \(warmup) must be > 0") }
            guard scale.isFinite, scale > 0 else {
                throw TrainingError("learning rate schedule: scale \(scale) must be finite and > 0")
            }
        }
    }

    /// The learning rate for the step after `step` steps were taken (see the cases). Throws a
    /// `TrainingError` for invalid settings (see `validate()`) or a negative step. Cost: O(1).
    public func learningRate(step: Int) throws(TrainingError) -> Float {
        try validate()
        guard step >= 0 else { throw TrainingError("learning rate schedule: step \(step) is negative") }
        let s = Double(step)
        switch self {
        case .constant(let lr):
            return lr
        case .linearWarmup(let peak, let warmup, let total):
            if step < warmup { return Float(Double(peak) * (s / Double(max(1, warmup)))) }
            let factor = max(0.0, Double(total - step) / Double(max(1, total - warmup)))
            return Float(Double(peak) * factor)
        case .cosineWarmup(let peak, let warmup, let total, let cycles):
            if step < warmup { return Float(Double(peak) * (s / Double(max(1, warmup)))) }
            let progress = Double(step - warmup) / Double(max(1, total - warmup))
            let factor = 0.5 * (1.0 + Foundation.cos(Double.pi * cycles * 2.0 * progress))
            return Float(Double(peak) * max(0.0, factor))
        case .inverseSquareRootWarmup(let d, let warmup, let scale):
            let n = s + 1
            let factor =
                Foundation.pow(Double(d), -0.5)
                * min(Foundation.pow(n, -0.5), n * Foundation.pow(Double(warmup), -1.5))
            return Float(Double(scale) * factor)
        }
    }
}
