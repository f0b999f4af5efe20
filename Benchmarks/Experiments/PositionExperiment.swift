import Attend
import AttendCommandLine
import Foundation

// `experiment positions`: its options (from the shared command-line grammar), and the loop over
// tasks x encodings x seeds.

/// The command line of `experiment`, with this library's tasks and encodings.
package let experimentTool = ExperimentCommandLine.tool(
    tasks: PositionTask.allCases.map(\.rawValue), encodings: PositionEncoding.allCases.map(\.rawValue))

/// The options of `experiment positions`.
package struct PositionExperimentOptions: Sendable {
    package var tasks = PositionTask.allCases
    package var encodings = PositionEncoding.allCases
    package var seeds: [UInt64] = [1, 2, 3]
    package var lengths = [64, 128, 256, 512]
    package var config = PositionModelConfig()
    package var settings = TrainingSettings()
    package var output = URL(fileURLWithPath: "experiment-results")
    package var threads = Compute.activeCores
    package var quiet = false

    package init() {}

    /// The options of a parsed `experiment positions` command line (`experimentTool`; the
    /// values are already checked).
    package init(_ parsed: ParsedArguments) {
        if parsed.has("--quick") {
            seeds = [1]
            lengths = [64, 128]
            settings.steps = 40
            settings.warmup = 5
            settings.evaluationSequences = 16
        }
        if parsed.has("--task") { tasks = parsed.lists("--task").joined().compactMap(PositionTask.init(rawValue:)) }
        if parsed.has("--encodings") { encodings = parsed.lists("--encodings").joined().compactMap(PositionEncoding.init(rawValue:)) }
        output = parsed.string("--out").map { URL(fileURLWithPath: $0) } ?? output
        threads = parsed.int("--threads") ?? threads
        quiet = parsed.has("--quiet")
        // Explicit counts win over --quick's, whatever their order.
        if let steps = parsed.int("--steps") { settings.steps = steps; settings.warmup = min(settings.warmup, max(1, steps / 10)) }
        if let seedCount = parsed.int("--seeds") { seeds = (1...seedCount).map { UInt64($0) } }
    }

    /// Parses the arguments after `positions` with `experimentTool`; throws `UsageError`
    /// naming the bad one (and for `--help` or `--version`, which only the executable answers).
    package init(arguments: [String]) throws {
        guard case .run(let parsed) = try experimentTool.parse(["positions"] + arguments) else {
            throw UsageError("--help and --version are answered by the executable")
        }
        self.init(parsed)
    }
}

/// Runs every task x encoding x seed of `options`, printing progress (unless quiet), and
/// returns the report (not yet written). The runs are independent (each its own model, data
/// and optimizer, all from its seed), so `options.threads` workers take them in turn, each
/// run on one thread: for models this small that keeps both cores busier than splitting
/// each product in two, and the results do not depend on the number of workers.
package func runPositionExperiment(_ options: PositionExperimentOptions, command: String) throws -> PositionReport {
    let start = Date()
    struct Job { var task: PositionTask, encoding: PositionEncoding, seed: UInt64 }
    let jobs = options.tasks.flatMap { t in options.encodings.flatMap { e in options.seeds.map { Job(task: t, encoding: e, seed: $0) } } }
    let results = ResultSlots(count: jobs.count)
    let workers = max(1, min(options.threads, jobs.count))
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
        while let i = results.nextJob() {
            let job = jobs[i]
            do {
                let r = try run(
                    task: job.task, encoding: job.encoding, seed: job.seed, lengths: options.lengths, config: options.config,
                    settings: options.settings, compute: Compute.default.with(threads: 1))
                results.store(i, .success(r))
                if !options.quiet {
                    let acc = options.lengths.map { String(format: "%d: %.3f", $0, r.accuracy[$0] ?? .nan) }.joined(separator: ", ")
                    // Written unbuffered: one line per finished run, as it finishes, even into a file.
                    let line = String(
                        format: "%@ %@ seed %d: loss %.3f -> %.3f, %@ (%.1f s)\n", job.task.rawValue, job.encoding.rawValue, Int(job.seed),
                        r.firstLoss, r.lastLoss, acc, r.seconds)
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
            } catch {
                results.store(i, .failure(error))
            }
        }
    }
    var cells: [CellResults] = []
    for (i, job) in jobs.enumerated() {
        let r = try results.result(i)
        if let c = cells.lastIndex(where: { $0.task == job.task && $0.encoding == job.encoding }) {
            cells[c].runs.append(r)
        } else {
            cells.append(CellResults(task: job.task, encoding: job.encoding, runs: [r]))
        }
    }
    return PositionReport(
        lengths: options.lengths, seeds: options.seeds, config: options.config, settings: options.settings, cells: cells,
        wallSeconds: Date().timeIntervalSince(start), threads: options.threads, command: command)
}

/// The job queue and result slots the workers share (behind a lock).
private final class ResultSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private var slots: [Result<RunResult, any Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func nextJob() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < slots.count else { return nil }
        next += 1
        return next - 1
    }

    func store(_ i: Int, _ r: Result<RunResult, any Error>) {
        lock.lock()
        slots[i] = r
        lock.unlock()
    }

    func result(_ i: Int) throws -> RunResult {
        lock.lock()
        defer { lock.unlock() }
        return try slots[i]!.get()
    }
}
