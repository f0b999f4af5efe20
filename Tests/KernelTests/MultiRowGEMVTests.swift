// Products of a few rows against a weight (decoding two rows, or two beams) run as
// matrix-vector products that share one pass over the weight: every row's bits must equal the
// same row multiplied alone, on every native variant and thread count, for row widths on both
// sides of the kernel's short-row switch (8192) and weights spanning several 16 KiB blocks.
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Multi-row GEMV")
struct MultiRowGEMVTests {
    @Test("every row of a few-row Linear product equals the row alone, bitwise; the product matches the Double reference")
    func rowsEqualAlone() throws {
        var rng = SplitMix64(state: 2024)
        for variant in KernelVariant.supported {
            for (k, n) in [(7, 5), (64, 300), (512, 257), (513, 100), (768, 129), (1024, 33), (1025, 40), (2048, 70), (8192, 3), (8193, 5)] {
                let weight = Tensor(shape: [n, k], scalars: (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) })
                let bias = Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
                let layer = Linear(weight: weight, bias: bias)
                for threads in [1, 2] {
                    let compute = try Compute(backend: .native(variant), threads: threads)
                    for rows in Array(2...max(2, gemvMaxRows(variant.kernels))) {
                        let x = Tensor(shape: [rows, k], scalars: (0..<(rows * k)).map { _ in Float.random(in: -1...1, using: &rng) })
                        let together = layer.forward(x, compute: compute).scalars
                        let xs = x.scalars, w = weight.scalars, b = bias.scalars
                        for r in 0..<rows {
                            let row = Tensor(shape: [1, k], scalars: xs[(r * k)..<((r + 1) * k)])
                            let alone = layer.forward(row, compute: compute).scalars
                            let got = Array(together[(r * n)..<((r + 1) * n)])
                            #expect(
                                got.map(\.bitPattern) == alone.map(\.bitPattern),
                                "\(variant) k \(k) n \(n) threads \(threads) rows \(rows): row \(r) differs from the row alone")
                            for j in stride(from: 0, to: n, by: max(1, n / 7)) {
                                var ref = Double(b[j])
                                for p in 0..<k { ref += Double(xs[r * k + p]) * Double(w[j * k + p]) }
                                #expect(abs(Double(got[j]) - ref) <= 1e-5 * Double(k), "\(variant) k \(k) row \(r) col \(j): \(got[j]) vs \(ref)")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("gemv_rows, 1 to 8 rows: every row bitwise ck_f32_gemv of that row, within the float32 bound of the Double oracle; strides untouched")
    func kernelRowsEqualGEMV() {
        var rng = SplitMix64(state: 2025)
        for variant in KernelVariant.supported {
            let kern = variant.kernels
            let shapes = [
                (1, 1), (7, 5), (16, 3), (64, 300), (127, 33), (512, 257), (513, 100), (1024, 33), (1025, 40), (2048, 70), (8192, 3), (8193, 5),
                (0, 4),
            ]
            for (k, n) in shapes {
                for rows in [1, 2, 3, 4, 5, 7, 8] {
                    for (alpha, beta): (Float, Float) in [(1, 0), (-2, 0.25)] {
                        let ldx = k + 5, ldy = n + 2
                        let w = (0..<(n * (k + 3))).map { _ in Float.random(in: -1...1, using: &rng) }
                        let x = (0..<(rows * ldx)).map { _ in Float.random(in: -1...1, using: &rng) }
                        let sentinel = Float(bitPattern: 0x7FC0_DEAD)
                        var y = (0..<(rows * ldy)).map { j in j % ldy < n ? Float.random(in: -1...1, using: &rng) : sentinel }
                        var ref = y
                        let y0 = y
                        w.withUnsafeBufferPointer { wp in
                            x.withUnsafeBufferPointer { xp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    kern.pointee.gemv_rows(rows, n, k, alpha, xp.baseAddress!, ldx, wp.baseAddress!, k + 3, beta, yp.baseAddress!, ldy)
                                }
                                ref.withUnsafeMutableBufferPointer { rp in
                                    for r in 0..<rows {
                                        kern.pointee.gemv(n, k, alpha, xp.baseAddress! + r * ldx, wp.baseAddress!, k + 3, beta, rp.baseAddress! + r * ldy)
                                    }
                                }
                            }
                        }
                        let what = "\(variant) k \(k) n \(n) rows \(rows) alpha \(alpha) beta \(beta)"
                        #expect(y.map(\.bitPattern) == ref.map(\.bitPattern), "\(what): differs from ck_f32_gemv row by row")
                        for r in 0..<rows {
                            for j in 0..<n {
                                var d = 0.0, absSum = 0.0
                                for p in 0..<k {
                                    d += Double(x[r * ldx + p]) * Double(w[j * (k + 3) + p])
                                    absSum += abs(Double(x[r * ldx + p]) * Double(w[j * (k + 3) + p]))
                                }
                                let want = Double(alpha) * d + (beta == 0 ? 0 : Double(beta) * Double(y0[r * ldy + j]))
                                let bound = (Double(k) + 2) * 0x1p-24 * (abs(Double(alpha)) * absSum + abs(want)) + 2 * Double(abs(beta * y0[r * ldy + j])) * 0x1p-24
                                #expect(abs(Double(y[r * ldy + j]) - want) <= bound, "\(what) [\(r), \(j)]: \(y[r * ldy + j]) vs \(want)")
                            }
                        }
                    }
                }
            }
        }
    }
}
