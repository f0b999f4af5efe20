// Attention probabilities on request (transformers' `output_attentions`) for every model
// family besides BERT (whose test is in VisualizationTests): T5 and Marian (encoder,
// decoder and cross-attention, T5's relative bias and the source padding included), GPT-2,
// Llama (grouped-query attention 6/3) and Qwen2 (QKV biases) over a right-padded batch of
// prompts, against transformers 5.24 with eager attention within 1e-5
// (Fixtures/attentions.safetensors, from make_attention_fixtures.py); and the paper's
// TransformerModel (the golden `seq2seq`) against PyTorch's nn.MultiheadAttention per-head
// weights. Asking for maps never changes an output bit.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// The masks every map must satisfy: rows sum to 1 over the keys they may see, and keys
/// they may not see (`hidden(batch, query, key)`) get exactly 0. Returns the worst row-sum error.
func checkMapInvariants(_ map: Tensor, hidden: (Int, Int, Int) -> Bool) -> (sumError: Double, leaks: Int) {
    let (b, h, q, k) = (map.shape[0], map.shape[1], map.shape[2], map.shape[3])
    let p = map.scalars
    var worst = 0.0, leaks = 0
    for bi in 0..<b {
        for hi in 0..<h {
            for i in 0..<q {
                let row = ((bi * h + hi) * q + i) * k
                var sum = 0.0
                for j in 0..<k {
                    sum += Double(p[row + j])
                    if hidden(bi, i, j) && p[row + j] != 0 { leaks += 1 }
                }
                worst = max(worst, abs(sum - 1))
            }
        }
    }
    return (worst, leaks)
}

@Suite("Attention probabilities on request against transformers")
struct AttentionOutputTests {
    static let golden = try! fixture("attentions")

    static func rows(_ name: String) throws -> [[Int]] {
        idRows(try golden.integers(name), rows: 2)
    }

