internal import CKernels
import Foundation

/// Runs `body(i)` for every `i` in `0..<count`, spread over `threads` threads (the calling
/// thread included), and returns when all calls have finished.
///
/// Items are claimed dynamically, one at a time, so uneven items balance themselves. Which
/// thread runs which item is not fixed; write each item's output to its own place.
/// The worker threads are created once and kept warm between calls (they spin for
/// ``Compute/workerSpinTime`` before sleeping), so a parallel region costs microseconds, not a
/// thread start-up or a cold wake-up.
///
/// There is one pool per process and it runs one region at a time. When it is already running
/// a region, the items run serially on the calling thread: for a region started inside another
/// one's `body` (nested), and for a region another thread starts meanwhile (two tasks calling
/// models at once: the first region gets the pool, the other runs on its caller's thread
/// alone). Both finish with the same results; the second is slower. Such regions are counted
/// in ``Compute/workerPoolContention``. See <doc:Concurrency>.
///
/// `body` cannot throw: an item that can fail records its error in its own output slot, and
/// the caller looks at the slots after the call returns. Only the arguments are checked, before
/// any item runs.
///
/// Cost: `count` calls of `body` plus about one cache-line round trip per item.
///
/// - Throws: ``ModelInputError`` naming the value when `count` is outside
///   `0...2147483647` (0..<2^31) or `threads` is outside 1...``Compute/maximumThreads``; `body`
///   is then not called.
public func parallelFor(count: Int, threads: Int = Compute.default.threads, _ body: (Int) -> Void) throws(ModelInputError) {
    guard count >= 0 && count < 1 << 31 else {
        throw ModelInputError("parallelFor: count must be in 0...2147483647, got \(count)")
    }
    guard (1...Compute.maximumThreads).contains(threads) else {
        throw ModelInputError("parallelFor: threads must be in 1...\(Compute.maximumThreads), got \(threads)")
    }
    parallelFor(count, threads: threads, body)
}

/// ``parallelFor(count:threads:_:)`` for Attend's own callers, whose counts and thread counts
/// are its invariants (a `Compute`'s `threads` is at least 1, counts are sizes of work): not
/// thrown, checked by preconditions.
func parallelFor(_ count: Int, threads: Int = Compute.default.threads, _ body: (Int) -> Void) {
    precondition(count >= 0, "parallelFor: negative count \(count)")
    precondition(threads >= 1, "parallelFor: threads must be at least 1, got \(threads)")
    if count == 0 { return }
    if count == 1 || threads == 1 {
        for i in 0..<count { body(i) }
        return
    }
    precondition(count < 1 << 31, "parallelFor: count \(count) exceeds 2^31 items")
    WorkerPool.shared.run(count: count, threads: min(threads, count), body)
}

