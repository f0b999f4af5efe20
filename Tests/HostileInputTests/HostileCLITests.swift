// The hostile-input harness for the `attend` executable: seeded, generated command lines for
// every command of its flag tables (AttendCommandLine.tool), with huge, negative and malformed numbers, zero and absurd
// thread / batch / beam counts, min > max, empty and 100k-token inputs, ids at and past the
// vocabulary, flags without values, and mutated model folders (config.json,
// generation_config.json, vocab.txt, model.safetensors). Every run must end with exit status
// 0, 1 or 2 (never a signal), print errors as one `attend: ...` line (plus the --help
// pointer for usage errors) and stay under a memory ceiling (the child's peak RSS, wait4).
//
// Environment: ATTEND_TEST_SEED (base seed), ATTEND_HOSTILE_CASES (default 120),
// ATTEND_HOSTILE_ONLY=N (replay case N alone), ATTEND_HOSTILE_TIMEOUT (seconds per run,
// default 8). A failure prints the line that reproduces it.
import Foundation
import Testing

import AttendCommandLine
import AttendTestSupport

/// One generated run: the arguments, standard input, and how its model folder was mutated.
struct HostileCase: CustomStringConvertible {
    var index: Int
    var arguments: [String]
    var stdin: Data?
    var mutation: String?

    var description: String {
        let quoted = arguments.map { a in
            let shown = a.count > 80 ? String(a.prefix(60)) + "...(\(a.count) chars)" : a
            return shown.contains(where: { " '\"\\".contains($0) }) || shown.isEmpty
                ? "'" + shown.replacingOccurrences(of: "'", with: "'\\''") + "'" : shown
        }.joined(separator: " ")
        let input = stdin.map { " <stdin: \($0.count) bytes>" } ?? ""
        let mutated = mutation.map { " [folder: \($0)]" } ?? ""
        return "case \(index): attend \(quoted)\(input)\(mutated)"
    }
}

/// Generates the cases: a base of valid arguments for the command, then hostile edits.
struct HostileGenerator {
    var rng: SeededRNG
    let commands: [String]
    let flags: [String]
    let commandFlags: [String: [String]]
    let folders: [String: URL]
    let scratch: URL

    mutating func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    /// Numbers a careless or hostile user types.
    static let numbers = [
        "0", "-1", "1", "2", "3", "7", "64", "65", "1000", "100000", "100000000", "2147483648",
        "9223372036854775807", "-9223372036854775808", "99999999999999999999", "1e309", "nan", "inf",
        "-0", "0.5", "1.5", "-2.5", "", "abc", "0x10", " 3", "1,2", "--json",
    ]
    /// Values that pass the parser, so runs reach the models.
    static let plausible = ["1", "2", "3", "4", "8", "10", "42", "0.9", "0.5", "1.2", "0.05"]
    /// Token ids around the vocabularies (64 for T5/Marian, 120 for BERT).
    static let ids = [
        "0", "1", "2", "5", "13", "62", "63", "64", "65", "119", "120", "1000000", "-1",
        "9223372036854775807", "99999999999999999999", "x", "", " 7 ",
    ]

    mutating func idList() -> String {
        let n = pick([0, 1, 3, 12, 200, 30_000])
        if n > 1000 { return Array(repeating: pick(["5", "7", "64"]), count: n).joined(separator: ",") }
        return (0..<n).map { _ in chance(0.7) ? String(Int.random(in: 0..<64, using: &rng)) : pick(Self.ids) }.joined(separator: ",")
    }

    mutating func text() -> String {
        switch Int.random(in: 0..<8, using: &rng) {
        case 0: return ""
        case 1: return String(repeating: "w7 ", count: 100_000 / 4)  // long, still fits one argument
        case 2: return "w1 \u{0} w2"
        case 3: return String(repeating: "x", count: 100_000)
        case 4: return "Ünïcödé 🙂 \u{FFFD} w3"
        default: return (0..<Int.random(in: 1..<12, using: &rng)).map { _ in "w\(Int.random(in: 0..<130, using: &rng))" }.joined(separator: " ")
        }
    }

