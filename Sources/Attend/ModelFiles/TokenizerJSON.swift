// Tokenizer and configuration files read with the library's one JSON parser (StrictJSON in
// Checkpoints/), keeping every string as its exact UTF-8 bytes.
//
// Why bytes: two canonically equivalent strings ("é" as U+00E9 and as "e" + U+0301) are equal
// Swift Strings. A vocabulary may hold both as different tokens with different ids; a reader
// that compared keys as Strings would merge them (or reject the file as having a duplicate
// key). Here strings are byte arrays, objects keep their members in document order, and
// duplicate keys are byte-identical keys. Nesting depth is bounded; errors carry the byte
// offset. Cost: O(bytes) time, O(values) memory.

extension ByteJSON {
    /// The member `key` of an object (nil if absent or not an object). Cost: O(members).
    subscript(key: String) -> ByteJSON? {
        guard case .object(let members) = self else { return nil }
        let k = Array(key.utf8)
        return members.first(where: { $0.key == k })?.value
    }

    /// The string as Swift `String` (for names and settings, never for vocabulary keys).
    var stringValue: String? {
        if case .string(let b) = self { return String(decoding: b, as: UTF8.self) }
        return nil
    }

    var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// An integer literal that fits in `Int` (no fraction, no exponent); nil otherwise.
    var intValue: Int? {
        guard case .number(let text) = self else { return nil }
        return StrictJSON.integerValue(text)
    }
}

/// Where and why a tokenizer JSON file could not be parsed.
struct ByteJSONError: Error {
    let offset: Int
    let message: String
}

enum ByteJSONParser {
    /// Nesting limit (tokenizer.json needs about 6).
    static let maxDepth = StrictJSON.defaultMaxDepth

    /// Parses one JSON document occupying all of `bytes` (surrounding whitespace allowed),
    /// duplicate keys compared byte for byte. Invalid UTF-8 anywhere is an error.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> ByteJSON {
        if let bad = StrictJSON.firstInvalidUTF8(bytes) {
            throw ByteJSONError(offset: bad, message: "not valid UTF-8")
        }
        do {
            return try StrictJSON.parseBytes(bytes, maxDepth: maxDepth, duplicateKeys: .identicalBytes)
        } catch let e as StrictJSONError {
            // Duplicate keys are shown as bytes (at most 60 characters), as tokens are elsewhere.
            if case .duplicateKey(let key) = e.kind {
                throw ByteJSONError(offset: e.offset, message: "duplicate key \(quotedBytes(Array(key.utf8)))")
            }
            throw ByteJSONError(offset: e.offset, message: e.message)
        }
    }
}

/// Bytes shown as a quoted string for an error message (control characters escaped, invalid
/// UTF-8 replaced), at most 60 characters.
func quotedBytes(_ b: [UInt8]) -> String {
    let s = String(decoding: b.prefix(240), as: UTF8.self)
    let short = s.count > 60 ? String(s.prefix(60)) + "..." : s
    return SafeTensorsError.quoted(short)
}
