// The int8 quantizer's scale search (`QuantizedWeight.minimumErrorScale`: 8 candidate scales
// per pass over a block) against the scalar search it replaced (`minimumErrorScaleScalar`, one
// candidate per pass), bit for bit: random blocks of channel and group32 lengths (odd ones too)
// with float32 and binary16 scales, all-zero blocks, subnormals, huge finite values, single
// elements, blocks built to have exactly tied errors (the first, largest, scale must win), and
// whole weights through `quantize` against a quantization made with the scalar search.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("int8 quantizer: the vectorized scale search equals the scalar one bit for bit")
struct QuantizationSearchTests {
    /// The scale both searches choose for `block`, as bit patterns.
    func searches(_ block: [Float], f16: Bool) -> (fast: UInt32, scalar: UInt32) {
        block.withUnsafeBufferPointer { b in
            (QuantizedWeight.minimumErrorScale(b, scalesF16: f16).bitPattern, QuantizedWeight.minimumErrorScaleScalar(b, scalesF16: f16).bitPattern)
        }
    }

    /// A random block of `length` values of kind `kind` (0 ..< 10): Gaussian, Laplace,
    /// uniform (any spread from 1e-6 to 1e4), one outlier among Gaussian values, subnormals,
    /// ±huge finite values, huge mixed with tiny and zeros, small integers (equal errors are
    /// likely), random bit patterns of finite floats, values around where a binary16 scale
    /// overflows (`127 * 65504`).
    func randomBlock(length: Int, kind: Int, rng: inout SeededRNG) -> [Float] {
        let spread = Float(pow(10, Double.random(in: -6...4, using: &rng)))
        func gaussian() -> Float {
            let u = Float.random(in: Float.ulpOfOne..<1, using: &rng), v = Float.random(in: 0..<1, using: &rng)
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        func anyFinite() -> Float {
            while true {
                let f = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
                if f.isFinite { return f }
            }
        }
        var block: [Float] = (0..<length).map { _ in
            switch kind {
            case 0: return gaussian() * spread
            case 1: return (Bool.random(using: &rng) ? 1 : -1) * -log(Float.random(in: Float.ulpOfOne..<1, using: &rng)) * spread
            case 2: return Float.random(in: -1...1, using: &rng) * spread
            case 3: return gaussian() * spread
            case 4:
                let f = Float(bitPattern: UInt32.random(in: 0..<0x0080_0000, using: &rng))
                return Int.random(in: 0..<8, using: &rng) == 0 ? 0 : Bool.random(using: &rng) ? f : -f
            case 5: return (Bool.random(using: &rng) ? 1 : -1) * Float.random(in: 1e30...Float.greatestFiniteMagnitude, using: &rng)
            case 6:
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: return Float.greatestFiniteMagnitude * (Bool.random(using: &rng) ? 1 : -1)
                case 1: return Float(bitPattern: UInt32.random(in: 1..<0x0100_0000, using: &rng))
                case 2: return 0
                default: return gaussian() * 1e20
                }
            case 7: return Float(Int.random(in: -300...300, using: &rng))
            case 8: return anyFinite()
            default: return Float.random(in: -1...1, using: &rng) * 127 * 65504 * Float.random(in: 0.4...1.1, using: &rng)
            }
        }
        if kind == 3, length > 0 { block[Int.random(in: 0..<length, using: &rng)] = spread * Float.random(in: 5...40, using: &rng) }
        return block
    }

