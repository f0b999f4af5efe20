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

/// A weight with uniform values scaled by 1/sqrt(in) (activations stay O(1)).
private func lmLinear(_ input: Int, _ output: Int, seed: UInt64, bias: Bool) -> Linear {
    Linear(
        weight: randomTensor([output, input], seed: seed) * (1 / Float(input).squareRoot()),
        bias: bias ? randomTensor([output], seed: seed &+ 7) * 0.1 : nil)
}

/// A model of `s`'s shape with random weights, built as the loader builds a checkpoint.
private func randomLM(_ s: LMShape, seed: UInt64) -> DecoderOnlyModel {
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
            ? FeedForward(up: lmLinear(d, s.ff, seed: k &+ 3, bias: true), down: lmLinear(s.ff, d, seed: k &+ 4, bias: true), activation: .geluTanh)
            : FeedForward(
                up: lmLinear(d, s.ff, seed: k &+ 3, bias: false), down: lmLinear(s.ff, d, seed: k &+ 4, bias: false),
                activation: .silu, gate: lmLinear(d, s.ff, seed: k &+ 5, bias: false))
        return CausalDecoderLayer(
            attentionNorm: norm(), qkv: lmLinear(d, (s.heads + 2 * s.kvHeads) * dh, seed: k &+ 1, bias: s.gpt2),
            out: lmLinear(s.heads * dh, d, seed: k &+ 2, bias: s.gpt2), feedForwardNorm: norm(),
            feedForward: ff, scale: 1 / Float(dh).squareRoot())
    }
    let embedding = Embedding(weight: randomTensor([s.vocabulary, d], seed: seed &+ 1))
    let head = s.gpt2 ? Linear(weight: embedding.weight, bias: nil) : lmLinear(d, s.vocabulary, seed: seed &+ 2, bias: false)
    return DecoderOnlyModel(
        architecture: s.gpt2 ? .gpt2 : .llama, embedding: embedding,
        learnedPositions: s.gpt2 ? Embedding(weight: randomTensor([1024, d], seed: seed &+ 3) * 0.1) : nil,
        rotary: s.gpt2 ? nil : RotaryFrequencies(dim: dh, base: 10000), layers: layers, finalNorm: norm(),
        lmHead: head, heads: s.heads, kvHeads: s.kvHeads, headDim: dh, positionLimit: nil,
        generationDefaults: GenerationConfig(maxNewTokens: 32))
}

