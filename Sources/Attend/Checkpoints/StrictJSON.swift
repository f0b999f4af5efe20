// A small, strict JSON parser (RFC 8259) for safetensors headers and checkpoint index files.
//
// Why not Foundation's JSONSerialization: it keeps one of two duplicate keys silently (a header
// naming a tensor twice must be rejected), it cannot say where the input went wrong, and it
// does not bound nesting. This parser:
// - reads bytes that are already known to be valid UTF-8 (`firstInvalidUTF8` checks first);
// - rejects duplicate keys in any object (compared as Swift Strings, that is up to Unicode
//   canonical equivalence: two keys Swift would treat as one dictionary key are rejected);
// - bounds nesting depth (`maxDepth`, 128 like serde_json), so recursion stays shallow;
// - accepts exactly the RFC grammar: no comments, no trailing commas, no NaN, no leading zeros,
//   no unescaped control characters, no lone UTF-16 surrogates in \u escapes; whitespace is
//   space, tab, CR and LF only, and is allowed around the value (the safetensors writer pads
//   the header with spaces);
// - keeps numbers as their literal text (exact integers of any length are judged by the caller).
// Cost: O(bytes) time, O(values) memory.

/// A parsed JSON value. Objects keep their members in document order.
indirect enum StrictJSONValue {
    case null
    case bool(Bool)
    case number(StrictJSONNumber)
    case string(String)
    case array([StrictJSONValue])
    case object(StrictJSONObject)

    /// A short name of the value's JSON type, for error messages.
    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A JSON number as written, with its integer value when it is an integer literal.
struct StrictJSONNumber {
    /// The literal text, e.g. `-12`, `3.5e2`.
    let text: String
    /// True when the literal has no fraction and no exponent (`12`, `-0`; not `12.0`, `1e2`).
    let isIntegerLiteral: Bool
    /// True when the literal starts with `-`.
    let isNegative: Bool
    /// The value of an integer literal that fits in `Int`; nil otherwise.
    let intValue: Int?
}

/// A JSON object: members in document order, keys unique.
struct StrictJSONObject {
    // Two parallel arrays: an array of (String, StrictJSONValue) tuples trips a "circular
    // reference" error in the Swift 6.3 compiler.
    private(set) var keys: [String] = []
    private(set) var values: [StrictJSONValue] = []

    mutating func append(_ key: String, _ value: StrictJSONValue) {
        keys.append(key)
        values.append(value)
    }

    /// The members in document order.
    var members: Zip2Sequence<[String], [StrictJSONValue]> { zip(keys, values) }

    /// The number of members.
    var count: Int { keys.count }

    /// The value of `key`, or nil. Cost: O(members) (objects looked up by key are small).
    subscript(key: String) -> StrictJSONValue? {
        guard let i = keys.firstIndex(of: key) else { return nil }
        return values[i]
    }
}

/// Where and why parsing failed. `offset` is a byte offset into the parsed buffer; `depth` is
/// the nesting depth of the object whose key was duplicated (1 = top level).
struct StrictJSONError: Error, Equatable {
    enum Kind: Equatable {
        case syntax(String)
        case duplicateKey(String)
        case tooDeep(Int)
    }
    let kind: Kind
    let offset: Int
    let depth: Int

    var message: String {
        switch kind {
        case .syntax(let s): return s
        case .duplicateKey(let k): return "duplicate key \(SafeTensorsError.quoted(k))"
        case .tooDeep(let limit): return "nesting deeper than \(limit) levels"
        }
    }
}

enum StrictJSON {
    /// Nesting limit for headers and index files (they need 3); serde_json, which the reference
    /// uses, stops at 128 too.
    static let defaultMaxDepth = 128

    /// Parses one JSON document occupying all of `bytes` (surrounding whitespace allowed).
    /// `bytes` must be valid UTF-8 (check with `firstInvalidUTF8` first).
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth) throws -> StrictJSONValue {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        p.skipWhitespace()
        let value = try p.parseValue(depth: 0)
        p.skipWhitespace()
        if p.pos != bytes.count { throw p.error("unexpected characters after the JSON value") }
        return value
    }

    /// The offset of the first byte that is not part of a well-formed UTF-8 sequence (no
    /// overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence), or nil
    /// when all of `bytes` is valid. Cost: O(bytes), 8 ASCII bytes per step.
    static func firstInvalidUTF8(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = bytes.count
        var i = 0
        while i < n {
            // ASCII fast path: 8 bytes at a time.
            if i + 8 <= n, bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
                continue
            }
            let lead = bytes[i]
            if lead < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var scalar: UInt32
            let minimum: UInt32
            if lead & 0xE0 == 0xC0 {
                length = 2
                scalar = UInt32(lead & 0x1F)
                minimum = 0x80
            } else if lead & 0xF0 == 0xE0 {
                length = 3
                scalar = UInt32(lead & 0x0F)
                minimum = 0x800
            } else if lead & 0xF8 == 0xF0 {
                length = 4
                scalar = UInt32(lead & 0x07)
                minimum = 0x1_0000
            } else {
                return i
            }
            if length > n - i { return i }
            for k in 1..<length {
                let c = bytes[i + k]
                if c & 0xC0 != 0x80 { return i }
                scalar = scalar << 6 | UInt32(c & 0x3F)
            }
            if scalar < minimum || scalar > 0x10_FFFF || (0xD800...0xDFFF).contains(scalar) { return i }
            i += length
        }
        return nil
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let maxDepth: Int
        var pos = 0

        init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        func error(_ message: String, at offset: Int? = nil) -> StrictJSONError {
            StrictJSONError(kind: .syntax(message), offset: offset ?? pos, depth: 0)
        }

        var atEnd: Bool { pos >= bytes.count }

        mutating func skipWhitespace() {
            while pos < bytes.count {
                switch bytes[pos] {
                case 0x20, 0x09, 0x0A, 0x0D: pos += 1
                default: return
                }
            }
        }

        /// Describes the byte at `pos` for an error message.
        func found() -> String {
            if atEnd { return "end of input" }
            let b = bytes[pos]
            if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
            return "byte 0x" + String(b, radix: 16)
        }

        /// `depth`: number of arrays/objects enclosing this value.
        mutating func parseValue(depth: Int) throws -> StrictJSONValue {
            guard !atEnd else { throw error("unexpected end of input, expected a value") }
            switch bytes[pos] {
            case UInt8(ascii: "{"): return .object(try parseObject(depth: depth + 1))
            case UInt8(ascii: "["): return .array(try parseArray(depth: depth + 1))
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            default: throw error("expected a value, found \(found())")
            }
        }

        mutating func expectLiteral(_ word: StaticString) throws {
            let start = pos
            let n = word.utf8CodeUnitCount
            guard n <= bytes.count - pos else { throw error("invalid literal", at: start) }
            for k in 0..<n where bytes[pos + k] != word.utf8Start[k] {
                throw error("invalid literal", at: start)
            }
            pos += n
        }

        mutating func parseObject(depth: Int) throws -> StrictJSONObject {
            if depth > maxDepth { throw StrictJSONError(kind: .tooDeep(maxDepth), offset: pos, depth: depth) }
            pos += 1  // {
            var object = StrictJSONObject()
            var seen = Set<String>()
            skipWhitespace()
            if !atEnd && bytes[pos] == UInt8(ascii: "}") {
                pos += 1
                return object
            }
            while true {
                skipWhitespace()
                guard !atEnd && bytes[pos] == UInt8(ascii: "\"") else {
                    throw error("expected a string key, found \(found())")
                }
                let keyOffset = pos
                let key = try parseString()
                if !seen.insert(key).inserted {
                    throw StrictJSONError(kind: .duplicateKey(key), offset: keyOffset, depth: depth)
                }
                skipWhitespace()
                guard !atEnd && bytes[pos] == UInt8(ascii: ":") else {
                    throw error("expected ':' after a key, found \(found())")
                }
                pos += 1
                skipWhitespace()
                let value = try parseValue(depth: depth)
                object.append(key, value)
                skipWhitespace()
                guard !atEnd else { throw error("unexpected end of input inside an object") }
                if bytes[pos] == UInt8(ascii: ",") {
                    pos += 1
                    continue
                }
                if bytes[pos] == UInt8(ascii: "}") {
                    pos += 1
                    return object
                }
                throw error("expected ',' or '}' in an object, found \(found())")
            }
        }

        mutating func parseArray(depth: Int) throws -> [StrictJSONValue] {
            if depth > maxDepth { throw StrictJSONError(kind: .tooDeep(maxDepth), offset: pos, depth: depth) }
            pos += 1  // [
            var array: [StrictJSONValue] = []
            skipWhitespace()
            if !atEnd && bytes[pos] == UInt8(ascii: "]") {
                pos += 1
                return array
            }
            while true {
                skipWhitespace()
                array.append(try parseValue(depth: depth))
                skipWhitespace()
                guard !atEnd else { throw error("unexpected end of input inside an array") }
                if bytes[pos] == UInt8(ascii: ",") {
                    pos += 1
                    continue
                }
                if bytes[pos] == UInt8(ascii: "]") {
                    pos += 1
                    return array
                }
                throw error("expected ',' or ']' in an array, found \(found())")
            }
        }

        mutating func parseHex4() throws -> UInt32 {
            guard bytes.count - pos >= 4 else { throw error("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[pos]
                let d: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
                default: throw error("invalid hex digit in \\u escape")
                }
                v = v << 4 | UInt32(d)
                pos += 1
            }
            return v
        }

        /// A string starting at the opening quote; leaves `pos` after the closing quote.
        mutating func parseString() throws -> String {
            let open = pos
            pos += 1
            let start = pos
            // Fast path: no escapes.
            while pos < bytes.count {
                let c = bytes[pos]
                if c == UInt8(ascii: "\"") {
                    let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
                    pos += 1
                    return s
                }
                if c == UInt8(ascii: "\\") { break }
                if c < 0x20 { throw error("unescaped control character in a string") }
                pos += 1
            }
            guard pos < bytes.count else { throw error("unterminated string", at: open) }
            // Slow path: copy what was scanned, then decode escapes.
            var utf8 = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<pos]))
            while pos < bytes.count {
                let c = bytes[pos]
                if c == UInt8(ascii: "\"") {
                    pos += 1
                    return String(decoding: utf8, as: UTF8.self)
                }
                if c < 0x20 { throw error("unescaped control character in a string") }
                if c != UInt8(ascii: "\\") {
                    utf8.append(c)
                    pos += 1
                    continue
                }
                let escapeOffset = pos
                pos += 1
                guard pos < bytes.count else { break }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): utf8.append(0x22)
                case UInt8(ascii: "\\"): utf8.append(0x5C)
                case UInt8(ascii: "/"): utf8.append(0x2F)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xDC00...0xDFFF).contains(scalar) {
                        throw error("lone low surrogate in \\u escape", at: escapeOffset)
                    }
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard bytes.count - pos >= 2, bytes[pos] == UInt8(ascii: "\\"),
                            bytes[pos + 1] == UInt8(ascii: "u")
                        else { throw error("lone high surrogate in \\u escape", at: escapeOffset) }
                        pos += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw error("high surrogate not followed by a low surrogate", at: escapeOffset)
                        }
                        scalar = 0x1_0000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    // Not a surrogate and at most 0x10FFFF by construction.
                    utf8.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                default:
                    // A control or non-ASCII byte is named by value: the message must stay one line.
                    let shown = e >= 0x21 && e < 0x7F ? "'\\\(Character(Unicode.Scalar(e)))'" : "'\\' + byte 0x\(String(e, radix: 16))"
                    throw error("invalid escape \(shown)", at: escapeOffset)
                }
            }
            throw error("unterminated string", at: open)
        }

        func isDigit(_ i: Int) -> Bool {
            i < bytes.count && bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9")
        }

        mutating func parseNumber() throws -> StrictJSONNumber {
            let start = pos
            let negative = bytes[pos] == UInt8(ascii: "-")
            if negative { pos += 1 }
            guard isDigit(pos) else { throw error("expected a digit", at: pos) }
            let intStart = pos
            if bytes[pos] == UInt8(ascii: "0") {
                pos += 1
                if isDigit(pos) { throw error("leading zero in a number", at: start) }
            } else {
                while isDigit(pos) { pos += 1 }
            }
            let intEnd = pos
            var integer = true
            if pos < bytes.count && bytes[pos] == UInt8(ascii: ".") {
                integer = false
                pos += 1
                guard isDigit(pos) else { throw error("expected a digit after '.'") }
                while isDigit(pos) { pos += 1 }
            }
            if pos < bytes.count && (bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E")) {
                integer = false
                pos += 1
                if pos < bytes.count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) {
                    pos += 1
                }
                guard isDigit(pos) else { throw error("expected a digit in the exponent") }
                while isDigit(pos) { pos += 1 }
            }
            var value: Int? = nil
            if integer {
                var v = 0
                var fits = true
                for i in intStart..<intEnd {
                    let d = Int(bytes[i] - UInt8(ascii: "0"))
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (s, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
                    if o1 || o2 {
                        fits = false
                        break
                    }
                    v = s
                }
                if fits { value = v }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
            return StrictJSONNumber(text: text, isIntegerLiteral: integer, isNegative: negative, intValue: value)
        }
    }
}
