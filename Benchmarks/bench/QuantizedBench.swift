import Attend
import Foundation

/// The package root (this file is <root>/Benchmarks/bench/QuantizedBench.swift).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

extension Bench {
    /// int8 weights (`attend quantize`): accuracy and decoding speed.
    /// - all-MiniLM-L6-v2 (when scripts/fetch-minilm.sh fetched it): the folder quantized with
    ///   each scheme (with the default `--keep-float` rule, and with none kept), the golden texts
    ///   (Tests/BERTTests/Fixtures/minilm_golden.json) embedded in one batch; the worst and
    ///   mean cosine to the float32 folder's embeddings, and how many matrices (and what
    ///   fraction of their bytes) the rule kept 16-bit.
    /// - the golden tiny T5 (Tests/TransformerTests/Fixtures/t5): greedy ids of its two
    ///   sources (10 new tokens) from the quantized folder against the float32 folder's.
    /// - decoding with a t5-small-shaped model (random weights): 64 greedy tokens after a
    ///   512-token source, float32 and int8 (both schemes, with the value projections float16
    ///   as `--keep-float auto` leaves them, and all int8 as `none`) in interleaved rounds,
    ///   the median ms per decoded token (and range) and the speed-up over float32, on 1 and
    ///   --threads.
    func quantized() {
        let fm = FileManager.default
        let tmp = fm.temporaryDirectory.appendingPathComponent("attend-bench-int8-\(getpid())")
        defer { try? fm.removeItem(at: tmp) }
        if !options.json { out("\nint8 weights (attend quantize), \(variantName), GEMM: \(q8InstructionsName)") }
        // MiniLM cosine.
        let minilm = miniLMDirectory()
        if fm.fileExists(atPath: minilm.appendingPathComponent("model.safetensors").path),
            let golden = try? JSONSerialization.jsonObject(
                with: Data(contentsOf: packageRoot.appendingPathComponent("Tests/BERTTests/Fixtures/minilm_golden.json"))) as? [String: Any],
            let cases = golden["cases"] as? [[String: Any]]
        {
            let texts = cases.compactMap { $0["text"] as? String }
            do {
                let reference = try SentenceEmbedder(directory: minilm).embed(texts).scalars
                for scheme in Int8Scheme.allCases {
                    for (ruleName, rule) in [("auto", KeepFloatRule.default), ("none", KeepFloatRule.none)] {
                        let dir = tmp.appendingPathComponent("minilm-\(scheme.rawValue)-\(ruleName)")
                        let report = try ModelQuantization.quantize(model: minilm, out: dir, scheme: scheme, keep: rule)
                        let e = try SentenceEmbedder(directory: dir)
                        let got = try e.embed(texts).scalars
                        let d = e.dimension
                        let cosines = (0..<texts.count).map { i in cosine(Array(reference[(i * d)..<((i + 1) * d)]), Array(got[(i * d)..<((i + 1) * d)])) }
                        let worst = cosines.min() ?? 0, mean = cosines.reduce(0, +) / Double(max(1, cosines.count))
                        emit(
                            [
                                ("name", "int8 minilm cosine"), ("scheme", scheme.rawValue), ("keep_float", ruleName), ("texts", texts.count), ("worst_cosine", worst), ("mean_cosine", mean),
                                ("int8_matrices", report.quantized.count), ("kept_16bit_matrices", report.kept.count), ("kept_16bit_byte_fraction", report.keptByteFraction),
                                ("ms", 0.0),
                            ],
                            row: String(
                                format: "all-MiniLM-L6-v2 %@ --keep-float %@: cosine to float32 over %d golden texts: worst %.6f, mean %.6f (target >= 0.999); %d matrices int8, %d kept 16-bit (%.1f%% of those weights' bytes)",
                                scheme.rawValue, ruleName, texts.count, worst, mean, report.quantized.count, report.kept.count, 100 * report.keptByteFraction))
                    }
                }
            } catch {
                out("all-MiniLM-L6-v2 int8: \(error)")
            }
        } else if !options.json {
            out("all-MiniLM-L6-v2 int8: no folder at \(minilm.path) (scripts/fetch-minilm.sh), skipped")
        }
        // The golden T5's greedy ids.
        let t5 = packageRoot.appendingPathComponent("Tests/TransformerTests/Fixtures/t5")
        if let io = try? SafeTensorsFile(contentsOf: packageRoot.appendingPathComponent("Tests/TransformerTests/Fixtures/t5.io.safetensors")),
            let ids = try? io.integers("in.input_ids"), let mask = try? io.integers("in.attention_mask")
        {
            let width = ids.count / 2
            let sources = (0..<2).map { r in (0..<width).filter { mask[r * width + $0] != 0 }.map { ids[r * width + $0] } }
            do {
                let f = try Seq2SeqModel(directory: t5)
                var config = f.generationDefaults
                config.maxNewTokens = 10
                config.minNewTokens = 10
                let reference = try f.generate(sources: sources, config: config).sequences
                for scheme in Int8Scheme.allCases {
                    let dir = tmp.appendingPathComponent("t5-\(scheme.rawValue)")
                    _ = try ModelQuantization.quantize(model: t5, out: dir, scheme: scheme)
                    let got = try Seq2SeqModel(directory: dir).generate(sources: sources, config: config).sequences
                    emit(
                        [("name", "int8 t5 greedy ids"), ("scheme", scheme.rawValue), ("equal", got == reference), ("ms", 0.0)],
                        row: "golden tiny T5 \(scheme.rawValue): greedy ids of its 2 sources \(got == reference ? "equal" : "DIFFER from") float32's\(got == reference ? "" : ": \(got) vs \(reference)")")
                }
            } catch {
                out("golden T5 int8: \(error)")
            }
        }
        // Decoding speed, t5-small shape.
        let sourceLength = 512, newTokens = options.quick ? 16 : 64
        progress("quantized: building t5-small-shaped models (float32, int8-channel, int8-group32; value projections float16 or int8)...")
        // "auto": as `attend quantize`'s default rule leaves them (the value projections
        // float16: random weights have no outlier matrix for the error threshold); "none":
        // every matrix int8.
        let models: [(String, Seq2SeqModel)] = [
            ("float32", randomT5Small(seed: 91)),
            ("int8-channel auto", randomT5Small(seed: 91, int8: .channel, valueFloat16: true)),
            ("int8-group32 auto", randomT5Small(seed: 91, int8: .group32, valueFloat16: true)),
            ("int8-channel none", randomT5Small(seed: 91, int8: .channel)),
            ("int8-group32 none", randomT5Small(seed: 91, int8: .group32)),
        ]
        var rng = SplitMix64(state: 92)
        let source = (0..<sourceLength).map { _ in Int.random(in: 2..<32128, using: &rng) }
        var config = GenerationConfig(maxNewTokens: newTokens, eosTokenID: 1)
        config.minNewTokens = newTokens
        config.padTokenID = 0
        if !options.json {
            out("t5-small shape, greedy \(newTokens) tokens after a \(sourceLength)-token source: ms per decoded token, median [range] of interleaved rounds")
        }
        let rounds = options.quick ? 2 : 5
        for t in options.threads > 1 ? [1, options.threads] : [1] {
            let compute = benchCompute(threads: t)
            var perToken = [[Double]](repeating: [], count: models.count)
            for round in 0...rounds {  // round 0 warms up
                for (mi, (name, model)) in models.enumerated() {
                    progress("quantized: \(t) thread(s), round \(round)/\(rounds), \(name)...")
                    guard let encoded = try? model.encode([source], compute: compute),
                        var cache = try? model.makeCache(for: encoded, capacity: newTokens + 1, compute: compute)
                    else { preconditionFailure("quantized bench: source does not fit") }
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let got = try? model.greedySearch(prompt: [[model.decoderStartTokenID]], cache: &cache, config: config, compute: compute)
                    let t1 = DispatchTime.now().uptimeNanoseconds
                    precondition(got?.first?.count == newTokens + 1, "quantized bench: generated \(got?.first?.count ?? 0) tokens")
                    if round > 0 { perToken[mi].append(Double(t1 - t0) * 1e-6 / Double(newTokens)) }
                }
            }
            let base = median(perToken[0])
            for (mi, (name, _)) in models.enumerated() {
                let m = median(perToken[mi]), lo = perToken[mi].min() ?? 0, hi = perToken[mi].max() ?? 0
                emit(
                    [("name", "int8 decode t5-small"), ("weights", name), ("threads", t), ("ms_per_token", m), ("min_ms", lo), ("max_ms", hi), ("speedup", base / m), ("rounds", rounds), ("ms", m)],
                    row: String(format: "decode %-17@ threads %d: %7.2f ms/token [%.2f-%.2f], %.2fx float32", name, t, m, lo, hi, base / m))
            }
        }
    }

    /// The int8 GEMM's instructions on the selected variant.
    var q8InstructionsName: String {
        if case .native(let v) = variant { return q8Instructions(v) }
        return "none (Swift SIMD backend: float32 products on the dequantized weights)"
    }
}

/// The cosine of two vectors, accumulated in Double.
func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for (x, y) in zip(a, b) {
        dot += Double(x) * Double(y)
        na += Double(x) * Double(x)
        nb += Double(y) * Double(y)
    }
    return dot / max((na * nb).squareRoot(), 1e-300)
}
