// The whole seq2seq model against PyTorch (golden `seq2seq`): src/tgt Embedding(40, 64) * 8 +
// interleaved sinusoidal positions -> nn.Transformer(64, 4 heads, 2 + 2 layers, ff 128, ReLU,
// post-LN, final norms) -> generator Linear(64, 40). Tolerance: 1e-4 absolute for a whole
// model (golden README); greedy ids exactly. Then the model's own invariants: decoding with
// the KV cache equals recomputing the whole prefix, a padded batch equals its rows one by one,
// the stream equals greedy search and stops when cancelled.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

enum Seq2Seq {
    static let config: TransformerConfig = {
        var c = TransformerConfig(
            sourceVocabularySize: 40, targetVocabularySize: 40,
            layer: PyTorchLayerConfig(modelDim: 64, heads: 4, feedForwardDim: 128),
            encoderLayers: 2, decoderLayers: 2)
        c.precomputedPositions = 16  // shorter than the inputs: exercises on-demand positions too
        return c
    }()
    static let model: TransformerModel = try! TransformerModel(loading: try! fixture("seq2seq"), config: config)

    struct IO {
        let src: [[Int]], tgt: [[Int]], greedy: [[Int]]
        let memory: Tensor, logits: Tensor, stepLogits: Tensor
    }
    static let io: IO = {
        let f = try! fixture("seq2seq.io")
        return IO(
            src: idRows(try! f.integers("in.src"), rows: 2), tgt: idRows(try! f.integers("in.tgt"), rows: 2),
            greedy: idRows(try! f.integers("out.greedy_ids"), rows: 2), memory: try! f.tensor("out.memory"),
            logits: try! f.tensor("out.logits"), stepLogits: try! f.tensor("out.greedy_step_logits"))
    }()
}

/// A generation config of the golden greedy case: 12 steps, no end token.
let twelveSteps = GenerationConfig(maxNewTokens: 12)

/// Greedy decoding that recomputes the whole prefix every step (no cache): the reference the
/// cached path must equal. Returns the ids and every step's logits `[rows][steps][V]`.
func greedyByRecomputation(_ model: TransformerModel, sources: [[Int]], start: Int, steps: Int) throws -> ([[Int]], [[[Float]]]) {
    let encoded = try model.encode(sources)
    var ids = sources.map { _ in [start] }
    var logits = sources.map { _ in [[Float]]() }
    let v = model.vocabularySize
    for _ in 0..<steps {
        let all = try model.decode(ids, encoded: encoded).scalars  // [b, t, V]
        let t = ids[0].count
        for r in ids.indices {
            let row = Array(all[((r * t + t - 1) * v)..<((r * t + t) * v)])
            logits[r].append(row)
            ids[r].append(row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!)
        }
    }
    return (ids, logits)
}

@Suite("Seq2seq model")
struct Seq2SeqTests {
    @Test("golden: encoder memory and teacher-forced logits within 1e-4")
    func goldenForward() throws {
        let m = Seq2Seq.model, io = Seq2Seq.io
        let encoded = try m.encode(io.src)
        #expect(encoded.padding == nil)
        let memDev = deviation(encoded.memory, io.memory)
        let logitDev = deviation(try m.decode(io.tgt, encoded: encoded), io.logits)
        print("golden seq2seq: memory \(memDev); logits \(logitDev)")
        #expect(memDev.maxAbs <= 1e-4, "memory: \(memDev)")
        #expect(logitDev.maxAbs <= 1e-4, "teacher-forced logits: \(logitDev)")
    }

    @Test("golden: 12 greedy steps from id 1, ids exactly and every step's logits within 1e-4")
    func goldenGreedy() throws {
        let m = Seq2Seq.model, io = Seq2Seq.io
        let out = try m.generate(sources: io.src, startTokenID: 1, config: twelveSteps)
        #expect(out.sequences == io.greedy)
        #expect(out.scores == nil)
        // Step logits, through the cache, one step at a time.
        var cache = try m.makeCache(for: m.encode(io.src))
        var tokens = io.src.map { _ in [1] }
        var steps: [[Float]] = [[], []]
        for i in 0..<12 {
            let logits = m.nextTokenLogits(appending: tokens, to: &cache).scalars  // [2, 40]
            for r in 0..<2 { steps[r] += logits[(r * 40)..<((r + 1) * 40)] }
            tokens = (0..<2).map { [io.greedy[$0][i + 1]] }
        }
        #expect(cache.length == 12)
        let dev = deviation(Tensor(shape: [2, 12, 40], scalars: steps.flatMap { $0 }), io.stepLogits)
        print("golden seq2seq greedy step logits: \(dev)")
        #expect(dev.maxAbs <= 1e-4, "greedy step logits: \(dev)")
    }

