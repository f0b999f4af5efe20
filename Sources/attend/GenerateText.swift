// `attend generate --text`: source texts in, generated text out, for a T5 or Marian folder
// with its tokenizer.
import Attend
import AttendCommandLine
import Foundation

/// Generates from `--text` sources (or `--input` texts) and prints the output text: streamed
/// as it is chosen for one greedy source, else one line per source; with `--json` one line
/// `{"text", "ids", "output", "output_ids"}` per source.
func generateText(folder: URL, _ args: Arguments) throws {
    var texts = args.generateTexts.isEmpty ? try readTextInputs(args) : args.generateTexts
    guard !texts.isEmpty else { throw UsageError(description: "\(args.command.rawValue): no source texts in the input") }
    var m = try TextToTextModel(directory: folder, weightPrecision: args.precision)
    m.memoryPrecision = args.memoryPrecision ?? .automatic
    for note in m.model.ignoredGenerationSettings {
        FileHandle.standardError.write(
            Data("attend: note: generation_config.json sets \(note), which this library does not implement; it is ignored\n".utf8))
    }
    var config = m.model.generationDefaults
    if let name = args.task {
        let task = try TextToTextModel.task(name, directory: folder)
        for note in task.ignoredSettings {
            FileHandle.standardError.write(
                Data("attend: note: task \(name) sets \(note), which this library does not implement; it is ignored\n".utf8))
        }
        texts = texts.map { task.prefix + $0 }
        config = task.config
    }
    try args.apply(to: &config)
    try args.applyStops(to: &config, folder: folder, tokenizer: m.tokenizer)
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
    let start = Date()
    var firstToken: Date? = nil
    var generated = 0
    do {
        if config.numBeams == 1 && texts.count == 1 && !args.json {
            let out = FileHandle.standardOutput
            let g = try m.generateStreaming(texts[0], config: config) { piece in
                if firstToken == nil { firstToken = Date() }
                out.write(Data(piece.utf8))
            }
            out.write(Data("\n".utf8))
            generated = g.outputIDs.count
        } else {
            let results = try m.generate(texts, config: config)
            firstToken = Date()  // a batch shows nothing until it is done
            for g in results {
                generated += g.outputIDs.count
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
        }
    } catch let e as TextToTextError {
        throw UsageError(description: e.description)
    }
    let seconds = Date().timeIntervalSince(start)
    let ttft = (firstToken ?? Date()).timeIntervalSince(start)
    let line = String(
        format: "attend: %d tokens generated in %.2f s (%.1f tokens/s), time to first token %.0f ms, peak memory %.0f MiB\n",
        generated, seconds, seconds > 0 ? Double(generated) / seconds : 0, ttft * 1e3, peakMemoryMiB())
    FileHandle.standardError.write(Data(line.utf8))
}

/// This process's peak resident memory in MiB: its address space's high-water mark (VmHWM in
/// /proc/self/status) on Linux, where ru_maxrss would also count the memory of the process it
/// was spawned from; ru_maxrss (bytes) elsewhere.
func peakMemoryMiB() -> Double {
    #if os(Linux)
        if let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kib = Double(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        {
            return kib / 1024
        }
        return 0
    #else
        var usage = rusage()
        getrusage(RUSAGE_SELF, &usage)
        return Double(usage.ru_maxrss) / (1024 * 1024)
    #endif
}
