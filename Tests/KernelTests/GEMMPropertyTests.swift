// Property tests of the GEMM boundary `gemm(alpha:a:_:b:_:beta:c:ldc:compute:)` on every
// backend: each supported native variant, the Swift SIMD backend (checked against the naive
// Double reference; it is the oracle of the C backends) and the test-only AVX-512-layout table.
// Each sweep targets one class of boundaries; together they cover tile edges, reduction
// lengths around KC, cache-block edges, transposes, row strides with sentinel padding,
// operands that start off a 64-byte boundary, the alpha/beta special cases and IEEE special
// values. All data is seeded (see GEMMCase.seed; ATTEND_TEST_SEED changes the base seed).
import CKernels
import Testing

@testable import Attend
import AttendTestSupport

@Suite("GEMM properties")
struct GEMMPropertyTests {
    /// Every m and n around the micro-tile (MR-1, MR, MR+1 and NR-1, NR, NR+1), 0, 1, 2, 3
    /// and primes, times every transpose pair and the short reductions; alpha, beta and the
    /// row-stride paddings cycle through their values.
    @Test("tile edges: m, n around MR/NR, small and prime, all transposes, short k", arguments: TestedBackend.all)
    func tileEdges(_ backend: TestedBackend) throws {
        let g = backend.blocking
        let ms = edgeSizes(Int(g.mr), includeZero: true)
        let ns = edgeSizes(Int(g.nr), includeZero: true)
        let ks = [1, 2, 3, 5, 7, 16, 17]
        var budget = FailureBudget()
        var index = 0
        for m in ms {
            for n in ns {
                for t in 0..<4 {
                    for k in ks {
                        defer { index += 1 }
                        let beta = betas[(index / 4) % 3]
                        let tc = GEMMCase(
                            m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0,
                            alpha: alphas[index % 4], beta: beta,
                            padA: paddings[(index / 12) % 4], padB: paddings[(index / 5) % 4],
                            padC: paddings[(index / 7) % 4], offA: (index / 3) % 4, offB: (index / 11) % 4, offC: (index / 2) % 4,
                            nanInC: beta == 0 && index % 2 == 1)
                        try check(backend, tc, budget: &budget)
                    }
                }
            }
        }
        budget.finish()
    }

    /// Reduction lengths: 0, short ones, the KC boundary (255, 256, 257 with KC = 256), long
    /// ones that run several KC blocks (1000, 4096), on a 1 x 1 product, on one full tile plus
    /// an edge row and column (MR+1 x NR+1) and on a prime shape; every transpose pair.
    @Test("reduction lengths: k from 0 to 4096 across the KC boundary", arguments: TestedBackend.all)
    func reductionLengths(_ backend: TestedBackend) throws {
        let g = backend.blocking
        let kc = Int(g.kc)
        let ks = Array(Set([0, 1, 2, 3, 5, 7, 16, 17, 255, 256, 257, kc - 1, kc, kc + 1, 1000, 4096])).sorted()
        let shapes = [(1, 1), (Int(g.mr) + 1, Int(g.nr) + 1), (7, 13)]
        var budget = FailureBudget()
        var index = 0
        for k in ks {
            for (m, n) in shapes {
                for t in 0..<4 {
                    defer { index += 1 }
                    // The longest reductions on the largest shape: two transpose pairs suffice.
                    if k >= 4096 && m > 7 && (t == 1 || t == 2) { continue }
                    let beta = betas[index % 3]
                    let tc = GEMMCase(
                        m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0,
                        alpha: nonzeroAlphas[(index / 3) % 3], beta: beta,
                        padA: paddings[index % 4], padB: paddings[(index / 2) % 4], padC: paddings[(index / 3) % 4],
                        offA: (index / 4) % 4, offB: (index / 5) % 4, offC: (index / 7) % 4,
                        nanInC: beta == 0)
                    try check(backend, tc, budget: &budget)
                }
            }
        }
        budget.finish()
    }

