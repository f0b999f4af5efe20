// `attend quantize` (ModelQuantization.quantize) on the golden model folders: what the new
// folder holds, that the loaders read it, that a quantized layer's outputs stay within the
// derived bounds of the float32 layer, that greedy ids of the golden T5 stay float32's, and that
// bad folders and bad int8 tensors are thrown errors.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("attend quantize")
struct QuantizeTests {
    func temporaryFolder(_ name: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("attend-quantize-test-\(getpid())-\(name)")
        try? FileManager.default.removeItem(at: url)
        return url
    }

    /// The golden T5's two sources (t5.io) and the greedy ids transformers made for them
    /// (10 new tokens).
    func goldenT5Greedy() throws -> (sources: [[Int]], expected: [[Int]]) {
        let io = try fixture("t5.io")
        let ids = try io.integers("in.input_ids"), mask = try io.integers("in.attention_mask")
        let width = ids.count / 2
        let sources = (0..<2).map { r in (0..<width).filter { mask[r * width + $0] != 0 }.map { ids[r * width + $0] } }
        return (sources, idRows(try io.integers("out.greedy_ids"), rows: 2))
    }

    /// Greedy ids of `model` for `sources`, 10 new tokens.
    func greedy(_ model: Seq2SeqModel, _ sources: [[Int]]) throws -> [[Int]] {
        var config = model.generationDefaults
        config.maxNewTokens = 10
        config.minNewTokens = 10
        return try model.generate(sources: sources, config: config).sequences
    }

    @Test("T5: the folder holds int8 block projections and head, loads, a layer stays within the bound, greedy ids equal float32's", arguments: Int8Scheme.allCases)
    func t5RoundTrip(_ scheme: Int8Scheme) throws {
        let source = try fixtureFolder("t5")
        let out = temporaryFolder("t5-\(scheme.rawValue)")
        defer { try? FileManager.default.removeItem(at: out) }
        let report = try ModelQuantization.quantize(model: source, out: out, scheme: scheme, keep: .none)
        #expect(report.addedHead, "the tied head gets its own int8 copy")
        #expect(report.kept.isEmpty && report.keptBytes == 0)
        let original = try SafeTensorsCheckpoint(directory: source), quantized = try SafeTensorsCheckpoint(directory: out)
        let config = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        #expect(config.contains("\"quantization_config\"") && config.contains(scheme.rawValue))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("generation_config.json").path))
        // Every block projection is I8 with its scale; everything else as stored, byte for byte.
        for name in original.tensorNames {
            let info = try #require(quantized.info(name))
            if ModelQuantization.isBlockProjection(name) {
                #expect(info.dtype == .I8, "\(name)")
                let scale = try #require(quantized.info(name + "_scale"), "\(name)_scale")
                #expect(scale.shape == scheme.scaleShape(n: info.shape[0], k: info.shape[1]) && scale.dtype == (scheme == .group32 ? .F16 : .F32))
            } else {
                #expect(quantized.storedTensor(name)!.bytes.buffer.elementsEqual(original.storedTensor(name)!.bytes.buffer), "\(name) changed")
            }
        }
        #expect(report.quantized.count == original.tensorNames.filter(ModelQuantization.isBlockProjection).count + 1)

        // One layer: the int8 product against the float32 layer's exact product, within the
        // weight's quantization (half a step per element) plus the kernels' bounds.
        let name = "encoder.block.0.layer.1.DenseReluDense.wi"
        let w = try original.tensor(name + ".weight")
        let (n, k) = (w.shape[0], w.shape[1])
        let p = ParameterLoader(quantized)
        let layer = try Linear(loading: p, name, in: k, out: n, bias: false)
        let q = try #require(layer.quantized)
        // Each element's own quantization error: half a step, or more where the clip-ratio
        // search clipped it (checked against the scales in QuantizationClipTests).
        let wq = q.dequantized().scalars
        var rng = SeededRNG(seed: caseSeed(k, n))
        for rows in [1, 2, 5] {
            let x = Tensor(shape: [rows, k], scalars: (0..<(rows * k)).map { _ in Float.random(in: -2...2, using: &rng) })
            for variant in KernelVariant.supported {
                let y = layer(x, compute: try Compute(backend: .native(variant), threads: 1)).scalars
                let xs = x.scalars, ws = w.scalars, span = scheme == .channel ? k : 32
                for i in 0..<rows {
                    for j in 0..<n {
                        var exact = 0.0, bound = 0.0
                        for pp in 0..<k {
                            let step = Double(q.scale(j, pp / span))
                            exact += Double(xs[i * k + pp]) * Double(ws[j * k + pp])
                            // weight: its element's error; activations
                            // (more than 2 rows): half a step of max|x in its group| / 127
                            let xstep = rows > 2 ? Double((pp / 32 * 32..<min(k, pp / 32 * 32 + 32)).map { abs(xs[i * k + $0]) }.max()!) / 127 : 0
                            let werr = abs(Double(ws[j * k + pp]) - Double(wq[j * k + pp]))
                            bound += abs(Double(xs[i * k + pp])) * werr * (1 + 1e-3) + 0.50001 * xstep * (abs(Double(ws[j * k + pp])) + step)
                            bound += Double(k + 3) * 0x1p-24 * abs(Double(xs[i * k + pp]) * Double(ws[j * k + pp])) * 2
                        }
                        #expect(abs(Double(y[i * n + j]) - exact) <= bound, "\(variant) rows \(rows) [\(i), \(j)]: \(y[i * n + j]) vs \(exact), bound \(bound)")
                    }
                }
            }
        }

        // The model: loads, and greedy ids equal the float32 folder's on the golden sources.
        let golden = try goldenT5Greedy()
        let expected = try greedy(try Seq2SeqModel(directory: source), golden.sources)
        var loaded = try Seq2SeqModel(directory: out)
        #expect(try greedy(loaded, golden.sources) == expected)
        #expect(expected == golden.expected)
        // Its memory's keys and values are held in bfloat16 unless asked for float32.
        let encoded = try loaded.encode(golden.sources)
        #expect(try loaded.makeCache(for: encoded).crossAttention?.allSatisfy { $0.half != nil } == true)
        loaded.memoryPrecision = .float32
        #expect(try loaded.makeCache(for: encoded).crossAttention?.allSatisfy { $0.half == nil && $0.packer != nil } == true)
        #expect(try greedy(loaded, golden.sources) == expected)
    }

