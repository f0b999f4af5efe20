import AttendTestSupport
import Foundation
import Testing

@testable import Attend

// The training benchmark's code path (`bench --only train`) on tiny shapes: the encoder
// stack's MSE step and the random BERT's MLM step. Finite differences are central, step
// 3e-3, of the loss (a mean, summed in double); the layers compute in float32, so the
// rounding error of a difference is about 1e-7 · |L| / h ≈ 3e-5 for |L| ≈ 1. The gradients
// are about 1e-3 to 1e-2; the check allows 5e-5 absolute plus 3% relative: a halved
// gradient, a wrong 1/n or a missing term is far outside it. ReLU's kink: the perturbations
// are small enough that few pre-activations cross 0.

@Suite struct EncoderStackTrainingTests {
    static let config = PyTorchLayerConfig(modelDim: 16, heads: 2, feedForwardDim: 32)

    static func data(seed: UInt64) -> (Tensor, Tensor) {
        var rng = SeededRNG(seed: seed)
        let x = Tensor(shape: [2, 5, 16], generating: { _ in Float.random(in: -1...1, using: &rng) })
        let t = Tensor(shape: [2, 5, 16], generating: { _ in Float.random(in: -1...1, using: &rng) })
        return (x, t)
    }

    @Test func namesAndShapesFollowPyTorch() throws {
        let m = try EncoderStackTraining(layers: 2, config: Self.config, seed: 1)
        #expect(m.parameters.count == 24)
        #expect(m.parameters.names.first == "layers.0.self_attn.in_proj_weight")
        #expect(m.parameters["layers.1.linear1.weight"]?.shape == [32, 16])
        #expect(m.parameters["layers.1.norm2.weight"]?.scalars.allSatisfy { $0 == 1 } == true)
        // nn.TransformerEncoderLayer(16, 2, 32): 3·16·16 + 3·16 + 16·16 + 16 + 16·32 + 32 + 32·16 + 16 + 4·16 = 2224.
        #expect(m.parameters.scalarCount == 2 * 2_224)
    }

    @Test func gradientMatchesFiniteDifferences() throws {
        let m = try EncoderStackTraining(layers: 2, config: Self.config, seed: 2)
        let (x, t) = Self.data(seed: 3)
        _ = try m.loss(input: x, target: t)
        let grads = try m.backward()
        #expect(grads.names == m.parameters.names)
        let base = m.parameters
        var rng = SeededRNG(seed: 4)
        let h: Float = 3e-3
        for name in [
            "layers.0.self_attn.in_proj_weight", "layers.0.linear1.weight", "layers.1.self_attn.out_proj.bias", "layers.1.norm1.weight",
            "layers.1.linear2.weight",
        ] {
            let g = grads[name]!
            #expect(g.scalars.contains { $0 != 0 }, "\(name): gradient is all zero")
            for _ in 0..<4 {
                let i = Int.random(in: 0..<g.count, using: &rng)
                func lossAt(_ d: Float) throws -> Double {
                    var p = base
                    p.modify(name) { t in t.withUnsafeMutableBufferPointer { $0[i] += d } }
                    m.parameters = p
                    return Double(try m.loss(input: x, target: t))
                }
                let numeric = (try lossAt(h) - lossAt(-h)) / Double(2 * h)
                let analytic = Double(g.scalars[i])
                #expect(abs(analytic - numeric) <= 5e-5 + 0.03 * abs(numeric), "\(name)[\(i)]: analytic \(analytic), numeric \(numeric)")
            }
        }
        m.parameters = base
        _ = try m.backward()  // frees the last probe's activations
    }

    @Test func aStepDecreasesTheLoss() throws {
        let m = try EncoderStackTraining(layers: 2, config: Self.config, seed: 5)
        let (x, t) = Self.data(seed: 6)
        var optimizer = try AdamW(learningRate: 1e-3, weightDecay: 0.01)
        let before = try m.step(input: x, target: t, optimizer: &optimizer)
        let after = try m.loss(input: x, target: t)
        #expect(after < before, "loss \(before) -> \(after)")
        #expect(optimizer.stepCount == 1)
        // A second step runs on the rebuilt layers and keeps decreasing.
        _ = try m.backward()
        let second = try m.step(input: x, target: t, optimizer: &optimizer)
        #expect(abs(second - after) <= 1e-6 * max(1, abs(after)))
        #expect(try m.loss(input: x, target: t) < second)
    }

