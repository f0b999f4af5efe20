/// Keys and values of one attention layer for a batch, kept for incremental decoding: the
/// decoder's self-attention appends one step at a time; cross-attention computes them once
/// per source.
///
/// Storage: `[batch, capacity, 2 * modelDim]` (`modelDim` here is the attention's inner
/// width, heads x head size) with the keys in the first `modelDim` columns
/// of each row and the values in the rest (the layout the fused K/V projection writes), so
/// appending a step is one row copy per batch row and the attention kernel reads keys and
/// values in place. A fixed memory's keys and values on a native backend
/// (``MultiHeadAttention/keysValues(of:precision:compute:)``) are stored head by head instead (same
/// size; see `setHeadMajor`), and so are a decoder-only model's appended ones
/// (`init(batch:modelDim:capacity:appendingHeadMajor:)`). Capacity doubles as needed. Cost of an append: O(batch * steps * d), plus
/// an occasional O(filled) copy when growing.
public struct AttentionKV: Sendable {
    /// Batch rows.
    public let batch: Int
    /// Model width (heads x head size).
    public let modelDim: Int
    /// Positions filled so far.
    public private(set) var count: Int
    var storage: Tensor  // [batch, capacity, 2 * modelDim]
    /// A fixed float32 memory's keys and values packed for the fused kernel on first use
    /// (``MultiHeadAttention/keysValues(of:precision:compute:)``; decoding one or two queries
    /// at a time never packs them); cleared by any append.
    var packer: LazyPackedKeysValues? = nil
    /// The packed keys and values if an attention has made them, else nil.
    var packed: PackedKeysValues? { packer?.packedIfMade }
    /// The keys and values in bfloat16, head by head (`HalfKeysValues`): a fixed memory held
    /// in bfloat16 (``MemoryPrecision``, ``MultiHeadAttention/keysValues(of:precision:compute:)``).
    /// Then `storage` holds no floats (shape `[batch, count, 0]`): the attention reads these,
    /// and a path that needs float32 widens them (``floatStorage()``).
    private(set) var half: HalfKeysValues? = nil
    /// Head size when `storage` holds a fixed memory head by head (``setHeadMajor(_:heads:headDim:)``),
    /// else 0 (position by position).
    private(set) var headMajorHeadDim = 0
    /// Head size when appends store each head's keys and values contiguously (a decoder-only
    /// model's cache, `init(batch:modelDim:capacity:appendingHeadMajor:)`), else 0.
    private(set) var appendHeadDim = 0

    /// An empty cache of `batch` rows of keys and values `modelDim` wide (the attention's
    /// inner width, heads x head size) with room for `capacity` positions before it grows
    /// (below 1 counts as 1). Throws ``ModelInputError`` naming a `batch` or `modelDim` below 1.
    /// Cost: `batch * capacity * 2 * modelDim` zeroed floats.
    public init(batch: Int, modelDim: Int, capacity: Int = 64) throws(ModelInputError) {
        guard batch >= 1 && modelDim >= 1 else {
            throw ModelInputError("AttentionKV: batch \(batch) and modelDim \(modelDim) must be at least 1")
        }
        self.init(rows: batch, width: modelDim, capacity: max(capacity, 1))
    }

    /// ``init(batch:modelDim:capacity:)`` for Attend's own caches, whose sizes come from a
    /// model (Attend's invariant: all positive).
    init(rows batch: Int, width modelDim: Int, capacity: Int) {
        precondition(
            batch >= 1 && modelDim >= 1 && capacity >= 1, "AttentionKV: batch \(batch), modelDim \(modelDim), capacity \(capacity) must be positive")
        self.batch = batch
        self.modelDim = modelDim
        self.count = 0
        self.storage = Tensor.zeros([batch, capacity, 2 * modelDim])
    }

    /// An empty cache with room for `capacity` positions whose appends store the keys and
    /// values head by head: per batch row all of head 0's keys (`capacity x headDim`, the
    /// filled positions first), head 1's, ..., then the values the same way. A decoding step
    /// then reads each head's keys and values as one sequential run instead of `headDim`
    /// floats every `2 * modelDim`. An append costs the same copies (`headDim` floats per
    /// head and position); growing copies each head's filled block.
    init(batch: Int, modelDim: Int, capacity: Int, appendingHeadMajor headDim: Int) {
        precondition(headDim >= 1 && modelDim % headDim == 0, "AttentionKV: heads of \(headDim) do not divide width \(modelDim)")
        self.init(rows: batch, width: modelDim, capacity: capacity)
        appendHeadDim = headDim
    }

