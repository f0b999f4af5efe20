// One command-line grammar for `attend`, `bench` and `kernel-fuzz`: each tool is a table of
// commands, each command a table of flags (name, kind of value, whether it repeats, whether it
// is required, help text). The parser and the --help texts come from the tables, so every tool
// reads its arguments the same way:
//
// - `--flag value` and `--flag=value` are the same; a switch (`--json`) takes no value.
// - The word after a flag that takes a value is its value, whatever it looks like
//   (`--seed -1`, `--text --json`).
// - `--` ends the options: every argument after it is positional, `-h` and `--json` included.
// - `-h` / `--help` print the command's help (usage line, flags, details, exit statuses) and
//   exit 0; `--version` prints the version and exits 0. Both only as options (before `--`).
// - Other arguments (`-`, `-x`, texts) are positional, for the commands that take them.
// - A flag the command does not have is a usage error naming the command: "--beams is not an
//   option of 'attend embed'". So is a missing or malformed value, a flag that takes one value
//   given twice, a required flag left out, and positional arguments for a command without any.
//
// Exit statuses (`ExitStatus`): 0 success, 1 runtime failure, 2 usage error. A usage error is
// one line on stderr ("tool: message") and a second line pointing to the command's --help.
import Attend
import Foundation

/// The exit statuses of `attend`, `bench` and `kernel-fuzz`, as each tool's help lists them.
///
/// - `success` (0): the command did what it was asked.
/// - `failure` (1): a runtime failure: a file or folder that is missing, unreadable or
///   malformed, a model that cannot take the input; for `kernel-fuzz`, a mismatch found.
/// - `usage` (2): the command line is wrong: an unknown command or flag, a flag of another
///   command, a missing or malformed value, a required flag left out. Nothing was run.
package enum ExitStatus: Int32, Sendable, CaseIterable {
    case success = 0
    case failure = 1
    case usage = 2

    /// The statuses as a help text's last paragraph; `failure` says what a runtime failure is
    /// for the tool.
    package static func helpText(failure: String) -> String {
        "exit status: 0 success; 1 \(failure); 2 usage error (a wrong command line: one line on stderr, nothing run)"
    }
}

/// A mistake in the command line: printed on one line with a pointer to `--help`, exit status 2.
package struct UsageError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The message, without the tool's name.
    package let description: String

    /// A usage error saying `description`.
    package init(description: String) { self.description = description }

    /// A usage error saying `description`.
    package init(_ description: String) { self.description = description }
}

/// A range of numbers a `double` flag accepts; each end open, closed or absent. NaN and the
/// infinities are never accepted.
package struct NumberRange: Sendable, Equatable {
    package var lower: Double?
    package var lowerOpen: Bool
    package var upper: Double?
    package var upperOpen: Bool

    /// Any finite number.
    package static let any = NumberRange(lower: nil, lowerOpen: false, upper: nil, upperOpen: false)
    /// Numbers above 0.
    package static let positive = NumberRange(lower: 0, lowerOpen: true, upper: nil, upperOpen: false)
    /// 0 and above.
    package static let nonNegative = NumberRange(lower: 0, lowerOpen: false, upper: nil, upperOpen: false)
    /// `lower` to `upper`, both included.
    package static func closed(_ lower: Double, _ upper: Double) -> NumberRange {
        NumberRange(lower: lower, lowerOpen: false, upper: upper, upperOpen: false)
    }

    /// Whether `x` is finite and in the range.
    package func contains(_ x: Double) -> Bool {
        guard x.isFinite else { return false }
        if let l = lower, lowerOpen ? !(x > l) : !(x >= l) { return false }
        if let u = upper, upperOpen ? !(x < u) : !(x <= u) { return false }
        return true
    }

    /// "a positive number", "a number in [0, 1]", ...
    package var phrase: String {
        switch (lower, upper) {
        case (nil, nil): return "a finite number"
        case (0?, nil): return lowerOpen ? "a positive number" : "a non-negative number"
        case (let l?, nil): return "a number \(lowerOpen ? ">" : ">=") \(Self.format(l))"
        case (nil, let u?): return "a number \(upperOpen ? "<" : "<=") \(Self.format(u))"
        case (let l?, let u?): return "a number in \(lowerOpen ? "(" : "[")\(Self.format(l)), \(Self.format(u))\(upperOpen ? ")" : "]")"
        }
    }

    private static func format(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }
}

