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
    static let stateFormat = "attend.optimizer.v1"

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
            "format": Self.stateFormat,
            "optimizer": "AdamW",
            "step": String(stepCount),
            "learning_rate": "\(learningRate)",
            "beta1": "\(beta1)",
            "beta2": "\(beta2)",
            "epsilon": "\(epsilon)",
            "weight_decay": "\(weightDecay)",
            "parameters": Self.jsonArray(names),
            "no_weight_decay": Self.jsonArray(names.filter { !decays($0) }),
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
        let file = try SafeTensorsFile(contentsOf: url)
        let place = url.path
        let meta = file.metadata
        func value(_ key: String) throws(TrainingError) -> String {
            guard let v = meta[key] else { throw TrainingError("\(place): optimizer state has no \(key) in its metadata") }
            return v
        }
        func float(_ key: String) throws(TrainingError) -> Float {
            let text = try value(key)
            guard let x = Float(text) else { throw TrainingError("\(place): \(key) \"\(text)\" is not a number") }
            return x
        }
        guard meta["format"] == Self.stateFormat, meta["optimizer"] == "AdamW" else {
            throw TrainingError(
                "\(place): not an AdamW state (format \(meta["format"] ?? "none"), optimizer \(meta["optimizer"] ?? "none"))")
        }
        let stepText = try value("step")
        guard let step = Int(stepText), step >= 0 else {
            throw TrainingError("\(place): step \"\(stepText)\" is not a non-negative integer")
        }
        do {
            try self.init(
                learningRate: try float("learning_rate"), betas: (try float("beta1"), try float("beta2")),
                epsilon: try float("epsilon"), weightDecay: try float("weight_decay"),
                excludingFromWeightDecay: excludingFromWeightDecay)
        } catch {
            throw TrainingError("\(place): \(error.message)")
        }
        let names = try Self.parseNames(try value("parameters"), key: "parameters", place: place)
        let noDecay = try Self.parseNames(try value("no_weight_decay"), key: "no_weight_decay", place: place)
        let expected = Set(names.map { "exp_avg." + $0 } + names.map { "exp_avg_sq." + $0 })
        for tensor in file.tensorNames where !expected.contains(tensor) {
            throw TrainingError("\(place): tensor \(tensor) is not a moment of a listed parameter")
        }
        guard (step == 0) == names.isEmpty else {
            throw TrainingError("\(place): step \(step) with \(names.count) parameters (moments exist exactly after a step)")
        }
        var first = ParameterSet()
        var second = ParameterSet()
        for name in names {
            for (prefix, set) in [("exp_avg.", 0), ("exp_avg_sq.", 1)] {
                guard let info = file.info(prefix + name) else {
                    throw TrainingError("\(place): no tensor \(prefix + name) for parameter \(name)")
                }
                guard info.dtype == .F32 else {
                    throw TrainingError("\(place): tensor \(prefix + name) is \(info.dtype.rawValue), not F32")
                }
                let t = try file.tensor(prefix + name)
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

    static func jsonArray(_ names: [String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, n) in names.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            SafeTensorsWriter.appendString(n, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    static func parseNames(_ text: String, key: String, place: String) throws(TrainingError) -> [String] {
        let bytes = Array(text.utf8)
        let parsed: StrictJSONValue? = bytes.withUnsafeBytes { try? StrictJSON.parse($0, maxDepth: 2) }
        guard case .array(let items)? = parsed else {
            throw TrainingError("\(place): \(key) is not a JSON array of names")
        }
        var names: [String] = []
        var seen = Set<String>()
        for item in items {
            guard case .string(let s) = item else { throw TrainingError("\(place): \(key) holds \(item.typeName), not a name") }
            guard seen.insert(s).inserted else { throw TrainingError("\(place): \(key) lists \(s) twice") }
            names.append(s)
        }
        return names
    }

    static func firstDifference(_ a: [String], _ b: [String]) -> String {
        let sa = Set(a), sb = Set(b)
        if let x = a.first(where: { !sb.contains($0) }) { return "\(x) is excluded in the state only" }
        if let x = b.first(where: { !sa.contains($0) }) { return "\(x) is excluded by the predicate only" }
        return "the same names in another order"
    }
}