    /// Standard input: lines of texts, 100k tokens, NUL, invalid UTF-8, or nothing.
    mutating func input() -> Data {
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: return Data()
        case 1: return Data(String(repeating: "w1 w2 w3 w4\n", count: 25_000).utf8)  // 100k tokens
        case 2: return Data([0x77, 0x31, 0x00, 0xFF, 0xFE, 0x0A, 0xC3, 0x28, 0x0A, 0xED, 0xA0, 0x80, 0x0A])
        case 3: return Data((String(repeating: "w5 ", count: 100_000) + "\n").utf8)  // one 100k-token line
        default: return Data(((0..<Int.random(in: 1..<6, using: &rng)).map { _ in text() }.joined(separator: "\n") + "\n").utf8)
        }
    }

    /// A copy of `folder` with one file broken, and what was done.
    mutating func mutated(_ folder: URL, index: Int) throws -> (URL, String) {
        let fm = FileManager.default
        let copy = scratch.appendingPathComponent("case\(index)-\(folder.lastPathComponent)")
        try? fm.removeItem(at: copy)
        try fm.copyItem(at: folder, to: copy)
        let files = try fm.subpathsOfDirectory(atPath: copy.path).filter { !$0.hasSuffix("/") && !isDirectory(copy.appendingPathComponent($0)) }
            .sorted()
        let file = pick(files)
        let url = copy.appendingPathComponent(file)
        var data = try Data(contentsOf: url)
        var what: String
        if file.hasSuffix(".json"), var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], chance(0.7) {
            let keys =
                object.keys.sorted() + [
                    "max_length", "num_beams", "max_new_tokens", "min_length", "eos_token_id", "top_k",
                    "temperature", "do_sample", "no_repeat_ngram_size", "repetition_penalty", "vocab_size",
                    "max_position_embeddings", "num_heads", "d_model", "hidden_size", "num_hidden_layers",
                    "max_seq_length", "word_embedding_dimension", "bad_words_ids", "suppress_tokens",
                ]
            let key = pick(keys)
            let values: [Any] = [
                -1, 0, 1, 3, 64, 65, 1 << 31, Int.max, Int.min, 1e300, -0.5, 0.5, "text", NSNull(), [Any](), [String: Any](),
                true, [[64, 1]], [-1], [Int.max],
            ]
            if chance(0.15) {
                object.removeValue(forKey: key)
                what = "\(file): removed \(key)"
            } else {
                let v = pick(values)
                object[key] = v
                what = "\(file): \(key) = \(v)"
            }
            data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        } else {
            switch Int.random(in: 0..<5, using: &rng) {
            case 0:
                let n = Int.random(in: 0...data.count, using: &rng)
                data = data.prefix(n)
                what = "\(file): cut to \(n) bytes"
            case 1:
                let n = min(data.count, 64)
                for _ in 0..<4 where n > 0 { data[Int.random(in: 0..<n, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                what = "\(file): 4 random bytes in the first 64"
            case 2:
                data = Data()
                what = "\(file): emptied"
            case 3:
                if data.count >= 8 {
                    let huge: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
                    data.replaceSubrange(0..<8, with: huge)
                }
                what = "\(file): first 8 bytes = Int64.max"
            default:
                data.append(Data(String(repeating: "w9", count: 50_000).utf8))
                what = "\(file): 100 kB appended"
            }
        }
        try data.write(to: url)
        return (copy, what)
    }

    private func isDirectory(_ url: URL) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &d) && d.boolValue
    }

    mutating func next(index: Int) throws -> HostileCase {
        let command = chance(0.03) ? pick(["", "help", "generat", "--model"]) : pick(commands)
        var args = command.isEmpty ? [] : [command]
        let generating = command == "generate" || command == "translate"
        var folder =
            generating
            ? folders[pick(["t5", "marian"])]!
            : (command == "embed" || command == "similarity" || command == "tokenize"
                ? folders["bert"]! : folders[pick(["t5", "marian", "bert"])]!)
        var mutation: String? = nil
        if chance(0.3) {
            let (copy, what) = try mutated(folder, index: index)
            folder = copy
            mutation = what
        }
        if chance(0.95) { args += ["--model", chance(0.03) ? folder.path + "/absent" : folder.path] }
        if generating || chance(0.1) {
            for _ in 0..<pick([1, 1, 1, 2, 3]) { args += ["--ids", idList()] }
        }
        var stdin: Data? = nil
        // Hostile options: any flag of the tables, with a value from the pool (or none); a
        // command's own switch mostly without a value and its own choices mostly valid, so
        // runs get past the grammar to the models.
        let own = commandFlags[command] ?? []
        let spec = AttendCommandLine.tool.command(named: command)
        for _ in 0..<Int.random(in: 0...4, using: &rng) {
            let flag = own.isEmpty || chance(0.15) ? pick(flags) : pick(own)
            args.append(flag)
            switch spec?.flag(named: flag)?.kind {
            case .none?: if chance(0.1) { args.append(pick(Self.numbers)) }
            case .choice(let names)?: args.append(chance(0.8) ? pick(names) : pick(Self.numbers))
            default: if chance(0.9) { args.append(chance(0.5) ? pick(Self.plausible) : pick(Self.numbers)) }
            }
        }
        if generating, chance(0.5) {
            // Mostly bounded lengths, so runs end; sometimes min > max.
            args += ["--max-new-tokens", pick(["1", "5", "30", "200", "100000000"])]
            if chance(0.3) { args += ["--min-new-tokens", pick(["0", "40", "1000000"])] }
        }
        if !generating {
            if chance(0.5) {
                for _ in 0..<Int.random(in: 1...4, using: &rng) { args.append(text()) }
            } else {
                stdin = input()
            }
        }
        return HostileCase(index: index, arguments: args, stdin: stdin, mutation: mutation)
    }
}

