import Attend
import Foundation

/// t5-small's shape (T5Config defaults): d_model 512, 8 heads of 64, d_ff 2048, 6 + 6 layers,
/// relu, 32 relative buckets, vocabulary 32128, tied head with the d^-0.5 output scale.
private let t5Dim = 512, t5Heads = 8, t5FF = 2048, t5Layers = 6, t5Vocabulary = 32128, t5Buckets = 32

/// `layer` quantized to int8. The bench's weights are random finite values of a width the
/// kernels take, so a refusal is a bug of the bench itself.
private func int8Layer(_ layer: Linear, _ scheme: Int8Scheme) -> Linear {
    do { return try layer.quantizedToInt8(scheme) } catch { fatalError("bench: int8 quantization refused a generated weight: \(error)") }
}

/// A weight with uniform values scaled by 1/sqrt(in) (activations stay O(1)), held in `precision`;
/// with `int8`, quantized as `attend quantize` would.
private func t5Linear(_ input: Int, _ output: Int, seed: UInt64, precision: WeightPrecision, int8: Int8Scheme? = nil) -> Linear {
    if let int8 {
        return int8Layer(Linear(weight: randomTensor([output, input], seed: seed) * (1 / Float(input).squareRoot()), bias: nil), int8)
    }
    return Linear(weight: randomTensor([output, input], seed: seed) * (1 / Float(input).squareRoot()), bias: nil, precision: precision)
}

private func t5Norm() -> Norm { .rms(RMSNorm(weight: Tensor(repeating: 1, shape: [t5Dim]), eps: 1e-6)) }

/// With `int8` and `valueFloat16`, the value projection stays float16 (as `attend quantize`'s
/// default `--keep-float auto` leaves it).
private func t5Attention(seed: UInt64, _ p: WeightPrecision, int8: Int8Scheme?, valueFloat16: Bool = false) -> MultiHeadAttention {
    MultiHeadAttention(
        heads: t5Heads, query: t5Linear(t5Dim, t5Dim, seed: seed, precision: p, int8: int8),
        key: t5Linear(t5Dim, t5Dim, seed: seed &+ 1, precision: p, int8: int8),
        value: t5Linear(t5Dim, t5Dim, seed: seed &+ 2, precision: valueFloat16 && int8 != nil ? .float16 : p, int8: valueFloat16 ? nil : int8),
        out: t5Linear(t5Dim, t5Dim, seed: seed &+ 3, precision: p, int8: int8), scale: 1)
}

private func t5FeedForward(seed: UInt64, _ p: WeightPrecision, int8: Int8Scheme?) -> FeedForward {
    FeedForward(
        up: t5Linear(t5Dim, t5FF, seed: seed, precision: p, int8: int8), down: t5Linear(t5FF, t5Dim, seed: seed &+ 1, precision: p, int8: int8),
        activation: .relu)
}

/// Bytes of the weight matrices of the t5-small shape at 4 (float32) or 2 bytes each: the
/// shared table, 6 encoder layers (4 d^2 + 2 d dFF), 6 decoder layers (8 d^2 + 2 d dFF).
private func t5WeightFloats() -> Int {
    let perLayer = 4 * t5Dim * t5Dim + 2 * t5Dim * t5FF
    return t5Vocabulary * t5Dim + t5Layers * perLayer + t5Layers * (perLayer + 4 * t5Dim * t5Dim)
}

/// Weight floats one decoding step reads: per decoder layer the fused self-attention QKV and
/// its output (4 d^2), the cross-attention query and output (2 d^2; the memory's keys and
/// values are computed once) and the feed-forward (2 d dFF), then the tied head (vocab x d).
private let t5DecodeWeightFloats = t5Layers * (6 * t5Dim * t5Dim + 2 * t5Dim * t5FF) + t5Vocabulary * t5Dim

