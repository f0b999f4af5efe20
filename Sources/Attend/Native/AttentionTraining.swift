internal import CKernels

// Attention for training: the fused forward that also saves each query's log-sum-exp, and
// the FlashAttention-2 style backward (CKernels/core/attention_backward.c) that recomputes
// score tiles from it, so neither pass ever holds a seqQ x seqK matrix.
//
// How MultiHeadAttention's backward calls it (self-attention over a fused projection
// `qkv` [T, 3d] of a padded batch, T = batch * seq):
//
//     let t = AttentionTrainingProblem(
//         q: AttentionOperand(qkv, column: 0), k: AttentionOperand(qkv, column: d),
//         v: AttentionOperand(qkv, column: 2 * d), batch: batch, heads: heads, kvHeads: heads,
//         headDim: dh, seqQ: seq, seqK: seq, mask: AttentionMask(keyPadding: pad), bias: bias,
//         relative: nil, scale: scale)
//     let (context, lse) = attentionForwardTraining(t, compute: compute)  // save both
//     ...
//     let g = attentionBackward(t, out: context, lse: lse, dOut: dContext, compute: compute)
//     // g.query.tensor is one [T, 3d] gradient (dQ | dK | dV), the gradient of qkv for the
//     // in-projection's backward; g.biasTable is T5's d(relative_attention_bias) [buckets, heads].
//
// Cross-attention passes q: AttentionOperand(queries [b*sq, d]) and k / v: the two halves
// of a keys-values projection [b*sk, 2d]; its gradients come back as dQ [b*sq, d] and one
// dKV [b*sk, 2d].

/// One attention operand read in place: rows of `tensor` (`[rows, width]`), starting at
/// `column`; head h of row r is the `headDim` floats at `column + h * headDim`. Queries,
/// keys and values of a fused projection `[T, 3d]` are three operands on one tensor.
package struct AttentionOperand: Sendable {
    /// The tensor holding the operand, `[rows, width]`.
    package let tensor: Tensor
    /// First column of the operand inside each row.
    package let column: Int

    /// The operand at `column` of `tensor`'s rows.
    package init(_ tensor: Tensor, column: Int = 0) {
        self.tensor = tensor
        self.column = column
    }
}

/// The gradients of one attention call, laid out as its operands were: operands that shared
/// a tensor (a fused QKV or KV projection) get one gradient tensor of that tensor's shape,
/// each gradient at its operand's column (columns of no operand are zero).
package struct AttentionGradients: Sendable {
    /// dQ, at the query operand's column.
    package var query: AttentionOperand
    /// dK, at the key operand's column (dK of a shared K/V head sums its query-head group).
    package var key: AttentionOperand
    /// dV, at the value operand's column.
    package var value: AttentionOperand
    /// T5: the gradient of the bias table `[buckets, heads]` (sum of dS per bucket and head;
    /// nil for other biases).
    package var biasTable: Tensor?
    /// Shaw: the gradients of the key and value tables `[2 clip + 1, headDim]`.
    package var shawKeys: Tensor?
    /// Shaw: see `shawKeys`.
    package var shawValues: Tensor?
    /// BERT `relative_key`: the gradient of the distance table `[2M - 1, headDim]`.
    package var relative: Tensor?
}

