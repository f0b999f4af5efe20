// Generation against Hugging Face transformers 5.23 (golden `t5` and `marian`): tiny T5 and
// Marian models assembled here from the package's layers (RMSNorm pre-LN with a relative bias
// shared from layer 0 and no attention scale; post-LN with swish, half/half sinusoids and
// final_logits_bias), then greedy and 3-beam `generate` ids compared exactly. These are test
// scaffolds, not the package's T5/Marian models: they check that the layers and the generation
// code reproduce transformers (beam search: early_stopping=True, length_penalty=1.0,
// max_new_tokens=10; greedy: min_new_tokens=10; Marian: forced_eos_token_id).
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// An encoder-decoder assembled from the package's stacks: token embeddings (scaled, plus
/// absolute positions), an encoder, a decoder, and an output projection after an optional
/// scale of the decoder output.
struct AssembledSeq2Seq: AutoregressiveDecoder {
    let embedding: Embedding
    let embeddingScale: Float
    let positions: AbsolutePositions
    let encoder: TransformerEncoder
    let decoder: TransformerDecoder
    let outputScale: Float
    let lmHead: Linear

    var vocabularySize: Int { lmHead.outFeatures }

    func encode(_ ids: [[Int]], padding: [[Bool]]?) -> Tensor {
        encoder(embed(ids, table: embedding, scale: embeddingScale, positions: positions, offset: 0), keyPadding: padding)
    }

    func teacherForced(_ ids: [[Int]], memory: Tensor, padding: [[Bool]]?) -> Tensor {
        let h = decoder(embed(ids, table: embedding, scale: embeddingScale, positions: positions, offset: 0),
                        memory: memory, memoryPadding: padding)
        return lmHead(h * outputScale)
    }

    func nextTokenLogits(appending tokens: [[Int]], to cache: inout KVCache, compute: Compute) -> Tensor {
        let y = embed(tokens, table: embedding, scale: embeddingScale, positions: positions, offset: cache.length)
        let h = decoder(y, cache: &cache, compute: compute)
        return lmHead(lastPositions(h) * outputScale, compute: compute)
    }
}

enum TinyHF {
    /// T5ForConditionalGeneration (d 32, 4 heads of 8, ff 64, relu, 2 + 2 layers, 32 buckets).
    static func t5() throws -> AssembledSeq2Seq {
        let p = ParameterLoader(try fixture("model", folder: "t5"))
        let d = 32
        func attention(_ prefix: String) throws -> MultiHeadAttention {
            MultiHeadAttention(heads: 4, query: try Linear(loading: p, prefix + ".q", in: d, out: d, bias: false),
                               key: try Linear(loading: p, prefix + ".k", in: d, out: d, bias: false),
                               value: try Linear(loading: p, prefix + ".v", in: d, out: d, bias: false),
                               out: try Linear(loading: p, prefix + ".o", in: d, out: d, bias: false), scale: 1)
        }
        func norm(_ prefix: String) throws -> Norm { .rms(RMSNorm(weight: try p.load(prefix + ".weight", shape: [d]), eps: 1e-6)) }
        func ffn(_ prefix: String) throws -> FeedForward {
            FeedForward(up: try Linear(loading: p, prefix + ".wi", in: d, out: 64, bias: false),
                        down: try Linear(loading: p, prefix + ".wo", in: 64, out: d, bias: false), activation: .relu)
        }
        let encoderLayers = try (0..<2).map { i -> EncoderLayer in
            let b = "encoder.block.\(i).layer"
            return EncoderLayer(selfAttention: try attention("\(b).0.SelfAttention"), attentionNorm: try norm("\(b).0.layer_norm"),
                                feedForward: try ffn("\(b).1.DenseReluDense"), feedForwardNorm: try norm("\(b).1.layer_norm"), placement: .pre)
        }
        let decoderLayers = try (0..<2).map { i -> DecoderLayer in
            let b = "decoder.block.\(i).layer"
            return DecoderLayer(selfAttention: try attention("\(b).0.SelfAttention"), selfAttentionNorm: try norm("\(b).0.layer_norm"),
                                crossAttention: try attention("\(b).1.EncDecAttention"), crossAttentionNorm: try norm("\(b).1.layer_norm"),
                                feedForward: try ffn("\(b).2.DenseReluDense"), feedForwardNorm: try norm("\(b).2.layer_norm"), placement: .pre)
        }
        let table = { (stack: String) in try p.load("\(stack).block.0.layer.0.SelfAttention.relative_attention_bias.weight", shape: [32, 4]) }
        let shared = Embedding(weight: try p.load("shared.weight", shape: [64, d]))
        let model = AssembledSeq2Seq(
            embedding: shared, embeddingScale: 1, positions: .none,
            encoder: TransformerEncoder(layers: encoderLayers, finalNorm: try norm("encoder.final_layer_norm"),
                                        selfAttentionBias: .t5(table: try table("encoder"), bidirectional: true, maxDistance: 128)),
            decoder: TransformerDecoder(layers: decoderLayers, finalNorm: try norm("decoder.final_layer_norm"),
                                        selfAttentionBias: .t5(table: try table("decoder"), bidirectional: false, maxDistance: 128)),
            outputScale: Float(pow(Double(d), -0.5)), lmHead: Linear(weight: shared.weight, bias: nil))
        try p.finish()
        return model
    }

