import Attend
import Foundation

/// The shape of a decoder-only benchmark model.
private struct LMShape {
    let name: String
    let gpt2: Bool
    let d, heads, kvHeads, ff, layers, vocabulary: Int
    var headDim: Int { d / heads }
    /// Floats of the weights one decoding step reads: every layer's projections and the head
    /// (the token's embedding row and the norms are negligible).
    var decodeWeightFloats: Int {
        layers * (d * (heads + 2 * kvHeads) * headDim + heads * headDim * d + (gpt2 ? 2 : 3) * d * ff) + vocabulary * d
    }
}

/// TinyLlama-1.1B's config (hidden 2048, 32 heads of 64, 4 KV heads, intermediate 5632, 22
/// layers, vocabulary 32000, untied head) and GPT-2 small (768, 12 heads, 3072, 12 layers, 50257, tied).
private let tinyLlama = LMShape(name: "tinyllama", gpt2: false, d: 2048, heads: 32, kvHeads: 4, ff: 5632, layers: 22, vocabulary: 32000)
private let gpt2Small = LMShape(name: "gpt2-small", gpt2: true, d: 768, heads: 12, kvHeads: 12, ff: 3072, layers: 12, vocabulary: 50257)

/// A weight with uniform values scaled by 1/sqrt(in) (activations stay O(1)), held in `precision`.
private func randomLinear(_ input: Int, _ output: Int, seed: UInt64, bias: Bool, precision: WeightPrecision = .float32) -> Linear {
    Linear(
        weight: randomTensor([output, input], seed: seed) * (1 / Float(input).squareRoot()),
        bias: bias ? randomTensor([output], seed: seed &+ 7) * 0.1 : nil, precision: precision)
}

/// A model of `s`'s shape with random weights, built as the loader builds a checkpoint, its
/// weight matrices held in `precision`.
private func randomLM(_ s: LMShape, seed: UInt64, precision: WeightPrecision = .float32) -> DecoderOnlyModel {
    func lmLinear(_ i: Int, _ o: Int, _ seed: UInt64, _ bias: Bool) -> Linear {
        randomLinear(i, o, seed: seed, bias: bias, precision: precision)
    }
    let d = s.d, dh = s.headDim
    func norm() -> Norm {
        s.gpt2
            ? .layer(LayerNorm(weight: Tensor(repeating: 1, shape: [d]), bias: Tensor.zeros([d]), eps: 1e-5))
            : .rms(RMSNorm(weight: Tensor(repeating: 1, shape: [d]), eps: 1e-5))
    }
    let layers = (0..<s.layers).map { i -> CausalDecoderLayer in
        let k = seed &+ UInt64(i) * 100
        let ff =
            s.gpt2
            ? FeedForward(up: lmLinear(d, s.ff, k &+ 3, true), down: lmLinear(s.ff, d, k &+ 4, true), activation: .geluTanh)
            : FeedForward(
                up: lmLinear(d, s.ff, k &+ 3, false), down: lmLinear(s.ff, d, k &+ 4, false),
                activation: .silu, gate: lmLinear(d, s.ff, k &+ 5, false))
        return CausalDecoderLayer(
            attentionNorm: norm(), qkv: lmLinear(d, (s.heads + 2 * s.kvHeads) * dh, k &+ 1, s.gpt2),
            out: lmLinear(s.heads * dh, d, k &+ 2, s.gpt2), feedForwardNorm: norm(),
            feedForward: ff, scale: 1 / Float(dh).squareRoot())
    }
    let embedding = Embedding(weight: randomTensor([s.vocabulary, d], seed: seed &+ 1), precision: precision)
    let head = s.gpt2 ? Linear(tiedTo: embedding) : lmLinear(d, s.vocabulary, seed &+ 2, false)
    return DecoderOnlyModel(
        architecture: s.gpt2 ? .gpt2 : .llama, embedding: embedding,
        learnedPositions: s.gpt2 ? Embedding(weight: randomTensor([1024, d], seed: seed &+ 3) * 0.1) : nil,
        rotary: s.gpt2 ? nil : RotaryFrequencies(dim: dh, base: 10000), layers: layers, finalNorm: norm(),
        lmHead: head, heads: s.heads, kvHeads: s.kvHeads, headDim: dh, positionLimit: nil,
        generationDefaults: GenerationConfig(maxNewTokens: 32))
}