@Suite("hostile input")
struct HostileCLITests {
    static let environment = ProcessInfo.processInfo.environment

    /// The commands and flags of attend's tables (AttendCommandLine.tool): every command, every
    /// flag, and each command's own flags.
    static func discover() -> (commands: [String], flags: [String], commandFlags: [String: [String]]) {
        let tool = AttendCommandLine.tool
        let commandFlags = Dictionary(uniqueKeysWithValues: tool.commands.map { ($0.name, $0.flags.map(\.name)) })
        return (tool.commands.map(\.name), tool.allFlagNames, commandFlags)
    }

    /// Checks one finished run; returns what is wrong (empty when fine).
    static func problems(_ r: ChildResult, ceilingKiB: Int) -> [String] {
        var out: [String] = []
        if let s = r.signal, !r.timedOut { out.append("ended by signal \(s)") }
        if let s = r.status, !(0...2).contains(s) { out.append("exit status \(s)") }
        if r.peakRSSKiB > ceilingKiB { out.append("peak RSS \(r.peakRSSKiB / 1024) MiB over the \(ceilingKiB / 1024) MiB ceiling") }
        if r.timedOut { return out }
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        if let stray = lines.first(where: { !$0.hasPrefix("attend: ") && !$0.hasPrefix("Run 'attend") }) {
            out.append("stderr line not from attend: \(stray.prefix(200))")
        }
        // Notes, and the progress and summary lines of the training commands.
        let notes = ["attend: warning:", "attend: note:", "attend: sampling with seed", "attend: step ", "attend: trained "]
        let errors = lines.filter { $0.hasPrefix("attend: ") && !notes.contains(where: $0.hasPrefix) }
        if let s = r.status, s != 0 {
            if errors.count != 1 { out.append("\(errors.count) error lines, expected 1") }
            if s == 2 && lines.last?.hasPrefix("Run 'attend") != true { out.append("a usage error without the --help pointer") }
        } else if !errors.isEmpty {
            out.append("exit 0 with an error line: \(errors[0].prefix(200))")
        }
        return out
    }

