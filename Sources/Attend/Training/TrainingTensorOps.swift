// Element-wise helpers of the training passes, split over the compute's threads: zeroed
// accumulators, in-place sums of gradients, bias gradients (column sums). Every result is
// element-wise or sums each column in row order, so the bits do not depend on the split or
// the thread count, and equal a plain serial loop's.

extension Tensor {
    /// Elements per parallel piece of the element-wise helpers (a multiple of every vector width).
    static let trainingChunk = 1 << 16

    /// A tensor of zeros, filled over `compute.threads` threads (the first touch of fresh
    /// pages then runs in parallel too). Cost: one write pass.
    static func zeros(_ shape: [Int], compute: Compute) -> Tensor { zeros(shape, threads: compute.threads) }

    /// ``zeros(_:compute:)`` over `threads` threads.
    static func zeros(_ shape: [Int], threads: Int) -> Tensor {
        var t = Tensor.uninitialized(shape)
        let n = t.count
        t.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return }
            forTrainingChunks(n, threads) { lo, c in (base + lo).initialize(repeating: 0, count: c) }
        }
        return t
    }

    /// In place: `self += other` (same element count), over `compute.threads` threads.
    /// Cost: one pass.
    mutating func add(_ other: Tensor, compute: Compute) {
        precondition(count == other.count, "Tensor.add: \(shape) and \(other.shape) differ in size")
        let n = count
        other.withUnsafeBufferPointer { b in
            withUnsafeMutableBufferPointer { a in
                guard let ab = a.baseAddress, let bb = b.baseAddress else { return }
                Tensor.forTrainingChunks(n, compute.threads) { lo, c in
                    let x = ab + lo, y = bb + lo
                    for i in 0..<c { x[i] += y[i] }
                }
            }
        }
    }

    /// `a + b` (same element count; `a`'s shape), over `compute.threads` threads. Cost: one pass.
    static func sum(_ a: Tensor, _ b: Tensor, compute: Compute) -> Tensor {
        precondition(a.count == b.count, "Tensor.sum: \(a.shape) and \(b.shape) differ in size")
        var out = Tensor.uninitialized(a.shape)
        let n = a.count
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { op in
                    guard let x = ap.baseAddress, let y = bp.baseAddress, let o = op.baseAddress else { return }
                    forTrainingChunks(n, compute.threads) { lo, c in
                        for i in lo..<(lo + c) { o[i] = x[i] + y[i] }
                    }
                }
            }
        }
        return out
    }

    /// `body(lo, n)` for consecutive pieces of ``trainingChunk`` elements of `0..<count`.
    static func forTrainingChunks(_ count: Int, _ threads: Int, _ body: (Int, Int) -> Void) {
        let chunks = (count + trainingChunk - 1) / trainingChunk
        parallelFor(chunks, threads: threads) { c in
            let lo = c * trainingChunk
            body(lo, min(trainingChunk, count - lo))
        }
    }
}

extension TrainingOps {
    /// Adds the column sums of `g` (`rows` rows of `n` floats at stride `ld`) onto `into`
    /// (`n` floats): `into[c] += g[r][c]` for r in order, so each column's bits are a serial
    /// loop's. Split over column blocks (the bias gradient of a linear layer).
    /// Cost: one pass over `g`.
    static func addColumnSums(_ g: UnsafePointer<Float>, rows: Int, n: Int, ld: Int, into: UnsafeMutablePointer<Float>, compute: Compute) {
        precondition(rows >= 0 && n >= 0 && ld >= n, "addColumnSums: rows \(rows), n \(n), ld \(ld)")
        if rows == 0 || n == 0 { return }
        // Blocks of whole vectors, enough for every thread when the work pays for it.
        let threads = rows * n >= 1 << 16 ? compute.threads : 1
        let block = max(16, ((n + threads - 1) / threads + 15) / 16 * 16)
        parallelFor((n + block - 1) / block, threads: threads) { b in
            let c0 = b * block, w = min(block, n - c0)
            let out = into + c0
            for r in 0..<rows {
                let src = g + r * ld + c0
                for c in 0..<w { out[c] += src[c] }
            }
        }
    }
}

extension ParameterSet {
    /// ``zerosLike()`` with the zeros written over `compute.threads` threads.
    func zerosLike(compute: Compute) -> ParameterSet {
        ParameterSet(entries.map { ($0.name, Tensor.zeros($0.tensor.shape, compute: compute)) })
    }
}
