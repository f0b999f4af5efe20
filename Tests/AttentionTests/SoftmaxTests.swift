// Row softmax of every kernel table against the Swift SIMD backend (which computes in Double):
// through `Tensor.softmax(scale:mask:compute:)` and `softmax(scale:mask:into:compute:)` for
// the production variants, through the table's `softmax_rows` slot for the test-only table.
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

extension KernelTable {
    /// softmax(x * scale + mask) over the last axis. `into` selects the in-place API form (its
    /// output starts as NaN, so an element the kernel skips shows).
    func softmax(_ x: Tensor, scale: Float, mask: Tensor?, threads: Int, into: Bool = false) -> Tensor {
        switch self {
        case .native(let v):
            let compute = testCompute(.native(v), threads: threads)
            if into {
                var out = Tensor(repeating: .nan, shape: x.shape)
                x.softmax(scale: scale, mask: mask, into: &out, compute: compute)
                return out
            }
            return x.softmax(scale: scale, mask: mask, compute: compute)
        case .avx512LayoutOnAVX2:
            let n = x.shape.last!
            let rows = x.count / n
            var out = Tensor(repeating: .nan, shape: x.shape)
            let m = mask ?? Tensor.zeros([1])
            x.withUnsafeBufferPointer { xp in
                m.withUnsafeBufferPointer { mp in
                    out.withUnsafeMutableBufferPointer { yp in
                        kernels.pointee.softmax_rows(
                            rows, n, xp.baseAddress!, n, yp.baseAddress!, n, scale,
                            mask == nil ? nil : mp.baseAddress!, mask?.shape == x.shape ? n : 0)
                    }
                }
            }
            return out
        }
    }
}

/// The first element of `got` that is out of tolerance from the oracle `expected`, described.
///
/// Tolerance of y_j = exp(t_j - m) / sum_k exp(t_k - m), relative to y_j, with
/// t_j = x_j * scale + mask_j and m = max_k t_k:
///  - the kernel adds the mask in float32 (the oracle in Double) and rounds t_j - m: the
///    argument of exp is off by at most u*(|t_j| + |m| + |t_j - m|) (the first two only
///    where a nonzero mask term was added), which scales y_j by exp(that) ~ 1 + that;
///  - the kernel computes y_j = exp(t_j - m_b) * (exp(m_b - m) / sum), m_b the running max
///    of t_j's block: two exps within 2 ulp (8u relative), the reciprocal and two products
///    (3u), the sum's own exp errors (4u) and the oracle's single rounding (1u): 16u; each
///    rescale of the running sum when a block raises the max adds up to 5u (at most once per
///    block of >= 16 terms, at most 63 times);
///  - the sum of n positive terms in float32 errs by at most (n-1)*u in the worst case, but
///    its roundings are independent and random in sign, so the error grows like sqrt(n)*u
///    (a random walk with standard deviation ~0.2*sqrt(n)*u for a running sum); 4*sqrt(n)*u
///    is ~20 standard deviations, while the worst-case bound (2.4e-4 at n = 4097) would not
///    even notice a dropped term. For n <= 31 this gives about 1e-6 relative.
///  - a term with t_j - m < -87 may be flushed to 0 (header: the largest term is 1, so this
///    changes nothing representable in the sum): an absolute 2^-125 > exp(-87) covers it.
/// Where t_j is -inf the result must be exactly 0; where the oracle says NaN, NaN.
func firstSoftmaxMismatch(
    got: Tensor, expected: Tensor, x: Tensor, scale: Float, mask: Tensor?
) -> String? {
    let n = x.shape.last!
    let rows = x.count / n
    let g = got.scalars, e = expected.scalars, xs = x.scalars
    let ms = mask?.scalars
    let fullMask = mask?.shape == x.shape
    for r in 0..<rows {
        // t_j, and the part of it that float32 rounds when adding the mask (0 without a mask
        // term: then x*scale is the same float32 product in both).
        var t = [Double](repeating: 0, count: n), rounded = [Double](repeating: 0, count: n)
        var m = -Double.infinity, mRounded = 0.0
        for j in 0..<n {
            var v = Double(xs[r * n + j] * scale)
            if let ms, ms[fullMask ? r * n + j : j] != 0 {
                v += Double(ms[fullMask ? r * n + j : j])
                rounded[j] = v.magnitude
            }
            t[j] = v
            if v > m {
                m = v
                mRounded = rounded[j]
            }
        }
        let rescales = min(63, max(0, (n + 15) / 16 - 1))
        let sumTol = 16 + 5 * Double(rescales) + 4 * Double(n).squareRoot()
        for j in 0..<n {
            let idx = r * n + j
            let ok: Bool
            if t[j] == -.infinity && !e[idx].isNaN {
                ok = g[idx] == 0 && e[idx] == 0
            } else {
                let rel = u * (sumTol + rounded[j] + mRounded + (t[j] - m).magnitude)
                let tol = Double(e[idx].magnitude) * rel + 0x1p-125
                ok = matches(g[idx], Double(e[idx]), tolerance: tol.isNaN ? 0 : tol)
            }
            if !ok {
                return "first bad index [row \(r), col \(j)] (n \(n)): got \(g[idx]), expected \(e[idx]) (term t = \(t[j]), row max \(m))"
            }
        }
    }
    return nil
}

