// The 16-bit weight kernels (attend_kernels.h, "16-bit weights": w16_widen, w16_gemv,
// ck_w16_gemm) of every C table this machine runs (the test-only AVX-512-layout table too),
// called directly: widening of all 65536 patterns of both types against the Swift
// conversions; the GEMV (1 and 2 rows) and the GEMM bit for bit against the float32 kernels on
// the widened weight, and against the Swift Double oracle within the float32 dot-product
// bound (widening is exact, so the bound is float32's: |err| <= k u / (1 - k u) * sum |x w|
// per output, u = 2^-24, plus one rounding of the result); strides with sentinel padding that
// must stay untouched. Then Linear and Embedding held in 16 bits, and the rounding of float32
// to F16 / BF16.
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// The float32 error bound of one output: `gamma_k * sum |x_p w_p| * |alpha| + 2 ulp-ish of
/// the result` (the final alpha/beta merge rounds twice).
private func dotBound(k: Int, absSum: Double, alpha: Float, result: Double) -> Double {
    let u = 0x1p-24
    let gamma = Double(k + 2) * u / (1 - Double(k + 2) * u)
    return gamma * absSum * Double(abs(alpha)) + 4 * u * abs(result) + 1e-30
}

/// Random 16-bit weights of moderate size (|w| <= 1, a few exact zeros), as bits.
private func randomHalfBits(_ count: Int, bfloat16: Bool, rng: inout SplitMix64) -> [UInt16] {
    (0..<count).map { _ in
        let f = Float.random(in: -1...1, using: &rng)
        return bfloat16 ? HalfType.bfloat16Bits(f) : HalfType.halfBits(f)
    }
}

private var tables: [(name: String, kernels: UnsafePointer<ck_kernels>)] {
    var list = KernelVariant.supported.map { ("\($0)", $0.kernels) }
    if let t = ck_kernels_avx512_layout_on_avx2() { list.append(("avx512-layout-on-avx2", t)) }
    return list
}

@Suite("16-bit weight kernels")
struct HalfWeightKernelTests {
    @Test("w16_widen: every F16 and BF16 bit pattern widens to the exact float32 value, on every table")
    func widenAllPatterns() {
        let all = (0...0xFFFF).map { UInt16($0) }
        for (name, kern) in tables {
            for bf in [false, true] {
                var out = [Float](repeating: 0, count: all.count)
                all.withUnsafeBufferPointer { src in
                    out.withUnsafeMutableBufferPointer { dst in
                        kern.pointee.w16_widen(bf ? 1 : 0, all.count, src.baseAddress!, dst.baseAddress!)
                    }
                }
                var bad = 0
                for (i, h) in all.enumerated() {
                    let want = KernelOracle.widen16(h, bfloat16: bf)
                    let ok = want.isNaN ? out[i].isNaN : out[i].bitPattern == want.bitPattern
                    if !ok {
                        bad += 1
                        if bad <= 3 { Issue.record("\(name) \(bf ? "bf16" : "f16") 0x\(String(h, radix: 16)): \(out[i]) want \(want)") }
                    }
                }
                #expect(bad == 0, "\(name) \(bf ? "bf16" : "f16"): \(bad) patterns widened wrongly")
            }
        }
    }

