// The safetensors reader: one memory-mapped file, its header validated in full when opened.
//
// Format: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {string: string}}
// (the writer pads it with spaces to a multiple of 8), then the data section; offsets are
// relative to the data section's first byte.
//
// Validation (all up front, in `init`), following the reference `safetensors` crate and a bit
// stricter where it is lenient:
//  1. file >= 8 bytes; N <= 100_000_000; 8 + N <= file size;
//  2. the header is valid UTF-8 and one strict JSON value (no duplicate keys anywhere, nesting
//     <= 128), and that value is an object;
//  3. `__metadata__`, if present, is null or an object of strings;
//  4. per tensor: an object with `dtype` (a known type), `shape` (non-negative integers) and
//     `data_offsets` (two non-negative integers, begin <= end); shape product times dtype size,
//     computed with overflow checks, equals end - begin. Other keys are ignored, as the
//     reference does;
//  5. the ranges sorted by (begin, end) tile [0, total) with no gap and no overlap (zero-size
//     tensors may sit at a boundary, as the reference allows);
//  6. total equals the data section size exactly: a range past the end is `offsetsOutOfRange`
//     (the truncated-file case), bytes left over are `trailingBytes` (the reference rejects
//     both as MetadataIncompleteBuffer).
// After that every byte range is known to lie inside the map, so reads need no further checks.
//
// Zero-copy: the data is mapped, and an F32 tensor whose bytes are 4-byte aligned (on a
// little-endian host) is handed out as a Tensor that borrows the mapped bytes, keeping the
// map alive through its storage's owner; Tensor copies such storage before any write.
// Other dtypes, and unaligned F32, are converted or copied.

import Foundation

/// Where one tensor lives in a safetensors file and how to read it.
public struct SafeTensorsInfo: Sendable, Equatable {
    /// The tensor's name in the header.
    public let name: String
    /// The element type.
    public let dtype: SafeTensorsDType
    /// The shape, row-major; `[]` is a scalar. Validated: non-negative, and the byte size fits in `Int`.
    public let shape: [Int]
    /// The tensor's bytes as absolute offsets in the file (header included). Its length is
    /// `elementCount * dtype.byteSize`.
    public let byteRange: Range<Int>

    /// The number of elements: the product of `shape` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// One safetensors file, memory-mapped, its header fully validated on opening.
///
/// Opening costs O(header size) time and memory plus one `mmap`; tensor data is read only when
/// a tensor is requested, and only that tensor's pages are touched. The object is immutable
/// and safe to share between threads. All errors are `SafeTensorsError` values naming this
/// file's path and, where relevant, the tensor.
///
/// ```swift
/// let file = try SafeTensorsFile(contentsOf: url)
/// let w = try file.tensor("encoder.layer.0.attention.self.query.weight")  // [out, in], Float32
/// ```
public final class SafeTensorsFile: @unchecked Sendable {
    /// The file this was read from.
    public let url: URL
    /// The header's `__metadata__` (e.g. `["format": "pt"]`); empty when absent.
    public let metadata: [String: String]
    /// Every tensor name, sorted.
    public let tensorNames: [String]

    /// The mapped file; every `byteRange` of `infos` lies inside `bytes.buffer`.
    let bytes: MappedFileBytes
    private let infos: [String: SafeTensorsInfo]
    /// The path used in error messages.
    let path: String

    /// Maps the file at `url` and validates its whole header (see the file's top comment for
    /// the checks). Throws `SafeTensorsError` naming the file, and the tensor at fault.
    /// Cost: O(header bytes); the data is not read.
    public convenience init(contentsOf url: URL) throws {
        let path = url.path
        try self.init(url: url, path: path, bytes: MappedFileBytes(mapping: path))
    }

    /// Parses a whole safetensors file held in memory: the same validation and errors as
    /// ``init(contentsOf:)``, with `name` standing for the path in error messages and as
    /// ``url``. `bytes` is copied once (tensors read from the result borrow the copy, not the
    /// caller's array). For files received over a network, embedded resources and fuzzing.
    /// Cost: O(bytes) for the copy plus O(header bytes).
    public convenience init(bytes: [UInt8], name: String = "(memory)") throws {
        try self.init(url: URL(fileURLWithPath: name), path: name, bytes: MappedFileBytes(copying: bytes))
    }

