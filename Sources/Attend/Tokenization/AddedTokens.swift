import Foundation

/// A token the tokenizer matches in the text before normalizing it (BERT's `[CLS]`, `[SEP]`,
/// `[MASK]`, ...), as listed in tokenizer.json's `added_tokens`.
public struct AddedToken: Sendable, Hashable {
    /// The token's text.
    public let content: String
    /// Its id.
    public let id: Int
    /// Special tokens are dropped by `decode(_:skipSpecialTokens:)`.
    public let special: Bool
    /// Matched in the normalized text (true) or in the raw text (false, BERT's specials).
    public let normalized: Bool
    /// A match also swallows the whitespace to its left.
    public let leftStrip: Bool
    /// A match also swallows the whitespace to its right.
    public let rightStrip: Bool
    /// Matched only when not inside a word (no letter or digit adjacent).
    public let singleWord: Bool

    let bytes: [UInt8]

    /// An added token; see the properties.
    public init(
        content: String, id: Int, special: Bool = true, normalized: Bool = false,
        leftStrip: Bool = false, rightStrip: Bool = false, singleWord: Bool = false
    ) {
        self.content = content
        self.id = id
        self.special = special
        self.normalized = normalized
        self.leftStrip = leftStrip
        self.rightStrip = rightStrip
        self.singleWord = singleWord
        self.bytes = Array(content.utf8)
    }
}

// MARK: - Added tokens

/// Finds added tokens in text: leftmost-longest, non-overlapping matches (the reference uses
/// Aho-Corasick with that match kind), then the reference's single-word, left-strip and
/// right-strip rules. Cost: O(text x candidates sharing a first byte).
struct AddedTokenMatcher: Sendable {
    let tokens: [AddedToken]
    let patterns: [[UInt8]]
    /// Indices into `tokens` by the pattern's first byte, longest pattern first.
    let byFirstByte: [[Int]]

    init(_ tokens: [AddedToken], normalizing normalization: BERTNormalization? = nil) {
        if let normalization {
            self.init(tokens) { b in
                var n: [UInt8] = []
                b.withUnsafeBufferPointer { normalization.normalize($0, into: &n) }
                return n
            }
        } else {
            self.init(tokens) { $0 }
        }
    }

    /// A matcher whose patterns are the tokens' contents passed through `normalize` (the
    /// normalizer of the text they are matched in).
    init(_ tokens: [AddedToken], normalize: ([UInt8]) -> [UInt8]) {
        var kept: [AddedToken] = [], patterns: [[UInt8]] = []
        for t in tokens {
            let p = normalize(t.bytes)
            if p.isEmpty { continue }
            kept.append(t)
            patterns.append(p)
        }
        var table = [[Int]](repeating: [], count: 256)
        for (i, p) in patterns.enumerated() { table[Int(p[0])].append(i) }
        for b in 0..<256 { table[b].sort { patterns[$0].count > patterns[$1].count } }
        self.tokens = kept
        self.patterns = patterns
        self.byFirstByte = table
    }

    /// Calls `body` for the pieces of `text[range]` in order: `(range, token)` for a match,
    /// `(range, nil)` for the text between matches (never empty, unless the whole input is).
    func split(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ body: (Range<Int>, AddedToken?) -> Void) {
        if tokens.isEmpty || range.isEmpty {
            body(range, nil)
            return
        }
        var startOffset = range.lowerBound
        var i = range.lowerBound
        while i < range.upperBound {
            var match: Int? = nil
            for c in byFirstByte[Int(text[i])] {
                let p = patterns[c]
                if i + p.count <= range.upperBound && text[i..<(i + p.count)].elementsEqual(p) {
                    match = c
                    break
                }
            }
            guard let m = match else {
                i += 1
                continue
            }
            var start = i, stop = i + patterns[m].count
            i = stop
            let token = tokens[m]
            if token.singleWord {
                let before = start == range.lowerBound || !endsWithWordCharacter(text, range.lowerBound..<start)
                let after = stop == range.upperBound || !startsWithWordCharacter(text, stop..<range.upperBound)
                if !before || !after { continue }
            }
            if token.leftStrip {
                var s = start
                while s > range.lowerBound {
                    let p = previousScalarStart(text, before: s, lowerBound: range.lowerBound)
                    guard isUnicodeWhitespace(decodeUTF8(text, at: p).0) else { break }
                    s = p
                }
                start = max(s, startOffset)
            }
            if token.rightStrip {
                while stop < range.upperBound {
                    let (v, len) = decodeUTF8(text, at: stop)
                    guard isUnicodeWhitespace(v) else { break }
                    stop += len
                }
            }
            if startOffset < start { body(startOffset..<start, nil) }
            body(start..<stop, token)
            startOffset = stop
            i = max(i, stop)
        }
        if startOffset < range.upperBound { body(startOffset..<range.upperBound, nil) }
    }
}

func previousScalarStart(_ text: UnsafeBufferPointer<UInt8>, before i: Int, lowerBound: Int) -> Int {
    var p = i - 1
    while p > lowerBound && text[p] & 0xC0 == 0x80 { p -= 1 }
    return p
}

/// Whether the last character of `text[range]` is alphanumeric (Rust's `char::is_alphanumeric`:
/// letters and numbers).
func endsWithWordCharacter(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
    guard !range.isEmpty else { return false }
    let p = previousScalarStart(text, before: range.upperBound, lowerBound: range.lowerBound)
    return isAlphanumeric(decodeUTF8(text, at: p).0)
}

func startsWithWordCharacter(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
    guard !range.isEmpty else { return false }
    return isAlphanumeric(decodeUTF8(text, at: range.lowerBound).0)
}

func isAlphanumeric(_ v: UInt32) -> Bool {
    let p = Unicode.Scalar(v)!.properties
    return p.isAlphabetic || p.numericType != nil
}