    /// Positions the storage can hold before it grows.
    public var capacity: Int { storage.shape[1] }

    /// Bytes this cache holds: its float32 keys and values (for `capacity` positions), their
    /// copy packed for the fused kernel (a fixed float32 memory's, once an attention of three
    /// or more queries per head has packed it) and the bfloat16 keys and values (a memory held
    /// in bfloat16, which then has no float32 storage), whichever it has. Cost: O(1).
    public var bytes: Int {
        storage.count * 4 + (packed?.storage.count ?? 0) * 4 + (half.map { ($0.keys.count + $0.valuesT.count) * 2 } ?? 0)
    }

    /// Appends `steps` positions from a K/V projection `[batch * steps, 2 * modelDim]` (rows
    /// ordered batch-major), or from its `columns` (`2 * modelDim` of them) of a wider matrix
    /// such as a fused QKV projection, read in place. A head-by-head cache copies from there
    /// directly, over `threads` when the copy is large (a prefill); a position-by-position one
    /// takes the columns out first.
    mutating func append(_ kv: Tensor, columns: Range<Int>? = nil, steps: Int, threads: Int = 1) {
        let w = 2 * modelDim
        let cols = columns ?? 0..<w
        precondition(
            kv.rank == 2 && kv.shape[0] == batch * steps && cols.count == w && cols.lowerBound >= 0 && cols.upperBound <= kv.shape[1],
            "AttentionKV.append: columns \(cols) of \(kv.shape), expected \(w) columns of [\(batch * steps), >= \(w)]")
        precondition(
            headMajorHeadDim == 0 && half == nil, "AttentionKV.append: a fixed memory's keys/values (head by head, or in bfloat16) take no appends")
        packer = nil
        if appendHeadDim != 0 {
            appendHeadMajor(kv, column0: cols.lowerBound, steps: steps, threads: threads)
            return
        }
        if kv.shape[1] != w {
            append(kv.columns(cols), steps: steps)
            return
        }
        if count + steps > capacity {
            var grown = Tensor.zeros([batch, max(2 * capacity, count + steps), w])
            let newCap = grown.shape[1], oldCap = capacity, filled = count
            let oldRows = storage.reshaped([batch * oldCap, w])  // a view: no copy
            for b in 0..<batch where filled > 0 {
                grown.setRows(from: b * newCap, oldRows.rows((b * oldCap)..<(b * oldCap + filled)))
            }
            storage = grown
        }
        let cap = capacity, start = count
        for b in 0..<batch where steps > 0 {
            storage.setRows(from: b * cap + start, kv.rows((b * steps)..<((b + 1) * steps)))  // [steps, w]
        }
        count += steps
    }