@Suite("Row softmax")
struct SoftmaxTests {
    static let lengths = [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1000, 4097]

    enum MaskKind: Int, CaseIterable, CustomStringConvertible {
        case none, full, row
        var description: String { ["no mask", "full-shape mask", "[n] row mask"][rawValue] }
    }

    /// Random rows (uniform in [-8, 8]) of every length around the vector widths (1, 8, 16
    /// lanes and their unrolls) and long ones, with scales 1, 0.37 and 1.7 and each kind of
    /// mask (entries uniform in [-3, 3], 20% -inf). Also: 1 and 2 threads agree bitwise, and
    /// the returning and `into:` forms agree bitwise.
    @Test("random rows against the Double oracle", arguments: KernelTable.all)
    func randomRows(_ table: KernelTable) throws {
        var budget = IssueBudget()
        defer { budget.finish("\(table) random rows") }
        for n in Self.lengths {
            for kind in MaskKind.allCases {
                let scale: Float = [1, 0.37, 1.7][kind.rawValue]
                let rows = n >= 1000 ? 2 : 5
                var rng = SeededRNG(seed: caseSeed(0x50F7, n, kind.rawValue))
                let x = Tensor(shape: [rows, n], scalars: rng.floats(rows * n, in: -8...8))
                var mask: Tensor? = nil
                switch kind {
                case .none: break
                case .full:
                    mask = Tensor(shape: [rows, n], scalars: rng.floats(rows * n, in: -3...3, specials: [-.infinity], probability: 0.2))
                case .row:
                    mask = Tensor(shape: [n], scalars: rng.floats(n, in: -3...3, specials: [-.infinity], probability: 0.2))
                }
                let what = "\(table) n \(n) rows \(rows) scale \(scale) \(kind), \(rng.description)"
                let oracle = x.softmax(scale: scale, mask: mask, compute: try Compute(backend: .swiftSIMD, threads: 1))
                let got = table.softmax(x, scale: scale, mask: mask, threads: 1)
                if let msg = firstSoftmaxMismatch(got: got, expected: oracle, x: x, scale: scale, mask: mask) {
                    budget.record("\(what): \(msg)")
                }
                let two = table.softmax(x, scale: scale, mask: mask, threads: 2, into: true)
                let diff = firstBitwiseDifference(got.scalars, two.scalars)
                #expect(diff == nil, "\(what): 1 thread vs 2 threads (into:) differ bitwise at \(diff ?? -1)")
            }
        }
    }

