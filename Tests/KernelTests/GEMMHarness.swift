// The machinery behind the GEMM property tests: which backends exist, how one case is laid out
// in memory (strided operands at unaligned offsets with sentinel padding), how it is run and
// how it is checked.
import CKernels
import Testing

@testable import Attend
import AttendTestSupport

// MARK: - Backends under test

/// One implementation of `C = alpha * op(A) * op(B) + beta * C` that the tests exercise.
enum TestedBackend: Sendable, Hashable, CustomStringConvertible, CustomTestStringConvertible {
    /// The C kernels of a supported variant, through `gemm(alpha:a:_:b:_:beta:c:ldc:compute:)`.
    case native(KernelVariant)
    /// The Swift SIMD backend, through the same boundary function; the oracle of the others.
    case swiftSIMD
    /// The test-only C table `ck_kernels_avx512_layout_on_avx2()`: the AVX-512 micro-kernel
    /// source and tile compiled for AVX2, run through `nativeGEMM` (it is no `KernelVariant`).
    case avx512LayoutOnAVX2

    /// Every backend this machine can run: each supported native variant, the Swift SIMD
    /// backend, and the AVX-512-layout table when it exists (AVX2 machines).
    static let all: [TestedBackend] = {
        var list = KernelVariant.supported.map { TestedBackend.native($0) }
        list.append(.swiftSIMD)
        if ck_kernels_avx512_layout_on_avx2() != nil { list.append(.avx512LayoutOnAVX2) }
        return list
    }()

    /// The C backends only (the ones checked against the Swift SIMD oracle).
    static let nativeOnly: [TestedBackend] = all.filter { $0 != .swiftSIMD }

    var description: String {
        switch self {
        case .native(let v): return "native(\(v))"
        case .swiftSIMD: return "swiftSIMD"
        case .avx512LayoutOnAVX2: return "avx512-layout-on-avx2"
        }
    }
    var testDescription: String { description }

    var isNative: Bool { self != .swiftSIMD }

    /// The C kernel table (nil for the Swift backend).
    var kernels: UnsafePointer<ck_kernels>? {
        switch self {
        case .native(let v): return v.kernels
        case .swiftSIMD: return nil
        case .avx512LayoutOnAVX2: return ck_kernels_avx512_layout_on_avx2()
        }
    }

    /// The blocking whose boundaries the shape sweeps target. The Swift backend has no tiles;
    /// its loops run 4 Double lanes, so the scalar table (4 x 4 tiles) gives it the right
    /// edges (3, 4, 5) and its block sizes are as good as any.
    var blocking: ck_gemm_blocking {
        (kernels ?? KernelVariant.scalar.kernels).pointee.gemm
    }

    /// Runs `C = alpha * op(A) * op(B) + beta * C` on raw buffers.
    func run(
        alpha: Float, a: UnsafeBufferPointer<Float>, _ opA: MatrixOperand,
        b: UnsafeBufferPointer<Float>, _ opB: MatrixOperand,
        beta: Float, c: UnsafeMutableBufferPointer<Float>, ldc: Int, threads: Int
    ) throws {
        switch self {
        case .native(let v):
            gemm(
                alpha: alpha, a: a, opA, b: b, opB, beta: beta, c: c, ldc: ldc,
                compute: try Compute(backend: .native(v), threads: threads))
        case .swiftSIMD:
            gemm(
                alpha: alpha, a: a, opA, b: b, opB, beta: beta, c: c, ldc: ldc,
                compute: try Compute(backend: .swiftSIMD, threads: threads))
        case .avx512LayoutOnAVX2:
            // nativeGEMM trusts its arguments; these are validated the same way as gemm() does.
            precondition(opA.cols == opB.rows)
            opA.validate("A", count: a.count)
            opB.validate("B", count: b.count)
            MatrixOperand(rows: opA.rows, cols: opB.cols, ld: ldc, transposed: false).validate("C", count: c.count)
            nativeGEMM(
                kernels: ck_kernels_avx512_layout_on_avx2()!, m: opA.rows, n: opB.cols, k: opA.cols,
                alpha: alpha, a: a.baseAddress!, lda: opA.ld, transA: opA.transposed,
                b: b.baseAddress!, ldb: opB.ld, transB: opB.transposed, beta: beta,
                c: c.baseAddress!, ldc: ldc, threads: threads)
        }
    }
}

