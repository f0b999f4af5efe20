// Where Attend's owned buffers come from: tensor storage (activations, packed weight copies),
// 16-bit and int8 weight storage. Large ones get transparent huge pages on Linux.

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The allocator of Attend's owned buffers: 64-byte aligned memory, and for buffers of
/// `hugePageMinimumBytes` and more on Linux, memory on 2 MiB boundaries advised for
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`).
///
/// Why: decoding reads every weight once per token, so its speed is the memory read
/// bandwidth, and with 4 KiB pages a streamed read reaches much less of it than with 2 MiB
/// pages (a 1 GiB sum on this project's Zen 4 machine: 22.5 against 32.5 GB/s on one thread).
/// Linux gives huge pages only to 2 MiB-aligned ranges of memory advised for them (when
/// `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise`, the common default), so a large
/// buffer is allocated 2 MiB aligned and its length rounded up to whole 2 MiB pages (at most
/// 2 MiB, a third of the smallest such buffer, more memory). Where the kernel refuses the
/// advice (huge pages off, or not Linux) the buffer is ordinary memory: only slower.
///
/// Every buffer must be freed with `deallocate(_:bytes:)` given the byte count it was
/// allocated with: the byte count alone decides how it was allocated (`posix_memalign` and
/// `free` for huge-page buffers, Swift's allocator otherwise), so a buffer kept and handed
/// back for the same byte count (`LargeBufferRecycler`) is freed the same way.
enum OwnedMemory {
    /// Alignment of every owned buffer, in bytes (one cache line, one AVX-512 vector).
    static let alignment = 64
    /// The transparent huge page size on x86-64 and most arm64 Linux kernels.
    static let hugePageBytes = 2 << 20
    /// The smallest buffer given huge pages. Below it, rounding up to a whole huge page would
    /// cost too much memory (a 2.25 MiB attention projection would take 4 MiB).
    static let hugePageMinimumBytes = 4 << 20

    /// Whether a buffer of `bytes` is allocated for huge pages (on 2 MiB boundaries, freed
    /// with `free`): on Linux, from `hugePageMinimumBytes` up.
    static func usesHugePages(bytes: Int) -> Bool {
        #if os(Linux)
            return bytes >= hugePageMinimumBytes
        #else
            return false
        #endif
    }

    /// The bytes actually reserved for a buffer of `bytes`: rounded up to whole huge pages
    /// when it uses them.
    static func reservedBytes(_ bytes: Int) -> Int {
        let bytes = max(bytes, 1)
        guard usesHugePages(bytes: bytes) else { return bytes }
        return (bytes + hugePageBytes - 1) / hugePageBytes * hugePageBytes
    }

    /// `bytes` (at least 1) of uninitialized memory, 64-byte aligned, 2 MiB aligned and advised
    /// for huge pages when `usesHugePages(bytes:)`. Free it with `deallocate(_:bytes:)`.
    static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        precondition(bytes >= 0, "OwnedMemory: negative byte count \(bytes)")
        #if os(Linux)
            if usesHugePages(bytes: bytes) {
                let length = reservedBytes(bytes)
                var p: UnsafeMutableRawPointer? = nil
                if posix_memalign(&p, hugePageBytes, length) == 0, let p {
                    // Refused (huge pages off, an old kernel): the buffer stays ordinary memory.
                    _ = madvise(p, length, Int32(MADV_HUGEPAGE))
                    return p
                }
                // No 2 MiB-aligned block: an ordinary one, from the same allocator (freed alike).
                guard posix_memalign(&p, alignment, length) == 0, let p else {
                    fatalError("OwnedMemory: out of memory allocating \(length) bytes")
                }
                return p
            }
        #endif
        return UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: alignment)
    }

    /// Frees `pointer`, which `allocate(bytes:)` returned for this same `bytes`.
    static func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        #if os(Linux)
            if usesHugePages(bytes: bytes) {
                free(pointer)
                return
            }
        #endif
        pointer.deallocate()
    }
}

/// Weight matrices too small for huge pages of their own (from `minimumBytes` up to
/// `OwnedMemory.hugePageMinimumBytes`), placed side by side in shared huge-page chunks, so
/// that decoding streams them from huge pages as it does the large ones (a model's attention
/// projections are often 1-2.25 MiB).
///
/// For long-lived buffers only: a chunk's space is never reused; the chunk is freed when the
/// last buffer in it goes (each holds its chunk as its owner) and the arena has moved on to a
/// newer chunk. So memory held in the worst case is the live buffers plus one partly used
/// chunk, and whatever dead buffers share chunks with live ones. Pages of a chunk not yet
/// handed out are never touched, so they take no memory. Thread-safe.
final class WeightArena: @unchecked Sendable {
    static let shared = WeightArena()
    /// Bytes per chunk (16 huge pages).
    static let chunkBytes = 32 << 20
    /// The smallest buffer placed in a chunk (smaller weights are few bytes of a model).
    static let minimumBytes = 64 << 10

    /// One chunk's memory (from `OwnedMemory`, on huge pages), freed when the last buffer in it
    /// and the arena let it go.
    final class Chunk: @unchecked Sendable {
        let base = OwnedMemory.allocate(bytes: WeightArena.chunkBytes)
        deinit { OwnedMemory.deallocate(base, bytes: WeightArena.chunkBytes) }
    }

    private let lock = NSLock()
    private var current: Chunk?
    private var used = 0

    /// Whether a buffer of `bytes` goes into a chunk: from `minimumBytes` to below
    /// `OwnedMemory.hugePageMinimumBytes`, where huge pages are used (Linux).
    static func places(bytes: Int) -> Bool {
        bytes >= minimumBytes && bytes < OwnedMemory.hugePageMinimumBytes && OwnedMemory.usesHugePages(bytes: chunkBytes)
    }

    /// `bytes` of uninitialized, 64-byte aligned memory in a chunk, and the chunk, which must
    /// be kept alive while the memory is used; nil when `places(bytes:)` is false.
    func allocate(bytes: Int) -> (base: UnsafeMutableRawPointer, owner: Chunk)? {
        guard Self.places(bytes: bytes) else { return nil }
        let size = (bytes + OwnedMemory.alignment - 1) / OwnedMemory.alignment * OwnedMemory.alignment
        lock.lock()
        defer { lock.unlock() }
        if current == nil || used + size > Self.chunkBytes { (current, used) = (Chunk(), 0) }
        let chunk = current!
        defer { used += size }
        return (chunk.base + used, chunk)
    }
}

extension Tensor {
    /// This tensor, a weight to keep for long: when its scalars are owned and `WeightArena`
    /// places its size, a copy in a huge-page chunk (read-only storage owned by the chunk: a
    /// write copies it out, as for a mapped file's); otherwise itself. Cost: one copy.
    func placedInWeightArena() -> Tensor {
        guard storage.owner == nil, let (base, chunk) = WeightArena.shared.allocate(bytes: count * 4) else { return self }
        let p = base.bindMemory(to: Float.self, capacity: count)
        p.update(from: storage.base, count: count)
        return Tensor(shape: shape, storage: TensorStorage(borrowing: p, count: count, owner: chunk))
    }
}