/// The items of a comma-separated list value.
package enum ListItem: Sendable, Equatable {
    /// Integers in the range (spaces around the commas allowed).
    case int(ClosedRange<Int>)
    /// Any text without commas.
    case string
    /// One of the names.
    case choice([String])
}

/// The value a flag takes.
package enum ValueKind: Sendable, Equatable {
    /// None: the flag is a switch (`--json`).
    case none
    /// An integer in the range.
    case int(ClosedRange<Int>)
    /// An unsigned 64-bit integer (seeds, case numbers).
    case uint64
    /// A finite number in the range.
    case double(NumberRange)
    /// Any text (a path, a prompt), empty included.
    case string
    /// Any text but the empty one.
    case nonEmptyString
    /// One of the names.
    case choice([String])
    /// A comma-separated list of items ("5,17,42").
    case list(ListItem)

    /// Whether the flag takes a value.
    package var takesValue: Bool { self != .none }
}

/// One flag of a command: its name, the value it takes, and its line of help.
package struct Flag: Sendable {
    /// The name with its dashes: "--beams".
    package let name: String
    /// The value it takes (`.none` for a switch).
    package let kind: ValueKind
    /// The value's name in the help ("N", "DIR"); for choices, the choices joined with "|".
    package let placeholder: String
    /// Whether it may be given more than once (each value is kept, in order).
    package let repeatable: Bool
    /// Whether the command needs it.
    package let required: Bool
    /// One paragraph of help (wrapped when printed).
    package let help: String

    /// A flag taking a value of `kind`.
    package init(_ name: String, _ kind: ValueKind, _ placeholder: String = "", repeatable: Bool = false, required: Bool = false, help: String) {
        precondition(name.hasPrefix("--") && name.count > 2 && !name.contains("="), "a flag is --name: \(name)")
        self.name = name
        self.kind = kind
        if placeholder.isEmpty, case .choice(let names) = kind {
            self.placeholder = names.joined(separator: "|")
        } else {
            self.placeholder = kind == .none ? "" : (placeholder.isEmpty ? "VALUE" : placeholder)
        }
        self.repeatable = repeatable
        self.required = required
        self.help = help
    }

    /// A switch: a flag without a value.
    package static func `switch`(_ name: String, help: String) -> Flag { Flag(name, .none, help: help) }

    /// "--beams N", "--json".
    package var synopsis: String { placeholder.isEmpty ? name : "\(name) \(placeholder)" }
}

/// One command of a tool: its flags, whether it takes positional arguments, and its help.
package struct CommandSpec: Sendable {
    /// The command word ("embed"); empty for a tool without commands (`bench`).
    package let name: String
    /// One line saying what it does.
    package let summary: String
    /// Its flags, in the order the help lists them.
    package let flags: [Flag]
    /// How the usage line shows its positional arguments ("[TEXT...]"); nil when it takes none.
    package let positionals: String?
    /// Paragraphs printed after the flags (output formats, defaults); may be empty.
    package let details: String

    /// A command; flag names must be distinct.
    package init(_ name: String, summary: String, flags: [Flag], positionals: String? = nil, details: String = "") {
        precondition(Set(flags.map(\.name)).count == flags.count, "a flag listed twice in '\(name)'")
        precondition(!flags.contains { ["--help", "--version"].contains($0.name) }, "--help and --version are every command's")
        self.name = name
        self.summary = summary
        self.flags = flags
        self.positionals = positionals
        self.details = details
    }

    /// The flag called `name` ("--beams"), if the command has it.
    package func flag(named name: String) -> Flag? { flags.first { $0.name == name } }
}