/// Read bandwidth of this machine's memory: the sum of a 1 GiB buffer (far beyond any cache),
/// split in contiguous parts over `threads` threads, SIMD loads. GB/s, median of 5 after a warm-up.
/// The buffer is a `Tensor`'s, so it is allocated as Attend allocates its weights (on Linux
/// 2 MiB aligned and advised for transparent huge pages, which read faster than 4 KiB pages):
/// the best this machine reads. `ordinaryPages` reads a plain heap buffer instead (4 KiB pages
/// on Linux unless huge pages are always on), for comparison.
func memoryReadBandwidth(threads: Int, ordinaryPages: Bool = false) -> Double {
    let count = 1 << 28  // floats: 1 GiB
    if ordinaryPages {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        return memoryReadBandwidth(UnsafePointer(buffer), count: count, threads: threads)
    }
    let tensor = Tensor(repeating: 1, shape: [count])
    return tensor.withUnsafeBufferPointer { memoryReadBandwidth($0.baseAddress!, count: count, threads: threads) }
}

/// GB/s summing `count` floats (64-byte aligned, a multiple of 64) at `base`: the median of
/// `passes` passes after `warmup` untimed ones.
private func memoryReadBandwidth(_ base: UnsafePointer<Float>, count: Int, threads: Int, warmup: Int = 1, passes: Int = 5) -> Double {
    precondition(Int(bitPattern: base) % 64 == 0 && count % 64 == 0, "memory bandwidth: unaligned buffer")
    let buffer = UnsafeRawPointer(base).assumingMemoryBound(to: SIMD16<Float>.self)
    let sums = UnsafeMutablePointer<Float>.allocate(capacity: threads)
    defer { sums.deallocate() }
    let times = measure(warmup: warmup, minReps: passes, minSeconds: 0, maxReps: passes) {
        let per = count / 16 / threads
        benchParallelFor(threads, threads: threads) { t in
            var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>(), e = SIMD16<Float>()
            var p = buffer + t * per
            let end = p + per
            while p + 4 <= end {
                a += p[0]; b += p[1]; c += p[2]; e += p[3]
                p += 4
            }
            sums[t] = (a + b + c + e).sum()
        }
    }
    precondition(sums[0] > 0, "memory bandwidth: nothing was read")
    return Double(count * 4) / median(times) * 1e-9
}

/// A ceiling of this machine (read bandwidth, FMA peak) read just before and just after a
/// measured run, so the run's share of it is taken against the ceiling of the same moments.
protocol CeilingProbe {
    /// The ceiling on `threads` threads, in the probe's unit (GB/s, GFLOP/s).
    func read(threads: Int) -> Double
}

extension CeilingProbe {
    /// Runs `body` between two reads of the probe; returns its result and the mean of the two
    /// reads. Cost: the body plus two reads.
    func around<T>(threads: Int, _ body: () -> T) -> (T, Double) {
        let before = read(threads: threads)
        let result = body()
        return (result, (before + read(threads: threads)) / 2)
    }
}

/// A read-bandwidth probe to time beside a measured run. On these shared virtual machines the
/// bandwidth two threads get moves between levels seconds apart (Zen 5, 2 vCPUs: ~50 and
/// ~80 GB/s, with the FMA peak unchanged: where the host places the vCPUs), so a decoding
/// run's share of "the" bandwidth means something only against a probe read in the same
/// moments. Sums a 256 MiB buffer allocated as Attend allocates its weights (huge pages, as
/// the 1 GiB probe), split over the threads: GB/s, the median of 3 passes (~20 ms).
final class BandwidthProbe: CeilingProbe {
    private let buffer = Tensor(repeating: 1, shape: [1 << 26])

