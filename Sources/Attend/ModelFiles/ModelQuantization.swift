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
    /// The modules (weight names without `.weight`) the scheme covers that stayed 16-bit
    /// (config.json's `modules_to_not_convert`), in checkpoint order, and the bytes their
    /// weights take in the new file.
    package var kept: [String] = []
    package var keptBytes = 0
    /// Each covered matrix's relative error `‖W − Q(W)‖ / ‖W‖` under the scheme (Frobenius
    /// norms), by tensor name, kept ones included.
    package var relativeErrors: [String: Double] = [:]

    /// The fraction of the covered weights' bytes (int8 values and scales plus the kept
    /// 16-bit matrices) that stayed 16-bit.
    package var keptByteFraction: Double { keptBytes == 0 ? 0 : Double(keptBytes) / Double(keptBytes + bytesAfter) }
}

/// Which matrices `attend quantize` leaves 16-bit (float16; BF16 and F16 as stored) instead
/// of int8: the attention value projections when `valueProjections` (see
/// ``isValueProjection(_:)``), those whose relative error under the scheme,
/// `‖W − Q(W)‖ / ‖W‖` (Frobenius norms), is above `maxRelativeError`, and those named in
/// `modules`.
///
/// Value projections: a value's error reaches the attention output unweakened (each output
/// is a weighted mean of values; errors in queries and keys only shift the softmax weights),
/// and with few tokens nothing averages it out. On all-MiniLM-L6-v2 (BENCHMARKS.md) the six
/// value matrices, 8% of the covered weights, carry about half of the int8 error of its
/// worst text (the empty one, two tokens): keeping them 16-bit takes its cosine to float32
/// from 0.99893 to about 0.9996 per 32 inputs, and per channel (with the six FFN output
/// matrices) from 0.99900 to about 0.9995 (`Benchmarks/scripts/int8_error_model.py`).
/// llama.cpp's mixed quantizations give `attn_v` more bits for the same reason. The fused
/// QKV projection then holds int8 query and key
/// rows beside 16-bit value rows (``WeightFormat/mixed``); decoding reads the value rows at
/// two bytes a weight (t5-small: about 4% more bytes per token).
///
/// The relative error is
/// the relative output error `‖(W − Q(W)) x‖ / ‖W x‖` expected for inputs `x` with
/// uncorrelated components of equal variance; a row of Gaussian weights gives about
/// `(max|w| / rms(w)) / 440` per channel (3 to 3.5 times the rms for 384 to 1536 inputs:
/// 0.007 to 0.008), so the default 0.01 keeps the matrices whose rows' absmax is typically
/// above about 4.4 times their rms (outlier columns), where one scale per row leaves most
/// weights a few steps wide. On all-MiniLM-L6-v2 per channel it keeps the six FFN output
/// matrices (0.011 to 0.021; every other matrix is under 0.009), per 32 inputs none (all
/// under 0.007).
package struct KeepFloatRule: Sendable, Equatable {
    /// The relative error above which a matrix stays 16-bit; nil: none for its error.
    package var maxRelativeError: Double?
    /// Modules (`encoder.layer.2.output.dense`, without `.weight`) kept 16-bit regardless.
    package var modules: Set<String>
    /// Whether the attention value projections stay 16-bit.
    package var valueProjections: Bool

    package init(maxRelativeError: Double?, modules: Set<String> = [], valueProjections: Bool = false) {
        self.maxRelativeError = maxRelativeError
        self.modules = modules
        self.valueProjections = valueProjections
    }

    /// The default rule (`--keep-float auto`): the value projections, and relative error
    /// above 0.01.
    package static let `default` = KeepFloatRule(maxRelativeError: 0.01, valueProjections: true)
    /// Every covered matrix int8.
    package static let none = KeepFloatRule(maxRelativeError: nil)

    /// Whether `name` (a weight, `….weight`) is an attention value projection: its last
    /// module is `value` (BERT), `v` (T5) or `v_proj` (Marian, Llama, Mistral, Qwen2).
    package static func isValueProjection(_ name: String) -> Bool {
        let parts = name.split(separator: ".")
        guard parts.count >= 2, parts.last == "weight" else { return false }
        return ["value", "v", "v_proj"].contains(parts[parts.count - 2])
    }
}

