import Foundation

/// A tokenizer.json normalizer: rewrites the text before it is split, byte for byte as the
/// reference does (offsets are not tracked). Cost: linear in the text for every kind except
/// `Precompiled` (times its longest key) and the Unicode forms (Foundation's).
indirect enum Normalizer: Sendable {
    case bert(BERTNormalization)
    case precompiled(PrecompiledCharsmap)
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case stripAccents
    /// Every occurrence of a literal string replaced.
    case replace(pattern: [UInt8], content: [UInt8])
    /// Whitespace removed at the start and/or end.
    case strip(left: Bool, right: Bool)
    case prepend([UInt8])
    case sequence([Normalizer])

    func apply(_ text: [UInt8]) -> [UInt8] {
        switch self {
        case .bert(let n):
            var out: [UInt8] = []
            text.withUnsafeBufferPointer { n.normalize($0, into: &out) }
            return out
        case .precompiled(let c): return c.normalizeLikeTokenizers(text)
        case .nfc: return Array(String(decoding: text, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
        case .nfd: return Array(String(decoding: text, as: UTF8.self).decomposedStringWithCanonicalMapping.utf8)
        case .nfkc: return Array(String(decoding: text, as: UTF8.self).precomposedStringWithCompatibilityMapping.utf8)
        case .nfkd: return Array(String(decoding: text, as: UTF8.self).decomposedStringWithCompatibilityMapping.utf8)
        case .lowercase:
            var out = ""
            for s in String(decoding: text, as: UTF8.self).unicodeScalars { out += s.properties.lowercaseMapping }
            return Array(out.utf8)
        case .stripAccents:
            var out = String.UnicodeScalarView()
            // Every mark (Mn, Mc, Me), as the reference's `is_combining_mark`.
            for s in String(decoding: text, as: UTF8.self).unicodeScalars {
                switch s.properties.generalCategory {
                case .nonspacingMark, .spacingMark, .enclosingMark: continue
                default: out.append(s)
                }
            }
            return Array(String(out).utf8)
        case .replace(let pattern, let content): return replaceAll(text, pattern, content)
        case .strip(let left, let right):
            var start = 0, end = text.count
            text.withUnsafeBufferPointer { t in
                if left {
                    while start < end {
                        let (v, n) = decodeUTF8(t, at: start)
                        guard isUnicodeWhitespace(v) else { break }
                        start += n
                    }
                }
                if right {
                    while end > start {
                        var p = end - 1
                        while p > start && t[p] & 0xC0 == 0x80 { p -= 1 }
                        guard isUnicodeWhitespace(decodeUTF8(t, at: p).0) else { break }
                        end = p
                    }
                }
            }
            return Array(text[start..<end])
        case .prepend(let p): return text.isEmpty ? text : p + text
        case .sequence(let steps):
            var t = text
            for s in steps { t = s.apply(t) }
            return t
        }
    }

    /// Reads tokenizer.json's `normalizer` object (`at` is its key path for messages).
    init(_ f: JSONFields) throws {
        let type = try f.string("type") ?? ""
        switch type {
        case "BertNormalizer":
            self = .bert(
                BERTNormalization(
                    cleanText: try f.bool("clean_text") ?? true, handleChineseChars: try f.bool("handle_chinese_chars") ?? true,
                    stripAccents: try f.bool("strip_accents"), lowercase: try f.bool("lowercase") ?? true))
        case "Precompiled":
            guard let b64 = try f.string("precompiled_charsmap") else {
                // An empty charsmap (identity models) is written as null.
                self = .sequence([])
                return
            }
            guard let data = Data(base64Encoded: b64) else { throw f.fail("precompiled_charsmap", "not valid base64") }
            do {
                self = .precompiled(try PrecompiledCharsmap(Array(data)))
            } catch let e as PrecompiledCharsmap.CharsmapError {
                throw f.fail("precompiled_charsmap", e.reason)
            }
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "StripAccents": self = .stripAccents
        case "Strip":
            self = .strip(left: try f.bool("strip_left") ?? true, right: try f.bool("strip_right") ?? true)
        case "Prepend":
            guard let p = try f.bytes("prepend") else { throw f.fail("prepend", "missing") }
            self = .prepend(p)
        case "Replace":
            let (pattern, content) = try literalReplacement(f)
            self = .replace(pattern: pattern, content: content)
        case "Sequence":
            guard let items = try f.array("normalizers") else { throw f.fail("normalizers", "missing") }
            self = .sequence(
                try items.enumerated().map { i, v in
                    try Normalizer(try JSONFields(v, path: f.path, prefix: f.key("normalizers") + "[\(i)]"))
                })
        default:
            throw unsupportedComponent(
                f, kind: "normalizer", type: type,
                supported: "BertNormalizer, Precompiled, NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Prepend, Replace, Sequence")
        }
    }
}

/// A `Replace` step's literal `pattern.String` and `content` (a `Regex` pattern is unsupported).
func literalReplacement(_ f: JSONFields) throws -> (pattern: [UInt8], content: [UInt8]) {
    guard let p = try f.object("pattern") else { throw f.fail("pattern", "missing") }
    guard let s = try p.bytes("String") else {
        if p.raw("Regex") != nil {
            throw ModelFileError.unsupported(
                path: f.path, what: "\(p.key("Regex")): a Replace with a regular expression (only literal String patterns are implemented)")
        }
        throw p.fail("String", "missing")
    }
    guard let content = try f.bytes("content") else { throw f.fail("content", "missing") }
    return (s, content)
}

/// The one-line error for a component this library does not implement: file, key and type.
func unsupportedComponent(_ f: JSONFields, kind: String, type: String, supported: String) -> ModelFileError {
    let key = f.prefix.isEmpty ? "(top level)" : f.prefix
    return ModelFileError.unsupported(
        path: f.path, what: "\(key): \(kind) type \(SafeTensorsError.quoted(type)) (implemented: \(supported))")
}