/// A fixed set of worker threads that spin, then sleep, waiting for parallel regions.
///
/// Protocol: the publisher stores the job, resets the `done` counter, sets the claim cell to
/// `generation << 32 | count` and bumps `generation`. Workers claim items by decrementing the
/// claim cell with a compare-and-swap that succeeds only while its tag equals the generation
/// they saw (the item is the remaining count minus one, so no other shared state is read), so
/// a worker that is late from the previous region can never claim an item of the next one.
/// The publisher waits until `done == count`; only then can the next region be published.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long an idle worker spins before it sleeps on the condition variable, by default.
    /// Waking a sleeping thread on a virtual machine can take milliseconds; spinning keeps
    /// back-to-back regions (the layers of a model) in the microsecond range.
    static let defaultSpinSeconds: Double = 0.005

    // Atomic cells, each on its own cache line (8 Int64 per 64-byte line); the settings and
    // counters, rarely written, share the fourth.
    private let cells: UnsafeMutablePointer<Int64>
    private var generation: UnsafeMutablePointer<Int64> { cells }
    private var claim: UnsafeMutablePointer<Int64> { cells + 8 }
    private var done: UnsafeMutablePointer<Int64> { cells + 16 }
    /// The spin time in nanoseconds.
    private var spinNanoseconds: UnsafeMutablePointer<Int64> { cells + 24 }
    /// Regions run serially because another thread's region held the pool.
    private var concurrentCount: UnsafeMutablePointer<Int64> { cells + 25 }
    /// Regions run serially because they started inside a region.
    private var nestedCount: UnsafeMutablePointer<Int64> { cells + 26 }
    /// The identity of the thread publishing the current region (0 when none).
    private var owner: UnsafeMutablePointer<Int64> { cells + 27 }

    private var job: ((Int) -> Void)?
    private var jobWorkers = 0  // workers with index < jobWorkers take part

    private let wake = NSCondition()
    private let busy = NSLock()
    private var workerCount = 0

    private init() {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 4 * 64, alignment: 64)
        cells = raw.bindMemory(to: Int64.self, capacity: 32)
        cells.initialize(repeating: 0, count: 32)
        ck_atomic_store(spinNanoseconds, Int64(WorkerPool.defaultSpinSeconds * 1e9))
    }

    /// How long an idle worker spins before sleeping, in seconds (``Compute/workerSpinTime``).
    var spinSeconds: Double {
        get { Double(ck_atomic_load(spinNanoseconds)) / 1e9 }
        set { ck_atomic_store(spinNanoseconds, Int64(newValue * 1e9)) }
    }

    /// The regions run serially because the pool was busy: (another thread's, nested).
    var contention: (concurrent: Int, nested: Int) {
        (Int(ck_atomic_load(concurrentCount)), Int(ck_atomic_load(nestedCount)))
    }

    /// A number identifying the calling thread (its `Thread` object, alive as long as the thread).
    private static func threadIdentity() -> Int64 {
        Int64(Int(bitPattern: UInt(bitPattern: ObjectIdentifier(Thread.current))))
    }

    /// Starts workers until there are at least `n`. Called with `busy` held.
    private func ensureWorkers(_ n: Int) {
        while workerCount < n {
            let index = workerCount
            let thread = Thread { [unowned self] in self.workerLoop(index: index) }
            thread.name = "attend-worker-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
            workerCount += 1
        }
    }

    func run(count: Int, threads: Int, _ body: (Int) -> Void) {
        guard busy.try() else {
            // Nested (a worker, or the publisher inside its own region) or concurrent (another
            // thread's region holds the pool): run here.
            let nested = Thread.current.name?.hasPrefix("attend-worker-") == true
                || ck_atomic_load(owner) == WorkerPool.threadIdentity()
            _ = ck_atomic_fetch_add(nested ? nestedCount : concurrentCount, 1)
            for i in 0..<count { body(i) }
            return
        }
        ck_atomic_store(owner, WorkerPool.threadIdentity())
        defer {
            ck_atomic_store(owner, 0)
            busy.unlock()
        }
        ensureWorkers(threads - 1)
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            jobWorkers = threads - 1
            ck_atomic_store(done, 0)
            let gen = ck_atomic_load(generation) + 1
            ck_atomic_store(claim, gen << 32 | Int64(count))
            wake.lock()
            ck_atomic_store(generation, gen)
            wake.broadcast()
            wake.unlock()
            work(generation: gen)
            while ck_atomic_load(done) < Int64(count) { ck_cpu_relax() }
            job = nil
        }
    }

    /// Claims and runs items of region `gen` until none are left.
    private func work(generation gen: Int64) {
        while true {
            let c = ck_atomic_load(claim)
            let remaining = c & 0xFFFF_FFFF
            guard c >> 32 == gen, remaining > 0 else { return }
            guard ck_atomic_compare_exchange(claim, c, c - 1) != 0 else { continue }
            job!(Int(remaining - 1))
            _ = ck_atomic_fetch_add(done, 1)
        }
    }

    private func workerLoop(index: Int) {
        var seen = ck_atomic_load(generation)
        while true {
            // Spin for a while, then sleep until the generation moves.
            let start = DispatchTime.now().uptimeNanoseconds
            let limit = UInt64(max(0, ck_atomic_load(spinNanoseconds)))
            var spins = 0
            while ck_atomic_load(generation) == seen {
                ck_cpu_relax()
                spins += 1
                if spins & 1023 == 0, DispatchTime.now().uptimeNanoseconds - start > limit {
                    wake.lock()
                    while ck_atomic_load(generation) == seen { wake.wait() }
                    wake.unlock()
                }
            }
            seen = ck_atomic_load(generation)
            if index < jobWorkers { work(generation: seen) }
        }
    }
}
