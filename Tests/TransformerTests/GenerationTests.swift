// Generation semantics on a toy decoder whose logits depend only on the position and the
// previous token (a Markov chain), so that every hypothesis can be scored by brute force.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// logits(position, previous token) from a seeded table; the cache is each row's last token.
struct MarkovDecoder: AutoregressiveDecoder {
    struct Cache: DecodingCache {
        var last: [Int]
        var length = 0
        var rows: Int { last.count }
        mutating func selectRows(_ indices: [Int]) { last = indices.map { last[$0] } }
    }
    let vocabularySize: Int
    let positions: Int
    let table: [Float]  // [positions][V][V]

    init(vocabulary: Int, positions: Int, seed: UInt64, spread: Float = 3) {
        var rng = SeededRNG(seed: seed)
        vocabularySize = vocabulary
        self.positions = positions
        table = rng.floats(positions * vocabulary * vocabulary, in: -spread...spread)
    }

    func logits(position: Int, previous: Int) -> ArraySlice<Float> {
        let v = vocabularySize, base = (position * v + previous) * v
        return table[base..<(base + v)]
    }

    func nextTokenLogits(appending tokens: [[Int]], to cache: inout Cache, compute: Compute) -> Tensor {
        precondition(tokens.count == cache.rows)
        let n = tokens[0].count
        cache.length += n
        cache.last = tokens.map { $0.last! }
        let pos = cache.length - 1
        return Tensor(shape: [tokens.count, vocabularySize], scalars: cache.last.flatMap { logits(position: pos, previous: $0) })
    }

    /// Log-softmax of the logits after `previous` at `position`, in Double.
    func logProbs(position: Int, previous: Int) -> [Double] {
        let l = logits(position: position, previous: previous).map(Double.init)
        let m = l.max()!
        let lse = m + log(l.reduce(0) { $0 + exp($1 - m) })
        return l.map { $0 - lse }
    }
}

