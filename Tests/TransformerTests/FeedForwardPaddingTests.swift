// The feed-forward block's padded hidden rows (paddedFeedForward): taken exactly when the hidden
// width is a multiple of 4 KiB on a native backend with more than a few rows, and every output
// bit equal to the two Linear products through the unpadded hidden tensor.
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Feed-forward hidden padding")
struct FeedForwardPaddingTests {
    static func block(d: Int, ff: Int, activation: Activation, bias: Bool, _ rng: inout SeededRNG) -> FeedForward {
        func linear(_ i: Int, _ o: Int) -> Linear {
            let s = 1 / Float(i).squareRoot()
            return Linear(weight: randomTensor([o, i], &rng, scale: s), bias: bias ? randomTensor([o], &rng, scale: s) : nil)
        }
        return FeedForward(up: linear(d, ff), down: linear(ff, d), activation: activation)
    }

    @Test("hidden width a multiple of 1024 floats: the padded path, bit for bit the unpadded products")
    func paddedEqualsUnpadded() throws {
        var rng = SeededRNG(seed: caseSeed(71))
        let d = 40
        for variant in KernelVariant.supported {
            for (ff, rows, activation, bias, withResidual) in [
                // gemvMaxRows + 1: the fewest rows that take the packed products
                (1024, 37, Activation.relu, true, true), (2048, gemvMaxRows(variant.kernels) + 1, .gelu, false, false),
                (1024, 64, .geluTanh, true, false),
                (1024, 15, .silu, false, true),
            ] {
                let ffn = Self.block(d: d, ff: ff, activation: activation, bias: bias, &rng)
                let x = randomTensor([rows, d], &rng)
                let residual = withResidual ? randomTensor([rows, d], &rng) : nil
                for threads in [1, 2] {
                    let compute = try Compute(backend: .native(variant), threads: threads)
                    let padded = paddedFeedForward(x, up: ffn.up, down: ffn.down, activation: activation, residual: residual, compute: compute)
                    #expect(padded != nil, "ff \(ff), \(rows) rows on \(variant): the padded path should apply")
                    let hidden = ffn.up.forward(x, activation: activation, compute: compute)
                    let reference = ffn.down.forward(hidden, residual: residual, compute: compute)
                    #expect(padded?.shape == reference.shape)
                    #expect(
                        padded?.scalars.map(\.bitPattern) == reference.scalars.map(\.bitPattern),
                        "ff \(ff), \(rows) rows, \(activation), bias \(bias), residual \(withResidual), \(threads) threads on \(variant)")
                    // The block itself takes the path.
                    #expect(ffn.forward(x, residual: residual, compute: compute).scalars.map(\.bitPattern) == reference.scalars.map(\.bitPattern))
                }
            }
        }
    }

    @Test("other widths, few rows, a gate or the Swift SIMD backend: not taken")
    func notTaken() throws {
        var rng = SeededRNG(seed: caseSeed(72))
        let d = 32
        let native = try Compute(backend: .native(KernelVariant.supported.last!), threads: 2)
        let odd = Self.block(d: d, ff: 1000, activation: .relu, bias: true, &rng)
        let x = randomTensor([9, d], &rng)
        #expect(paddedFeedForward(x, up: odd.up, down: odd.down, activation: .relu, residual: nil, compute: native) == nil)
        let even = Self.block(d: d, ff: 1024, activation: .relu, bias: true, &rng)
        #expect(paddedFeedForward(x, up: even.up, down: even.down, activation: .relu, residual: nil, compute: native) != nil)
        // As many rows as the variant's GEMV takes: the products are GEMVs, nothing to pad.
        guard case .native(let variant) = native.backend else { return }
        let few = randomTensor([gemvMaxRows(variant.kernels), d], &rng)
        #expect(paddedFeedForward(few, up: even.up, down: even.down, activation: .relu, residual: nil, compute: native) == nil)
        let simd = try Compute(backend: .swiftSIMD, threads: 1)
        #expect(paddedFeedForward(x, up: even.up, down: even.down, activation: .relu, residual: nil, compute: simd) == nil)
    }
}
