// Tensor: construction, value semantics (copy-on-write), indexing, reshaping, row slices,
// element-wise arithmetic, matrix products against the naive reference, equality and
// description.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// Every backend a `Compute` can name on this machine, with 1 and 2 threads.
let allComputes: [Compute] = (KernelVariant.supported.map { Backend.native($0) } + [.swiftSIMD]).flatMap {
    [testCompute($0, threads: 1), testCompute($0, threads: 2)]
}

extension Compute: CustomTestStringConvertible {
    public var testDescription: String { "\(backend), \(threads) thread\(threads == 1 ? "" : "s")" }
}

/// A tensor of uniform values in [-1, 1].
func randomTensor(_ shape: [Int], _ rng: inout SeededRNG) -> Tensor {
    Tensor(shape: shape, scalars: rng.floats(shape.reduce(1, *)))
}

@Suite("Tensor construction and indexing")
struct TensorConstructionTests {
    @Test func fromScalars() {
        let t = Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5] as [Float])
        #expect(t.shape == [2, 3])
        #expect(t.rank == 2)
        #expect(t.count == 6)
        #expect(t.scalars == [0, 1, 2, 3, 4, 5])
        #expect(t[0, 0] == 0 && t[0, 2] == 2 && t[1, 0] == 3 && t[1, 2] == 5)
        // Any collection of Float.
        let r = Tensor(shape: [4], scalars: (0..<4).map { Float($0) * 0.5 })
        #expect(r.scalars == [0, 0.5, 1, 1.5])
    }

    @Test func repeatingZerosAndGenerating() {
        let t = Tensor(repeating: 2.5, shape: [3, 2])
        #expect(t.shape == [3, 2] && t.scalars == [Float](repeating: 2.5, count: 6))
        let z = Tensor.zeros([2, 2, 2])
        #expect(z.count == 8 && z.scalars.allSatisfy { $0 == 0 && $0.sign == .plus })
        let g = Tensor(shape: [2, 3, 4], generating: { Float($0) })
        #expect(g.scalars == (0..<24).map(Float.init))
        // Row-major: [i, j, k] is at flat offset (i*3 + j)*4 + k.
        for i in 0..<2 {
            for j in 0..<3 {
                for k in 0..<4 { #expect(g[i, j, k] == Float((i * 3 + j) * 4 + k)) }
            }
        }
    }

    @Test func generatingRethrows() {
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            _ = try Tensor(
                shape: [5],
                generating: { i in
                    if i == 3 { throw Stop() }
                    return Float(i)
                })
        }
    }

    @Test func scalarAndEmptyTensors() {
        var s = Tensor(shape: [], scalars: [7] as [Float])
        #expect(s.rank == 0 && s.count == 1 && s[] == 7)
        s[] = -1
        #expect(s.scalars == [-1])
        for shape in [[0], [0, 3], [3, 0], [2, 0, 5]] {
            let e = Tensor.zeros(shape)
            #expect(e.count == 0 && e.scalars.isEmpty && e.shape == shape, "shape \(shape)")
        }
    }

    @Test func subscriptWritesEveryElementInRowMajorOrder() {
        var t = Tensor.zeros([3, 4, 5])
        var n: Float = 0
        for i in 0..<3 {
            for j in 0..<4 {
                for k in 0..<5 {
                    t[i, j, k] = n
                    n += 1
                }
            }
        }
        #expect(t.scalars == (0..<60).map(Float.init))
        t[2, 3, 4] = -9
        #expect(t.scalars.last == -9)
    }

    @Test func reshaped() {
        let t = Tensor(shape: [2, 3], generating: { Float($0) })
        let cases: [([Int], [Int])] = [
            ([3, 2], [3, 2]), ([-1], [6]), ([3, -1], [3, 2]), ([-1, 2], [3, 2]), ([1, -1, 3], [1, 2, 3]),
            ([6, 1], [6, 1]), ([-1, 1, 1], [6, 1, 1]),
        ]
        for (request, expected) in cases {
            let r = t.reshaped(request)
            #expect(r.shape == expected, "reshaped(\(request))")
            #expect(r.scalars == t.scalars, "reshaped(\(request)) keeps the scalars in order")
        }
        #expect(Tensor.zeros([2, 3, 4]).reshaped([-1, 4]).shape == [6, 4])
        #expect(Tensor.zeros([0, 3]).reshaped([-1, 3]).shape == [0, 3])
        #expect(Tensor(shape: [], scalars: [1] as [Float]).reshaped([-1]).shape == [1])
        #expect(Tensor(shape: [1], scalars: [1] as [Float]).reshaped([]).shape == [])
        // Row-major reinterpretation: [2, 3] -> [3, 2] puts flat 2 at [1, 0].
        #expect(t.reshaped([3, 2])[1, 0] == 2)
    }

    @Test func rowsSlice() {
        let t = Tensor(shape: [4, 3], generating: { Float($0) })
        let r = t.rows(1..<3)
        #expect(r.shape == [2, 3])
        #expect(r.scalars == [3, 4, 5, 6, 7, 8])
        #expect(t.rows(0..<4) == t)
        #expect(t.rows(2..<2).shape == [0, 3])
        #expect(t.rows(3..<4).scalars == [9, 10, 11])
        let t3 = Tensor(shape: [3, 2, 2], generating: { Float($0) })
        let last = t3.rows(2..<3)
        #expect(last.shape == [1, 2, 2] && last.scalars == [8, 9, 10, 11])
        let v = Tensor(shape: [5], generating: { Float($0) })
        #expect(v.rows(1..<4).shape == [3] && v.rows(1..<4).scalars == [1, 2, 3])
        // The slice owns its scalars.
        var slice = t.rows(0..<1)
        slice[0, 0] = 100
        #expect(t[0, 0] == 0)
    }
}

