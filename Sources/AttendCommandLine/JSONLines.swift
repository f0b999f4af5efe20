// The JSON-lines output of `attend --json` and `bench --json`: one JSON object per line, keys
// in the order given.
//
// Strings: `"` and `\` are escaped, every control character U+0000-U+001F is written as
// \b \t \n \f \r or \u00XX, and DEL, U+2028 and U+2029 as \u escapes (so a line never breaks
// and stays valid JavaScript too); everything else is UTF-8 as is.
// Numbers: a non-finite Float or Double (NaN, +-infinity) is written as `null`, since JSON has
// no such numbers; finite ones as the shortest decimal that reads back as the same value.
import Foundation

/// A value of a JSON output line.
package enum JSONValue: Sendable, Equatable {
    case string(String)
    case ints([Int])
    case strings([String])
    /// Floats; non-finite ones as null.
    case floats([Float])
    /// Doubles; non-finite ones as null.
    case doubles([Double])
    case int(Int)
    /// A Float; non-finite as null.
    case float(Float)
    /// A Double; non-finite as null.
    case double(Double)
    case bool(Bool)
    case null
    /// Text that is already JSON (a nested list or object).
    case raw(String)

    /// The value as JSON text.
    package var json: String {
        switch self {
        case .string(let s): return jsonString(s)
        case .ints(let xs): return "[" + xs.map(String.init).joined(separator: ", ") + "]"
        case .strings(let xs): return "[" + xs.map(jsonString).joined(separator: ", ") + "]"
        case .floats(let xs): return "[" + xs.map { JSONValue.float($0).json }.joined(separator: ", ") + "]"
        case .doubles(let xs): return "[" + xs.map { JSONValue.double($0).json }.joined(separator: ", ") + "]"
        case .int(let n): return String(n)
        case .float(let x): return x.isFinite ? formatFloat(x) : "null"
        case .double(let x): return x.isFinite ? "\(x)" : "null"
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .raw(let json): return json
        }
    }
}

/// One JSON object on one line (no line break in it), keys in the given order.
package func jsonObject(_ fields: [(String, JSONValue)]) -> String {
    "{" + fields.map { jsonString($0.0) + ": " + $0.1.json }.joined(separator: ", ") + "}"
}

/// Writes `jsonObject(fields)` and a line break to standard output at once (unbuffered, so
/// lines appear as they are made and never interleave with another writer's).
package func writeJSONLine(_ fields: [(String, JSONValue)]) {
    FileHandle.standardOutput.write(Data((jsonObject(fields) + "\n").utf8))
}

/// A JSON string literal: quotes, backslashes and every control character escaped;
/// everything else as UTF-8.
package func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if u.value < 0x20 || u.value == 0x7F || u.value == 0x2028 || u.value == 0x2029 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

/// The shortest decimal that reads back as the same Float (Swift's `description`), e.g.
/// `0.0123`, `-1e-05`: a valid JSON number for a finite `x`.
package func formatFloat(_ x: Float) -> String { "\(x)" }
