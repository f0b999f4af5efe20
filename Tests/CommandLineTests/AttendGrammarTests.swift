// The CLI grammar test: every command and every flag of attend's tables, each flag accepted by
// its commands with a valid value and refused by every other command with a message naming
// it; and the executables (attend, bench, kernel-fuzz, experiment) reading their command lines
// with their tables (--version, --help, usage errors, exit statuses).
import Attend
import AttendCommandLine
import Foundation
import Testing

/// The arguments every command of `attend` needs besides the flag under test: its required
/// flags with valid values.
func attendBase(_ command: CommandSpec) -> [String] {
    command.flags.filter(\.required).flatMap { [$0.name, validValue($0)!] }
}

/// Runs a built product (`attend`, `bench`, `kernel-fuzz`, `experiment`, beside the test bundle) and returns
/// its exit status, stdout and stderr.
func runProduct(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var candidates = [dir.appendingPathComponent(name)]
    // swift test on Linux runs <build>/debug/<Package>PackageTests.xctest; on macOS the bundle's
    // Contents/MacOS is three levels below the products.
    candidates.append(dir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(name))
    guard let tool = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw UsageError("\(name) is not built beside \(dir.path)")
    }
    let process = Process()
    process.executableURL = tool
    process.arguments = arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite("attend command-line grammar")
struct AttendGrammarTests {
    static let tool = AttendCommandLine.tool

    @Test("every command and every flag: accepted by its commands (--flag value and --flag=value), refused by the others naming the command")
    func everyCommandAndFlag() throws {
        let checked = try checkEveryFlag(Self.tool, base: attendBase)
        let flags = Self.tool.commands.map(\.flags.count).reduce(0, +)
        let foreign = Self.tool.commands.map { c in Self.tool.allFlagNames.filter { c.flag(named: $0) == nil }.count }.reduce(0, +)
        #expect(checked == flags + foreign && checked > 100, "\(checked)")
        #expect(Self.tool.commands.count >= 9 && Self.tool.command(named: "generate") != nil && Self.tool.command(named: "train") != nil)
        for command in Self.tool.commands {
            #expect((command.flag(named: "--model")?.required ?? false) == (command.name != "download"), "\(command.name) needs --model")
            // Commands without positionals refuse a text; the others keep it, and keep -h after --.
            let base = [command.name] + attendBase(command)
            if command.positionals == nil {
                #expect(refusal(Self.tool, base + ["a text"]).contains("'attend \(command.name)' takes no arguments"))
            } else {
                #expect(try run(Self.tool, base + ["--", "-h", "--json"]).positionals == ["-h", "--json"])
            }
        }
    }

