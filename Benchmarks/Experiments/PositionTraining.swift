import Attend
import Foundation

// Training and evaluation of one model on one task: fresh random examples every step (the
// tasks are infinite, so there is no overfitting to a fixed set), AdamW with warmup and
// cosine decay, gradient clipping, then accuracy on held-out examples at several lengths.

/// The training hyperparameters shared by every run.
package struct TrainingSettings: Sendable {
    /// Optimizer steps.
    package var steps = 600
    /// Sequences per step.
    package var batch = 16
    /// Peak learning rate (reached after `warmup` steps, then cosine decay to 0).
    package var learningRate: Float = 3e-3
    package var warmup = 30
    /// Global gradient norm clip.
    package var maxGradientNorm: Float = 1
    /// Held-out sequences per evaluated length.
    package var evaluationSequences = 32

    package init() {}
}

/// The outcome of one training run.
package struct RunResult: Sendable {
    /// Mean cross-entropy of the first and the last 10% of the steps.
    package var firstLoss: Float, lastLoss: Float
    /// Accuracy (fraction of asked positions answered right) per evaluated length.
    package var accuracy: [Int: Double]
    /// Seconds spent training and evaluating.
    package var seconds: Double
}

/// Trains `model` on `task` at `length` for `settings.steps` steps, drawing the data from
/// `seed`; returns the loss of every step.
package func train(
    _ model: PositionModel, task: PositionTask, length: Int, settings: TrainingSettings, seed: UInt64
) throws -> [Float] {
    var rng = SplitMix64(state: seed ^ 0x5EED_DA7A)
    var optimizer = try AdamW(learningRate: settings.learningRate, weightDecay: 0.01)
    let schedule = LearningRateSchedule.cosineWarmup(
        peak: settings.learningRate, warmupSteps: min(settings.warmup, settings.steps), totalSteps: settings.steps)
    var losses: [Float] = []
    for _ in 0..<settings.steps {
        let examples = task.batch(count: settings.batch, length: length, using: &rng)
        // Forward, loss and its gradient (the fused softmax cross-entropy), backward.
        let (logits, activations) = model.forward(examples.map(\.tokens))
        let (loss, _, dLogits) = TrainingOps.softmaxCrossEntropy(logits: logits, labels: examples.flatMap(\.labels), compute: model.compute)
        var grads = model.backward(activations, logitsGradient: dLogits)
        try clipGradientNorm(&grads, maxNorm: settings.maxGradientNorm, compute: model.compute)
        optimizer.learningRate = try schedule.learningRate(step: optimizer.stepCount)
        try optimizer.step(&model.parameters, gradients: grads)
        losses.append(loss)
    }
    return losses
}

/// The fraction of asked positions (label not ignored) whose highest logit is the label, over
/// `count` examples of `length` drawn from `seed` (the same examples for every model).
/// Evaluated in batches of `batch` sequences.
package func accuracy(_ model: PositionModel, task: PositionTask, length: Int, count: Int, batch: Int = 16, seed: UInt64) -> Double {
    var rng = SplitMix64(state: seed &+ UInt64(length) &* 0x9E37_79B9)
    var right = 0, asked = 0
    var remaining = count
    while remaining > 0 {
        let examples = task.batch(count: min(batch, remaining), length: length, using: &rng)
        remaining -= examples.count
        let (logits, _) = model.forward(examples.map(\.tokens))
        let v = model.vocabularySize
        let labels = examples.flatMap(\.labels)
        logits.withUnsafeBufferPointer { z in
            for (r, label) in labels.enumerated() where label != PositionTask.ignored {
                let row = z[(r * v)..<((r + 1) * v)]
                let best = row.indices.max { row[$0] < row[$1] }! - r * v
                asked += 1
                if best == label { right += 1 }
            }
        }
    }
    return asked == 0 ? .nan : Double(right) / Double(asked)
}

/// One cell's run: a fresh model of `encoding` (weights from `seed`) trained on `task` at
/// `trainLength`, then evaluated at every length of `lengths`.
package func run(
    task: PositionTask, encoding: PositionEncoding, seed: UInt64, lengths: [Int], config: PositionModelConfig, settings: TrainingSettings,
    compute: Compute
) throws -> RunResult {
    let start = Date()
    let model = PositionModel(encoding: encoding, vocabularySize: task.vocabularySize, config: config, seed: seed, compute: compute)
    let losses = try train(model, task: task, length: config.trainLength, settings: settings, seed: seed)
    let tail = max(1, losses.count / 10)
    func mean(_ x: ArraySlice<Float>) -> Float { x.reduce(0, +) / Float(max(x.count, 1)) }
    var acc: [Int: Double] = [:]
    for n in lengths {
        // Evaluation data does not depend on the training seed: every model answers the same questions.
        acc[n] = accuracy(model, task: task, length: n, count: settings.evaluationSequences, seed: 0xE7A1)
    }
    return RunResult(firstLoss: mean(losses.prefix(tail)), lastLoss: mean(losses.suffix(tail)), accuracy: acc, seconds: Date().timeIntervalSince(start))
}
