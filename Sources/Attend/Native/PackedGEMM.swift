import Foundation
internal import CKernels

// Products with a weight packed once into the GEMM micro-kernel's B layout
// (`ck_f32_pack_weight`, `ck_f32_gemm_packed` in core/gemm.c, which share the general
// driver's macro-kernel and edge handling). Swift keeps what the C contract leaves to it:
// validation, the choice of path and the split over threads.

/// A `[n, k]` weight (PyTorch `Linear` layout) packed for one native kernel variant.
/// Memory: `ceil(n / nr) * nr * k` floats, about the size of the weight.
struct PackedWeight: @unchecked Sendable {
    let variant: KernelVariant
    let n: Int
    let k: Int
    /// 64-byte aligned, `ck_f32_packed_weight_size` floats (at least 1).
    let storage: TensorStorage

    /// Micro-panels of `nr` weight rows.
    var panels: Int { (n + nr - 1) / nr }
    var nr: Int { Int(variant.kernels.pointee.gemm.nr) }

    /// Packs `weight` `[n, k]` for `variant`, parallel over micro-panels. Cost: one read and
    /// one write of the weight.
    init(_ weight: Tensor, variant: KernelVariant, threads: Int) {
        precondition(weight.rank == 2, "PackedWeight: weight \(weight.shape) must be [out, in]")
        let kern = variant.kernels
        let (n, k) = (weight.shape[0], weight.shape[1])
        let size = ck_f32_packed_weight_size(kern, n, k)
        let storage = TensorStorage(uninitializedCount: max(1, size))
        let nr = Int(kern.pointee.gemm.nr), panels = (n + nr - 1) / nr
        if size > 0 {
            weight.withUnsafeBufferPointer { w in
                let parts = max(1, min(threads, panels, size >> 16))
                let per = (panels + parts - 1) / parts
                parallelFor(parts, threads: parts) { part in
                    ck_f32_pack_weight(kern, n, k, w.baseAddress!, k, part * per, min(panels, (part + 1) * per), storage.base)
                }
            }
        }
        (self.variant, self.n, self.k, self.storage) = (variant, n, k, storage)
    }
}

/// A weight's packed copies, one per kernel variant, made the first time a product on that
/// variant needs one and kept for the weight's lifetime (a `Linear` owns one: its weight is
/// immutable). Thread-safe: concurrent first calls pack once. Holds a recycling token: while
/// any layer lives, large activation buffers of recurring sizes are reused (`LargeBufferRecycler`).
final class PackedWeightCache: @unchecked Sendable {
    private let lock = NSLock()
    private var packed: [KernelVariant: PackedWeight] = [:]
    private let recycling = LargeBufferRecycler.Token()

    init() {}

    /// The packing of `weight` for `variant` (packing it now, on `threads`, if it is new).
    func packed(_ weight: Tensor, variant: KernelVariant, threads: Int) -> PackedWeight {
        lock.lock()
        defer { lock.unlock() }
        if let p = packed[variant] { return p }
        let p = PackedWeight(weight, variant: variant, threads: threads)
        packed[variant] = p
        return p
    }

    /// Variants packed so far (for tests).
    var variants: [KernelVariant] {
        lock.lock()
        defer { lock.unlock() }
        return Array(packed.keys)
    }
}

/// What a packed product adds after the matrix product, per tile while it is in cache
/// (`ck_gemm_epilogue`): `C = act(C + bias) + residual`.
struct GEMMEpilogue {
    /// One float per column of C (already offset to C's first column), or nil.
    var bias: UnsafePointer<Float>? = nil
    var activation: Activation? = nil
    /// A matrix shaped like C (row stride `ldr`) that does not alias it, or nil.
    var residual: UnsafePointer<Float>? = nil
    var ldr: Int = 0
}

/// The row blocks of one packed product (``packedGEMM``, and the items of
/// ``sharedPackedGEMM(kernels:m:n:k:a:lda:transA:b:ldb:transB:beta:c:ldc:threads:)``): the
/// rows' `mr`-row tiles dealt out evenly over `count` blocks (so every block but the last is a whole number of tiles, as
/// `ck_f32_gemm_packed` needs with a packed A). Cut at every `mc` rows instead, 1150 rows at
/// mc 126 made nine blocks of 126 and one of 16, and on 2 threads one thread was left with a
/// whole block while the other waited (4.5-5.5% of a 2-thread MiniLM pass spinning at the
/// end of the products, 2.1-3.7% with even blocks; MiniLM's FFN products of 1150 rows on
/// 2 threads 175-177 -> 184-189 GFLOP/s on Zen 3). Cost: none beyond the division per block.
struct PackedGEMMRowBlocks {
    let m: Int, mr: Int, tiles: Int, count: Int

