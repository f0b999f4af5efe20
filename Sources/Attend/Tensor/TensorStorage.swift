// The one layer that touches raw memory. Everything above works with `Tensor` values and
// `withUnsafe...` scopes; pointers never escape those scopes.

/// Buffer of float32 scalars behind `Tensor`'s copy-on-write value semantics: either owned
/// (heap, 64-byte aligned: one cache line, one AVX-512 vector) or borrowed from an owner
/// object that keeps it alive, such as a memory-mapped checkpoint file (then read-only and
/// only 4-byte aligned; no kernel relies on more for its inputs).
final class TensorStorage: @unchecked Sendable {
    /// Alignment of every owned tensor buffer, in bytes.
    static let alignment = 64

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
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: Self.alignment)
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
        if owner == nil { UnsafeMutableRawPointer(base).deallocate() }
    }
}
