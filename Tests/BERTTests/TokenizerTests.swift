// The WordPiece tokenizer against the reference (Hugging Face `tokenizers` 0.23.3): the cases
// of Fixtures/tokenizer_cases.json (scripts/make_tokenizer_fixtures.py) on all-MiniLM-L6-v2's
// tokenizer.json and three small tokenizers (cased with accents kept, cased with accents
// stripped, added tokens with strip and single-word rules), plus the golden ids of
// minilm_golden.json and behaviours that need no reference.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// One expectation from tokenizer_cases.json.
struct TokenizerCase: CustomTestStringConvertible, Sendable {
    let tokenizer: String
    let text: String
    let pair: String?
    let maxLength: Int?
    let ids: [Int]
    let tokens: [String]
    let typeIDs: [Int]
    let specialMask: [Int]
    let decoded: String?
    let decodedWithSpecials: String?

    var testDescription: String {
        let shown = (text + (pair.map { " | " + $0 } ?? "")).unicodeScalars.prefix(40).map { s in
            s.value < 0x20 || s.value == 0x7F ? "\\u{\(String(s.value, radix: 16))}" : String(s)
        }.joined()
        return "\(tokenizer): \"\(shown)\"" + (maxLength.map { " max \($0)" } ?? "")
    }

    static let all: [TokenizerCase] = {
        guard let root = try? Fixtures.json("tokenizer_cases.json") as? [String: Any],
            let toks = root["tokenizers"] as? [String: [String: [[String: Any]]]]
        else { return [] }
        var out: [TokenizerCase] = []
        for name in toks.keys.sorted() {
            for kind in ["single", "pairs"] {
                for c in toks[name]![kind] ?? [] {
                    out.append(
                        TokenizerCase(
                            tokenizer: name, text: c["text"] as! String, pair: c["pair"] as? String,
                            maxLength: c["max_length"] as? Int, ids: c["ids"] as! [Int], tokens: c["tokens"] as! [String],
                            typeIDs: c["type_ids"] as! [Int], specialMask: c["special_tokens_mask"] as! [Int],
                            decoded: c["decoded"] as? String, decodedWithSpecials: c["decoded_with_specials"] as? String))
                }
            }
        }
        return out
    }()
}

/// The fixture tokenizers, loaded once.
enum FixtureTokenizers {
    static let byName: [String: WordPieceTokenizer] = {
        var out: [String: WordPieceTokenizer] = [:]
        for name in ["minilm_tokenizer", "cased_tokenizer", "stripcased_tokenizer", "addedtokens_tokenizer"] {
            out[name] = try? WordPieceTokenizer(tokenizerJSON: Fixtures.url("\(name)/tokenizer.json"))
        }
        return out
    }()

    static var minilm: WordPieceTokenizer { byName["minilm_tokenizer"]! }
}

@Suite("WordPiece tokenizer")
struct TokenizerTests {
    @Test("every fixture tokenizer loads")
    func loads() throws {
        for name in ["minilm_tokenizer", "cased_tokenizer", "stripcased_tokenizer", "addedtokens_tokenizer"] {
            _ = try WordPieceTokenizer(tokenizerJSON: Fixtures.url("\(name)/tokenizer.json"))
        }
        #expect(TokenizerCase.all.count > 400)
        let t = FixtureTokenizers.minilm
        #expect(t.vocabularySize == 30522 && t.unknownID == 100 && t.padID == 0)
        #expect(t.normalization == BERTNormalization(cleanText: true, handleChineseChars: true, stripAccents: nil, lowercase: true))
    }

