import Foundation
import Testing
import AttendTestSupport
@testable import Attend

// Every layer's backward against central finite differences of a scalar probe loss
// L = Σ y ∘ R (R fixed random, so dL/dy = R), on a few sampled scalars of the input and of
// every parameter. The layers compute in float32, so the differences are taken in float32:
// with step h = 1e-2 on O(1) values the truncation error is O(h² f''') ≈ 1e-4 and the
// rounding error about ε·|L|/h ≈ 6e-8 · 30 / 1e-2 ≈ 2e-4; the check allows 2e-3 absolute
// plus 2% relative, far below what a wrong term (a missing residual, a transposed product, a
// dropped 1/n) produces. ReLU is checked with inputs kept away from its kink.

/// Random tensors and the finite-difference check.
struct GradientCheck {
    var rng: SeededRNG
    init(seed: UInt64) { rng = SeededRNG(seed: seed) }

    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, generating: { _ in Float.random(in: -scale...scale, using: &rng) })
    }

    /// Checks `backward` against finite differences of `forward` for the input `x` and every
    /// tensor of `parameters` (`samples` scalars each). `backward(params, x, dY)` returns the
    /// input gradient and the parameter gradients (by the same names).
    mutating func check(
        _ what: String, input x: Tensor, parameters: ParameterSet, step h: Float = 1e-2, samples: Int = 8,
        forward: (ParameterSet, Tensor) -> Tensor,
        backward: (ParameterSet, Tensor, Tensor) -> (Tensor?, ParameterSet)
    ) {
        let y = forward(parameters, x)
        let probe = tensor(y.shape)
        func loss(_ p: ParameterSet, _ x: Tensor) -> Double {
            zip(forward(p, x).scalars, probe.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        let (dX, grads) = backward(parameters, x, probe)
        func compare(_ name: String, analytic: Tensor, perturb: (Int, Float) -> Double) {
            #expect(analytic.count > 0)
            let count = analytic.count
            for s in 0..<min(samples, count) {
                let i = s == 0 ? 0 : Int.random(in: 0..<count, using: &rng)
                let numeric = (perturb(i, h) - perturb(i, -h)) / Double(2 * h)
                let a = Double(analytic.scalars[i])
                #expect(abs(a - numeric) <= 2e-3 + 0.02 * abs(numeric), "\(what): d\(name)[\(i)] analytic \(a), numeric \(numeric)")
            }
        }
        if let dX {
            #expect(dX.count == x.count, "\(what): input gradient \(dX.shape) for input \(x.shape)")
            compare("input", analytic: dX) { i, d in
                var xp = x
                xp.withUnsafeMutableBufferPointer { $0[i] += d }
                return loss(parameters, xp)
            }
        }
        #expect(Set(grads.names) == Set(parameters.names), "\(what): gradient names \(grads.names)")
        for name in parameters.names {
            guard let g = grads[name] else { continue }
            #expect(g.shape == parameters[name]!.shape, "\(what): \(name) gradient \(g.shape)")
            compare(name, analytic: g) { i, d in
                var p = parameters
                p.modify(name) { t in t.withUnsafeMutableBufferPointer { $0[i] += d } }
                return loss(p, x)
            }
        }
    }
}

/// Builders of small layers from a parameter set (names as the tests give them).
enum SmallLayers {
    static func linear(_ p: ParameterSet, _ n: String, bias: Bool = true) -> Linear {
        Linear(weight: p[n + ".weight"]!, bias: bias ? p[n + ".bias"]! : nil)
    }

    static func linearParameters(_ g: inout GradientCheck, _ n: String, out: Int, in i: Int, bias: Bool = true) -> [(String, Tensor)] {
        var r = [(n + ".weight", g.tensor([out, i], scale: 0.5))]
        if bias { r.append((n + ".bias", g.tensor([out], scale: 0.5))) }
        return r
    }

    static func attentionParameters(_ g: inout GradientCheck, _ n: String, d: Int, inner: Int, bias: Bool) -> [(String, Tensor)] {
        ["q", "k", "v"].flatMap { linearParameters(&g, "\(n).\($0)", out: inner, in: d, bias: bias) }
            + linearParameters(&g, "\(n).o", out: d, in: inner, bias: bias)
    }

    static func attention(_ p: ParameterSet, _ n: String, heads: Int, bias: Bool, scale: Float? = nil) -> MultiHeadAttention {
        MultiHeadAttention(
            heads: heads, query: linear(p, n + ".q", bias: bias), key: linear(p, n + ".k", bias: bias),
            value: linear(p, n + ".v", bias: bias), out: linear(p, n + ".o", bias: bias), scale: scale)
    }

    static func attentionNames(_ n: String, d: Int, inner: Int, bias: Bool) -> AttentionParameterNames {
        AttentionParameterNames(query: n + ".q", key: n + ".k", value: n + ".v", out: n + ".o", inner: inner, modelDim: d, bias: bias)
    }

    static func norm(_ p: ParameterSet, _ n: String, rms: Bool) -> Norm {
        rms ? .rms(RMSNorm(weight: p[n + ".weight"]!, eps: 1e-6)) : .layer(LayerNorm(weight: p[n + ".weight"]!, bias: p[n + ".bias"]!, eps: 1e-5))
    }

    static func normParameters(_ g: inout GradientCheck, _ n: String, size: Int, rms: Bool) -> [(String, Tensor)] {
        var r = [(n + ".weight", Tensor(shape: [size], generating: { _ in 1 }) + g.tensor([size], scale: 0.3))]
        if !rms { r.append((n + ".bias", g.tensor([size], scale: 0.3))) }
        return r
    }

    static func feedForward(_ p: ParameterSet, _ n: String, activation: Activation, gated: Bool, bias: Bool) -> FeedForward {
        FeedForward(
            up: linear(p, n + ".up", bias: bias), down: linear(p, n + ".down", bias: bias), activation: activation,
            gate: gated ? linear(p, n + ".gate", bias: bias) : nil)
    }

    static func feedForwardParameters(_ g: inout GradientCheck, _ n: String, d: Int, f: Int, gated: Bool, bias: Bool) -> [(String, Tensor)] {
        linearParameters(&g, n + ".up", out: f, in: d, bias: bias) + (gated ? linearParameters(&g, n + ".gate", out: f, in: d, bias: bias) : [])
            + linearParameters(&g, n + ".down", out: d, in: f, bias: bias)
    }

    static func feedForwardNames(_ n: String, d: Int, f: Int, gated: Bool, bias: Bool) -> FeedForwardParameterNames {
        FeedForwardParameterNames(
            up: LinearParameterNames(n + ".up", rows: f, bias: bias), gate: gated ? LinearParameterNames(n + ".gate", rows: f, bias: bias) : nil,
            down: LinearParameterNames(n + ".down", rows: d, bias: bias))
    }
}

@Suite struct LayerGradientTests {
    let compute = Compute.default

    @Test func linear() {
        var g = GradientCheck(seed: 11)
        let p = ParameterSet(SmallLayers.linearParameters(&g, "fc", out: 5, in: 7))
        let x = g.tensor([6, 7])
        g.check("Linear", input: x, parameters: p, forward: { p, x in SmallLayers.linear(p, "fc").forward(x, compute: compute) }) { p, x, dY in
            var grads = p.zerosLike()
            let dX = SmallLayers.linear(p, "fc").backward(
                input: x, outputGradient: dY, names: LinearParameterNames("fc", rows: 5), into: &grads, compute: compute)
            return (dX, grads)
        }
    }

    @Test func fusedProjectionRowRanges() {
        // A [3 inner, d] fused weight stored under three names; the key/value rows alone
        // (cross-attention's memory projection) and the query rows alone.
        var g = GradientCheck(seed: 12)
        let parts = ["q", "k", "v"]
        let p = ParameterSet(parts.flatMap { SmallLayers.linearParameters(&g, $0, out: 4, in: 6) })
        let names = LinearParameterNames(parts: parts.map { ($0 + ".weight", $0 + ".bias", 4) })
        func fused(_ p: ParameterSet) -> Linear {
            Linear(weight: Tensor.concatenateRows(parts.map { p[$0 + ".weight"]! }), bias: Tensor.concatenateRows(parts.map { p[$0 + ".bias"]! }))
        }
        let x = g.tensor([5, 6])
        for outputs in [0..<4, 4..<12, 0..<12] {
            g.check("fused rows \(outputs)", input: x, parameters: p, forward: { p, x in fused(p).forward(x, outputs: outputs, compute: compute) }) {
                p, x, dY in
                var grads = p.zerosLike()
                let dX = fused(p).backward(input: x, outputGradient: dY, outputs: outputs, names: names, into: &grads, compute: compute)
                return (dX, grads)
            }
        }
    }

    @Test func embeddingScatterAddSkipsPadding() {
        var grads = ParameterSet([("table", Tensor.zeros([4, 2]))])
        let dY = Tensor(shape: [4, 2], scalars: [1, 2, 3, 4, 5, 6, 7, 8])
        Embedding(weight: Tensor.zeros([4, 2])).backward(
            ids: [3, 0, 3, 1], outputGradient: dY, name: "table", paddingIndex: 0, into: &grads, compute: compute)
        #expect(grads["table"]!.scalars == [0, 0, 7, 8, 0, 0, 6, 8])
    }

    @Test(arguments: [false, true])
    func norms(rms: Bool) {
        var g = GradientCheck(seed: rms ? 13 : 14)
        let p = ParameterSet(SmallLayers.normParameters(&g, "n", size: 8, rms: rms))
        let x = g.tensor([5, 8]), residual = g.tensor([5, 8])
        let names = NormParameterNames("n", bias: !rms)
        g.check(
            rms ? "RMSNorm" : "LayerNorm", input: x, parameters: p,
            forward: { p, x in SmallLayers.norm(p, "n", rms: rms).trainingForward(x, residual: residual, compute: compute).0 }
        ) { p, x, dY in
            var grads = p.zerosLike()
            let norm = SmallLayers.norm(p, "n", rms: rms)
            let (_, saved) = norm.trainingForward(x, residual: residual, compute: compute)
            return (norm.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute), grads)
        }
    }

    @Test(arguments: [(Activation.gelu, false), (.geluTanh, false), (.silu, false), (.relu, false), (.geluTanh, true), (.silu, true)])
    func feedForward(activation: Activation, gated: Bool) {
        var g = GradientCheck(seed: 15 + UInt64(gated ? 1 : 0))
        let p = ParameterSet(SmallLayers.feedForwardParameters(&g, "ff", d: 6, f: 10, gated: gated, bias: !gated))
        let x = g.tensor([5, 6])
        let names = SmallLayers.feedForwardNames("ff", d: 6, f: 10, gated: gated, bias: !gated)
        // ReLU: a step of 1e-3 keeps the perturbed pre-activations on the same side of 0.
        g.check(
            "FeedForward \(activation) gated \(gated)", input: x, parameters: p, step: activation == .relu ? 1e-3 : 1e-2,
            forward: { p, x in
                SmallLayers.feedForward(p, "ff", activation: activation, gated: gated, bias: !gated).trainingForward(x, compute: compute).0
            }
        ) { p, x, dY in
            var grads = p.zerosLike()
            let ff = SmallLayers.feedForward(p, "ff", activation: activation, gated: gated, bias: !gated)
            let (_, saved) = ff.trainingForward(x, compute: compute)
            return (ff.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute), grads)
        }
    }

    @Test(arguments: [false, true])
    func selfAttention(causalWithBias: Bool) {
        var g = GradientCheck(seed: causalWithBias ? 17 : 18)
        let (b, s, d, heads) = (2, 5, 8, 2)
        let p = ParameterSet(SmallLayers.attentionParameters(&g, "att", d: d, inner: d, bias: !causalWithBias))
        let x = g.tensor([b * s, d])
        let table = g.tensor([8, heads])
        func t5(_ table: Tensor) -> AttentionBias { causalWithBias ? .t5(table: table, bidirectional: false, maxDistance: 20) : .none }
        let bias = t5(table)
        let vis = AttentionVisibility(
            batch: b, seqQ: s, seqK: s, keyPadding: causalWithBias ? nil : [[true, true, true, true, true], [true, true, true, false, false]],
            causal: causalWithBias)
        let names = SmallLayers.attentionNames("att", d: d, inner: d, bias: !causalWithBias)
        let scale: Float? = causalWithBias ? 1 : nil
        g.check(
            "self-attention", input: x, parameters: p,
            forward: { p, x in
                SmallLayers.attention(p, "att", heads: heads, bias: !causalWithBias, scale: scale).trainingForward(
                    selfAttention: x, vis, bias: bias, compute: compute
                ).0
            }
        ) { p, x, dY in
            var grads = p.zerosLike()
            let a = SmallLayers.attention(p, "att", heads: heads, bias: !causalWithBias, scale: scale)
            let (_, saved) = a.trainingForward(selfAttention: x, vis, bias: bias, compute: compute)
            let r = a.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute)
            #expect((r.positions.biasTable != nil) == causalWithBias)
            return (r.input, grads)
        }
        guard causalWithBias else { return }
        // T5's bucket table's gradient, by finite differences of the table itself.
        let a = SmallLayers.attention(p, "att", heads: heads, bias: false, scale: 1)
        g.check(
            "T5 bias table", input: table, parameters: ParameterSet(),
            forward: { _, table in
                a.trainingForward(selfAttention: x, vis, bias: t5(table), compute: compute).0
            }
        ) { _, table, dY in
            var grads = p.zerosLike()
            let (_, saved) = a.trainingForward(selfAttention: x, vis, bias: t5(table), compute: compute)
            return (a.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute).positions.biasTable, ParameterSet())
        }
    }

    @Test("self-attention with RoPE: queries and keys rotated before the fused kernel, gradients rotated back")
    func selfAttentionRotary() {
        var g = GradientCheck(seed: 31)
        let (b, s, d, heads) = (2, 6, 8, 2)
        let p = ParameterSet(SmallLayers.attentionParameters(&g, "att", d: d, inner: d, bias: true))
        let x = g.tensor([b * s, d])
        let vis = AttentionVisibility(batch: b, seqQ: s, seqK: s, keyPadding: nil, causal: true)
        let names = SmallLayers.attentionNames("att", d: d, inner: d, bias: true)
        let rope = RotaryEmbedding(headDim: d / heads, base: 10)  // a small base: large angles within 6 positions
        g.check(
            "self-attention RoPE", input: x, parameters: p,
            forward: { p, x in
                SmallLayers.attention(p, "att", heads: heads, bias: true).trainingForward(selfAttention: x, vis, rotary: rope, compute: compute).0
            }
        ) { p, x, dY in
            var grads = p.zerosLike()
            let a = SmallLayers.attention(p, "att", heads: heads, bias: true)
            let (_, saved) = a.trainingForward(selfAttention: x, vis, rotary: rope, compute: compute)
            return (a.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute).input, grads)
        }
        // The forward is the inference attention over rotated queries and keys.
        let a = SmallLayers.attention(p, "att", heads: heads, bias: true)
        let qkv = a.inProjection(x, compute: compute).reshaped([b, s, 3, heads, d / heads])
        func part(_ i: Int) -> Tensor {
            Tensor(shape: [b, s, heads, d / heads]) { f in
                let (bs, r) = (f / d, f % d)
                return qkv.scalars[bs * 3 * d + i * d + r]
            }
        }
        let context = scaledDotProductAttention(
            query: rope(part(0)), key: rope(part(1)), value: part(2), mask: .causal, compute: compute)
        let want = a.outProjection(context.reshaped([b * s, d]), compute: compute)
        let got = a.trainingForward(selfAttention: x, vis, rotary: rope, compute: compute).0
        #expect(zip(got.scalars, want.scalars).allSatisfy { abs($0 - $1) <= 1e-5 }, "RoPE training forward against rotated inference attention")
    }

    @Test("RoPE on token rows: the rotation of RotaryEmbedding, its inverse undoes it, and it is orthogonal (the inverse is its adjoint)")
    func rotaryRows() {
        var g = GradientCheck(seed: 32)
        let (b, s, heads, dh) = (2, 5, 3, 4)
        let width = 2 * heads * dh + 3  // two operands side by side and a tail the rotation must not touch
        let x = g.tensor([b * s, width])
        let rope = RotaryEmbedding(headDim: dh, base: 100)
        var y = x
        rope.rotate(rows: &y, seq: s, column: heads * dh, heads: heads, positionOffset: 2)
        let want = rope(
            Tensor(shape: [b, s, heads, dh]) { f in x.scalars[(f / (heads * dh)) * width + heads * dh + f % (heads * dh)] }, positionOffset: 2)
        for r in 0..<(b * s) {
            for c in 0..<width {
                let v = y.scalars[r * width + c]
                if c < heads * dh || c >= 2 * heads * dh {
                    #expect(v == x.scalars[r * width + c], "row \(r) column \(c) outside the operand changed")
                } else {
                    #expect(abs(v - want.scalars[r * heads * dh + c - heads * dh]) <= 1e-6, "row \(r) column \(c)")
                }
            }
        }
        var back = y
        rope.rotate(rows: &back, seq: s, column: heads * dh, heads: heads, positionOffset: 2, inverse: true)
        #expect(zip(back.scalars, x.scalars).allSatisfy { abs($0 - $1) <= 1e-5 })
        // <R u, v> == <u, R^T v>: what makes the inverse rotation the backward.
        let v = g.tensor([b * s, width])
        var rv = v
        rope.rotate(rows: &rv, seq: s, column: heads * dh, heads: heads, positionOffset: 2, inverse: true)
        let lhs = zip(y.scalars, v.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(x.scalars, rv.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(lhs - rhs) <= 1e-4)
    }

    @Test("Shaw tables' gradients through the attention layer's backward")
    func selfAttentionShaw() {
        var g = GradientCheck(seed: 33)
        let (b, s, d, heads, clip) = (2, 5, 8, 2, 2)
        let p = ParameterSet(SmallLayers.attentionParameters(&g, "att", d: d, inner: d, bias: true))
        let x = g.tensor([b * s, d])
        let keys = g.tensor([2 * clip + 1, d / heads]), values = g.tensor([2 * clip + 1, d / heads])
        let vis = AttentionVisibility(batch: b, seqQ: s, seqK: s, keyPadding: nil, causal: true)
        let names = SmallLayers.attentionNames("att", d: d, inner: d, bias: true)
        let a = SmallLayers.attention(p, "att", heads: heads, bias: true)
        for (which, table) in [("keys", keys), ("values", values)] {
            func bias(_ t: Tensor) -> AttentionBias {
                which == "keys" ? .shaw(keys: t, values: values, clip: clip) : .shaw(keys: keys, values: t, clip: clip)
            }
            g.check(
                "Shaw \(which) table", input: table, parameters: ParameterSet(),
                forward: { _, t in a.trainingForward(selfAttention: x, vis, bias: bias(t), compute: compute).0 }
            ) { _, t, dY in
                var grads = p.zerosLike()
                let (_, saved) = a.trainingForward(selfAttention: x, vis, bias: bias(t), compute: compute)
                let r = a.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute).positions
                return (which == "keys" ? r.shawKeys : r.shawValues, ParameterSet())
            }
        }
    }

    @Test func crossAttentionMemoryGradient() {
        var g = GradientCheck(seed: 19)
        let (b, t, s, d, inner, heads) = (2, 3, 4, 6, 8, 2)
        let p = ParameterSet(SmallLayers.attentionParameters(&g, "x", d: d, inner: inner, bias: true))
        let x = g.tensor([b * t, d]), memory = g.tensor([b * s, d])
        let vis = AttentionVisibility(
            batch: b, seqQ: t, seqK: s, keyPadding: [[true, true, true, true], [true, true, false, false]], causal: false)
        let names = SmallLayers.attentionNames("x", d: d, inner: inner, bias: true)
        func run(_ p: ParameterSet, _ x: Tensor, _ m: Tensor, _ dY: Tensor?) -> (Tensor, Tensor?, Tensor?, ParameterSet) {
            let a = SmallLayers.attention(p, "x", heads: heads, bias: true)
            let (y, saved) = a.trainingForward(cross: x, memory: m, vis, compute: compute)
            guard let dY else { return (y, nil, nil, p) }
            var grads = p.zerosLike()
            let r = a.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute)
            return (y, r.input, r.memory, grads)
        }
        g.check("cross-attention", input: x, parameters: p, forward: { p, x in run(p, x, memory, nil).0 }) { p, x, dY in
            let r = run(p, x, memory, dY)
            return (r.1, r.3)
        }
        g.check("cross-attention memory", input: memory, parameters: ParameterSet(), forward: { _, m in run(p, x, m, nil).0 }) { _, m, dY in
            (run(p, x, m, dY).2, ParameterSet())
        }
    }

    static func encoderLayer(_ p: ParameterSet, placement: NormPlacement, rms: Bool, heads: Int) -> EncoderLayer {
        EncoderLayer(
            selfAttention: SmallLayers.attention(p, "l.att", heads: heads, bias: !rms, scale: rms ? 1 : nil),
            attentionNorm: SmallLayers.norm(p, "l.n1", rms: rms),
            feedForward: SmallLayers.feedForward(p, "l.ff", activation: rms ? .relu : .gelu, gated: false, bias: !rms),
            feedForwardNorm: SmallLayers.norm(p, "l.n2", rms: rms), placement: placement)
    }

    @Test(arguments: [(NormPlacement.post, false), (.pre, false), (.pre, true)])
    func encoderLayer(placement: NormPlacement, rms: Bool) {
        var g = GradientCheck(seed: placement == .post ? 20 : (rms ? 21 : 22))
        let (b, s, d, f, heads) = (2, 4, 8, 12, 2)
        let p = ParameterSet(
            SmallLayers.attentionParameters(&g, "l.att", d: d, inner: d, bias: !rms) + SmallLayers.normParameters(&g, "l.n1", size: d, rms: rms)
                + SmallLayers.feedForwardParameters(&g, "l.ff", d: d, f: f, gated: false, bias: !rms)
                + SmallLayers.normParameters(&g, "l.n2", size: d, rms: rms))
        let names = EncoderLayerParameterNames(
            attention: SmallLayers.attentionNames("l.att", d: d, inner: d, bias: !rms), attentionNorm: NormParameterNames("l.n1", bias: !rms),
            feedForward: SmallLayers.feedForwardNames("l.ff", d: d, f: f, gated: false, bias: !rms),
            feedForwardNorm: NormParameterNames("l.n2", bias: !rms))
        let x = g.tensor([b * s, d])
        let vis = AttentionVisibility(batch: b, seqQ: s, seqK: s, keyPadding: [[true, true, true, true], [true, true, true, false]], causal: false)
        g.check(
            "encoder layer \(placement) rms \(rms)", input: x, parameters: p, step: rms ? 1e-3 : 1e-2,
            forward: { p, x in
                Self.encoderLayer(p, placement: placement, rms: rms, heads: heads).trainingForward(x, vis, compute: compute).0
            }
        ) { p, x, dY in
            var grads = p.zerosLike()
            let layer = Self.encoderLayer(p, placement: placement, rms: rms, heads: heads)
            let (_, saved) = layer.trainingForward(x, vis, compute: compute)
            return (layer.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute).input, grads)
        }
    }

    @Test(arguments: [NormPlacement.post, .pre])
    func decoderLayer(placement: NormPlacement) {
        var g = GradientCheck(seed: placement == .post ? 23 : 24)
        let (b, t, s, d, f, heads) = (2, 3, 4, 8, 12, 2)
        let p = ParameterSet(
            SmallLayers.attentionParameters(&g, "l.sa", d: d, inner: d, bias: true) + SmallLayers.normParameters(&g, "l.n1", size: d, rms: false)
                + SmallLayers.attentionParameters(&g, "l.ca", d: d, inner: d, bias: true)
                + SmallLayers.normParameters(&g, "l.n2", size: d, rms: false)
                + SmallLayers.feedForwardParameters(&g, "l.ff", d: d, f: f, gated: false, bias: true)
                + SmallLayers.normParameters(&g, "l.n3", size: d, rms: false))
        let names = DecoderLayerParameterNames(
            selfAttention: SmallLayers.attentionNames("l.sa", d: d, inner: d, bias: true), selfAttentionNorm: NormParameterNames("l.n1"),
            crossAttention: SmallLayers.attentionNames("l.ca", d: d, inner: d, bias: true), crossAttentionNorm: NormParameterNames("l.n2"),
            feedForward: SmallLayers.feedForwardNames("l.ff", d: d, f: f, gated: false, bias: true), feedForwardNorm: NormParameterNames("l.n3"))
        func layer(_ p: ParameterSet) -> DecoderLayer {
            DecoderLayer(
                selfAttention: SmallLayers.attention(p, "l.sa", heads: heads, bias: true), selfAttentionNorm: SmallLayers.norm(p, "l.n1", rms: false),
                crossAttention: SmallLayers.attention(p, "l.ca", heads: heads, bias: true),
                crossAttentionNorm: SmallLayers.norm(p, "l.n2", rms: false),
                feedForward: SmallLayers.feedForward(p, "l.ff", activation: .gelu, gated: false, bias: true),
                feedForwardNorm: SmallLayers.norm(p, "l.n3", rms: false), placement: placement)
        }
        let x = g.tensor([b * t, d]), memory = g.tensor([b * s, d])
        let sv = AttentionVisibility(batch: b, seqQ: t, seqK: t, keyPadding: nil, causal: true)
        let cv = AttentionVisibility(batch: b, seqQ: t, seqK: s, keyPadding: [[true, true, true, true], [true, true, true, false]], causal: false)
        func run(_ p: ParameterSet, _ x: Tensor, _ m: Tensor, _ dY: Tensor?) -> (Tensor, Tensor?, Tensor?, ParameterSet) {
            let l = layer(p)
            let (y, saved) = l.trainingForward(x, selfVisibility: sv, memory: m, crossVisibility: cv, compute: compute)
            guard let dY else { return (y, nil, nil, p) }
            var grads = p.zerosLike()
            let r = l.backward(saved, outputGradient: dY, names: names, into: &grads, compute: compute)
            return (y, r.input, r.memory, grads)
        }
        g.check("decoder layer \(placement)", input: x, parameters: p, forward: { p, x in run(p, x, memory, nil).0 }) { p, x, dY in
            let r = run(p, x, memory, dY)
            return (r.1, r.3)
        }
        g.check("decoder layer \(placement) memory", input: memory, parameters: ParameterSet(), forward: { _, m in run(p, x, m, nil).0 }) {
            _, m, dY in
            (run(p, x, m, dY).2, ParameterSet())
        }
    }
}
