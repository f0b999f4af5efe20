import Foundation
internal import CKernels

/// Packed K/V kept alive at once: heads are processed in waves whose packed copies fit in
/// this budget, so extra memory stays O(seqK) per head and never grows with the head count.
let attentionPackBudgetBytes = 64 << 20

/// Every stored head's keys and values of one attention layer, packed once for the fused
/// kernel of `variant` (`ck_f32_attention_pack_kv` per K/V head, 64-byte aligned): attention
/// over a fixed set of keys (cross-attention over an encoder memory while decoding) reads
/// these instead of repacking every call. With grouped K/V (`k.headGroup` > 1) each stored
/// head is packed once and read by its whole group of query heads. Memory:
/// `batch * heads / group * headStride` floats, about the size of K and V. Immutable once made.
struct PackedKeysValues: Sendable {
    let storage: TensorStorage
    let headStride: Int
    let variant: KernelVariant
    let batch: Int, heads: Int, group: Int, seqK: Int, headDim: Int

    /// Packs `key` / `value` (laid out as `k` / `v` say) for `batch x heads` query heads of
    /// `seqK` keys (`batch x heads / k.headGroup` stored heads). Cost: one read and one write
    /// of K and V, parallel over stored heads.
    init(
        key: Tensor, value: Tensor, k: HeadLayout, v: HeadLayout, batch: Int, heads: Int, seqK: Int, headDim: Int,
        variant: KernelVariant, threads: Int
    ) {
        precondition(
            k.extent(batch: batch, heads: heads, seq: seqK, headDim: headDim) <= key.count
                && v.extent(batch: batch, heads: heads, seq: seqK, headDim: headDim) <= value.count
                && k.headGroup == v.headGroup && k.headGroup >= 1 && heads % k.headGroup == 0,
            "PackedKeysValues: layouts reach past keys \(key.shape) / values \(value.shape), or groups \(k.headGroup) / \(v.headGroup) do not divide \(heads) heads"
        )
        let kern = variant.kernels
        let g = k.headGroup, kvHeads = heads / g
        let stride = (ck_f32_attention_packed_kv_size(kern, seqK, headDim) + 15) / 16 * 16
        let packed = TensorStorage(uninitializedCount: max(1, batch * kvHeads * stride))
        if seqK > 0 {
            key.withUnsafeBufferPointer { kp in
                value.withUnsafeBufferPointer { vp in
                    parallelFor(batch * kvHeads, threads: threads) { unit in
                        let b = unit / kvHeads, h = (unit % kvHeads) * g
                        ck_f32_attention_pack_kv(
                            kern, seqK, headDim, kp.baseAddress! + k.offset(b, h), k.rowStride,
                            vp.baseAddress! + v.offset(b, h), v.rowStride, packed.base + unit * stride)
                    }
                }
            }
        }
        (storage, headStride, self.variant) = (packed, stride, variant)
        (self.batch, self.heads, self.group, self.seqK, self.headDim) = (batch, heads, g, seqK, headDim)
    }

    /// Whether these are the packed keys and values `p` reads with `variant`.
    func fits(_ p: AttentionProblem, variant: KernelVariant) -> Bool {
        self.variant == variant && batch == p.batch && heads == p.heads && group == p.headGroup && seqK == p.seqK && headDim == p.headDim
    }
}

/// A fixed memory's keys and values packed for the fused kernel on first use
/// (``packed``): decoding one or two queries at a time reads them in place
/// (`fewQueryAttention`) and never needs the packed copy, so greedy decoding holds the memory
/// once instead of twice; beams, batches of queries and teacher forcing pack it at their first
/// call and reuse it. Shared by the copies of the `AttentionKV` that made it (a cache copied
/// to branch a generation packs once); safe to use from several threads.
final class LazyPackedKeysValues: @unchecked Sendable {
    private let lock = NSLock()
    private var made: PackedKeysValues? = nil
    private let make: @Sendable () -> PackedKeysValues

    /// `make` packs the keys and values (called at most once, under the lock).
    init(_ make: @escaping @Sendable () -> PackedKeysValues) { self.make = make }

    /// The packed keys and values, made on the first call. Cost: one packing (one read and
    /// one write of K and V) the first time, a lock after.
    var packed: PackedKeysValues {
        lock.withLock {
            if let made { return made }
            let p = make()
            made = p
            return p
        }
    }

