// Row operations the models need (gather, scatter, slices, concatenation), so that model and
// layer code never touches a pointer. A "row" is a run of the last axis: a tensor of shape
// [..., w] has count / w rows of w scalars, in row-major order.

extension Tensor {
    /// A tensor whose scalars are not initialized: every one must be written before it is read.
    static func uninitialized(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(uninitializedCount: Tensor.elementCount(shape)))
    }

    /// Width of a row (the last axis), 1 for a scalar tensor.
    private var rowWidth: Int { shape.last ?? 1 }

    /// Rows `ids` of a `[count, w]` table, each multiplied by `scale`: `[ids.count, w]`. Every
    /// id must be in `0 ..< count` (precondition: callers validate user ids before).
    /// Cost: one copy of `ids.count` rows.
    public func gatherRows(_ ids: [Int], scale: Float = 1) -> Tensor {
        precondition(rank == 2, "gatherRows: table \(shape) must be [count, width]")
        let (n, w) = (shape[0], shape[1])
        for id in ids { precondition(id >= 0 && id < n, "gatherRows: row \(id) out of range for \(shape)") }
        let out = TensorStorage(uninitializedCount: ids.count * w)
        withUnsafeBufferPointer { src in
            for (r, id) in ids.enumerated() where w > 0 {
                let from = src.baseAddress! + id * w, to = out.base + r * w
                if scale == 1 {
                    to.initialize(from: from, count: w)
                } else {
                    for c in 0..<w { (to + c).initialize(to: from[c] * scale) }
                }
            }
        }
        return Tensor(shape: [ids.count, w], storage: out)
    }

    /// In place: the rows from row `start` on replaced by the rows of `part` (same row width;
    /// rows counted over all leading axes, so a `[batch, capacity, w]` cache takes a `[steps, w]`
    /// block at row `b * capacity + position`). Cost: one copy of `part`.
    mutating func setRows(from start: Int, _ part: Tensor) {
        let w = rowWidth
        precondition(
            part.rowWidth == w && part.count % max(w, 1) == 0 && start >= 0 && start * w + part.count <= count,
            "setRows: \(part.shape) from row \(start) does not fit \(shape)")
        part.withUnsafeBufferPointer { src in
            withUnsafeMutableBufferPointer { dst in
                guard let d = dst.baseAddress, let s = src.baseAddress else { return }
                (d + start * w).update(from: s, count: src.count)
            }
        }
    }

    /// Columns `range` of every row: `[..., w]` to `[..., range.count]` (a fused QKV
    /// projection's keys and values, say). Cost: one copy of the selected columns.
    public func columns(_ range: Range<Int>) -> Tensor {
        let w = rowWidth
        precondition(
            rank >= 1 && range.lowerBound >= 0 && range.upperBound <= w,
            "Tensor.columns: \(range) out of range for shape \(shape)")
        let rows = w == 0 ? 0 : count / w, n = range.count
        let out = TensorStorage(uninitializedCount: rows * n)
        withUnsafeBufferPointer { src in
            for r in 0..<rows where n > 0 {
                (out.base + r * n).initialize(from: src.baseAddress! + r * w + range.lowerBound, count: n)
            }
        }
        return Tensor(shape: Array(shape.dropLast()) + [n], storage: out)
    }

    /// Matrices (or vectors) stacked along the first axis: `[n_i, ...]` to `[sum n_i, ...]`.
    /// Cost: one copy.
    public static func concatenateRows(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "concatenateRows: no tensors")
        let tail = Array(parts[0].shape.dropFirst())
        for p in parts {
            precondition(
                p.rank >= 1 && Array(p.shape.dropFirst()) == tail, "concatenateRows: shapes \(parts.map(\.shape)) differ past the first axis")
        }
        let total = parts.reduce(0) { $0 + $1.count }
        let out = TensorStorage(uninitializedCount: total)
        var at = 0
        for p in parts {
            p.withUnsafeBufferPointer { src in
                if let s = src.baseAddress { (out.base + at).initialize(from: s, count: src.count) }
            }
            at += p.count
        }
        return Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }] + tail, storage: out)
    }

    /// In place: `other` added to every block of `other.count` scalars (its shape must be a
    /// suffix of this shape: position vectors `[n, d]` onto every batch row of `[b, n, d]`).
    /// Cost: O(count).
    package mutating func addBroadcasting(_ other: Tensor) {
        precondition(
            other.rank <= rank && Array(shape.suffix(other.rank)) == other.shape,
            "addBroadcasting: \(other.shape) is not a suffix of \(shape)")
        let m = other.count
        if m == 0 { return }
        other.withUnsafeBufferPointer { b in
            withUnsafeMutableBufferPointer { a in
                for i in a.indices { a[i] += b[i % m] }
            }
        }
    }

    /// Row `r` (the last axis) of a rank-2 tensor, as an array. Cost: one copy of the row.
    public func row(_ r: Int) -> [Float] {
        precondition(rank == 2 && r >= 0 && r < shape[0], "Tensor.row: row \(r) out of range for \(shape)")
        let w = shape[1]
        return withUnsafeBufferPointer { Array($0[(r * w)..<((r + 1) * w)]) }
    }

    /// In place: row `r` of a rank-2 tensor replaced by `values` (its width). Cost: one copy.
    public mutating func setRow(_ r: Int, _ values: [Float]) {
        precondition(
            rank == 2 && r >= 0 && r < shape[0] && values.count == shape[1],
            "Tensor.setRow: row \(r) of \(values.count) scalars does not fit \(shape)")
        let w = shape[1]
        if w == 0 { return }
        withUnsafeMutableBufferPointer { p in
            values.withUnsafeBufferPointer { (p.baseAddress! + r * w).update(from: $0.baseAddress!, count: w) }
        }
    }

    /// Every scalar replaced by `f` of it. Cost: O(count) calls.
    public func map(_ f: (Float) -> Float) -> Tensor {
        var out = self
        out.withUnsafeMutableBufferPointer { a in
            for i in a.indices { a[i] = f(a[i]) }
        }
        return out
    }
}

