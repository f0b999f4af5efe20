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
    public init(content: String, id: Int, special: Bool = true, normalized: Bool = false,
                leftStrip: Bool = false, rightStrip: Bool = false, singleWord: Bool = false) {
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

/// One encoded text (or pair of texts): ids, segment ids and attention mask, all of equal
/// length, in Hugging Face's conventions.
public struct Encoding: Sendable, Hashable {
    /// Token ids, special tokens and padding included.
    public var ids: [Int]
    /// Segment of each token: 0 for the first text (and `[CLS]`), 1 for the second.
    public var tokenTypeIDs: [Int]
    /// 1 for a real token, 0 for padding.
    public var attentionMask: [Int]
    /// 1 for a token added by the template (`[CLS]`, `[SEP]`) or padding, 0 for text.
    public var specialTokensMask: [Int]

    /// Number of positions (padding included).
    public var count: Int { ids.count }
    /// Number of real (non-padding) tokens.
    public var length: Int { attentionMask.reduce(0, +) }

    /// An encoding from its parts (all of the same length).
    public init(ids: [Int], tokenTypeIDs: [Int], attentionMask: [Int], specialTokensMask: [Int]) {
        precondition(tokenTypeIDs.count == ids.count && attentionMask.count == ids.count && specialTokensMask.count == ids.count,
                     "Encoding: ids (\(ids.count)), tokenTypeIDs (\(tokenTypeIDs.count)), attentionMask (\(attentionMask.count)) and specialTokensMask (\(specialTokensMask.count)) differ in length")
        self.ids = ids
        self.tokenTypeIDs = tokenTypeIDs
        self.attentionMask = attentionMask
        self.specialTokensMask = specialTokensMask
    }
}

/// How a batch is padded.
public enum Padding: Sendable, Hashable {
    /// No padding: encodings keep their own lengths.
    case none
    /// Every encoding padded (on the right) to the longest of the batch.
    case longest
    /// Every encoding padded to exactly this length (longer ones are not cut: use `maxLength`).
    case fixed(Int)
}

/// BERT's WordPiece tokenizer, giving the same ids as Hugging Face's fast tokenizer
/// (`tokenizers`) for the same files.
///
/// The pipeline: added tokens (`[CLS]`, `[MASK]`, ...) typed in the text are kept whole;
/// the rest is normalized (``BertNormalization``: clean-up, CJK spacing, accent stripping,
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
    public let normalization: BertNormalization
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

    // MARK: Loading

    /// Loads a model folder's tokenizer: `tokenizer.json` when present (the reference), else
    /// `vocab.txt` with the settings of `tokenizer_config.json` (if any). Throws
    /// `ModelFileError` naming the file at fault. Cost: O(file sizes).
    public init(directory: URL) throws {
        let json = directory.appendingPathComponent("tokenizer.json")
        let vocab = directory.appendingPathComponent("vocab.txt")
        if FileManager.default.fileExists(atPath: json.path) {
            try self.init(tokenizerJSON: json)
        } else if FileManager.default.fileExists(atPath: vocab.path) {
            let config = directory.appendingPathComponent("tokenizer_config.json")
            if FileManager.default.fileExists(atPath: config.path) {
                let c = try JSONFields(try readModelJSON(config), path: config.path)
                let n = BertNormalization(
                    cleanText: true, handleChineseChars: try c.bool("tokenize_chinese_chars") ?? true,
                    stripAccents: try c.bool("strip_accents"), lowercase: try c.bool("do_lower_case") ?? true)
                let unk = try WordPieceTokenizer.tokenName(c, "unk_token") ?? "[UNK]"
                try self.init(vocabularyFile: vocab, normalization: n, unknownToken: unk)
            } else {
                try self.init(vocabularyFile: vocab)
            }
        } else if !FileManager.default.fileExists(atPath: directory.path) {
            throw ModelFileError.missingFile(path: directory.path)
        } else {
            throw ModelFileError.missingFile(path: json.path + " (nor vocab.txt)")
        }
    }

    /// `unk_token` of tokenizer_config.json: a string, or an object with `content`.
    private static func tokenName(_ c: JSONFields, _ key: String) throws -> String? {
        guard let v = c.raw(key) else { return nil }
        if let s = v.stringValue { return s }
        if let o = try c.object(key), let s = try o.string("content") { return s }
        throw c.fail(key, "expected a string or an object with \"content\"")
    }

    /// Loads a Hugging Face `tokenizer.json` whose model is WordPiece, with a BERT normalizer
    /// (or none) and BERT pre-tokenizer. Its `truncation` and `padding` sections are not
    /// applied (as in transformers, length and padding are chosen per call); `padding.pad_id`
    /// gives ``padID``. Throws `ModelFileError` naming the file and key at fault; an
    /// unsupported component (a BPE model, another normalizer) is `.unsupported`.
    public init(tokenizerJSON url: URL) throws {
        try self.init(tokenizerJSONBytes: try readModelFile(url), path: url.path)
    }

    /// Loads a `tokenizer.json` held in memory: the same checks, errors and result as
    /// ``init(tokenizerJSON:)``, with `path` standing for the file's path in error messages.
    /// For embedded resources, downloads kept in memory and fuzzing. Cost: O(bytes).
    public init(tokenizerJSONBytes bytes: [UInt8], path: String = "tokenizer.json") throws {
        let root = try JSONFields(try parseModelJSON(bytes, path: path), path: path)
        // Model.
        guard let model = try root.object("model") else { throw root.fail("model", "missing") }
        if let type = try model.string("type"), type != "WordPiece" {
            throw ModelFileError.unsupported(path: path, what: "tokenizer model \(SafeTensorsError.quoted(type)) (only WordPiece is implemented)")
        }
        guard case .object(let vocabMembers)? = model.raw("vocab") else {
            throw model.fail("vocab", "missing or not an object of token: id")
        }
        var entries: [(token: [UInt8], id: Int)] = []
        entries.reserveCapacity(vocabMembers.count)
        for (key, value) in vocabMembers {
            guard let id = value.intValue, id >= 0, id < Int(Int32.max) else {
                throw model.fail("vocab", "token \(quotedBytes(key)) has id \(value.typeName == "a number" ? "out of range" : value.typeName)")
            }
            entries.append((key, id))
        }
        let unk = try model.string("unk_token") ?? "[UNK]"
        let prefix = try model.string("continuing_subword_prefix") ?? "##"
        let maxChars = try model.int("max_input_chars_per_word", in: 0...Int(Int32.max)) ?? 100

        // Normalizer.
        var normalization = BertNormalization(cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false)
        if let n = try root.object("normalizer") {
            let type = try n.string("type") ?? "(none)"
            guard type == "BertNormalizer" else {
                throw ModelFileError.unsupported(path: path, what: "normalizer \(SafeTensorsError.quoted(type)) (only BertNormalizer is implemented)")
            }
            normalization = BertNormalization(
                cleanText: try n.bool("clean_text") ?? true, handleChineseChars: try n.bool("handle_chinese_chars") ?? true,
                stripAccents: try n.bool("strip_accents"), lowercase: try n.bool("lowercase") ?? true)
        }
        // Pre-tokenizer.
        if let p = try root.object("pre_tokenizer") {
            let type = try p.string("type") ?? "(none)"
            guard type == "BertPreTokenizer" else {
                throw ModelFileError.unsupported(path: path, what: "pre-tokenizer \(SafeTensorsError.quoted(type)) (only BertPreTokenizer is implemented)")
            }
        } else {
            throw ModelFileError.unsupported(path: path, what: "no pre_tokenizer (only BertPreTokenizer is implemented)")
        }
        // Added tokens.
        var added: [AddedToken] = []
        if let items = try root.array("added_tokens") {
            for (i, item) in items.enumerated() {
                let t = try JSONFields(item, path: path, prefix: "added_tokens[\(i)]")
                guard let id = try t.int("id", in: 0...Int(Int32.max) - 1) else { throw t.fail("id", "missing") }
                guard let content = try t.bytes("content") else { throw t.fail("content", "missing") }
                added.append(AddedToken(
                    content: String(decoding: content, as: UTF8.self), id: id, special: try t.bool("special") ?? false,
                    normalized: try t.bool("normalized") ?? true, leftStrip: try t.bool("lstrip") ?? false,
                    rightStrip: try t.bool("rstrip") ?? false, singleWord: try t.bool("single_word") ?? false))
            }
        }
        // Post-processor.
        let vocabulary = try WordPieceTokenizer.buildVocabulary(entries, path: path)
        let template: PostProcessorTemplate
        if let pp = try root.object("post_processor") {
            template = try PostProcessorTemplate(pp, vocabulary: vocabulary, added: added)
        } else {
            template = .none
        }
        // Decoder.
        var decoder: WordPieceDecoder? = nil
        if let d = try root.object("decoder") {
            let type = try d.string("type") ?? "(none)"
            guard type == "WordPiece" else {
                throw ModelFileError.unsupported(path: path, what: "decoder \(SafeTensorsError.quoted(type)) (only WordPiece is implemented)")
            }
            decoder = WordPieceDecoder(prefix: try d.string("prefix") ?? "##", cleanup: try d.bool("cleanup") ?? true)
        }
        var padID: Int? = nil
        if let p = try root.object("padding") { padID = try p.int("pad_id", in: 0...Int(Int32.max)) }
        try self.init(vocabulary: vocabulary, normalization: normalization, unknownToken: unk, prefix: prefix,
                      maxInputCharsPerWord: maxChars, addedTokens: added, template: template, decoder: decoder,
                      padID: padID, path: path)
    }

    /// Loads a BERT `vocab.txt` (one token per line; line n has id n) and sets up the BERT
    /// pipeline around it: ``BertNormalization`` `normalization`, the special tokens `[PAD]`,
    /// `[UNK]`, `[CLS]`, `[SEP]` and `[MASK]` (those the vocabulary has) matched whole in the
    /// text, the `[CLS] A [SEP] B [SEP]` template and the WordPiece decoder — what
    /// transformers' `BertTokenizerFast` builds from the same file. Throws `ModelFileError`
    /// (a duplicate token names its lines).
    public init(vocabularyFile url: URL, normalization: BertNormalization = BertNormalization(), unknownToken: String = "[UNK]") throws {
        try self.init(vocabularyFileBytes: try readModelFile(url), normalization: normalization,
                      unknownToken: unknownToken, path: url.path)
    }

    /// Loads a `vocab.txt` held in memory: the same checks, errors and result as
    /// ``init(vocabularyFile:normalization:unknownToken:)``, with `path` standing for the
    /// file's path in error messages. Cost: O(bytes).
    public init(vocabularyFileBytes bytes: [UInt8], normalization: BertNormalization = BertNormalization(),
                unknownToken: String = "[UNK]", path: String = "vocab.txt") throws {
        if let bad = bytes.withUnsafeBytes({ StrictJSON.firstInvalidUTF8($0) }) {
            throw ModelFileError.invalidValue(path: path, key: "byte \(bad)", reason: "not valid UTF-8")
        }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
        if lines.last?.isEmpty == true { lines.removeLast() }  // the newline ending the last line
        try self.init(vocabularyBytes: lines, normalization: normalization, unknownToken: unknownToken, path: path)
    }

    /// A tokenizer over `vocabulary` (token i has id i), with BERT's specials, template and
    /// decoder as for ``init(vocabularyFile:normalization:unknownToken:)``. Throws
    /// `ModelFileError` for a duplicate token or a missing unknown token.
    public init(vocabulary: [String], normalization: BertNormalization = BertNormalization(), unknownToken: String = "[UNK]") throws {
        try self.init(vocabularyBytes: vocabulary.map { Array($0.utf8) }, normalization: normalization,
                      unknownToken: unknownToken, path: "(vocabulary)")
    }

    private init(vocabularyBytes lines: [[UInt8]], normalization: BertNormalization, unknownToken: String, path: String) throws {
        var seen: [[UInt8]: Int] = [:]
        for (i, l) in lines.enumerated() {
            if let j = seen[l] {
                throw ModelFileError.invalidValue(path: path, key: "line \(i + 1)", reason: "token \(quotedBytes(l)) repeats line \(j + 1)")
            }
            seen[l] = i
        }
        let vocabulary = try WordPieceTokenizer.buildVocabulary(lines.enumerated().map { ($1, $0) }, path: path)
        let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let added = specials.compactMap { s in vocabulary.id(Array(s.utf8)).map { AddedToken(content: s, id: $0) } }
        var template = PostProcessorTemplate.none
        if let cls = vocabulary.id(Array("[CLS]".utf8)), let sep = vocabulary.id(Array("[SEP]".utf8)) {
            template = .bert(cls: cls, sep: sep)
        }
        try self.init(vocabulary: vocabulary, normalization: normalization, unknownToken: unknownToken, prefix: "##",
                      maxInputCharsPerWord: 100, addedTokens: added, template: template,
                      decoder: WordPieceDecoder(prefix: "##", cleanup: true), padID: nil, path: path)
    }

    private static func buildVocabulary(_ entries: [(token: [UInt8], id: Int)], path: String) throws -> ByteVocabulary {
        do {
            return try ByteVocabulary(entries)
        } catch let e as ByteVocabulary.BuildError {
            switch e {
            case .duplicateToken(let t):
                throw ModelFileError.invalidValue(path: path, key: "vocabulary", reason: "token \(quotedBytes(t)) appears twice")
            case .duplicateID(let id, let a, let b):
                throw ModelFileError.invalidValue(path: path, key: "vocabulary", reason: "tokens \(quotedBytes(a)) and \(quotedBytes(b)) share id \(id)")
            case .badID(let id, let t):
                throw ModelFileError.invalidValue(path: path, key: "vocabulary", reason: "token \(quotedBytes(t)) has id \(id), out of range")
            }
        }
    }

    private init(vocabulary: ByteVocabulary, normalization: BertNormalization, unknownToken: String, prefix: String,
                 maxInputCharsPerWord: Int, addedTokens: [AddedToken], template: PostProcessorTemplate,
                 decoder: WordPieceDecoder?, padID: Int?, path: String) throws {
        guard let unkID = vocabulary.id(Array(unknownToken.utf8)) else {
            throw ModelFileError.invalidValue(path: path, key: "vocabulary", reason: "the unknown token \(SafeTensorsError.quoted(unknownToken)) is not in the vocabulary")
        }
        self.vocabulary = vocabulary
        self.normalization = normalization
        self.unknownToken = unknownToken
        self.unknownID = unkID
        self.continuingSubwordPrefix = prefix
        self.prefixBytes = Array(prefix.utf8)
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.addedTokens = addedTokens
        self.template = template
        self.decoder = decoder
        self.padID = padID ?? vocabulary.id(Array("[PAD]".utf8)) ?? 0
        self.rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        // Normalized added tokens are matched in normalized text, so their patterns are normalized.
        self.normalizedMatcher = AddedTokenMatcher(addedTokens.filter(\.normalized), normalizing: normalization)
        var byID: [Int: [UInt8]] = [:]
        var special = Set<[UInt8]>()
        for t in addedTokens where byID[t.id] == nil {
            var text = t.bytes
            if t.normalized {
                text = []
                t.bytes.withUnsafeBufferPointer { normalization.normalize($0, into: &text) }
            }
            byID[t.id] = text
            if t.special { special.insert(text) }
        }
        self.addedTextByID = byID
        self.specialContents = special
    }

    /// How many tokens the template adds around one text (`pair: false`; `[CLS]` and
    /// `[SEP]` for BERT: 2) or a pair (3). A `maxLength` below this is a programming error.
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

    /// `text` encoded as the model sees it: `[CLS] pieces [SEP]`. With `maxLength`, the pieces
    /// are cut (from the end) so that the whole encoding, specials included, has at most
    /// `maxLength` tokens; `maxLength` must leave room for the specials.
    public func encode(_ text: String, maxLength: Int? = nil) -> Encoding {
        var a = pieceIDs(text)
        if let maxLength {
            let budget = maxLength - template.addedCount(pair: false)
            precondition(budget >= 0, "WordPieceTokenizer.encode: maxLength \(maxLength) leaves no room for the \(template.addedCount(pair: false)) special tokens")
            if a.count > budget { a.removeLast(a.count - budget) }
        }
        return template.apply(a, nil)
    }

    /// A pair of texts encoded as `[CLS] A [SEP] B [SEP]`, token type 0 for the first part
    /// and 1 for the second. With `maxLength`, the longer text is cut first (Hugging Face's
    /// `longest_first` truncation).
    public func encode(_ text: String, pair: String, maxLength: Int? = nil) -> Encoding {
        var a = pieceIDs(text), b = pieceIDs(pair)
        if let maxLength {
            let budget = maxLength - template.addedCount(pair: true)
            precondition(budget >= 0, "WordPieceTokenizer.encode: maxLength \(maxLength) leaves no room for the \(template.addedCount(pair: true)) special tokens")
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
    /// ``padID``, attention mask 0 and token type 0 at the padding.
    public func encode(_ texts: [String], maxLength: Int? = nil, padding: Padding = .longest) -> [Encoding] {
        var out = texts.map { encode($0, maxLength: maxLength) }
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

// MARK: - Template

/// The post-processor: where `[CLS]`/`[SEP]` go and which token type each part gets.
struct PostProcessorTemplate: Sendable {
    enum Piece: Sendable {
        case first(typeID: Int)
        case second(typeID: Int)
        case special(ids: [Int], typeID: Int)
    }
    let single: [Piece]
    let pair: [Piece]

    static let none = PostProcessorTemplate(single: [.first(typeID: 0)], pair: [.first(typeID: 0), .second(typeID: 1)])

    static func bert(cls: Int, sep: Int) -> PostProcessorTemplate {
        PostProcessorTemplate(
            single: [.special(ids: [cls], typeID: 0), .first(typeID: 0), .special(ids: [sep], typeID: 0)],
            pair: [.special(ids: [cls], typeID: 0), .first(typeID: 0), .special(ids: [sep], typeID: 0),
                   .second(typeID: 1), .special(ids: [sep], typeID: 1)])
    }

    init(single: [Piece], pair: [Piece]) {
        self.single = single
        self.pair = pair
    }

    /// From tokenizer.json's `post_processor`: TemplateProcessing or BertProcessing.
    init(_ p: JSONFields, vocabulary: ByteVocabulary, added: [AddedToken]) throws {
        let type = try p.string("type") ?? "(none)"
        switch type {
        case "BertProcessing":
            func pairValue(_ key: String) throws -> Int {
                guard let items = try p.array(key), items.count == 2, let id = items[1].intValue, id >= 0,
                      id < Int(Int32.max) else {
                    throw p.fail(key, "expected [token, id]")
                }
                return id
            }
            self = .bert(cls: try pairValue("cls"), sep: try pairValue("sep"))
        case "TemplateProcessing":
            var specials: [[UInt8]: [Int]] = [:]
            if let s = try p.object("special_tokens"), case .object(let members) = s.value {
                for (name, v) in members {
                    let f = try JSONFields(v, path: p.path, prefix: s.key(keyName(name)))
                    guard let ids = try f.array("ids") else { throw f.fail("ids", "missing") }
                    specials[name] = try ids.map { v in
                        guard let i = v.intValue, i >= 0 else { throw f.fail("ids", "expected non-negative integers") }
                        // Bounded like every id (idLimit, one more than the largest, must not overflow).
                        guard i < Int(Int32.max) else { throw f.fail("ids", "expected integers in 0...\(Int(Int32.max) - 1)") }
                        return i
                    }
                }
            }
            func pieces(_ key: String) throws -> [Piece] {
                guard let items = try p.array(key) else { throw p.fail(key, "missing") }
                return try items.enumerated().map { i, item in
                    let f = try JSONFields(item, path: p.path, prefix: p.key(key) + "[\(i)]")
                    if let s = try f.object("SpecialToken") {
                        guard let name = try s.bytes("id") else { throw s.fail("id", "missing") }
                        guard let ids = specials[name] else {
                            throw s.fail("id", "\(quotedBytes(name)) is not in special_tokens")
                        }
                        return .special(ids: ids, typeID: try s.int("type_id", in: 0...Int(Int32.max)) ?? 0)
                    }
                    if let s = try f.object("Sequence") {
                        let id = try s.string("id") ?? "A"
                        let typeID = try s.int("type_id", in: 0...Int(Int32.max)) ?? 0
                        switch id {
                        case "A": return .first(typeID: typeID)
                        case "B": return .second(typeID: typeID)
                        default: throw s.fail("id", "expected \"A\" or \"B\", found \(SafeTensorsError.quoted(id))")
                        }
                    }
                    throw f.fail("", "expected SpecialToken or Sequence")
                }
            }
            self.init(single: try pieces("single"), pair: try pieces("pair"))
        default:
            throw ModelFileError.unsupported(path: p.path, what: "post-processor \(SafeTensorsError.quoted(type)) (TemplateProcessing and BertProcessing are implemented)")
        }
    }

    /// The largest id among the template's special tokens (-1 when none).
    var maxID: Int {
        (single + pair).reduce(-1) { m, p in
            if case .special(let ids, _) = p { return max(m, ids.max() ?? -1) }
            return m
        }
    }

    /// The largest token type id the template gives.
    func maxTypeID(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { m, p in
            switch p {
            case .first(let t), .second(let t), .special(_, let t): return max(m, t)
            }
        }
    }

    /// Tokens the template adds around one text (`pair: false`) or two.
    func addedCount(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { n, p in
            if case .special(let ids, _) = p { return n + ids.count }
            return n
        }
    }

    func apply(_ a: [Int], _ b: [Int]?) -> Encoding {
        var ids: [Int] = [], types: [Int] = [], special: [Int] = []
        let n = a.count + (b?.count ?? 0) + addedCount(pair: b != nil)
        ids.reserveCapacity(n)
        types.reserveCapacity(n)
        special.reserveCapacity(n)
        for p in b == nil ? single : pair {
            switch p {
            case .first(let t):
                ids += a
                types += repeatElement(t, count: a.count)
                special += repeatElement(0, count: a.count)
            case .second(let t):
                let s = b ?? []
                ids += s
                types += repeatElement(t, count: s.count)
                special += repeatElement(0, count: s.count)
            case .special(let sids, let t):
                ids += sids
                types += repeatElement(t, count: sids.count)
                special += repeatElement(1, count: sids.count)
            }
        }
        return Encoding(ids: ids, tokenTypeIDs: types, attentionMask: Array(repeating: 1, count: ids.count), specialTokensMask: special)
    }
}

// MARK: - Decoder

/// The WordPiece decoder of tokenizers: pieces joined with spaces, a continuation prefix
/// glues a piece to the previous one; with `cleanup`, each piece's leading space before
/// punctuation and a few English contractions is removed (piece by piece, as the reference).
struct WordPieceDecoder: Sendable {
    let prefix: String
    let cleanup: Bool

    func decode(_ tokens: [String]) -> String {
        var out = ""
        for (i, token) in tokens.enumerated() {
            var t = token
            if i != 0 {
                if !prefix.isEmpty && t.utf8.starts(with: prefix.utf8) {
                    t = String(decoding: Array(t.utf8.dropFirst(prefix.utf8.count)), as: UTF8.self)
                } else {
                    t = " " + t
                }
            }
            if cleanup { t = WordPieceDecoder.cleanup(t) }
            out += t
        }
        return out
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

// MARK: - Added tokens

/// Finds added tokens in text: leftmost-longest, non-overlapping matches (the reference uses
/// Aho-Corasick with that match kind), then the reference's single-word, left-strip and
/// right-strip rules. Cost: O(text x candidates sharing a first byte).
struct AddedTokenMatcher: Sendable {
    let tokens: [AddedToken]
    let patterns: [[UInt8]]
    /// Indices into `tokens` by the pattern's first byte, longest pattern first.
    let byFirstByte: [[Int]]

    init(_ tokens: [AddedToken], normalizing normalization: BertNormalization? = nil) {
        var kept: [AddedToken] = [], patterns: [[UInt8]] = []
        for t in tokens {
            var p = t.bytes
            if let normalization {
                var n: [UInt8] = []
                p.withUnsafeBufferPointer { normalization.normalize($0, into: &n) }
                p = n
            }
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

private func previousScalarStart(_ text: UnsafeBufferPointer<UInt8>, before i: Int, lowerBound: Int) -> Int {
    var p = i - 1
    while p > lowerBound && text[p] & 0xC0 == 0x80 { p -= 1 }
    return p
}

/// Whether the last character of `text[range]` is alphanumeric (Rust's `char::is_alphanumeric`:
/// letters and numbers).
private func endsWithWordCharacter(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
    guard !range.isEmpty else { return false }
    let p = previousScalarStart(text, before: range.upperBound, lowerBound: range.lowerBound)
    return isAlphanumeric(decodeUTF8(text, at: p).0)
}

private func startsWithWordCharacter(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
    guard !range.isEmpty else { return false }
    return isAlphanumeric(decodeUTF8(text, at: range.lowerBound).0)
}

private func isAlphanumeric(_ v: UInt32) -> Bool {
    let p = Unicode.Scalar(v)!.properties
    return p.isAlphabetic || p.numericType != nil
}

/// A JSON object key as part of a key path in a message: as it is when it is plain text,
/// quoted with control characters escaped otherwise (the message must stay one line).
private func keyName(_ bytes: [UInt8]) -> String {
    let plain = bytes.allSatisfy { $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    return plain ? String(decoding: bytes, as: UTF8.self) : quotedBytes(bytes)
}