/// A tool: its name and its commands (one unnamed command for a tool without commands).
package struct ToolSpec: Sendable {
    /// The executable's name ("attend").
    package let name: String
    /// One line saying what it does.
    package let summary: String
    /// Its commands; a tool without commands has one, named "".
    package let commands: [CommandSpec]
    /// What exit status 1 means for this tool (see `ExitStatus`).
    package let failureMeaning: String
    /// The version `--version` prints.
    package let version: String

    /// A tool; command names must be distinct, and a tool without commands has exactly one.
    package init(name: String, summary: String, commands: [CommandSpec], failureMeaning: String, version: String = attendVersion) {
        precondition(!commands.isEmpty && Set(commands.map(\.name)).count == commands.count, "commands of \(name)")
        precondition(commands.count == 1 || !commands.contains { $0.name.isEmpty }, "an unnamed command must be the only one")
        self.name = name
        self.summary = summary
        self.commands = commands
        self.failureMeaning = failureMeaning
        self.version = version
    }

    /// Whether the first argument names a command (`attend embed ...`), as opposed to a tool
    /// that is one command (`bench --quick`).
    package var hasCommands: Bool { !commands[0].name.isEmpty }

    /// The command called `name`.
    package func command(named name: String) -> CommandSpec? { commands.first { $0.name == name } }

    /// "attend embed" or "bench".
    package func title(_ command: CommandSpec?) -> String {
        guard let command, !command.name.isEmpty else { return name }
        return "\(name) \(command.name)"
    }

    /// Every flag name of every command, sorted.
    package var allFlagNames: [String] { Array(Set(commands.flatMap { $0.flags.map(\.name) })).sorted() }
}

/// What a command line asks for.
package enum Invocation: Sendable {
    /// Run a command with these arguments.
    case run(ParsedArguments)
    /// Print the help of a command (nil: the tool's overview) and exit 0.
    case help(CommandSpec?)
    /// Print the version and exit 0.
    case version
}

/// A parsed command line: the command, the flags given with their checked values, and the
/// positional arguments. The typed accessors read values the parser has already checked.
package struct ParsedArguments: Sendable {
    /// The tool's name (for messages).
    package let tool: String
    /// The command run.
    package let command: CommandSpec
    /// The positional arguments, in order (everything after `--` included).
    package internal(set) var positionals: [String] = []
    /// Each given flag's raw values, in order ("" for a switch).
    package internal(set) var values: [String: [String]] = [:]

    private func raw(_ name: String) -> [String] {
        precondition(command.flag(named: name) != nil, "\(name) is not in the table of '\(tool) \(command.name)'")
        return values[name] ?? []
    }

    /// Whether the flag was given (a switch: whether it is on).
    package func has(_ name: String) -> Bool { !raw(name).isEmpty }
    /// The value of a flag given once (the last one for a repeatable flag).
    package func string(_ name: String) -> String? { raw(name).last }
    /// Every value of a repeatable flag, in order.
    package func strings(_ name: String) -> [String] { raw(name) }
    /// An `int` flag's value.
    package func int(_ name: String) -> Int? { raw(name).last.map { Int($0.trimmingCharacters(in: .whitespaces))! } }
    /// A `uint64` flag's value.
    package func uint64(_ name: String) -> UInt64? { raw(name).last.map { UInt64($0.trimmingCharacters(in: .whitespaces))! } }
    /// A `double` flag's value.
    package func double(_ name: String) -> Double? { raw(name).last.map { Double($0.trimmingCharacters(in: .whitespaces))! } }
    /// Each value of a `list` flag, split at the commas (items trimmed of spaces).
    package func lists(_ name: String) -> [[String]] { raw(name).map(splitList) }
    /// Each value of an integer `list` flag.
    package func intLists(_ name: String) -> [[Int]] { lists(name).map { $0.map { Int($0)! } } }
}

