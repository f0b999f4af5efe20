// int8 weights: a Linear weight held as symmetric int8 values with per-output-channel or
// per-32-input scales (the `ck_q8_weight` layout of attend_kernels.h), as `attend quantize`
// writes it and the model loaders read it: `<name>` (I8, [out, in]) beside `<name>_scale`
// (F32 or F16; [out] per channel, [out, ceil(in / 32)] per group of 32).
internal import CKernels
import Foundation

/// How a weight is quantized to int8 (the `--scheme` of `attend quantize`).
package enum Int8Scheme: String, Sendable, CaseIterable {
    /// One scale per output channel (row of the weight): `w = s[j] * q`.
    case channel = "int8-channel"
    /// One scale per 32 consecutive inputs of a row: `w = s[j, p / 32] * q`.
    case group32 = "int8-group32"

    /// The kernels' `group` field: 0 or 32.
    var group: Int { self == .channel ? 0 : 32 }

    /// Scales per row for `k` inputs.
    func scalesPerRow(_ k: Int) -> Int { self == .channel ? 1 : (k + 31) / 32 }

    /// The shape of the scale tensor of an `[n, k]` weight.
    func scaleShape(n: Int, k: Int) -> [Int] { self == .channel ? [n] : [n, scalesPerRow(k)] }
}

/// A `[n, k]` weight held as int8 (values in [-127, 127]) with float32 or binary16 scales:
/// `w(j, p) = scale(j, p) * q[j, p]`. Immutable. The values are kept in the layout the
/// process's kernel variant (``Compute/default``'s: `ATTEND_VARIANT`, else the best) reads
/// fastest (`ck_q8_prefers_blocked`): row-major as stored
/// (borrowed from a mapped file, or owned), or copied once at init into the blocked layout of
/// attend_kernels.h (AVX-512 VNNI: 16 groups of 32 inputs per 512-byte block, so the GEMV sums
/// a group's products in one integer lane; the mapped file's pages are then released). Every
/// variant computes on either layout. Memory: `n * k` bytes (`n * 32 * ceil(k / 32)` blocked)
/// plus the scales, plus (row-major only) the group sums, an eighth of the values.
struct QuantizedWeight: @unchecked Sendable {
    let n: Int, k: Int
    let scheme: Int8Scheme
    /// Scales stored as binary16 bit patterns (else float32).
    let scalesF16: Bool
    /// The values as the kernels read them: `n * k` bytes row-major, or (`blocked`) `n` rows
    /// of `blockedStride` bytes in the blocked layout.
    let values: RawBytes
    /// `values` is in the blocked layout.
    let blocked: Bool
    /// `n * scheme.scalesPerRow(k)` scales.
    let scales: RawBytes
    /// Row-major only (else empty): `n * ceil(k / 32)` float32 sums of each row's dequantized
    /// weights over 32 inputs (`ck_q8_group_sums`), computed at init: the kernels apply the
    /// activations' per-group offsets through them (on the blocked layout they form them from
    /// the bytes they read).
    let groupSums: RawBytes

    var shape: [Int] { [n, k] }
    var scalesPerRow: Int { scheme.scalesPerRow(k) }
    /// Bytes per row of `values` in the blocked layout: 32 per group of 32 inputs.
    var blockedStride: Int { ck_q8_blocked_stride(k) }
    /// Bytes held (values, scales and group sums).
    var byteCount: Int { values.count + scales.count + groupSums.count }
    /// Bytes a checkpoint stores (values and scales; the group sums are derived at load).
    var storedByteCount: Int { n * k + scales.count }

    /// Whether new weights take the blocked layout: the variant the process starts with
    /// (``KernelVariant/initial``, as ``Compute/default`` uses) reads it fastest (AVX-512
    /// VNNI). Not the CPU's best when `ATTEND_VARIANT` names another: the AVX2 kernels take
    /// the blocked layout only through the portable loop (on Zen 5, a 1-row product against
    /// a [2048, 512] weight 1.16 ms that way against 0.03 ms on rows). `ATTEND_INT8_LAYOUT=rows`
    /// or `=blocked` in the environment overrides it (for comparisons; both layouts compute on
    /// every variant).
    static let blockedByDefault: Bool = {
        switch ProcessInfo.processInfo.environment["ATTEND_INT8_LAYOUT"] {
        case "rows": return false
        case "blocked": return true
        default: return ck_q8_prefers_blocked(KernelVariant.initial.variant.kernels) != 0
        }
    }()

