import Foundation

/// The model stage of a ``PipelineTokenizer``.
enum PipelineModel: Sendable {
    case unigram(UnigramModel)
    case bpe(BPEModel)
    /// Whole words looked up, else the unknown token.
    case wordLevel(vocabulary: ByteVocabulary, unknownID: Int?)

    func tokenize(_ word: [UInt8], into ids: inout [Int]) {
        switch self {
        case .unigram(let m): m.tokenize(word, into: &ids)
        case .bpe(let m): m.tokenize(word, into: &ids)
        case .wordLevel(let v, let unk):
            if let id = v.id(word) { ids.append(id) } else if let unk { ids.append(unk) }
        }
    }

    var vocabulary: ByteVocabulary {
        switch self {
        case .unigram(let m): return m.vocabulary
        case .bpe(let m): return m.vocabulary
        case .wordLevel(let v, _): return v
        }
    }

    /// The token of `id` as the model stores it.
    func token(_ id: Int) -> [UInt8]? {
        switch self {
        case .unigram(let m): return id >= 0 && id < m.pieces.count ? m.pieces[id] : nil
        case .bpe(let m): return m.vocabulary.token(id).map(Array.init)
        case .wordLevel(let v, _): return v.token(id).map(Array.init)
        }
    }

    var idLimit: Int {
        switch self {
        case .unigram(let m): return m.pieces.count
        case .bpe(let m): return m.vocabulary.idLimit
        case .wordLevel(let v, _): return v.idLimit
        }
    }
}

/// A Hugging Face `tokenizer.json` pipeline: added tokens kept whole, then normalizer,
/// pre-tokenizer, model (Unigram, BPE, byte-level BPE, WordLevel), post-processor template and
/// decoder, each stage as tokenizers implements it, so ids and decoded text equal
/// transformers' for the same folder (T5, mT5, ALBERT, XLM-R, GPT-2, RoBERTa, Llama, ...).
///
/// An unsupported component is a `ModelFileError.unsupported` naming the file, the key and the
/// type. `truncation` and `padding` sections are not applied (as transformers, which decides
/// them per call). Immutable and `Sendable` (the BPE word cache is internally locked).
public struct PipelineTokenizer: Tokenizer {
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: PipelineModel
    let template: PostProcessorTemplate
    let decoder: TokenDecoder?
    /// Tokens matched whole in the text, in the file's order.
    public let addedTokens: [AddedToken]
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher
    let addedTextByID: [Int: [UInt8]]
    let addedIDByText: [[UInt8]: Int]
    let specialIDs: Set<Int>
    /// transformers' `clean_up_tokenization_spaces` (never for BPE models, as transformers).
    let cleanUpSpaces: Bool

    /// Whether a tokenizer.json describes a WordPiece model (served by ``WordPieceTokenizer``).
    static func isBertWordPiece(_ bytes: [UInt8], path: String) throws -> Bool {
        let root = try JSONFields(try parseModelJSON(bytes, path: path), path: path)
        guard let model = try root.object("model") else { throw root.fail("model", "missing") }
        return try model.string("type") == "WordPiece"
    }

    /// Loads a `tokenizer.json` file (with the folder's `tokenizer_config.json` settings when
    /// one is beside it). Throws `ModelFileError`. Cost: O(file size).
    public init(tokenizerJSON url: URL) throws {
        let configURL = url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        let config = FileManager.default.fileExists(atPath: configURL.path) ? try TokenizerConfig(url: configURL) : TokenizerConfig()
        try self.init(tokenizerJSONBytes: try readModelFile(url), path: url.path, config: config)
    }

    /// Loads a `tokenizer.json` held in memory (`path` names it in errors). Cost: O(bytes).
    public init(tokenizerJSONBytes bytes: [UInt8], path: String = "tokenizer.json") throws {
        try self.init(tokenizerJSONBytes: bytes, path: path, config: TokenizerConfig())
    }

    init(tokenizerJSONBytes bytes: [UInt8], path: String, config: TokenizerConfig) throws {
        let root = try JSONFields(try parseModelJSON(bytes, path: path), path: path)
        guard let m = try root.object("model") else { throw root.fail("model", "missing") }
        let model = try PipelineTokenizer.readModel(m)
        let added = try readAddedTokens(root)
        let normalizer = try root.object("normalizer").map { try Normalizer($0) }
        let preTokenizer = try root.object("pre_tokenizer").map { try PreTokenizer($0) }
        let template =
            try root.object("post_processor").map {
                try PostProcessorTemplate($0, vocabulary: model.vocabulary, added: added)
            } ?? .none
        let decoder = try root.object("decoder").map { try TokenDecoder($0) }
        var isBPE = false
        if case .bpe = model { isBPE = true }
        self.init(
            normalizer: normalizer, preTokenizer: preTokenizer, model: model, template: template, decoder: decoder,
            addedTokens: added, cleanUpSpaces: config.cleanUpTokenizationSpaces && !isBPE)
    }

