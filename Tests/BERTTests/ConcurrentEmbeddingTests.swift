// Several tasks calling one SentenceEmbedder / BERTModel at once (the async variants, from a
// TaskGroup): every call finishes and equals the serial call, whichever caller had the worker
// pool for which region. Model: Fixtures/sentence_bert.
import Attend
import Foundation
import Testing

@Suite("concurrent calls of one embedder")
struct ConcurrentEmbeddingTests {
    static let embedder: SentenceEmbedder = try! SentenceEmbedder(directory: Fixtures.url("sentence_bert"))

    /// Text sets of different sizes and lengths, one per caller.
    static let sets: [[String]] = (0..<6).map { c in
        (0..<(8 + 5 * c)).map { i in (0...(i * 7 + c) % 20).map { "w\(($0 * 13 + i + c) % 115)" }.joined(separator: " ") }
    }

    @Test("embedAsync from 6 tasks at once equals embed called serially, bit for bit")
    func concurrentEmbedEqualsSerial() async throws {
        let e = Self.embedder
        let serial = try Self.sets.map { try e.embed($0, batchSize: 4) }
        for _ in 0..<3 {
            let results = try await withThrowingTaskGroup(of: (Int, Tensor).self) { group in
                for (c, texts) in Self.sets.enumerated() {
                    group.addTask { (c, try await e.embedAsync(texts, batchSize: 4)) }
                }
                var out: [Int: Tensor] = [:]
                for try await (c, t) in group { out[c] = t }
                return out
            }
            #expect(results.count == Self.sets.count)
            for (c, want) in serial.enumerated() {
                #expect(results[c]?.shape == want.shape)
                #expect(results[c]?.scalars == want.scalars, "caller \(c): concurrent result differs from the serial one")
            }
        }
    }

    @Test("forwardAsync from 4 tasks at once equals forward called serially")
    func concurrentForwardEqualsSerial() async throws {
        let m = Self.embedder.model
        let inputs: [[[Int]]] = (0..<4).map { c in (0..<(2 + c)).map { r in (0..<(6 + 3 * c)).map { (r * 11 + $0 * 7 + c) % 120 } } }
        let serial = try inputs.map { try m.forward(inputIDs: $0).lastHiddenState.scalars }
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (c, ids) in inputs.enumerated() {
                group.addTask { (c, try await m.forwardAsync(inputIDs: ids).lastHiddenState.scalars) }
            }
            var out: [Int: [Float]] = [:]
            for try await (c, t) in group { out[c] = t }
            return out
        }
        for (c, want) in serial.enumerated() { #expect(results[c] == want, "caller \(c)") }
    }

    @Test("the async variants throw the synchronous errors, and CancellationError when already cancelled")
    func errorsAndCancellation() async throws {
        let e = Self.embedder
        await #expect(throws: ModelInputError.self) { _ = try await e.embedAsync(["w1"], batchSize: 0) }
        await #expect(throws: ModelInputError.self) { _ = try await e.model.forwardAsync(inputIDs: [[1, 2], [3]]) }
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await e.embedAsync(["w1 w2"])
        }
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }
}
