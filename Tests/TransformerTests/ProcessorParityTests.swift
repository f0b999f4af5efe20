// Repetition penalty, no-repeat n-grams and the sampling warpers against transformers
// (fixtures made by make_processor_fixtures.py with torch 2.15 / transformers 5.24):
// greedy and beam-search ids of the four tiny T5 / Marian folders exactly; the warpers'
// processed scores and distributions on fixed logits to 1e-6; and sampling's own
// guarantees (a seed gives the same ids on 1 and 2 threads, draws follow the distribution).
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// The JSON fixture `Fixtures/NAME.json` of this test bundle.
func jsonFixture(_ name: String) throws -> Any {
    let url = try #require(
        Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"),
        "fixture Fixtures/\(name).json is missing from the test bundle")
    return try JSONSerialization.jsonObject(with: Data(contentsOf: url))
}

/// `config` with the generation_config keys of `settings` applied, as transformers reads them.
func applying(_ settings: [String: Any], to base: GenerationConfig) throws -> GenerationConfig {
    var c = base
    for (key, value) in settings {
        let number = value as? NSNumber
        switch key {
        case "max_new_tokens": c.maxNewTokens = try #require(number).intValue
        case "min_new_tokens": c.minNewTokens = try #require(number).intValue
        case "num_beams": c.numBeams = try #require(number).intValue
        case "length_penalty": c.lengthPenalty = try #require(number).floatValue
        case "early_stopping": c.earlyStopping = try #require(value as? Bool) ? .whenBeamsFinished : .heuristic
        case "repetition_penalty": c.repetitionPenalty = try #require(number).floatValue
        case "no_repeat_ngram_size": c.noRepeatNGramSize = try #require(number).intValue
        case "temperature": c.temperature = try #require(number).floatValue
        case "top_k": c.topK = try #require(number).intValue
        case "top_p": c.topP = try #require(number).doubleValue
        case "min_p": c.minP = try #require(number).floatValue
        case "min_tokens_to_keep": break  // an argument of the warpers, not a setting
        default: Issue.record("unknown setting \(key)")
        }
    }
    return c
}

@Suite("logits processors against transformers")
struct ProcessorParityTests {
    @Test("greedy and beam search with repetition_penalty and no_repeat_ngram_size give transformers' ids")
    func generateParity() throws {
        let root = try #require(try jsonFixture("processors") as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        #expect(cases.count == 32)
        var models: [String: Seq2SeqModel] = [:]
        for c in cases {
            let folder = try #require(c["folder"] as? String)
            let settings = try #require(c["settings"] as? [String: Any])
            let want = try #require(c["ids"] as? [[Int]])
            if models[folder] == nil { models[folder] = try Seq2SeqModel(directory: try fixtureFolder(folder)) }
            let model = models[folder]!
            let sources = try HFSeq2SeqTests.sources(try fixture("\(folder).io"))
            let config = try applying(settings, to: model.generationDefaults)
            let got = try model.generate(sources: sources, config: config).sequences
            #expect(got == want, "\(folder) \(settings)")
        }
    }