    /// GB/s reading the probe's buffer on `threads` threads.
    func read(threads: Int) -> Double {
        buffer.withUnsafeBufferPointer { memoryReadBandwidth($0.baseAddress!, count: $0.count, threads: threads, warmup: 0, passes: 3) }
    }
}

/// An FMA-peak probe to time beside a measured run, as ``BandwidthProbe`` is for bandwidth.
/// On these shared virtual machines the clock moves with the host's load (Intel Xeon, 2
/// vCPUs: the same packed GEMM ran at 100 and at 160 GFLOP/s minutes apart, the FMA peak
/// with it), so a run's share of a peak measured once at the start of the bench is off by as
/// much; against a peak measured in the same moments it means something. Each read: the
/// variant's FMA loop on `threads` threads, best of 3 trials of ~10 ms.
struct PeakProbe: CeilingProbe {
    let variant: KernelVariant

    /// GFLOP/s of the FMA loop on `threads` threads.
    func read(threads: Int) -> Double {
        do { return try variant.measureFMAPeak(threads: threads, seconds: 0.01, trials: 3) } catch { fatalError("bench: \(error)") }
    }
}

extension Bench {
    /// Runs `body` (a section's whole timed measurement) between two reads of the FMA peak on
    /// `threads` threads (``PeakProbe``: the variant's FMA loop, best of 3 x 10 ms each) and
    /// returns its result and the mean of the two reads in GFLOP/s; NaN for the portable Swift
    /// path, which has no FMA loop. Cost: the body plus ~60 ms.
    func aroundPeak<T>(threads: Int, _ body: () -> T) -> (T, Double) {
        guard case .native(let v) = variant else { return (body(), .nan) }
        return PeakProbe(variant: v).around(threads: threads, body)
    }
}

/// `gflops` as a percentage of `probed` for a "% probed" column ("n/a" without a probe),
/// right-aligned in 9 characters.
func probedPercent(_ gflops: Double, _ probed: Double) -> String {
    probed.isFinite && probed > 0 ? String(format: "%8.1f%%", gflops / probed * 100) : "      n/a"
}

/// A run's rate as shares of a ceiling probed around each of its rounds (memory bandwidth by
/// ``BandwidthProbe``, FMA peak by ``PeakProbe``, each through ``CeilingProbe/around(threads:_:)``):
/// median and range over the rounds.
struct ProbedShares {
    /// The JSON fields' prefix: "bandwidth" gives bandwidth_gbs, bandwidth_share, ...
    var key = "bandwidth"
    /// The probe's unit in the JSON field names ("gbs", "gflops").
    var unit = "gbs"
    private(set) var shares: [Double] = [], probes: [Double] = []

    /// One round: `rate` reached by the run, `probe` the ceiling read around it (same unit).
    mutating func add(_ rate: Double, probe: Double) {
        shares.append(rate / probe)
        probes.append(probe)
    }

    /// One round of bytes per second: `gbs` read by the run, `probe` the bandwidth read around it.
    mutating func add(gbs: Double, probe: Double) { add(gbs, probe: probe) }

    /// " 85% (80-88)": the median share and its range, in percent, padded to `width` (the
    /// width of the column header "% bandwidth (range)" by default).
    func text(width: Int = 19) -> String {
        let t = shares.isEmpty ? "n/a" : String(format: "%3.0f%% (%.0f-%.0f)", median(shares) * 100, shares.min()! * 100, shares.max()! * 100)
        return t.padding(toLength: max(t.count, width), withPad: " ", startingAt: 0)
    }

    /// " 85% (80-88)" padded to the width of "% bandwidth (range)".
    var text: String { text() }

