// Read-only bytes of a file, memory-mapped, owned by one object whose deinit unmaps them.
//
// This object is the "owner" a zero-copy tensor would retain: a Float32 tensor whose bytes are
// 4-byte aligned in the map could point straight into `buffer` as long as it keeps this object
// alive (see the note in SafeTensorsFile.swift on what TensorStorage needs for that).
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The whole contents of a file (or, for tests, of a byte array) as one read-only buffer.
///
/// Files are mapped with `mmap(PROT_READ, MAP_PRIVATE)`: opening costs O(1) whatever the size,
/// and pages are read from disk on first touch. Every reader indexes `buffer` only within
/// ranges validated against `buffer.count`. One caveat no reader can prevent: if another
/// process truncates the file while it is mapped, touching a vanished page raises SIGBUS.
final class MappedFileBytes: @unchecked Sendable {
    /// The bytes. Valid for the lifetime of this object; never written.
    let buffer: UnsafeRawBufferPointer
    private let isMapped: Bool

    /// Maps the regular file at `path`. Throws `SafeTensorsError.unreadable` naming `path`.
    init(mapping path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SafeTensorsError.unreadable(file: path, reason: MappedFileBytes.systemError()) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 {
            throw SafeTensorsError.unreadable(file: path, reason: MappedFileBytes.systemError())
        }
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw SafeTensorsError.unreadable(file: path, reason: "not a regular file")
        }
        guard st.st_size >= 0, let size = Int(exactly: st.st_size) else {
            throw SafeTensorsError.unreadable(file: path, reason: "file size \(st.st_size) out of range")
        }
        if size == 0 {  // mmap rejects length 0
            buffer = UnsafeRawBufferPointer(UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64))
            isMapped = false
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else {  // MAP_FAILED
            throw SafeTensorsError.unreadable(file: path, reason: "mmap failed: " + MappedFileBytes.systemError())
        }
        buffer = UnsafeRawBufferPointer(start: p, count: size)
        isMapped = true
    }

    /// A heap copy of `bytes` (used by tests to feed the parser without a file). The buffer
    /// is exactly `bytes.count` long, so debug builds trap on any out-of-bounds index.
    init(copying bytes: [UInt8]) {
        let m = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 64)
        m.copyBytes(from: bytes)
        buffer = UnsafeRawBufferPointer(m)
        isMapped = false
    }

    /// Tells the OS that this process no longer needs the pages wholly inside `range` (bytes of
    /// `buffer`): a tensor copied out of the map (a fused or transposed weight) then stops
    /// counting in resident memory twice. The bytes stay readable (a later read faults them in
    /// again from the file). No-op for a heap copy. Cost: one system call.
    func releasePages(_ range: Range<Int>) {
        guard isMapped, range.lowerBound >= 0, range.upperBound <= buffer.count, let base = buffer.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + range.lowerBound + page - 1) / page * page
        let end = (Int(bitPattern: base) + range.upperBound) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, Int32(MADV_DONTNEED))
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: buffer.baseAddress), buffer.count)
        } else {
            UnsafeMutableRawBufferPointer(mutating: buffer).deallocate()
        }
    }

    private static func systemError() -> String {
        String(cString: strerror(errno))
    }
}
