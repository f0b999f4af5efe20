// The int8-weight kernels against the Double oracle over the dequantized weight: the
// weight's group sums (ck_q8_group_sums), the dynamic quantization of the activations
// (ck_q8_quantize_rows) and the products on them, ck_q8_gemv (1-3 rows, values with
// specials) and ck_q8_gemm (the table's kernel and the variant's baseline without VNNI / dot
// product), each on the row-major and on the blocked layout, within the bound of
// attend_kernels.h.
import Attend
import CKernels

/// A random int8 weight in the `ck_q8_weight` layout: n x k bytes (row stride ldq) in
/// [-127, 127] (often at the extremes), per-channel or per-32 scales, float32 or binary16.
final class Q8FuzzWeight {
    let n: Int, k: Int, ldq: Int, group: Int, lds: Int, f16: Bool
    let q: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutableRawPointer
    let scaleCount: Int
    /// The group sums (ck_q8_group_sums), row stride ldg.
    let gsum: UnsafeMutablePointer<Float>
    let ldg: Int

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
        ldg = (k + 31) / 32 + (rng.chance(0.5) ? 0 : rng.int(1...2))
        gsum = .allocate(capacity: max(1, n * ldg))
        gsum.initialize(repeating: .nan, count: max(1, n * ldg))
        var w = c
        ck_q8_group_sums(&w, gsum, ldg)
    }

    deinit {
        q.deallocate()
        scales.deallocate()
        gsum.deallocate()
    }

    var c: ck_q8_weight {
        ck_q8_weight(
            n: n, k: k, q: UnsafePointer(q), ldq: ldq, scales: UnsafeRawPointer(scales), lds: lds, group: Int32(group), scales_f16: f16 ? 1 : 0,
            gsum: UnsafePointer(gsum), ldg: ldg, blocked: 0)
    }

    /// Calls `body` with this weight in the blocked layout of attend_kernels.h
    /// (`ck_q8_to_blocked`; row stride `ck_q8_blocked_stride(k)` plus `pad`, gsum not given).
    func withBlocked<R>(pad: Int, _ body: (inout ck_q8_weight) -> R) -> R {
        let ldb = ck_q8_blocked_stride(k) + pad
        var bytes = [Int8](repeating: 77, count: max(1, n * ldb))
        return bytes.withUnsafeMutableBufferPointer { bp in
            if n > 0 { ck_q8_to_blocked(n, k, q, ldq, bp.baseAddress!, ldb) }
            var w = c
            w.q = UnsafePointer(bp.baseAddress!)
            w.ldq = ldb
            w.gsum = nil
            w.blocked = 1
            return body(&w)
        }
    }

    /// ck_q8_group_sums against its contract, bit for bit: F(j, g) = fl(scale * sum q).
    func checkSums() -> String? {
        for j in 0..<n {
            for g in 0..<(k + 31) / 32 {
                var t = 0
                for p in (32 * g)..<min(k, 32 * g + 32) { t += Int(q[j * ldq + p]) }
                let idx = group == 0 ? j : j * lds + g
                let s = f16 ? KernelOracle.float16(bits: scales.load(fromByteOffset: 2 * idx, as: UInt16.self)) : scales.load(fromByteOffset: 4 * idx, as: Float.self)
                let e = Float(Double(s) * Double(t))
                let got = gsum[j * ldg + g]
                if got.bitPattern != e.bitPattern && !(got == 0 && e == 0) {
                    return "ck_q8_group_sums: F[\(j), \(g)] = \(got), expected \(e) (scale \(s), sum \(t))"
                }
            }
        }
        return nil
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

/// Rows quantized by `ck_q8_quantize_rows` (uint8 values, per-group scales and offsets).
struct Q8FuzzRows {
    var q: [UInt8], scale: [Float], offset: [Float]
    let ldq: Int, lds: Int

    init(_ x: GuardedMatrix, m: Int, k: Int, ldq: Int, lds: Int) {
        self.ldq = ldq
        self.lds = lds
        q = [UInt8](repeating: 99, count: max(1, m * ldq))
        scale = [Float](repeating: -1, count: max(1, m * lds))
        offset = [Float](repeating: -1, count: max(1, m * lds))
        q.withUnsafeMutableBufferPointer { qp in
            scale.withUnsafeMutableBufferPointer { sp in
                offset.withUnsafeMutableBufferPointer { op in
                    ck_q8_quantize_rows(m, k, x.base, x.ld, qp.baseAddress!, ldq, sp.baseAddress!, op.baseAddress!, lds)
                }
            }
        }
    }

    /// Calls `body` with the rows as the kernels see them.
    func withRows<R>(_ body: (UnsafePointer<ck_q8_rows>) -> R) -> R {
        q.withUnsafeBufferPointer { qp in
            scale.withUnsafeBufferPointer { sp in
                offset.withUnsafeBufferPointer { op in
                    var r = ck_q8_rows(q: qp.baseAddress!, ldq: ldq, scale: sp.baseAddress!, offset: op.baseAddress!, lds: lds)
                    return body(&r)
                }
            }
        }
    }

    /// Calls `body` with the rows in the blocked layout (as a blocked weight needs them; row
    /// stride `ck_q8_blocked_stride(k)` plus `pad`).
    func withBlockedRows<R>(k: Int, m: Int, pad: Int, _ body: (UnsafePointer<ck_q8_rows>) -> R) -> R {
        let ldb = ck_q8_blocked_stride(k) + pad
        var bytes = [UInt8](repeating: 201, count: max(1, m * ldb))
        return bytes.withUnsafeMutableBufferPointer { bp in
            q.withUnsafeBufferPointer { qp in
                if m > 0 { ck_q8_to_blocked(m, k, qp.baseAddress!, ldq, bp.baseAddress!, ldb) }
            }
            return scale.withUnsafeBufferPointer { sp in
                offset.withUnsafeBufferPointer { op in
                    var r = ck_q8_rows(q: UnsafePointer(bp.baseAddress!), ldq: ldb, scale: sp.baseAddress!, offset: op.baseAddress!, lds: lds)
                    return body(&r)
                }
            }
        }
    }

    /// The quantization against its contract: per row and group of 32 the scale and offset
    /// bit for bit, q in [0, 255] within 0.50001 scale of x, zero padding.
    func check(_ x: GuardedMatrix, m: Int, k: Int) -> String? {
        for i in 0..<m {
            let row = x.base + i * x.ld
            for g in 0..<(k + 31) / 32 {
                let p0 = g * 32, p1 = min(k, p0 + 32)
                let (s, o) = KernelOracle.q8RowQuantization(row + p0, k: p1 - p0)
                let (gs, go) = (scale[i * lds + g], offset[i * lds + g])
                if !(s.bitPattern == gs.bitPattern || (s.isNaN && gs.isNaN)) || !(o.bitPattern == go.bitPattern || (o.isNaN && go.isNaN)) {
                    return "row \(i) group \(g): scale \(gs) offset \(go), expected \(s) and \(o)"
                }
                for p in p0..<p1 {
                    let v = q[i * ldq + p]
                    if !s.isFinite || s == 0 {
                        if v != 0 { return "row \(i): quantized [\(p)] = \(v), expected 0 (a constant or non-finite group)" }
                        continue
                    }
                    let err = abs(Double(row[p]) - (Double(s) * Double(v) + Double(o)))
                    if err > 0.50001 * Double(s) {
                        return "row \(i): quantized [\(p)] = \(v) for x = \(row[p]), scale \(s), offset \(o): error \(err) > 0.50001 * scale"
                    }
                }
            }
            for p in k..<ldq where q[i * ldq + p] != 0 {
                return "row \(i): padding [\(p)] = \(q[i * ldq + p]), expected 0"
            }
        }
        return nil
    }

    /// A product's outputs against the exact product over the float activations, within
    /// attend_kernels.h's bound (G + 5) u B^ + u |c| (doubled for the oracle's own rounding)
    /// plus sum_p 0.50001 sa(p) |w_p| and the subnormal floor 2^-149 (sum_p (a_p + 256) |q_p| + 4G)
    /// (doubled); NaN for rows with Inf or NaN.
    func checkProduct(_ label: String, w: Q8FuzzWeight, x: GuardedMatrix, m: Int, out: GuardedMatrix, bias: GuardedMatrix?) -> String? {
        let k = w.k, groups = (k + 31) / 32
        for i in 0..<m {
            let nanRow = (0..<groups).contains { scale[i * lds + $0].isNaN }
            for j in 0..<w.n {
                let got = out[i, j]
                if nanRow {
                    if !got.isNaN { return "\(label) C[\(i), \(j)] = \(got): a row with Inf or NaN must give NaN" }
                    continue
                }
                var exact = 0.0, bhat = 0.0, quant = 0.0, ints = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let wv = w.w(j, p), s = Double(scale[i * lds + p / 32])
                    exact += Double(x[i, p]) * wv
                    magnitude += abs(Double(x[i, p]) * wv)
                    bhat += s * (Double(q[i * ldq + p]) + 256) * abs(wv)
                    quant += 0.50001 * s * abs(wv)
                    ints += (Double(q[i * ldq + p]) + 256) * abs(Double(w.q[j * w.ldq + p]))
                }
                for g in 0..<groups { bhat += abs(Double(offset[i * lds + g])) * abs(Double(w.gsum[j * w.ldg + g])) }
                let b = bias.map { Double($0.base[j]) } ?? 0
                let e = exact + b
                let rounding = Double(groups + 5) * u * bhat + u * abs(e) + u * abs(b)
                // The oracle's own sum in Double: a group of equal activations (scale 0) times
                // weights summing to 0 is 0 exactly, the Double sum a few ulps of the terms.
                let oracle = Double(k + 1) * 0x1p-53 * magnitude
                let tol = 2 * rounding + quant * (1 + 1e-9) + (ints + Double(4 * groups + 5)) * 0x1p-148 + oracle
                if !matches(got, e, tolerance: tol) {
                    return "\(label) C[\(i), \(j)]: \(mismatchText(got, e, tol)); B^ \(bhat), quantization bound \(quant)"
                }
            }
        }
        return nil
    }
}

