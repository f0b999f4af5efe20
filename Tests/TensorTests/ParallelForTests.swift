// parallelFor: every index exactly once for every count and thread count, nested regions,
// and concurrent regions from several threads and Swift tasks (no deadlock, right results);
// the public form throws for a count or thread count out of range.
import CKernels
import Dispatch
import Foundation
import Testing

@testable import Attend

/// Per-index visit counters, incremented atomically (so a double visit is counted even when
/// two threads make it at the same time).
final class VisitCounts: @unchecked Sendable {
    let count: Int
    private let cells: UnsafeMutablePointer<Int64>

    init(_ count: Int) {
        self.count = count
        cells = .allocate(capacity: max(count, 1))
        cells.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { cells.deallocate() }

    func visit(_ i: Int) {
        precondition(i >= 0 && i < count, "parallelFor passed index \(i) outside 0..<\(count)")
        _ = ck_atomic_fetch_add(cells + i, 1)
    }

    /// The first index not visited exactly once, with its count.
    func firstWrong() -> (index: Int, visits: Int64)? {
        for i in 0..<count {
            let v = ck_atomic_load(cells + i)
            if v != 1 { return (i, v) }
        }
        return nil
    }
}

/// Runs `body` on a new thread and waits at most `seconds` for it. Returns false on timeout
/// (a deadlock): the test then fails instead of hanging the whole run.
func finishesInTime(seconds: Double = 60, _ body: @escaping @Sendable () -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.stackSize = 4 << 20
    thread.start()
    return done.wait(timeout: .now() + seconds) == .success
}

@Suite("parallelFor")
struct ParallelForTests {
    @Test("every index is visited exactly once", arguments: [0, 1, 2, 3, 100, 10_000], 1...4)
    func everyIndexOnce(count: Int, threads: Int) throws {
        // Repeat: a race in claiming items shows up only now and then. The public form, which
        // checks the arguments and runs the internal one.
        for round in 0..<(count <= 100 ? 50 : 5) {
            let visits = VisitCounts(count)
            try parallelFor(count: count, threads: threads) { visits.visit($0) }
            if let bad = visits.firstWrong() {
                Issue.record("parallelFor(\(count), threads: \(threads)) round \(round): index \(bad.index) visited \(bad.visits) times")
                return
            }
        }
    }

    /// A count outside 0..<2^31 or a thread count outside 1...1024 throws ModelInputError naming the
    /// value (the count first), before any item runs; nothing stops. A thread count in range but
    /// above the count is taken.
    @Test(
        "a count or thread count out of range throws, naming the value",
        arguments: [(-1, 1), (Int.min, 4), (1 << 31, 2), (Int.max, 1), (-1, 0), (3, 0), (3, -1), (0, Int.min), (1, 0), (5, 1025), (0, Int.max)])
    func badArgumentsThrow(count: Int, threads: Int) {
        let visits = VisitCounts(1)
        let error = #expect(throws: ModelInputError.self) {
            try parallelFor(count: count, threads: threads) { _ in visits.visit(0) }
        }
        let want =
            count < 0 || count >= 1 << 31
            ? "parallelFor: count must be in 0...2147483647, got \(count)"
            : "parallelFor: threads must be in 1...1024, got \(threads)"
        #expect(error?.message == want, "count \(count), threads \(threads): \(error?.message ?? "no error")")
        #expect(visits.firstWrong()?.visits == 0, "an item ran")
    }

    @Test func threadsAboveCountAndEdgeCountsRun() throws {
        for (count, threads) in [(5, 1024), (0, 1), (0, 1024), (1, 1024), (3, 7)] {
            let visits = VisitCounts(count)
            try parallelFor(count: count, threads: threads) { visits.visit($0) }
            #expect(visits.firstWrong() == nil, "count \(count), threads \(threads)")
        }
    }

    @Test("results written per index are all there when parallelFor returns")
    func resultsVisibleAfterReturn() {
        for threads in 1...4 {
            let n = 5000
            let out = UnsafeMutablePointer<Int>.allocate(capacity: n)
            out.initialize(repeating: -1, count: n)
            defer { out.deallocate() }
            parallelFor(n, threads: threads) { i in out[i] = i &* i }
            let firstBad = (0..<n).first { out[$0] != $0 &* $0 }
            #expect(firstBad == nil, "threads=\(threads): index \(firstBad ?? -1) holds \(firstBad.map { out[$0] } ?? 0)")
        }
    }