@Suite("Generation semantics")
struct GenerationTests {
    @Test("argmaxRows picks the first largest score, the first NaN of a row with one, on any width and position")
    func argmaxRowsRules() {
        // The sequential rule (torch.argmax): a later score replaces the best when larger, or
        // when it is NaN and the best is not.
        func reference(_ row: [Float]) -> Int {
            var best = 0
            for j in row.indices.dropFirst() where row[j] > row[best] || (row[j].isNaN && !row[best].isNaN) { best = j }
            return best
        }
        var rng = SeededRNG(seed: 77)
        for width in [1, 5, 15, 16, 17, 33, 100, 1000] {
            for trial in 0..<12 {
                // Few distinct values so ties are common; NaN, infinities and signed zeros mixed in.
                var row = (0..<width).map { _ in Float(Int.random(in: -3...3, using: &rng)) }
                let specials: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 3]
                for _ in 0..<(trial % 4) { row[Int.random(in: 0..<width, using: &rng)] = specials[Int.random(in: 0..<specials.count, using: &rng)] }
                if trial == 11 { row = [Float](repeating: -.infinity, count: width) }
                let rows = [row, row.reversed()]
                let got = argmaxRows(Tensor(shape: [2, width], scalars: rows[0] + rows[1]))
                #expect(got == rows.map(reference), "width \(width) trial \(trial): \(got) for \(rows)")
            }
        }
    }

    /// Every complete hypothesis (ends in `eos`, or reaches `maxNew` tokens) with its score
    /// `sum log p / generated^lengthPenalty`, best first.
    func allHypotheses(_ m: MarkovDecoder, start: Int, maxNew: Int, eos: Int?, lengthPenalty: Double) -> [([Int], Double)] {
        var out: [([Int], Double)] = []
        func walk(_ seq: [Int], _ sum: Double) {
            let lp = m.logProbs(position: seq.count - 1, previous: seq.last!)
            for t in 0..<m.vocabularySize {
                let s = sum + lp[t], next = seq + [t]
                let generated = next.count - 1
                if t == eos || generated == maxNew {
                    out.append((next, s / pow(Double(generated), lengthPenalty)))
                } else {
                    walk(next, s)
                }
            }
        }
        walk([start], 0)
        return out.sorted { $0.1 > $1.1 }
    }

    @Test("beam search wide enough to keep every prefix returns the best hypotheses by brute force", arguments: [0.0, 1.0, 2.0])
    func beamIsExactWhenWide(_ lengthPenalty: Double) throws {
        for seed in 1...4 as ClosedRange<UInt64> {
            let m = MarkovDecoder(vocabulary: 3, positions: 8, seed: caseSeed(Int(seed), Int(lengthPenalty * 10)))
            let expected = allHypotheses(m, start: 0, maxNew: 3, eos: 2, lengthPenalty: lengthPenalty)
            var config = GenerationConfig(maxNewTokens: 3, eosTokenID: 2, numBeams: 12)
            config.lengthPenalty = Float(lengthPenalty)
            config.earlyStopping = .never
            config.numReturnSequences = 3
            let out = try m.generate(prompt: [[0]], cache: MarkovDecoder.Cache(last: [0]), config: config)
            for k in 0..<3 {
                let got = Array(out.sequences[k].prefix(expected[k].0.count))
                #expect(got == expected[k].0, "seed \(seed), length penalty \(lengthPenalty), rank \(k): \(out.sequences[k]) vs \(expected[k].0)")
                #expect(abs(Double(out.scores![k]) - expected[k].1) <= 1e-5, "seed \(seed), rank \(k) score \(out.scores![k]) vs \(expected[k].1)")
            }
        }
    }

    @Test("greedy search is the argmax path; ended rows continue with the pad token")
    func greedyPath() throws {
        let m = MarkovDecoder(vocabulary: 5, positions: 12, seed: 7)
        var config = GenerationConfig(maxNewTokens: 8, eosTokenID: 4)
        config.padTokenID = 0
        let starts = [0, 1, 2, 3]
        var cache = MarkovDecoder.Cache(last: starts)
        var streamed: [[Int]] = []
        let seqs = try m.greedySearch(prompt: starts.map { [$0] }, cache: &cache, config: config) { streamed.append($0) }
        for (r, s) in seqs.enumerated() {
            var expected = [starts[r]]
            while expected.count <= 8 && expected.last != 4 || expected.count == 1 {
                let l = m.logits(position: expected.count - 1, previous: expected.last!)
                expected.append(l.indices.max { l[$0] < l[$1] || (l[$0] == l[$1] && $0 > $1) }! - l.startIndex)
            }
            #expect(Array(s.prefix(expected.count)) == expected, "row \(r)")
            #expect(s.dropFirst(expected.count).allSatisfy { $0 == 0 }, "row \(r): \(s) pads with 0 after the end")
        }
        #expect(
            streamed.count == seqs[0].count - 1 && streamed.indices.allSatisfy { i in seqs.indices.allSatisfy { seqs[$0][i + 1] == streamed[i][$0] } }
        )
    }

    @Test("min new tokens, forced BOS and EOS, suppressed tokens and a custom processor")
    func processors() throws {
        let m = MarkovDecoder(vocabulary: 6, positions: 12, seed: 11, spread: 1)
        // Make token 5 (EOS) the best everywhere: without constraints every row ends at once.
        var config = GenerationConfig(maxNewTokens: 6, eosTokenID: 5)
        config.logitsProcessor = { scores, _ in
            scores.withUnsafeMutableBufferPointer { s in for r in 0..<(s.count / 6) { s[r * 6 + 5] += 100 } }
        }
        var c = MarkovDecoder.Cache(last: [0])
        #expect(try m.greedySearch(prompt: [[0]], cache: &c, config: config) == [[0, 5]])
        // The custom processor runs after the built-in ones, so it overrides them: check the
        // built-ins alone by moving the boost into a suppressed token and min length.
        var mins = GenerationConfig(maxNewTokens: 6, eosTokenID: 5)
        mins.minNewTokens = 4
        mins.suppressedTokenIDs = [1]
        mins.forcedBOSTokenID = 3
        mins.forcedEOSTokenID = 5
        c = MarkovDecoder.Cache(last: [0])
        let s = try m.greedySearch(prompt: [[0]], cache: &c, config: mins)[0]
        #expect(s[1] == 3, "forced BOS: \(s)")
        #expect(!s.dropFirst().contains(1), "suppressed token 1: \(s)")
        #expect(!s.dropFirst().prefix(4).contains(5), "no EOS before 4 new tokens: \(s)")
        #expect(s.count == 7 && s.last == 5, "forced EOS at the maximum length: \(s)")
        // Beam search applies them to log-probabilities in the same way.
        var beam = mins
        beam.numBeams = 3
        c = MarkovDecoder.Cache(last: [0])
        let b = try m.beamSearch(prompt: [[0]], cache: &c, config: beam).sequences[0]
        #expect(b[1] == 3 && !b.dropFirst().contains(1) && !b.dropFirst().prefix(4).contains(5), "beam: \(b)")
    }

    @Test("beam search: batched inputs equal single runs; early stopping modes; fill of short hypotheses")
    func beamBatchAndStopping() throws {
        let m = MarkovDecoder(vocabulary: 7, positions: 20, seed: 5)
        for stopping in [EarlyStopping.whenBeamsFinished, .heuristic, .never] {
            var config = GenerationConfig(maxNewTokens: 9, eosTokenID: 6, numBeams: 4)
            config.earlyStopping = stopping
            config.numReturnSequences = 2
            config.lengthPenalty = 0.7
            let starts = [0, 1, 2, 3, 4]
            let batched = try m.generate(prompt: starts.map { [$0] }, cache: MarkovDecoder.Cache(last: starts), config: config)
            for (i, s) in starts.enumerated() {
                let one = try m.generate(prompt: [[s]], cache: MarkovDecoder.Cache(last: [s]), config: config)
                for k in 0..<2 {
                    let a = batched.sequences[i * 2 + k], b = one.sequences[k]
                    let n = min(a.count, b.count)
                    #expect(
                        a.prefix(n) == b.prefix(n) && a.dropFirst(n).allSatisfy { $0 == 6 } && b.dropFirst(n).allSatisfy { $0 == 6 },
                        "\(stopping), start \(s), rank \(k): \(a) vs \(b)")
                    #expect(batched.scores![i * 2 + k] == one.scores![k])
                }
            }
        }
    }

    @Test("KVCache.selectRows expands and reorders the self-attention rows of one source")
    func cacheRowSelection() throws {
        let m = Seq2Seq.model
        var cache = try m.makeCache(for: m.encode([[3, 4, 5], [7, 8]]))
        _ = m.nextTokenLogits(appending: [[1, 9], [1, 4]], to: &cache)
        let before = cache.selfAttention[1].storage.scalars
        try cache.selectRows([0, 0, 0, 1, 1, 1])
        #expect(cache.rows == 6 && cache.rowsPerSource == 3 && cache.sources == 2)
        try cache.selectRows([2, 1, 1, 5, 3, 4])
        let after = cache.selfAttention[1].storage.scalars
        let w = 2 * m.modelDim, cap = cache.selfAttention[1].capacity, oldCap = 64
        for (newRow, oldSource) in [0, 0, 0, 1, 1, 1].enumerated() {
            for p in 0..<2 {
                let a = Array(after[((newRow * cap + p) * w)..<((newRow * cap + p + 1) * w)])
                let b = Array(before[((oldSource * oldCap + p) * w)..<((oldSource * oldCap + p + 1) * w)])
                #expect(a == b, "row \(newRow), position \(p)")
            }
        }
        // Beams then decode as the source they came from.
        let logits = m.nextTokenLogits(appending: Array(repeating: [6], count: 6), to: &cache).scalars
        for r in 0..<6 {
            #expect(Array(logits[(r * 40)..<((r + 1) * 40)]) == Array(logits[((r / 3) * 3 * 40)..<((r / 3) * 3 * 40 + 40)]))
        }
    }
}

