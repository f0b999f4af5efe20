// The machinery every fuzzed kernel shares: the deterministic random source, the kernel tables
// under test, the protocol a fuzzable kernel implements, guarded buffers and value mixes.
import Attend
import CKernels
import Foundation

// MARK: - Random source

/// SplitMix64: a small, fast, statistically solid 64-bit generator. A case is reproducible
/// from (seed, kernel name, case index) alone: ``init(seed:kernel:caseIndex:)`` hashes the
/// three into the starting state, so case N never depends on the cases before it.
public struct FuzzRNG: Sendable {
    /// The generator's state (advanced by a Weyl constant per draw).
    public var state: UInt64

    /// A generator starting from `seed` as is.
    public init(seed: UInt64) { state = seed }

    /// The generator of one fuzz case: the seed, an FNV-1a hash of the kernel name and the
    /// case index, mixed through the SplitMix64 finalizer. Cost: O(name length).
    public init(seed: UInt64, kernel: String, caseIndex: UInt64) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in kernel.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        state = FuzzRNG.mix(FuzzRNG.mix(seed ^ 0x5851_F42D_4C95_7F2D) ^ h) ^ FuzzRNG.mix(caseIndex &+ 0x9E37_79B9_7F4A_7C15)
    }

    /// The SplitMix64 output function (a bijective 64-bit mixer).
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return FuzzRNG.mix(state)
    }

    /// Uniform in 0..<n (n >= 1), by multiply-shift (bias < n / 2^64).
    public mutating func below(_ n: Int) -> Int {
        precondition(n >= 1, "FuzzRNG.below: n = \(n) must be positive")
        return Int(UInt64(n).multipliedFullWidth(by: next()).high)
    }

    /// Uniform in the closed range.
    public mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + below(r.upperBound - r.lowerBound + 1) }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// True with probability p.
    public mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// Uniform in [lo, hi] (as Double, rounded to Float).
    public mutating func float(_ lo: Float, _ hi: Float) -> Float {
        Float(Double(lo) + (Double(hi) - Double(lo)) * unit())
    }

    /// One element of a non-empty array, uniformly.
    public mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
}

// MARK: - Kernel tables under test

/// One C kernel table under test: a production variant (`scalar`, `avx2`, `avx512`, `neon`)
/// or the test-only `avx512-layout` table (the AVX-512 micro-kernel source and blocking
/// compiled for AVX2, `ck_kernels_avx512_layout_on_avx2`).
public struct FuzzTable: @unchecked Sendable, CustomStringConvertible {
    /// The name used on the command line and in reproducers.
    public let name: String
    /// The C kernel table (static storage in the C library; never freed).
    public let kernels: UnsafePointer<ck_kernels>

    /// Every table name the fuzzer knows, supported here or not.
    public static let allNames = ["scalar", "avx2", "avx512", "neon", "avx512-layout"]

    /// The table called `name` when this CPU can run it; otherwise nil and `reason` explains.
    public static func named(_ name: String) -> (table: FuzzTable?, reason: String?) {
        if name == "avx512-layout" {
            guard let k = ck_kernels_avx512_layout_on_avx2() else {
                return (nil, "avx512-layout needs a CPU with AVX2 + FMA (the AVX-512 layout runs compiled for AVX2)")
            }
            return (FuzzTable(name: name, kernels: k), nil)
        }
        let v = ck_variant_from_name(name)
        guard v >= 0 else { return (nil, "unknown variant '\(name)' (known: \(allNames.joined(separator: ", ")))") }
        guard let k = ck_kernels_get(v) else {
            return (nil, "variant \(name) is not supported on this CPU (supported: \(available.map(\.name).joined(separator: ", ")))")
        }
        return (FuzzTable(name: name, kernels: k), nil)
    }

    /// The tables this machine can run, in ``allNames`` order.
    public static var available: [FuzzTable] {
        allNames.compactMap { name in
            if name == "avx512-layout" { return ck_kernels_avx512_layout_on_avx2().map { FuzzTable(name: name, kernels: $0) } }
            return ck_kernels_get(ck_variant_from_name(name)).map { FuzzTable(name: name, kernels: $0) }
        }
    }