    /// Parses `bytes` as a safetensors file named `url` (tests use heap bytes through this).
    init(url: URL, path: String, bytes: MappedFileBytes) throws {
        self.url = url
        self.path = path
        self.bytes = bytes
        let parsed = try SafeTensorsFile.parseHeader(bytes.buffer, file: path)
        self.metadata = parsed.metadata
        var infos: [String: SafeTensorsInfo] = [:]
        infos.reserveCapacity(parsed.tensors.count)
        for t in parsed.tensors { infos[t.name] = t }
        self.infos = infos
        self.tensorNames = infos.keys.sorted()
    }

    /// The dtype, shape and byte range of `name`, or nil if the file has no such tensor. Cost: O(1).
    public func info(_ name: String) -> SafeTensorsInfo? { infos[name] }

    /// The tensor `name` as Float32, shape as in the file. Aligned F32 is not copied (the
    /// tensor borrows the mapped bytes and keeps the map alive); unaligned F32 is copied; F16,
    /// BF16 and the 8-bit float types are converted exactly (subnormals, signed zeros,
    /// infinities and NaN included); F64 is rounded to nearest; integer types and BOOL become
    /// their (rounded) values. Throws `.missingTensor` if absent, `.dtypeNotConvertible` for C64.
    /// Cost: O(elements); touches only this tensor's pages.
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = infos[name] else { throw SafeTensorsError.missingTensor(file: path, tensor: name) }
        guard info.dtype.isConvertibleToFloat else {
            throw SafeTensorsError.dtypeNotConvertible(file: path, tensor: name, dtype: info.dtype, target: "Float32")
        }
        let count = info.elementCount
        let bytes = raw(info)
        if info.dtype == .F32, count > 0, UInt32(littleEndian: 1) == 1,
            let start = bytes.baseAddress, Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0
        {
            let borrowed = TensorStorage(
                borrowing: start.bindMemory(to: Float.self, capacity: count), count: count, owner: self.bytes)
            return Tensor(shape: info.shape, storage: borrowed)
        }
        let storage = TensorStorage(uninitializedCount: count)
        let out = UnsafeMutableBufferPointer(start: storage.base, count: count)
        SafeTensorsFile.convertToFloat(bytes, dtype: info.dtype, into: out)
        return Tensor(shape: info.shape, storage: storage)
    }

    /// The matrix `name` as its 16-bit values, when it is a rank-2 F16 or BF16 tensor (nil
    /// otherwise, or when absent): borrowed from the map when 2-byte aligned on a little-endian
    /// host (the matrix keeps the map alive), else copied. Cost: O(1) borrowed, O(elements)
    /// copied.
    func halfMatrix(_ name: String) -> HalfMatrix? {
        guard let info = infos[name], info.shape.count == 2 else { return nil }
        let type: HalfType
        switch info.dtype {
        case .F16: type = .f16
        case .BF16: type = .bf16
        default: return nil
        }
        let (rows, cols) = (info.shape[0], info.shape[1])
        let src = raw(info)
        if UInt16(littleEndian: 1) == 1, let start = src.baseAddress, rows * cols > 0,
            Int(bitPattern: start) % MemoryLayout<UInt16>.alignment == 0
        {
            return HalfMatrix(
                type: type, rows: rows, cols: cols, base: start.bindMemory(to: UInt16.self, capacity: rows * cols), owner: bytes)
        }
        return HalfMatrix.owned(type, rows: rows, cols: cols) { dst in
            for i in 0..<(rows * cols) { dst[i] = Self.element(src, i, as: UInt16.self) }
        }
    }