    @Test("w16_gemv, 1 to 8 rows: bitwise ck_f32_gemv on the widened weight (every k), within the float32 bound of the Double oracle; strides untouched")
    func gemv() {
        var rng = SplitMix64(state: 7177)
        let shapes = [
            (1, 1), (7, 5), (16, 3), (64, 300), (127, 33), (512, 257), (513, 100), (700, 129), (1024, 9), (1025, 13), (2048, 70), (8192, 3),
            (8193, 5), (0, 4),
        ]
        for (name, kern) in tables {
            for bf in [false, true] {
                for (k, n) in shapes {
                    for rows in [1, 2, 3, 4, 5, 8] {
                        for (alpha, beta): (Float, Float) in [(1, 0), (0.5, 1), (-2, 0.25)] {
                            let ldw = k + 3, ldx = k + 5, ldy = n + 2
                            let w = randomHalfBits(n * ldw, bfloat16: bf, rng: &rng)
                            let x = (0..<(rows * ldx)).map { _ in Float.random(in: -1...1, using: &rng) }
                            let y0 = (0..<(rows * ldy)).map { _ in Float.random(in: -1...1, using: &rng) }
                            let sentinel = Float(bitPattern: 0x7FC0_DEAD)
                            var y = y0
                            for r in 0..<rows { for j in n..<ldy { y[r * ldy + j] = sentinel } }
                            // The widened weight through the F32 GEMV of the same table, one row at a time.
                            let wide = w.map { KernelOracle.widen16($0, bfloat16: bf) }
                            var ref = y
                            var oracle = y
                            w.withUnsafeBufferPointer { wp in
                                x.withUnsafeBufferPointer { xp in
                                    y.withUnsafeMutableBufferPointer { yp in
                                        kern.pointee.w16_gemv(bf ? 1 : 0, rows, n, k, alpha, xp.baseAddress!, ldx, wp.baseAddress!, ldw, beta, yp.baseAddress!, ldy)
                                    }
                                    wide.withUnsafeBufferPointer { fp in
                                        ref.withUnsafeMutableBufferPointer { rp in
                                            for r in 0..<rows {
                                                kern.pointee.gemv(n, k, alpha, xp.baseAddress! + r * ldx, fp.baseAddress!, ldw, beta, rp.baseAddress! + r * ldy)
                                            }
                                        }
                                    }
                                    oracle.withUnsafeMutableBufferPointer { op in
                                        KernelOracle.w16Product(
                                            bfloat16: bf, rows: rows, n: n, k: k, alpha: alpha, x: xp.baseAddress!, ldx: ldx,
                                            w: wp.baseAddress!, ldw: ldw, beta: beta, y: op.baseAddress!, ldy: ldy)
                                    }
                                }
                            }
                            let what = "\(name) \(bf ? "bf16" : "f16") k \(k) n \(n) rows \(rows) alpha \(alpha) beta \(beta)"
                            // The same sum order as ck_f32_gemv for every k (both switch to four rows at a time past 8192).
                            #expect(y.map(\.bitPattern) == ref.map(\.bitPattern), "\(what): differs from ck_f32_gemv on the widened weight")
                            for r in 0..<rows {
                                for j in 0..<n {
                                    var absSum = 0.0
                                    for p in 0..<k { absSum += abs(Double(x[r * ldx + p]) * Double(wide[j * ldw + p])) }
                                    let got = Double(y[r * ldy + j]), want = Double(oracle[r * ldy + j])
                                    let bound = dotBound(k: k, absSum: absSum, alpha: alpha, result: want) + 2 * Double(abs(beta * y0[r * ldy + j])) * 0x1p-24
                                    if abs(got - want) > bound {
                                        Issue.record("\(what) [\(r), \(j)]: \(got) vs oracle \(want), bound \(bound)")
                                        return
                                    }
                                }
                                for j in n..<ldy where y[r * ldy + j].bitPattern != sentinel.bitPattern {
                                    Issue.record("\(what): padding [\(r), \(j)] overwritten")
                                    return
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("ck_w16_gemm: bitwise ck_f32_gemm (B transposed) on the widened weight across block edges; C padding untouched; beta 0 ignores NaN in C")
    func gemm() {
        var rng = SplitMix64(state: 9311)
        for (name, kern) in tables {
            let g = kern.pointee.gemm
            let (mr, nr, kc, mc) = (Int(g.mr), Int(g.nr), Int(g.kc), Int(g.mc))
            let shapes = [(1, 1, 1), (3, 5, 7), (mr + 1, nr + 1, 33), (mc + 3, 2 * nr - 1, kc + 5), (2 * mr, 3, 2 * kc + 1), (4, 70, 0)]
            for bf in [false, true] {
                for (m, n, k) in shapes {
                    for beta: Float in [0, 1.5] {
                        let lda = k + 1, ldw = k + 2, ldc = n + 3
                        let w = randomHalfBits(n * ldw, bfloat16: bf, rng: &rng)
                        let wide = w.map { KernelOracle.widen16($0, bfloat16: bf) }
                        let a = (0..<(m * lda)).map { _ in Float.random(in: -1...1, using: &rng) }
                        let sentinel = Float(bitPattern: 0x7FC0_DEAD)
                        var c0 = (0..<(m * ldc)).map { _ in beta == 0 ? Float.nan : Float.random(in: -1...1, using: &rng) }
                        for i in 0..<m { for j in n..<ldc { c0[i * ldc + j] = sentinel } }
                        var c = c0, ref = c0
                        let ws = UnsafeMutablePointer<Float>.allocate(capacity: ck_w16_gemm_workspace(kern, m, n, k))
                        let wsRef = UnsafeMutablePointer<Float>.allocate(capacity: ck_f32_gemm_workspace(kern, m, n, k))
                        defer {
                            ws.deallocate()
                            wsRef.deallocate()
                        }
                        a.withUnsafeBufferPointer { ap in
                            w.withUnsafeBufferPointer { wp in
                                c.withUnsafeMutableBufferPointer { cp in
                                    ck_w16_gemm(kern, bf ? 1 : 0, m, n, k, ap.baseAddress!, lda, wp.baseAddress!, ldw, beta, cp.baseAddress!, ldc, ws)
                                }
                            }
                            wide.withUnsafeBufferPointer { fp in
                                ref.withUnsafeMutableBufferPointer { rp in
                                    ck_f32_gemm(kern, 0, 1, m, n, k, 1, ap.baseAddress!, lda, fp.baseAddress!, ldw, beta, rp.baseAddress!, ldc, wsRef)
                                }
                            }
                        }
                        let what = "\(name) \(bf ? "bf16" : "f16") m \(m) n \(n) k \(k) beta \(beta)"
                        #expect(c.map(\.bitPattern) == ref.map(\.bitPattern), "\(what): differs from ck_f32_gemm on the widened weight")
                        #expect(!c.enumerated().contains { $0.offset % ldc < n && $0.element.isNaN }, "\(what): NaN from C with beta 0")
                        // Spot check against the Double oracle.
                        for i in stride(from: 0, to: m, by: max(1, m / 3)) {
                            for j in stride(from: 0, to: n, by: max(1, n / 4)) {
                                var d = 0.0, absSum = 0.0
                                for p in 0..<k {
                                    let t = Double(a[i * lda + p]) * Double(wide[j * ldw + p])
                                    d += t
                                    absSum += abs(t)
                                }
                                if beta != 0 { d += Double(beta) * Double(c0[i * ldc + j]) }
                                let bound = dotBound(k: k, absSum: absSum, alpha: 1, result: d) + (beta == 0 ? 0 : 2 * abs(Double(beta) * Double(c0[i * ldc + j])) * 0x1p-24)
                                #expect(abs(Double(c[i * ldc + j]) - d) <= bound, "\(what) [\(i), \(j)]: \(c[i * ldc + j]) vs \(d)")
                            }
                        }
                    }
                }
            }
        }
    }
}

@Suite("16-bit Linear and Embedding")
struct HalfWeightLayerTests {
    @Test("a Linear held in F16 / BF16 equals the float32 Linear over the widened weight, bitwise, for 1 to 40 rows on every backend and thread count")
    func linearMatchesWidened() throws {
        var rng = SplitMix64(state: 4411)
        for (k, n) in [(7, 5), (64, 300), (1100, 100), (96, 129)] {
            let weight = Tensor(shape: [n, k], scalars: (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) })
            let bias = Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
            for precision in [WeightPrecision.float16, .bfloat16] {
                let half = Linear(weight: weight, bias: bias, precision: precision)
                #expect(half.weightPrecision == precision)
                let widened = half.weight  // exact widening of the rounded weight
                let wide = Linear(weight: widened, bias: bias)
                for rows in [1, 2, 3, 8, 9, 40] {
                    let x = Tensor(shape: [rows, k], scalars: (0..<(rows * k)).map { _ in Float.random(in: -1...1, using: &rng) })
                    for backend in KernelVariant.supported.map(Backend.native) + [.swiftSIMD] {
                        for threads in [1, 2] {
                            let compute = try Compute(backend: backend, threads: threads)
                            let got = half(x, compute: compute).scalars
                            // The float32 reference without the packed path (which sums in another order): the
                            // output starts as the bias rows, then GEMV / SGEMM with beta 1, as Linear does.
                            // Rows the 16-bit GEMV takes (more than the float32 GEMV does) are compared with
                            // each row's one-row float32 product: the GEMV gives every row its one-row bits.
                            let f32GEMVRows: Int = { if case .native(let v) = backend { return gemvMaxRows(v.kernels) } else { return 0 } }()
                            let rowByRow = backend != .swiftSIMD && rows > f32GEMVRows && rows <= halfGEMVMaxRows
                            var refOut = [Float]((0..<rows).flatMap { _ in bias.scalars })
                            x.withUnsafeBufferPointer { xp in
                                widened.withUnsafeBufferPointer { wp in
                                    refOut.withUnsafeMutableBufferPointer { cp in
                                        for (r0, count) in rowByRow ? (0..<rows).map({ ($0, 1) }) : [(0, rows)] {
                                            Attend.gemm(
                                                alpha: 1, a: UnsafeBufferPointer(rebasing: xp[(r0 * k)...]),
                                                MatrixOperand(rows: count, cols: k, ld: k, transposed: false),
                                                b: wp, MatrixOperand(rows: k, cols: n, ld: k, transposed: true), beta: 1,
                                                c: UnsafeMutableBufferPointer(rebasing: cp[(r0 * n)...]), ldc: n, compute: compute)
                                        }
                                    }
                                }
                            }
                            let ref = refOut
                            let what = "\(precision) k \(k) n \(n) rows \(rows) \(backend) threads \(threads)"
                            if rows <= halfGEMVMaxRows || backend == .swiftSIMD {
                                #expect(got.map(\.bitPattern) == ref.map(\.bitPattern), "\(what): differs from the widened float32 product")
                            } else {
                                let packed = wide(x, compute: compute).scalars
                                let err = zip(got, packed).map { abs($0 - $1) }.max() ?? 0
                                #expect(err <= 1e-5 * Float(k), "\(what): \(err) from the packed float32 product")
                                #expect(got.map(\.bitPattern) == ref.map(\.bitPattern), "\(what): differs from the widened SGEMM")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("an Embedding held in 16 bits gathers the widened rows; tied heads share the table without a copy")
    func embedding() {
        var rng = SplitMix64(state: 12)
        let table = Tensor(shape: [50, 24], scalars: (0..<1200).map { _ in Float.random(in: -3...3, using: &rng) })
        for precision in [WeightPrecision.float16, .bfloat16] {
            let e = Embedding(weight: table, precision: precision)
            let wide = e.weight
            let ids = [0, 49, 7, 7, 13]
            #expect(e(ids, scale: 0.5).scalars == wide.gatherRows(ids, scale: 0.5).scalars)
            let head = Linear(tiedTo: e)
            #expect(head.weightPrecision == precision && head.weightShape == [50, 24])
            if case .half(let a) = e.storage, case .half(let b) = head.storage { #expect(a.base == b.base) } else { Issue.record("not 16-bit") }
            #expect(e.converted(to: .float32).weight.scalars == wide.scalars)
        }
    }

    @Test("float32 to F16 and BF16 rounds to nearest even; every 16-bit value round-trips")
    func rounding() {
        for h in 0...0xFFFF {
            let bits = UInt16(h)
            let f = SafeTensorsConvert.float(fromHalfBits: bits), b = SafeTensorsConvert.float(fromBFloat16Bits: bits)
            if !f.isNaN { #expect(HalfType.halfBits(f) == bits, "f16 0x\(String(bits, radix: 16))") } else { #expect(SafeTensorsConvert.float(fromHalfBits: HalfType.halfBits(f)).isNaN) }
            if !b.isNaN { #expect(HalfType.bfloat16Bits(b) == bits, "bf16 0x\(String(bits, radix: 16))") } else { #expect(SafeTensorsConvert.float(fromBFloat16Bits: HalfType.bfloat16Bits(b)).isNaN) }
        }
        // Ties to even, overflow, subnormals.
        #expect(HalfType.halfBits(1 + 0x1p-11) == 0x3C00)  // halfway between 1 and 1 + 2^-10: even (1)
        #expect(HalfType.halfBits(1 + 3 * 0x1p-11) == 0x3C02)  // halfway, rounds up to even
        #expect(HalfType.halfBits(65519) == 0x7BFF && HalfType.halfBits(65520) == 0x7C00 && HalfType.halfBits(-1e10) == 0xFC00)
        #expect(HalfType.halfBits(0x1p-24) == 0x0001 && HalfType.halfBits(0x1p-25) == 0 && HalfType.halfBits(0x1.8p-25) == 0x0001)
        #expect(HalfType.halfBits(-0.0) == 0x8000)
        #expect(HalfType.bfloat16Bits(1 + 0x1p-8) == 0x3F80 && HalfType.bfloat16Bits(1 + 3 * 0x1p-8) == 0x3F82)
        #expect(HalfType.bfloat16Bits(.infinity) == 0x7F80 && HalfType.bfloat16Bits(Float.greatestFiniteMagnitude) == 0x7F80)
    }
}
