// `attend generate`: token ids in, generated token ids out, for a T5 or Marian folder (a
// decoder-only folder goes to GenerateCausal.swift).
import Attend
import AttendCommandLine
import Foundation

/// Loads the model in `folder`, checks the sources against it, and prints what it generates
/// (see the usage text). Throws `UsageError` for ids the model cannot take, and the loader's
/// errors for a bad folder.
func generate(folder: URL, _ args: Arguments) throws {
    if DecoderOnlyModel.handles(directory: folder) { return try generateCausal(folder: folder, args) }
    if !args.prompts.isEmpty {
        throw UsageError(description: "--prompt is for decoder-only models (GPT-2, Llama, Mistral, Qwen2); give a T5 or Marian model --ids")
    }
    var model = try Seq2SeqModel(directory: folder, weightPrecision: args.precision)
    model.memoryPrecision = args.memoryPrecision ?? .automatic
    noteIgnored(model.ignoredGenerationSettings)
    for (n, source) in args.ids.enumerated() {
        if source.isEmpty { throw UsageError(description: "--ids #\(n + 1) is empty") }
        if let bad = source.firstIndex(where: { $0 >= model.sourceVocabularySize }) {
            throw UsageError(
                description:
                    "--ids #\(n + 1): item \(bad + 1) (\(source[bad])) is outside the model's source vocabulary of \(model.sourceVocabularySize) tokens"
            )
        }
        if let m = model.maxPositions, source.count > m {
            throw UsageError(description: "--ids #\(n + 1) has \(source.count) tokens; the model takes at most \(m)")
        }
    }
    var config = model.generationDefaults
    try args.apply(to: &config)
    try args.applyStops(to: &config, folder: folder, tokenizer: nil)
    if let m = model.maxPositions, m < 2 {
        throw GenerationError.exceedsPositionLimit(setting: "max_position_embeddings", limit: m, requested: 2)
    }
    if let m = model.maxPositions, config.maxNewTokens > m - 1 {
        // The position table ends generation; say so up front rather than fail there.
        FileHandle.standardError.write(
            Data(
                "attend: warning: the model's position table holds \(m) positions (max_position_embeddings in config.json), so at most \(m - 1) tokens are generated, not \(config.maxNewTokens)\n"
                    .utf8))
        config.maxNewTokens = m - 1
    }
    do {
        try config.validate(vocabularySize: model.vocabularySize)
    } catch let e as GenerationError {
        throw UsageError(description: "\(e)")  // the folder's settings were checked when it loaded: a flag is out of range
    }
    let eos = Set(config.eosTokenIDs)
    /// The generated part of a returned row, up to and including its end token (or the token
    /// that completes a stop string).
    func generated(_ row: [Int]) -> [Int] {
        let tail = row.dropFirst()
        let ends = [tail.firstIndex(where: eos.contains), config.stopStrings?.firstStop(in: row, from: 1)].compactMap { $0 }
        if let end = ends.min() { return Array(tail[...end]) }
        return Array(tail)
    }

    let out = FileHandle.standardOutput
    if config.numBeams == 1 && args.ids.count == 1 && !args.json {
        // Stream: each id as soon as it is chosen.
        var first = true, ended = false
        _ = try model.greedy(sources: args.ids, startTokenID: model.decoderStartTokenID, config: config) { step in
            if ended { return }
            out.write(Data(((first ? "" : " ") + String(step[0])).utf8))
            first = false
            ended = eos.contains(step[0])
        }
        out.write(Data("\n".utf8))
        return
    }
    let sequences = try model.generate(sources: args.ids, config: config).sequences
    for row in sequences {
        print(args.json ? jsonObject([("ids", .ints(row))]) : generated(row).map(String.init).joined(separator: " "))
    }
}

/// Notes on stderr the generation settings of the folder that are not implemented.
func noteIgnored(_ settings: [String]) {
    for note in settings {
        FileHandle.standardError.write(
            Data("attend: note: generation_config.json sets \(note), which this library does not implement; it is ignored\n".utf8))
    }
}

