import Attend
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Gives the allocator's freed memory back to the system (glibc keeps freed blocks below its
/// mmap threshold, which rises to 32 MiB, resident), so that a growth measured next counts
/// new memory, not reused blocks.
private func returnFreedMemory() {
    #if canImport(Glibc)
        // malloc_trim is glibc's and not in the Glibc module: looked up by name.
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: Trim.self)(0) }
    #endif
}

extension Bench {
    /// Resident memory of int8 weights: a t5-small-shaped folder (6 + 6 layers, d 512, ff
    /// 2048, vocabulary 32128, tied head; random float32 weights) written to a temporary
    /// folder, quantized with each scheme (`attend quantize`), and each folder loaded with
    /// `Seq2SeqModel(directory:)` (int8 folders first, so the float32 run cannot reuse their
    /// freed memory): the growth of this process's resident memory after loading and after
    /// encoding a 64-token source and decoding 4 greedy tokens (every weight read), against
    /// the size of the folder's model.safetensors. Freed memory is returned to the system
    /// (`malloc_trim`) before each load, so the writing and quantizing do not hide the growth.
    func quantizedMemory() {
        let fm = FileManager.default
        let tmp = fm.temporaryDirectory.appendingPathComponent("attend-bench-int8-memory-\(getpid())")
        defer { try? fm.removeItem(at: tmp) }
        let f32 = tmp.appendingPathComponent("float32")
        progress("quantized: writing a t5-small-shaped float32 folder to \(f32.path)...")
        var folders: [(String, URL)] = []
        do {
            try writeRandomT5Small(directory: f32, seed: 181)
            for scheme in Int8Scheme.allCases {
                progress("quantized: attend quantize --scheme \(scheme.rawValue)...")
                let dir = tmp.appendingPathComponent(scheme.rawValue)
                _ = try ModelQuantization.quantize(model: f32, out: dir, scheme: scheme)
                folders.append((scheme.rawValue, dir))
            }
        } catch {
            out("quantized memory: could not write or quantize the t5-small-shaped folder: \(error)")
            return
        }
        folders.append(("float32", f32))
        if !options.json {
            out("t5-small shape, resident memory growth of loading each folder (and after one 64-token encode + 4 greedy tokens) vs its model.safetensors")
        }
        var rng = SplitMix64(state: 182)
        let source = (0..<64).map { _ in Int.random(in: 2..<32128, using: &rng) }
        var config = GenerationConfig(maxNewTokens: 4, eosTokenID: 1)
        config.minNewTokens = 4
        config.padTokenID = 0
        for (name, dir) in folders {
            let fileMiB = Double((try? fm.attributesOfItem(atPath: dir.appendingPathComponent("model.safetensors").path)[.size] as? Int) ?? 0) / 1_048_576
            returnFreedMemory()
            let before = currentResidentMiB()
            let loaded: Double, used: Double
            do {
                let model = try Seq2SeqModel(directory: dir)
                loaded = currentResidentMiB() - before
                _ = try model.generate(sources: [source], config: config)
                used = currentResidentMiB() - before
            } catch {
                out("quantized memory \(name): \(error)")
                continue
            }
            emit(
                [
                    ("name", "int8 t5-small resident"), ("weights", name), ("load_growth_mib", loaded), ("run_growth_mib", used),
                    ("file_mib", fileMiB), ("ratio", loaded / fileMiB), ("ms", 0.0),
                ],
                row: String(
                    format: "resident %-13@ load +%6.1f MiB, after decoding +%6.1f MiB; model.safetensors %6.1f MiB (load / file %.3f)",
                    name, loaded, used, fileMiB, loaded / fileMiB))
        }
    }
}