    /// The values row-major, `n * k` bytes as a checkpoint stores them: `values` itself, or a
    /// copy out of the blocked layout. Cost: none, or one pass.
    func rowMajorValues() -> RawBytes {
        guard blocked else { return values }
        return RawBytes(count: n * k) { out in
            let dst = out.baseAddress!.assumingMemoryBound(to: Int8.self)
            withExtendedLifetime(values) {
                let src = values.base.assumingMemoryBound(to: Int8.self)
                let offsets = (0..<k).map { ck_q8_blocked_offset(k, $0) }
                for j in 0..<n {
                    for p in 0..<k { dst[j * k + p] = src[j * blockedStride + offsets[p]] }
                }
            }
        }
    }

    /// A weight from its parts, checked: sizes match the shape and scheme, no value is -128
    /// (the kernels need |q| <= 127), every scale is finite, and k is at most the kernels'
    /// limit; then its group sums, or its blocked copy (`blocked`, by default
    /// `blockedByDefault`). `q` is row-major. `name` is used in the errors. Cost: two passes
    /// over the values, one over the scales.
    init(
        n: Int, k: Int, scheme: Int8Scheme, scalesF16: Bool, q: RawBytes, scales: RawBytes, name: String,
        blocked: Bool = QuantizedWeight.blockedByDefault
    ) throws {
        guard n >= 0, k >= 0, q.count == n * k else {
            throw CheckpointError.invalidConfig("int8 weight '\(name)': \(q.count) bytes for shape [\(n), \(k)]")
        }
        guard k <= Int(CK_Q8_MAX_K) else {
            throw CheckpointError.invalidConfig("int8 weight '\(name)': \(k) inputs, more than the int8 kernels' \(CK_Q8_MAX_K)")
        }
        let scaleCount = n * scheme.scalesPerRow(k)
        guard scales.count == scaleCount * (scalesF16 ? 2 : 4) else {
            throw CheckpointError.invalidConfig(
                "int8 weight '\(name)': \(scales.count) bytes of scales, \(scheme.rawValue) needs \(scaleCount) \(scalesF16 ? "F16" : "F32") values")
        }
        let values = q.base.assumingMemoryBound(to: Int8.self)
        for i in 0..<q.count where values[i] == -128 {
            throw CheckpointError.invalidConfig("int8 weight '\(name)' holds -128 at element \(i) (the symmetric scheme uses -127...127)")
        }
        for i in 0..<scaleCount {
            let s = scalesF16
                ? KernelOracle.float16(bits: scales.base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                : scales.base.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
            guard s.isFinite else { throw CheckpointError.invalidConfig("int8 weight '\(name)': scale \(i) is \(s)") }
        }
        (self.n, self.k, self.scheme, self.scalesF16, self.scales, self.blocked) = (n, k, scheme, scalesF16, scales, blocked)
        let ldg = (k + 31) / 32
        if blocked {
            let ldb = ck_q8_blocked_stride(k)
            self.values = RawBytes(count: n * ldb) { out in
                if n * ldb > 0 { ck_q8_to_blocked(n, k, q.base, max(k, 1), out.baseAddress!, ldb) }
            }
            q.releaseMappedPages()  // copied: the file's pages need not stay resident too
            groupSums = RawBytes(count: 0) { _ in }
        } else {
            self.values = q
            groupSums = RawBytes(count: 4 * n * ldg) { out in
                var w = ck_q8_weight(
                    n: n, k: k, q: q.base.assumingMemoryBound(to: Int8.self), ldq: max(k, 1), scales: scales.base, lds: scheme.scalesPerRow(k),
                    group: Int32(scheme.group), scales_f16: scalesF16 ? 1 : 0, gsum: nil, ldg: ldg, blocked: 0)
                if n * ldg > 0 { ck_q8_group_sums(&w, out.baseAddress!.assumingMemoryBound(to: Float.self), ldg) }
            }
        }
    }

    /// A weight of already checked parts in the same layout (rows joined by
    /// `concatenatingRows`). Cost: the group sums when row-major.
    private init(n: Int, k: Int, scheme: Int8Scheme, scalesF16: Bool, values: RawBytes, blocked: Bool, scales: RawBytes) {
        (self.n, self.k, self.scheme, self.scalesF16, self.values, self.blocked, self.scales) = (n, k, scheme, scalesF16, values, blocked, scales)
        let ldg = (k + 31) / 32
        groupSums = RawBytes(count: blocked ? 0 : 4 * n * ldg) { out in
            guard !blocked, n * ldg > 0 else { return }
            var w = ck_q8_weight(
                n: n, k: k, q: values.base.assumingMemoryBound(to: Int8.self), ldq: max(k, 1), scales: scales.base, lds: scheme.scalesPerRow(k),
                group: Int32(scheme.group), scales_f16: scalesF16 ? 1 : 0, gsum: nil, ldg: ldg, blocked: 0)
            ck_q8_group_sums(&w, out.baseAddress!.assumingMemoryBound(to: Float.self), ldg)
        }
    }

    /// Quantizes a float32 `[n, k]` weight: per row (channel) or per 32 inputs of a row
    /// (group), the scale `s` is the one of `clipRatios` times `max|w| / 127` (rounded to
    /// binary16 when `scalesF16`, the smallest positive binary16 when that rounds to 0) whose
    /// `q = round(w / s)`, clamped to [-127, 127], has the least squared error
    /// `sum (w - s q)^2` over the block (ties to the larger scale, so a block whose error
    /// absmax (`ratio 1`) does not beat keeps it); an all-zero block has s = 0. Elements
    /// with `|w| <= 127 s` are off by at most half a step, `s / 2` (plus the clamp of a
    /// binary16 scale rounded down, under 2^-11 of a step); larger ones are clipped to
    /// `±127 s`. The block's squared error is never above absmax's. Cost: per block, passes
    /// for its absmax, absmax's error and the levels, and an 8-lane pass per 8 clip ratios not
    /// already ruled out by the absmax element's own clip error (`minimumErrorScale`: usually
    /// none or one, at most 7, each left once all 8 are worse than the best so far), in
    /// Double; rows split over `Compute.default.threads`.
    /// Throws `CheckpointError.invalidConfig` naming `name` for a weight with an infinite or
    /// NaN element (no finite scale represents it) or more inputs than the int8 kernels take.
    /// `blocked`: the layout the values are kept in (see the type).
    static func quantize(
        _ weight: Tensor, scheme: Int8Scheme, scalesF16: Bool, name: String = "(quantized)", blocked: Bool = QuantizedWeight.blockedByDefault
    ) throws -> QuantizedWeight {
        precondition(weight.rank == 2, "QuantizedWeight.quantize: weight \(weight.shape) must be [out, in]")
        let (n, k) = (weight.shape[0], weight.shape[1])
        if let bad = weight.withUnsafeBufferPointer({ w in w.firstIndex { !$0.isFinite } }) {
            throw CheckpointError.invalidConfig(
                "int8 quantization of '\(name)': element \(bad) (row \(bad / max(k, 1)), column \(bad % max(k, 1))) is \(weight.scalars[bad]), which no int8 scale represents")
        }
        guard k <= Int(CK_Q8_MAX_K) else {
            throw CheckpointError.invalidConfig("int8 quantization of '\(name)': \(k) inputs, more than the int8 kernels' \(CK_Q8_MAX_K)")
        }
        let per = scheme.scalesPerRow(k), span = scheme == .channel ? max(k, 1) : 32
        var scaleValues = [Float](repeating: 0, count: n * per)
        let q = RawBytes(count: n * k) { out in
            let qv = out.bindMemory(to: Int8.self)
            weight.withUnsafeBufferPointer { w in
                scaleValues.withUnsafeMutableBufferPointer { sv in
                    // Block b (row b / per, inputs p0 ..< p1): its scale, then its levels.
                    func quantizeBlock(_ b: Int) {
                        let row = b / per * k, p0 = b % per * span, p1 = min(k, p0 + span)
                        let s = minimumErrorScale(UnsafeBufferPointer(rebasing: w[(row + p0)..<(row + p1)]), scalesF16: scalesF16)
                        sv[b] = s
                        for p in (row + p0)..<(row + p1) { qv[p] = Int8(level(w[p], s)) }
                    }
                    // Blocks are independent: runs of whole rows on the default thread count
                    // (the same scales and values whatever the split).
                    let parts = max(1, min(4 * Compute.default.threads, n))
                    parallelFor(parts) { part in
                        for b in (part * n / parts * per)..<((part + 1) * n / parts * per) { quantizeBlock(b) }
                    }
                }
            }
        }
        let scales = RawBytes(count: scaleValues.count * (scalesF16 ? 2 : 4)) { out in
            for (i, s) in scaleValues.enumerated() {
                if scalesF16 { out.storeBytes(of: float16Bits(s).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
                else { out.storeBytes(of: s.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            }
        }
        return try QuantizedWeight(n: n, k: k, scheme: scheme, scalesF16: scalesF16, q: q, scales: scales, name: name, blocked: blocked)
    }

    /// The fractions of a block's `max|w| / 127` that `quantize(_:scheme:scalesF16:)`
    /// tries as its scale: 1.00, 0.99, ..., 0.50 (absmax first).
    static let clipRatios: [Float] = (0...50).map { Float(100 - $0) / 100 }

    /// The scale `amax * ratio / 127` as stored: rounded to binary16 when `scalesF16` (the
    /// smallest positive binary16 when that rounds to 0), the smallest positive float when a
    /// positive `amax` gives 0; 0 for an all-zero block.
    static func scale(amax: Float, ratio: Float, scalesF16: Bool) -> Float {
        var s = amax * ratio / 127
        if scalesF16 {
            s = KernelOracle.float16(bits: float16Bits(s))
            if s == 0 && amax > 0 { s = KernelOracle.float16(bits: 1) }
        } else if s == 0 && amax > 0 {
            s = .leastNonzeroMagnitude
        }
        return s
    }

    /// `w` quantized with scale `s`: `round(w / s)` clamped to [-127, 127] (0 when s is 0 or
    /// the quotient is NaN).
    @inline(__always)
    static func level(_ w: Float, _ s: Float) -> Float {
        // Clamped to [-128, 128] before rounding (the same level as rounding first: anything
        // beyond rounds to at least 128 and is clamped to 127 anyway), then rounded to the
        // nearest integer, ties to even, by adding and subtracting 1.5 * 2^23 (exact below
        // 2^22 in the default rounding mode; no library call per element).
        let t = s == 0 ? 0 : w / s
        if t.isNaN { return 0 }
        let c = max(-128, min(128, t))
        let r = (c + 0x1.8p23) - 0x1.8p23
        return max(-127, min(127, r))
    }

    /// `sum (w - s * level(w, s))^2` over `block`, in Double, summed in element order (the
    /// scalar reference of `squaredErrors(_:scales:bound:)`). Cost: one pass.
    static func squaredError(_ block: UnsafeBufferPointer<Float>, scale s: Float) -> Double {
        var e = 0.0
        for x in block {
            let d = Double(x) - Double(s) * Double(level(x, s))
            e += d * d
        }
        return e
    }

    /// `level(w, s[i])` in each lane i: the same float32 quotient, clamp and rounding, so
    /// lane i is bitwise `level(w, s[i])`. Cost: O(1), 8 divisions.
    @inline(__always)
    static func levels(_ w: Float, _ s: SIMD8<Float>) -> SIMD8<Float> {
        var t = SIMD8<Float>(repeating: w) / s
        t.replace(with: 0, where: s .== 0 .| t .!= t)  // s == 0 or a NaN quotient: level 0
        t.replace(with: -128, where: t .< -128)
        t.replace(with: 128, where: t .> 128)
        var r = (t + 0x1.8p23) - 0x1.8p23  // a zero of either sign gives +0, as in `level`
        r.replace(with: -127, where: r .< -127)
        r.replace(with: 127, where: r .> 127)
        return r
    }

    /// `squaredError(block, scale: s[i])` in each lane i, bit for bit: each lane sums the same
    /// Double terms in element order (no reassociation; the lanes are 8 candidate scales, not
    /// 8 elements). Stops early when every lane's partial sum is above `bound` (checked every
    /// 8 elements): the lanes are then those partial sums, each at most its full sum (the
    /// terms are >= 0), so a lane's result is above `bound` exactly when its full sum is, and
    /// otherwise is the full sum (`bound` infinite or NaN: always the full sums). Cost: one
    /// pass over `block` (or its first part) for 8 scales.
    static func squaredErrors(_ block: UnsafeBufferPointer<Float>, scales s: SIMD8<Float>, bound: Double) -> SIMD8<Double> {
        let sd = SIMD8<Double>(s), limit = SIMD8<Double>(repeating: bound)
        var e = SIMD8<Double>(repeating: 0)
        var p = 0
        while p < block.count {
            for x in block[p..<min(block.count, p + 8)] {
                let d = SIMD8<Double>(repeating: Double(x)) - sd * SIMD8<Double>(levels(x, s))
                e += d * d
            }
            if all(e .> limit) { break }
            p += 8
        }
        return e
    }

    /// The scale of `clipRatios` (as `scale(amax:ratio:scalesF16:)` stores it) with the least
    /// `squaredError` over `block`; the first (largest) of equal ones: the same scale as
    /// `minimumErrorScaleScalar` for every block, with less work. Absmax's error is summed
    /// first. A later candidate whose absmax element's own term (a lower bound of its error:
    /// the sum of terms >= 0 only grows) is already above the best error so far cannot win,
    /// nor can any smaller clipping scale (`127 s <= amax`), so the search ends there. The
    /// others go 8 at a time through `squaredErrors(_:scales:bound:)` (each lane bitwise the
    /// scalar error, or above the bound when all 8 are worse than the best so far) and are
    /// compared in candidate order. Cost: two scalar passes over `block` (absmax, its error),
    /// then at most one 8-lane pass per 8 surviving candidates (up to 7; usually none or one:
    /// the absmax element's clip error soon outweighs the rounding error a smaller step saves).
    static func minimumErrorScale(_ block: UnsafeBufferPointer<Float>, scalesF16: Bool) -> Float {
        var amax: Float = 0
        for x in block { amax = max(amax, abs(x)) }
        var best = scale(amax: amax, ratio: 1, scalesF16: scalesF16)
        guard amax > 0, amax.isFinite else { return best }
        var bestError = squaredError(block, scale: best), last = best
        var batch = SIMD8<Float>(), lanes = 0
        // The batch's errors, compared with the best in candidate order.
        func run() {
            for l in lanes..<8 { batch[l] = batch[0] }  // unused lanes repeat a candidate
            let e = squaredErrors(block, scales: batch, bound: bestError)
            for l in 0..<lanes where e[l] < bestError { (best, bestError) = (batch[l], e[l]) }
            lanes = 0
        }
        for r in clipRatios.dropFirst() {
            let s = scale(amax: amax, ratio: r, scalesF16: scalesF16)
            if s == last { continue }
            last = s
            // The term of the absmax element (computed as squaredError computes it).
            let d = Double(amax) - Double(s) * Double(level(amax, s))
            if d * d > bestError {
                // Clipped (level 127), the term only grows as s shrinks. Every candidate after
                // absmax's is (it is below absmax's, the nearest stored value to amax / 127);
                // an unclipped one would only be skipped.
                if Double(s) * 127 <= Double(amax) { break }
                continue
            }
            batch[lanes] = s
            lanes += 1
            if lanes == 8 { run() }
        }
        if lanes > 0 { run() }
        return best
    }

    /// The scale of `clipRatios` with the least `squaredError` over `block`, the first
    /// (largest) of equal ones, one candidate at a time: the scalar reference that
    /// `minimumErrorScale` must match bit for bit (the tests' oracle). Cost: one pass per
    /// distinct candidate scale (up to 51).
    static func minimumErrorScaleScalar(_ block: UnsafeBufferPointer<Float>, scalesF16: Bool) -> Float {
        var amax: Float = 0
        for x in block { amax = max(amax, abs(x)) }
        var best = scale(amax: amax, ratio: 1, scalesF16: scalesF16)
        guard amax > 0, amax.isFinite else { return best }
        var bestError = squaredError(block, scale: best), last = best
        for r in clipRatios.dropFirst() {
            let s = scale(amax: amax, ratio: r, scalesF16: scalesF16)
            if s == last { continue }
            last = s
            let e = squaredError(block, scale: s)
            if e < bestError { (best, bestError) = (s, e) }
        }
        return best
    }

    /// The scale of row `j`, group `g` (g is 0 per channel).
    func scale(_ j: Int, _ g: Int) -> Float {
        let i = j * scalesPerRow + g
        return scalesF16
            ? KernelOracle.float16(bits: scales.base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            : scales.base.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
    }

    /// The float32 weight `[n, k]`, `scale * q` (exact: a float times an integer of 8 bits).
    /// Cost: one pass; memory: four bytes per element.
    func dequantized() -> Tensor {
        var out = Tensor.uninitialized([n, k])
        out.withUnsafeMutableBufferPointer { o in dequantizeRows(0..<n, into: o.baseAddress!) }
        return out
    }

    /// Rows `rows` dequantized (each value times `scale`) into `dst`, `rows.count * k` floats.
    /// Cost: one pass over those rows.
    func dequantizeRows(_ rows: Range<Int>, scale extra: Float = 1, into dst: UnsafeMutablePointer<Float>) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= n, "dequantizeRows: rows \(rows) out of range for [\(n), \(k)]")
        let span = scheme == .channel ? max(k, 1) : 32
        let offsets = blocked ? (0..<k).map { ck_q8_blocked_offset(k, $0) } : []
        let ld = blocked ? blockedStride : k
        withExtendedLifetime((values, scales)) {
            let all = values.base.assumingMemoryBound(to: Int8.self)
            for j in rows {
                let row = all + j * ld, out = dst + (j - rows.lowerBound) * k
                var p0 = 0
                while p0 < k {
                    let p1 = min(k, p0 + span), s = scale(j, p0 / span) * extra
                    if blocked {
                        for p in p0..<p1 { out[p] = s * Float(row[offsets[p]]) }
                    } else {
                        for p in p0..<p1 { out[p] = s * Float(row[p]) }
                    }
                    p0 = p1
                }
            }
        }
    }

    /// The rows `rows` as the kernels see them (valid while `self` lives).
    func kernelView(rows: Range<Int>) -> ck_q8_weight {
        let per = scalesPerRow, ldg = (k + 31) / 32, ldq = blocked ? blockedStride : max(k, 1)
        let q = values.base.assumingMemoryBound(to: Int8.self) + rows.lowerBound * ldq
        let sc = scales.base + rows.lowerBound * per * (scalesF16 ? 2 : 4)
        let gsum: UnsafePointer<Float>? = blocked ? nil : groupSums.base.assumingMemoryBound(to: Float.self) + rows.lowerBound * ldg
        return ck_q8_weight(
            n: rows.count, k: k, q: q, ldq: ldq, scales: sc, lds: per, group: Int32(scheme.group),
            scales_f16: scalesF16 ? 1 : 0, gsum: gsum, ldg: ldg, blocked: blocked ? 1 : 0)
    }

    /// The rows of several weights one after another (a fused QKV projection): nil unless
    /// every part has the same k, scheme and scale type. Cost: one copy (the parts' pages of a
    /// mapped file are then released from resident memory; they stay readable).
    static func concatenatingRows(_ parts: [QuantizedWeight]) -> QuantizedWeight? {
        guard let first = parts.first,
            parts.allSatisfy({ $0.k == first.k && $0.scheme == first.scheme && $0.scalesF16 == first.scalesF16 && $0.blocked == first.blocked })
        else { return nil }
        func joined(_ chunks: [RawBytes]) -> RawBytes {
            RawBytes(count: chunks.reduce(0) { $0 + $1.count }) { out in
                var at = 0
                for c in chunks where c.count > 0 {
                    (out.baseAddress! + at).copyMemory(from: c.base, byteCount: c.count)
                    at += c.count
                }
            }
        }
        let (values, scales) = (joined(parts.map(\.values)), joined(parts.map(\.scales)))
        for p in parts {  // copied: the file's pages need not stay resident too
            p.values.releaseMappedPages()
            p.scales.releaseMappedPages()
        }
        return QuantizedWeight(
            n: parts.reduce(0) { $0 + $1.n }, k: first.k, scheme: first.scheme, scalesF16: first.scalesF16, values: values,
            blocked: first.blocked, scales: scales)
    }
}

/// Float to IEEE binary16 bits, rounded to nearest even (overflow to infinity, subnormals
/// kept). Cost: O(1).
func float16Bits(_ f: Float) -> UInt16 {
    let sign: UInt16 = f.sign == .minus ? 0x8000 : 0
    let a = abs(f)
    if a.isNaN { return 0x7E00 }
    if a >= 65520 { return sign | 0x7C00 }  // rounds past the largest binary16, 65504
    if a < 0x1p-14 {  // subnormal: a multiple of 2^-24 (1024 * 2^-24 = 2^-14 rounds up to the smallest normal)
        return sign | UInt16((a * 0x1p24).rounded(.toNearestOrEven))
    }
    var e = Int(a.exponent)
    var m = ((a.significand - 1) * 1024).rounded(.toNearestOrEven)
    if m == 1024 {
        m = 0
        e += 1
    }
    return sign | UInt16(e + 15) << 10 | UInt16(m)
}