// MARK: - One case

/// What goes into the operands besides uniform values in [-1, 1].
enum Fill: Sendable, Hashable {
    /// Uniform in [-1, 1].
    case uniform
    /// Uniform, with 10% finite specials (±0, subnormals, smallest normals, ±1).
    case finiteSpecials
    /// Uniform, with 2% of A and B non-finite (±inf, NaN) and 5% finite specials.
    case nonFinite
    /// A is subnormal (random mantissas), B is uniform in ±[2^99, 2^100]: every product is a
    /// normal number, so a kernel that treats subnormal inputs as zero (DAZ) fails.
    case subnormalTimesHuge
    /// A and B small normals whose products are subnormal (2^-140 .. 2^-130): a kernel that
    /// flushes subnormal results to zero (FTZ) fails at k = 1.
    case subnormalProducts
}

/// A GEMM test case: sizes, layouts, scalars and data kind. The data comes from a seed derived
/// from these fields, so every backend sees the same operands.
struct GEMMCase: Sendable, CustomStringConvertible {
    var m: Int
    var n: Int
    var k: Int
    var transA = false
    var transB = false
    var alpha: Float = 1
    var beta: Float = 0
    /// Extra scalars per row beyond the stored width (ld = width + pad).
    var padA = 0
    var padB = 0
    var padC = 0
    /// Scalars before each operand's first element: operands that start 4, 8 or 12 bytes
    /// past a 64-byte boundary (Swift arrays themselves start 16-byte aligned or better).
    var offA = 0
    var offB = 0
    var offC = 0
    var fill = Fill.uniform
    /// Fill C_old with NaN (only meaningful with beta == 0: C must not be read).
    var nanInC = false
    /// Distinguishes cases that are otherwise equal.
    var tag = 0

    var storedA: (rows: Int, cols: Int) { transA ? (k, m) : (m, k) }
    var storedB: (rows: Int, cols: Int) { transB ? (n, k) : (k, n) }
    var lda: Int { max(storedA.cols, 1) + padA }
    var ldb: Int { max(storedB.cols, 1) + padB }
    var ldc: Int { max(n, 1) + padC }

    var seed: UInt64 {
        let fillCode: Int
        switch fill {
        case .uniform: fillCode = 0
        case .finiteSpecials: fillCode = 1
        case .nonFinite: fillCode = 2
        case .subnormalTimesHuge: fillCode = 3
        case .subnormalProducts: fillCode = 4
        }
        return caseSeed(
            m, n, k, transA ? 1 : 0, transB ? 1 : 0, Int(alpha.bitPattern), Int(beta.bitPattern), padA, padB,
            padC, offA, offB, offC, fillCode, nanInC ? 1 : 0, tag)
    }

    var description: String {
        "m=\(m) n=\(n) k=\(k) transA=\(transA) transB=\(transB) alpha=\(alpha) beta=\(beta) "
            + "lda=\(lda) ldb=\(ldb) ldc=\(ldc)"
            + (offA + offB + offC > 0 ? " offsets(A,B,C)=(\(offA),\(offB),\(offC))" : "")
            + " fill=\(fill)\(nanInC ? " C_old=NaN" : "") \(SeededRNG(seed: seed))"
    }
}

/// Padding sentinel of A and B: a NaN with a payload. Read by mistake, it poisons the result.
let operandSentinel = Float(bitPattern: 0x7FC5_A5A5)
/// Padding sentinel of C: another NaN payload, checked bitwise after every call.
let outputSentinel = Float(bitPattern: 0xFFC3_C3C3)

/// The operands of one case, laid out with their row strides and sentinels.
struct GEMMData {
    var a: StridedMatrix
    var b: StridedMatrix
    var c: StridedMatrix