    /// GPT-2's slow files: `vocab.json` (token: id) and `merges.txt` ("a b" per line, after an
    /// optional `#version` line), with the byte-level pre-tokenizer and decoder; the config's
    /// bos/eos/unk/pad tokens are special added tokens.
    init(byteLevelVocabulary vocabURL: URL, merges mergesURL: URL, config: TokenizerConfig) throws {
        let vocab = try JSONFields(try readModelJSON(vocabURL), path: vocabURL.path)
        guard case .object(let members) = vocab.value else { throw vocab.fail("", "expected an object") }
        var entries: [(token: [UInt8], id: Int)] = []
        for (k, v) in members {
            guard let id = v.intValue, id >= 0, id < Int(Int32.max) else { throw vocab.fail(String(decoding: k, as: UTF8.self), "expected an id") }
            entries.append((k, id))
        }
        let vocabulary = try buildVocabulary(entries, path: vocabURL.path)
        let mergeBytes = try readModelFile(mergesURL)
        var merges: [([UInt8], [UInt8])] = []
        for (n, line) in mergeBytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            var l = Array(line)
            if l.last == 0x0D { l.removeLast() }
            if l.isEmpty || (n == 0 && l.starts(with: Array("#version".utf8))) { continue }
            let parts = l.split(separator: 0x20, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw ModelFileError.invalidValue(path: mergesURL.path, key: "line \(n + 1)", reason: "expected two tokens separated by one space")
            }
            merges.append((Array(parts[0]), Array(parts[1])))
        }
        let bpe = try BPEModel(
            vocabulary: vocabulary, merges: merges, unknownToken: nil, fuseUnknown: false, byteFallback: false,
            continuingSubwordPrefix: [], endOfWordSuffix: [], ignoreMerges: false, path: mergesURL.path)
        var added: [AddedToken] = []
        for name in [config.unkToken, config.bosToken, config.eosToken, config.padToken].compactMap({ $0 }) {
            if let id = vocabulary.id(Array(name.utf8)), !added.contains(where: { $0.id == id }) {
                added.append(AddedToken(content: name, id: id))
            }
        }
        self.init(
            normalizer: nil, preTokenizer: .byteLevel(addPrefixSpace: config.addPrefixSpace ?? false, useRegex: true),
            model: .bpe(bpe), template: .none, decoder: .byteLevel, addedTokens: added, cleanUpSpaces: false)
    }

    init(
        normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: PipelineModel, template: PostProcessorTemplate,
        decoder: TokenDecoder?, addedTokens: [AddedToken], cleanUpSpaces: Bool
    ) {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.template = template
        self.decoder = decoder
        self.addedTokens = addedTokens
        self.cleanUpSpaces = cleanUpSpaces
        self.rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        self.normalizedMatcher = AddedTokenMatcher(addedTokens.filter(\.normalized)) { normalizer?.apply($0) ?? $0 }
        var byID: [Int: [UInt8]] = [:], byText: [[UInt8]: Int] = [:]
        var special = Set<Int>()
        for t in addedTokens where byID[t.id] == nil {
            byID[t.id] = t.bytes
            if byText[t.bytes] == nil { byText[t.bytes] = t.id }
            if t.special { special.insert(t.id) }
        }
        self.addedTextByID = byID
        self.addedIDByText = byText
        self.specialIDs = special
    }

    static func readModel(_ m: JSONFields) throws -> PipelineModel {
        let type = try m.string("type") ?? ""
        switch type {
        case "Unigram":
            guard let items = try m.array("vocab") else { throw m.fail("vocab", "missing") }
            var pieces: [[UInt8]] = [], scores: [Double] = []
            pieces.reserveCapacity(items.count)
            scores.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                guard case .array(let pair) = item, pair.count == 2, case .string(let piece) = pair[0],
                    case .number(let text) = pair[1], let score = Double(String(decoding: text, as: UTF8.self)), score.isFinite
                else {
                    throw m.fail("vocab[\(i)]", "expected [piece, finite score]")
                }
                pieces.append(piece)
                scores.append(score)
            }
            guard pieces.count < Int(Int32.max) else { throw m.fail("vocab", "too many pieces") }
            let unk = try m.int("unk_id", in: 0...max(0, pieces.count - 1))
            if unk != nil && pieces.isEmpty { throw m.fail("unk_id", "the vocabulary is empty") }
            let byteFallback = try m.bool("byte_fallback") ?? false
            do {
                return .unigram(try UnigramModel(pieces: pieces, scores: scores, unknownID: unk, byteFallback: byteFallback))
            } catch let e as ByteVocabulary.BuildError {
                throw vocabularyError(e, path: m.path, key: m.key("vocab"))
            }
        case "BPE":
            let vocabulary = try readVocabularyObject(m, "vocab")
            guard let items = try m.array("merges") else { throw m.fail("merges", "missing") }
            var merges: [([UInt8], [UInt8])] = []
            merges.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                switch item {
                case .string(let s):
                    let parts = s.split(separator: 0x20, maxSplits: 1, omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw m.fail("merges[\(i)]", "expected \"left right\"") }
                    merges.append((Array(parts[0]), Array(parts[1])))
                case .array(let pair):
                    guard pair.count == 2, case .string(let a) = pair[0], case .string(let b) = pair[1] else {
                        throw m.fail("merges[\(i)]", "expected [left, right]")
                    }
                    merges.append((a, b))
                default:
                    throw m.fail("merges[\(i)]", "expected a string or a pair of strings")
                }
            }
            if try m.double("dropout").map({ $0 > 0 }) == true {
                throw ModelFileError.unsupported(path: m.path, what: "\(m.key("dropout")): BPE dropout (a training-time option)")
            }
            return .bpe(
                try BPEModel(
                    vocabulary: vocabulary, merges: merges, unknownToken: try m.bytes("unk_token"), fuseUnknown: try m.bool("fuse_unk") ?? false,
                    byteFallback: try m.bool("byte_fallback") ?? false, continuingSubwordPrefix: try m.bytes("continuing_subword_prefix") ?? [],
                    endOfWordSuffix: try m.bytes("end_of_word_suffix") ?? [], ignoreMerges: try m.bool("ignore_merges") ?? false, path: m.path))
        case "WordLevel":
            let vocabulary = try readVocabularyObject(m, "vocab")
            var unk: Int? = nil
            if let u = try m.bytes("unk_token") {
                guard let id = vocabulary.id(u) else { throw m.fail("unk_token", "\(quotedBytes(u)) is not in the vocabulary") }
                unk = id
            }
            return .wordLevel(vocabulary: vocabulary, unknownID: unk)
        default:
            throw unsupportedComponent(m, kind: "model", type: type, supported: "Unigram, BPE, WordLevel, WordPiece")
        }
    }

    // MARK: Tokenizer

    /// The model's pieces of `text` (added tokens included), without template tokens.
    /// Cost: linear in the text (BPE: n log n per word; Unigram: times the matches per position).
    public func pieceIDs(_ text: String) -> [Int] {
        var ids: [Int] = []
        var t = text
        t.withUTF8 { appendPieceIDs($0, into: &ids) }
        return ids
    }

    func appendPieceIDs(_ text: UnsafeBufferPointer<UInt8>, into ids: inout [Int]) {
        rawMatcher.split(text, 0..<text.count) { range, token in
            if let token {
                ids.append(token.id)
                return
            }
            if range.isEmpty { return }
            let raw = Array(text[range])
            let normalized = normalizer?.apply(raw) ?? raw
            normalized.withUnsafeBufferPointer { n in
                normalizedMatcher.split(n, 0..<n.count) { r, t in
                    if let t {
                        ids.append(t.id)
                        return
                    }
                    if r.isEmpty { return }
                    let piece = TextPiece(bytes: Array(n[r]), atStart: range.lowerBound == 0 && r.lowerBound == 0)
                    if let preTokenizer {
                        var pieces: [TextPiece] = []
                        preTokenizer.apply(piece, into: &pieces)
                        for p in pieces where !p.bytes.isEmpty { model.tokenize(p.bytes, into: &ids) }
                    } else {
                        model.tokenize(piece.bytes, into: &ids)
                    }
                }
            }
        }
    }

    /// `text` encoded: the model's pieces, inside the template when `addSpecialTokens`.
    public func encode(_ text: String, addSpecialTokens: Bool) -> Encoding {
        let a = pieceIDs(text)
        return (addSpecialTokens ? template : .none).apply(a, nil)
    }

    /// Two texts encoded in the template's pair form (the second has type id 1 without one).
    public func encode(_ text: String, pair: String, addSpecialTokens: Bool) -> Encoding {
        (addSpecialTokens ? template : .none).apply(pieceIDs(text), pieceIDs(pair))
    }

    /// tokenizers' `decode` (tokens through the decoder, special tokens left out when
    /// `skipSpecialTokens`), then transformers' clean-up when the config asks for it.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if skipSpecialTokens && specialIDs.contains(id) { continue }
            if let t = tokenBytes(id) { tokens.append(t) }
        }
        var bytes: [UInt8] = []
        if let decoder {
            for t in decoder.decodeChain(tokens) { bytes += t }
        } else {
            for (i, t) in tokens.enumerated() {
                if i > 0 { bytes.append(0x20) }
                bytes += t
            }
        }
        let s = String(decoding: bytes, as: UTF8.self)
        return cleanUpSpaces ? cleanUpTokenization(s) : s
    }

    func tokenBytes(_ id: Int) -> [UInt8]? { addedTextByID[id] ?? model.token(id) }

    /// The token with `id` (added tokens first), or nil.
    public func token(for id: Int) -> String? { tokenBytes(id).map { String(decoding: $0, as: UTF8.self) } }

    /// The id of the token spelled `token`, added tokens first.
    public func id(for token: String) -> Int? {
        let b = Array(token.utf8)
        return addedIDByText[b] ?? model.vocabulary.id(b)
    }

    /// Whether `id` is a special added token.
    public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

    /// One more than the largest id a token, added token or template token has.
    public var idLimit: Int {
        max(model.idLimit, (addedTokens.map(\.id).max() ?? -1) + 1, template.maxID + 1)
    }
}

