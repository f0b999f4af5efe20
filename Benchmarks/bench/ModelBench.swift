import Attend
import Foundation

/// The paper's base model sizes (Vaswani et al., Table 3, "base").
private let baseDim = 512, baseHeads = 8, baseFF = 2048, baseLayers = 6
/// Target vocabulary of the decoder benchmark (the order of the paper's 37k shared BPE vocabulary).
private let decoderVocabulary = 32000

/// A linear layer with uniform weights scaled by 1/sqrt(in) (activations stay O(1)).
private func randomLinear(_ input: Int, _ output: Int, seed: UInt64) -> Linear {
    let s = 1 / Float(input).squareRoot()
    return Linear(weight: randomTensor([output, input], seed: seed) * s, bias: randomTensor([output], seed: seed &+ 1) * s)
}

private func randomNorm(_ d: Int) -> Norm {
    .layer(LayerNorm(weight: Tensor(repeating: 1, shape: [d]), bias: Tensor.zeros([d])))
}

private func randomAttention(seed: UInt64) -> MultiHeadAttention {
    MultiHeadAttention(
        heads: baseHeads, inProjection: randomLinear(baseDim, 3 * baseDim, seed: seed),
        outProjection: randomLinear(baseDim, baseDim, seed: seed &+ 2))
}

private func randomFeedForward(seed: UInt64) -> FeedForward {
    FeedForward(up: randomLinear(baseDim, baseFF, seed: seed), down: randomLinear(baseFF, baseDim, seed: seed &+ 2), activation: .relu)
}

/// The base encoder stack (6 post-LN layers, d 512, 8 heads, d_ff 2048, ReLU) with random weights.
private func baseEncoder(seed: UInt64, layers count: Int = baseLayers) -> TransformerEncoder {
    let layers = (0..<count).map { i -> EncoderLayer in
        let s = seed &+ UInt64(i) * 100
        return EncoderLayer(
            selfAttention: randomAttention(seed: s), attentionNorm: randomNorm(baseDim),
            feedForward: randomFeedForward(seed: s &+ 10), feedForwardNorm: randomNorm(baseDim), placement: .post)
    }
    return TransformerEncoder(layers: layers, finalNorm: nil)
}

/// The base seq2seq model with random weights (a 1-layer encoder: the decoder benchmark uses
/// the decoder side only).
private func baseModel(seed: UInt64) -> TransformerModel {
    let decoderLayers = (0..<baseLayers).map { i -> DecoderLayer in
        let s = seed &+ 5000 &+ UInt64(i) * 100
        return DecoderLayer(
            selfAttention: randomAttention(seed: s), selfAttentionNorm: randomNorm(baseDim),
            crossAttention: randomAttention(seed: s &+ 20), crossAttentionNorm: randomNorm(baseDim),
            feedForward: randomFeedForward(seed: s &+ 10), feedForwardNorm: randomNorm(baseDim), placement: .post)
    }
    var config = TransformerConfig.base(sourceVocabularySize: 1000, targetVocabularySize: decoderVocabulary)
    config.finalNorms = false
    config.encoderLayers = 1  // only the decoder side is measured
    return TransformerModel(
        config: config, sourceEmbedding: Embedding(weight: randomTensor([1000, baseDim], seed: seed &+ 1)),
        targetEmbedding: Embedding(weight: randomTensor([decoderVocabulary, baseDim], seed: seed &+ 2)),
        encoder: baseEncoder(seed: seed &+ 4, layers: 1),
        decoder: TransformerDecoder(layers: decoderLayers, finalNorm: nil),
        generator: randomLinear(baseDim, decoderVocabulary, seed: seed &+ 3))
}

extension Bench {
    /// The paper's base encoder (6 layers, d 512, 8 heads, d_ff 2048, post-LN, ReLU, random
    /// weights) on one sequence of `--seq` embedded tokens: latency, tokens/s, GFLOP/s, % of the
    /// FMA peak (read at the start; "% probed": read just before and after the timed runs) and
    /// peak resident memory, on 1 thread and on `--threads`.
    /// Flops per layer: `8 N d² + 4 N d d_ff` (projections, FFN) `+ 4 N² d` (attention).
    func encoder() {
        let n = options.seq, d = baseDim
        progress("encoder: building the base encoder with random weights...")
        let encoder = baseEncoder(seed: 41)
        let x = randomTensor([1, n, d], seed: 42)
        let perLayer = 8.0 * Double(n) * Double(d * d) + 4.0 * Double(n) * Double(d * baseFF) + 4.0 * Double(n) * Double(n) * Double(d)
        let flops = perLayer * Double(baseLayers)
        if !options.json {
            out(
                "\nBase encoder (6 layers, d 512, 8 heads, d_ff 2048, post-LN) on one sequence of \(n) tokens, \(variantName), \(String(format: "%.1f", flops * 1e-9)) GFLOP"
            )
            out("name                                 threads        ms   tokens/s    GFLOP/s  % of peak  % probed")
        }
        let big = flops > 100e9
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        for t in threadCounts {
            let name = "encoder base seq \(n)"
            progress("\(name), \(t) thread(s)...")
            let compute = benchCompute(threads: t)
            let ((times, cpu), probed) = aroundPeak(threads: t) {
                measureWithCPU(warmup: 1, minReps: big ? (t == 1 ? 1 : 3) : 3, minSeconds: big ? 0 : 1.0) {
                    _ = encoder(x, compute: compute)
                }
            }
            let sec = median(times)
            let cpuMS = median(cpu) * 1e3  // process CPU time: robust to other load on 1 thread
            let gf = flops / sec * 1e-9
            let peak = t == 1 ? peak1 : peakN
            emit(
                [
                    ("name", name), ("variant", variantName), ("threads", t), ("seq", n), ("layers", baseLayers), ("d_model", d),
                    ("ms", sec * 1e3), ("cpu_ms", cpuMS), ("tokens_per_s", Double(n) / sec), ("gflops", gf), ("peak_gflops", peak),
                    ("probed_peak_gflops", probed), ("probed_peak_share", gf / probed), ("reps", times.count),
                ],
                row: pad(name, 36)
                    + String(
                        format: " %7d %9.1f %10.0f %10.1f %9.1f%%", t, sec * 1e3, Double(n) / sec, gf,
                        peak > 0 ? gf / peak * 100 : 0) + " " + probedPercent(gf, probed))
        }
        let rss = peakResidentMiB()
        let weights = Double(baseLayers * (4 * d * d + 2 * d * baseFF)) * 4 / 1048576
        emit(
            [("name", "encoder base peak rss seq \(n)"), ("threads", options.threads), ("rss_mib", rss), ("weights_mib", weights), ("ms", 0.0)],
            row: String(
                format: "peak resident memory: %.0f MiB (weights %.0f MiB, one activation [%d, 512] %.1f MiB)",
                rss, weights, n, Double(n * d) * 4 / 1048576))
    }

