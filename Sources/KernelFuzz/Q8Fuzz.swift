// The int8-weight kernels against the Double oracle over the dequantized weight:
// ck_q8_gemv (float activations) and ck_q8_quantize_rows + ck_q8_gemm (dynamic quantization),
// the latter on the table's kernel and on the variant's baseline (no VNNI / dot product).
import Attend
import CKernels

/// A random int8 weight in the `ck_q8_weight` layout: n x k bytes (row stride ldq) in
/// [-127, 127] (often at the extremes), per-channel or per-32 scales, float32 or binary16.
final class Q8FuzzWeight {
    let n: Int, k: Int, ldq: Int, group: Int, lds: Int, f16: Bool
    let q: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutableRawPointer
    let scaleCount: Int

    init(_ rng: inout FuzzRNG, n: Int, k: Int) {
        self.n = n
        self.k = k
        ldq = k + (rng.chance(0.5) ? 0 : rng.int(1...40))
        group = rng.chance(0.5) ? 0 : 32
        let groups = group == 0 ? 1 : (k + 31) / 32
        lds = group == 0 ? 1 : groups + (rng.chance(0.5) ? 0 : rng.int(1...3))
        f16 = rng.chance(0.5)
        q = .allocate(capacity: max(1, n * ldq))
        let mode = rng.below(4)
        for i in 0..<max(1, n * ldq) {
            switch mode {
            case 0: q[i] = rng.pick([-127, 127, -126, 126, 0])
            case 1: q[i] = Int8(rng.int(-3...3))
            default: q[i] = Int8(rng.int(-127...127))
            }
        }
        scaleCount = group == 0 ? max(1, n) : max(1, n * lds)
        scales = .allocate(byteCount: scaleCount * 4, alignment: 16)
        for i in 0..<scaleCount {
            if f16 {
                // normal binary16 (exponent field 1...30) mostly, some subnormal, some zero
                let r = rng.unit()
                let e: UInt16 = r < 0.05 ? 0 : UInt16(rng.int(1...30))
                let bits: UInt16 = (r < 0.02 ? 0 : (e << 10) | UInt16(rng.below(1024))) | (rng.chance(0.1) ? 0x8000 : 0)
                scales.storeBytes(of: bits, toByteOffset: 2 * i, as: UInt16.self)
            } else {
                let s: Float = rng.chance(0.03) ? 0 : (rng.chance(0.1) ? -1 : 1) * rng.float(0.1, 1) * Float(sign: .plus, exponent: rng.int(-14...4), significand: 1)
                scales.storeBytes(of: s, toByteOffset: 4 * i, as: Float.self)
            }
        }
    }

    deinit {
        q.deallocate()
        scales.deallocate()
    }

    var c: ck_q8_weight {
        ck_q8_weight(n: n, k: k, q: UnsafePointer(q), ldq: ldq, scales: UnsafeRawPointer(scales), lds: lds, group: Int32(group), scales_f16: f16 ? 1 : 0)
    }

    func w(_ j: Int, _ p: Int) -> Double {
        KernelOracle.q8Weight(q: q, ldq: ldq, scales: scales, lds: lds, group: group, scalesF16: f16, j: j, p: p)
    }

    var groups: Int { group == 0 ? 1 : (k + 31) / 32 }

    var description: String {
        "n=\(n) k=\(k) ldq=\(ldq) \(group == 0 ? "per-channel" : "group 32, lds=\(lds)") scales \(f16 ? "f16" : "f32")"
    }
}

/// Biased sizes of an int8 case: k around the 32-byte group and 64-byte step edges.
private func q8K(_ rng: inout FuzzRNG, maxLarge: Int) -> Int {
    boundarySize(&rng, edges: [1, 16, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129, 192], zero: false, small: 40, maxLarge: maxLarge)
}

// MARK: - ck_q8_gemv

/// `q8_gemv`: m = 1-3 rows of float activations (two at a time plus an odd one), n around
/// the tile edges, k around 32 and 64, both scale layouts and types, padded strides, bias or
/// none, value mixes with specials. Bound (attend_kernels.h): (k + 2) u B + u |y|, doubled
/// for the Double oracle's own rounding, plus the subnormal floor.
struct Q8GEMVFuzz: FuzzKernel {
    let name = "q8-gemv"

