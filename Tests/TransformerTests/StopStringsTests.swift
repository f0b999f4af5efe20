// Stop strings against transformers' generate(..., stop_strings=..., tokenizer=...) on the
// llama_text fixture (make_stop_strings_fixture.py): a string completed by a token, one that
// begins in the prompt, one that a token overhangs on both ends, several strings, one that
// never matches, and a left-padded batch where one row stops and pads while the other runs on.
import Foundation
import Testing

@testable import Attend

@Suite("Stop strings (transformers parity)")
struct StopStringsTests {
    struct Case {
        var texts: [String]
        var stop: [String]
        var maxNewTokens: Int
        var prompts: [[Int]]
        var sequences: [[Int]]
    }

    static func cases() throws -> [Case] {
        let url = try #require(Bundle.module.url(forResource: "stop_strings", withExtension: "json", subdirectory: "Fixtures/lm"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        return try #require(json["cases"] as? [[String: Any]]).map { c in
            Case(
                texts: c["texts"] as! [String], stop: c["stop"] as! [String], maxNewTokens: (c["max_new_tokens"] as! NSNumber).intValue,
                prompts: (c["prompts"] as! [[NSNumber]]).map { $0.map(\.intValue) },
                sequences: (c["sequences"] as! [[NSNumber]]).map { $0.map(\.intValue) })
        }
    }

    @Test("generate stops where transformers stops, rows padded as it pads them")
    func parity() throws {
        let folder = try lmFolder("llama_text")
        let model = try DecoderOnlyModel(directory: folder)
        let tokenizer = try loadTokenizer(directory: folder)
        let all = try Self.cases()
        #expect(all.count == 6)
        for c in all {
            #expect(c.texts.map { tokenizer.encode($0).ids } == c.prompts)
            var config = model.generationDefaults(promptLength: c.prompts.map(\.count).max()!)
            config.maxNewTokens = c.maxNewTokens
            config.stopStrings = try StopStrings(c.stop, tokenizer: tokenizer)
            let rows = try model.generate(prompts: c.prompts, config: config).sequences
            #expect(rows == c.sequences, "stop \(c.stop) on \(c.texts)")
            // Without the strings the rows run to the length limit: the stop is what ended them.
            config.stopStrings = nil
            let free = try model.generate(prompts: c.prompts, config: config).sequences
            #expect(free[0].count == c.prompts.map(\.count).max()! + c.maxNewTokens)
        }
    }

    @Test("the matching rule: a string must end in the last token; firstStop finds the cutting token")
    func rule() throws {
        let tokenizer = try loadTokenizer(directory: try lmFolder("llama_text"))
        let ids = tokenizer.encode("The quick brown fox").ids
        let p = 1097  // "P"
        let stop = try StopStrings(["PP"], tokenizer: tokenizer)
        #expect(!stop.endsWithStop(ids + [p]))
        #expect(stop.endsWithStop(ids + [p, p]))
        #expect(!stop.endsWithStop([]))
        #expect(stop.firstStop(in: ids + [p, p, p, p], from: ids.count) == ids.count + 1)
        #expect(stop.firstStop(in: ids + [p], from: ids.count) == nil)
        #expect(stop.firstStop(in: ids, from: 99) == nil)
    }

    @Test("bad stop strings and beam search are refused with an error")
    func errors() throws {
        let folder = try lmFolder("llama_text")
        let tokenizer = try loadTokenizer(directory: folder)
        #expect(throws: GenerationError.self) { try StopStrings([], tokenizer: tokenizer) }
        #expect(throws: GenerationError.self) { try StopStrings(["a", ""], tokenizer: tokenizer) }
        let model = try DecoderOnlyModel(directory: folder)
        var config = model.generationDefaults(promptLength: 3)
        config.stopStrings = try StopStrings(["x"], tokenizer: tokenizer)
        config.numBeams = 2
        #expect(throws: GenerationError.self) { try model.generate(prompts: [[1, 5, 6]], config: config) }
    }

    @Test("attend generate --stop: streamed text ends at the string; --json ids are cut there; beams refused")
    func cli() throws {
        let folder = try lmFolder("llama_text").path
        let (status, out, err) = try GenerateCLITests.run(["generate", "--model", folder, "--prompt", "The quick brown fox", "--stop", "PPP"])
        #expect(status == 0, "\(err)")
        #expect(out == "PPP\n", "\(out)")
        let (s2, out2, _) = try GenerateCLITests.run([
            "generate", "--model", folder, "--prompt", "Hello world, this is", "--prompt", "The quick brown fox", "--stop", "PPPP", "--json",
        ])
        #expect(s2 == 0)
        let lines = out2.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.count == 2)
        #expect(lines.last?["text"] as? String == "PPPP", "\(out2)")
        #expect((lines.first?["text"] as? String)?.hasPrefix("is is") == true, "\(out2)")
        let (s3, _, err3) = try GenerateCLITests.run(["generate", "--model", folder, "--prompt", "Hi", "--stop", "x", "--beams", "2"])
        #expect(s3 == 2 && err3.contains("--stop"), "\(err3)")
        let (s4, _, err4) = try GenerateCLITests.run(["generate", "--model", folder, "--prompt", "Hi", "--stop", ""])
        #expect(s4 == 2 && err4.contains("--stop"), "\(err4)")
    }
}