    init(_ tc: GEMMCase) {
        var rng = SeededRNG(seed: tc.seed)
        let (ar, ac) = tc.storedA, (br, bc) = tc.storedB
        var av: [Float], bv: [Float]
        switch tc.fill {
        case .uniform:
            av = rng.floats(ar * ac)
            bv = rng.floats(br * bc)
        case .finiteSpecials:
            av = rng.floats(ar * ac, specials: SpecialFloats.finite, probability: 0.1)
            bv = rng.floats(br * bc, specials: SpecialFloats.finite, probability: 0.1)
        case .nonFinite:
            av = rng.floats(ar * ac, specials: SpecialFloats.finite, probability: 0.05)
            bv = rng.floats(br * bc, specials: SpecialFloats.finite, probability: 0.05)
            for i in av.indices where rng.nextUnit() < 0.02 {
                av[i] = SpecialFloats.nonFinite[Int(rng.next() % 3)]
            }
            for i in bv.indices where rng.nextUnit() < 0.02 {
                bv[i] = SpecialFloats.nonFinite[Int(rng.next() % 3)]
            }
        case .subnormalTimesHuge:
            // Subnormal bit patterns 1 ..< 2^23 with random signs; B in ±[2^99, 2^100].
            av = (0..<ar * ac).map { _ in
                let r = rng.next()
                return Float(bitPattern: UInt32(truncatingIfNeeded: (r >> 41) | 1) | UInt32(r & 1) << 31)
            }
            bv = (0..<br * bc).map { _ in
                let s: Float = rng.next() & 1 == 0 ? 1 : -1
                return s * rng.nextFloat(in: 0x1p99...0x1p100)
            }
        case .subnormalProducts:
            av = rng.floats(ar * ac, in: -0x1p-70...0x1p-70)
            bv = rng.floats(br * bc, in: 0x1p-70...0x1p-60)
        }
        let cv: [Float] = tc.nanInC ? [Float](repeating: .nan, count: tc.m * tc.n) : rng.floats(tc.m * tc.n)
        a = StridedMatrix(rows: ar, cols: ac, ld: tc.lda, values: av, sentinel: operandSentinel, leading: tc.offA)
        b = StridedMatrix(rows: br, cols: bc, ld: tc.ldb, values: bv, sentinel: operandSentinel, leading: tc.offB)
        c = StridedMatrix(rows: tc.m, cols: tc.n, ld: tc.ldc, values: cv, sentinel: outputSentinel, leading: tc.offC)
    }

    /// The Double reference of the case.
    func reference(_ tc: GEMMCase) -> ReferenceGEMM {
        referenceGEMM(
            m: tc.m, n: tc.n, k: tc.k, alpha: tc.alpha, a: a.body, lda: tc.lda, transA: tc.transA,
            b: b.body, ldb: tc.ldb, transB: tc.transB, beta: tc.beta, c: c.body, ldc: tc.ldc)
    }

    /// C after running `backend` on a fresh copy of the operands. Also checks (recording an
    /// issue) that A and B were not written and that C's padding kept its sentinel.
    func run(_ backend: TestedBackend, _ tc: GEMMCase, threads: Int, sourceLocation: SourceLocation = #_sourceLocation) throws -> StridedMatrix {
        var out = c
        let aBefore = independentCopy(a.storage), bBefore = independentCopy(b.storage)
        let opA = MatrixOperand(rows: tc.m, cols: tc.k, ld: tc.lda, transposed: tc.transA)
        let opB = MatrixOperand(rows: tc.k, cols: tc.n, ld: tc.ldb, transposed: tc.transB)
        try a.storage.withUnsafeBufferPointer { pa in
            try b.storage.withUnsafeBufferPointer { pb in
                try out.storage.withUnsafeMutableBufferPointer { pc in
                    try backend.run(
                        alpha: tc.alpha, a: UnsafeBufferPointer(rebasing: pa[tc.offA...]), opA,
                        b: UnsafeBufferPointer(rebasing: pb[tc.offB...]), opB, beta: tc.beta,
                        c: UnsafeMutableBufferPointer(rebasing: pc[tc.offC...]), ldc: tc.ldc, threads: threads)
                }
            }
        }
        if let bad = out.firstDamagedPadding() {
            Issue.record(
                "\(backend) threads=\(threads) \(tc): C padding at storage index \(bad.index) (\(bad.index - tc.offC) from C's start: row \((bad.index - tc.offC) / tc.ldc), column \((bad.index - tc.offC) % tc.ldc)) was overwritten with \(bad.value)",
                sourceLocation: sourceLocation)
        }
        if !bitwiseEqual(a.storage, aBefore) || !bitwiseEqual(b.storage, bBefore) {
            Issue.record("\(backend) threads=\(threads) \(tc): the kernel wrote into A or B", sourceLocation: sourceLocation)
        }
        return out
    }
}

