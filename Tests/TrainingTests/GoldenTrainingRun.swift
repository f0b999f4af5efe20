import Foundation
import Testing
@testable import Attend

/// A golden training run (`Fixtures/<case>/`): the initial folder, the batches, PyTorch's
/// step-0 gradients, losses and grad norms, and the trained folder; and the run replayed on
/// an Attend model with the same AdamW and clipping.
struct GoldenTrainingRun {
    let folder: URL
    let batches: [TrainingBatch]
    let losses: [Double]
    let gradNorms: [Double]
    let steps: Int
    let learningRate: Float, weightDecay: Float, beta1: Float, beta2: Float, eps: Float, clip: Float

    init(_ name: String) throws {
        folder = Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil)!
        batches = try TrainingBatch.readJSONLines(at: folder.appendingPathComponent("batches.jsonl"))
        let run = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("run.json"))) as! [String: Any]
        losses = run["losses"] as! [Double]
        gradNorms = run["grad_norms_before_clipping"] as! [Double]
        steps = run["steps"] as! Int
        learningRate = Float(run["lr"] as! Double)
        weightDecay = Float(run["weight_decay"] as! Double)
        let betas = run["betas"] as! [Double]
        (beta1, beta2) = (Float(betas[0]), Float(betas[1]))
        eps = Float(run["eps"] as! Double)
        clip = Float(run["clip_grad_norm"] as! Double)
    }

    var initial: URL { folder.appendingPathComponent("initial") }
    var trained: URL { folder.appendingPathComponent("trained") }

    func tensors(_ file: URL) throws -> [String: Tensor] {
        let f = try SafeTensorsFile(contentsOf: file)
        var out: [String: Tensor] = [:]
        for n in f.tensorNames { out[n] = try f.tensor(n) }
        return out
    }

    /// The step-0 gradients against `grads0.safetensors`: same names, every scalar within
    /// `tolerance`. Returns the largest difference.
    @discardableResult
    func checkStepZeroGradients(_ model: TrainableModel, tolerance: Float = 1e-4) throws -> Float {
        let reference = try tensors(folder.appendingPathComponent("grads0.safetensors"))
        let loss = try model.loss(batches[0])
        #expect(abs(Double(loss) - losses[0]) <= 1e-5 * abs(losses[0]), "step 0 loss \(loss) vs \(losses[0])")
        let grads = try model.backward()
        #expect(Set(grads.names) == Set(reference.keys), "gradient names differ: \(Set(grads.names).symmetricDifference(reference.keys))")
        #expect(grads.names == model.parameters.names)
        var worst: Float = 0
        for (name, g) in grads.entries {
            guard let r = reference[name] else { continue }
            #expect(g.shape == r.shape, "\(name): \(g.shape) vs \(r.shape)")
            let d = maxDifference(g, r)
            worst = max(worst, d)
            #expect(d <= tolerance, "\(name): gradient differs by \(d)")
        }
        return worst
    }

    /// Runs the steps (batches in order, cycling) with AdamW (decoupled weight decay except
    /// for biases and norms) after clipping the global norm, as the reference did; checks the
    /// losses and grad norms (1e-5 relative) per step.
    func train(_ model: TrainableModel, excludingFromWeightDecay: @escaping @Sendable (String) -> Bool = AdamW.huggingFaceNoDecay) throws {
        var optimizer = try AdamW(
            parameters: model.parameters, learningRate: learningRate, betas: (beta1, beta2), epsilon: eps, weightDecay: weightDecay,
            excludingFromWeightDecay: excludingFromWeightDecay)
        for step in 0..<steps {
            let loss = try model.loss(batches[step % batches.count])
            var grads = try model.backward()
            let norm = try clipGradientNorm(&grads, maxNorm: clip)
            #expect(abs(Double(loss) - losses[step]) <= 1e-5 * abs(losses[step]), "step \(step) loss \(loss) vs \(losses[step])")
            #expect(abs(Double(norm) - gradNorms[step]) <= 1e-5 * gradNorms[step], "step \(step) grad norm \(norm) vs \(gradNorms[step])")
            var params = model.parameters
            try optimizer.step(&params, gradients: grads)
            model.parameters = params
        }
    }

    /// Every parameter of the trained folder within `tolerance` of `parameters` (tied copies
    /// that the folder stores under a second name are skipped; so are the flat indices
    /// `ignoring(name)` returns). Returns the largest difference.
    @discardableResult
    func checkTrained(_ parameters: ParameterSet, tolerance: Float = 2e-5, ignoring: (String) -> Range<Int>? = { _ in nil }) throws -> Float {
        let reference = try tensors(trained.appendingPathComponent("model.safetensors"))
        var worst: Float = 0
        for (name, p) in parameters.entries {
            guard let r = reference[name] else {
                Issue.record("\(name) is not in the trained folder")
                continue
            }
            var d = maxDifference(p, r)
            if let skip = ignoring(name), p.shape == r.shape {
                d = zip(p.scalars, r.scalars).enumerated().reduce(0) { skip.contains($1.offset) ? $0 : max($0, abs($1.element.0 - $1.element.1)) }
            }
            worst = max(worst, d)
            #expect(d <= tolerance, "\(name): trained parameter differs by \(d)")
        }
        return worst
    }
}

func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
    guard a.shape == b.shape else { return .infinity }
    return zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
