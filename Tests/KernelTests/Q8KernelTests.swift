// The int8-weight products (q8Product: the rows quantized by ck_q8_quantize_rows, then
// ck_q8_gemv for 1-2 rows, ck_q8_gemm above) on every native variant against a Double reference over the dequantized
// weight, within the bounds attend_kernels.h derives; the results do not depend on the thread
// count; the quantizer's rounding and its checks of stored weights.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("int8 weights")
struct Q8KernelTests {
    /// A float32 weight quantized with `scheme`, a bias and rows of activations.
    func data(n: Int, k: Int, rows: Int, seed: UInt64) -> (Tensor, Tensor, Tensor) {
        var rng = SeededRNG(seed: seed)
        let w = Tensor(shape: [n, k], scalars: (0..<(n * k)).map { _ in Float.random(in: -0.2...0.2, using: &rng) })
        let b = Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
        let x = Tensor(shape: [rows, k], scalars: (0..<(rows * k)).map { _ in Float.random(in: -3...3, using: &rng) })
        return (w, b, x)
    }

    func run(_ q: QuantizedWeight, _ x: Tensor, bias: Tensor, outputs: Range<Int>, variant: KernelVariant, threads: Int) -> [Float] {
        let rows = x.shape[0]
        var out = [Float](repeating: .nan, count: rows * outputs.count)
        x.withUnsafeBufferPointer { xp in
            bias.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { op in
                    q8Product(
                        x: xp.baseAddress!, m: rows, weight: q, outputs: outputs, bias: bp.baseAddress! + outputs.lowerBound,
                        out: op.baseAddress!, variant: variant, threads: threads)
                }
            }
        }
        return out
    }

    @Test(
        "products on every variant and both layouts (row-major, blocked) within the derived bounds, the same bits on 1 and 2 threads",
        arguments: [(1, 384, 96), (2, 512, 70), (3, 384, 130), (17, 100, 33), (70, 512, 200), (5, 2048, 40), (1, 1100, 37), (6, 700, 21)])
    func products(rows: Int, k: Int, n: Int) throws {
        let (w, b, x) = data(n: n, k: k, rows: rows, seed: caseSeed(rows, k, n))
        for scheme in Int8Scheme.allCases {
            for (f16, blocked) in [(false, false), (true, false), (false, true), (true, true)] {
                let q = try QuantizedWeight.quantize(w, scheme: scheme, scalesF16: f16, blocked: blocked)
                #expect(q.blocked == blocked && q.values.count == (blocked ? n * 32 * ((k + 31) / 32) : n * k))
                let wd = q.dequantized().scalars, xs = x.scalars, bs = b.scalars
                // The row-major values out of either layout are the quantizer's.
                let rowMajor = q.rowMajorValues()
                withExtendedLifetime(rowMajor) {
                    let v = rowMajor.base.assumingMemoryBound(to: Int8.self)
                    for i in [0, k - 1, n * k / 2, n * k - 1] {
                        #expect(Float(v[i]) * q.scale(i / k, scheme == .channel ? 0 : (i % k) / 32) == wd[i], "row-major value \(i)")
                    }
                }
                let outputs = n > 40 ? 16..<(n - 3) : 0..<n
                for variant in KernelVariant.supported where variant != .scalar || k <= 512 {
                    let one = run(q, x, bias: b, outputs: outputs, variant: variant, threads: 1)
                    let two = run(q, x, bias: b, outputs: outputs, variant: variant, threads: 2)
                    #expect(one.map(\.bitPattern) == two.map(\.bitPattern), "\(variant) \(scheme) f16 \(f16) blocked \(blocked): 1 and 2 threads differ")
                    let groups = (k + 31) / 32
                    for i in 0..<rows {
                        let amax = (0..<k).map { abs(xs[i * k + $0]) }.max()!
                        let sa = 2 * Double(amax) / 255 * (1 + 1e-6)  // every group's scale is at most this
                        for (jj, j) in outputs.enumerated() {
                            var exact = Double(bs[j]), w1 = 0.0
                            for p in 0..<k {
                                exact += Double(xs[i * k + p]) * Double(wd[j * k + p])
                                w1 += abs(Double(wd[j * k + p]))
                            }
                            let u = 0x1p-24
                            // (G + 5) u B^ with B^ <= (511 sa + max|x|) sum|w|, u |c| and the bias,
                            // plus the activations' quantization, 0.50001 sa sum|w|.
                            let tol = Double(groups + 5) * u * (511 * sa + Double(amax)) * w1 + 2 * u * abs(exact) + u * abs(Double(bs[j]))
                                + 0.50001 * sa * w1
                            let got = Double(one[i * outputs.count + jj])
                            if !(abs(got - exact) <= tol) {
                                Issue.record("\(variant) \(scheme) f16 \(f16) blocked \(blocked) rows \(rows) k \(k): [\(i), \(j)] \(got) vs \(exact), tol \(tol)")
                                return
                            }
                        }
                    }
                }
            }
        }
    }

    @Test(
        "one row alone has the bits it has beside a second row (a beam decoded alone or in a batch), on every variant, row-major",
        arguments: [(100, 24), (512, 40), (1100, 17), (5000, 6), (8200, 5)])
    func oneRowAsInTwo(k: Int, n: Int) throws {
        // AVX2 widens one row of up to 8192 inputs, or two of up to 4096, once per call and
        // otherwise runs the tile: k 5000 holds the widened row to the tile's bits.
        let (w, b, x) = data(n: n, k: k, rows: 2, seed: caseSeed(2, k, n))
        let row0 = Tensor(shape: [1, k], scalars: Array(x.scalars[0..<k]))
        let row1 = Tensor(shape: [1, k], scalars: Array(x.scalars[k..<(2 * k)]))
        for scheme in Int8Scheme.allCases {
            for f16 in [false, true] {
                let q = try QuantizedWeight.quantize(w, scheme: scheme, scalesF16: f16, blocked: false)
                for variant in KernelVariant.supported where variant != .scalar || k <= 512 {
                    let both = run(q, x, bias: b, outputs: 0..<n, variant: variant, threads: 1)
                    let alone = run(q, row0, bias: b, outputs: 0..<n, variant: variant, threads: 1)
                        + run(q, row1, bias: b, outputs: 0..<n, variant: variant, threads: 1)
                    #expect(both.allSatisfy { $0.isFinite })
                    #expect(alone.map(\.bitPattern) == both.map(\.bitPattern), "\(variant) \(scheme) f16 \(f16) k \(k): a row alone differs from the same row in two")
                }
            }
        }
    }

    @Test("quantizing: within half a step of the weight or clipped to 127 steps, no -128, scales a clip of max|w| / 127 (binary16 exact when asked)")
    func quantizer() throws {
        let (w, _, _) = data(n: 37, k: 100, rows: 1, seed: 7)
        var ws = w.scalars
        ws[5] = 0.9  // a large value: its row's (or group's) scale follows it
        for p in 0..<100 { ws[3 * 100 + p] = 0 }  // an all-zero row: scale 0
        let weight = Tensor(shape: [37, 100], scalars: ws)
        for scheme in Int8Scheme.allCases {
            for f16 in [false, true] {
                let q = try QuantizedWeight.quantize(weight, scheme: scheme, scalesF16: f16)
                let stored = q.rowMajorValues()
                let values = withExtendedLifetime(stored) { Array(stored.buffer.bindMemory(to: Int8.self)) }
                let span = scheme == .channel ? 100 : 32
                for j in 0..<37 {
                    for g in 0..<q.scalesPerRow {
                        let p0 = g * span, p1 = min(100, p0 + span)
                        let amax = (p0..<p1).map { abs(ws[j * 100 + $0]) }.max()!
                        let s = q.scale(j, g)
                        // max|w| / 127 times 1.00, 0.99, ..., 0.50 (the quantizer keeps the one
                        // with the least squared error; QuantizationClipTests checks which).
                        let candidates = (0...50).map { i -> Float in
                            let c = amax * (Float(100 - i) / 100) / 127
                            return f16 ? KernelOracle.float16(bits: float16Bits(c)) : c
                        }
                        #expect(candidates.contains(s) && s <= candidates[0], "\(scheme) f16 \(f16) row \(j) group \(g): scale \(s), absmax's \(candidates[0])")
                        for p in p0..<p1 {
                            let v = values[j * 100 + p], w = ws[j * 100 + p]
                            #expect(v != -128)
                            let err = abs(Double(w) - Double(s) * Double(v))
                            if abs(Double(w)) <= 127 * Double(s) {
                                // half a step, plus the clamp when a binary16 scale rounded down
                                #expect(err <= Double(s) * (0.5 + (f16 ? 127 * 0x1p-11 : 1e-6)), "\(scheme) [\(j), \(p)]: error \(err), step \(s)")
                            } else {
                                #expect(v == (w < 0 ? -127 : 127), "\(scheme) [\(j), \(p)]: \(w) beyond 127 steps of \(s) is \(v)")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("quantizing a weight with an infinite or NaN element throws, naming the tensor and the element")
    func nonFiniteRefused() throws {
        for bad: Float in [.infinity, -.infinity, .nan] {
            var ws = [Float](repeating: 0.25, count: 6 * 40)
            ws[2 * 40 + 7] = bad
            let w = Tensor(shape: [6, 40], scalars: ws)
            for scheme in Int8Scheme.allCases {
                do {
                    _ = try QuantizedWeight.quantize(w, scheme: scheme, scalesF16: scheme == .group32, name: "h.0.mlp.c_fc.weight")
                    Issue.record("\(bad) in a \(scheme) weight was quantized")
                } catch let CheckpointError.invalidConfig(message) {
                    #expect(message.contains("h.0.mlp.c_fc.weight") && message.contains("row 2, column 7"), "\(message)")
                }
            }
        }
    }

    @Test("float16Bits rounds to nearest even and inverts the exact widening for every binary16")
    func float16Conversion() {
        for bits in UInt16.min...UInt16.max {
            let f = KernelOracle.float16(bits: bits)
            if f.isNaN { continue }
            #expect(float16Bits(f) == bits, "0x\(String(bits, radix: 16))")
            if bits & 0x7FFF < 0x7BFF {  // the midpoint to the next binary16 rounds to the even one
                let next = KernelOracle.float16(bits: bits + (f.sign == .minus && f != 0 ? 0 : 1))
                if f >= 0 && next > f {
                    let mid = Float((Double(f) + Double(next)) / 2)
                    let even = bits & 1 == 0 ? bits : bits + 1
                    #expect(float16Bits(mid) == even, "midpoint above 0x\(String(bits, radix: 16))")
                }
            }
        }
    }

    @Test("stored weights are checked: -128, non-finite scales and wrong sizes are thrown errors")
    func storedChecks() {
        func bytes(_ v: [UInt8]) -> RawBytes { RawBytes(count: v.count) { $0.copyBytes(from: v) } }
        let scale1 = withUnsafeBytes(of: Float(0.5)) { Array($0) }
        let nan = withUnsafeBytes(of: Float.nan) { Array($0) }
        #expect(throws: CheckpointError.self) {
            try QuantizedWeight(n: 1, k: 2, scheme: .channel, scalesF16: false, q: bytes([1, 0x80]), scales: bytes(scale1), name: "w")
        }
        #expect(throws: CheckpointError.self) {
            try QuantizedWeight(n: 1, k: 2, scheme: .channel, scalesF16: false, q: bytes([1, 2]), scales: bytes(nan), name: "w")
        }
        #expect(throws: CheckpointError.self) {
            try QuantizedWeight(n: 1, k: 3, scheme: .channel, scalesF16: false, q: bytes([1, 2]), scales: bytes(scale1), name: "w")
        }
        #expect(throws: CheckpointError.self) {
            try QuantizedWeight(n: 1, k: 2, scheme: .group32, scalesF16: true, q: bytes([1, 2]), scales: bytes(scale1), name: "w")
        }
        #expect(throws: Never.self) {
            try QuantizedWeight(n: 1, k: 2, scheme: .channel, scalesF16: false, q: bytes([1, 0x81]), scales: bytes(scale1), name: "w")
        }
    }
}
