// loadTokenizer(directory:): which files make which tokenizer, the slow files alone giving the
// same ids as the fast ones, and one-line errors for folders that cannot make one.
import Foundation
import Testing

@testable import Attend

@Suite("Loading tokenizers from folders")
struct LoaderTests {
    /// A temporary folder with `files` copied from the fixture folder `from`.
    static func folder(from: String, _ files: [String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in files {
            try FileManager.default.copyItem(at: Fixtures.url(from).appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        return dir
    }

    @Test("GPT-2's vocab.json + merges.txt alone load as byte-level BPE (their cases: extra/gpt2_slow)")
    func gpt2SlowFiles() throws {
        let t = try loadTokenizer(directory: Fixtures.url("extra/gpt2_slow"))
        #expect(t is PipelineTokenizer)
        // transformers 5.24 from these three files alone.
        #expect(
            t.encode("The quick brown fox jumps over the lazy dog.").ids
                == [370, 221, 497, 394, 75, 272, 306, 87, 78, 279, 79, 88, 1042, 313, 882, 274, 461, 264, 308, 65, 90, 89, 800, 71, 14])
    }

    @Test("a SentencePiece file of another class keeps SentencePiece's own algorithm")
    func otherSentencePieceClass() throws {
        let dir = try Self.folder(from: "marian_spm", ["source.spm"])
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.moveItem(at: dir.appendingPathComponent("source.spm"), to: dir.appendingPathComponent("spiece.model"))
        let t = try loadTokenizer(directory: dir)
        #expect(t is SentencePieceTokenizer)
        // Texts without control pieces typed in them (the tokenizer keeps those whole, as
        // transformers' slow tokenizers do; sentencepiece itself spells them out).
        for c in SentencePieceCase.all where c.model == "marian_spm/source.spm" && !c.text.contains("<") {
            #expect(t.encode(c.text).ids == c.ids)
            #expect(t.decode(c.ids, skipSpecialTokens: false) == c.decoded)
        }
    }

    @Test("folders that cannot make a tokenizer: one line naming the file")
    func errors() throws {
        let empty = try Self.folder(from: "t5_unigram", [])
        defer { try? FileManager.default.removeItem(at: empty) }
        for (dir, words) in [
            (empty, "tokenizer.json (nor vocab.txt, spiece.model, tokenizer.model, source.spm or vocab.json + merges.txt): no such file"),
            (empty.appendingPathComponent("nope"), "nope: no such file"),
        ] {
            do {
                _ = try loadTokenizer(directory: dir)
                Issue.record("\(dir.path) loaded")
            } catch let e as ModelFileError {
                #expect(e.description.contains(words) && !e.description.contains("\n"), "\(e.description)")
            }
        }
        let marian = try Self.folder(from: "marian_spm", ["source.spm", "vocab.json", "tokenizer_config.json"])
        defer { try? FileManager.default.removeItem(at: marian) }
        #expect(throws: ModelFileError.missingFile(path: marian.appendingPathComponent("target.spm").path)) {
            _ = try loadTokenizer(directory: marian)
        }
        var json = try String(contentsOf: Fixtures.url("marian_spm/vocab.json"), encoding: .utf8)
        json = json.replacingOccurrences(of: "\"<unk>\"", with: "\"<unknown>\"")
        try FileManager.default.copyItem(at: Fixtures.url("marian_spm/target.spm"), to: marian.appendingPathComponent("target.spm"))
        try json.write(to: marian.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        do {
            _ = try loadTokenizer(directory: marian)
            Issue.record("a vocabulary without <unk> loaded")
        } catch let e as ModelFileError {
            #expect(e.description.contains("vocab.json") && e.description.contains("the unknown token \"<unk>\""), "\(e.description)")
        }
    }

    @Test("a Regex Replace or an unknown Split pattern is named, not approximated")
    func unsupportedPatterns() throws {
        var json = try String(contentsOf: Fixtures.url("gpt2_bytelevel/tokenizer.json"), encoding: .utf8)
        json = json.replacingOccurrences(
            of: "\"normalizer\": null", with: "\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"content\": \" \"}")
        do {
            _ = try PipelineTokenizer(tokenizerJSONBytes: Array(json.utf8), path: "t/tokenizer.json")
            Issue.record("a Regex Replace loaded")
        } catch let e as ModelFileError {
            #expect(
                e.description
                    == "t/tokenizer.json: unsupported: normalizer.pattern.Regex: a Replace with a regular expression (only literal String patterns are implemented)"
            )
        }
    }
}
