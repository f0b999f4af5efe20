import Foundation

/// What a text-to-text model made of one source text.
public struct TextGeneration: Sendable, Equatable {
    /// The source text.
    public var text: String
    /// Its token ids as the model read them (the tokenizer's, special tokens included).
    public var ids: [Int]
    /// The generated text: `decode(outputIDs, skip_special_tokens=True)`.
    public var output: String
    /// The generated ids as `generate` returns them (decoder start token first).
    public var outputIDs: [Int]
}

/// Why a text could not be given to a text-to-text model.
public enum TextToTextError: Error, CustomStringConvertible, Equatable {
    /// The tokenizer gives an id the model has no embedding for (a mismatched folder).
    case idOutsideVocabulary(textIndex: Int, id: Int, vocabularySize: Int)
    /// The text has more tokens than the model has positions.
    case tooLong(textIndex: Int, tokens: Int, maxPositions: Int)
    /// The text gives no tokens at all.
    case empty(textIndex: Int)

    /// One line: which text and what is wrong.
    public var description: String {
        switch self {
        case .idOutsideVocabulary(let i, let id, let v):
            return "text #\(i + 1): the tokenizer gives id \(id), outside the model's source vocabulary of \(v) tokens"
        case .tooLong(let i, let n, let m): return "text #\(i + 1) has \(n) tokens; the model takes at most \(m)"
        case .empty(let i): return "text #\(i + 1) gives no tokens"
        }
    }
}

/// A sequence-to-sequence model (T5, Marian) with its folder's tokenizer: text in, text out,
/// as transformers' `tokenizer(text)` -> `model.generate` -> `tokenizer.decode(...,
/// skip_special_tokens=True)`. `Sendable`; only ``memoryPrecision`` can change.
public struct TextToTextModel: Sendable {
    /// The model.
    public private(set) var model: Seq2SeqModel
    /// The tokenizer that reads the source and writes the output (Marian: `MarianTokenizer`).
    public let tokenizer: any Tokenizer
    /// The model's ``Seq2SeqModel/memoryPrecision``: how decoding holds the encoder memory's
    /// cross-attention keys and values.
    public var memoryPrecision: MemoryPrecision {
        get { model.memoryPrecision }
        set { model.memoryPrecision = newValue }
    }

    /// Loads a model folder and its tokenizer (``loadTokenizer(directory:)``). Throws the
    /// loaders' errors. Cost: the model's load plus the tokenizer's.
    public init(directory: URL) throws {
        try self.init(directory: directory, weightPrecision: nil)
    }