    /// `count` (at least 1, at most the tile count) even blocks of `m` rows.
    init(m: Int, mr: Int, count: Int) {
        self.m = m
        self.mr = mr
        tiles = (m + mr - 1) / mr
        self.count = max(1, min(count, tiles))
    }

    /// The fewest even blocks of at most `mc` rows.
    init(m: Int, mr: Int, mc: Int) {
        let tiles = (m + mr - 1) / mr, perBlock = max(1, mc / mr)
        self.init(m: m, mr: mr, count: (tiles + perBlock - 1) / perBlock)
    }

    /// The rows of the largest block.
    var maxRows: Int { min(m, (tiles + count - 1) / count * mr) }

    /// Rows `[i0, i1)` of block `b` (`0 ..< count`).
    func rows(_ b: Int) -> (Int, Int) {
        let t0 = b * tiles / count, t1 = (b + 1) * tiles / count
        return (min(m, t0 * mr), min(m, t1 * mr))
    }
}

/// `C = act(beta * C + A · W[columns]ᵀ + bias) + residual`, A `[m, k]` (row stride `lda`),
/// W the packed weight, `columns` the weight rows used (its lower bound a multiple of the
/// variant's nr), C `[m, columns.count]` (row stride `ldc`).
///
/// The split: work is cut into even row blocks of at most mc rows (``PackedGEMMRowBlocks``,
/// as many items as a multiple of the threads) x groups of weight micro-panels, so a short A
/// still uses every thread. The C driver reads full row tiles of A in place; where it cannot
/// (a row stride of a multiple of 4 KiB) and several items share a row block, all of A is
/// packed once up front (`ck_f32_pack_a_rows`, split over the threads) instead of by every
/// item. Each C element is summed by one thread in the same order whatever the split.
/// Cost: `2 m n k` flops (plus one packing of A for such strides).
func packedGEMM(
    a: UnsafePointer<Float>, lda: Int, m: Int, weight w: PackedWeight, columns: Range<Int>,
    c: UnsafeMutablePointer<Float>, ldc: Int, beta: Float, epilogue: GEMMEpilogue = GEMMEpilogue(),
    threads: Int
) {
    let kern = w.variant.kernels
    let g = kern.pointee.gemm
    let nr = Int(g.nr), mr = Int(g.mr), mc = Int(g.mc)
    let n = columns.count, k = w.k
    precondition(
        columns.lowerBound >= 0 && columns.upperBound <= w.n && columns.lowerBound % nr == 0,
        "packedGEMM: columns \(columns) of a [\(w.n), \(k)] weight must start at a multiple of \(nr)")
    precondition(
        lda >= k && ldc >= n && (epilogue.residual == nil || epilogue.ldr >= n),
        "packedGEMM: lda \(lda) < k \(k), ldc \(ldc) or ldr \(epilogue.ldr) < n \(n)")
    if m == 0 || n == 0 { return }
    let panels = (n + nr - 1) / nr
    let flops = 2 * m * n * max(k, 1)
    // No B packing to amortize, so smaller products are worth splitting than in nativeGEMM.
    let useThreads = max(1, min(threads, flops / (1 << 20)))
    var blocks = PackedGEMMRowBlocks(m: m, mr: mr, mc: mc)
    // Enough items for every thread (a few per thread for balance), never splitting a panel.
    let nChunks = useThreads == 1 ? 1 : max(1, min(panels, (4 * useThreads + blocks.count - 1) / blocks.count))
    if (blocks.count * nChunks) % useThreads != 0 {
        // Items in a multiple of the threads (even blocks, each at most mc rows).
        blocks = PackedGEMMRowBlocks(m: m, mr: mr, count: (blocks.count + useThreads - 1) / useThreads * useThreads)
    }
    let mBlocks = blocks.count
    let panelsPerChunk = (panels + nChunks - 1) / nChunks
    var sharedA: UnsafeMutablePointer<Float>? = nil
    var sharedAStorage: TensorStorage? = nil  // owned storage: large ones are recycled, not mapped afresh per call
    if nChunks > 1 && k > 0 && ck_f32_gemm_packed_reads_a_in_place(lda) == 0 {
        let storage = TensorStorage(uninitializedCount: ck_f32_packed_a_size(kern, m, k))
        (sharedAStorage, sharedA) = (storage, storage.base)
        // Packed by all the product's threads, in whole mr-row panels (a serial pack left
        // the other threads waiting ~1.5% of a 2-thread prefill).
        let tiles = blocks.tiles
        let parts = min(tiles, 2 * useThreads), dst = sharedA!
        parallelFor(parts, threads: useThreads) { part in
            let t0 = part * tiles / parts, t1 = (part + 1) * tiles / parts
            ck_f32_pack_a_rows(kern, m, k, a, lda, t0 * mr, t1 * mr, dst)
        }
    }
    var args = ck_gemm_packed(
        m: m, n: n, k: k, a: a, lda: lda, packed_a: sharedA.map { UnsafePointer($0) },
        packed_w: UnsafePointer(w.storage.base), weight_n: w.n, weight_col0: columns.lowerBound, c: c, ldc: ldc, beta: beta,
        epilogue: ck_gemm_epilogue(
            bias: epilogue.bias, activation: epilogue.activation?.cKind ?? Int32(CK_ACT_NONE),
            residual: epilogue.residual, ldr: epilogue.ldr), trans_a: 0)
    let wsCount = sharedA == nil ? ck_f32_gemm_packed_workspace(kern, min(m, mc), k) : 1
    withExtendedLifetime((w.storage, sharedAStorage)) {
        withUnsafePointer(to: &args) { ap in
            parallelFor(mBlocks * nChunks, threads: useThreads) { item in
                let mb = item / nChunks, chunk = item % nChunks
                let (i0, i1) = blocks.rows(mb)
                let j0 = chunk * panelsPerChunk, j1 = min(panels, j0 + panelsPerChunk)
                if j0 >= j1 { return }
                let ws = UnsafeMutablePointer<Float>.allocate(capacity: wsCount)
                defer { ws.deallocate() }
                ck_f32_gemm_packed(kern, ap, i0, i1, j0, j1, ws)
            }
        }
    }
}