    @Test("matrices kept 16-bit: by name and by relative error; listed in config.json, stored F16, loaded 16-bit; greedy ids equal float32's", arguments: Int8Scheme.allCases)
    func keptModules(_ scheme: Int8Scheme) throws {
        let source = try fixtureFolder("t5")
        let original = try SafeTensorsCheckpoint(directory: source)
        let kept = "encoder.block.0.layer.1.DenseReluDense.wi"
        let out = temporaryFolder("t5-kept-\(scheme.rawValue)")
        defer { try? FileManager.default.removeItem(at: out) }
        let report = try ModelQuantization.quantize(model: source, out: out, scheme: scheme, keep: KeepFloatRule(maxRelativeError: nil, modules: [kept]))
        #expect(report.kept == [kept] && report.addedHead)
        #expect(!report.quantized.contains(kept + ".weight") && report.quantized.count == original.tensorNames.filter(ModelQuantization.isBlockProjection).count)
        let quantized = try SafeTensorsCheckpoint(directory: out)
        let info = try #require(quantized.info(kept + ".weight"))
        #expect(info.dtype == .F16 && quantized.info(kept + ".weight_scale") == nil)
        #expect(report.keptBytes == info.elementCount * 2 && report.keptByteFraction > 0 && report.keptByteFraction < 1)
        let config = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        #expect(config.contains("\"modules_to_not_convert\": [\"\(kept)\"]"))
        // Loaded 16-bit, holding the float32 weights rounded to float16.
        let w = try original.tensor(kept + ".weight")
        let layer = try Linear(loading: ParameterLoader(quantized), kept, in: w.shape[1], out: w.shape[0], bias: false)
        #expect(layer.weightFormat == .float16)
        #expect(layer.weight.scalars == w.scalars.map { HalfType.f16.float(HalfType.halfBits($0)) })
        // The model loads and decodes as the float32 folder does.
        let golden = try goldenT5Greedy()
        #expect(try greedy(try Seq2SeqModel(directory: out), golden.sources) == golden.expected)

        // By relative error: exactly the matrices above the threshold stay 16-bit, and each
        // error is ‖W − Q(W)‖ / ‖W‖ of the int8 weight as written (naive oracle).
        let all = temporaryFolder("t5-all-\(scheme.rawValue)")
        defer { try? FileManager.default.removeItem(at: all) }
        let full = try ModelQuantization.quantize(model: source, out: all, scheme: scheme, keep: .none)
        let allCheckpoint = try SafeTensorsCheckpoint(directory: all)
        let p = ParameterLoader(allCheckpoint)
        for name in full.quantized where name != "lm_head.weight" {
            let w = try original.tensor(name)
            let q = try #require(try p.quantizedMatrix(name, shape: w.shape))
            let d = q.dequantized().scalars
            var diff = 0.0, norm = 0.0
            for (x, y) in zip(w.scalars, d) {
                diff += (Double(x) - Double(y)) * (Double(x) - Double(y))
                norm += Double(x) * Double(x)
            }
            let expected = (diff / norm).squareRoot()
            #expect(abs(try #require(full.relativeErrors[name]) - expected) <= 1e-9 * expected, "\(name)")
        }
        let errors = full.relativeErrors.values.sorted()
        let threshold = errors[errors.count / 2]
        let byError = temporaryFolder("t5-error-\(scheme.rawValue)")
        defer { try? FileManager.default.removeItem(at: byError) }
        let r = try ModelQuantization.quantize(model: source, out: byError, scheme: scheme, keep: KeepFloatRule(maxRelativeError: threshold))
        let above = full.relativeErrors.filter { $0.value > threshold && $0.key != "lm_head.weight" }.keys.map { String($0.dropLast(".weight".count)) }
        #expect(Set(r.kept) == Set(above) && !above.isEmpty && r.kept.count < full.quantized.count)
        #expect(r.addedHead == (full.relativeErrors["lm_head.weight"]! <= threshold), "a head kept float is not added")
        _ = try Seq2SeqModel(directory: byError)

        // A module to keep that quantize does not cover is a thrown error.
        let bad = temporaryFolder("t5-bad-\(scheme.rawValue)")
        defer { try? FileManager.default.removeItem(at: bad) }
        #expect(throws: ModelFileError.self) {
            try ModelQuantization.quantize(model: source, out: bad, scheme: scheme, keep: KeepFloatRule(maxRelativeError: nil, modules: ["shared"]))
        }
    }

    @Test("a folder whose modules_to_not_convert is malformed or names missing or int8 tensors is a thrown error")
    func malformedKeptModules() throws {
        let source = try fixtureFolder("t5")
        let kept = "decoder.block.1.layer.0.SelfAttention.o"
        let out = temporaryFolder("t5-malformed")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try ModelQuantization.quantize(model: source, out: out, scheme: .channel, keep: KeepFloatRule(maxRelativeError: nil, modules: [kept]))
        let configURL = out.appendingPathComponent("config.json")
        let text = try String(contentsOf: configURL, encoding: .utf8)
        let listed = "\"modules_to_not_convert\": [\"\(kept)\"]"
        #expect(text.contains(listed))
        _ = try Seq2SeqModel(directory: out)
        func load(_ replacement: String) throws {
            try Data(text.replacingOccurrences(of: listed, with: "\"modules_to_not_convert\": " + replacement).utf8).write(to: configURL)
            _ = try Seq2SeqModel(directory: out)
        }
        #expect(throws: CheckpointError.self) { try load("[\"encoder.block.9.layer.0.SelfAttention.q\"]") }  // no such tensor
        #expect(throws: CheckpointError.self) { try load("[\"encoder.block.0.layer.0.SelfAttention.q\"]") }  // int8
        #expect(throws: CheckpointError.self) { try load("[\"shared\"]") }  // a float matrix, but not one quantize covers
        #expect(throws: CheckpointError.self) { try load("[\"encoder.block.0.layer.0.layer_norm\"]") }  // a vector
        #expect(throws: ModelFileError.self) { try load("[\"\(kept)\", 42]") }
        #expect(throws: ModelFileError.self) { try load("\"\(kept)\"") }
        #expect(throws: ModelFileError.self) { try load("{}") }
        try load("[]")  // an empty list: nothing kept to check, the F16 tensor loads as any float weight
        try load("null")
        try load("[\"\(kept)\"]")
    }

    @Test("Marian and Llama folders quantize and load")
    func otherFamilies() throws {
        for (folder, load) in [
            ("marian", { (u: URL) throws in _ = try Seq2SeqModel(directory: u) }),
            ("lm/llama", { (u: URL) throws in _ = try DecoderOnlyModel(directory: u) }),
        ] as [(String, (URL) throws -> Void)] {
            let source = try folder.hasPrefix("lm/") ? lmFolder(String(folder.dropFirst(3))) : fixtureFolder(folder)
            let out = temporaryFolder(folder.replacingOccurrences(of: "/", with: "-"))
            defer { try? FileManager.default.removeItem(at: out) }
            let report = try ModelQuantization.quantize(model: source, out: out, scheme: .group32)
            #expect(report.quantized.count > 0, "\(folder)")
            // The default rule: the value projections, and matrices above 0.01 relative error.
            let values = report.relativeErrors.keys.filter(KeepFloatRule.isValueProjection).map { String($0.dropLast(".weight".count)) }
            let above = report.relativeErrors.filter { $0.value > 0.01 }.keys.map { String($0.dropLast(".weight".count)) }
            #expect(!values.isEmpty && Set(report.kept) == Set(values).union(above), "\(folder): kept \(report.kept)")
            try load(out)
        }
    }

    @Test("the default rule keeps T5's value projections 16-bit: its attention projections load .mixed, greedy ids equal float32's", arguments: Int8Scheme.allCases)
    func defaultRuleKeepsValues(_ scheme: Int8Scheme) throws {
        #expect(KeepFloatRule.isValueProjection("encoder.layer.0.attention.self.value.weight"))
        #expect(KeepFloatRule.isValueProjection("decoder.block.2.layer.1.EncDecAttention.v.weight"))
        #expect(KeepFloatRule.isValueProjection("model.layers.3.self_attn.v_proj.weight"))
        #expect(!KeepFloatRule.isValueProjection("model.layers.3.self_attn.v_proj.bias"))
        #expect(!KeepFloatRule.isValueProjection("encoder.block.0.layer.0.SelfAttention.o.weight"))
        #expect(!KeepFloatRule.isValueProjection("weight"))
        let source = try fixtureFolder("t5")
        let out = temporaryFolder("t5-default-\(scheme.rawValue)")
        defer { try? FileManager.default.removeItem(at: out) }
        let report = try ModelQuantization.quantize(model: source, out: out, scheme: scheme)
        let original = try SafeTensorsCheckpoint(directory: source)
        let values = original.tensorNames.filter { ModelQuantization.isBlockProjection($0) && KeepFloatRule.isValueProjection($0) }
        #expect(values.count == 6, "2 encoder and 2 decoder layers: 2 + 2 self-attention and 2 cross-attention values")
        #expect(Set(values.map { String($0.dropLast(".weight".count)) }).isSubset(of: Set(report.kept)))
        let config = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        #expect(config.contains("\"keep_float_value_projections\": true"))
        let model = try Seq2SeqModel(directory: out)
        #expect(model.encoder.layers[0].selfAttention.inProjection.weightFormat == .mixed)
        let golden = try goldenT5Greedy()
        #expect(try greedy(model, golden.sources) == golden.expected)
    }

    @Test("a tied head's table that is no float matrix (rank 1, integers) is a thrown error naming it, not a trap")
    func tiedTableNotAMatrix() throws {
        let fm = FileManager.default
        func bytes(_ count: Int) -> RawBytes { RawBytes(count: count) { $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let cases: [(type: String, table: String, tensor: StoredTensor)] = [
            ("llama", "model.embed_tokens.weight", StoredTensor(name: "model.embed_tokens.weight", dtype: .F32, shape: [8], bytes: bytes(32))),
            ("t5", "shared.weight", StoredTensor(name: "shared.weight", dtype: .F32, shape: [8], bytes: bytes(32))),
            ("qwen2", "model.embed_tokens.weight", StoredTensor(name: "model.embed_tokens.weight", dtype: .I32, shape: [4, 2], bytes: bytes(32))),
        ]
        for (i, c) in cases.enumerated() {
            let source = temporaryFolder("tied-\(i)"), out = temporaryFolder("tied-\(i)-out")
            defer {
                try? fm.removeItem(at: source)
                try? fm.removeItem(at: out)
            }
            try fm.createDirectory(at: source, withIntermediateDirectories: true)
            try Data("{\"model_type\": \"\(c.type)\", \"tie_word_embeddings\": true}".utf8).write(to: source.appendingPathComponent("config.json"))
            try SafeTensorsWriter.writeStored([c.tensor], to: source.appendingPathComponent("model.safetensors"))
            do {
                _ = try ModelQuantization.quantize(model: source, out: out, scheme: .channel)
                Issue.record("\(c.type): a tied table \(c.tensor.dtype) \(c.tensor.shape) was quantized")
            } catch let CheckpointError.invalidConfig(message) {
                #expect(message.contains("'\(c.table)'") && message.contains("\(c.tensor.shape)"), "\(message)")
            }
        }
    }

    @Test("bad folders and bad int8 tensors are thrown errors")
    func errors() throws {
        let source = try fixtureFolder("t5")
        let out = temporaryFolder("errors")
        defer { try? FileManager.default.removeItem(at: out) }
        #expect(throws: ModelFileError.self) {
            try ModelQuantization.quantize(model: URL(fileURLWithPath: "/nonexistent-attend-model"), out: out, scheme: .channel)
        }
        #expect(throws: ModelFileError.self) { try ModelQuantization.quantize(model: source, out: source, scheme: .channel) }
        _ = try ModelQuantization.quantize(model: source, out: out, scheme: .channel)
        let again = temporaryFolder("errors-again")
        defer { try? FileManager.default.removeItem(at: again) }
        #expect(throws: ModelFileError.self) { try ModelQuantization.quantize(model: source, out: out, scheme: .channel) }  // not empty
        #expect(throws: ModelFileError.self) { try ModelQuantization.quantize(model: out, out: again, scheme: .channel) }  // already quantized
        let empty = temporaryFolder("errors-empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(throws: ModelFileError.self) { try ModelQuantization.quantize(model: empty, out: again, scheme: .channel) }  // no config.json

        // An int8 weight with -128, without its scale, or read where a float tensor is expected.
        func file(_ tensors: [StoredTensor]) throws -> SafeTensorsFile {
            let url = empty.appendingPathComponent("w.safetensors")
            try SafeTensorsWriter.writeStored(tensors, to: url)
            return try SafeTensorsFile(contentsOf: url)
        }
        func bytes(_ v: [UInt8]) -> RawBytes { RawBytes(count: v.count) { $0.copyBytes(from: v) } }
        let scale = bytes(withUnsafeBytes(of: Float(0.5)) { Array($0) } + withUnsafeBytes(of: Float(0.5)) { Array($0) })
        let bad = try file([
            StoredTensor(name: "l.weight", dtype: .I8, shape: [2, 2], bytes: bytes([1, 2, 0x80, 3])),
            StoredTensor(name: "l.weight_scale", dtype: .F32, shape: [2], bytes: scale),
        ])
        #expect(throws: CheckpointError.self) { try Linear(loading: ParameterLoader(bad), "l", in: 2, out: 2, bias: false) }
        #expect(throws: CheckpointError.self) { try ParameterLoader(bad).load("l.weight", shape: [2, 2]) }
        let noScale = try file([StoredTensor(name: "l.weight", dtype: .I8, shape: [2, 2], bytes: bytes([1, 2, 3, 4]))])
        #expect(throws: CheckpointError.self) { try Linear(loading: ParameterLoader(noScale), "l", in: 2, out: 2, bias: false) }
        let good = try file([
            StoredTensor(name: "l.weight", dtype: .I8, shape: [2, 2], bytes: bytes([1, 2, 0x81, 3])),
            StoredTensor(name: "l.weight_scale", dtype: .F32, shape: [2], bytes: scale),
        ])
        let layer = try Linear(loading: ParameterLoader(good), "l", in: 2, out: 2, bias: false)
        #expect(layer.weight.scalars == [0.5, 1, -63.5, 1.5])
    }
}