    /// The table's GEMM blocking (micro-tile mr x nr, cache blocks mc, kc, nc).
    public var gemm: ck_gemm_blocking { kernels.pointee.gemm }
    /// mr of the micro-tile.
    public var mr: Int { Int(gemm.mr) }
    /// nr of the micro-tile.
    public var nr: Int { Int(gemm.nr) }
    /// Rows of the fused attention's micro-tile (keys, or head dimensions).
    public var attnMr: Int { Int(kernels.pointee.attn_mr) }
    /// Columns of the fused attention's micro-tile: the queries of one panel.
    public var attnNr: Int { Int(kernels.pointee.attn_nr) }
    /// Queries per block of the fused attention.
    public var queryBlock: Int { ck_f32_attention_query_block(kernels) }
    /// Keys per block of the fused attention.
    public var keyBlock: Int { Int(kernels.pointee.attn_key_block) }

    /// The table's name.
    public var description: String { name }
}

// MARK: - The fuzzable-kernel protocol and registry

/// A kernel the fuzzer can exercise. A conformance generates a case from a random source
/// (biased to the shapes and values where kernels break), runs it on one C table and checks
/// the result against the Swift oracle (``Attend/KernelOracle``) within a principled error
/// bound, plus that nothing outside the outputs was written. Adding a kernel to the fuzzer
/// is one conformance and one line in ``FuzzRegistry/kernels``.
public protocol FuzzKernel: Sendable {
    /// One generated case: sizes, strides, scalars and the data itself.
    associatedtype Case: CustomStringConvertible
    /// What running a case leaves behind for the check (buffers, snapshots).
    associatedtype Run
    /// The name used by `--kernel` and in reproducers (lowercase, no spaces).
    var name: String { get }
    /// Generates case data from `rng` (seeded from seed, kernel and case index) for `table`.
    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case
    /// Runs the case on `table`'s C kernel.
    func run(_ c: Case, on table: FuzzTable) -> Run
    /// Checks a run against the oracle: nil when it passes, else the first problem found
    /// (the element, got, expected, tolerance).
    func check(_ c: Case, _ run: Run, table: FuzzTable) -> String?
}

/// The outcome of one case: nil `failure` when it passed; on failure the case description too.
public struct FuzzCaseOutcome: Sendable {
    /// The first problem found, nil when the case passed.
    public let failure: String?
    /// A short description of the case (filled only on failure: building it costs time).
    public let caseDescription: String?
}

/// A type-erased ``FuzzKernel``: what the registry and the runner hold.
public struct AnyFuzzKernel: Sendable {
    /// The kernel's name (see ``FuzzKernel/name``).
    public let name: String
    private let body: @Sendable (UInt64, UInt64, FuzzTable, Bool) -> FuzzCaseOutcome

    /// Wraps a kernel.
    public init<K: FuzzKernel>(_ kernel: K) {
        name = kernel.name
        body = { seed, index, table, describe in
            var rng = FuzzRNG(seed: seed, kernel: kernel.name, caseIndex: index)
            let c = kernel.makeCase(&rng, table: table)
            let r = kernel.run(c, on: table)
            let failure = kernel.check(c, r, table: table)
            return FuzzCaseOutcome(failure: failure, caseDescription: failure != nil || describe ? c.description : nil)
        }
    }

    /// Generates, runs and checks case `caseIndex` of `seed` on `table`. `describe`: also
    /// return the case description when it passes. Cost: that of the case (mostly small).
    public func runCase(seed: UInt64, caseIndex: UInt64, table: FuzzTable, describe: Bool = false) -> FuzzCaseOutcome {
        body(seed, caseIndex, table, describe)
    }
}

/// Every fuzzable kernel.
public enum FuzzRegistry {
    /// The kernels, in the order the runner reports them. A new kernel joins here.
    public static let kernels: [AnyFuzzKernel] = [
        AnyFuzzKernel(GEMMFuzz()),
        AnyFuzzKernel(MicroKernelFuzz()),
        AnyFuzzKernel(MicroKernelFuzz(attention: true)),
        AnyFuzzKernel(ScaledMicroKernelFuzz()),
        AnyFuzzKernel(GEMVFuzz()),
        AnyFuzzKernel(GEMMPackedFuzz()),
        AnyFuzzKernel(GEMVTFuzz()),
        AnyFuzzKernel(ExpFuzz()),
        AnyFuzzKernel(SoftmaxFuzz()),
        AnyFuzzKernel(ActivationFuzz()),
        AnyFuzzKernel(NormFuzz()),
        AnyFuzzKernel(AttentionStepFuzz()),
        AnyFuzzKernel(AttentionFuzz()),
        AnyFuzzKernel(AttentionShortFuzz()),
        AnyFuzzKernel(AttentionFewFuzz()),
        AnyFuzzKernel(AttentionBackwardFuzz()),
        AnyFuzzKernel(AdamWFuzz()),
        AnyFuzzKernel(SGDFuzz()),
        AnyFuzzKernel(SumSquaresFuzz()),
        AnyFuzzKernel(CrossEntropyFuzz()),
        AnyFuzzKernel(NormBackwardFuzz()),
        AnyFuzzKernel(ActivationBackwardFuzz()),
        AnyFuzzKernel(EmbeddingBackwardFuzz()),
        AnyFuzzKernel(W16GEMVFuzz()),
        AnyFuzzKernel(W16GEMMFuzz()),
        AnyFuzzKernel(Q8GEMVFuzz()),
        AnyFuzzKernel(Q8GEMMFuzz()),
    ]