/// Counts the steps a decoder has run (shared across copies; thread-safe).
final class StepCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

/// A Markov decoder that counts its steps and takes a little time per step. With
/// `holdAfter`, the step after that many waits (up to twenty minutes) until its task is
/// cancelled: the stream's producer runs on a thread of its own, so this does not block the
/// consumer, and a test of cancellation no longer depends on how soon a machine busy with
/// other tests schedules the consumer. (Five minutes were once not enough: a full test run on
/// 2 cores with a second one beside it saw the hold run out and the producer run all its
/// steps, most likely the consumer's task waiting that long for a thread of the cooperative
/// pool while other tests held both.)
struct CountingDecoder: AutoregressiveDecoder {
    let inner: MarkovDecoder
    let counter: StepCounter
    var holdAfter: Int? = nil
    var vocabularySize: Int { inner.vocabularySize }
    func nextTokenLogits(appending tokens: [[Int]], to cache: inout MarkovDecoder.Cache, compute: Compute) -> Tensor {
        counter.increment()
        usleep(200)
        if let h = holdAfter, counter.value == h + 1 {
            let deadline = Date().addingTimeInterval(1200)
            while !Task.isCancelled && Date() < deadline { usleep(1000) }
        }
        var c = cache
        c.length = min(c.length, inner.positions - 2)  // stay inside the table however long it runs
        let out = inner.nextTokenLogits(appending: tokens, to: &c, compute: compute)
        cache.last = c.last
        return out
    }
}