    @Test("temperature, top-k, top-p, min-p, repetition penalty and n-gram bans equal transformers' on fixed logits")
    func warperParity() throws {
        let cases = try #require(try jsonFixture("warpers") as? [String: [String: Any]])
        let file = try fixture("warpers")
        let logits = try file.tensor("in.logits")  // [8, 40]
        let ids = idRows(try file.integers("in.input_ids"), rows: 8)
        let (rows, v) = (logits.shape[0], logits.shape[1])
        #expect(cases.count == 16)
        for (name, settings) in cases.sorted(by: { $0.key < $1.key }) {
            var config = GenerationConfig(maxNewTokens: 1)
            config.doSample = true
            config.topK = 0  // only what the case names
            config = try applying(settings, to: config)
            let keep = (settings["min_tokens_to_keep"] as? NSNumber)?.intValue ?? 1
            var scores = Tensor(shape: [rows, v], scalars: logits.scalars)
            if keep == 1 {
                // The whole chain as generation runs it.
                applyProcessors(&scores, sequences: ids, promptLength: ids[0].count, maxLength: .max, config: config)
            } else {
                for r in 0..<rows {
                    var row = scores.row(r)
                    applySamplingWarpers(&row, config: config, minTokensToKeep: keep)
                    scores.setRow(r, row)
                }
            }
            let wantScores = try file.tensor("out.\(name).scores").scalars
            let wantProbs = try file.tensor("out.\(name).probs").scalars
            let got = scores.scalars
            for r in 0..<rows {
                let row = Array(got[(r * v)..<((r + 1) * v)])
                let probs = softmax(row)
                if settings["top_p"] != nil && r == 3 {
                    // The flat row: top-p cuts inside a group of equal scores, where PyTorch's
                    // unstable sort picks which go; the count and the kept probabilities agree.
                    let want = Array(wantProbs[(r * v)..<((r + 1) * v)])
                    #expect(
                        row.filter { $0 == -.infinity }.count == wantScores[(r * v)..<((r + 1) * v)].filter { $0 == -.infinity }.count,
                        "\(name) flat row")
                    #expect(zip(probs.sorted(), want.sorted()).allSatisfy { abs($0 - $1) <= 1e-6 }, "\(name) flat row: \(probs) vs \(want)")
                    continue
                }
                for j in 0..<v {
                    let (g, w) = (row[j], wantScores[r * v + j])
                    if w == -.infinity || g == -.infinity {
                        #expect(g == w, "\(name) row \(r) token \(j): \(g) vs transformers' \(w)")
                    } else {
                        #expect(abs(g - w) <= 1e-6 * max(1, abs(w)), "\(name) row \(r) token \(j): score \(g) vs \(w)")
                    }
                    #expect(abs(probs[j] - wantProbs[r * v + j]) <= 1e-6, "\(name) row \(r) token \(j): p \(probs[j]) vs \(wantProbs[r * v + j])")
                }
            }
        }
    }

    @Test("a seed gives the same sampled ids on 1 and 2 threads; another seed differs; settings are honoured")
    func seededSampling() throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("t5_gated"))
        let sources = try HFSeq2SeqTests.sources(try fixture("t5_gated.io"))
        var config = model.generationDefaults
        config.maxNewTokens = 24
        config.doSample = true
        config.temperature = 1.5
        config.topK = 0
        config.seed = 42
        let one = try model.generate(sources: sources, config: config, compute: try Compute.default.with(threads: 1)).sequences
        let two = try model.generate(sources: sources, config: config, compute: try Compute.default.with(threads: 2)).sequences
        #expect(one == two, "seed 42: 1 thread \(one), 2 threads \(two)")
        // The greedy path of this model repeats itself; hot sampling must not.
        var greedy = config
        greedy.doSample = false
        let argmax = try model.generate(sources: sources, config: greedy).sequences
        #expect(one != argmax)
        config.seed = 43
        #expect(try model.generate(sources: sources, config: config).sequences != one)
        // A row's draws do not depend on the other rows: row 0 alone equals row 0 in the batch.
        config.seed = 42
        let alone = try model.generate(sources: [sources[0]], config: config).sequences[0]
        #expect(Array(one[0].prefix(alone.count)) == alone)
        // top-k 1 is greedy whatever the seed and temperature.
        config.topK = 1
        greedy.maxNewTokens = 24
        #expect(try model.generate(sources: sources, config: config).sequences == argmax)
    }

    @Test("draws follow the processed distribution (20 000 draws, each frequency within 0.015)")
    func drawFrequencies() {
        let logits: [Float] = [2.0, 1.0, 0.5, -.infinity, 0.0, -1.0]
        let p = softmax(logits)
        var rng = SamplingRNG(seed: 7, row: 0)
        var counts = [Int](repeating: 0, count: logits.count)
        let n = 20_000
        for _ in 0..<n {
            let t = sampleToken(logits, rng: &rng)
            counts[t!] += 1
        }
        #expect(counts[3] == 0, "a forbidden token was drawn")
        for j in logits.indices {
            #expect(abs(Double(counts[j]) / Double(n) - Double(p[j])) < 0.015, "token \(j): \(counts[j]) of \(n), p = \(p[j])")
        }
        let none: [Float] = [-.infinity, -.infinity]
        #expect(sampleToken(none, rng: &rng) == nil)
    }

    @Test("no-repeat n-grams and repetition penalty on hand-made sequences")
    func handMade() {
        #expect(bannedNGramTokens([1, 2, 3, 1, 2], size: 3) == [3])
        #expect(bannedNGramTokens([1, 2, 1, 2, 1], size: 2).sorted() == [2, 2])
        #expect(bannedNGramTokens([5, 5, 5], size: 1) == [5, 5, 5])
        #expect(bannedNGramTokens([1, 2], size: 3).isEmpty)
        var row: [Float] = [2, -2, 0.5, 3]
        applyRepetitionPenalty(&row, sequence: [0, 1, 1, 9, -4], penalty: 2)
        #expect(row == [1, -4, 0.5, 3])
    }

    @Test("sampling settings out of range throw GenerationError")
    func badSettings() throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        var base = model.generationDefaults
        base.doSample = true
        let edits: [(String, (inout GenerationConfig) -> Void)] = [
            ("temperature 0", { $0.temperature = 0 }), ("temperature NaN", { $0.temperature = .nan }),
            ("top-k -1", { $0.topK = -1 }), ("top-p 1.5", { $0.topP = 1.5 }), ("top-p -0.1", { $0.topP = -0.1 }),
            ("min-p 2", { $0.minP = 2 }), ("repetition penalty 0", { $0.repetitionPenalty = 0 }),
            ("repetition penalty inf", { $0.repetitionPenalty = .infinity }), ("n-gram -1", { $0.noRepeatNGramSize = -1 }),
            ("sampling with beams", { $0.numBeams = 2 }),
        ]
        for (label, edit) in edits {
            var c = base
            edit(&c)
            #expect(throws: GenerationError.self, "\(label)") { try model.generate(sources: [[5, 6, 1]], config: c) }
        }
        // Every token banned: sampling has nothing to draw from and says so.
        var c = base
        c.suppressedTokenIDs = Array(0..<64)
        #expect(throws: GenerationError.self) { try model.generate(sources: [[5, 6, 1]], config: c) }
    }
}
