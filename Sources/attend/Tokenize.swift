// `attend tokenize` and `attend decode` for every tokenizer family, and the `--input` reader.
import Attend
import AttendCommandLine
import Foundation

/// Prints each text's tokens and ids (see the usage text). A WordPiece folder keeps its
/// sentence-transformers length limit (`--max-length`, else sentence_bert_config.json).
func tokenize(folder: URL, texts: [String], _ args: Arguments) throws {
    let tokenizer = try loadTokenizer(directory: folder)
    var maxLength: Int? = nil
    if let wordPiece = tokenizer as? WordPieceTokenizer {
        maxLength = try args.maxLength ?? SentenceEmbedder.readSentenceBertConfig(directory: folder).maxSeqLength
        if let m = maxLength, m < wordPiece.specialTokenCount() {
            throw UsageError(description: "--max-length \(m) leaves no room for the \(wordPiece.specialTokenCount()) special tokens")
        }
    } else if args.maxLength != nil {
        throw UsageError(description: "--max-length applies to WordPiece (BERT) folders only")
    }
    for text in texts {
        let ids: [Int]
        if let wordPiece = tokenizer as? WordPieceTokenizer {
            ids = try wordPiece.encode(text, maxLength: maxLength).ids
        } else {
            ids = tokenizer.encode(text).ids
        }
        let tokens = ids.map { tokenizer.token(for: $0) ?? "?" }
        if args.json {
            print(jsonObject([("text", .string(text)), ("ids", .ints(ids)), ("tokens", .strings(tokens))]))
        } else {
            print(quotedLine(text))
            print("  tokens: " + tokens.joined(separator: " "))
            print("  ids:    " + ids.map(String.init).joined(separator: " "))
        }
    }
}

/// Prints the text of each id list (`--ids`, else `--input`, else standard input).
func decode(folder: URL, _ args: Arguments) throws {
    let tokenizer = try loadTokenizer(directory: folder)
    let lists = args.ids.isEmpty ? try readIDInputs(args) : args.ids
    for (n, ids) in lists.enumerated() {
        if let bad = ids.firstIndex(where: { $0 >= tokenizer.idLimit }) {
            throw UsageError(
                description: "ids #\(n + 1): item \(bad + 1) (\(ids[bad])) is not a token id of this tokenizer (0..<\(tokenizer.idLimit))")
        }
        let text = tokenizer.decode(ids, skipSpecialTokens: !args.keepSpecialTokens)
        print(args.json ? jsonObject([("ids", .ints(ids)), ("text", .string(text))]) : text)
    }
}

/// The raw lines of `--input` (a file, or "-" for standard input), else of standard input.
private func inputLines(_ args: Arguments) throws -> [(number: Int, bytes: [UInt8])] {
    let data: Data
    if let path = args.input, path != "-" {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw UsageError(description: "--input \(path): cannot read the file")
        }
        data = d
    } else {
        data = FileHandle.standardInput.readDataToEndOfFile()
    }
    var lines = Array(data).split(separator: 0x0A, omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    return lines.enumerated().map { i, line in (i + 1, Array(line.last == 0x0D ? line.dropLast() : line)) }
}

/// One JSONL line as an object.
private func jsonLine(_ bytes: [UInt8], _ number: Int, _ args: Arguments) throws -> [String: Any] {
    let name = args.input ?? "-"
    guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
        throw UsageError(description: "\(name): line \(number) is not a JSON object")
    }
    return object
}

/// The texts of `--input` / standard input: one per line, or `{"text": ...}` per JSONL line.
func readTextInputs(_ args: Arguments) throws -> [String] {
    try inputLines(args).compactMap { number, bytes in
        switch args.inputFormat {
        case .lines: return String(decoding: bytes, as: UTF8.self)
        case .jsonl:
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
            guard let text = try jsonLine(bytes, number, args)["text"] as? String else {
                throw UsageError(description: "\(args.input ?? "-"): line \(number) has no string \"text\"")
            }
            return text
        }
    }
}

/// The id lists of `--input` / standard input: "1,2,3" per line, or `{"ids": [...]}` per JSONL line.
func readIDInputs(_ args: Arguments) throws -> [[Int]] {
    try inputLines(args).compactMap { (number, bytes) -> [Int]? in
        // A blank line: an empty id list (lines) or nothing (jsonl).
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return args.inputFormat == .lines ? [] : nil }
        switch args.inputFormat {
        case .lines:
            return try tokenIDs(String(decoding: bytes, as: UTF8.self), flag: "\(args.input ?? "-"): line \(number)")
        case .jsonl:
            guard let items = try jsonLine(bytes, number, args)["ids"] as? [Any] else {
                throw UsageError(description: "\(args.input ?? "-"): line \(number) has no array \"ids\"")
            }
            return try items.enumerated().map { i, v in
                // JSON true/false arrive as NSNumber too (type "c"): not ids.
                guard let n = v as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue == Double(n.int64Value),
                    n.int64Value >= 0, n.int64Value <= Int64(Int32.max)
                else {
                    throw UsageError(description: "\(args.input ?? "-"): line \(number): ids item \(i + 1) is not a token id")
                }
                return Int(n.int64Value)
            }
        }
    }
}
