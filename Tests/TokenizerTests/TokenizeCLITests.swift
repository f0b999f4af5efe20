// `attend tokenize` and `attend decode` end to end on every family's folder: the executable
// that `swift build` puts beside the test bundle.
import Foundation
import Testing

@testable import Attend

@Suite("attend tokenize / decode")
struct TokenizeCLITests {
    /// Runs the built `attend` with `arguments` and `stdin`; returns (status, stdout, stderr).
    static func run(_ arguments: [String], stdin: String = "") throws -> (Int32, String, String) {
        let tool = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("attend")
        try #require(FileManager.default.isExecutableFile(atPath: tool.path), "the attend executable is not built at \(tool.path)")
        let p = Process()
        p.executableURL = tool
        p.arguments = arguments
        let input = Pipe(), out = Pipe(), err = Pipe()
        p.standardInput = input
        p.standardOutput = out
        p.standardError = err
        try p.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    static let folders = ["t5_unigram", "marian_spm", "llama_bpe", "gpt2_bytelevel"]

    static func jsonLines(_ out: String) -> [[String: Any]] {
        out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    @Test("tokenize --json prints the golden ids and tokens, one line per text in order", arguments: folders)
    func tokenizeJSON(_ folder: String) throws {
        let cases = GoldenCase.load("tokenizer_golden.json").filter { $0.folder == folder && !$0.text.contains("\n") }
        let (status, out, err) = try Self.run(["tokenize", "--model", Fixtures.url(folder).path, "--json", "--"] + cases.map(\.text))
        #expect(status == 0, "\(err)")
        let lines = Self.jsonLines(out)
        #expect(lines.count == cases.count)
        for (line, c) in zip(lines, cases) {
            #expect(line["text"] as? String == c.text)
            #expect(line["ids"] as? [Int] == c.ids)
            #expect(line["tokens"] as? [String] == c.tokens)
        }
    }

    @Test("--input - with jsonl takes any text (newlines, NUL, tabs); decode reads {\"ids\"} lines back", arguments: folders)
    func jsonlRoundTrip(_ folder: String) throws {
        let cases = GoldenCase.load("tokenizer_golden.json").filter { $0.folder == folder }
        let texts = cases.map(\.text) + ["a\u{0}b\tc\nd"]
        let input = texts.map { "{\"text\": \(jsonQuoted($0))}" }.joined(separator: "\n") + "\n"
        let (status, out, err) = try Self.run(
            [
                "tokenize", "--model", Fixtures.url(folder).path, "--json", "--input", "-",
                "--input-format", "jsonl",
            ], stdin: input)
        #expect(status == 0, "\(err)")
        let lines = Self.jsonLines(out)
        #expect(lines.map { $0["text"] as? String } == texts)
        for (line, c) in zip(lines, cases) { #expect(line["ids"] as? [Int] == c.ids) }
        // decode: the same ids back, as {"ids", "text"} lines, skip_special_tokens=True.
        let idLines = lines.map { "{\"ids\": [" + ($0["ids"] as! [Int]).map(String.init).joined(separator: ",") + "]}" }.joined(separator: "\n")
        let (s2, out2, err2) = try Self.run(
            [
                "decode", "--model", Fixtures.url(folder).path, "--json", "--input", "-",
                "--input-format", "jsonl",
            ], stdin: idLines)
        #expect(s2 == 0, "\(err2)")
        let decoded = Self.jsonLines(out2)
        #expect(decoded.count == lines.count)
        for (d, c) in zip(decoded, cases) {
            #expect(d["ids"] as? [Int] == c.ids)
            #expect(d["text"] as? String == c.decoded)
        }
    }

    @Test("decode --ids, with and without special tokens; lines input")
    func decodeIDs() throws {
        let folder = Fixtures.url("llama_bpe").path
        let (s1, o1, _) = try Self.run(["decode", "--model", folder, "--ids", "1,452,1053,489"])
        #expect(s1 == 0 && o1 == "The qu\n")
        let (s2, o2, _) = try Self.run(["decode", "--model", folder, "--ids", "1,452,1053,489", "--keep-special-tokens", "--json"])
        #expect(s2 == 0 && o2 == "{\"ids\": [1, 452, 1053, 489], \"text\": \"<s> The qu\"}\n")
        let (s3, o3, _) = try Self.run(["decode", "--model", folder, "--input", "-"], stdin: "1,452\n\n1053, 489\n")
        #expect(s3 == 0 && o3 == "The\n\nqu\n")
    }

    @Test("bad ids, input lines and options exit non-zero with one line naming the problem")
    func errors() throws {
        let folder = Fixtures.url("t5_unigram").path
        for (args, stdin, status, words) in [
            (["decode", "--model", folder, "--ids", "1,99999"], "", Int32(2), "item 2 (99999) is not a token id of this tokenizer"),
            (
                ["decode", "--model", folder, "--input", "-", "--input-format", "jsonl"], "{\"ids\": [true]}\n", 2,
                "-: line 1: ids item 1 is not a token id"
            ),
            (["decode", "--model", folder, "--input", "-", "--input-format", "jsonl"], "[1]\n", 2, "line 1 is not a JSON object"),
            (["tokenize", "--model", folder, "--input", "-", "--input-format", "jsonl"], "{\"ids\": [1]}\n", 2, "line 1 has no string \"text\""),
            (["tokenize", "--model", folder, "--input-format", "xml"], "", 2, "--input-format needs lines or jsonl"),
            (["decode", "--model", folder, "hello"], "", 2, "'attend decode' takes no arguments besides its options, got 'hello'"),
            (["tokenize", "--model", folder, "--keep-special-tokens", "x"], "", 2, "--keep-special-tokens is not an option of 'attend tokenize' (it is an option of decode)"),
            (["tokenize", "--model", folder + "/nope", "x"], "", 1, "no such file"),
        ] {
            let (s, _, err) = try Self.run(args, stdin: stdin)
            #expect(s == status && err.contains(words) && err.split(separator: "\n").count >= 1, "\(args): status \(s), \(err)")
        }
    }
}

/// A JSON string literal (test input only).
private func jsonQuoted(_ s: String) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast().description
}