/// The items of a list value: split at commas, trimmed of spaces and tabs.
private func splitList(_ s: String) -> [String] {
    s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
}

extension Flag {
    /// Checks `value` against the kind; throws `UsageError` naming the flag and the value.
    package func check(_ value: String) throws {
        func fail(_ what: String) -> UsageError { UsageError("\(name) needs \(what), got '\(value)'") }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .none: throw UsageError("\(name) takes no value, got '\(value)'")
        case .int(let range):
            guard let n = Int(trimmed), range.contains(n) else { throw fail(Self.phrase(range)) }
        case .uint64:
            guard UInt64(trimmed) != nil else { throw fail("a non-negative integer below 2^64") }
        case .double(let range):
            guard let x = Double(trimmed), range.contains(x) else { throw fail(range.phrase) }
        case .string: break
        case .nonEmptyString:
            guard !value.isEmpty else { throw UsageError("\(name) needs a non-empty value") }
        case .choice(let names):
            guard names.contains(value) else { throw fail(Self.oneOf(names)) }
        case .list(let item):
            for (i, part) in splitList(value).enumerated() {
                let ok: Bool
                let what: String
                switch item {
                case .int(let range):
                    ok = Int(part).map(range.contains) ?? false
                    what = Self.phrase(range)
                case .string:
                    ok = !part.isEmpty
                    what = "a non-empty item"
                case .choice(let names):
                    ok = names.contains(part)
                    what = Self.oneOf(names)
                }
                guard ok else { throw UsageError("\(name): item \(i + 1) ('\(part)') is not \(what)") }
            }
        }
    }

    /// "a positive integer", "an integer in 1...256", ...
    static func phrase(_ range: ClosedRange<Int>) -> String {
        switch (range.lowerBound, range.upperBound) {
        case (1, Int.max): return "a positive integer"
        case (0, Int.max): return "a non-negative integer"
        case (Int.min, Int.max): return "an integer"
        case (let l, Int.max): return "an integer >= \(l)"
        case (let l, let u): return "an integer in \(l)...\(u)"
        }
    }

    /// "on", "on or off", "one of a, b, c".
    static func oneOf(_ names: [String]) -> String {
        switch names.count {
        case 1: return names[0]
        case 2: return "\(names[0]) or \(names[1])"
        default: return "one of \(names.joined(separator: ", "))"
        }
    }
}

extension ToolSpec {
    /// Reads `arguments` (without the executable's name). Throws `UsageError` for a wrong
    /// command line; `--help` and `--version` win over mistakes elsewhere in the line.
    package func parse(_ arguments: [String]) throws -> Invocation {
        var rest = arguments[...]
        var command = commands[0]
        if hasCommands {
            guard let first = rest.first else { throw UsageError("no command given (commands: \(commands.map(\.name).joined(separator: ", ")))") }
            switch first {
            case "-h", "--help": return .help(nil)
            case "--version": return .version
            case "help":
                guard let c = rest.dropFirst().first else { return .help(nil) }
                guard let named = self.command(named: c) else { throw unknownCommand(c) }
                return .help(named)
            default:
                guard let named = self.command(named: first) else { throw unknownCommand(first) }
                command = named
                rest = rest.dropFirst()
            }
        }
        return try parse(Array(rest), command: command)
    }

    private func unknownCommand(_ word: String) -> UsageError {
        if word.hasPrefix("-") {
            return UsageError("\(word) before a command: options follow the command (commands: \(commands.map(\.name).joined(separator: ", ")))")
        }
        return UsageError("unknown command '\(word)' (commands: \(commands.map(\.name).joined(separator: ", ")))")
    }