extension Tensor {
    /// Softmax over the last axis: `softmax(self * scale + mask)` per row, max-subtracted.
    ///
    /// `mask`, if given, has the shape of `self` or of its last axis alone (`[n]`, shared by
    /// every row) and is added after scaling (use `-inf` to exclude a position). A row whose
    /// every term is `-inf` gives zeros, never NaN; a NaN term makes its row NaN.
    /// Cost: O(count), three passes per row, parallel over rows.
    public func softmax(scale: Float = 1, mask: Tensor? = nil, compute: Compute = .default) -> Tensor {
        var out = Tensor.zeros(shape)
        softmax(scale: scale, mask: mask, into: &out, compute: compute)
        return out
    }

    /// ``softmax(scale:mask:compute:)`` written into `output`, a tensor of the same shape
    /// (no allocation when `output`'s storage is not shared). Cost: O(count).
    public func softmax(scale: Float = 1, mask: Tensor? = nil, into out: inout Tensor, compute: Compute = .default) {
        precondition(out.shape == shape, "softmax(into:): output shape \(out.shape) differs from input shape \(shape)")
        precondition(rank >= 1, "softmax: a scalar tensor (shape \(shape)) has no last axis")
        let n = shape[rank - 1]
        let rows = n == 0 ? 0 : count / n
        var maskRowStride = 0
        if let mask {
            if mask.shape == shape {
                maskRowStride = n
            } else {
                precondition(mask.shape == [n], "softmax: mask shape \(mask.shape) must be \(shape) or [\(n)]")
            }
        }
        if rows == 0 { return }
        let empty = Tensor.zeros([1])
        withUnsafeBufferPointer { x in
            (mask ?? empty).withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { y in
                    let mp = mask == nil ? nil : m.baseAddress
                    softmaxRows(
                        backend: compute.backend, rows: rows, n: n, x: x.baseAddress!, y: y.baseAddress!,
                        scale: scale, mask: mp, maskRowStride: maskRowStride, threads: compute.threads)
                }
            }
        }
    }
}
