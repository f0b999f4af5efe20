import Foundation

/// Which implementation runs the heavy kernels.
public enum Backend: Sendable, Hashable, CustomStringConvertible {
    /// The hand-written C kernels of one instruction-set variant.
    case native(KernelVariant)
    /// The independent Swift `SIMD` implementations: portable, slower, and the oracle the C
    /// kernels are tested against.
    case swiftSIMD

    /// "native(avx2)", "swiftSIMD".
    public var description: String {
        switch self {
        case .native(let v): return "native(\(v))"
        case .swiftSIMD: return "swiftSIMD"
        }
    }
}

/// How a computation runs: the backend and the number of threads.
///
/// Every heavy operation takes a `Compute` (defaulting to ``Compute/default``). Results do
/// not depend on `threads` beyond float reassociation: work is split over output tiles and
/// each tile is computed by one thread in a fixed order.
public struct Compute: Sendable, Hashable {
    /// The kernel implementation: Swift SIMD or a native variant this CPU runs. Read-only;
    /// ``with(backend:)`` makes a copy with another one, checked.
    public private(set) var backend: Backend
    /// Threads used by parallel operations (the caller's thread included); at least 1.
    /// Read-only; ``with(threads:)`` makes a copy with another count, checked.
    public private(set) var threads: Int

    /// A configuration of `backend` on `threads` threads.
    ///
    /// - Throws: ``ModelInputError`` naming the value when `threads` is below 1, or when
    ///   `backend` is a native variant this CPU cannot run (the message lists
    ///   ``KernelVariant/supported``).
    public init(backend: Backend, threads: Int) throws(ModelInputError) {
        guard (1...Compute.maximumThreads).contains(threads) else {
            throw ModelInputError("Compute: threads must be in 1...\(Compute.maximumThreads), got \(threads)")
        }
        if case .native(let v) = backend, !v.isSupported {
            let supported = KernelVariant.supported.map(\.rawValue).joined(separator: ", ")
            throw ModelInputError("Compute: variant \(v) is not supported on this CPU (supported: \(supported))")
        }
        self.init(valid: backend, threads: threads)
    }

    /// A configuration the caller knows to be valid (`threads >= 1`, a native variant this
    /// CPU runs): not checked again.
    private init(valid backend: Backend, threads: Int) {
        self.backend = backend
        self.threads = threads
    }

    /// The most threads a `Compute` (and ``parallelFor(count:threads:_:)``) takes: 1024. Each
    /// thread of a region is a kept worker thread, so a larger count would only create idle
    /// threads (a host app could run out of them) on any machine that exists.
    public static let maximumThreads = 1024

    /// The number of active processor cores, the default thread count (overridden by the
    /// environment variable `ATTEND_THREADS` when it holds an integer in 1...1024; another
    /// value is ignored).
    public static var activeCores: Int { ProcessInfo.processInfo.activeProcessorCount }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current: Compute = {
        var threads = ProcessInfo.processInfo.activeProcessorCount
        if let s = ProcessInfo.processInfo.environment["ATTEND_THREADS"], let t = Int(s), (1...maximumThreads).contains(t) {
            threads = t
        }
        return Compute(valid: .native(KernelVariant.initial.variant), threads: min(max(1, threads), maximumThreads))
    }()

    /// The process-wide default used when a call names no `Compute`: the best supported
    /// native variant (or `ATTEND_VARIANT`) on all active cores (or `ATTEND_THREADS`).
    /// Setting it forces a variant or a thread count for every later call. Thread-safe.
    public static var `default`: Compute {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }

    /// `self` with another thread count.
    ///
    /// - Throws: ``ModelInputError`` naming the value when `threads` is below 1.
    public func with(threads: Int) throws(ModelInputError) -> Compute { try Compute(backend: backend, threads: threads) }

    /// `self` with another backend.
    ///
    /// - Throws: ``ModelInputError`` when `backend` is a native variant this CPU cannot run
    ///   (the message lists ``KernelVariant/supported``).
    public func with(backend: Backend) throws(ModelInputError) -> Compute { try Compute(backend: backend, threads: threads) }

    /// `self` on one thread: for work that is split over the threads one level up.
    var serial: Compute { Compute(valid: backend, threads: 1) }
}

/// Parallel regions that could not use the worker pool because it was running another region
/// (see ``Compute/workerPoolContention``): their items ran one after another on the calling
/// thread. Counts since the process started.
public struct WorkerPoolContention: Sendable, Hashable {
    /// Regions started while another thread's region held the pool (two tasks calling models
    /// at once): each ran on its caller's thread alone, whatever its `Compute.threads`.
    public var concurrentRegions: Int
    /// Regions started inside a region's body (on a thread already working for the pool).
    public var nestedRegions: Int

    /// A count of each kind.
    public init(concurrentRegions: Int, nestedRegions: Int) {
        self.concurrentRegions = concurrentRegions
        self.nestedRegions = nestedRegions
    }
}

extension Compute {
    /// How long, in seconds, an idle thread of the worker pool busy-waits for the next
    /// parallel region before it sleeps (default 0.005). Spinning keeps the gaps between the
    /// regions of one forward pass (a few per layer) in the microsecond range, at the cost of
    /// up to this much CPU time per worker after each region. 0 makes workers sleep after a
    /// few microseconds: for battery-bound apps, where waking a sleeping worker (tens of
    /// microseconds, milliseconds on some virtual machines) per region is the better trade.
    /// Process-wide and thread-safe; a worker reads it each time it goes idle. Negative and
    /// NaN values are taken as 0 and values above 1 as 1.
    public static var workerSpinTime: Double {
        get { WorkerPool.shared.spinSeconds }
        set { WorkerPool.shared.spinSeconds = newValue.isNaN ? 0 : Swift.min(Swift.max(newValue, 0), 1) }
    }

    /// How many parallel regions found the process's worker pool busy and ran serially on
    /// their caller's thread, since the process started (see ``WorkerPoolContention``). The
    /// pool runs one region at a time: when two tasks call models at once, each region of the
    /// one that comes second while the other holds the pool runs with one thread. Results are
    /// the same; only speed suffers. A rising `concurrentRegions` says calls overlap: give
    /// each caller `try Compute.default.with(threads: 1)` and run one call per core, or queue
    /// the calls so each gets every thread. See <doc:Concurrency>. Cost: two atomic loads.
    public static var workerPoolContention: WorkerPoolContention {
        let c = WorkerPool.shared.contention
        return WorkerPoolContention(concurrentRegions: c.concurrent, nestedRegions: c.nested)
    }
}