    /// Reads the arguments after the command word.
    package func parse(_ arguments: [String], command: CommandSpec) throws -> Invocation {
        var parsed = ParsedArguments(tool: name, command: command)
        var i = 0
        var optionsEnded = false
        do {
            while i < arguments.count {
                let a = arguments[i]
                i += 1
                if optionsEnded {
                    parsed.positionals.append(a)
                    continue
                }
                switch a {
                case "--":
                    optionsEnded = true
                    continue
                case "-h", "--help": return .help(command)
                case "--version": return .version
                default: break
                }
                guard a.hasPrefix("--") else {
                    parsed.positionals.append(a)
                    continue
                }
                let name: String
                var inline: String? = nil
                if let eq = a.firstIndex(of: "=") {
                    name = String(a[..<eq])
                    inline = String(a[a.index(after: eq)...])
                } else {
                    name = a
                }
                guard let flag = command.flag(named: name) else { throw notAnOption(name, of: command) }
                let value: String
                if !flag.kind.takesValue {
                    if let inline { throw UsageError("\(name) takes no value, got '\(inline)'") }
                    value = ""
                } else if let inline {
                    value = inline
                } else {
                    guard i < arguments.count else { throw UsageError("\(name) needs a value (\(flag.synopsis))") }
                    value = arguments[i]
                    i += 1
                }
                if flag.kind.takesValue { try flag.check(value) }
                if !flag.repeatable, parsed.values[name] != nil {
                    throw UsageError("\(name) is given twice (it takes one \(flag.kind.takesValue ? "value" : "occurrence"))")
                }
                parsed.values[name, default: []].append(value)
            }
            if command.positionals == nil, let first = parsed.positionals.first {
                throw UsageError("'\(title(command))' takes no arguments besides its options, got '\(first)'")
            }
            for flag in command.flags where flag.required && parsed.values[flag.name] == nil {
                throw UsageError("\(title(command)) needs \(flag.synopsis)")
            }
        } catch let error as UsageError {
            // --help or --version later in the line (before `--`) still wins.
            for a in arguments[min(i, arguments.count)...] {
                if a == "--" { break }
                if a == "-h" || a == "--help" { return .help(command) }
                if a == "--version" { return .version }
            }
            throw error
        }
        return .run(parsed)
    }

    /// "--beams is not an option of 'attend embed'", and which commands have it.
    package func notAnOption(_ name: String, of command: CommandSpec) -> UsageError {
        let owners = commands.filter { $0.flag(named: name) != nil }.map(\.name)
        let which = owners.isEmpty || !hasCommands ? "" : " (it is an option of \(owners.joined(separator: ", ")))"
        return UsageError("\(name) is not an option of '\(title(command))'\(which)")
    }
}

// MARK: - Help texts

extension ToolSpec {
    /// Width of the help texts.
    package static let helpWidth = 100

    /// The help of `command`, or the tool's overview (nil): usage line, flags, details, exit
    /// statuses.
    package func help(_ command: CommandSpec?) -> String {
        guard let command = command ?? (hasCommands ? nil : commands[0]) else { return overview() }
        var lines: [String] = []
        let required = command.flags.filter(\.required).map(\.synopsis)
        let optional = command.flags.contains { !$0.required } ? ["[options]"] : []
        let usage = ["usage:", title(command)] + required + optional + (command.positionals.map { [$0] } ?? [])
        lines += wrap(usage.joined(separator: " "), indent: "", hanging: String(repeating: " ", count: 7 + title(command).count + 1))
        lines.append("")
        lines += wrap(command.summary, indent: "", hanging: "")
        lines.append("")
        lines.append("options:")
        let column = 26
        for flag in command.flags {
            var help = flag.help
            if flag.repeatable { help += " (repeatable)" }
            if flag.required { help += " (required)" }
            lines += flagLines(flag.synopsis, help, column: column)
        }
        lines += flagLines("-h, --help", "print this help and exit", column: column)
        lines += flagLines("--version", "print the version (\(version)) and exit", column: column)
        let dashes = command.positionals == nil ? "end of options (the command takes no arguments)" : "end of options: the arguments after it are positional, even -h"
        lines += flagLines("--", dashes, column: column)
        // Details: paragraphs (separated by blank lines) rewrapped to the help's width.
        for paragraph in command.details.components(separatedBy: "\n\n") where !paragraph.isEmpty {
            lines.append("")
            lines += wrap(paragraph.replacingOccurrences(of: "\n", with: " "), indent: "", hanging: "")
        }
        lines.append("")
        lines += wrap(ExitStatus.helpText(failure: failureMeaning), indent: "", hanging: "  ")
        return lines.joined(separator: "\n")
    }

