// A small, strict JSON parser (RFC 8259): the one reader of every JSON file the library
// opens — safetensors headers and checkpoint index files (Checkpoints/), tokenizer.json,
// tokenizer_config.json and model configurations (Tokenization/TokenizerJSON.swift).
//
// Why not Foundation's JSONSerialization: it keeps one of two duplicate keys silently (a header
// naming a tensor twice must be rejected), it cannot say where the input went wrong, it does
// not bound nesting, and it turns strings into Swift Strings, which compare up to Unicode
// canonical equivalence (a vocabulary may hold "é" as U+00E9 and as "e" + U+0301, two tokens
// with two ids). This parser:
// - reads bytes that are already known to be valid UTF-8 (`firstInvalidUTF8` checks first);
// - keeps every string as its exact UTF-8 bytes (escapes decoded) and objects' members in
//   document order (`ByteJSON`); `parse` then gives the String-keyed `StrictJSONValue` view
//   the checkpoint readers use;
// - rejects duplicate keys in any object, compared as chosen (`DuplicateKeys`): as Swift
//   Strings for safetensors headers and index files (two keys Swift would treat as one
//   dictionary key are rejected), as bytes for tokenizer files;
// - bounds nesting depth (`maxDepth`, 128 like serde_json), so recursion stays shallow;
// - accepts exactly the RFC grammar: no comments, no trailing commas, no NaN, no leading zeros,
//   no unescaped control characters, no lone UTF-16 surrogates in \u escapes; whitespace is
//   space, tab, CR and LF only, and is allowed around the value (the safetensors writer pads
//   the header with spaces);
// - keeps numbers as their literal text (exact integers of any length are judged by the caller).
// Cost: O(bytes) time, O(values) memory.

