import Attend
import AttendCommandLine
import Foundation

/// `Compute.default` on `threads` threads. The bench asks only for 1 and `--threads`, which
/// its table limits to 1...Int.max, so Compute never refuses; if it did, the bench stops.
func benchCompute(threads: Int) -> Compute {
    do { return try Compute.default.with(threads: threads) } catch { fatalError("bench: \(error)") }
}

/// `parallelFor` over the bench's own counts (`--threads` is at least 1).
func benchParallelFor(_ count: Int, threads: Int, _ body: (Int) -> Void) {
    do { try parallelFor(count: count, threads: threads, body) } catch { fatalError("bench: \(error)") }
}

/// Wall-clock seconds of `body`, repeated: `warmup` uncounted runs, then at least `minReps`
/// runs and at least `minSeconds` in total (capped at `maxReps`). Returns every counted time.
func measure(warmup: Int = 1, minReps: Int = 3, minSeconds: Double = 0.3, maxReps: Int = 1000, _ body: () -> Void) -> [Double] {
    measureWithCPU(warmup: warmup, minReps: minReps, minSeconds: minSeconds, maxReps: maxReps, body).wall
}

/// Seconds of CPU time this process has used (all threads, user + system).
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// `measure`, also returning each repetition's process CPU time. On a shared machine a
/// 1-thread run's CPU time is what the work costs when it runs, whatever else competes for
/// the cores (time-slicing and steal inflate wall time only), so peers can be compared on it.
func measureWithCPU(
    warmup: Int = 1, minReps: Int = 3, minSeconds: Double = 0.3, maxReps: Int = 1000,
    _ body: () -> Void
) -> (wall: [Double], cpu: [Double]) {
    for _ in 0..<warmup { body() }
    var times: [Double] = [], cpu: [Double] = []
    var total = 0.0
    while times.count < minReps || (total < minSeconds && times.count < maxReps) {
        let c0 = processCPUSeconds()
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        cpu.append(processCPUSeconds() - c0)
        times.append(dt)
        total += dt
    }
    return (times, cpu)
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = SplitMix64(state: seed)  // Attend's, so every run benchmarks the same data
    return Tensor(shape: shape, generating: { _ in Float.random(in: -1...1, using: &rng) })
}

struct Bench {
    let options: BenchOptions
    let variant = Compute.default.backend
    var peak1 = 0.0  // single-thread FMA peak, GFLOP/s
    var peakN = 0.0  // all-threads FMA peak
    /// Every emitted figure by section, for `--svg`.
    let charts = BenchChartRecorder()

    init(options: BenchOptions) { self.options = options }

    var variantName: String {
        if case .native(let v) = variant { return v.rawValue }
        return variant.description
    }

    func progress(_ s: String) { stderr(s) }

    /// One result: a JSON line with `--json` (the shared JSON-lines writer: numbers to 6
    /// significant digits, non-finite ones as null), otherwise a table row.
    func emit(_ fields: [(String, Any)], row: String) {
        if options.svg != nil { charts.record(fields) }
        if options.json {
            writeJSONLine(
                fields.map { key, value -> (String, JSONValue) in
                    switch value {
                    case let d as Double: return (key, .double(d.isFinite ? Double(String(format: "%.6g", d)) ?? d : d))
                    case let i as Int: return (key, .int(i))
                    case let b as Bool: return (key, .bool(b))
                    case let s as String: return (key, .string(s))
                    default: return (key, .string("\(value)"))
                    }
                })
        } else if !row.isEmpty {
            out(row)
        }
    }

