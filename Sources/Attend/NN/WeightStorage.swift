// Weight matrices kept as a checkpoint stores them: float32, 16-bit floats (F16, BF16) that
// stay 16-bit in memory (borrowed from the mapped safetensors file when aligned) and are
// widened to float32 in registers by the products (attend_kernels.h, "16-bit weights"), or
// int8 values with their scales (`attend quantize` folders, QuantizedWeight.swift), never
// held dequantized.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The element type a model keeps its weight matrices in (the `Linear` and `Embedding`
/// weights; biases and normalization parameters stay float32, they are small).
///
/// 16-bit weights take half the memory of float32 and, since decoding one token reads every
/// weight once, about half the time per token. Products widen them to float32 in registers
/// (exactly: every F16 and BF16 value is a float32 value) and compute in float32, so a model
/// over 16-bit weights gives the float32 model's results on the widened weights. Converting
/// float32 weights to 16 bits rounds them (to nearest, ties to even): BF16 keeps float32's
/// range with 8 significant bits, F16 has 11 significant bits but overflows past 65504.
///
/// Model loaders take it as `weightPrecision`; `nil` keeps each tensor as the checkpoint
/// stores it (an F16 or BF16 file stays 16-bit, float32 stays float32). Training always works
/// on float32 copies.
public enum WeightPrecision: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// IEEE binary32: 4 bytes per weight.
    case float32
    /// IEEE binary16 (half precision): 2 bytes per weight.
    case float16
    /// bfloat16 (the top half of a binary32): 2 bytes per weight.
    case bfloat16

    /// Bytes per weight.
    public var byteSize: Int { self == .float32 ? 4 : 2 }

    /// The name (`float32`, `float16`, `bfloat16`).
    public var description: String { rawValue }

    /// The 16-bit element type, nil for float32.
    var halfType: HalfType? {
        switch self {
        case .float32: return nil
        case .float16: return .f16
        case .bfloat16: return .bf16
        }
    }
}

/// A 16-bit float element type (`CK_W16_F16`, `CK_W16_BF16`).
enum HalfType: Sendable, Hashable {
    case f16
    case bf16

    var cValue: Int32 { self == .f16 ? Int32(0) : Int32(1) }  // CK_W16_F16, CK_W16_BF16
    var precision: WeightPrecision { self == .f16 ? .float16 : .bfloat16 }

    /// The exact float32 value of `bits`.
    @inline(__always)
    func float(_ bits: UInt16) -> Float {
        self == .f16 ? SafeTensorsConvert.float(fromHalfBits: bits) : SafeTensorsConvert.float(fromBFloat16Bits: bits)
    }

    /// `x` rounded to this type (to nearest, ties to even; NaN stays NaN).
    @inline(__always)
    func bits(_ x: Float) -> UInt16 { self == .f16 ? HalfType.halfBits(x) : HalfType.bfloat16Bits(x) }

    /// float32 to bfloat16, to nearest with ties to even; a NaN stays a (quiet) NaN.
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: u >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    /// float32 to IEEE binary16, to nearest with ties to even: magnitudes from 65520 up
    /// become infinity, below 2^-14 subnormals (or zero); a NaN stays a quiet NaN.
    static func halfBits(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        let sign = UInt16(truncatingIfNeeded: (u >> 16) & 0x8000)
        let a = u & 0x7FFF_FFFF
        if a > 0x7F80_0000 { return sign | 0x7E00 | UInt16(truncatingIfNeeded: (a >> 13) & 0x3FF) }
        if a >= 0x477F_F000 { return sign | 0x7C00 }  // >= 65520 (and infinity)
        if a >= 0x3880_0000 {  // >= 2^-14: normal; rebias the exponent by 127 - 15
            let r = a - 0x3800_0000
            return sign | UInt16(truncatingIfNeeded: (r &+ 0x0FFF &+ ((r >> 13) & 1)) >> 13)
        }
        // Subnormal: a multiple of 2^-24; scaling by 2^24 is exact, so one rounding.
        let m = (Float(bitPattern: a) * 16_777_216).rounded(.toNearestOrEven)
        return sign | UInt16(m)
    }
}

