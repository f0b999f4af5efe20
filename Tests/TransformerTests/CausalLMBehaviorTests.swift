// Decoder-only generation behavior on the golden folders: a left-padded batch row equals that
// prompt alone, a kept cache continues a conversation exactly as generating from the whole
// history, streaming yields the greedy tokens, sampling is seeded per row (same ids on 1 and 2
// threads), the KV cache stores only the KV heads, and bad folders, configs and prompts throw
// errors naming the file and key (never trap).
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Decoder-only generation behavior")
struct CausalLMBehaviorTests {
    static let folders = ["gpt2", "llama", "qwen2"]
    static let prompts = [[13, 34, 70, 108, 9, 41, 3], [105, 77, 23], [200, 17, 42, 42, 5]]

    static func greedy(_ model: DecoderOnlyModel, _ n: Int) -> GenerationConfig {
        var c = GenerationConfig(maxNewTokens: n)
        c.eosTokenIDs = model.generationDefaults.eosTokenIDs
        return c
    }

    /// A row of a batch result without its left padding (`lead` pads) and end fill.
    static func strip(_ row: [Int], lead: Int, length: Int) -> [Int] { Array(row[lead..<(lead + length)]) }

    @Test("each row of a left-padded batch equals its prompt alone (greedy and 3 beams)", arguments: folders)
    func paddedBatch(_ folder: String) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(folder))
        var greedy = Self.greedy(model, 6)
        greedy.minNewTokens = 6
        var beam = greedy
        beam.numBeams = 3
        beam.minNewTokens = 0
        let width = Self.prompts.map(\.count).max()!
        for config in [greedy, beam] {
            let batch = try model.generate(prompts: Self.prompts, config: config).sequences
            for (i, prompt) in Self.prompts.enumerated() {
                let alone = try model.generate(prompts: [prompt], config: config).sequences[0]
                let lead = width - prompt.count
                let pad = config.pad!
                #expect(batch[i].prefix(lead).allSatisfy { $0 == pad }, "\(folder) row \(i) is not left-padded: \(batch[i])")
                // Beams of different rows may end at different lengths: compare up to the end fill.
                let row = Array(batch[i][lead...])
                #expect(
                    Array(row.prefix(alone.count)) == alone && row.dropFirst(alone.count).allSatisfy { $0 == pad },
                    "\(folder) beams \(config.numBeams) row \(i): batch \(row) alone \(alone)")
            }
        }
    }

    @Test("a kept cache continues a conversation as generating from the whole history", arguments: folders)
    func multiTurn(_ folder: String) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(folder))
        let config = Self.greedy(model, 5)
        // One row: turn 1, then a second user turn on the kept cache.
        let (first, kept) = try model.greedy(prompts: [Self.prompts[0]], config: config)
        var cache = kept
        let turn = [[7, 8, 9]]
        let cachedBefore = cache.length
        #expect(cachedBefore == first[0].count - 1)  // the last token was never fed
        let second = try model.generate(continuing: first, appending: turn, cache: &cache, config: config)
        let scratch = try model.generate(prompts: [first[0] + turn[0]], config: config).sequences
        #expect(second == scratch, "\(folder): continued \(second) from scratch \(scratch)")
        #expect(cache.length == second[0].count - 1)
        // A batch whose turns differ in length: each row equals its own history + turn from scratch.
        let firstPrompts = [Self.prompts[1], Self.prompts[2]]
        let (rows, keptBatch) = try model.greedy(prompts: firstPrompts, config: config)
        var batchCache = keptBatch
        let turns = [[11, 12, 13, 14], [15]]
        let continued = try model.generate(continuing: rows, appending: turns, cache: &batchCache, config: config)
        for r in 0..<2 {
            let historyPads = firstPrompts.map(\.count).max()! - firstPrompts[r].count
            let turnPads = turns.map(\.count).max()! - turns[r].count
            let history = Array(rows[r].dropFirst(historyPads))
            let alone = try model.generate(prompts: [history + turns[r]], config: config).sequences[0]
            // Drop the history's left pads and the turn's left pads (masked, never seen).
            var got = Array(continued[r].dropFirst(historyPads))
            got.removeSubrange(history.count..<(history.count + turnPads))
            #expect(got == alone, "\(folder) row \(r): continued \(got) alone \(alone)")
        }
        // A history that does not fit the cache is an error, not a trap.
        #expect(throws: GenerationError.self) { try model.generate(continuing: [[1, 2]], appending: [[3]], cache: &cache, config: config) }
    }

    @Test("streaming yields the greedy tokens, ending at the end token", arguments: folders)
    func streaming(_ folder: String) async throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(folder))
        let config = Self.greedy(model, 8)
        let expected = try model.generate(prompts: [Self.prompts[0]], config: config).sequences[0].dropFirst(Self.prompts[0].count)
        var got: [Int] = []
        for try await t in model.stream(prompt: Self.prompts[0], config: config) { got.append(t) }
        let eos = Set(config.eosTokenIDs)
        let cut = expected.firstIndex { eos.contains($0) }.map { Array(expected[...$0]) } ?? Array(expected)
        #expect(got == cut)
    }

    @Test("sampling: a seed gives the same ids on 1 and 2 threads, another seed differs", arguments: folders)
    func sampling(_ folder: String) throws {
        let model = try DecoderOnlyModel(directory: try lmFolder(folder))
        var config = Self.greedy(model, 12)
        config.doSample = true
        config.temperature = 1.5
        config.topK = 40
        config.topP = 0.95
        config.repetitionPenalty = 1.2
        config.seed = 7
        let one = try model.generate(prompts: Self.prompts, config: config, compute: try Compute.default.with(threads: 1)).sequences
        let two = try model.generate(prompts: Self.prompts, config: config, compute: try Compute.default.with(threads: 2)).sequences
        #expect(one == two)
        config.seed = 8
        let other = try model.generate(prompts: Self.prompts, config: config).sequences
        #expect(other != one)
    }

    @Test("the cache stores the KV heads only (grouped-query attention)")
    func cacheWidth() throws {
        let model = try DecoderOnlyModel(directory: try lmFolder("llama"))
        #expect(model.heads == 6 && model.kvHeads == 3 && model.headDim == 8)
        var cache = model.makeCache(rows: 1, capacity: 4)
        _ = model.nextTokenLogits(appending: [[1, 2, 3]], to: &cache)
        #expect(cache.layers.allSatisfy { $0.modelDim == 3 * 8 && $0.count == 3 })
    }

    /// A copy of a golden folder with `edit` applied to its config.json text.
    static func edited(_ folder: String, config edit: (String) -> String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lm-\(folder)-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: try lmFolder(folder), to: dir)
        let url = dir.appendingPathComponent("config.json")
        try edit(try String(contentsOf: url, encoding: .utf8)).write(to: url, atomically: true, encoding: .utf8)
        return dir
    }

    static func loadError(_ dir: URL) -> String {
        do {
            _ = try DecoderOnlyModel(directory: dir)
            return "loaded"
        } catch {
            return "\(error)"
        }
    }

    @Test("bad folders and configs throw errors naming the file and key")
    func badFiles() throws {
        let cases: [(String, String, (String) -> String, [String])] = [
            (
                "llama", "unknown model_type", { $0.replacingOccurrences(of: "\"llama\"", with: "\"falcon\"") },
                ["config.json", "model_type", "falcon"]
            ),
            (
                "llama", "kv heads not dividing", { $0.replacingOccurrences(of: "\"num_key_value_heads\": 3", with: "\"num_key_value_heads\": 4") },
                ["config.json", "num_key_value_heads"]
            ),
            ("llama", "missing hidden_size", { $0.replacingOccurrences(of: "\"hidden_size\": 48,", with: "") }, ["config.json", "hidden_size"]),
            (
                "llama", "unknown rope type", { $0.replacingOccurrences(of: "\"rope_type\": \"default\"", with: "\"rope_type\": \"longrope\"") },
                ["config.json", "longrope"]
            ),
            (
                "llama", "linear without factor", { $0.replacingOccurrences(of: "\"rope_type\": \"default\"", with: "\"rope_type\": \"linear\"") },
                ["config.json", "factor"]
            ),
            (
                "qwen2", "wrong width", { $0.replacingOccurrences(of: "\"hidden_size\": 32", with: "\"hidden_size\": 40") },
                ["model.embed_tokens.weight"]
            ),
            (
                "gpt2", "untied without lm_head",
                { $0.replacingOccurrences(of: "\"tie_word_embeddings\": true", with: "\"tie_word_embeddings\": false") },
                ["lm_head.weight"]
            ),
            ("gpt2", "invalid JSON", { String($0.dropLast(3)) }, ["config.json"]),
        ]
        for (folder, what, edit, words) in cases {
            let dir = try Self.edited(folder, config: edit)
            defer { try? FileManager.default.removeItem(at: dir) }
            let message = Self.loadError(dir)
            #expect(words.allSatisfy { message.contains($0) }, "\(what): \(message)")
        }
        #expect(Self.loadError(URL(fileURLWithPath: "/nonexistent/lm")).contains("/nonexistent/lm"))
        let t5 = try fixtureFolder("t5")
        #expect(Self.loadError(t5).contains("model_type"))
        let qwen2 = try lmFolder("qwen2")
        #expect(!DecoderOnlyModel.handles(directory: t5) && DecoderOnlyModel.handles(directory: qwen2))
    }

    @Test("a CausalLMConfig edited in code is validated before the build: CheckpointError.invalidConfig, never a trap")
    func editedConfig() throws {
        func config(_ folder: String) throws -> CausalLMConfig {
            try CausalLMConfig(contentsOf: try lmFolder(folder).appendingPathComponent("config.json"))
        }
        func weights(_ folder: String) throws -> TensorSource { try SafeTensorsCheckpoint(directory: try lmFolder(folder)) }
        for folder in ["gpt2", "llama", "qwen2"] {
            try config(folder).validate()
            _ = try DecoderOnlyModel(config: try config(folder), weights: try weights(folder))
        }
        let edits: [(String, String, (inout CausalLMConfig) -> Void)] = [
            ("gpt2", "learnedPositions", { $0.learnedPositions = nil }),
            ("gpt2", "heads", { ($0.heads, $0.kvHeads) = (5, 5) }),
            ("gpt2", "kvHeads", { $0.kvHeads = 2 }),
            ("gpt2", "rotary", { $0.rotary = RotaryFrequencies(dim: $0.headDim, base: 10000) }),
            ("gpt2", "slidingWindowLayers", { $0.slidingWindowLayers = [] }),
            ("gpt2", "normEpsilon", { $0.normEpsilon = -1 }),
            ("gpt2", "layers", { ($0.layers, $0.slidingWindowLayers) = (0, []) }),
            ("llama", "slidingWindowLayers", { $0.slidingWindowLayers = [] }),
            ("llama", "slidingWindow", { ($0.slidingWindow, $0.slidingWindowLayers) = (0, [Bool](repeating: true, count: $0.layers)) }),
            ("llama", "kvHeads", { $0.kvHeads = 4 }),
            ("llama", "rotary", { $0.rotary = nil }),
            ("llama", "rotary dim", { $0.rotary = RotaryFrequencies(dim: $0.headDim + 2, base: 10000) }),
            ("llama", "learnedPositions", { $0.learnedPositions = 64 }),
            ("qwen2", "vocabSize", { $0.vocabSize = 0 }),
            ("qwen2", "headDim", { $0.headDim = -4 }),
        ]
        for (folder, field, edit) in edits {
            var c = try config(folder)
            edit(&c)
            do {
                _ = try DecoderOnlyModel(config: c, weights: try weights(folder))
                Issue.record("\(folder) with \(field) edited: built")
            } catch let CheckpointError.invalidConfig(message) {
                #expect(message.contains(field.split(separator: " ")[0]), "\(folder), \(field): \(message)")
            }
        }
    }

    @Test("misused caches through generation: another model's, one prepared for other prompts, zero rows: thrown, not a trap")
    func misusedCaches() async throws {
        let gpt2 = try DecoderOnlyModel(directory: try lmFolder("gpt2"))
        let llama = try DecoderOnlyModel(directory: try lmFolder("llama"))
        let config = Self.greedy(gpt2, 3)
        // A cache of another model: other layer count and width, or the right layers of another width.
        expectInvalidInput("llama's cache", "another model") {
            _ = try gpt2.generate(prompt: [[1, 2]], cache: llama.makeCache(rows: 1), config: config)
        }
        expectInvalidInput("a cache of other width", "another model") {
            _ = try gpt2.generate(prompt: [[1, 2]], cache: CausalLMCache(layers: gpt2.layers.count, rows: 1, kvWidth: 7), config: config)
        }
        var beams = config
        beams.numBeams = 2
        expectInvalidInput("llama's cache, beams", "another model") {
            var cache = llama.makeCache(rows: 1)
            _ = try gpt2.beamSearch(prompt: [[1, 2]], cache: &cache, config: beams)
        }
        await #expect(throws: GenerationError.self) {
            for try await _ in gpt2.greedyStream(prompt: [[1, 2]], cache: llama.makeCache(rows: 1), config: config) {}
        }
        // A cache whose own kind (position by position, the public initializer) fits: it generates.
        let plain = try gpt2.generate(
            prompt: [[1, 2]], cache: CausalLMCache(layers: gpt2.layers.count, rows: 1, kvWidth: gpt2.kvHeads * gpt2.headDim), config: config)
        #expect(plain == (try gpt2.generate(prompt: [[1, 2]], cache: gpt2.makeCache(rows: 1), config: config)))
        // A cache prepared for left-padded prompts of width 3, used with prompts of width 2.
        let (_, prepared) = try gpt2.prepare(prompts: [[1, 2, 3], [4]], config: config)
        expectInvalidInput("a prepared cache reused", "prepared for 3 new tokens") {
            _ = try gpt2.generate(prompt: [[1, 2], [3, 4]], cache: prepared, config: config)
        }
        // Zero or negative rows: a one-row cache; generation throws for other row counts.
        for rows in [0, -3] {
            let cache = gpt2.makeCache(rows: rows, capacity: -1)
            #expect(cache.rows == 1)
            #expect(throws: GenerationError.self) { try gpt2.generate(prompt: [], cache: cache, config: config) }
            #expect(throws: GenerationError.self) { try gpt2.generate(prompt: [[1], [2]], cache: cache, config: config) }
            #expect(try gpt2.generate(prompt: [[1, 2]], cache: cache, config: config).sequences[0].count == 5)
        }
    }

    @Test("checkedNextTokenLogits: bad tokens, another model's cache, a length past the position table throw, cache unchanged")
    func checkedSteps() throws {
        let gpt2 = try DecoderOnlyModel(directory: try lmFolder("gpt2"))  // V = 211, n_positions = 64
        let llama = try DecoderOnlyModel(directory: try lmFolder("llama"))
        var cache = gpt2.makeCache(rows: 2)
        let first = try gpt2.checkedNextTokenLogits(appending: [[1, 2], [3, 4]], to: &cache)
        var reference = gpt2.makeCache(rows: 2)
        #expect(first.scalars == gpt2.nextTokenLogits(appending: [[1, 2], [3, 4]], to: &reference).scalars)
        expectInvalidInput("an id past the vocabulary", "row 1, item 0: token id 211") {
            _ = try gpt2.checkedNextTokenLogits(appending: [[5], [211]], to: &cache)
        }
        expectInvalidInput("a negative id", "token id -1") { _ = try gpt2.checkedNextTokenLogits(appending: [[-1], [5]], to: &cache) }
        expectInvalidInput("ragged rows", "one length") { _ = try gpt2.checkedNextTokenLogits(appending: [[5, 6], [7]], to: &cache) }
        expectInvalidInput("one row for two", "1 token rows") { _ = try gpt2.checkedNextTokenLogits(appending: [[5]], to: &cache) }
        expectInvalidInput("no tokens", "one length") { _ = try gpt2.checkedNextTokenLogits(appending: [[], []], to: &cache) }
        var foreign = llama.makeCache(rows: 2)
        expectInvalidInput("llama's cache", "another model") { _ = try gpt2.checkedNextTokenLogits(appending: [[5], [6]], to: &foreign) }
        #expect(throws: GenerationError.exceedsPositionLimit(setting: "n_positions", limit: 64, requested: 65)) {
            _ = try gpt2.checkedNextTokenLogits(appending: [[Int]](repeating: [Int](repeating: 7, count: 63), count: 2), to: &cache)
        }
        #expect(cache.length == 2 && foreign.length == 0, "a throwing step leaves the cache as it was")
        // Up to the limit it steps, as the unchecked call does.
        let last = try gpt2.checkedNextTokenLogits(appending: [[Int]](repeating: [Int](repeating: 7, count: 62), count: 2), to: &cache)
        #expect(last.scalars == gpt2.nextTokenLogits(appending: [[Int]](repeating: [Int](repeating: 7, count: 62), count: 2), to: &reference).scalars)
        #expect(cache.length == 64)
    }

    @Test("bad prompts and lengths throw GenerationError")
    func badPrompts() throws {
        let gpt2 = try DecoderOnlyModel(directory: try lmFolder("gpt2"))
        let config = Self.greedy(gpt2, 4)
        #expect(throws: GenerationError.self) { try gpt2.generate(prompts: [[1, 211]], config: config) }
        #expect(throws: GenerationError.self) { try gpt2.generate(prompts: [[1, -1]], config: config) }
        #expect(throws: GenerationError.self) { try gpt2.generate(prompts: [[]], config: config) }
        #expect(throws: GenerationError.self) { try gpt2.generate(prompts: [], config: config) }
        // GPT-2's position table holds 64 positions.
        #expect(throws: GenerationError.exceedsPositionLimit(setting: "n_positions", limit: 64, requested: 70)) {
            try gpt2.generate(prompts: [[Int](repeating: 3, count: 60)], config: GenerationConfig(maxNewTokens: 10))
        }
    }

    @Test("the generic entry points with a caller's cache throw past GPT-2's 64 positions (they used to trap)")
    func positionLimitWithOwnCache() async throws {
        let gpt2 = try DecoderOnlyModel(directory: try lmFolder("gpt2"))
        let prompt = [[Int](repeating: 3, count: 60)]
        let limit = GenerationError.exceedsPositionLimit(setting: "n_positions", limit: 64, requested: 70)
        var greedy = GenerationConfig(maxNewTokens: 10)
        var beams = greedy
        beams.numBeams = 2
        #expect(throws: limit) { try gpt2.generate(prompt: prompt, cache: gpt2.makeCache(rows: 1), config: greedy) }
        #expect(throws: limit) { try gpt2.generate(prompt: prompt, cache: gpt2.makeCache(rows: 1), config: beams) }
        var cache = gpt2.makeCache(rows: 1)
        #expect(throws: limit) { try gpt2.greedySearch(prompt: prompt, cache: &cache, config: greedy) }
        #expect(throws: limit) { try gpt2.beamSearch(prompt: prompt, cache: &cache, config: beams) }
        #expect(cache.length == 0, "nothing was computed")
        await #expect(throws: limit) {
            for try await _ in gpt2.greedyStream(prompt: prompt, cache: gpt2.makeCache(rows: 1), config: greedy) {}
        }
        let huge = GenerationError.exceedsPositionLimit(setting: "n_positions", limit: 64, requested: .max)
        greedy.maxNewTokens = .max
        #expect(throws: huge) { try gpt2.generate(prompt: prompt, cache: gpt2.makeCache(rows: 1), config: greedy) }
        // Exactly 64 positions is allowed.
        greedy.maxNewTokens = 4
        greedy.minNewTokens = 4
        let out = try gpt2.generate(prompt: prompt, cache: gpt2.makeCache(rows: 1), config: greedy)
        #expect(out.sequences[0].count == 64)
    }
}