/// Read bandwidth of this machine's memory: the sum of a 1 GiB buffer (far beyond any cache),
/// split in contiguous parts over `threads` threads, SIMD loads. GB/s, median of 5 after a warm-up.
func memoryReadBandwidth(threads: Int) -> Double {
    let count = 1 << 28  // floats: 1 GiB
    let buffer = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: count / 16)
    defer { buffer.deallocate() }
    buffer.initialize(repeating: SIMD16<Float>(repeating: 1), count: count / 16)
    let sums = UnsafeMutablePointer<Float>.allocate(capacity: threads)
    defer { sums.deallocate() }
    let times = measure(warmup: 1, minReps: 5, minSeconds: 0) {
        let per = count / 16 / threads
        parallelFor(threads, threads: threads) { t in
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

extension Bench {
    /// Decoder-only models with random weights (GPT-2 small's shape, and TinyLlama's with
    /// `--only lm`; `--lm-model` picks one): a
    /// 512-token prompt in one batched prefill pass (tokens/s and GFLOP/s as a share of the
    /// FMA peak measured in this run), then greedy decoding one token per step against the
    /// cache (tokens/s, and the weights read per step per second as a share of the memory read
    /// bandwidth measured in this run), on 1 thread and on `--threads`; then two rows decoding
    /// together from 64-token prompts (a batch or two beams: one pass over the weights per step).
    /// `Benchmarks/scripts/hf_lm_generate.py` runs the same job with transformers.
    func lm() {
        let promptLength = options.quick ? 128 : 512, newTokens = options.quick ? 8 : 32
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]
        progress("lm: measuring the memory read bandwidth...")
        let bandwidth = Dictionary(uniqueKeysWithValues: threadCounts.map { ($0, memoryReadBandwidth(threads: $0)) })
        for t in threadCounts {
            emit(
                [("name", "memory read bandwidth"), ("threads", t), ("gbs", bandwidth[t]!), ("ms", 0.0)],
                row: String(format: "memory read bandwidth (1 GiB, %d thread(s)): %.1f GB/s", t, bandwidth[t]!))
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
                    "name                       threads  prefill ms  prefill tok/s  % FMA peak  decode ms/tok  decode tok/s  weights GB/s  % bandwidth"
                )
            }
            let weightBytes = Double(shape.decodeWeightFloats) * 4
            // Prefill flops: every projection for every token, causal attention (half the
            // square), the head for the last token only.
            let perToken = Double(shape.decodeWeightFloats - shape.vocabulary * shape.d) * 2
            let attention = Double(shape.layers) * 4 * Double(shape.heads * shape.headDim) * Double(promptLength * promptLength) / 2
            let prefillFlops = perToken * Double(promptLength) + attention + 2 * Double(shape.vocabulary * shape.d)
            for t in threadCounts {
                let compute = Compute.default.with(threads: t)
                var prefill: [Double] = [], decode: [Double] = []
                let reps = options.quick ? 1 : (shape.gpt2 ? 3 : 2)
                for rep in 0...reps {  // rep 0 warms up (and packs the weights)
                    progress("lm: \(shape.name), \(t) thread(s), run \(rep)/\(reps)...")
                    var cache = model.makeCache(rows: 1, capacity: promptLength + newTokens + 1)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    var logits = model.nextTokenLogits(appending: [prompt], to: &cache, compute: compute)
                    let t1 = DispatchTime.now().uptimeNanoseconds
                    for _ in 0..<newTokens {
                        let scores = logits.scalars  // one copy (`scalars` copies on every access)
                        let next = scores.indices.max { scores[$0] < scores[$1] }!
                        logits = model.nextTokenLogits(appending: [[next]], to: &cache, compute: compute)
                    }
                    let t2 = DispatchTime.now().uptimeNanoseconds
                    if rep == 0 { continue }
                    prefill.append(Double(t1 - t0) * 1e-9)
                    decode.append(Double(t2 - t1) * 1e-9 / Double(newTokens))
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
                    let t1 = DispatchTime.now().uptimeNanoseconds
                    for _ in 0..<newTokens {
                        let scores = logits.scalars, v = shape.vocabulary
                        let next = (0..<rows).map { r in (0..<v).max { scores[r * v + $0] < scores[r * v + $1] }! }
                        logits = model.nextTokenLogits(appending: next.map { [$0] }, to: &cache, compute: compute)
                    }
                    let t2 = DispatchTime.now().uptimeNanoseconds
                    if rep > 0 { batched.append(Double(t2 - t1) * 1e-9 / Double(newTokens)) }
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
                        ("decode_weight_gbs", gbs), ("bandwidth_gbs", bandwidth[t]!), ("ms", p * 1e3), ("reps", prefill.count),
                    ],
                    row: pad(name, 26)
                        + String(
                            format: " %7d %11.1f %14.1f %10.1f%% %14.2f %13.2f %13.1f %11.0f%%", t, p * 1e3,
                            Double(promptLength) / p, peak > 0 ? gflops / peak * 100 : 0, dtok * 1e3, 1 / dtok,
                            gbs, gbs / bandwidth[t]! * 100))
                let bstep = median(batched), bgbs = weightBytes / bstep * 1e-9
                emit(
                    [
                        ("name", "\(name) \(rows) rows"), ("variant", variantName), ("threads", t), ("rows", rows), ("tokens", newTokens),
                        ("decode_ms_per_step", bstep * 1e3), ("decode_tokens_per_s", Double(rows) / bstep), ("decode_weight_gbs", bgbs),
                        ("bandwidth_gbs", bandwidth[t]!), ("ms", bstep * 1e3), ("reps", batched.count),
                    ],
                    row: pad("\(name) \(rows) rows", 26) + String(format: " %7d", t) + String(repeating: " ", count: 39)
                        + String(format: " %14.2f %13.2f %13.1f %11.0f%%", bstep * 1e3, Double(rows) / bstep, bgbs, bgbs / bandwidth[t]! * 100))
            }
            emit(
                [("name", "lm \(shape.name) peak rss"), ("rss_mib", peakResidentMiB()), ("ms", 0.0)],
                row: String(
                    format:
                        "peak resident memory so far: %.0f MiB (weights %.0f MiB read per decoding step); transformers: python3 Benchmarks/scripts/hf_lm_generate.py --model %@",
                    peakResidentMiB(), weightBytes / 1048576, shape.name))
        }
    }
}
