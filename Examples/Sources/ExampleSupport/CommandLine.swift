import Foundation

/// An error the user can fix: printed as one line on stderr (`command: message`). Usage
/// errors (a bad flag or value) exit with status 2 and a hint to `--help`; other errors
/// (a missing file, a model folder that does not load) exit with status 1.
public struct ExampleError: Error, CustomStringConvertible {
    /// The one-line message.
    public let message: String
    /// Whether the command line itself was wrong (exit status 2).
    public let isUsage: Bool

    /// An error with `message`; `usage` marks a command-line mistake.
    public init(_ message: String, usage: Bool = false) {
        self.message = message
        self.isUsage = usage
    }

    /// The message.
    public var description: String { message }
}

/// One option of a command.
public struct Option: Sendable {
    /// The flag, with its dashes (`--model`).
    public let flag: String
    /// The value's placeholder in the help (`DIR`), or nil for a switch that takes no value.
    public let value: String?
    /// Whether the option may be given more than once (each value is kept).
    public let repeatable: Bool
    /// One line of help.
    public let help: String

    /// An option taking a value (`--flag VALUE` or `--flag=VALUE`).
    public static func value(_ flag: String, _ placeholder: String, repeatable: Bool = false, _ help: String) -> Option {
        Option(flag: flag, value: placeholder, repeatable: repeatable, help: help)
    }

    /// A switch (`--flag`), on when present.
    public static func flag(_ flag: String, _ help: String) -> Option {
        Option(flag: flag, value: nil, repeatable: false, help: help)
    }
}

/// What a command accepts: its options and a usage text for `--help`.
public struct CommandSpec: Sendable {
    /// The command's name, as typed.
    public let name: String
    /// One line saying what the command does.
    public let summary: String
    /// The synopsis after the name (`--model DIR [TEXT ...]`).
    public let synopsis: String
    /// The options (`--help` is added).
    public let options: [Option]
    /// Lines printed after the options (examples, notes).
    public let notes: [String]

    /// A command description.
    public init(name: String, summary: String, synopsis: String, options: [Option], notes: [String] = []) {
        self.name = name
        self.summary = summary
        self.synopsis = synopsis
        self.options = options
        self.notes = notes
    }

    /// The text `--help` prints.
    public var help: String {
        var lines = ["\(name): \(summary)", "", "usage: \(name) \(synopsis)", "", "options:"]
        let width = (options.map { $0.flag.count + ($0.value.map { $0.count + 1 } ?? 0) } + [6]).max()!
        for o in options + [.flag("--help", "print this help and exit")] {
            let left = o.flag + (o.value.map { " " + $0 } ?? "")
            lines.append(
                "  " + left.padding(toLength: width + 2, withPad: " ", startingAt: 0) + o.help
                    + (o.repeatable ? " (repeatable)" : ""))
        }
        if !notes.isEmpty { lines += [""] + notes }
        return lines.joined(separator: "\n")
    }
}

/// A parsed command line: option values, switches and the positional arguments.
public struct ParsedArguments: Sendable {
    /// Every value given to each option, in order.
    public private(set) var values: [String: [String]] = [:]
    /// The switches given.
    public private(set) var switches: Set<String> = []
    /// Arguments that are not options (everything after `--` included).
    public private(set) var positionals: [String] = []
    /// Whether `--help` (or `-h`) was given before `--`.
    public private(set) var helpRequested = false