extension Arguments {
    /// Sets `config.stopStrings` from `--stop`, decoded with `tokenizer` (the folder's,
    /// loaded when nil). Throws `UsageError` with beam search, and the loader's errors for a
    /// folder without a tokenizer.
    func applyStops(to config: inout GenerationConfig, folder: URL, tokenizer: (any Tokenizer)?) throws {
        guard !generation.stop.isEmpty else { return }
        if config.numBeams > 1 {
            throw UsageError(description: "--stop applies to greedy search and sampling, not to beam search (\(config.numBeams) beams)")
        }
        config.stopStrings = try StopStrings(generation.stop, tokenizer: tokenizer ?? loadTokenizer(directory: folder))
    }

    /// Applies `--beams`, `--max-new-tokens`, `--min-new-tokens` and the sampling options
    /// over the folder's settings. Throws `UsageError` as ``GenerateOptions/apply(to:)``.
    func apply(to config: inout GenerationConfig) throws {
        if let b = beams { config.numBeams = b; config.numReturnSequences = 1 }
        if let m = maxNewTokens { config.maxNewTokens = m }
        if let m = minNewTokens { config.minNewTokens = m }
        try generation.apply(to: &config)
    }
}

/// The `generate` options that shape the distribution: repetition controls and sampling
/// (`--do-sample`, `--temperature`, `--top-k`, `--top-p`, `--min-p`, `--repetition-penalty`,
/// `--no-repeat-ngram-size`, `--seed`), each overriding the folder's generation_config.json.
struct GenerateOptions {
    var doSample = false
    var temperature: Float? = nil
    var topK: Int? = nil
    var topP: Double? = nil
    var minP: Float? = nil
    var repetitionPenalty: Float? = nil
    var noRepeatNGramSize: Int? = nil
    var seed: UInt64? = nil
    /// `--stop STRING` (repeatable): stop strings, decoded with the folder's tokenizer.
    var stop: [String] = []

    /// Whether any of these options was given.
    var isSet: Bool {
        doSample || temperature != nil || topK != nil || topP != nil || minP != nil || repetitionPenalty != nil
            || noRepeatNGramSize != nil || seed != nil || !stop.isEmpty
    }

    /// The options as the command line gives them (values checked by the grammar).
    init(_ r: FlagReader) {
        doSample = r.has("--do-sample")
        stop = r.strings("--stop")
        temperature = r.double("--temperature").map(Float.init)
        topK = r.int("--top-k")
        topP = r.double("--top-p")
        minP = r.double("--min-p").map(Float.init)
        repetitionPenalty = r.double("--repetition-penalty").map(Float.init)
        noRepeatNGramSize = r.int("--no-repeat-ngram-size")
        seed = r.uint64("--seed")
    }

    /// No options: the folder's settings.
    init() {}

    /// Applies the options to `config`. Throws `UsageError` for sampling options without
    /// sampling (`--do-sample` or the folder's do_sample) and for sampling with beams.
    func apply(to config: inout GenerationConfig) throws {
        if doSample { config.doSample = true }
        if let r = repetitionPenalty { config.repetitionPenalty = r }
        if let n = noRepeatNGramSize { config.noRepeatNGramSize = n }
        let samplingFlags = [
            ("--temperature", temperature != nil), ("--top-k", topK != nil), ("--top-p", topP != nil),
            ("--min-p", minP != nil), ("--seed", seed != nil),
        ]
        if !config.doSample, let flag = samplingFlags.first(where: \.1) {
            throw UsageError(description: "\(flag.0) applies only when sampling: add --do-sample")
        }
        if config.doSample && config.numBeams > 1 {
            throw UsageError(description: "--do-sample cannot be combined with beam search (\(config.numBeams) beams): use --beams 1")
        }
        if let t = temperature { config.temperature = t }
        if let k = topK { config.topK = k }
        if let p = topP { config.topP = p }
        if let p = minP { config.minP = p }
        if config.doSample {
            config.seed = seed ?? UInt64.random(in: 0...UInt64.max)
            if seed == nil {
                FileHandle.standardError.write(Data("attend: sampling with seed \(config.seed) (--seed \(config.seed) repeats this output)\n".utf8))
            }
        }
    }
}