/// tokenizer.json's `added_tokens`.
func readAddedTokens(_ root: JSONFields) throws -> [AddedToken] {
    var added: [AddedToken] = []
    if let items = try root.array("added_tokens") {
        for (i, item) in items.enumerated() {
            let t = try JSONFields(item, path: root.path, prefix: "added_tokens[\(i)]")
            guard let id = try t.int("id", in: 0...Int(Int32.max) - 1) else { throw t.fail("id", "missing") }
            guard let content = try t.bytes("content") else { throw t.fail("content", "missing") }
            added.append(
                AddedToken(
                    content: String(decoding: content, as: UTF8.self), id: id, special: try t.bool("special") ?? false,
                    normalized: try t.bool("normalized") ?? true, leftStrip: try t.bool("lstrip") ?? false,
                    rightStrip: try t.bool("rstrip") ?? false, singleWord: try t.bool("single_word") ?? false))
        }
    }
    return added
}

/// A `{token: id}` object as a vocabulary.
func readVocabularyObject(_ m: JSONFields, _ key: String) throws -> ByteVocabulary {
    guard case .object(let members)? = m.raw(key) else { throw m.fail(key, "missing or not an object of token: id") }
    var entries: [(token: [UInt8], id: Int)] = []
    entries.reserveCapacity(members.count)
    for (k, v) in members {
        guard let id = v.intValue, id >= 0, id < Int(Int32.max) else {
            throw m.fail(key, "token \(quotedBytes(k)) has id \(v.typeName == "a number" ? "out of range" : v.typeName)")
        }
        entries.append((k, id))
    }
    return try buildVocabulary(entries, path: m.path, key: m.key(key))
}

func buildVocabulary(_ entries: [(token: [UInt8], id: Int)], path: String, key: String = "vocabulary") throws -> ByteVocabulary {
    do {
        return try ByteVocabulary(entries)
    } catch let e as ByteVocabulary.BuildError {
        throw vocabularyError(e, path: path, key: key)
    }
}

func vocabularyError(_ e: ByteVocabulary.BuildError, path: String, key: String) -> ModelFileError {
    switch e {
    case .duplicateToken(let t):
        return ModelFileError.invalidValue(path: path, key: key, reason: "token \(quotedBytes(t)) appears twice")
    case .duplicateID(let id, let a, let b):
        return ModelFileError.invalidValue(path: path, key: key, reason: "tokens \(quotedBytes(a)) and \(quotedBytes(b)) share id \(id)")
    case .badID(let id, let t):
        return ModelFileError.invalidValue(path: path, key: key, reason: "token \(quotedBytes(t)) has id \(id), out of range")
    }
}
