// Shared helpers of Attend's test targets: a seeded random number generator, random and
// special Float data, strided matrix buffers with sentinel padding, and a naive Double GEMM
// that is independent of the library (no packing, no blocking, no SIMD, no threads).
import Attend
import Foundation

// MARK: - Compute

/// `Compute(backend:threads:)` for a configuration the test built to be valid (Swift SIMD or a
/// variant from `KernelVariant.supported`, at least 1 thread), for helpers and static data
/// that cannot throw. A refusal is a bug in the test: it stops the run with Compute's message.
public func testCompute(_ backend: Backend, threads: Int) -> Compute {
    do { return try Compute(backend: backend, threads: threads) } catch { fatalError("test configuration: \(error)") }
}

// MARK: - Seeded randomness

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, fast, well-mixed 64-bit generator.
/// Deterministic for a given seed on every platform, so a failing case is reproduced by its
/// seed alone (every failure message prints it).
public struct SeededRNG: RandomNumberGenerator, Sendable, CustomStringConvertible {
    /// The seed this generator started from.
    public let seed: UInt64
    private var generator: SplitMix64

    public init(seed: UInt64) {
        self.seed = seed
        self.generator = SplitMix64(state: seed)
    }

    public mutating func next() -> UInt64 { generator.next() }

    /// "seed 0x0123456789abcdef".
    public var description: String { "seed 0x" + String(seed, radix: 16) }
}

/// The base seed of a test run: `ATTEND_TEST_SEED` (decimal or 0x-hex) when set, so a run can
/// be repeated with other data, otherwise a fixed constant (the default run is reproducible).
public let baseTestSeed: UInt64 = {
    if let s = ProcessInfo.processInfo.environment["ATTEND_TEST_SEED"] {
        if s.hasPrefix("0x"), let v = UInt64(s.dropFirst(2), radix: 16) { return v }
        if let v = UInt64(s) { return v }
    }
    return 0x00A7_7E4D_5EED_2024
}()

/// A seed for one test case, derived from the base seed and integers that name the case
/// (sizes, flags, a case number). Stable across runs and platforms (unlike `Hasher`).
public func caseSeed(_ parts: Int...) -> UInt64 {
    var h = baseTestSeed ^ 0x6A09_E667_F3BC_C908
    for p in parts {
        h = (h ^ UInt64(bitPattern: Int64(p))) &* 0x100_0000_01B3
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 32
    }
    return h
}

// MARK: - Random and special Float data

/// Special scalar values for property tests: signed zeros, subnormals, the normal extremes,
/// infinities and NaN.
public enum SpecialFloats {
    /// Finite specials whose products and sums stay finite in float32 for moderate k (no
    /// overflow): ±0, subnormals, the smallest normals, ±1.
    public static let finite: [Float] = [
        0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, Float(bitPattern: 0x0040_0000),
        -Float(bitPattern: 0x0040_0000), .leastNormalMagnitude, -.leastNormalMagnitude, 1, -1,
    ]
    /// Non-finite values.
    public static let nonFinite: [Float] = [.infinity, -.infinity, .nan]
    /// All of them.
    public static let all: [Float] = finite + nonFinite
}

extension SeededRNG {
    /// A uniform Float in `range` from 24 random bits (every value a multiple of
    /// (upper - lower) * 2^-24 above the lower bound). Concrete rather than generic so that
    /// debug builds stay fast (`Float.random(in:using:)` costs about a microsecond there).
    public mutating func nextFloat(in range: ClosedRange<Float>) -> Float {
        let unit = Float(next() >> 40) * 0x1p-24  // [0, 1)
        let x = range.lowerBound + (range.upperBound - range.lowerBound) * unit
        return min(max(x, range.lowerBound), range.upperBound)
    }

    /// A uniform Double in [0, 1) from 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// `count` uniform Floats in `range`.
    public mutating func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count { out[i] = nextFloat(in: range) }
        return out
    }

    /// `count` Floats, uniform in `range` except that each is, with probability
    /// `probability`, replaced by a value drawn uniformly from `specials`.
    public mutating func floats(
        _ count: Int, in range: ClosedRange<Float> = -1...1, specials: [Float], probability: Double
    ) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count {
            if !specials.isEmpty && nextUnit() < probability {
                out[i] = specials[Int(next() % UInt64(specials.count))]
            } else {
                out[i] = nextFloat(in: range)
            }
        }
        return out
    }
}

/// Whether two Float arrays hold the same bit patterns (NaN payloads and signed zeros
/// included).
public func bitwiseEqual(_ x: [Float], _ y: [Float]) -> Bool {
    x.count == y.count
        && x.withUnsafeBytes { bx in y.withUnsafeBytes { by in memcmp(bx.baseAddress!, by.baseAddress!, bx.count) == 0 } }
}

/// The first index where two equally long Float arrays differ bitwise.
public func firstBitwiseDifference(_ x: [Float], _ y: [Float]) -> Int? {
    if bitwiseEqual(x, y) { return nil }
    return x.withUnsafeBufferPointer { bx in
        y.withUnsafeBufferPointer { by in
            for i in 0..<min(bx.count, by.count) where bx[i].bitPattern != by[i].bitPattern { return i }
            return min(bx.count, by.count)
        }
    }
}

