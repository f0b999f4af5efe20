// RotaryEmbedding (RoPE, Su et al. 2021) against its definition as a complex rotation, in
// Double: the pair (x_i, x_{i+h}) is the complex number x_i + i x_{i+h} multiplied by
// e^{i p θ_i}, θ_i = base^(-2i/d) (Hugging Face's rotate_half layout), and the property the
// paper wants from it: q_p · k_p' depends on p - p' only.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Rotary position embedding")
struct RotaryEmbeddingTests {
    @Test("equals the complex rotation of each (i, i + d/2) pair, both layouts, with an offset", arguments: [AttentionLayout.bshd, .bhsd])
    func complexRotation(_ layout: AttentionLayout) {
        var rng = SeededRNG(seed: 7)
        let (b, s, h, d) = (2, 5, 3, 8)
        let shape = layout == .bshd ? [b, s, h, d] : [b, h, s, d]
        let x = Tensor(shape: shape, scalars: rng.floats(b * s * h * d))
        let offset = 11
        let y = RotaryEmbedding(headDim: d, base: 10000)(x, layout: layout, positionOffset: offset)
        for bi in 0..<b {
            for hi in 0..<h {
                for p in 0..<s {
                    for i in 0..<(d / 2) {
                        let idx = { (c: Int) in layout == .bshd ? [bi, p, hi, c] : [bi, hi, p, c] }
                        let theta = Double(offset + p) * pow(10000, -Double(2 * i) / Double(d))
                        let (re, im) = (
                            Double(x[idx(i)[0], idx(i)[1], idx(i)[2], idx(i)[3]]),
                            Double(x[idx(i + d / 2)[0], idx(i + d / 2)[1], idx(i + d / 2)[2], idx(i + d / 2)[3]])
                        )
                        let want = (re * cos(theta) - im * sin(theta), re * sin(theta) + im * cos(theta))
                        let got = (
                            Double(y[idx(i)[0], idx(i)[1], idx(i)[2], idx(i)[3]]),
                            Double(y[idx(i + d / 2)[0], idx(i + d / 2)[1], idx(i + d / 2)[2], idx(i + d / 2)[3]])
                        )
                        #expect(
                            abs(got.0 - want.0) <= 1e-5 && abs(got.1 - want.1) <= 1e-5,
                            "\(layout) b \(bi) h \(hi) p \(p) i \(i): \(got) vs \(want)")
                    }
                }
            }
        }
    }

    @Test("q·k after rotation depends only on the relative position")
    func relativeOnly() {
        var rng = SeededRNG(seed: 8)
        let d = 16
        let q = Tensor(shape: [1, 1, 1, d], scalars: rng.floats(d)), k = Tensor(shape: [1, 1, 1, d], scalars: rng.floats(d))
        let rope = RotaryEmbedding(headDim: d)
        func dot(_ pq: Int, _ pk: Int) -> Double {
            let a = rope(q, positionOffset: pq).scalars, b = rope(k, positionOffset: pk).scalars
            return zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        for (pq, pk) in [(3, 1), (10, 8), (102, 100)] { #expect(abs(dot(pq, pk) - dot(2, 0)) <= 1e-4, "positions \(pq), \(pk)") }
        #expect(abs(dot(5, 5) - dot(0, 0)) <= 1e-4)
        #expect(abs(dot(4, 0) - dot(2, 0)) > 1e-3, "a different distance gives a different score")
    }
}
