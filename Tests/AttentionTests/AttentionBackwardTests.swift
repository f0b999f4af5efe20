// The attention backward for training: the Double reference (materialized scores) checked
// by central finite differences on every kind of problem, then every native variant's fused
// training forward (out, lse) and backward (dQ, dK, dV, T5 and Shaw table gradients) against
// that reference, on 1 and 2 threads, with the two thread counts bitwise equal.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport
import CKernels

/// One training problem of the tests: the operands (fused or separate), mask and bias.
struct BackwardCase: CustomTestStringConvertible, Sendable {
    enum Kind: String, CaseIterable, Sendable {
        case plain, causal, padded, grouped, t5, shaw, cross, fused, alibi, causalOffset, bertRelative
    }
    let kind: Kind
    var batch = 2, heads = 2, kvHeads = 2, headDim = 5, seqQ = 6, seqK = 6
    /// Dropout probability on the attention probabilities (0: none).
    var dropout: Float = 0

    var testDescription: String {
        "\(kind) b\(batch) h\(heads)/\(kvHeads) d\(headDim) q\(seqQ) k\(seqK)" + (dropout > 0 ? " dropout \(dropout)" : "")
    }

    /// The kinds dropout on the probabilities applies to (not Shaw or BERT relative positions).
    static let dropoutKinds: [Kind] = [.plain, .causal, .padded, .grouped, .t5, .cross, .alibi, .causalOffset]

    /// The problem and a gradient of its output, random from `seed`. `scaleUp` spreads the
    /// scores (peaked softmax rows, where cancellation in dP - D is worst).
    func make(seed: UInt64, scaleUp: Float = 1) -> (AttentionTrainingProblem, Tensor) {
        var rng = SeededRNG(seed: seed)
        func random(_ shape: [Int], _ amp: Float = 1) -> Tensor {
            Tensor(shape: shape, generating: { _ in rng.nextFloat(in: -amp...amp) })
        }
        let (b, h, kvh, dh, sq, sk) = (batch, heads, kvHeads, headDim, seqQ, seqK)
        var mask = AttentionMask()
        var bias = AttentionBias.none
        let q: AttentionOperand, k: AttentionOperand, v: AttentionOperand
        switch kind {
        case .fused, .plain, .causal, .padded, .t5, .shaw, .alibi, .causalOffset, .bertRelative:
            // Self-attention over one fused [T, 3d] projection (plus a spare column at the end,
            // so the row stride is not 3d: the operands must honour columns and strides).
            precondition(sq == sk && h == kvh)
            let qkv = random([b * sq, 3 * h * dh + 1], 1.5 * scaleUp)
            (q, k, v) = (AttentionOperand(qkv, column: 0), AttentionOperand(qkv, column: h * dh), AttentionOperand(qkv, column: 2 * h * dh))
        case .grouped:
            let qt = random([b * sq, h * dh], 1.5 * scaleUp), kv = random([b * sk, 2 * kvh * dh], 1.5)
            (q, k, v) = (AttentionOperand(qt), AttentionOperand(kv, column: 0), AttentionOperand(kv, column: kvh * dh))
        case .cross:
            let qt = random([b * sq, h * dh], 1.5 * scaleUp), kv = random([b * sk, 2 * kvh * dh], 1.5)
            (q, k, v) = (AttentionOperand(qt), AttentionOperand(kv, column: 0), AttentionOperand(kv, column: kvh * dh))
        }
        switch kind {
        case .causal: mask.causal = true
        case .causalOffset:
            mask.causal = true
            mask.queryStart = -2  // the first two queries see nothing: zero output and gradient
        case .padded, .cross:
            mask.keyPadding = (0..<b).map { r in (0..<sk).map { j in j < sk - 1 - r * (sk / 3) || j == 0 } }
            if b > 1 { mask.keyPadding![b - 1] = Array(repeating: false, count: sk) }  // a row with nothing to see
        case .grouped:
            mask.causal = true
            mask.queryStart = sk - sq
        case .t5:
            bias = .t5(table: random([8, h], 2), bidirectional: true, maxDistance: 12)
        case .shaw:
            bias = .shaw(keys: random([5, dh]), values: random([5, dh]), clip: 2)
        case .alibi:
            bias = .alibi(slopes: alibiSlopes(heads: h), symmetric: false)
            mask.causal = true
        case .bertRelative:
            mask.keyPadding = (0..<b).map { r in (0..<sk).map { j in j < sk - r } }
        default: break
        }
        let relative =
            kind == .bertRelative ? RelativeKeyPositions(distance: random([2 * (sq + 3) - 1, dh]), maxPositions: sq + 3, keyQuery: false) : nil
        let t = AttentionTrainingProblem(
            q: q, k: k, v: v, batch: b, heads: h, kvHeads: kvh, headDim: dh, seqQ: sq, seqK: sk, mask: mask, bias: bias,
            relative: relative, scale: kind == .t5 ? 1 : nil,
            dropout: dropout > 0 ? AttentionDropout(probability: dropout, seed: 0xD209 &+ seed) : nil)
        return (t, random(t.outputShape))
    }

