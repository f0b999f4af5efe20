// The safetensors writer: a ParameterSet as float32 tensors, laid out as the reference
// `safetensors` package lays them out, so a file written here is byte for byte the file
// `safetensors.torch.save_file` writes for the same tensors and metadata:
//   - 8-byte little-endian header length N, then N bytes of compact JSON, then the data;
//   - the JSON holds `__metadata__` first (keys sorted), then one entry per tensor
//     `{"dtype":"F32","shape":[..],"data_offsets":[begin,end]}`, tensors sorted by name
//     (UTF-8 byte order; all F32, so the reference's dtype-alignment sort key ties);
//   - strings escaped as serde_json escapes them (`"`, `\`, control characters; nothing else);
//   - the header padded with spaces to a multiple of 8 bytes, so every tensor's data starts
//     8-byte aligned in the file;
//   - data in header order, contiguous, little-endian.
// Files are written to a temporary name in the destination's folder and renamed over the
// destination, so a reader sees either the old file or the complete new one.

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes named float32 tensors (a `ParameterSet`) and string metadata as a `.safetensors` file
/// that `SafeTensorsFile`, the Python `safetensors` package and `transformers` read.
///
/// The layout is the reference writer's (tensors sorted by name, metadata keys sorted, header
/// padded with spaces to 8 bytes), so the same tensors and metadata give the same bytes as
/// `safetensors.torch.save_file`. Cost: O(header) to build the header plus one pass over the
/// scalars; `write` streams the tensors to the file without an extra copy.
///
/// ```swift
/// try SafeTensorsWriter.write(model.parameters, metadata: ["format": "pt"], to: url)
/// ```
public enum SafeTensorsWriter {
    /// The whole file as bytes (header and data). Throws `SafeTensorsError.unwritable` (file
    /// `"(memory)"`) for a tensor named `__metadata__`. Cost: O(scalars) time and memory.
    public static func encode(_ tensors: ParameterSet, metadata: [String: String] = [:]) throws -> [UInt8] {
        let layout = try Layout(tensors, metadata: metadata, file: "(memory)")
        var out = layout.header
        out.reserveCapacity(layout.header.count + layout.dataSize)
        for name in layout.order {
            tensors[name]!.withUnsafeBufferPointer { appendLittleEndian($0, to: &out) }
        }
        return out
    }

    /// Writes the file at `url` atomically: to a new temporary file in the same folder, flushed
    /// to disk, then renamed over `url` (an existing file is replaced; on failure it is left
    /// as it was and the temporary file is removed). Throws `SafeTensorsError.unwritable`
    /// naming `url` with the system's reason (missing folder, no permission, disk full) or a
    /// tensor named `__metadata__`. Cost: O(scalars) bytes written.
    public static func write(_ tensors: ParameterSet, metadata: [String: String] = [:], to url: URL) throws {
        let path = url.path
        let layout = try Layout(tensors, metadata: metadata, file: path)
        try writeAtomically(to: path) { (fd) in
            try layout.header.withUnsafeBytes { (raw) in try writeAll(fd, raw, path) }
            var chunk: [UInt8] = []
            for name in layout.order {
                try tensors[name]!.withUnsafeBufferPointer { (scalars) in
                    #if _endian(little)
                        try writeAll(fd, UnsafeRawBufferPointer(scalars), path)
                    #else
                        chunk.removeAll(keepingCapacity: true)
                        appendLittleEndian(scalars, to: &chunk)
                        try chunk.withUnsafeBytes { (raw) in try writeAll(fd, raw, path) }
                    #endif
                }
            }
            _ = chunk
        }
    }

    // MARK: - Header

    /// The header bytes (length prefix, JSON, padding) and the tensor order.
    struct Layout {
        var header: [UInt8]
        var order: [String]
        var dataSize: Int

        init(_ tensors: ParameterSet, metadata: [String: String], file: String) throws {
            order = tensors.names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            var json: [UInt8] = [UInt8(ascii: "{")]
            var first = true
            func comma() {
                if !first { json.append(UInt8(ascii: ",")) }
                first = false
            }
            if !metadata.isEmpty {
                comma()
                SafeTensorsWriter.appendString("__metadata__", to: &json)
                json.append(contentsOf: Array(":{".utf8))
                let keys = metadata.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
                for (i, key) in keys.enumerated() {
                    if i > 0 { json.append(UInt8(ascii: ",")) }
                    SafeTensorsWriter.appendString(key, to: &json)
                    json.append(UInt8(ascii: ":"))
                    SafeTensorsWriter.appendString(metadata[key]!, to: &json)
                }
                json.append(UInt8(ascii: "}"))
            }
            var offset = 0
            for name in order {
                guard name != "__metadata__" else {
                    throw SafeTensorsError.unwritable(
                        file: file, reason: "a tensor cannot be named \"__metadata__\" (the format reserves it)")
                }
                let t = tensors[name]!
                let bytes = t.count * MemoryLayout<Float>.size
                comma()
                SafeTensorsWriter.appendString(name, to: &json)
                json.append(contentsOf: Array(":{\"dtype\":\"F32\",\"shape\":[".utf8))
                json.append(contentsOf: Array(t.shape.map(String.init).joined(separator: ",").utf8))
                json.append(contentsOf: Array("],\"data_offsets\":[\(offset),\(offset + bytes)]}".utf8))
                offset += bytes
            }
            json.append(UInt8(ascii: "}"))
            json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
            var header: [UInt8] = []
            header.reserveCapacity(8 + json.count)
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { header.append(contentsOf: $0) }
            header.append(contentsOf: json)
            self.header = header
            self.dataSize = offset
        }
    }

    /// Appends `s` as a JSON string the way serde_json writes it: `"` and `\` escaped, the
    /// control characters below 0x20 as `\b \t \n \f \r` or `\u00XX`, everything else as is.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    static func appendLittleEndian(_ scalars: UnsafeBufferPointer<Float>, to out: inout [UInt8]) {
        for x in scalars {
            withUnsafeBytes(of: x.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        }
    }

    // MARK: - Files

    /// Creates a temporary file next to `path`, lets `body` fill it, flushes it and renames it
    /// to `path`. Any failure removes the temporary file and throws `.unwritable`.
    static func writeAtomically(
        to path: String, _ body: (Int32) throws -> Void
    ) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let temporary = folder + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SafeTensorsError.unwritable(file: path, reason: systemError()) }
        var closed = false
        do {
            try body(fd)
            guard fsync(fd) == 0 else { throw SafeTensorsError.unwritable(file: path, reason: systemError()) }
            closed = true
            guard close(fd) == 0 else { throw SafeTensorsError.unwritable(file: path, reason: systemError()) }
            guard rename(temporary, path) == 0 else {
                throw SafeTensorsError.unwritable(file: path, reason: systemError())
            }
        } catch {
            if !closed { close(fd) }
            unlink(temporary)
            throw error
        }
    }

    /// Writes all of `bytes` to `fd`, retrying short writes and interruptions.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError.unwritable(file: path, reason: systemError())
            }
            done += n
        }
    }

    private static func systemError() -> String { String(cString: strerror(errno)) }
}

/// The C library's `write(2)` (a top-level name, clear of `SafeTensorsWriter.write`).
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
