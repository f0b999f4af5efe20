// The async generate variants: from a TaskGroup, several generations on one model at once
// equal the serial calls (T5, decoder-only); cancelling the
// awaiting task ends a long generation at its next step.
import Attend
import Dispatch
import Foundation
import Testing

@Suite("async generation")
struct AsyncGenerationTests {
    @Test("generateAsync from 4 tasks at once equals generate called serially (T5, greedy and beams)")
    func concurrentSeq2Seq() async throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        var greedy = model.generationDefaults
        greedy.maxNewTokens = 12
        var beams = greedy
        beams.numBeams = 3
        let requests: [([[Int]], GenerationConfig)] = [
            ([[5, 6, 1]], greedy), ([[7, 8, 9, 10, 1], [11, 1]], greedy), ([[5, 6, 1]], beams), ([[12, 13, 14, 1]], beams),
        ]
        let serial = try requests.map { try model.generate(sources: $0.0, config: $0.1) }
        let results = try await withThrowingTaskGroup(of: (Int, GenerationOutput).self) { group in
            for (i, r) in requests.enumerated() {
                group.addTask { (i, try await model.generateAsync(sources: r.0, config: r.1)) }
            }
            var out: [Int: GenerationOutput] = [:]
            for try await (i, o) in group { out[i] = o }
            return out
        }
        for (i, want) in serial.enumerated() { #expect(results[i] == want, "request \(i)") }
    }

    @Test("decoder-only generateAsync from 2 tasks at once, next to a T5 one, equals the serial calls")
    func concurrentCausal() async throws {
        let t5 = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        let lm = try DecoderOnlyModel(directory: try lmFolder("llama"))
        let config = { () -> GenerationConfig in
            var c = GenerationConfig(maxNewTokens: 8)
            c.eosTokenIDs = lm.generationDefaults.eosTokenIDs
            return c
        }()
        let sources = [[5, 6, 1], [9, 1]]
        let prompts = [[13, 34, 70, 108, 9], [105, 77, 23]]
        let wantT5 = try t5.generate(sources: sources)
        let wantLM = try lm.generate(prompts: prompts, config: config)
        async let t5Rows = t5.generateAsync(sources: sources)
        async let rows = lm.generateAsync(prompts: prompts, config: config)
        async let rows2 = lm.generateAsync(prompts: prompts, config: config)
        let (t, r, r2) = try await (t5Rows, rows, rows2)
        #expect(t == wantT5)
        #expect(r == wantLM && r2 == wantLM)
    }

    @Test("cancelling the awaiting task ends a long async generate early with CancellationError")
    func cancellationEndsGenerate() async throws {
        let model = try Seq2SeqModel(directory: try fixtureFolder("t5"))
        var config = model.generationDefaults
        config.maxNewTokens = 1000  // bounded, so that a cancellation not forwarded fails the test, not hangs it
        config.eosTokenIDs = []  // never ends by itself
        let steps = AsyncStepCounter()
        let outer = TaskBox()
        // At step 3 the generation itself cancels the awaiting task (Task.cancel runs its
        // cancellation handler at once, on this thread). So the test does not depend on when
        // the cooperative threads schedule it: a busy pool cannot let the generation run on.
        config.logitsProcessor = { _, _ in
            if steps.increment() == 3 { outer.cancel() }
        }
        let task = Task { try await model.generateAsync(sources: [[5, 6, 1]], config: config) }
        outer.set(task)
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        let done = steps.value
        #expect(done >= 3 && done < 100, "\(done) steps ran")
    }
}

/// The task to cancel from inside the generation, once it is known.
final class TaskBox: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<GenerationOutput, Error>? = nil
    private var cancelled = false
    func set(_ t: Task<GenerationOutput, Error>) {
        let cancelNow = lock.withLock { () -> Bool in
            task = t
            return cancelled
        }
        if cancelNow { t.cancel() }
    }
    func cancel() {
        let t = lock.withLock { () -> Task<GenerationOutput, Error>? in
            cancelled = true
            return task
        }
        t?.cancel()
    }
}

/// A counter incremented from the generating task.
final class AsyncStepCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() -> Int {
        lock.withLock { () -> Int in
            n += 1
            return n
        }
    }
    var value: Int { lock.withLock { n } }
}