    @Test("uneven items balance and still run exactly once")
    func unevenItems() {
        let visits = VisitCounts(64)
        parallelFor(64, threads: 3) { i in
            // Items 0..<8 do much more work than the rest.
            var x = 0.0
            for j in 0..<(i < 8 ? 20_000 : 10) { x += Double(j) }
            if x >= 0 { visits.visit(i) }
        }
        #expect(visits.firstWrong() == nil)
    }

    @Test("nested parallelFor runs every inner index once and does not deadlock")
    func nested() {
        let outer = 8, inner = 50
        let visits = VisitCounts(outer * inner)
        let ok = finishesInTime {
            parallelFor(outer, threads: 4) { i in
                parallelFor(inner, threads: 4) { j in visits.visit(i * inner + j) }
            }
        }
        #expect(ok, "nested parallelFor did not finish within 60 s (deadlock?)")
        if ok {
            let bad = visits.firstWrong()
            #expect(bad == nil, "nested: index \(bad?.index ?? -1) visited \(bad?.visits ?? 0) times")
        }
    }

    @Test("concurrent parallelFor from several threads: no deadlock, right results")
    func concurrentFromThreads() {
        let callers = 4, calls = 40, count = 300
        let all = (0..<callers).map { _ in (0..<calls).map { _ in VisitCounts(count) } }
        let ok = finishesInTime {
            DispatchQueue.concurrentPerform(iterations: callers) { c in
                for call in 0..<calls {
                    let v = all[c][call]
                    parallelFor(count, threads: 1 + (c + call) % 4) { v.visit($0) }
                }
            }
        }
        #expect(ok, "concurrent parallelFor calls did not finish within 60 s (deadlock?)")
        if ok {
            for c in 0..<callers {
                for call in 0..<calls {
                    if let bad = all[c][call].firstWrong() {
                        Issue.record("caller \(c) call \(call): index \(bad.index) visited \(bad.visits) times")
                    }
                }
            }
        }
    }

    @Test("concurrent parallelFor from Swift tasks: no deadlock, right results")
    func concurrentFromTasks() async {
        let tasks = 8, calls = 20, count = 500
        let results = await withTaskGroup(of: String?.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for call in 0..<calls {
                        let v = VisitCounts(count)
                        parallelFor(count, threads: 2 + (t + call) % 3) { v.visit($0) }
                        if let bad = v.firstWrong() {
                            return "task \(t) call \(call): index \(bad.index) visited \(bad.visits) times"
                        }
                    }
                    return nil
                }
            }
            var failures: [String] = []
            for await r in group { if let r { failures.append(r) } }
            return failures
        }
        #expect(results.isEmpty, "\(results)")
    }

    @Test("a GEMM inside a parallelFor body (nested regions through the kernels)")
    func gemmInsideParallelFor() throws {
        let a = Tensor(shape: [40, 30], generating: { Float($0 % 7) - 3 })
        let b = Tensor(shape: [30, 20], generating: { Float($0 % 5) - 2 })
        let expected = a.matmul(b, compute: try Compute(backend: .native(.scalar), threads: 1))
        let outputs = (0..<6).map { _ in TensorBox() }
        let native = try Compute(backend: .native(KernelVariant.best), threads: 2), simd = try Compute(backend: .swiftSIMD, threads: 2)
        let ok = finishesInTime {
            parallelFor(6, threads: 3) { i in
                outputs[i].value = a.matmul(b, compute: i % 2 == 0 ? native : simd)
            }
        }
        #expect(ok, "GEMM inside parallelFor did not finish within 60 s (deadlock?)")
        // Small integers: exact on every backend.
        for i in 0..<6 where ok { #expect(outputs[i].value == expected, "item \(i)") }
    }
}

/// A slot one parallel item writes (each item its own).
final class TensorBox: @unchecked Sendable {
    var value: Tensor? = nil
}
