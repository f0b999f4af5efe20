// The command-line grammar on a made-up tool with a flag of every kind: values, `=`, `--`,
// repeats, foreign and unknown flags, missing values, required flags, help texts, --version.
import Attend
import AttendCommandLine
import Foundation
import Testing

/// A tool with two commands and a flag of every kind.
let sampleTool = ToolSpec(
    name: "tool", summary: "A tool to test the grammar with.",
    commands: [
        CommandSpec(
            "run", summary: "Runs things.",
            flags: [
                Flag("--model", .string, "DIR", required: true, help: "a folder"),
                Flag.switch("--json", help: "JSON lines"),
                Flag("--beams", .int(1...Int.max), "N", help: "beams"),
                Flag("--threads", .int(1...256), "T", help: "threads"),
                Flag("--seed", .uint64, "S", help: "a seed"),
                Flag("--top-p", .double(.closed(0, 1)), "X", help: "nucleus"),
                Flag("--lr", .double(.positive), "X", help: "learning rate"),
                Flag("--decay", .double(.nonNegative), "X", help: "decay"),
                Flag("--stop", .nonEmptyString, "STRING", repeatable: true, help: "stop strings"),
                Flag("--schedule", .choice(["constant", "linear"]), help: "schedule"),
                Flag("--ids", .list(.int(0...Int.max)), "A,B,C", repeatable: true, help: "token ids"),
                Flag("--only", .list(.choice(["a", "b", "c"])), "S[,S...]", repeatable: true, help: "sections"),
                Flag("--names", .list(.string), "N[,N...]", help: "names"),
            ],
            positionals: "[TEXT...]", details: "Details of run."),
        CommandSpec(
            "train", summary: "Trains.",
            flags: [
                Flag("--model", .string, "DIR", required: true, help: "a folder"),
                Flag("--steps", .int(1...Int.max), "N", required: true, help: "steps"),
            ]),
    ], failureMeaning: "runtime failure (a bad file)", version: "9.8.7")

/// The parsed arguments of a command line that must parse.
func run(_ tool: ToolSpec, _ args: [String]) throws -> ParsedArguments {
    guard case .run(let parsed) = try tool.parse(args) else {
        Issue.record("\(args): not a run")
        throw UsageError("not a run")
    }
    return parsed
}

/// The message of a command line that must be refused.
func refusal(_ tool: ToolSpec, _ args: [String]) -> String {
    do {
        let result = try tool.parse(args)
        Issue.record("\(args) was accepted: \(result)")
        return ""
    } catch let e as UsageError {
        return e.description
    } catch {
        Issue.record("\(args): \(error)")
        return ""
    }
}

@Suite("command-line grammar")
struct GrammarTests {
    @Test("every value kind, given as --flag value and as --flag=value")
    func valueKinds() throws {
        let args = [
            "run", "--model", "m", "--json", "--beams", "3", "--threads=256", "--seed", "18446744073709551615", "--top-p=0", "--lr",
            "1e-4", "--decay", "0", "--stop", "x", "--stop=y=z", "--schedule", "linear", "--ids", "5, 17,42", "--ids=0",
            "--only", "a,c", "--only", "b", "--names", "p,q", "text", "-", "-x",
        ]
        let p = try run(sampleTool, args)
        #expect(p.command.name == "run")
        #expect(p.string("--model") == "m" && p.has("--json"))
        #expect(p.int("--beams") == 3 && p.int("--threads") == 256)
        #expect(p.uint64("--seed") == UInt64.max)
        #expect(p.double("--top-p") == 0 && p.double("--lr") == 1e-4 && p.double("--decay") == 0)
        #expect(p.strings("--stop") == ["x", "y=z"])
        #expect(p.string("--schedule") == "linear")
        #expect(p.intLists("--ids") == [[5, 17, 42], [0]])
        #expect(p.lists("--only") == [["a", "c"], ["b"]])
        #expect(p.lists("--names") == [["p", "q"]])
        #expect(p.positionals == ["text", "-", "-x"])
        // Not given: nil, false, empty.
        let q = try run(sampleTool, ["run", "--model=m"])
        #expect(q.int("--beams") == nil && !q.has("--json") && q.strings("--stop").isEmpty && q.intLists("--ids").isEmpty)
    }

    @Test("values that look like flags are values; an empty value after = is a value")
    func valuesLookingLikeFlags() throws {
        let p = try run(sampleTool, ["run", "--model", "--json", "--stop", "-h", "--names", "--help"])
        #expect(p.string("--model") == "--json" && !p.has("--json"))
        #expect(p.strings("--stop") == ["-h"] && p.lists("--names") == [["--help"]])
        #expect(try run(sampleTool, ["run", "--model="]).string("--model") == "")
    }

    @Test("-- ends the options: everything after it is positional, -h and --json included")
    func doubleDash() throws {
        let p = try run(sampleTool, ["run", "--model", "m", "--", "-h", "--json", "--help", "--version", "--", "--beams=2"])
        #expect(p.positionals == ["-h", "--json", "--help", "--version", "--", "--beams=2"])
        #expect(!p.has("--json") && p.int("--beams") == nil)
        // A command without positionals refuses them after -- too.
        #expect(refusal(sampleTool, ["train", "--model", "m", "--steps", "1", "--", "-h"]).contains("takes no arguments"))
    }

