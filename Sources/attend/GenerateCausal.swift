// `attend generate` for a decoder-only folder (GPT-2, Llama, Mistral, Qwen2): prompt ids or
// text in, the continuation out (streamed for one greedy prompt), plus a timing line on stderr.
import Attend
import AttendCommandLine
import Foundation
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Generates from the `--ids` or `--prompt` prompts with the decoder-only model in `folder`
/// (see the usage text). Throws `UsageError` for prompts the model cannot take, and the
/// loader's and tokenizer's errors for a bad folder.
func generateCausal(folder: URL, _ args: Arguments) throws {
    if args.memoryPrecision != nil {
        throw UsageError(description: "--memory-precision is for T5 and Marian models (an encoder memory); a decoder-only model has none")
    }
    let model = try DecoderOnlyModel(directory: folder, weightPrecision: args.precision)
    noteIgnored(model.ignoredGenerationSettings)
    let tokenizer = args.prompts.isEmpty ? nil : try loadTokenizer(directory: folder)
    let prompts = tokenizer.map { t in args.prompts.map { t.encode($0).ids } } ?? args.ids
    let flag = tokenizer == nil ? "--ids" : "--prompt"
    for (n, prompt) in prompts.enumerated() {
        if prompt.isEmpty { throw UsageError(description: "\(flag) #\(n + 1) is empty\(tokenizer == nil ? "" : " (the tokenizer gives no tokens)")") }
        if let bad = prompt.firstIndex(where: { $0 >= model.vocabularySize }) {
            throw UsageError(
                description: "\(flag) #\(n + 1): item \(bad + 1) (\(prompt[bad])) is outside the model's vocabulary of \(model.vocabularySize) tokens"
            )
        }
    }
    let width = prompts.map(\.count).max()!
    var config = model.generationDefaults(promptLength: width)
    try args.apply(to: &config)
    try args.applyStops(to: &config, folder: folder, tokenizer: tokenizer)
    // Compared without the sum: --max-new-tokens may be as large as an Int holds.
    if let (limit, setting) = model.positionLimit, config.maxNewTokens > limit - width {
        guard width < limit else {
            throw UsageError(
                description: "\(flag): a prompt of \(width) tokens leaves no room in the model's \(limit) positions (\(setting) in config.json)")
        }
        FileHandle.standardError.write(
            Data(
                "attend: warning: the model takes \(limit) positions (\(setting) in config.json), so at most \(limit - width) tokens are generated, not \(config.maxNewTokens)\n"
                    .utf8))
        config.maxNewTokens = limit - width
    }
    let eos = Set(config.eosTokenIDs)
    let out = FileHandle.standardOutput
    let streaming = config.numBeams == 1 && prompts.count == 1 && !args.json
    let clock = ContinuousClock()
    let start = clock.now
    var firstToken: Duration? = nil
    var steps = 0
    let sequences: [[Int]]
    if config.numBeams == 1 {
        var text = tokenizer.map { IncrementalDecoder(tokenizer: $0) }
        var ended = false
        sequences = try model.greedy(prompts: prompts, config: config) { step in
            if firstToken == nil { firstToken = clock.now - start }
            steps += 1
            guard streaming, !ended else { return }
            if text != nil {
                out.write(Data(text!.append(step[0]).utf8))
            } else {
                out.write(Data(((steps == 1 ? "" : " ") + String(step[0])).utf8))
            }
            ended = eos.contains(step[0])
        }.sequences
        if streaming { out.write(Data(((text?.finish() ?? "") + "\n").utf8)) }
    } else {
        sequences = try model.generate(prompts: prompts, config: config).sequences
        steps = sequences[0].count - width
    }
    let total = clock.now - start

    if !streaming {
        for (r, row) in sequences.enumerated() {
            let tail = row[width...]
            let ends = [tail.firstIndex(where: eos.contains), config.stopStrings?.firstStop(in: row, from: width)].compactMap { $0 }
            let new = ends.min().map { Array(tail[...$0]) } ?? Array(tail)
            let continuation = tokenizer?.decode(new)
            if args.json {
                var fields: [(String, JSONValue)] = [("ids", .ints(prompts[r] + new))]
                if let continuation { fields.append(("text", .string(continuation))) }
                print(jsonObject(fields))
            } else {
                print(continuation ?? new.map(String.init).joined(separator: " "))
            }
        }
    }
    printTiming(
        promptTokens: prompts.reduce(0) { $0 + $1.count }, rows: prompts.count * config.numBeams, steps: steps,
        firstToken: firstToken, total: total)
}

/// The timing line on stderr: prompt tokens per second (through the first token), generated
/// tokens per second after it (every row and beam), time to first token, peak memory.
private func printTiming(promptTokens: Int, rows: Int, steps: Int, firstToken: Duration?, total: Duration) {
    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
    let t = seconds(total)
    var parts: [String] = []
    if let f = firstToken.map(seconds) {
        parts.append(String(format: "prompt %d tokens %.1f tok/s", promptTokens, Double(promptTokens) / max(f, 1e-9)))
        if steps > 1 {
            parts.append(String(format: "generated %d steps x %d rows %.1f tok/s", steps - 1, rows, Double((steps - 1) * rows) / max(t - f, 1e-9)))
        }
        parts.append(String(format: "first token %.1f ms", f * 1000))
    } else {
        parts.append(
            String(
                format: "prompt %d tokens, %d steps x %d beams: %.1f tok/s overall", promptTokens, steps, rows, Double(steps * rows) / max(t, 1e-9)))
    }
    var usage = rusage()
    #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peakMiB = Double(usage.ru_maxrss) / 1024
    #else
        getrusage(RUSAGE_SELF, &usage)
        let peakMiB = Double(usage.ru_maxrss) / (1024 * 1024)
    #endif
    parts.append(String(format: "total %.3f s, peak memory %.0f MiB", t, peakMiB))
    FileHandle.standardError.write(Data(("attend: " + parts.joined(separator: ", ") + "\n").utf8))
}
