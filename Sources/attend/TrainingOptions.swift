// The options of `attend train` and `attend pretrain-mlm`, and the learning-rate schedules
// they name.
import AttendCommandLine
import Foundation

/// How the learning rate moves over the steps (after `--warmup` steps rising linearly from 0),
/// as `transformers`' schedules do.
enum ScheduleKind: String, CaseIterable {
    /// `get_constant_schedule_with_warmup`: the peak rate after the warmup.
    case constant
    /// `get_linear_schedule_with_warmup`: down linearly from the peak to 0 at the last step.
    case linear
    /// `get_inverse_sqrt_schedule`: the peak times sqrt(timescale / (step + timescale - warmup))
    /// after the warmup, timescale = the warmup steps (10 000 without warmup).
    case inverseSqrt = "inverse-sqrt"

    /// The factor of the peak learning rate at `step` (0 for the first update) of `total`, as
    /// the `transformers` scheduler's lambda gives it.
    func factor(step: Int, total: Int, warmup: Int) -> Double {
        let s = Double(step), w = Double(warmup)
        if step < warmup { return s / max(1, w) }
        switch self {
        case .constant: return 1
        case .linear: return max(0, Double(total - step) / max(1, Double(total - warmup)))
        case .inverseSqrt:
            let timescale = warmup > 0 ? w : 10_000
            return 1 / ((s + timescale - w) / timescale).squareRoot()
        }
    }
}

/// `--steps`, `--lr` and the other options of the training commands (their flags are in the
/// tables of `AttendCommandLine.tool`).
struct TrainingOptions {
    /// `--batches FILE` (train).
    var batches: String? = nil
    /// `--text FILE` (pretrain-mlm).
    var textFile: String? = nil
    var steps: Int? = nil
    var learningRate: Double? = nil
    var weightDecay: Double = 0
    var maxGradNorm: Double? = nil
    var warmup = 0
    var schedule = ScheduleKind.constant
    var save: String? = nil
    var seed: UInt64 = 0
    /// `--dropout on|off`: whether the model applies its configuration's dropout
    /// probabilities (on, the default, as the Hugging Face Trainer trains), masks seeded by
    /// `--seed`.
    var dropout = true

    /// The options of `command` as the command line gives them (values checked by the grammar).
    init(_ r: FlagReader, command: Arguments.Command) {
        batches = r.string("--batches")
        textFile = command == .pretrainMLM ? r.string("--text") : nil
        steps = r.int("--steps")
        learningRate = r.double("--lr")
        weightDecay = r.double("--weight-decay") ?? 0
        maxGradNorm = r.double("--max-grad-norm")
        warmup = r.int("--warmup") ?? 0
        schedule = r.string("--schedule").flatMap(ScheduleKind.init) ?? .constant
        save = r.string("--save")
        seed = r.uint64("--seed") ?? 0
        dropout = r.string("--dropout").map { $0 == "on" } ?? true
    }

    /// The defaults.
    init() {}

    /// Checks that `command` has what it needs: its data file, `--steps` and `--lr`. Throws
    /// `UsageError`.
    func check(command: Arguments.Command) throws {
        if command == .train && batches == nil { throw UsageError(description: "train needs --batches FILE (JSON lines of batches)") }
        if command == .pretrainMLM && textFile == nil {
            throw UsageError(description: "pretrain-mlm needs --text FILE (one sentence per line, documents separated by blank lines)")
        }
        if steps == nil { throw UsageError(description: "\(command.rawValue) needs --steps N") }
        if learningRate == nil { throw UsageError(description: "\(command.rawValue) needs --lr X (the peak learning rate)") }
        if save?.isEmpty == true { throw UsageError(description: "--save needs a folder path") }
    }

    /// The learning rate of the update at `step` (0-based).
    func learningRate(at step: Int) -> Double {
        (learningRate ?? 0) * schedule.factor(step: step, total: steps ?? 1, warmup: warmup)
    }
}
