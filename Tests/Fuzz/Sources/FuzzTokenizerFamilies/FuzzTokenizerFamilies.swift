// libFuzzer target: the tokenizer.json pipeline of every family, SentencePiece model files,
// and text through the golden tokenizers of Tests/TokenizerTests.
//
// The first byte of an input chooses what the rest is (byte % 3):
//  0: tokenizer.json bytes, loaded with `PipelineTokenizer(tokenizerJSONBytes:)` (Unigram,
//     BPE, byte-level BPE, WordLevel; normalizers incl. Precompiled charsmaps);
//  1: a SentencePiece model file (`.model` / `.spm`: protobuf), loaded with
//     `SentencePieceTokenizer(modelBytes:)`;
//  2: text (invalid UTF-8 decoded with U+FFFD), encoded by the golden folder chosen by bits 2-3
//     of the first byte (t5_unigram, marian_spm, llama_bpe, gpt2_bytelevel).
// A file must load or throw `ModelFileError` with a one-line message naming it; a loaded
// tokenizer encodes sample texts. Every encoding must be consistent (equal-length arrays, ids
// below `idLimit`, a token for every id); decoding (whole, skipping specials or not, and
// streamed with IncrementalDecoder) of the ids and of random ids must not crash, and the
// streamed text must equal the whole decode.
import Attend
import Foundation

func fail(_ message: String) -> Never {
    fatalError("FuzzTokenizerFamilies invariant: \(message)")
}

let fixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("TokenizerTests/Fixtures")

// LeakSanitizer's switches (present in every -sanitize=address build). The golden tokenizers
// live for the whole run in a global; Swift stores enum case tags in the spare bits of
// pointers inside them (the pipeline's stages are enums), which LeakSanitizer cannot follow,
// so blocks they own would be reported as leaked. Allocations made while it is disabled are
// never reported; everything a fuzz input allocates is still checked.
@_silgen_name("__lsan_disable") func lsanDisable()
@_silgen_name("__lsan_enable") func lsanEnable()

let golden: [any Tokenizer] = {
    lsanDisable()
    defer { lsanEnable() }
    return ["t5_unigram", "marian_spm", "llama_bpe", "gpt2_bytelevel"].map { name in
        do {
            return try loadTokenizer(directory: fixtures.appendingPathComponent(name))
        } catch {
            fatalError("FuzzTokenizerFamilies: cannot load the fixture \(name): \(error)")
        }
    }
}()

let samples = [
    "", " ", "Hello, WORLD! </s> <s> <unk> <extra_id_0> héllo ünï 中文字 ▁▁ <0x41> <|endoftext|>",
    "e\u{301}\u{0} \u{7}\t\r\n\u{200B}\u{FEFF}ǅ ß İ Σ Ⅷ ﬁ 𝔘 😀👍🏽 👨‍👩‍👧 \u{10FFFF}",
    String(repeating: "a", count: 300) + " " + String(repeating: "ab", count: 100),
]

func exercise(_ t: any Tokenizer, _ text: String, strict: Bool) {
    for add in [true, false] {
        let e = t.encode(text, addSpecialTokens: add)
        guard e.ids.count == e.tokenTypeIDs.count, e.ids.count == e.attentionMask.count,
            e.ids.count == e.specialTokensMask.count
        else { fail("encoding arrays of different lengths") }
        for id in e.ids where id < 0 || id >= t.idLimit { fail("id \(id) outside 0..<\(t.idLimit)") }
        if strict { for id in e.ids where t.token(for: id) == nil { fail("id \(id) has no token") } }
        let whole = t.decode(e.ids, skipSpecialTokens: true)
        _ = t.decode(e.ids, skipSpecialTokens: false)
        var d = IncrementalDecoder(tokenizer: t)
        let streamed = d.append(contentsOf: e.ids) + d.finish()
        if strict && streamed != whole { fail("streamed \(streamed.debugDescription) != decoded \(whole.debugDescription)") }
    }
    _ = t.encode(text, pair: text, addSpecialTokens: true)
}

func checkMessage(_ e: ModelFileError, path: String) {
    guard e.path == path, e.description.hasPrefix(path + ": "), !e.description.contains("\n") else {
        fail("bad message: \(e.description)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let mode = data[0] % 3
    let rest = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch mode {
    case 0, 1:
        let path = mode == 0 ? "fuzz/tokenizer.json" : "fuzz/tokenizer.model"
        let t: any Tokenizer
        do {
            t =
                mode == 0
                ? try PipelineTokenizer(tokenizerJSONBytes: rest, path: path)
                : try SentencePieceTokenizer(modelBytes: rest, path: path)
        } catch let e as ModelFileError {
            checkMessage(e, path: path)
            return 0
        } catch {
            fail("threw \(type(of: error)), not ModelFileError: \(error)")
        }
        for s in samples { exercise(t, s, strict: false) }
        _ = t.decode(Array(-2...(min(t.idLimit, 300) + 2)), skipSpecialTokens: false)
    default:
        let t = golden[Int(data[0] >> 2) % golden.count]
        exercise(t, String(decoding: rest, as: UTF8.self), strict: true)
        // The bytes read as little-endian 16-bit ids, decoded.
        var ids: [Int] = []
        var i = 0
        while i + 1 < rest.count {
            ids.append(Int(rest[i]) | Int(rest[i + 1]) << 8)
            i += 2
        }
        _ = t.decode(ids, skipSpecialTokens: true)
        var d = IncrementalDecoder(tokenizer: t, skipSpecialTokens: false)
        _ = d.append(contentsOf: ids)
        _ = d.finish()
    }
    return 0
}
