// Sliding-window decoder-only models against transformers 5.24, generating well past the window
// (Fixtures/lm/{mistral_window8,qwen2_window}, lm_window.json, make_lm_window_fixtures.py):
//
//   mistral_window8   Mistral, sliding_window 8 on both layers
//   qwen2_window      Qwen2, use_sliding_window, sliding_window 6, max_window_layers 1 of 3
//                     (layer 0 sees everything, layers 1 and 2 the window)
//
// Prompts of 5 and 20 tokens (the second already past the window at prefill), 24 new tokens:
// greedy and 3-beam ids exact, each prompt alone and both as one left-padded batch; the last
// position's logits within 1e-4 after a prefill in one pass, token by token, for 44 tokens in
// one pass and on the Swift oracle, and for 160 tokens (past the 128-token short path: the
// fused kernel skips the key blocks left of the window) in one pass and as 100 + 60 (a prefill
// continuing a cache).
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

struct WindowLMCase: Sendable, CustomTestStringConvertible {
    let folder: String
    let prompts: [[Int]]
    let greedy: [[Int]], beam3: [[Int]], greedyBatch: [[Int]], beam3Batch: [[Int]]
    let logits: [[Float]]
    let longLogits: [Float]
    let ids160: [Int]
    let logits160: [Float]
    var testDescription: String { folder }

    static let all: [WindowLMCase] = {
        guard let url = Bundle.module.url(forResource: "lm_window", withExtension: "json", subdirectory: "Fixtures/lm"),
            let data = try? Data(contentsOf: url),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let cases = json["cases"] as? [String: [String: Any]]
        else { return [] }
        func ints(_ x: Any?) -> [[Int]] { (x as? [[Any]] ?? []).map { $0.map { ($0 as! NSNumber).intValue } } }
        func floats(_ x: Any?) -> [[Float]] { (x as? [[Any]] ?? []).map { $0.map { ($0 as! NSNumber).floatValue } } }
        return cases.keys.sorted().map { name in
            let c = cases[name]!
            return WindowLMCase(
                folder: name, prompts: ints(c["prompts"]), greedy: ints(c["greedy"]), beam3: ints(c["beam3"]),
                greedyBatch: ints(c["greedy_batch"]), beam3Batch: ints(c["beam3_batch"]), logits: floats(c["logits_last"]),
                longLogits: floats([c["logits_long"] as Any]).first ?? [], ids160: ints([c["ids_160"] as Any]).first ?? [],
                logits160: floats([c["logits_160"] as Any]).first ?? [])
        }
    }()
}

@Suite("Sliding-window attention in decoder-only models (transformers parity past the window)")
struct SlidingWindowLMTests {
    static let newTokens = 24

    @Test("the fixtures are there and the windows load per layer")
    func configs() throws {
        #expect(WindowLMCase.all.map(\.folder) == ["mistral_window8", "qwen2_window"])
        let mistral = try DecoderOnlyModel(directory: try lmFolder("mistral_window8"))
        #expect(mistral.layers.map(\.slidingWindow) == [8, 8])
        #expect(mistral.positionLimit == nil)
        let qwen = try DecoderOnlyModel(directory: try lmFolder("qwen2_window"))
        #expect(qwen.layers.map(\.slidingWindow) == [nil, 6, 6])
    }

    @Test("Qwen2 windows: layer_types, else max_window_layers; none without use_sliding_window")
    func qwen2Layers() throws {
        func layers(_ extra: String) throws -> (Int?, [Bool]) {
            let json = """
                {"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 4,
                 "num_attention_heads": 2\(extra)}
                """
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("qwen2-window-\(UUID().uuidString).json")
            try Data(json.utf8).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let c = try CausalLMConfig(contentsOf: url)
            return (c.slidingWindow, c.slidingWindowLayers)
        }
        #expect(try layers("") == (nil, [false, false, false, false]))
        #expect(try layers(#", "use_sliding_window": true, "max_window_layers": 2"#) == (4096, [false, false, true, true]))
        #expect(try layers(#", "use_sliding_window": true, "sliding_window": 5"#) == (5, [false, false, false, false]))
        #expect(
            try layers(#", "use_sliding_window": true, "sliding_window": 5, "layer_types": ["sliding_attention", "full_attention", "attention", "sliding_attention"]"#)
                == (5, [true, false, false, true]))
        #expect(try layers(#", "use_sliding_window": false, "sliding_window": 5, "max_window_layers": 0"#) == (nil, [false, false, false, false]))
        #expect(throws: ModelFileError.self) { try layers(#", "use_sliding_window": true, "layer_types": ["full_attention"]"#) }
        #expect(throws: ModelFileError.self) {
            try layers(#", "use_sliding_window": true, "layer_types": ["full_attention", "chunked", "full_attention", "full_attention"]"#)
        }
        #expect(throws: ModelFileError.self) { try layers(#", "use_sliding_window": true, "sliding_window": 0"#) }
    }