    /// Loads a model folder and its tokenizer as ``init(directory:)`` does, with the model's
    /// weight matrices held in `weightPrecision` (``Seq2SeqModel/init(directory:weightPrecision:)``).
    /// `weightPrecision` is the element type the `Linear` and `Embedding` weights are held in
    /// (see ``WeightPrecision``): nil keeps each as the checkpoint stores it (an F16 or BF16
    /// file stays 16-bit, mapped, never widened in memory: about half the memory and decoding
    /// time of float32; int8 weights of an `attend quantize` folder stay int8 whatever the
    /// precision), `.float32` widens 16-bit weights at load, `.float16` / `.bfloat16` round
    /// float32 weights to 16 bits at load (one pass). Biases and norms stay float32.
    public init(directory: URL, weightPrecision: WeightPrecision?) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        self.init(
            model: try Seq2SeqModel(directory: directory, weightPrecision: weightPrecision), tokenizer: try loadTokenizer(directory: directory))
    }

    /// A model and a tokenizer that belong together.
    public init(model: Seq2SeqModel, tokenizer: any Tokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// The source ids of `texts`, checked against the model (vocabulary, positions).
    public func sourceIDs(_ texts: [String]) throws -> [[Int]] {
        try texts.enumerated().map { i, text in
            let ids = tokenizer.encode(text).ids
            if ids.isEmpty { throw TextToTextError.empty(textIndex: i) }
            if let bad = ids.first(where: { $0 >= model.sourceVocabularySize }) {
                throw TextToTextError.idOutsideVocabulary(textIndex: i, id: bad, vocabularySize: model.sourceVocabularySize)
            }
            if let m = model.maxPositions, ids.count > m { throw TextToTextError.tooLong(textIndex: i, tokens: ids.count, maxPositions: m) }
            return ids
        }
    }

    /// Generates for every text (one padded batch) with `config` (default: the folder's
    /// generation settings). Cost: the model's `generate`.
    public func generate(_ texts: [String], config: GenerationConfig? = nil, compute: Compute = .default) throws -> [TextGeneration] {
        let sources = try sourceIDs(texts)
        let config = config ?? model.generationDefaults
        let rows = try model.generate(sources: sources, config: config, compute: compute).sequences
        let perText = max(1, rows.count / max(1, texts.count))
        return rows.enumerated().map { r, row in
            let i = r / perText
            return TextGeneration(
                text: texts[i], ids: sources[i], output: tokenizer.decode(trimmed(row, config), skipSpecialTokens: true),
                outputIDs: row)
        }
    }

    /// Greedy generation for one text, calling `onText` with each piece of output text as
    /// soon as it is final (``IncrementalDecoder``: never half a character). Returns the whole
    /// result. Cost: the model's greedy search plus a few-token decode per step.
    public func generateStreaming(
        _ text: String, config: GenerationConfig? = nil, compute: Compute = .default,
        onText: (String) throws -> Void
    ) throws -> TextGeneration {
        let source = try sourceIDs([text])[0]
        var config = config ?? model.generationDefaults
        config.numBeams = 1
        config.numReturnSequences = 1
        let eos = Set(config.eosTokenIDs)
        var stream = IncrementalDecoder(tokenizer: tokenizer)
        var ended = false
        let rows = try model.greedy(sources: [source], startTokenID: model.decoderStartTokenID, config: config, compute: compute) { step in
            if ended { return }
            let piece = stream.append(step[0])
            if !piece.isEmpty { try onText(piece) }
            ended = eos.contains(step[0])
        }
        let rest = stream.finish()
        if !rest.isEmpty { try onText(rest) }
        let row = rows[0]
        return TextGeneration(
            text: text, ids: source, output: tokenizer.decode(trimmed(row, config), skipSpecialTokens: true),
            outputIDs: row)
    }

    /// A returned row up to its first end token or the token that completes a stop string
    /// (what follows is padding).
    private func trimmed(_ row: [Int], _ config: GenerationConfig) -> [Int] {
        let eos = Set(config.eosTokenIDs)
        let ends = [row.dropFirst().firstIndex(where: eos.contains), config.stopStrings?.firstStop(in: row, from: 1)].compactMap { $0 }
        guard let end = ends.min() else { return row }
        return Array(row[...end])
    }
}

/// A task of a model folder's `config.json` `task_specific_params` (t5-small's
/// `summarization`, `translation_en_to_de`, ...): the prefix transformers' pipelines put
/// before every text and the generation settings they apply for it.
public struct TextTask: Sendable {
    /// The task's name, as `task_specific_params` spells it.
    public let name: String
    /// Put before every source text (`prefix`; "" when the task has none).
    public let prefix: String
    /// The folder's generation defaults with the task's settings (`num_beams`, `max_length`,
    /// `min_length`, `length_penalty`, `early_stopping`, `no_repeat_ngram_size`, ...) over them.
    public let config: GenerationConfig
    /// Task settings this library does not implement, as `key = value` (ignored).
    public let ignoredSettings: [String]
}

extension TextToTextModel {
    /// The task `name` of the folder's `config.json` `task_specific_params`. Throws
    /// `ModelFileError` when the folder's config has no such task (naming the tasks it has) or
    /// a setting has a bad value. Cost: one read of config.json.
    public static func task(_ name: String, directory: URL) throws -> TextTask {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        let (config, configURL, generation) = try readHFModelConfigs(directory)
        guard let tasks = try config.object("task_specific_params") else {
            throw ModelFileError.invalidValue(
                path: configURL.path, key: "task_specific_params", reason: "missing: the folder names no tasks (asked for '\(name)')")
        }
        guard let task = try tasks.object(name) else {
            let known = tasks.keys.sorted().joined(separator: ", ")
            throw ModelFileError.invalidValue(path: configURL.path, key: "task_specific_params", reason: "no task '\(name)' (it has: \(known))")
        }
        let prefix = try task.string("prefix") ?? ""
        // The task's keys over generation_config.json's over config.json's, as a pipeline
        // updates the config before generate.
        let merged = try JSONFields(mergedObject: [config, generation, task].compactMap { $0 }, path: configURL.path)
        let vocab = try config.int("vocab_size", in: 1...Int(Int32.max)) ?? 1
        let settings = try HFGenerationSettings(config: config, generation: merged, vocabularySize: vocab)
        return TextTask(name: name, prefix: prefix, config: settings.config, ignoredSettings: settings.ignored)
    }
}
