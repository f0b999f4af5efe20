// The worker pool's settings and what it reports: Compute.workerSpinTime (clamped, read back,
// regions still right with 0), and Compute.workerPoolContention counting a region that found
// the pool busy with another thread's region (it runs on its caller's thread alone) and a
// nested one. Counters are process-wide and other suites run at the same time, so the tests
// check increases, and which thread ran the items.
import Dispatch
import Foundation
import Testing

@testable import Attend

/// Serialized: the spin-time test changes a process-wide setting the other test reads.
@Suite("worker pool settings and contention", .serialized)
struct WorkerPoolTests {
    @Test("workerSpinTime: set, read back, clamped; regions stay right with 0 (workers sleep at once)")
    func spinTime() {
        let saved = Compute.workerSpinTime
        defer { Compute.workerSpinTime = saved }
        #expect(abs(saved - 0.005) < 1e-9, "the default is 5 ms")
        for (set, want) in [(0.0, 0.0), (0.002, 0.002), (-1.0, 0.0), (Double.nan, 0.0), (50.0, 1.0)] {
            Compute.workerSpinTime = set
            #expect(abs(Compute.workerSpinTime - want) < 1e-9, "set \(set)")
        }
        Compute.workerSpinTime = 0
        for round in 0..<20 {
            let visits = VisitCounts(1000)
            parallelFor(1000, threads: 4) { visits.visit($0) }
            if let bad = visits.firstWrong() {
                Issue.record("spin 0, round \(round): index \(bad.index) visited \(bad.visits) times")
                return
            }
            usleep(200)  // let the workers go to sleep between regions
        }
    }

    /// One attempt: thread A starts a region whose item 0 waits until this thread's region of
    /// 64 items has finished. Returns whether those 64 items all ran on this thread, and the
    /// contention counts before and after. (When another suite's region holds the pool just
    /// then, A's region runs serially and proves nothing: the caller tries again.)
    static func overlappingRegions() -> (allHere: Bool, before: WorkerPoolContention, after: WorkerPoolContention)? {
        let before = Compute.workerPoolContention
        let holding = DispatchSemaphore(value: 0), released = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
        let ranOn = LockedList()
        let me = ObjectIdentifier(Thread.current)
        Thread {
            parallelFor(2, threads: 2) { i in
                if i == 0 {
                    holding.signal()
                    released.wait()
                }
            }
            finished.signal()
        }.start()
        guard holding.wait(timeout: .now() + 60) == .success else { return nil }
        parallelFor(64, threads: 4) { _ in ranOn.append(ObjectIdentifier(Thread.current)) }
        released.signal()
        guard finished.wait(timeout: .now() + 60) == .success else { return nil }
        let here = ranOn.all
        return (here.count == 64 && here.allSatisfy { $0 == me }, before, Compute.workerPoolContention)
    }

    @Test("a region started while another thread's region holds the pool runs on its caller alone, and is counted")
    func concurrentRegionCounted() throws {
        var seen = false
        for _ in 0..<10 {
            let r = try #require(Self.overlappingRegions(), "deadlock")
            if r.allHere {
                #expect(r.after.concurrentRegions >= r.before.concurrentRegions + 1, "not counted: \(r.before) -> \(r.after)")
                seen = true
                break
            }
        }
        #expect(seen, "a region overlapping another thread's never ran on its caller alone")
    }

    @Test("regions inside a region's body run serially and are counted as nested")
    func nestedRegionsCounted() {
        var counted = false
        // Other suites' regions may hold the pool for a while: try until this one gets it.
        for attempt in 0..<200 {
            if attempt > 0 { usleep(10_000) }
            let before = Compute.workerPoolContention.nestedRegions
            let visits = VisitCounts(4 * 8)
            parallelFor(4, threads: 2) { i in
                parallelFor(8, threads: 2) { j in visits.visit(i * 8 + j) }
            }
            #expect(visits.firstWrong() == nil)
            // All 4 when this region got the pool (another suite's region may have held it).
            if Compute.workerPoolContention.nestedRegions >= before + 4 {
                counted = true
                break
            }
        }
        #expect(counted, "inner regions were not counted as nested")
    }
}

/// A list appended to from several threads.
final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [ObjectIdentifier] = []
    func append(_ x: ObjectIdentifier) { lock.withLock { items.append(x) } }
    var all: [ObjectIdentifier] { lock.withLock { items } }
}
