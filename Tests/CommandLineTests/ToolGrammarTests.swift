// The flag tables of bench, kernel-fuzz and experiment: every flag accepted with a valid value,
// and the command lines that CI and the scripts run (.ci/run, scripts/ci-sanitizers.sh,
// Benchmarks/scripts/*.sh, kernel-fuzz's reproducers, experiment positions --quick) still parse
// to what they meant.
import AttendCommandLine
import Testing

/// A valid value of a flag, from its kind.
func validValue(_ flag: Flag) -> String? {
    switch flag.kind {
    case .none: return nil
    case .int(let range): return String(range.upperBound == Int.max ? max(range.lowerBound, 1) : range.upperBound)
    case .uint64: return "18446744073709551615"
    case .double(let range): return range.contains(0.5) ? "0.5" : (range.contains(1) ? "1" : "2.5")
    case .string, .nonEmptyString: return "some value"
    case .choice(let names): return names.last!
    case .list(.int(let range)): return "\(range.lowerBound),\(range.lowerBound)"
    case .list(.string): return "a,b"
    case .list(.choice(let names)): return names.prefix(2).joined(separator: ",")
    }
}

/// A value of the flag's kind that the table refuses (nil when every text is valid).
func invalidValue(_ flag: Flag) -> String? {
    switch flag.kind {
    case .none: return nil
    case .int(let range): return range.lowerBound > Int.min ? String(range.lowerBound - 1) : "x"
    case .uint64: return "-1"
    case .double: return "nan"
    case .string: return nil
    case .nonEmptyString: return ""
    case .choice: return "no-such-choice"
    case .list(.int): return "1,x"
    case .list(.string): return "a,"
    case .list(.choice): return "no-such-choice"
    }
}

/// `args` without the flag `name` and its value.
func removing(_ name: String, from args: [String]) -> [String] {
    guard let i = args.firstIndex(of: name) else { return args }
    return Array(args[..<i] + args[min(i + 2, args.count)...])
}

/// Checks every flag of every command of `tool`: accepted by its command with a valid value,
/// as `--flag value` and `--flag=value`; refused with a bad value; refused by every command
/// that does not have it, with a message naming that command. `base` gives the arguments a
/// command needs besides the flag (its required flags).
func checkEveryFlag(_ tool: ToolSpec, base: (CommandSpec) -> [String]) throws -> Int {
    var checked = 0
    let words = { (c: CommandSpec) in tool.hasCommands ? [c.name] : [] }
    for command in tool.commands {
        let required = base(command)
        for flag in command.flags {
            let given = flag.kind.takesValue ? [flag.name, validValue(flag)!] : [flag.name]
            // Required flags are in `required`; give them once.
            let args = flag.required ? words(command) + required : words(command) + required + given
            let p = try run(tool, args)
            #expect(p.has(flag.name), "\(tool.name) \(args)")
            if flag.kind.takesValue {
                let others = removing(flag.name, from: required)
                let joined = words(command) + others + ["\(flag.name)=\(validValue(flag)!)"]
                #expect(try run(tool, joined).has(flag.name), "\(joined)")
                if let bad = invalidValue(flag) {
                    let message = refusal(tool, words(command) + others + [flag.name, bad])
                    #expect(message.hasPrefix(flag.name), "\(flag.name) \(bad): \(message)")
                }
                let missing = refusal(tool, words(command) + [flag.name])
                #expect(missing.hasPrefix("\(flag.name) needs a value"), "\(flag.name): \(missing)")
            }
            checked += 1
        }
        for other in tool.allFlagNames where command.flag(named: other) == nil {
            let owner = tool.commands.first { $0.flag(named: other) != nil }!
            let value = validValue(owner.flag(named: other)!).map { [$0] } ?? []
            let message = refusal(tool, words(command) + required + [other] + value)
            #expect(message.hasPrefix("\(other) is not an option of '\(tool.title(command))'"), "\(message)")
            checked += 1
        }
    }
    return checked
}

@Suite("bench, kernel-fuzz and experiment command lines")
struct ToolGrammarTests {
    static let kernelFuzz = KernelFuzzCommandLine.tool(kernels: ["gemm", "softmax", "attention"], variants: ["scalar", "avx2", "avx512"])
    static let experiment = ExperimentCommandLine.tool(
        tasks: ["copy", "brackets", "recall"], encodings: ["sinusoidal", "learned", "shaw", "t5", "alibi", "rope"])

    @Test("every flag of bench, kernel-fuzz and experiment: accepted with a valid value (both forms), refused with a bad one")
    func everyFlag() throws {
        #expect(try checkEveryFlag(BenchCommandLine.tool) { _ in [] } == BenchCommandLine.tool.commands[0].flags.count)
        #expect(try checkEveryFlag(Self.kernelFuzz) { _ in [] } == 8)
        #expect(Self.experiment.commands.map(\.name) == ["positions"])
        #expect(try checkEveryFlag(Self.experiment) { _ in [] } == 8)
    }