/// Dropout on the attention probabilities of a training problem, recomputable from a
/// counter-based hash rather than stored (the `seqQ x seqK` mask is never formed): probability
/// (b, h, i, j) is zeroed when the top 24 bits of SplitMix64's output at position
/// `((b * heads + h) * seqQ + i) * seqK + j + 1` from state `seed` are below
/// `floor(p * 2^24)`, and otherwise scaled by `1 / (1 - p)` (`ck_attention_dropout`; the fused
/// forward and backward and the Double reference draw the same bits).
package struct AttentionDropout: Sendable, Hashable {
    /// The probability of zeroing, in (0, 1).
    package let probability: Float
    /// The hash's seed.
    package let seed: UInt64

    /// Dropout `probability` (in (0, 1)) with masks from `seed`.
    package init(probability: Float, seed: UInt64) {
        precondition(probability > 0 && probability < 1, "AttentionDropout: probability \(probability) must be in (0, 1)")
        (self.probability, self.seed) = (probability, seed)
    }

    /// Dropped when the hash's top 24 bits are below this.
    var threshold: UInt32 { UInt32((Double(probability) * 16_777_216).rounded(.down)) }
    /// The factor of a kept probability.
    var keepScale: Float { 1 / (1 - probability) }

    /// The factor (0 or `keepScale`) of stream position `counter`.
    package func factor(counter: UInt64) -> Float {
        var g = SplitMix64(state: seed &+ counter &* 0x9E37_79B9_7F4A_7C15)
        return UInt32(truncatingIfNeeded: g.next() >> 40) < threshold ? 0 : keepScale
    }

    /// The C description of head (b, h) of a problem with `heads`, `seqQ`, `seqK`.
    func kernelHead(batch b: Int, head h: Int, heads: Int, seqQ: Int, seqK: Int) -> ck_attention_dropout {
        ck_attention_dropout(
            seed: seed, counter0: UInt64((b * heads + h) * seqQ) &* UInt64(seqK), threshold: threshold, keep_scale: keepScale)
    }
}

