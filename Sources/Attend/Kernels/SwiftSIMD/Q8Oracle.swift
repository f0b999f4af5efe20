// The oracle of the int8-weight kernels (`ck_q8_quantize_rows`, `ck_q8_gemv`, `ck_q8_gemm`):
// the exact products over the dequantized weight, in Double.

extension KernelOracle {
    /// IEEE binary16 bits as a Float, exactly (subnormals, infinities and NaN included).
    package static func float16(bits h: UInt16) -> Float {
        let sign: Float = h & 0x8000 != 0 ? -1 : 1
        let exp = Int((h >> 10) & 0x1F), man = Int(h & 0x3FF)
        if exp == 0x1F { return man == 0 ? sign * .infinity : .nan }
        if exp == 0 { return sign * Float(man) * 0x1p-24 }
        return sign * Float(sign: .plus, exponent: exp - 15, significand: 1 + Float(man) * 0x1p-10)
    }

    /// The dequantized weight element `w(j, p) = scale(j, p) * q[j*ldq + p]` of the
    /// `ck_q8_weight` contract (`group` 0: one scale per row; 32: `scales[j*lds + p/32]`;
    /// `scalesF16`: binary16 bit patterns). Exact in Double. Cost: O(1).
    package static func q8Weight(
        q: UnsafePointer<Int8>, ldq: Int, scales: UnsafeRawPointer, lds: Int, group: Int, scalesF16: Bool, j: Int, p: Int
    ) -> Double {
        let idx = group == 0 ? j : j * lds + p / group
        let s = scalesF16 ? float16(bits: scales.load(fromByteOffset: 2 * idx, as: UInt16.self)) : scales.load(fromByteOffset: 4 * idx, as: Float.self)
        return Double(s) * Double(q[j * ldq + p])
    }

    /// `ck_q8_quantize_rows` for one group of a row (`k` values from `x`): the scale and offset
    /// as the kernel computes them: offset = min x, scale = (max x - min x) / 255 rounded up
    /// to a Float (at least 2^-149), both NaN for a group holding Inf or NaN, scale 0 for a
    /// constant group. Cost: O(k).
    package static func q8RowQuantization(_ x: UnsafePointer<Float>, k: Int) -> (scale: Float, offset: Float) {
        var lo = x[0], hi = x[0]
        for p in 0..<k {
            if !x[p].isFinite { return (.nan, .nan) }
            lo = min(lo, x[p])
            hi = max(hi, x[p])
        }
        if hi == lo { return (0, lo) }
        let range = Double(hi) - Double(lo)
        var s = Float(range / 255)
        if Double(s) * 255 < range { s = s.nextUp }
        return (s == 0 ? .leastNonzeroMagnitude : s, lo)
    }
}
