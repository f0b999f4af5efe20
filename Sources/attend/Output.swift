import Foundation

/// A value of a JSON output line.
enum JSONValue {
    case string(String)
    case ints([Int])
    case strings([String])
    case floats([Float])
    case int(Int)
    case float(Float)
    case double(Double)
    /// Text that is already JSON (a nested list or object).
    case raw(String)
}

/// One JSON object on one line, keys in the given order.
func jsonObject(_ fields: [(String, JSONValue)]) -> String {
    var out = "{"
    for (i, (key, value)) in fields.enumerated() {
        if i > 0 { out += ", " }
        out += jsonString(key) + ": "
        switch value {
        case .string(let s): out += jsonString(s)
        case .ints(let xs): out += "[" + xs.map(String.init).joined(separator: ", ") + "]"
        case .strings(let xs): out += "[" + xs.map(jsonString).joined(separator: ", ") + "]"
        case .floats(let xs): out += "[" + xs.map { $0.isFinite ? formatFloat($0) : "null" }.joined(separator: ", ") + "]"
        case .int(let n): out += String(n)
        case .float(let x): out += x.isFinite ? formatFloat(x) : "null"
        case .double(let x): out += x.isFinite ? "\(x)" : "null"
        case .raw(let json): out += json
        }
    }
    return out + "}"
}

/// A JSON string literal: quotes, backslashes and control characters escaped; everything
/// else as UTF-8.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 || u.value == 0x7F || u.value == 0x2028 || u.value == 0x2029 {
                out += String(format: "\\u%04x", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

/// The shortest decimal that reads back as the same Float (Swift's `description`), e.g.
/// `0.0123`, `-1e-05`: valid JSON numbers.
func formatFloat(_ x: Float) -> String { "\(x)" }

/// A text on one line for the plain output: JSON-quoted, so tabs and newlines stay visible.
func quotedLine(_ text: String) -> String { jsonString(text) }

/// The cosine matrix as a table: a legend of the texts, then one row per text.
func printSimilarityTable(texts: [String], values: [Float]) {
    let n = texts.count
    for (i, t) in texts.enumerated() { print("[\(i + 1)] " + quotedLine(t)) }
    guard n > 0 else { return }
    let label = { (i: Int) in "[\(i + 1)]" }
    let width = max(9, label(n - 1).count + 2)
    func cell(_ s: String) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
    print("")
    print(cell("") + (0..<n).map { cell(label($0)) }.joined())
    for i in 0..<n {
        print(cell(label(i)) + (0..<n).map { cell(String(format: "%.4f", values[i * n + $0])) }.joined())
    }
}