    /// The tensor `name` as `Int` values in row-major order (for ids, masks, position tables).
    /// Reads I64, I32, I16, I8, U64, U32, U16, U8 and BOOL (false 0, true 1). Throws
    /// `.missingTensor` if absent, `.dtypeNotConvertible` for float types, `.integerOutOfRange`
    /// for a U64 value above `Int.max`. Cost: O(elements).
    public func integers(_ name: String) throws -> [Int] {
        guard let info = infos[name] else { throw SafeTensorsError.missingTensor(file: path, tensor: name) }
        guard info.dtype.isInteger else {
            throw SafeTensorsError.dtypeNotConvertible(file: path, tensor: name, dtype: info.dtype, target: "Int")
        }
        let src = raw(info)
        let n = info.elementCount
        switch info.dtype {
        case .I64: return (0..<n).map { Int(Self.element(src, $0, as: Int64.self)) }
        case .I32: return (0..<n).map { Int(Self.element(src, $0, as: Int32.self)) }
        case .I16: return (0..<n).map { Int(Self.element(src, $0, as: Int16.self)) }
        case .I8: return (0..<n).map { Int(Self.element(src, $0, as: Int8.self)) }
        case .U32: return (0..<n).map { Int(Self.element(src, $0, as: UInt32.self)) }
        case .U16: return (0..<n).map { Int(Self.element(src, $0, as: UInt16.self)) }
        case .U8: return (0..<n).map { Int(src[$0]) }
        case .BOOL: return (0..<n).map { src[$0] == 0 ? 0 : 1 }
        case .U64:
            var out = [Int]()
            out.reserveCapacity(n)
            for i in 0..<n {
                guard let x = Int(exactly: Self.element(src, i, as: UInt64.self)) else {
                    throw SafeTensorsError.integerOutOfRange(file: path, tensor: name, index: i)
                }
                out.append(x)
            }
            return out
        default:
            preconditionFailure("unreachable: \(info.dtype) is not an integer type")
        }
    }