/// Owned 16-bit storage, 64-byte aligned: on huge pages where the OS gives them (in a
/// `WeightArena` chunk, or from `OwnedMemory` when large).
final class HalfBuffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<UInt16>
    private let bytes: Int
    /// The arena chunk holding `base`, nil when `base` is from `OwnedMemory`.
    private let chunk: WeightArena.Chunk?
    init(count: Int) {
        bytes = max(count, 1) * 2
        let placed = WeightArena.shared.allocate(bytes: bytes)
        chunk = placed?.owner
        base = (placed?.base ?? OwnedMemory.allocate(bytes: bytes)).bindMemory(to: UInt16.self, capacity: max(count, 1))
    }
    deinit { if chunk == nil { OwnedMemory.deallocate(UnsafeMutableRawPointer(base), bytes: bytes) } }
}

/// A row-major `[rows, cols]` matrix of 16-bit floats, read-only: either owned (`HalfBuffer`)
/// or borrowed from a mapped file (its owner keeps the map alive).
struct HalfMatrix: @unchecked Sendable {
    let type: HalfType
    let rows: Int
    let cols: Int
    let base: UnsafePointer<UInt16>
    let owner: AnyObject

    var count: Int { rows * cols }
    var bytes: Int { count * 2 }

    /// A new owned matrix filled by `body` (given the destination).
    static func owned(_ type: HalfType, rows: Int, cols: Int, _ body: (UnsafeMutablePointer<UInt16>) -> Void) -> HalfMatrix {
        let buffer = HalfBuffer(count: rows * cols)
        body(buffer.base)
        return HalfMatrix(type: type, rows: rows, cols: cols, base: UnsafePointer(buffer.base), owner: buffer)
    }

    /// `t` `[rows, cols]` rounded to `type`. Cost: one pass over t.
    init(rounding t: Tensor, to type: HalfType) {
        precondition(t.rank == 2, "HalfMatrix: \(t.shape) is not a matrix")
        let m = HalfMatrix.owned(type, rows: t.shape[0], cols: t.shape[1]) { dst in
            t.withUnsafeBufferPointer { src in
                for i in 0..<src.count { dst[i] = type.bits(src[i]) }
            }
        }
        self = m
    }

    init(type: HalfType, rows: Int, cols: Int, base: UnsafePointer<UInt16>, owner: AnyObject) {
        (self.type, self.rows, self.cols, self.base, self.owner) = (type, rows, cols, base, owner)
    }

    /// Every value widened to float32 (exact), as a `[rows, cols]` tensor. Cost: one pass,
    /// a float32 copy (twice this matrix's bytes).
    func widened() -> Tensor {
        var out = Tensor.uninitialized([rows, cols])
        out.withUnsafeMutableBufferPointer { o in
            widenRows(0..<rows, into: o.baseAddress!)
        }
        return out
    }

    /// Rows `range` widened into `dst` (range.count * cols floats), on the best native kernel
    /// variant (exact on every variant).
    func widenRows(_ range: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        let n = range.count * cols
        if n == 0 { return }
        withExtendedLifetime(owner) {
            KernelVariant.best.kernels.pointee.w16_widen(type.cValue, n, base + range.lowerBound * cols, dst)
        }
    }

    /// The same values converted to `other` (through float32: exact widening, one rounding).
    func converted(to other: HalfType) -> HalfMatrix {
        if other == type { return self }
        return HalfMatrix.owned(other, rows: rows, cols: cols) { dst in
            withExtendedLifetime(owner) {
                for i in 0..<count { dst[i] = other.bits(type.float(base[i])) }
            }
        }
    }

    /// The transpose `[cols, rows]`, owned. Cost: one pass.
    func transposed() -> HalfMatrix {
        let t = HalfMatrix.owned(type, rows: cols, cols: rows) { dst in
            withExtendedLifetime(owner) {
                for i in 0..<rows {
                    for j in 0..<cols { dst[j * rows + i] = base[i * cols + j] }
                }
            }
        }
        releaseMappedPages()
        return t
    }