    static func small(_ kind: Kind) -> BackwardCase {
        var c = BackwardCase(kind: kind)
        switch kind {
        case .grouped: (c.heads, c.kvHeads, c.seqQ, c.seqK) = (4, 2, 4, 7)
        case .cross: (c.seqQ, c.seqK) = (4, 9)
        default: break
        }
        return c
    }
}

@Suite("Attention backward: the reference by finite differences")
struct AttentionBackwardReferenceTests {
    /// The gradient of L = sum(dOut * out) with respect to every input scalar, by central
    /// differences in Double (h = 1e-5: truncation ~h^2 * |f'''| ~ 1e-10, rounding ~ 1e-16 *
    /// |L| / h ~ 1e-10), against the reference's analytic gradients; 1e-7 leaves room for both
    /// and is far below any real mistake (a dropped term is ~1e-2).
    @Test(arguments: BackwardCase.Kind.allCases.map { BackwardCase.small($0) } + BackwardCase.dropoutKinds.map { kind in
        var c = BackwardCase.small(kind)
        c.dropout = 0.3
        return c
    })
    func finiteDifferences(_ c: BackwardCase) {
        let kind = c.kind
        let (t, dOut) = c.make(seed: 0xB0 + UInt64(kind.rawValue.count))
        let x = AttentionGradReference.inputs(t)
        let dO = dOut.scalars.map(Double.init)
        let g = AttentionGradReference.problem(t, x, dOut: dO).gradients!
        func loss(_ x: AttentionGradReference.Inputs) -> Double {
            zip(AttentionGradReference.problem(t, x, dOut: nil).out, dO).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let h = 1e-5
        func check(_ name: String, _ path: WritableKeyPath<AttentionGradReference.Inputs, [Double]>, _ grad: [Double]) {
            var worst = 0.0
            for i in 0..<grad.count {
                var xp = x, xm = x
                xp[keyPath: path][i] += h
                xm[keyPath: path][i] -= h
                let fd = (loss(xp) - loss(xm)) / (2 * h)
                worst = max(worst, abs(fd - grad[i]) / (1 + abs(grad[i])))
            }
            #expect(worst < 1e-7, "\(c.testDescription): d\(name) differs from finite differences by \(worst)")
        }
        check("Q", \.q, g.q)
        check("K", \.k, g.k)
        check("V", \.v, g.v)
        if g.table != nil { check("table", \.table!, g.table!) }
        if g.shawKeys != nil {
            check("shawKeys", \.shawKeys!, g.shawKeys!)
            if t.relative == nil { check("shawValues", \.shawValues!, g.shawValues!) }
        }
        // The gradients must not be trivially zero (a test that can fail).
        #expect(g.q.contains { abs($0) > 1e-3 } && g.k.contains { abs($0) > 1e-3 } && g.v.contains { abs($0) > 1e-3 })
        if let drop = t.dropout {
            // Dropout did drop (and keep) probabilities, and changed the output.
            let z = (0..<UInt64(t.batch * t.heads * t.seqQ * t.seqK)).map { drop.factor(counter: $0) }
            #expect(z.contains(0) && z.contains(1 / (1 - drop.probability)))
            let plain = AttentionTrainingProblem(
                q: t.q, k: t.k, v: t.v, batch: t.batch, heads: t.heads, kvHeads: t.kvHeads, headDim: t.headDim, seqQ: t.seqQ, seqK: t.seqK,
                mask: t.mask, bias: t.bias, relative: t.relative, scale: t.scale)
            #expect(AttentionGradReference.problem(plain, x, dOut: nil).out != AttentionGradReference.problem(t, x, dOut: nil).out)
        }
    }

    /// The dropout hash: SplitMix64 at stream position counter + 1, a keep rate of 1 - p
    /// (within 1% over 10^5 draws) and exactly the kernel header's function.
    @Test func dropoutHash() {
        let d = AttentionDropout(probability: 0.25, seed: 42)
        var g = SplitMix64(state: 42)
        _ = g.next()
        let second = g.next()
        #expect(ck_dropout_hash(42, 1) == second)
        let kept = (0..<UInt64(100_000)).filter { d.factor(counter: $0) != 0 }.count
        #expect(abs(Double(kept) / 100_000 - 0.75) < 0.01)
        var cd = ck_attention_dropout(seed: 42, counter0: 5, threshold: UInt32(0.25 * 16_777_216), keep_scale: 1 / 0.75)
        for i in 0..<20 {
            for j in 0..<7 { #expect(ck_dropout_factor(&cd, 7, i, j) == d.factor(counter: UInt64(5 + i * 7 + j))) }
        }
    }
}

@Suite("Attention backward: native variants against the reference")
struct AttentionBackwardNativeTests {
    /// Sizes past one query block (64 queries) and one key block (~96 keys), a head size
    /// that is no multiple of any tile width, odd sequence lengths.
    static let cases: [BackwardCase] = {
        func sized(_ kind: BackwardCase.Kind) -> BackwardCase {
            var c = BackwardCase(kind: kind)
            (c.batch, c.heads, c.kvHeads, c.headDim, c.seqQ, c.seqK) = (2, 2, 2, 19, 131, 131)
            switch kind {
            case .grouped: (c.heads, c.kvHeads, c.seqQ, c.seqK) = (6, 2, 70, 203)
            case .cross: (c.seqQ, c.seqK) = (37, 211)
            default: break
            }
            return c
        }
        // With dropout on the probabilities: the forward's tile loop and the backward's
        // recomputation draw the reference's mask.
        let dropped = [BackwardCase.Kind.plain, .causal, .padded, .grouped, .t5, .cross].map { kind in
            var c = sized(kind)
            c.dropout = kind == .padded ? 0.6 : 0.1
            return c
        }
        return BackwardCase.Kind.allCases.map(sized) + dropped
    }()

    static let arguments: [(KernelVariant, BackwardCase)] = KernelVariant.supported.flatMap { v in cases.map { (v, $0) } }

    /// Largest |got - want| over a tensor, relative to the largest |want| (and 1e-30).
    static func error(_ got: [Float], _ want: [Float]) -> Double {
        precondition(got.count == want.count)
        var e = 0.0, m = 1e-30
        for (a, b) in zip(got, want) {
            if a.isNaN != b.isNaN { return .infinity }
            e = max(e, abs(Double(a) - Double(b)))
            m = max(m, abs(Double(b)))
        }
        return e / m
    }

    /// Float32 against the Double reference. Each gradient entry is a sum over up to 211
    /// keys or queries of products of float32 terms whose own relative errors are a few ulp
    /// (exp within 2 ulp, lse and the scores rounded once, dP - D cancelling at most one
    /// significant digit at these amplitudes): the error relative to the tensor's largest
    /// entry stays ~1e-6 on these sizes (measured: at most 1.2e-6 over every variant and case); 1e-5 leaves a margin and
    /// still catches any missing or misplaced term (errors of 1e-2 and more).
    @Test(arguments: arguments)
    func matchesReference(_ variant: KernelVariant, _ c: BackwardCase) throws {
        let (t, dOut) = c.make(seed: 0x5EED + UInt64(c.kind.rawValue.count), scaleUp: 2)
        let ref = SwiftSIMDKernels.attentionTraining(t, dOut: dOut, threads: 1)
        var first: AttentionGradients?
        for threads in [1, 2] {
            let compute = try Compute(backend: .native(variant), threads: threads)
            let (out, lse) = attentionForwardTraining(t, compute: compute)
            #expect(Self.error(out.scalars, ref.out.scalars) < 1e-5, "\(variant) \(c.testDescription) out")
            let lseGot = lse.scalars, lseWant = ref.lse.scalars
            for (a, b) in zip(lseGot, lseWant) {
                #expect((a == -.infinity) == (b == -.infinity) && (b == -.infinity || abs(a - b) <= 1e-5 * max(1, abs(b))), "lse \(a) vs \(b)")
            }
            // The backward from the reference's forward (so only the backward is measured).
            let g = attentionBackward(t, out: ref.out, lse: ref.lse, dOut: dOut, compute: compute)
            let want = ref.gradients!
            for (name, a, b) in [
                ("dQ", g.query, want.query), ("dK", g.key, want.key), ("dV", g.value, want.value),
            ] {
                #expect(a.column == b.column && a.tensor.shape == b.tensor.shape)
                let e = Self.error(a.tensor.scalars, b.tensor.scalars)
                #expect(e < 1e-5, "\(variant) \(threads) threads \(c.testDescription): \(name) error \(e)")
            }
            // Fused operands share one gradient tensor; separate ones do not.
            #expect((g.query.tensor.storage === g.key.tensor.storage) == (t.q.tensor.storage === t.k.tensor.storage))
            #expect((g.key.tensor.storage === g.value.tensor.storage) == (t.k.tensor.storage === t.v.tensor.storage))
            for (name, a, b) in [
                ("table", g.biasTable, want.biasTable), ("shawKeys", g.shawKeys, want.shawKeys), ("shawValues", g.shawValues, want.shawValues),
                ("relative", g.relative, want.relative),
            ] {
                #expect((a == nil) == (b == nil), "\(name) present")
                if let a, let b {
                    // A table entry sums dS over thousands of (query, key) pairs, and every
                    // row of dS sums to zero (sum_j P_ij (dP_ij - D_i) = 0): the result is much
                    // smaller than the terms, so its error relative to the table's largest
                    // entry is larger (measured: 1.2e-5 for T5); 1e-4.
                    let e = Self.error(a.scalars, b.scalars)
                    #expect(e < 1e-4, "\(variant) \(threads) threads \(c.testDescription): \(name) error \(e)")
                }
            }
            if let first {
                // Deterministic for any thread count: bitwise the same gradients.
                #expect(first.query.tensor == g.query.tensor && first.key.tensor == g.key.tensor && first.value.tensor == g.value.tensor)
                #expect(
                    first.biasTable == g.biasTable && first.shawKeys == g.shawKeys && first.shawValues == g.shawValues && first.relative == g.relative
                )
            }
            first = g
        }
    }

    /// The `.swiftSIMD` backend is the reference itself; the native forward feeding the
    /// native backward (the training path end to end) stays within the same bound.
    @Test func nativeEndToEnd() throws {
        let c = Self.cases.first { $0.kind == .fused }!
        let (t, dOut) = c.make(seed: 7)
        let ref = attentionBackward(
            t, out: Tensor.zeros(t.outputShape), lse: Tensor.zeros([t.batch, t.heads, t.seqQ]), dOut: dOut,
            compute: try Compute(backend: .swiftSIMD, threads: 1))
        let compute = try Compute(backend: .native(.best), threads: 2)
        let (out, lse) = attentionForwardTraining(t, compute: compute)
        let g = attentionBackward(t, out: out, lse: lse, dOut: dOut, compute: compute)
        #expect(Self.error(g.query.tensor.scalars, ref.query.tensor.scalars) < 1e-5)
    }
}

@Suite("Attention backward: BERT relative_key as Shaw key positions")
struct AttentionBackwardRelativeTests {
    /// The training forward with `relative` equals the inference path's materialized
    /// `relativeSelfAttention` (the definition), and the distance-table gradient has the
    /// shape of the table, zero outside the distances the sequence uses.
    @Test func matchesInferenceForward() throws {
        var c = BackwardCase(kind: .bertRelative)
        (c.seqQ, c.seqK, c.headDim, c.heads, c.kvHeads) = (70, 70, 9, 3, 3)
        let (t, dOut) = c.make(seed: 99)
        let rel = t.relative!
        let want = relativeSelfAttention(
            qkv: Tensor(
                shape: [t.batch * t.seqQ, 3 * t.heads * t.headDim],
                generating: { i in
                    let w = 3 * t.heads * t.headDim
                    return t.q.tensor.scalars[(i / w) * t.q.tensor.shape[1] + i % w]
                }), batch: t.batch, seq: t.seqQ, heads: t.heads, headDim: t.headDim, distance: rel.distance,
            maxPositions: rel.maxPositions, keyQuery: false, keyPadding: t.mask.keyPadding, scale: t.scale,
            compute: try Compute(backend: .swiftSIMD, threads: 1))
        for variant in KernelVariant.supported {
            let compute = try Compute(backend: .native(variant), threads: 2)
            let (out, lse) = attentionForwardTraining(t, compute: compute)
            #expect(AttentionBackwardNativeTests.error(out.scalars, want.scalars) < 1e-5, "\(variant)")
            let g = attentionBackward(t, out: out, lse: lse, dOut: dOut, compute: compute)
            #expect(g.relative?.shape == rel.distance.shape && g.shawKeys == nil && g.shawValues == nil)
            let m = rel.maxPositions, used = (m - t.seqQ)..<(m + t.seqQ - 1)
            let rows = g.relative!.scalars
            #expect((0..<(2 * m - 1)).allSatisfy { r in used.contains(r) || (0..<t.headDim).allSatisfy { rows[r * t.headDim + $0] == 0 } })
            #expect(rows.contains { abs($0) > 1e-3 })
        }
    }
}
