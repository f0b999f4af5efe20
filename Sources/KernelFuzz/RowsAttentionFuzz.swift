// Attention on keys and values read in place (ck_attention_rows): the short-sequence kernel
// (whole score matrix on the micro-kernel) and the few-query decode kernel (GEMV, softmax,
// transposed GEMV), against KernelOracle.attentionHead.
import Attend
import CKernels
import Foundation

/// A head of ``AttentionFuzz/Case`` (no Shaw terms: these kernels have none) as
/// `ck_attention_rows`, its relative-position table zero at seq_k - 1.
func attentionRows(_ c: AttentionFuzz.Case, o: GuardedMatrix) -> ck_attention_rows {
    ck_attention_rows(
        seq_q: c.seqQ, seq_k: c.seqK, head_dim: c.d, q: c.q.base, ldq: c.q.ld, k: c.k.base, ldk: c.k.ld, v: c.v.base,
        ldv: c.v.ld, o: o.base, ldo: o.ld, scale: c.scale, causal: c.causal ? 1 : 0, causal_offset: c.causalOffset,
        key_bias: c.keyBias.map { UnsafePointer($0.base) }, rel_bias: c.relBias.map { UnsafePointer($0.base) },
        rel_bias_zero: c.seqK - 1, window: c.window)
}

/// The inputs of a head that no kernel may write: Q, K, V and the biases.
func attentionInputs(_ c: AttentionFuzz.Case) -> [GuardedMatrix] {
    [c.q, c.k, c.v] + [c.keyBias, c.relBias].compactMap { $0 }
}

/// What a run of an in-place attention kernel leaves: the output, the workspace (guarded) and
/// snapshots of the inputs.
struct AttentionRowsRun { let o: GuardedMatrix, workspace: GuardedMatrix, snaps: [[UInt32]] }

/// Runs `kernel(head, workspace)` on a copy of the head's output with a guarded workspace of
/// `wsCount` floats at `misalign`.
func runAttentionRows(
    _ h: AttentionFuzz.Case, workspace wsCount: Int, misalign: Int,
    _ kernel: (inout ck_attention_rows, UnsafeMutablePointer<Float>) -> Void
) -> AttentionRowsRun {
    let snaps = attentionInputs(h).map { $0.snapshot() }
    let o = h.o.copy()
    let ws = GuardedMatrix(rows: 1, cols: wsCount, ld: max(wsCount, 1), misalign: misalign, sentinel: outputSentinel)
    var rows = attentionRows(h, o: o)
    kernel(&rows, ws.base)
    return AttentionRowsRun(o: o, workspace: ws, snaps: snaps)
}

/// The guard and input checks shared by the two kernels.
func checkAttentionRowsGuards(_ c: AttentionFuzz.Case, o: GuardedMatrix, workspace: GuardedMatrix, wsName: String, snaps: [[UInt32]]) -> String? {
    if let bad = o.damagedPadding("O") { return bad }
    if let bad = workspace.damagedPadding("the workspace (\(wsName) floats)") { return bad }
    for (m, snap) in zip(attentionInputs(c), snaps) where !m.unchanged(since: snap) {
        return "the kernel wrote into an input (Q, K, V or a bias: the \(m.rows) x \(m.cols) one)"
    }
    return nil
}

// MARK: - short sequences

/// `ck_f32_attention_short`: seq_q and seq_k around the GEMM tile and the kernel's query
/// blocks and key vectors, up to a few hundred, mostly self-attention (seq_q = seq_k),
/// sometimes seq_k 0; head_dim around nr and the vector widths; padded strides; both softmax
/// paths (key padding alone vectorized; causal, sliding windows or relative biases per
/// score); padded batch rows (masked keys at the end, dropped before the products); scale 0
/// or negative; integer data (exact scores); a misaligned workspace (any alignment is
/// allowed). Checked like the fused attention (one key block: no running-max corrections).
struct AttentionShortFuzz: FuzzKernel {
    let name = "attn-short"

    final class Case: CustomStringConvertible {
        let head = AttentionFuzz.Case()
        var wsMisalign = 0
        var description: String { "\(head.description) workspace misalign \(wsMisalign)" }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case(), h = c.head
        let mr = table.mr, nr = table.nr
        // Query blocks of 4 or 6 rows, key and head-dimension vectors of 4, 8 or 16 lanes in
        // passes of 2 or 4 vectors: the multiples of 4, 6 and 16 up to 64 are edges.
        let blocks = [1, mr, 2 * mr, nr, 2 * nr, 6, 12, 16, 24, 32, 48, 64]
        h.seqQ = boundarySize(&rng, edges: blocks, zero: false, small: 24, maxLarge: 160)
        h.seqK = rng.chance(0.7) ? h.seqQ : boundarySize(&rng, edges: blocks, small: 24, maxLarge: 160)
        h.d = boundarySize(&rng, edges: [1, mr, nr, 2 * nr, 8, 16, 32, 64], zero: false, small: 20, maxLarge: 96)
        if h.seqQ * h.seqK * h.d > 60_000 { h.d = max(1, 60_000 / (h.seqQ * max(h.seqK, 1))) }
        fillAttentionCase(h, &rng, relBiasLength: max(0, h.seqQ + h.seqK - 1), shaw: false)
        if rng.chance(0.25) {
            // A padded batch row: keys past a real length masked (the kernel drops them), the
            // rest unmasked or with the random biases.
            let real = rng.int(0...h.seqK)
            let bias = (0..<h.seqK).map { j in j >= real ? -Float.infinity : (h.keyBias?.base[j] ?? 0) }
            h.keyBias = guardedVector(bias, misalign: rng.below(16), sentinel: inputSentinel)
        }
        c.wsMisalign = rng.below(16)
        return c
    }