    @Test("decoding with the KV cache equals recomputing the whole prefix")
    func cacheEqualsRecomputation() throws {
        let m = Seq2Seq.model, io = Seq2Seq.io
        let steps = 14
        let (expectedIDs, expectedLogits) = try greedyByRecomputation(m, sources: io.src, start: 1, steps: steps)
        var cache = try m.makeCache(for: m.encode(io.src), capacity: 1)  // grows as it goes
        var worst = 0.0
        let ids = try m.greedySearch(prompt: [[1], [1]], cache: &cache, config: GenerationConfig(maxNewTokens: steps)) { _ in }
        #expect(ids == expectedIDs)
        // Logits along the recomputed ids, through a fresh cache.
        var c2 = try m.makeCache(for: m.encode(io.src))
        for i in 0..<steps {
            let got = m.nextTokenLogits(appending: expectedIDs.map { [$0[i]] }, to: &c2).scalars
            for r in 0..<2 {
                for j in 0..<40 { worst = max(worst, abs(Double(got[r * 40 + j]) - Double(expectedLogits[r][i][j]))) }
            }
        }
        print("cached vs recomputed logits over \(steps) steps: max abs \(worst)")
        #expect(worst <= 1e-5)
        // A multi-token prompt (prefill) gives the same last logits as feeding it token by token.
        var prefill = try m.makeCache(for: m.encode(io.src))
        let a = m.nextTokenLogits(appending: io.tgt, to: &prefill)
        var byStep = try m.makeCache(for: m.encode(io.src))
        var b = Tensor.zeros([2, 40])
        for i in 0..<io.tgt[0].count { b = m.nextTokenLogits(appending: io.tgt.map { [$0[i]] }, to: &byStep) }
        #expect(deviation(a, b).maxAbs <= 1e-5)
        #expect(prefill.length == byStep.length)
    }

    @Test("memoryPrecision .bfloat16: the cache holds the rounded memory; cached decoding equals recomputation over it")
    func bfloat16Memory() throws {
        var m = Seq2Seq.model
        let io = Seq2Seq.io
        m.memoryPrecision = .bfloat16
        let cache0 = try m.makeCache(for: m.encode(io.src))
        #expect(cache0.crossAttention?.allSatisfy { $0.half != nil } == true)
        let steps = 10
        let (expectedIDs, expectedLogits) = try greedyByRecomputation(m, sources: io.src, start: 1, steps: steps)
        var cache = cache0
        var worst = 0.0, moved = 0.0
        let (_, exactLogits) = try greedyByRecomputation(Seq2Seq.model, sources: io.src, start: 1, steps: 1)
        for i in 0..<steps {
            let got = m.nextTokenLogits(appending: expectedIDs.map { [$0[i]] }, to: &cache).scalars
            for r in 0..<2 {
                for j in 0..<40 {
                    worst = max(worst, abs(Double(got[r * 40 + j]) - Double(expectedLogits[r][i][j])))
                    if i == 0 { moved = max(moved, abs(Double(got[r * 40 + j]) - Double(exactLogits[r][0][j]))) }
                }
            }
        }
        print("bfloat16 memory: cached vs recomputed max abs \(worst); first step moved by \(moved) from float32's")
        #expect(worst <= 1e-5)
        #expect(moved > 0 && moved < 0.05)
    }

    @Test("the cache holds the memory once while one query per source decodes, packs a copy at the first step of 3 beams, and holds bfloat16 alone")
    func memoryBytes() throws {
        let io = Seq2Seq.io
        let encoded = try Seq2Seq.model.encode(io.src)
        let layers = 2, sources = io.src.count, keys = encoded.lengths.max()!, d = Seq2Seq.model.modelDim
        let float32Bytes = layers * sources * keys * 2 * d * 4
        for variant in KernelVariant.supported {
            let compute = try Compute(backend: .native(variant), threads: 2)
            var cache = try Seq2Seq.model.makeCache(for: encoded, compute: compute)
            #expect(cache.memoryBytes == float32Bytes, "\(variant): the float32 keys and values alone")
            for i in 0..<3 { _ = Seq2Seq.model.nextTokenLogits(appending: io.tgt.map { [$0[i]] }, to: &cache, compute: compute) }
            #expect(cache.memoryBytes == float32Bytes, "\(variant): greedy steps read the memory in place, nothing packed")
            let selfBytes = layers * sources * cache.selfAttention[0].capacity * 2 * d * 4  // KVCache's documented self-attention size
            #expect(cache.bytes == float32Bytes + selfBytes)
            try cache.selectRows([0, 0, 0, 1, 1, 1])
            _ = Seq2Seq.model.nextTokenLogits(appending: [[4], [5], [6], [4], [5], [6]], to: &cache, compute: compute)
            #expect(cache.memoryBytes > float32Bytes + float32Bytes / 2, "\(variant): 3 queries per source pack the copy: \(cache.memoryBytes)")
            var m = Seq2Seq.model
            m.memoryPrecision = .bfloat16
            #expect(try m.makeCache(for: encoded, compute: compute).memoryBytes == float32Bytes / 2, "\(variant): bfloat16 alone")
        }
    }

