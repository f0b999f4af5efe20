import Attend
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The training benchmark's jobs, the shapes of Benchmarks/scripts/torch_train_step.py:
///
/// - `base`: the paper's base encoder, 6 post-LN `nn.TransformerEncoderLayer` blocks (d 512,
///   8 heads, dFF 2048, ReLU, dropout 0) on already-embedded input `[8, 512, 512]`, loss the
///   mean squared error to a fixed random target.
/// - `bert-mini`: BERT-mini (4 layers, hidden 256, 4 heads, intermediate 1024, vocab 30522,
///   GELU, dropout 0) on `[8, 128]` random ids, 15% of the positions labelled (the rest -100),
///   the masked-LM loss alone (`BERTForPreTraining` on a batch without next-sentence labels:
///   `BertForMaskedLM`'s loss, as the PyTorch script computes it). The pooler and NSP head are
///   not run; AdamW still updates their 66k parameters (zero gradients, weight decay).
///
/// One step is the forward (activations kept), the backward and an AdamW update (lr 1e-4,
/// weight decay 0.01). `--quick` shrinks the batch and sequence (a smoke run).
struct TrainJob {
    let model: String
    let batch: Int
    let seq: Int

    static let models = ["base", "bert-mini"]
    // BERT-mini's shape.
    static let (bertVocab, bertHidden, bertLayers, bertHeads, bertIntermediate) = (30522, 256, 4, 4, 1024)
    // The paper's base encoder.
    static let (baseLayers, baseDim, baseHeads, baseFF) = (6, 512, 8, 2048)

    init(model: String, quick: Bool) {
        self.model = model
        switch (model, quick) {
        case ("base", false): (batch, seq) = (8, 512)
        case ("base", true): (batch, seq) = (2, 128)
        case (_, false): (batch, seq) = (8, 128)
        default: (batch, seq) = (2, 64)
        }
    }

    var tokens: Int { batch * seq }

    /// Flops of one forward pass: every matrix product (2 m n k) and the attention's two
    /// products per visible (query, key) pair (4 x head size, no mask here). BERT counts the
    /// `BertForMaskedLM` work: the layers, the MLM transform and the decoder over every position.
    var forwardFlops: Double {
        let t = Double(tokens), s = Double(seq)
        func layer(_ d: Double, _ f: Double) -> Double {
            // QKV, output projection, feed-forward up and down; QKᵀ and PV.
            2 * t * d * 3 * d + 2 * t * d * d + 2 * 2 * t * d * f + 4 * t * s * d
        }
        if model == "base" {
            return Double(Self.baseLayers) * layer(Double(Self.baseDim), Double(Self.baseFF))
        }
        let d = Double(Self.bertHidden)
        return Double(Self.bertLayers) * layer(d, Double(Self.bertIntermediate)) + 2 * t * d * d + 2 * t * d * Double(Self.bertVocab)
    }

    /// A step's flops: the forward, and a backward of twice its products.
    var stepFlops: Double { 3 * forwardFlops }

    var title: String {
        model == "base"
            ? "base encoder 6x(512, 8 heads, 2048) post-LN ReLU [\(batch), \(seq), 512], MSE"
            : "BERT-mini MLM (4 x 256, 4 heads, 1024, vocab 30522) [\(batch), \(seq)], 15% labelled"
    }
}

/// One configuration measured in its own process, so its peak resident memory is the step's:
/// the bench re-executes itself with `ATTEND_BENCH_TRAIN_CHILD=model,threads,quick` set, and
/// the child prints one JSON object (per-step seconds, losses, peak RSS of its own image, see
/// `ownPeakResidentMiB`) on stdout.
enum TrainChild {
    static let environmentKey = "ATTEND_BENCH_TRAIN_CHILD"

    /// In a child: runs the job named by the environment, prints its result and exits.
    static func runIfRequested() {
        guard let spec = ProcessInfo.processInfo.environment[environmentKey] else { return }
        let parts = spec.split(separator: ",").map(String.init)
        guard parts.count == 3, TrainJob.models.contains(parts[0]), let threads = Int(parts[1]), threads > 0 else {
            stderr("bench: bad \(environmentKey) '\(spec)'")
            exit(2)
        }
        do {
            let result = try run(TrainJob(model: parts[0], quick: parts[2] == "1"), threads: threads, quick: parts[2] == "1")
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            out(String(decoding: data, as: UTF8.self))
            exit(0)
        } catch {
            stderr("bench: train \(spec): \(error)")
            exit(1)
        }
    }