    /// The contract is softmax(x * scale + mask) for any scale: a negative scale flips the
    /// order of the terms and scale 0 gives the uniform distribution. Lengths that are not a
    /// multiple of the vector width make the kernel pad its last vector, and the padding
    /// must not take part (it must stay at -inf after scaling, never +inf or NaN).
    @Test("negative and zero scales, lengths with a vector tail", arguments: KernelTable.all)
    func negativeAndZeroScales(_ table: KernelTable) throws {
        var budget = IssueBudget()
        defer { budget.finish("\(table) negative and zero scales") }
        for n in [1, 7, 8, 9, 17, 33, 100] {
            for scale: Float in [-2.5, -1, 0] {
                for withMask in [false, true] {
                    var rng = SeededRNG(seed: caseSeed(0x5C0, n, Int(scale.bitPattern), withMask ? 1 : 0))
                    let x = Tensor(shape: [3, n], scalars: rng.floats(3 * n, in: -8...8))
                    let mask = withMask ? Tensor(shape: [n], scalars: rng.floats(n, in: -3...3)) : nil
                    let what = "\(table) n \(n) rows 3 scale \(scale) \(withMask ? "[n] row mask" : "no mask"), \(rng.description)"
                    let oracle = x.softmax(scale: scale, mask: mask, compute: try Compute(backend: .swiftSIMD, threads: 1))
                    let got = table.softmax(x, scale: scale, mask: mask, threads: 1)
                    if let msg = firstSoftmaxMismatch(got: got, expected: oracle, x: x, scale: scale, mask: mask) {
                        budget.record("\(what): \(msg)")
                    }
                }
            }
        }
    }