    /// MarianMTModel (d 32, 4 heads, ffn 64, swish, 2 + 2 layers, post-LN, scaled embeddings).
    static func marian() throws -> AssembledSeq2Seq {
        let p = ParameterLoader(try fixture("model", folder: "marian"))
        let d = 32
        func linear(_ name: String, _ i: Int, _ o: Int) throws -> Linear { try Linear(loading: p, name, in: i, out: o) }
        func attention(_ prefix: String) throws -> MultiHeadAttention {
            MultiHeadAttention(heads: 4, query: try linear(prefix + ".q_proj", d, d), key: try linear(prefix + ".k_proj", d, d),
                               value: try linear(prefix + ".v_proj", d, d), out: try linear(prefix + ".out_proj", d, d))
        }
        func norm(_ prefix: String) throws -> Norm { .layer(try LayerNorm(loading: p, prefix, size: d, eps: 1e-5)) }
        func ffn(_ prefix: String) throws -> FeedForward {
            FeedForward(up: try linear(prefix + ".fc1", d, 64), down: try linear(prefix + ".fc2", 64, d), activation: .silu)
        }
        let encoderLayers = try (0..<2).map { i -> EncoderLayer in
            let b = "model.encoder.layers.\(i)"
            return EncoderLayer(selfAttention: try attention("\(b).self_attn"), attentionNorm: try norm("\(b).self_attn_layer_norm"),
                                feedForward: try ffn(b), feedForwardNorm: try norm("\(b).final_layer_norm"), placement: .post)
        }
        let decoderLayers = try (0..<2).map { i -> DecoderLayer in
            let b = "model.decoder.layers.\(i)"
            return DecoderLayer(selfAttention: try attention("\(b).self_attn"), selfAttentionNorm: try norm("\(b).self_attn_layer_norm"),
                                crossAttention: try attention("\(b).encoder_attn"), crossAttentionNorm: try norm("\(b).encoder_attn_layer_norm"),
                                feedForward: try ffn(b), feedForwardNorm: try norm("\(b).final_layer_norm"), placement: .post)
        }
        let shared = Embedding(weight: try p.load("model.shared.weight", shape: [64, d]))
        let model = AssembledSeq2Seq(
            embedding: shared, embeddingScale: Float(Double(d).squareRoot()),
            positions: .sinusoidal(dim: d, precomputed: 64, interleaved: false),
            encoder: TransformerEncoder(layers: encoderLayers, finalNorm: nil),
            decoder: TransformerDecoder(layers: decoderLayers, finalNorm: nil),
            outputScale: 1, lmHead: Linear(weight: shared.weight, bias: try p.load("final_logits_bias", shape: [1, 64]).reshaped([64])))
        try p.finish()
        return model
    }
}

@Suite("Hugging Face generation")
struct HFGenerationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String, start: Int, eos: Int, pad: Int, forcedEOS: Int?
        var testDescription: String { name }
    }
    static let cases = [Case(name: "t5", start: 0, eos: 1, pad: 0, forcedEOS: nil),
                        Case(name: "marian", start: 63, eos: 2, pad: 63, forcedEOS: 2)]

    @Test("tiny T5 / Marian from the package's layers: encoder output and teacher-forced logits, greedy and 3-beam ids", arguments: cases)
    func generation(_ c: Case) throws {
        let model = c.name == "t5" ? try TinyHF.t5() : try TinyHF.marian()
        let io = try fixture("\(c.name).io")
        let ids = idRows(try io.integers("in.input_ids"), rows: 2)
        let padding = boolRows(try io.integers("in.attention_mask"), rows: 2) { $0 != 0 }
        let memory = model.encode(ids, padding: padding)
        let memDev = deviation(memory, try io.tensor("out.encoder_last_hidden_state"))
        let logits = model.teacherForced(idRows(try io.integers("in.decoder_input_ids"), rows: 2), memory: memory, padding: padding)
        let logitDev = deviation(logits, try io.tensor("out.logits"))
        print("golden \(c.name) (assembled): encoder \(memDev); logits \(logitDev)")
        #expect(memDev.maxAbs <= 1e-4 && logitDev.maxAbs <= 1e-4, "\(c.name): encoder \(memDev), logits \(logitDev)")

        var greedy = GenerationConfig(maxNewTokens: 10, eosTokenID: c.eos)
        greedy.padTokenID = c.pad
        greedy.minNewTokens = 10
        greedy.forcedEOSTokenID = c.forcedEOS
        var beam = GenerationConfig(maxNewTokens: 10, eosTokenID: c.eos, numBeams: 3)
        beam.padTokenID = c.pad
        beam.earlyStopping = .whenBeamsFinished
        beam.forcedEOSTokenID = c.forcedEOS
        let prompt = [[c.start], [c.start]]
        let cache = model.decoder.makeCache(memory: memory, memoryPadding: padding)
        let greedyIDs = try model.generate(prompt: prompt, cache: cache, config: greedy).sequences
        let beamOut = try model.generate(prompt: prompt, cache: cache, config: beam)
        print("\(c.name) greedy \(greedyIDs), beam \(beamOut.sequences) scores \(beamOut.scores ?? [])")
        #expect(greedyIDs == idRows(try io.integers("out.greedy_ids"), rows: 2), "\(c.name) greedy")
        #expect(beamOut.sequences == idRows(try io.integers("out.beam3_ids"), rows: 2), "\(c.name) beam search")
    }
}
