// `attend`: tokenize, embed and compare texts with a BERT sentence-embedding model folder
// (such as sentence-transformers/all-MiniLM-L6-v2; scripts/fetch-minilm.sh fetches it),
// generate and translate with T5, Marian and decoder-only folders, fill in [MASK] tokens, and
// train.
//
//   attend COMMAND [options] [arguments]; `attend --help` lists the commands and
//   `attend COMMAND --help` a command's flags. The commands and their flags are the tables in
//   Sources/AttendCommandLine/Tools/AttendTool.swift (`AttendCommandLine.tool`); the grammar
//   (--flag value or --flag=value, -- ends the options, --help, --version) is
//   Sources/AttendCommandLine/Grammar.swift.
//
// Texts come from the arguments or, when there are none, from standard input (one per
// line). Exit status (`ExitStatus`): 0 success; 1 a runtime failure: problems with the folder
// or its files (and with the batches or text a training command reads) print one line on
// stderr; 2 a bad command line: one line and a pointer to `--help`. Training prints its
// progress and summary on stderr as `attend: step ...` and `attend: trained ...` lines.
import Attend
import AttendCommandLine
import Foundation

let tool = AttendCommandLine.tool
/// The command line, read with attend's tables: --help, --version and usage errors exit here.
let parsed = tool.parseOrExit(Array(CommandLine.arguments.dropFirst()))

/// Prints `message` on one line of stderr (newlines become spaces) and exits with `status`;
/// a command-line mistake (status 2) adds one line pointing to the command's `--help`.
func fail(_ message: String, status: Int32) -> Never {
    if status == ExitStatus.usage.rawValue { tool.exitWithUsageError(message, command: parsed.command) }
    let line = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    FileHandle.standardError.write(Data("attend: \(line)\n".utf8))
    exit(status)
}

let args: Arguments
do {
    args = try Arguments(parsed)
} catch {
    fail("\(error)", status: 2)
}

if args.command == .download {
    do {
        try download(args.download)
    } catch let e as CustomStringConvertible {
        fail(e.description, status: 1)
    } catch {
        fail("\(error)", status: 1)
    }
    exit(0)
}

if let t = args.threads {
    // The grammar takes 1...Int.max; Compute checks again, and a refusal is a usage error.
    do { Compute.default = try Compute.default.with(threads: t) } catch { fail("--threads: \(error)", status: 2) }
}
let folder = modelFolder(args.model)
let texts: [String]
do {
    let takesNoTexts = [.generate, .translate, .decode, .train, .pretrainMLM, .quantize].contains(args.command) || args.output != nil
        || (args.command == .attentionMap && !args.ids.isEmpty)
    texts = takesNoTexts ? [] : (args.texts.isEmpty ? try readTextInputs(args) : args.texts)
} catch {
    fail("\(error)", status: 2)
}

do {
    switch args.command {
    case .tokenize:
        try tokenize(folder: folder, texts: texts, args)

    case .decode:
        try decode(folder: folder, args)

    case .embed:
        if args.output != nil {
            try embedToFile(folder: folder, args)  // --output: streamed to a file
            break
        }
        let embedder = try loadEmbedder(folder: folder, args)
        let encodings = texts.map { embedder.encode($0) }
        let vectors = try embedder.embed(encodings: encodings, batchSize: args.batchSize)
        let dim = embedder.dimension
        let all = vectors.scalars
        for (i, text) in texts.enumerated() {
            let v = Array(all[(i * dim)..<((i + 1) * dim)])
            if args.json {
                print(jsonObject([("text", .string(text)), ("ids", .ints(encodings[i].ids)), ("embedding", .floats(v))]))
            } else {
                print(quotedLine(text))
                print("  " + v.map { formatFloat($0) }.joined(separator: " "))
            }
        }

    case .similarity:
        let embedder = try loadEmbedder(folder: folder, args)
        let encodings = texts.map { embedder.encode($0) }
        let sims = try cosineSimilarityMatrix(try embedder.embed(encodings: encodings, batchSize: args.batchSize))
        let n = texts.count
        let all = sims.scalars
        if args.json {
            for (i, text) in texts.enumerated() {
                let row = Array(all[(i * n)..<((i + 1) * n)])
                print(jsonObject([("text", .string(text)), ("ids", .ints(encodings[i].ids)), ("similarity", .floats(row))]))
            }
        } else {
            printSimilarityTable(texts: texts, values: all)
        }

    case .fillMask:
        try fillMask(folder: folder, texts: texts, args)
    case .train, .pretrainMLM:
        try train(folder: folder, args)
    case .download:
        break  // handled above
    case .quantize:
        try quantize(folder: folder, args)
    case .context:
        try context(folder: folder, texts: texts, args)
    case .attentionMap:
        try attentionMap(folder: folder, texts: texts, args)
    case .translate:
        try generateText(folder: folder, args)
    case .generate:
        if args.ids.isEmpty && args.prompts.isEmpty {
            try generateText(folder: folder, args)  // --text / --input: T5 and Marian
        } else {
            try generate(folder: folder, args)
        }
    }
} catch let e as UsageError {
    fail(e.description, status: 2)
} catch let e as CheckpointError {
    fail("\(folder.path): \(e.description)", status: 1)
} catch let e as CustomStringConvertible {
    fail(e.description, status: 1)
} catch {
    fail("\(error)", status: 1)
}