    @Test("the messages of the issue: a foreign flag names the command; --help and --version only as options")
    func examples() throws {
        #expect(refusal(Self.tool, ["embed", "--beams", "2"]).hasPrefix("--beams is not an option of 'attend embed'"))
        #expect(refusal(Self.tool, ["train", "--model", "m", "--batches", "b", "--steps", "1", "--lr", "1", "--top-p", "0.5"])
            .hasPrefix("--top-p is not an option of 'attend train' (it is an option of generate, translate)"))
        guard case .help(let c) = try Self.tool.parse(["generate", "--model", "m", "--help"]) else { throw UsageError("no help") }
        #expect(c?.name == "generate")
        #expect(try run(Self.tool, ["tokenize", "--model", "m", "--", "-h"]).positionals == ["-h"])
        #expect(try run(Self.tool, ["generate", "--model=m", "--prompt=--help"]).strings("--prompt") == ["--help"])
    }

    @Test("every help text lists its flags, fits 100 columns and ends with the exit statuses")
    func helps() {
        for command in [nil] + Self.tool.commands.map(Optional.some) {
            let help = Self.tool.help(command)
            #expect(help.split(separator: "\n").allSatisfy { $0.count <= ToolSpec.helpWidth }, "\(command?.name ?? "attend")")
            #expect(help.contains("exit status: 0 success; 1 runtime failure") && help.contains("2 usage error"))
            for flag in command?.flags ?? [] { #expect(help.contains("  \(flag.synopsis)"), "\(flag.name) in \(command!.name)") }
        }
    }

    @Test("attend, bench, kernel-fuzz and experiment: --version, per-command --help from the tables, usage errors exit 2 with one line and a pointer")
    func executables() throws {
        for name in ["attend", "bench", "kernel-fuzz", "experiment"] {
            let v = try runProduct(name, ["--version"])
            #expect(v.status == 0 && v.stdout == "\(name) \(attendVersion)\n", "\(name): \(v)")
            let command = ["attend": "embed", "experiment": "positions"][name]
            let bad = try runProduct(name, command.map { [$0, "--bogus"] } ?? ["--bogus"])
            let title = command.map { "\(name) \($0)" } ?? name
            #expect(bad.status == 2 && bad.stdout.isEmpty, "\(name): \(bad)")
            #expect(bad.stderr == "\(name): --bogus is not an option of '\(title)'\nRun '\(title) --help' for usage.\n", "\(bad.stderr)")
        }
        for command in Self.tool.commands {
            let h = try runProduct("attend", [command.name, "--help"])
            #expect(h.status == 0 && h.stdout == Self.tool.help(command) + "\n", "\(command.name)")
        }
        let overview = try runProduct("attend", ["--help"])
        #expect(overview.status == 0 && overview.stdout == Self.tool.help(nil) + "\n")
        let foreign = try runProduct("attend", ["embed", "--beams", "2"])
        #expect(foreign.status == 2 && foreign.stderr.hasPrefix("attend: --beams is not an option of 'attend embed'"), "\(foreign)")
        // "-h" after -- is a text: a missing folder is then a runtime failure (1), not help.
        let text = try runProduct("attend", ["tokenize", "--model", "/nonexistent/attend-model", "--", "-h"])
        #expect(text.status == 1 && text.stdout.isEmpty && text.stderr.hasPrefix("attend: "), "\(text)")
        let none = try runProduct("attend", [])
        #expect(none.status == 2 && none.stderr.contains("no command given"))
    }

    /// kernel-fuzz --list's "gemm blocking NAME: mr . nr . mc . kc . nc ." lines, by table name.
    func listedBlocking(_ environment: [String: String]) throws -> [String: [String: Int]] {
        let r = try runProduct("kernel-fuzz", ["--list"], environment: environment)
        #expect(r.status == 0, "\(r.stderr)")
        var tables: [String: [String: Int]] = [:]
        for line in r.stdout.split(separator: "\n") where line.hasPrefix("gemm blocking ") {
            let parts = line.dropFirst("gemm blocking ".count).split(separator: ":")
            let words = parts[1].split(separator: " ")
            tables[String(parts[0])] = Dictionary(uniqueKeysWithValues: stride(from: 0, to: words.count - 1, by: 2).map { (String(words[$0]), Int(words[$0 + 1])!) })
        }
        return tables
    }

    @Test("ATTEND_GEMM_BLOCKING=mc,kc,nc sets every table's cache blocks (rounded to whole tiles); a malformed or out-of-bounds value leaves the derived ones")
    func gemmBlockingFromEnvironment() throws {
        let derived = try listedBlocking([:])
        #expect(!derived.isEmpty && derived.keys.contains("scalar"))
        let set = try listedBlocking(["ATTEND_GEMM_BLOCKING": "100,260,200"])
        #expect(Set(set.keys) == Set(derived.keys))
        for (name, g) in set {
            let (mr, nr) = (g["mr"]!, g["nr"]!)
            #expect(g["mc"] == 100 / mr * mr && g["kc"] == 256 && g["nc"] == 200 / nr * nr, "\(name): \(g)")
        }
        for bad in ["100,260", "100,260,200,1", "100;260;200", "100,32,200", "100,260,999999", "0,260,200", " "] {
            #expect(try listedBlocking(["ATTEND_GEMM_BLOCKING": bad]) == derived, "'\(bad)'")
        }
    }
}
