import AttendCommandLine
import Foundation

// The JSON lines (`JSONValue`, `jsonObject`, `jsonString`, `formatFloat`) are the shared
// writer of attend and bench: Sources/AttendCommandLine/JSONLines.swift.

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