@Suite("Streaming")
struct StreamingTests {
    @Test("dropping the stream stops the producer; cancelling the consumer ends the iteration and the producer")
    func stopsWhenDropped() async throws {
        let counter = StepCounter()
        let m = CountingDecoder(inner: MarkovDecoder(vocabulary: 4, positions: 8, seed: 3), counter: counter, holdAfter: 8)
        let config = GenerationConfig(maxNewTokens: 100_000)
        var received = 0
        for try await tokens in m.greedyStream(prompt: [[0]], cache: MarkovDecoder.Cache(last: [0]), config: config) {
            #expect(tokens.count == 1)
            received += 1
            if received == 3 { break }
        }
        try await Task.sleep(nanoseconds: 50_000_000)
        let after = counter.value
        try await Task.sleep(nanoseconds: 50_000_000)
        #expect(counter.value == after, "the producer kept running after the stream was dropped (\(after) -> \(counter.value) steps)")
        #expect(after < 100_000)

        let counter2 = StepCounter()
        let m2 = CountingDecoder(inner: m.inner, counter: counter2, holdAfter: 8)
        let consumer = Task { () -> (Int, Bool) in
            var n = 0
            do {
                for try await _ in m2.greedyStream(prompt: [[0]], cache: MarkovDecoder.Cache(last: [0]), config: config) {
                    n += 1
                    if n == 2 { withUnsafeCurrentTask { $0?.cancel() } }
                }
                return (n, false)
            } catch is CancellationError {
                return (n, true)
            }
        }
        let (n, threw) = try await consumer.value
        try await Task.sleep(nanoseconds: 50_000_000)
        let steps = counter2.value
        try await Task.sleep(nanoseconds: 50_000_000)
        // The producer stops for good; the consumer sees at most what was produced before
        // (tokens already buffered in the stream are still delivered).
        #expect(counter2.value == steps && steps < 100_000, "producer steps after cancellation: \(steps) -> \(counter2.value)")
        #expect(n <= steps, "cancelled consumer: \(n) tokens from \(steps) steps, CancellationError: \(threw)")
        print(
            "stream: dropped after 3 of \(after) produced steps; cancelled consumer saw \(n) tokens (CancellationError: \(threw)), producer ran \(steps) steps"
        )
    }
}