/// A copy that does not share its buffer with `x` (so a write through a pointer into `x`
/// cannot change it).
public func independentCopy(_ x: [Float]) -> [Float] {
    [Float](unsafeUninitializedCapacity: x.count) { buf, n in
        x.withUnsafeBufferPointer { src in
            if let s = src.baseAddress, let d = buf.baseAddress { d.initialize(from: s, count: src.count) }
        }
        n = x.count
    }
}

// MARK: - Strided matrices with sentinel padding

/// A row-major matrix stored with a row stride larger than (or equal to) its width, at an
/// offset into its buffer: `leading` sentinel scalars, then `rows` rows of `ld` scalars (the
/// last `ld - cols` of each row are sentinels), then `trailing` sentinels. Used to check that
/// kernels neither read the padding (a NaN sentinel there would poison the result) nor write
/// it (it must stay bitwise intact), and, with `leading` not a multiple of 16, that they
/// handle operands that do not start on a 64-byte boundary.
public struct StridedMatrix: Sendable {
    public let rows: Int
    public let cols: Int
    public let ld: Int
    public let leading: Int
    public let trailing: Int
    public let sentinel: Float
    /// `leading + (rows - 1) * ld + cols` scalars (`leading` when empty) plus `trailing`;
    /// at least `leading + 1`.
    public var storage: [Float]

    /// A matrix holding `values` (row-major, `rows * cols` of them) at row stride `ld`.
    public init(rows: Int, cols: Int, ld: Int, values: [Float], sentinel: Float, leading: Int = 0, trailing: Int = 3) {
        precondition(ld >= cols && ld >= 1 && values.count == rows * cols && leading >= 0)
        self.rows = rows
        self.cols = cols
        self.ld = ld
        self.leading = leading
        self.trailing = trailing
        self.sentinel = sentinel
        let used = rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols
        var s = [Float](repeating: sentinel, count: leading + max(used + trailing, 1))
        s.withUnsafeMutableBufferPointer { dst in
            values.withUnsafeBufferPointer { src in
                for i in 0..<rows {
                    for j in 0..<cols { dst[leading + i * ld + j] = src[i * cols + j] }
                }
            }
        }
        storage = s
    }

    /// Element (i, j).
    public func at(_ i: Int, _ j: Int) -> Float { storage[leading + i * ld + j] }

    /// The buffer from the matrix's first scalar on (what a kernel is given), as an array
    /// whose index 0 is element (0, 0).
    public var body: [Float] { Array(storage[leading...]) }

    /// Whether `index` of `storage` is padding (not an element of the matrix).
    public func isPadding(_ index: Int) -> Bool {
        if index < leading { return true }
        let i = (index - leading) / ld, j = (index - leading) % ld
        return i >= rows || j >= cols
    }

    /// The elements, row-major, without padding.
    public var values: [Float] {
        var v = [Float]()
        v.reserveCapacity(rows * cols)
        for i in 0..<rows {
            for j in 0..<cols { v.append(at(i, j)) }
        }
        return v
    }

    /// The first padding scalar that no longer holds the sentinel's bit pattern, if any, as
    /// an index into `storage`.
    public func firstDamagedPadding() -> (index: Int, value: Float)? {
        let bits = sentinel.bitPattern
        return storage.withUnsafeBufferPointer { s in
            for idx in 0..<s.count where s[idx].bitPattern != bits && isPadding(idx) {
                return (idx, s[idx])
            }
            return nil
        }
    }
}

// MARK: - Naive reference GEMM in Double

/// The exact-as-Double result of `C = alpha * op(A) * op(B) + beta * C` and the error scale
/// of each element.
public struct ReferenceGEMM: Sendable {
    public let m: Int
    public let n: Int
    /// `alpha * sum_p op(A)[i][p] * op(B)[p][j] + beta * C_old[i][j]` in Double, row-major
    /// m x n. With `alpha == 0` the product is not evaluated (BLAS: A and B are not
    /// referenced) and with `beta == 0` C_old is not read (NaN there does not propagate).
    public var value: [Double]
    /// `sum_p |op(A)[i][p]| * |op(B)[p][j]|`, row-major m x n: the scale of the rounding error
    /// of the dot product behind element (i, j).
    public var bound: [Double]
    /// `|beta * C_old[i][j]|` (0 when beta == 0), row-major m x n.
    public var scaledC: [Double]
}

