// Harder texts (whitespace of every kind, NUL, combining and ZWJ sequences, fullwidth forms,
// long words, special tokens typed in the text, random text) on the golden folders and on
// small tokenizers trained by scripts/make_tokenizer_family_fixtures.py, against
// transformers 5.24 / tokenizers 0.23.3; SentencePiece model files against sentencepiece 0.2.3.
import Foundation
import Testing

@testable import Attend

@Suite("Tokenizers on hard texts")
struct HardTokenizerTests {
    static let cases = GoldenCase.load("tokenizer_hard.json")

    @Test("the hard-case file covers every folder")
    func coverage() {
        let folders = Set(Self.cases.map(\.folder))
        #expect(folders.count == 13)
        #expect(Self.cases.count >= 13 * 40)
    }

    @Test("ids, tokens and both decodes equal transformers'", arguments: cases)
    func hard(_ c: GoldenCase) throws {
        try expectReferenceOutput(c)
    }
}

/// One sentencepiece expectation: a model file, a text, its ids, pieces and decode.
struct SentencePieceCase: CustomTestStringConvertible, Sendable {
    let model: String
    let text: String
    let ids: [Int]
    let pieces: [String]
    let decoded: String

    var testDescription: String { "\(model): \"\(shownText(text))\"" }

    static let all: [SentencePieceCase] = {
        guard let root = try? Fixtures.json("sentencepiece_cases.json") as? [String: Any],
            let cases = root["cases"] as? [String: [[String: Any]]]
        else { return [] }
        return cases.keys.sorted().flatMap { m in
            cases[m]!.map { c in
                SentencePieceCase(
                    model: m, text: c["text"] as! String, ids: c["ids"] as! [Int],
                    pieces: c["pieces"] as! [String], decoded: c["decoded"] as! String)
            }
        }
    }()
}

@Suite("SentencePiece model files")
struct SentencePieceTests {
    static let processors: [String: SentencePieceProcessor] = {
        var out: [String: SentencePieceProcessor] = [:]
        for m in Set(SentencePieceCase.all.map(\.model)) {
            let url = Fixtures.url(m)
            if let model = try? SentencePieceModel(contentsOf: url), let p = try? SentencePieceProcessor(model: model, path: url.path) {
                out[m] = p
            }
        }
        return out
    }()

    @Test("four model files, Unigram and BPE")
    func coverage() throws {
        #expect(Set(SentencePieceCase.all.map(\.model)).count == 4)
        #expect(Self.processors.count == 4)
        #expect(Self.processors["llama_bpe/tokenizer.model"]?.model.modelType == .bpe)
        #expect(Self.processors["marian_spm/source.spm"]?.model.modelType == .unigram)
        #expect(Self.processors["marian_spm/source.spm"]?.model.normalizerName == "nmt_nfkc")
    }

    @Test("ids, pieces and decode equal sentencepiece's", arguments: SentencePieceCase.all)
    func encode(_ c: SentencePieceCase) throws {
        let p = try #require(Self.processors[c.model])
        let got = p.encode(Array(c.text.utf8))
        #expect(got.map(\.id) == c.ids)
        #expect(got.map { String(decoding: $0.piece, as: UTF8.self) } == c.pieces)
        #expect(p.decode(pieces: c.ids.map { p.model.pieces[$0] }) == c.decoded)
    }
}
