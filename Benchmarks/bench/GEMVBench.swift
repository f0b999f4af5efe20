import Attend
import Foundation

/// One weight shape of the `gemv` section.
private struct GEMVShape {
    let name: String
    let outputs: Int, inputs: Int
    /// Also timed in cache (the same weight every call), not only from memory.
    let inCache: Bool
}

extension Bench {
    /// `--only gemv`: the product decoding runs for every weight at every token — one row
    /// `[1, in]` times a weight `[out, in]` (`Linear`, the path a model's projection takes) — with
    /// the weight stored as float32, float16, bfloat16 (widened in registers) and int8 with
    /// `attend quantize`'s two schemes (the row quantized in the call, as the models do), on 1
    /// and --threads threads, for t5-small's FFN shape and head and TinyLlama's FFN shape.
    ///
    /// Two regimes. From memory: each call takes the next of several copies of the weight, in
    /// all at least twice this machine's last-level cache, so every call reads its weight from
    /// DRAM as a decoding step does. In cache (the t5-small FFN shape): the same weight every
    /// call. The formats are interleaved in rounds (float32, float16, bfloat16, int8-channel,
    /// int8-group32, then again); a format's time in a round is the median of its calls. Per
    /// format: the median µs per call over the rounds (and range), its weight bytes (scales
    /// included) per second, float32's time over its time (median and range of the per-round
    /// ratios: the speed-up the precision targets are stated in) and, from memory, the share of
    /// the read bandwidth probed around each round.
    func gemv() {
        var shapes = [
            GEMVShape(name: "t5-small FFN", outputs: 2048, inputs: 512, inCache: true),
            GEMVShape(name: "t5-small head", outputs: 32128, inputs: 512, inCache: false),
            GEMVShape(name: "TinyLlama FFN", outputs: 5632, inputs: 2048, inCache: false),
        ]
        if options.quick { shapes = Array(shapes.prefix(1)) }
        let rounds = options.quick ? 2 : 7
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        let lastLevel = CacheHierarchy.current.l3?.bytes ?? CacheHierarchy.current.l2?.bytes ?? 32 << 20
        let probe = BandwidthProbe()
        if !options.json {
            out(
                "\nGEMV y = x·Wᵀ + b, one row (a decoding step's product), weight stored as float32 / float16 / bfloat16 / int8, \(variantName), int8: \(q8InstructionsName); \(rounds) interleaved rounds"
            )
            out(
                "shape                          regime  threads  format            µs/call (range)        weight GB/s  x float32 (range)   % bandwidth (range)"
            )
        }
        for shape in shapes {
            progress("gemv: \(shape.name) [\(shape.outputs), \(shape.inputs)]: building the weights...")
            let (n, k) = (shape.outputs, shape.inputs)
            let weight = randomTensor([n, k], seed: 171) * (1 / Float(k).squareRoot())
            let bias = randomTensor([n], seed: 172) * 0.1
            let float32 = Linear(weight: weight, bias: bias)
            var formats: [(name: String, layer: Linear)] = [
                ("float32", float32), ("float16", float32.converted(to: .float16)), ("bfloat16", float32.converted(to: .bfloat16)),
            ]
            do {
                for scheme in Int8Scheme.allCases { formats.append((scheme.rawValue, try float32.quantizedToInt8(scheme))) }
            } catch {
                out("gemv: \(shape.name): int8 quantization failed: \(error)")
            }
            let x = randomTensor([1, k], seed: 173)
            // From memory: enough copies of each format's weight to pass 2x the last-level cache.
            var regimes: [(name: String, fromMemory: Bool, copies: [Int])] = [
                ("memory", true, formats.map { max(2, (2 * lastLevel + $0.layer.weightByteCount - 1) / max(1, $0.layer.weightByteCount)) })
            ]
            if shape.inCache { regimes.insert(("cache", false, formats.map { _ in 1 }), at: 0) }
            for regime in regimes {
                let layers = zip(formats, regime.copies).map { f, c in c == 1 ? f.layer : f.layer.repeatingRows(c) }
                for t in threadCounts {
                    let compute = benchCompute(threads: t)
                    var times = [[Double]](repeating: [], count: formats.count)
                    var ratios = [[Double]](repeating: [], count: formats.count)
                    var shares = [BandwidthShares](repeating: BandwidthShares(), count: formats.count)
                    var next = [Int](repeating: 0, count: formats.count)
                    for _ in 0..<rounds {
                        var roundTimes = [Double](repeating: 0, count: formats.count)
                        for (f, layer) in layers.enumerated() {
                            let copies = regime.copies[f]
                            let calls = {
                                measure(warmup: copies == 1 ? 2 : 0, minReps: 10, minSeconds: options.quick ? 0.01 : 0.03, maxReps: 20000) {
                                    let c = next[f]
                                    next[f] = (c + 1) % copies
                                    _ = layer(x, outputs: (c * n)..<((c + 1) * n), compute: compute)
                                }
                            }
                            // In cache, no probe: its 256 MiB read would evict the weight.
                            let (callTimes, gbs) = regime.fromMemory ? probe.around(threads: t, calls) : (calls(), Double.nan)
                            let s = median(callTimes)
                            roundTimes[f] = s
                            times[f].append(s)
                            if regime.fromMemory { shares[f].add(gbs: Double(formats[f].layer.weightByteCount) / s * 1e-9, probe: gbs) }
                        }
                        for f in formats.indices { ratios[f].append(roundTimes[0] / roundTimes[f]) }
                    }
                    for (f, format) in formats.enumerated() {
                        let s = median(times[f]), bytes = Double(format.layer.weightByteCount)
                        let ratio = median(ratios[f])
                        var fields: [(String, Any)] = [
                            ("name", "gemv \(shape.name) \(regime.name) \(format.name)"), ("shape", shape.name), ("n", n), ("k", k), ("regime", regime.name), ("threads", t),
                            ("format", format.name), ("us", s * 1e6), ("us_min", times[f].min()! * 1e6), ("us_max", times[f].max()! * 1e6),
                            ("weight_bytes", format.layer.weightByteCount), ("copies", regime.copies[f]), ("gbs", bytes / s * 1e-9),
                            ("speedup_vs_float32", ratio), ("speedup_min", ratios[f].min()!), ("speedup_max", ratios[f].max()!),
                            ("rounds", rounds), ("ms", s * 1e3),
                        ]
                        if regime.fromMemory { fields += shares[f].fields }
                        let range = String(format: "%.1f (%.1f-%.1f)", s * 1e6, times[f].min()! * 1e6, times[f].max()! * 1e6)
                        let speedup = String(format: "%.2fx (%.2f-%.2f)", ratio, ratios[f].min()!, ratios[f].max()!)
                        emit(
                            fields,
                            row: pad("\(shape.name) [\(n), \(k)]", 30) + " " + pad(regime.name, 7) + String(format: " %7d  ", t) + pad(format.name, 16)
                                + "  " + pad(range, 24) + String(format: " %10.1f", bytes / s * 1e-9) + "  " + pad(speedup, 19) + " "
                                + (regime.fromMemory ? shares[f].text : "-"))
                    }
                }
            }
        }
    }
}
