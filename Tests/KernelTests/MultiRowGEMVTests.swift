// Products of a few rows against a weight (decoding two rows, or two beams) run as
// matrix-vector products that share one pass over the weight: every row's bits must equal the
// same row multiplied alone, on every native variant and thread count, for row widths on both
// sides of the kernel's short-row switch (512) and weights spanning several 16 KiB blocks.
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
            for (k, n) in [(7, 5), (64, 300), (512, 257), (513, 100), (700, 129), (2048, 70)] {
                let weight = Tensor(shape: [n, k], scalars: (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) })
                let bias = Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
                let layer = Linear(weight: weight, bias: bias)
                for threads in [1, 2] {
                    let compute = Compute(backend: .native(variant), threads: threads)
                    for rows in Array(2...gemvMaxRows) {
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
}
