// Element types of the safetensors format and their exact conversions to Float32 and Int.
// The conversions are written out bit by bit (no Float16 type, which some platforms lack) and
// are exact: every F16, BF16 and 8-bit float value, including subnormals, signed zeros,
// infinities and NaN payloads, has an exact Float32 counterpart.

/// The element type of a tensor in a safetensors file, spelled as in the header's `dtype`.
///
/// All byte-sized types of the reference implementation are known. Every type except `C64`
/// converts to Float32 (`SafeTensorsFile.tensor(_:)`); the integer types and `BOOL` also read
/// as `Int` (`SafeTensorsFile.integers(_:)`). Sub-byte types (`F4`, `F6_E2M3`, `F6_E3M2`) are
/// rejected as unknown: their byte size is not a whole number.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    /// IEEE 754 binary32.
    case F32
    /// IEEE 754 binary16 (half precision). Converted to Float32 exactly.
    case F16
    /// bfloat16: the top 16 bits of a binary32. Converted to Float32 exactly.
    case BF16
    /// IEEE 754 binary64. Converted to Float32 with rounding to nearest.
    case F64
    /// Signed 64-bit integer (PyTorch `long`, token ids).
    case I64
    /// Signed 32-bit integer.
    case I32
    /// Signed 16-bit integer.
    case I16
    /// Signed 8-bit integer.
    case I8
    /// Unsigned 64-bit integer. Values above `Int.max` make `integers(_:)` throw.
    case U64
    /// Unsigned 32-bit integer.
    case U32
    /// Unsigned 16-bit integer.
    case U16
    /// Unsigned 8-bit integer.
    case U8
    /// One byte per element; 0 is false, any other byte true (read as 1).
    case BOOL
    /// 8-bit float, 1 sign, 5 exponent (bias 15), 2 mantissa bits; IEEE-like inf and NaN.
    case F8_E5M2
    /// 8-bit float "E4M3FN": 4 exponent (bias 7), 3 mantissa bits; no infinities, NaN is S.1111.111.
    case F8_E4M3
    /// 8-bit float "E4M3FNUZ": bias 8, no infinities, no negative zero; 0x80 is NaN.
    case F8_E4M3FNUZ
    /// 8-bit float "E5M2FNUZ": bias 16, no infinities, no negative zero; 0x80 is NaN.
    case F8_E5M2FNUZ
    /// 8-bit power of two "E8M0" (microscaling scale): 2^(e-127); 0xFF is NaN.
    case F8_E8M0
    /// Complex number of two binary32 parts. Parsed and validated, not convertible.
    case C64

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3, .F8_E4M3FNUZ, .F8_E5M2FNUZ, .F8_E8M0: return 1
        case .I16, .U16, .F16, .BF16: return 2
        case .I32, .U32, .F32: return 4
        case .I64, .U64, .F64, .C64: return 8
        }
    }

    /// Whether `SafeTensorsFile.integers(_:)` reads this type (the integer types and `BOOL`).
    public var isInteger: Bool {
        switch self {
        case .I64, .I32, .I16, .I8, .U64, .U32, .U16, .U8, .BOOL: return true
        default: return false
        }
    }

    /// Whether `SafeTensorsFile.tensor(_:)` reads this type (every type but `C64`).
    public var isConvertibleToFloat: Bool { self != .C64 }
}