    @Test("-h and --help are help only as options; --version prints the version")
    func helpAndVersion() throws {
        for args in [["run", "-h"], ["run", "--help"], ["run", "--model", "m", "--help"], ["help", "run"], ["run", "--bogus", "--help"]] {
            guard case .help(let c) = try sampleTool.parse(args) else {
                Issue.record("\(args): not help")
                continue
            }
            #expect(c?.name == "run", "\(args)")
        }
        for args in [["--help"], ["-h"], ["help"]] {
            guard case .help(nil) = try sampleTool.parse(args) else {
                Issue.record("\(args): not the overview")
                continue
            }
        }
        for args in [["--version"], ["run", "--version"], ["train", "--steps", "x", "--version"]] {
            guard case .version = try sampleTool.parse(args) else {
                Issue.record("\(args): not the version")
                continue
            }
        }
        // After --, or as a value, they are text.
        #expect(try run(sampleTool, ["run", "--model", "m", "--", "-h"]).positionals == ["-h"])
        #expect(try run(sampleTool, ["run", "--model", "--help"]).string("--model") == "--help")
        // --help after -- does not rescue a mistake before it.
        #expect(refusal(sampleTool, ["run", "--bogus", "--", "--help"]).contains("--bogus"))
    }

    @Test("a flag of another command, an unknown flag and a misplaced flag name the command")
    func foreignAndUnknown() {
        #expect(refusal(sampleTool, ["train", "--model", "m", "--steps", "1", "--beams", "2"]) == "--beams is not an option of 'tool train' (it is an option of run)")
        #expect(refusal(sampleTool, ["run", "--model", "m", "--steps", "2"]) == "--steps is not an option of 'tool run' (it is an option of train)")
        #expect(refusal(sampleTool, ["run", "--model", "m", "--nope"]) == "--nope is not an option of 'tool run'")
        #expect(refusal(sampleTool, ["run", "--model", "m", "--nope=3"]) == "--nope is not an option of 'tool run'")
        #expect(refusal(sampleTool, ["run", "--model", "m", "--Json"]) == "--Json is not an option of 'tool run'")
        #expect(refusal(sampleTool, ["frobnicate"]).contains("unknown command 'frobnicate' (commands: run, train)"))
        #expect(refusal(sampleTool, ["--model", "m", "run"]).contains("options follow the command"))
        #expect(refusal(sampleTool, []).contains("no command given"))
        #expect(refusal(sampleTool, ["help", "nope"]).contains("unknown command 'nope'"))
    }

    @Test("missing values, bad values, repeats, required flags and stray arguments are usage errors")
    func mistakes() {
        let cases: [([String], String)] = [
            (["run", "--model"], "--model needs a value (--model DIR)"),
            (["run", "--model", "m", "--beams"], "--beams needs a value"),
            (["run", "--model", "m", "--beams", "0"], "--beams needs a positive integer, got '0'"),
            (["run", "--model", "m", "--beams", "1.5"], "--beams needs a positive integer, got '1.5'"),
            (["run", "--model", "m", "--beams", "99999999999999999999"], "--beams needs a positive integer"),
            (["run", "--model", "m", "--beams="], "--beams needs a positive integer, got ''"),
            (["run", "--model", "m", "--threads", "257"], "--threads needs an integer in 1...256, got '257'"),
            (["run", "--model", "m", "--seed", "-1"], "--seed needs a non-negative integer below 2^64, got '-1'"),
            (["run", "--model", "m", "--seed", "18446744073709551616"], "--seed needs a non-negative integer below 2^64"),
            (["run", "--model", "m", "--top-p", "1.5"], "--top-p needs a number in [0, 1], got '1.5'"),
            (["run", "--model", "m", "--top-p", "nan"], "--top-p needs a number in [0, 1], got 'nan'"),
            (["run", "--model", "m", "--lr", "0"], "--lr needs a positive number, got '0'"),
            (["run", "--model", "m", "--lr", "inf"], "--lr needs a positive number, got 'inf'"),
            (["run", "--model", "m", "--decay", "-0.1"], "--decay needs a non-negative number, got '-0.1'"),
            (["run", "--model", "m", "--stop", ""], "--stop needs a non-empty value"),
            (["run", "--model", "m", "--schedule", "cosine"], "--schedule needs constant or linear, got 'cosine'"),
            (["run", "--model", "m", "--ids", "1,x"], "--ids: item 2 ('x') is not a non-negative integer"),
            (["run", "--model", "m", "--ids", "1,,2"], "--ids: item 2 ('') is not a non-negative integer"),
            (["run", "--model", "m", "--ids", "-1"], "--ids: item 1 ('-1') is not a non-negative integer"),
            (["run", "--model", "m", "--only", "a,d"], "--only: item 2 ('d') is not one of a, b, c"),
            (["run", "--model", "m", "--names", "p,"], "--names: item 2 ('') is not a non-empty item"),
            (["run", "--model", "m", "--json=yes"], "--json takes no value, got 'yes'"),
            (["run", "--model", "m", "--json", "--json"], "--json is given twice"),
            (["run", "--model", "m", "--beams", "2", "--beams=3"], "--beams is given twice (it takes one value)"),
            (["run", "--model", "a", "--model", "b"], "--model is given twice"),
            (["run", "--json"], "tool run needs --model DIR"),
            (["train", "--model", "m"], "tool train needs --steps N"),
            (["train", "--model", "m", "--steps", "2", "text"], "'tool train' takes no arguments besides its options, got 'text'"),
        ]
        for (args, message) in cases {
            let got = refusal(sampleTool, args)
            #expect(got.contains(message), "\(args): '\(got)'")
        }
    }