    @Test("random blocks of channel and group32 lengths, float32 and binary16 scales: the same scale")
    func randomBlocks() {
        var rng = SeededRNG(seed: 20_251_206)
        let lengths = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 100, 384, 512, 777]
        var bad = 0, cases = 0
        for round in 0..<3_000 {
            let length = lengths[round % lengths.count], kind = round / lengths.count % 10
            let block = randomBlock(length: length, kind: kind, rng: &rng)
            for f16 in [false, true] {
                cases += 1
                let (fast, scalar) = searches(block, f16: f16)
                if fast != scalar {
                    bad += 1
                    if bad <= 5 {
                        Issue.record(
                            "kind \(kind), length \(length), f16 \(f16): \(Float(bitPattern: fast)) vs scalar \(Float(bitPattern: scalar)) (\(rng))")
                    }
                }
            }
        }
        #expect(bad == 0, "\(bad) of \(cases) blocks differ")
    }

    @Test("all-zero blocks, single elements, subnormal and huge extremes: the same scale")
    func edgeBlocks() {
        let values: [Float] = [
            0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, 1e-40, 3e-39, 1, -1, 0.3, 127, 1e6,
            127 * 65504, 127 * 65520, 8.4e6, 1e30, -3e38, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
        ]
        var blocks: [[Float]] = [[], [0], [0, 0, 0], [Float](repeating: 0, count: 32), [Float](repeating: 0, count: 512)]
        blocks += values.map { [$0] }  // single elements
        for a in values {
            for b in values { blocks.append([a, b, -a, 0, b / 3]) }
        }
        blocks.append((0..<32).map { Float(bitPattern: UInt32($0) * 0x3_0000 + 1) })  // subnormals
        blocks.append((0..<33).map { Float($0 % 2 == 0 ? 1 : -1) * Float.greatestFiniteMagnitude / Float($0 + 1) })  // huge
        var bad = 0
        for block in blocks {
            for f16 in [false, true] {
                let (fast, scalar) = searches(block, f16: f16)
                if fast != scalar {
                    bad += 1
                    if bad <= 5 { Issue.record("\(block), f16 \(f16): \(Float(bitPattern: fast)) vs scalar \(Float(bitPattern: scalar))") }
                }
            }
        }
        #expect(bad == 0)
        // An all-zero block (and an empty one) keeps scale 0.
        #expect(searches([0, 0, 0], f16: true).fast == 0 && searches([], f16: false).fast == 0)
    }

    /// The distinct candidate scales of `block`, in the scalar search's order, with each one's
    /// squared error (`squaredError`): built here from `clipRatios` and `scale`.
    func candidateErrors(_ block: [Float], f16: Bool) -> [(scale: Float, error: Double)] {
        let amax = block.map { abs($0) }.max() ?? 0
        var out: [(scale: Float, error: Double)] = []
        for r in QuantizedWeight.clipRatios {
            let s = QuantizedWeight.scale(amax: amax, ratio: r, scalesF16: f16)
            if let last = out.last, last.scale == s { continue }
            out.append((s, block.withUnsafeBufferPointer { QuantizedWeight.squaredError($0, scale: s) }))
        }
        return out
    }

    @Test("blocks built with exactly tied least errors take the first (largest) tied scale", arguments: [false, true])
    func ties(_ f16: Bool) {
        // Values are whole numbers of a unit u, 2^-24 (binary16 subnormal scales) or 2^-149
        // (float32 subnormal scales), so every scale is a whole number of units and every error
        // an exact whole number of units squared. Absmax a:
        // - 191...254 u: the scales are 2u and 1u. At 2u each odd element within ±127u is off
        //   by 1u (a half rounds to even) and a by (a odd ? 1 : 0) u; at 1u only a is off, by
        //   a - 127 u (clipped). (a - 127)^2 - (a odd ? 1 : 0) odd elements tie them: absmax's
        //   scale 2u must win.
        // - 318...380 u: the scales are 3u, 2u, 1u. Elements 3 mod 6 (off by 1u at 2u only) and
        //   ±2 mod 6 (off by 1u at 3u only): 127 (2a - 381) of the first kind tie 2u (a off by
        //   a - 254) with 1u (a off by a - 127), and (a - 127)^2 + 1 of the second make 3u
        //   worse: 2u must win.
        let unit: Float = f16 ? 0x1p-24 : .leastNonzeroMagnitude
        var rng = SeededRNG(seed: f16 ? 61 : 62)
        var bad = 0
        for round in 0..<24 {
            let later = round % 3 == 2
            let a = later ? Int.random(in: 318...380, using: &rng) : Int.random(in: 191...254, using: &rng)
            var units = [Bool.random(using: &rng) ? a : -a]
            func add(_ count: Int, _ values: [Int]) {
                for _ in 0..<count { units.append(values.randomElement(using: &rng)! * (Bool.random(using: &rng) ? 1 : -1)) }
            }
            if later {
                add(127 * (2 * a - 381), Array(stride(from: 3, through: 123, by: 6)))
                add((a - 127) * (a - 127) + 1 + Int.random(in: 0...50, using: &rng), (0...127).filter { $0 % 6 == 2 || $0 % 6 == 4 })
            } else {
                add((a - 127) * (a - 127) - a % 2, Array(stride(from: 1, through: 127, by: 2)))
            }
            add(Int.random(in: 0...100, using: &rng), Array(stride(from: 0, through: 126, by: 6)))  // no error at any of the scales
            units.shuffle(using: &rng)
            let block = units.map { Float($0) * unit }
            let candidates = candidateErrors(block, f16: f16)
            let least = candidates.map(\.error).min()!
            let tied = candidates.indices.filter { candidates[$0].error == least }
            // The construction holds: exactly two scales tie, absmax's or the next two.
            #expect(
                tied == (later ? [1, 2] : [0, 1]), "a \(a) u: scales \(candidates.map { $0.scale / unit }) u, errors \(candidates.map(\.error))")
            let expected = candidates[tied[0]].scale.bitPattern
            let (fast, scalar) = searches(block, f16: f16)
            if fast != expected || scalar != expected {
                bad += 1
                if bad <= 5 {
                    Issue.record(
                        "a \(a) u, \(block.count) elements: tied scales \(tied.map { candidates[$0].scale / unit }) u, got \(Float(bitPattern: fast) / unit), scalar \(Float(bitPattern: scalar) / unit)"
                    )
                }
            }
        }
        #expect(bad == 0)
    }

    @Test(
        "squaredErrors lanes equal squaredError (or, stopped by the bound, all exceed it), levels equal level: zero, infinite and subnormal scales, NaN quotients"
    )
    func lanes() {
        var rng = SeededRNG(seed: 63)
        let special: [Float] = [0, .infinity, .leastNonzeroMagnitude, 0x1p-24, 1e-30, 1, 3e38, .greatestFiniteMagnitude]
        var bad = 0
        for round in 0..<2_000 {
            let block = randomBlock(length: [1, 7, 32, 33, 100][round % 5], kind: round % 10, rng: &rng)
            var s = SIMD8<Float>()
            let amax = block.map { abs($0) }.max()!
            for l in 0..<8 {
                s[l] =
                    Int.random(in: 0..<4, using: &rng) == 0
                    ? special.randomElement(using: &rng)! : amax * Float.random(in: 0.3...1.2, using: &rng) / 127
            }
            let e = block.withUnsafeBufferPointer { QuantizedWeight.squaredErrors($0, scales: s, bound: .infinity) }
            for l in 0..<8 {
                let expected = block.withUnsafeBufferPointer { QuantizedWeight.squaredError($0, scale: s[l]) }
                if e[l].bitPattern != expected.bitPattern && !(e[l].isNaN && expected.isNaN) {
                    bad += 1
                    if bad <= 5 { Issue.record("lane \(l), scale \(s[l]): \(e[l]) vs \(expected)") }
                }
            }
            // With a bound: the full sums, or (stopped early) every lane above the bound, each
            // at most its full sum.
            let bound = e.min() * Double.random(in: 0.5...2, using: &rng)
            let b = block.withUnsafeBufferPointer { QuantizedWeight.squaredErrors($0, scales: s, bound: bound) }
            let full = (0..<8).allSatisfy { b[$0].bitPattern == e[$0].bitPattern || (b[$0].isNaN && e[$0].isNaN) }
            if !full && !(0..<8).allSatisfy({ b[$0] > bound && b[$0] <= e[$0] }) {
                bad += 1
                if bad <= 5 { Issue.record("bound \(bound): \(b) vs full \(e)") }
            }
            for x in block.prefix(4) + [0, .nan, .infinity, -.infinity] {
                let lv = QuantizedWeight.levels(x, s)
                for l in 0..<8 where lv[l].bitPattern != QuantizedWeight.level(x, s[l]).bitPattern {
                    bad += 1
                    if bad <= 5 { Issue.record("levels(\(x), \(s[l])) = \(lv[l]), level \(QuantizedWeight.level(x, s[l]))") }
                }
            }
        }
        #expect(bad == 0)
    }

    @Test(
        "quantize's scales and values equal a quantization with the scalar search: k not a multiple of 32, F16 and F32 scales",
        arguments: Int8Scheme.allCases)
    func wholeWeights(_ scheme: Int8Scheme) throws {
        var rng = SeededRNG(seed: 64 + UInt64(scheme.group))
        for k in [1, 5, 31, 32, 33, 63, 100, 389] {
            let n = 11
            // Rows of different kinds: row 0 all zero, row 1 subnormal, the others random kinds
            // (not binary16-overflowing ones with F16 scales: quantize throws on an infinite scale).
            var rows: [[Float]] = [[Float](repeating: 0, count: k)]
            rows.append(randomBlock(length: k, kind: 4, rng: &rng))
            for j in 2..<n { rows.append(randomBlock(length: k, kind: [0, 1, 2, 3, 4, 6, 7, 8, 2][j - 2], rng: &rng)) }
            for f16 in [false, true] {
                let source = f16 ? rows.map { $0.map { max(-1e6, min(1e6, $0)) } } : rows
                let w = Tensor(shape: [n, k], scalars: source.flatMap { $0 })
                let q = try QuantizedWeight.quantize(w, scheme: scheme, scalesF16: f16)
                let values = q.rowMajorValues()
                let span = scheme == .channel ? k : 32
                var bad = 0
                for j in 0..<n {
                    for g in 0..<scheme.scalesPerRow(k) {
                        let block = Array(source[j][(g * span)..<min(k, (g + 1) * span)])
                        let s = block.withUnsafeBufferPointer { QuantizedWeight.minimumErrorScaleScalar($0, scalesF16: f16) }
                        var same = q.scale(j, g).bitPattern == s.bitPattern
                        for (i, x) in block.enumerated() {
                            same = same && values.base.load(fromByteOffset: j * k + g * span + i, as: Int8.self) == Int8(QuantizedWeight.level(x, s))
                        }
                        if !same {
                            bad += 1
                            if bad <= 3 { Issue.record("k \(k), f16 \(f16), row \(j), group \(g): scale \(q.scale(j, g)) vs scalar \(s)") }
                        }
                    }
                }
                #expect(bad == 0, "k \(k), f16 \(f16)")
            }
        }
    }
}
