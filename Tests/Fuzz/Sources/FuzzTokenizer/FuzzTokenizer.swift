// libFuzzer target: the WordPiece tokenizer's file loaders and its encoder.
//
// The first byte of an input chooses what the rest is (byte % 4):
//  0: tokenizer.json bytes, loaded with `WordPieceTokenizer(tokenizerJSONBytes:)`;
//  1: vocab.txt bytes, loaded with `WordPieceTokenizer(vocabularyFileBytes:)` (bits 2-7 of
//     the first byte choose the normalizer settings);
//  2: text, encoded by the added-tokens fixture tokenizer (lowercasing, added tokens with
//     lstrip / rstrip / single-word rules, a normalized added token);
//  3: text, encoded by the cased fixture tokenizer (no lowercasing, accents kept).
// In the text modes the second byte is a truncation length (0: none) and a 0xFF byte (never
// part of valid UTF-8) splits the text into a pair; invalid UTF-8 is decoded with U+FFFD.
// A file must load or throw `ModelFileError`; a loaded tokenizer encodes sample texts. Every
// encoding must be consistent: equal-length arrays, ids below `idLimit`, type ids below
// `typeIDLimit`, length within `maxLength`; decoding must not crash.
//
// The two fixed tokenizers are Tests/BERTTests/Fixtures/{addedtokens,cased}_tokenizer,
// located from this file's path. Build and run: see ../../Package.swift.
import Attend
import Foundation

func fail(_ message: String) -> Never {
    fatalError("FuzzTokenizer invariant: \(message)")
}

let fixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("BERTTests/Fixtures")

func fixture(_ name: String) -> WordPieceTokenizer {
    let url = fixtures.appendingPathComponent(name).appendingPathComponent("tokenizer.json")
    do {
        return try WordPieceTokenizer(tokenizerJSON: url)
    } catch {
        fatalError("FuzzTokenizer: cannot load the fixture \(url.path): \(error)")
    }
}

let addedTokensTokenizer = fixture("addedtokens_tokenizer")
let casedTokenizer = fixture("cased_tokenizer")

/// Texts encoded by every tokenizer a fuzzed file loads.
let samples = [
    "", " ", "Hello, WORLD! [CLS] héllo ünï <lstrip> x <rstrip> 中文字 ##ab [UNK] [MASK]",
    "e\u{301}\u{0} \u{7}\t\r\n\u{200B}\u{FEFF}ǅ ß İ Σ Ⅷ ﬁ 𝔘 😀👍🏽 \u{10FFFF}",
    String(repeating: "a", count: 120) + " " + String(repeating: "ab", count: 60),
]

func checkEncoding(_ e: Encoding, _ t: WordPieceTokenizer, pair: Bool, maxLength: Int?, strict: Bool) {
    guard e.ids.count == e.tokenTypeIDs.count, e.ids.count == e.attentionMask.count,
        e.ids.count == e.specialTokensMask.count
    else {
        fail("encoding arrays of different lengths: \(e)")
    }
    if let maxLength, e.count > maxLength { fail("\(e.count) tokens for maxLength \(maxLength)") }
    let limit = t.idLimit, typeLimit = t.typeIDLimit(pair: pair)
    for id in e.ids where id < 0 || id >= limit { fail("id \(id) outside 0..<\(limit)") }
    for id in e.tokenTypeIDs where id < 0 || id >= typeLimit { fail("type id \(id) outside 0..<\(typeLimit)") }
    for m in e.attentionMask where m != 1 { fail("attention mask \(m) in an unpadded encoding") }
    for m in e.specialTokensMask where m != 0 && m != 1 { fail("special tokens mask \(m)") }
    if strict {
        for id in e.ids where t.token(for: id) == nil { fail("id \(id) has no token") }
    }
    _ = t.decode(e.ids)
    _ = t.decode(e.ids, skipSpecialTokens: false)
}

/// `body`'s encoding; a thrown error is an invariant failure here (every maxLength passed
/// leaves room for the special tokens).
func encoded<T>(_ body: () throws(ModelInputError) -> T) -> T {
    do { return try body() } catch { fail("encode threw for a maxLength that leaves room for the specials: \(error)") }
}

func exercise(_ t: WordPieceTokenizer, _ text: String, pair: String?, maxLength: Int?, strict: Bool) {
    let single = maxLength.map { max($0, t.specialTokenCount(pair: false)) }
    checkEncoding(encoded { () throws(ModelInputError) in try t.encode(text, maxLength: single) }, t, pair: false, maxLength: single, strict: strict)
    _ = t.tokenize(text)
    if let pair {
        let m = maxLength.map { max($0, t.specialTokenCount(pair: true)) }
        checkEncoding(encoded { () throws(ModelInputError) in try t.encode(text, pair: pair, maxLength: m) }, t, pair: true, maxLength: m, strict: strict)
        var batch = encoded { () throws(ModelInputError) in try t.encode([text, pair], maxLength: single) }
        guard batch.count == 2, batch[0].count == batch[1].count else { fail("batch not padded to one length") }
        t.pad(&batch, .fixed(batch[0].count + 3))
        guard batch.allSatisfy({ $0.count == batch[0].count }) else { fail("fixed padding") }
    }
}

func checkMessage(_ e: ModelFileError, path: String) {
    guard e.path == path, e.description.hasPrefix(path + ": "), !e.description.contains("\n") else {
        fail("bad message: \(e.description)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let mode = data[0] % 4
    let rest = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch mode {
    case 0, 1:
        let path = mode == 0 ? "fuzz/tokenizer.json" : "fuzz/vocab.txt"
        let t: WordPieceTokenizer
        do {
            if mode == 0 {
                t = try WordPieceTokenizer(tokenizerJSONBytes: rest, path: path)
            } else {
                let b = data[0] >> 2
                let strip: Bool? = b & 0b1100 == 0 ? nil : b & 0b100 != 0
                let n = BERTNormalization(
                    cleanText: b & 1 != 0, handleChineseChars: b & 2 != 0, stripAccents: strip, lowercase: b & 16 != 0)
                t = try WordPieceTokenizer(vocabularyFileBytes: rest, normalization: n, path: path)
            }
        } catch let e as ModelFileError {
            checkMessage(e, path: path)
            return 0
        } catch {
            fail("threw \(type(of: error)), not ModelFileError: \(error)")
        }
        for (i, s) in samples.enumerated() {
            exercise(t, s, pair: samples[(i + 1) % samples.count], maxLength: i == 2 ? 7 : nil, strict: false)
        }
    default:
        let t = mode == 2 ? addedTokensTokenizer : casedTokenizer
        guard rest.count >= 1 else { return 0 }
        let maxLength = rest[0] == 0 ? nil : Int(rest[0])
        let body = rest[1...]
        let text: String, pair: String?
        if let sep = body.firstIndex(of: 0xFF) {
            text = String(decoding: body[..<sep], as: UTF8.self)
            pair = String(decoding: body[(sep + 1)...], as: UTF8.self)
        } else {
            text = String(decoding: body, as: UTF8.self)
            pair = nil
        }
        exercise(t, text, pair: pair, maxLength: maxLength, strict: true)
    }
    return 0
}
