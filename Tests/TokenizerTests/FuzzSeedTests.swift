// The seeds of the libFuzzer target FuzzTokenizerFamilies (Tests/Fuzz/Corpus, made by
// Tests/Fuzz/make_family_corpus.py), replayed here with the harness's rules, plus seeded
// random mutations of them: a file loads or throws a one-line ModelFileError naming it, and
// a loaded tokenizer encodes and decodes anything without trapping.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Tokenizer families: fuzz seeds and mutations")
struct FuzzSeedTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus/FuzzTokenizerFamilies")

    static func seeds() -> [(String, [UInt8])] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []
        return names.sorted().compactMap { n in
            (try? Data(contentsOf: corpus.appendingPathComponent(n))).map { (n, Array($0)) }
        }
    }

    /// The harness's file modes: 0 tokenizer.json, 1 SentencePiece model. Returns whether it loaded.
    @discardableResult
    static func replay(_ input: [UInt8]) -> Bool {
        guard let first = input.first, first % 3 < 2 else { return false }
        let path = first % 3 == 0 ? "fuzz/tokenizer.json" : "fuzz/tokenizer.model"
        let rest = Array(input.dropFirst())
        let t: any Tokenizer
        do {
            t =
                first % 3 == 0
                ? try PipelineTokenizer(tokenizerJSONBytes: rest, path: path)
                : try SentencePieceTokenizer(modelBytes: rest, path: path)
        } catch let e as ModelFileError {
            #expect(e.path == path && e.description.hasPrefix(path + ": ") && !e.description.contains("\n"), "\(e.description)")
            return false
        } catch {
            Issue.record("threw \(type(of: error)), not ModelFileError: \(error)")
            return false
        }
        for text in ["", "Hello, world! </s> café 東京 😀 \u{0}", String(repeating: "ab ", count: 200)] {
            let e = t.encode(text)
            #expect(e.ids.allSatisfy { $0 >= 0 && $0 < t.idLimit })
            let whole = t.decode(e.ids, skipSpecialTokens: false)
            var d = IncrementalDecoder(tokenizer: t, skipSpecialTokens: false)
            _ = d.append(contentsOf: e.ids) + d.finish()
            _ = whole
        }
        _ = t.decode(Array(-2...(min(t.idLimit, 300) + 2)), skipSpecialTokens: true)
        return true
    }

    @Test("every file seed loads or throws a one-line ModelFileError; the valid ones load")
    func seedsReplay() {
        let seeds = Self.seeds()
        #expect(seeds.count >= 30)
        for (name, bytes) in seeds where !name.hasPrefix("text-") {
            let loaded = Self.replay(bytes)
            let valid = [
                "json-unigram-precompiled", "json-bytelevel-bpe", "json-llama-bpe", "json-bpe-suffix",
                "json-wordlevel", "json-unigram-no-unk", "spm-unigram", "spm-bpe-bytefallback",
            ].contains(name)
            #expect(loaded == valid, "\(name): loaded \(loaded)")
        }
    }

    @Test("2000 seeded mutations of the file seeds never trap")
    func mutations() {
        let seeds = Self.seeds().filter { !$0.0.hasPrefix("text-") }.map(\.1)
        var rng = SeededRNG(seed: 12)
        for _ in 0..<2000 {
            var b = seeds[Int(rng.next() % UInt64(seeds.count))]
            switch rng.next() % 4 {
            case 0: b = Array(b.prefix(1 + Int(rng.next() % UInt64(b.count))))
            case 1:
                for _ in 0..<(1 + Int(rng.next() % 8)) where b.count > 1 {
                    b[1 + Int(rng.next() % UInt64(b.count - 1))] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 2:
                let i = 1 + Int(rng.next() % UInt64(max(1, b.count - 1)))
                b.insert(contentsOf: (0..<Int(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: min(i, b.count))
            default:
                let i = 1 + Int(rng.next() % UInt64(max(1, b.count - 1))), n = Int(rng.next() % 64)
                if i < b.count { b.removeSubrange(i..<min(b.count, i + n)) }
            }
            Self.replay(b)
        }
    }
}