    /// The kernel called `name`, or nil.
    public static func kernel(named name: String) -> AnyFuzzKernel? { kernels.first { $0.name == name } }
}

// MARK: - Guarded buffers

/// Padding sentinel of inputs: a NaN with a payload; read by mistake it poisons a result.
let inputSentinel = Float(bitPattern: 0x7FC5_A5A5)
/// Padding sentinel of outputs: another NaN payload, checked bitwise after every run.
let outputSentinel = Float(bitPattern: 0xFFC3_C3C3)

/// A rows x cols matrix with row stride ld inside a 64-byte-aligned allocation, starting
/// `misalign` floats past a 64-byte boundary, with guard bands of 16 floats before and after
/// and every float outside the matrix (guards, the gaps between rows) set to a sentinel.
final class GuardedMatrix {
    let rows: Int, cols: Int, ld: Int, offset: Int, count: Int
    let storage: UnsafeMutablePointer<Float>
    let sentinel: Float
    static let guardFloats = 16

    init(rows: Int, cols: Int, ld: Int, misalign: Int = 0, sentinel: Float) {
        precondition(ld >= cols && misalign >= 0 && misalign < 16, "GuardedMatrix: rows \(rows) cols \(cols) ld \(ld) misalign \(misalign)")
        self.rows = rows
        self.cols = cols
        self.ld = ld
        self.sentinel = sentinel
        offset = GuardedMatrix.guardFloats + misalign
        let span = rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols
        count = offset + span + GuardedMatrix.guardFloats
        storage = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
        storage.initialize(repeating: sentinel, count: count)
    }

    deinit { storage.deallocate() }

    /// The first element of the matrix.
    var base: UnsafeMutablePointer<Float> { storage + offset }

    subscript(i: Int, j: Int) -> Float {
        get { storage[offset + i * ld + j] }
        set { storage[offset + i * ld + j] = newValue }
    }

    func fill(_ value: (Int, Int) -> Float) {
        for i in 0..<rows { for j in 0..<cols { storage[offset + i * ld + j] = value(i, j) } }
    }

    /// A bitwise copy of the whole allocation.
    func snapshot() -> [UInt32] { (0..<count).map { storage[$0].bitPattern } }

    /// An independent copy (same layout and contents).
    func copy() -> GuardedMatrix {
        let c = GuardedMatrix(rows: rows, cols: cols, ld: ld, misalign: offset - GuardedMatrix.guardFloats, sentinel: sentinel)
        c.storage.update(from: storage, count: count)
        return c
    }

    /// The first float outside the matrix that lost its sentinel, described; nil if none.
    func damagedPadding(_ what: String) -> String? {
        let s = sentinel.bitPattern
        for idx in 0..<count where storage[idx].bitPattern != s {
            let rel = idx - offset
            if rel >= 0 && rows > 0 && rel < (rows - 1) * ld + cols && rel % ld < cols { continue }
            let place =
                rel < 0
                ? "\(-rel) floats before its start"
                : rel >= (rows - 1) * ld + cols || rows == 0
                    ? "\(rel - max(0, (rows - 1) * ld + cols)) floats past its end"
                    : "row \(rel / ld), column \(rel % ld) (a gap between rows: ld \(ld), width \(cols))"
            return "write outside \(what) (\(rows) x \(cols), ld \(ld)): \(place) now holds \(storage[idx])"
        }
        return nil
    }

    /// Whether every float equals the snapshot bitwise.
    func unchanged(since snap: [UInt32]) -> Bool {
        for i in 0..<count where storage[i].bitPattern != snap[i] { return false }
        return true
    }
}

// MARK: - Shapes and values

