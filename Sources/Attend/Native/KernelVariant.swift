internal import CKernels
import Dispatch

/// An instruction-set variant of Attend's C kernels.
///
/// Every kernel exists once per variant; the process picks the fastest one the CPU supports
/// at start-up (or the one named by the environment variable `ATTEND_VARIANT`), and any
/// supported variant can be chosen per call through ``Compute``.
public enum KernelVariant: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Portable scalar C: runs everywhere; the fallback row of every kernel table.
    case scalar
    /// x86-64 AVX2 with FMA.
    case avx2
    /// x86-64 AVX-512 (F, BW, DQ, VL).
    case avx512
    /// AArch64 Advanced SIMD.
    case neon

    var cValue: Int32 {
        switch self {
        case .scalar: return Int32(CK_VARIANT_SCALAR.rawValue)
        case .avx2: return Int32(CK_VARIANT_AVX2.rawValue)
        case .avx512: return Int32(CK_VARIANT_AVX512.rawValue)
        case .neon: return Int32(CK_VARIANT_NEON.rawValue)
        }
    }

    init?(cValue: Int32) {
        guard let v = KernelVariant.allCases.first(where: { $0.cValue == cValue }) else { return nil }
        self = v
    }

    /// Whether this CPU and operating system can run the variant (on x86-64: cpuid and the
    /// OS's saved register state, XCR0, are both checked). Cost: O(1) after the first call.
    public var isSupported: Bool { ck_variant_supported(cValue) != 0 }

    /// The variants this machine can run, slowest (scalar) first.
    public static var supported: [KernelVariant] { allCases.filter(\.isSupported) }

    /// The fastest variant this machine can run.
    public static var best: KernelVariant { KernelVariant(cValue: ck_variant_best()) ?? .scalar }

    /// The variant the process started with: `ATTEND_VARIANT` when it names a supported
    /// variant, else ``best``. `environmentNote` explains an `ATTEND_VARIANT` that was ignored.
    public static var initial: (variant: KernelVariant, environmentNote: String?) {
        var status: Int32 = 0
        let v = KernelVariant(cValue: ck_variant_initial(&status)) ?? .scalar
        switch status {
        case -1: return (v, "ATTEND_VARIANT names no known variant (known: scalar, avx2, avx512, neon); using \(v)")
        case -2: return (v, "ATTEND_VARIANT names a variant this CPU cannot run; using \(v)")
        default: return (v, nil)
        }
    }

    /// The name printed by tools and benchmarks ("avx2", ...).
    public var description: String { rawValue }

    /// The C kernel table of a supported variant. Calling this for an unsupported variant is
    /// a programming error.
    var kernels: UnsafePointer<ck_kernels> {
        guard let k = ck_kernels_get(cValue) else {
            preconditionFailure(
                "KernelVariant.\(self) is not supported on this CPU (supported: \(KernelVariant.supported))")
        }
        return k
    }

    /// Columns of the GEMM micro-tile (nr): packed weights are cut into panels this wide.
    var tileColumns: Int { Int(kernels.pointee.gemm.nr) }

    /// The name of the GEMM micro-kernel this variant runs, e.g. `ck_f32_gemm_ukr_6x16__avx2`.
    public var gemmMicroKernelName: String { String(cString: kernels.pointee.gemm_ukr_name) }
}

/// Whether the C kernels in this build were compiled with optimization. A debug build
/// (`swift build` without `-c release`) compiles them at -O0, which is 10-50x slower.
public var kernelsAreOptimized: Bool { ck_build_optimized() != 0 }

extension KernelVariant {
    /// Measures this machine's FMA peak for the variant, in GFLOP/s: `threads` threads each run
    /// a register-only loop of independent vector FMAs for about `seconds`; the best of
    /// `trials` runs is returned. This is the ceiling GEMM and attention are compared against.
    /// Cost: about `seconds * trials` of wall time.
    ///
    /// - Throws: ``ModelInputError`` naming the argument when `threads` is outside 1...``Compute/maximumThreads``,
    ///   `seconds` is not a finite number in (0, 3600] or `trials` is outside 1...1000.
    public func measureFMAPeak(threads: Int = 1, seconds: Double = 0.05, trials: Int = 5) throws(ModelInputError) -> Double {
        guard (1...Compute.maximumThreads).contains(threads) else {
            throw ModelInputError("measureFMAPeak: threads must be in 1...\(Compute.maximumThreads), got \(threads)")
        }
        guard seconds.isFinite && seconds > 0 && seconds <= 3600 else {
            throw ModelInputError("measureFMAPeak: seconds must be in (0, 3600], got \(seconds)")
        }
        guard (1...1000).contains(trials) else { throw ModelInputError("measureFMAPeak: trials must be in 1...1000, got \(trials)") }
        let probe = kernels.pointee.fma_peak!
        // Calibrate the iteration count on one thread.
        var iters = 1 << 16
        while true {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = probe(iters)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            if dt > seconds / 4 || iters > 1 << 34 {
                iters = Int(Double(iters) * seconds / max(dt, 1e-9))
                break
            }
            iters *= 4
        }
        var best = 0.0
        for _ in 0..<trials {
            let flops = UnsafeMutablePointer<Double>.allocate(capacity: threads)
            defer { flops.deallocate() }
            let t0 = DispatchTime.now().uptimeNanoseconds
            parallelFor(threads, threads: threads) { t in flops[t] = probe(iters) }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            let total = (0..<threads).reduce(0.0) { $0 + flops[$1] }
            best = max(best, total / dt * 1e-9)
        }
        return best
    }
}