    typealias Run = AttentionRowsRun

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let h = c.head
        return runAttentionRows(h, workspace: ck_f32_attention_short_workspace(table.kernels, h.seqQ, h.seqK, h.d), misalign: c.wsMisalign) {
            rows, ws in
            ck_f32_attention_short(table.kernels, &rows, ws)
        }
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        if let bad = checkAttentionRowsGuards(c.head, o: r.o, workspace: r.workspace, wsName: "ck_f32_attention_short_workspace", snaps: r.snaps) {
            return bad
        }
        return checkAttentionHead(c.head, got: r.o, queries: 0..<c.head.seqQ, keyBlocks: 1)
    }
}

// MARK: - few queries (decoding)

/// `ck_f32_attention_few`: one or two queries mostly (a decoding step), sometimes up to 24,
/// against seq_k from 0 to about a thousand keys (vector widths and the GEMV's 4-row groups
/// ±1), head_dim around the vector widths up to 128; causal with the decode offset (seq_k -
/// seq_q), others and negative ones (queries that see nothing); sliding windows (only the
/// window's keys are read); key padding (every key too) and relative biases; the queries run in a few calls over [query0, query0 + count) ranges,
/// or only one range (the other queries' outputs must stay untouched); a misaligned
/// workspace. Checked like the fused attention (one key block).
struct AttentionFewFuzz: FuzzKernel {
    let name = "attn-few"

    final class Case: CustomStringConvertible {
        let head = AttentionFuzz.Case()
        var calls: [Range<Int>] = []
        var partial = false
        var wsMisalign = 0
        var description: String { "\(head.description) query calls \(calls)\(partial ? " (only these)" : "") workspace misalign \(wsMisalign)" }
    }

    func makeCase(_ rng: inout FuzzRNG, table: FuzzTable) -> Case {
        let c = Case(), h = c.head
        let nr = table.nr
        let roll = rng.unit()
        h.seqQ = roll < 0.5 ? 1 : roll < 0.75 ? 2 : boundarySize(&rng, edges: [1, 4, 8], zero: false, small: 12, maxLarge: 24)
        h.seqK = boundarySize(&rng, edges: [1, 4, 8, 16, 32, 64, 128, nr, 4 * nr], small: 40, maxLarge: 1100)
        h.d = boundarySize(&rng, edges: vectorEdges + [128, nr], zero: false, small: 24, maxLarge: 128)
        if h.seqQ * h.seqK * h.d > 80_000 { h.d = max(1, 80_000 / (h.seqQ * max(h.seqK, 1))) }
        fillAttentionCase(h, &rng, relBiasLength: max(0, h.seqQ + h.seqK - 1), shaw: false)
        c.calls = splitRanges(&rng, count: h.seqQ, step: 1, parts: rng.int(1...3))
        if rng.chance(0.25) {
            c.partial = true
            c.calls = [rng.pick(c.calls)]
        }
        c.wsMisalign = rng.below(16)
        return c
    }

    typealias Run = AttentionRowsRun

    func run(_ c: Case, on table: FuzzTable) -> Run {
        let h = c.head
        return runAttentionRows(h, workspace: ck_f32_attention_few_workspace(h.seqK, h.d), misalign: c.wsMisalign) { rows, ws in
            for call in c.calls { ck_f32_attention_few(table.kernels, &rows, call.lowerBound, call.count, ws) }
        }
    }

    func check(_ c: Case, _ r: Run, table: FuzzTable) -> String? {
        let h = c.head
        if let bad = checkAttentionRowsGuards(h, o: r.o, workspace: r.workspace, wsName: "ck_f32_attention_few_workspace", snaps: r.snaps) {
            return bad
        }
        let done = c.calls.first!.lowerBound..<c.calls.last!.upperBound
        for i in 0..<h.seqQ where !done.contains(i) {
            for d in 0..<h.d where r.o[i, d].bitPattern != h.o[i, d].bitPattern {
                return "query \(i) dim \(d) is outside the queries computed (\(done)) but was written: \(r.o[i, d])"
            }
        }
        return checkAttentionHead(h, got: r.o, queries: done, keyBlocks: 1)
    }
}