@Suite("Tensor value semantics")
struct TensorValueSemanticsTests {
    @Test func copyThenMutateLeavesOriginal() {
        let original = Tensor(shape: [2, 3], generating: { Float($0) })
        var copy = original
        copy[0, 0] = 99
        #expect(original[0, 0] == 0, "mutating a copy changed the original")
        #expect(copy[0, 0] == 99)
        #expect(original.scalars == [0, 1, 2, 3, 4, 5])

        // The other way round: mutate the original, the copy keeps the old values.
        var a = Tensor(shape: [3], scalars: [1, 2, 3] as [Float])
        let b = a
        a[2] = -3
        #expect(b.scalars == [1, 2, 3] && a.scalars == [1, 2, -3])
    }

    @Test func everyMutatingOperationCopiesSharedStorage() throws {
        let base = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Float])
        let other = Tensor(shape: [2, 2], scalars: [10, 20, 30, 40] as [Float])

        var c1 = base
        c1 += other
        #expect(base.scalars == [1, 2, 3, 4] && c1.scalars == [11, 22, 33, 44])

        var c2 = base
        c2 *= 2
        #expect(base.scalars == [1, 2, 3, 4] && c2.scalars == [2, 4, 6, 8])

        var c3 = base
        c3.withUnsafeMutableBufferPointer { $0[3] = 0 }
        #expect(base.scalars == [1, 2, 3, 4] && c3.scalars == [1, 2, 3, 0])

        var c4 = base
        c4.gemm(base, base, compute: try Compute(backend: .swiftSIMD, threads: 1))
        #expect(base.scalars == [1, 2, 3, 4] && c4.scalars == [7, 10, 15, 22])

        // A reshaped view shares storage until written; writes on either side stay there.
        var r = base.reshaped([4])
        r[0] = -1
        #expect(base.scalars == [1, 2, 3, 4] && r.scalars == [-1, 2, 3, 4])
        var b2 = base
        let view = b2.reshaped([1, 4])
        b2[1, 1] = 0
        #expect(view.scalars == [1, 2, 3, 4] && b2.scalars == [1, 2, 3, 0])
    }

    @Test func uniquelyOwnedMutationKeepsValues() {
        var t = Tensor(shape: [3], scalars: [1, 2, 3] as [Float])
        t[0] = 5
        t[1] = 6
        t *= 2
        #expect(t.scalars == [10, 12, 6])
    }

    @Test func copiesMutatedConcurrentlyStayIndependent() async {
        let shared = Tensor(shape: [64, 64], generating: { Float($0) })
        let sums = await withTaskGroup(of: (Int, Float).self) { group in
            for task in 0..<8 {
                group.addTask {
                    var mine = shared
                    mine *= Float(task + 1)
                    mine[0, 0] = Float(task)
                    return (task, mine[63, 63] + mine[0, 0])
                }
            }
            var out = [Int: Float]()
            for await (t, s) in group { out[t] = s }
            return out
        }
        #expect(shared == Tensor(shape: [64, 64], generating: { Float($0) }))
        for task in 0..<8 {
            #expect(sums[task] == 4095 * Float(task + 1) + Float(task), "task \(task)")
        }
    }
}

