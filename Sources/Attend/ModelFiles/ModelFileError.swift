import Foundation

/// A model folder's file that is missing, unreadable or says something this library cannot
/// use: a tokenizer (tokenizer.json, vocab.txt, tokenizer_config.json), a model configuration
/// (config.json) or a sentence-transformers module file (modules.json, 1_Pooling/config.json,
/// sentence_bert_config.json).
///
/// Every case names the file; `description` is one line saying what is wrong and where.
/// (Weights have their own errors: `SafeTensorsError` for the file, `CheckpointError` for a
/// mismatch with the model.)
public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The file (or folder) does not exist.
    case missingFile(path: String)
    /// The file exists but could not be read (permissions, not a regular file, ...).
    case unreadable(path: String, reason: String)
    /// Not valid JSON (or not valid UTF-8); `offset` is the byte where reading stopped.
    case invalidJSON(path: String, offset: Int, reason: String)
    /// A value is missing, of the wrong type or out of range; `key` names it (a JSON path
    /// such as `model.vocab` or a line such as `line 7`).
    case invalidValue(path: String, key: String, reason: String)
    /// Valid, but asks for something this library does not implement (another tokenizer
    /// model, a pooling mode, a module type).
    case unsupported(path: String, what: String)

    /// The file the error concerns.
    public var path: String {
        switch self {
        case .missingFile(let p), .unreadable(let p, _), .invalidJSON(let p, _, _), .invalidValue(let p, _, _),
            .unsupported(let p, _):
            return p
        }
    }

    /// One line: the file and what is wrong with it.
    public var description: String {
        switch self {
        case .missingFile(let p): return "\(p): no such file"
        case .unreadable(let p, let r): return "\(p): cannot read: \(r)"
        case .invalidJSON(let p, let o, let r): return "\(p): invalid JSON at byte offset \(o): \(r)"
        case .invalidValue(let p, let k, let r): return "\(p): \(k): \(r)"
        case .unsupported(let p, let w): return "\(p): unsupported: \(w)"
        }
    }
}

/// Reads a whole small file (tokenizer or configuration) into memory, with errors naming it.
func readModelFile(_ url: URL) throws -> [UInt8] {
    let path = url.path
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ModelFileError.missingFile(path: path)
    }
    if isDirectory.boolValue { throw ModelFileError.unreadable(path: path, reason: "it is a directory") }
    do {
        let bytes = try MappedFileBytes(mapping: path)
        return Array(bytes.buffer)
    } catch let e as SafeTensorsError {
        if case .unreadable(_, let reason) = e { throw ModelFileError.unreadable(path: path, reason: reason) }
        throw ModelFileError.unreadable(path: path, reason: e.description)
    }
}

/// Parses a model folder's JSON file with the byte-preserving reader.
func readModelJSON(_ url: URL) throws -> ByteJSON {
    try parseModelJSON(try readModelFile(url), path: url.path)
}

/// Parses the bytes of a model folder's JSON file (`path` names it in errors).
func parseModelJSON(_ bytes: [UInt8], path: String) throws -> ByteJSON {
    do {
        return try bytes.withUnsafeBytes { try ByteJSONParser.parse($0) }
    } catch let e as ByteJSONError {
        throw ModelFileError.invalidJSON(path: path, offset: e.offset, reason: e.message)
    }
}

/// Typed access to the members of a JSON object read from `path`, with errors naming the key.
struct JSONFields {
    let value: ByteJSON
    let path: String
    let prefix: String

    init(_ value: ByteJSON, path: String, prefix: String = "") throws {
        guard case .object = value else {
            throw ModelFileError.invalidValue(
                path: path, key: prefix.isEmpty ? "(top level)" : prefix,
                reason: "expected an object, found \(value.typeName)")
        }
        self.value = value
        self.path = path
        self.prefix = prefix
    }

    /// One object with the members of `layers` (objects), a later layer's member replacing an
    /// earlier one's of the same key (errors name `path`).
    init(mergedObject layers: [JSONFields], path: String) throws {
        var members: [(key: [UInt8], value: ByteJSON)] = []
        for layer in layers {
            guard case .object(let ms) = layer.value else { continue }
            for m in ms {
                if let i = members.firstIndex(where: { $0.key == m.key }) { members[i].value = m.value } else { members.append(m) }
            }
        }
        try self.init(.object(members), path: path)
    }

    /// The object's keys, in document order.
    var keys: [String] {
        guard case .object(let ms) = value else { return [] }
        return ms.map { String(decoding: $0.key, as: UTF8.self) }
    }

    func key(_ k: String) -> String { prefix.isEmpty ? k : prefix + "." + k }

    /// The member, or nil when absent or JSON null.
    func raw(_ k: String) -> ByteJSON? {
        guard let v = value[k], !v.isNull else { return nil }
        return v
    }

    func fail(_ k: String, _ reason: String) -> ModelFileError {
        ModelFileError.invalidValue(path: path, key: key(k), reason: reason)
    }

    func string(_ k: String) throws -> String? {
        guard let v = raw(k) else { return nil }
        guard let s = v.stringValue else { throw fail(k, "expected a string, found \(v.typeName)") }
        return s
    }

    func bytes(_ k: String) throws -> [UInt8]? {
        guard let v = raw(k) else { return nil }
        guard case .string(let b) = v else { throw fail(k, "expected a string, found \(v.typeName)") }
        return b
    }

    func bool(_ k: String) throws -> Bool? {
        guard let v = raw(k) else { return nil }
        guard let b = v.boolValue else { throw fail(k, "expected true or false, found \(v.typeName)") }
        return b
    }

    /// An integer in `range`.
    func int(_ k: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = raw(k) else { return nil }
        guard let i = v.intValue else { throw fail(k, "expected an integer, found \(describe(v))") }
        guard range.contains(i) else { throw fail(k, "\(i) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    /// A finite number.
    func double(_ k: String) throws -> Double? {
        guard let v = raw(k) else { return nil }
        guard case .number(let text) = v, let d = Double(String(decoding: text, as: UTF8.self)), d.isFinite else {
            throw fail(k, "expected a finite number, found \(describe(v))")
        }
        return d
    }

    func object(_ k: String) throws -> JSONFields? {
        guard let v = raw(k) else { return nil }
        return try JSONFields(v, path: path, prefix: key(k))
    }

    func array(_ k: String) throws -> [ByteJSON]? {
        guard let v = raw(k) else { return nil }
        guard case .array(let items) = v else { throw fail(k, "expected an array, found \(v.typeName)") }
        return items
    }

    private func describe(_ v: ByteJSON) -> String {
        if case .number(let t) = v { return String(decoding: t, as: UTF8.self) }
        return v.typeName
    }
}