    @Test("T5 and Marian: encoder, decoder and cross-attention maps", arguments: ["t5", "marian"])
    func encoderDecoder(_ name: String) throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder(name))
        let ids = try Self.rows("\(name).in.input_ids"), mask = try Self.rows("\(name).in.attention_mask")
        let sources = zip(ids, mask).map { row, m in Array(row.prefix(m.reduce(0, +))) }
        #expect(sources[0].count != sources[1].count, "the fixture batch must be padded")
        let targets = try Self.rows("\(name).in.decoder_input_ids")
        let (e, l) = (Set(model.encoder.layers.indices), Set(model.decoder.layers.indices))
        let out = try model.forward(
            sources: sources, targets: targets, outputEncoderAttentions: e, outputDecoderAttentions: l, outputCrossAttentions: l)
        #expect(out.encoderAttentions.keys.sorted() == e.sorted())
        #expect(out.decoderAttentions.keys.sorted() == l.sorted() && out.crossAttentions.keys.sorted() == l.sorted())
        let padded = { (b: Int, _: Int, j: Int) in mask[b][j] == 0 }
        for (part, maps, hidden) in [
            ("encoder", out.encoderAttentions, padded), ("decoder", out.decoderAttentions, { (_: Int, i: Int, j: Int) in j > i }),
            ("cross", out.crossAttentions, padded),
        ] {
            for (layer, map) in maps {
                let expected = try Self.golden.tensor("\(name).\(part).\(layer)")
                #expect(map.shape == expected.shape, "\(name) \(part) \(layer)")
                let dev = deviation(map, expected)
                #expect(dev.maxAbs <= 1e-5, "\(name) \(part) layer \(layer): \(dev)")
                let (sumError, leaks) = checkMapInvariants(map, hidden: hidden)
                #expect(sumError < 1e-5 && leaks == 0, "\(name) \(part) layer \(layer): row sums off by \(sumError), \(leaks) hidden keys nonzero")
            }
        }
        // The logits are transformers' too (a check on the inputs), and the same bits as decode's.
        #expect(deviation(out.logits, try Self.golden.tensor("\(name).logits")).maxAbs <= 1e-4)
        let decoded = try model.decode(targets, encoded: try model.encode(sources))
        #expect(bitwiseEqual(decoded.scalars, out.logits.scalars))
        let plain = try model.forward(sources: sources, targets: targets)
        #expect(plain.encoderAttentions.isEmpty && plain.decoderAttentions.isEmpty && plain.crossAttentions.isEmpty)
        #expect(bitwiseEqual(plain.logits.scalars, out.logits.scalars))
        #expect(bitwiseEqual(plain.encoderLastHiddenState.scalars, out.encoderLastHiddenState.scalars))
    }

    @Test("T5 and Marian: a layer out of range is an error naming it", arguments: ["t5", "marian"])
    func encoderDecoderLayerChecks(_ name: String) throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder(name))
        let (e, l) = (model.encoder.layers.count, model.decoder.layers.count)
        for (enc, dec, cross, flag) in [
            ([e], [], [], "outputEncoderAttentions"), ([], [-1], [], "outputDecoderAttentions"), ([], [], [l], "outputCrossAttentions"),
        ] {
            do {
                _ = try model.forward(
                    sources: [[5, 6]], targets: [[model.decoderStartTokenID]], outputEncoderAttentions: Set(enc),
                    outputDecoderAttentions: Set(dec), outputCrossAttentions: Set(cross))
                Issue.record("\(flag) out of range was accepted")
            } catch let error as ModelInputError {
                #expect(error.message.contains(flag), "\(error)")
            }
        }
        #expect(throws: GenerationError.self) { try model.forward(sources: [[5, 6]], targets: [[]]) }
    }

    @Test("GPT-2, Llama (GQA 6/3), Qwen2: maps of a right-padded batch", arguments: ["gpt2", "llama", "qwen2"])
    func decoderOnly(_ name: String) throws {
        let model = try DecoderOnlyModel(directory: try fixtureFolder("lm/\(name)"))
        let ids = try Self.rows("\(name).in.input_ids"), mask = try Self.rows("\(name).in.attention_mask")
        #expect(mask[1].contains(0), "the fixture batch must be padded")
        let all = Set(model.layers.indices)
        let out = try model.forward(inputIDs: ids, attentionMask: mask, outputAttentions: all)
        #expect(out.attentions.keys.sorted() == all.sorted())
        for (layer, map) in out.attentions {
            let expected = try Self.golden.tensor("\(name).attn.\(layer)")
            #expect(map.shape == expected.shape && map.shape[1] == model.heads)
            let dev = deviation(map, expected)
            #expect(dev.maxAbs <= 1e-5, "\(name) layer \(layer): \(dev)")
            let (sumError, leaks) = checkMapInvariants(map) { b, i, j in j > i || mask[b][j] == 0 }
            #expect(sumError < 1e-5 && leaks == 0, "\(name) layer \(layer): row sums off by \(sumError), \(leaks) hidden keys nonzero")
        }
        #expect(deviation(out.logits, try Self.golden.tensor("\(name).logits")).maxAbs <= 1e-4)
        // Asking changes no bit; the last position's logits are what a prefill step gives.
        let plain = try model.forward(inputIDs: ids, attentionMask: mask)
        #expect(plain.attentions.isEmpty && bitwiseEqual(plain.logits.scalars, out.logits.scalars))
        var cache = model.makeCache(rows: 1, capacity: 8)
        let step = model.nextTokenLogits(appending: [ids[0]], to: &cache)
        let v = model.vocabularySize, n = ids[0].count
        let last = Tensor(shape: [1, v], scalars: Array(out.logits.scalars[((n - 1) * v)..<(n * v)]))
        #expect(deviation(step, last).maxAbs <= 1e-5)
    }

    @Test("decoder-only forward: input it cannot take is an error naming it")
    func decoderOnlyChecks() throws {
        let model = try DecoderOnlyModel(directory: try fixtureFolder("lm/llama"))
        let v = model.vocabularySize
        let cases: [([[Int]], [[Int]]?, Set<Int>, String)] = [
            ([[1, 2], [3]], nil, [], "different lengths"),
            ([[1, v]], nil, [], "token id \(v) at [0][1]"),
            ([[1, 2]], [[1]], [], "attentionMask"),
            ([[1, 2]], [[1, 2]], [], "0 or 1"),
            ([[1, 2]], nil, [2], "layer 2"),
            ([], nil, [], "at least one row"),
        ]
        for (ids, mask, layers, message) in cases {
            #expect {
                _ = try model.forward(inputIDs: ids, attentionMask: mask, outputAttentions: layers)
            } throws: { error in
                (error as? ModelInputError)?.message.contains(message) == true
            }
        }
    }

    @Test("the paper's TransformerModel against PyTorch's nn.MultiheadAttention weights; outputs keep their bits")
    func paperModel() throws {
        let model = Seq2Seq.model
        let sources = [Array(Seq2Seq.io.src[0].prefix(9)), Array(Seq2Seq.io.src[1].prefix(5))]
        let targets = Seq2Seq.io.tgt
        #expect(try Self.rows("paper.in.decoder_input_ids") == targets)
        #expect(try Self.rows("paper.in.input_ids") == sources.map { $0 + [Int](repeating: 0, count: 9 - $0.count) })
        let layers: Set<Int> = [0, 1]
        let out = try model.forward(
            sources: sources, targets: targets, outputEncoderAttentions: layers, outputDecoderAttentions: layers,
            outputCrossAttentions: [1])
        let (s, t) = (9, targets[0].count)
        #expect(out.crossAttentions.keys.sorted() == [1])
        for (part, maps, shape, hidden) in [
            ("encoder", out.encoderAttentions, [2, 4, s, s], { (b: Int, _: Int, j: Int) in j >= sources[b].count }),
            ("decoder", out.decoderAttentions, [2, 4, t, t], { (_: Int, i: Int, j: Int) in j > i }),
            ("cross", out.crossAttentions, [2, 4, t, s], { (b: Int, _: Int, j: Int) in j >= sources[b].count }),
        ] {
            for (layer, map) in maps {
                #expect(map.shape == shape)
                let dev = deviation(map, try Self.golden.tensor("paper.\(part).\(layer)"))
                #expect(dev.maxAbs <= 1e-5, "\(part) layer \(layer): \(dev)")
                let (sumError, leaks) = checkMapInvariants(map, hidden: hidden)
                #expect(sumError < 1e-5 && leaks == 0, "\(part) layer \(layer): \(sumError), \(leaks)")
            }
        }
        #expect(deviation(out.logits, try Self.golden.tensor("paper.logits")).maxAbs <= 1e-4)
        #expect(bitwiseEqual(out.logits.scalars, try model(sources: sources, targets: targets).scalars))
        // The first target position sees only itself.
        let first = out.decoderAttentions[0]!.scalars
        #expect(first[0] == 1)
        #expect(throws: ModelInputError.self) { try model.forward(sources: sources, targets: targets, outputCrossAttentions: [2]) }
    }
}
