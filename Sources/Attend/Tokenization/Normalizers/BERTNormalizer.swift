import Foundation

// BERT's text normalization and pre-tokenization, as the Hugging Face `tokenizers` library
// (the reference: `BertNormalizer` and `BertPreTokenizer`, tokenizers 0.23) does them:
//
//   1. clean text: drop U+0000, U+FFFD and "other" characters (general categories Cc, Cf, Co,
//      Cs, except tab, LF and CR; unassigned code points are kept), map whitespace to ' ';
//   2. CJK: put spaces around every character of the CJK ideograph blocks (the reference's
//      ranges, which differ from the Python tokenizer's in Extension E);
//   3. strip accents (when `stripAccents`, which defaults to `lowercase`): NFD, then drop
//      non-spacing marks (Mn) — applied to the whole text before lowercasing;
//   4. lowercase: each scalar's full lowercase mapping, context free (so final Σ becomes σ,
//      not ς, as in the reference; Python's `str.lower` differs);
//   5. split on whitespace and isolate punctuation (ASCII punctuation and categories P*).
//
// Everything works on UTF-8 bytes; ASCII takes a fast path.

/// The settings of BERT's normalizer (`BertNormalizer` in tokenizer.json, or the
/// `do_lower_case`, `strip_accents` and `tokenize_chinese_chars` of tokenizer_config.json).
public struct BERTNormalization: Sendable, Equatable {
    /// Remove control and format characters, map whitespace to a space.
    public var cleanText: Bool
    /// Put spaces around CJK ideographs, so each becomes a word.
    public var handleChineseChars: Bool
    /// Decompose (NFD) and drop non-spacing marks; nil means "same as `lowercase`".
    public var stripAccents: Bool?
    /// Lowercase every character.
    public var lowercase: Bool

    /// Settings; the defaults are those of an uncased BERT.
    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// Whether accents are stripped: `stripAccents`, or `lowercase` when that is nil.
    public var stripsAccents: Bool { stripAccents ?? lowercase }

    /// `text` normalized (steps 1-4 above), as a String. Cost: O(text); non-ASCII runs go
    /// through Foundation's NFD when accents are stripped.
    public func normalize(_ text: String) -> String {
        var out: [UInt8] = []
        var t = text
        t.withUTF8 { normalize($0, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the normalized form of the UTF-8 `input` (valid UTF-8) to `out`.
    func normalize(_ input: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        var pending: [Unicode.Scalar] = []  // non-ASCII scalars awaiting NFD / lowercasing
        let strip = stripsAccents
        func flush(_ out: inout [UInt8]) {
            if pending.isEmpty { return }
            if strip {
                // NFD, then drop the reference's non-spacing marks. A character the reference
                // does not decompose (its Unicode version predates the decomposition) is a
                // starter, so the run is decomposed in pieces around it.
                var s = String.UnicodeScalarView()
                func decomposeRun(_ out: inout [UInt8]) {
                    if s.isEmpty { return }
                    for d in String(s).decomposedStringWithCanonicalMapping.unicodeScalars
                    where !inRanges(d.value, referenceNonspacingMarkRanges) {
                        appendCased(d, &out)
                    }
                    s.removeAll()
                }
                for c in pending {
                    if referenceUndecomposed.contains(c.value) {
                        decomposeRun(&out)
                        appendCased(c, &out)
                    } else {
                        s.append(c)
                    }
                }
                decomposeRun(&out)
            } else {
                for d in pending { appendCased(d, &out) }
            }
            pending.removeAll(keepingCapacity: true)
        }
        func appendCased(_ s: Unicode.Scalar, _ out: inout [UInt8]) {
            if lowercase && s.value >= 0x80 {
                let m = s.properties.lowercaseMapping
                for l in m.unicodeScalars { appendUTF8(l.value, to: &out) }
            } else if lowercase && s.value >= 0x41 && s.value <= 0x5A {
                out.append(UInt8(s.value + 32))
            } else {
                appendUTF8(s.value, to: &out)
            }
        }
        var i = 0
        let n = input.count
        while i < n {
            let b = input[i]
            if b < 0x80 {
                flush(&out)
                i += 1
                if cleanText {
                    if b == 0x09 || b == 0x0A || b == 0x0D || b == 0x20 {
                        out.append(0x20)
                        continue
                    }
                    if b < 0x20 || b == 0x7F { continue }  // Cc (U+000B, U+000C included)
                }
                out.append(lowercase && b >= 0x41 && b <= 0x5A ? b + 32 : b)
                continue
            }
            let (v, len) = decodeUTF8(input, at: i)
            i += len
            let c = Unicode.Scalar(v)!
            if cleanText {
                if inRanges(v, referenceRemovedRanges) { continue }
                if isUnicodeWhitespace(v) {
                    flush(&out)
                    out.append(0x20)
                    continue
                }
            }
            if handleChineseChars && isCJKIdeograph(v) {
                flush(&out)
                out.append(0x20)
                pending.append(c)
                flush(&out)
                out.append(0x20)
                continue
            }
            pending.append(c)
        }
        flush(&out)
    }
}

/// Whitespace as the reference sees it: the White_Space property (stable across Unicode
/// versions, so written out here).
@inline(__always)
func isUnicodeWhitespace(_ v: UInt32) -> Bool {
    switch v {
    case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
    default: return false
    }
}

/// The CJK ideograph ranges of the reference's `is_chinese_char` (tokenizers, Rust). Note
/// U+2B820...U+2B91F is not included there (the Python BERT tokenizer includes it).
@inline(__always)
func isCJKIdeograph(_ v: UInt32) -> Bool {
    switch v {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
        0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
        return true
    default:
        return false
    }
}

/// BERT's punctuation: ASCII punctuation (which includes `$+<=>^`|~`, symbols in Unicode) or
/// a Unicode punctuation category (Pc, Pd, Ps, Pe, Pi, Pf, Po) in the reference's tables.
@inline(__always)
func isBertPunctuation(_ v: UInt32) -> Bool {
    if v < 0x80 {
        return (v >= 33 && v <= 47) || (v >= 58 && v <= 64) || (v >= 91 && v <= 96) || (v >= 123 && v <= 126)
    }
    return inRanges(v, referencePunctuationRanges)
}

/// Decodes the scalar starting at `i` of valid UTF-8: (value, byte length).
@inline(__always)
func decodeUTF8(_ s: UnsafeBufferPointer<UInt8>, at i: Int) -> (UInt32, Int) {
    let b0 = UInt32(s[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(s[i + 1] & 0x3F), 2) }
    if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | UInt32(s[i + 1] & 0x3F) << 6 | UInt32(s[i + 2] & 0x3F), 3) }
    return ((b0 & 0x07) << 18 | UInt32(s[i + 1] & 0x3F) << 12 | UInt32(s[i + 2] & 0x3F) << 6 | UInt32(s[i + 3] & 0x3F), 4)
}
