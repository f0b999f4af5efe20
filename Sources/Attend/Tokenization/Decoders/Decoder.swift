/// A tokenizer.json decoder: turns the tokens of ids back into text, as tokenizers'
/// `decode_chain` does (each step maps the list of token strings to a new list; the results
/// are concatenated). Tokens are byte strings. Cost: linear in the tokens' length.
indirect enum TokenDecoder: Sendable {
    case byteLevel
    case byteFallback
    case fuse
    case metaspace(replacement: [UInt8], prependScheme: PrependScheme)
    case wordPiece(prefix: String, cleanup: Bool)
    case replace(pattern: [UInt8], content: [UInt8])
    /// Removes up to `start` leading and `stop` trailing copies of `content` from each token.
    case strip(content: UInt32, start: Int, stop: Int)
    case bpe(suffix: [UInt8])
    case ctc(padToken: [UInt8], wordDelimiter: [UInt8], cleanup: Bool)
    case sequence([TokenDecoder])

    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        switch self {
        case .sequence(let steps):
            var t = tokens
            for s in steps { t = s.decodeChain(t) }
            return t
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens { bytes += ByteLevelTable.shared.decode(t) ?? t }
            return [Array(String(decoding: bytes, as: UTF8.self).utf8)]
        case .byteFallback:
            var out: [[UInt8]] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if pending.withUnsafeBufferPointer({ isValidUTF8($0) }) {
                    out.append(pending)
                } else {
                    for _ in pending { out.append(replacementCharacterUTF8) }
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = parseByteToken(t) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.flatMap { $0 }]
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { i, t in
                let dropLeading = i == 0 && scheme != .never
                // The reference drops every replacement character of the first token.
                return dropLeading ? replaceAll(t, replacement, []) : replaceAll(t, replacement, [0x20])
            }
        case .wordPiece(let prefix, let cleanup):
            let decoder = WordPieceDecoder(prefix: prefix, cleanup: cleanup)
            return tokens.enumerated().map { i, t in
                Array(decoder.decodeOne(String(decoding: t, as: UTF8.self), first: i == 0).utf8)
            }
        case .replace(let pattern, let content):
            return tokens.map { replaceAll($0, pattern, content) }
        case .strip(let content, let start, let stop):
            let c = Array(String(Unicode.Scalar(content).map(Character.init) ?? " ").utf8)
            return tokens.map { t in
                var lo = 0, hi = t.count
                var removed = 0
                while removed < start && hi - lo >= c.count && t[lo..<(lo + c.count)].elementsEqual(c) {
                    lo += c.count
                    removed += 1
                }
                removed = 0
                while removed < stop && hi - lo >= c.count && t[(hi - c.count)..<hi].elementsEqual(c) {
                    hi -= c.count
                    removed += 1
                }
                return lo == 0 && hi == t.count ? t : Array(t[lo..<hi])
            }
        case .bpe(let suffix):
            return tokens.enumerated().map { i, t in
                replaceAll(t, suffix, i == tokens.count - 1 ? [] : [0x20])
            }
        case .ctc(let pad, let delimiter, let cleanup):
            var out: [[UInt8]] = []
            var previous: [UInt8]? = nil
            for t in tokens {
                defer { previous = t }
                if t == previous { continue }
                var s = replaceAll(t, pad, [])
                if cleanup {
                    s = Array(cleanUpTokenization(String(decoding: s, as: UTF8.self)).utf8)
                    s = replaceAll(s, delimiter, [0x20])
                }
                if !s.isEmpty { out.append(s) }
            }
            return out
        }
    }

    /// Reads tokenizer.json's `decoder` object.
    init(_ f: JSONFields) throws {
        let type = try f.string("type") ?? ""
        switch type {
        case "ByteLevel": self = .byteLevel
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Metaspace":
            let replacement = try f.bytes("replacement") ?? Array("\u{2581}".utf8)
            var scheme = PrependScheme.always
            if let s = try f.string("prepend_scheme") {
                scheme = s == "never" ? .never : (s == "first" ? .first : .always)
            } else if let legacy = try f.bool("add_prefix_space") {
                scheme = legacy ? .always : .never
            }
            self = .metaspace(replacement: replacement, prependScheme: scheme)
        case "WordPiece":
            self = .wordPiece(prefix: try f.string("prefix") ?? "##", cleanup: try f.bool("cleanup") ?? true)
        case "Replace":
            let (pattern, content) = try literalReplacement(f)
            self = .replace(pattern: pattern, content: content)
        case "Strip":
            let content = try f.string("content") ?? " "
            guard content.unicodeScalars.count == 1, let c = content.unicodeScalars.first else {
                throw f.fail("content", "expected one character")
            }
            self = .strip(
                content: c.value, start: try f.int("start", in: 0...Int(Int32.max)) ?? 0,
                stop: try f.int("stop", in: 0...Int(Int32.max)) ?? 0)
        case "BPEDecoder":
            self = .bpe(suffix: try f.bytes("suffix") ?? Array("</w>".utf8))
        case "CTC":
            self = .ctc(
                padToken: try f.bytes("pad_token") ?? Array("<pad>".utf8),
                wordDelimiter: try f.bytes("word_delimiter_token") ?? Array("|".utf8),
                cleanup: try f.bool("cleanup") ?? true)
        case "Sequence":
            guard let items = try f.array("decoders") else { throw f.fail("decoders", "missing") }
            self = .sequence(
                try items.enumerated().map { i, v in
                    try TokenDecoder(try JSONFields(v, path: f.path, prefix: f.key("decoders") + "[\(i)]"))
                })
        default:
            throw unsupportedComponent(
                f, kind: "decoder", type: type,
                supported: "ByteLevel, ByteFallback, Fuse, Metaspace, WordPiece, Replace, Strip, BPEDecoder, CTC, Sequence")
        }
    }
}

/// The byte of a `<0xXX>` token (as tokenizers reads it: six bytes, two hex digits), or nil.
func parseByteToken(_ t: [UInt8]) -> UInt8? {
    guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E else { return nil }
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    guard let h = hex(t[3]), let l = hex(t[4]) else { return nil }
    return h << 4 | l
}

/// Whether all of `s` is valid UTF-8.
func isValidUTF8(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
    var i = 0
    while i < s.count {
        let n = validUTF8Length(s, at: i)
        if n == 0 { return false }
        i += n
    }
    return true
}