    static func run(_ job: TrainJob, threads: Int, quick: Bool) throws -> [String: Any] {
        let compute = try Compute.default.with(threads: threads)
        var optimizer = try AdamW(learningRate: 1e-4, weightDecay: 0.01)
        optimizer.compute = compute
        var losses: [Float] = []
        let step: () throws -> Void
        if job.model == "base" {
            let config = PyTorchLayerConfig(modelDim: TrainJob.baseDim, heads: TrainJob.baseHeads, feedForwardDim: TrainJob.baseFF)
            let model = try EncoderStackTraining(layers: TrainJob.baseLayers, config: config, seed: 0, compute: compute)
            let x = randomTensor([job.batch, job.seq, TrainJob.baseDim], seed: 31)
            let target = randomTensor([job.batch, job.seq, TrainJob.baseDim], seed: 32)
            step = { losses.append(try model.step(input: x, target: target, optimizer: &optimizer)) }
        } else {
            let model = try randomBERTForPreTraining(
                vocabSize: TrainJob.bertVocab, hiddenSize: TrainJob.bertHidden, layers: TrainJob.bertLayers, heads: TrainJob.bertHeads,
                intermediateSize: TrainJob.bertIntermediate, seed: 0, compute: compute)
            var rng = SplitMix64(state: 33)
            let ids = (0..<job.batch).map { _ in (0..<job.seq).map { _ in Int.random(in: 0..<TrainJob.bertVocab, using: &rng) } }
            var labels = ids.map { row in row.map { id in Double.random(in: 0..<1, using: &rng) < 0.15 ? id : -100 } }
            if !labels.joined().contains(where: { $0 != -100 }) { labels[0][0] = ids[0][0] }
            let batch = TrainingBatch(inputIDs: ids, labels: labels)  // masked-LM only
            step = {
                losses.append(try model.loss(batch))
                let grads = try model.backward()
                try optimizer.step(&model.parameters, gradients: grads)
            }
        }
        var failure: Error?
        let (times, cpu) = measureWithCPU(warmup: 1, minReps: quick ? 1 : 3, minSeconds: quick ? 0 : 5) {
            do { try step() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
        return [
            "seconds": times, "cpu_seconds": cpu, "loss_first": Double(losses.first ?? .nan), "loss_last": Double(losses.last ?? .nan),
            "rss_mib": ownPeakResidentMiB(),
        ]
    }

    /// This process image's peak resident memory in MiB: `VmHWM` of /proc/self/status on Linux,
    /// which starts afresh at exec. `ru_maxrss` does not: Linux carries the spawning process's
    /// high-water mark across fork and exec, so a child spawned after earlier sections of the
    /// same run (the CI's all-sections smoke run) reported their peak, not its step's.
    /// Elsewhere, and if /proc is unreadable, `ru_maxrss`.
    static func ownPeakResidentMiB() -> Double {
        #if os(Linux)
            if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                let kib = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Double($0) })
            {
                return kib / 1024
            }
        #endif
        return peakResidentMiB()
    }
}

extension Bench {
    /// Training steps per second of the two jobs (see `TrainJob`) at 1 thread and at
    /// `--threads`, each configuration in its own process (peak RSS is that process's
    /// high-water mark: runtime, weights, AdamW moments, activations and gradients).
    /// GFLOP/s counts 3x the forward's matrix and attention flops; "% of peak" is against the
    /// FMA peak measured at the start of this run.
    func train() {
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        for model in TrainJob.models {
            let job = TrainJob(model: model, quick: options.quick)
            if !options.json {
                out("\nTraining step (forward + backward + AdamW), \(job.title), \(variantName)")
                out(String(format: "step flops (3 x forward): %.4g GFLOP (%.0f)", job.stepFlops * 1e-9, job.stepFlops))
                out("name                           threads   ms median (min-max)     tokens/s   GFLOP/s  % of peak  peak RSS MiB")
            }
            for threads in threadCounts {
                let name = "train \(model)"
                progress("\(name), \(threads) thread(s), own process...")
                let child = Process()
                child.executableURL = executable
                child.arguments = []
                var env = ProcessInfo.processInfo.environment
                env[TrainChild.environmentKey] = "\(model),\(threads),\(options.quick ? 1 : 0)"
                child.environment = env
                let pipe = Pipe()
                child.standardOutput = pipe
                child.standardError = FileHandle.standardError
                var result: [String: Any]?
                do {
                    try child.run()
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    child.waitUntilExit()
                    if child.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last {
                        result = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    }
                } catch {
                    stderr("bench: \(name): could not run the child process: \(error)")
                }
                guard let r = result, let seconds = r["seconds"] as? [Double], !seconds.isEmpty else {
                    stderr("bench: \(name), \(threads) thread(s): the measurement failed")
                    continue
                }
                let med = median(seconds), lo = seconds.min()!, hi = seconds.max()!
                let rss = r["rss_mib"] as? Double ?? .nan
                // Process CPU time per step (all threads, user + system): on a shared machine what
                // the step costs when it runs, whatever else competes for the cores.
                let cpu = (r["cpu_seconds"] as? [Double]).map { median($0) } ?? .nan
                let tps = Double(job.tokens) / med
                let gf = job.stepFlops / med * 1e-9
                let peak = threads == 1 ? peak1 : peakN
                emit(
                    [
                        ("name", name), ("variant", variantName), ("threads", threads), ("batch", job.batch), ("seq", job.seq),
                        ("tokens", job.tokens), ("ms", med * 1e3), ("ms_min", lo * 1e3), ("ms_max", hi * 1e3), ("tokens_per_s", tps),
                        ("step_flops", job.stepFlops), ("gflops", gf), ("peak_gflops", peak), ("rss_mib", rss), ("reps", seconds.count), ("cpu_ms", cpu * 1e3),
                        ("loss_first", r["loss_first"] as? Double ?? .nan), ("loss_last", r["loss_last"] as? Double ?? .nan),
                    ],
                    row: pad(name, 30)
                        + String(
                            format: " %7d %9.1f (%.1f-%.1f) %11.1f %9.1f %9.1f%% %12.0f", threads, med * 1e3, lo * 1e3, hi * 1e3, tps, gf,
                            peak > 0 ? gf / peak * 100 : 0, rss))
            }
        }
    }
}
