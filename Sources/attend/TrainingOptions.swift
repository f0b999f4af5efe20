// The options of `attend train` and `attend pretrain-mlm`, and the learning-rate schedules
// they name.
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

/// `--steps`, `--lr` and the other options of the training commands (see the usage text).
struct TrainingOptions {
    /// The flags that only the training commands take (`--seed` and `--text` are shared with
    /// generate, so they are not listed).
    static let flags: Set<String> = [
        "--batches", "--steps", "--lr", "--weight-decay", "--max-grad-norm", "--warmup", "--schedule", "--save", "--dropout",
    ]

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

    /// Parses `flag` when it is a training option of `command` (reading its value with
    /// `value`); returns false for any other flag. Throws `UsageError` for a value out of range.
    mutating func parse(_ flag: String, command: Arguments.Command, value: () throws -> String) throws -> Bool {
        func number(_ check: (Double) -> Bool, _ what: String) throws -> Double {
            let s = try value()
            guard let x = Double(s), x.isFinite, check(x) else { throw UsageError(description: "\(flag) needs \(what), got '\(s)'") }
            return x
        }
        func integer(minimum: Int) throws -> Int {
            let s = try value()
            guard let n = Int(s), n >= minimum else {
                throw UsageError(description: "\(flag) needs a \(minimum > 0 ? "positive" : "non-negative") integer, got '\(s)'")
            }
            return n
        }
        switch flag {
        case "--batches":
            guard command == .train else { throw UsageError(description: "--batches belongs to train (pretrain-mlm reads --text FILE)") }
            batches = try value()
        case "--text":
            guard command == .pretrainMLM else { return false }
            textFile = try value()
        case "--steps": steps = try integer(minimum: 1)
        case "--lr": learningRate = try number({ $0 > 0 }, "a positive number")
        case "--weight-decay": weightDecay = try number({ $0 >= 0 }, "a non-negative number")
        case "--max-grad-norm": maxGradNorm = try number({ $0 > 0 }, "a positive number")
        case "--warmup": warmup = try integer(minimum: 0)
        case "--schedule":
            let s = try value()
            guard let k = ScheduleKind(rawValue: s) else {
                throw UsageError(description: "--schedule needs \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(s)'")
            }
            schedule = k
        case "--save": save = try value()
        case "--dropout":
            switch try value() {
            case "on": dropout = true
            case "off": dropout = false
            case let s: throw UsageError(description: "--dropout needs on or off, got '\(s)'")
            }
        case "--seed":
            let s = try value()
            guard let n = UInt64(s) else { throw UsageError(description: "--seed needs a non-negative integer below 2^64, got '\(s)'") }
            seed = n
        default: return false
        }
        return true
    }

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