/// A validated attention problem for training: operands in place, sizes, masks, bias.
///
/// Rows: queries `[batch * seqQ, ...]` (row `b * seqQ + i`), keys and values
/// `[batch * seqK, ...]`. `heads` query heads read `kvHeads` K/V heads (`kvHeads` divides
/// `heads`, query head h reads K/V head `h / (heads / kvHeads)`). `mask`, `bias` and `scale`
/// as `scaledDotProductAttention(query:key:value:mask:bias:scale:layout:compute:)`;
/// Shaw positions need `kvHeads == heads`.
package struct AttentionTrainingProblem: Sendable {
    package let q, k, v: AttentionOperand
    package let batch, heads, kvHeads, headDim, seqQ, seqK: Int
    package let mask: AttentionMask
    package let bias: AttentionBias
    package let relative: RelativeKeyPositions?
    package let scale: Float
    /// Dropout on the probabilities, or nil.
    package let dropout: AttentionDropout?

    /// Validates the shapes (preconditions: these are Attend's own calls, shapes come from
    /// the model, not from a file). `relative`: BERT `relative_key` positions (score +=
    /// `scale * q_l . E[l - r + M - 1]`), run as Shaw key positions (clip `max(seqQ, seqK) - 1`,
    /// the table's rows reversed, no value term); `relative_key_query` is not supported.
    /// `dropout` (on the probabilities) excludes Shaw and BERT relative positions.
    package init(
        q: AttentionOperand, k: AttentionOperand, v: AttentionOperand, batch: Int, heads: Int, kvHeads: Int, headDim: Int,
        seqQ: Int, seqK: Int, mask: AttentionMask = .none, bias: AttentionBias = .none,
        relative: RelativeKeyPositions? = nil, scale: Float? = nil, dropout: AttentionDropout? = nil
    ) {
        precondition(
            batch >= 0 && seqQ >= 0 && seqK >= 0 && heads >= 1 && headDim >= 1 && kvHeads >= 1 && heads % kvHeads == 0,
            "AttentionTrainingProblem: batch \(batch), seqQ \(seqQ), seqK \(seqK), heads \(heads), kvHeads \(kvHeads) (must divide heads), headDim \(headDim)"
        )
        func check(_ o: AttentionOperand, rows: Int, heads n: Int, _ what: String) {
            precondition(
                o.tensor.rank == 2 && o.tensor.shape[0] == rows && o.column >= 0 && o.column + n * headDim <= o.tensor.shape[1],
                "AttentionTrainingProblem: \(what) \(o.tensor.shape) at column \(o.column) must be [\(rows), >= column + \(n * headDim)]"
            )
        }
        check(q, rows: batch * seqQ, heads: heads, "queries")
        check(k, rows: batch * seqK, heads: kvHeads, "keys")
        check(v, rows: batch * seqK, heads: kvHeads, "values")
        // Operands sharing a tensor must not overlap (their gradients share it too).
        let spans = [(q, heads), (k, kvHeads), (v, kvHeads)].map { ($0.0.tensor.storage, $0.0.column, $0.0.column + $0.1 * headDim) }
        for i in 0..<3 {
            for j in (i + 1)..<3 where spans[i].0 === spans[j].0 {
                precondition(
                    spans[i].2 <= spans[j].1 || spans[j].2 <= spans[i].1,
                    "AttentionTrainingProblem: operands \(i) and \(j) overlap in one tensor (columns \(spans[i].1)..<\(spans[i].2), \(spans[j].1)..<\(spans[j].2))"
                )
            }
        }
        if let relative {
            precondition(
                !relative.keyQuery && bias.isNone && kvHeads == heads && relative.distance.shape == [2 * relative.maxPositions - 1, headDim]
                    && max(seqQ, seqK) <= relative.maxPositions && relative.maxPositions >= 2,
                "AttentionTrainingProblem: BERT relative positions need relative_key (not relative_key_query), no other bias, kvHeads == heads, a [2M - 1, headDim] table and sequences of at most M positions"
            )
        }
        precondition(bias.shaw == nil || kvHeads == heads, "AttentionTrainingProblem: Shaw positions need kvHeads == heads")
        precondition(mask.window == 0, "AttentionTrainingProblem: the attention backward has no sliding window (window \(mask.window))")
        precondition(
            dropout == nil || (bias.shaw == nil && relative == nil),
            "AttentionTrainingProblem: dropout on the probabilities is not supported with Shaw or BERT relative positions")
        self.dropout = dropout
        (self.q, self.k, self.v) = (q, k, v)
        (self.batch, self.heads, self.kvHeads, self.headDim, self.seqQ, self.seqK) = (batch, heads, kvHeads, headDim, seqQ, seqK)
        (self.mask, self.bias, self.relative) = (mask, bias, relative)
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
        _ = problem  // validates the mask and bias against the sizes
    }

    /// The bias the kernels run: `bias`, or BERT's `relative_key` table as Shaw key positions
    /// (`a^K[c] = E[M - 1 + clip - c]`, so `c = r - l + clip` reads `E[l - r + M - 1]`).
    var kernelBias: AttentionBias {
        guard let relative else { return bias }
        let clip = max(1, max(seqQ, seqK) - 1), m = relative.maxPositions, d = headDim
        let e = relative.distance.scalars
        let keys = Tensor(shape: [2 * clip + 1, d]) { e[(m - 1 + clip - $0 / d) * d + $0 % d] }
        return .shaw(keys: keys, values: Tensor.zeros([2 * clip + 1, d]), clip: clip)
    }

    /// Maps the kernels' Shaw key-table gradient back to BERT's distance table (for
    /// `relative`): `dE[M - 1 + clip - c] = dA^K[c]`, other rows zero.
    func relativeGradient(_ shawKeys: Tensor) -> Tensor {
        let relative = self.relative!, m = relative.maxPositions, d = headDim, clip = (shawKeys.shape[0] - 1) / 2
        var g = [Float](repeating: 0, count: relative.distance.count)
        let src = shawKeys.scalars
        for c in 0...(2 * clip) { for x in 0..<d { g[(m - 1 + clip - c) * d + x] = src[c * d + x] } }
        return Tensor(shape: relative.distance.shape, scalars: g)
    }

    /// Query heads per K/V head.
    package var group: Int { heads / kvHeads }

    /// The output's (and its gradient's) shape: `[batch * seqQ, heads * headDim]`.
    package var outputShape: [Int] { [batch * seqQ, heads * headDim] }

    /// The same problem as the inference kernels describe it.
    var problem: AttentionProblem {
        let g = group, d = headDim
        func layout(_ o: AttentionOperand, seq: Int, group: Int) -> HeadLayout {
            let w = o.tensor.shape[1]
            return HeadLayout(base: o.column, batchStride: seq * w, headStride: d, rowStride: w, headGroup: group)
        }
        let outCount = batch * seqQ * heads * d
        return AttentionProblem(
            batch: batch, seqQ: seqQ, seqK: seqK, heads: heads, headDim: d, q: layout(q, seq: seqQ, group: 1),
            k: layout(k, seq: seqK, group: g), v: layout(v, seq: seqK, group: g),
            o: HeadLayout(base: 0, batchStride: seqQ * heads * d, headStride: d, rowStride: heads * d),
            counts: (q.tensor.count, k.tensor.count, v.tensor.count, outCount), mask: mask, bias: kernelBias, scale: scale)
    }

    /// Zero gradient tensors shaped as the operands' tensors (one per distinct tensor), and
    /// which of them each of q, k, v writes.
    func gradientTensors(threads: Int = 1) -> (tensors: [Tensor], index: [Int]) {
        var tensors: [Tensor] = [], sources: [TensorStorage] = [], index: [Int] = []
        for o in [q, k, v] {
            if let i = sources.firstIndex(where: { $0 === o.tensor.storage }), tensors[i].shape == o.tensor.shape {
                index.append(i)
            } else {
                sources.append(o.tensor.storage)
                tensors.append(Tensor.zeros(o.tensor.shape, threads: threads))
                index.append(tensors.count - 1)
            }
        }
        return (tensors, index)
    }

    /// The T5 bucket of each entry t of a distance table (zero at `seqK - 1`), or nil.
    func t5Buckets(length: Int) -> [Int]? {
        guard case .t5(let table, let bidirectional, let maxDistance) = bias else { return nil }
        let zero = max(seqK, 1) - 1
        return (0..<length).map {
            t5RelativePositionBucket(zero - $0 - mask.queryStart, bidirectional: bidirectional, numBuckets: table.shape[0], maxDistance: maxDistance)
        }
    }
}

