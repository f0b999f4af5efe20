// Tensors as stored bytes, any dtype: read in place from a mapped file and written back
// unchanged, for the int8 weights (int8 values and their float32 or binary16 scales are
// used as stored) and for `attend quantize`, which copies every tensor it does not quantize
// byte for byte.

import Foundation

/// Read-only bytes with an owner that keeps them alive: a tensor's range of a mapped file
/// (the map is the owner), or a heap allocation this object frees.
final class RawBytes: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int
    private let owner: AnyObject?
    private let allocated: UnsafeMutableRawPointer?

    /// Bytes inside memory kept alive by `owner`.
    init(borrowing buffer: UnsafeRawBufferPointer, owner: AnyObject) {
        base = buffer.baseAddress ?? UnsafeRawPointer(RawBytes.empty)
        count = buffer.count
        self.owner = owner
        allocated = nil
    }

    /// `count` new bytes, 64-byte aligned, filled by `fill`: on huge pages where the OS gives
    /// them (in a `WeightArena` chunk, or from `OwnedMemory` when large).
    init(count: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        let placed = WeightArena.shared.allocate(bytes: count)
        let p = placed?.base ?? OwnedMemory.allocate(bytes: count)
        fill(UnsafeMutableRawBufferPointer(start: p, count: count))
        base = UnsafeRawPointer(p)
        self.count = count
        owner = placed?.owner
        allocated = placed == nil ? p : nil
    }

    deinit { allocated.map { OwnedMemory.deallocate($0, bytes: count) } }

    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// When borrowed from a mapped file: lets the OS drop these bytes' pages from this
    /// process's resident memory (after they were copied out; they stay readable from the file).
    func releaseMappedPages() {
        guard let map = owner as? MappedFileBytes, let start = map.buffer.baseAddress else { return }
        let offset = base - start
        map.releasePages(offset..<(offset + count))
    }

    nonisolated(unsafe) private static let empty = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
}

extension SafeTensorsFile {
    /// The tensor `name` as stored: its header entry and its bytes in the map (owned by this
    /// file's map). Nil if the file has no such tensor. Cost: O(1), nothing is read.
    func storedTensor(_ name: String) -> (info: SafeTensorsInfo, bytes: RawBytes)? {
        guard let info = info(name) else { return nil }
        return (info, RawBytes(borrowing: UnsafeRawBufferPointer(rebasing: bytes.buffer[info.byteRange]), owner: bytes))
    }
}

extension SafeTensorsCheckpoint {
    /// The tensor `name` as stored (see `SafeTensorsFile.storedTensor`), from whichever file
    /// holds it. Cost: O(1).
    func storedTensor(_ name: String) -> (info: SafeTensorsInfo, bytes: RawBytes)? {
        file(containing: name)?.storedTensor(name)
    }
}

/// One tensor to write as stored: name, dtype, shape and exactly `elementCount * byteSize`
/// little-endian bytes.
struct StoredTensor {
    var name: String
    var dtype: SafeTensorsDType
    var shape: [Int]
    var bytes: RawBytes
}

extension SafeTensorsWriter {
    /// Writes tensors of any dtype as stored, atomically (a temporary file renamed over
    /// `url`), laid out as the reference writer lays out mixed dtypes: sorted by element size
    /// (largest first, so every tensor starts aligned to its element size) then by name, the
    /// header padded with spaces to 8 bytes. Throws `SafeTensorsError.unwritable` naming `url`
    /// (a system error, a tensor named `__metadata__`, a byte count that does not match the
    /// shape). Cost: one pass over the bytes.
    static func writeStored(_ tensors: [StoredTensor], metadata: [String: String] = [:], to url: URL) throws {
        let path = url.path
        let order = tensors.sorted {
            $0.dtype.byteSize != $1.dtype.byteSize
                ? $0.dtype.byteSize > $1.dtype.byteSize
                : Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8))
        }
        var json: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func comma() {
            if !first { json.append(UInt8(ascii: ",")) }
            first = false
        }
        if !metadata.isEmpty {
            comma()
            appendString("__metadata__", to: &json)
            json.append(contentsOf: Array(":{".utf8))
            let keys = metadata.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            for (i, key) in keys.enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                appendString(key, to: &json)
                json.append(UInt8(ascii: ":"))
                appendString(metadata[key]!, to: &json)
            }
            json.append(UInt8(ascii: "}"))
        }
        var offset = 0
        for t in order {
            guard t.name != "__metadata__" else {
                throw SafeTensorsError.unwritable(file: path, reason: "a tensor cannot be named \"__metadata__\" (the format reserves it)")
            }
            let expected = t.shape.reduce(1, *) * t.dtype.byteSize
            guard expected == t.bytes.count else {
                throw SafeTensorsError.unwritable(
                    file: path, reason: "tensor \(SafeTensorsError.quoted(t.name)) \(t.dtype) \(t.shape) needs \(expected) bytes, has \(t.bytes.count)")
            }
            comma()
            appendString(t.name, to: &json)
            json.append(contentsOf: Array(":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[".utf8))
            json.append(contentsOf: Array(t.shape.map(String.init).joined(separator: ",").utf8))
            json.append(contentsOf: Array("],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}".utf8))
            offset += t.bytes.count
        }
        json.append(UInt8(ascii: "}"))
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        var header: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { header.append(contentsOf: $0) }
        header.append(contentsOf: json)
        try writeAtomically(to: path) { fd in
            try header.withUnsafeBytes { try writeAll(fd, $0, path) }
            for t in order where t.bytes.count > 0 { try writeAll(fd, t.bytes.buffer, path) }
        }
    }
}
