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

let regressionCases: [RegressionCase] =
    [
        // No kernel mismatch has been found so far. Add failing cases here as
        // `RegressionCase(kernel: "gemm", variant: "avx2", seed: 1, caseIndex: 42, note: "what was wrong")`.
        // These failed while the fuzzer's own checks were incomplete (the kernels were right);
        // they stay as pins of those corners on every table:
    ]
    + ["scalar", "avx2", "avx512", "neon", "avx512-layout"].flatMap { v in
        [
            RegressionCase(
                kernel: "softmax", variant: v, seed: 11, caseIndex: 14898,
                note: "masked logits of magnitude ~100: the other terms' rounding moves the denominator"),
            RegressionCase(
                kernel: "norm", variant: v, seed: 12, caseIndex: 53508,
                note: "subnormal row: the float mean rounds to 0 (absolute subnormal rounding)"),
            RegressionCase(
                kernel: "cross-entropy", variant: v, seed: 7, caseIndex: 70,
                note:
                    "logits of magnitude 1e4: the loss lies on a float midpoint (log s ~ 1e-9 lost in the float exp-sum); kernel and oracle round to neighbours, each within half an ulp of the exact loss"
            ),
            RegressionCase(
                kernel: "gemv-t", variant: v, seed: 20261203, caseIndex: 143,
                note: "inf - inf in a column: the NaN's sign differs with the block (columns alone vs all); NaN sign is unspecified"),
            RegressionCase(
                kernel: "attn-backward", variant: v, seed: 833971547, caseIndex: 4244,
                note: "dropout 0.9 on one key: dV = Z P dO with Z = 10, the bound lacked Z (on AVX2 tables: seq 1, head size 19)"),
        ]
    }
