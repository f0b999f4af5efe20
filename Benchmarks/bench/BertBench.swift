import Attend
import Foundation

/// The all-MiniLM-L6-v2 folder: `ATTEND_MINILM_DIR`, else `<package root>/.cache/minilm`
/// (where scripts/fetch-minilm.sh puts it).
func miniLMDirectory() -> URL {
    if let d = ProcessInfo.processInfo.environment["ATTEND_MINILM_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
    // This file is <root>/Benchmarks/bench/BertBench.swift.
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".cache/minilm")
}

/// Words for the benchmark sentences: common English, every one a single WordPiece token of
/// the uncased BERT vocabulary.
let benchWords = """
    the of and to in is was he for it with as his on be at by had are but from or have an they which one you were \
    her all she there would their we him been has when who will more no if out so said what up its about into than \
    them can only other new some could time these two may then do first any my now such like our over man me even \
    most made after also did many before must through back years where much your way well down should because each \
    just those people how too little state good very make world still own see men work long get here between both \
    life being under never day same another know while last might us great old year off come since against go came \
    right used take three states himself few house use during without again place american around however home small \
    found thought went say part once general high upon school every does got united left number course war until \
    always away something fact though water less public put think almost hand enough far took head yet government \
    system better set told nothing night end why called didn eyes find going look asked later knew point next city \
    business give group toward young days let room president side social given present several order national second \
    possible rather per face among form important often things looked early white case john become large big need four
    """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)

/// `count` sentences of 20-40 words from `benchWords`, seeded: capitalized, a comma now and
/// then, a period at the end.
func benchSentences(count: Int, seed: UInt64) -> [String] {
    var rng = SplitMix64(state: seed)
    return (0..<count).map { _ in
        let n = 20 + Int(rng.next() % 21)
        var words = (0..<n).map { _ in benchWords[Int(rng.next() % UInt64(benchWords.count))] }
        words[0] = words[0].prefix(1).uppercased() + words[0].dropFirst()
        for i in 1..<(n - 1) where rng.next() % 9 == 0 { words[i] += "," }
        return words.joined(separator: " ") + "."
    }
}

/// Named tensors in memory (the random stand-in for the real checkpoint).
struct BenchTensors: TensorSource {
    let tensors: [String: Tensor]
    var tensorNames: [String] { Array(tensors.keys) }
    func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw CheckpointError.missingTensor(name: name) }
        return t
    }
}

/// A random BERT with all-MiniLM-L6-v2's shapes and a tokenizer whose vocabulary holds the
/// benchmark words (so sentences have the same number of tokens as with the real one).
func randomMiniLM() throws -> SentenceEmbedder {
    let c = BERTConfig(vocabSize: 30522, hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 12, intermediateSize: 1536)
    var t: [String: Tensor] = [:]
    var seed: UInt64 = 100
    func put(_ name: String, _ shape: [Int], scale: Float = 0.05, offset: Float = 0) {
        seed += 1
        var r = randomTensor(shape, seed: seed)
        if scale != 1 || offset != 0 {
            r.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = offset + scale * p[i] } }
        }
        t[name] = r
    }
    let d = c.hiddenSize
    put("embeddings.word_embeddings.weight", [c.vocabSize, d])
    put("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, d])
    put("embeddings.token_type_embeddings.weight", [c.typeVocabSize, d])
    put("embeddings.LayerNorm.weight", [d], scale: 0.1, offset: 1)
    put("embeddings.LayerNorm.bias", [d])
    for i in 0..<c.numHiddenLayers {
        let l = "encoder.layer.\(i)."
        for p in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
            put(l + p + ".weight", [d, d])
            put(l + p + ".bias", [d])
        }
        put(l + "intermediate.dense.weight", [c.intermediateSize, d])
        put(l + "intermediate.dense.bias", [c.intermediateSize])
        put(l + "output.dense.weight", [d, c.intermediateSize])
        put(l + "output.dense.bias", [d])
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            put(l + n + ".weight", [d], scale: 0.1, offset: 1)
            put(l + n + ".bias", [d])
        }
    }
    let model = try BERTModel(config: c, weights: BenchTensors(tensors: t))
    var vocab = ["[PAD]"] + (1..<100).map { "[unused\($0)]" } + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [".", ","] + benchWords
    let tokenizer = try WordPieceTokenizer(vocabulary: vocab)
    return try SentenceEmbedder(model: model, tokenizer: tokenizer, pooling: [.mean], normalize: true, maxLength: 256)
}

