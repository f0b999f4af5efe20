import Foundation
import Testing
@testable import Attend

/// Dropout in the trainable models: a seed fixes every mask (same bits on 1 and 2 threads),
/// off is the eval-mode path, and the backward with dropout is the gradient of the loss with
/// those masks (a directional finite difference along the gradient).
@Suite struct ModelDropoutTests {
    /// A copy of golden fixture `name`'s initial folder with `settings` written into its
    /// config.json; removed by the caller.
    static func folder(_ name: String, _ settings: [String: Double]) throws -> URL {
        let source = Bundle.module.url(forResource: "Fixtures/\(name)/initial", withExtension: nil)!
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("attend-dropout-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: source, to: out)
        let url = out.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        for (k, v) in settings { config[k] = v }
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: url)
        return out
    }

    static var cases: [(fixture: String, settings: [String: Double])] { [
        ("bert", ["hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.25]),
        ("t5", ["dropout_rate": 0.2]),
        ("marian", ["dropout": 0.2, "attention_dropout": 0.25, "activation_dropout": 0.3]),
        ("bert", ["attention_probs_dropout_prob": 0.3]),  // on the attention probabilities alone
    ] }

    @Test(arguments: 0..<4)
    func seedFixesTheMasksOnEveryThreadCount(_ index: Int) throws {
        let (fixture, settings) = Self.cases[index]
        let dir = try Self.folder(fixture, settings)
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try GoldenTrainingRun(fixture)
        func step(threads: Int, dropout: TrainingDropout) throws -> (Float, ParameterSet) {
            let model = try TrainableModels.load(directory: dir, compute: try Compute(backend: Compute.default.backend, threads: threads))
            model.dropout = dropout
            let loss = try model.loss(run.batches[0])
            return (loss, try model.backward())
        }
        let (a, ga) = try step(threads: 1, dropout: TrainingDropout(seed: 7))
        let (b, gb) = try step(threads: 2, dropout: TrainingDropout(seed: 7))
        #expect(a == b)
        #expect(ga.entries.allSatisfy { $0.tensor == gb[$0.name]! }, "gradients differ between 1 and 2 threads")
        let (c, _) = try step(threads: 1, dropout: TrainingDropout(seed: 8))
        #expect(c != a, "another seed gives the same loss")
        // Off: the eval-mode loss PyTorch computed for the fixture.
        let (off, _) = try step(threads: 1, dropout: .off)
        #expect(abs(Double(off) - run.losses[0]) <= 1e-5 * abs(run.losses[0]))
        #expect(off != a)
    }

    @Test func zeroProbabilityDrawsNoMask() throws {
        // The golden fixtures have every probability 0: on or off, the same bits.
        let run = try GoldenTrainingRun("bert")
        let on = try BERTForPreTraining(directory: run.initial), off = try BERTForPreTraining(directory: run.initial)
        off.dropout = .off
        #expect(try on.loss(run.batches[0]) == off.loss(run.batches[0]))
        let (a, b) = (try on.backward(), try off.backward())
        #expect(a.entries.allSatisfy { $0.tensor == b[$0.name]! })
    }

    @Test(arguments: 0..<4)
    func backwardIsTheGradientWithTheMasks(_ index: Int) throws {
        let (fixture, settings) = Self.cases[index]
        let dir = try Self.folder(fixture, settings)
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try GoldenTrainingRun(fixture)
        let model = try TrainableModels.load(directory: dir, compute: try Compute(backend: Compute.default.backend, threads: 1))
        let batch = run.batches[0]
        let start = model.parameters
        model.dropout = TrainingDropout(seed: 3)
        _ = try model.loss(batch)
        let g = try model.backward()
        // Per weight matrix t: L(p + e u) - L(p - e u) over 2e against |g_t|, u = g_t / |g_t|
        // (the masks restarted at the seed each time).
        func lossAlong(_ name: String, _ u: Tensor) throws -> Double {
            var p = start
            p.modify(name) { $0 += u }
            model.parameters = p
            model.dropout = TrainingDropout(seed: 3)
            let l = try model.loss(batch)
            _ = try model.backward()
            return Double(l)
        }
        let e: Float = 1e-2
        var checked = 0
        for (name, t) in g.entries where t.rank == 2 {
            let n = t.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            guard n > 1e-2 else { continue }
            let u = t * (e / Float(n))
            let slope = (try lossAlong(name, u) - lossAlong(name, u * -1)) / (2 * Double(e))
            #expect(abs(slope - n) <= 0.03 * n + 1e-3, "\(fixture) \(name): finite difference \(slope) vs gradient norm \(n)")
            checked += 1
        }
        #expect(checked >= 8)
    }
}
