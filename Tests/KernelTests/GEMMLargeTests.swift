// GEMM products too large for the O(m*n*k) Double reference in a debug build: the thread
// split of the native driver (results must be bitwise equal for 1 and 2 threads) and
// 512..1030-sized products checked with Freivalds' trick, C*t against A*(B*t) in Double for
// random vectors t (O(m*k + k*n + m*n) per vector).
import CKernels
import Testing

@testable import Attend
import AttendTestSupport

/// Checks `C_new * t == alpha * op(A) * (op(B) * t) + beta * C_old * t` row by row for
/// `vectors` random vectors t with |t_j| in [0.5, 1] and random signs. The tolerance of row i
/// is the element tolerance (see `gemmTolerance`) summed over the row with weights |t_j|,
/// plus the Double rounding of the three matrix-vector products themselves. An error in one
/// element of C is caught when it exceeds the row's summed tolerance, so this catches wrong
/// tiles, blocks and strides, not last-bit accuracy (the small sweeps check that).
func freivaldsMismatch(
    _ tc: GEMMCase, _ data: GEMMData, got: StridedMatrix, vectors: Int
) -> String? {
    let (m, n, k) = (tc.m, tc.n, tc.k)
    let al = Double(tc.alpha), be = Double(tc.beta)
    var rng = SeededRNG(seed: tc.seed ^ 0xF7E1_7A15)
    let u = float32UnitRoundoff
    return data.a.body.withUnsafeBufferPointer { a in
        data.b.body.withUnsafeBufferPointer { b in
            data.c.body.withUnsafeBufferPointer { c0 in
                got.body.withUnsafeBufferPointer { c1 in
                    for _ in 0..<vectors {
                        let t = (0..<n).map { _ in (0.5 + 0.5 * rng.nextUnit()) * (rng.next() & 1 == 0 ? 1 : -1) }
                        // y = op(B) t and |op(B)| |t|.
                        var y = [Double](repeating: 0, count: k), yAbs = y
                        for p in 0..<k {
                            var s = 0.0, sa = 0.0
                            for j in 0..<n {
                                let x = Double(tc.transB ? b[j * tc.ldb + p] : b[p * tc.ldb + j])
                                s += x * t[j]
                                sa += abs(x) * abs(t[j])
                            }
                            y[p] = s
                            yAbs[p] = sa
                        }
                        for i in 0..<m {
                            var z = 0.0, zAbs = 0.0
                            for p in 0..<k {
                                let x = Double(tc.transA ? a[p * tc.lda + i] : a[i * tc.lda + p])
                                z += x * y[p]
                                zAbs += abs(x) * yAbs[p]
                            }
                            var ct = 0.0, ctAbs = 0.0, g = 0.0, gAbs = 0.0
                            for j in 0..<n {
                                let old = Double(c0[i * tc.ldc + j]), new = Double(c1[i * tc.ldc + j])
                                ct += old * t[j]
                                ctAbs += abs(old) * abs(t[j])
                                g += new * t[j]
                                gAbs += abs(new) * abs(t[j])
                            }
                            let expected = (tc.alpha == 0 ? 0 : al * z) + (tc.beta == 0 ? 0 : be * ct)
                            let scaledCAbs = tc.beta == 0 ? 0 : abs(be) * ctAbs
                            let floatTol =
                                2 * Double(k + 1) * u * abs(al) * zAbs + Double(k + 2) * u * scaledCAbs
                                + Double(n) * Double(k + 1) * 0x1p-148
                            let doubleTol = Double(n + k + 4) * 0x1p-52 * (abs(al) * zAbs + scaledCAbs + gAbs)
                            let tol = floatTol + doubleTol
                            if !(abs(g - expected) <= tol) {
                                return
                                    "row \(i): (C*t)[\(i)] = \(g), expected (alpha*A*(B*t) + beta*C_old*t)[\(i)] = \(expected), |diff| \(abs(g - expected)) > tol \(tol)"
                            }
                        }
                    }
                    return nil
                }
            }
        }
    }
}

/// Runs `tc` on `backend` with every thread count in `threads`, checks that the results are
/// bitwise equal, that C's padding is intact, and checks the first with Freivalds' trick.
func checkLarge(_ backend: TestedBackend, _ tc: GEMMCase, threads: [Int], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let data = GEMMData(tc)
    var results: [StridedMatrix] = []
    for t in threads { results.append(try data.run(backend, tc, threads: t, sourceLocation: sourceLocation)) }
    let first = results[0]
    for (t, r) in zip(threads, results).dropFirst() {
        if let idx = firstBitwiseDifference(r.storage, first.storage) {
            Issue.record(
                "\(backend) \(tc): threads=\(t) differs bitwise from threads=\(threads[0]) at first bad index (i, j) = (\((idx - tc.offC) / tc.ldc), \((idx - tc.offC) % tc.ldc)): got \(r.storage[idx]), expected \(first.storage[idx])",
                sourceLocation: sourceLocation)
        }
    }
    if let bad = freivaldsMismatch(tc, data, got: first, vectors: 2) {
        Issue.record("\(backend) threads=\(threads[0]) \(tc): Freivalds check failed: \(bad)", sourceLocation: sourceLocation)
    }
}