/// A t5-small-shaped T5 with random weights, built as the T5 loader builds a checkpoint, its
/// weight matrices held in `precision`; with `int8`, every block projection and the head
/// quantized as `attend quantize` writes them.
func randomT5Small(seed: UInt64, precision: WeightPrecision = .float32, int8: Int8Scheme? = nil, valueFloat16: Bool = false) -> Seq2SeqModel {
    let p = precision
    let encoderLayers = (0..<t5Layers).map { i -> EncoderLayer in
        let s = seed &+ UInt64(i) * 100
        return EncoderLayer(
            selfAttention: t5Attention(seed: s, p, int8: int8, valueFloat16: valueFloat16), attentionNorm: t5Norm(), feedForward: t5FeedForward(seed: s &+ 10, p, int8: int8),
            feedForwardNorm: t5Norm(), placement: .pre)
    }
    let decoderLayers = (0..<t5Layers).map { i -> DecoderLayer in
        let s = seed &+ 5000 &+ UInt64(i) * 100
        return DecoderLayer(
            selfAttention: t5Attention(seed: s, p, int8: int8, valueFloat16: valueFloat16), selfAttentionNorm: t5Norm(),
            crossAttention: t5Attention(seed: s &+ 20, p, int8: int8, valueFloat16: valueFloat16), crossAttentionNorm: t5Norm(),
            feedForward: t5FeedForward(seed: s &+ 10, p, int8: int8), feedForwardNorm: t5Norm(), placement: .pre)
    }
    let shared = Embedding(weight: randomTensor([t5Vocabulary, t5Dim], seed: seed &+ 1), precision: p)
    let bias = { (s: UInt64, bidirectional: Bool) in
        AttentionBias.t5(table: randomTensor([t5Buckets, t5Heads], seed: s), bidirectional: bidirectional, maxDistance: 128)
    }
    var generation = GenerationConfig(maxNewTokens: 64, eosTokenID: 1)
    generation.padTokenID = 0
    return Seq2SeqModel(
        architecture: .t5, encoderEmbedding: shared, decoderEmbedding: shared, embeddingScale: 1,
        encoderPositions: .none, decoderPositions: .none,
        encoder: TransformerEncoder(layers: encoderLayers, finalNorm: t5Norm(), selfAttentionBias: bias(seed &+ 2, true)),
        decoder: TransformerDecoder(layers: decoderLayers, finalNorm: t5Norm(), selfAttentionBias: bias(seed &+ 3, false)),
        outputScale: Float(pow(Double(t5Dim), -0.5)), lmHead: int8.map { int8Layer(Linear(weight: shared.weight, bias: nil), $0) } ?? Linear(tiedTo: shared),
        decoderStartTokenID: 0, padTokenID: 0, maxPositions: nil, generationDefaults: generation)
}

