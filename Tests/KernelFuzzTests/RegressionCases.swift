// Fuzz cases that once failed (or that pin down a tricky corner), replayed by `swift test`.
// When `kernel-fuzz` reports a mismatch, add its (kernel, variant, seed, case) here: the case
// is regenerated from those four values alone. Cases for variants this CPU cannot run are
// skipped (they run on the machines that can).
struct RegressionCase: Sendable, CustomStringConvertible {
    let kernel: String
    let variant: String
    let seed: UInt64
    let caseIndex: UInt64
    /// Why the case is here.
    let note: String

    var description: String { "\(kernel) on \(variant), seed \(seed) case \(caseIndex)" }
}

let regressionCases: [RegressionCase] = [
    // No kernel mismatch has been found yet (see the 10-minute run in the final report of
    // issue 7). Add failing cases here as `RegressionCase(kernel: "gemm", variant: "avx2",
    // seed: 1, caseIndex: 42, note: "what was wrong")`.
]
