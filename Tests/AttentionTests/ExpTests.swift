// The vector exp of every kernel table (the production variants through `nativeExp`, and the
// test-only AVX-512-layout table) against Foundation's double-precision exp rounded to float.
// The header promises at most 2 ulp over the whole float range and exact special values.
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// The inputs of the accuracy sweep and their correctly rounded exp (computed once, shared by
/// every table's test).
///
/// - Every 1021st of the 2^32 bit patterns (1021 is prime and odd, so the sample walks through
///   every sign, exponent and mantissa region, NaN patterns included): ~4.2M values.
/// - Dense runs of consecutive floats around every boundary of the algorithm: the clamps
///   (-104 and 88.7229), the point where exp underflows to 0 (ln(2^-150) ~ -103.972), where
///   results become subnormal (ln(2^-126) ~ -87.337) and where they overflow
///   (ln(FLT_MAX) ~ 88.7228), the softmax's flush point -87, and around 0 (exp ~ 1 ± ulp).
/// - The whole subnormal-result range [-103.98, -87.33] at 200k evenly spaced points (the
///   two-step scaling by 2^k must round such a result once).
///
/// The reference Float(exp(Double(x))) is the correctly rounded result except when the
/// double lands within 2^-29 ulp of a float midpoint (double rounding), which moves it by at
/// most 1 float ulp in cases too rare to matter against a 2-ulp bound.
let expSweep: (x: [Float], reference: [Float]) = {
    var xs = [Float]()
    xs.reserveCapacity(4_600_000)
    var bits: UInt64 = 0
    while bits < 1 << 32 {
        xs.append(Float(bitPattern: UInt32(bits)))
        bits += 1021
    }
    let centers: [Float] = [-104, -103.972_08, -103.9, -87.336_54, -87.3, -87, 0, 88.72, 88.722_84, 88.7229, 88.73]
    for c in centers {
        var x = c
        for _ in 0..<8192 { x = x.nextDown }
        for _ in 0..<16384 {
            xs.append(x)
            x = x.nextUp
        }
    }
    let lo = -103.98, hi = -87.33, steps = 200_000
    for s in 0...steps { xs.append(Float(lo + (hi - lo) * Double(s) / Double(steps))) }
    let ref = xs.map { Float(Foundation.exp(Double($0))) }
    return (xs, ref)
}()

/// The distance in units in the last place between `got` and the correctly rounded `ref`,
/// measured on the bit patterns: for non-negative floats consecutive bit patterns are
/// consecutive values, so this counts representable floats between them. In the subnormal
/// range the spacing is the smallest subnormal, so subnormal results are measured in absolute
/// units of 2^-149; FLT_MAX and +inf are 1 apart. A negative result (including -0) or a NaN
/// where a number was due counts as infinitely far.
func expULPDistance(_ got: Float, _ ref: Float) -> UInt64 {
    if ref.isNaN { return got.isNaN ? 0 : .max }
    if got.isNaN || got.sign == .minus { return .max }
    return UInt64((Int64(got.bitPattern) - Int64(ref.bitPattern)).magnitude)
}

@Suite("Vector exp")
struct ExpTests {
    @Test("exp is within 2 ulp of the correctly rounded result over the whole float range", arguments: KernelTable.all)
    func accuracy(_ table: KernelTable) {
        let (xs, ref) = expSweep
        let got = table.exp(xs)
        var worst: UInt64 = 0, worstIndex = 0, inexact = 0
        got.withUnsafeBufferPointer { g in
            ref.withUnsafeBufferPointer { r in
                for i in 0..<g.count {
                    let d = expULPDistance(g[i], r[i])
                    if d != 0 { inexact += 1 }
                    if d > worst {
                        worst = d
                        worstIndex = i
                    }
                }
            }
        }
        let x = xs[worstIndex]
        #expect(
            worst <= 2,
            "\(table): exp(\(x)) (bits 0x\(String(x.bitPattern, radix: 16))) = \(got[worstIndex]), correctly rounded \(ref[worstIndex]): \(worst == .max ? "NaN/negative" : "\(worst) ulp") > 2 ulp (index \(worstIndex) of \(xs.count))"
        )
        print("exp \(table): max \(worst) ulp over \(xs.count) inputs, \(inexact) not correctly rounded")
    }

    @Test("exp special values: ±0, ±inf, NaN, overflow and underflow", arguments: KernelTable.all)
    func specialValues(_ table: KernelTable) {
        let cases: [(Float, Float)] = [
            (0, 1), (-0.0, 1), (.infinity, .infinity), (-.infinity, 0),
            (89, .infinity), (88.73, .infinity), (100, .infinity), (.greatestFiniteMagnitude, .infinity),
            (-105, 0), (-104, 0), (-200, 0), (-.greatestFiniteMagnitude, 0),
        ]
        let nans: [Float] = [.nan, -.nan, .signalingNaN, Float(bitPattern: 0x7FC0_0001), Float(bitPattern: 0xFFFF_FFFF)]
        let xs = cases.map(\.0) + nans
        let got = table.exp(xs)
        for (i, (x, expected)) in cases.enumerated() {
            #expect(
                got[i].bitPattern == expected.bitPattern,
                "\(table): exp(\(x)) = \(got[i]) (bits 0x\(String(got[i].bitPattern, radix: 16))), expected exactly \(expected)")
        }
        for (j, x) in nans.enumerated() {
            let y = got[cases.count + j]
            #expect(y.isNaN, "\(table): exp(NaN 0x\(String(x.bitPattern, radix: 16))) = \(y), expected NaN")
        }
    }

    /// The kernel runs whole vectors and one padded tail: every length from 0 to 40 (past two
    /// 16-lane vectors plus a tail) must give, lane by lane, what a one-element call gives, and
    /// the header allows x == y (in place).
    @Test("exp tails and in-place operation", arguments: KernelTable.all)
    func tailsAndInPlace(_ table: KernelTable) {
        var rng = SeededRNG(seed: caseSeed(0xE4, 1))
        let pool = rng.floats(40, in: -110...95, specials: SpecialFloats.all + [-87.5, 88.72], probability: 0.2)
        let singles = pool.map { table.exp([$0])[0] }
        for n in 0...40 {
            let x = Array(pool[0..<n])
            let y = table.exp(x)
            let diff = firstBitwiseDifference(y, Array(singles[0..<n]))
            #expect(diff == nil, "\(table): length \(n), seed \(rng.seed): element \(diff ?? -1) differs from a one-element call")
        }
        var buf = independentCopy(pool)
        buf.withUnsafeMutableBufferPointer { p in table.kernels.pointee.exp(p.count, p.baseAddress!, p.baseAddress!) }
        let diff = firstBitwiseDifference(buf, table.exp(pool))
        #expect(diff == nil, "\(table): in-place exp differs at \(diff ?? -1) (seed \(rng.seed))")
    }
}