    /// ``append(_:steps:)`` into head-by-head storage (`appendHeadDim`): blocks of `headDim`
    /// columns (keys of each head, then values) go to their head's run of positions.
    private mutating func appendHeadMajor(_ kv: Tensor, column0: Int, steps: Int, threads: Int) {
        let w = 2 * modelDim, dh = appendHeadDim, blocks = w / dh, ld = kv.shape[1]
        if count + steps > capacity {
            let oldCap = capacity, newCap = max(2 * capacity, count + steps), filled = count
            var grown = Tensor.zeros([batch, newCap, w])
            storage.withUnsafeBufferPointer { src in
                grown.withUnsafeMutableBufferPointer { dst in
                    for b in 0..<batch {
                        for block in 0..<blocks where filled > 0 {
                            (dst.baseAddress! + b * newCap * w + block * newCap * dh).update(
                                from: src.baseAddress! + b * oldCap * w + block * oldCap * dh, count: filled * dh)
                        }
                    }
                }
            }
            storage = grown
        }
        let cap = capacity, start = count
        kv.withUnsafeBufferPointer { src in
            storage.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                // One item per (row, head block): disjoint destinations. A prefill's copy
                // (512 positions of GPT-2 small: 3 MB) is worth the threads; a step's is not.
                let items = batch * blocks
                parallelFor(items, threads: steps * w >= 1 << 16 ? threads : 1) { item in
                    let b = item / blocks, block = item % blocks
                    let to = d + b * cap * w + block * cap * dh + start * dh
                    let from = s + b * steps * ld + column0 + block * dh
                    for t in 0..<steps { (to + t * dh).update(from: from + t * ld, count: dh) }
                }
            }
        }
        count += steps
    }

    /// A head-by-head cache (`appendHeadDim`) whose row `i` is this one's row `indices[i]`,
    /// with the same capacity. Cost: O(indices.count * count * 2 * modelDim).
    func selectingHeadMajorRows(_ indices: [Int]) -> AttentionKV {
        precondition(appendHeadDim != 0, "AttentionKV.selectingHeadMajorRows: the cache is stored position by position")
        var out = AttentionKV(batch: indices.count, modelDim: modelDim, capacity: capacity, appendingHeadMajor: appendHeadDim)
        let w = 2 * modelDim, dh = appendHeadDim, cap = capacity, n = count
        storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for (i, r) in indices.enumerated() where n > 0 {
                    precondition(r >= 0 && r < batch, "AttentionKV.selectingRows: row \(r) out of range for batch \(batch)")
                    for block in 0..<(w / dh) {
                        (dst.baseAddress! + i * cap * w + block * cap * dh).update(from: src.baseAddress! + r * cap * w + block * cap * dh, count: n * dh)
                    }
                }
            }
        }
        out.count = n
        return out
    }

    /// Fills an empty cache with a fixed memory's keys and values, `kv` `[batch * steps, 2 *
    /// modelDim]` (rows batch-major, as for ``append(_:steps:)``), stored head by head: per batch
    /// row all keys of head 0, of head 1, ..., then the values the same way, each head's
    /// `steps x headDim` block contiguous. A decoding step reads each head's keys and values as
    /// one sequential run, where the position-major rows (`2 * modelDim` floats apart) put
    /// every key of a head on another page. Cost: one transposing copy.
    mutating func setHeadMajor(_ kv: Tensor, heads: Int, headDim: Int) {
        let w = 2 * modelDim, steps = capacity
        precondition(
            count == 0 && heads * headDim == modelDim && kv.shape == [batch * steps, w],
            "AttentionKV.setHeadMajor: \(kv.shape) into an empty cache of \(batch) x \(steps) x \(w) (\(heads) heads of \(headDim))")
        packer = nil
        kv.withUnsafeBufferPointer { src in
            storage.withUnsafeMutableBufferPointer { dst in
                for b in 0..<batch {
                    for part in 0..<2 {
                        for h in 0..<heads {
                            let to = dst.baseAddress! + b * steps * w + part * steps * modelDim + h * steps * headDim
                            let from = src.baseAddress! + b * steps * w + part * modelDim + h * headDim
                            for t in 0..<steps { (to + t * headDim).update(from: from + t * w, count: headDim) }
                        }
                    }
                }
            }
        }
        count = steps
        headMajorHeadDim = headDim
    }

    /// Holds a fixed memory's keys and values only in bfloat16: `half` (made from the same
    /// projection) replaces the float32 storage, which is released, so the memory takes half
    /// the bytes of float32 instead of one and a half times. `headMajor`: the float32 layout
    /// ``floatStorage()`` rebuilds is head by head (as ``setHeadMajor(_:heads:headDim:)``
    /// stores it), else position by position. Only on an empty cache.
    mutating func setHalf(_ half: HalfKeysValues, headMajor: Bool) {
        precondition(
            count == 0 && half.batch == batch && half.heads * half.headDim == modelDim && appendHeadDim == 0,
            "AttentionKV.setHalf: \(half.batch) x \(half.heads) heads of \(half.headDim) into an empty cache of \(batch) x \(modelDim)")
        packer = nil
        storage = Tensor.zeros([batch, half.seqK, 0])
        count = half.seqK
        headMajorHeadDim = headMajor ? half.headDim : 0
        self.half = half
    }

    /// The keys and values as float32 in the layout ``layouts(headDim:)`` describes: `storage`
    /// itself, or, for a memory held only in bfloat16, those rounded values widened (exact).
    /// Cost: nothing, or one pass writing `batch * count * 2 * modelDim` floats.
    func floatStorage() -> Tensor {
        guard let half, storage.shape[2] == 0 else { return storage }
        let (dh, heads, n, inner, w) = (half.headDim, half.heads, half.seqK, modelDim, 2 * modelDim)
        let keys = half.keys.widened(), valuesT = half.valuesT.widened()  // [batch * heads * n, dh], [batch * heads * dh, n]
        var out = Tensor.uninitialized([batch, n, w])
        keys.withUnsafeBufferPointer { kp in
            valuesT.withUnsafeBufferPointer { vp in
                out.withUnsafeMutableBufferPointer { dst in
                    let (k, v, o) = (kp.baseAddress!, vp.baseAddress!, dst.baseAddress!)
                    for b in 0..<batch {
                        for h in 0..<heads {
                            let block = b * heads + h
                            // Head by head: block (part, h) of row b is [n, dh]; else row t holds every head.
                            let (keyAt, valueAt, step) =
                                headMajorHeadDim != 0
                                ? (b * n * w + h * n * dh, b * n * w + n * inner + h * n * dh, dh)
                                : (b * n * w + h * dh, b * n * w + inner + h * dh, w)
                            for t in 0..<n {
                                (o + keyAt + t * step).update(from: k + (block * n + t) * dh, count: dh)
                                for c in 0..<dh { o[valueAt + t * step + c] = v[(block * dh + c) * n + t] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Layouts of the keys and values for the attention kernel.
    func layouts(headDim: Int) -> (k: HeadLayout, v: HeadLayout) {
        let w = 2 * modelDim
        if headMajorHeadDim != 0 || appendHeadDim != 0 {
            let stored = max(headMajorHeadDim, appendHeadDim)
            precondition(headDim == stored, "AttentionKV: stored with heads of \(stored), read with \(headDim)")
            let cap = capacity
            return (
                HeadLayout(base: 0, batchStride: cap * w, headStride: cap * headDim, rowStride: headDim),
                HeadLayout(base: cap * modelDim, batchStride: cap * w, headStride: cap * headDim, rowStride: headDim)
            )
        }
        return (
            HeadLayout(base: 0, batchStride: capacity * w, headStride: headDim, rowStride: w),
            HeadLayout(base: modelDim, batchStride: capacity * w, headStride: headDim, rowStride: w)
        )
    }
}

/// Multi-head attention (Vaswani et al. §3.2.2): project queries, keys and values, attend per
/// head with the fused kernel, concatenate the heads and project back.
///
/// The projections are stored fused as one `[3d, d]` weight (PyTorch's `in_proj_weight`), so
/// self-attention runs one GEMM for Q, K and V, and the attention kernel reads the three
/// straight out of its output (no transposes, no copies). Shapes: inputs `[batch, seq, d]`,
/// outputs the same. The inner width (heads x head size, T5's `num_heads * d_kv`) is usually
/// d but may differ (flan-t5-small: 6 x 64 = 384 inside a 512-wide model).
/// Cost: `8 * tokens * d * inner` flops of projections plus the attention,
/// `4 * batch * seqQ * seqK * inner` flops (about half with a causal mask).
public struct MultiHeadAttention: Sendable {
    /// Number of heads.
    public let heads: Int
    /// The fused projection `[3 * inner, d]`: queries, keys, values.
    public let inProjection: Linear
    /// The output projection `[d, inner]`.
    public let outProjection: Linear
    /// Score scale; nil means `1/sqrt(headDim)` (T5 uses 1).
    public let scale: Float?

    /// Model width d (inputs and outputs).
    public var modelDim: Int { outProjection.outFeatures }
    /// Inner width: heads x head size (the width of the queries, keys and values).
    public var innerDim: Int { outProjection.inFeatures }
    /// Head size: inner / heads.
    public var headDim: Int { innerDim / heads }

    /// From a fused input projection `[3 * inner, d]` and an output projection `[d, inner]`
    /// (inner = d unless the model says otherwise).
    public init(heads: Int, inProjection: Linear, outProjection: Linear, scale: Float? = nil) {
        let d = outProjection.outFeatures, inner = outProjection.inFeatures
        precondition(heads >= 1 && inner % heads == 0, "MultiHeadAttention: \(heads) heads do not divide the inner width \(inner)")
        precondition(
            inProjection.weightShape == [3 * inner, d],
            "MultiHeadAttention: in projection \(inProjection.weightShape) must be [\(3 * inner), \(d)] for an out projection \(outProjection.weightShape)"
        )
        self.heads = heads
        self.inProjection = inProjection
        self.outProjection = outProjection
        self.scale = scale
    }

    /// From separate query, key and value projections `[inner, d]` each (BERT, T5, Marian checkpoints), fused
    /// into one weight once at load time (int8 when all three are int8 of one scheme, 16-bit when all
    /// three are 16-bit of one type, else float32).
    public init(heads: Int, query: Linear, key: Linear, value: Linear, out: Linear, scale: Float? = nil) {
        self.init(heads: heads, inProjection: Linear.concatenatingRows([query, key, value]), outProjection: out, scale: scale)
    }

    private func checkInput(_ x: Tensor, _ what: String) -> (batch: Int, seq: Int) {
        precondition(x.rank == 3 && x.shape[2] == modelDim, "MultiHeadAttention: \(what) \(x.shape) must be [batch, seq, \(modelDim)]")
        return (x.shape[0], x.shape[1])
    }

    /// Self-attention over `x` `[batch, seq, d]` with the given mask and bias.
    public func callAsFunction(_ x: Tensor, mask: AttentionMask = .none, bias: AttentionBias = .none, compute: Compute = .default) -> Tensor {
        let (b, s) = checkInput(x, "input")
        let d = innerDim, dh = headDim
        let qkv = inProjection(x, compute: compute)  // [b, s, 3d]
        let l = { (base: Int) in HeadLayout(base: base, batchStride: s * 3 * d, headStride: dh, rowStride: 3 * d) }
        var out = Tensor.zeros([b, s, d])
        let p = AttentionProblem(
            batch: b, seqQ: s, seqK: s, heads: heads, headDim: dh, q: l(0), k: l(d), v: l(2 * d),
            o: HeadLayout(.bshd, seq: s, heads: heads, headDim: dh),
            counts: (qkv.count, qkv.count, qkv.count, out.count), mask: mask, bias: bias, scale: scale)
        attention(p, query: qkv, key: qkv, value: qkv, into: &out, compute: compute)
        return outProjection(out, compute: compute)
    }

    /// Self-attention over token rows `x` `[T, d]` forming the sequences `rows` says, with
    /// `bias` on the scores (or BERT's `relative` positions), plus `residual` (`[T, d]`, added
    /// in the output projection's epilogue): `[T, d]`. A padded batch runs as one attention
    /// problem (short sequences on the micro-kernel path, long ones on the fused kernel);
    /// sequences stacked without padding run together on the short path when all are short,
    /// else one problem each.
    func attend(
        rows x: Tensor, _ rows: TokenRows, bias: AttentionBias, relative: RelativeKeyPositions?,
        residual: Tensor? = nil, compute: Compute
    ) -> Tensor {
        let d = innerDim, dh = headDim
        precondition(x.rank == 2 && x.shape == [rows.total, modelDim], "MultiHeadAttention: rows \(x.shape) must be [\(rows.total), \(modelDim)]")
        let qkv = inProjection.forward(x, compute: compute)  // [T, 3d]
        let scale = self.scale ?? 1 / Float(dh).squareRoot()
        var context = Tensor.uninitialized([rows.total, d])  // [T, d]
        if let relative {
            precondition(bias.isNone, "MultiHeadAttention: relative_key positions and another position bias at once")
            let run = { (qkv: Tensor, batch: Int, seq: Int, pad: [[Bool]]?) in
                relativeSelfAttention(
                    qkv: qkv, batch: batch, seq: seq, heads: self.heads, headDim: dh, distance: relative.distance,
                    maxPositions: relative.maxPositions, keyQuery: relative.keyQuery,
                    keyPadding: pad, scale: scale, compute: compute)
            }
            if let seq = rows.uniformLength {
                return outProjection.forward(run(qkv, rows.lengths.count, seq, rows.keyPadding), residual: residual, compute: compute)
            }
            for (b, start) in rows.starts.enumerated() where rows.lengths[b] > 0 {
                context.setRows(from: start, run(qkv.rows(start..<(start + rows.lengths[b])), 1, rows.lengths[b], nil))
            }
            return outProjection.forward(context, residual: residual, compute: compute)
        }
        let uniform = rows.uniformLength
        if uniform == nil, bias.isNone, case .native(let variant) = compute.backend, (rows.lengths.max() ?? 0) <= shortAttentionMaxSeq {
            context = shortSelfAttention(
                qkv: qkv, starts: rows.starts, lengths: rows.lengths, heads: heads, headDim: dh,
                keyPadding: rows.keyPadding, scale: scale, variant: variant, threads: compute.threads)
            return outProjection.forward(context, residual: residual, compute: compute)
        }
        // One problem for a uniform batch, else one per sequence (written in place).
        let groups: [(start: Int, batch: Int, seq: Int)] =
            uniform.map { [(0, rows.lengths.count, $0)] }
            ?? zip(rows.starts, rows.lengths).map { ($0, 1, $1) }
        if groups.contains(where: { $0.batch == 0 || $0.seq == 0 }) { context = Tensor.zeros([rows.total, d]) }
        for (start, batch, seq) in groups where batch > 0 && seq > 0 {
            let l = { (col: Int) in HeadLayout(base: start * 3 * d + col, batchStride: seq * 3 * d, headStride: dh, rowStride: 3 * d) }
            let p = AttentionProblem(
                batch: batch, seqQ: seq, seqK: seq, heads: heads, headDim: dh, q: l(0), k: l(d), v: l(2 * d),
                o: HeadLayout(base: start * d, batchStride: seq * d, headStride: dh, rowStride: d),
                counts: (qkv.count, qkv.count, qkv.count, context.count),
                mask: AttentionMask(keyPadding: uniform != nil ? rows.keyPadding : nil), bias: bias, scale: scale)
            attention(p, query: qkv, key: qkv, value: qkv, into: &context, compute: compute)
        }
        return outProjection.forward(context, residual: residual, compute: compute)
    }

    /// Keys and values of `memory` `[batch, seqK, d]` for cross-attention, computed once (and,
    /// with a native `compute`, packed once for the fused kernel at the first attention with
    /// more than two queries per head, so steps do not repack them; one or two queries read
    /// them in place). With `precision` `.bfloat16`, or `.automatic` and int8 weights
    /// (``Linear/weightFormat``; for `.mixed`, some of the rows), they are instead rounded to
    /// bfloat16 (`HalfKeysValues`) and held only so: half the bytes in memory and per
    /// decoding step, where the memory is the largest read besides the weights (nothing is
    /// packed then; an attention over them under a mask other than key padding, or with a
    /// bias, widens the rounded values for its call). Cost: `4 * batch * seqK * d * inner`
    /// flops plus one copy of K and V (float32, or 16-bit when rounded).
    public func keysValues(of memory: Tensor, precision: MemoryPrecision = .automatic, compute: Compute = .default) -> AttentionKV {
        let (b, s) = checkInput(memory, "memory")
        let inner = innerDim
        let projected = inProjection(memory.reshaped([b * s, modelDim]), outputs: inner..<(3 * inner), compute: compute)
        let rounded: Bool
        switch precision {
        case .automatic: rounded = inProjection.storage.holdsInt8
        case .float32: rounded = false
        case .bfloat16: rounded = true
        }
        let native: Bool
        if case .native = compute.backend { native = true } else { native = false }
        if rounded, s > 0 {
            // Held in bfloat16 alone: no float32 copy beside it.
            var kv = AttentionKV(rows: b, width: inner, capacity: 1)
            kv.setHalf(HalfKeysValues(projected, batch: b, seqK: s, heads: heads, headDim: headDim), headMajor: native)
            return kv
        }
        var kv = AttentionKV(rows: b, width: inner, capacity: max(s, 1))
        if native, s > 0 {
            kv.setHeadMajor(projected, heads: heads, headDim: headDim)  // each head's rows contiguous for the decoding steps
        } else {
            kv.append(projected, steps: s)
        }
        if case .native(let variant) = compute.backend, s > 0 {
            // Packed once for the fused kernel, at its first use: every step attends to these
            // same keys, and one or two queries a step read them in place (never packed).
            let (kl, vl) = kv.layouts(headDim: headDim)
            let (stored, dh, h, threads) = (kv.storage, headDim, heads, compute.threads)
            kv.packer = LazyPackedKeysValues {
                PackedKeysValues(
                    key: stored, value: stored, k: kl, v: vl, batch: b, heads: h, seqK: s, headDim: dh, variant: variant, threads: threads)
            }
        }
        return kv
    }

    /// Attention of `x` `[batch, seqQ, d]` over stored keys and values (cross-attention over
    /// an encoder memory, or a cache). `mask` applies to the stored positions. Keys and values
    /// held in bfloat16 (see ``keysValues(of:precision:compute:)``) are read as such when
    /// the mask is key padding alone and there is no bias (cross-attention), through
    /// `halfMemoryAttention`; otherwise widened (exactly) to float32 for this call.
    public func callAsFunction(
        _ x: Tensor, keysValues kv: AttentionKV, mask: AttentionMask = .none, bias: AttentionBias = .none, compute: Compute = .default
    ) -> Tensor {
        let (b, s) = checkInput(x, "input")
        precondition(
            kv.batch == b && kv.modelDim == innerDim,
            "MultiHeadAttention: keys/values for batch \(kv.batch) x \(kv.modelDim), input \(x.shape) (inner width \(innerDim))")
        let d = innerDim, dh = headDim
        let q = inProjection(x, outputs: 0..<d, compute: compute)  // [b, s, d]
        if let half = kv.half, half.seqK == kv.count, half.headDim == dh, bias.isNone, !mask.causal, mask.window == 0 {
            var out = Tensor.uninitialized([b, s, d])
            halfMemoryAttention(
                query: q, memory: half, keyPadding: mask.keyPadding, scale: scale ?? 1 / Float(dh).squareRoot(), into: &out, compute: compute)
            return outProjection(out, compute: compute)
        }
        var out = Tensor.zeros([b, s, d])
        let (kl, vl) = kv.layouts(headDim: dh)
        let ql = HeadLayout(.bshd, seq: s, heads: heads, headDim: dh)
        let stored = kv.floatStorage()  // a bfloat16 memory under a mask or bias: its rounded values widened
        let p = AttentionProblem(
            batch: b, seqQ: s, seqK: kv.count, heads: heads, headDim: dh, q: ql, k: kl, v: vl, o: ql,
            counts: (q.count, stored.count, stored.count, out.count), mask: mask, bias: bias, scale: scale)
        attention(p, query: q, key: stored, value: stored, into: &out, compute: compute, prepacked: kv.packer)
        return outProjection(out, compute: compute)
    }

    /// Causal self-attention for decoding: appends the keys and values of `x`'s `steps`
    /// new positions (`[batch, steps, d]`) to `cache`, then lets each new position attend to
    /// every cached position up to itself. Equal to running the full causal self-attention
    /// over the whole prefix and keeping the last `steps` rows.
    public func callAsFunction(
        _ x: Tensor, appendingTo cache: inout AttentionKV, keyPadding: [[Bool]]? = nil, bias: AttentionBias = .none, compute: Compute = .default
    ) -> Tensor {
        let (b, s) = checkInput(x, "input")
        let d = innerDim, dh = headDim
        let qkv = inProjection(x, compute: compute).reshaped([b * s, 3 * d])
        // Split the new K/V columns out of the fused projection and append them.
        let start = cache.count
        cache.append(qkv.columns(d..<(3 * d)), steps: s)
        var out = Tensor.zeros([b, s, d])
        let (kl, vl) = cache.layouts(headDim: dh)
        let ql = HeadLayout(base: 0, batchStride: s * 3 * d, headStride: dh, rowStride: 3 * d)
        let p = AttentionProblem(
            batch: b, seqQ: s, seqK: cache.count, heads: heads, headDim: dh, q: ql, k: kl, v: vl,
            o: HeadLayout(.bshd, seq: s, heads: heads, headDim: dh),
            counts: (qkv.count, cache.storage.count, cache.storage.count, out.count),
            mask: AttentionMask(causal: true, queryStart: start, keyPadding: keyPadding), bias: bias, scale: scale)
        attention(p, query: qkv, key: cache.storage, value: cache.storage, into: &out, compute: compute)
        return outProjection(out, compute: compute)
    }
}
