// Errors of the safetensors reader. Everything read from a file is validated; every violation
// is one of these thrown values, never a crash and never an out-of-bounds read.

/// Why a safetensors file, a checkpoint index or a tensor request was rejected.
///
/// Every case names the file it concerns (`file`, a filesystem path) and, where a single tensor
/// is at fault, the tensor (`tensor`, its name in the header). `description` is one line saying
/// what is wrong and where, fit for a log or a command line error message.
///
/// The checks follow the reference implementation (the Rust `safetensors` crate,
/// `SafeTensors::read_metadata` and `Metadata::validate`) and add a few it does not make
/// (duplicate JSON keys, which the reference silently collapses to the last one).
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened, inspected or memory-mapped (missing, unreadable, not a
    /// regular file). `reason` is the system's message.
    case unreadable(file: String, reason: String)
    /// The file is shorter than the 8-byte header length prefix.
    case fileTooSmall(file: String, size: Int)
    /// The header length prefix exceeds the reference limit of 100,000,000 bytes.
    case headerTooLarge(file: String, headerLength: UInt64)
    /// The header length prefix points past the end of the file.
    case headerPastEndOfFile(file: String, headerLength: Int, fileSize: Int)
    /// The header bytes are not valid UTF-8; `offset` is the file offset of the first bad byte.
    case headerNotUTF8(file: String, offset: Int)
    /// The header (or an index file) is not valid JSON; `offset` is the file offset where
    /// parsing stopped. Duplicate keys inside a nested object are reported here too.
    case invalidJSON(file: String, offset: Int, reason: String)
    /// The header is valid JSON but its top-level value is not an object.
    case headerNotObject(file: String)
    /// `__metadata__` is present but not an object of string values (or appears twice).
    case invalidMetadata(file: String, reason: String)
    /// The same tensor name appears twice in one header.
    case duplicateTensor(file: String, tensor: String)
    /// The same tensor name appears in two files of one checkpoint.
    case duplicateTensorAcrossFiles(file: String, tensor: String, otherFile: String)
    /// A tensor entry is not an object or lacks `dtype`, `shape` or `data_offsets`, or one of
    /// them has the wrong JSON type.
    case invalidTensorEntry(file: String, tensor: String, reason: String)
    /// The `dtype` string is not one this reader knows (see `SafeTensorsDType`).
    case unknownDType(file: String, tensor: String, dtype: String)
    /// A `shape` entry is not a non-negative integer that fits in `Int`.
    case invalidShape(file: String, tensor: String, reason: String)
    /// The product of the shape times the dtype size overflows `Int`.
    case shapeOverflow(file: String, tensor: String, shape: [Int], dtype: SafeTensorsDType)
    /// `data_offsets` is not a pair of non-negative integers that fit in `Int`.
    case invalidOffsets(file: String, tensor: String, reason: String)
    /// `data_offsets` is `[begin, end]` with `begin > end`.
    case reversedOffsets(file: String, tensor: String, begin: Int, end: Int)
    /// Shape times dtype size (`expectedBytes`) differs from `end - begin` (`rangeBytes`).
    case sizeMismatch(
        file: String, tensor: String, dtype: SafeTensorsDType, shape: [Int], expectedBytes: Int, rangeBytes: Int)
    /// Two tensors' byte ranges overlap (`tensor` starts before `other` ends).
    case overlappingTensors(file: String, tensor: String, other: String)
    /// The byte ranges, sorted by offset, leave unused bytes before `tensor`: it begins at
    /// `begin` where the previous tensor (or the data section) ends at `expectedBegin`.
    case gapBeforeTensor(file: String, tensor: String, expectedBegin: Int, begin: Int)
    /// A tensor's byte range (`range`, relative to the data section) reaches past the end of
    /// the data section (`dataSize` bytes): the file is truncated or the header is wrong.
    case offsetsOutOfRange(file: String, tensor: String, range: Range<Int>, dataSize: Int)
    /// The data section is longer than the tensors cover: `dataSize` bytes, of which the
    /// tensors declare `declaredBytes` (the reference rejects trailing bytes, as does this reader).
    case trailingBytes(file: String, declaredBytes: Int, dataSize: Int)
    /// No tensor of that name in the file (or checkpoint).
    case missingTensor(file: String, tensor: String)
    /// The tensor's dtype cannot be read as requested (`target`: "Float32" or "Int").
    case dtypeNotConvertible(file: String, tensor: String, dtype: SafeTensorsDType, target: String)
    /// An unsigned 64-bit value at element `index` does not fit in `Int`.
    case integerOutOfRange(file: String, tensor: String, index: Int)
    /// A `model.safetensors.index.json` lacks `weight_map`, maps a name to something other
    /// than a plain relative file name, or a checkpoint directory holds no model file.
    case invalidIndex(file: String, reason: String)
    /// The index maps `tensor` to `shard`, but that shard does not contain it.
    case indexMismatch(file: String, tensor: String, shard: String)
    /// A safetensors file could not be written (`reason`: the system's message, or a tensor
    /// name the format cannot hold such as `__metadata__`). Nothing is left at `file`.
    case unwritable(file: String, reason: String)

    /// The file (or index, or checkpoint directory) the error concerns.
    public var file: String {
        switch self {
        case .unreadable(let f, _), .fileTooSmall(let f, _), .headerTooLarge(let f, _),
            .headerPastEndOfFile(let f, _, _), .headerNotUTF8(let f, _), .invalidJSON(let f, _, _),
            .headerNotObject(let f), .invalidMetadata(let f, _), .duplicateTensor(let f, _),
            .duplicateTensorAcrossFiles(let f, _, _), .invalidTensorEntry(let f, _, _),
            .unknownDType(let f, _, _), .invalidShape(let f, _, _), .shapeOverflow(let f, _, _, _),
            .invalidOffsets(let f, _, _), .reversedOffsets(let f, _, _, _),
            .sizeMismatch(let f, _, _, _, _, _), .overlappingTensors(let f, _, _),
            .gapBeforeTensor(let f, _, _, _), .offsetsOutOfRange(let f, _, _, _),
            .trailingBytes(let f, _, _), .missingTensor(let f, _), .dtypeNotConvertible(let f, _, _, _),
            .integerOutOfRange(let f, _, _), .invalidIndex(let f, _), .indexMismatch(let f, _, _),
            .unwritable(let f, _):
            return f
        }
    }

    /// The tensor the error concerns, when a single tensor is at fault.
    public var tensor: String? {
        switch self {
        case .duplicateTensor(_, let t), .duplicateTensorAcrossFiles(_, let t, _), .invalidTensorEntry(_, let t, _),
            .unknownDType(_, let t, _), .invalidShape(_, let t, _), .shapeOverflow(_, let t, _, _),
            .invalidOffsets(_, let t, _), .reversedOffsets(_, let t, _, _), .sizeMismatch(_, let t, _, _, _, _),
            .overlappingTensors(_, let t, _), .gapBeforeTensor(_, let t, _, _),
            .offsetsOutOfRange(_, let t, _, _), .missingTensor(_, let t), .dtypeNotConvertible(_, let t, _, _),
            .integerOutOfRange(_, let t, _), .indexMismatch(_, let t, _):
            return t
        default:
            return nil
        }
    }

    /// One line: where (file, tensor) and what is wrong.
    public var description: String {
        let q = SafeTensorsError.quoted
        switch self {
        case .unreadable(let f, let reason):
            return "\(f): cannot read file: \(reason)"
        case .fileTooSmall(let f, let size):
            return "\(f): not a safetensors file: \(size) bytes, shorter than the 8-byte header length"
        case .headerTooLarge(let f, let n):
            return "\(f): header length \(n) exceeds the limit of 100000000 bytes"
        case .headerPastEndOfFile(let f, let n, let size):
            return "\(f): header length \(n) reaches past the end of the \(size)-byte file"
        case .headerNotUTF8(let f, let offset):
            return "\(f): header is not valid UTF-8 (byte offset \(offset))"
        case .invalidJSON(let f, let offset, let reason):
            return "\(f): invalid JSON at byte offset \(offset): \(reason)"
        case .headerNotObject(let f):
            return "\(f): header JSON is not an object"
        case .invalidMetadata(let f, let reason):
            return "\(f): invalid __metadata__: \(reason)"
        case .duplicateTensor(let f, let t):
            return "\(f): tensor \(q(t)) is declared twice"
        case .duplicateTensorAcrossFiles(let f, let t, let other):
            return "\(f): tensor \(q(t)) is also in \(other)"
        case .invalidTensorEntry(let f, let t, let reason):
            return "\(f): tensor \(q(t)): \(reason)"
        case .unknownDType(let f, let t, let dtype):
            return "\(f): tensor \(q(t)): unknown or unsupported dtype \(q(dtype))"
        case .invalidShape(let f, let t, let reason):
            return "\(f): tensor \(q(t)): invalid shape: \(reason)"
        case .shapeOverflow(let f, let t, let shape, let dtype):
            return "\(f): tensor \(q(t)): byte size of shape \(shape) of \(dtype.rawValue) overflows"
        case .invalidOffsets(let f, let t, let reason):
            return "\(f): tensor \(q(t)): invalid data_offsets: \(reason)"
        case .reversedOffsets(let f, let t, let begin, let end):
            return "\(f): tensor \(q(t)): data_offsets [\(begin), \(end)] begin after they end"
        case .sizeMismatch(let f, let t, let dtype, let shape, let expected, let actual):
            return "\(f): tensor \(q(t)): shape \(shape) of \(dtype.rawValue) needs \(expected) bytes, data_offsets span \(actual)"
        case .overlappingTensors(let f, let t, let other):
            return "\(f): tensor \(q(t)): bytes overlap tensor \(q(other))"
        case .gapBeforeTensor(let f, let t, let expected, let begin):
            return "\(f): tensor \(q(t)): begins at data offset \(begin), leaving unused bytes from \(expected)"
        case .offsetsOutOfRange(let f, let t, let range, let dataSize):
            return "\(f): tensor \(q(t)): data_offsets [\(range.lowerBound), \(range.upperBound)] reach past the "
                + "\(dataSize)-byte data section (file truncated?)"
        case .trailingBytes(let f, let declared, let dataSize):
            return "\(f): data section has \(dataSize) bytes but the tensors cover only \(declared)"
        case .missingTensor(let f, let t):
            return "\(f): no tensor named \(q(t))"
        case .dtypeNotConvertible(let f, let t, let dtype, let target):
            return "\(f): tensor \(q(t)): dtype \(dtype.rawValue) cannot be read as \(target)"
        case .integerOutOfRange(let f, let t, let index):
            return "\(f): tensor \(q(t)): element \(index) does not fit in Int"
        case .invalidIndex(let f, let reason):
            return "\(f): invalid checkpoint index: \(reason)"
        case .indexMismatch(let f, let t, let shard):
            return "\(f): index maps tensor \(q(t)) to \(shard), which does not contain it"
        case .unwritable(let f, let reason):
            return "\(f): cannot write file: \(reason)"
        }
    }

    /// A name in double quotes, with control characters escaped so the message stays one line.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    out += "\\u{" + String(u.value, radix: 16) + "}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