    @Test("the reference's ids, token types, special mask and decoding", arguments: TokenizerCase.all)
    func reference(_ c: TokenizerCase) throws {
        let tok = try #require(FixtureTokenizers.byName[c.tokenizer])
        let e = try c.pair.map { p throws(ModelInputError) in try tok.encode(c.text, pair: p, maxLength: c.maxLength) }
            ?? tok.encode(c.text, maxLength: c.maxLength)
        #expect(e.ids == c.ids)
        #expect(e.tokenTypeIDs == c.typeIDs)
        #expect(e.specialTokensMask == c.specialMask)
        #expect(e.attentionMask == Array(repeating: 1, count: c.ids.count))
        if c.tokenizer != "addedtokens_tokenizer" {  // the reference shows stripped spaces in those tokens
            #expect(tok.tokens(for: e.ids).map { $0 ?? "?" } == c.tokens)
        }
        if let d = c.decoded { #expect(tok.decode(e.ids) == d) }
        if let d = c.decodedWithSpecials { #expect(tok.decode(e.ids, skipSpecialTokens: false) == d) }
    }

    @Test("minilm_golden.json: the 12 golden texts give the golden ids")
    func goldenIDs() throws {
        let root = try #require(try Fixtures.json("minilm_golden.json") as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        #expect(cases.count == 12)
        for c in cases {
            let text = c["text"] as! String
            let e = try FixtureTokenizers.minilm.encode(text, maxLength: 256)
            #expect(e.ids == c["input_ids"] as! [Int], "\(text)")
            #expect(FixtureTokenizers.minilm.tokens(for: e.ids).map { $0! } == c["tokens"] as! [String], "\(text)")
        }
    }

    @Test("canonically equivalent tokens are different tokens (bytes, not Swift String equality)")
    func canonicalEquivalence() throws {
        let t = try #require(FixtureTokenizers.byName["cased_tokenizer"])
        let composed = "Caf\u{E9}", decomposed = "Cafe\u{301}"
        #expect(composed == decomposed)  // Swift says equal...
        let a = try #require(t.id(for: composed)), b = try #require(t.id(for: decomposed))
        #expect(a != b)  // ...the vocabulary does not
        #expect(t.encode(composed).ids[1] == a && t.encode(decomposed).ids[1] == b)
        #expect(t.token(for: a)!.unicodeScalars.count == 4 && t.token(for: b)!.unicodeScalars.count == 5)
    }

    @Test("words over 100 scalars become one [UNK]; 100 is still split")
    func longWords() {
        let t = FixtureTokenizers.minilm
        #expect(t.pieceIDs(String(repeating: "a", count: 101)) == [t.unknownID])
        #expect(t.pieceIDs(String(repeating: "a", count: 100)).count > 1)
        // Scalars are counted after normalization: 101 "é" strip to 101 "e".
        #expect(t.pieceIDs(String(repeating: "\u{E9}", count: 101)) == [t.unknownID])
        // 60 decomposed "é" are 120 scalars before normalization, 60 after.
        #expect(t.pieceIDs(String(repeating: "e\u{301}", count: 60)) != [t.unknownID])
    }

    @Test("empty and whitespace-only text give just [CLS] [SEP]")
    func emptyText() {
        let t = FixtureTokenizers.minilm
        for text in ["", " ", "\n\t", "\u{200B}", "\u{0}"] {
            #expect(t.encode(text).ids == [101, 102], "\(text.unicodeScalars.map(\.value))")
        }
        #expect(t.decode([101, 102]) == "")
    }

    @Test("[MASK] typed in the text is one token; [mask] is not")
    func maskInText() {
        let t = FixtureTokenizers.minilm
        #expect(t.encode("a [MASK] b").ids == [101, 1037, 103, 1038, 102])
        #expect(t.encode("a[MASK]b").ids == [101, 1037, 103, 1038, 102])
        #expect(t.encode("a [mask] b").ids.count == 7)
    }

    @Test("Greek capital sigma lowercases to σ at the end of a word, as the reference (not ς)")
    func greekSigma() {
        let n = BERTNormalization(stripAccents: false, lowercase: true)
        #expect(n.normalize("ΟΔΟΣ") == "οδοσ")
        #expect("ΟΔΟΣ".lowercased() != "οδοσ" || true)  // whatever Swift's String does, the normalizer is per scalar
    }

    @Test("batches: padding to the longest with [PAD], mask 0 and type 0")
    func batches() throws {
        let t = FixtureTokenizers.minilm
        let es = try t.encode(["a b c", "a", ""], maxLength: 256, padding: .longest)
        #expect(es.map(\.count) == [5, 5, 5])
        #expect(es[1].ids == [101, 1037, 102, 0, 0])
        #expect(es[1].attentionMask == [1, 1, 1, 0, 0])
        #expect(es[2].attentionMask == [1, 1, 0, 0, 0] && es[2].length == 2)
        #expect(es[1].tokenTypeIDs == [0, 0, 0, 0, 0])
        let fixed = try t.encode(["a"], padding: .fixed(8))
        #expect(fixed[0].count == 8)
        let none = try t.encode(["a b", "a"], padding: .none)
        #expect(none.map(\.count) == [4, 3])
    }

    @Test("truncation keeps the specials")
    func truncation() throws {
        let t = FixtureTokenizers.minilm
        let e = try t.encode("one two three four five", maxLength: 4)
        #expect(e.ids == [101, 2028, 2048, 102])
        #expect(try t.encode("one two", maxLength: 2).ids == [101, 102])
        #expect(try t.encode("one", pair: "two", maxLength: 3).ids == [101, 102, 102])
    }

    @Test("a maxLength that leaves no room for the special tokens throws ModelInputError (was a precondition)")
    func truncationTooShort() {
        let t = FixtureTokenizers.minilm
        for (maxLength, pair) in [(1, false), (0, false), (-5, false), (2, true), (Int.min, true)] {
            let error = thrownError { () throws(ModelInputError) in
                if pair { _ = try t.encode("one", pair: "two", maxLength: maxLength) } else { _ = try t.encode("one two", maxLength: maxLength) }
            }
            #expect((error as? ModelInputError)?.message.contains("leaves no room for the \(pair ? 3 : 2) special tokens") == true, "maxLength \(maxLength), pair \(pair): \(String(describing: error))")
        }
        let error = thrownError { () throws(ModelInputError) in _ = try t.encode(["a", "b"], maxLength: 1) }
        #expect(error is ModelInputError)
    }

    @Test("vocab.txt gives the same tokenizer as tokenizer.json (BertTokenizerFast's conversion)")
    func vocabTxt() throws {
        let json = FixtureTokenizers.minilm
        // Write the vocabulary out as vocab.txt, in id order.
        let tokens = (0..<json.vocabularySize).map { json.token(for: $0)! }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-vocab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data((tokens.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("vocab.txt"))
        let txt = try WordPieceTokenizer(directory: dir)
        for c in TokenizerCase.all where c.tokenizer == "minilm_tokenizer" && c.pair == nil {
            #expect(try txt.encode(c.text, maxLength: c.maxLength).ids == c.ids, "\(c.testDescription)")
        }
        #expect(txt.decode(txt.encode("Hello, world!").ids) == "hello, world!")
    }

    @Test("bad tokenizer files throw errors naming the file")
    func badFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-badtok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ s: String) throws -> URL {
            let u = dir.appendingPathComponent("tokenizer.json")
            try Data(s.utf8).write(to: u)
            return u
        }
        let cases: [(String, String)] = [
            ("", "invalid JSON"),
            ("{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", "unsupported"),
            ("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}", "unknown token"),
            (
                "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"b\": 0, \"[UNK]\": 1}}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
                "share id"
            ),
            ("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"a\": 1}}}", "duplicate key"),
            ("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": -1}}}", "model.vocab"),
            (
                "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0}}, \"normalizer\": {\"type\": \"NFKC\"}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
                "normalizer"
            ),
            ("{\"model\": {\"vocab\": [1]}}", "model.vocab"),
            ("[]", "expected an object"),
        ]
        for (text, needle) in cases {
            let url = try write(text)
            let e = thrownError { _ = try WordPieceTokenizer(tokenizerJSON: url) }
            let err = try #require(e as? ModelFileError, "\(text)")
            #expect(err.description.contains(needle) && err.description.contains(url.path), "\(err)")
        }
        #expect((thrownError { _ = try WordPieceTokenizer(directory: dir.appendingPathComponent("nope")) } as? ModelFileError) != nil)
        // Invalid UTF-8 and a duplicate line in vocab.txt.
        let vocab = dir.appendingPathComponent("vocab.txt")
        try Data([0x61, 0x0A, 0xFF, 0x0A]).write(to: vocab)
        #expect((thrownError { _ = try WordPieceTokenizer(vocabularyFile: vocab) } as? ModelFileError)?.description.contains("UTF-8") == true)
        try Data("[UNK]\na\nb\na\n".utf8).write(to: vocab)
        #expect((thrownError { _ = try WordPieceTokenizer(vocabularyFile: vocab) } as? ModelFileError)?.description.contains("line 4") == true)
    }

    @Test("random text never crashes: encode, pairs, truncation and decode round")
    func fuzzText() throws {
        var rng = SeededRNG(seed: caseSeed(42))
        let t = FixtureTokenizers.minilm
        for _ in 0..<300 {
            let bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let text = String(decoding: bytes, as: UTF8.self)
            let e = try t.encode(text, maxLength: 8)
            #expect(e.count <= 8 && e.ids.first == 101 && e.ids.last == 102)
            _ = t.decode(try t.encode(text, pair: text, maxLength: 5).ids, skipSpecialTokens: false)
        }
    }

    @Test("corrupted tokenizer.json bytes load or throw ModelFileError, never crash")
    func fuzzFile() throws {
        let original = try Data(contentsOf: Fixtures.url("cased_tokenizer/tokenizer.json"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-fuzztok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("tokenizer.json")
        var rng = SeededRNG(seed: caseSeed(43))
        var loaded = 0
        for i in 0..<300 {
            var bytes = [UInt8](original)
            if i % 3 == 0 {
                bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))  // truncated
            } else {
                for _ in 0..<(1 + Int(rng.next() % 4)) {  // a few bytes changed
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            try Data(bytes).write(to: url)
            do {
                let t = try WordPieceTokenizer(tokenizerJSON: url)
                _ = t.decode(t.encode("Café über [MASK] 東京").ids)
                loaded += 1
            } catch is ModelFileError {
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        #expect(loaded < 300)
    }

    @Test("a vocabulary built in code")
    func vocabularyInCode() throws {
        let t = try WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a"])
        #expect(t.tokenize("Unaffable!") == ["un", "##aff", "##able", "[UNK]"])
        #expect(t.encode("unaffable a").ids == [2, 5, 6, 7, 8, 3])
        #expect(t.decode([2, 5, 6, 7, 8, 3]) == "unaffable a")
    }
}
