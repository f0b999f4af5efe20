// `attend generate` on decoder-only folders: transformers' ids for --ids (one line per prompt,
// a left-padded batch, greedy and beams), text for --prompt through the folder's tokenizer
// (streamed for one prompt), the timing line on stderr, and errors as one line.
import Foundation
import Testing

@testable import Attend

@Suite("attend generate (decoder-only)")
struct GenerateCausalCLITests {
    static func ids(_ row: [Int]) -> String { row.map(String.init).joined(separator: ",") }
    static func json(_ row: [Int]) -> String { "{\"ids\": [\(row.map(String.init).joined(separator: ", "))]}" }

    @Test("--json gives transformers' ids (prompt + new tokens) per --ids of one left-padded batch, greedy and 3 beams")
    func batch() throws {
        let c = try #require(LMCase.all.first { $0.folder == "gpt2_padded" })
        let folder = try lmFolder(c.folder).path
        let idArgs = c.prompts.flatMap { ["--ids", Self.ids($0)] }
        let width = c.prompts.map(\.count).max()!
        let eos = 5
        for (extra, rows) in [(["--min-new-tokens", "8"], c.greedy), (["--beams", "3"], c.beam3)] {
            let beams = extra.contains("--beams")
            let (status, out, err) = try GenerateCLITests.run(
                ["generate", "--model", folder, "--max-new-tokens", "8", "--json"]
                    + extra + idArgs)
            #expect(status == 0, "\(err)")
            #expect(err.contains("tok/s") && err.contains("peak memory"), "timing line: \(err)")
            // Expected: each row without its left padding, up to its end token.
            let want = zip(c.prompts, rows).map { prompt, row -> [Int] in
                let tail = row[width...]
                return prompt + (tail.firstIndex(of: eos).map { Array(tail[...$0]) } ?? Array(tail))
            }
            if beams {
                // The golden beams used early_stopping=True; the folder's default is false: compare
                // with the library under the CLI's settings, and the library's rows with the golden ones.
                let model = try DecoderOnlyModel(directory: try lmFolder(c.folder))
                var config = model.generationDefaults(promptLength: width)
                config.maxNewTokens = 8
                config.numBeams = 3
                let lib = try model.generate(prompts: c.prompts, config: config).sequences.enumerated().map { r, row -> [Int] in
                    let tail = row[width...]
                    return c.prompts[r] + (tail.firstIndex(of: eos).map { Array(tail[...$0]) } ?? Array(tail))
                }
                #expect(out.split(separator: "\n").map(String.init) == lib.map(Self.json), "\(out)")
            } else {
                #expect(out.split(separator: "\n").map(String.init) == want.map(Self.json), "\(out)")
            }
        }
    }

    @Test("past the sliding window: --json gives transformers' greedy ids (Mistral window 8, Qwen2 window 6, 24 new tokens)")
    func slidingWindow() throws {
        for c in WindowLMCase.all {
            let folder = try lmFolder(c.folder).path
            let idArgs = c.prompts.flatMap { ["--ids", Self.ids($0)] }
            let (status, out, err) = try GenerateCLITests.run(
                ["generate", "--model", folder, "--max-new-tokens", "24", "--min-new-tokens", "24", "--json"] + idArgs)
            #expect(status == 0, "\(c.folder): \(err)")
            // The left-padded batch's rows without their padding: each prompt and its 24 new ids.
            let width = c.prompts.map(\.count).max()!
            let want = zip(c.prompts, c.greedyBatch).map { prompt, row in prompt + row[width...] }
            #expect(want == c.greedy, "\(c.folder): batched and alone differ in the fixture")
            #expect(out.split(separator: "\n").map(String.init) == want.map(Self.json), "\(c.folder): \(out)")
        }
    }

