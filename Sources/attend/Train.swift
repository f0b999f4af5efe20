// `attend train` (batches from a JSON-lines file) and `attend pretrain-mlm` (BERT pre-training
// batches built from a text file): everything is read and checked before the first step.
import Attend
import AttendCommandLine
import Foundation

/// What a model folder's config.json says about the batches its model takes.
struct BatchLimits {
    var modelType: String
    var vocabularySize: Int
    var typeVocabularySize: Int?
    var maxLength: Int?
    /// BERT: labels [rows, length]; seq2seq: labels [rows, any].
    var labelsMatchInput: Bool
    var needsNextSentence: Bool
    /// Marian: the longest labels (and decoder input) row, its decoder's positions.
    var maxLabelLength: Int? = nil

    /// Reads `folder`/config.json (BERT, T5, mT5 or Marian: the types `TrainableModels`
    /// trains). Throws the config reader's errors and a `TrainingError` for another model type.
    init(folder: URL) throws {
        let url = folder.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { throw TrainingError("\(url.path): no such file (the model folder needs config.json)") }
        let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        modelType = object?["model_type"] as? String ?? "?"
        switch modelType {
        case "bert":
            let c = try BERTConfig(contentsOf: url)
            vocabularySize = c.vocabSize
            typeVocabularySize = c.typeVocabSize
            maxLength = c.maxPositionEmbeddings
            labelsMatchInput = true
            needsNextSentence = false  // without next_sentence_label: the masked-LM loss alone
        case "t5", "mt5":
            let c = try T5Config(contentsOf: url)
            vocabularySize = c.vocabSize
            typeVocabularySize = nil
            maxLength = nil
            labelsMatchInput = false
            needsNextSentence = false
        case "marian":
            let c = try MarianConfig(contentsOf: url)
            vocabularySize = c.vocabSize
            typeVocabularySize = nil
            maxLength = c.maxPositionEmbeddings
            maxLabelLength = c.maxPositionEmbeddings
            labelsMatchInput = false
            needsNextSentence = false
        default:
            throw TrainingError(
                "\(url.path): model_type \"\(modelType)\" cannot be trained (Attend trains BertForPreTraining, T5ForConditionalGeneration and MarianMTModel)")
        }
    }

    /// Checks `batch` (see `TrainingBatch.validate`); `place` starts the error message.
    func validate(_ batch: TrainingBatch, place: String) throws {
        try batch.validate(
            vocabularySize: vocabularySize, typeVocabularySize: typeVocabularySize, maxLength: maxLength,
            labelsMatchInput: labelsMatchInput, needsLabels: true, needsNextSentence: needsNextSentence, where: place)
        if let m = maxLabelLength {
            for (field, rows) in [("labels", batch.labels), ("decoder_input_ids", batch.decoderInputIDs)] {
                if let n = rows?.first?.count, n > m {
                    throw TrainingError("\(place): \(field) rows have \(n) tokens, more than the model's \(m) positions")
                }
            }
        }
    }
}

/// The line numbers of the non-blank lines of `data` (the lines `TrainingBatch.parseJSONLines`
/// reads a batch from), so batch i is named by its line.
func batchLineNumbers(_ data: Data) -> [Int] {
    var numbers: [Int] = []
    var line = 1
    var blank = true
    for byte in data {
        if byte == UInt8(ascii: "\n") {
            if !blank { numbers.append(line) }
            line += 1
            blank = true
        } else if byte != 0x20 && byte != 0x09 && byte != 0x0D {
            blank = false
        }
    }
    if !blank { numbers.append(line) }
    return numbers
}