/// The forward pass for training: the attention output `[batch * seqQ, heads * headDim]`
/// (bshd rows, as the output projection reads them) and each query's log-sum-exp of its
/// scores, `[batch, heads, seqQ]` (`-inf` for a query that sees no key), which
/// `attentionBackward(_:out:lse:dOut:compute:)` needs. Native: the fused kernel
/// (`ck_f32_attention_block_lse`); `.swiftSIMD`: the Double reference. Cost: that of the
/// fused attention, `4 * batch * heads * seqQ * seqK * headDim` flops (about half causal).
package func attentionForwardTraining(_ t: AttentionTrainingProblem, compute: Compute) -> (out: Tensor, lse: Tensor) {
    switch compute.backend {
    case .swiftSIMD:
        let r = SwiftSIMDKernels.attentionTraining(t, dOut: nil, threads: compute.threads)
        return (r.out, r.lse)
    case .native(let variant):
        var out = Tensor.zeros(t.outputShape, compute: compute)
        let lse = TensorStorage(repeating: -.infinity, count: t.batch * t.heads * t.seqQ)
        let p = t.problem
        fusedAttention(
            p, query: t.q.tensor, key: t.k.tensor, value: t.v.tensor, output: &out, variant: variant, threads: compute.threads,
            lse: lse.base, dropout: t.dropout)
        return (out, Tensor(shape: [t.batch, t.heads, t.seqQ], storage: lse))
    }
}