    final class Case: CustomStringConvertible {
        var m = 1, mix = ValueMix.uniform
        var w: Q8FuzzWeight!
        var x: GuardedMatrix!, y: GuardedMatrix!, bias: GuardedMatrix?
        var description: String {
            "m=\(m) \(w.description) ldx=\(x.ld) ldy=\(y.ld) bias=\(bias != nil) values \(mix)"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.m = rng.int(1...3)
        let n = boundarySize(&rng, edges: [1, 2, 3, 4, 5, 8], zero: true, small: 12, maxLarge: 40)
        let k = q8K(&rng, maxLarge: 900)
        c.w = Q8FuzzWeight(&rng, n: n, k: k)
        c.mix = rng.pick([.uniform, .uniform, .integers, .finiteSpecials, .nonFinite, .subnormal])
        c.x = makeOperand(&rng, rows: c.m, cols: k, mix: c.mix)
        c.y = GuardedMatrix(rows: c.m, cols: n, ld: max(n, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        c.y.fill { _, _ in .nan }  // never read
        if rng.chance(0.5) {
            c.bias = guardedVector((0..<n).map { _ in rng.float(-2, 2) }, misalign: rng.below(16), sentinel: inputSentinel)
        }
        return c
    }

    struct Run { let out: GuardedMatrix, xSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let xSnap = c.x.snapshot()
        let out = c.y.copy()
        var w = c.w.c
        table.kernels.pointee.q8_gemv(c.m, c.x.base, c.x.ld, &w, c.bias.map { UnsafePointer($0.base) }, out.base, out.ld)
        return Run(out: out, xSnap: xSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("y") { return bad }
        if !c.x.unchanged(since: r.xSnap) { return "the kernel wrote into x" }
        let k = c.w.k
        for i in 0..<c.m {
            for j in 0..<c.w.n {
                var exact = 0.0, bound = 0.0
                for p in 0..<k {
                    let xv = Double(c.x[i, p]), wv = c.w.w(j, p)
                    exact += xv * wv
                    bound += abs(xv) * abs(wv)
                }
                let b = c.bias.map { Double($0.base[j]) } ?? 0
                let e = exact + b
                let tol = 2 * (Double(k + 2) * u * bound + u * abs(e) + u * abs(b)) + Double(k + 2) * 0x1p-148
                let g = r.out[i, j]
                if !matches(g, e, tolerance: tol.isNaN ? 0 : tol) {
                    return "y[\(i), \(j)]: \(mismatchText(g, e, tol)); B = \(bound)"
                }
            }
        }
        return nil
    }
}

// MARK: - ck_q8_quantize_rows + ck_q8_gemm

/// Dynamic quantization then the int8 GEMM, on the table's `q8_gemm` and on
/// `ck_q8_gemm_baseline` for the variant: m around the 2- and 4-row tiles, n around the 4-row
/// tiles, k around 32 and 64; rows scaled by 2^-30 ... 2^30, all-zero rows, rows with one
/// spike and rows with Inf or NaN (NaN outputs). Checks the quantized rows (per group of 32:
/// scale, range, |x - sa q| <= 0.50001 sa, zero padding) and every output against the exact
/// product over the float activations within (G + 3) u B^ + u |c| (doubled) plus
/// sum_p 0.50001 sa(p) |w_p|.
struct Q8GEMMFuzz: FuzzKernel {
    let name = "q8-gemm"

    final class Case: CustomStringConvertible {
        var m = 1, rowModes: [String] = []
        var w: Q8FuzzWeight!
        var x: GuardedMatrix!, c: GuardedMatrix!, bias: GuardedMatrix?
        var ldaq = 0
        var description: String {
            "m=\(m) \(w.description) ldx=\(x.ld) ldc=\(c.ld) ldaq=\(ldaq) bias=\(bias != nil) rows \(rowModes.joined(separator: ","))"
        }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case()
        c.m = rng.chance(0.85) ? rng.int(1...9) : rng.int(10...24)
        let n = boundarySize(&rng, edges: [1, 2, 3, 4, 5, 7, 8, 9], zero: true, small: 12, maxLarge: 40)
        let k = q8K(&rng, maxLarge: 1100)
        c.w = Q8FuzzWeight(&rng, n: n, k: k)
        c.x = GuardedMatrix(rows: c.m, cols: k, ld: k + rowPadding(&rng), misalign: rng.below(16), sentinel: inputSentinel)
        for i in 0..<c.m {
            let r = rng.unit()
            let scale = Float(sign: .plus, exponent: rng.int(-30...30), significand: 1)
            let mode: String
            if r < 0.05 {
                mode = "zero"
                for p in 0..<k { c.x[i, p] = 0 }
            } else if r < 0.10 {
                mode = "non-finite"
                for p in 0..<k { c.x[i, p] = rng.float(-1, 1) }
                c.x[i, rng.below(k)] = rng.pick([.infinity, -.infinity, .nan])
            } else if r < 0.25 {
                mode = "integers"
                for p in 0..<k { c.x[i, p] = Float(rng.int(-127...127)) }
            } else if r < 0.35 {
                mode = "one-spike"
                for p in 0..<k { c.x[i, p] = rng.float(-1, 1) * 1e-3 * scale }
                c.x[i, rng.below(k)] = scale
            } else {
                mode = "uniform"
                for p in 0..<k { c.x[i, p] = rng.float(-1, 1) * scale }
            }
            c.rowModes.append(mode)
        }
        c.ldaq = ck_q8_row_stride(k) + (rng.chance(0.3) ? 64 : 0)
        c.c = GuardedMatrix(rows: c.m, cols: n, ld: max(n, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        c.c.fill { _, _ in .nan }
        if rng.chance(0.5) {
            c.bias = guardedVector((0..<n).map { _ in rng.float(-2, 2) }, misalign: rng.below(16), sentinel: inputSentinel)
        }
        return c
    }

    struct Run {
        let outs: [(String, GuardedMatrix)]
        let aq: [Int8], sa: [Float], ldsa: Int, xSnap: [UInt32]
    }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let xSnap = c.x.snapshot()
        var aq = [Int8](repeating: 99, count: max(1, c.m * c.ldaq))
        let ldsa = (c.w.k + 31) / 32 + (c.ldaq % 128 == 0 ? 1 : 0)
        var sa = [Float](repeating: -1, count: c.m * ldsa)
        aq.withUnsafeMutableBufferPointer { ap in
            sa.withUnsafeMutableBufferPointer { sp in
                ck_q8_quantize_rows(c.m, c.w.k, c.x.base, c.x.ld, ap.baseAddress!, c.ldaq, sp.baseAddress!, ldsa)
            }
        }
        var outs: [(String, GuardedMatrix)] = []
        var kernels: [(String, ck_q8_gemm_fn)] = [("table", table.kernels.pointee.q8_gemm)]
        if let base = ck_q8_gemm_baseline(table.kernels.pointee.variant) { kernels.append(("baseline", base)) }
        var w = c.w.c
        for (label, fn) in kernels {
            let out = c.c.copy()
            aq.withUnsafeBufferPointer { ap in
                sa.withUnsafeBufferPointer { sp in
                    fn(c.m, ap.baseAddress!, c.ldaq, sp.baseAddress!, ldsa, &w, c.bias.map { UnsafePointer($0.base) }, out.base, out.ld)
                }
            }
            outs.append((label, out))
        }
        return Run(outs: outs, aq: aq, sa: sa, ldsa: ldsa, xSnap: xSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if !c.x.unchanged(since: r.xSnap) { return "ck_q8_quantize_rows wrote into x" }
        let k = c.w.k
        // The quantized rows: per row and group of 32, the scale, the range and the error.
        let groups = (k + 31) / 32
        var rowNaN = [Bool](repeating: false, count: c.m)
        for i in 0..<c.m {
            let row = c.x.base + i * c.x.ld
            for g in 0..<groups {
                let p0 = g * 32, p1 = min(k, p0 + 32)
                let s = KernelOracle.q8RowScale(row + p0, k: p1 - p0)
                let got = r.sa[i * r.ldsa + g]
                if !(s.bitPattern == got.bitPattern || (s.isNaN && got.isNaN)) {
                    return "row \(i) group \(g): scale \(got), expected max|x|/127 = \(s)"
                }
                if s.isNaN { rowNaN[i] = true }
                for p in p0..<p1 {
                    let q = r.aq[i * c.ldaq + p]
                    if !s.isFinite || s == 0 {
                        if q != 0 { return "row \(i): quantized [\(p)] = \(q), expected 0 (a zero or non-finite group)" }
                        continue
                    }
                    let err = abs(Double(row[p]) - Double(s) * Double(q))
                    if q == -128 || err > 0.50001 * Double(s) {
                        return "row \(i): quantized [\(p)] = \(q) for x = \(row[p]), scale \(s): error \(err) > 0.50001 * scale"
                    }
                }
            }
            for p in k..<c.ldaq where r.aq[i * c.ldaq + p] != 0 {
                return "row \(i): padding [\(p)] = \(r.aq[i * c.ldaq + p]), expected 0"
            }
        }
        for (label, out) in r.outs {
            if let bad = out.damagedPadding("C (\(label))") { return bad }
            for i in 0..<c.m {
                for j in 0..<c.w.n {
                    let g = out[i, j]
                    if rowNaN[i] {
                        if !g.isNaN { return "\(label) C[\(i), \(j)] = \(g): a row with Inf or NaN must give NaN" }
                        continue
                    }
                    var exact = 0.0, bhat = 0.0, quant = 0.0
                    for p in 0..<k {
                        let wv = c.w.w(j, p), s = Double(r.sa[i * r.ldsa + p / 32])
                        exact += Double(c.x[i, p]) * wv
                        bhat += abs(s * Double(r.aq[i * c.ldaq + p])) * abs(wv)
                        quant += 0.50001 * s * abs(wv)
                    }
                    let b = c.bias.map { Double($0.base[j]) } ?? 0
                    let e = exact + b
                    let rounding = Double(groups + 3) * u * bhat + u * abs(e) + u * abs(b)
                    let tol = 2 * rounding + quant * (1 + 1e-9) + Double(groups + 3) * 0x1p-148
                    if !matches(g, e, tolerance: tol) {
                        return "\(label) C[\(i), \(j)]: \(mismatchText(g, e, tol)); B^ \(bhat), quantization bound \(quant)"
                    }
                }
            }
        }
        return nil
    }
}
