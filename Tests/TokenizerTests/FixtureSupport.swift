// Locating the fixtures of TokenizerTests: the four golden tokenizer folders (transformers
// 5.24, tokenizers 0.23.3, sentencepiece 0.2.3) with tokenizer_golden.json, and the harder
// cases of scripts/make_tokenizer_family_fixtures.py.
import Foundation
import Testing

@testable import Attend

enum Fixtures {
    /// The bundled Fixtures folder.
    static let root: URL = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("TokenizerTests: the Fixtures resource folder is missing from the test bundle")
        }
        return url
    }()

    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    /// A JSON fixture parsed with Foundation (test data only; the library has its own reader).
    static func json(_ relative: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url(relative)), options: [.fragmentsAllowed])
    }
}

/// One expected encoding: a folder, a text, transformers' ids, tokens and decoded text.
struct GoldenCase: CustomTestStringConvertible, Sendable {
    let folder: String
    let text: String
    let ids: [Int]
    let tokens: [String]
    let decoded: String
    let decodedWithSpecials: String?

    var testDescription: String { "\(folder): \"\(shownText(text))\"" }

    /// The cases of a golden file: `{"cases": {folder: [{text, ids, tokens, decoded}]}}`.
    static func load(_ file: String) -> [GoldenCase] {
        guard let root = try? Fixtures.json(file) as? [String: Any],
            let cases = root["cases"] as? [String: [[String: Any]]]
        else { return [] }
        var out: [GoldenCase] = []
        for folder in cases.keys.sorted() {
            for c in cases[folder]! {
                out.append(
                    GoldenCase(
                        folder: folder, text: c["text"] as! String, ids: c["ids"] as! [Int],
                        tokens: c["tokens"] as! [String], decoded: c["decoded"] as! String,
                        decodedWithSpecials: c["decoded_with_specials"] as? String))
            }
        }
        return out
    }
}

/// The first 40 scalars of a text for a test's name, control characters escaped.
func shownText(_ text: String) -> String {
    text.unicodeScalars.prefix(40).map { s in
        s.value < 0x20 || s.value == 0x7F ? "\\u{\(String(s.value, radix: 16))}" : String(s)
    }.joined()
}

/// Tokenizers of the fixture folders, each loaded once (a folder that fails to load is
/// loaded again by `get`, so its error is reported by the test that needs it).
enum FolderTokenizers {
    static let cache: [String: any Tokenizer] = {
        var out: [String: any Tokenizer] = [:]
        let folders = Set(GoldenCase.load("tokenizer_golden.json").map(\.folder) + GoldenCase.load("tokenizer_hard.json").map(\.folder))
        for folder in folders {
            if let t = try? loadTokenizer(directory: Fixtures.url(folder)) { out[folder] = t }
        }
        return out
    }()

    static func get(_ folder: String) throws -> any Tokenizer {
        if let t = cache[folder] { return t }
        return try loadTokenizer(directory: Fixtures.url(folder))
    }
}

/// Checks one case: ids, tokens, the decode without special tokens, and the decode with
/// them when the case has it.
func expectReferenceOutput(_ c: GoldenCase) throws {
    let t = try FolderTokenizers.get(c.folder)
    let e = t.encode(c.text)
    #expect(e.ids == c.ids)
    #expect(e.ids.map { t.token(for: $0) ?? "?" } == c.tokens)
    #expect(t.decode(c.ids, skipSpecialTokens: true) == c.decoded)
    if let d = c.decodedWithSpecials { #expect(t.decode(c.ids, skipSpecialTokens: false) == d) }
    #expect(e.attentionMask == Array(repeating: 1, count: e.ids.count))
}
