// The packed-weight product behind every Linear (ck_f32_gemm_packed through
// Native/PackedGEMM.swift) against a Double reference, on every supported kernel variant:
// edge rows and columns (m, n not multiples of the micro-tile), k over the variant's kc
// (several k blocks), row blocks over mc, the few-rows split over weight panels (A packed
// once), a column range starting inside the weight, and the bias + activation + residual
// epilogue.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

struct PackedCase: CustomTestStringConvertible, Sendable {
    let variant: KernelVariant
    let m, n, k: Int
    let epilogue: Bool
    let threads: Int
    var testDescription: String { "\(variant) m \(m) n \(n) k \(k)\(epilogue ? " bias+gelu" : "") threads \(threads)" }

    static let all: [PackedCase] = {
        let shapes = [(1, 1, 1), (5, 17, 300), (6, 16, 256), (13, 40, 1100), (100, 33, 70), (50, 100, 2100), (12, 384, 384), (301, 48, 96)]
        var out: [PackedCase] = []
        for v in KernelVariant.supported {
            for (m, n, k) in shapes {
                for epilogue in [false, true] {
                    for threads in [1, 2, 3] { out.append(PackedCase(variant: v, m: m, n: n, k: k, epilogue: epilogue, threads: threads)) }
                }
            }
        }
        return out
    }()
}

@Suite("Packed-weight GEMM")
struct PackedGEMMTests {
    @Test("C = act(A Wᵀ + b) against a Double reference", arguments: PackedCase.all)
    func matchesReference(_ c: PackedCase) throws {
        var rng = SeededRNG(seed: caseSeed(c.m, c.n, c.k, c.epilogue ? 1 : 0))
        let a = rng.floats(c.m * c.k), w = rng.floats(c.n * c.k), bias = rng.floats(c.n)
        // The product uses weight rows [skip, skip + n) of a taller weight (a fused QKV's keys).
        let nr = Int(c.variant.tileColumns), skip = c.epilogue ? nr : 0
        let extra = rng.floats(skip * c.k), residual = rng.floats(c.m * c.n)
        let packed = PackedWeight(Tensor(shape: [c.n + skip, c.k], scalars: extra + w), variant: c.variant, threads: c.threads)
        var out = [Float](repeating: .nan, count: c.m * c.n)  // NaN: every element must be written
        a.withUnsafeBufferPointer { ap in
            bias.withUnsafeBufferPointer { bp in
                residual.withUnsafeBufferPointer { rp in
                    out.withUnsafeMutableBufferPointer { op in
                        let ep =
                            c.epilogue
                            ? GEMMEpilogue(bias: bp.baseAddress!, activation: .gelu, residual: rp.baseAddress!, ldr: c.n)
                            : GEMMEpilogue()
                        packedGEMM(
                            a: ap.baseAddress!, lda: c.k, m: c.m, weight: packed, columns: skip..<(skip + c.n),
                            c: op.baseAddress!, ldc: c.n, beta: 0, epilogue: ep, threads: c.threads)
                    }
                }
            }
        }
        for i in 0..<c.m {
            for j in 0..<c.n {
                var s = 0.0, mag = 0.0
                for p in 0..<c.k {
                    s += Double(a[i * c.k + p]) * Double(w[j * c.k + p])
                    mag += abs(Double(a[i * c.k + p]) * Double(w[j * c.k + p]))
                }
                if c.epilogue {
                    s += Double(bias[j])
                    mag += abs(Double(bias[j]))
                    s = s / 2 * (1 + erf(s / 2.0.squareRoot()))
                    s += Double(residual[i * c.n + j])
                    mag += abs(Double(residual[i * c.n + j]))
                }
                // Float accumulation over k terms: error grows like k * eps * sum|terms|; GELU
                // adds its own ~1e-6 relative.
                let tol = 2 * Double(c.k + 2) * float32UnitRoundoff * mag + 1e-6 * abs(s) + 1e-30
                let got = Double(out[i * c.n + j])
                #expect(abs(got - s) <= tol, "\(c.testDescription): C[\(i)][\(j)] = \(got), expected \(s)")
                if abs(got - s) > tol { return }
            }
        }
    }

