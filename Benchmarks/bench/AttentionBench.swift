import Attend
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Peak resident memory of this process so far, in MiB (getrusage's ru_maxrss).
func peakResidentMiB() -> Double {
    var usage = rusage()
    #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024  // KiB on Linux
    #else
        getrusage(RUSAGE_SELF, &usage)
        return Double(usage.ru_maxrss) / (1024 * 1024)  // bytes on Darwin
    #endif
}

extension Bench {
    /// Fused attention at batch 1, 8 heads, head size 64, `--seq` tokens: non-causal and
    /// causal, 1 thread and all threads; then the materialized path where its score matrix
    /// fits in 1 GiB. Peak RSS is read after the fused runs, before the materialized ones.
    /// `--fused-only`: the fused non-causal rows alone (what ONNX Runtime's MultiHeadAttention
    /// is compared with).
    /// "% of peak" divides by the FMA peak read at the start of the bench; "% probed" by the
    /// FMA peak read just before and just after the row's timed runs (its mean), so a clock
    /// that moved during the bench moves both numerator and denominator.
    func attention() {
        let s = options.seq, heads = 8, d = 64
        let q = randomTensor([1, s, heads, d], seed: 11)
        let k = randomTensor([1, s, heads, d], seed: 12)
        let v = randomTensor([1, s, heads, d], seed: 13)
        if !options.json {
            out("\nFused attention, batch 1, \(heads) heads, head size 64, seq \(s), \(variantName)")
            out("name                                 threads        ms    GFLOP/s  % of peak  % probed")
        }
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        let big = s >= 16384
        var msByCausal: [Bool: [Int: Double]] = [:]
        for causal in options.fusedOnly ? [false] : [false, true] {
            for t in threadCounts {
                let name = "attention fused\(causal ? " causal" : "") seq \(s)"
                progress("\(name), \(t) thread(s)...")
                let compute = benchCompute(threads: t)
                let (times, probed) = aroundPeak(threads: t) {
                    measure(warmup: big ? 0 : 1, minReps: big ? 1 : 3, minSeconds: big ? 0 : 1.0) {
                        _ = scaledDotProductAttention(query: q, key: k, value: v, mask: causal ? .causal : .none, compute: compute)
                    }
                }
                let sec = median(times)
                msByCausal[causal, default: [:]][t] = sec * 1e3
                let flops = 4.0 * Double(s) * Double(s) * Double(d) * Double(heads) * (causal ? 0.5 : 1)
                let gf = flops / sec * 1e-9
                let peak = t == 1 ? peak1 : peakN
                emit(
                    [
                        ("name", name), ("variant", variantName), ("threads", t), ("seq", s), ("heads", heads), ("head_dim", d),
                        ("causal", causal), ("ms", sec * 1e3), ("gflops", gf), ("peak_gflops", peak), ("probed_peak_gflops", probed),
                        ("probed_peak_share", gf / probed), ("reps", times.count),
                    ],
                    row: pad(name, 36) + String(format: " %7d %9.1f %10.1f %9.1f%%", t, sec * 1e3, gf, peak > 0 ? gf / peak * 100 : 0)
                        + " " + probedPercent(gf, probed))
            }
        }
        for t in threadCounts {
            if let a = msByCausal[false]?[t], let b = msByCausal[true]?[t] {
                emit(
                    [("name", "attention causal speed-up seq \(s)"), ("threads", t), ("ratio", a / b), ("ms", b)],
                    row: String(format: "causal is %.2fx faster than non-causal on %d thread(s)", a / b, t))
            }
        }
        // A sliding window of seq / 8 (Mistral's sliding_window): key blocks left of a query
        // block's window are skipped, so the cost is about seq * window, not seq^2 / 2.
        let w = max(1, s / 8)
        for t in threadCounts where !options.fusedOnly {
            let name = "attention fused causal window \(w) seq \(s)"
            progress("\(name), \(t) thread(s)...")
            let compute = benchCompute(threads: t)
            let mask = AttentionMask(causal: true, window: w)
            let times = measure(warmup: big ? 0 : 1, minReps: big ? 1 : 3, minSeconds: big ? 0 : 1.0) {
                _ = scaledDotProductAttention(query: q, key: k, value: v, mask: mask, compute: compute)
            }
            let sec = median(times)
            let visible = Double(s) * Double(min(w, s)) - Double(min(w, s)) * Double(min(w, s) - 1) / 2  // keys seen, summed over queries
            let gf = 4.0 * visible * Double(d) * Double(heads) / sec * 1e-9
            let peak = t == 1 ? peak1 : peakN
            let causalMs = msByCausal[true]?[t] ?? 0
            emit(
                [
                    ("name", name), ("variant", variantName), ("threads", t), ("seq", s), ("window", w), ("ms", sec * 1e3),
                    ("gflops", gf), ("peak_gflops", peak), ("causal_ratio", causalMs / (sec * 1e3)), ("reps", times.count),
                ],
                row: pad(name, 36) + String(format: " %7d %9.1f %10.1f %9.1f%%  (%.2fx faster than causal)", t, sec * 1e3, gf,
                    peak > 0 ? gf / peak * 100 : 0, causalMs / (sec * 1e3)))
        }
        let rss = peakResidentMiB()
        let inputs = 4.0 * Double(4 * s * heads * d) / 1048576
        emit(
            [("name", "attention fused peak rss seq \(s)"), ("rss_mib", rss), ("inputs_outputs_mib", inputs), ("ms", 0.0)],
            row: String(format: "peak resident memory after the fused runs: %.0f MiB (Q, K, V and output themselves: %.0f MiB)", rss, inputs))
        if options.fusedOnly { return }
        // The materialized path: one head's seq x seq scores at a time.
        let scoreBytes = Double(s) * Double(s) * 4
        guard scoreBytes <= 1024 * 1048576 else {
            emit(
                [
                    ("name", "attention materialized seq \(s)"), ("skipped", "score matrix \(Int(scoreBytes / 1048576)) MiB per head > 1 GiB"),
                    ("ms", 0.0),
                ],
                row: "materialized path skipped: its score matrix would take \(Int(scoreBytes / 1048576)) MiB per head")
            return
        }
        for causal in [false, true] {
            let t = options.threads
            let name = "attention materialized\(causal ? " causal" : "") seq \(s)"
            progress("\(name)...")
            let compute = benchCompute(threads: t)
            let times = measure(warmup: 1, minReps: 2, minSeconds: 0.5) {
                _ = materializedAttention(query: q, key: k, value: v, causal: causal, compute: compute)
            }
            let sec = median(times)
            let flops = 4.0 * Double(s) * Double(s) * Double(d) * Double(heads) * (causal ? 0.5 : 1)
            emit(
                [
                    ("name", name), ("variant", variantName), ("threads", t), ("seq", s), ("causal", causal), ("ms", sec * 1e3),
                    ("gflops", flops / sec * 1e-9), ("peak_gflops", peakN),
                ],
                row: pad(name, 36) + String(format: " %7d %9.1f %10.1f %9.1f%%", t, sec * 1e3, flops / sec * 1e-9, flops / sec * 1e-9 / peakN * 100))
        }
    }

    /// Row softmax over 4096 x 4096 into a preallocated output, next to a plain copy of the
    /// same bytes; both counted as bytes read + bytes written.
    func softmaxBandwidth() {
        let rows = 4096, n = 4096
        let x = randomTensor([rows, n], seed: 21) * 8
        var y = Tensor.zeros([rows, n])
        let bytes = 2.0 * Double(rows * n * 4)
        if !options.json { out("\nRow softmax \(rows) x \(n) into a preallocated output (GB/s = bytes read + written)") }
        var copyTarget = Tensor.zeros([rows, n])
        let copyTimes = measure(warmup: 2, minReps: 10, minSeconds: 0.5) {
            x.withUnsafeBufferPointer { src in
                copyTarget.withUnsafeMutableBufferPointer { dst in
                    _ = memcpy(dst.baseAddress!, src.baseAddress!, rows * n * 4)
                }
            }
        }
        let copyGBs = bytes / median(copyTimes) * 1e-9
        emit(
            [("name", "memcpy 64 MiB"), ("threads", 1), ("gbs", copyGBs), ("ms", median(copyTimes) * 1e3)],
            row: String(format: "memcpy (1 thread): %.1f GB/s", copyGBs))
        for t in options.threads > 1 ? [1, options.threads] : [1] {
            let compute = benchCompute(threads: t)
            let times = measure(warmup: 2, minReps: 10, minSeconds: 0.5) { x.softmax(into: &y, compute: compute) }
            let gbs = bytes / median(times) * 1e-9
            emit(
                [
                    ("name", "softmax rows 4096x4096"), ("variant", variantName), ("threads", t), ("gbs", gbs),
                    ("copy_gbs", copyGBs), ("ms", median(times) * 1e3),
                ],
                row: String(format: "softmax, %d thread(s): %.2f ms, %.1f GB/s = %.0f%% of memcpy", t, median(times) * 1e3, gbs, gbs / copyGBs * 100))
        }
    }
}
