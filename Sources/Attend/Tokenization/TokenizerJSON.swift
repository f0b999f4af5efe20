// A strict JSON reader (RFC 8259) for tokenizer files that keeps every string as its exact
// UTF-8 bytes.
//
// Why not `StrictJSON` (Checkpoints/) or Foundation: both turn keys into Swift `String`s, and
// two canonically equivalent strings ("é" as U+00E9 and as "e" + U+0301) are equal Swift
// Strings. A vocabulary may hold both as different tokens with different ids; a reader that
// compares keys as Strings would merge them (or, in StrictJSON, reject the file as having a
// duplicate key). Here strings are byte arrays, objects keep their members in document order,
// and duplicate keys are byte-identical keys. Nesting depth is bounded; errors carry the byte
// offset. Cost: O(bytes) time, O(values) memory.

/// A JSON value whose strings are raw UTF-8 bytes (escapes decoded).
indirect enum ByteJSON {
    case null
    case bool(Bool)
    /// The literal text of a number (checked against the RFC grammar).
    case number([UInt8])
    case string([UInt8])
    case array([ByteJSON])
    /// Members in document order; keys are unique byte strings.
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
        var i = 0
        let negative = text.first == UInt8(ascii: "-")
        if negative { i = 1 }
        guard i < text.count else { return nil }
        var v = 0
        while i < text.count {
            let c = text[i]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(Int(c - 0x30)) : m.addingReportingOverflow(Int(c - 0x30))
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        return v
    }
}

/// Where and why a tokenizer JSON file could not be parsed.
struct ByteJSONError: Error {
    let offset: Int
    let message: String
}

enum ByteJSONParser {
    /// Nesting limit (tokenizer.json needs about 6).
    static let maxDepth = 128

    /// Parses one JSON document occupying all of `bytes` (surrounding whitespace allowed).
    /// Invalid UTF-8 anywhere is an error.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> ByteJSON {
        if let bad = StrictJSON.firstInvalidUTF8(bytes) {
            throw ByteJSONError(offset: bad, message: "not valid UTF-8")
        }
        var p = Parser(bytes: bytes)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        if p.pos != bytes.count { throw p.error("unexpected characters after the JSON value") }
        return v
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var pos = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        func error(_ message: String, at offset: Int? = nil) -> ByteJSONError {
            ByteJSONError(offset: offset ?? pos, message: message)
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

        func found() -> String {
            if atEnd { return "end of input" }
            let b = bytes[pos]
            if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
            return "byte 0x" + String(b, radix: 16)
        }

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
            if depth > ByteJSONParser.maxDepth { throw error("nesting deeper than \(ByteJSONParser.maxDepth) levels") }
            pos += 1
            var members: [(key: [UInt8], value: ByteJSON)] = []
            var seen = Set<[UInt8]>()
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
                if !seen.insert(key).inserted {
                    throw error("duplicate key \(quotedBytes(key))", at: keyOffset)
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
            if depth > ByteJSONParser.maxDepth { throw error("nesting deeper than \(ByteJSONParser.maxDepth) levels") }
            pos += 1
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

/// Bytes shown as a quoted string for an error message (control characters escaped, invalid
/// UTF-8 replaced), at most 60 characters.
func quotedBytes(_ b: [UInt8]) -> String {
    let s = String(decoding: b.prefix(240), as: UTF8.self)
    let short = s.count > 60 ? String(s.prefix(60)) + "..." : s
    return SafeTensorsError.quoted(short)
}