/// The backward pass: given the forward's `out` and `lse` and the gradient `dOut` of the
/// output (`[batch * seqQ, heads * headDim]`), the gradients of the queries, keys, values
/// and the learned position tables (T5 bias table, Shaw tables).
///
/// Native: per (batch row, K/V head), parallel over those units: the head's K/V packed once,
/// then `ck_f32_attention_backward` for each query head of its group, adding into the
/// unit's dK/dV; T5 and Shaw tables are summed from per-unit partials in a fixed order, so
/// the result does not depend on the thread count (no atomics). `.swiftSIMD`: the Double
/// reference with materialized scores. Cost: `10 * batch * heads * seqQ * seqK * headDim`
/// flops (about half causal) plus one exp per score; memory: a packed K/V head, its dK/dV
/// accumulators and O(seqQ + seqK) per unit.
package func attentionBackward(
    _ t: AttentionTrainingProblem, out: Tensor, lse: Tensor, dOut: Tensor, compute: Compute
) -> AttentionGradients {
    precondition(
        out.shape == t.outputShape && dOut.shape == t.outputShape && lse.shape == [t.batch, t.heads, t.seqQ],
        "attentionBackward: out \(out.shape) and dOut \(dOut.shape) must be \(t.outputShape), lse \(lse.shape) [\(t.batch), \(t.heads), \(t.seqQ)]"
    )
    switch compute.backend {
    case .swiftSIMD:
        return SwiftSIMDKernels.attentionTraining(t, dOut: dOut, threads: compute.threads).gradients!
    case .native(let variant):
        return nativeAttentionBackward(t, out: out, lse: lse, dOut: dOut, variant: variant, threads: compute.threads)
    }
}

/// A 64-byte aligned scratch buffer of `count` floats (deallocated by the caller).
private func alignedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64).bindMemory(to: Float.self, capacity: max(count, 1))
}