extension Bench {
    /// all-MiniLM-L6-v2 end to end from strings (tokenizer included): tokenizer and model load
    /// times, one short sentence's latency, and sentences/s at batch 32 over 256 sentences of
    /// 20-40 words, on 1 thread and on `--threads`. Uses the real folder when present
    /// (scripts/fetch-minilm.sh), else a random model of the same shape.
    func bert() {
        let dir = miniLMDirectory()
        let real = FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path)
        let source =
            real
            ? "all-MiniLM-L6-v2 (\(dir.path))" : "random model with all-MiniLM-L6-v2's shape (no folder at \(dir.path): run scripts/fetch-minilm.sh)"
        if !options.json { out("\nBERT sentence embeddings: \(source), \(variantName)") }
        let embedder: SentenceEmbedder
        do {
            if real {
                progress("bert: load times...")
                let loads = options.quick ? 3 : 10
                let tokTimes = try (0..<loads).map { _ in try time { _ = try WordPieceTokenizer(directory: dir) } }
                let modelTimes = try (0..<loads).map { _ in try time { _ = try BERTModel(directory: dir) } }
                let tok = median(tokTimes) * 1e3, mod = median(modelTimes) * 1e3
                emit(
                    [("name", "bert tokenizer load"), ("ms", tok), ("reps", loads)],
                    row: String(format: "tokenizer load (tokenizer.json, 30522 tokens): %.1f ms (median of %d)", tok, loads))
                emit(
                    [("name", "bert model load"), ("ms", mod), ("reps", loads)],
                    row: String(
                        format: "model load (config.json, mmap of model.safetensors, weights fused and packed): %.1f ms (median of %d)", mod, loads))
                embedder = try SentenceEmbedder(directory: dir)
            } else {
                embedder = try randomMiniLM()
            }
        } catch {
            stderr("bench: bert: cannot load the model: \(error)")
            return
        }
        let config = embedder.model.config
        // Flops of the encoder on one sequence of n tokens (batches run unpadded).
        let d = Double(config.hiddenSize), ff = Double(config.intermediateSize), layers = Double(config.numHiddenLayers)
        func flops(tokens n: Int) -> Double {
            layers * ((8 * d * d + 4 * d * ff) * Double(n) + 4 * Double(n * n) * d)
        }
        let threadCounts = options.threads > 1 ? [1, options.threads] : [1]

        // One short sentence, end to end.
        let short = "The quick brown fox jumps over the lazy dog."
        let shortTokens = embedder.encode(short).count
        for t in threadCounts {
            let compute = benchCompute(threads: t)
            progress("bert: one short sentence, \(t) thread(s)...")
            let times = measure(warmup: 5, minReps: 20, minSeconds: options.quick ? 0.3 : 1.5) {
                _ = try! embedder.embed(short, compute: compute)  // the bench's own sentences: valid input
            }
            let ms = median(times) * 1e3
            emit(
                [("name", "bert one short sentence"), ("threads", t), ("tokens", shortTokens), ("ms", ms), ("reps", times.count)],
                row: String(format: "one short sentence (%d tokens), %d thread(s): %.2f ms (median of %d)", shortTokens, t, ms, times.count))
        }

        // 256 sentences of 20-40 words at batch 32.
        let sentences = benchSentences(count: 256, seed: 2024)
        let encodings = sentences.map { embedder.encode($0) }
        let tokenizeTimes = measure(warmup: 1, minReps: 5, minSeconds: options.quick ? 0.1 : 0.5) {
            _ = sentences.map { embedder.encode($0) }
        }
        let tokMs = median(tokenizeTimes) * 1e3
        emit(
            [("name", "bert tokenize 256 sentences"), ("ms", tokMs), ("sentences_per_s", 256 / tokMs * 1e3), ("reps", tokenizeTimes.count)],
            row: String(format: "tokenizer alone: 256 sentences in %.2f ms (%.0f sentences/s, 1 thread)", tokMs, 256 / tokMs * 1e3))
        let lengths = encodings.map(\.count)
        let work = lengths.reduce(0.0) { $0 + flops(tokens: $1) }
        let meanTokens = Double(lengths.reduce(0, +)) / Double(lengths.count)
        if !options.json {
            out(
                String(
                    format: "256 sentences of 20-40 words: %.1f tokens each on average (%d-%d); %.1f GFLOP per pass (batches run without padding)",
                    meanTokens, lengths.min() ?? 0, lengths.max() ?? 0, work * 1e-9))
        }
        for t in threadCounts {
            let compute = benchCompute(threads: t)
            progress("bert: 256 sentences at batch 32, \(t) thread(s)...")
            let times = measure(warmup: 1, minReps: options.quick ? 2 : 4, minSeconds: options.quick ? 0.5 : 3) {
                _ = try! embedder.embed(sentences, batchSize: 32, compute: compute)  // valid input
            }
            let s = median(times)
            let rate = 256 / s, gf = work / s * 1e-9
            let peak = t == 1 ? peak1 : peakN
            // What this work would allow at exactly the measured FMA peak: no implementation can exceed it.
            let ceiling = peak > 0 ? peak * 1e9 / (work / 256) : 0
            emit(
                [
                    ("name", "bert batch 32 sentences per second"), ("threads", t), ("sentences_per_s", rate), ("ms", s * 1e3),
                    ("mean_tokens", meanTokens), ("gflops", gf), ("peak_gflops", peak), ("peak_ceiling_sentences_per_s", ceiling),
                    ("reps", times.count),
                ],
                row: String(
                    format:
                        "batch 32, 256 sentences, %d thread(s): %.0f sentences/s (%.0f ms), %.1f GFLOP/s = %.0f%% of peak (at 100%% of peak: %.0f sentences/s)",
                    t, rate, s * 1e3, gf, peak > 0 ? gf / peak * 100 : 0, ceiling))
        }
    }
}

/// Wall-clock seconds of one call.
private func time(_ body: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
}
