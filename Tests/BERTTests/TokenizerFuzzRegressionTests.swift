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
        #expect(
            loadError(Array("{\"\\x\":1}".utf8))
                == .invalidJSON(path: "fuzz/tokenizer.json", offset: 2, reason: "invalid escape '\\x'"))
    }

    /// Found by review while fuzzing (the fuzzer did not reach it in 10 minutes): names read
    /// from the file (component types, a Sequence id, special_tokens keys) went into messages
    /// raw, so a newline in one split the one-line message. They are quoted and escaped now.
    @Test func namesFromTheFileAreQuotedInMessages() {
        let model = loadError(tokenizerJSON { $0.replacingOccurrences(of: #""type":"WordPiece","unk"#, with: #""type":"Word\nPiece","unk"#) })
        #expect(model == .unsupported(path: "fuzz/tokenizer.json", what: #"tokenizer model "Word\nPiece" (only WordPiece is implemented)"#))
        let normalizer = loadError(tokenizerJSON { $0.replacingOccurrences(of: "BertNormalizer", with: #"NFKC\r"#) })
        #expect(normalizer == .unsupported(path: "fuzz/tokenizer.json", what: #"normalizer "NFKC\r" (only BertNormalizer is implemented)"#))
        _ = loadError(tokenizerJSON { $0.replacingOccurrences(of: "BertPreTokenizer", with: #"W\n"#) })
        _ = loadError(tokenizerJSON { $0.replacingOccurrences(of: #""decoder":{"type":"WordPiece"}"#, with: #""decoder":{"type":"\n"}"#) })
        _ = loadError(tokenizerJSON { $0.replacingOccurrences(of: "TemplateProcessing", with: #"T\n"#) })
        let sequence = loadError(tokenizerJSON { $0.replacingOccurrences(of: #"{"Sequence":{"id":"B""#, with: #"{"Sequence":{"id":"\n""#) })
        #expect(
            sequence
                == .invalidValue(
                    path: "fuzz/tokenizer.json", key: "post_processor.pair[1].Sequence.id",
                    reason: #"expected "A" or "B", found "\n""#))
        let specialKey = loadError(
            tokenizerJSON {
                $0.replacingOccurrences(of: #""[SEP]":{"id":"[SEP]","ids":[2]"#, with: #""[SEP]\n":{"id":"[SEP]","ids":"x""#)
            })
        #expect(specialKey?.description.contains(#"special_tokens."[SEP]\n".ids"#) == true, "\(String(describing: specialKey))")
    }

    /// Found by review while fuzzing: template token ids had no upper bound, and `idLimit`
    /// (one more than the largest id) overflowed for an id of Int.max. Template ids are now
    /// bounded like every other id (below 2^31 - 1).
    @Test func templateIDsAreBounded() {
        for big in ["9223372036854775807", "2147483647"] {
            let template = loadError(tokenizerJSON { $0.replacingOccurrences(of: #""ids":[2]"#, with: #""ids":[\#(big)]"#) })
            #expect(
                template
                    == .invalidValue(
                        path: "fuzz/tokenizer.json", key: "post_processor.special_tokens.[SEP].ids",
                        reason: "expected integers in 0...2147483646"), "\(big)")
            let bert = loadError(
                tokenizerJSON {
                    $0.replacingOccurrences(
                        of: #""post_processor":{"type":"TemplateProcessing","#,
                        with: #""post_processor":{"type":"BertProcessing","cls":["[CLS]",1],"sep":["[SEP]",\#(big)],"#)
                })
            #expect(bert == .invalidValue(path: "fuzz/tokenizer.json", key: "post_processor.sep", reason: "expected [token, id]"), "\(big)")
        }
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
                    let e = try t.encode("a [CLS] b", pair: "c")
                    #expect(e.ids.allSatisfy { $0 >= 0 && $0 < t.idLimit }, "\(name)")
                }
            case 1:
                if let t = try? WordPieceTokenizer(vocabularyFileBytes: rest) {
                    #expect(t.encode("a [CLS] b").ids.allSatisfy { $0 >= 0 && $0 < t.idLimit }, "\(name)")
                }
            default:
                let t = try WordPieceTokenizer(
                    tokenizerJSON: Fixtures.url(
                        mode % 4 == 2 ? "addedtokens_tokenizer/tokenizer.json" : "cased_tokenizer/tokenizer.json"))
                let text = String(decoding: rest.dropFirst(), as: UTF8.self)
                let e = t.encode(text)
                #expect(e.ids.allSatisfy { $0 >= 0 && $0 < t.idLimit }, "\(name)")
                _ = t.decode(e.ids)
            }
        }
    }
}