extension Bench {
    /// Greedy generation of 64 tokens from one 512-token source with a t5-small-shaped model
    /// (random weights, KV cache, cross-attention keys/values computed once), on 1 thread and
    /// on `--threads`: the whole `generate` call (encoder included) as tokens/s, and its parts
    /// (encoder, memory keys/values, mean time per decoded token). End-of-sequence is
    /// suppressed (`min_new_tokens` 64) so every run decodes exactly 64 tokens.
    /// `Benchmarks/scripts/hf_t5_generate.py` runs the same job with transformers.
    func seq2seq() {
        let sourceLength = 512, newTokens = 64
        progress("seq2seq: building a t5-small-shaped model with random weights...")
        let model = randomT5Small(seed: 91)
        var rng = SplitMix64(state: 92)
        let source = (0..<sourceLength).map { _ in Int.random(in: 2..<t5Vocabulary, using: &rng) }
        var config = GenerationConfig(maxNewTokens: newTokens, eosTokenID: 1)
        config.minNewTokens = newTokens
        config.padTokenID = 0
        if !options.json {
            out(
                "\nt5-small-shaped T5 (d 512, 8 heads, d_ff 2048, 6 + 6 layers, vocabulary 32128, random weights): greedy, \(newTokens) new tokens from a \(sourceLength)-token source, \(variantName)"
            )
            out("name                                 threads  generate ms   tokens/s  encoder ms  memory k/v ms  ms/token")
        }
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        let reps = options.quick ? 2 : 5
        for t in threadCounts {
            let compute = benchCompute(threads: t)
            var total: [Double] = [], encode: [Double] = [], memoryKV: [Double] = [], perToken: [Double] = []
            for rep in 0...reps {  // rep 0 warms up
                progress("seq2seq: \(t) thread(s), run \(rep)/\(reps)...")
                let t0 = DispatchTime.now().uptimeNanoseconds
                guard let encoded = try? model.encode([source], compute: compute) else {
                    preconditionFailure("seq2seq bench: the source does not fit the model")
                }
                let t1 = DispatchTime.now().uptimeNanoseconds
                guard var cache = try? model.makeCache(for: encoded, capacity: newTokens + 1, compute: compute) else {
                    preconditionFailure("seq2seq bench: the model's decoder does not read its own encoding")
                }
                let t2 = DispatchTime.now().uptimeNanoseconds
                let out = try? model.greedySearch(prompt: [[model.decoderStartTokenID]], cache: &cache, config: config, compute: compute)
                let t3 = DispatchTime.now().uptimeNanoseconds
                precondition(
                    out?.first?.count == newTokens + 1, "seq2seq bench: generated \(out?.first?.count ?? 0) tokens, expected \(newTokens + 1)")
                if rep == 0 { continue }
                total.append(Double(t3 - t0) * 1e-9)
                encode.append(Double(t1 - t0) * 1e-9)
                memoryKV.append(Double(t2 - t1) * 1e-9)
                perToken.append(Double(t3 - t2) * 1e-9 / Double(newTokens))
            }
            let name = "seq2seq t5-small greedy 64 from 512"
            let sec = median(total)
            emit(
                [
                    ("name", name), ("variant", variantName), ("threads", t), ("source", sourceLength), ("tokens", newTokens),
                    ("ms", sec * 1e3), ("tokens_per_s", Double(newTokens) / sec), ("encoder_ms", median(encode) * 1e3),
                    ("memory_kv_ms", median(memoryKV) * 1e3), ("ms_per_token", median(perToken) * 1e3), ("reps", total.count),
                ],
                row: pad(name, 36)
                    + String(
                        format: " %7d %12.1f %10.1f %11.1f %14.1f %9.2f", t, sec * 1e3, Double(newTokens) / sec,
                        median(encode) * 1e3, median(memoryKV) * 1e3, median(perToken) * 1e3))
        }
        seq2seqBF16(f32: model, source: source, config: config, threadCounts: threadCounts)
        let weightMiB = Double(t5WeightFloats()) * 4 / 1048576
        emit(
            [("name", "seq2seq peak rss"), ("threads", options.threads), ("rss_mib", peakResidentMiB()), ("ms", 0.0)],
            row: String(
                format: "peak resident memory so far: %.0f MiB (weights %.0f MiB); transformers: python3 Benchmarks/scripts/hf_t5_generate.py",
                peakResidentMiB(), weightMiB))
    }

