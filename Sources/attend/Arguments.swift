import Foundation

/// A mistake in the command line: printed with the usage, exit status 2.
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

/// The parsed command line of `attend`.
struct Arguments {
    enum Command: String, CaseIterable {
        case tokenize, embed, similarity
    }

    static let usage = """
        usage: attend tokenize   --model DIR [--json] [--max-length N] [TEXT...]
               attend embed      --model DIR [--json] [--batch-size N] [--threads N] [TEXT...]
               attend similarity --model DIR [--json] [--batch-size N] [--threads N] [TEXT...]

          tokenize    the token ids (and tokens) of each text, as the model sees it
          embed       the sentence embedding of each text
          similarity  the cosine similarity of every pair of texts, as a table

          --model DIR      a sentence-transformers / Hugging Face BERT folder (config.json,
                           model.safetensors, tokenizer.json or vocab.txt, modules.json, ...)
          --json           one JSON object per text and line: {"text": ..., "ids": [...], ...}
          --max-length N   cut texts to N tokens, [CLS] and [SEP] included (tokenize; default:
                           the folder's sentence_bert_config.json, else no limit)
          --batch-size N   texts per forward pass (default 32)
          --threads N      threads for the model (default: all active cores)

        Texts come from the arguments, or, when there are none, from standard input, one per line.
        """

    var command: Command
    var model: String
    var json = false
    var maxLength: Int? = nil
    var batchSize = 32
    var threads: Int? = nil
    var texts: [String] = []

    static func parse(_ args: [String]) throws -> Arguments {
        guard let first = args.first else { throw UsageError(description: "no command given") }
        guard let command = Command(rawValue: first) else {
            throw UsageError(description: "unknown command '\(first)' (known: \(Command.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var model: String? = nil
        var a = Arguments(command: command, model: "")
        var i = 1
        var onlyTexts = false
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { throw UsageError(description: "\(flag) needs a value") }
            return args[i]
        }
        func positive(_ flag: String) throws -> Int {
            let s = try value(flag)
            guard let n = Int(s), n > 0 else { throw UsageError(description: "\(flag) needs a positive integer, got '\(s)'") }
            return n
        }
        while i < args.count {
            let arg = args[i]
            if onlyTexts || !arg.hasPrefix("--") || arg == "-" {
                a.texts.append(arg)
            } else {
                switch arg {
                case "--": onlyTexts = true
                case "--model": model = try value(arg)
                case "--json": a.json = true
                case "--max-length": a.maxLength = try positive(arg)
                case "--batch-size": a.batchSize = try positive(arg)
                case "--threads": a.threads = try positive(arg)
                default: throw UsageError(description: "unknown option '\(arg)'")
                }
            }
            i += 1
        }
        guard let model, !model.isEmpty else { throw UsageError(description: "--model DIR is required") }
        a.model = model
        return a
    }
}

/// Lines of standard input (the line break removed; a final empty line is not a text).
func readStandardInputLines() -> [String] {
    // Split the bytes (a Swift String would treat "\r\n" as one character).
    var lines = Array(FileHandle.standardInput.readDataToEndOfFile()).split(separator: 0x0A, omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    return lines.map { line in String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self) }
}
