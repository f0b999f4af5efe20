// Cross-attention of int8-weight attention over a bfloat16 memory (HalfKeysValues,
// halfMemoryAttention): the memory an int8 attention's keysValues(of:) keeps, the attention
// over it against a double-precision oracle on the same bfloat16 values on every backend, each
// query's result independent of how many queries share the call, padding, and the layer-level
// path the decoder takes.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("int8 attention over a bfloat16 memory")
struct HalfMemoryAttentionTests {
    func randomTensor(_ shape: [Int], seed: UInt64, range: ClosedRange<Float> = -1...1) -> Tensor {
        var rng = SeededRNG(seed: seed)
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: range, using: &rng) })
    }

    var backends: [Backend] { [.swiftSIMD] + KernelVariant.supported.map { .native($0) } }

    /// softmax(q K^T * scale + padding) V in Double over the bfloat16-rounded keys and values of
    /// `kv` `[b * s, 2 * inner]`: `[b, seqQ, inner]`.
    func oracle(query: Tensor, kv: Tensor, b: Int, s: Int, heads: Int, dh: Int, padding: [[Bool]]?, scale: Float) -> [Double] {
        let inner = heads * dh, seqQ = query.shape[1]
        let q = query.scalars, m = kv.scalars.map { Double(HalfType.bf16.float(HalfType.bfloat16Bits($0))) }
        var out = [Double](repeating: 0, count: b * seqQ * inner)
        for bi in 0..<b {
            for h in 0..<heads {
                for i in 0..<seqQ {
                    var scores = [Double](repeating: -.infinity, count: s)
                    for j in 0..<s where padding?[bi][j] ?? true {
                        var dot = 0.0
                        for c in 0..<dh { dot += Double(q[(bi * seqQ + i) * inner + h * dh + c]) * m[(bi * s + j) * 2 * inner + h * dh + c] }
                        scores[j] = dot * Double(scale)
                    }
                    let mx = scores.max()!
                    if mx == -.infinity { continue }  // no visible key: zeros
                    let e = scores.map { exp($0 - mx) }, sum = e.reduce(0, +)
                    for c in 0..<dh {
                        var acc = 0.0
                        for j in 0..<s { acc += e[j] / sum * m[(bi * s + j) * 2 * inner + inner + h * dh + c] }
                        out[(bi * seqQ + i) * inner + h * dh + c] = acc
                    }
                }
            }
        }
        return out
    }

    /// Position `i` of every batch row of `[batch, seq, width]` scalars: `[batch, 1, width]`.
    func position(_ i: Int, of x: [Float], batch: Int, seq: Int, width: Int) -> [Float] {
        var out: [Float] = []
        for b in 0..<batch { out += x[((b * seq + i) * width)..<((b * seq + i + 1) * width)] }
        return out
    }

    @Test("the attention over the bfloat16 memory matches a Double oracle on the same values on every backend; every query gets its one-query bits; padding and all-padded rows")
    func kernelPath() throws {
        let (b, s, heads, dh, seqQ) = (3, 70, 4, 16, 11)  // 11 queries: more than one group of 8
        let inner = heads * dh
        let kv = randomTensor([b * s, 2 * inner], seed: 1, range: -2...2)
        let query = randomTensor([b, seqQ, inner], seed: 2, range: -1...1)
        var padding = [[Bool]](repeating: [Bool](repeating: true, count: s), count: b)
        for j in 50..<s { padding[1][j] = false }  // row 1: 20 padded keys
        padding[2] = [Bool](repeating: false, count: s)  // row 2 sees nothing: zeros
        let half = HalfKeysValues(kv, batch: b, seqK: s, heads: heads, headDim: dh)
        #expect(half.keys.rows == b * heads * s && half.keys.cols == dh && half.valuesT.rows == b * heads * dh && half.valuesT.cols == s)
        let scale: Float = 0.3
        let expected = oracle(query: query, kv: kv, b: b, s: s, heads: heads, dh: dh, padding: padding, scale: scale)
        for backend in backends {
            for threads in [1, 3] {
                let compute = try Compute(backend: backend, threads: threads)
                var out = Tensor.zeros(query.shape)
                halfMemoryAttention(query: query, memory: half, keyPadding: padding, scale: scale, into: &out, compute: compute)
                let got = out.scalars
                // float32 sums of 16 and 70 terms of magnitude <= 2 * 1 * 16 * 0.3 and <= 2.
                let worst = zip(got, expected).map { abs(Double($0) - $1) }.max()!
                #expect(worst <= 2e-5, "\(backend), \(threads) threads: worst difference \(worst)")
                #expect(got[(2 * seqQ * inner)...].allSatisfy { $0 == 0 }, "\(backend): a row that sees no key gives zeros")
                // One query at a time (decoding) gives the same bits as all at once (teacher forcing).
                let qs = query.scalars
                for i in [0, 7, 8, 10] {
                    let one = Tensor(shape: [b, 1, inner], scalars: position(i, of: qs, batch: b, seq: seqQ, width: inner))
                    var single = Tensor.zeros([b, 1, inner])
                    halfMemoryAttention(query: one, memory: half, keyPadding: padding, scale: scale, into: &single, compute: compute)
                    let want = position(i, of: got, batch: b, seq: seqQ, width: inner)
                    #expect(bitwiseEqual(single.scalars, want), "\(backend): query \(i) alone differs from its bits among \(seqQ)")
                }
            }
        }
    }

    @Test("an int8 attention keeps its memory in bfloat16 and reads it; a float32 one does not unless asked (MemoryPrecision)", arguments: Int8Scheme.allCases)
    func layerPath(_ scheme: Int8Scheme) throws {
        let (d, heads, s, b) = (64, 4, 9, 2)
        let linear = { (seed: UInt64) in Linear(weight: self.randomTensor([d, d], seed: seed, range: -0.2...0.2), bias: nil) }
        let f32 = MultiHeadAttention(heads: heads, query: linear(1), key: linear(2), value: linear(3), out: linear(4), scale: 1)
        let q8 = try MultiHeadAttention(
            heads: heads, query: linear(1).quantizedToInt8(scheme), key: linear(2).quantizedToInt8(scheme),
            value: linear(3).quantizedToInt8(scheme), out: linear(4).quantizedToInt8(scheme), scale: 1)
        let memory = randomTensor([b, s, d], seed: 5), x = randomTensor([b, 3, d], seed: 6)
        let padding: [[Bool]] = [[Bool](repeating: true, count: s), (0..<s).map { $0 < 6 }]
        for backend in backends {
            let compute = try Compute(backend: backend, threads: 2)
            #expect(f32.keysValues(of: memory, compute: compute).half == nil, "\(backend): float32 weights keep float32 keys/values")
            #expect(q8.keysValues(of: memory, precision: .float32, compute: compute).half == nil, "\(backend): asked for float32")
            // Asked for bfloat16, a float32 attention holds the same rounding of its own projection.
            let f32Half = try #require(f32.keysValues(of: memory, precision: .bfloat16, compute: compute).half)
            let f32Projected = f32.inProjection(memory.reshaped([b * s, d]), outputs: d..<(3 * d), compute: compute).scalars
            #expect(f32Half.head(1, 2).keys.base[3 * (d / heads) + 5] == HalfType.bfloat16Bits(f32Projected[(s + 3) * 2 * d + 2 * (d / heads) + 5]))
            let kv = q8.keysValues(of: memory, compute: compute)
            let half = try #require(kv.half, "\(backend): int8 weights keep a bfloat16 memory")
            #expect(kv.packed == nil, "\(backend): nothing packed for the float32 kernel")
            // The layer's output equals the output projection of halfMemoryAttention on its queries.
            let mask = AttentionMask(keyPadding: padding)
            let got = q8(x, keysValues: kv, mask: mask, compute: compute)
            let queries = q8.inProjection(x, outputs: 0..<d, compute: compute)
            var context = Tensor.zeros([b, 3, d])
            halfMemoryAttention(query: queries, memory: half, keyPadding: padding, scale: 1, into: &context, compute: compute)
            #expect(bitwiseEqual(got.scalars, q8.outProjection(context, compute: compute).scalars), "\(backend)")
            // And its keys/values are the int8 projection of the memory, rounded to bfloat16.
            let projected = q8.inProjection(memory.reshaped([b * s, d]), outputs: d..<(3 * d), compute: compute).scalars
            let (k0, v0) = half.head(1, 2)
            #expect(k0.base[3 * (d / heads) + 5] == HalfType.bfloat16Bits(projected[(s + 3) * 2 * d + 2 * (d / heads) + 5]))
            #expect(v0.base[5 * s + 3] == HalfType.bfloat16Bits(projected[(s + 3) * 2 * d + d + 2 * (d / heads) + 5]))
        }
    }

    @Test("a bfloat16 memory holds no float32 copy; a causal or windowed mask reads its rounded values widened, as the float32 path would read them")
    func noFloatCopy() throws {
        let (d, heads, s, b) = (64, 4, 9, 2)
        let dh = d / heads
        let linear = { (seed: UInt64) in Linear(weight: self.randomTensor([d, d], seed: seed, range: -0.2...0.2), bias: nil) }
        let attention = MultiHeadAttention(heads: heads, query: linear(1), key: linear(2), value: linear(3), out: linear(4), scale: 0.5)
        let memory = randomTensor([b, s, d], seed: 5), x = randomTensor([b, 4, d], seed: 6)
        for backend in backends {
            let compute = try Compute(backend: backend, threads: 2)
            let kv = attention.keysValues(of: memory, precision: .bfloat16, compute: compute)
            #expect(kv.half != nil && kv.storage.count == 0 && kv.count == s && kv.capacity == s, "\(backend): no float32 beside the bfloat16 keys/values")
            // The float32 cache the same rounded projection makes, in the same layout.
            let rounded = attention.inProjection(memory.reshaped([b * s, d]), outputs: d..<(3 * d), compute: compute)
                .scalars.map { HalfType.bf16.float(HalfType.bfloat16Bits($0)) }
            var reference = AttentionKV(rows: b, width: d, capacity: s)
            if case .native = backend {
                reference.setHeadMajor(Tensor(shape: [b * s, 2 * d], scalars: rounded), heads: heads, headDim: dh)
            } else {
                reference.append(Tensor(shape: [b * s, 2 * d], scalars: rounded), steps: s)
            }
            #expect(bitwiseEqual(kv.floatStorage().scalars, reference.storage.scalars), "\(backend): widened layout")
            #expect(bitwiseEqual(reference.floatStorage().scalars, reference.storage.scalars), "\(backend): a float32 cache is its storage")
            for mask in [AttentionMask(causal: true, queryStart: 3), AttentionMask(window: 2)] {
                let got = attention(x, keysValues: kv, mask: mask, compute: compute)
                let want = attention(x, keysValues: reference, mask: mask, compute: compute)
                #expect(bitwiseEqual(got.scalars, want.scalars), "\(backend), \(mask)")
            }
            // Key padding alone still reads the 16-bit memory: within bfloat16 sums of the same values.
            let padded = attention(x, keysValues: kv, compute: compute).scalars
            let widened = attention(x, keysValues: reference, compute: compute).scalars
            #expect(zip(padded, widened).map { abs($0 - $1) }.max()! <= 1e-5, "\(backend)")
        }
    }
}
