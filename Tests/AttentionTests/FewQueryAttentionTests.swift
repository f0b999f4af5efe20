// The decoding path of native attention (one or two queries per head: matrix-vector products
// through the GEMV and softmax kernels instead of the fused kernel's 16-wide panels) against
// the Swift SIMD backend (the Double oracle), through the public entry point: causal limits at
// a cache offset, key padding (including a row with every key padded), T5 and ALiBi biases,
// several key lengths, both layouts, 1 and 2 threads.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Few-query (decoding) attention")
struct FewQueryAttentionTests {
    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededRNG(seed: seed)
        return Tensor(shape: shape, generating: { _ in rng.nextFloat(in: -1...1) })
    }

    @Test("matches the Swift SIMD oracle for 1 and 2 queries with masks and biases", arguments: KernelVariant.supported)
    func oracle(_ variant: KernelVariant) throws {
        let heads = 3, batch = 2
        var worst: Float = 0
        var cases = 0
        for seqQ in [1, 2] {
            for seqK in [1, 5, 17, 130] {
                for d in [1, 8, 13] {
                    for layout in [AttentionLayout.bshd, .bhsd] {
                        let qShape = layout == .bshd ? [batch, seqQ, heads, d] : [batch, heads, seqQ, d]
                        let kShape = layout == .bshd ? [batch, seqK, heads, d] : [batch, heads, seqK, d]
                        let seed = UInt64(seqQ * 10_000 + seqK * 100 + d)
                        let q = Self.random(qShape, seed: seed), k = Self.random(kShape, seed: seed + 1), v = Self.random(kShape, seed: seed + 2)
                        var padding = [[Bool]](repeating: [Bool](repeating: true, count: seqK), count: batch)
                        for j in 0..<seqK where j % 3 == 2 { padding[0][j] = false }
                        padding[1] = [Bool](repeating: false, count: seqK)  // every key padded: zeros
                        let masks = [
                            AttentionMask.none, AttentionMask(keyPadding: padding),
                            AttentionMask(causal: true, queryStart: max(0, seqK - seqQ)),
                            AttentionMask(causal: true, queryStart: seqK / 2),
                        ]
                        let table = Self.random([8, heads], seed: seed + 3)
                        let biases: [AttentionBias] = [
                            .none, .t5(table: table, bidirectional: false, maxDistance: 16),
                            .alibi(slopes: alibiSlopes(heads: heads), symmetric: true),
                        ]
                        for mask in masks {
                            for bias in biases {
                                let expected = scaledDotProductAttention(
                                    query: q, key: k, value: v, mask: mask, bias: bias, layout: layout,
                                    compute: try Compute(backend: .swiftSIMD, threads: 1))
                                for threads in [1, 2] {
                                    let got = scaledDotProductAttention(
                                        query: q, key: k, value: v, mask: mask, bias: bias, layout: layout,
                                        compute: try Compute(backend: .native(variant), threads: threads))
                                    let e = zip(got.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 0
                                    worst = max(worst, e)
                                    cases += 1
                                    #expect(
                                        e <= 2e-5, "\(variant) seqQ \(seqQ) seqK \(seqK) d \(d) \(layout) \(mask) \(bias) threads \(threads): \(e)")
                                }
                            }
                        }
                    }
                }
            }
        }
        print("few-query attention \(variant): \(cases) cases, worst max abs error \(worst)")
    }

    /// Cross-attention while decoding: one or two queries per source against an encoder memory
    /// whose keys and values were packed for the fused kernel. The few-query path reads the
    /// stored rows in place, head by head (the packed copy is for many queries); both must equal
    /// the Swift SIMD backend (position-major rows) on the same weights, with and without memory
    /// padding, beams grouped per source.
    @Test("cross-attention of 1, 2 and 5 queries over a packed, head-major memory matches the oracle", arguments: KernelVariant.supported)
    func packedMemory(_ variant: KernelVariant) throws {
        let d = 24, heads = 3, sources = 2
        func linear(_ o: Int, _ i: Int, _ seed: UInt64) -> Linear {
            Linear(weight: Self.random([o, i], seed: seed) * 0.3, bias: Self.random([o], seed: seed + 1) * 0.1)
        }
        let mha = MultiHeadAttention(heads: heads, inProjection: linear(3 * d, d, 11), outProjection: linear(d, d, 13))
        var worst: Float = 0
        for seqK in [1, 9, 70] {
            let memory = Self.random([sources, seqK, d], seed: UInt64(seqK))
            var padding = [[Bool]](repeating: [Bool](repeating: true, count: seqK), count: sources)
            for j in 0..<seqK where j % 4 == 1 { padding[1][j] = false }
            for seqQ in [1, 2, 5] {  // 5: the fused kernel over the packed copy
                let x = Self.random([sources, seqQ, d], seed: UInt64(100 + seqK * 3 + seqQ))
                for mask in [AttentionMask.none, AttentionMask(keyPadding: padding)] {
                    let oracle = try Compute(backend: .swiftSIMD, threads: 1)
                    let expected = mha(x, keysValues: mha.keysValues(of: memory, compute: oracle), mask: mask, compute: oracle)
                    for threads in [1, 2] {
                        let c = try Compute(backend: .native(variant), threads: threads)
                        let kv = mha.keysValues(of: memory, compute: c)
                        #expect(kv.packer != nil && kv.packed == nil, "the native memory keys/values are packed on demand, not yet")
                        #expect(kv.layouts(headDim: d / heads).k.rowStride == d / heads, "the native memory is stored head by head")
                        let stored = kv.bytes
                        #expect(stored == sources * seqK * 2 * d * 4, "the float32 keys and values alone")
                        let got = mha(x, keysValues: kv, mask: mask, compute: c)
                        // One or two queries read the stored rows in place; more pack the copy for the fused kernel once.
                        #expect((kv.packed != nil) == (seqQ > fewQueryAttentionLimit), "seqQ \(seqQ): packed \(kv.packed != nil)")
                        #expect((kv.bytes > stored) == (seqQ > fewQueryAttentionLimit), "seqQ \(seqQ): \(kv.bytes) bytes held")
                        let e = zip(got.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? .infinity
                        worst = max(worst, e)
                        #expect(e <= 2e-5, "\(variant) seqK \(seqK) seqQ \(seqQ) \(mask) threads \(threads): \(e)")
                    }
                }
            }
        }
        print("few-query cross-attention over a packed memory \(variant): worst max abs error \(worst)")
    }
}
