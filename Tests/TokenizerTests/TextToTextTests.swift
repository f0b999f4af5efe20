// Text in, text out: the tiny random T5 and Marian checkpoints with tokenizers that fit them
// (scripts/make_text_generation_fixtures.py), against transformers' tokenizer -> generate ->
// decode, batched and streamed.
import Foundation
import Testing

@testable import Attend

struct TextGenerationCase: CustomTestStringConvertible, Sendable {
    let folder: String
    let text: String
    let ids: [Int]
    let outputIDs: [Int]
    let output: String
    var testDescription: String { "\(folder): \"\(shownText(text))\"" }

    static let all: [TextGenerationCase] = {
        guard let root = try? Fixtures.json("text_generation.json") as? [String: Any],
            let cases = root["cases"] as? [String: [[String: Any]]]
        else { return [] }
        return cases.keys.sorted().flatMap { f in
            cases[f]!.map { c in
                TextGenerationCase(
                    folder: f, text: c["text"] as! String, ids: c["ids"] as! [Int],
                    outputIDs: c["output_ids"] as! [Int], output: c["output"] as! String)
            }
        }
    }()
}

@Suite("Text to text (T5, Marian)")
struct TextToTextTests {
    static func model(_ folder: String) throws -> TextToTextModel {
        try TextToTextModel(directory: Fixtures.url(folder))
    }

    @Test("eight cases over two folders")
    func coverage() { #expect(TextGenerationCase.all.count == 8) }

    @Test("source ids, greedy output ids and output text equal transformers'", arguments: TextGenerationCase.all)
    func generate(_ c: TextGenerationCase) throws {
        let m = try Self.model(c.folder)
        var config = m.model.generationDefaults
        config.maxNewTokens = 10
        let g = try m.generate([c.text], config: config)
        #expect(g.count == 1)
        #expect(g[0].ids == c.ids)
        #expect(g[0].outputIDs == c.outputIDs)
        #expect(g[0].output == c.output)
        var streamed = ""
        let s = try m.generateStreaming(c.text, config: config) { streamed += $0 }
        #expect(s.outputIDs == c.outputIDs)
        #expect(streamed == c.output)
    }

    @Test("generateAsync from several tasks at once equals generate (T5 and Marian folders)")
    func concurrentAsync() async throws {
        for folder in ["t5_text", "marian_text"] {
            let m = try Self.model(folder)
            let config = { () -> GenerationConfig in
                var c = m.model.generationDefaults
                c.maxNewTokens = 10
                return c
            }()
            let texts = TextGenerationCase.all.filter { $0.folder == folder }.map(\.text)
            let serial = try texts.map { try m.generate([$0], config: config) }
            let results = try await withThrowingTaskGroup(of: (Int, [TextGeneration]).self) { group in
                for (i, t) in texts.enumerated() { group.addTask { (i, try await m.generateAsync([t], config: config)) } }
                var out: [Int: [TextGeneration]] = [:]
                for try await (i, g) in group { out[i] = g }
                return out
            }
            for (i, want) in serial.enumerated() { #expect(results[i] == want, "\(folder) text \(i)") }
        }
    }

    @Test("a batch of texts gives each text's own result")
    func batch() throws {
        for folder in ["t5_text", "marian_text"] {
            let cases = TextGenerationCase.all.filter { $0.folder == folder }
            let m = try Self.model(folder)
            var config = m.model.generationDefaults
            config.maxNewTokens = 10
            let g = try m.generate(cases.map(\.text), config: config)
            #expect(g.map(\.output) == cases.map(\.output))
            #expect(g.map(\.ids) == cases.map(\.ids))
        }
    }

    @Test("a tokenizer that does not fit the model is an error, not a trap")
    func mismatch() throws {
        let big = try loadTokenizer(directory: Fixtures.url("t5_unigram"))
        let m = TextToTextModel(model: try Self.model("t5_text").model, tokenizer: big)
        #expect(throws: TextToTextError.self) { try m.generate(["translate English to German: The house is wonderful."]) }
        let marian = try Self.model("marian_text")
        let long = String(repeating: "a ", count: 200)
        let n = marian.tokenizer.encode(long).ids.count
        #expect(n > 64)
        #expect(throws: TextToTextError.tooLong(textIndex: 1, tokens: n, maxPositions: 64)) {
            try marian.generate(["hello world", long])
        }
    }
}

@Suite("attend generate --text")
struct GenerateTextCLITests {
    @Test("one greedy source streams its text; several print one line each; --json gives text, ids, output, output_ids")
    func cli() throws {
        for folder in ["t5_text", "marian_text"] {
            let cases = TextGenerationCase.all.filter { $0.folder == folder }
            let path = Fixtures.url(folder).path
            let (s1, o1, e1) = try TokenizeCLITests.run(["generate", "--model", path, "--max-new-tokens", "10", "--text", cases[0].text])
            #expect(s1 == 0 && o1 == cases[0].output + "\n", "\(e1)")
            let (s2, o2, _) = try TokenizeCLITests.run(
                ["generate", "--model", path, "--max-new-tokens", "10"]
                    + cases.flatMap { ["--text", $0.text] })
            #expect(s2 == 0 && o2 == cases.map { $0.output + "\n" }.joined())
            let input = cases.map {
                "{\"text\": \(String(decoding: try! JSONSerialization.data(withJSONObject: [$0.text]), as: UTF8.self).dropFirst().dropLast())}"
            }
            let (s3, o3, e3) = try TokenizeCLITests.run(
                [
                    "generate", "--model", path, "--max-new-tokens", "10", "--json", "--input", "-",
                    "--input-format", "jsonl",
                ], stdin: input.joined(separator: "\n"))
            #expect(s3 == 0, "\(e3)")
            let lines = TokenizeCLITests.jsonLines(o3)
            #expect(lines.map { $0["output"] as? String } == cases.map(\.output))
            #expect(lines.map { $0["output_ids"] as? [Int] } == cases.map(\.outputIDs))
            #expect(lines.map { $0["ids"] as? [Int] } == cases.map(\.ids))
        }
        let (s4, _, e4) = try TokenizeCLITests.run(["generate", "--model", Fixtures.url("t5_text").path, "--text", "x", "--ids", "1"])
        #expect(s4 == 2 && e4.contains("not both"))
    }
}