// MARK: - Checking

/// Collects failures of one test function and stops recording after a few, so a broken kernel
/// produces a readable report instead of thousands of lines.
struct FailureBudget {
    var remaining = 8
    var failures = 0

    mutating func record(_ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        failures += 1
        if remaining > 0 {
            Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
            remaining -= 1
        }
    }

    /// Records the total once at the end when some were suppressed.
    func finish(sourceLocation: SourceLocation = #_sourceLocation) {
        if failures > 8 {
            Issue.record("\(failures) failing checks in total (only the first 8 reported)", sourceLocation: sourceLocation)
        }
    }
}

/// Runs one case on `backend` and checks it:
/// - against the Double reference within `gemmTolerance` (IEEE specials exactly);
/// - for a C backend, against the Swift SIMD oracle within twice that tolerance (each of the
///   two is within one tolerance of the exact value);
/// - C's padding and the operands are untouched (inside `GEMMData.run`);
/// - with `threads` > 1, the multi-threaded result is bitwise equal to the 1-thread one.
/// Returns the 1-thread result.
@discardableResult
func check(
    _ backend: TestedBackend, _ tc: GEMMCase, threads: [Int] = [1], budget: inout FailureBudget,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> StridedMatrix? {
    let data = GEMMData(tc)
    let ref = data.reference(tc)
    let got = try data.run(backend, tc, threads: threads[0], sourceLocation: sourceLocation)
    let what = "\(backend) threads=\(threads[0]) \(tc)"
    if tc.m == 0 || tc.n == 0 {
        // Nothing to compute: C must be bitwise what it was.
        if !bitwiseEqual(got.storage, data.c.storage) {
            budget.record("\(what): empty product changed C", sourceLocation: sourceLocation)
        }
        return got
    }
    if let bad = firstMismatch(ref, k: tc.k, alpha: tc.alpha, got: { got.at($0, $1) }) {
        budget.record("\(what) vs Double reference: \(bad)", sourceLocation: sourceLocation)
    }
    if backend.isNative {
        let oracle = try data.run(.swiftSIMD, tc, threads: 1, sourceLocation: sourceLocation)
        let doubled = { (idx: Int) in
            gemmTolerance(k: tc.k, alpha: tc.alpha, bound: ref.bound[idx], scaledC: ref.scaledC[idx])
        }
        var oracleRef = ref
        for i in 0..<tc.m {
            for j in 0..<tc.n { oracleRef.value[i * tc.n + j] = Double(oracle.at(i, j)) }
        }
        if let bad = firstMismatch(oracleRef, k: tc.k, alpha: tc.alpha, extraTolerance: doubled, got: { got.at($0, $1) }) {
            budget.record("\(what) vs swiftSIMD oracle: \(bad)", sourceLocation: sourceLocation)
        }
    }
    for t in threads.dropFirst() {
        let other = try data.run(backend, tc, threads: t, sourceLocation: sourceLocation)
        if let idx = firstBitwiseDifference(other.storage, got.storage) {
            budget.record(
                "\(backend) \(tc): threads=\(t) differs bitwise from threads=\(threads[0]) at first bad index (i, j) = (\((idx - tc.offC) / tc.ldc), \((idx - tc.offC) % tc.ldc)): got \(other.storage[idx]), expected \(got.storage[idx])",
                sourceLocation: sourceLocation)
        }
    }
    return got
}

/// The alpha and beta values every sweep cycles through.
let alphas: [Float] = [0, 1, -0.5, 2.5]
let betas: [Float] = [0, 1, -1.5]
/// The alphas that evaluate the product (alpha == 0 skips it).
let nonzeroAlphas: [Float] = [1, -0.5, 2.5]
/// Row-stride paddings the sweeps cycle through (0: packed rows).
let paddings = [0, 1, 3, 16]

/// Sizes around a tile edge `t` and the small and prime sizes, deduplicated, ascending.
func edgeSizes(_ t: Int, includeZero: Bool) -> [Int] {
    let base = [1, 2, 3, 7, 13, 17, 31, t - 1, t, t + 1] + (includeZero ? [0] : [])
    return Array(Set(base.filter { $0 >= 0 })).sorted()
}