    /// The BF16-weights row: the same model with its weight matrices rounded to bfloat16 and
    /// held so (half the bytes), greedy decoding of 64 tokens from the 512-token source
    /// (memory keys/values untimed; the 512-token encoder timed apart: its products widen and
    /// pack the 16-bit weights per call, where float32 ones are packed once), rounds interleaved with the float32 model
    /// (float32, BF16, BF16 with its memory's keys and values in bfloat16, float32, ...),
    /// medians: ms per token of each and the ratio, the weight bytes one step reads and as a
    /// share of the memory read bandwidth probed around each BF16 run (median and range over
    /// the rounds); the second row is the same model with `memoryPrecision = .bfloat16`
    /// (the 512-token memory's keys and values, 12.6 MB of float32 a token, read at half the
    /// bytes; not the default: it rounds them); then
    /// the resident memory the BF16 model added against its weights' bytes, once built, 1.2 s later
    /// (past the buffer recycler's idle release) and again after decoding.
    func seq2seqBF16(f32 model: Seq2SeqModel, source: [Int], config: GenerationConfig, threadCounts: [Int]) {
        let newTokens = config.maxNewTokens
        let probe = BandwidthProbe()  // before the resident-memory baseline: its buffer is not the model's
        let before = currentResidentMiB()
        progress("seq2seq: the same model with BF16 weights...")
        let bf16 = randomT5Small(seed: 91, precision: .bfloat16)
        var bf16Memory = bf16  // the same weights (shared storage)
        bf16Memory.memoryPrecision = .bfloat16
        let loaded = currentResidentMiB() - before
        // The random build's float32 temporaries are kept for reuse up to the recycler's idle
        // limit (1 s) and then freed: the resident memory again past it.
        Thread.sleep(forTimeInterval: 1.2)
        let settled = currentResidentMiB() - before
        func perToken(_ m: Seq2SeqModel, _ compute: Compute) -> (encode: Double, token: Double) {
            let e0 = DispatchTime.now().uptimeNanoseconds
            guard let encoded = try? m.encode([source], compute: compute) else { preconditionFailure("seq2seq bench: bad source") }
            let e1 = DispatchTime.now().uptimeNanoseconds
            guard var cache = try? m.makeCache(for: encoded, capacity: newTokens + 1, compute: compute) else {
                preconditionFailure("seq2seq bench: the model's decoder does not read its own encoding")
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let out = try? m.greedySearch(prompt: [[m.decoderStartTokenID]], cache: &cache, config: config, compute: compute)
            let t1 = DispatchTime.now().uptimeNanoseconds
            precondition(out?.first?.count == newTokens + 1, "seq2seq bench: generated \(out?.first?.count ?? 0) tokens")
            return (Double(e1 - e0) * 1e-9, Double(t1 - t0) * 1e-9 / Double(newTokens))
        }
        if !options.json {
            out(
                "\nt5-small-shaped T5, float32 vs BF16 weights (kv-bf16: also the memory's keys and values, memoryPrecision .bfloat16): greedy decoding, \(newTokens) tokens, rounds interleaved, medians, \(variantName); MB/token and GB/s count the weights"
            )
            out(
                "name                                 threads  f32 ms/tok  bf16 ms/tok  bf16/f32 speed  bf16 MB/token  bf16 GB/s  % bandwidth (range)  encoder ms f32 / bf16"
            )
        }
        let rounds = options.quick ? 2 : 7
        for t in threadCounts {
            let compute = benchCompute(threads: t)
            var a: [Double] = [], b: [Double] = [], c: [Double] = [], ea: [Double] = [], eb: [Double] = [], shares = BandwidthShares()
            var sharesMemory = BandwidthShares()
            let bytes = Double(t5DecodeWeightFloats) * 2
            for round in 0...rounds {
                progress("seq2seq: float32 / BF16, \(t) thread(s), round \(round)/\(rounds)...")
                // (The probe reads around the whole BF16 run, its encoder pass included.)
                let x = perToken(model, compute), (y, probed) = probe.around(threads: t) { perToken(bf16, compute) }
                let (z, probedMemory) = probe.around(threads: t) { perToken(bf16Memory, compute) }
                if round > 0 {
                    a.append(x.token)
                    b.append(y.token)
                    c.append(z.token)
                    ea.append(x.encode)
                    eb.append(y.encode)
                    shares.add(gbs: bytes / y.token * 1e-9, probe: probed)
                    sharesMemory.add(gbs: bytes / z.token * 1e-9, probe: probedMemory)
                }
            }
            let f = median(a)
            for (name, times, rowShares) in [("seq2seq t5-small bf16 decode", b, shares), ("seq2seq t5-small bf16 kv-bf16 decode", c, sharesMemory)] {
                let h = median(times), gbs = bytes / h * 1e-9
                emit(
                    [
                        ("name", name), ("variant", variantName), ("threads", t), ("f32_ms_per_token", f * 1e3), ("bf16_ms_per_token", h * 1e3),
                        ("ratio", f / h), ("bf16_weight_bytes_per_token", bytes), ("bf16_weight_gbs", gbs),
                        ("f32_encoder_ms", median(ea) * 1e3), ("bf16_encoder_ms", median(eb) * 1e3), ("ms", h * 1e3), ("reps", a.count),
                    ] + rowShares.fields,
                    row: pad(name, 36)
                        + String(
                            format: " %7d %11.3f %12.3f %14.2fx %14.1f %10.1f  %@  %9.1f / %.1f", t, f * 1e3, h * 1e3, f / h, bytes / 1e6, gbs,
                            rowShares.text, median(ea) * 1e3, median(eb) * 1e3))
            }
        }
        let grown = currentResidentMiB() - before, weightsMiB = Double(t5WeightFloats()) * 2 / 1_048_576
        emit(
            [
                ("name", "seq2seq bf16 rss"), ("load_growth_mib", loaded), ("load_ratio", loaded / weightsMiB),
                ("settled_growth_mib", settled), ("settled_ratio", settled / weightsMiB), ("rss_growth_mib", grown),
                ("weights_mib", weightsMiB), ("ratio", grown / weightsMiB), ("ms", 0.0),
            ],
            row: String(
                format:
                    "BF16 model resident: built %.0f MiB = %.3f x its weights (%.0f MiB), 1.2 s later %.0f MiB = %.3f x (the build's float32 temporaries released); after decoding with it (caches, encoder activations, buffers) %.0f MiB = %.3f x",
                loaded, loaded / weightsMiB, weightsMiB, settled, settled / weightsMiB, grown, grown / weightsMiB))
        // What the decoding cache holds for the 512-token memory, per memory precision.
        let one = benchCompute(threads: 1)
        var beamConfig = config
        (beamConfig.maxNewTokens, beamConfig.minNewTokens, beamConfig.numBeams) = (2, 2, 4)
        // MiB held for the memory once made, and after a 4-beam search over the same cache.
        func memoryMiB(_ m: Seq2SeqModel) -> (made: Double, beams: Double) {
            guard let encoded = try? m.encode([source], compute: one), var cache = try? m.makeCache(for: encoded, capacity: 4, compute: one)
            else { preconditionFailure("seq2seq bench: bad source") }
            let made = cache.memoryBytes
            guard (try? m.beamSearch(prompt: [[m.decoderStartTokenID]], cache: &cache, config: beamConfig, compute: one)) != nil else {
                preconditionFailure("seq2seq bench: beam search failed")
            }
            return (Double(made) / 1_048_576, Double(cache.memoryBytes) / 1_048_576)
        }
        let (f32Memory, halfMemory) = (memoryMiB(bf16), memoryMiB(bf16Memory))
        emit(
            [
                ("name", "seq2seq memory kv"), ("source", source.count), ("float32_mib", f32Memory.made), ("float32_beams_mib", f32Memory.beams),
                ("bfloat16_mib", halfMemory.made), ("bfloat16_beams_mib", halfMemory.beams), ("ms", 0.0),
            ],
            row: String(
                format:
                    "the %d-token memory's keys and values held by the decoding cache: float32 %.1f MiB (%.1f MiB once 4 beams packed them for the fused kernel), bfloat16 %.1f MiB (%.1f with 4 beams)",
                source.count, f32Memory.made, f32Memory.beams, halfMemory.made, halfMemory.beams))
        seq2seqBeams(f32: model, bf16: bf16, source: source, threadCounts: threadCounts)
        gemvShapedProducts(threadCounts: threadCounts)
    }

    /// Beam search (4 beams: every decoder product has 4 rows) of 16 tokens from the 512-token
    /// source, float32 and BF16 weights in interleaved rounds, medians of ms per step (the
    /// encoder and memory keys/values untimed). The products' path (multi-row GEMV or GEMM)
    /// follows `ATTEND_GEMV_MAX_ROWS` when set, so runs with it at 2 and 8 compare the paths.
    func seq2seqBeams(f32 model: Seq2SeqModel, bf16: Seq2SeqModel, source: [Int], threadCounts: [Int]) {
        let steps = 16, beams = 4
        var config = GenerationConfig(maxNewTokens: steps, eosTokenID: 1)
        config.minNewTokens = steps
        config.padTokenID = 0
        config.numBeams = beams
        let switchNote = ProcessInfo.processInfo.environment["ATTEND_GEMV_MAX_ROWS"].map { "ATTEND_GEMV_MAX_ROWS=\($0)" } ?? "default path switch"
        func perStep(_ m: Seq2SeqModel, _ compute: Compute) -> Double {
            guard let encoded = try? m.encode([source], compute: compute),
                var cache = try? m.makeCache(for: encoded, capacity: steps + 1, compute: compute)
            else { preconditionFailure("seq2seq bench: bad source") }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let out = try? m.beamSearch(prompt: [[m.decoderStartTokenID]], cache: &cache, config: config, compute: compute)
            let t1 = DispatchTime.now().uptimeNanoseconds
            precondition(out?.sequences.first?.count == steps + 1, "seq2seq bench: beam search returned a wrong length")
            return Double(t1 - t0) * 1e-9 / Double(steps)
        }
        if !options.json {
            out("\nt5-small-shaped T5, beam search (\(beams) beams), \(steps) steps, float32 / BF16 rounds interleaved, medians, \(variantName), \(switchNote)")
            out("name                                 threads  f32 ms/step  bf16 ms/step  bf16/f32 speed")
        }
        let rounds = options.quick ? 2 : 5
        for t in threadCounts {
            let compute = benchCompute(threads: t)
            progress("seq2seq: beams, \(t) thread(s), \(rounds) rounds...")
            let (ms, count) = interleavedMedians(rounds: rounds, [{ perStep(model, compute) }, { perStep(bf16, compute) }])
            let (f, h) = (ms[0], ms[1])
            let name = "seq2seq t5-small beam4 decode"
            emit(
                [
                    ("name", name), ("variant", variantName), ("threads", t), ("f32_ms_per_step", f * 1e3), ("bf16_ms_per_step", h * 1e3),
                    ("ratio", f / h), ("ms", h * 1e3), ("reps", count), ("switch", switchNote),
                ],
                row: pad(name, 36) + String(format: " %7d %12.3f %13.3f %14.2fx", t, f * 1e3, h * 1e3, f / h))
        }
    }

    /// Linear products of a few rows (1, 2, 4, 8: beams, a small batch) against t5-small's
    /// weights ([2048, 512], [512, 2048], the [32128, 512] head), float32, BF16 and int8
    /// (per channel and per 32 inputs, as `attend quantize --scheme int8-channel` and
    /// `int8-group32` write them), medians of
    /// interleaved repetitions in microseconds. The path (GEMV or GEMM) follows
    /// `ATTEND_GEMV_MAX_ROWS` when set.
    func gemvShapedProducts(threadCounts: [Int]) {
        let shapes = [(512, 2048), (2048, 512), (512, 32128)]
        if !options.json {
            out("\nLinear products of a few rows against t5-small's weights, medians, \(variantName)")
            out("name                                 threads  rows  in     out     f32 us   bf16 us   int8 us  int8/32 us")
        }
        let reps = options.quick ? 3 : 15
        for t in threadCounts {
            let compute = benchCompute(threads: t)
            for (k, n) in shapes {
                let w = randomTensor([n, k], seed: 7) * (1 / Float(k).squareRoot())
                let f32 = Linear(weight: w, bias: nil), bf16 = Linear(weight: w, bias: nil, precision: .bfloat16)
                let int8 = int8Layer(f32, .channel), int8g = int8Layer(f32, .group32)
                for rows in [1, 2, 4, 8] {
                    let x = randomTensor([rows, k], seed: 8)
                    func micros(_ l: Linear) -> Double {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        _ = l(x, compute: compute)
                        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-3
                    }
                    let (ms, count) = interleavedMedians(rounds: reps, [{ micros(f32) }, { micros(bf16) }, { micros(int8) }, { micros(int8g) }])
                    let (a, b, c, d) = (ms[0], ms[1], ms[2], ms[3])
                    let name = "linear few rows"
                    emit(
                        [
                            ("name", name), ("variant", variantName), ("threads", t), ("rows", rows), ("in", k), ("out", n),
                            ("f32_us", a), ("bf16_us", b), ("int8_us", c), ("int8_group32_us", d), ("ms", b * 1e-3), ("reps", count),
                        ],
                        row: pad(name, 36) + String(format: " %7d %5d %5d %6d %9.1f %9.1f %9.1f %11.1f", t, rows, k, n, a, b, c, d))
                }
            }
        }
    }
}

/// Runs each of `runs` in turn (first, second, ..., first, ...) for a warm-up round and
/// `rounds` more, and returns the median of each one's results over the rounds after the
/// warm-up, and that count.
func interleavedMedians(rounds: Int, _ runs: [() -> Double]) -> ([Double], Int) {
    var results = [[Double]](repeating: [], count: runs.count)
    for round in 0...rounds {
        for (i, run) in runs.enumerated() {
            let x = run()
            if round > 0 { results[i].append(x) }
        }
    }
    return (results.map { median($0) }, rounds)
}