/// Reads the batches of `--batches FILE`, each checked against the model's limits. Throws a
/// `TrainingError` naming the file, line, field, row and position of the first problem.
func readTrainingBatches(_ path: String, limits: BatchLimits) throws -> [TrainingBatch] {
    let url = URL(fileURLWithPath: path)
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw TrainingError("--batches \(path): cannot read the file (\(error.localizedDescription))")
    }
    let batches = try TrainingBatch.parseJSONLines(data, source: path)
    let lines = batchLineNumbers(data)
    for (i, batch) in batches.enumerated() {
        try limits.validate(batch, place: "\(path) line \(i < lines.count ? lines[i] : i + 1)")
    }
    return batches
}

/// Builds the pre-training batches of `--text FILE` with the folder's tokenizer (see
/// ``MaskedLanguageModelingData``), checked against the model's limits.
func pretrainingBatches(folder: URL, _ args: Arguments, limits: BatchLimits) throws -> [TrainingBatch] {
    guard limits.modelType == "bert" else {
        throw TrainingError("pretrain-mlm trains BERT folders; \(folder.path) holds a \(limits.modelType) model (use train --batches)")
    }
    let path = args.training.textFile ?? ""
    let maxLength = args.maxLength ?? min(128, limits.maxLength ?? 128)
    if let m = limits.maxLength, maxLength > m {
        throw UsageError(description: "--max-length \(maxLength) is more than the model's \(m) positions (max_position_embeddings)")
    }
    if maxLength < 5 { throw UsageError(description: "--max-length \(maxLength): a sentence pair needs at least 5 tokens") }
    let text: String
    do { text = try String(contentsOf: URL(fileURLWithPath: path), encoding: .utf8) } catch {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError("--text \(path): cannot read the file")
        }
        text = String(decoding: data, as: UTF8.self)
    }
    let tokenizer = try loadTokenizer(directory: folder)
    let data = MaskedLanguageModelingData(maxLength: maxLength, batchSize: args.batchSize)
    let batches = try data.batches(documents: MaskedLanguageModelingData.documents(text: text), tokenizer: tokenizer, seed: args.training.seed)
    for (i, batch) in batches.enumerated() { try limits.validate(batch, place: "\(path): batch \(i + 1)") }
    return batches
}

/// The folder `--save` writes, checked before training: nil without `--save`. Throws
/// `UsageError` for a path that is a file or whose parent folder does not exist.
func saveLocation(_ path: String?) throws -> URL? {
    guard let path else { return nil }
    let url = URL(fileURLWithPath: path)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
        throw UsageError(description: "--save \(path) is a file, not a folder")
    }
    let parent = url.deletingLastPathComponent()
    if !FileManager.default.fileExists(atPath: parent.path, isDirectory: &isDirectory) || !isDirectory.boolValue {
        throw UsageError(description: "--save \(path): the folder \(parent.path) does not exist")
    }
    return url
}

/// The files of the model folder copied beside a saved model (when the save did not write
/// them), so the folder tokenizes, fills masks and generates as the original.
let companionFiles = [
    "generation_config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "spiece.model", "tokenizer.model", "source.spm", "target.spm", "vocab.json",
]

/// `attend train` / `attend pretrain-mlm` (see the usage text).
func train(folder: URL, _ args: Arguments) throws {
    let options = args.training
    let limits = try BatchLimits(folder: folder)
    let batches =
        args.command == .train
        ? try readTrainingBatches(options.batches ?? "", limits: limits)
        : try pretrainingBatches(folder: folder, args, limits: limits)
    let output = try saveLocation(options.save)
    let run = try makeTrainingRun(folder: folder, options: options)
    try runTraining(run, batches: batches, options: options, json: args.json)
    if let output {
        try run.model.save(to: output)
        let fm = FileManager.default
        for name in companionFiles {
            let source = folder.appendingPathComponent(name), target = output.appendingPathComponent(name)
            if fm.fileExists(atPath: source.path) && !fm.fileExists(atPath: target.path) {
                try fm.copyItem(at: source, to: target)
            }
        }
        FileHandle.standardError.write(Data("attend: note: saved the trained model to \(output.path)\n".utf8))
    }
}
