import Attend
import AttendCommandLine
import Foundation

/// The parsed command line of `attend`. The flags each command takes, their values and the
/// --help texts are the tables of `AttendCommandLine.tool`
/// (Sources/AttendCommandLine/Tools/AttendTool.swift); the grammar has already refused
/// unknown and foreign flags and malformed values. What is left here are the checks that
/// relate flags to each other (one kind of generate source, --task with texts, ...).
struct Arguments {
    enum Command: String, CaseIterable {
        case tokenize, decode, embed, similarity, generate, translate
        case fillMask = "fill-mask"
        case train
        case pretrainMLM = "pretrain-mlm"
        case download
        case context
        case attentionMap = "attention-map"
        case quantize

        /// Whether the command trains a model (`train`, `pretrain-mlm`).
        var trains: Bool { self == .train || self == .pretrainMLM }
    }

    /// How `--input` is read.
    enum InputFormat: String {
        case lines, jsonl
    }

    var command: Command
    var model: String
    var json = false
    var maxLength: Int? = nil
    var batchSize = 32
    var threads: Int? = nil
    var texts: [String] = []
    var ids: [[Int]] = []
    /// `--prompt` texts (decoder-only generate).
    var prompts: [String] = []
    var task: String? = nil
    var beams: Int? = nil
    var maxNewTokens: Int? = nil
    var minNewTokens: Int? = nil
    var input: String? = nil
    var inputFormat = InputFormat.lines
    var keepSpecialTokens = false
    var generateTexts: [String] = []
    /// Repetition and sampling options of generate.
    var generation = GenerateOptions()
    /// `--top-k` of fill-mask: predictions per [MASK].
    var fillMaskTopK = 5
    /// The options of train and pretrain-mlm.
    var training = TrainingOptions()
    /// Whether `--batch-size` was given.
    var batchSizeGiven = false
    /// The options of download.
    var download = DownloadOptions()
    /// `--word` of context.
    var word: String? = nil
    /// `--layer`, `--head` and `--svg` of attention-map.
    var layer: Int? = nil
    var head: Int? = nil
    var svg: String? = nil
    /// `--part`, `--target` and `--target-ids` of attention-map (T5, Marian).
    var part: String? = nil
    var target: String? = nil
    var targetIDs: [Int]? = nil
    /// `--output` of embed: a .npy or .jsonl file to stream the vectors to.
    var output: String? = nil
    /// `--resume` of embed --output.
    var resume = false
    /// `--out` and `--scheme` of quantize.
    var quantizeOut: String? = nil
    var quantizeScheme = "int8-channel"
    /// `--keep-float` of quantize.
    var keepFloat = KeepFloatRule.default
    /// `--precision` of the commands that load a model: nil (`stored`, the default) keeps
    /// each weight as the folder stores it.
    var precision: WeightPrecision? = nil
    /// `--memory-precision` of generate and translate (T5, Marian); nil when not given.
    var memoryPrecision: MemoryPrecision? = nil

    /// The rule of `--keep-float`: `auto`, `none`, a relative error above 0, or module names.
    static func keepFloat(_ spec: String) throws -> KeepFloatRule {
        switch spec {
        case "auto": return .default
        case "none": return .none
        default:
            if let r = Double(spec) {
                guard r.isFinite, r > 0 else { throw UsageError(description: "--keep-float \(spec): a relative error must be a number above 0") }
                return KeepFloatRule(maxRelativeError: r)
            }
            let names = spec.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard !names.contains(where: \.isEmpty) else { throw UsageError(description: "--keep-float '\(spec)': an empty module name") }
            return KeepFloatRule(maxRelativeError: nil, modules: Set(names))
        }
    }

    /// The arguments of a command line the grammar accepted. Throws `UsageError` for flags
    /// that do not go together.
    init(_ parsed: ParsedArguments) throws {
        guard let command = Command(rawValue: parsed.command.name) else {
            preconditionFailure("'\(parsed.command.name)' is in attend's table but not in Arguments.Command")
        }
        let r = FlagReader(parsed)
        self.command = command
        if command == .download {
            download = try DownloadOptions(parsed)
            model = ""
            return
        }
        model = r.string("--model") ?? ""
        json = r.has("--json")
        maxLength = r.int("--max-length")
        batchSize = r.int("--batch-size") ?? 32
        batchSizeGiven = r.has("--batch-size")
        threads = r.int("--threads")
        texts = parsed.positionals
        ids = r.intLists("--ids")
        prompts = r.strings("--prompt")
        task = r.string("--task")
        beams = r.int("--beams")
        maxNewTokens = r.int("--max-new-tokens")
        minNewTokens = r.int("--min-new-tokens")
        input = r.string("--input")
        inputFormat = r.string("--input-format").flatMap(InputFormat.init) ?? .lines
        keepSpecialTokens = r.has("--keep-special-tokens")
        precision = try Arguments.precision(r.string("--precision"))
        if command == .quantize {
            quantizeOut = r.string("--out")
            quantizeScheme = r.string("--scheme") ?? "int8-channel"
            keepFloat = try Arguments.keepFloat(r.string("--keep-float") ?? "auto")
            return
        }
        if command.trains {
            training = TrainingOptions(r, command: command)
            try training.check(command: command)
            return
        }
        generateTexts = r.strings("--text")
        if command == .context || command == .attentionMap {
            word = r.string("--word")
            layer = r.int("--layer")
            head = r.int("--head")
            svg = r.string("--svg")
            part = r.string("--part")
            target = r.string("--target")
            targetIDs = r.intLists("--target-ids").first
            try checkInspection()
            return
        }
        output = r.string("--output")
        resume = r.has("--resume")
        if output != nil || resume {
            guard output != nil else { throw UsageError(description: "--resume needs --output OUT") }
            guard !json else { throw UsageError(description: "--json does not apply with --output (its extension, .npy or .jsonl, chooses the format)") }
            guard texts.isEmpty else { throw UsageError(description: "embed --output reads texts from --input or standard input, not arguments: '\(texts[0])'") }
        }
        if command == .fillMask {
            fillMaskTopK = r.int("--top-k") ?? 5
            return
        }
        generation = GenerateOptions(r)
        memoryPrecision = try Arguments.memoryPrecision(r.string("--memory-precision"))
        let generating = command == .generate || command == .translate
        if task != nil && (!ids.isEmpty || !prompts.isEmpty) {
            throw UsageError("--task belongs to generate/translate with source texts (--text, --input)")
        }
        if command == .decode {
            guard ids.isEmpty || input == nil else { throw UsageError("decode takes --ids or --input, not both") }
        } else if generating {
            let sources = [!ids.isEmpty, !generateTexts.isEmpty || input != nil, !prompts.isEmpty].filter { $0 }.count
            guard sources > 0 else {
                throw UsageError("\(command.rawValue) needs at least one --ids A,B,C (or --text, --input, or --prompt)")
            }
            guard sources == 1 else {
                throw UsageError("\(command.rawValue) takes one kind of source, not both: --ids, texts (--text, --input) or --prompt")
            }
        }
    }
}