    /// When borrowed from a mapped file: lets the OS drop this matrix's pages from this
    /// process's resident memory (after it was copied out; it stays readable from the file).
    func releaseMappedPages() {
        guard let map = owner as? MappedFileBytes, let start = map.buffer.baseAddress else { return }
        let offset = UnsafeRawPointer(base) - start
        map.releasePages(offset..<(offset + bytes))
    }
}

/// A weight matrix as held in memory: a float32 tensor, 16-bit values kept as stored, or
/// int8 values with their scales (no float copy: readers that need floats dequantize).
enum WeightStorage: @unchecked Sendable {
    case float32(Tensor)
    case half(HalfMatrix)
    case int8(QuantizedWeight)
    /// Row blocks held in different formats, one layer each (a fused QKV projection whose
    /// value rows stayed 16-bit beside int8 query and key rows, `attend quantize`'s default
    /// rule): a product runs each block's own product on its rows of the output. Made by
    /// `Linear.concatenatingRows`; never nested.
    case parts([Linear])

    /// `[rows, cols]`.
    var shape: [Int] {
        switch self {
        case .float32(let t): return t.shape
        case .half(let h): return [h.rows, h.cols]
        case .int8(let q): return q.shape
        case .parts(let ps): return [ps.reduce(0) { $0 + $1.outFeatures }, ps.first?.inFeatures ?? 0]
        }
    }

    /// The float element type of the weight; float32 for int8 (what its products compute
    /// in and what ``float32`` gives) and for blocks of different formats.
    var precision: WeightPrecision {
        switch self {
        case .float32, .int8, .parts: return .float32
        case .half(let h): return h.type.precision
        }
    }

    /// How the values are held (`WeightFormat`).
    var format: WeightFormat {
        switch self {
        case .float32: return .float32
        case .half(let h): return h.type == .f16 ? .float16 : .bfloat16
        case .int8(let q): return q.scheme == .channel ? .int8Channel : .int8Group32
        case .parts: return .mixed
        }
    }

    /// Whether any of the values are int8 (an int8 weight, or blocks of which one is).
    var holdsInt8: Bool {
        switch self {
        case .int8: return true
        case .parts(let ps): return ps.contains { $0.storage.holdsInt8 }
        case .float32, .half: return false
        }
    }

    /// Bytes of weight values held (for int8: values and scales).
    var byteCount: Int {
        switch self {
        case .float32(let t): return t.count * 4
        case .half(let h): return h.bytes
        case .int8(let q): return q.byteCount
        case .parts(let ps): return ps.reduce(0) { $0 + $1.weightByteCount }
        }
    }

    /// The weight as float32: the tensor itself, or a widened (dequantized) copy made on
    /// every call (one pass; four bytes per weight).
    var float32: Tensor {
        switch self {
        case .float32(let t): return t
        case .half(let h): return h.widened()
        case .int8(let q): return q.dequantized()
        case .parts(let ps): return Tensor.concatenateRows(ps.map(\.weight))
        }
    }

    /// The same weight in `precision` (self when it already is). An int8 weight stays int8:
    /// the precisions are those of float weights; blocks convert one by one.
    func converted(to precision: WeightPrecision) -> WeightStorage {
        if case .int8 = self { return self }
        if case .parts(let ps) = self { return .parts(ps.map { Linear(storage: $0.storage.converted(to: precision), bias: $0.bias) }) }
        switch (self, precision.halfType) {
        case (.half(let h), nil): return .float32(h.widened())
        case (.float32(let t), let type?): return .half(HalfMatrix(rounding: t, to: type))
        case (.half(let h), let type?): return .half(h.converted(to: type))
        default: return self
        }
    }

