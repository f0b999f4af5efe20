// The training loop of `attend train` and `attend pretrain-mlm`: batches in order (cycling),
// one update per step, a progress line per step on stderr and, with --json, one JSON line per
// step on stdout.
import Attend
import AttendCommandLine
import Foundation

/// The parts of a training run that the loop drives: the model, the update of its parameters
/// (the optimizer), and the clipping of the gradients.
struct TrainingRun {
    /// The model being trained.
    let model: any TrainableModel
    /// Clips `gradients` to a global L2 norm of at most `maxNorm` (nil: no clipping) and returns
    /// their global norm before clipping.
    var clip: (_ gradients: inout ParameterSet, _ maxNorm: Double?) throws -> Double
    /// One optimizer update of `parameters` with `gradients` at learning rate `lr`.
    var update: (_ parameters: inout ParameterSet, _ gradients: ParameterSet, _ lr: Double) throws -> Void
}

/// What one step reports.
struct StepRecord {
    var step: Int
    var loss: Float
    var gradNorm: Double
    var lr: Double
    var tokens: Int
    var seconds: Double
}

/// Runs `options.steps` steps over `batches` (in order, cycling) and reports each. Throws the
/// model's and optimizer's errors, and a `TrainingError` when a loss is not finite.
@discardableResult
func runTraining(_ run: TrainingRun, batches: [TrainingBatch], options: TrainingOptions, json: Bool) throws -> [StepRecord] {
    let steps = max(1, options.steps ?? 1)  // checked positive when parsed
    var records: [StepRecord] = []
    records.reserveCapacity(min(steps, 1 << 16))
    let start = Date()
    var totalTokens = 0
    let err = FileHandle.standardError
    for k in 1...max(1, steps) {
        let batch = batches[(k - 1) % batches.count]
        let t0 = Date()
        let loss = try run.model.loss(batch)
        guard loss.isFinite else {
            throw TrainingError(
                "step \(k): the loss is \(loss.isNaN ? "NaN" : "\(loss)") (training diverged; try a lower --lr or --max-grad-norm)")
        }
        var gradients = try run.model.backward()
        let norm = try run.clip(&gradients, options.maxGradNorm)
        let lr = options.learningRate(at: k - 1)
        try run.update(&run.model.parameters, gradients, lr)
        let seconds = Date().timeIntervalSince(t0)
        let record = StepRecord(step: k, loss: loss, gradNorm: norm, lr: lr, tokens: batch.tokenCount, seconds: seconds)
        records.append(record)
        totalTokens += record.tokens
        if json {
            let line = jsonObject([("step", .int(k)), ("loss", .float(loss)), ("grad_norm", .double(norm)), ("lr", .double(lr))])
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        let elapsed = Date().timeIntervalSince(start)
        let eta = elapsed / Double(k) * Double(steps - k)
        err.write(Data(progressLine(record, of: steps, eta: eta).utf8))
    }
    let elapsed = Date().timeIntervalSince(start)
    let summary = String(
        format: "attend: trained %d steps in %.2f s: %.0f tokens/s, peak memory %.0f MiB\n", steps, elapsed,
        elapsed > 0 ? Double(totalTokens) / elapsed : 0, peakMemoryMiB())
    err.write(Data(summary.utf8))
    return records
}

/// "attend: step 3/5  loss 5.5247  812 tokens/s  ETA 0:02" and a line break.
func progressLine(_ r: StepRecord, of steps: Int, eta: Double) -> String {
    let rate = r.seconds > 0 ? Double(r.tokens) / r.seconds : 0
    return String(format: "attend: step %d/%d  loss %.4f  %.0f tokens/s  ETA ", r.step, steps, Double(r.loss), rate) + duration(eta) + "\n"
}

/// Seconds as "m:ss" or "h:mm:ss" ("?" when not finite).
func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0, seconds < 1e12 else { return "?" }
    let s = Int(seconds.rounded())
    let (h, m, r) = (s / 3600, (s / 60) % 60, s % 60)
    return h > 0 ? String(format: "%d:%02d:%02d", h, m, r) : String(format: "%d:%02d", m, r)
}

/// The global L2 norm of every gradient (as `torch.nn.utils.clip_grad_norm_` computes it,
/// accumulated in double). Cost: one pass over the gradients.
func globalNorm(_ gradients: ParameterSet) -> Double {
    var sum = 0.0
    for (_, t) in gradients.entries {
        t.withUnsafeBufferPointer { b in
            for x in b { sum += Double(x) * Double(x) }
        }
    }
    return sum.squareRoot()
}