    /// The overview of a tool with commands: the commands and their summaries.
    private func overview() -> String {
        var lines = ["usage: \(name) COMMAND [options] [arguments]", "       \(name) COMMAND --help", "       \(name) --version", ""]
        lines += wrap(summary, indent: "", hanging: "")
        lines.append("")
        lines.append("commands:")
        let column = max(14, (commands.map(\.name.count).max() ?? 0) + 4)
        for c in commands { lines += flagLines(c.name, c.summary, column: column) }
        lines.append("")
        lines.append("Run '\(name) COMMAND --help' for the options of a command. Options follow the command;")
        lines.append("--flag=value and --flag value are the same; -- ends the options.")
        lines.append("")
        lines += wrap(ExitStatus.helpText(failure: failureMeaning), indent: "", hanging: "  ")
        return lines.joined(separator: "\n")
    }

    private func flagLines(_ head: String, _ help: String, column: Int) -> [String] {
        let pad = String(repeating: " ", count: column)
        let first = "  " + head
        if first.count + 1 < column {
            let lead = first + String(repeating: " ", count: column - first.count)
            var out = wrap(help, indent: pad, hanging: pad)
            out[0] = lead + out[0].dropFirst(column)
            return out
        }
        return [first] + wrap(help, indent: pad, hanging: pad)
    }

    private func wrap(_ text: String, indent: String, hanging: String) -> [String] {
        var lines: [String] = []
        var line = indent
        var empty = true
        for word in text.split(separator: " ") {
            if !empty && line.count + 1 + word.count > Self.helpWidth {
                lines.append(line)
                line = hanging
                empty = true
            }
            line += (empty ? "" : " ") + word
            empty = false
        }
        lines.append(line)
        return lines
    }

    /// The lines printed for a usage error: "tool: message" (on one line) and the pointer to
    /// the help of `command` (or of the tool).
    package func usageErrorText(_ message: String, command: CommandSpec?) -> String {
        let line = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        let help = hasCommands && command != nil ? "\(title(command)) --help" : "\(name) --help"
        return "\(name): \(line)\nRun '\(help)' for usage.\n"
    }

    /// Parses `arguments`; prints the help or the version on stdout and exits 0, or prints a
    /// usage error on stderr and exits 2. Returns the arguments of a command to run.
    package func parseOrExit(_ arguments: [String]) -> ParsedArguments {
        do {
            switch try parse(arguments) {
            case .run(let parsed): return parsed
            case .help(let command):
                print(help(command))
                exit(ExitStatus.success.rawValue)
            case .version:
                print("\(name) \(version)")
                exit(ExitStatus.success.rawValue)
            }
        } catch {
            let command = hasCommands ? arguments.first.flatMap { self.command(named: $0) } : commands[0]
            exitWithUsageError("\(error)", command: command)
        }
    }

    /// Prints a usage error (`usageErrorText`) on stderr and exits 2.
    package func exitWithUsageError(_ message: String, command: CommandSpec?) -> Never {
        FileHandle.standardError.write(Data(usageErrorText(message, command: command).utf8))
        exit(ExitStatus.usage.rawValue)
    }

    /// Prints "tool: message" on one line of stderr and exits 1 (a runtime failure).
    package func exitWithFailure(_ message: String) -> Never {
        let line = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        FileHandle.standardError.write(Data("\(name): \(line)\n".utf8))
        exit(ExitStatus.failure.rawValue)
    }
}
