import Foundation

/// BERT's WordPiece tokenizer, giving the same ids as Hugging Face's fast tokenizer
/// (`tokenizers`) for the same files.
///
/// The pipeline: added tokens (`[CLS]`, `[MASK]`, ...) typed in the text are kept whole;
/// the rest is normalized (``BERTNormalization``: clean-up, CJK spacing, accent stripping,
/// lowercasing), split on whitespace and punctuation, and each word is cut greedily into the
/// longest vocabulary pieces from the left, later pieces carrying the `##` prefix. A word of
/// more than `maxInputCharsPerWord` (100) scalars, or one that cannot be cut, becomes one
/// `[UNK]`. The template then adds `[CLS] A [SEP]` (or `[CLS] A [SEP] B [SEP]`, with token
/// type 1 for B).
///
/// The vocabulary is keyed by the tokens' UTF-8 bytes: canonically equivalent but different
/// strings (precomposed "é" and "e" + U+0301) are different tokens, as in the reference.
/// Immutable and `Sendable`; encode from any number of threads.
public struct WordPieceTokenizer: Sendable {
    /// The normalizer's settings.
    public let normalization: BERTNormalization
    /// The token for words that cannot be cut into pieces (`[UNK]`).
    public let unknownToken: String
    /// Its id.
    public let unknownID: Int
    /// The prefix of word pieces that continue a word (`##`).
    public let continuingSubwordPrefix: String
    /// Longer words (in Unicode scalars) become one unknown token.
    public let maxInputCharsPerWord: Int
    /// Tokens matched whole in the text, in the file's order.
    public let addedTokens: [AddedToken]
    /// The id used for padding (tokenizer.json's `padding.pad_id`, else `[PAD]`, else 0).
    public let padID: Int

    let vocabulary: ByteVocabulary
    let prefixBytes: [UInt8]
    let template: PostProcessorTemplate
    let decoder: WordPieceDecoder?
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher
    /// Added tokens by id, as text: normalized tokens in their normalized form (as the
    /// reference's `id_to_token` shows them).
    let addedTextByID: [Int: [UInt8]]
    let specialContents: Set<[UInt8]>

    /// The number of vocabulary tokens (added tokens that are not in the vocabulary excluded).
    public var vocabularySize: Int { vocabulary.count }
    /// One more than the largest id the tokenizer can produce, padding and template tokens
    /// included (the embedding table needs at least this many rows).
    public var idLimit: Int {
        max(vocabulary.idLimit, (addedTokens.map(\.id).max() ?? -1) + 1, padID + 1, template.maxID + 1)
    }

    /// One more than the largest token type id the template gives (`pair`: for two texts).
    public func typeIDLimit(pair: Bool = false) -> Int { template.maxTypeID(pair: pair) + 1 }

    /// How many tokens the template adds around one text (`pair: false`; `[CLS]` and
    /// `[SEP]` for BERT: 2) or a pair (3). `encode` with a `maxLength` below this throws
    /// ``ModelInputError``.
    public func specialTokenCount(pair: Bool = false) -> Int { template.addedCount(pair: pair) }

    // MARK: Vocabulary

    /// The id of `token` (compared byte for byte), or nil. Added tokens included.
    public func id(for token: String) -> Int? {
        let b = Array(token.utf8)
        if let t = addedTokens.first(where: { $0.bytes == b }) { return t.id }
        return vocabulary.id(b)
    }