    @Test("a padded batch equals its sources one by one (memory, logits, greedy and beam ids)")
    func batchedEqualsOneByOne() throws {
        let m = Seq2Seq.model, io = Seq2Seq.io
        let sources = [Array(io.src[0].prefix(19)), Array(io.src[1].prefix(7)), Array(io.src[0].suffix(12)), [5, 9, 3]]
        let encoded = try m.encode(sources)
        #expect(encoded.padding != nil && encoded.lengths == [19, 7, 12, 3])
        let config = GenerationConfig(maxNewTokens: 10, eosTokenID: 6)  // 6 is frequent: rows end early
        var beamConfig = GenerationConfig(maxNewTokens: 8, eosTokenID: 6, numBeams: 3)
        beamConfig.numReturnSequences = 2
        let batched = try m.generate(sources: sources, startTokenID: 1, config: config)
        let batchedBeams = try m.generate(sources: sources, startTokenID: 1, config: beamConfig)
        let d = m.modelDim
        let memory = encoded.memory.scalars
        for (i, s) in sources.enumerated() {
            let alone = try m.encode([s])
            // Memory rows of the real tokens.
            let start = i * 19 * d
            let rowsOfBatch = Tensor(shape: [s.count, d], scalars: memory[start..<(start + s.count * d)])
            #expect(deviation(rowsOfBatch, alone.memory.reshaped([s.count, d])).maxAbs <= 1e-5, "memory of source \(i)")
            // Teacher-forced logits.
            let target = [[1, 4, 16, 24, 21]]
            let logitsAlone = try m.decode(target, encoded: alone)
            let logitsBatch = try m.decode(Array(repeating: target[0], count: sources.count), encoded: encoded).scalars
            let slice = Tensor(shape: [1, 5, 40], scalars: logitsBatch[(i * 200)..<((i + 1) * 200)])
            #expect(deviation(slice, logitsAlone).maxAbs <= 1e-5, "teacher-forced logits of source \(i)")
            // Greedy ids: the batched row, cut after its end token, equals the lone run.
            let one = try m.generate(sources: [s], startTokenID: 1, config: config).sequences[0]
            let row = batched.sequences[i]
            #expect(Array(row.prefix(one.count)) == one, "greedy, source \(i)")
            #expect(row.dropFirst(one.count).allSatisfy { $0 == 6 }, "greedy, source \(i): pad after the end")
            // Beam ids and scores.
            let beams = try m.generate(sources: [s], startTokenID: 1, config: beamConfig)
            for k in 0..<2 {
                let a = batchedBeams.sequences[i * 2 + k], b = beams.sequences[k]
                let n = min(a.count, b.count)
                #expect(
                    a.prefix(n) == b.prefix(n) && a.dropFirst(n).allSatisfy { $0 == 6 } && b.dropFirst(n).allSatisfy { $0 == 6 },
                    "beam \(k), source \(i): batched \(a), alone \(b)")
                #expect(abs(batchedBeams.scores![i * 2 + k] - beams.scores![k]) <= 1e-5, "beam score \(k), source \(i)")
            }
        }
        #expect(batched.sequences.contains { $0.last == 6 }, "some rows should have ended early")
    }

    @Test("the stream yields the greedy ids one by one, and stops when its task is cancelled")
    func streaming() async throws {
        let m = Seq2Seq.model, io = Seq2Seq.io
        var got: [Int] = []
        for try await token in m.stream(source: io.src[1], startTokenID: 1, config: twelveSteps) { got.append(token) }
        #expect([1] + got == io.greedy[1])

        // With an end token, the stream ends with it.
        let withEOS = GenerationConfig(maxNewTokens: 12, eosTokenID: 6)
        var ended: [Int] = []
        for try await token in m.stream(source: io.src[0], startTokenID: 1, config: withEOS) { ended.append(token) }
        #expect(ended == [6])

        // Cancellation: a consumer that is cancelled after the first token sees its iteration
        // end (after the tokens already buffered) long before 1 000 000 steps. (StreamingTests
        // checks that the producer itself stops.) The limit is far out of reach so that a
        // consumer kept waiting for seconds by other tests' work still sees the end first.
        let long = GenerationConfig(maxNewTokens: 1_000_000)
        let consumer = Task { () -> (Int, Bool) in
            var n = 0
            do {
                for try await _ in m.stream(source: io.src[0], startTokenID: 1, config: long) {
                    n += 1
                    if n == 1 { withUnsafeCurrentTask { $0?.cancel() } }
                }
                return (n, false)
            } catch is CancellationError {
                return (n, true)
            }
        }
        let (n, cancelled) = try await consumer.value
        #expect(n < 1_000_000, "the stream kept going after cancellation: \(n) tokens (CancellationError: \(cancelled))")
    }

    @Test("generation honours cancellation of the calling task")
    func cancelledGenerate() async throws {
        let m = Seq2Seq.model, io = Seq2Seq.io
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try m.generate(sources: io.src, startTokenID: 1, config: GenerationConfig(maxNewTokens: 10_000))
        }
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }
}
