// Every tokenizer family against transformers' own output for the golden folders: ids
// (`tokenizer(text)["input_ids"]`), tokens and `decode(ids, skip_special_tokens=True)` must be
// equal, for the twelve texts of tokenizer_golden.json.
import Foundation
import Testing

@testable import Attend

@Suite("Golden tokenizers (transformers 5.24)")
struct GoldenTokenizerTests {
    static let cases = GoldenCase.load("tokenizer_golden.json")

    @Test("the golden file has twelve texts for each of the four folders")
    func coverage() {
        #expect(Self.cases.count == 48)
    }

    @Test("each folder loads as the family transformers uses")
    func families() throws {
        #expect(try FolderTokenizers.get("t5_unigram") is PipelineTokenizer)
        #expect(try FolderTokenizers.get("llama_bpe") is PipelineTokenizer)
        #expect(try FolderTokenizers.get("gpt2_bytelevel") is PipelineTokenizer)
        #expect(try FolderTokenizers.get("marian_spm") is MarianTokenizer)
    }

    @Test("ids, tokens and decoded text equal transformers'", arguments: cases)
    func golden(_ c: GoldenCase) throws {
        try expectReferenceOutput(c)
    }
}
