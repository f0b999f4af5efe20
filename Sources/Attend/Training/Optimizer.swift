/// A rule that updates a model's parameters from their gradients, one step at a time
/// (`AdamW`, `SGD`).
///
/// An optimizer owns its state (moments, momentum buffers), created on the first step with the
/// names and shapes of the parameters it is given; every later step must hand in the same
/// names and shapes. A schedule sets `learningRate` before each step:
///
/// ```swift
/// let schedule = LearningRateSchedule.linearWarmup(peak: 1e-3, warmupSteps: 10, totalSteps: 100)
/// optimizer.learningRate = try schedule.learningRate(step: optimizer.stepCount)
/// try optimizer.step(&parameters, gradients: grads)
/// ```
public protocol Optimizer: Sendable {
    /// The learning rate the next `step` uses (a schedule sets it before each step). Checked
    /// by `step`: it must be finite and not negative.
    var learningRate: Float { get set }

    /// The number of steps taken (0 before the first). The bias corrections of Adam use it.
    var stepCount: Int { get }

    /// Updates every tensor of `parameters` in place from the tensor of the same name in
    /// `gradients`. Both sets must hold the same names with the same shapes (in any order), and
    /// after the first step the same names and shapes as that step; a mismatch throws a
    /// `TrainingError` naming the parameter, before anything is changed. A throwing step
    /// changes neither the parameters nor the optimizer's state.
    /// Cost: O(parameter scalars), a few passes over memory.
    mutating func step(_ parameters: inout ParameterSet, gradients: ParameterSet) throws(TrainingError)
}

/// The names (in order) and shapes an optimizer's state was made for on its first step.
struct ParameterLayout: Sendable, Equatable {
    var names: [String]
    var shapes: [String: [Int]]

    init(_ set: ParameterSet) {
        names = set.names
        shapes = Dictionary(uniqueKeysWithValues: set.entries.map { ($0.name, $0.tensor.shape) })
    }
}

/// Checks shared by the optimizers: gradients against parameters (same names, same shapes),
/// and the parameters against the layout of the first step (nil before it).
func checkOptimizerInputs(
    _ parameters: ParameterSet, gradients: ParameterSet, layout: ParameterLayout?, optimizer: String
) throws(TrainingError) {
    if let layout {
        for (name, p) in parameters.entries {
            guard let shape = layout.shapes[name] else {
                throw TrainingError("\(optimizer): parameter \(name) was not among the first step's parameters")
            }
            guard shape == p.shape else {
                throw TrainingError("\(optimizer): parameter \(name) has shape \(p.shape), it had \(shape) in the first step")
            }
        }
        for name in layout.names where !parameters.contains(name) {
            throw TrainingError("\(optimizer): parameter \(name) of the first step is missing")
        }
    }
    for (name, p) in parameters.entries {
        guard let g = gradients[name] else {
            throw TrainingError("\(optimizer): no gradient for parameter \(name)")
        }
        guard g.shape == p.shape else {
            throw TrainingError("\(optimizer): gradient of \(name) has shape \(g.shape), the parameter has \(p.shape)")
        }
    }
    for name in gradients.names where !parameters.contains(name) {
        throw TrainingError("\(optimizer): gradient \(name) names no parameter")
    }
}

/// Checks that a hyperparameter is finite and within a range, naming it in the error.
func checkHyperparameter(
    _ value: Float, _ name: String, _ optimizer: String, _ ok: (Float) -> Bool, _ what: String
) throws(TrainingError) {
    guard value.isFinite, ok(value) else {
        throw TrainingError("\(optimizer): invalid \(name) \(value): it must be \(what)")
    }
}