    @Test("Row blocks: even whole tiles, cover the rows in order, at most mc rows when cut by mc")
    func rowBlocks() {
        for m in [1, 5, 6, 7, 126, 127, 512, 1150, 1151] {
            for (mr, mc) in [(6, 126), (14, 252), (8, 48), (4, 4)] {
                let byMC = PackedGEMMRowBlocks(m: m, mr: mr, mc: mc)
                let tiles = (m + mr - 1) / mr
                #expect(byMC.count == (tiles + mc / mr - 1) / (mc / mr), "m \(m) mr \(mr) mc \(mc): the fewest blocks")
                for count in [byMC.count, byMC.count + 1, 2 * byMC.count, tiles + 3] {
                    let blocks = count == byMC.count ? byMC : PackedGEMMRowBlocks(m: m, mr: mr, count: count)
                    #expect(blocks.count == min(count, tiles))
                    var next = 0, sizes: [Int] = []
                    for b in 0..<blocks.count {
                        let (i0, i1) = blocks.rows(b)
                        #expect(i0 == next && i1 > i0, "m \(m) mr \(mr) count \(count): block \(b) is [\(i0), \(i1))")
                        #expect(i0 % mr == 0, "block \(b) starts inside a tile")
                        if count >= byMC.count { #expect(i1 - i0 <= max(mc, mr), "block \(b): \(i1 - i0) rows > mc \(mc)") }
                        #expect(i1 - i0 <= blocks.maxRows, "block \(b): \(i1 - i0) rows > maxRows \(blocks.maxRows)")
                        sizes.append((i1 - i0 + mr - 1) / mr)
                        next = i1
                    }
                    #expect(next == m, "m \(m) mr \(mr) count \(count): blocks end at \(next)")
                    // maxRows is tight: under one tile more than the largest block (the last block,
                    // when it is the largest, may end inside its last tile).
                    let largest = (0..<blocks.count).map { blocks.rows($0).1 - blocks.rows($0).0 }.max() ?? 0
                    #expect(blocks.maxRows >= largest && blocks.maxRows - largest < mr, "m \(m) mr \(mr) count \(count): maxRows \(blocks.maxRows), largest block \(largest)")
                    // Even: tile counts differ by at most one.
                    #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1, "m \(m) mr \(mr) count \(count): tiles per block \(sizes)")
                }
            }
        }
        // The case that moved the split: 1150 rows at mc 126 were nine blocks of 126 and one of 16.
        let minilm = PackedGEMMRowBlocks(m: 1150, mr: 6, mc: 126)
        #expect(minilm.count == 10 && (0..<10).allSatisfy { minilm.rows($0).1 - minilm.rows($0).0 >= 108 })
    }

    @Test("The same bits on 1, 2 and 3 threads: the split does not change a sum")
    func splitInvariant() throws {
        for v in KernelVariant.supported {
            for (m, n, k) in [(301, 64, 128), (1150, 48, 32), (20, 512, 256)] {
                var rng = SeededRNG(seed: caseSeed(m, n, k, 7))
                let a = rng.floats(m * k), w = rng.floats(n * k)
                let packed = PackedWeight(Tensor(shape: [n, k], scalars: w), variant: v, threads: 1)
                var outs: [[Float]] = []
                for threads in [1, 2, 3] {
                    var out = [Float](repeating: .nan, count: m * n)
                    a.withUnsafeBufferPointer { ap in
                        out.withUnsafeMutableBufferPointer { op in
                            packedGEMM(
                                a: ap.baseAddress!, lda: k, m: m, weight: packed, columns: 0..<n, c: op.baseAddress!, ldc: n,
                                beta: 0, threads: threads)
                        }
                    }
                    outs.append(out)
                }
                #expect(!outs[0].contains { $0.isNaN }, "\(v) m \(m) n \(n) k \(k): an element not written")
                for t in 1..<outs.count {
                    let same = zip(outs[0], outs[t]).allSatisfy { $0.bitPattern == $1.bitPattern }
                    #expect(same, "\(v) m \(m) n \(n) k \(k): \(t + 1) threads differ from 1")
                }
            }
        }
    }

    @Test("Linear packs its weight once per variant and agrees with the general GEMM")
    func projectionAgrees() throws {
        var rng = SeededRNG(seed: 99)
        let layer = Linear(weight: Tensor(shape: [70, 40], scalars: rng.floats(2800)), bias: Tensor(shape: [70], scalars: rng.floats(70)))
        let x = Tensor(shape: [9, 40], scalars: rng.floats(360))
        let residual = Tensor(shape: [9, 70], scalars: rng.floats(630))
        for v in KernelVariant.supported {
            let compute = try Compute(backend: .native(v), threads: 2)
            let p = layer.forward(x, activation: .relu, residual: residual, compute: compute)
            var g = x.matmul(layer.weight, transposeOther: true, compute: try compute.with(threads: 1))
            let simd = try Compute(backend: .swiftSIMD, threads: 1)
            g = (g + Tensor(shape: [9, 70], generating: { layer.bias![$0 % 70] })).applying(.relu, compute: simd)
            g += residual
            #expect(layer.packed.variants.contains(v), "\(v): the layer packed its weight")
            #expect(p.shape == [9, 70] && maxAbsDiff(p, g) <= 1e-5, "\(v): packed projection differs from the general GEMM")
        }
    }
}
