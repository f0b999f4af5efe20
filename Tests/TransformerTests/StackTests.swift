// Stacks beyond the golden cases: a decoder-only (GPT-style) pre-LN stack with an ALiBi bias
// and gated GELU, run teacher-forced and incrementally through its KV cache.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Stacks")
struct StackTests {
    static func randomLayer(_ d: Int, heads: Int, ff: Int, cross: Bool, _ rng: inout SeededRNG) -> DecoderLayer {
        let s = 1 / Float(d).squareRoot()
        func linear(_ i: Int, _ o: Int) -> Linear { Linear(weight: randomTensor([o, i], &rng, scale: s), bias: randomTensor([o], &rng, scale: s)) }
        func norm() -> Norm { .rms(RMSNorm(weight: randomTensor([d], &rng, scale: 0.5) + Tensor(repeating: 1, shape: [d]))) }
        func attention() -> MultiHeadAttention {
            MultiHeadAttention(heads: heads, inProjection: linear(d, 3 * d), outProjection: linear(d, d))
        }
        return DecoderLayer(
            selfAttention: attention(), selfAttentionNorm: norm(),
            crossAttention: cross ? attention() : nil, crossAttentionNorm: cross ? norm() : nil,
            feedForward: FeedForward(up: linear(d, ff), down: linear(ff, d), activation: .geluTanh, gate: linear(d, ff)),
            feedForwardNorm: norm(), placement: .pre)
    }

    @Test("decoder-only stack with ALiBi: incremental steps (1, then 3, then 1 at a time) equal teacher forcing")
    func decoderOnlyIncremental() {
        var rng = SeededRNG(seed: caseSeed(31))
        let (d, heads, rows, t) = (48, 6, 3, 13)
        let stack = TransformerDecoder(
            layers: (0..<3).map { _ in Self.randomLayer(d, heads: heads, ff: 80, cross: false, &rng) },
            finalNorm: .layer(LayerNorm(weight: Tensor(repeating: 1, shape: [d]), bias: nil)),
            selfAttentionBias: .alibi(slopes: alibiSlopes(heads: heads), symmetric: false))
        let x = randomTensor([rows, t, d], &rng)
        let full = stack(x, memory: nil).scalars  // [rows, t, d]
        #expect(full.allSatisfy(\.isFinite) && full.contains { $0 != 0 })
        let unbiased = TransformerDecoder(layers: stack.layers, finalNorm: stack.finalNorm)
        #expect(deviation(unbiased(x, memory: nil), Tensor(shape: [rows, t, d], scalars: full)).maxAbs > 1e-2, "the ALiBi bias should matter")
        var cache = stack.makeCache(memory: nil, rows: rows, capacity: 2)
        var position = 0
        var worst = 0.0
        for steps in [1, 3] + Array(repeating: 1, count: t - 4) {
            var chunk: [Float] = []
            for r in 0..<rows { chunk += x.scalars[((r * t + position) * d)..<((r * t + position + steps) * d)] }
            let out = stack(Tensor(shape: [rows, steps, d], scalars: chunk), cache: &cache).scalars
            for r in 0..<rows {
                for i in 0..<(steps * d) {
                    let e = abs(Double(out[r * steps * d + i]) - Double(full[(r * t + position) * d + i]))
                    worst = e.isNaN ? .infinity : max(worst, e)
                }
            }
            position += steps
        }
        #expect(cache.length == t && cache.rows == rows)
        print("decoder-only ALiBi stack, incremental vs teacher-forced: max abs \(worst)")
        #expect(worst <= 1e-5)
    }
}