private func nativeAttentionBackward(
    _ t: AttentionTrainingProblem, out: Tensor, lse: Tensor, dOut: Tensor, variant: KernelVariant, threads: Int
) -> AttentionGradients {
    let kern = variant.kernels
    let p = t.problem
    let (b0, h0, g, dh, sq, sk) = (t.batch, t.heads, t.group, t.headDim, t.seqQ, t.seqK)
    let (grads, which) = t.gradientTensors(threads: threads)
    var result = AttentionGradients(
        query: AttentionOperand(grads[which[0]], column: t.q.column), key: AttentionOperand(grads[which[1]], column: t.k.column),
        value: AttentionOperand(grads[which[2]], column: t.v.column))
    let units = b0 * t.kvHeads
    if units == 0 || sq == 0 { return finishTables(t, &result, dRel: nil, relLength: 0, shawParts: nil) }

    // Key padding as additive biases per batch row; distance biases as tables per head.
    let keyBias: TensorStorage? = t.mask.keyPadding.map { pad in
        let kb = TensorStorage(uninitializedCount: max(b0 * sk, 1))
        for b in 0..<b0 { for j in 0..<sk { kb.base[b * sk + j] = pad[b][j] ? 0 : -.infinity } }
        return kb
    }
    let relLength = ck_f32_attention_grad_rel_bias_length(kern, sq, sk)
    let relZero = max(sk, 1) - 1
    let bias = t.kernelBias
    let relBias: TensorStorage? = bias.isDistanceTable ? TensorStorage(uninitializedCount: h0 * relLength) : nil
    if let relBias {
        for h in 0..<h0 {
            for i in 0..<relLength { relBias.base[h * relLength + i] = bias.value(head: h, relative: relZero - i - t.mask.queryStart) }
        }
    }
    let learnedRel: Bool = { if case .t5 = t.bias { return true } else { return false } }()
    let dRel: TensorStorage? = learnedRel ? TensorStorage(repeating: 0, count: b0 * h0 * relLength) : nil
    let shaw = bias.shaw
    let sw = shaw.map { 2 * $0.clip + 1 } ?? 0
    // Shaw: per unit (one query head: Shaw needs group 1) partial table gradients dA^K, dA^V.
    let shawParts: TensorStorage? = shaw == nil ? nil : TensorStorage(repeating: 0, count: units * 2 * sw * dh)
    let shawKeys = shaw?.keys ?? Tensor.zeros([1]), shawValues = shaw?.values ?? Tensor.zeros([1])

    let packedCount = ck_f32_attention_grad_packed_kv_size(kern, sk, dh)
    let accCount = ck_f32_attention_grad_acc_size(kern, sk, dh)
    let wsCount = ck_f32_attention_grad_workspace(kern, dh)
    let ldo = t.heads * dh
    t.q.tensor.withUnsafeBufferPointer { qp in
        t.k.tensor.withUnsafeBufferPointer { kp in
            t.v.tensor.withUnsafeBufferPointer { vp in
                out.withUnsafeBufferPointer { op in
                    dOut.withUnsafeBufferPointer { dop in
                        lse.withUnsafeBufferPointer { lp in
                            shawKeys.withUnsafeBufferPointer { akp in
                                shawValues.withUnsafeBufferPointer { avp in
                                    // The gradient tensors were just made (owned, unshared): written in place.
                                    let gp = grads.map { $0.storage.base }
                                    do {
                                        withExtendedLifetime((keyBias, relBias, dRel, shawParts)) {
                                            let qb = qp.baseAddress!, kb = kp.baseAddress ?? qb, vb = vp.baseAddress ?? qb
                                            let ob = op.baseAddress!, dob = dop.baseAddress!, lb = lp.baseAddress!
                                            let dq = gp[which[0]], dk = gp[which[1]], dv = gp[which[2]]
                                            parallelFor(units, threads: threads) { unit in
                                                let b = unit / t.kvHeads, kvh = unit % t.kvHeads
                                                let packed = alignedFloats(packedCount), acc = alignedFloats(2 * accCount)
                                                let ws = alignedFloats(wsCount)
                                                let shawBuf = alignedFloats(4 * sq * sw)
                                                defer { for x in [packed, acc, ws, shawBuf] { x.deallocate() } }
                                                acc.initialize(repeating: 0, count: 2 * accCount)
                                                if sk > 0 {
                                                    ck_f32_attention_grad_pack_kv(
                                                        kern, sk, dh, kb + p.k.offset(b, kvh * g), p.k.rowStride, vb + p.v.offset(b, kvh * g),
                                                        p.v.rowStride, packed)
                                                }
                                                for h in (kvh * g)..<((kvh + 1) * g) {
                                                    let qh = qb + p.q.offset(b, h), oo = p.o.offset(b, h)
                                                    let (sqk, sdov, sP, sDS) = (
                                                        shawBuf, shawBuf + sq * sw, shawBuf + 2 * sq * sw, shawBuf + 3 * sq * sw
                                                    )
                                                    if shaw != nil {
                                                        nativeGEMM(
                                                            kernels: kern, m: sq, n: sw, k: dh, alpha: t.scale, a: qh, lda: p.q.rowStride,
                                                            transA: false,
                                                            b: akp.baseAddress!, ldb: dh, transB: true, beta: 0, c: sqk, ldc: sw, threads: 1)
                                                        nativeGEMM(
                                                            kernels: kern, m: sq, n: sw, k: dh, alpha: 1, a: dob + oo, lda: ldo, transA: false,
                                                            b: avp.baseAddress!, ldb: dh, transB: true, beta: 0, c: sdov, ldc: sw, threads: 1)
                                                    }
                                                    var drop = t.dropout?.kernelHead(
                                                        batch: b, head: h, heads: h0, seqQ: sq, seqK: sk) ?? ck_attention_dropout()
                                                    var head = ck_attention_grad_head(
                                                        seq_q: sq, seq_k: sk, head_dim: dh, q: qh, ldq: p.q.rowStride, o: ob + oo, ldo: ldo,
                                                        dout: dob + oo, lddo: ldo, lse: lb + (b * h0 + h) * sq, packed_kv: packed,
                                                        dq: dq + t.q.column + b * sq * p.q.rowStride + h * dh, lddq: p.q.rowStride,
                                                        dk_acc: acc, dv_acc: acc + accCount, scale: t.scale,
                                                        causal: t.mask.causal ? 1 : 0, causal_offset: t.mask.queryStart,
                                                        key_bias: keyBias.map { UnsafePointer($0.base + b * sk) },
                                                        rel_bias: relBias.map { UnsafePointer($0.base + h * relLength) }, rel_bias_zero: relZero,
                                                        d_rel_bias: dRel.map { $0.base + (b * h0 + h) * relLength },
                                                        shaw_clip: shaw?.clip ?? 0, shaw_qk: shaw == nil ? nil : UnsafePointer(sqk),
                                                        shaw_dov: shaw == nil ? nil : UnsafePointer(sdov),
                                                        shaw_k: shaw == nil ? nil : akp.baseAddress, shaw_p: shaw == nil ? nil : sP,
                                                        shaw_ds: shaw == nil ? nil : sDS, dropout: nil)
                                                    if t.dropout != nil {
                                                        withUnsafePointer(to: &drop) { d in
                                                            head.dropout = d
                                                            ck_f32_attention_backward(kern, &head, ws)
                                                        }
                                                    } else {
                                                        ck_f32_attention_backward(kern, &head, ws)
                                                    }
                                                    if let shawParts {
                                                        // dA^K += scale * shawDS^T Q, dA^V += shawP^T dO (W x dh each).
                                                        let part = shawParts.base + unit * 2 * sw * dh
                                                        nativeGEMM(
                                                            kernels: kern, m: sw, n: dh, k: sq, alpha: t.scale, a: sDS, lda: sw, transA: true,
                                                            b: qh, ldb: p.q.rowStride, transB: false, beta: 1, c: part, ldc: dh, threads: 1)
                                                        nativeGEMM(
                                                            kernels: kern, m: sw, n: dh, k: sq, alpha: 1, a: sP, lda: sw, transA: true,
                                                            b: dob + oo, ldb: ldo, transB: false, beta: 1, c: part + sw * dh, ldc: dh, threads: 1)
                                                    }
                                                }
                                                let rowK = t.k.tensor.shape[1], rowV = t.v.tensor.shape[1]
                                                ck_f32_attention_grad_store_kv(
                                                    kern, sk, dh, acc, acc + accCount, dk + t.k.column + b * sk * rowK + kvh * dh, rowK,
                                                    dv + t.v.column + b * sk * rowV + kvh * dh, rowV)
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
    }
    result.query = AttentionOperand(grads[which[0]], column: t.q.column)
    result.key = AttentionOperand(grads[which[1]], column: t.k.column)
    result.value = AttentionOperand(grads[which[2]], column: t.v.column)
    return finishTables(t, &result, dRel: dRel, relLength: relLength, shawParts: shawParts)
}

/// Reduces the per-unit partial tables in a fixed order (batch rows, then table entries)
/// into the T5 and Shaw table gradients of `result`.
private func finishTables(
    _ t: AttentionTrainingProblem, _ result: inout AttentionGradients, dRel: TensorStorage?, relLength: Int, shawParts: TensorStorage?
) -> AttentionGradients {
    if case .t5(let table, _, _) = t.bias {
        var grad = [Float](repeating: 0, count: table.count)  // [buckets, heads]
        if let dRel, let buckets = t.t5Buckets(length: relLength) {
            for h in 0..<t.heads {
                for b in 0..<t.batch {
                    let row = dRel.base + (b * t.heads + h) * relLength
                    for i in 0..<relLength where row[i] != 0 { grad[buckets[i] * t.heads + h] += row[i] }
                }
            }
        }
        result.biasTable = Tensor(shape: table.shape, scalars: grad)
    }
    if let shaw = t.kernelBias.shaw {
        let n = shaw.keys.count
        var dk = [Float](repeating: 0, count: n), dv = [Float](repeating: 0, count: n)
        if let shawParts {
            for unit in 0..<(t.batch * t.kvHeads) {
                let part = shawParts.base + unit * 2 * n
                for i in 0..<n {
                    dk[i] += part[i]
                    dv[i] += part[n + i]
                }
            }
        }
        if t.relative != nil {
            result.relative = t.relativeGradient(Tensor(shape: shaw.keys.shape, scalars: dk))
        } else {
            result.shawKeys = Tensor(shape: shaw.keys.shape, scalars: dk)
            result.shawValues = Tensor(shape: shaw.values.shape, scalars: dv)
        }
    }
    return result
}
