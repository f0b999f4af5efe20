// Loading by PyTorch names: a tensor that is missing, unexpected or of the wrong shape is a
// thrown CheckpointError naming it; an impossible configuration is `.invalidConfig`. Misuse
// (shapes that do not fit) stops with a precondition naming the shapes.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// Tensors in memory under names, as a checkpoint would hold them.
struct DictionarySource: TensorSource {
    var tensors: [String: Tensor]
    var tensorNames: [String] { tensors.keys.sorted() }
    func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw CheckpointError.missingTensor(name: name) }
        return t
    }

    init(_ file: SafeTensorsFile) throws {
        tensors = Dictionary(uniqueKeysWithValues: try file.tensorNames.map { ($0, try file.tensor($0)) })
    }
}

@Suite("Loading PyTorch state dicts")
struct LoadingTests {
    func loadError(_ source: TensorSource, _ config: TransformerConfig = Seq2Seq.config) -> CheckpointError? {
        do {
            _ = try TransformerModel(loading: source, config: config)
            return nil
        } catch let e as CheckpointError {
            return e
        } catch {
            Issue.record("expected a CheckpointError, got \(error)")
            return nil
        }
    }

    @Test("the golden state dict loads with every tensor used")
    func complete() throws {
        let source = try DictionarySource(try fixture("seq2seq"))
        #expect(loadError(source) == nil)
    }

    @Test("a missing tensor is named")
    func missing() throws {
        var source = try DictionarySource(try fixture("seq2seq"))
        source.tensors["transformer.decoder.layers.1.multihead_attn.in_proj_weight"] = nil
        let e = loadError(source)
        #expect(e == .missingTensor(name: "transformer.decoder.layers.1.multihead_attn.in_proj_weight"))
        #expect(e?.description.contains("transformer.decoder.layers.1.multihead_attn.in_proj_weight") == true)
        source = try DictionarySource(try fixture("seq2seq"))
        source.tensors["transformer.encoder.norm.bias"] = nil
        #expect(loadError(source) == .missingTensor(name: "transformer.encoder.norm.bias"))
    }

    @Test("a tensor of the wrong shape is named with both shapes")
    func wrongShape() throws {
        var source = try DictionarySource(try fixture("seq2seq"))
        source.tensors["transformer.encoder.layers.0.linear1.weight"] = Tensor.zeros([64, 128])
        let e = loadError(source)
        #expect(e == .wrongShape(name: "transformer.encoder.layers.0.linear1.weight", expected: [128, 64], found: [64, 128]))
        #expect(e?.description == "tensor 'transformer.encoder.layers.0.linear1.weight' has shape [64, 128], the model expects [128, 64]")
        // A checkpoint with more heads' worth of width than the config says.
        var wide = Seq2Seq.config
        wide.layer.feedForwardDim = 256
        #expect(
            loadError(try DictionarySource(try fixture("seq2seq")), wide)
                == .wrongShape(name: "transformer.encoder.layers.0.linear1.weight", expected: [256, 64], found: [128, 64]))
    }

    @Test("unexpected tensors are listed")
    func unexpected() throws {
        var source = try DictionarySource(try fixture("seq2seq"))
        source.tensors["transformer.encoder.layers.2.norm1.weight"] = Tensor.zeros([64])
        source.tensors["positional_encoding.pe"] = Tensor.zeros([100, 64])
        #expect(loadError(source) == .unexpectedTensors(["positional_encoding.pe", "transformer.encoder.layers.2.norm1.weight"]))
        // One layer too few in the config leaves layer 1's tensors unexpected.
        var fewer = Seq2Seq.config
        fewer.encoderLayers = 1
        guard case .unexpectedTensors(let names) = loadError(try DictionarySource(try fixture("seq2seq")), fewer) else {
            Issue.record("expected unexpectedTensors")
            return
        }
        #expect(names.count == 12 && names.allSatisfy { $0.hasPrefix("transformer.encoder.layers.1.") })
    }

    @Test("an impossible configuration is .invalidConfig")
    func invalidConfig() throws {
        var c = Seq2Seq.config
        c.layer.heads = 5
        #expect(loadError(try DictionarySource(try fixture("seq2seq")), c) == .invalidConfig("nhead 5 does not divide d_model 64"))
        c = Seq2Seq.config
        c.decoderLayers = 0
        if case .invalidConfig = loadError(try DictionarySource(try fixture("seq2seq")), c) {} else { Issue.record("zero decoder layers accepted") }
    }

    @Test("misuse: a decoder input of the wrong width traps naming it; a cache for another model's encoding, rows of another source and a prompt for another batch throw")
    func misuse() async throws {
        let r1 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let m = Seq2Seq.model
            var cache = try m.makeCache(for: m.encode([[1, 2]]))
            _ = m.decoder(Tensor.zeros([1, 1, 32]), cache: &cache)
        }
        #expect(r1.map { String(decoding: $0.standardErrorContent, as: UTF8.self).contains("[1, 1, 32]") } == true)
        // An encoding of another width (the model's d is 64) gets no cache: makeCache throws,
        // naming both widths.
        let m = Seq2Seq.model
        #expect(throws: GenerationError.invalidInput("the encoder output [1, 2, 32] has width 32; this model's decoder reads width 64 (another model's encoding?)")) {
            _ = try m.makeCache(for: EncodedSource(memory: Tensor.zeros([1, 2, 32]), padding: nil, lengths: [2]))
        }
        // Rows of another source and a prompt for another batch are the caller's input: they throw.
        var cache = try m.makeCache(for: m.encode([[1, 2], [3]]))
        expectInvalidInput("rows of another source", "not a row of source 0") { try cache.selectRows([1, 0]) }
        #expect(throws: GenerationError.invalidInput("1 prompt rows for a cache of 2 rows")) {
            try m.generate(prompt: [[1]], cache: m.makeCache(for: m.encode([[1, 2], [3]])), config: GenerationConfig(maxNewTokens: 2))
        }
    }
}
