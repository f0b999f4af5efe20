// The one layer that touches raw memory. Everything above works with `Tensor` values and
// `withUnsafe...` scopes; pointers never escape those scopes.

/// Heap buffer of float32 scalars, 64-byte aligned (one cache line, one AVX-512 vector).
/// Reference type behind `Tensor`'s copy-on-write value semantics.
final class TensorStorage: @unchecked Sendable {
    /// Alignment of every tensor buffer, in bytes.
    static let alignment = 64

    let count: Int
    let base: UnsafeMutablePointer<Float>

    /// Uninitialized storage for `count` scalars (callers initialize before reading).
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative scalar count \(count)")
        self.count = count
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
        UnsafeMutableRawPointer(base).deallocate()
    }
}