extension Arguments {
    /// The weight precision a `--precision` value names: nil for `stored` (or no flag).
    /// Throws `UsageError` for another value (the grammar refuses those first).
    static func precision(_ value: String?) throws -> WeightPrecision? {
        guard let value, value != "stored" else { return nil }
        guard let p = WeightPrecision(rawValue: value) else {
            throw UsageError(description: "--precision takes \(AttendCommandLine.precisionNames.joined(separator: ", ")), not '\(value)'")
        }
        return p
    }

    /// The memory precision a `--memory-precision` value names: nil when no flag. Throws
    /// `UsageError` for another value (the grammar refuses those first).
    static func memoryPrecision(_ value: String?) throws -> MemoryPrecision? {
        switch value {
        case nil: return nil
        case "auto": return .automatic
        case "float32": return .float32
        case "bfloat16": return .bfloat16
        case let other?:
            throw UsageError(
                description: "--memory-precision takes \(AttendCommandLine.memoryPrecisionNames.joined(separator: ", ")), not '\(other)'")
        }
    }

    /// The checks of context and attention-map that relate their flags. Throws `UsageError`.
    func checkInspection() throws {
        if command == .context {
            guard let word, !word.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw UsageError(description: "context needs --word WORD (the word to follow across the texts)")
            }
        } else {
            if let svg, !(svg.lowercased().hasSuffix(".svg") && svg.count > 4) {
                throw UsageError(description: "--svg needs a file name ending in .svg, got '\(svg)'")
            }
            if svg == nil && !json { throw UsageError(description: "attention-map needs --svg OUT.svg or --json") }
            if let first = ids.first {
                if first.isEmpty { throw UsageError(description: "--ids is empty") }
                if let text = texts.first { throw UsageError(description: "attention-map takes TEXT or --ids, not both: '\(text)'") }
                if input != nil { throw UsageError(description: "attention-map takes --ids or --input, not both") }
            }
            if target != nil && targetIDs != nil { throw UsageError(description: "attention-map takes --target or --target-ids, not both") }
            if (target != nil || targetIDs != nil) && !(part == "decoder" || part == "cross") {
                throw UsageError(description: "--\(target != nil ? "target" : "target-ids") applies to --part decoder or cross")
            }
            if targetIDs?.isEmpty == true { throw UsageError(description: "--target-ids is empty") }
        }
    }
}

/// Reads the flags of a parsed command line for `Arguments`: a flag the command's table does not
/// list reads as not given (so one reader serves every command), but a name no command of
/// attend lists is a programming error.
struct FlagReader {
    let parsed: ParsedArguments
    static let known = Set(AttendCommandLine.tool.allFlagNames)

    init(_ parsed: ParsedArguments) { self.parsed = parsed }

    private func listed(_ name: String) -> Bool {
        precondition(Self.known.contains(name), "\(name) is in no table of attend")
        return parsed.command.flag(named: name) != nil
    }

    func has(_ name: String) -> Bool { listed(name) && parsed.has(name) }
    func string(_ name: String) -> String? { listed(name) ? parsed.string(name) : nil }
    func strings(_ name: String) -> [String] { listed(name) ? parsed.strings(name) : [] }
    func int(_ name: String) -> Int? { listed(name) ? parsed.int(name) : nil }
    func uint64(_ name: String) -> UInt64? { listed(name) ? parsed.uint64(name) : nil }
    func double(_ name: String) -> Double? { listed(name) ? parsed.double(name) : nil }
    func intLists(_ name: String) -> [[Int]] { listed(name) ? parsed.intLists(name) : [] }
}

/// A source given as comma-separated token ids ("5,17,42"; spaces allowed around commas).
func tokenIDs(_ text: String, flag: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    var ids: [Int] = []
    for (i, part) in parts.enumerated() {
        let t = part.trimmingCharacters(in: .whitespaces)
        guard let id = Int(t), id >= 0 else {
            throw UsageError(description: "\(flag): item \(i + 1) ('\(t)') is not a token id (a non-negative integer)")
        }
        ids.append(id)
    }
    return ids
}

/// Lines of standard input (the line break removed; a final empty line is not a text).
func readStandardInputLines() -> [String] {
    // Split the bytes (a Swift String would treat "\r\n" as one character).
    var lines = Array(FileHandle.standardInput.readDataToEndOfFile()).split(separator: 0x0A, omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    return lines.map { line in String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self) }
}
