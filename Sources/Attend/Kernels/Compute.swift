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
    /// The kernel implementation.
    public var backend: Backend
    /// Threads used by parallel operations (the caller's thread included); at least 1.
    public var threads: Int

    /// A configuration; `backend` must be supported on this CPU, `threads` at least 1.
    public init(backend: Backend, threads: Int) {
        precondition(threads >= 1, "Compute: threads must be at least 1, got \(threads)")
        if case .native(let v) = backend {
            precondition(v.isSupported, "Compute: variant \(v) is not supported on this CPU (supported: \(KernelVariant.supported))")
        }
        self.backend = backend
        self.threads = threads
    }

    /// The number of active processor cores, the default thread count (overridden by the
    /// environment variable `ATTEND_THREADS` when it holds a positive integer).
    public static var activeCores: Int { ProcessInfo.processInfo.activeProcessorCount }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current: Compute = {
        var threads = ProcessInfo.processInfo.activeProcessorCount
        if let s = ProcessInfo.processInfo.environment["ATTEND_THREADS"], let t = Int(s), t >= 1 {
            threads = t
        }
        return Compute(backend: .native(KernelVariant.initial.variant), threads: max(1, threads))
    }()

    /// The process-wide default used when a call names no `Compute`: the best supported
    /// native variant (or `ATTEND_VARIANT`) on all active cores (or `ATTEND_THREADS`).
    /// Setting it forces a variant or a thread count for every later call. Thread-safe.
    public static var `default`: Compute {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }

    /// `self` with another thread count.
    public func with(threads: Int) -> Compute { Compute(backend: backend, threads: threads) }

    /// `self` with another backend.
    public func with(backend: Backend) -> Compute { Compute(backend: backend, threads: threads) }
}
