// Misuse stops the program with a precondition failure whose message names the shapes
// (DESIGN: like Array with a bad index). Each case runs in a child process (exit tests) and
// checks that the process fails and that standard error carries the message.
import Testing

@testable import Attend

/// Whether a finished exit test wrote `fragment` to standard error.
func stderrContains(_ result: ExitTest.Result?, _ fragment: String) -> Bool {
    guard let result else { return false }
    return String(decoding: result.standardErrorContent, as: UTF8.self).contains(fragment)
}

@Suite("Misuse is a precondition failure naming the shapes")
struct MisuseTests {
    @Test func tensorShapeAndScalarCountDiffer() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor(shape: [2, 3], scalars: [1, 2] as [Float])
        }
        #expect(stderrContains(r, "2 scalars given, shape needs 6"))
    }

    @Test func reshapeToOtherCount() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).reshaped([5])
        }
        #expect(stderrContains(r, "[2, 3]"))
    }

    @Test func reshapeCannotInfer() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).reshaped([4, -1])
        }
        #expect(stderrContains(r, "cannot infer"))
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).reshaped([-1, -1])
        }
        #expect(stderrContains(r2, "more than one -1"))
    }

    @Test func indexOutOfRange() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3])[2, 0]
        }
        #expect(stderrContains(r, "out of range for shape [2, 3]"))
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3])[1]
        }
        #expect(stderrContains(r2, "axes"))
    }

    @Test func rowsOutOfBounds() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([4, 3]).rows(2..<5)
        }
        #expect(stderrContains(r, "out of bounds for shape [4, 3]"))
    }

    @Test func elementWiseShapesDiffer() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]) + Tensor.zeros([3, 2])
        }
        #expect(stderrContains(r, "shapes differ"))
    }

    @Test func matmulShapesDoNotFit() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).matmul(Tensor.zeros([2, 3]), compute: try Compute(backend: .swiftSIMD, threads: 1))
        }
        #expect(stderrContains(r, "[2, 3]"))
    }

    @Test func gemmBoundaryValidatesStridesAndBuffers() async {
        // Inner dimensions differ.
        let r1 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let compute = try Compute(backend: .native(.scalar), threads: 1)
            let a = [Float](repeating: 1, count: 6), c = [Float](repeating: 0, count: 4)
            var cc = c
            a.withUnsafeBufferPointer { pa in
                cc.withUnsafeMutableBufferPointer { pc in
                    gemm(
                        alpha: 1, a: pa, MatrixOperand(rows: 2, cols: 3, ld: 3, transposed: false),
                        b: pa, MatrixOperand(rows: 2, cols: 2, ld: 2, transposed: false), beta: 0, c: pc, ldc: 2,
                        compute: compute)
                }
            }
        }
        #expect(stderrContains(r1, "inner dimensions differ"))
        // Row stride smaller than the stored width (transposed A: stored width is rows).
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let compute = try Compute(backend: .native(.scalar), threads: 1)
            let a = [Float](repeating: 1, count: 64)
            var c = [Float](repeating: 0, count: 64)
            a.withUnsafeBufferPointer { pa in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm(
                        alpha: 1, a: pa, MatrixOperand(rows: 4, cols: 2, ld: 3, transposed: true),
                        b: pa, MatrixOperand(rows: 2, cols: 2, ld: 2, transposed: false), beta: 0, c: pc, ldc: 2,
                        compute: compute)
                }
            }
        }
        #expect(stderrContains(r2, "row stride 3 < 4"))
        // Buffer shorter than the operand reaches: (rows-1)*ld + cols = 2*5 + 3 = 13 > 12.
        let r3 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let compute = try Compute(backend: .swiftSIMD, threads: 1)
            let a = [Float](repeating: 1, count: 12), b = [Float](repeating: 1, count: 64)
            var c = [Float](repeating: 0, count: 64)
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        gemm(
                            alpha: 1, a: pa, MatrixOperand(rows: 3, cols: 3, ld: 5, transposed: false),
                            b: pb, MatrixOperand(rows: 3, cols: 2, ld: 2, transposed: false), beta: 0, c: pc, ldc: 2,
                            compute: compute)
                    }
                }
            }
        }
        #expect(stderrContains(r3, "needs 13 scalars, buffer has 12"))
        // C too short: 3 rows at ldc 4 reach 2*4 + 2 = 10 scalars.
        let r4 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let compute = try Compute(backend: .native(.scalar), threads: 1)
            let a = [Float](repeating: 1, count: 64)
            var c = [Float](repeating: 0, count: 9)
            a.withUnsafeBufferPointer { pa in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm(
                        alpha: 1, a: pa, MatrixOperand(rows: 3, cols: 2, ld: 2, transposed: false),
                        b: pa, MatrixOperand(rows: 2, cols: 2, ld: 2, transposed: false), beta: 0, c: pc, ldc: 4,
                        compute: compute)
                }
            }
        }
        #expect(stderrContains(r4, "needs 10 scalars, buffer has 9"))
    }

    // parallelFor's and Compute's arguments throw instead: ParallelForTests.badArgumentsThrow,
    // ComputeTests.threadsOutOfRangeThrow and unsupportedVariantThrows.
}