    /// Rows built to hit each rule of the contract, for lengths 1, 7, 17 and 33 (one lane, a
    /// tail of an 8-lane vector, a 16-lane vector plus one, two 16-lane vectors plus one):
    /// all -inf gives exactly 0; a NaN term (in x or in the mask, at the first, a middle or the
    /// last position) makes its row NaN and only its row; 1e30 and -1e30 do not overflow;
    /// -inf mixed with finite terms gives exact zeros there and the oracle elsewhere.
    @Test("special rows: all -inf, NaN, huge magnitudes, mixed -inf", arguments: KernelTable.all)
    func specialRows(_ table: KernelTable) throws {
        var budget = IssueBudget()
        defer { budget.finish("\(table) special rows") }
        for n in [1, 7, 17, 33] {
            var rng = SeededRNG(seed: caseSeed(0x5BEC, n))
            let ninf = -Float.infinity
            var rowsX = [[Float]](), rowsM = [[Float]]()
            var expectNaN = [Bool](), exact = [[Float]?]()
            func add(_ x: [Float], mask: [Float]? = nil, nan: Bool = false, exactly: [Float]? = nil) {
                rowsX.append(x)
                rowsM.append(mask ?? [Float](repeating: 0, count: n))
                expectNaN.append(nan)
                exact.append(exactly)
            }
            let zeros = [Float](repeating: 0, count: n)
            add([Float](repeating: ninf, count: n), exactly: zeros)  // all -inf
            add(rng.floats(n, in: -4...4))  // a plain row between the special ones
            for p in Set([0, n / 2, n - 1]).sorted() {  // NaN in x
                var x = rng.floats(n, in: -4...4)
                x[p] = .nan
                add(x, nan: true)
            }
            add(rng.floats(n, in: -4...4), mask: [Float](repeating: ninf, count: n), exactly: zeros)  // all masked
            var nanMask = zeros
            nanMask[n - 1] = .nan
            add(rng.floats(n, in: -4...4), mask: nanMask, nan: true)  // NaN in the mask
            var withInf = [Float](repeating: ninf, count: n)
            withInf[n / 2] = .nan
            add(withInf, nan: true)  // NaN among -inf
            // Huge: two terms at 1e30, the rest -1e30 or 0 -> exactly [.5, .5, 0...].
            if n >= 2 {
                var x = [Float](repeating: -1e30, count: n)
                x[0] = 1e30
                x[n - 1] = 1e30
                if n >= 3 { x[1] = 0 }
                var y = zeros
                y[0] = 0.5
                y[n - 1] = 0.5
                add(x, exactly: y)
                var big = [Float](repeating: -3e38, count: n)
                big[n / 2] = 3e38  // t - max = -6e38 rounds to -inf in float32
                var one = zeros
                one[n / 2] = 1
                add(big, exactly: one)
            }
            add([Float](repeating: -1e30, count: n))  // all equal and huge: 1/n each
            var mixed = rng.floats(n, in: -4...4)
            for j in stride(from: 0, to: n, by: 2) { mixed[j] = ninf }
            add(mixed)
            var single = [Float](repeating: ninf, count: n)
            single[n - 1] = 2.5
            var unit = zeros
            unit[n - 1] = 1
            add(single, exactly: unit)

            let rows = rowsX.count
            let x = Tensor(shape: [rows, n], scalars: rowsX.flatMap { $0 })
            let mask = Tensor(shape: [rows, n], scalars: rowsM.flatMap { $0 })
            let what = "\(table) special rows, n \(n), \(rng.description)"
            let oracle = x.softmax(mask: mask, compute: try Compute(backend: .swiftSIMD, threads: 1))
            for threads in [1, 2] {
                let got = table.softmax(x, scale: 1, mask: mask, threads: threads, into: threads == 2)
                if let msg = firstSoftmaxMismatch(got: got, expected: oracle, x: x, scale: 1, mask: mask) {
                    budget.record("\(what), threads \(threads): \(msg)")
                }
                let g = got.scalars
                for r in 0..<rows {
                    let row = Array(g[r * n..<(r + 1) * n])
                    if expectNaN[r] {
                        #expect(row.allSatisfy { $0.isNaN }, "\(what): row \(r) has a NaN term, so every output must be NaN: \(row)")
                        continue
                    }
                    #expect(row.allSatisfy { $0.isFinite }, "\(what): row \(r) must be finite: \(row)")
                    if let y = exact[r] {
                        // Exact zeros; 1 and 0.5 within the 2-ulp exp and the rounding of the sum.
                        for j in 0..<n {
                            let ok = y[j] == 0 ? row[j] == 0 : abs(Double(row[j]) - Double(y[j])) <= 8 * u * Double(y[j])
                            #expect(ok, "\(what): row \(r) col \(j): got \(row[j]), expected \(y[j])")
                        }
                    }
                }
            }
        }
    }

    /// Higher-rank tensors are rows of their last axis, with a `[n]` mask shared by every row.
    @Test("rank-3 input with a shared row mask", arguments: KernelTable.all)
    func rank3(_ table: KernelTable) throws {
        var rng = SeededRNG(seed: caseSeed(0x5033))
        let x = Tensor(shape: [2, 3, 19], scalars: rng.floats(2 * 3 * 19, in: -6...6))
        let mask = Tensor(shape: [19], scalars: rng.floats(19, in: -2...2, specials: [-.infinity], probability: 0.3))
        let oracle = x.softmax(scale: 0.5, mask: mask, compute: try Compute(backend: .swiftSIMD, threads: 1))
        let got = table.softmax(x, scale: 0.5, mask: mask, threads: 2)
        #expect(got.shape == [2, 3, 19])
        if let msg = firstSoftmaxMismatch(got: got, expected: oracle, x: x, scale: 0.5, mask: mask) {
            Issue.record("\(table) rank 3, \(rng.description): \(msg)")
        }
        // Each row sums to 1.
        let g = got.scalars
        for r in 0..<6 {
            let s = g[r * 19..<(r + 1) * 19].reduce(0.0) { $0 + Double($1) }
            #expect(abs(s - 1) <= 64 * u, "\(table) rank 3: row \(r) sums to \(s)")
        }
    }
}
