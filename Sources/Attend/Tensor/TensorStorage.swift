// The one layer that touches raw memory. Everything above works with `Tensor` values and
// `withUnsafe...` scopes; pointers never escape those scopes.

import Foundation

/// Buffer of float32 scalars behind `Tensor`'s copy-on-write value semantics: either owned
/// (`OwnedMemory`: 64-byte aligned, one cache line, one AVX-512 vector; large ones on huge
/// pages where the OS gives them) or borrowed from an owner
/// object that keeps it alive, such as a memory-mapped checkpoint file (then read-only and
/// only 4-byte aligned; no kernel relies on more for its inputs).
final class TensorStorage: @unchecked Sendable {
    /// Alignment of every owned tensor buffer, in bytes.
    static let alignment = OwnedMemory.alignment

    let count: Int
    let base: UnsafeMutablePointer<Float>
    /// The object whose lifetime keeps borrowed scalars valid; nil for owned storage.
    /// Borrowed storage is never written: `Tensor` copies it before its first mutation.
    let owner: AnyObject?

    /// Scalars owned by `owner` (read-only, valid while `owner` lives), not copied.
    init(borrowing base: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.count = count
        self.base = UnsafeMutablePointer(mutating: base)
        self.owner = owner
    }

    /// Uninitialized storage for `count` scalars (callers initialize before reading).
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative scalar count \(count)")
        self.count = count
        self.owner = nil
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = LargeBufferRecycler.shared.take(bytes: bytes)
            ?? OwnedMemory.allocate(bytes: bytes)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        base.initialize(repeating: value, count: count)
    }

    convenience init<C: Collection>(copying scalars: C) where C.Element == Float {
        self.init(uninitializedCount: scalars.count)
        var p = base
        for x in scalars {
            p.initialize(to: x)
            p += 1
        }
    }

    /// A copy of this storage (the "copy" in copy-on-write).
    func copy() -> TensorStorage {
        let s = TensorStorage(uninitializedCount: count)
        s.base.initialize(from: base, count: count)
        return s
    }

    deinit {
        guard owner == nil else { return }
        let raw = UnsafeMutableRawPointer(base)
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if !LargeBufferRecycler.shared.keep(raw, bytes: bytes) { OwnedMemory.deallocate(raw, bytes: bytes) }
    }
}

/// Large owned buffers kept for reuse while a model is being trained.
///
/// A training step allocates the same large activations and gradients every step (a base
/// encoder's feed-forward tensors are 32 MiB each, two dozen a step). The C allocator maps
/// every request of 32 MiB and more afresh and unmaps it on free, so each step faulted in and
/// zeroed hundreds of thousands of pages again. While at least one trainable model is alive
/// (each holds a ``Token``), buffers of ``minimumBytes`` and more are kept on free, up to
/// ``maximumBytes`` in all, and handed back to the next request of the same size; when the last
/// token goes, every kept buffer is freed. Outside training nothing is kept. A kept buffer's
/// scalars are whatever its last tensor left: storage made uninitialized is written before it
/// is read, as with fresh memory.
final class LargeBufferRecycler: @unchecked Sendable {
    static let shared = LargeBufferRecycler()
    /// The smallest buffer kept by default: the size from which glibc maps each request afresh.
    static let defaultMinimumBytes = 32 << 20
    /// The most kept at once (beyond what is in use).
    static let maximumBytes = 512 << 20

    private let lock = NSLock()
    private var tokens = 0
    private var kept: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
    private var keptBytes = 0
    private var minimum = LargeBufferRecycler.defaultMinimumBytes

    /// The smallest buffer kept (tests lower it to recycle small models' buffers).
    var minimumBytes: Int {
        get { lock.withLock { minimum } }
        set { lock.withLock { minimum = newValue } }
    }

    /// Held by a trainable model for its lifetime: while any is alive, large buffers are recycled.
    final class Token: @unchecked Sendable {
        init() { LargeBufferRecycler.shared.retain() }
        deinit { LargeBufferRecycler.shared.release() }
    }

    private func retain() {
        lock.lock()
        tokens += 1
        lock.unlock()
    }

    private func release() {
        lock.lock()
        tokens -= 1
        var drained: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
        if tokens == 0 { (drained, kept, keptBytes) = (kept, [], 0) }
        lock.unlock()
        for d in drained { OwnedMemory.deallocate(d.pointer, bytes: d.bytes) }
    }

    /// A kept buffer of exactly `bytes` (made by `OwnedMemory.allocate(bytes:)` for `bytes`), or nil.
    func take(bytes: Int) -> UnsafeMutableRawPointer? {
        lock.lock()
        defer { lock.unlock() }
        guard bytes >= minimum, let i = kept.lastIndex(where: { $0.bytes == bytes }) else { return nil }
        keptBytes -= bytes
        return kept.remove(at: i).pointer
    }

    /// Keeps `pointer` (from `OwnedMemory.allocate(bytes:)` for this `bytes`) for reuse when
    /// recycling is on and there is room; false: the caller frees it. Kept buffers are freed
    /// with `OwnedMemory.deallocate(_:bytes:)` for the same `bytes`.
    func keep(_ pointer: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard bytes >= minimum, tokens > 0, keptBytes + bytes <= Self.maximumBytes else { return false }
        kept.append((pointer, bytes))
        keptBytes += bytes
        return true
    }

    /// Bytes kept now (for tests).
    var keptByteCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return keptBytes
    }
}