    /// Every alpha in {0, 1, -0.5, 2.5} times every beta in {0, 1, -1.5}, every transpose pair,
    /// on a shape with full and edge tiles and a short k and on a long thin one with k just
    /// past KC. With beta == 0 the old C is all NaN (it must not be read).
    @Test("alpha and beta: all combinations; beta == 0 ignores NaN in C", arguments: TestedBackend.all)
    func alphaBeta(_ backend: TestedBackend) throws {
        let g = backend.blocking
        let shapes = [(Int(g.mr) + 1, Int(g.nr) - 1, 17), (2, 2 * Int(g.nr) + 3, Int(g.kc) + 1)]
        var budget = FailureBudget()
        var index = 0
        for (m, n, k) in shapes {
            for alpha in alphas {
                for beta in betas {
                    for t in 0..<4 {
                        defer { index += 1 }
                        let tc = GEMMCase(
                            m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0, alpha: alpha, beta: beta,
                            padA: paddings[index % 4], padB: paddings[(index + 1) % 4], padC: paddings[(index + 2) % 4],
                            offA: (index / 4) % 4, offB: (index / 2) % 4, offC: (index / 3) % 4, nanInC: beta == 0)
                        try check(backend, tc, budget: &budget)
                    }
                }
            }
        }
        budget.finish()
    }

    /// alpha == 0: C = beta * C exactly (one correctly rounded float multiply; C unchanged for
    /// beta == 1, zeros for beta == 0), and A and B are not used at all: NaN and inf there must
    /// not leak into C.
    @Test("alpha == 0 gives exactly beta * C, whatever A and B hold", arguments: TestedBackend.all)
    func alphaZero(_ backend: TestedBackend) throws {
        let g = backend.blocking
        var budget = FailureBudget()
        for (m, n, k) in [(Int(g.mr) + 1, Int(g.nr) + 1, 9), (3, 5, 0), (1, Int(g.nr), 300)] {
            for beta in betas {
                for t in 0..<4 {
                    let tc = GEMMCase(
                        m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0, alpha: 0, beta: beta,
                        padA: 1, padC: 2, offA: 1, offB: 2, offC: 3, fill: .nonFinite)
                    let data = GEMMData(tc)
                    let got = try data.run(backend, tc, threads: 1)
                    for i in 0..<m {
                        for j in 0..<n {
                            let old = data.c.at(i, j)
                            let expected: Float = beta == 0 ? 0 : beta * old
                            let value = got.at(i, j)
                            if value != expected {
                                budget.record(
                                    "\(backend) \(tc): first bad index (i, j) = (\(i), \(j)): got \(value), expected beta * C_old = \(expected)")
                            }
                        }
                    }
                }
            }
        }
        budget.finish()
    }

    /// IEEE special values: finite specials (±0, subnormals, smallest normals, ±1) must match
    /// the reference within tolerance; with ±inf and NaN in A and B the result must be NaN
    /// exactly where the reference is NaN and the same infinity where it is infinite.
    /// Subnormal inputs must not be flushed (DAZ) and subnormal results must not be flushed
    /// (FTZ): the tolerance's absolute term is (k+1) * 2^-148, far below those values.
    @Test("special values: ±0, subnormals, ±inf, NaN; no flush to zero", arguments: TestedBackend.all)
    func specialValues(_ backend: TestedBackend) throws {
        let g = backend.blocking
        let (mr, nr) = (Int(g.mr), Int(g.nr))
        var budget = FailureBudget()
        var index = 0
        let shapes = [(mr + 1, nr + 1, 37), (3, 5, 1), (mr, nr, 300), (1, 2 * nr + 1, 2)]
        for fill in [Fill.finiteSpecials, .nonFinite, .subnormalTimesHuge, .subnormalProducts] {
            let subnormal = fill == .subnormalTimesHuge || fill == .subnormalProducts
            for (m, n, k) in shapes {
                for t in 0..<4 {
                    defer { index += 1 }
                    let alpha: Float = subnormal ? nonzeroAlphas[index % 3] : alphas[index % 4]
                    let beta: Float = subnormal ? 0 : betas[index % 3]
                    let tc = GEMMCase(
                        m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0, alpha: alpha, beta: beta,
                        padA: paddings[index % 4], padB: paddings[(index / 4) % 4], padC: 1, offA: index % 3, offC: (index / 3) % 4,
                        fill: fill, nanInC: beta == 0 && index % 2 == 0)
                    try check(backend, tc, budget: &budget)
                }
            }
        }
        budget.finish()
    }