@Suite("Tensor arithmetic, equality and description")
struct TensorArithmeticTests {
    @Test func elementWise() {
        var rng = SeededRNG(seed: caseSeed(101))
        let a = randomTensor([3, 5], &rng), b = randomTensor([3, 5], &rng)
        let (x, y) = (a.scalars, b.scalars)
        let why = "\(rng)"
        #expect((a + b).scalars == zip(x, y).map { $0 + $1 }, "\(why)")
        #expect((a - b).scalars == zip(x, y).map { $0 - $1 }, "\(why)")
        #expect((a * b).scalars == zip(x, y).map { $0 * $1 }, "\(why)")
        #expect((a * 2.5).scalars == x.map { $0 * 2.5 }, "\(why)")
        #expect((-0.5 * a).scalars == x.map { $0 * -0.5 }, "\(why)")
        #expect((a + b).shape == [3, 5] && (a * 3).shape == [3, 5])
        var c = a
        c += b
        #expect(c.scalars == zip(x, y).map { $0 + $1 }, "\(why)")
        c *= -1.5
        #expect(c.scalars == zip(x, y).map { ($0 + $1) * -1.5 }, "\(why)")
        // IEEE semantics pass through.
        let s = Tensor(shape: [3], scalars: [.infinity, 1, .nan] as [Float])
        let r = (s - s).scalars
        #expect(r[0].isNaN && r[1] == 0 && r[2].isNaN)
        // Empty tensors.
        #expect((Tensor.zeros([0, 4]) + Tensor.zeros([0, 4])).shape == [0, 4])
    }

    @Test func equality() {
        let a = Tensor(shape: [2, 3], generating: { Float($0) })
        #expect(a == Tensor(shape: [2, 3], generating: { Float($0) }))
        #expect(a != a.reshaped([3, 2]), "same scalars, different shape")
        var b = a
        b[1, 2] = 5.5
        #expect(a != b)
        let n = Tensor(shape: [1], scalars: [.nan] as [Float])
        #expect(n != n, "NaN != NaN")
        #expect(Tensor(shape: [1], scalars: [0] as [Float]) == Tensor(shape: [1], scalars: [-0.0] as [Float]))
        #expect(Tensor.zeros([0, 2]) == Tensor.zeros([0, 2]))
        #expect(Tensor.zeros([0, 2]) != Tensor.zeros([2, 0]))
    }

    @Test func description() {
        let small = Tensor(shape: [2, 3], generating: { Float($0) })
        #expect(small.description == "Tensor([2, 3]: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])")
        let eight = Tensor(shape: [8], generating: { Float($0) })
        #expect(eight.description == "Tensor([8]: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])")
        let big = Tensor(shape: [2, 5], generating: { Float($0) * 0.5 })
        #expect(big.description == "Tensor([2, 5]: [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, ...])")
        #expect(Tensor.zeros([0]).description == "Tensor([0]: [])")
        #expect(Tensor(shape: [], scalars: [-2] as [Float]).description == "Tensor([]: [-2.0])")
        #expect("\(small)" == small.description)
    }
}