/// Scalars of an int8 weight a product off the int8 kernels dequantizes at a time (256 KiB).
let int8DequantizedBlockScalars = 1 << 16

/// `act(x W[outputs]ᵀ + b[outputs]) + residual` for `x` `[..., in]`: the forward pass of a
/// ``Linear``, as `[..., outputs.count]`.
///
/// Path: on a native backend with more than ``gemvMaxRows(_:)`` rows, a float32 weight and
/// `outputs` starting at a multiple of the variant's nr, the product runs on the weight packed
/// once per variant (`cache`) with the bias, activation and residual fused into its epilogue;
/// a 16-bit weight runs the 16-bit GEMV or GEMM (``halfWeightGEMM``: the weight stays 16-bit,
/// widened in registers, and is never packed ahead); an int8 weight (here only off the
/// native variants) runs one SGEMM per block of rows dequantized; otherwise one SGEMM (GEMV for
/// a row or two). Outside the fused epilogue the output starts as the bias rows (beta = 1), then the
/// activation and the residual are separate passes. Cost: `2 * rows * in * outputs.count` flops.
func linearForward(
    _ x: Tensor, weight storage: WeightStorage, bias: Tensor?, outputs: Range<Int>, cache: PackedWeightCache,
    activation: Activation?, residual: Tensor?, compute: Compute
) -> Tensor {
    let k = storage.shape[1]
    let rows = k == 0 ? x.shape.dropLast().reduce(1, *) : x.count / k
    let n = outputs.count
    let outShape = Array(x.shape.dropLast()) + [n]
    if let residual {
        precondition(
            residual.count == rows * n && residual.shape.last == n,
            "Linear: residual \(residual.shape) must hold \(rows) rows of \(n) (output \(outShape))")
    }
    if case .parts(let parts) = storage {
        return linearForwardParts(x, parts: parts, outputs: outputs, activation: activation, residual: residual, compute: compute)
    }
    var out = Tensor.uninitialized(outShape)
    if rows == 0 || n == 0 { return out }
    if case .float32(let weight) = storage, case .native(let variant) = compute.backend, rows > gemvMaxRows(variant.kernels),
        outputs.lowerBound % Int(variant.kernels.pointee.gemm.nr) == 0
    {
        let packed = cache.packed(weight, variant: variant, threads: compute.threads)
        let none = Tensor.zeros([1])
        x.withUnsafeBufferPointer { xp in
            (bias ?? none).withUnsafeBufferPointer { bp in
                (residual ?? none).withUnsafeBufferPointer { rp in
                    out.withUnsafeMutableBufferPointer { op in
                        let ep = GEMMEpilogue(
                            bias: bias == nil ? nil : bp.baseAddress! + outputs.lowerBound, activation: activation,
                            residual: residual == nil ? nil : rp.baseAddress!, ldr: n)
                        packedGEMM(
                            a: xp.baseAddress ?? UnsafePointer(op.baseAddress!), lda: k, m: rows, weight: packed,
                            columns: outputs, c: op.baseAddress!, ldc: n, beta: 0, epilogue: ep, threads: compute.threads)
                    }
                }
            }
        }
        return out
    }
    out.withUnsafeMutableBufferPointer { o in
        let ob = o.baseAddress!
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for r in 0..<rows { (ob + r * n).update(from: b.baseAddress! + outputs.lowerBound, count: n) }
            }
        }
        x.withUnsafeBufferPointer { xp in
            switch storage {
            case .float32(let weight):
                weight.withUnsafeBufferPointer { wp in
                    let w = UnsafeBufferPointer(rebasing: wp[(outputs.lowerBound * k)...])
                    gemm(
                        alpha: 1, a: xp, MatrixOperand(rows: rows, cols: k, ld: max(k, 1), transposed: false),
                        b: w, MatrixOperand(rows: k, cols: n, ld: max(k, 1), transposed: true),
                        beta: bias == nil ? 0 : 1, c: o, ldc: n, compute: compute)
                }
            case .half(let h):
                precondition(xp.count >= rows * k, "Linear: input holds \(xp.count) scalars, needs \(rows * k)")
                halfWeightGEMM(
                    a: xp.baseAddress ?? UnsafePointer(ob), lda: max(k, 1), m: rows, weight: h, columns: outputs,
                    c: ob, ldc: n, beta: bias == nil ? 0 : 1, compute: compute)
            case .parts:
                preconditionFailure("linearForward: a weight in blocks of rows runs linearForwardParts")
            case .int8(let q):
                // (Native variants run int8 weights on the int8 kernels, Linear.forward.) Blocks
                // of rows dequantized into about 256 KiB at a time: the float weight never
                // exists whole.
                let block = max(1, min(n, int8DequantizedBlockScalars / max(k, 1)))
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(1, block * k))
                defer { buffer.deallocate() }
                for j0 in stride(from: 0, to: n, by: block) {
                    let j1 = min(n, j0 + block)
                    q.dequantizeRows((outputs.lowerBound + j0)..<(outputs.lowerBound + j1), into: buffer)
                    gemm(
                        alpha: 1, a: xp, MatrixOperand(rows: rows, cols: k, ld: max(k, 1), transposed: false),
                        b: UnsafeBufferPointer(start: buffer, count: (j1 - j0) * k),
                        MatrixOperand(rows: k, cols: j1 - j0, ld: max(k, 1), transposed: true),
                        beta: bias == nil ? 0 : 1, c: UnsafeMutableBufferPointer(rebasing: o[j0...]), ldc: n, compute: compute)
                }
            }
        }
    }
    if let activation { out.apply(activation, compute: compute) }
    if let residual { out += residual.reshaped(outShape) }
    return out
}