    /// Random combinations of everything above: m up to 3 tiles, n up to 2 tiles, k short or
    /// up to 300, any transposes, paddings, offsets, alpha, beta and fill. Catches interactions
    /// that the structured sweeps pair off differently. The sequence of cases is seeded.
    @Test("random combinations of sizes, layouts, scalars and fills", arguments: TestedBackend.all)
    func randomCombinations(_ backend: TestedBackend) throws {
        let g = backend.blocking
        var rng = SeededRNG(seed: caseSeed(777))
        var budget = FailureBudget()
        let fills: [Fill] = [.uniform, .uniform, .uniform, .finiteSpecials, .nonFinite]
        func draw(_ bound: Int) -> Int { Int(rng.next() % UInt64(bound)) }
        for index in 0..<150 {
            var tc = GEMMCase(m: draw(3 * Int(g.mr) + 2), n: draw(2 * Int(g.nr) + 2), k: draw(2) == 0 ? draw(20) : draw(301))
            tc.transA = draw(2) == 1
            tc.transB = draw(2) == 1
            tc.alpha = alphas[draw(4)]
            tc.beta = betas[draw(3)]
            tc.padA = draw(5)
            tc.padB = draw(5)
            tc.padC = draw(5)
            tc.offA = draw(4)
            tc.offB = draw(4)
            tc.offC = draw(4)
            tc.fill = fills[draw(fills.count)]
            tc.nanInC = tc.beta == 0 && draw(2) == 1
            tc.tag = index
            try check(backend, tc, budget: &budget)
        }
        budget.finish()
    }

    /// Cache-block edges: m around MC and past 2*MC (several A blocks), n past NC (several B
    /// blocks), each with a reduction inside and past KC. Only the C backends have blocks.
    @Test("cache blocks: m around MC and past 2*MC, n past NC, k past KC", arguments: TestedBackend.nativeOnly)
    func cacheBlocks(_ backend: TestedBackend) throws {
        let g = backend.blocking
        let (mr, nr, mc, kc, nc) = (Int(g.mr), Int(g.nr), Int(g.mc), Int(g.kc), Int(g.nc))
        var budget = FailureBudget()
        var index = 0
        var cases: [(Int, Int, Int)] = []
        for m in [mc - 1, mc, mc + 1, 2 * mc + mr + 1] {
            cases.append((m, nr + 3, 5))
            cases.append((m, 3, kc + 44))
        }
        for n in [nc + 1, nc + nr + 1] {
            cases.append((3, n, 3))
            cases.append((2, n, kc + 4))
        }
        for (m, n, k) in cases {
            for t in [0, 3, 1, 2] {
                defer { index += 1 }
                // The biggest of these (n past NC with k past KC) run with one transpose pair
                // each: the packing of both layouts is covered by the smaller ones.
                if n > nc && k > kc && (t == 1 || t == 2) { continue }
                let tc = GEMMCase(
                    m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0,
                    alpha: nonzeroAlphas[index % 3], beta: betas[index % 3],
                    padA: paddings[index % 4], padB: paddings[(index + 1) % 4], padC: paddings[(index + 2) % 4],
                    offA: (index / 2) % 4, offB: (index / 3) % 4, offC: index % 4, nanInC: index % 3 == 0)
                try check(backend, tc, budget: &budget)
            }
        }
        budget.finish()
    }
}
