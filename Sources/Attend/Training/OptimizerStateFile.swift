// The file layout every optimizer state shares (AdamWState.swift and SGDState.swift say which
// tensors and metadata keys each writes): a safetensors file whose `__metadata__` holds
// `format` = "attend.optimizer.v1", `optimizer`, `step` and the hyperparameters as strings,
// and `parameters` as a JSON array of names. This type writes the name lists and reads every
// field back with one-line `TrainingError`s naming the file.

import Foundation

struct OptimizerStateFile {
    static let format = "attend.optimizer.v1"

    let file: SafeTensorsFile
    /// The file's path, for messages.
    let place: String
    /// The steps the saved optimizer had taken.
    let step: Int

    /// Opens `url` and checks that it holds the state of `optimizer` ("AdamW", "SGD") and a
    /// step count. Throws `SafeTensorsError` for a file that is not safetensors.
    init(contentsOf url: URL, optimizer: String) throws {
        file = try SafeTensorsFile(contentsOf: url)
        place = url.path
        let meta = file.metadata
        guard meta["format"] == Self.format, meta["optimizer"] == optimizer else {
            throw TrainingError(
                "\(place): not an \(optimizer) state (format \(meta["format"] ?? "none"), optimizer \(meta["optimizer"] ?? "none"))")
        }
        let stepText = meta["step"] ?? "none"
        guard let step = Int(stepText), step >= 0 else {
            throw TrainingError("\(place): step \"\(stepText)\" is not a non-negative integer")
        }
        self.step = step
    }

    /// The metadata string `key`.
    func value(_ key: String) throws(TrainingError) -> String {
        guard let v = file.metadata[key] else { throw TrainingError("\(place): optimizer state has no \(key) in its metadata") }
        return v
    }

    /// The metadata float `key`.
    func float(_ key: String) throws(TrainingError) -> Float {
        let text = try value(key)
        guard let x = Float(text) else { throw TrainingError("\(place): \(key) \"\(text)\" is not a number") }
        return x
    }

    /// The metadata name list `key` (a JSON array of distinct strings).
    func names(_ key: String) throws(TrainingError) -> [String] {
        let bytes = Array(try value(key).utf8)
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

    /// Throws when the file holds a tensor outside `expected` (`what` says what they should be).
    func rejectTensors(notIn expected: Set<String>, what: String) throws(TrainingError) {
        for tensor in file.tensorNames where !expected.contains(tensor) {
            throw TrainingError("\(place): tensor \(tensor) is not \(what)")
        }
    }

    /// The F32 tensor `key`, which belongs to `parameter`.
    func tensor(_ key: String, of parameter: String) throws -> Tensor {
        guard let info = file.info(key) else { throw TrainingError("\(place): no tensor \(key) for parameter \(parameter)") }
        guard info.dtype == .F32 else { throw TrainingError("\(place): tensor \(key) is \(info.dtype.rawValue), not F32") }
        return try file.tensor(key)
    }

    /// `names` as a JSON array, for the `parameters` metadata.
    static func jsonArray(_ names: [String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, n) in names.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            SafeTensorsWriter.appendString(n, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }
}
