// MARK: - Decoder

/// The WordPiece decoder of tokenizers: pieces joined with spaces, a continuation prefix
/// glues a piece to the previous one; with `cleanup`, each piece's leading space before
/// punctuation and a few English contractions is removed (piece by piece, as the reference).
struct WordPieceDecoder: Sendable {
    let prefix: String
    let cleanup: Bool

    func decode(_ tokens: [String]) -> String {
        var out = ""
        for (i, token) in tokens.enumerated() { out += decodeOne(token, first: i == 0) }
        return out
    }

    /// One token's text in the output: the prefix removed (or a space added) unless it is the
    /// first, then the clean-up.
    func decodeOne(_ token: String, first: Bool) -> String {
        var t = token
        if !first {
            if !prefix.isEmpty && t.utf8.starts(with: prefix.utf8) {
                t = String(decoding: Array(t.utf8.dropFirst(prefix.utf8.count)), as: UTF8.self)
            } else {
                t = " " + t
            }
        }
        if cleanup { t = WordPieceDecoder.cleanup(t) }
        return t
    }

    static func cleanup(_ s: String) -> String {
        // Byte-wise replacements (Swift's String replacing would compare by canonical equivalence).
        let rules: [(String, String)] = [
            (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
        ]
        var bytes = Array(s.utf8)
        for (from, to) in rules {
            let f = Array(from.utf8), t = Array(to.utf8)
            guard bytes.count >= f.count else { continue }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var i = 0
            while i < bytes.count {
                if i + f.count <= bytes.count && bytes[i..<(i + f.count)].elementsEqual(f) {
                    out += t
                    i += f.count
                } else {
                    out.append(bytes[i])
                    i += 1
                }
            }
            bytes = out
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
