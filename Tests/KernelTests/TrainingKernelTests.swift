// The training kernels (TrainingKernels, attend_kernels_backward.h): every C variant this CPU
// runs against the Swift oracle (odd sizes, vector tails, 1 and 2 threads), the oracles
// against Double references (and finite differences for the backward passes), and both
// against PyTorch's float32 results (Fixtures/training_kernels.json, written by
// make_training_kernel_fixtures.py).
import CKernels
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

// MARK: - Fixtures and helpers

enum TrainingFixtures {
    /// The parsed Fixtures/training_kernels.json.
    nonisolated(unsafe) static let root: [String: Any] = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("KernelTests: the Fixtures resource folder is missing from the test bundle")
        }
        let data = try! Data(contentsOf: url.appendingPathComponent("training_kernels.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    static func cases(_ key: String) -> [[String: Any]] { root[key] as! [[String: Any]] }
}

func floats(_ any: Any?) -> [Float] { (any as! [Any]).map { Float(($0 as! NSNumber).doubleValue) } }
func double(_ any: Any?) -> Double { (any as! NSNumber).doubleValue }
func int(_ any: Any?) -> Int { (any as! NSNumber).intValue }

/// Distance in float32 steps between two finite floats of any sign (0 for equal bits; NaN
/// against NaN counts as equal, NaN against a number as far).
func ulpDistance(_ a: Float, _ b: Float) -> Int {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN ? 0 : Int.max }
    func key(_ x: Float) -> Int64 { x.sign == .minus ? -Int64(x.magnitude.bitPattern) : Int64(x.bitPattern) }
    return Int((key(a) - key(b)).magnitude)
}

/// The largest ulp distance between two arrays, with its index.
func maxULP(_ x: [Float], _ y: [Float]) -> (ulp: Int, index: Int) {
    precondition(x.count == y.count)
    var worst = (0, -1)
    for i in x.indices {
        let d = ulpDistance(x[i], y[i])
        if d > worst.0 { worst = (d, i) }
    }
    return worst
}

/// The first element where `got` and `want` differ by more than `k * 2^-24 * scale(i)`
/// (NaN only matches NaN), described; nil when all match.
func firstOutside(_ got: [Float], _ want: [Float], k: Double, scale: (Int) -> Double) -> String? {
    precondition(got.count == want.count)
    for i in got.indices {
        if got[i].isNaN || want[i].isNaN {
            if got[i].isNaN != want[i].isNaN { return "[\(i)] got \(got[i]), want \(want[i])" }
            continue
        }
        let tol = k * 0x1p-24 * scale(i)
        if !(abs(Double(got[i]) - Double(want[i])) <= tol) { return "[\(i)] got \(got[i]), want \(want[i]), tolerance \(tol)" }
    }
    return nil
}

/// The native variants this CPU runs, plus the Swift oracle.
let trainingBackends: [Backend] = KernelVariant.supported.map { .native($0) } + [.swiftSIMD]

/// Whether a backend evaluates PyTorch's fused multiply-adds as such (every variant but the
/// portable scalar one, which rounds the product first).
func fusesLikeTorch(_ b: Backend) -> Bool { b != .native(.scalar) }

func randomFloats(_ rng: inout SeededRNG, _ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
    (0..<n).map { _ in lo + (hi - lo) * Float(rng.nextUnit()) }
}