@Suite("Tensor matrix products")
struct TensorMatmulTests {
    /// (m, k, n) shapes: trivial, odd, around common tile sizes, and one that is split over
    /// threads in release-sized work (it still runs in debug in well under a second).
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (3, 5, 7), (6, 16, 17), (17, 31, 13), (33, 64, 20)]

    @Test("matmul with every transpose against the Double reference", arguments: allComputes)
    func matmulMatchesReference(_ compute: Compute) {
        var caseNumber = 0
        for (m, k, n) in Self.shapes {
            for t in 0..<4 {
                caseNumber += 1
                let (ta, tb) = (t & 1 != 0, t & 2 != 0)
                var rng = SeededRNG(seed: caseSeed(202, m, k, n, t))
                let a = randomTensor(ta ? [k, m] : [m, k], &rng)
                let b = randomTensor(tb ? [n, k] : [k, n], &rng)
                let c = a.matmul(b, transposeSelf: ta, transposeOther: tb, compute: compute)
                #expect(c.shape == [m, n])
                let ref = referenceGEMM(
                    m: m, n: n, k: k, alpha: 1, a: a.scalars, lda: ta ? m : k, transA: ta,
                    b: b.scalars, ldb: tb ? k : n, transB: tb, beta: 0, c: [], ldc: n)
                let got = c.scalars
                if let bad = firstMismatch(ref, k: k, alpha: 1, got: { got[$0 * n + $1] }) {
                    Issue.record(
                        "\(compute.backend) threads=\(compute.threads) matmul m=\(m) n=\(n) k=\(k) transposeSelf=\(ta) transposeOther=\(tb) \(rng): \(bad)"
                    )
                }
            }
        }
        #expect(caseNumber == Self.shapes.count * 4)
    }

    @Test("in-place gemm: alpha, beta, and beta == 0 ignores NaN in self", arguments: allComputes)
    func inPlaceGEMM(_ compute: Compute) {
        let (m, k, n) = (7, 9, 5)
        for alpha: Float in [0, 1, -0.5, 2.5] {
            for beta: Float in [0, 1, -1.5] {
                var rng = SeededRNG(seed: caseSeed(303, Int(alpha.bitPattern), Int(beta.bitPattern)))
                let a = randomTensor([m, k], &rng)
                let b = randomTensor([n, k], &rng)
                var c = beta == 0 ? Tensor(repeating: .nan, shape: [m, n]) : randomTensor([m, n], &rng)
                let old = c.scalars
                c.gemm(alpha: alpha, a, b, transposeB: true, beta: beta, compute: compute)
                let ref = referenceGEMM(
                    m: m, n: n, k: k, alpha: alpha, a: a.scalars, lda: k, transA: false,
                    b: b.scalars, ldb: k, transB: true, beta: beta, c: old, ldc: n)
                let got = c.scalars
                if let bad = firstMismatch(ref, k: k, alpha: alpha, got: { got[$0 * n + $1] }) {
                    Issue.record(
                        "\(compute.backend) threads=\(compute.threads) gemm m=\(m) n=\(n) k=\(k) transB=true alpha=\(alpha) beta=\(beta) \(rng): \(bad)"
                    )
                }
            }
        }
    }

    @Test("matmul with the default Compute and with empty dimensions")
    func defaultAndEmpty() {
        let a = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let b = Tensor(shape: [3, 2], scalars: [7, 8, 9, 10, 11, 12] as [Float])
        // Small integers: every backend and order is exact.
        #expect(a.matmul(b) == Tensor(shape: [2, 2], scalars: [58, 64, 139, 154] as [Float]))
        #expect(a.matmul(a, transposeOther: true) == Tensor(shape: [2, 2], scalars: [14, 32, 32, 77] as [Float]))
        #expect(a.matmul(a, transposeSelf: true).shape == [3, 3])
        #expect(a.matmul(a, transposeSelf: true)[2, 2] == 45)
        for compute in allComputes {
            // k == 0: a sum of nothing is zero.
            let z = Tensor.zeros([2, 0]).matmul(Tensor.zeros([0, 3]), compute: compute)
            #expect(z == Tensor.zeros([2, 3]), "\(compute.backend) k == 0")
            // m == 0 or n == 0: empty results.
            #expect(Tensor.zeros([0, 4]).matmul(Tensor.zeros([4, 3]), compute: compute).shape == [0, 3])
            #expect(Tensor.zeros([2, 4]).matmul(Tensor.zeros([4, 0]), compute: compute).shape == [2, 0])
        }
    }
}