/// `activation(x Wᵀ + b) + residual` over a weight held in blocks of rows of different
/// formats (`WeightStorage.parts`): each block's own product (its bias included, on its
/// format's kernels) over the rows of `outputs` it holds, written into its columns of the
/// output; one block's outputs alone run its product with the activation and residual
/// fused. `[..., in]` to `[..., outputs.count]`. Cost: the blocks' products
/// (`2 * rows * in * outputs.count` flops in all) plus one copy of the output when more than
/// one block takes part.
func linearForwardParts(
    _ x: Tensor, parts: [Linear], outputs: Range<Int>, activation: Activation?, residual: Tensor?, compute: Compute
) -> Tensor {
    var spans: [(part: Linear, rows: Range<Int>, column: Int)] = []
    var start = 0
    for part in parts {
        let end = start + part.outFeatures
        let lo = max(start, outputs.lowerBound), hi = min(end, outputs.upperBound)
        if lo < hi { spans.append((part, (lo - start)..<(hi - start), lo - outputs.lowerBound)) }
        start = end
    }
    if spans.count == 1 {
        return spans[0].part.forward(x, outputs: spans[0].rows, activation: activation, residual: residual, compute: compute)
    }
    let n = outputs.count
    let outShape = Array(x.shape.dropLast()) + [n]
    var out = Tensor.uninitialized(outShape)
    let rows = outShape.dropLast().reduce(1, *)
    out.withUnsafeMutableBufferPointer { o in
        for span in spans {
            let piece = span.part.forward(x, outputs: span.rows, compute: compute)
            let w = span.rows.count
            piece.withUnsafeBufferPointer { p in
                for r in 0..<rows { (o.baseAddress! + r * n + span.column).update(from: p.baseAddress! + r * w, count: w) }
            }
        }
    }
    if let activation { out.apply(activation, compute: compute) }
    if let residual { out += residual.reshaped(outShape) }
    return out
}