    @Test("the command lines of .ci/run and the scripts")
    func ciInvocations() throws {
        let smoke = try run(
            BenchCommandLine.tool,
            ["--quick", "--only", "peak,parallel,gemm,softmax,attention,attention-backward,encoder,seq2seq,tokenizers,lm,train", "--seq", "512"])
        #expect(smoke.has("--quick") && smoke.int("--seq") == 512 && smoke.lists("--only")[0].count == 11)
        let interleaved = try run(BenchCommandLine.tool, ["--only", "encoder", "--seq", "4096", "--threads", "2", "--json"])
        #expect(interleaved.lists("--only") == [["encoder"]] && interleaved.int("--threads") == 2 && interleaved.has("--json"))
        let train = try run(BenchCommandLine.tool, ["--only", "train", "--threads", "8", "--json"])
        #expect(train.lists("--only") == [["train"]])
        #expect(BenchCommandLine.sections.first == "peak" && BenchCommandLine.sections.contains("attention-backward"))
        // Benchmarks/scripts/compare.py: one shape set per run, the peer's shapes alone.
        let gemm = try run(BenchCommandLine.tool, ["--only", "gemm", "--gemm-sizes", "512,1024,2048,4096", "--threads", "2", "--json"])
        #expect(gemm.intLists("--gemm-sizes") == [[512, 1024, 2048, 4096]])
        let attention = try run(BenchCommandLine.tool, ["--only", "attention", "--fused-only", "--seq", "4096", "--threads", "2", "--json"])
        #expect(attention.has("--fused-only") && attention.int("--seq") == 4096)
        let lm = try run(BenchCommandLine.tool, ["--only", "lm", "--lm-model", "gpt2-small", "--threads", "2", "--json"])
        #expect(lm.string("--lm-model") == "gpt2-small")
        #expect(refusal(BenchCommandLine.tool, ["--lm-model", "gpt3"]).hasPrefix("--lm-model needs gpt2-small or tinyllama"))
        #expect(refusal(BenchCommandLine.tool, ["--gemm-sizes", "512,0"]).hasPrefix("--gemm-sizes: item 2 ('0')"))
        // Compute.maximumThreads: a larger count is refused here, not by a Compute later.
        #expect(refusal(BenchCommandLine.tool, ["--threads", "1025"]).contains("--threads needs an integer in 1...1024, got '1025'"))
        #expect(try run(BenchCommandLine.tool, ["--threads", "1024"]).int("--threads") == 1024)

        #expect(try run(Self.kernelFuzz, ["--seconds", "90"]).double("--seconds") == 90)
        let sanitizer = try run(Self.kernelFuzz, ["--seconds", "20", "--seed", "12345"])
        #expect(sanitizer.uint64("--seed") == 12345)
        // FuzzFailure.reproducer: swift run kernel-fuzz --seed S --case N --kernel K --variant V
        let replay = try run(Self.kernelFuzz, ["--seed", "7", "--case", "123", "--kernel", "softmax", "--variant", "avx2"])
        #expect(replay.uint64("--case") == 123 && replay.lists("--kernel") == [["softmax"]] && replay.lists("--variant") == [["avx2"]])
        #expect(try run(Self.kernelFuzz, ["--kernel", "all", "--variant", "all", "--threads", "2", "--list"]).has("--list"))
        #expect(refusal(Self.kernelFuzz, ["--threads", "0"]).contains("--threads needs an integer in 1...256"))
        #expect(refusal(Self.kernelFuzz, ["--seconds", "-1"]).contains("--seconds needs a positive number"))
        #expect(refusal(Self.kernelFuzz, ["--variant", "sse9"]).contains("--variant: item 1 ('sse9') is not one of scalar, avx2, avx512, all"))

        // .ci/run: experiment positions --quick --out .build/positions-quick; BENCHMARKS.md's full run.
        let quick = try run(Self.experiment, ["positions", "--quick", "--out", ".build/positions-quick"])
        #expect(quick.command.name == "positions" && quick.has("--quick") && quick.string("--out") == ".build/positions-quick")
        #expect(try run(Self.experiment, ["positions", "--out", "Benchmarks/results/positions"]).string("--out") == "Benchmarks/results/positions")
        let some = try run(Self.experiment, ["positions", "--task", "copy,recall", "--encodings=rope,t5", "--seeds", "2", "--steps", "7"])
        #expect(some.lists("--task") == [["copy", "recall"]] && some.lists("--encodings") == [["rope", "t5"]] && some.int("--seeds") == 2)
        #expect(refusal(Self.experiment, ["positions", "--seeds", "0"]).contains("--seeds needs a positive integer"))
        #expect(
            refusal(Self.experiment, ["positions", "--task", "sorting"]).contains("--task: item 1 ('sorting') is not one of copy, brackets, recall"))
        #expect(refusal(Self.experiment, ["--quick"]).contains("--quick before a command"))
        #expect(refusal(Self.experiment, ["sizes"]).contains("unknown command 'sizes'"))
    }

    @Test("help and --version of bench and kernel-fuzz list every flag and the exit statuses")
    func helps() throws {
        for tool in [BenchCommandLine.tool, Self.kernelFuzz] {
            let help = tool.help(nil)
            #expect(help.hasPrefix("usage: \(tool.name) [options]"))
            for flag in tool.commands[0].flags { #expect(help.contains("  \(flag.synopsis) "), "\(flag.name)") }
            #expect(help.contains("exit status: 0 success; 1 ") && help.contains("2 usage error"))
            guard case .version = try tool.parse(["--version"]) else { throw UsageError("no version") }
        }
        let positions = Self.experiment.commands[0]
        let help = Self.experiment.help(positions)
        #expect(help.hasPrefix("usage: experiment positions [options]"))
        #expect(help.split(separator: "\n").allSatisfy { $0.count <= ToolSpec.helpWidth })
        for flag in positions.flags { #expect(help.contains("  \(flag.synopsis)"), "\(flag.name)") }
        #expect(help.contains("exit status: 0 success; 1 ") && help.contains("2 usage error"))
        #expect(Self.experiment.help(nil).contains("positions"))
        guard case .help(let c) = try Self.experiment.parse(["positions", "--steps", "3", "--help"]), c?.name == "positions" else {
            throw UsageError("no help for positions")
        }
        guard case .version = try Self.experiment.parse(["positions", "--version"]) else { throw UsageError("no version") }
    }
}