/// A plain scalar triple loop, in Double, reading the operands exactly as BLAS defines them:
/// `op(A)[i][p] = transA ? a[p*lda + i] : a[i*lda + p]` (m x k),
/// `op(B)[p][j] = transB ? b[j*ldb + p] : b[p*ldb + j]` (k x n), `C[i][j] = c[i*ldc + j]`.
/// Independent of the library. Cost: m*n*k multiply-adds.
public func referenceGEMM(
    m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int, transA: Bool,
    b: [Float], ldb: Int, transB: Bool, beta: Float, c: [Float], ldc: Int
) -> ReferenceGEMM {
    var value = [Double](repeating: 0, count: m * n)
    var bound = [Double](repeating: 0, count: m * n)
    var scaledC = [Double](repeating: 0, count: m * n)
    let al = Double(alpha), be = Double(beta)
    // Unsafe buffers only to keep debug builds fast (no per-access bounds checks); the loop
    // is still the textbook one.
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0, abs = 0.0
                    for p in 0..<k {
                        let x = Double(transA ? a[p * lda + i] : a[i * lda + p])
                        let y = Double(transB ? b[j * ldb + p] : b[p * ldb + j])
                        sum += x * y
                        abs += Swift.abs(x) * Swift.abs(y)
                    }
                    let old = beta == 0 ? 0 : be * Double(c[i * ldc + j])
                    value[i * n + j] = (alpha == 0 ? 0 : al * sum) + old
                    bound[i * n + j] = abs
                    scaledC[i * n + j] = Swift.abs(old)
                }
            }
        }
    }
    return ReferenceGEMM(m: m, n: n, value: value, bound: bound, scaledC: scaledC)
}

/// The unit roundoff of float32, 2^-24.
public let float32UnitRoundoff = 0x1p-24

/// The allowed |got - exact| for one element of a float32 GEMM.
///
/// Why: a float32 dot product of length k, summed in any order (with or without FMA, split
/// into any number of partial sums), has |error| <= gamma_k * sum_p |a_p||b_p| with
/// gamma_k = k*u/(1 - k*u) ~ k*u, u = 2^-24 (Higham, "Accuracy and Stability of Numerical
/// Algorithms", 3.1). The BLIS-style driver splits the reduction into ceil(k/KC) blocks; per
/// block it rounds alpha * acc and the add into C (the partial result is stored to C as
/// float32 and re-read by the next block), two more roundings of at most u times the
/// magnitude. So the product part errs by at most (k + 2*ceil(k/KC)) * u * |alpha| * bound,
/// and 2*(k+1) >= k + 2*ceil(k/KC) for every k >= 0 and KC >= 2 (k = 1: one rounded product,
/// then alpha and the add: 3 roundings <= 4). The beta * C_old part is rounded once by the
/// multiply and once per block by the add: (1 + ceil(k/KC)) * u <= (k + 2) * u times
/// |beta * C_old|. Where results fall into the subnormal range the relative model fails: a
/// rounding there errs by up to 2^-150 absolute (half the smallest subnormal), and an element
/// sees at most 4*(k+1) roundings (k products, k adds, the block roundings), hence the tiny
/// absolute term (k+1) * 2^-148. (This is far below the 1e-30 one might pick by eye, so a
/// kernel that flushes subnormals to zero is caught.) Accumulating in Double (the Swift SIMD
/// backend) satisfies the same bound with room (one final rounding).
public func gemmTolerance(k: Int, alpha: Float, bound: Double, scaledC: Double) -> Double {
    let u = float32UnitRoundoff
    // alpha == 0: the product is not evaluated at all (its bound may be inf or NaN).
    let product = alpha == 0 ? 0 : 2 * Double(k + 1) * u * Double(alpha.magnitude) * bound
    return product + Double(k + 2) * u * scaledC + Double(k + 1) * 0x1p-148
}

/// One element that is out of tolerance.
public struct Mismatch: Sendable, CustomStringConvertible {
    public let i: Int
    public let j: Int
    public let got: Float
    public let expected: Double
    public let tolerance: Double
    public var description: String {
        "first bad index (i, j) = (\(i), \(j)): got \(got), expected \(expected) (|diff| \(Swift.abs(Double(got) - expected)) > tol \(tolerance))"
    }
}

/// Whether `got` matches `expected` within `tolerance`, with IEEE special values handled
/// exactly: a NaN expectation needs a NaN, an infinite one the same infinity, and a finite
/// one a finite value within tolerance.
public func matches(_ got: Float, _ expected: Double, tolerance: Double) -> Bool {
    if expected.isNaN { return got.isNaN }
    if expected.isInfinite { return Double(got) == expected }
    if !got.isFinite { return false }
    return Swift.abs(Double(got) - expected) <= tolerance
}

/// The first (row-major) element of the m x n result `got(i, j)` that is out of tolerance.
public func firstMismatch(
    _ reference: ReferenceGEMM, k: Int, alpha: Float, extraTolerance: (Int) -> Double = { _ in 0 },
    got: (Int, Int) -> Float
) -> Mismatch? {
    for i in 0..<reference.m {
        for j in 0..<reference.n {
            let idx = i * reference.n + j
            let tol =
                gemmTolerance(k: k, alpha: alpha, bound: reference.bound[idx], scaledC: reference.scaledC[idx])
                + extraTolerance(idx)
            let g = got(i, j)
            if !matches(g, reference.value[idx], tolerance: tol) {
                return Mismatch(i: i, j: j, got: g, expected: reference.value[idx], tolerance: tol)
            }
        }
    }
    return nil
}