/// Floats added to each row of the feed-forward block's hidden activation when its width is a
/// multiple of 1024 floats (4 KiB): with that stride the rows of a row tile fall into the same
/// L1 sets, so the down projection's product packs A up front (one more pass over the
/// activation); 16 floats (64 bytes) more per row spread them over the sets, and the product
/// reads the rows in place.
let feedForwardHiddenPadding = 16

/// The plain (non-gated) feed-forward block `down(act(up(x) + b1)) + b2 + residual` as two
/// packed products around a hidden activation whose rows are padded by
/// ``feedForwardHiddenPadding`` floats, or nil when that path does not apply: it needs a native
/// backend, float32 weights, more than ``gemvMaxRows(_:)`` rows and a hidden width whose rows
/// `ck_f32_gemm_packed` would not read in place (a multiple of 4 KiB); otherwise the caller runs
/// the two ``Linear`` products. Every output element is the same sum, in the same order, as
/// through the unpadded hidden tensor (only where A's rows are read from changes).
/// Shapes: `x` `[..., d]`, `residual` (if any) `d` per row, result `[..., d]`. Cost: the two
/// products, `4 * rows * d * dFF` flops; memory `rows * (dFF + 16)` floats for the hidden rows.
func paddedFeedForward(_ x: Tensor, up: Linear, down: Linear, activation: Activation, residual: Tensor?, compute: Compute) -> Tensor? {
    guard case .native(let variant) = compute.backend, case .float32(let upWeight) = up.storage,
        case .float32(let downWeight) = down.storage
    else { return nil }
    let d = up.inFeatures, f = up.outFeatures, e = down.outFeatures
    precondition(x.rank >= 1 && x.shape.last == d, "Linear: input \(x.shape) does not end in inFeatures \(d) (weight \(up.weightShape))")
    let rows = d == 0 ? 0 : x.count / d
    guard rows > gemvMaxRows(variant.kernels), d > 0, f > 0, e > 0, ck_f32_gemm_packed_reads_a_in_place(f) == 0 else { return nil }
    let ld = f + feedForwardHiddenPadding
    precondition(ck_f32_gemm_packed_reads_a_in_place(ld) != 0, "paddedFeedForward: padded stride \(ld) not read in place")
    if let residual {
        precondition(
            residual.count == rows * e && residual.shape.last == e,
            "Linear: residual \(residual.shape) must hold \(rows) rows of \(e) (output \(Array(x.shape.dropLast()) + [e]))")
    }
    let threads = compute.threads
    let upPacked = up.packed.packed(upWeight, variant: variant, threads: threads)
    let downPacked = down.packed.packed(downWeight, variant: variant, threads: threads)
    let hidden = TensorStorage(uninitializedCount: rows * ld)
    var out = Tensor.uninitialized(Array(x.shape.dropLast()) + [e])
    let none = Tensor.zeros([1])
    withExtendedLifetime(hidden) {
        x.withUnsafeBufferPointer { xp in
            (up.bias ?? none).withUnsafeBufferPointer { b1 in
                packedGEMM(
                    a: xp.baseAddress!, lda: d, m: rows, weight: upPacked, columns: 0..<f, c: hidden.base, ldc: ld, beta: 0,
                    epilogue: GEMMEpilogue(bias: up.bias == nil ? nil : b1.baseAddress!, activation: activation), threads: threads)
            }
        }
        (down.bias ?? none).withUnsafeBufferPointer { b2 in
            (residual ?? none).withUnsafeBufferPointer { rp in
                out.withUnsafeMutableBufferPointer { op in
                    packedGEMM(
                        a: UnsafePointer(hidden.base), lda: ld, m: rows, weight: downPacked, columns: 0..<e, c: op.baseAddress!, ldc: e,
                        beta: 0,
                        epilogue: GEMMEpilogue(
                            bias: down.bias == nil ? nil : b2.baseAddress!, residual: residual == nil ? nil : rp.baseAddress!, ldr: e),
                        threads: threads)
                }
            }
        }
    }
    return out
}