    mutating func run() {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        charts.section = "peak"
        if !options.json {
            out("Attend bench — variant \(variantName), \(cores) active cores, multi-thread rows use \(options.threads) threads")
            if case .native(let v) = variant {
                out("GEMM micro-kernel: \(v.gemmMicroKernelName)")
                out("caches: \(CacheHierarchy.current)")
                out("GEMM blocking: \(v.gemmBlocking) (compiled-in: mc \(v.gemmBlockingConstants.mc), kc \(v.gemmBlockingConstants.kc), nc \(v.gemmBlockingConstants.nc))")
            }
        } else if case .native(let v) = variant {
            let g = v.gemmBlocking, c = CacheHierarchy.current
            emit(
                [
                    ("name", "gemm blocking"), ("variant", v.rawValue), ("mr", g.mr), ("nr", g.nr), ("mc", g.mc), ("kc", g.kc), ("nc", g.nc),
                    ("l1d_bytes", c.l1Data?.bytes ?? 0), ("l2_bytes", c.l2?.bytes ?? 0), ("l3_bytes", c.l3?.bytes ?? 0), ("cache_source", c.source),
                ], row: "")
        }
        if case .native(let v) = variant {
            progress("measuring the FMA peak...")
            var measured1 = 0.0, measuredN = 0.0
            do {
                measured1 = try v.measureFMAPeak(threads: 1)
                measuredN = try v.measureFMAPeak(threads: options.threads)
            } catch { fatalError("bench: \(error)") }
            // Cores are identical: a multi-thread peak below threads x the 1-thread peak means
            // another process took a core while it was measured, and a 1-thread peak below the
            // multi-thread one per thread means the host slowed that measurement (seen on a
            // shared Zen 3 VM: 79.7 GFLOP/s on 1 thread, 204.3 on 2). Compare against the larger
            // figures, so a disturbed measurement cannot inflate "% of peak".
            peak1 = max(measured1, measuredN / Double(options.threads))
            if measured1 < 0.9 * peak1 {
                stderr(
                    String(
                        format:
                            "bench: warning: 1-thread FMA peak measured %.1f GFLOP/s, below the %d-thread peak per thread: the machine is busy; 1-thread rows compare against %.1f",
                        measured1, options.threads, peak1))
            }
            peakN = max(measuredN, peak1 * Double(options.threads))
            if measuredN < 0.9 * peak1 * Double(options.threads) {
                stderr(
                    String(
                        format:
                            "bench: warning: %d-thread FMA peak measured %.1f GFLOP/s, below %d x the 1-thread peak: the machine is busy; multi-thread rows compare against %.1f",
                        options.threads, measuredN, options.threads, peakN))
            }
            emit(
                [("name", "fma peak"), ("variant", v.rawValue), ("threads", 1), ("gflops", peak1), ("peak_gflops", peak1), ("ms", 0.0)],
                row: String(format: "FMA peak (%@): %.1f GFLOP/s on 1 thread, %.1f on %d threads", v.rawValue, peak1, peakN, options.threads))
        }
        if options.wants("parallel") {
            charts.section = "parallel"
            parallelRegion()
        }
        if options.wants("gemm") {
            charts.section = "gemm"
            gemm()
        }
        if options.wants("gemv") {
            charts.section = "gemv"
            gemv()
        }
        if options.wants("softmax") {
            charts.section = "softmax"
            softmaxBandwidth()
        }
        if options.wants("attention") {
            charts.section = "attention"
            attention()
        }
        if options.wants("attention-backward") {
            charts.section = "attention-backward"
            attentionBackward()
        }
        if options.wants("encoder") {
            charts.section = "encoder"
            encoder()
        }
        if options.wants("decoder") {
            charts.section = "decoder"
            decoder()
        }
        if options.wants("bert") {
            charts.section = "bert"
            bert()
        }
        if options.wants("seq2seq") {
            charts.section = "seq2seq"
            seq2seq()
        }
        if options.wants("quantized") {
            charts.section = "quantized"
            quantized()
            quantizedMemory()
            halfPrecisionCosine()
        }
        if options.wants("tokenizers") {
            charts.section = "tokenizers"
            tokenizers()
        }
        if options.wants("lm") {
            charts.section = "lm"
            lm()
        }
        if options.wants("train") {
            charts.section = "train"
            train()
        }
        if let dir = options.svg { charts.write(to: dir) }
    }

