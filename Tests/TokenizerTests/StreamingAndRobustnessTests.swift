// Streaming decoding (IncrementalDecoder), input that must never trap (NUL, huge words,
// invalid UTF-8 bytes, random ids), and the one-line errors of unsupported or broken files.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Streaming decode and robustness")
struct StreamingAndRobustnessTests {
    static let folders = [
        "t5_unigram", "marian_spm", "llama_bpe", "gpt2_bytelevel", "extra/roberta_bytelevel",
        "extra/unigram_bytefallback", "extra/bpe_suffix",
    ]

    static let texts =
        GoldenCase.load("tokenizer_hard.json").filter { $0.folder == "t5_unigram" }.map(\.text)
        + ["東京は日本の首都です。😀👍🏽", "Café déjà vu — naïve résumé!"]

    @Test("streamed pieces concatenate to decode(ids), one id at a time", arguments: folders)
    func streaming(_ folder: String) throws {
        let t = try FolderTokenizers.get(folder)
        for text in Self.texts {
            let ids = t.encode(text).ids
            var d = IncrementalDecoder(tokenizer: t)
            var streamed = ""
            for id in ids {
                let piece = d.append(id)
                #expect(!piece.unicodeScalars.contains("\u{FFFD}") || text.unicodeScalars.contains("\u{FFFD}"))
                streamed += piece
            }
            streamed += d.finish()
            #expect(streamed == t.decode(ids, skipSpecialTokens: true), "\(folder): \(shownText(text))")
        }
    }

    @Test("a byte-level character split over tokens is held back until complete")
    func heldBack() throws {
        let t = try FolderTokenizers.get("gpt2_bytelevel")
        let ids = t.encode("東").ids
        #expect(ids.count > 1)  // 東 is three bytes, not one token in this small vocabulary
        var d = IncrementalDecoder(tokenizer: t)
        for id in ids.dropLast() { #expect(d.append(id) == "") }
        #expect(d.append(ids.last!) == "東")
        #expect(d.finish() == "")
    }

    @Test("NUL, 100k-character words and invalid UTF-8 never trap", arguments: folders)
    func hostile(_ folder: String) throws {
        let t = try FolderTokenizers.get(folder)
        let inputs: [[UInt8]] = [
            [0, 0, 0x61, 0],
            Array(String(repeating: "a", count: 100_000).utf8),
            Array(String(repeating: "東", count: 20_000).utf8),
            [0xFF, 0xFE, 0x61, 0xC3, 0x28, 0xED, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80, 0xE2, 0x82],
            Array("<extra_id_0></s><s><unk><|endoftext|>\u{2581}\u{2581}".utf8),
        ]
        for bytes in inputs {
            let e = t.encode(bytes: bytes)
            #expect(e.ids.allSatisfy { $0 >= 0 && $0 < t.idLimit })
            _ = t.decode(e.ids, skipSpecialTokens: false)
        }
        var rng = SystemRandomNumberGenerator()
        let ids = (0..<500).map { _ in Int.random(in: -5...(t.idLimit + 5), using: &rng) }
        _ = t.decode(ids, skipSpecialTokens: true)
        var d = IncrementalDecoder(tokenizer: t)
        _ = d.append(contentsOf: ids)
        _ = d.finish()
    }

    @Test("byte-level and byte-fallback tokenizers round-trip long and odd text exactly")
    func roundTrip() throws {
        let texts = [
            String(repeating: "a", count: 100_000), String(repeating: "ab東😀 ", count: 5_000),
            "x\u{0}y\u{1F}z \t\n e\u{301} \u{10FFFF}",
        ]
        for folder in ["gpt2_bytelevel", "extra/roberta_bytelevel", "llama_bpe"] {
            let t = try FolderTokenizers.get(folder)
            for text in texts {
                let decoded = t.decode(t.encode(text).ids, skipSpecialTokens: true)
                // RoBERTa's add_prefix_space adds a space the decoder keeps.
                #expect(decoded == (folder.hasSuffix("roberta_bytelevel") ? " " + text : text), "\(folder): \(shownText(text))")
            }
        }
    }

    @Test("an unsupported component names the file, the key and the type in one line")
    func unsupported() throws {
        let base = try String(contentsOf: Fixtures.url("t5_unigram/tokenizer.json"), encoding: .utf8)
        let cases: [(String, String, String)] = [
            ("\"type\": \"Precompiled\"", "\"type\": \"Nmt\"", "normalizer: normalizer type \"Nmt\""),
            (
                "\"type\": \"WhitespaceSplit\"", "\"type\": \"UnicodeScripts\"",
                "pre_tokenizer.pretokenizers[0]: pre-tokenizer type \"UnicodeScripts\""
            ),
            ("\"type\": \"Unigram\"", "\"type\": \"WordPieceX\"", "model: model type \"WordPieceX\""),
            ("\"type\": \"TemplateProcessing\"", "\"type\": \"Fancy\"", "post_processor: post-processor type \"Fancy\""),
        ]
        for (from, to, expected) in cases {
            let bytes = Array(base.replacingOccurrences(of: from, with: to).utf8)
            do {
                _ = try PipelineTokenizer(tokenizerJSONBytes: bytes, path: "x/tokenizer.json")
                Issue.record("\(to) was accepted")
            } catch let e as ModelFileError {
                #expect(e.description.hasPrefix("x/tokenizer.json: unsupported: \(expected)"), "\(e.description)")
                #expect(!e.description.contains("\n"))
            }
        }
    }

    @Test("a Precompiled charsmap whose replacements are not UTF-8 is refused (they would corrupt the text)")
    func badCharsmapBlob() throws {
        let json = try String(contentsOf: Fixtures.url("t5_unigram/tokenizer.json"), encoding: .utf8)
        let start = try #require(json.range(of: "\"precompiled_charsmap\": \""))
        let end = try #require(json[start.upperBound...].firstIndex(of: "\""))
        var charsmap = try #require(Data(base64Encoded: String(json[start.upperBound..<end])))
        let trie = Int(charsmap[0]) | Int(charsmap[1]) << 8 | Int(charsmap[2]) << 16 | Int(charsmap[3]) << 24
        charsmap[4 + trie + 1] = 0xFF
        let bad = json.replacingCharacters(in: start.upperBound..<end, with: charsmap.base64EncodedString())
        do {
            _ = try PipelineTokenizer(tokenizerJSONBytes: Array(bad.utf8), path: "t/tokenizer.json")
            Issue.record("a charsmap with invalid UTF-8 loaded")
        } catch let e as ModelFileError {
            #expect(
                e.description.hasPrefix("t/tokenizer.json: normalizer.precompiled_charsmap: the replacement strings are not valid UTF-8"),
                "\(e.description)")
        }
    }

    @Test("a malformed SentencePiece file throws ModelFileError naming the field")
    func badModelFile() throws {
        let good = try Array(Data(contentsOf: Fixtures.url("marian_spm/source.spm")))
        _ = try SentencePieceModel(bytes: good)
        var rng = SeededRNG(seed: 7)
        for i in 0..<300 {
            var b = good
            switch i % 3 {
            case 0: b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
            case 1:
                for _ in 0..<8 { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            default: b = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            do {
                let m = try SentencePieceModel(bytes: b, path: "bad.spm")
                let p = try SentencePieceProcessor(model: m, path: "bad.spm")
                _ = p.encode(Array("Hello wörld 東京 \u{0}".utf8))
                _ = p.decode(pieces: m.pieces)
            } catch let e as ModelFileError {
                #expect(e.path == "bad.spm")
            }
        }
    }
}