    /// Parses `arguments` (without the program name) against `spec`: `--flag VALUE`,
    /// `--flag=VALUE`, switches, `--` ending the options (so text may start with a dash after
    /// it). An unknown option, a missing value, a value given to a switch or a repeated
    /// option that is not repeatable is a usage error naming the option.
    public init(_ arguments: [String], spec: CommandSpec) throws(ExampleError) {
        var i = 0
        var optionsEnded = false
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if optionsEnded || arg == "-" || !arg.hasPrefix("-") {
                positionals.append(arg)
                continue
            }
            if arg == "--" { optionsEnded = true; continue }
            if arg == "--help" || arg == "-h" { helpRequested = true; continue }
            let (name, inline): (String, String?) = {
                guard let eq = arg.firstIndex(of: "=") else { return (arg, nil) }
                return (String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
            }()
            guard let option = spec.options.first(where: { $0.flag == name }) else {
                let known = spec.options.map(\.flag).joined(separator: ", ")
                throw ExampleError(
                    "unknown option \(name) for \(spec.name) (known: \(known), --help; put text that starts with '-' after --)", usage: true)
            }
            guard option.value != nil else {
                if inline != nil { throw ExampleError("\(name) takes no value", usage: true) }
                if switches.contains(name) { throw ExampleError("\(name) given twice", usage: true) }
                switches.insert(name)
                continue
            }
            let value: String
            if let inline {
                value = inline
            } else {
                guard i < arguments.count else { throw ExampleError("\(name) needs a value (\(option.value!))", usage: true) }
                value = arguments[i]
                i += 1
            }
            if !option.repeatable && values[name] != nil { throw ExampleError("\(name) given twice", usage: true) }
            values[name, default: []].append(value)
        }
    }

    /// The value of a non-repeatable option, or nil when it was not given.
    public func value(_ flag: String) -> String? { values[flag]?.last }

    /// Whether a switch was given.
    public func has(_ flag: String) -> Bool { switches.contains(flag) }

    /// The value of a required option; a usage error when it is missing.
    public func required(_ flag: String) throws(ExampleError) -> String {
        guard let v = value(flag) else { throw ExampleError("\(flag) is required", usage: true) }
        return v
    }

    /// An integer option in `range`, or `defaultValue` when absent; a usage error naming the
    /// option when the value is not an integer or out of range.
    public func integer(_ flag: String, default defaultValue: Int, in range: ClosedRange<Int>) throws(ExampleError) -> Int {
        guard let text = value(flag) else { return defaultValue }
        guard let n = Int(text) else { throw ExampleError("\(flag) \"\(text)\" is not an integer", usage: true) }
        guard range.contains(n) else {
            throw ExampleError("\(flag) \(n) is out of range \(range.lowerBound)...\(range.upperBound)", usage: true)
        }
        return n
    }
}

/// Parses the process's arguments against `spec` and runs `body`: prints the help and exits
/// 0 for `--help`; prints an error as `name: message` on stderr and exits 2 (usage) or 1
/// (anything else thrown: ``ExampleError``, or a library error, whose description names the
/// file or setting at fault).
public func runCommand(_ spec: CommandSpec, _ body: (ParsedArguments) throws -> Void) -> Never {
    do {
        let args = try ParsedArguments(Array(CommandLine.arguments.dropFirst()), spec: spec)
        if args.helpRequested {
            print(spec.help)
            exit(0)
        }
        try body(args)
        exit(0)
    } catch let error as ExampleError {
        printError("\(spec.name): \(error.message)")
        if error.isUsage { printError("(\(spec.name) --help lists the options)") }
        exit(error.isUsage ? 2 : 1)
    } catch {
        printError("\(spec.name): \(error)")
        exit(1)
    }
}

/// Writes `line` and a newline to standard error.
public func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// The non-empty lines of a text file (or of standard input for `-`), trimmed, with their
/// 1-based line numbers. Invalid UTF-8 is read with U+FFFD in place of each bad sequence.
/// Throws an ``ExampleError`` naming the file when it cannot be read.
public func readLines(path: String) throws(ExampleError) -> [(line: Int, text: String)] {
    let data: Data
    if path == "-" {
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ExampleError("\(path): no such file")
        }
        guard !isDirectory.boolValue else { throw ExampleError("\(path): is a directory, not a text file") }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ExampleError("\(path): cannot be read (\(error.localizedDescription))")
        }
    }
    let text = String(decoding: data, as: UTF8.self)
    var lines: [(Int, String)] = []
    for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if !trimmed.isEmpty { lines.append((i + 1, trimmed)) }
    }
    return lines
}

/// A model folder given on the command line, checked to be an existing directory (the
/// loaders then report what inside it is missing or wrong).
public func modelFolder(_ path: String, option: String) throws(ExampleError) -> URL {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ExampleError("\(option) \(path): no such folder")
    }
    guard isDirectory.boolValue else { throw ExampleError("\(option) \(path): not a folder (give the folder holding config.json)") }
    return URL(fileURLWithPath: path, isDirectory: true)
}
