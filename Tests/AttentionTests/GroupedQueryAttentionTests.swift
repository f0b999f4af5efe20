// Grouped-query attention (Llama 2 70B, Mistral, Qwen2, TinyLlama): `heads` query heads share
// `heads / group` stored K/V heads through `HeadLayout.headGroup`. Every native path (few-query
// decoding, short, fused, fused with prepacked K/V) and the Swift SIMD oracle are checked
// against plain multi-head attention over K/V expanded per query head (the definition), with
// causal offsets and key padding, on 1 and 2 threads.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Grouped-query attention")
struct GroupedQueryAttentionTests {
    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededRNG(seed: seed)
        return Tensor(shape: shape, generating: { _ in rng.nextFloat(in: -1...1) })
    }

    /// `kv` `[b, s, kvHeads, dh]` with each stored head repeated `group` times: `[b, s, heads, dh]`.
    /// (`interleaved`: the wrong mapping `h % kvHeads`, for the mutation check.)
    static func expand(_ kv: Tensor, group: Int, interleaved: Bool = false) -> Tensor {
        let (b, s, kvh, dh) = (kv.shape[0], kv.shape[1], kv.shape[2], kv.shape[3])
        let x = kv.scalars
        return Tensor(shape: [b, s, kvh * group, dh]) { flat in
            let c = flat % dh, h = (flat / dh) % (kvh * group), rest = flat / (dh * kvh * group)
            return x[(rest * kvh + (interleaved ? h % kvh : h / group)) * dh + c]
        }
    }

    /// Attention of `q` `[b, sq, heads, dh]` over stored `k`, `v` `[b, sk, kvHeads, dh]` read
    /// through a grouped layout (no copies), on `compute`; `prepack` packs K/V once first.
    static func grouped(
        _ q: Tensor, _ k: Tensor, _ v: Tensor, group: Int, mask: AttentionMask, compute: Compute,
        prepack: Bool = false
    ) -> Tensor {
        let (b, sq, heads, dh) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (sk, kvh) = (k.shape[1], k.shape[2])
        let kl = HeadLayout(base: 0, batchStride: sk * kvh * dh, headStride: dh, rowStride: kvh * dh, headGroup: group)
        let ql = HeadLayout(.bshd, seq: sq, heads: heads, headDim: dh)
        let p = AttentionProblem(
            batch: b, seqQ: sq, seqK: sk, heads: heads, headDim: dh, q: ql, k: kl, v: kl, o: ql,
            counts: (q.count, k.count, v.count, q.count), mask: mask, bias: .none, scale: nil)
        var out = Tensor.zeros(q.shape)
        var packed: PackedKeysValues? = nil
        if prepack, case .native(let variant) = compute.backend {
            packed = PackedKeysValues(
                key: k, value: v, k: kl, v: kl, batch: b, heads: heads, seqK: sk, headDim: dh,
                variant: variant, threads: compute.threads)
            #expect(packed!.fits(p, variant: variant))
        }
        attention(p, query: q, key: k, value: v, into: &out, compute: compute, prepacked: packed.map { made in LazyPackedKeysValues { made } })
        return out
    }

    @Test("every native path and the oracle equal attention over K/V expanded per query head", arguments: KernelVariant.supported)
    func matchesExpanded(_ variant: KernelVariant) throws {
        let batch = 2, dh = 8
        var cases = 0, worst: Float = 0
        // (seqQ, seqK): decoding (few-query), a sentence (short), long (fused).
        for (seqQ, seqK) in [(1, 1), (1, 37), (2, 140), (5, 5), (9, 40), (130, 130), (140, 150)] {
            for (heads, group) in [(4, 2), (6, 3), (3, 1)] {
                let kvh = heads / group
                let seed = UInt64(seqQ * 1000 + seqK * 10 + heads)
                let q = Self.random([batch, seqQ, heads, dh], seed: seed)
                let k = Self.random([batch, seqK, kvh, dh], seed: seed + 1), v = Self.random([batch, seqK, kvh, dh], seed: seed + 2)
                var padding = [[Bool]](repeating: [Bool](repeating: true, count: seqK), count: batch)
                for j in 0..<min(3, seqK - 1) { padding[1][j] = false }  // a left-padded row
                for mask in [
                    AttentionMask.none, AttentionMask(causal: true, queryStart: seqK - seqQ),
                    AttentionMask(causal: true, queryStart: seqK - seqQ, keyPadding: padding),
                ] {
                    let reference = scaledDotProductAttention(
                        query: q, key: Self.expand(k, group: group), value: Self.expand(v, group: group),
                        mask: mask, compute: try Compute(backend: .swiftSIMD, threads: 1))
                    var results = [("oracle", Self.grouped(q, k, v, group: group, mask: mask, compute: try Compute(backend: .swiftSIMD, threads: 2)))]
                    for threads in [1, 2] {
                        let c = try Compute(backend: .native(variant), threads: threads)
                        results.append(("native \(threads)t", Self.grouped(q, k, v, group: group, mask: mask, compute: c)))
                        results.append(("prepacked \(threads)t", Self.grouped(q, k, v, group: group, mask: mask, compute: c, prepack: true)))
                    }
                    for (name, got) in results {
                        let e = zip(got.scalars, reference.scalars).map { abs($0 - $1) }.max() ?? 0
                        worst = max(worst, e)
                        cases += 1
                        #expect(e <= 2e-5, "\(variant) \(name) seqQ \(seqQ) seqK \(seqK) heads \(heads) group \(group) \(mask): \(e)")
                    }
                }
            }
        }
        print("grouped-query attention \(variant): \(cases) cases, worst max abs error \(worst)")
    }

    @Test("a wrong mapping is caught: group 2 read as group 1 differs")
    func mutationCaught() throws {
        let q = Self.random([1, 3, 4, 8], seed: 1), k = Self.random([1, 6, 2, 8], seed: 2), v = Self.random([1, 6, 2, 8], seed: 3)
        let reference = scaledDotProductAttention(
            query: q, key: Self.expand(k, group: 2), value: Self.expand(v, group: 2),
            compute: try Compute(backend: .swiftSIMD, threads: 1))
        // Heads 0,1 -> kv 0 and 2,3 -> kv 1; the interleaved mapping (h % kvHeads) differs.
        let wrong = scaledDotProductAttention(
            query: q, key: Self.expand(k, group: 2, interleaved: true),
            value: Self.expand(v, group: 2, interleaved: true),
            compute: try Compute(backend: .swiftSIMD, threads: 1))
        let got = Self.grouped(q, k, v, group: 2, mask: .none, compute: .default)
        #expect(zip(got.scalars, reference.scalars).allSatisfy { abs($0 - $1) <= 2e-5 })
        #expect(zip(wrong.scalars, reference.scalars).contains { abs($0 - $1) > 1e-3 })
    }
}
