// Memory of a generation follows what it produces, not the requested maximum: a huge
// `maxNewTokens` (meant as "until the end token") reserves nothing up front, the caches grow
// by doubling, a hard position limit is reported before any work, and bad requests throw.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("generation memory and limits")
struct GenerationMemoryTests {
    /// A processor that forces `eos` once `after` tokens have been generated (prompt of 1).
    static func endAfter(_ after: Int, eos: Int) -> LogitsProcessor {
        { scores, sequences in
            guard sequences[0].count - 1 >= after else { return }
            let (rows, v) = (scores.shape[0], scores.shape[1])
            scores.withUnsafeMutableBufferPointer { s in
                for r in 0..<rows { for j in 0..<v { s[r * v + j] = j == eos ? 0 : -.infinity } }
            }
        }
    }

    /// Every self-attention cache holds at most twice what was produced (or the small
    /// initial reservation).
    static func expectProportional(_ cache: KVCache, produced: Int, _ label: String) {
        #expect(cache.length == produced, "\(label): cache length \(cache.length), produced \(produced)")
        for (l, kv) in cache.selfAttention.enumerated() {
            #expect(kv.count == cache.length)
            #expect(
                kv.capacity <= max(initialGenerationCacheCapacity, 2 * produced),
                "\(label): layer \(l) reserves \(kv.capacity) positions for \(produced) produced")
        }
    }

    @Test("maxNewTokens 100 000 000: greedy and beam caches grow with the tokens produced", arguments: [1, 3])
    func cacheFollowsOutput(_ beams: Int) throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        var config = model.generationDefaults
        config.maxNewTokens = 100_000_000
        config.numBeams = beams
        config.logitsProcessor = Self.endAfter(70, eos: 1)
        let sources = [[5, 6, 1], [7, 8, 9, 10, 1]]
        var (prompt, cache) = try model.startGeneration(
            sources: sources, startTokenID: model.decoderStartTokenID,
            config: config, compute: .default)
        #expect(cache.selfAttention.allSatisfy { $0.capacity == initialGenerationCacheCapacity })
        if beams == 1 {
            let rows = try model.greedySearch(prompt: prompt, cache: &cache, config: config)
            #expect(rows.allSatisfy { $0.count == 72 && $0.last == 1 }, "\(rows.map(\.count))")
            // The start token and 70 tokens went through the cache; the end token did not.
            Self.expectProportional(cache, produced: 71, "greedy")
        } else {
            let out = try model.beamSearch(prompt: prompt, cache: &cache, config: config)
            #expect(out.sequences.allSatisfy { $0.count == 72 && $0.last == 1 }, "\(out.sequences.map(\.count))")
            #expect(cache.rows == sources.count * beams)
            Self.expectProportional(cache, produced: 71, "beams")
        }
        // The public entry point takes the same path and returns the same.
        let direct = try model.generate(sources: sources, config: config)
        #expect(direct.sequences.allSatisfy { $0.count == 72 })
    }

    @Test("Int.max new tokens does not overflow; generation still stops at the end token")
    func saturatingLength() throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        var config = model.generationDefaults
        config.maxNewTokens = .max
        config.logitsProcessor = Self.endAfter(3, eos: 1)
        for beams in [1, 2] {
            config.numBeams = beams
            let out = try model.generate(sources: [[5, 6, 1]], config: config)
            #expect(out.sequences[0].count == 5 && out.sequences[0].last == 1, "beams \(beams): \(out.sequences)")
        }
    }

    @Test("an end token repeated millions of times with 4096 beams: candidates stay within beams x vocabulary, the ids of one end token")
    func repeatedEndTokens() throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        var one = model.generationDefaults
        one.eosTokenIDs = [1]
        one.numBeams = 4
        one.maxNewTokens = 6
        var repeated = one
        repeated.eosTokenIDs = [Int](repeating: 1, count: 1 << 22)
        // As many candidates as distinct end tokens call for: the same hypotheses and scores.
        #expect(try model.generate(sources: [[5, 6, 1]], config: repeated) == model.generate(sources: [[5, 6, 1]], config: one))
        // 4096 beams x (1 + 4M) candidates would reserve 275 GB per step.
        repeated.numBeams = GenerationConfig.maxBeams
        repeated.maxNewTokens = 1
        #expect(try model.generate(sources: [[5, 6, 1]], config: repeated).sequences.count == 1)
        // The selection itself: at most beams x V candidates, whatever `keep` asks.
        let top = topCandidates([0, -1, -2, -3], rowOffset: 0, beams: 1, vocabulary: 4, runningScores: [0], keep: 1 << 50)
        #expect(top.map(\.index) == [0, 1, 2, 3])
    }

    @Test("Marian's position table: a longer request throws up front, naming max_position_embeddings")
    func positionLimit() throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("marian"))
        #expect(model.maxPositions == 64)
        var config = model.generationDefaults
        for maxNew in [64, 100_000_000, Int.max] {
            config.maxNewTokens = maxNew
            #expect(throws: GenerationError.self) { try model.generate(sources: [[5, 6, 2]], config: config) }
            do {
                _ = try model.generate(sources: [[5, 6, 2]], config: config)
            } catch {
                #expect("\(error)".contains("max_position_embeddings = 64"), "\(error)")
            }
        }
        config.maxNewTokens = 63  // the start token plus 63 fill the table exactly
        let out = try model.generate(sources: [[5, 6, 2]], config: config)
        #expect(out.sequences[0].count <= 64 && out.sequences[0].last == 2)
    }

    @Test("Marian's position table through the generic entry points with a caller's cache: thrown, not a trap")
    func positionLimitWithOwnCache() async throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("marian"))
        let encoded = try model.encode([[5, 6, 2]])
        let start = [[model.decoderStartTokenID]]
        var config = model.generationDefaults
        config.maxNewTokens = 64
        let limit = GenerationError.exceedsPositionLimit(setting: "max_position_embeddings", limit: 64, requested: 65)
        #expect(model.positionLimit?.limit == 64 && model.positionLimit?.setting == "max_position_embeddings")
        #expect(throws: limit) { try model.generate(prompt: start, cache: model.makeCache(for: encoded), config: config) }
        var cache = try model.makeCache(for: encoded)
        var far = config
        far.maxNewTokens = 100  // would feed positions past the table
        #expect(throws: GenerationError.exceedsPositionLimit(setting: "max_position_embeddings", limit: 64, requested: 101)) {
            try model.greedySearch(prompt: start, cache: &cache, config: far)
        }
        #expect(cache.length == 0, "nothing was computed")
        var beams = config
        beams.numBeams = 2
        #expect(throws: limit) { try model.beamSearch(prompt: start, cache: &cache, config: beams) }
        await #expect(throws: limit) {
            for try await _ in try model.greedyStream(prompt: start, cache: model.makeCache(for: encoded), config: config) {}
        }
        // A longer prompt leaves less room: 3 tokens + 62 new ones need 65 positions.
        config.maxNewTokens = 62
        #expect(throws: GenerationError.exceedsPositionLimit(setting: "max_position_embeddings", limit: 64, requested: 65)) {
            try model.generate(prompt: [start[0] + [5, 6]], cache: model.makeCache(for: encoded), config: config)
        }
        let t5 = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        #expect(t5.positionLimit == nil)
    }

    @Test("requests the model cannot take throw GenerationError instead of trapping")
    func badRequests() throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("marian"))
        let ok = model.generationDefaults
        var cases: [(String, [[Int]], Int, GenerationConfig)] = [
            ("no sources", [], model.decoderStartTokenID, ok),
            ("an empty source", [[1], []], model.decoderStartTokenID, ok),
            ("a negative id", [[1, -1]], model.decoderStartTokenID, ok),
            ("an id at the vocabulary", [[1, 64]], model.decoderStartTokenID, ok),
            ("a source past the table", [[Int]](repeating: Array(repeating: 5, count: 65), count: 1), model.decoderStartTokenID, ok),
            ("a start token past the vocabulary", [[1]], 64, ok),
            ("a negative start token", [[1]], -1, ok),
        ]
        var c = ok
        c.maxNewTokens = 0; cases.append(("maxNewTokens 0", [[1]], model.decoderStartTokenID, c))
        c = ok; c.maxNewTokens = -5; cases.append(("negative maxNewTokens", [[1]], model.decoderStartTokenID, c))
        c = ok; c.minNewTokens = -1; cases.append(("negative minNewTokens", [[1]], model.decoderStartTokenID, c))
        c = ok; c.numBeams = 0; cases.append(("0 beams", [[1]], model.decoderStartTokenID, c))
        c = ok; c.numBeams = Int.max; cases.append(("Int.max beams (overflowed the candidate count)", [[1]], model.decoderStartTokenID, c))
        c = ok; c.numBeams = GenerationConfig.maxBeams + 1; cases.append(("beams past maxBeams", [[1]], model.decoderStartTokenID, c))
        c = ok; c.numBeams = 2; c.numReturnSequences = 3; cases.append(("more returns than beams", [[1]], model.decoderStartTokenID, c))
        c = ok; c.eosTokenIDs = [64]; cases.append(("an end token past the vocabulary", [[1]], model.decoderStartTokenID, c))
        c = ok; c.suppressedTokenIDs = [-3]; cases.append(("a negative suppressed token", [[1]], model.decoderStartTokenID, c))
        c = ok; c.lengthPenalty = .nan; cases.append(("a NaN length penalty", [[1]], model.decoderStartTokenID, c))
        for (label, sources, start, config) in cases {
            #expect(throws: GenerationError.self, "\(label)") {
                try model.generate(sources: sources, startTokenID: start, config: config)
            }
            #expect(throws: GenerationError.self, "\(label), greedy") {
                try model.greedy(sources: sources, startTokenID: start, config: config) { _ in }
            }
        }
        // Encoding and teacher forcing check their ids too.
        for bad in [[[Int]](), [[]], [[1, 64]], [[-1]], [Array(repeating: 5, count: 65)]] {
            #expect(throws: GenerationError.self, "\(bad.map(\.count))") { try model.encode(bad) }
        }
        for bad in [[[Int]](), [[1], []], [[1, 40]], [[Int.min]]] {  // the paper's model: vocabulary 40, no position limit
            #expect(throws: GenerationError.self, "\(bad)") { try Seq2Seq.model.encode(bad) }
        }
        let encoded = try model.encode([[1, 2], [3]])
        for bad in [[[0]], [[0, 1], [0]], [[0], [64]], [[], []], [[0], [-5]], [[Int]](repeating: Array(repeating: 1, count: 65), count: 2)] {
            #expect(throws: GenerationError.self, "\(bad.map(\.count))") { try model.decode(bad, encoded: encoded) }
        }
        #expect(throws: GenerationError.self) { try Seq2Seq.model(sources: [[1, 40]], targets: [[1]]) }
        #expect(throws: GenerationError.self) { try Seq2Seq.model(sources: [[1]], targets: [[1, 40]]) }
        // A prompt that does not fit its cache, or holds ids past the vocabulary.
        var cache = try model.makeCache(for: model.encode([[1, 2], [3]]))
        #expect(throws: GenerationError.self) { try model.greedySearch(prompt: [[1]], cache: &cache, config: ok) }
        #expect(throws: GenerationError.self) { try model.beamSearch(prompt: [[1], [99]], cache: &cache, config: ok) }
    }

    @Test("attend generate --max-new-tokens 100000000 stops at the end token in bounded memory")
    func cliHugeLimit() throws {
        let tool = builtProduct("attend", besides: Bundle.module)
        // The tiny T5 produces 13 forever; make 13 its end token in a copy of the folder.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-t5-eos-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: try fixtureFolder("t5"), to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        let gen = dir.appendingPathComponent("generation_config.json")
        try Data(#"{"decoder_start_token_id": 0, "eos_token_id": 13, "pad_token_id": 0}"#.utf8).write(to: gen)
        let r = try runChild(tool, ["generate", "--model", dir.path, "--ids", "5,6,1", "--max-new-tokens", "100000000"])
        #expect(r.status == 0 && r.stdout == "13\n", "\(r)")
        #expect(r.peakRSSKiB < 200 * 1024, "\(r)")  // before: a 25.6 GB reservation
        // Marian: the position table ends it, with a warning naming the limit.
        let m = try runChild(tool, ["generate", "--model", try fixtureFolder("marian").path, "--ids", "5,6,2", "--max-new-tokens", "100000000"])
        #expect(m.status == 0 && m.stderr.contains("max_position_embeddings") && m.stderr.contains("63"), "\(m)")
        #expect(m.stdout.split(separator: " ").count == 63, "\(m.stdout)")
        #expect(m.peakRSSKiB < 200 * 1024, "\(m)")
    }
}