extension SeededRNG {
    mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

// MARK: - Optimizers

@Suite("Training kernels: optimizers")
struct OptimizerKernelTests {
    @Test("AdamW reproduces torch.optim.AdamW step by step", arguments: trainingBackends)
    func adamWTorch(_ backend: Backend) {
        for (ci, c) in TrainingFixtures.cases("adamw").enumerated() {
            let hyper = TrainingKernels.AdamW(
                lr: double(c["lr"]), beta1: double(c["beta1"]), beta2: double(c["beta2"]), eps: double(c["eps"]),
                weightDecay: double(c["weight_decay"]))
            let p0 = floats(c["param0"])
            var param = Tensor(shape: [p0.count]) { p0[$0] }
            var m = Tensor.zeros([p0.count]), v = Tensor.zeros([p0.count])
            var gAbs = [Double](repeating: 0, count: p0.count)
            for (s, step) in (c["steps"] as! [[String: Any]]).enumerated() {
                let g = floats(step["grad"])
                TrainingKernels.adamW(
                    param: &param, grad: Tensor(shape: [g.count]) { g[$0] }, m: &m, v: &v, step: s + 1, hyper: hyper,
                    compute: Compute(backend: backend, threads: 1 + s % 2))
                for i in g.indices { gAbs[i] = max(gAbs[i], Double(g[i].magnitude)) }
                let wantP = floats(step["param"]), wantM = floats(step["m"]), wantV = floats(step["v"])
                if fusesLikeTorch(backend) {
                    // The moments are bit-exact. PyTorch's float32 sqrt on the CPU runs through
                    // MKL's vector math, within 1 ulp but not correctly rounded (this kernel's
                    // is), so the parameter differs in a few elements; the rest are exact.
                    for (name, got, want) in [("m", m.scalars, wantM), ("v", v.scalars, wantV)] {
                        let (ulp, i) = maxULP(got, want)
                        #expect(ulp == 0, "\(backend) case \(ci) step \(s + 1) \(name)[\(i)]: \(ulp) ulp from torch")
                    }
                    let exact = zip(param.scalars, wantP).filter { $0.bitPattern == $1.bitPattern }.count
                    #expect(exact * 4 >= wantP.count * 3, "\(backend) case \(ci) step \(s + 1): only \(exact) of \(wantP.count) parameters bit-exact")
                    let lrScale = hyper.lr / (1 - pow(hyper.beta1, Double(s + 1))) * 10
                    let fp = firstOutside(param.scalars, wantP, k: 4 * Double(s + 1)) { Double(wantP[$0].magnitude) + lrScale }
                    #expect(fp == nil, "\(backend) case \(ci) step \(s + 1): param \(fp ?? "")")
                } else {
                    // The scalar variant rounds each fma's product: a few roundings of the
                    // terms' magnitudes per step (the update is at most ~lr / (1 - beta1^t) * 10).
                    let k = 8.0 * Double(s + 1), lrScale = hyper.lr / (1 - pow(hyper.beta1, Double(s + 1))) * 10
                    let fp = firstOutside(param.scalars, wantP, k: k) { Double(wantP[$0].magnitude) + lrScale }
                    let fm = firstOutside(m.scalars, wantM, k: k) { Double(wantM[$0].magnitude) + gAbs[$0] }
                    let fv = firstOutside(v.scalars, wantV, k: k) { Double(wantV[$0].magnitude) + gAbs[$0] * gAbs[$0] }
                    #expect(
                        fp == nil && fm == nil && fv == nil,
                        "\(backend) case \(ci) step \(s + 1): param \(fp ?? "ok"), m \(fm ?? "ok"), v \(fv ?? "ok")")
                }
            }
        }
    }

