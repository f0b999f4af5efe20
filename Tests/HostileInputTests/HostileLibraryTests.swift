// Hostile calls of the library's public entry points that take user data: generation from
// token ids with generated settings (Seq2SeqModel.generate / greedy / stream), the checked
// source validation, and the sentence embedder on hostile texts. Run in a child process (an
// exit test), so a trap fails this test instead of ending the whole run; every call must
// return or throw. Seeded (ATTEND_TEST_SEED), ATTEND_HOSTILE_LIBRARY_CASES cases (default 1000).
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// Runs the hostile library calls; returns how many calls threw.
func runHostileLibraryCases() async throws -> (calls: Int, thrown: Int) {
    let t5 = try #require(Bundle.module.url(forResource: "t5", withExtension: nil, subdirectory: "Fixtures"))
    let marian = try #require(Bundle.module.url(forResource: "marian", withExtension: nil, subdirectory: "Fixtures"))
    let bert = try #require(Bundle.module.url(forResource: "bert", withExtension: nil, subdirectory: "Fixtures"))
    let models = [try Seq2SeqModel(directory: t5), try Seq2SeqModel(directory: marian)]
    let embedder = try SentenceEmbedder(directory: bert)
    let count = Int(ProcessInfo.processInfo.environment["ATTEND_HOSTILE_LIBRARY_CASES"] ?? "") ?? 1000
    let ints = [0, 1, 2, 3, 13, 63, 64, 65, 4096, 4097, 1 << 20, 100_000_000, Int.max, Int.max - 1, -1, Int.min]
    let floats: [Float] = [0, -0.0, 1, 0.5, 1.5, -1, 2, 1e-30, 1e30, .infinity, -.infinity, .nan, .greatestFiniteMagnitude]
    var calls = 0, thrown = 0
    for index in 0..<count {
        var rng = SeededRNG(seed: caseSeed(0x11B, index))
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
        let model = pick(models)
        var config = model.generationDefaults
        config.maxNewTokens = chance(0.85) ? Int.random(in: 1...24, using: &rng) : pick(ints)
        if chance(0.3) { config.minNewTokens = pick(ints) }
        if chance(0.3) { config.numBeams = pick(ints + [1, 2, 3]) }
        if chance(0.15) { config.numReturnSequences = pick(ints) }
        if chance(0.15) { config.eosTokenIDs = [pick(ints)] }
        if chance(0.1) { config.eosTokenIDs = [] }
        if chance(0.1) { config.padTokenID = pick(ints) }
        if chance(0.1) { config.forcedBOSTokenID = pick(ints) }
        if chance(0.1) { config.forcedEOSTokenID = pick(ints) }
        if chance(0.1) { config.suppressedTokenIDs = (0..<pick([1, 3, 64, 70])).map { _ in pick(ints) } }
        if chance(0.2) { config.lengthPenalty = pick(floats) }
        if chance(0.2) { config.earlyStopping = pick([.whenBeamsFinished, .heuristic, .never]) }
        if chance(0.3) { config.repetitionPenalty = pick(floats) }
        if chance(0.3) { config.noRepeatNGramSize = pick(ints) }
        if chance(0.4) {
            config.doSample = true
            if chance(0.5) { config.temperature = pick(floats) }
            if chance(0.5) { config.topK = pick(ints) }
            if chance(0.5) { config.topP = Double(pick(floats)) }
            if chance(0.5) { config.minP = pick(floats) }
            config.seed = UInt64.random(in: 0...UInt64.max, using: &rng)
        }
        let sourceCount = pick([0, 1, 1, 2, 3])
        let sources = (0..<sourceCount).map { _ -> [Int] in
            let n = pick([0, 1, 3, 10, 64, 65, 2000])
            return (0..<n).map { _ in chance(0.9) ? Int.random(in: 0..<64, using: &rng) : pick(ints) }
        }
        let start = chance(0.9) ? model.decoderStartTokenID : pick(ints)
        calls += 1
        // Settings meant as "until the end token" may run long: a deadline cancels them.
        let work = Task {
            switch index % 3 {
            case 0: _ = try model.generate(sources: sources, config: config)
            case 1: _ = try model.greedy(sources: sources, startTokenID: start, config: config) { _ in }
            default:
                for try await _ in model.stream(source: sources.first ?? [], startTokenID: start, config: config) {}
            }
        }
        let deadline = Task {
            try await Task.sleep(nanoseconds: 2_000_000_000)
            work.cancel()
        }
        do { try await work.value } catch { thrown += 1 }
        deadline.cancel()
        do { try model.checkSources(sources) } catch { thrown += 1 }
        // Teacher forcing on the same sources, with targets around the vocabulary.
        do {
            let encoded = try model.encode(sources)
            let targets = sources.map { _ in (0..<pick([0, 1, 5, 70])).map { _ in chance(0.9) ? Int.random(in: 0..<64, using: &rng) : pick(ints) } }
            _ = try model.decode(chance(0.1) ? Array(targets.dropLast()) : targets, encoded: encoded)
        } catch { thrown += 1 }
        calls += 2
    }
    // The embedder on hostile texts (anything a String holds is valid input).
    let texts = [
        "", "\u{0}", String(repeating: "w1 ", count: 100_000), String(repeating: "x", count: 100_000),
        "\u{FFFD}\u{FFFF}\u{10FFFF}", "[CLS] [SEP] [PAD] [MASK]", String(repeating: "🙂", count: 10_000),
    ]
    do { _ = try embedder.embed(texts, batchSize: 3) } catch { thrown += 1 }
    for t in texts { _ = embedder.encode(t) }
    calls += texts.count + 1
    // The BERT model behind it on hostile ids, token types, masks and batch sizes: thrown
    // ModelInputErrors, never a trap.
    let vocab = embedder.model.config.vocabSize
    var rng = SeededRNG(seed: caseSeed(0xBE27))
    func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
    func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    for _ in 0..<200 {
        let rows = pick([0, 1, 2, 3]), len = pick([0, 1, 5, 600])
        let ids = (0..<rows).map { _ in
            (0..<(chance(0.2) ? len + 1 : len)).map { _ in chance(0.95) ? Int.random(in: 0..<vocab, using: &rng) : pick(ints) }
        }
        let types: [[Int]]? = chance(0.5) ? nil : ids.map { $0.map { _ in chance(0.95) ? 0 : pick(ints) } }
        let mask: [[Int]]? = chance(0.5) ? nil : ids.map { $0.map { _ in chance(0.95) ? 1 : pick(ints) } }
        do { _ = try embedder.model.forward(inputIDs: ids, tokenTypeIDs: types, attentionMask: mask) } catch { thrown += 1 }
        do { _ = try embedder.embed(encodings: [], batchSize: pick(ints)) } catch { thrown += 1 }
        calls += 2
    }
    return (calls, thrown)
}

@Suite("hostile input: library")
struct HostileLibraryTests {
    @Test("generation and embedding entry points throw on hostile ids, settings and texts; none traps")
    func entryPoints() async throws {
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent, \.standardErrorContent]) {
            let (calls, thrown) = try await runHostileLibraryCases()
            print("hostile library calls: \(calls), \(thrown) threw")
        }
        if let r = result { print(String(decoding: r.standardOutputContent, as: UTF8.self), terminator: "") }
        if let r = result, r.exitStatus != .exitCode(0) {
            let err = String(decoding: r.standardErrorContent, as: UTF8.self)
            Issue.record(
                "a library call trapped (reproduce: ATTEND_TEST_SEED=0x\(String(baseTestSeed, radix: 16)) swift test --filter HostileLibraryTests): \(err.suffix(3000))"
            )
        }
    }
}
