import Foundation

/// Opens a model folder for training, choosing the trainable class from its `config.json`.
///
/// | `architectures` / `model_type` | class |
/// |---|---|
/// | `BertForPreTraining` (or `model_type` `bert` without `architectures`) | ``BERTForPreTraining`` |
/// | `T5ForConditionalGeneration` (or `model_type` `t5` / `mt5`) | ``T5ForConditionalGeneration`` |
/// | `MarianMTModel` (or `model_type` `marian`) | ``MarianMTModel`` |
public enum TrainableModels {
    /// The trainable model for the folder at `directory` (see the table above), its
    /// parameters loaded from `model.safetensors`. Throws `ModelFileError` for a missing or
    /// unreadable `config.json` or an architecture Attend does not train (naming it and the
    /// ones it does), or the class's own loading errors. Cost: one read of the weights.
    public static func load(directory: URL, compute: Compute = .default) throws -> any TrainableModel {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        let (config, configURL, _) = try readHFModelConfigs(directory)
        var architectures: [String] = []
        if case .array(let items)? = config.raw("architectures") {
            for case .string(let bytes) in items { architectures.append(String(decoding: bytes, as: UTF8.self)) }
        }
        let type = try config.string("model_type")
        if architectures.contains("BertForPreTraining") || (architectures.isEmpty && type == "bert") {
            return try BERTForPreTraining(directory: directory, compute: compute)
        }
        if architectures.contains("T5ForConditionalGeneration") || (architectures.isEmpty && (type == "t5" || type == "mt5")) {
            return try T5ForConditionalGeneration(directory: directory, compute: compute)
        }
        if architectures.contains("MarianMTModel") || (architectures.isEmpty && type == "marian") {
            return try MarianMTModel(directory: directory, compute: compute)
        }
        let found = architectures.isEmpty ? "model_type \(type.map { "\"\($0)\"" } ?? "(absent)")" : "architectures \(architectures)"
        throw ModelFileError.unsupported(
            path: configURL.path, what: "training \(found) (Attend trains BertForPreTraining, T5ForConditionalGeneration and MarianMTModel)")
    }
}

/// Throws `TrainingError` when the folder's `config.json` says `attend quantize` wrote it:
/// training needs float weights (an int8 weight met otherwise is a `CheckpointError` naming
/// the tensor). Cost: one read of config.json.
func rejectInt8Folder(_ directory: URL) throws {
    let url = directory.appendingPathComponent("config.json")
    guard FileManager.default.fileExists(atPath: url.path) else { return }
    if try JSONFields(try readModelJSON(url), path: url.path).raw(ModelQuantization.configKey) != nil {
        throw TrainingError(
            "\(directory.path) holds int8 weights (config.json has \(ModelQuantization.configKey)); training needs float weights: train the folder it was quantized from")
    }
}

extension ParameterLoader {
    /// The checkpoint's `name` (shape `reference.shape`) when it is stored with values other
    /// than `reference`'s; nil when it is absent or equal. Cost: one read of the stored tensor.
    func storedDifferent(_ name: String, from reference: Tensor) throws -> Tensor? {
        guard has(name) else { return nil }
        let stored = try load(name, shape: reference.shape)
        return stored.scalars != reference.scalars ? stored : nil
    }

    /// Throws `CheckpointError.invalidConfig` when the checkpoint stores one of `copies` with
    /// values other than `reference` (named `referenceName`): transformers (5) unties such a
    /// copy, so training it as tied would train another model. Absent and equal copies pass.
    /// Cost: one read of each stored copy.
    func refuseDifferingCopies(_ copies: [String], of referenceName: String, _ reference: Tensor, in directory: URL) throws {
        for n in copies where try storedDifferent(n, from: reference) != nil {
            throw CheckpointError.invalidConfig(
                "\(directory.path): \(n) differs from \(referenceName); training ties it to \(referenceName) as the configuration says, so the stored values would be lost")
        }
    }
}

