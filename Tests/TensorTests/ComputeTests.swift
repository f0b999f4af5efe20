// Compute, Backend and KernelVariant: the supported list, the start-up variant and its
// environment override, the process-wide default and its round trip.
import Foundation
import Testing

@testable import Attend

/// Serialized: one test changes the environment variable ATTEND_VARIANT and the other sets
/// Compute.default, and each must not observe the other's temporary state.
@Suite("Compute and kernel variants", .serialized)
struct ComputeTests {
    @Test func supportedVariants() {
        let supported = KernelVariant.supported
        #expect(supported.contains(.scalar))
        #expect(supported.contains(KernelVariant.best))
        #expect(KernelVariant.best.isSupported)
        #expect(supported == KernelVariant.allCases.filter(\.isSupported), "supported keeps allCases order (slowest first)")
        #expect(supported.first == .scalar)
        #if arch(x86_64)
            #expect(!KernelVariant.neon.isSupported)
            #expect(supported.contains(.avx512) ? KernelVariant.best == .avx512 : true)
            #expect(supported.contains(.avx2) && !supported.contains(.avx512) ? KernelVariant.best == .avx2 : true)
        #elseif arch(arm64)
            #expect(KernelVariant.neon.isSupported && KernelVariant.best == .neon)
            #expect(!KernelVariant.avx2.isSupported && !KernelVariant.avx512.isSupported)
        #endif
        for v in supported {
            #expect(!v.gemmMicroKernelName.isEmpty, "\(v)")
            #expect(v.description == v.rawValue)
            #expect(KernelVariant(rawValue: v.description) == v)
        }
    }

    /// ck_variant_initial reads ATTEND_VARIANT on every call, so the rules can be checked by
    /// setting it. Compute.default is touched first so its one-time initialization does not
    /// see the temporary values. The variable is added at most once and then only overwritten
    /// (never removed: an empty value means "not set" to the library), so threads reading the
    /// environment at the same time (exit tests spawning children) always see a valid one.
    @Test func initialVariantFollowsEnvironment() {
        _ = Compute.default
        let saved = getenv("ATTEND_VARIANT").map { String(cString: $0) }
        defer { setenv("ATTEND_VARIANT", saved ?? "", 1) }
        // As the process started.
        let start = KernelVariant.initial
        if let saved, !saved.isEmpty {
            if let v = KernelVariant(rawValue: saved), v.isSupported {
                #expect(start.variant == v && start.environmentNote == nil)
            } else {
                #expect(start.variant == KernelVariant.best && start.environmentNote != nil)
            }
        } else {
            #expect(start.variant == KernelVariant.best && start.environmentNote == nil)
        }
        for v in KernelVariant.allCases {
            setenv("ATTEND_VARIANT", v.rawValue, 1)
            let got = KernelVariant.initial
            if v.isSupported {
                #expect(got.variant == v && got.environmentNote == nil, "ATTEND_VARIANT=\(v): got \(got)")
            } else {
                #expect(got.variant == KernelVariant.best, "ATTEND_VARIANT=\(v) (unsupported): got \(got)")
                #expect(got.environmentNote?.contains("cannot run") == true, "ATTEND_VARIANT=\(v): note \(got.environmentNote ?? "nil")")
            }
        }
        setenv("ATTEND_VARIANT", "bogus", 1)
        let bogus = KernelVariant.initial
        #expect(bogus.variant == KernelVariant.best)
        #expect(bogus.environmentNote?.contains("no known variant") == true, "note \(bogus.environmentNote ?? "nil")")
        setenv("ATTEND_VARIANT", "", 1)
        let empty = KernelVariant.initial
        #expect(empty.variant == KernelVariant.best && empty.environmentNote == nil, "empty ATTEND_VARIANT: \(empty)")
    }

    @Test func defaultComputeRoundTrips() throws {
        let original = Compute.default
        // As initialized: the start-up variant on all cores, or ATTEND_THREADS.
        #expect(original.backend == .native(KernelVariant.initial.variant))
        var threads = ProcessInfo.processInfo.activeProcessorCount
        if let s = ProcessInfo.processInfo.environment["ATTEND_THREADS"], let t = Int(s), (1...1024).contains(t) { threads = t }
        #expect(original.threads == max(1, threads))
        #expect(Compute.activeCores == ProcessInfo.processInfo.activeProcessorCount)

        // Only the thread count is changed, never the backend: tests running at the same time
        // may use the default, and the thread count does not change any result (the native
        // and Swift SIMD backends are bitwise independent of it), the backend would.
        defer { Compute.default = original }
        for value in [try original.with(threads: 1), try original.with(threads: 3), try original.with(threads: 2)] {
            Compute.default = value
            #expect(Compute.default == value)
        }
        Compute.default = original
        #expect(Compute.default == original)
        // Concurrent writers and readers: every read sees one of the written values whole.
        let values = [try original.with(threads: 1), try original.with(threads: 2)]
        let torn = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { w in
            for i in 0..<2000 {
                if (w + i) % 2 == 0 {
                    Compute.default = values[(w + i / 2) % 2]
                } else if !values.contains(Compute.default) {
                    torn.increment()
                }
            }
        }
        #expect(torn.value == 0, "\(torn.value) reads saw a value nobody wrote")
        Compute.default = original
        #expect(Compute.default == original)
    }