    /// The token with `id`, or nil when no token has it.
    public func token(for id: Int) -> String? {
        if let t = addedTextByID[id] { return String(decoding: t, as: UTF8.self) }
        return vocabulary.token(id).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The tokens of `ids` (nil for an id no token has, which a caller could have passed).
    public func tokens(for ids: [Int]) -> [String?] { ids.map { token(for: $0) } }

    // MARK: Encoding

    /// The word-piece ids of `text`, without template tokens or truncation. Cost: O(text),
    /// plus O(word²) per word for the greedy longest match (words are short).
    public func pieceIDs(_ text: String) -> [Int] {
        var ids: [Int] = []
        var t = text
        t.withUTF8 { appendPieceIDs($0, into: &ids) }
        return ids
    }

    /// The word pieces of `text` as strings (`["un", "##aff", "##able"]`), added tokens kept
    /// whole, without template tokens.
    public func tokenize(_ text: String) -> [String] {
        pieceIDs(text).map { token(for: $0) ?? unknownToken }
    }

    /// The pieces' budget under `maxLength`: `maxLength` less the template's special tokens
    /// (one text or a pair). Throws ``ModelInputError`` when `maxLength` leaves no room for
    /// them (Hugging Face's truncation refuses such a length too).
    func truncationBudget(_ maxLength: Int, pair: Bool) throws(ModelInputError) -> Int {
        let specials = template.addedCount(pair: pair)
        guard maxLength >= specials else {
            throw ModelInputError(
                "WordPieceTokenizer.encode: maxLength \(maxLength) leaves no room for the \(specials) special tokens\(pair ? " of a pair" : "")")
        }
        return maxLength - specials
    }

    /// `text` encoded as the model sees it: `[CLS] pieces [SEP]`. With `maxLength`, the pieces
    /// are cut (from the end) so that the whole encoding, specials included, has at most
    /// `maxLength` tokens. Throws ``ModelInputError`` when `maxLength` leaves no room for the
    /// special tokens (``specialTokenCount(pair:)``). Cost: O(text length), as ``pieceIDs(_:)``.
    public func encode(_ text: String, maxLength: Int? = nil) throws(ModelInputError) -> Encoding {
        guard let maxLength else { return template.apply(pieceIDs(text), nil) }
        _ = try truncationBudget(maxLength, pair: false)
        return encode(text, checkedMaxLength: maxLength)
    }

    /// ``encode(_:maxLength:)`` for a `maxLength` already known to leave room for the special
    /// tokens (at least ``specialTokenCount(pair:)``): the public form checks it first, a
    /// ``SentenceEmbedder`` in its init. The same encoding, without a check that cannot fail.
    /// Cost: O(text length), as ``pieceIDs(_:)``.
    func encode(_ text: String, checkedMaxLength maxLength: Int) -> Encoding {
        var a = pieceIDs(text)
        let budget = maxLength - template.addedCount(pair: false)
        if a.count > budget { a.removeLast(a.count - budget) }
        return template.apply(a, nil)
    }

    /// A pair of texts encoded as `[CLS] A [SEP] B [SEP]`, token type 0 for the first part
    /// and 1 for the second. With `maxLength`, the longer text is cut first (Hugging Face's
    /// `longest_first` truncation). Throws ``ModelInputError`` when `maxLength` leaves no room
    /// for the pair's special tokens. Cost: O(length of both texts).
    public func encode(_ text: String, pair: String, maxLength: Int? = nil) throws(ModelInputError) -> Encoding {
        var a = pieceIDs(text), b = pieceIDs(pair)
        if let maxLength {
            let budget = try truncationBudget(maxLength, pair: true)
            if a.count + b.count > budget {
                // The reference's rule: keep the shorter whole if the longer can absorb the cut,
                // else split the budget evenly (the second text gets the odd token).
                var n1 = a.count, n2 = b.count
                let swapped = n1 > n2
                if swapped { swap(&n1, &n2) }
                n2 = n1 > budget ? n1 : max(n1, budget - n1)
                if n1 + n2 > budget {
                    n1 = budget / 2
                    n2 = n1 + budget % 2
                }
                if swapped { swap(&n1, &n2) }
                if a.count > n1 { a.removeLast(a.count - n1) }
                if b.count > n2 { b.removeLast(b.count - n2) }
            }
        }
        return template.apply(a, b)
    }

    /// Several texts encoded (each as by ``encode(_:maxLength:)``) and padded together, with
    /// ``padID``, attention mask 0 and token type 0 at the padding. Throws ``ModelInputError``
    /// when `maxLength` leaves no room for the special tokens (before encoding any text).
    public func encode(_ texts: [String], maxLength: Int? = nil, padding: Padding = .longest) throws(ModelInputError) -> [Encoding] {
        if let maxLength { _ = try truncationBudget(maxLength, pair: false) }
        var out: [Encoding] = []
        out.reserveCapacity(texts.count)
        for text in texts { out.append(try encode(text, maxLength: maxLength)) }
        pad(&out, padding)
        return out
    }

    /// Pads `encodings` in place as `padding` says (on the right).
    public func pad(_ encodings: inout [Encoding], _ padding: Padding) {
        let target: Int
        switch padding {
        case .none: return
        case .longest: target = encodings.map(\.count).max() ?? 0
        case .fixed(let n): target = n
        }
        for i in encodings.indices where encodings[i].count < target {
            let extra = target - encodings[i].count
            encodings[i].ids += repeatElement(padID, count: extra)
            encodings[i].tokenTypeIDs += repeatElement(0, count: extra)
            encodings[i].attentionMask += repeatElement(0, count: extra)
            encodings[i].specialTokensMask += repeatElement(1, count: extra)
        }
    }

    // MARK: Decoding

    /// The text of `ids`: tokens joined, `##` continuations glued to the previous piece and
    /// spaces before `.`, `?`, `!` and `,` removed (the WordPiece decoder's clean-up). Special
    /// tokens are left out unless `skipSpecialTokens` is false; ids no token has are left out.
    /// Lowercasing and stripped accents are not undone.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var tokens: [String] = []
        for id in ids {
            let bytes: [UInt8]
            if let t = addedTextByID[id] {
                bytes = t
            } else if let t = vocabulary.token(id) {
                bytes = Array(t)
            } else {
                continue
            }
            if skipSpecialTokens && specialContents.contains(bytes) { continue }
            tokens.append(String(decoding: bytes, as: UTF8.self))
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decode(tokens)
    }

    // MARK: The pipeline

    func appendPieceIDs(_ text: UnsafeBufferPointer<UInt8>, into ids: inout [Int]) {
        var normalized: [UInt8] = []
        var words: [PreToken] = []
        rawMatcher.split(text, 0..<text.count) { range, token in
            if let token {
                ids.append(token.id)
                return
            }
            normalized.removeAll(keepingCapacity: true)
            normalization.normalize(UnsafeBufferPointer(rebasing: text[range]), into: &normalized)
            normalized.withUnsafeBufferPointer { norm in
                normalizedMatcher.split(norm, 0..<norm.count) { r, t in
                    if let t {
                        ids.append(t.id)
                        return
                    }
                    words.removeAll(keepingCapacity: true)
                    bertPreTokenize(norm, r, into: &words)
                    for w in words { wordPiece(norm, w, into: &ids) }
                }
            }
        }
    }

    /// Greedy longest-match-first WordPiece on one pre-token.
    func wordPiece(_ text: UnsafeBufferPointer<UInt8>, _ word: PreToken, into ids: inout [Int]) {
        if word.scalars > maxInputCharsPerWord {
            ids.append(unknownID)
            return
        }
        let first = ids.count
        prefixBytes.withUnsafeBufferPointer { prefix in
            var start = word.start
            while start < word.end {
                let usesPrefix = start > word.start
                // Tokens longer than the longest vocabulary entry cannot match; start below that.
                var end = min(word.end, start + vocabulary.maxTokenBytes - (usesPrefix ? prefix.count : 0))
                while end > start && end < word.end && text[end] & 0xC0 == 0x80 { end -= 1 }
                var found: Int? = nil
                while end > start {
                    if let id = vocabulary.id(prefix: usesPrefix ? prefix : nil, UnsafeBufferPointer(rebasing: text[start..<end])) {
                        found = id
                        break
                    }
                    end -= 1
                    while end > start && text[end] & 0xC0 == 0x80 { end -= 1 }
                }
                guard let id = found else {
                    ids.removeLast(ids.count - first)
                    ids.append(unknownID)
                    return
                }
                ids.append(id)
                start = end
            }
        }
    }
}

extension WordPieceTokenizer: Tokenizer {
    /// `text` as `[CLS] pieces [SEP]` (or just the pieces without `addSpecialTokens`).
    public func encode(_ text: String, addSpecialTokens: Bool) -> Encoding {
        (addSpecialTokens ? template : PostProcessorTemplate.none).apply(pieceIDs(text), nil)
    }

    /// A pair as `[CLS] A [SEP] B [SEP]` (or both texts' pieces without `addSpecialTokens`).
    public func encode(_ text: String, pair: String, addSpecialTokens: Bool) -> Encoding {
        (addSpecialTokens ? template : PostProcessorTemplate.none).apply(pieceIDs(text), pieceIDs(pair))
    }

    /// Whether `id` is a special added token (`[CLS]`, `[SEP]`, ...).
    public func isSpecial(_ id: Int) -> Bool {
        guard let t = addedTextByID[id] else { return false }
        return specialContents.contains(t)
    }
}