/// Writes a t5-small-shaped folder (config.json, model.safetensors in F32, tied head) with
/// random weights (uniform, scaled by 1/sqrt(in); norms 1) into `directory`, streaming each
/// tensor in chunks.
private func writeRandomT5Small(directory: URL, seed: UInt64) throws {
    let (d, ff, heads, dkv, layers, vocabulary, buckets) = (512, 2048, 8, 64, 6, 32128, 32)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let config: [String: Any] = [
        "architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "d_model": d, "d_ff": ff, "d_kv": dkv, "num_heads": heads,
        "num_layers": layers, "num_decoder_layers": layers, "vocab_size": vocabulary, "relative_attention_num_buckets": buckets,
        "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu", "tie_word_embeddings": true,
        "decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "is_encoder_decoder": true,
    ]
    try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: directory.appendingPathComponent("config.json"))
    let inner = heads * dkv
    // (name, shape, scale; nil scale: a norm of ones)
    var tensors: [(String, [Int], Float?)] = [("shared.weight", [vocabulary, d], 1)]
    func attention(_ p: String, relative: Bool) {
        let s = 1 / Float(d).squareRoot()
        tensors += [("\(p).q.weight", [inner, d], s), ("\(p).k.weight", [inner, d], s), ("\(p).v.weight", [inner, d], s)]
        tensors.append(("\(p).o.weight", [d, inner], 1 / Float(inner).squareRoot()))
        if relative { tensors.append(("\(p).relative_attention_bias.weight", [buckets, heads], 1)) }
    }
    func feedForward(_ p: String) {
        tensors += [("\(p).DenseReluDense.wi.weight", [ff, d], 1 / Float(d).squareRoot()), ("\(p).DenseReluDense.wo.weight", [d, ff], 1 / Float(ff).squareRoot())]
        tensors.append(("\(p).layer_norm.weight", [d], nil))
    }
    for i in 0..<layers {
        let b = "encoder.block.\(i).layer"
        attention("\(b).0.SelfAttention", relative: i == 0)
        tensors.append(("\(b).0.layer_norm.weight", [d], nil))
        feedForward("\(b).1")
    }
    tensors.append(("encoder.final_layer_norm.weight", [d], nil))
    for i in 0..<layers {
        let b = "decoder.block.\(i).layer"
        attention("\(b).0.SelfAttention", relative: i == 0)
        tensors.append(("\(b).0.layer_norm.weight", [d], nil))
        attention("\(b).1.EncDecAttention", relative: false)
        tensors.append(("\(b).1.layer_norm.weight", [d], nil))
        feedForward("\(b).2")
    }
    tensors.append(("decoder.final_layer_norm.weight", [d], nil))
    _ = try writeSafeTensors(directory.appendingPathComponent("model.safetensors"), tensors.map { ($0.0, $0.1) }, dtype: "F32", elementSize: 4) {
        i, handle in
        let (_, shape, scale) = tensors[i]
        var rng = SplitMix64(state: seed &+ UInt64(i))
        var left = shape.reduce(1, *)
        var buffer = [Float](repeating: 0, count: 1 << 18)
        while left > 0 {
            let n = min(buffer.count, left)
            for j in 0..<n { buffer[j] = scale.map { (Float(rng.next() >> 40) * 0x1p-24 * 2 - 1) * $0 } ?? 1 }
            buffer.withUnsafeBytes { handle.write(Data($0.prefix(n * 4))) }
            left -= n
        }
    }
}

/// Writes a safetensors file of `tensors` (name, shape), all of `dtype` (`elementSize` bytes
/// each), in order: the header, then `body(i, handle)` writes tensor i's bytes. Returns the
/// file's size in bytes.
func writeSafeTensors(
    _ url: URL, _ tensors: [(String, [Int])], dtype: String, elementSize: Int, body: (Int, FileHandle) throws -> Void
) throws -> Int {
    var header = "{"
    var offset = 0
    for (i, (name, shape)) in tensors.enumerated() {
        let bytes = shape.reduce(1, *) * elementSize
        header += "\(i == 0 ? "" : ",")\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
        offset += bytes
    }
    header += "}"
    while (header.utf8.count + 8) % 8 != 0 { header += " " }
    guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
    }
    let handle = try FileHandle(forWritingTo: url)
    defer { try? handle.close() }
    var length = UInt64(header.utf8.count).littleEndian
    handle.write(Data(bytes: &length, count: 8))
    handle.write(Data(header.utf8))
    for i in tensors.indices { try body(i, handle) }
    return 8 + header.utf8.count + offset
}

extension Bench {
    /// all-MiniLM-L6-v2 (when scripts/fetch-minilm.sh fetched it) loaded with BF16 and F16
    /// weights (`weightPrecision`, rounded at load) against the float32 folder: the worst and
    /// mean cosine of their embeddings of the golden texts
    /// (Tests/BERTTests/Fixtures/minilm_golden.json), in one batch.
    func halfPrecisionCosine() {
        let minilm = miniLMDirectory()
        let goldenURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tests/BERTTests/Fixtures/minilm_golden.json")
        guard FileManager.default.fileExists(atPath: minilm.appendingPathComponent("model.safetensors").path),
            let golden = try? JSONSerialization.jsonObject(with: Data(contentsOf: goldenURL)) as? [String: Any],
            let cases = golden["cases"] as? [[String: Any]]
        else {
            if !options.json { out("all-MiniLM-L6-v2 16-bit: no folder at \(minilm.path) (scripts/fetch-minilm.sh), skipped") }
            return
        }
        let texts = cases.compactMap { $0["text"] as? String }
        do {
            let reference = try SentenceEmbedder(directory: minilm).embed(texts).scalars
            for precision in [WeightPrecision.bfloat16, .float16] {
                let e = try SentenceEmbedder(directory: minilm, weightPrecision: precision)
                let got = try e.embed(texts).scalars
                let d = e.dimension
                let cosines = (0..<texts.count).map { i in
                    cosine(Array(reference[(i * d)..<((i + 1) * d)]), Array(got[(i * d)..<((i + 1) * d)]))
                }
                let worst = cosines.min() ?? 0, mean = cosines.reduce(0, +) / Double(max(1, cosines.count))
                emit(
                    [("name", "half minilm cosine"), ("precision", precision.rawValue), ("texts", texts.count), ("worst_cosine", worst), ("mean_cosine", mean), ("ms", 0.0)],
                    row: String(
                        format: "all-MiniLM-L6-v2 %@ weights: cosine to float32 over %d golden texts: worst %.7f, mean %.7f (target >= 0.99999)",
                        precision.rawValue, texts.count, worst, mean))
            }
        } catch {
            out("all-MiniLM-L6-v2 16-bit: \(error)")
        }
    }
}