    /// Rows `ids` (each multiplied by `scale`) as float32, `[ids.count, cols]`. Every id must
    /// be in range (precondition). Cost: one copy (and widening) of the rows.
    func gatherRows(_ ids: [Int], scale: Float = 1) -> Tensor {
        switch self {
        case .float32(let t): return t.gatherRows(ids, scale: scale)
        case .half(let h):
            for id in ids { precondition(id >= 0 && id < h.rows, "gatherRows: row \(id) out of range for [\(h.rows), \(h.cols)]") }
            var out = Tensor.uninitialized([ids.count, h.cols])
            out.withUnsafeMutableBufferPointer { o in
                for (r, id) in ids.enumerated() {
                    let dst = o.baseAddress! + r * h.cols
                    h.widenRows(id..<(id + 1), into: dst)
                    if scale != 1 { for c in 0..<h.cols { dst[c] *= scale } }
                }
            }
            return out
        case .int8(let q):
            for id in ids { precondition(id >= 0 && id < q.n, "gatherRows: row \(id) out of range for [\(q.n), \(q.k)]") }
            var out = Tensor.uninitialized([ids.count, q.k])
            out.withUnsafeMutableBufferPointer { o in
                for (r, id) in ids.enumerated() { q.dequantizeRows(id..<(id + 1), scale: scale, into: o.baseAddress! + r * q.k) }
            }
            return out
        case .parts:
            return float32.gatherRows(ids, scale: scale)
        }
    }

    /// The rows of `parts` one after another (a fused QKV weight from its three parts). All
    /// int8 of one scheme and scale type: int8; all 16-bit of one type: an owned 16-bit
    /// matrix; otherwise float32. Cost: one copy.
    static func concatenateRows(_ parts: [WeightStorage]) -> WeightStorage {
        let int8s = parts.compactMap { p -> QuantizedWeight? in if case .int8(let q) = p { return q } else { return nil } }
        if int8s.count == parts.count, let q = QuantizedWeight.concatenatingRows(int8s) { return .int8(q) }
        let halves = parts.compactMap { p -> HalfMatrix? in if case .half(let h) = p { return h } else { return nil } }
        if let first = halves.first, halves.count == parts.count, halves.allSatisfy({ $0.type == first.type && $0.cols == first.cols }) {
            let rows = halves.reduce(0) { $0 + $1.rows }
            return .half(
                HalfMatrix.owned(first.type, rows: rows, cols: first.cols) { dst in
                    var at = dst
                    for h in halves {
                        withExtendedLifetime(h.owner) { at.update(from: h.base, count: h.count) }
                        h.releaseMappedPages()  // copied: the file's pages need not stay resident too
                        at += h.count
                    }
                })
        }
        return .float32(Tensor.concatenateRows(parts.map(\.float32)))
    }

    /// The transpose (GPT-2's Conv1D weights are stored `[in, out]`). Cost: one copy.
    func transposed() -> WeightStorage {
        switch self {
        case .float32(let t): return .float32(t.transposed2D())
        case .half(let h): return .half(h.transposed())
        case .int8(let q): return .float32(q.dequantized().transposed2D())  // scales run along rows: no int8 transpose
        case .parts: return .float32(float32.transposed2D())
        }
    }
}

/// How a layer holds its weight values in memory (``Linear/weightFormat``).
public enum WeightFormat: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// float32: 4 bytes per weight.
    case float32
    /// IEEE binary16: 2 bytes per weight.
    case float16
    /// bfloat16: 2 bytes per weight.
    case bfloat16
    /// int8 with one scale per output (row): 1 byte per weight plus 4 per row.
    case int8Channel = "int8-channel"
    /// int8 with a binary16 (or float32) scale per 32 inputs of a row: 1 byte per weight
    /// plus 2 (or 4) per 32.
    case int8Group32 = "int8-group32"
    /// Blocks of rows in different formats: a fused query-key-value projection of an
    /// `attend quantize` folder whose value rows stayed 16-bit beside int8 query and key rows.
    case mixed

    /// Whether the values are int8.
    public var isInt8: Bool { self == .int8Channel || self == .int8Group32 }

    /// The name (`float32`, `float16`, `bfloat16`, `int8-channel`, `int8-group32`, `mixed`).
    public var description: String { rawValue }
}