    /// The base decoder (6 layers with cross-attention, target vocabulary 32000, random
    /// weights) generating 128 tokens greedily with the KV cache against a random memory of
    /// `--seq` tokens, on `--threads`: the one-time memory keys/values, tokens/s, and the
    /// per-token time in blocks of 16 tokens, which must stay flat (only the self-attention
    /// term, `4 * t * d` flops per layer at position t, grows).
    func decoder() {
        let n = options.seq, d = baseDim, steps = 128
        progress("decoder: building the base decoder with random weights...")
        let model = baseModel(seed: 77)
        let memory = randomTensor([1, n, d], seed: 78)
        let compute = benchCompute(threads: options.threads)
        let reps = options.quick ? 1 : 3
        var perStep = [[Double]](repeating: [], count: steps)
        var setup: [Double] = []
        for rep in 0...reps {  // rep 0 warms up
            progress("decoder: generating \(steps) tokens against a memory of \(n), run \(rep)/\(reps)...")
            let t0 = DispatchTime.now().uptimeNanoseconds
            var cache = model.decoder.makeCache(memory: memory, capacity: steps + 1, compute: compute)
            var last = DispatchTime.now().uptimeNanoseconds
            if rep > 0 { setup.append(Double(last - t0) * 1e-9) }
            var i = 0
            // Greedy search as users run it; each step's time runs from the previous step's end.
            _ = try? model.greedySearch(prompt: [[1]], cache: &cache, config: GenerationConfig(maxNewTokens: steps), compute: compute) { _ in
                let now = DispatchTime.now().uptimeNanoseconds
                if rep > 0 { perStep[i].append(Double(now - last) * 1e-9) }
                last = now
                i += 1
            }
        }
        let stepMedians = perStep.map(median)
        let total = stepMedians.reduce(0, +)
        if !options.json {
            out(
                "\nBase decoder (6 layers, d 512, 8 heads, d_ff 2048, vocabulary \(decoderVocabulary)) generating \(steps) tokens with the KV cache, memory of \(n) tokens, \(options.threads) thread(s)"
            )
        }
        let memoryFlops = Double(baseLayers) * 4 * Double(n) * Double(d * d)
        emit(
            [
                ("name", "decoder base memory keys/values seq \(n)"), ("threads", options.threads), ("seq", n), ("ms", median(setup) * 1e3),
                ("gflops", memoryFlops / median(setup) * 1e-9),
            ],
            row: String(format: "memory keys/values, computed once: %.1f ms", median(setup) * 1e3))
        emit(
            [
                ("name", "decoder base generate 128 seq \(n)"), ("variant", variantName), ("threads", options.threads), ("seq", n),
                ("tokens", steps), ("ms", total * 1e3), ("tokens_per_s", Double(steps) / total), ("ms_per_token", total / Double(steps) * 1e3),
            ],
            row: String(
                format: "generation: %.1f ms for %d tokens = %.1f tokens/s (%.2f ms/token)", total * 1e3, steps,
                Double(steps) / total, total / Double(steps) * 1e3))
        // The curve: mean per-token time over blocks of 16 positions.
        var blocks: [Double] = []
        for b in stride(from: 0, to: steps, by: 16) {
            let block = stepMedians[b..<min(steps, b + 16)]
            let ms = block.reduce(0, +) / Double(block.count) * 1e3
            blocks.append(ms)
            emit(
                [
                    ("name", "decoder base per-token seq \(n) tokens \(b + 1)-\(b + block.count)"), ("threads", options.threads),
                    ("seq", n), ("first", b + 1), ("last", b + block.count), ("ms", ms),
                ],
                row: String(
                    format: "  tokens %3d-%3d: %6.2f ms/token  %@", b + 1, b + block.count, ms,
                    String(repeating: "#", count: max(1, Int((ms / max(blocks[0], 1e-9) * 20).rounded())))))
        }
        let growth = blocks.last! / blocks.first!
        emit(
            [("name", "decoder base per-token growth seq \(n)"), ("threads", options.threads), ("ratio", growth), ("ms", blocks.last!)],
            row: String(format: "last block / first block: %.2fx (self-attention over the cache is the only term that grows)", growth))
        emit(
            [("name", "decoder base peak rss seq \(n)"), ("threads", options.threads), ("rss_mib", peakResidentMiB()), ("ms", 0.0)],
            row: String(format: "peak resident memory so far: %.0f MiB", peakResidentMiB()))
    }
}
