// Inputs that made the libFuzzer target FuzzTokenizer (Tests/Fuzz) fail, each fixed in the
// tokenizer and kept here (and in Tests/Fuzz/Corpus/FuzzTokenizer as crash-*) so the bug
// stays fixed. The harness's first byte picks the mode: 0 tokenizer.json bytes, 1 vocab.txt
// bytes, 2 and 3 text for two fixture tokenizers.
import Foundation
import Testing

@testable import Attend

@Suite("WordPiece tokenizer: inputs found by fuzzing")
struct TokenizerFuzzRegressionTests {
    /// The error loading `json` as tokenizer.json, checked to be a one-line ModelFileError.
    func loadError(_ json: [UInt8]) -> ModelFileError? {
        do {
            _ = try WordPieceTokenizer(tokenizerJSONBytes: json, path: "fuzz/tokenizer.json")
            return nil
        } catch let e as ModelFileError {
            #expect(e.description.hasPrefix("fuzz/tokenizer.json: "))
            #expect(!e.description.contains("\n") && !e.description.contains("\r"), "\(e.description)")
            return e
        } catch {
            Issue.record("expected a ModelFileError, got \(error)")
            return nil
        }
    }

    /// A minimal valid tokenizer.json with `patch` applied to its text.
    func tokenizerJSON(_ patch: (String) -> String = { $0 }) -> [UInt8] {
        let text = """
            {"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"[CLS]":1,"[SEP]":2,"a":3}},
             "normalizer":{"type":"BertNormalizer"},"pre_tokenizer":{"type":"BertPreTokenizer"},
             "post_processor":{"type":"TemplateProcessing",
               "single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},
                         {"SpecialToken":{"id":"[SEP]","type_id":0}}],
               "pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],
               "special_tokens":{"[CLS]":{"id":"[CLS]","ids":[1],"tokens":["[CLS]"]},
                                 "[SEP]":{"id":"[SEP]","ids":[2],"tokens":["[SEP]"]}}},
             "decoder":{"type":"WordPiece"}}
            """
        return Array(patch(text).utf8)
    }

    @Test func theBaseFileLoads() throws {
        let t = try WordPieceTokenizer(tokenizerJSONBytes: tokenizerJSON())
        #expect(t.encode("a a").ids == [1, 3, 3, 2])
    }

    /// Same bug as SafeTensorsFuzzRegressionTests' crash-escape-cr, in the tokenizer's JSON
    /// reader: a backslash before a control byte put that byte raw in the message.
    @Test func invalidEscapeOfAControlByteIsNamedByValue() {
        let error = loadError(Array("{\"\\\r\":1}".utf8))
        #expect(error == .invalidJSON(path: "fuzz/tokenizer.json", offset: 2, reason: "invalid escape '\\' + byte 0xd"))
        #expect(loadError(Array("{\"\\x\":1}".utf8))
            == .invalidJSON(path: "fuzz/tokenizer.json", offset: 2, reason: "invalid escape '\\x'"))
    }

    /// Every crash input in the fuzz corpus (Tests/Fuzz/Corpus/FuzzTokenizer/crash-*) loads
    /// (and encodes) or throws a one-line ModelFileError, whatever its mode.
    @Test func crashInputsOfTheCorpus() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/Corpus/FuzzTokenizer")
        let names = try FileManager.default.contentsOfDirectory(atPath: corpus.path).filter { $0.hasPrefix("crash-") }
        for name in names {
            let input = Array(try Data(contentsOf: corpus.appendingPathComponent(name)))
            guard let mode = input.first else { continue }
            let rest = Array(input.dropFirst())
            switch mode % 4 {
            case 0:
                if loadError(rest) == nil {
                    let t = try WordPieceTokenizer(tokenizerJSONBytes: rest)
                    let e = t.encode("a [CLS] b", pair: "c")
                    #expect(e.ids.allSatisfy { $0 >= 0 && $0 < t.idLimit }, "\(name)")
                }
            case 1:
                if let t = try? WordPieceTokenizer(vocabularyFileBytes: rest) {
                    #expect(t.encode("a [CLS] b").ids.allSatisfy { $0 >= 0 && $0 < t.idLimit }, "\(name)")
                }
            default:
                let t = try WordPieceTokenizer(tokenizerJSON: Fixtures.url(
                    mode % 4 == 2 ? "addedtokens_tokenizer/tokenizer.json" : "cased_tokenizer/tokenizer.json"))
                let text = String(decoding: rest.dropFirst(), as: UTF8.self)
                let e = t.encode(text)
                #expect(e.ids.allSatisfy { $0 >= 0 && $0 < t.idLimit }, "\(name)")
                _ = t.decode(e.ids)
            }
        }
    }
}
