// Golden data from PyTorch 2.15 (shared/golden, copied into Fixtures/): `sdpa.io` for the
// attention of every backend, `relative_positions.io` for the T5 buckets and ALiBi slopes.
// (The RoPE tensors of relative_positions.io belong to a later issue and are not read here.)
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// A fixture file of this target, e.g. `fixture("sdpa.io")` for Fixtures/sdpa.io.safetensors.
func fixture(_ name: String) throws -> SafeTensorsFile {
    let url = try #require(
        Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"),
        "fixture Fixtures/\(name).safetensors is missing from the test bundle")
    return try SafeTensorsFile(contentsOf: url)
}

/// Every attention implementation: each kernel table, and the Swift SIMD backend.
enum SDPABackend: Sendable, Hashable, CustomTestStringConvertible {
    case table(KernelTable)
    case swiftSIMD

    static let all: [SDPABackend] = KernelTable.all.map { .table($0) } + [.swiftSIMD]

    var testDescription: String {
        switch self {
        case .table(let t): return t.description
        case .swiftSIMD: return "swiftSIMD"
        }
    }

    func attention(_ inp: AttentionInputs) -> Tensor {
        switch self {
        case .table(let t): return t.attention(inp, threads: 2)
        case .swiftSIMD:
            return scaledDotProductAttention(
                query: inp.q, key: inp.k, value: inp.v, mask: inp.mask, bias: inp.bias, scale: inp.scale,
                layout: inp.layout, compute: testCompute(.swiftSIMD, threads: 2))
        }
    }
}

@Suite("Golden data")
struct GoldenTests {
    /// `torch.nn.functional.scaled_dot_product_attention` on [B, H, S, D] = [2, 4, 19, 16]
    /// (layout .bhsd): plain, causal, key padding (`in.key_mask`, 1 = attend) and a custom
    /// scale (`in.scale`). The golden README: float32 implementations agree to about 1e-5
    /// relative for a single layer; here relative to each head's max|V| (the outputs are
    /// convex combinations of the values, so that is their natural scale).
    @Test("sdpa.io: plain, causal, key-masked and scaled attention", arguments: SDPABackend.all)
    func sdpa(_ backend: SDPABackend) throws {
        let file = try fixture("sdpa.io")
        let q = try file.tensor("in.q"), k = try file.tensor("in.k"), v = try file.tensor("in.v")
        #expect(q.shape == [2, 4, 19, 16] && k.shape == q.shape && v.shape == q.shape)
        let scale = try file.tensor("in.scale").scalars
        try #require(scale.count == 1)
        let keyMask = try file.integers("in.key_mask")
        try #require(keyMask.count == 2 * 19)
        let padding = (0..<2).map { b in (0..<19).map { keyMask[b * 19 + $0] != 0 } }
        #expect(padding.contains { $0.contains(false) }, "the key mask should pad some keys")

        let variants: [(String, AttentionMask, Float?)] = [
            ("out.plain", .none, nil),
            ("out.causal", .causal, nil),
            ("out.key_masked", AttentionMask(keyPadding: padding), nil),
            ("out.scaled", .none, scale[0]),
        ]
        let (B, H, S, D) = (2, 4, 19, 16)
        let vs = v.scalars
        var summary = [String]()
        for (name, mask, sc) in variants {
            let expected = try file.tensor(name)
            #expect(expected.shape == q.shape, "\(name) has shape \(expected.shape)")
            let inp = AttentionInputs(q: q, k: k, v: v, mask: mask, bias: .none, scale: sc, layout: .bhsd)
            var outputs = [("fused", backend.attention(inp))]
            if case .table(.native(let variant)) = backend, mask.keyPadding == nil {
                outputs.append(
                    (
                        "materialized",
                        materializedAttention(
                            query: q, key: k, value: v, causal: mask.causal, scale: sc, layout: .bhsd,
                            compute: try Compute(backend: .native(variant), threads: 2))
                    ))
            }
            let e = expected.scalars
            for (path, got) in outputs {
                let g = got.scalars
                var worst = 0.0
                var firstBad: String? = nil
                for bh in 0..<B * H {
                    let head = bh * S * D..<(bh + 1) * S * D
                    let maxV = vs[head].reduce(0.0) { max($0, Double($1.magnitude)) }
                    let tol = 1e-5 * maxV
                    for idx in head {
                        let err = abs(Double(g[idx]) - Double(e[idx]))
                        worst = max(worst, err / tol)
                        if firstBad == nil && !(err <= tol) {
                            let r = idx - head.lowerBound
                            firstBad = "[b \(bh / H), h \(bh % H), i \(r / D), d \(r % D)]: got \(g[idx]), expected \(e[idx]) (tol \(tol))"
                        }
                    }
                }
                #expect(firstBad == nil, "\(backend.testDescription) \(path) \(name): first bad index \(firstBad ?? "")")
                summary.append("\(path) \(name.dropFirst(4)) \(String(format: "%.2g", worst))")
            }
        }
        print("golden sdpa \(backend.testDescription), worst error/tolerance: \(summary.joined(separator: ", "))")
    }

    /// T5's bucket function must reproduce transformers' `_relative_position_bucket`
    /// (num_buckets 32, max_distance 128) exactly, bidirectional and causal.
    @Test("relative_positions.io: T5 buckets, exactly")
    func t5Buckets() throws {
        let file = try fixture("relative_positions.io")
        let rel = try file.integers("in.relative_position")
        #expect(rel.count == 141)
        for (name, bidirectional) in [("out.t5_bucket_bidirectional", true), ("out.t5_bucket_causal", false)] {
            let expected = try file.integers(name)
            try #require(expected.count == rel.count, "\(name): \(expected.count) values for \(rel.count) positions")
            for (i, r) in rel.enumerated() {
                let got = t5RelativePositionBucket(r, bidirectional: bidirectional, numBuckets: 32, maxDistance: 128)
                #expect(got == expected[i], "\(name): relative position \(r) (index \(i)): bucket \(got), expected \(expected[i])")
            }
        }
    }

    /// ALiBi slopes for 8 (a power of two), 12 and 6 heads (the interleaving rule).
    @Test("relative_positions.io: ALiBi slopes for 8, 12 and 6 heads")
    func alibi() throws {
        let file = try fixture("relative_positions.io")
        for heads in [8, 12, 6] {
            let expected = try file.tensor("out.alibi_slopes_\(heads)").scalars
            let got = alibiSlopes(heads: heads)
            try #require(got.count == expected.count, "alibiSlopes(heads: \(heads)) gave \(got.count) slopes, expected \(expected.count)")
            for h in 0..<heads {
                #expect(
                    abs(got[h] - expected[h]) <= 1e-6 * max(1, expected[h].magnitude),
                    "alibiSlopes(heads: \(heads))[\(h)] = \(got[h]), expected \(expected[h])")
            }
        }
    }
}
