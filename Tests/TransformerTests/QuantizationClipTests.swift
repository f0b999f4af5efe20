// The int8 quantizer's scale search: each block's scale is the clip ratio of its absmax with
// the least squared error, checked against a naive oracle (every ratio tried in Double), never
// worse than absmax, better on Gaussian and Laplace rows taken together, and every element
// within half a step or clipped to ±127 steps.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("int8 quantizer: minimum-error clip of each scale")
struct QuantizationClipTests {
    /// Rows of Gaussian or Laplace values (alternating), some with one outlier of 5 to 40
    /// times the spread.
    func rows(n: Int, k: Int, seed: UInt64) -> Tensor {
        var rng = SeededRNG(seed: seed)
        var values: [Float] = []
        for j in 0..<n {
            var row = (0..<k).map { _ -> Float in
                let u = Float.random(in: Float.ulpOfOne..<1, using: &rng), v = Float.random(in: 0..<1, using: &rng)
                if j % 2 == 0 { return (-2 * log(u)).squareRoot() * cos(2 * .pi * v) * 0.05 }  // Gaussian
                return (v < 0.5 ? 1 : -1) * -log(u) * 0.05  // Laplace
            }
            if j % 3 == 0 { row[Int.random(in: 0..<k, using: &rng)] = Float.random(in: 0.25...2, using: &rng) * (j % 6 == 0 ? 1 : -1) }
            values += row
        }
        return Tensor(shape: [n, k], scalars: values)
    }

    /// The naive oracle's level of `w` with scale `s`: `round(w / s)` (float32 quotient, to
    /// nearest even) clamped to ±127.
    func naiveLevel(_ w: Float, _ s: Float) -> Float {
        s == 0 ? 0 : max(-127, min(127, (w / s).rounded(.toNearestOrEven)))
    }

    /// The naive oracle: the squared error of `block` quantized with scale `s`, in Double.
    func naiveError(_ block: ArraySlice<Float>, _ s: Float) -> Double {
        block.reduce(0.0) { e, w in
            let d = Double(w) - Double(s) * Double(naiveLevel(w, s))
            return e + d * d
        }
    }

    /// The naive oracle's stored scale for `amax * ratio / 127`.
    func naiveScale(_ amax: Float, _ ratio: Float, f16: Bool) -> Float {
        let s = amax * ratio / 127
        guard f16 else { return s }
        let h = KernelOracle.float16(bits: float16Bits(s))
        return h == 0 && amax > 0 ? KernelOracle.float16(bits: 1) : h
    }

    @Test("each block's error is the least over the clip ratios, never above absmax's; elements within half a step or clipped", arguments: Int8Scheme.allCases)
    func minimumError(_ scheme: Int8Scheme) throws {
        let (n, k) = (24, 384)
        let w = rows(n: n, k: k, seed: 7 + UInt64(scheme.group))
        let ws = w.scalars
        for f16 in [false, true] {
            let q = try QuantizedWeight.quantize(w, scheme: scheme, scalesF16: f16)
            let deq = q.dequantized().scalars
            let span = scheme == .channel ? k : 32
            var totalGot = 0.0, totalAbsmax = 0.0, clipped = 0
            for j in 0..<n {
                for g in 0..<scheme.scalesPerRow(k) {
                    let range = (j * k + g * span)..<(j * k + min(k, (g + 1) * span))
                    let block = ws[range]
                    let amax = block.map { abs($0) }.max()!
                    let absmaxError = naiveError(block, naiveScale(amax, 1, f16: f16))
                    let oracleBest = stride(from: 100, through: 50, by: -1).map { naiveError(block, naiveScale(amax, Float($0) / 100, f16: f16)) }.min()!
                    let s = q.scale(j, g)
                    // The stored values are the oracle's levels for the chosen scale.
                    #expect(zip(block, deq[range]).allSatisfy { $1 == s * naiveLevel($0, s) }, "row \(j) group \(g)")
                    let got = naiveError(block, s)
                    #expect(got <= absmaxError, "row \(j) group \(g): \(got) > absmax \(absmaxError)")
                    #expect(got == oracleBest, "row \(j) group \(g): \(got) vs oracle \(oracleBest)")
                    totalGot += got
                    totalAbsmax += absmaxError
                    if s < naiveScale(amax, 1, f16: f16) { clipped += 1 }
                    for x in block {
                        let level = naiveLevel(x, s)
                        if abs(Double(x)) <= 127 * Double(s) {
                            #expect(abs(Double(x) - Double(s) * Double(level)) <= Double(s) * 0.5 * (1 + 1e-6), "row \(j): \(x), step \(s)")
                        } else {
                            #expect(level == (x < 0 ? -127 : 127), "row \(j): \(x) beyond 127 steps -> \(level), step \(s)")
                        }
                    }
                }
            }
            // The search pays on these rows (a little: with 255 levels the rounding noise is
            // small, so clipping pays only for the last few percent of the range), and some
            // blocks take a scale below absmax's.
            #expect(totalGot < totalAbsmax, "f16 \(f16): \(totalGot) vs absmax \(totalAbsmax)")
            #expect(clipped > 0, "f16 \(f16): no block clipped")
        }
    }

    @Test("all-zero, tiny and two-valued blocks keep their values")
    func edgeBlocks() throws {
        let w = Tensor(shape: [3, 4], scalars: [0, 0, 0, 0, 0, 1e-30, 0, 0, 2, -2, 2, -2])
        for scheme in Int8Scheme.allCases {
            let q = try QuantizedWeight.quantize(w, scheme: scheme, scalesF16: false)
            let d = q.dequantized().scalars
            #expect(Array(d[0..<4]) == [0, 0, 0, 0] && q.scale(0, 0) == 0)
            #expect(abs(d[5] - 1e-30) <= 1e-30 / 254 && d[4] == 0)
            #expect(zip(d[8..<12], [2, -2, 2, -2] as [Float]).allSatisfy { abs($0 - $1) <= 1e-6 }, "\(scheme): \(d)")
        }
    }

    @Test("level(w, s) is round-to-nearest-even of w / s clamped to ±127: ties, halves near the clamp, huge, tiny and NaN quotients")
    func levelRounding() {
        var rng = SeededRNG(seed: 99)
        var cases: [(Float, Float)] = []
        for t in stride(from: Float(-130), through: 130, by: 0.5) { cases.append((t, 1)) }  // every tie up to the clamp
        for t: Float in [126.49, 126.5, 126.51, 127.49, 127.5, 128, 128.5, 1e7, 4_194_304.5, 8_388_609, 1e30, .infinity] {
            cases += [(t, 1), (-t, 1)]
        }
        cases += [(1, .leastNonzeroMagnitude), (-1, .leastNonzeroMagnitude), (1e-45, 3), (.nan, 1), (0.3, 0), (-0.3, 1)]
        for _ in 0..<20_000 {
            let w = Float.random(in: -3...3, using: &rng), s = Float.random(in: 1e-4...0.05, using: &rng)
            cases.append((w, s))
        }
        var bad = 0
        for (w, s) in cases {
            let expected: Float = (w / s).isNaN ? 0 : naiveLevel(w, s)
            if QuantizedWeight.level(w, s) != expected {
                bad += 1
                if bad <= 5 { Issue.record("level(\(w), \(s)) = \(QuantizedWeight.level(w, s)), expected \(expected)") }
            }
        }
        #expect(bad == 0)
    }
}