/// Quantizes model folders to int8 weights (see ``quantize(model:out:scheme:keep:)``).
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
    /// binary16 scales; each scale chosen for the least squared error, see
    /// `QuantizedWeight.quantize`), except the matrices `keep` leaves 16-bit (float32 ones
    /// rounded to float16 when every value stays finite, else kept float32; 16-bit ones as
    /// stored), listed as `modules_to_not_convert` in config.json's `quantization_config`;
    /// every other tensor as stored and the folder's other files copied. A head tied to the
    /// embedding table (T5, Marian, Llama-family) gets its own int8 `lm_head.weight` (the
    /// table itself stays float for the lookups): decoding reads the head once per token, as
    /// many bytes as the rest of a small model, so leaving it float would cap the gain.
    /// Throws `ModelFileError` / `SafeTensorsError` naming the file at fault: a missing or
    /// unreadable folder, config.json or weights, a folder already quantized, `out` that is
    /// `model` itself, a file, or a non-empty folder, or a module of `keep` that is no
    /// covered matrix; `CheckpointError.invalidConfig` naming a tensor that cannot be
    /// quantized (a non-finite element, more inputs than the int8 kernels take, a tied head's
    /// table that is no float matrix). Cost: the scale search's 51 passes over each covered
    /// weight (under a second per 10 M weights on one core; rows split over
    /// `Compute.default.threads`), one more for its relative error; memory about a quarter of
    /// the quantized weights' float32 size plus one float32 matrix.
    package static func quantize(model: URL, out: URL, scheme: Int8Scheme, keep: KeepFloatRule = .default) throws -> QuantizationReport {
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
        // A tied head's table is read as the head's [vocabulary, d] weight: a float matrix, or
        // an error naming it (checked before any work).
        let tied = (config["tie_word_embeddings"] as? Bool) ?? true
        let tiedTable =
            tied && !names.contains("lm_head.weight") ? tiedHeadSource(modelType: config["model_type"] as? String, names: names) : nil
        if let table = tiedTable, let info = checkpoint.info(table), !(info.shape.count == 2 && [.F32, .F16, .BF16].contains(info.dtype)) {
            throw CheckpointError.invalidConfig(
                "the tied output head's table '\(table)' is \(info.dtype.rawValue) of shape \(info.shape), not a float32 or 16-bit matrix [vocabulary, d]"
            )
        }
        var report = QuantizationReport()
        var tensors: [StoredTensor] = []
        let scalesF16 = scheme == .group32
        /// The int8 tensors of `sourceName` written as `name`, or nil when `keep` leaves it 16-bit.
        func quantized(_ name: String, from sourceName: String) throws -> [StoredTensor]? {
            let info = checkpoint.info(sourceName)!
            let weight = try checkpoint.tensor(sourceName)
            let q = try QuantizedWeight.quantize(weight, scheme: scheme, scalesF16: scalesF16, name: sourceName, blocked: false)
            let error = relativeError(weight, q)
            report.relativeErrors[name] = error
            let module = String(name.dropLast(".weight".count))
            if keep.modules.contains(module) || keep.maxRelativeError.map({ error > $0 }) == true
                || (keep.valueProjections && KeepFloatRule.isValueProjection(sourceName))
            {
                return nil
            }
            report.quantized.append(name)
            report.bytesBefore += info.elementCount * info.dtype.byteSize
            report.bytesAfter += q.storedByteCount
            return [
                StoredTensor(name: name, dtype: .I8, shape: q.shape, bytes: q.rowMajorValues()),
                StoredTensor(name: name + scaleSuffix, dtype: scalesF16 ? .F16 : .F32, shape: scheme.scaleShape(n: q.n, k: q.k), bytes: q.scales),
            ]
        }
        var covered: Set<String> = []
        for name in checkpoint.tensorNames {
            guard let stored = checkpoint.storedTensor(name) else { continue }
            let floatMatrix = stored.info.shape.count == 2 && [.F32, .F16, .BF16].contains(stored.info.dtype)
            if floatMatrix && (isBlockProjection(name) || name == "lm_head.weight") && !names.contains(name + scaleSuffix) {
                covered.insert(String(name.dropLast(".weight".count)))
                if let q = try quantized(name, from: name) {
                    tensors += q
                } else {
                    let kept = try keptMatrix(name, stored: stored, checkpoint: checkpoint)
                    tensors.append(kept)
                    report.kept.append(String(name.dropLast(".weight".count)))
                    report.keptBytes += kept.bytes.count
                }
            } else {
                tensors.append(StoredTensor(name: name, dtype: stored.info.dtype, shape: stored.info.shape, bytes: stored.bytes))
            }
        }
        if let table = tiedTable {
            covered.insert("lm_head")
            // A head the rule keeps float is not added: the tied table serves as it does.
            if let q = try quantized("lm_head.weight", from: table) {
                tensors += q
                report.addedHead = true
            }
        }
        if let unknown = keep.modules.subtracting(covered).sorted().first {
            throw ModelFileError.unsupported(
                path: source.path, what: "a module to keep 16-bit, '\(unknown)', that is no matrix quantize covers (a block projection or the output head)")
        }
        let weightsURL = out.appendingPathComponent(SafeTensorsCheckpoint.singleFileName)
        try SafeTensorsWriter.writeStored(tensors, metadata: ["format": "pt"], to: weightsURL)
        report.fileBytes = (try? fm.attributesOfItem(atPath: weightsURL.path)[.size] as? Int) ?? 0

        // config.json: the original text with quantization_config added before its last brace.
        guard let close = configText.lastIndex(of: "}") else {
            throw ModelFileError.invalidJSON(path: configURL.path, offset: 0, reason: "no closing brace")
        }
        let head = configText[..<close].trimmingCharacters(in: .whitespacesAndNewlines)
        let keptList = (try? JSONSerialization.data(withJSONObject: report.kept, options: [.withoutEscapingSlashes])).flatMap { String(data: $0, encoding: .utf8) } ?? "[]"
        let entry =
            "\"\(configKey)\": {\"quant_method\": \"\(method)\", \"scheme\": \"\(scheme.rawValue)\", \"bits\": 8, \"symmetric\": true, "
            + "\"group_size\": \(scheme == .group32 ? "32" : "null"), \"scale_dtype\": \"\(scalesF16 ? "float16" : "float32")\", "
            + "\"scale_suffix\": \"\(scaleSuffix)\", \"activations\": \"dynamic uint8 per 32 inputs with scale and offset\", "
            + "\"quantized_tensors\": \(report.quantized.count), \"modules_to_not_convert\": \(keptList), "
            + "\"keep_float_max_relative_error\": \(keep.maxRelativeError.map { "\($0)" } ?? "null"), "
            + "\"keep_float_value_projections\": \(keep.valueProjections)}"
        let newConfig = head + (head.hasSuffix("{") ? "\n  " : ",\n  ") + entry + "\n}\n"
        do {
            try Data(newConfig.utf8).write(to: out.appendingPathComponent("config.json"), options: .atomic)
        } catch {
            throw ModelFileError.unreadable(path: out.appendingPathComponent("config.json").path, reason: "cannot write: \(error.localizedDescription)")
        }
        report.copiedFiles = try copyOtherFiles(from: source, to: out, relative: "")
        return report
    }

    /// `‖W − Q(W)‖ / ‖W‖` (Frobenius norms, in Double; 0 for an all-zero W). Cost: one pass.
    static func relativeError(_ weight: Tensor, _ q: QuantizedWeight) -> Double {
        var diff = 0.0, norm = 0.0
        let rowBuffer = UnsafeMutablePointer<Float>.allocate(capacity: max(q.k, 1))
        defer { rowBuffer.deallocate() }
        weight.withUnsafeBufferPointer { w in
            for j in 0..<q.n {
                q.dequantizeRows(j..<(j + 1), into: rowBuffer)
                for p in 0..<q.k {
                    let x = Double(w[j * q.k + p]), d = x - Double(rowBuffer[p])
                    diff += d * d
                    norm += x * x
                }
            }
        }
        return norm == 0 ? 0 : (diff / norm).squareRoot()
    }

    /// The matrix `name` as kept 16-bit: F16 or BF16 as stored, float32 rounded to float16
    /// when every value stays finite (else as stored).
    private static func keptMatrix(_ name: String, stored: (info: SafeTensorsInfo, bytes: RawBytes), checkpoint: SafeTensorsCheckpoint) throws -> StoredTensor {
        let asStored = StoredTensor(name: name, dtype: stored.info.dtype, shape: stored.info.shape, bytes: stored.bytes)
        guard stored.info.dtype == .F32 else { return asStored }
        let t = try checkpoint.tensor(name)
        var finite = true
        let bytes = t.withUnsafeBufferPointer { w in
            RawBytes(count: 2 * w.count) { out in
                for (i, x) in w.enumerated() {
                    let h = HalfType.halfBits(x)
                    if h & 0x7C00 == 0x7C00 { finite = false }
                    out.storeBytes(of: h.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            }
        }
        return finite ? StoredTensor(name: name, dtype: .F16, shape: stored.info.shape, bytes: bytes) : asStored
    }

    /// Checks the `modules_to_not_convert` of an `attend quantize` folder's config.json (at
    /// `directory`) against `checkpoint`: each entry must be a string naming a module whose
    /// `<name>.weight` is a float (F32, F16 or BF16) matrix without an int8 scale, of those
    /// quantize covers (``isBlockProjection(_:)`` or the output head). Nothing to
    /// check when config.json is absent or has no `quantization_config` of this quantizer.
    /// Throws `ModelFileError` (config.json unreadable, the list or an entry of another JSON
    /// type) or `CheckpointError` (a named tensor missing or not a float matrix), naming it.
    /// Cost: one read of config.json, O(1) per entry.
    static func checkKeptModules(directory: URL, checkpoint: SafeTensorsCheckpoint) throws {
        let url = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let fields = try JSONFields(try readModelJSON(url), path: url.path)
        guard let q = try fields.object(configKey), try q.string("quant_method") == method,
            let items = try q.array("modules_to_not_convert")
        else { return }
        for (i, item) in items.enumerated() {
            guard let module = item.stringValue else {
                throw q.fail("modules_to_not_convert", "entry \(i) is \(item.typeName), expected a module name (string)")
            }
            let name = module + ".weight"
            guard isBlockProjection(name) || name == "lm_head.weight" else {
                throw CheckpointError.invalidConfig(
                    "config.json names '\(module)' in modules_to_not_convert, which is no block projection or output head")
            }
            guard let info = checkpoint.info(name) else {
                throw CheckpointError.invalidConfig("config.json names '\(module)' in modules_to_not_convert, but the checkpoint has no '\(name)'")
            }
            guard info.shape.count == 2, [.F32, .F16, .BF16].contains(info.dtype), checkpoint.info(name + scaleSuffix) == nil else {
                throw CheckpointError.invalidConfig(
                    "config.json names '\(module)' in modules_to_not_convert, but '\(name)' is \(info.dtype) \(info.shape)\(checkpoint.info(name + scaleSuffix) == nil ? "" : " with an int8 scale"), not a float matrix")
            }
        }
    }

    /// The checkpoint of the model folder `directory` (see `SafeTensorsCheckpoint.init(directory:)`),
    /// its `modules_to_not_convert` checked (`checkKeptModules(directory:checkpoint:)`).
    /// What the model loaders open. Cost: O(total header size) and one read of config.json.
    static func checkpoint(directory: URL) throws -> SafeTensorsCheckpoint {
        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        try checkKeptModules(directory: try resolveModelDirectory(directory), checkpoint: checkpoint)
        return checkpoint
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
