// SGD's state in a safetensors file, to stop training and resume it bit for bit.
//
// Tensors (F32): `momentum_buffer.<parameter>` for every parameter (none without momentum).
// `__metadata__` (strings):
//   format            "attend.optimizer.v1"
//   optimizer         "SGD"
//   step              the steps taken, a decimal integer
//   learning_rate, momentum, dampening, weight_decay
//                     float32 values in their shortest round-trip decimal form
//   nesterov          "true" or "false"
//   parameters        a JSON array of the parameter names in order (empty without momentum)

import Foundation

extension SGD {
    /// Writes the momentum buffers, the step count and the hyperparameters to a safetensors
    /// file at `url` (atomically). `init(resumingFrom:)` reads it back; continuing from it gives
    /// bit for bit the parameters of an uninterrupted run. Throws `SafeTensorsError.unwritable`
    /// naming the file. Cost: O(parameter scalars) bytes written (none without momentum).
    public func save(to url: URL) throws {
        var tensors = ParameterSet()
        let names = momentumBuffers?.names ?? []
        for name in names { tensors["momentum_buffer." + name] = momentumBuffers![name]! }
        let metadata = [
            "format": OptimizerStateFile.format,
            "optimizer": "SGD",
            "step": String(stepCount),
            "learning_rate": "\(learningRate)",
            "momentum": "\(momentum)",
            "dampening": "\(dampening)",
            "weight_decay": "\(weightDecay)",
            "nesterov": nesterov ? "true" : "false",
            "parameters": OptimizerStateFile.jsonArray(names),
        ]
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: url)
    }

    /// The optimizer saved at `url` by `save(to:)`: hyperparameters, step count and momentum
    /// buffers. Throws `SafeTensorsError` if the file is not a valid safetensors file, and
    /// `TrainingError` naming the file if it is not an SGD state (wrong format, a missing or
    /// malformed value, a buffer missing or not F32, a tensor no parameter owns).
    /// Cost: O(header) plus reading the buffers.
    public init(resumingFrom url: URL) throws {
        let state = try OptimizerStateFile(contentsOf: url, optimizer: "SGD")
        let place = state.place, step = state.step
        let nesterovText = try state.value("nesterov")
        guard nesterovText == "true" || nesterovText == "false" else {
            throw TrainingError("\(place): nesterov \"\(nesterovText)\" is not true or false")
        }
        do {
            try self.init(
                learningRate: try state.float("learning_rate"), momentum: try state.float("momentum"),
                dampening: try state.float("dampening"), weightDecay: try state.float("weight_decay"), nesterov: nesterovText == "true")
        } catch {
            throw TrainingError("\(place): \(error.message)")
        }
        let names = try state.names("parameters")
        try state.rejectTensors(notIn: Set(names.map { "momentum_buffer." + $0 }), what: "a momentum buffer of a listed parameter")
        if momentum == 0 && !names.isEmpty {
            throw TrainingError("\(place): momentum 0 but \(names.count) momentum buffers")
        }
        if momentum != 0 && (step == 0) != names.isEmpty {
            throw TrainingError("\(place): step \(step) with \(names.count) momentum buffers (they exist exactly after a step)")
        }
        var buffers = ParameterSet()
        for name in names {
            buffers[name] = try state.tensor("momentum_buffer." + name, of: name)
        }
        self.stepCount = step
        if !names.isEmpty {
            self.momentumBuffers = buffers
            self.layout = ParameterLayout(buffers)
        }
    }
}