    /// The packed keys and values if a call has made them, else nil (nothing is packed).
    var packedIfMade: PackedKeysValues? { lock.withLock { made } }
}

/// Runs the fused C attention kernel. Stored K/V heads go in waves (see
/// `attentionPackBudgetBytes`); within a wave each K/V head is packed once (parallel over
/// heads), then query blocks run in parallel over query heads x blocks, every query head of
/// a group (grouped-query attention) reading its group's one packed copy. With `prepacked` keys and values (which must
/// fit `p`) nothing is packed and all heads form one wave. Shapes and strides were validated
/// by `AttentionProblem`; buffer extents follow from them. With `lse` (`batch * heads * seqQ`
/// floats), each query's log-sum-exp of its scores is saved there for the backward, and
/// `dropout` (training only, with `lse`) drops probabilities as `ck_attention_dropout` says.
func fusedAttention(
    _ p: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, output: inout Tensor,
    variant: KernelVariant, threads: Int, prepacked: PackedKeysValues? = nil, lse: UnsafeMutablePointer<Float>? = nil,
    dropout: AttentionDropout? = nil
) {
    precondition(dropout == nil || (lse != nil && p.bias.shaw == nil), "fusedAttention: dropout is for the training forward (lse), without Shaw terms")
    let kern = variant.kernels
    let group = p.headGroup, kvHeads = p.kvHeads
    let heads = p.batch * kvHeads  // stored K/V heads: the unit of packing and of waves
    if heads == 0 || p.seqQ == 0 { return }
    if let prepacked { precondition(prepacked.fits(p, variant: variant), "fusedAttention: prepacked keys/values do not fit the problem") }
    let packedSize = ck_f32_attention_packed_kv_size(kern, p.seqK, p.headDim)
    let headStride = prepacked?.headStride ?? (packedSize + 15) / 16 * 16  // keeps every head 64-byte aligned
    let shaw = p.bias.shaw
    let shawWidth = shaw.map { 2 * $0.clip + 1 } ?? 0
    let shawStride = p.seqQ * shawWidth  // per head: q . a^K for every query and bucket
    let perHead = (headStride + shawStride) * 4
    let wave = prepacked != nil ? heads : max(1, min(heads, attentionPackBudgetBytes / max(1, perHead)))
    let shawQK = TensorStorage(uninitializedCount: max(1, wave * shawStride))
    let shawKeys = shaw?.keys ?? Tensor.zeros([1]), shawValues = shaw?.values ?? Tensor.zeros([1])

    let tables = AttentionTables(p, variant: variant)
    let (keyBias, relBias, relLength, relZero) = (tables.keyBias, tables.relBias, tables.relLength, tables.relZero)

    let block = ck_f32_attention_query_block(kern)
    let blocks = (p.seqQ + block - 1) / block
    let wsCount = ck_f32_attention_workspace(kern, p.headDim, shaw?.clip ?? 0)
    // The packed K/V of a wave: the prepacked heads, or the shared packing buffer (kept between
    // calls, so a repeated call does not map and fault in fresh pages: 16 MiB at seq 4096 with
    // 8 heads, 2.4% of a one-thread standalone call went to the kernel zeroing them).
    func withPackedKV(_ body: (UnsafeMutablePointer<Float>) -> Void) {
        if let prepacked {
            withExtendedLifetime(prepacked.storage) { body(prepacked.storage.base) }
        } else {
            SharedPackingBuffer.shared.withBuffer(floats: wave * headStride, body)
        }
    }
    withPackedKV { packedBase in
        query.withUnsafeBufferPointer { q in
            key.withUnsafeBufferPointer { k in
                value.withUnsafeBufferPointer { v in
                    output.withUnsafeMutableBufferPointer { o in
                        withExtendedLifetime((keyBias, relBias, shawQK, shawKeys, shawValues)) {
                            let qb = q.baseAddress!, ob = o.baseAddress!
                            // An empty key sequence has no K/V scalars to pack (and nothing to see).
                            let kbase = k.baseAddress ?? UnsafePointer(qb), vbase = v.baseAddress ?? UnsafePointer(qb)
                            for first in stride(from: 0, to: heads, by: wave) {
                                let count = min(wave, heads - first)
                                if p.seqK > 0 && prepacked == nil {
                                    parallelFor(count, threads: threads) { w in
                                        let unit = first + w, b = unit / kvHeads, h = (unit % kvHeads) * group
                                        ck_f32_attention_pack_kv(
                                            kern, p.seqK, p.headDim, kbase + p.k.offset(b, h), p.k.rowStride,
                                            vbase + p.v.offset(b, h), p.v.rowStride, packedBase + w * headStride)
                                    }
                                }
                                if shaw != nil {
                                    // (Shaw positions come with group 1: a wave item is a query head.)
                                    // Shaw key term per head: qk[i][c] = scale * q_i . a^K_c (a small GEMM).
                                    shawKeys.withUnsafeBufferPointer { ak in
                                        parallelFor(count, threads: threads) { w in
                                            let bh = first + w, b = bh / p.heads, h = bh % p.heads
                                            nativeGEMM(
                                                kernels: kern, m: p.seqQ, n: shawWidth, k: p.headDim, alpha: p.scale,
                                                a: qb + p.q.offset(b, h), lda: p.q.rowStride, transA: false,
                                                b: ak.baseAddress!, ldb: p.headDim, transB: true, beta: 0,
                                                c: shawQK.base + w * shawStride, ldc: shawWidth, threads: 1)
                                        }
                                    }
                                }
                                parallelFor(count * group * blocks, threads: threads) { item in
                                    let w = item / (group * blocks), blk = item % blocks
                                    let unit = first + w, b = unit / kvHeads, h = (unit % kvHeads) * group + (item / blocks) % group
                                    let ws = UnsafeMutableRawPointer.allocate(byteCount: wsCount * 4, alignment: 64)
                                        .bindMemory(to: Float.self, capacity: wsCount)
                                    defer { ws.deallocate() }
                                    var head = ck_attention_head(
                                        seq_q: p.seqQ, seq_k: p.seqK, head_dim: p.headDim,
                                        q: qb + p.q.offset(b, h), ldq: p.q.rowStride,
                                        packed_kv: packedBase + w * headStride,
                                        o: ob + p.o.offset(b, h), ldo: p.o.rowStride, scale: p.scale,
                                        causal: p.mask.causal ? 1 : 0, causal_offset: p.mask.queryStart,
                                        key_bias: keyBias.map { UnsafePointer($0.base + b * p.seqK) },
                                        rel_bias: relBias.map { UnsafePointer($0.base + h * relLength) },
                                        rel_bias_zero: relZero,
                                        shaw_clip: shaw?.clip ?? 0,
                                        shaw_qk: shaw == nil ? nil : UnsafePointer(shawQK.base + w * shawStride),
                                        shaw_v: shaw == nil ? nil : UnsafePointer(shawValues.storage.base), dropout: nil,
                                        window: p.mask.window)
                                    let q0 = blk * block
                                    var drop =
                                        dropout?.kernelHead(batch: b, head: h, heads: p.heads, seqQ: p.seqQ, seqK: p.seqK) ?? ck_attention_dropout()
                                    if let lse, dropout != nil {
                                        withUnsafePointer(to: &drop) { d in
                                            head.dropout = d
                                            ck_f32_attention_block_lse(
                                                kern, &head, q0, min(block, p.seqQ - q0), ws, lse + (b * p.heads + h) * p.seqQ)
                                        }
                                    } else if let lse {
                                        // Training: also each query's log-sum-exp, [batch, heads, seqQ].
                                        ck_f32_attention_block_lse(
                                            kern, &head, q0, min(block, p.seqQ - q0), ws, lse + (b * p.heads + h) * p.seqQ)
                                    } else {
                                        ck_f32_attention_block(kern, &head, q0, min(block, p.seqQ - q0), ws)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Row softmax on `backend`: `y[r] = softmax(x[r] * scale + mask[r])` over `rows` packed rows
/// of `n` (row `r`'s mask at `mask + r * maskRowStride`; stride 0: one mask row for all; nil:
/// none). The C kernel of a native backend (parallel over `threads`), or the SwiftSIMD Double
/// reference; the rules of ``Tensor/softmax(scale:mask:compute:)``. `x` may equal `y`.
/// Cost: O(rows * n).
func softmaxRows(
    backend: Backend, rows: Int, n: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
    scale: Float, mask: UnsafePointer<Float>?, maskRowStride: Int, threads: Int
) {
    switch backend {
    case .native(let v):
        nativeSoftmaxRows(variant: v, rows: rows, n: n, x: x, y: y, scale: scale, mask: mask, maskRowStride: maskRowStride, threads: threads)
    case .swiftSIMD:
        SwiftSIMDKernels.softmaxRows(rows: rows, n: n, x: x, y: y, scale: scale, mask: mask, maskRowStride: maskRowStride)
    }
}

/// Row softmax through the C kernel of `variant`: `y[r] = softmax(x[r] * scale + mask[r])`
/// over rows of `n` (see `ck_f32_softmax_rows_fn`). Parallel over blocks of rows.
func nativeSoftmaxRows(
    variant: KernelVariant, rows: Int, n: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
    scale: Float, mask: UnsafePointer<Float>?, maskRowStride: Int, threads: Int
) {
    let fn = variant.kernels.pointee.softmax_rows!
    let rowsPerItem = max(1, min(rows, (1 << 16) / max(n, 1)))
    let items = (rows + rowsPerItem - 1) / rowsPerItem
    parallelFor(items, threads: threads) { item in
        let r0 = item * rowsPerItem, r1 = min(rows, r0 + rowsPerItem)
        fn(r1 - r0, n, x + r0 * n, n, y + r0 * n, n, scale, mask.map { $0 + r0 * maskRowStride }, maskRowStride)
    }
}

/// `exp` of every scalar through the C kernel of `variant` (vectorized, <= 2 ulp).
func nativeExp(variant: KernelVariant, _ x: [Float]) -> [Float] {
    var y = [Float](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
            if let xb = xp.baseAddress { variant.kernels.pointee.exp(x.count, xb, yp.baseAddress!) }
        }
    }
    return y
}

/// Queries per head up to which native attention runs as matrix-vector products
/// (``fewQueryAttention(_:query:key:value:output:variant:threads:)``) instead of the fused
/// kernel, whose query panels are 16 wide (one decoding query would waste 15/16 of its work)
/// and which packs K and V first.
let fewQueryAttentionLimit = 2

/// Whether `p` can take the few-query path: at most ``fewQueryAttentionLimit`` queries, keys
/// to attend to, and no Shaw relative positions (their value term needs the fused kernel).
func fewQueryAttentionApplies(_ p: AttentionProblem) -> Bool {
    p.seqQ <= fewQueryAttentionLimit && p.seqK > 0 && p.bias.shaw == nil
}

/// Attention for a few queries per head, the decoding case (one new token attending to a
/// cache or to an encoder memory), through `ck_f32_attention_few`: GEMV scores over K in place,
/// biases and masks, the row softmax, a transposed GEMV over V in place. Same semantics as
/// the fused kernel; sums in another order (float32 either way). Cost: `4 * seqK * headDim`
/// flops per query and head and one pass over K and V, parallel over heads x queries when
/// there is enough of it.
func fewQueryAttention(
    _ p: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, output: inout Tensor,
    variant: KernelVariant, threads: Int
) {
    let items = p.batch * p.heads * p.seqQ
    if items == 0 { return }
    let work = 4 * p.seqK * p.headDim * items
    let parts = max(1, min(threads, items, work / minimumGEMVFlopsPerThread))
    let perPart = (items + parts - 1) / parts
    let wsCount = ck_f32_attention_few_workspace(p.seqK, p.headDim)
    runRowsAttention(p, query: query, key: key, value: value, output: &output, variant: variant) { kern, head in
        parallelFor(parts, threads: parts) { part in
            let ws = UnsafeMutablePointer<Float>.allocate(capacity: wsCount)
            defer { ws.deallocate() }
            for item in (part * perPart)..<min(items, (part + 1) * perPart) {
                let i = item % p.seqQ, bh = item / p.seqQ
                var h = head(bh / p.heads, bh % p.heads)
                ck_f32_attention_few(kern, &h, i, 1, ws)
            }
        }
    }
}

/// The longest query and key sequences for which ``shortAttention(_:query:key:value:output:variant:threads:)``
/// is used: at 128 tokens it is still faster than the fused kernel on AVX2, and its per-head
/// scratch (Kᵀ, headDim x seqK, and a few score rows) stays in L1 or L2.
let shortAttentionMaxSeq = 128

/// Whether `p` can take the short path: both sequences short, no Shaw positions.
func shortAttentionApplies(_ p: AttentionProblem) -> Bool {
    p.seqQ <= shortAttentionMaxSeq && p.seqK <= shortAttentionMaxSeq && p.bias.shaw == nil
}

/// Attention of short sequences (a sentence) through `ck_f32_attention_short`: per (batch
/// row, head) Q, K and V read in place and a few queries' whole score rows in registers and
/// L1, where the fused kernel's fixed costs per head (query blocks, K/V packing, rescaling)
/// would dominate; keys the padding hides at the end of a row are skipped. Cost:
/// `4 * batch * heads * seqQ * seqK * headDim` flops at most (real keys only, padded to a
/// vector), parallel over heads.
func shortAttention(
    _ p: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, output: inout Tensor,
    variant: KernelVariant, threads: Int
) {
    let items = p.batch * p.heads
    if items == 0 || p.seqQ == 0 { return }
    let wsCount = ck_f32_attention_short_workspace(variant.kernels, p.seqQ, p.seqK, p.headDim)
    runRowsAttention(p, query: query, key: key, value: value, output: &output, variant: variant) { kern, head in
        parallelFor(items, threads: threads) { bh in
            let ws = UnsafeMutablePointer<Float>.allocate(capacity: wsCount)
            defer { ws.deallocate() }
            var h = head(bh / p.heads, bh % p.heads)
            ck_f32_attention_short(kern, &h, ws)
        }
    }
}

/// The per-problem tables every native attention path reads: key padding as an additive
/// bias per batch row (0 or -inf), and a distance bias (ALiBi, T5 buckets) per head as a
/// table over (query - key), O(seqQ + seqK) floats per head (`ck_attention_head`'s rel_bias).
struct AttentionTables {
    let keyBias: TensorStorage?
    let relBias: TensorStorage?
    let relLength: Int
    let relZero: Int

    init(_ p: AttentionProblem, variant: KernelVariant) {
        if let pad = p.mask.keyPadding {
            let kb = TensorStorage(uninitializedCount: max(p.batch * p.seqK, 1))
            for b in 0..<p.batch {
                for j in 0..<p.seqK { kb.base[b * p.seqK + j] = pad[b][j] ? 0 : -.infinity }
            }
            keyBias = kb
        } else {
            keyBias = nil
        }
        relLength = ck_f32_attention_rel_bias_length(variant.kernels, p.seqQ, p.seqK)
        relZero = max(p.seqK, 1) - 1
        if p.bias.isDistanceTable {
            let rb = TensorStorage(uninitializedCount: p.heads * relLength)
            for t in 0..<relLength {
                p.bias.values(relative: relZero - t - p.mask.queryStart, heads: p.heads, into: rb.base + t, stride: relLength)
            }
            relBias = rb
        } else {
            relBias = nil
        }
    }
}

/// Runs `body` with the kernel table and a maker of each (batch row, head)'s
/// `ck_attention_rows` (pointers valid inside `body` only): the shared set-up of the paths
/// that read K and V in place.
private func runRowsAttention(
    _ p: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, output: inout Tensor, variant: KernelVariant,
    _ body: (UnsafePointer<ck_kernels>, (Int, Int) -> ck_attention_rows) -> Void
) {
    let kern = variant.kernels
    let tables = AttentionTables(p, variant: variant)
    query.withUnsafeBufferPointer { q in
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                output.withUnsafeMutableBufferPointer { o in
                    withExtendedLifetime(tables) {
                        let qb = q.baseAddress!, ob = o.baseAddress!
                        let kb = k.baseAddress ?? qb, vb = v.baseAddress ?? qb
                        body(kern) { b, h in
                            ck_attention_rows(
                                seq_q: p.seqQ, seq_k: p.seqK, head_dim: p.headDim,
                                q: qb + p.q.offset(b, h), ldq: p.q.rowStride,
                                k: kb + p.k.offset(b, h), ldk: p.k.rowStride,
                                v: vb + p.v.offset(b, h), ldv: p.v.rowStride,
                                o: ob + p.o.offset(b, h), ldo: p.o.rowStride, scale: p.scale,
                                causal: p.mask.causal ? 1 : 0, causal_offset: p.mask.queryStart,
                                key_bias: tables.keyBias.map { UnsafePointer($0.base + b * p.seqK) },
                                rel_bias: tables.relBias.map { UnsafePointer($0.base + h * tables.relLength) },
                                rel_bias_zero: tables.relZero, window: p.mask.window)
                        }
                    }
                }
            }
        }
    }
}