    /// The tensor's bytes inside the map (range validated at init).
    private func raw(_ info: SafeTensorsInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes.buffer[info.byteRange])
    }

    // MARK: - Conversion

    /// Element `i` of a little-endian integer array in `src` (any alignment).
    @inline(__always)
    static func element<T: FixedWidthInteger>(_ src: UnsafeRawBufferPointer, _ i: Int, as: T.Type) -> T {
        T(littleEndian: src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
    }

    /// Converts `src` (exactly `out.count` elements of `dtype`) into Float32.
    static func convertToFloat(
        _ src: UnsafeRawBufferPointer, dtype: SafeTensorsDType, into out: UnsafeMutableBufferPointer<Float>
    ) {
        let n = out.count
        precondition(src.count == n * dtype.byteSize, "convertToFloat: \(src.count) bytes for \(n) \(dtype)")
        guard n > 0, let dst = out.baseAddress else { return }
        switch dtype {
        case .F32:
            #if _endian(little)
                UnsafeMutableRawPointer(dst).copyMemory(from: src.baseAddress!, byteCount: n * 4)
            #else
                for i in 0..<n { dst[i] = Float(bitPattern: element(src, i, as: UInt32.self)) }
            #endif
        case .F16:
            for i in 0..<n { dst[i] = SafeTensorsConvert.float(fromHalfBits: element(src, i, as: UInt16.self)) }
        case .BF16:
            for i in 0..<n { dst[i] = SafeTensorsConvert.float(fromBFloat16Bits: element(src, i, as: UInt16.self)) }
        case .F64:
            for i in 0..<n { dst[i] = Float(Double(bitPattern: element(src, i, as: UInt64.self))) }
        case .F8_E5M2, .F8_E4M3, .F8_E4M3FNUZ, .F8_E5M2FNUZ, .F8_E8M0:
            let table = SafeTensorsConvert.table(for: dtype)
            for i in 0..<n { dst[i] = table[Int(src[i])] }
        case .I64: for i in 0..<n { dst[i] = Float(element(src, i, as: Int64.self)) }
        case .I32: for i in 0..<n { dst[i] = Float(element(src, i, as: Int32.self)) }
        case .I16: for i in 0..<n { dst[i] = Float(element(src, i, as: Int16.self)) }
        case .I8: for i in 0..<n { dst[i] = Float(element(src, i, as: Int8.self)) }
        case .U64: for i in 0..<n { dst[i] = Float(element(src, i, as: UInt64.self)) }
        case .U32: for i in 0..<n { dst[i] = Float(element(src, i, as: UInt32.self)) }
        case .U16: for i in 0..<n { dst[i] = Float(element(src, i, as: UInt16.self)) }
        case .U8: for i in 0..<n { dst[i] = Float(src[i]) }
        case .BOOL: for i in 0..<n { dst[i] = src[i] == 0 ? 0 : 1 }
        case .C64:
            preconditionFailure("unreachable: C64 is rejected before conversion")
        }
    }

    // MARK: - Header validation

    /// The reference implementation's bound on the header length.
    static let maxHeaderLength: UInt64 = 100_000_000

    struct ParsedHeader {
        var metadata: [String: String]
        var tensors: [SafeTensorsInfo]
    }

    /// Validates the whole file layout; returns the tensors with absolute byte ranges.
    static func parseHeader(_ buf: UnsafeRawBufferPointer, file: String) throws -> ParsedHeader {
        guard buf.count >= 8 else { throw SafeTensorsError.fileTooSmall(file: file, size: buf.count) }
        let n64 = UInt64(littleEndian: buf.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard n64 <= maxHeaderLength else { throw SafeTensorsError.headerTooLarge(file: file, headerLength: n64) }
        let n = Int(n64)
        guard n <= buf.count - 8 else {
            throw SafeTensorsError.headerPastEndOfFile(file: file, headerLength: n, fileSize: buf.count)
        }
        let header = UnsafeRawBufferPointer(rebasing: buf[8..<(8 + n)])
        if let bad = StrictJSON.firstInvalidUTF8(header) {
            throw SafeTensorsError.headerNotUTF8(file: file, offset: 8 + bad)
        }
        let root: StrictJSONValue
        do {
            root = try StrictJSON.parse(header)
        } catch let e as StrictJSONError {
            if case .duplicateKey(let key) = e.kind, e.depth == 1 {
                if key == "__metadata__" {
                    throw SafeTensorsError.invalidMetadata(file: file, reason: "__metadata__ appears twice")
                }
                throw SafeTensorsError.duplicateTensor(file: file, tensor: key)
            }
            throw SafeTensorsError.invalidJSON(file: file, offset: 8 + e.offset, reason: e.message)
        }
        guard case .object(let top) = root else { throw SafeTensorsError.headerNotObject(file: file) }

        var metadata: [String: String] = [:]
        // (name, dtype, shape, begin, end) with offsets relative to the data section.
        var entries: [(name: String, dtype: SafeTensorsDType, shape: [Int], begin: Int, end: Int)] = []
        entries.reserveCapacity(top.count)
        for (name, value) in top.members {
            if name == "__metadata__" {
                metadata = try parseMetadata(value, file: file)
                continue
            }
            entries.append(try parseEntry(name: name, value, file: file))
        }

        // Tiling: sorted by (begin, end), each range starts where the previous one ended.
        let dataSize = buf.count - 8 - n
        let order = entries.indices.sorted {
            (entries[$0].begin, entries[$0].end) < (entries[$1].begin, entries[$1].end)
        }
        var expected = 0
        var previous: String? = nil
        for i in order {
            let e = entries[i]
            if e.begin < expected {
                throw SafeTensorsError.overlappingTensors(file: file, tensor: e.name, other: previous ?? "")
            }
            if e.begin > expected {
                throw SafeTensorsError.gapBeforeTensor(
                    file: file, tensor: e.name, expectedBegin: expected, begin: e.begin)
            }
            if e.end > dataSize {
                throw SafeTensorsError.offsetsOutOfRange(
                    file: file, tensor: e.name, range: e.begin..<e.end, dataSize: dataSize)
            }
            expected = e.end
            if e.end > e.begin { previous = e.name }
        }
        if expected != dataSize {
            throw SafeTensorsError.trailingBytes(file: file, declaredBytes: expected, dataSize: dataSize)
        }

        // Every range is inside the data section, so these sums cannot overflow.
        let dataStart = 8 + n
        let tensors = entries.map {
            SafeTensorsInfo(
                name: $0.name, dtype: $0.dtype, shape: $0.shape,
                byteRange: (dataStart + $0.begin)..<(dataStart + $0.end))
        }
        return ParsedHeader(metadata: metadata, tensors: tensors)
    }

    private static func parseMetadata(_ value: StrictJSONValue, file: String) throws -> [String: String] {
        switch value {
        case .null:
            return [:]
        case .object(let object):
            var out: [String: String] = [:]
            for (k, v) in object.members {
                guard case .string(let s) = v else {
                    throw SafeTensorsError.invalidMetadata(
                        file: file, reason: "value of \(SafeTensorsError.quoted(k)) is \(v.typeName), not a string")
                }
                out[k] = s
            }
            return out
        default:
            throw SafeTensorsError.invalidMetadata(file: file, reason: "it is \(value.typeName), not an object")
        }
    }

    private static func parseEntry(
        name: String, _ value: StrictJSONValue, file: String
    ) throws -> (name: String, dtype: SafeTensorsDType, shape: [Int], begin: Int, end: Int) {
        func entryError(_ reason: String) -> SafeTensorsError {
            .invalidTensorEntry(file: file, tensor: name, reason: reason)
        }
        guard case .object(let object) = value else { throw entryError("entry is \(value.typeName), not an object") }
        guard let dtypeValue = object["dtype"] else { throw entryError("missing \"dtype\"") }
        guard let shapeValue = object["shape"] else { throw entryError("missing \"shape\"") }
        guard let offsetsValue = object["data_offsets"] else { throw entryError("missing \"data_offsets\"") }

        guard case .string(let dtypeName) = dtypeValue else {
            throw entryError("\"dtype\" is \(dtypeValue.typeName), not a string")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw SafeTensorsError.unknownDType(file: file, tensor: name, dtype: dtypeName)
        }

        guard case .array(let shapeItems) = shapeValue else {
            throw entryError("\"shape\" is \(shapeValue.typeName), not an array")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeItems.count)
        for (axis, item) in shapeItems.enumerated() {
            guard case .number(let number) = item else {
                throw SafeTensorsError.invalidShape(
                    file: file, tensor: name, reason: "entry \(axis) is \(item.typeName), not an integer")
            }
            guard number.isIntegerLiteral, !number.isNegative else {
                throw SafeTensorsError.invalidShape(
                    file: file, tensor: name, reason: "entry \(axis) is \(number.text), not a non-negative integer")
            }
            guard let d = number.intValue else {
                throw SafeTensorsError.invalidShape(
                    file: file, tensor: name, reason: "entry \(axis) is \(number.text), too large")
            }
            shape.append(d)
        }

        guard case .array(let offsetItems) = offsetsValue else {
            throw SafeTensorsError.invalidOffsets(
                file: file, tensor: name, reason: "it is \(offsetsValue.typeName), not an array")
        }
        guard offsetItems.count == 2 else {
            throw SafeTensorsError.invalidOffsets(
                file: file, tensor: name, reason: "\(offsetItems.count) entries, expected [begin, end]")
        }
        var offsets: [Int] = []
        for item in offsetItems {
            guard case .number(let number) = item, number.isIntegerLiteral, !number.isNegative else {
                let text: String
                if case .number(let number) = item { text = number.text } else { text = item.typeName }
                throw SafeTensorsError.invalidOffsets(
                    file: file, tensor: name, reason: "\(text) is not a non-negative integer")
            }
            guard let v = number.intValue else {
                throw SafeTensorsError.invalidOffsets(file: file, tensor: name, reason: "\(number.text) is too large")
            }
            offsets.append(v)
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else {
            throw SafeTensorsError.reversedOffsets(file: file, tensor: name, begin: begin, end: end)
        }

        var bytes = dtype.byteSize
        for d in shape {
            let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
            if overflow { throw SafeTensorsError.shapeOverflow(file: file, tensor: name, shape: shape, dtype: dtype) }
            bytes = p
        }
        guard bytes == end - begin else {
            throw SafeTensorsError.sizeMismatch(
                file: file, tensor: name, dtype: dtype, shape: shape, expectedBytes: bytes, rangeBytes: end - begin)
        }
        return (name, dtype, shape, begin, end)
    }
}
