// int8 weights held as int8: a quantized Linear keeps only its int8 values and scales (no
// float32 copy), its products match a float32 layer over the dequantized weight on every
// backend, fused QKV parts stay int8, a loaded int8 folder holds exactly the bytes `attend
// quantize` wrote, training an int8 folder is a thrown TrainingError, and the benchmarks'
// `repeatingRows` copies a layer (int8 or not) in its own format.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("int8 weights held as int8")
struct Int8StorageTests {
    func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededRNG(seed: seed)
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &rng) })
    }

    /// Bytes an `[n, k]` int8 weight holds: its int8 values and scales (as the file stores
    /// them) and the float32 sums of each row's groups of 32 values the kernels derive at load.
    /// Bytes an int8 layer holds: its values (row-major, or blocked: 32 bytes per group of 32
    /// inputs) and scales, plus (row-major) the float32 group sums.
    func int8Bytes(_ scheme: Int8Scheme, n: Int, k: Int) -> Int {
        n * k + n * scheme.scalesPerRow(k) * (scheme == .group32 ? 2 : 4) + derivedBytes(n: n, k: k)
    }

    /// What a layer holds beyond the file's values and scales: the blocked layout's padding of
    /// the last group to 32 inputs, or the row-major layout's group sums.
    func derivedBytes(n: Int, k: Int) -> Int {
        let groups = (k + 31) / 32
        return QuantizedWeight.blockedByDefault ? n * (32 * groups - k) : n * groups * 4
    }

    @Test("an int8 layer holds only int8 values and scales; its products match the float32 layer over the dequantized weight", arguments: Int8Scheme.allCases)
    func layer(_ scheme: Int8Scheme) throws {
        // 300 x 520 weights: more than one block of dequantized rows off the int8 kernels.
        let (n, k) = (300, 520)
        let bias = randomTensor([n], seed: 2)
        let layer = try Linear(weight: randomTensor([n, k], seed: 1), bias: bias).quantizedToInt8(scheme)
        #expect(layer.weightFormat == (scheme == .channel ? .int8Channel : .int8Group32))
        #expect(layer.weightFormat.isInt8 && layer.weightPrecision == .float32)
        #expect(layer.weightByteCount == int8Bytes(scheme, n: n, k: k))
        #expect(layer.weightByteCount < n * k * 2, "less than a 16-bit copy: no float weight beside the int8 one")
        #expect(layer.converted(to: .bfloat16).weightFormat == layer.weightFormat, "int8 stays int8")
        let reference = Linear(weight: layer.weight, bias: bias)  // the dequantized weight, float32
        #expect(reference.weightFormat == .float32 && reference.weightByteCount == n * k * 4)
        let ws = reference.weight.scalars
        let backends: [Backend] = [.swiftSIMD] + KernelVariant.supported.map { .native($0) }
        for rows in [1, 2, 7] {
            let x = randomTensor([rows, k], seed: UInt64(10 + rows))
            let xs = x.scalars
            for backend in backends {
                let compute = try Compute(backend: backend, threads: 2)
                let y = layer(x, compute: compute).scalars, r = reference(x, compute: compute).scalars
                let part = layer(x, outputs: 100..<260, compute: compute).scalars
                var worst = "", partDiffers = 0
                for i in 0..<rows {
                    // On the int8 kernels the activations are quantized (uint8 with an offset per
                    // group of 32 inputs): half a step of (max - min) / 255 of the group.
                    var lo = [Double](repeating: .infinity, count: (k + 31) / 32), hi = lo.map { -$0 }
                    for p in 0..<k {
                        lo[p / 32] = min(lo[p / 32], Double(xs[i * k + p]))
                        hi[p / 32] = max(hi[p / 32], Double(xs[i * k + p]))
                    }
                    let xstep = zip(lo, hi).map { ($1 - $0) / 255 }
                    let quantizedRows: Bool
                    if case .native = backend { quantizedRows = true } else { quantizedRows = false }
                    for j in 0..<n {
                        // Float32 rounding of both sums, plus the activations' quantization.
                        var bound = 0.0
                        for p in 0..<k {
                            let w = abs(Double(ws[j * k + p]))
                            bound += Double(k + 3) * 0x1p-23 * abs(Double(xs[i * k + p])) * w
                            if quantizedRows { bound += 0.50001 * xstep[p / 32] * w }
                        }
                        let err = abs(Double(y[i * n + j]) - Double(r[i * n + j]))
                        if err > bound && worst.isEmpty { worst = "[\(i), \(j)]: \(y[i * n + j]) vs \(r[i * n + j]), bound \(bound)" }
                        if (100..<260).contains(j) && part[i * 160 + j - 100] != y[i * n + j] { partDiffers += 1 }
                    }
                }
                #expect(worst.isEmpty, "\(backend) rows \(rows): \(worst)")
                #expect(partDiffers == 0, "\(backend) rows \(rows): outputs 100..<260 differ from the full product's in \(partDiffers) places")
            }
        }
    }

    @Test("fused QKV of int8 parts stays int8; an int8 table gathers its dequantized rows")
    func fusedAndGathered() throws {
        let d = 64
        let parts = try (0..<3).map { try Linear(weight: randomTensor([d, d], seed: UInt64(20 + $0)), bias: nil).quantizedToInt8(.group32) }
        let out = try Linear(weight: randomTensor([d, d], seed: 30), bias: nil).quantizedToInt8(.group32)
        let mha = MultiHeadAttention(heads: 4, query: parts[0], key: parts[1], value: parts[2], out: out)
        #expect(mha.inProjection.weightFormat == .int8Group32)
        #expect(mha.inProjection.weightByteCount == 3 * int8Bytes(.group32, n: d, k: d))
        #expect(mha.inProjection.weight.scalars == parts.flatMap(\.weight.scalars))
        // Parts of float formats alone still make one matrix.
        let floats = Linear.concatenatingRows([Linear(weight: randomTensor([d, d], seed: 33), bias: nil), Linear(weight: randomTensor([d, d], seed: 34), bias: nil, precision: .float16)])
        #expect(floats.weightFormat == .float32)

        let q = try #require(parts[1].quantized)
        let table = Embedding(storage: .int8(q))
        let full = parts[1].weight
        let rows = table([5, 0, 63, 5], scale: 0.5).scalars
        for (r, id) in [5, 0, 63, 5].enumerated() {
            #expect(Array(rows[(r * d)..<((r + 1) * d)]) == full.scalars[(id * d)..<((id + 1) * d)].map { $0 * 0.5 })
        }
    }

    @Test("int8 parts beside a 16-bit part stay as held (.mixed): bytes, weight and bias joined, every product equals its parts' products on every backend")
    func mixedParts() throws {
        let d = 72
        let int8s = try (0..<2).map { try Linear(weight: randomTensor([d, d], seed: UInt64(40 + $0)), bias: nil).quantizedToInt8(.group32) }
        let half = Linear(weight: randomTensor([d, d], seed: 42), bias: randomTensor([d], seed: 43), precision: .float16)
        let mixed = Linear.concatenatingRows([int8s[0], int8s[1], half])
        #expect(mixed.weightFormat == .mixed && mixed.storage.holdsInt8 && mixed.weightShape == [3 * d, d])
        #expect(mixed.weightByteCount == 2 * int8Bytes(.group32, n: d, k: d) + d * d * 2, "no copy: the parts' own bytes")
        #expect(mixed.weight.scalars == int8s[0].weight.scalars + int8s[1].weight.scalars + half.weight.scalars)
        #expect(mixed.bias?.scalars == [Float](repeating: 0, count: 2 * d) + half.bias!.scalars)
        #expect(Linear.concatenatingRows([mixed]).weightFormat == .mixed, "never nested")
        #expect(mixed.converted(to: .bfloat16).weightFormat == .mixed)
        let mha = MultiHeadAttention(heads: 4, query: int8s[0], key: int8s[1], value: half, out: int8s[0])
        #expect(mha.inProjection.weightFormat == .mixed)

        let parts = [int8s[0], int8s[1], half]
        let backends: [Backend] = [.swiftSIMD] + KernelVariant.supported.map { .native($0) }
        for backend in backends {
            let compute = try Compute(backend: backend, threads: 2)
            for rows in [1, 2, 5] {
                let x = randomTensor([rows, d], seed: UInt64(50 + rows))
                // Every part's product alone, bias included.
                let each = parts.map { $0.forward(x, compute: compute).scalars }
                for outputs in [0..<(3 * d), (d - 7)..<(2 * d + 9), (2 * d + 3)..<(3 * d), 10..<20, (d - 1)..<(d + 1)] {
                    let residual = randomTensor([rows, outputs.count], seed: UInt64(60 + outputs.count))
                    let y = mixed.forward(x, outputs: outputs, activation: .relu, residual: residual, compute: compute).scalars
                    var differs = 0
                    for i in 0..<rows {
                        for (c, j) in outputs.enumerated() {
                            let expected = max(0, each[j / d][i * d + j % d]) + residual.scalars[i * outputs.count + c]
                            if abs(y[i * outputs.count + c] - expected) > 1e-6 * max(1, abs(expected)) { differs += 1 }
                        }
                    }
                    #expect(differs == 0, "\(backend) rows \(rows) outputs \(outputs): \(differs) outputs differ from the parts' products")
                }
            }
        }
    }

    @Test("a loaded int8 folder holds exactly the int8 bytes attend quantize wrote (and what is derived from them: group sums, or the blocked layout's padding), and training it is a TrainingError")
    func loadedFolder() throws {
        let source = try fixtureFolder("t5")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("attend-int8-storage-\(getpid())")
        try? FileManager.default.removeItem(at: out)
        defer { try? FileManager.default.removeItem(at: out) }
        let report = try ModelQuantization.quantize(model: source, out: out, scheme: .channel, keep: .none)
        let model = try Seq2SeqModel(directory: out)
        var linears: [Linear] = [model.lmHead]
        for l in model.encoder.layers {
            linears += [l.selfAttention.inProjection, l.selfAttention.outProjection, l.feedForward.up, l.feedForward.down] + (l.feedForward.gate.map { [$0] } ?? [])
        }
        for l in model.decoder.layers {
            linears += [l.selfAttention.inProjection, l.selfAttention.outProjection, l.feedForward.up, l.feedForward.down] + (l.feedForward.gate.map { [$0] } ?? [])
            if let c = l.crossAttention { linears += [c.inProjection, c.outProjection] }
        }
        for (i, l) in linears.enumerated() {
            #expect(l.weightFormat == .int8Channel, "layer \(i): \(l.weightFormat)")
            #expect(l.weightByteCount == int8Bytes(.channel, n: l.outFeatures, k: l.inFeatures), "layer \(i)")
        }
        // The file's bytes, plus what is derived at load (group sums or the blocked padding).
        let sums = linears.reduce(0) { $0 + derivedBytes(n: $1.outFeatures, k: $1.inFeatures) }
        #expect(linears.reduce(0) { $0 + $1.weightByteCount } == report.bytesAfter + sums)

        #expect(throws: TrainingError.self) { try T5ForConditionalGeneration(directory: out) }
        #expect(throws: TrainingError.self) { try TrainableModels.load(directory: out) }
    }

    @Test("repeatingRows copies a layer's rows in its own format: each copy's outputs are the layer's, bit for bit")
    func repeatingRows() throws {
        let (n, k) = (70, 96)
        let base = Linear(weight: randomTensor([n, k], seed: 11), bias: randomTensor([n], seed: 12))
        let x = randomTensor([2, k], seed: 13)
        let layers = [base, base.converted(to: .float16), base.converted(to: .bfloat16)] + (try Int8Scheme.allCases.map { try base.quantizedToInt8($0) })
        for layer in layers {
            let copies = layer.repeatingRows(3)
            #expect(copies.weightFormat == layer.weightFormat && copies.outFeatures == 3 * n && copies.inFeatures == k, "\(layer.weightFormat)")
            #expect(copies.weightByteCount == 3 * layer.weightByteCount, "\(layer.weightFormat)")
            let one = layer(x).scalars.map(\.bitPattern)
            for c in 0..<3 {
                #expect(copies(x, outputs: (c * n)..<((c + 1) * n)).scalars.map(\.bitPattern) == one, "\(layer.weightFormat) copy \(c)")
            }
        }
    }
}
