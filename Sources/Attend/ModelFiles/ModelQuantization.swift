// `attend quantize`: a model folder's block projections as int8 weights. The new folder
// holds one model.safetensors (the quantized weights as I8 `<name>` beside `<name>_scale`,
// every other tensor byte for byte as stored), config.json with a `quantization_config`
// added, and every other file of the folder copied (tokenizer, generation and
// sentence-transformers files).

import Foundation

/// What `attend quantize` did.
package struct QuantizationReport: Sendable {
    /// The tensors written as int8, in the order quantized.
    package var quantized: [String] = []
    /// Whether a separate int8 output head was added for a head tied to the embedding table.
    package var addedHead = false
    /// Bytes of the quantized weights before (as stored) and after (values and scales).
    package var bytesBefore = 0, bytesAfter = 0
    /// Bytes of the whole new model.safetensors.
    package var fileBytes = 0
    /// Files copied beside the weights and config.json.
    package var copiedFiles: [String] = []
}

/// Quantizes model folders to int8 weights (see ``quantize(model:out:scheme:)``).
package enum ModelQuantization {
    /// The key config.json gets, and the `quant_method` in it.
    package static let configKey = "quantization_config", method = "attend-int8"

    /// Whether `name` (a tensor of `[out, in]` shape) is a projection inside a transformer
    /// block that the int8 scheme covers: a `.weight` under `layer.N`, `layers.N` or
    /// `block.N` that is not a norm, an embedding or a position table. GPT-2's Conv1D weights
    /// (`h.N.attn.c_attn`, ... stored `[in, out]`) are left as stored.
    package static func isBlockProjection(_ name: String) -> Bool {
        guard name.hasSuffix(".weight") else { return false }
        let parts = name.split(separator: ".")
        let inBlock = zip(parts, parts.dropFirst()).contains { ["layer", "layers", "block"].contains($0.0) && Int($0.1) != nil }
        guard inBlock else { return false }
        let lower = name.lowercased()
        for word in ["norm", "embed", "relative_attention_bias", "position", "shared"] where lower.contains(word) { return false }
        return true
    }

    /// The embedding table a tied output head multiplies by, per `model_type`, for the model
    /// families whose loaders take an int8 `lm_head.weight` (T5, Marian, Llama, Mistral,
    /// Qwen2); nil for the others (BERT has no generation head, GPT-2 is left as stored).
    static func tiedHeadSource(modelType: String?, names: Set<String>) -> String? {
        switch modelType {
        case "t5": return names.contains("shared.weight") ? "shared.weight" : nil
        case "marian":
            return ["model.decoder.embed_tokens.weight", "model.shared.weight"].first { names.contains($0) }
        case "llama", "mistral", "qwen2": return names.contains("model.embed_tokens.weight") ? "model.embed_tokens.weight" : nil
        default: return nil
        }
    }

    /// Writes `out`: `model`'s block projections (``isBlockProjection(_:)``) and output head
    /// quantized with `scheme` (per channel with float32 scales, or per 32 inputs with
    /// binary16 scales), every other tensor as stored, config.json with a
    /// `quantization_config` and the folder's other files copied. A head tied to the
    /// embedding table (T5, Marian, Llama-family) gets its own int8 `lm_head.weight` (the
    /// table itself stays float for the lookups): decoding reads the head once per token, as
    /// many bytes as the rest of a small model, so leaving it float would cap the gain.
    /// Throws `ModelFileError` / `SafeTensorsError` naming the file at fault: a missing or
    /// unreadable folder, config.json or weights, a folder already quantized, `out` that is
    /// `model` itself, a file, or a non-empty folder. Cost: one pass over the weights; memory
    /// about a quarter of the quantized weights' float32 size.
    package static func quantize(model: URL, out: URL, scheme: Int8Scheme) throws -> QuantizationReport {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: model.path, isDirectory: &isDir) else { throw ModelFileError.missingFile(path: model.path) }
        guard isDir.boolValue else { throw ModelFileError.unreadable(path: model.path, reason: "not a folder") }
        let source = try resolveModelDirectory(model)
        let configURL = source.appendingPathComponent("config.json")
        guard fm.fileExists(atPath: configURL.path) else { throw ModelFileError.missingFile(path: configURL.path) }
        let configText: String
        let config: [String: Any]
        do {
            let data = try Data(contentsOf: configURL)
            guard let text = String(data: data, encoding: .utf8) else {
                throw ModelFileError.invalidJSON(path: configURL.path, offset: 0, reason: "not valid UTF-8")
            }
            configText = text
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ModelFileError.invalidJSON(path: configURL.path, offset: 0, reason: "not a JSON object")
            }
            config = object
        } catch let e as ModelFileError {
            throw e
        } catch {
            throw ModelFileError.unreadable(path: configURL.path, reason: "\(error.localizedDescription)")
        }
        if config[configKey] != nil {
            throw ModelFileError.unsupported(path: configURL.path, what: "the folder is already quantized (config.json has \(configKey))")
        }
        // The output folder: new, or an empty folder; never the model itself.
        let outPath = out.standardizedFileURL.resolvingSymlinksInPath().path
        if outPath == source.standardizedFileURL.resolvingSymlinksInPath().path || outPath == model.standardizedFileURL.resolvingSymlinksInPath().path {
            throw ModelFileError.unsupported(path: out.path, what: "--out must be a new folder, not the model folder")
        }
        if fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ModelFileError.unsupported(path: out.path, what: "--out names a file, not a folder") }
            let contents = (try? fm.contentsOfDirectory(atPath: out.path)) ?? []
            guard contents.isEmpty else { throw ModelFileError.unsupported(path: out.path, what: "--out is a folder that is not empty") }
        } else {
            do {
                try fm.createDirectory(at: out, withIntermediateDirectories: true)
            } catch {
                throw ModelFileError.unreadable(path: out.path, reason: "cannot create the folder: \(error.localizedDescription)")
            }
        }

        let checkpoint = try SafeTensorsCheckpoint(directory: source)
        let names = Set(checkpoint.tensorNames)
        var report = QuantizationReport()
        var tensors: [StoredTensor] = []
        let scalesF16 = scheme == .group32
        func quantized(_ name: String, from sourceName: String) throws -> [StoredTensor] {
            let info = checkpoint.info(sourceName)!
            let weight = try checkpoint.tensor(sourceName)
            let q = QuantizedWeight.quantize(weight, scheme: scheme, scalesF16: scalesF16)
            report.quantized.append(name)
            report.bytesBefore += info.elementCount * info.dtype.byteSize
            report.bytesAfter += q.storedByteCount
            return [
                StoredTensor(name: name, dtype: .I8, shape: q.shape, bytes: q.q),
                StoredTensor(name: name + scaleSuffix, dtype: scalesF16 ? .F16 : .F32, shape: scheme.scaleShape(n: q.n, k: q.k), bytes: q.scales),
            ]
        }
        for name in checkpoint.tensorNames {
            guard let stored = checkpoint.storedTensor(name) else { continue }
            let floatMatrix = stored.info.shape.count == 2 && [.F32, .F16, .BF16].contains(stored.info.dtype)
            if floatMatrix && (isBlockProjection(name) || name == "lm_head.weight") && !names.contains(name + scaleSuffix) {
                tensors += try quantized(name, from: name)
            } else {
                tensors.append(StoredTensor(name: name, dtype: stored.info.dtype, shape: stored.info.shape, bytes: stored.bytes))
            }
        }
        let tied = (config["tie_word_embeddings"] as? Bool) ?? true
        if tied && !names.contains("lm_head.weight"),
            let table = tiedHeadSource(modelType: config["model_type"] as? String, names: names)
        {
            tensors += try quantized("lm_head.weight", from: table)
            report.addedHead = true
        }
        let weightsURL = out.appendingPathComponent(SafeTensorsCheckpoint.singleFileName)
        try SafeTensorsWriter.writeStored(tensors, metadata: ["format": "pt"], to: weightsURL)
        report.fileBytes = (try? fm.attributesOfItem(atPath: weightsURL.path)[.size] as? Int) ?? 0

        // config.json: the original text with quantization_config added before its last brace.
        guard let close = configText.lastIndex(of: "}") else {
            throw ModelFileError.invalidJSON(path: configURL.path, offset: 0, reason: "no closing brace")
        }
        let head = configText[..<close].trimmingCharacters(in: .whitespacesAndNewlines)
        let entry =
            "\"\(configKey)\": {\"quant_method\": \"\(method)\", \"scheme\": \"\(scheme.rawValue)\", \"bits\": 8, \"symmetric\": true, "
            + "\"group_size\": \(scheme == .group32 ? "32" : "null"), \"scale_dtype\": \"\(scalesF16 ? "float16" : "float32")\", "
            + "\"scale_suffix\": \"\(scaleSuffix)\", \"activations\": \"dynamic uint8 per 32 inputs with scale and offset\", "
            + "\"quantized_tensors\": \(report.quantized.count)}"
        let newConfig = head + (head.hasSuffix("{") ? "\n  " : ",\n  ") + entry + "\n}\n"
        do {
            try Data(newConfig.utf8).write(to: out.appendingPathComponent("config.json"), options: .atomic)
        } catch {
            throw ModelFileError.unreadable(path: out.appendingPathComponent("config.json").path, reason: "cannot write: \(error.localizedDescription)")
        }
        report.copiedFiles = try copyOtherFiles(from: source, to: out, relative: "")
        return report
    }

    /// The suffix of a quantized weight's scale tensor: `<name>_scale`.
    package static let scaleSuffix = "_scale"

    /// Copies every regular file (links followed) and folder of `from` except the weights
    /// (safetensors files and index, other checkpoint formats) and config.json at the top.
    private static func copyOtherFiles(from: URL, to: URL, relative: String) throws -> [String] {
        let fm = FileManager.default
        let skipped: Set<String> = ["pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "model.onnx", "rust_model.ot"]
        var copied: [String] = []
        let entries = ((try? fm.contentsOfDirectory(atPath: from.path)) ?? []).sorted()
        for name in entries where !name.hasPrefix(".") {
            let src = from.appendingPathComponent(name).resolvingSymlinksInPath()
            let dst = to.appendingPathComponent(name)
            let rel = relative.isEmpty ? name : relative + "/" + name
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: src.path, isDirectory: &isDir) else { continue }
            if isDir.boolValue {
                do { try fm.createDirectory(at: dst, withIntermediateDirectories: true) } catch {
                    throw ModelFileError.unreadable(path: dst.path, reason: "cannot create the folder: \(error.localizedDescription)")
                }
                copied += try copyOtherFiles(from: src, to: dst, relative: rel)
                continue
            }
            if relative.isEmpty && (name == "config.json" || name.hasSuffix(".safetensors") || name == SafeTensorsCheckpoint.indexFileName) { continue }
            if skipped.contains(name) || name.hasSuffix(".bin") && name.hasPrefix("pytorch_model") { continue }
            do {
                try Data(contentsOf: src).write(to: dst, options: .atomic)
            } catch {
                throw ModelFileError.unreadable(path: src.path, reason: "cannot copy to \(dst.path): \(error.localizedDescription)")
            }
            copied.append(rel)
        }
        return copied
    }
}
