// Decoder-only checkpoints (GPT-2, Llama, Mistral, Qwen2) loaded from their folders against
// what transformers 5.24 computes from the same folders:
//
//   Fixtures/lm/{gpt2,llama,qwen2}, lm_golden.json   shared/golden/lm: per prompt, greedy
//       (10 new tokens, min 10) and 3-beam ids (early_stopping) exactly, last-position logits within 1e-4
//   Fixtures/lm/<others>, lm_extra.json              make_lm_fixtures.py: rope linear / llama3 /
//       yarn / dynamic, Mistral, untied heads, sharded, F16 and BF16 files, attention/MLP biases;
//       two prompts of different lengths generated as ONE left-padded batch (greedy, 3 beams)
//
// Prefill (the whole prompt in one pass) then one token per step with the cache; the logits
// are also checked when the prompt goes in one token at a time.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

struct LMCase: Sendable, CustomTestStringConvertible {
    let folder: String
    let prompts: [[Int]]
    let greedy: [[Int]]
    let beam3: [[Int]]
    let logits: [[Float]]
    /// lm_extra: last logits of greedy row 0 (prompt + new tokens) in one pass.
    let longLogits: [Float]?
    /// One left-padded batch (lm_extra) rather than one prompt at a time (lm_golden).
    let batched: Bool
    let maxNew: Int
    var testDescription: String { folder }

    static func load(_ file: String, batched: Bool) -> [LMCase] {
        guard let url = Bundle.module.url(forResource: file, withExtension: "json", subdirectory: "Fixtures/lm"),
            let data = try? Data(contentsOf: url),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let cases = json["cases"] as? [String: Any]
        else { return [] }
        func ints(_ x: Any?) -> [[Int]] { (x as? [[Any]] ?? []).map { $0.map { ($0 as! NSNumber).intValue } } }
        func floats(_ x: Any?) -> [[Float]] { (x as? [[Any]] ?? []).map { $0.map { ($0 as! NSNumber).floatValue } } }
        return cases.keys.sorted().map { name in
            if batched {
                let c = cases[name] as! [String: Any]
                return LMCase(
                    folder: name, prompts: ints(c["prompts"]), greedy: ints(c["greedy"]), beam3: ints(c["beam3"]),
                    logits: floats(c["logits_last"]), longLogits: floats([c["logits_long"] as Any]).first,
                    batched: true, maxNew: 8)
            }
            let list = cases[name] as! [[String: Any]]
            return LMCase(
                folder: name, prompts: ints(list.map { $0["prompt"]! }), greedy: ints(list.map { $0["greedy"]! }),
                beam3: ints(list.map { $0["beam3"]! }), logits: floats(list.map { $0["logits_last"]! }), longLogits: nil,
                batched: false, maxNew: 10)
        }
    }
    static let all = load("lm_golden", batched: false) + load("lm_extra", batched: true) + load("lm_half", batched: true)
}

func lmFolder(_ name: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/lm"), "Fixtures/lm/\(name) is missing")
}

func maxAbs(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

@Suite("Decoder-only language models (transformers parity)")
struct CausalLMTests {
    @Test("the fixtures are all there")
    func fixturesPresent() {
        #expect(LMCase.all.filter { !$0.batched }.map(\.folder) == ["gpt2", "llama", "qwen2"])
        #expect(LMCase.all.filter(\.batched).count == 9)
    }

    @Test("last-position logits within 1e-4: prefill in one pass and token by token", arguments: LMCase.all)
    func logits(_ c: LMCase) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(c.folder))
        for (prompt, expected) in zip(c.prompts, c.logits) {
            var cache = model.makeCache(rows: 1, capacity: 4)
            let prefill = model.nextTokenLogits(appending: [prompt], to: &cache, compute: .default).scalars
            #expect(maxAbs(prefill, expected) <= 1e-4, "\(c.folder) prefill \(prompt): \(maxAbs(prefill, expected))")
            var stepCache = model.makeCache(rows: 1, capacity: 2)
            var stepped: [Float] = []
            for t in prompt { stepped = model.nextTokenLogits(appending: [[t]], to: &stepCache, compute: .default).scalars }
            #expect(maxAbs(stepped, expected) <= 1e-4, "\(c.folder) stepped \(prompt): \(maxAbs(stepped, expected))")
            var oracleCache = model.makeCache(rows: 1, capacity: 4)
            let oracle = model.nextTokenLogits(appending: [prompt], to: &oracleCache, compute: try Compute(backend: .swiftSIMD, threads: 2)).scalars
            #expect(maxAbs(oracle, expected) <= 1e-4, "\(c.folder) Swift SIMD backend \(prompt): \(maxAbs(oracle, expected))")
        }
    }

    @Test(
        "logits of a longer sequence in one pass (llama_dynamic: past max_position_embeddings, scaled frequencies)",
        arguments: LMCase.all.filter { $0.longLogits != nil })
    func longLogits(_ c: LMCase) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(c.folder))
        let expected = try #require(c.longLogits)
        var cache = model.makeCache(rows: 1, capacity: 4)
        let got = model.nextTokenLogits(appending: [c.greedy[0]], to: &cache, compute: .default).scalars
        #expect(maxAbs(got, expected) <= 1e-4, "\(c.folder) \(c.greedy[0].count) tokens: \(maxAbs(got, expected))")
        if c.folder == "llama_dynamic", let rotary = model.rotary {
            // The scaling matters here: without it the logits differ.
            #expect(rotary.frequencies(maxPosition: c.greedy[0].count - 1) != rotary.inverseFrequencies)
        }
    }

    @Test("greedy and 3-beam ids equal transformers' generate", arguments: LMCase.all)
    func generation(_ c: LMCase) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(c.folder))
        let eos = model.generationDefaults.eosTokenIDs
        #expect(!eos.isEmpty)
        var greedy = GenerationConfig(maxNewTokens: c.maxNew)
        greedy.eosTokenIDs = eos
        greedy.minNewTokens = c.maxNew
        var beam = GenerationConfig(maxNewTokens: c.maxNew, numBeams: 3)
        beam.eosTokenIDs = eos
        beam.earlyStopping = .whenBeamsFinished
        for threads in [1, 2] {
            let compute = try Compute.default.with(threads: threads)
            if c.batched {
                #expect(try model.generate(prompts: c.prompts, config: greedy, compute: compute).sequences == c.greedy, "\(c.folder) greedy batch")
                #expect(try model.generate(prompts: c.prompts, config: beam, compute: compute).sequences == c.beam3, "\(c.folder) beam batch")
            } else {
                for (i, prompt) in c.prompts.enumerated() {
                    #expect(
                        try model.generate(prompts: [prompt], config: greedy, compute: compute).sequences == [c.greedy[i]], "\(c.folder) greedy \(i)")
                    #expect(try model.generate(prompts: [prompt], config: beam, compute: compute).sequences == [c.beam3[i]], "\(c.folder) beam \(i)")
                }
            }
        }
    }
}
