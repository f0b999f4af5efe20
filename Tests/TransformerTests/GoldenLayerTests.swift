// Single layers against PyTorch 2.15 (shared/golden, copied into Fixtures/): nn.MultiheadAttention,
// nn.TransformerEncoderLayer (post-LN ReLU and pre-LN GELU) and nn.TransformerDecoderLayer,
// loaded by the names PyTorch writes. Tolerance: the golden README's 1e-5 relative for a single
// layer, relative to the largest |expected| of the output (outputs are O(1) after LayerNorm).
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Golden layers")
struct GoldenLayerTests {
    static let config = PyTorchLayerConfig(modelDim: 64, heads: 4, feedForwardDim: 128)

    /// nn.MultiheadAttention(64, 4, batch_first): self-attention over x, and cross-attention of
    /// x over memory with key_padding_mask (1 = ignore) on the memory.
    @Test("mha: self-attention and cross-attention with key padding")
    func mha() throws {
        let p = ParameterLoader(try fixture("mha"))
        let attention = try MultiHeadAttention(loadingPyTorch: p, "", modelDim: 64, heads: 4)
        try p.finish()
        let io = try fixture("mha.io")
        let x = try io.tensor("in.x"), memory = try io.tensor("in.memory")
        let ignore = try io.integers("in.memory_ignore")
        let padding = boolRows(ignore, rows: 2) { $0 == 0 }
        #expect(padding.contains { $0.contains(false) }, "the fixture should pad some memory positions")

        let selfOut = attention(x)
        let selfDev = deviation(selfOut, try io.tensor("out.self"))
        let cross = attention(x, keysValues: attention.keysValues(of: memory), mask: AttentionMask(keyPadding: padding))
        let crossDev = deviation(cross, try io.tensor("out.cross"))
        print("golden mha: self \(selfDev); cross \(crossDev)")
        #expect(selfDev.relative <= 1e-5, "mha self: \(selfDev)")
        #expect(crossDev.relative <= 1e-5, "mha cross: \(crossDev)")
    }

    @Test(
        "encoder layers: post-LN ReLU and pre-LN GELU",
        arguments: [
            ("encoder_layer_post_relu", Activation.relu, false),
            ("encoder_layer_pre_gelu", Activation.gelu, true),
        ])
    func encoderLayer(_ name: String, _ activation: Activation, _ normFirst: Bool) throws {
        var c = Self.config
        c.activation = activation
        c.normFirst = normFirst
        let p = ParameterLoader(try fixture(name))
        let layer = try EncoderLayer(loadingPyTorch: p, "", c)
        try p.finish()
        #expect(layer.placement == (normFirst ? .pre : .post))
        let io = try fixture("\(name).io")
        let dev = deviation(layer(try io.tensor("in.x")), try io.tensor("out.y"))
        print("golden \(name): \(dev)")
        #expect(dev.relative <= 1e-5, "\(name): \(dev)")
    }

    /// nn.TransformerDecoderLayer (post-LN, ReLU) with a causal mask over tgt and no memory mask:
    /// teacher-forced, and again one position at a time through the KV cache.
    @Test("decoder layer: teacher-forced and incremental")
    func decoderLayer() throws {
        let p = ParameterLoader(try fixture("decoder_layer"))
        let layer = try DecoderLayer(loadingPyTorch: p, "", Self.config)
        try p.finish()
        let io = try fixture("decoder_layer.io")
        let tgt = try io.tensor("in.tgt"), memory = try io.tensor("in.memory")
        let expected = try io.tensor("out.y")
        let full = layer(tgt, memory: memory)
        let dev = deviation(full, expected)
        print("golden decoder_layer: \(dev)")
        #expect(dev.relative <= 1e-5, "decoder_layer: \(dev)")

        // Incremental: 11 single steps against the cache give the same rows.
        let (b, t, d) = (tgt.shape[0], tgt.shape[1], tgt.shape[2])
        var cache = try AttentionKV(batch: b, modelDim: d, capacity: 4)  // grows twice on the way
        let memoryKV = layer.crossAttention!.keysValues(of: memory)
        let all = tgt.scalars
        var rows = [[Float]](repeating: [], count: b)
        for i in 0..<t {
            var stepScalars: [Float] = []
            for r in 0..<b {
                let start = (r * t + i) * d
                stepScalars += all[start..<(start + d)]
            }
            let out = layer(Tensor(shape: [b, 1, d], scalars: stepScalars), selfCache: &cache, memory: memoryKV).scalars
            for r in 0..<b { rows[r] += out[(r * d)..<((r + 1) * d)] }
        }
        let incremental = Tensor(shape: [b, t, d], scalars: rows.flatMap { $0 })
        let incDev = deviation(incremental, full)
        print("decoder_layer incremental vs full: \(incDev)")
        #expect(incDev.maxAbs <= 2e-6, "decoder layer, incremental vs teacher-forced: \(incDev)")
    }
}