    @Test("AdamW: every variant against the oracle, odd sizes, 1 and 2 threads", arguments: KernelVariant.supported)
    func adamWVariants(_ variant: KernelVariant) {
        for n in [0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 1000, TrainingKernels.elementChunk + 5] {
            for (hi, hyper) in [TrainingKernels.AdamW(), TrainingKernels.AdamW(lr: 0.1, beta1: 0.2, beta2: 0.9, eps: 1e-3, weightDecay: 0)]
                .enumerated()
            {
                var rng = SeededRNG(seed: caseSeed(n, hi, 31))
                let p0 = randomFloats(&rng, n), g = randomFloats(&rng, n, -3, 3)
                let m0 = randomFloats(&rng, n, -0.1, 0.1), v0 = randomFloats(&rng, n, 0, 0.01)
                var want = (p0, m0, v0)
                want.0.withUnsafeMutableBufferPointer { p in
                    want.1.withUnsafeMutableBufferPointer { m in
                        want.2.withUnsafeMutableBufferPointer { v in
                            KernelOracle.adamW(
                                count: n, param: p.baseAddress!, grad: g, m: m.baseAddress!, v: v.baseAddress!,
                                constants: AdamWConstants(hyper, step: 7))
                        }
                    }
                }
                for threads in [1, 2] {
                    var got = (p0, m0, v0)
                    got.0.withUnsafeMutableBufferPointer { p in
                        got.1.withUnsafeMutableBufferPointer { m in
                            got.2.withUnsafeMutableBufferPointer { v in
                                guard n > 0 else { return }
                                TrainingKernels.adamW(
                                    param: p.baseAddress!, grad: g, m: m.baseAddress!, v: v.baseAddress!, count: n, step: 7, hyper: hyper,
                                    compute: Compute(backend: .native(variant), threads: threads))
                            }
                        }
                    }
                    if variant != .scalar {
                        for (name, a, b) in [("param", got.0, want.0), ("m", got.1, want.1), ("v", got.2, want.2)] {
                            let (ulp, i) = maxULP(a, b)
                            #expect(ulp == 0, "\(variant) n=\(n) hyper \(hi) threads \(threads): \(name)[\(i)] \(ulp) ulp from the oracle")
                        }
                    } else {
                        let lrScale = hyper.lr / (1 - pow(hyper.beta1, 7)) * 10
                        let fp = firstOutside(got.0, want.0, k: 8) { Double(want.0[$0].magnitude) + lrScale }
                        let fm = firstOutside(got.1, want.1, k: 4) { Double(m0[$0].magnitude + g[$0].magnitude) }
                        let fv = firstOutside(got.2, want.2, k: 4) { Double(v0[$0] + g[$0] * g[$0]) }
                        #expect(
                            fp == nil && fm == nil && fv == nil, "scalar n=\(n) hyper \(hi): param \(fp ?? "ok"), m \(fm ?? "ok"), v \(fv ?? "ok")")
                    }
                }
            }
        }
    }

    @Test("AdamW oracle agrees with the update computed in Double")
    func adamWDouble() {
        var rng = SeededRNG(seed: caseSeed(77))
        let n = 500
        let hyper = TrainingKernels.AdamW(lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05)
        var p = randomFloats(&rng, n), m = [Float](repeating: 0, count: n), v = m
        var pd = p.map(Double.init), md = [Double](repeating: 0, count: n), vd = md, mAbs = md
        for step in 1...5 {
            let g = randomFloats(&rng, n, -2, 2)
            p.withUnsafeMutableBufferPointer { pb in
                m.withUnsafeMutableBufferPointer { mb in
                    v.withUnsafeMutableBufferPointer { vb in
                        KernelOracle.adamW(
                            count: n, param: pb.baseAddress!, grad: g, m: mb.baseAddress!, v: vb.baseAddress!,
                            constants: AdamWConstants(hyper, step: step))
                    }
                }
            }
            let bc1 = 1 - pow(hyper.beta1, Double(step)), bc2 = 1 - pow(hyper.beta2, Double(step))
            for i in 0..<n {
                let gi = Double(g[i])
                pd[i] *= 1 - hyper.lr * hyper.weightDecay
                md[i] = hyper.beta1 * md[i] + (1 - hyper.beta1) * gi
                mAbs[i] = hyper.beta1 * mAbs[i] + (1 - hyper.beta1) * abs(gi)
                vd[i] = hyper.beta2 * vd[i] + (1 - hyper.beta2) * gi * gi
                pd[i] -= hyper.lr / bc1 * md[i] / (vd[i].squareRoot() / bc2.squareRoot() + hyper.eps)
            }
            for i in 0..<n {
                // The update is lr-sized; float32 rounding of the parameter dominates.
                // Float roundings of the terms (m cancels: relative to the sum of |terms|),
                // compounding over the steps; the update is lr-sized.
                let k = 4e-7 * Double(step)
                #expect(abs(Double(p[i]) - pd[i]) <= k * (abs(pd[i]) + hyper.lr * 10), "step \(step) param[\(i)] \(p[i]) vs \(pd[i])")
                #expect(abs(Double(m[i]) - md[i]) <= k * mAbs[i], "step \(step) m[\(i)] \(m[i]) vs \(md[i])")
                #expect(abs(Double(v[i]) - vd[i]) <= k * abs(vd[i]), "step \(step) v[\(i)] \(v[i]) vs \(vd[i])")
            }
        }
    }

    @Test("SGD reproduces torch.optim.SGD (momentum, dampening, Nesterov, decay)", arguments: trainingBackends)
    func sgdTorch(_ backend: Backend) {
        for (ci, c) in TrainingFixtures.cases("sgd").enumerated() {
            let hyper = TrainingKernels.SGD(
                lr: double(c["lr"]), momentum: double(c["momentum"]), dampening: double(c["dampening"]),
                weightDecay: double(c["weight_decay"]), nesterov: c["nesterov"] as! Bool)
            var param = floats(c["param0"])
            let n = param.count
            var buf = [Float](repeating: 0, count: n)
            for (s, step) in (c["steps"] as! [[String: Any]]).enumerated() {
                let g = floats(step["grad"])
                param.withUnsafeMutableBufferPointer { p in
                    buf.withUnsafeMutableBufferPointer { b in
                        TrainingKernels.sgd(
                            param: p.baseAddress!, grad: g, buffer: hyper.momentum == 0 ? nil : b.baseAddress!, count: n, firstStep: s == 0,
                            hyper: hyper, compute: Compute(backend: backend, threads: 2))
                    }
                }
                let wantP = floats(step["param"])
                if fusesLikeTorch(backend) {
                    let (ulp, i) = maxULP(param, wantP)
                    #expect(ulp == 0, "\(backend) case \(ci) step \(s + 1): param[\(i)] \(ulp) ulp from torch")
                    if hyper.momentum != 0 {
                        let (bu, bi) = maxULP(buf, floats(step["buffer"]))
                        #expect(bu == 0, "\(backend) case \(ci) step \(s + 1): buffer[\(bi)] \(bu) ulp from torch")
                    }
                } else {
                    // Separate roundings of the fma products, of the terms' magnitudes.
                    let k = 8.0 * Double(s + 1)
                    let fp = firstOutside(param, wantP, k: k) { Double(wantP[$0].magnitude) + hyper.lr * 20 * Double(g[$0].magnitude + 1) }
                    #expect(fp == nil, "scalar case \(ci) step \(s + 1): param \(fp ?? "")")
                    if hyper.momentum != 0 {
                        let wantB = floats(step["buffer"])
                        let fb = firstOutside(buf, wantB, k: k) { Double(wantB[$0].magnitude) + 10 * Double(g[$0].magnitude + 1) }
                        #expect(fb == nil, "scalar case \(ci) step \(s + 1): buffer \(fb ?? "")")
                    }
                }
            }
        }
    }

    @Test("SGD: every variant against the oracle, odd sizes, 1 and 2 threads", arguments: KernelVariant.supported)
    func sgdVariants(_ variant: KernelVariant) {
        let hypers = [
            TrainingKernels.SGD(lr: 0.1), TrainingKernels.SGD(lr: 0.05, momentum: 0.9, dampening: 0.3, weightDecay: 0.01),
            TrainingKernels.SGD(lr: 0.01, momentum: 0.7, weightDecay: 1e-3, nesterov: true),
        ]
        for n in [1, 5, 16, 17, 40, TrainingKernels.elementChunk * 2 + 3] {
            for (hi, hyper) in hypers.enumerated() {
                for first in [false, true] {
                    var rng = SeededRNG(seed: caseSeed(n, hi, first ? 1 : 0, 41))
                    let p0 = randomFloats(&rng, n), g = randomFloats(&rng, n), b0 = randomFloats(&rng, n)
                    var wantP = p0, wantB = b0
                    let consts = SGDConstants(
                        weightDecay: Float(hyper.weightDecay), momentum: Float(hyper.momentum), dampeningWeight: Float(1 - hyper.dampening),
                        negLR: Float(-hyper.lr), nesterov: hyper.nesterov, firstStep: first)
                    wantP.withUnsafeMutableBufferPointer { p in
                        wantB.withUnsafeMutableBufferPointer { b in
                            KernelOracle.sgd(count: n, param: p.baseAddress!, grad: g, buffer: b.baseAddress!, constants: consts)
                        }
                    }
                    for threads in [1, 2] {
                        var p = p0, b = b0
                        p.withUnsafeMutableBufferPointer { pb in
                            b.withUnsafeMutableBufferPointer { bb in
                                TrainingKernels.sgd(
                                    param: pb.baseAddress!, grad: g, buffer: bb.baseAddress!, count: n, firstStep: first, hyper: hyper,
                                    compute: Compute(backend: .native(variant), threads: threads))
                            }
                        }
                        // Exact on the FMA variants; the scalar one rounds each fma's product
                        // (terms of magnitude |p| + lr * (|g| + |buf|) * 2, |buf| + |g|).
                        let k = variant == .scalar ? 4.0 : 0
                        let fp = firstOutside(p, wantP, k: k) {
                            Double(p0[$0].magnitude) + hyper.lr * 2 * Double(g[$0].magnitude + b0[$0].magnitude + 1)
                        }
                        #expect(fp == nil, "\(variant) n=\(n) hyper \(hi) first \(first) threads \(threads): param \(fp ?? "")")
                        if hyper.momentum != 0 {
                            let fb = firstOutside(b, wantB, k: k) { Double(b0[$0].magnitude + g[$0].magnitude) + 0.01 }
                            #expect(fb == nil, "\(variant) n=\(n) hyper \(hi) first \(first): buffer \(fb ?? "")")
                        } else {
                            #expect(b == b0, "\(variant): the buffer was written without momentum")
                        }
                    }
                }
            }
        }
    }

    @Test("sum of squares and clipping reproduce torch.nn.utils.clip_grad_norm_", arguments: trainingBackends)
    func clipTorch(_ backend: Backend) {
        let compute = Compute(backend: backend, threads: 2)
        for (ci, c) in TrainingFixtures.cases("clip").enumerated() {
            var grads = (c["grads"] as! [Any]).map { floats($0) }
            var total = 0.0
            for g in grads { total += TrainingKernels.sumOfSquares(g, count: g.count, compute: compute) }
            let norm = total.squareRoot()
            #expect(abs(norm - double(c["total_norm"])) <= 4e-7 * norm, "\(backend) case \(ci): norm \(norm) vs torch \(double(c["total_norm"]))")
            if let f = TrainingKernels.clipFactor(totalNorm: norm, maxNorm: double(c["max_norm"])) {
                for k in grads.indices {
                    let n = grads[k].count
                    grads[k].withUnsafeMutableBufferPointer { TrainingKernels.scale($0.baseAddress!, count: n, by: f, compute: compute) }
                }
            }
            for (k, want) in (c["clipped"] as! [Any]).map({ floats($0) }).enumerated() {
                // The norm itself may differ from torch's float32 one in its last bit.
                #expect(maxULP(grads[k], want).ulp <= 2, "\(backend) case \(ci) tensor \(k): \(maxULP(grads[k], want)) from torch")
            }
        }
    }

    @Test("sum of squares: every variant against Double, any thread count gives the same bits", arguments: KernelVariant.supported)
    func sumOfSquaresVariants(_ variant: KernelVariant) {
        for n in [0, 1, 2, 15, 31, 32, 33, 1001, TrainingKernels.elementChunk * 3 + 17] {
            var rng = SeededRNG(seed: caseSeed(n, 5))
            let x = randomFloats(&rng, n, -10, 10)
            let want = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            let one = TrainingKernels.sumOfSquares(x, count: n, compute: Compute(backend: .native(variant), threads: 1))
            let two = TrainingKernels.sumOfSquares(x, count: n, compute: Compute(backend: .native(variant), threads: 2))
            #expect(one.bitPattern == two.bitPattern, "\(variant) n=\(n): 1 thread \(one), 2 threads \(two)")
            #expect(abs(one - want) <= Double(n) * 0x1p-52 * want, "\(variant) n=\(n): \(one) vs \(want)")
            var y = x
            y.withUnsafeMutableBufferPointer { b in
                guard n > 0 else { return }
                TrainingKernels.scale(b.baseAddress!, count: n, by: 0.37, compute: Compute(backend: .native(variant), threads: 2))
            }
            #expect(y == x.map { $0 * 0.37 }, "\(variant) n=\(n): scale")
        }
    }
}