    @Test("the verdict catches signals, odd statuses, stray or missing error lines and memory over the ceiling")
    func verdict() {
        func result(_ status: Int32?, signal: Int32? = nil, _ err: String, rss: Int = 1000) -> ChildResult {
            ChildResult(status: status, signal: signal, timedOut: false, stdout: "", stderr: err, peakRSSKiB: rss)
        }
        let ceiling = 1 << 20
        #expect(Self.problems(result(0, ""), ceilingKiB: ceiling).isEmpty)
        #expect(Self.problems(result(0, "attend: warning: the table ends here\n"), ceilingKiB: ceiling).isEmpty)
        #expect(
            Self.problems(
                result(0, "attend: step 1/2  loss 5.5520  812 tokens/s  ETA 0:01\nattend: trained 2 steps in 0.10 s: 900 tokens/s, peak memory 40 MiB\n"),
                ceilingKiB: ceiling
            ).isEmpty)
        #expect(!Self.problems(result(1, "attend: step 1/2  loss 5.5520  812 tokens/s  ETA 0:01\n"), ceilingKiB: ceiling).isEmpty)
        #expect(Self.problems(result(1, "attend: t5/config.json: d_model: -3 is out of range\n"), ceilingKiB: ceiling).isEmpty)
        #expect(
            Self.problems(result(2, "attend: --beams needs a positive integer\nRun 'attend generate --help' for usage.\n"), ceilingKiB: ceiling)
                .isEmpty)
        #expect(!Self.problems(result(nil, signal: 4, "*** Swift runtime failure: arithmetic overflow ***\n"), ceilingKiB: ceiling).isEmpty)
        #expect(!Self.problems(result(134, "attend: x\n"), ceilingKiB: ceiling).isEmpty)
        #expect(!Self.problems(result(1, ""), ceilingKiB: ceiling).isEmpty)
        #expect(!Self.problems(result(1, "attend: one\nattend: two\n"), ceilingKiB: ceiling).isEmpty)
        #expect(!Self.problems(result(2, "attend: bad flag\n"), ceilingKiB: ceiling).isEmpty)
        #expect(!Self.problems(result(1, "Fatal error: failed to allocate 25600000256 bytes\n"), ceilingKiB: ceiling).isEmpty)
        #expect(!Self.problems(result(0, "", rss: ceiling + 1), ceilingKiB: ceiling).isEmpty)
    }

    @Test("a child runs in the working directory it is given, and a relative file it writes lands there")
    func childWorkingDirectory() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("attend-cwd-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let r = try runChild("/bin/sh", ["-c", "pwd -P; echo x > written-here"], timeout: 30, workingDirectory: dir.path)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == dir.resolvingSymlinksInPath().path, "\(r.stdout)")
        #expect(fm.fileExists(atPath: dir.appendingPathComponent("written-here").path))
        #expect(!fm.fileExists(atPath: fm.currentDirectoryPath + "/written-here"))
        #expect(throws: (any Error).self) { try runChild("/bin/sh", ["-c", "true"], workingDirectory: dir.appendingPathComponent("missing").path) }
    }

    @Test("generated hostile command lines and folders: exit 0, 1 or 2, one-line errors, bounded memory")
    func hostileCommandLines() throws {
        let tool = builtProduct("attend", besides: Bundle.module)
        try #require(FileManager.default.isExecutableFile(atPath: tool), "attend is not built at \(tool)")
        let (commands, flags, commandFlags) = Self.discover()
        #expect(commands.contains("generate") && commands.contains("embed") && flags.contains("--threads"), "\(commands) \(flags)")
        // The executable lists the same commands in its --help.
        let help = try runChild(tool, ["--help"], timeout: 30).stdout
        for command in commands { #expect(help.contains("\n  \(command) "), "\(command) missing from attend --help") }

        let fm = FileManager.default
        let scratch = fm.temporaryDirectory.appendingPathComponent("attend-hostile-\(UUID().uuidString)")
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: scratch) }
        var folders: [String: URL] = [:]
        for name in ["t5", "marian", "bert"] {
            let src = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
            let dst = scratch.appendingPathComponent(name)
            try fm.copyItem(at: src, to: dst)
            folders[name] = dst
        }
        // The tiny T5 produces token 13 forever; as its end token, greedy runs end at once and
        // sampled ones soon, so the budget goes to many cases rather than a few long ones.
        try Data(#"{"decoder_start_token_id": 0, "eos_token_id": 13, "pad_token_id": 0}"#.utf8)
            .write(to: folders["t5"]!.appendingPathComponent("generation_config.json"))

        // Cases that once crashed or exhausted memory, run every time before the generated ones.
        let t5 = folders["t5"]!.path, bert = folders["bert"]!.path
        let regressions: [[String]] = [
            ["generate", "--model", t5, "--ids", "5,6,1", "--beams", "9223372036854775807", "--max-new-tokens", "2"],
            ["generate", "--model", t5, "--ids", "5,6,1", "--beams", "1000000", "--max-new-tokens", "2"],
            ["generate", "--model", t5, "--ids", "5,6,1", "--max-new-tokens", "100000000"],
            ["generate", "--model", t5, "--ids", "5,6,1", "--max-new-tokens", "9223372036854775807"],
            ["generate", "--model", folders["marian"]!.path, "--ids", "5,6,2", "--max-new-tokens", "9223372036854775807"],
            ["generate", "--model", t5, "--ids", "5", "--threads", "100000"],
            ["embed", "--model", bert, "--batch-size", "9223372036854775807", "w1 w2", "w3"],
            ["similarity", "--model", bert, "--threads", "1000000", "w1", "w2"],
            ["tokenize", "--model", bert, "--max-length", "9223372036854775807", "w1"],
        ]
        // A Marian folder whose position table has one row: an error, not a 0-token request.
        let tiny = scratch.appendingPathComponent("marian-one-position")
        try fm.copyItem(at: folders["marian"]!, to: tiny)
        let configURL = tiny.appendingPathComponent("config.json")
        let config = try String(contentsOf: configURL, encoding: .utf8).replacingOccurrences(
            of: "\"max_position_embeddings\": 64", with: "\"max_position_embeddings\": 1")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        let one = try runChild(tool, ["generate", "--model", tiny.path, "--ids", "5"], timeout: 60, workingDirectory: scratch.path)
        #expect(one.status == 1 && one.stderr.contains("max_position_embeddings = 1"), "\(one)")
        for (i, args) in regressions.enumerated() {
            let r = try runChild(tool, args, timeout: 60, workingDirectory: scratch.path)
            let wrong = Self.problems(r, ceilingKiB: 1 << 20) + (r.timedOut ? ["did not finish in 60 s"] : [])
            #expect(wrong.isEmpty, "regression \(i): \(wrong.joined(separator: "; ")). \(r)\nattend \(args.joined(separator: " "))")
        }

        let count = Int(Self.environment["ATTEND_HOSTILE_CASES"] ?? "") ?? 120
        let only = Int(Self.environment["ATTEND_HOSTILE_ONLY"] ?? "")
        let timeout = Double(Self.environment["ATTEND_HOSTILE_TIMEOUT"] ?? "") ?? 8
        let ceilingKiB = 1 << 20  // 1 GiB
        let seedText = "ATTEND_TEST_SEED=0x" + String(baseTestSeed, radix: 16)
        var timedOut = 0, statuses = [Int32: Int](), worstRSS = 0
        for index in (only.map { [$0] } ?? Array(0..<count)) {
            var generator = HostileGenerator(
                rng: SeededRNG(seed: caseSeed(0x4057_11E, index)), commands: commands, flags: flags,
                commandFlags: commandFlags, folders: folders, scratch: scratch)
            let c = try generator.next(index: index)
            // `download` with an id from the pool: the Hub cache only (an empty one), no network.
            let offline = ["HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": scratch.appendingPathComponent("hub").path, "HF_ENDPOINT": "http://127.0.0.1:9"]
            // In the scratch folder: generated relative paths (`--out 3`) are written there, not
            // into the package.
            let r = try runChild(tool, c.arguments, stdin: c.stdin, timeout: timeout, environment: offline, workingDirectory: scratch.path)
            if r.timedOut { timedOut += 1 }
            if let s = r.status { statuses[s, default: 0] += 1 }
            worstRSS = max(worstRSS, r.peakRSSKiB)
            let wrong = Self.problems(r, ceilingKiB: ceilingKiB)
            if !wrong.isEmpty {
                Issue.record(
                    "\(wrong.joined(separator: "; ")). \(r)\nreproduce: \(seedText) ATTEND_HOSTILE_ONLY=\(index) swift test --filter HostileCLITests\n\(c)"
                )
            }
            for entry in (try? fm.contentsOfDirectory(atPath: scratch.path)) ?? [] where entry.hasPrefix("case\(index)-") {
                try? fm.removeItem(at: scratch.appendingPathComponent(entry))
            }
        }
        print(
            "hostile input: \(only == nil ? count : 1) runs, exit statuses \(statuses.sorted { $0.key < $1.key }), \(timedOut) stopped at the \(timeout) s limit, worst peak RSS \(worstRSS / 1024) MiB (\(seedText))"
        )
    }
}