    /// The JSON fields: median probe, median share, its range.
    var fields: [(String, Any)] {
        [
            ("\(key)_\(unit)", probes.isEmpty ? Double.nan : median(probes)), ("\(key)_share", shares.isEmpty ? Double.nan : median(shares)),
            ("\(key)_share_min", shares.min() ?? .nan), ("\(key)_share_max", shares.max() ?? .nan),
        ]
    }
}

/// Shares of the memory read bandwidth probed around each round.
typealias BandwidthShares = ProbedShares

extension Bench {
    /// Decoder-only models with random weights (GPT-2 small's shape, and TinyLlama's with
    /// `--only lm`; `--lm-model` picks one): a
    /// 512-token prompt in one batched prefill pass (tokens/s and GFLOP/s as a share of the
    /// FMA peak probed around each prefill run: median and range over the runs), then greedy decoding one token per step against the
    /// cache (tokens/s, and the weights read per step per second as a share of the memory read
    /// bandwidth probed around each decoding run: median and range over the runs), on 1 thread
    /// and on `--threads`; then two rows decoding
    /// together from 64-token prompts (a batch or two beams: one pass over the weights per step).
    /// `Benchmarks/scripts/hf_lm_generate.py` runs the same job with transformers.
    func lm() {
        let promptLength = options.quick ? 128 : 512, newTokens = options.quick ? 8 : 32
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        progress("lm: measuring the memory read bandwidth...")
        let bandwidth = Dictionary(uniqueKeysWithValues: threadCounts.map { ($0, memoryReadBandwidth(threads: $0)) })
        let probe = BandwidthProbe()
        for t in threadCounts {
            let small = memoryReadBandwidth(threads: t, ordinaryPages: true)
            emit(
                [("name", "memory read bandwidth"), ("threads", t), ("gbs", bandwidth[t]!), ("ordinary_pages_gbs", small), ("ms", 0.0)],
                row: String(
                    format: "memory read bandwidth (1 GiB, %d thread(s)): %.1f GB/s as Attend allocates (%.1f GB/s in an ordinary heap buffer)",
                    t, bandwidth[t]!, small))
        }
        // TinyLlama's shape needs 4.4 GB of weights (8.8 with the packed copies prefill makes):
        // only when asked for by name, not in a whole-bench run.
        var shapes = options.quick || !options.only.contains("lm") ? [gpt2Small] : [gpt2Small, tinyLlama]
        if let name = options.lmModel { shapes = [gpt2Small, tinyLlama].filter { $0.name == name } }
        for shape in shapes {
            progress("lm: building a \(shape.name)-shaped model with random weights...")
            let model = randomLM(shape, seed: 131)
            var rng = SplitMix64(state: 132)
            let prompt = (0..<promptLength).map { _ in Int.random(in: 3..<shape.vocabulary, using: &rng) }
            if !options.json {
                out(
                    "\n\(shape.name)-shaped decoder (d \(shape.d), \(shape.heads) heads / \(shape.kvHeads) KV, d_ff \(shape.ff), \(shape.layers) layers, vocabulary \(shape.vocabulary), random weights, float32): \(promptLength)-token prefill, then \(newTokens) greedy tokens, \(variantName)"
                )
                out(
                    "name                       threads  prefill ms  prefill tok/s  % FMA peak (range)  decode ms/tok  decode tok/s  weights GB/s  % bandwidth (range)"
                )
            }
            let weightBytes = Double(shape.decodeWeightFloats) * 4
            // Prefill flops: every projection for every token, causal attention (half the
            // square), the head for the last token only.
            let perToken = Double(shape.decodeWeightFloats - shape.vocabulary * shape.d) * 2
            let attention = Double(shape.layers) * 4 * Double(shape.heads * shape.headDim) * Double(promptLength * promptLength) / 2
            let prefillFlops = perToken * Double(promptLength) + attention + 2 * Double(shape.vocabulary * shape.d)
            for t in threadCounts {
                let compute = benchCompute(threads: t)
                var prefill: [Double] = [], decode: [Double] = [], shares = BandwidthShares(), batchedShares = BandwidthShares()
                var peakShares = ProbedShares(key: "prefill_peak", unit: "gflops")
                let reps = options.quick ? 1 : (shape.gpt2 ? 3 : 2)
                for rep in 0...reps {  // rep 0 warms up (and packs the weights)
                    progress("lm: \(shape.name), \(t) thread(s), run \(rep)/\(reps)...")
                    var cache = model.makeCache(rows: 1, capacity: promptLength + newTokens + 1)
                    let prefillRun = { () -> (Tensor, Double) in
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let l = model.nextTokenLogits(appending: [prompt], to: &cache, compute: compute)
                        return (l, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                    }
                    var logits: Tensor, prefillSeconds: Double, probedPeak = Double.nan
                    // The FMA peak read around each timed prefill (the clock moves on shared
                    // hosts); NaN on the portable Swift path, whose rows use the start-of-run peak.
                    if rep > 0 {
                        ((logits, prefillSeconds), probedPeak) = aroundPeak(threads: t, prefillRun)
                    } else {
                        (logits, prefillSeconds) = prefillRun()
                    }
                    let (seconds, probed) = probe.around(threads: t) { () -> Double in
                        let d0 = DispatchTime.now().uptimeNanoseconds
                        for _ in 0..<newTokens {
                            let scores = logits.scalars  // one copy (`scalars` copies on every access)
                            let next = scores.indices.max { scores[$0] < scores[$1] }!
                            logits = model.nextTokenLogits(appending: [[next]], to: &cache, compute: compute)
                        }
                        return Double(DispatchTime.now().uptimeNanoseconds - d0) * 1e-9
                    }
                    if rep == 0 { continue }
                    prefill.append(prefillSeconds)
                    if probedPeak.isFinite { peakShares.add(prefillFlops / prefillSeconds * 1e-9, probe: probedPeak) }
                    decode.append(seconds / Double(newTokens))
                    shares.add(gbs: weightBytes / (seconds / Double(newTokens)) * 1e-9, probe: probed)
                }
                // Two rows decoding together (a batch, or two beams): one pass over the
                // weights per step serves both, so tokens/s should be about 2x one row's.
                var batched: [Double] = []
                let rows = 2, shortPrompt = min(64, promptLength)
                for rep in 0...reps {
                    progress("lm: \(shape.name), \(rows) rows, \(t) thread(s), run \(rep)/\(reps)...")
                    var cache = model.makeCache(rows: rows, capacity: shortPrompt + newTokens + 1)
                    let prompts = (0..<rows).map { r in Array(prompt[(r * 7)..<(r * 7 + shortPrompt)]) }
                    var logits = model.nextTokenLogits(appending: prompts, to: &cache, compute: compute)
                    let (seconds, probed) = probe.around(threads: t) { () -> Double in
                        let t1 = DispatchTime.now().uptimeNanoseconds
                        for _ in 0..<newTokens {
                            let scores = logits.scalars, v = shape.vocabulary
                            let next = (0..<rows).map { r in (0..<v).max { scores[r * v + $0] < scores[r * v + $1] }! }
                            logits = model.nextTokenLogits(appending: next.map { [$0] }, to: &cache, compute: compute)
                        }
                        return Double(DispatchTime.now().uptimeNanoseconds - t1) * 1e-9
                    }
                    if rep > 0 {
                        batched.append(seconds / Double(newTokens))
                        batchedShares.add(gbs: weightBytes / (seconds / Double(newTokens)) * 1e-9, probe: probed)
                    }
                }
                let p = median(prefill), dtok = median(decode)
                let peak = t == 1 ? peak1 : peakN
                let gflops = prefillFlops / p * 1e-9
                let gbs = weightBytes / dtok * 1e-9
                let name = "lm \(shape.name)"
                emit(
                    [
                        ("name", name), ("variant", variantName), ("threads", t), ("prompt", promptLength), ("tokens", newTokens),
                        ("prefill_ms", p * 1e3), ("prefill_tokens_per_s", Double(promptLength) / p), ("prefill_gflops", gflops),
                        ("peak_gflops", peak), ("decode_ms_per_token", dtok * 1e3), ("decode_tokens_per_s", 1 / dtok),
                        ("decode_weight_gbs", gbs), ("bandwidth_1gib_gbs", bandwidth[t]!), ("ms", p * 1e3), ("reps", prefill.count),
                    ] + shares.fields + peakShares.fields,
                    row: pad(name, 26)
                        + String(format: " %7d %11.1f %14.1f  ", t, p * 1e3, Double(promptLength) / p)
                        + (peakShares.shares.isEmpty
                            ? String(format: "%3.0f%%", peak > 0 ? gflops / peak * 100 : 0).padding(toLength: 18, withPad: " ", startingAt: 0)
                            : peakShares.text(width: 18))
                        + String(format: " %14.2f %13.2f %13.1f  %@", dtok * 1e3, 1 / dtok, gbs, shares.text))
                let bstep = median(batched), bgbs = weightBytes / bstep * 1e-9
                emit(
                    [
                        ("name", "\(name) \(rows) rows"), ("variant", variantName), ("threads", t), ("rows", rows), ("tokens", newTokens),
                        ("decode_ms_per_step", bstep * 1e3), ("decode_tokens_per_s", Double(rows) / bstep), ("decode_weight_gbs", bgbs),
                        ("bandwidth_1gib_gbs", bandwidth[t]!), ("ms", bstep * 1e3), ("reps", batched.count),
                    ] + batchedShares.fields,
                    row: pad("\(name) \(rows) rows", 26) + String(format: " %7d", t) + String(repeating: " ", count: 47)
                        + String(format: " %14.2f %13.2f %13.1f  %@", bstep * 1e3, Double(rows) / bstep, bgbs, batchedShares.text))
            }
            bf16Decode(shape, f32: model, prompt: prompt, newTokens: newTokens, threadCounts: threadCounts, probe: probe)
            emit(
                [("name", "lm \(shape.name) peak rss"), ("rss_mib", peakResidentMiB()), ("ms", 0.0)],
                row: String(
                    format:
                        "peak resident memory so far: %.0f MiB (weights %.0f MiB read per decoding step); transformers: python3 Benchmarks/scripts/hf_lm_generate.py --model %@",
                    peakResidentMiB(), weightBytes / 1048576, shape.name))
        }
    }

    /// The BF16-weights row: the same shape with its weight matrices held in bfloat16 (the
    /// Llama shapes from a BF16 checkpoint written to a temporary folder and mapped, as a real
    /// one would be; GPT-2's rounded in memory), decoding greedily from a 64-token prompt,
    /// rounds interleaved with the float32 model (float32, BF16, float32, ...), medians:
    /// tokens/s of each and their ratio, the weight bytes one step reads and as a share of the
    /// memory bandwidth probed around each BF16 run (median and range); then the resident memory the BF16 model added (loading and decoding)
    /// against its weights' bytes (the checkpoint file's size).
    fileprivate func bf16Decode(
        _ shape: LMShape, f32: DecoderOnlyModel, prompt: [Int], newTokens: Int, threadCounts: [Int], probe: BandwidthProbe
    ) {
        let before = currentResidentMiB()
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("attend-bench-bf16-\(shape.name)-\(getpid())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let bf16: DecoderOnlyModel
        var weightBytes = Double(shape.decodeWeightFloats) * 2, source = "rounded in memory"
        if shape.gpt2 {
            progress("lm: \(shape.name) with BF16 weights (rounded in memory)...")
            bf16 = randomLM(shape, seed: 131, precision: .bfloat16)
            let all = shape.layers * (shape.d * 3 * shape.d + shape.d * shape.d + 2 * shape.d * shape.ff) + (shape.vocabulary + 1024) * shape.d
            weightBytes = Double(all) * 2
        } else {
            progress("lm: writing a BF16 \(shape.name)-shaped checkpoint to \(folder.path)...")
            do {
                weightBytes = Double(
                    try writeRandomBF16Llama(
                        directory: folder, d: shape.d, heads: shape.heads, kvHeads: shape.kvHeads, ff: shape.ff, layers: shape.layers,
                        vocabulary: shape.vocabulary, seed: 171))
                bf16 = try DecoderOnlyModel(directory: folder)
            } catch {
                out("lm: could not write or load the BF16 checkpoint: \(error)")
                return
            }
            source = "BF16 checkpoint, mapped"
        }
        let short = Array(prompt.prefix(64))
        func perToken(_ model: DecoderOnlyModel, _ compute: Compute) -> Double {
            var cache = model.makeCache(rows: 1, capacity: short.count + newTokens + 1)
            var logits = model.nextTokenLogits(appending: [short], to: &cache, compute: compute)
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<newTokens {
                let scores = logits.scalars
                let next = scores.indices.max { scores[$0] < scores[$1] }!
                logits = model.nextTokenLogits(appending: [[next]], to: &cache, compute: compute)
            }
            return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9 / Double(newTokens)
        }
        if !options.json {
            out("\nlm \(shape.name): float32 vs BF16 weights (\(source)), greedy decoding from a 64-token prompt, rounds interleaved, medians")
            out("name                          threads  f32 tok/s  bf16 tok/s  bf16/f32  bf16 MB/token  bf16 GB/s  % bandwidth (range)")
        }
        let rounds = options.quick ? 2 : (shape.gpt2 ? 5 : 3)
        for t in threadCounts {
            let compute = benchCompute(threads: t)
            var a: [Double] = [], b: [Double] = [], shares = BandwidthShares()
            let bytes = Double(shape.decodeWeightFloats) * 2
            for round in 0...rounds {
                progress("lm: \(shape.name) float32 / BF16, \(t) thread(s), round \(round)/\(rounds)...")
                let x = perToken(f32, compute), (y, probed) = probe.around(threads: t) { perToken(bf16, compute) }
                if round > 0 {
                    a.append(x)
                    b.append(y)
                    shares.add(gbs: bytes / y * 1e-9, probe: probed)
                }
            }
            let f = median(a), h = median(b)
            let gbs = bytes / h * 1e-9
            let name = "lm \(shape.name) bf16 decode"
            emit(
                [
                    ("name", name), ("variant", variantName), ("threads", t), ("f32_tokens_per_s", 1 / f), ("bf16_tokens_per_s", 1 / h),
                    ("ratio", f / h), ("bf16_weight_bytes_per_token", bytes), ("bf16_weight_gbs", gbs),
                    ("ms", h * 1e3), ("reps", a.count),
                ] + shares.fields,
                row: pad(name, 29)
                    + String(format: " %7d %10.2f %11.2f %8.2fx %14.1f %10.1f  %@", t, 1 / f, 1 / h, f / h, bytes / 1e6, gbs, shares.text))
        }
        let grown = currentResidentMiB() - before, weightsMiB = weightBytes / 1_048_576
        emit(
            [
                ("name", "lm \(shape.name) bf16 rss"), ("rss_growth_mib", grown), ("weights_mib", weightsMiB), ("ratio", grown / weightsMiB),
                ("ms", 0.0),
            ],
            row: String(
                format: "BF16 model resident (growth of this process while loading and decoding with it): %.0f MiB = %.3f x its weights (%@, %.0f MiB)",
                grown, grown / weightsMiB, shape.gpt2 ? "in memory" : "checkpoint file", weightsMiB))
        withExtendedLifetime(bf16) {}
    }
}