    @Test("--prompt encodes with the folder's tokenizer and prints transformers' continuation (streamed, and in --json)")
    func text() throws {
        let url = try #require(Bundle.module.url(forResource: "lm_text", withExtension: "json", subdirectory: "Fixtures/lm"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let folder = try lmFolder("llama_text").path
        for case let c as [String: Any] in try #require(json["cases"] as? [Any]) {
            let text = c["text"] as! String, continuation = c["continuation"] as! String
            let greedy = (c["greedy"] as! [NSNumber]).map(\.intValue)
            let (status, out, err) = try GenerateCLITests.run(["generate", "--model", folder, "--prompt", text, "--max-new-tokens", "12"])
            #expect(status == 0, "\(err)")
            #expect(out == continuation + "\n", "streamed: \(out)")
            let (s2, out2, _) = try GenerateCLITests.run(["generate", "--model", folder, "--prompt", text, "--max-new-tokens", "12", "--json"])
            #expect(s2 == 0)
            let line = try #require(try JSONSerialization.jsonObject(with: Data(out2.utf8)) as? [String: Any])
            #expect((line["ids"] as? [NSNumber])?.map(\.intValue) == greedy && line["text"] as? String == continuation, "\(out2)")
        }
    }

    @Test("one greedy --ids streams its new ids; sampling with a seed repeats; errors are one line")
    func streamAndErrors() throws {
        let c = try #require(LMCase.all.first { $0.folder == "llama" })
        let folder = try lmFolder("llama").path
        let (status, out, _) = try GenerateCLITests.run([
            "generate", "--model", folder, "--ids", Self.ids(c.prompts[0]),
            "--max-new-tokens", "10", "--min-new-tokens", "10",
        ])
        #expect(status == 0)
        #expect(out == c.greedy[0].dropFirst(c.prompts[0].count).map(String.init).joined(separator: " ") + "\n", "\(out)")
        let sample = ["generate", "--model", folder, "--ids", "5,6,7", "--do-sample", "--seed", "11", "--top-p", "0.9", "--max-new-tokens", "8"]
        let (a, b) = (try GenerateCLITests.run(sample + ["--threads", "1"]), try GenerateCLITests.run(sample + ["--threads", "2"]))
        #expect(a.0 == 0 && a.1 == b.1 && !a.1.isEmpty)
        for (args, words) in [
            (["--ids", "5,999"], ["--ids #1", "999", "vocabulary"]),
            (["--prompt", "hi"], ["tokenizer"]),
            (["--ids", "1", "--prompt", "hi"], ["not both"]),
        ] {
            let (s, o, e) = try GenerateCLITests.run(["generate", "--model", folder] + args)
            #expect(s != 0 && o.isEmpty && words.allSatisfy { e.contains($0) }, "\(args): \(e)")
        }
        let gpt2 = try lmFolder("gpt2").path
        let (s, _, e) = try GenerateCLITests.run(["generate", "--model", gpt2, "--ids", Array(repeating: "3", count: 64).joined(separator: ",")])
        #expect(s != 0 && e.contains("n_positions"), "\(e)")
        let (s3, _, e3) = try GenerateCLITests.run(["generate", "--model", try fixtureFolder("t5").path, "--prompt", "hi"])
        #expect(s3 != 0 && e3.contains("decoder-only"), "\(e3)")
    }

    @Test("--max-new-tokens as large as an Int holds on GPT-2 (n_positions 64): a warning and 63 new tokens, no overflow")
    func hugeMaxNewTokens() throws {
        let gpt2 = try lmFolder("gpt2").path
        let (status, out, err) = try GenerateCLITests.run([
            "generate", "--model", gpt2, "--ids", "1", "--max-new-tokens", "9223372036854775807", "--min-new-tokens", "63", "--json",
        ])
        #expect(status == 0, "\(err)")
        #expect(err.contains("attend: warning:") && err.contains("at most 63 tokens"), "\(err)")
        let line = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
        #expect((line["ids"] as? [Any])?.count == 64, "\(out)")
    }
}