    /// Cost of one parallel region over all threads: an empty one (the caller may run every
    /// item itself), and a "rendezvous" region whose items each wait until all `threads`
    /// items have started, so every worker must wake up and take part: the real fork-join
    /// latency. Both warm (back to back) and after 50 ms idle (workers asleep).
    func parallelRegion() {
        let threads = options.threads
        guard threads > 1 else { return }
        let warmEmpty = measure(warmup: 100, minReps: 2000, minSeconds: 0.1) { benchParallelFor(threads, threads: threads) { _ in } }
        let counter = Rendezvous()
        let rendezvous = { counter.run(threads: threads) }
        let warmJoin = measure(warmup: 100, minReps: 2000, minSeconds: 0.1, rendezvous)
        var cold: [Double] = []
        for _ in 0..<5 {
            usleep(50_000)
            let t0 = DispatchTime.now().uptimeNanoseconds
            rendezvous()
            cold.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        let e = median(warmEmpty) * 1e6, w = median(warmJoin) * 1e6, c = median(cold) * 1e6
        emit(
            [("name", "parallel region empty"), ("threads", threads), ("us", e), ("ms", e / 1000)],
            row: String(
                format: "parallel region, %d threads: empty %.2f µs; every thread joining %.2f µs warm, %.0f µs after 50 ms idle (medians)", threads,
                e, w, c))
        emit([("name", "parallel region rendezvous warm"), ("threads", threads), ("us", w), ("ms", w / 1000)], row: "")
        emit([("name", "parallel region rendezvous after idle"), ("threads", threads), ("us", c), ("ms", c / 1000)], row: "")
        if counter.timedOut { stderr("bench: warning: a rendezvous region timed out (a worker never joined)") }
    }

    func gemm() {
        var shapes: [(String, Int, Int, Int)] = [512, 1024, 2048, 4096].map { ("gemm \($0)^3", $0, $0, $0) }
        shapes += [
            ("gemm 4096x512x512 (QKV/out proj)", 4096, 512, 512),
            ("gemm 4096x2048x512 (FFN up)", 4096, 2048, 512),
            ("gemm 4096x512x2048 (FFN down)", 4096, 512, 2048),
        ]
        if options.quick { shapes = shapes.filter { $0.1 <= 1024 } }
        if !options.gemmSizes.isEmpty { shapes = options.gemmSizes.map { ("gemm \($0)^3", $0, $0, $0) } }
        if !options.json {
            out("\nSGEMM C = A·Bᵀ (B stored [N, K] like a PyTorch weight), float32, \(variantName)")
            out("name                                 threads        ms    GFLOP/s  % of peak  % probed")
        }
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        for (name, m, n, k) in shapes {
            progress("\(name)...")
            let a = randomTensor([m, k], seed: 1), b = randomTensor([n, k], seed: 2)
            var c = Tensor.zeros([m, n])
            for t in threadCounts {
                let compute = benchCompute(threads: t)
                let flops = 2.0 * Double(m) * Double(n) * Double(k)
                let (times, probed) = aroundPeak(threads: t) {
                    measure(warmup: 1, minReps: options.quick ? 2 : 5, minSeconds: options.quick ? 0.2 : 1.0) {
                        c.gemm(a, b, transposeB: true, compute: compute)
                    }
                }
                let s = median(times)
                let gf = flops / s * 1e-9
                let peak = t == 1 ? peak1 : peakN
                emit(
                    [
                        ("name", name), ("variant", variantName), ("threads", t), ("m", m), ("n", n), ("k", k), ("ms", s * 1e3),
                        ("gflops", gf), ("peak_gflops", peak), ("probed_peak_gflops", probed), ("probed_peak_share", gf / probed),
                        ("reps", times.count),
                    ],
                    row: pad(name, 36) + String(format: " %7d %9.2f %10.1f %9.1f%%", t, s * 1e3, gf, peak > 0 ? gf / peak * 100 : 0)
                        + " " + probedPercent(gf, probed))
            }
        }
    }
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

/// Items that wait for each other: every item of a region increments `arrived` and spins until
/// all have arrived (or 1 s passes), so a region completes only when every thread took part.
final class Rendezvous: @unchecked Sendable {
    private let lock = NSLock()
    private var arrived = 0
    private(set) var timedOut = false

    func run(threads: Int) {
        lock.withLock { arrived = 0 }
        benchParallelFor(threads, threads: threads) { _ in
            self.lock.withLock { self.arrived += 1 }
            let start = DispatchTime.now().uptimeNanoseconds
            while self.lock.withLock({ self.arrived }) < threads {
                if DispatchTime.now().uptimeNanoseconds - start > 1_000_000_000 {
                    self.lock.withLock { self.timedOut = true }
                    return
                }
            }
        }
    }
}