    /// One and two threads give the same bits: the loss, every gradient and the parameters
    /// after an AdamW step, on shapes large enough that the products, the bias column sums,
    /// the element-wise passes and the loss's partial sums are split.
    @Test func oneAndTwoThreadsGiveTheSameBits() throws {
        let config = PyTorchLayerConfig(modelDim: 64, heads: 4, feedForwardDim: 256)
        var rng = SeededRNG(seed: 9)
        let x = Tensor(shape: [4, 160, 64], generating: { _ in Float.random(in: -1...1, using: &rng) })
        let t = Tensor(shape: [4, 160, 64], generating: { _ in Float.random(in: -1...1, using: &rng) })
        func run(threads: Int) throws -> (loss: Float, grads: ParameterSet, trained: ParameterSet) {
            let compute = try Compute.default.with(threads: threads)
            let m = try EncoderStackTraining(layers: 2, config: config, seed: 10, compute: compute)
            var optimizer = try AdamW(learningRate: 1e-3, weightDecay: 0.01)
            optimizer.compute = compute
            let loss = try m.loss(input: x, target: t)
            let grads = try m.backward()
            var p = m.parameters
            try optimizer.step(&p, gradients: grads)
            return (loss, grads, p)
        }
        let one = try run(threads: 1), two = try run(threads: 2)
        #expect(one.loss.bitPattern == two.loss.bitPattern, "loss \(one.loss) vs \(two.loss)")
        for name in one.grads.names {
            #expect(one.grads[name]!.scalars.contains { $0 != 0 }, "\(name): gradient is all zero")
            #expect(one.grads[name]!.scalars.map(\.bitPattern) == two.grads[name]!.scalars.map(\.bitPattern), "gradient of \(name)")
            #expect(one.trained[name]!.scalars.map(\.bitPattern) == two.trained[name]!.scalars.map(\.bitPattern), "\(name) after the step")
        }
    }

    @Test func rejectsMismatchedShapesAndAMissingLoss() throws {
        let m = try EncoderStackTraining(layers: 1, config: Self.config, seed: 7)
        #expect(throws: TrainingError.self) { try m.backward() }
        let (x, _) = Self.data(seed: 8)
        #expect(throws: TrainingError.self) { try m.loss(input: x, target: Tensor.zeros([2, 5, 15])) }
        #expect(throws: TrainingError.self) { try m.loss(input: Tensor.zeros([10, 16]), target: Tensor.zeros([10, 16])) }
        #expect(throws: CheckpointError.self) { try EncoderStackTraining(layers: 1, config: PyTorchLayerConfig(modelDim: 15, heads: 2), seed: 0) }
    }

    @Test func randomBERTTrainsOnAMaskedLMBatch() throws {
        let m = try randomBERTForPreTraining(vocabSize: 50, hiddenSize: 16, layers: 2, heads: 2, intermediateSize: 32, maxPositions: 16, seed: 9)
        #expect(m.config.vocabSize == 50 && m.config.numHiddenLayers == 2)
        var rng = SeededRNG(seed: 10)
        let ids = (0..<2).map { _ in (0..<8).map { _ in Int.random(in: 0..<50, using: &rng) } }
        let labels = ids.map { row in row.enumerated().map { $0.offset % 3 == 0 ? $0.element : -100 } }
        let batch = TrainingBatch(inputIDs: ids, labels: labels, nextSentenceLabel: [0, 1])
        var optimizer = try AdamW(learningRate: 1e-2, weightDecay: 0.01)
        let before = try m.loss(batch)
        #expect(abs(before - Float(log(50.0) + log(2.0))) < 0.5, "untrained loss \(before)")
        try optimizer.step(&m.parameters, gradients: try m.backward())
        #expect(try m.loss(batch) < before)
        _ = try m.backward()
    }
}
