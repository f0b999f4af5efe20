// `attend generate`: token ids in, generated token ids out, for a T5 or Marian folder.
import Attend
import Foundation

/// Loads the model in `folder`, checks the sources against it, and prints what it generates
/// (see the usage text). Throws `UsageError` for ids the model cannot take, and the loader's
/// errors for a bad folder.
func generate(folder: URL, _ args: Arguments) throws {
    let model = try Seq2SeqModel(directory: folder)
    for note in model.ignoredGenerationSettings {
        FileHandle.standardError.write(Data("attend: note: generation_config.json sets \(note), which this library does not implement; it is ignored\n".utf8))
    }
    for (n, source) in args.ids.enumerated() {
        if source.isEmpty { throw UsageError(description: "--ids #\(n + 1) is empty") }
        if let bad = source.firstIndex(where: { $0 >= model.sourceVocabularySize }) {
            throw UsageError(description: "--ids #\(n + 1): item \(bad + 1) (\(source[bad])) is outside the model's source vocabulary of \(model.sourceVocabularySize) tokens")
        }
        if let m = model.maxPositions, source.count > m {
            throw UsageError(description: "--ids #\(n + 1) has \(source.count) tokens; the model takes at most \(m)")
        }
    }
    var config = model.generationDefaults
    if let b = args.beams { config.numBeams = b; config.numReturnSequences = 1 }
    if let m = args.maxNewTokens { config.maxNewTokens = m }
    if let m = args.minNewTokens { config.minNewTokens = m }
    if let m = model.maxPositions, config.maxNewTokens > m - 1 {
        // The position table ends generation; say so up front rather than fail there.
        FileHandle.standardError.write(Data("attend: warning: the model's position table holds \(m) positions (max_position_embeddings in config.json), so at most \(m - 1) tokens are generated, not \(config.maxNewTokens)\n".utf8))
        config.maxNewTokens = m - 1
    }
    if config.numBeams > 1 && model.vocabularySize < 2 {
        throw UsageError(description: "--beams \(config.numBeams): beam search needs a vocabulary of at least 2 tokens")
    }
    let eos = Set(config.eosTokenIDs)
    /// The generated part of a returned row, up to and including its end token.
    func generated(_ row: [Int]) -> [Int] {
        let tail = row.dropFirst()
        if let end = tail.firstIndex(where: eos.contains) { return Array(tail[...end]) }
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