    @Test("last-position logits within 1e-4: prefill, token by token, 44 tokens in one pass, Swift oracle", arguments: WindowLMCase.all)
    func logits(_ c: WindowLMCase) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(c.folder))
        for (prompt, expected) in zip(c.prompts, c.logits) {
            var cache = model.makeCache(rows: 1, capacity: 4)
            let prefill = model.nextTokenLogits(appending: [prompt], to: &cache).scalars
            #expect(maxAbs(prefill, expected) <= 1e-4, "\(c.folder) prefill of \(prompt.count): \(maxAbs(prefill, expected))")
            var stepCache = model.makeCache(rows: 1, capacity: 2)
            var stepped: [Float] = []
            for t in prompt { stepped = model.nextTokenLogits(appending: [[t]], to: &stepCache).scalars }
            #expect(maxAbs(stepped, expected) <= 1e-4, "\(c.folder) stepped \(prompt.count): \(maxAbs(stepped, expected))")
        }
        let long = c.greedy[1]
        #expect(long.count == 44)
        for compute in [Compute.default, try Compute(backend: .swiftSIMD, threads: 2)] {
            var cache = model.makeCache(rows: 1, capacity: 4)
            let got = model.nextTokenLogits(appending: [long], to: &cache, compute: compute).scalars
            #expect(maxAbs(got, c.longLogits) <= 1e-4, "\(c.folder) \(long.count) tokens in one pass (\(compute.backend)): \(maxAbs(got, c.longLogits))")
        }
        #expect(c.ids160.count == 160)
        var cache160 = model.makeCache(rows: 1, capacity: 4)
        let once = model.nextTokenLogits(appending: [c.ids160], to: &cache160).scalars
        #expect(maxAbs(once, c.logits160) <= 1e-4, "\(c.folder) 160 tokens in one pass: \(maxAbs(once, c.logits160))")
        var split = model.makeCache(rows: 1, capacity: 4)
        _ = model.nextTokenLogits(appending: [Array(c.ids160[..<100])], to: &split)
        let continued = model.nextTokenLogits(appending: [Array(c.ids160[100...])], to: &split).scalars
        #expect(maxAbs(continued, c.logits160) <= 1e-4, "\(c.folder) 100 + 60 tokens: \(maxAbs(continued, c.logits160))")
        // The window matters: the same weights without it give other logits.
        let unwindowed = DecoderOnlyModel(
            architecture: model.architecture, embedding: model.embedding, learnedPositions: nil, rotary: model.rotary,
            layers: model.layers.map {
                CausalDecoderLayer(
                    attentionNorm: $0.attentionNorm, qkv: $0.qkv, out: $0.out, feedForwardNorm: $0.feedForwardNorm,
                    feedForward: $0.feedForward, scale: $0.scale)
            }, finalNorm: model.finalNorm, lmHead: model.lmHead, heads: model.heads, kvHeads: model.kvHeads,
            headDim: model.headDim, positionLimit: nil, generationDefaults: model.generationDefaults)
        var cache = unwindowed.makeCache(rows: 1, capacity: 4)
        let full = unwindowed.nextTokenLogits(appending: [long], to: &cache).scalars
        #expect(maxAbs(full, c.longLogits) > 1e-2, "\(c.folder): without the window the logits should differ")
    }

    @Test("greedy and 3-beam ids for 24 new tokens equal transformers' generate, alone and as a padded batch", arguments: WindowLMCase.all)
    func generation(_ c: WindowLMCase) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(c.folder))
        let eos = model.generationDefaults.eosTokenIDs
        var greedy = GenerationConfig(maxNewTokens: Self.newTokens)
        greedy.eosTokenIDs = eos
        greedy.minNewTokens = Self.newTokens
        var beam = GenerationConfig(maxNewTokens: Self.newTokens, numBeams: 3)
        beam.eosTokenIDs = eos
        beam.earlyStopping = .whenBeamsFinished
        for threads in [1, 2] {
            let compute = try Compute.default.with(threads: threads)
            for (i, prompt) in c.prompts.enumerated() {
                #expect(try model.generate(prompts: [prompt], config: greedy, compute: compute).sequences == [c.greedy[i]], "\(c.folder) greedy \(i)")
                #expect(try model.generate(prompts: [prompt], config: beam, compute: compute).sequences == [c.beam3[i]], "\(c.folder) beam \(i)")
            }
            #expect(try model.generate(prompts: c.prompts, config: greedy, compute: compute).sequences == c.greedyBatch, "\(c.folder) greedy batch")
            #expect(try model.generate(prompts: c.prompts, config: beam, compute: compute).sequences == c.beam3Batch, "\(c.folder) beam batch")
        }
    }
}