/// A JSON value whose strings are raw UTF-8 bytes (escapes decoded): what the parser builds.
indirect enum ByteJSON {
    case null
    case bool(Bool)
    /// The literal text of a number (checked against the RFC grammar).
    case number([UInt8])
    case string([UInt8])
    case array([ByteJSON])
    /// Members in document order; keys are unique (as `DuplicateKeys` says).
    case object([(key: [UInt8], value: ByteJSON)])

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
    /// The number of a literal that the parser has checked against the grammar.
    init(literal: [UInt8]) {
        text = String(decoding: literal, as: UTF8.self)
        isNegative = literal.first == UInt8(ascii: "-")
        isIntegerLiteral = !literal.contains { $0 == UInt8(ascii: ".") || $0 | 0x20 == UInt8(ascii: "e") }
        intValue = isIntegerLiteral ? StrictJSON.integerValue(literal) : nil
    }

    init(text: String, isIntegerLiteral: Bool, isNegative: Bool, intValue: Int?) {
        self.text = text
        self.isIntegerLiteral = isIntegerLiteral
        self.isNegative = isNegative
        self.intValue = intValue
    }

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
    /// Nesting limit for headers, index and tokenizer files (they need 3 to 6); serde_json,
    /// which the reference implementations use, stops at 128 too.
    static let defaultMaxDepth = 128

    /// How an object's keys are compared to find duplicates.
    enum DuplicateKeys {
        /// As Swift Strings: canonically equivalent keys are duplicates (safetensors headers
        /// and index files, whose keys become `String` names).
        case equalStrings
        /// Byte for byte (tokenizer files: canonically equivalent tokens are different tokens).
        case identicalBytes
    }

    /// Parses one JSON document occupying all of `bytes` (surrounding whitespace allowed), keys
    /// compared as Strings, into the String-keyed view. `bytes` must be valid UTF-8 (check
    /// with `firstInvalidUTF8` first).
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth) throws -> StrictJSONValue {
        stringView(try parseBytes(bytes, maxDepth: maxDepth, duplicateKeys: .equalStrings))
    }

    /// Parses one JSON document occupying all of `bytes` (surrounding whitespace allowed),
    /// keeping strings as bytes. `bytes` must be valid UTF-8 (check with `firstInvalidUTF8`).
    /// Throws `StrictJSONError`.
    static func parseBytes(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth, duplicateKeys: DuplicateKeys
    ) throws -> ByteJSON {
        var p = Parser(bytes: bytes, maxDepth: maxDepth, duplicateKeys: duplicateKeys)
        p.skipWhitespace()
        let value = try p.value(depth: 0)
        p.skipWhitespace()
        if p.pos != bytes.count { throw p.error("unexpected characters after the JSON value") }
        return value
    }

    /// The String-keyed view of a parsed value (strings decoded as they are: no normalization).
    static func stringView(_ value: ByteJSON) -> StrictJSONValue {
        switch value {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let literal): return .number(StrictJSONNumber(literal: literal))
        case .string(let b): return .string(String(decoding: b, as: UTF8.self))
        case .array(let items): return .array(items.map(stringView))
        case .object(let members):
            var object = StrictJSONObject()
            for m in members { object.append(String(decoding: m.key, as: UTF8.self), stringView(m.value)) }
            return .object(object)
        }
    }

    /// The value of an integer literal (`-`? digits, as the grammar allows) when it fits in
    /// `Int`; nil for anything else (a fraction, an exponent, too many digits).
    static func integerValue(_ literal: [UInt8]) -> Int? {
        var i = 0
        let negative = literal.first == UInt8(ascii: "-")
        if negative { i = 1 }
        guard i < literal.count else { return nil }
        var v = 0
        while i < literal.count {
            let c = literal[i]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let d = Int(c - 0x30)
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        return v
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
        let duplicateKeys: DuplicateKeys
        var pos = 0

        init(bytes: UnsafeRawBufferPointer, maxDepth: Int, duplicateKeys: DuplicateKeys) {
            self.bytes = bytes
            self.maxDepth = maxDepth
            self.duplicateKeys = duplicateKeys
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
        mutating func value(depth: Int) throws -> ByteJSON {
            guard !atEnd else { throw error("unexpected end of input, expected a value") }
            switch bytes[pos] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw error("expected a value, found \(found())")
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let n = word.utf8CodeUnitCount
            guard n <= bytes.count - pos else { throw error("invalid literal") }
            for k in 0..<n where bytes[pos + k] != word.utf8Start[k] { throw error("invalid literal") }
            pos += n
        }

        mutating func object(depth: Int) throws -> ByteJSON {
            if depth > maxDepth { throw StrictJSONError(kind: .tooDeep(maxDepth), offset: pos, depth: depth) }
            pos += 1  // {
            var members: [(key: [UInt8], value: ByteJSON)] = []
            var seenBytes = Set<[UInt8]>()
            var seenStrings = Set<String>()
            skipWhitespace()
            if !atEnd && bytes[pos] == UInt8(ascii: "}") {
                pos += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard !atEnd && bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a string key, found \(found())") }
                let keyOffset = pos
                let key = try string()
                let isNew: Bool
                switch duplicateKeys {
                case .identicalBytes: isNew = seenBytes.insert(key).inserted
                case .equalStrings: isNew = seenStrings.insert(String(decoding: key, as: UTF8.self)).inserted
                }
                if !isNew {
                    throw StrictJSONError(
                        kind: .duplicateKey(String(decoding: key, as: UTF8.self)), offset: keyOffset, depth: depth)
                }
                skipWhitespace()
                guard !atEnd && bytes[pos] == UInt8(ascii: ":") else { throw error("expected ':' after a key, found \(found())") }
                pos += 1
                skipWhitespace()
                members.append((key, try value(depth: depth)))
                skipWhitespace()
                guard !atEnd else { throw error("unexpected end of input inside an object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
                throw error("expected ',' or '}' in an object, found \(found())")
            }
        }

        mutating func array(depth: Int) throws -> ByteJSON {
            if depth > maxDepth { throw StrictJSONError(kind: .tooDeep(maxDepth), offset: pos, depth: depth) }
            pos += 1  // [
            var items: [ByteJSON] = []
            skipWhitespace()
            if !atEnd && bytes[pos] == UInt8(ascii: "]") {
                pos += 1
                return .array(items)
            }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth))
                skipWhitespace()
                guard !atEnd else { throw error("unexpected end of input inside an array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                throw error("expected ',' or ']' in an array, found \(found())")
            }
        }

        mutating func hex4() throws -> UInt32 {
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

        /// A string from its opening quote; leaves `pos` after the closing quote.
        mutating func string() throws -> [UInt8] {
            let open = pos
            pos += 1
            var out: [UInt8] = []
            var runStart = pos
            while pos < bytes.count {
                let c = bytes[pos]
                if c == UInt8(ascii: "\"") {
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<pos]))
                    pos += 1
                    return out
                }
                if c < 0x20 { throw error("unescaped control character in a string") }
                if c != UInt8(ascii: "\\") {
                    pos += 1
                    continue
                }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<pos]))
                let escape = pos
                pos += 1
                guard pos < bytes.count else { break }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xDC00...0xDFFF).contains(scalar) { throw error("lone low surrogate in \\u escape", at: escape) }
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard bytes.count - pos >= 2, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw error("lone high surrogate in \\u escape", at: escape)
                        }
                        pos += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw error("high surrogate not followed by a low surrogate", at: escape)
                        }
                        scalar = 0x1_0000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    appendUTF8(scalar, to: &out)
                default:
                    // A control or non-ASCII byte is named by value: the message must stay one line.
                    let shown = e >= 0x21 && e < 0x7F ? "'\\\(Character(Unicode.Scalar(e)))'" : "'\\' + byte 0x\(String(e, radix: 16))"
                    throw error("invalid escape \(shown)", at: escape)
                }
                runStart = pos
            }
            throw error("unterminated string", at: open)
        }

        func isDigit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 }

        mutating func number() throws -> [UInt8] {
            let start = pos
            if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard isDigit(pos) else { throw error("expected a digit") }
            if bytes[pos] == UInt8(ascii: "0") {
                pos += 1
                if isDigit(pos) { throw error("leading zero in a number", at: start) }
            } else {
                while isDigit(pos) { pos += 1 }
            }
            if pos < bytes.count && bytes[pos] == UInt8(ascii: ".") {
                pos += 1
                guard isDigit(pos) else { throw error("expected a digit after '.'") }
                while isDigit(pos) { pos += 1 }
            }
            if pos < bytes.count && (bytes[pos] | 0x20) == UInt8(ascii: "e") {
                pos += 1
                if pos < bytes.count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
                guard isDigit(pos) else { throw error("expected a digit in the exponent") }
                while isDigit(pos) { pos += 1 }
            }
            return Array(UnsafeRawBufferPointer(rebasing: bytes[start..<pos]))
        }
    }
}

/// Appends the UTF-8 encoding of a scalar value (at most 0x10FFFF, not a surrogate).
func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
    switch v {
    case 0..<0x80:
        out.append(UInt8(v))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | v >> 6))
        out.append(UInt8(0x80 | v & 0x3F))
    case 0x800..<0x1_0000:
        out.append(UInt8(0xE0 | v >> 12))
        out.append(UInt8(0x80 | v >> 6 & 0x3F))
        out.append(UInt8(0x80 | v & 0x3F))
    default:
        out.append(UInt8(0xF0 | v >> 18))
        out.append(UInt8(0x80 | v >> 12 & 0x3F))
        out.append(UInt8(0x80 | v >> 6 & 0x3F))
        out.append(UInt8(0x80 | v & 0x3F))
    }
}