    @Test func computeValues() throws {
        let c = try Compute(backend: .native(.scalar), threads: 2)
        #expect(c.backend == .native(.scalar) && c.threads == 2)
        #expect(try c.with(threads: 5) == Compute(backend: .native(.scalar), threads: 5))
        #expect(try c.with(backend: .swiftSIMD) == Compute(backend: .swiftSIMD, threads: 2))
        #expect(try c != c.with(threads: 1))
        #expect(Set([c, try c.with(threads: 2), try c.with(backend: .swiftSIMD)]).count == 2)
        #expect(Backend.native(.avx2).description == "native(avx2)")
        #expect(Backend.swiftSIMD.description == "swiftSIMD")
        #expect(Backend.native(.scalar) != Backend.native(.avx2))
    }

    /// A thread count outside 1...1024 throws ModelInputError naming the count and the allowed
    /// range, from the initializer (either backend) and from `with(threads:)`; nothing stops.
    @Test("threads outside 1...1024 throw, naming the count", arguments: [0, -1, Int.min, 1025, 1 << 40, Int.max])
    func threadsOutOfRangeThrow(_ threads: Int) throws {
        let valid = try Compute(backend: .native(.scalar), threads: 2)
        let attempts: [(String, () throws(ModelInputError) -> Compute)] = [
            ("init, native", { () throws(ModelInputError) in try Compute(backend: .native(.scalar), threads: threads) }),
            ("init, swiftSIMD", { () throws(ModelInputError) in try Compute(backend: .swiftSIMD, threads: threads) }),
            ("with(threads:)", { () throws(ModelInputError) in try valid.with(threads: threads) }),
            ("Compute.default.with(threads:)", { () throws(ModelInputError) in try Compute.default.with(threads: threads) }),
        ]
        for (what, attempt) in attempts {
            let error = #expect(throws: ModelInputError.self, "\(what)") { _ = try attempt() }
            #expect(error?.message == "Compute: threads must be in 1...1024, got \(threads)", "\(what): \(error?.message ?? "no error")")
        }
    }

    /// measureFMAPeak's arguments out of range throw ModelInputError naming the argument; a
    /// short valid run gives a positive peak.
    @Test func measureFMAPeakArgumentsThrow() throws {
        let v = KernelVariant.scalar
        let cases: [(Int, Double, Int, String)] = [
            (0, 0.01, 1, "measureFMAPeak: threads must be in 1...1024, got 0"),
            (1025, 0.01, 1, "measureFMAPeak: threads must be in 1...1024, got 1025"),
            (1, 0, 1, "measureFMAPeak: seconds must be in (0, 3600], got 0.0"),
            (1, .nan, 1, "measureFMAPeak: seconds must be in (0, 3600], got nan"),
            (1, 1e9, 1, "measureFMAPeak: seconds must be in (0, 3600], got 1000000000.0"),
            (1, 0.01, 0, "measureFMAPeak: trials must be in 1...1000, got 0"),
        ]
        for (threads, seconds, trials, want) in cases {
            let error = #expect(throws: ModelInputError.self) { _ = try v.measureFMAPeak(threads: threads, seconds: seconds, trials: trials) }
            #expect(error?.message == want)
        }
        #expect(try v.measureFMAPeak(threads: 1, seconds: 0.002, trials: 1) > 0)
    }

    /// A native variant this CPU cannot run throws ModelInputError naming it and listing the
    /// supported ones, from the initializer and from `with(backend:)`; nothing stops.
    @Test func unsupportedVariantThrows() throws {
        #if arch(x86_64)
            let never = KernelVariant.neon
        #else
            let never = KernelVariant.avx2
        #endif
        let unsupported = KernelVariant.allCases.filter { !$0.isSupported }
        #expect(unsupported.contains(never) && !KernelVariant.supported.contains(never))
        let valid = try Compute(backend: .swiftSIMD, threads: 3)
        let list = KernelVariant.supported.map(\.rawValue).joined(separator: ", ")
        for v in unsupported {
            let attempts: [(String, () throws(ModelInputError) -> Compute)] = [
                ("init", { () throws(ModelInputError) in try Compute(backend: .native(v), threads: 1) }),
                ("with(backend:)", { () throws(ModelInputError) in try valid.with(backend: .native(v)) }),
            ]
            for (what, attempt) in attempts {
                let error = #expect(throws: ModelInputError.self, "\(v) \(what)") { _ = try attempt() }
                #expect(
                    error?.message == "Compute: variant \(v) is not supported on this CPU (supported: \(list))",
                    "\(v) \(what): \(error?.message ?? "no error")")
            }
        }
        // Both wrong: the thread count is named first.
        let both = #expect(throws: ModelInputError.self) { try Compute(backend: .native(never), threads: 0) }
        #expect(both?.message.contains("got 0") == true)
        // Every supported variant and Swift SIMD are taken, as is any count in 1...1024.
        for backend in KernelVariant.supported.map(Backend.native) + [.swiftSIMD] {
            #expect(try valid.with(backend: backend) == Compute(backend: backend, threads: 3))
            #expect(try Compute(backend: backend, threads: Compute.maximumThreads).threads == 1024)
        }
    }

    /// `swift test` builds debug (C at -O0); `swift test -c release` optimizes the C.
    @Test func kernelsOptimizedMatchesBuildConfiguration() {
        #if DEBUG
            #expect(!kernelsAreOptimized)
        #else
            #expect(kernelsAreOptimized)
        #endif
    }
}

/// A lock-protected counter for tests.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