@Suite("GEMM threads and large products")
struct GEMMLargeTests {
    /// The native driver splits C over threads only when each part gets at least
    /// `minimumFlopsPerThread` flops; these shapes are just large enough for a 2-way split,
    /// by rows (m >= n) and by columns (n > m), with m and n off the tile grid. Each C tile is
    /// computed by one thread in the same order whatever the split, so the results of 1 and 2
    /// threads must be bitwise identical. The Swift SIMD backend (rows independent, each in a
    /// fixed order) must be bitwise identical across thread counts as well.
    @Test("1 and 2 threads give bitwise identical results", arguments: TestedBackend.all)
    func threadCountsAgreeBitwise(_ backend: TestedBackend) throws {
        let g = backend.blocking
        let (mr, nr) = (Int(g.mr), Int(g.nr))
        var shapes: [(Int, Int, Int)]
        if backend.isNative {
            let byRows = (9 * mr + 1, 2 * nr + 3)
            let byCols = (mr + 1, 9 * nr + 5)
            shapes = [byRows, byCols].map { (m, n) in
                (m, n, (minimumFlopsPerThread + m * n - 1) / (m * n) + 3)
            }
            for (m, n, k) in shapes {
                #expect(2 * m * n * k >= 2 * minimumFlopsPerThread, "test shape \(m)x\(n)x\(k) too small to split")
            }
        } else {
            // SwiftSIMD: one item per ~2^20 multiply-adds of rows; these give 2 or more items.
            shapes = [(40, 100, 300), (40, 37, 1000)]
        }
        var index = 0
        for (m, n, k) in shapes {
            for t in [0, 3, 2, 1] {
                defer { index += 1 }
                let tc = GEMMCase(
                    m: m, n: n, k: k, transA: t & 1 != 0, transB: t & 2 != 0,
                    alpha: nonzeroAlphas[index % 3], beta: betas[index % 3],
                    padA: paddings[index % 4], padB: 1, padC: paddings[(index + 1) % 4], offA: index % 4, offB: (index + 1) % 4,
                    offC: (index + 2) % 4, nanInC: index % 3 == 0)
                try checkLarge(backend, tc, threads: [1, 2])
            }
        }
    }

    /// 512..1030-sized products: several MC and NC blocks and KC blocks at once (for the
    /// scalar table m, n and k all exceed MC, NC and KC), checked with Freivalds' trick and
    /// for bitwise equality across 1 and 2 threads.
    @Test("large products, Freivalds check", arguments: TestedBackend.nativeOnly)
    func largeProducts(_ backend: TestedBackend) throws {
        let cases = [
            GEMMCase(m: 520, n: 1030, k: 300, alpha: 1, beta: 0, padA: 3, padB: 0, padC: 5, offC: 1, nanInC: true),
            GEMMCase(m: 1030, n: 515, k: 260, transA: true, transB: true, alpha: -0.5, beta: -1.5, padA: 0, padB: 7, padC: 1, offA: 3, offB: 1),
            GEMMCase(m: 777, n: 600, k: 257, transA: false, transB: true, alpha: 2.5, beta: 1, padA: 1, padB: 1, padC: 0, offA: 2, offB: 2, offC: 2),
        ]
        for tc in cases { try checkLarge(backend, tc, threads: [2, 1]) }
    }

    /// The Swift SIMD backend on a 512-sized product (kept thin in k: debug Swift is slow).
    @Test("large product on the Swift SIMD backend, Freivalds check")
    func largeSwiftSIMD() throws {
        let tc = GEMMCase(m: 512, n: 520, k: 16, transA: true, transB: false, alpha: -0.5, beta: 1, padA: 2, padB: 0, padC: 3, offA: 1, offC: 2)
        try checkLarge(.swiftSIMD, tc, threads: [2])
        let tc2 = GEMMCase(m: 515, n: 512, k: 12, transA: false, transB: true, alpha: 2.5, beta: 0, padC: 1, nanInC: true)
        try checkLarge(.swiftSIMD, tc2, threads: [2])
    }

    /// The Freivalds check itself must fail on a wrong result (else the tests above prove
    /// nothing): one element of a correct product is perturbed by a modest amount.
    @Test("Freivalds check detects a single wrong element")
    func freivaldsDetects() throws {
        let tc = GEMMCase(m: 64, n: 48, k: 40, alpha: 1, beta: 0)
        let data = GEMMData(tc)
        var got = try data.run(.native(.scalar), tc, threads: 1)
        #expect(freivaldsMismatch(tc, data, got: got, vectors: 2) == nil)
        got.storage[tc.offC + 5 * tc.ldc + 7] += 1
        #expect(freivaldsMismatch(tc, data, got: got, vectors: 2) != nil)
    }
}
