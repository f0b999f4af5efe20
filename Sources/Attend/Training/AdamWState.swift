// AdamW's state in a safetensors file, to stop training and resume it bit for bit.
//
// Tensors (F32): `exp_avg.<parameter>` and `exp_avg_sq.<parameter>` for every parameter.
// `__metadata__` (strings):
//   format            "attend.optimizer.v1"
//   optimizer         "AdamW"
//   step              the steps taken, a decimal integer
//   learning_rate, beta1, beta2, epsilon, weight_decay
//                     float32 values in their shortest round-trip decimal form
//   parameters        a JSON array of the parameter names in order
//   no_weight_decay   a JSON array of the names excluded from weight decay (checked on resume
//                     against the predicate given then, so a resumed run decays the same set)

import Foundation

extension AdamW {
    /// Writes the moments, the step count and the hyperparameters to a safetensors file at
    /// `url` (atomically: a temporary file renamed into place). `init(resumingFrom:)` reads it
    /// back; continuing from it gives bit for bit the parameters of an uninterrupted run.
    /// Throws `SafeTensorsError.unwritable` naming the file. Cost: O(parameter scalars) bytes
    /// written (twice the parameters' size).
    public func save(to url: URL) throws {
        var tensors = ParameterSet()
        let names = layout?.names ?? []
        if let firstMoments, let secondMoments {
            for name in names { tensors["exp_avg." + name] = firstMoments[name]! }
            for name in names { tensors["exp_avg_sq." + name] = secondMoments[name]! }
        }
        let metadata = [
            "format": OptimizerStateFile.format,
            "optimizer": "AdamW",
            "step": String(stepCount),
            "learning_rate": "\(learningRate)",
            "beta1": "\(beta1)",
            "beta2": "\(beta2)",
            "epsilon": "\(epsilon)",
            "weight_decay": "\(weightDecay)",
            "parameters": OptimizerStateFile.jsonArray(names),
            "no_weight_decay": OptimizerStateFile.jsonArray(names.filter { !decays($0) }),
        ]
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: url)
    }

    /// The optimizer saved at `url` by `save(to:)`: hyperparameters, step count and moments.
    /// `excludingFromWeightDecay` must exclude the same parameters as when it was saved (the
    /// file lists them). Throws `SafeTensorsError` if the file is not a valid safetensors file,
    /// and `TrainingError` naming the file if it is not an AdamW state (wrong format, a missing
    /// or malformed value, a moment missing or of another shape than its parameter, a
    /// different weight-decay exclusion). Cost: O(header) plus reading the moments.
    public init(
        resumingFrom url: URL,
        excludingFromWeightDecay: @escaping @Sendable (String) -> Bool = AdamW.huggingFaceNoDecay
    ) throws {
        let state = try OptimizerStateFile(contentsOf: url, optimizer: "AdamW")
        let place = state.place, step = state.step
        do {
            try self.init(
                learningRate: try state.float("learning_rate"), betas: (try state.float("beta1"), try state.float("beta2")),
                epsilon: try state.float("epsilon"), weightDecay: try state.float("weight_decay"),
                excludingFromWeightDecay: excludingFromWeightDecay)
        } catch {
            throw TrainingError("\(place): \(error.message)")
        }
        let names = try state.names("parameters")
        let noDecay = try state.names("no_weight_decay")
        try state.rejectTensors(
            notIn: Set(names.map { "exp_avg." + $0 } + names.map { "exp_avg_sq." + $0 }), what: "a moment of a listed parameter")
        guard (step == 0) == names.isEmpty else {
            throw TrainingError("\(place): step \(step) with \(names.count) parameters (moments exist exactly after a step)")
        }
        var first = ParameterSet()
        var second = ParameterSet()
        for name in names {
            for (prefix, set) in [("exp_avg.", 0), ("exp_avg_sq.", 1)] {
                let t = try state.tensor(prefix + name, of: name)
                if set == 0 { first[name] = t } else { second[name] = t }
            }
            guard first[name]!.shape == second[name]!.shape else {
                throw TrainingError(
                    "\(place): moments of \(name) have shapes \(first[name]!.shape) and \(second[name]!.shape)")
            }
        }
        let excludedNow = names.filter { !decays($0) }
        guard excludedNow == noDecay || weightDecay == 0 else {
            throw TrainingError(
                "\(place): the state excludes \(noDecay.count) parameters from weight decay, the predicate given excludes \(excludedNow.count) (first difference: \(Self.firstDifference(noDecay, excludedNow)))"
            )
        }
        self.stepCount = step
        if !names.isEmpty {
            self.firstMoments = first
            self.secondMoments = second
            self.layout = ParameterLayout(first)
        }
    }

    static func firstDifference(_ a: [String], _ b: [String]) -> String {
        let sa = Set(a), sb = Set(b)
        if let x = a.first(where: { !sb.contains($0) }) { return "\(x) is excluded in the state only" }
        if let x = b.first(where: { !sa.contains($0) }) { return "\(x) is excluded by the predicate only" }
        return "the same names in another order"
    }
}