/// Bit-exact scalar conversions to Float32. Internal; tested exhaustively.
enum SafeTensorsConvert {
    /// IEEE binary16 bits to Float32, exactly (subnormals normalized, NaN payload kept).
    @inline(__always)
    static func float(fromHalfBits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        var mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F {  // infinity (mantissa 0) or NaN (payload shifted into place)
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent != 0 {  // normal: rebias 15 -> 127
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
        if mantissa == 0 { return Float(bitPattern: sign) }  // +-0
        // Subnormal: mantissa * 2^-24. Shift the leading 1 up to the implicit-bit position
        // (bit 10); each shift lowers the exponent by one from that of 2^-14 (biased 113).
        var e: UInt32 = 113
        while mantissa & 0x400 == 0 {
            mantissa <<= 1
            e -= 1
        }
        return Float(bitPattern: sign | (e << 23) | ((mantissa & 0x3FF) << 13))
    }

    /// bfloat16 bits to Float32: the 16 bits are the top half of the binary32 (exact).
    @inline(__always)
    static func float(fromBFloat16Bits b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// How a minifloat format spends its top exponent code and its negative zero.
    enum SpecialValues {
        /// IEEE: the top exponent is infinity (mantissa 0) or NaN.
        case ieee
        /// "FN": no infinities; only the all-ones pattern (either sign) is NaN.
        case finiteAllOnesNaN
        /// "FNUZ": no infinities and no negative zero; the negative-zero pattern is the one NaN.
        case finiteNegativeZeroNaN
    }

    /// A binary minifloat (1 sign bit, `exponentBits`, `mantissaBits`, exponent `bias`) to
    /// Float32, exactly. Every such format with at most 8 exponent bits and 23 mantissa bits
    /// and a subnormal range inside Float32's is representable without rounding; the result is
    /// built with `Float(sign:exponent:significand:)`, whose product is exact here.
    static func float(
        minifloatBits bits: UInt32, exponentBits: Int, mantissaBits: Int, bias: Int, special: SpecialValues
    ) -> Float {
        let mantissaMask = (UInt32(1) << mantissaBits) - 1
        let exponentMask = (UInt32(1) << exponentBits) - 1
        let negative = (bits >> (exponentBits + mantissaBits)) & 1 == 1
        let exponent = (bits >> mantissaBits) & exponentMask
        let mantissa = bits & mantissaMask
        let sign: FloatingPointSign = negative ? .minus : .plus
        switch special {
        case .ieee:
            if exponent == exponentMask {
                if mantissa == 0 { return negative ? -.infinity : .infinity }
                return negative ? -Float.nan : .nan
            }
        case .finiteAllOnesNaN:
            if exponent == exponentMask && mantissa == mantissaMask { return negative ? -Float.nan : .nan }
        case .finiteNegativeZeroNaN:
            if negative && exponent == 0 && mantissa == 0 { return .nan }
        }
        if exponent == 0 {  // zero or subnormal: mantissa * 2^(1 - bias - mantissaBits)
            return Float(sign: sign, exponent: 1 - bias - mantissaBits, significand: Float(mantissa))
        }
        let significand = 1 + Float(mantissa) / Float(UInt32(1) << mantissaBits)
        return Float(sign: sign, exponent: Int(exponent) - bias, significand: significand)
    }

    /// The 256 Float32 values of an 8-bit float type, indexed by the byte.
    static func table(for dtype: SafeTensorsDType) -> [Float] {
        (0..<256).map { byte -> Float in
            let b = UInt32(byte)
            switch dtype {
            case .F8_E5M2:
                // E5M2 is binary16 with the low 8 mantissa bits dropped.
                return float(fromHalfBits: UInt16(byte) << 8)
            case .F8_E4M3:
                return float(minifloatBits: b, exponentBits: 4, mantissaBits: 3, bias: 7, special: .finiteAllOnesNaN)
            case .F8_E4M3FNUZ:
                return float(
                    minifloatBits: b, exponentBits: 4, mantissaBits: 3, bias: 8, special: .finiteNegativeZeroNaN)
            case .F8_E5M2FNUZ:
                return float(
                    minifloatBits: b, exponentBits: 5, mantissaBits: 2, bias: 16, special: .finiteNegativeZeroNaN)
            case .F8_E8M0:
                // 2^(byte - 127); byte 0 is 2^-127, a Float32 subnormal; 0xFF is NaN.
                if byte == 0xFF { return .nan }
                return Float(sign: .plus, exponent: byte - 127, significand: 1)
            default:
                preconditionFailure("SafeTensorsConvert.table: \(dtype) is not an 8-bit float type")
            }
        }
    }
}
