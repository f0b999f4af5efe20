/// An n-dimensional array of `Float` scalars in row-major order, with value semantics.
///
/// Copies are O(1) and share storage until one of them is mutated (copy-on-write, like
/// `Array`). The last axis is contiguous: a tensor of shape `[rows, cols]` stores row `r` at
/// scalars `r*cols ..< (r+1)*cols`.
///
/// Misuse (a shape mismatch, an axis or index out of range) stops the program with a
/// `precondition` failure whose message names the shapes involved, as `Array` does for a bad
/// index. Data from outside the program (files, text) is validated where it is read and
/// reported as a thrown error, never as a crash.
public struct Tensor: Sendable {
    /// The extent of each axis. Empty for a scalar (one element).
    public let shape: [Int]
    var storage: TensorStorage

    /// The number of scalars: the product of `shape` (1 for a scalar tensor).
    public var count: Int { storage.count }

    /// The number of axes.
    public var rank: Int { shape.count }

    static func elementCount(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape {
            precondition(d >= 0, "Tensor: negative dimension in shape \(shape)")
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            precondition(!overflow, "Tensor: element count of shape \(shape) overflows Int")
            n = p
        }
        return n
    }

    init(shape: [Int], storage: TensorStorage) {
        precondition(
            Tensor.elementCount(shape) == storage.count,
            "Tensor: shape \(shape) does not match \(storage.count) scalars")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor of the given shape with every scalar equal to `value`. Cost: O(count).
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(repeating: value, count: Tensor.elementCount(shape)))
    }

    /// A tensor of zeros. Cost: O(count).
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }

    /// A tensor holding `scalars` in row-major order; `scalars.count` must equal the product
    /// of `shape`. Cost: O(count).
    public init<C: Collection>(shape: [Int], scalars: C) where C.Element == Float {
        let n = Tensor.elementCount(shape)
        precondition(
            scalars.count == n,
            "Tensor(shape: \(shape), scalars:): \(scalars.count) scalars given, shape needs \(n)")
        self.init(shape: shape, storage: TensorStorage(copying: scalars))
    }

    /// A tensor whose scalars are `body(flatIndex)`, in row-major order. Cost: O(count) calls.
    public init(shape: [Int], generating body: (Int) throws -> Float) rethrows {
        let n = Tensor.elementCount(shape)
        let s = TensorStorage(uninitializedCount: n)
        for i in 0..<n { (s.base + i).initialize(to: try body(i)) }
        self.init(shape: shape, storage: s)
    }

    /// The scalars in row-major order, copied into an array. Cost: O(count).
    public var scalars: [Float] {
        withUnsafeBufferPointer { Array($0) }
    }

    /// Calls `body` with the scalars in row-major order. The pointer is valid only inside
    /// `body`. Cost: O(1).
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        let s = storage
        return try withExtendedLifetime(s) {
            try body(UnsafeBufferPointer(start: s.base, count: s.count))
        }
    }

    /// Calls `body` with mutable access to the scalars, first copying them if the storage is
    /// shared with another tensor or borrowed from a mapped file (copy-on-write).
    /// Cost: O(1), or O(count) for that copy.
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) || storage.owner != nil { storage = storage.copy() }
        let s = storage
        return try withExtendedLifetime(s) {
            try body(UnsafeMutableBufferPointer(start: s.base, count: s.count))
        }
    }

    /// Row-major flat offset of a multi-index, with a bounds check naming the shape.
    func flatIndex(_ index: [Int]) -> Int {
        precondition(
            index.count == shape.count, "Tensor: index \(index) has \(index.count) axes, shape \(shape) has \(shape.count)")
        var flat = 0
        for (axis, i) in index.enumerated() {
            precondition(i >= 0 && i < shape[axis], "Tensor: index \(index) out of range for shape \(shape)")
            flat = flat * shape[axis] + i
        }
        return flat
    }

    /// The scalar at a multi-index (one integer per axis). Cost: O(rank).
    public subscript(index: Int...) -> Float {
        get { storage.base[flatIndex(index)] }
        set {
            let f = flatIndex(index)
            withUnsafeMutableBufferPointer { $0[f] = newValue }
        }
    }

    /// The same scalars viewed with another shape of equal element count. Cost: O(1) (the
    /// storage is shared until one side is mutated). One dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        let inferred = newShape.indices.filter { newShape[$0] == -1 }
        precondition(inferred.count <= 1, "Tensor.reshaped: more than one -1 in \(newShape) (from \(shape))")
        if let axis = inferred.first {
            let known = newShape.enumerated().filter { $0.offset != axis }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "Tensor.reshaped: cannot infer \(newShape) from shape \(shape)")
            resolved[axis] = count / known
        }
        precondition(
            Tensor.elementCount(resolved) == count,
            "Tensor.reshaped: shape \(shape) (\(count) scalars) cannot become \(newShape)")
        return Tensor(shape: resolved, storage: storage)
    }

    /// Rows `range` along the first axis: shape `[range.count] + shape.dropFirst()`.
    /// Cost: O(range.count * row size) (a copy; the result owns its scalars).
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1, "Tensor.rows: a scalar tensor (shape \(shape)) has no rows")
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[0],
            "Tensor.rows: range \(range) out of bounds for shape \(shape)")
        let rowSize = shape.dropFirst().reduce(1, *)
        let out = TensorStorage(uninitializedCount: range.count * rowSize)
        out.base.initialize(from: storage.base + range.lowerBound * rowSize, count: range.count * rowSize)
        return Tensor(shape: [range.count] + shape.dropFirst(), storage: out)
    }
}

extension Tensor: Equatable {
    /// Equal shapes and bitwise-equal scalar values under `==` (so NaN != NaN, 0 == -0).
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        return lhs.withUnsafeBufferPointer { a in rhs.withUnsafeBufferPointer { b in a.elementsEqual(b) } }
    }
}

extension Tensor: CustomStringConvertible {
    /// Shape and the first few scalars, e.g. `Tensor([2, 3]: [0.0, 1.0, 2.0, ...])`.
    public var description: String {
        let head = withUnsafeBufferPointer { $0.prefix(8).map { "\($0)" }.joined(separator: ", ") }
        return "Tensor(\(shape): [\(head)\(count > 8 ? ", ..." : "")])"
    }
}