// MARK: - ck_q8_gemv

/// `q8_gemv`: m = 1-3 rows (two at a time plus an odd one), n around the tile edges, k around
/// 32 and 64, both scale layouts and types, padded strides, bias or none, value mixes with
/// specials; the rows quantized by `ck_q8_quantize_rows` first (checked too, with the
/// weight's group sums).
struct Q8GEMVFuzz: FuzzKernel {
    let name = "q8-gemv"

    final class Case: CustomStringConvertible {
        var m = 1, mix = ValueMix.uniform
        var w: Q8FuzzWeight!
        var x: GuardedMatrix!, y: GuardedMatrix!, bias: GuardedMatrix?
        var ldaq = 0
        var description: String {
            "m=\(m) \(w.description) ldx=\(x.ld) ldy=\(y.ld) ldaq=\(ldaq) bias=\(bias != nil) values \(mix)"
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
        c.ldaq = ck_q8_row_stride(k) + (rng.chance(0.3) ? 64 : 0)
        c.y = GuardedMatrix(rows: c.m, cols: n, ld: max(n, 1) + rowPadding(&rng), misalign: rng.below(16), sentinel: outputSentinel)
        c.y.fill { _, _ in .nan }  // never read
        if rng.chance(0.5) {
            c.bias = guardedVector((0..<n).map { _ in rng.float(-2, 2) }, misalign: rng.below(16), sentinel: inputSentinel)
        }
        return c
    }

