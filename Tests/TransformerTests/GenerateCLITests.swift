// `attend generate` end to end: the executable that `swift build` puts beside the test bundle,
// run on the golden T5 and Marian folders.
import Foundation
import Testing

@testable import Attend

@Suite("attend generate")
struct GenerateCLITests {
    /// Runs the built `attend` with `arguments`; returns (status, stdout, stderr).
    static func run(_ arguments: [String]) throws -> (Int32, String, String) {
        let products = Bundle.module.bundleURL.deletingLastPathComponent()
        let tool = products.appendingPathComponent("attend")
        try #require(FileManager.default.isExecutableFile(atPath: tool.path), "the attend executable is not built at \(tool.path)")
        let p = Process()
        p.executableURL = tool
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test("--json prints what generate returns for a padded batch, greedy and with beams")
    func json() throws {
        let folder = try fixtureFolder("t5").path
        let io = try fixture("t5.io")
        let sources = try HFSeq2SeqTests.sources(io)
        let idArgs = sources.flatMap { ["--ids", $0.map(String.init).joined(separator: ",")] }
        let expected = [("out.greedy_ids", ["--min-new-tokens", "10"]), ("out.beam3_ids", ["--beams", "3"])]
        for (key, extra) in expected {
            // The golden beam search used early_stopping=True; this folder's default is false,
            // so compare against the library with the same settings instead for beams.
            let (status, out, err) = try Self.run(["generate", "--model", folder, "--max-new-tokens", "10", "--json"] + extra + idArgs)
            #expect(status == 0, "\(err)")
            let lines = out.split(separator: "\n").map(String.init)
            let model = try Seq2SeqModel(directory: try fixtureFolder("t5"))
            var config = model.generationDefaults
            config.maxNewTokens = 10
            if key == "out.greedy_ids" { config.minNewTokens = 10 } else { config.numBeams = 3 }
            let want = try model.generate(sources: sources, config: config).sequences
            #expect(lines == want.map { "{\"ids\": [\($0.map(String.init).joined(separator: ", "))]}" }, "\(key): \(out)")
            if key == "out.greedy_ids" { #expect(want == idRows(try io.integers(key), rows: 2)) }
        }
    }

    @Test("one source streams its greedy ids on one line, up to the end token (Marian forces it at the limit)")
    func stream() throws {
        let (status, out, _) = try Self.run(["generate", "--model", try fixtureFolder("marian").path, "--ids", "36,46,22", "--max-new-tokens", "10"])
        #expect(status == 0)
        let ids = out.split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines))! }
        #expect(ids.count == 10 && ids.last == 2, "\(out)")
    }

    @Test("bad ids, folders and options exit non-zero with one line naming the problem")
    func errors() throws {
        let folder = try fixtureFolder("t5").path
        for (args, status, words) in [
            (["generate", "--model", folder, "--ids", "1,x"], Int32(2), "item 2 ('x')"),
            (["generate", "--model", folder, "--ids", "1,64"], 2, "outside the model's source vocabulary of 64"),
            (["generate", "--model", folder], 2, "at least one --ids"),
            (["generate", "--model", folder + "/nope", "--ids", "1"], 1, "no such file"),
            (["generate", "--model", folder, "--ids", "1", "--beams", "0"], 2, "--beams needs a positive integer"),
        ] {
            let (s, _, err) = try Self.run(args)
            #expect(s == status && err.contains(words), "\(args): status \(s), \(err)")
            // The message on one line; a command-line mistake adds one line pointing to --help.
            let lines = err.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.first?.hasPrefix("attend: ") == true && lines.last == "", "\(args): \(err)")
            if status == 2 {
                #expect(lines.count == 3 && lines[1] == "Run 'attend generate --help' for usage.", "\(args): \(err)")
            } else {
                #expect(lines.count == 2, "\(args): \(err)")
            }
        }
    }

    @Test("command-line mistakes print one line and a pointer to the command's --help, never the usage text")
    func usageErrors() throws {
        for (args, pointer) in [
            (["frobnicate"], "Run 'attend --help' for usage."),
            (["embed", "--batch-size", "-3", "--model", "x"], "Run 'attend embed --help' for usage."),
            (["similarity", "--nope"], "Run 'attend similarity --help' for usage."),
            (["generate", "--model", "x", "--ids"], "Run 'attend generate --help' for usage."),
            (["tokenize"], "Run 'attend tokenize --help' for usage."),
        ] {
            let (s, out, err) = try Self.run(args)
            #expect(s == 2 && out.isEmpty, "\(args): status \(s)")
            #expect(err.split(separator: "\n").map(String.init).last == pointer && err.split(separator: "\n").count == 2,
                    "\(args): \(err)")
        }
        let (s, out, _) = try Self.run(["generate", "--help"])
        #expect(s == 0 && out.contains("attend generate") && out.contains("--max-new-tokens"))
    }
}
