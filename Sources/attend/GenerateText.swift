// `attend generate --text`: source texts in, generated text out, for a T5 or Marian folder
// with its tokenizer.
import Attend
import Foundation

/// Generates from `--text` sources (or `--input` texts) and prints the output text: streamed
/// as it is chosen for one greedy source, else one line per source; with `--json` one line
/// `{"text", "ids", "output", "output_ids"}` per source.
func generateText(folder: URL, _ args: Arguments) throws {
    let texts = args.generateTexts.isEmpty ? try readTextInputs(args) : args.generateTexts
    guard !texts.isEmpty else { throw UsageError(description: "generate: no source texts in the input") }
    let m = try TextToTextModel(directory: folder)
    for note in m.model.ignoredGenerationSettings {
        FileHandle.standardError.write(
            Data("attend: note: generation_config.json sets \(note), which this library does not implement; it is ignored\n".utf8))
    }
    var config = m.model.generationDefaults
    if let b = args.beams { config.numBeams = b; config.numReturnSequences = 1 }
    if let n = args.maxNewTokens { config.maxNewTokens = n }
    if let n = args.minNewTokens { config.minNewTokens = n }
    try args.generation.apply(to: &config)
    if let p = m.model.maxPositions, config.maxNewTokens > p - 1 {
        FileHandle.standardError.write(
            Data(
                "attend: warning: the model's position table holds \(p) positions (max_position_embeddings in config.json), so at most \(p - 1) tokens are generated, not \(config.maxNewTokens)\n"
                    .utf8))
        config.maxNewTokens = p - 1
    }
    if config.numBeams > 1 && m.model.vocabularySize < 2 {
        throw UsageError(description: "--beams \(config.numBeams): beam search needs a vocabulary of at least 2 tokens")
    }
    do {
        if config.numBeams == 1 && texts.count == 1 && !args.json {
            let out = FileHandle.standardOutput
            _ = try m.generateStreaming(texts[0], config: config) { out.write(Data($0.utf8)) }
            out.write(Data("\n".utf8))
            return
        }
        for g in try m.generate(texts, config: config) {
            if args.json {
                print(
                    jsonObject([
                        ("text", .string(g.text)), ("ids", .ints(g.ids)), ("output", .string(g.output)),
                        ("output_ids", .ints(g.outputIDs)),
                    ]))
            } else {
                print(g.output)
            }
        }
    } catch let e as TextToTextError {
        throw UsageError(description: e.description)
    }
}