    /// `out`: on the row-major weight; `blockedOut`: on its blocked copy (rows blocked too).
    struct Run { let out: GuardedMatrix, blockedOut: GuardedMatrix, rows: Q8FuzzRows, xSnap: [UInt32] }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let xSnap = c.x.snapshot()
        let rows = Q8FuzzRows(c.x, m: c.m, k: c.w.k, ldq: c.ldaq, lds: (c.w.k + 31) / 32 + (c.ldaq % 128 == 0 ? 1 : 0))
        let out = c.y.copy(), blockedOut = c.y.copy()
        var w = c.w.c
        let bias = c.bias.map { UnsafePointer($0.base) }
        rows.withRows { a in table.kernels.pointee.q8_gemv(c.m, a, &w, bias, out.base, out.ld) }
        let pad = c.ldaq % 128 == 0 ? 64 : 0
        c.w.withBlocked(pad: pad) { wb in
            rows.withBlockedRows(k: c.w.k, m: c.m, pad: pad) { a in table.kernels.pointee.q8_gemv(c.m, a, &wb, bias, blockedOut.base, blockedOut.ld) }
        }
        return Run(out: out, blockedOut: blockedOut, rows: rows, xSnap: xSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = r.out.damagedPadding("y") { return bad }
        if let bad = r.blockedOut.damagedPadding("y (blocked)") { return bad }
        if !c.x.unchanged(since: r.xSnap) { return "the quantizer wrote into x" }
        if let bad = c.w.checkSums() { return bad }
        if let bad = r.rows.check(c.x, m: c.m, k: c.w.k) { return bad }
        if let bad = r.rows.checkProduct("gemv", w: c.w, x: c.x, m: c.m, out: r.out, bias: c.bias) { return bad }
        return r.rows.checkProduct("gemv (blocked)", w: c.w, x: c.x, m: c.m, out: r.blockedOut, bias: c.bias)
    }
}

// MARK: - ck_q8_quantize_rows + ck_q8_gemm

/// Dynamic quantization then the int8 GEMM, on the table's `q8_gemm` and on
/// `ck_q8_gemm_baseline` for the variant: m around the 2- and 4-row tiles, n around the 4-row
/// tiles, k around 32 and 64; rows scaled by 2^-30 ... 2^30, all-zero rows, rows with one
/// spike, rows far from zero (offset much larger than the spread) and rows with Inf or NaN
/// (NaN outputs). Checks the quantized rows and every output within the bound.
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
            } else if r < 0.45 {
                mode = "far-from-zero"
                let center = rng.float(-1, 1) * scale
                for p in 0..<k { c.x[i, p] = center + rng.float(0, 1) * 1e-4 * scale }
            } else if r < 0.55 {
                mode = "one-sided"
                for p in 0..<k { c.x[i, p] = max(-0.17 * scale, rng.float(-1, 1) * scale) }
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
        let rows: Q8FuzzRows, xSnap: [UInt32]
    }

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let xSnap = c.x.snapshot()
        let rows = Q8FuzzRows(c.x, m: c.m, k: c.w.k, ldq: c.ldaq, lds: (c.w.k + 31) / 32 + (c.ldaq % 128 == 0 ? 1 : 0))
        var outs: [(String, GuardedMatrix)] = []
        var kernels: [(String, ck_q8_gemm_fn)] = [("table", table.kernels.pointee.q8_gemm)]
        if let base = ck_q8_gemm_baseline(table.kernels.pointee.variant) { kernels.append(("baseline", base)) }
        var w = c.w.c
        let bias = c.bias.map { UnsafePointer($0.base) }
        for (label, fn) in kernels {
            let out = c.c.copy()
            rows.withRows { a in fn(c.m, a, &w, bias, out.base, out.ld) }
            outs.append((label, out))
        }
        // The blocked layout on the same kernels.
        let pad = c.ldaq % 128 == 0 ? 64 : 0
        c.w.withBlocked(pad: pad) { wb in
            rows.withBlockedRows(k: c.w.k, m: c.m, pad: pad) { a in
                for (label, fn) in kernels {
                    let out = c.c.copy()
                    fn(c.m, a, &wb, bias, out.base, out.ld)
                    outs.append((label + " (blocked)", out))
                }
            }
        }
        return Run(outs: outs, rows: rows, xSnap: xSnap)
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if !c.x.unchanged(since: r.xSnap) { return "ck_q8_quantize_rows wrote into x" }
        if let bad = c.w.checkSums() { return bad }
        if let bad = r.rows.check(c.x, m: c.m, k: c.w.k) { return bad }
        for (label, out) in r.outs {
            if let bad = out.damagedPadding("C (\(label))") { return bad }
            if let bad = r.rows.checkProduct(label, w: c.w, x: c.x, m: c.m, out: out, bias: c.bias) { return bad }
        }
        return nil
    }
}