    @Test("a tool without commands: flags right away, positionals refused, its name in messages")
    func singleCommandTool() throws {
        let tool = ToolSpec(
            name: "solo", summary: "One command.",
            commands: [CommandSpec("", summary: "Measures.", flags: [Flag.switch("--quick", help: "fast"), Flag("--seq", .int(1...Int.max), "N", help: "length")])],
            failureMeaning: "a failed measurement")
        #expect(try run(tool, []).has("--quick") == false)
        #expect(try run(tool, ["--quick", "--seq=4"]).int("--seq") == 4)
        #expect(refusal(tool, ["--nope"]) == "--nope is not an option of 'solo'")
        #expect(refusal(tool, ["run"]).contains("'solo' takes no arguments"))
        guard case .help(let c) = try tool.parse(["-h"]) else { throw UsageError("not help") }
        #expect(c?.name == "")
        #expect(tool.help(nil).hasPrefix("usage: solo [options]\n"))
        #expect(tool.usageErrorText("--nope is bad", command: tool.commands[0]) == "solo: --nope is bad\nRun 'solo --help' for usage.\n")
        #expect(tool.version == attendVersion)
    }

    @Test("help texts come from the table: usage line, every flag with its placeholder, details, exit statuses")
    func helpTexts() throws {
        let help = sampleTool.help(sampleTool.command(named: "run"))
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "usage: tool run --model DIR [options] [TEXT...]")
        for flag in sampleTool.command(named: "run")!.flags {
            #expect(lines.contains { $0.hasPrefix("  \(flag.synopsis) ") || $0 == "  \(flag.synopsis)" }, "\(flag.name) in\n\(help)")
        }
        #expect(help.contains("--schedule constant|linear"))
        #expect(help.contains("stop strings (repeatable)") && help.contains("a folder (required)"))
        #expect(help.contains("-h, --help") && help.contains("--version") && help.contains("print the version (9.8.7)"))
        #expect(help.contains("Details of run."))
        #expect(help.contains("exit status: 0 success; 1 runtime failure (a bad file); 2 usage error"))
        #expect(lines.allSatisfy { $0.count <= ToolSpec.helpWidth }, "\(help)")
        let train = sampleTool.help(sampleTool.command(named: "train"))
        #expect(train.hasPrefix("usage: tool train --model DIR --steps N\n"), "\(train)")
        let overview = sampleTool.help(nil)
        #expect(overview.hasPrefix("usage: tool COMMAND [options] [arguments]"))
        let commandLines = overview.split(separator: "\n").filter { $0.hasPrefix("  run ") || $0.hasPrefix("  train ") }
        #expect(commandLines.count == 2 && commandLines[0].hasSuffix(" Runs things.") && commandLines[1].hasSuffix(" Trains."), "\(overview)")
        #expect(overview.contains("exit status: 0 success; 1 runtime failure (a bad file); 2 usage error"))
    }

    @Test("usage errors are one line and a pointer to the command's --help; exit statuses are 0, 1, 2")
    func usageErrorText() {
        #expect(sampleTool.usageErrorText("bad\nthing", command: sampleTool.command(named: "run")) == "tool: bad thing\nRun 'tool run --help' for usage.\n")
        #expect(sampleTool.usageErrorText("bad", command: nil) == "tool: bad\nRun 'tool --help' for usage.\n")
        #expect(ExitStatus.allCases.map(\.rawValue) == [0, 1, 2])
        #expect(ExitStatus.helpText(failure: "x").hasPrefix("exit status: 0 success; 1 x; 2 usage error"))
    }

    @Test("the version is CHANGELOG.md's latest version heading, or the coming one with -dev before the first")
    func version() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let changelog = try String(contentsOf: root.appendingPathComponent("CHANGELOG.md"), encoding: .utf8)
        let headings = changelog.split(separator: "\n").filter { $0.hasPrefix("## ") }.map { $0.dropFirst(3).split(separator: " ")[0] }
        let released = headings.first { $0.first?.isNumber == true }
        if let released {
            #expect(attendVersion == String(released))
        } else {
            #expect(attendVersion.hasSuffix("-dev") && attendVersion.split(separator: ".").count == 3)
        }
        #expect(attendVersion.first?.isNumber == true)
    }
}