/// Sizes biased to the boundary classes: mostly small, often at an edge e ± 1 (e a tile,
/// vector or block size), sometimes 0 (when `zero`), rarely large up to `maxLarge`.
func boundarySize(_ rng: inout FuzzRNG, edges: [Int], zero: Bool = true, small: Int = 24, maxLarge: Int = 0) -> Int {
    let r = rng.unit()
    if zero && r < 0.03 { return 0 }
    if r < 0.45 { return rng.int(1...small) }
    if r < 0.93 || maxLarge == 0 {
        let e = rng.pick(edges) + rng.int(-1...1)
        return max(zero ? 0 : 1, e)
    }
    return rng.int(1...maxLarge)
}

/// Extra floats per row beyond the width: none half the time, else small or larger.
func rowPadding(_ rng: inout FuzzRNG) -> Int {
    rng.chance(0.5) ? 0 : rng.pick([1, 2, 3, 5, 8, 16, 17, rng.int(1...40)])
}

/// What goes into a buffer.
enum ValueMix: CaseIterable, CustomStringConvertible {
    /// Uniform in [-1, 1].
    case uniform
    /// Uniform with 10% finite specials (±0, subnormals, FLT_MIN, ±1, ±1e15 ...).
    case finiteSpecials
    /// Uniform with ~3% ±inf and NaN and 5% finite specials.
    case nonFinite
    /// Small integers in [-8, 8]: exact products and sums.
    case integers
    /// Random subnormal bit patterns (kernels that treat subnormal inputs as zero fail).
    case subnormal
    /// Uniform in ±[2^99, 2^100] (times a subnormal: normal products).
    case huge
    /// Small normals ±2^-70 (products are subnormal: kernels that flush results fail).
    case tiny

    var description: String {
        switch self {
        case .uniform: return "uniform"
        case .finiteSpecials: return "finite-specials"
        case .nonFinite: return "non-finite"
        case .integers: return "integers"
        case .subnormal: return "subnormal"
        case .huge: return "huge"
        case .tiny: return "tiny"
        }
    }

    static let finiteSpecialValues: [Float] = [
        0, -0.0, .leastNormalMagnitude, -.leastNormalMagnitude, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
        1, -1, 1e15, -1e15, 0x1p-130, -0x1p-130, 1e-20, 0.5,
    ]
    static let nonFiniteValues: [Float] = [.infinity, -.infinity, .nan]

    func value(_ rng: inout FuzzRNG) -> Float {
        switch self {
        case .uniform: return rng.float(-1, 1)
        case .finiteSpecials:
            return rng.chance(0.1) ? rng.pick(ValueMix.finiteSpecialValues) : rng.float(-1, 1)
        case .nonFinite:
            let r = rng.unit()
            if r < 0.03 { return rng.pick(ValueMix.nonFiniteValues) }
            if r < 0.08 { return rng.pick(ValueMix.finiteSpecialValues) }
            return rng.float(-1, 1)
        case .integers: return Float(rng.int(-8...8))
        case .subnormal:
            let bits = UInt32(truncatingIfNeeded: rng.next())
            return Float(bitPattern: (bits & 0x807F_FFFF) | 1)
        case .huge:
            return (rng.chance(0.5) ? 1 : -1) * rng.float(0x1p99, 0x1p100)
        case .tiny:
            return rng.float(-0x1p-70, 0x1p-70)
        }
    }
}

/// The unit roundoff of float32, 2^-24.
let u = 0x1p-24

/// Whether `got` matches `expected` within `tolerance`, IEEE specials exactly: a NaN
/// expectation needs a NaN, an infinite one the same infinity, a finite one a finite value
/// within tolerance.
func matches(_ got: Float, _ expected: Double, tolerance: Double) -> Bool {
    if expected.isNaN { return got.isNaN }
    if expected.isInfinite { return Double(got) == expected }
    if !got.isFinite { return false }
    return abs(Double(got) - expected) <= tolerance
}

/// "got X, expected Y (|diff| D > tol T)".
func mismatchText(_ got: Float, _ expected: Double, _ tol: Double) -> String {
    "got \(got) (bits 0x\(String(got.bitPattern, radix: 16))), expected \(expected), |diff| \(abs(Double(got) - expected)) > tol \(tol)"
}

/// A contiguous float vector in a guarded buffer (a 1 x n matrix).
func guardedVector(_ values: [Float], misalign: Int, sentinel: Float) -> GuardedMatrix {
    let m = GuardedMatrix(rows: values.isEmpty ? 0 : 1, cols: values.count, ld: max(values.count, 1), misalign: misalign, sentinel: sentinel)
    for (i, v) in values.enumerated() { m.base[i] = v }
    return m
}
