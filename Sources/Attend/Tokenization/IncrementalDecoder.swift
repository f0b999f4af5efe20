/// Turns a growing list of ids into text for streaming: each ``append(_:)`` returns the text
/// that became final with the new id, never a split UTF-8 character (byte-level and
/// byte-fallback tokens wait until their character is complete) and never text a later
/// token could still change (a decoder's look-behind, such as a leading-space rule, is
/// respected by decoding a window that starts one settled token back).
///
/// The pieces concatenated, followed by ``finish()``, equal `decode` of all the ids whenever
/// the decoder is local (every Hugging Face decoder family is: ByteLevel, ByteFallback + Fuse,
/// Metaspace, WordPiece, SentencePiece). Cost per id: the decode of the window, usually a
/// few tokens.
public struct IncrementalDecoder: Sendable {
    /// The tokenizer that decodes.
    public let tokenizer: any Tokenizer
    /// Whether special tokens are left out (as `decode`'s `skipSpecialTokens`).
    public let skipSpecialTokens: Bool
    /// Every id given so far.
    public private(set) var ids: [Int] = []
    /// The window decoded for each new id starts here (one printed token of look-behind).
    private var prefixOffset = 0
    /// Tokens from here on have not been printed.
    private var readOffset = 0

    /// A decoder for `tokenizer`, starting with no ids.
    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    private func text(_ range: Range<Int>) -> [UInt8] {
        Array(tokenizer.decode(Array(ids[range]), skipSpecialTokens: skipSpecialTokens).utf8)
    }

    /// Adds one id; returns the text that is now final (often empty: an incomplete
    /// character, or a token that prints nothing).
    public mutating func append(_ id: Int) -> String {
        ids.append(id)
        let before = text(prefixOffset..<readOffset)
        let now = text(prefixOffset..<ids.count)
        // An incomplete character decodes as U+FFFD at the end: wait for more bytes.
        if now.count >= 3 && now[(now.count - 3)...].elementsEqual(replacementCharacterUTF8) { return "" }
        guard now.count > before.count else { return "" }
        let fresh = String(decoding: now[before.count...], as: UTF8.self)
        prefixOffset = readOffset
        readOffset = ids.count
        return fresh
    }

    /// Adds several ids; returns the text that became final.
    public mutating func append(contentsOf newIDs: [Int]) -> String {
        var out = ""
        for id in newIDs { out += append(id) }
        return out
    }

    /// The text still held back (an incomplete character at the end shows as U+FFFD, as
    /// `decode` shows it); the decoder then starts over with no ids.
    public mutating func finish() -> String {
        let before = text(prefixOffset..<readOffset)
        let now = text(prefixOffset..<ids.count)
        let rest = now.count > before.count ? String(decoding: now[before.count...], as: UTF8.self) : ""
        ids.removeAll()
        prefixOffset = 0
        readOffset = 0
        return rest
    }
}
