// Every tokenizer family against transformers' own output for the golden folders: ids
// (`tokenizer(text)["input_ids"]`), tokens and `decode(ids, skip_special_tokens=True)` must be
// equal, for the twelve texts of tokenizer_golden.json.
import Foundation
import Testing

@testable import Attend

/// Tokenizers load once per folder (loading is checked by the first test that needs one).
enum LoadedTokenizers {
    static let cache: [String: any Tokenizer] = {
        var out: [String: any Tokenizer] = [:]
        for name in ["t5_unigram", "marian_spm", "llama_bpe", "gpt2_bytelevel"] {
            if let t = try? loadTokenizer(directory: Fixtures.url(name)) { out[name] = t }
        }
        return out
    }()

    static func get(_ name: String) throws -> any Tokenizer {
        if let t = cache[name] { return t }
        return try loadTokenizer(directory: Fixtures.url(name))
    }
}

@Suite("Golden tokenizers (transformers 5.24)")
struct GoldenTokenizerTests {
    static let cases = GoldenCase.load("tokenizer_golden.json")

    @Test("the golden file has twelve texts for each of the four folders")
    func coverage() {
        #expect(Self.cases.count == 48)
    }

    @Test("each folder loads as the family transformers uses")
    func families() throws {
        #expect(try LoadedTokenizers.get("t5_unigram") is PipelineTokenizer)
        #expect(try LoadedTokenizers.get("llama_bpe") is PipelineTokenizer)
        #expect(try LoadedTokenizers.get("gpt2_bytelevel") is PipelineTokenizer)
        #expect(try LoadedTokenizers.get("marian_spm") is MarianTokenizer)
    }

    @Test("ids, tokens and decoded text equal transformers'", arguments: cases)
    func golden(_ c: GoldenCase) throws {
        let t = try LoadedTokenizers.get(c.folder)
        let e = t.encode(c.text)
        #expect(e.ids == c.ids)
        #expect(e.ids.map { t.token(for: $0) ?? "?" } == c.tokens)
        #expect(t.decode(c.ids, skipSpecialTokens: true) == c.decoded)
        #expect(e.attentionMask == Array(repeating: 1, count: e.ids.count))
    }
}
