// Fixtures and comparisons shared by the TransformerTests suites.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// A fixture of this target, e.g. `fixture("seq2seq.io")` for Fixtures/seq2seq.io.safetensors.
func fixture(_ name: String, folder: String? = nil) throws -> SafeTensorsFile {
    let sub = folder.map { "Fixtures/\($0)" } ?? "Fixtures"
    let url = try #require(
        Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: sub),
        "fixture Fixtures/\(name).safetensors is missing from the test bundle")
    return try SafeTensorsFile(contentsOf: url)
}

/// How far `got` is from `expected`: the largest absolute difference, and that divided by the
/// largest |expected| (a normwise relative error, meaningful where single elements are near 0).
struct Deviation: CustomStringConvertible {
    var maxAbs: Double
    var relative: Double
    var worstIndex: Int
    var description: String { String(format: "max abs %.3g, relative %.3g (index %d)", maxAbs, relative, worstIndex) }
}

func deviation(_ got: Tensor, _ expected: Tensor) -> Deviation {
    precondition(got.shape == expected.shape, "deviation: shapes \(got.shape) and \(expected.shape) differ")
    let g = got.scalars, e = expected.scalars
    var worst = 0.0, at = 0, scale = 0.0
    for i in e.indices {
        scale = max(scale, Double(e[i].magnitude))
        let d = abs(Double(g[i]) - Double(e[i]))
        if !(d <= worst) { worst = d.isNaN ? .infinity : d; at = i }
    }
    return Deviation(maxAbs: worst, relative: worst / max(scale, 1e-30), worstIndex: at)
}

/// Per-row booleans from a 0/1 mask tensor `[rows, n]` read as integers, mapped by `f`.
func boolRows(_ values: [Int], rows: Int, _ f: (Int) -> Bool) -> [[Bool]] {
    let n = values.count / rows
    return (0..<rows).map { r in (0..<n).map { f(values[r * n + $0]) } }
}

/// Row r of an id tensor `[rows, n]` (integers read from a fixture).
func idRows(_ values: [Int], rows: Int) -> [[Int]] {
    let n = values.count / rows
    return (0..<rows).map { Array(values[($0 * n)..<(($0 + 1) * n)]) }
}

/// A uniform random tensor with a seeded generator.
func randomTensor(_ shape: [Int], _ rng: inout SeededRNG, scale: Float = 1) -> Tensor {
    Tensor(shape: shape, generating: { _ in rng.nextFloat(in: -1...1) * scale })
}

/// Records an issue unless `body` throws ``GenerationError/invalidInput(_:)`` with a message
/// containing `words`; `what` names the case in the issue.
func expectInvalidInput(
    _ what: String, _ words: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("\(what): no error", sourceLocation: sourceLocation)
    } catch GenerationError.invalidInput(let message) {
        #expect(message.contains(words), "\(what): \(message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(what): \(error)", sourceLocation: sourceLocation)
    }
}
