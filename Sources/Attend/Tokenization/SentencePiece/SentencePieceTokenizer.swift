import Foundation

/// A tokenizer read from a SentencePiece model file alone (`spiece.model`, `tokenizer.model`)
/// when a folder has no `tokenizer.json`: SentencePiece's own encoding and decoding, control
/// pieces (`</s>`, `<pad>`, ...) and user-defined pieces matched whole in the text, and the
/// special tokens the folder's tokenizer class adds (T5: `</s>` at the end; Llama: `<s>` in
/// front; otherwise `add_bos_token` / `add_eos_token` of tokenizer_config.json).
public struct SentencePieceTokenizer: Tokenizer {
    let processor: SentencePieceProcessor
    let matcher: AddedTokenMatcher
    let specialIDs: Set<Int>
    let prefix: [Int]
    let suffix: [Int]
    /// Extra ids (`<extra_id_N>`, T5) beyond the model's pieces: id -> text.
    let extra: [Int: [UInt8]]
    let extraByText: [[UInt8]: Int]

    /// Reads a model file; `tokenizer_config.json` beside it (if any) chooses the special tokens.
    public init(modelFile url: URL) throws {
        let configURL = url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        let config = FileManager.default.fileExists(atPath: configURL.path) ? try TokenizerConfig(url: configURL) : TokenizerConfig()
        try self.init(modelFile: url, config: config)
    }

    init(modelFile url: URL, config: TokenizerConfig) throws {
        try self.init(model: try SentencePieceModel(contentsOf: url), path: url.path, config: config)
    }

    init(model: SentencePieceModel, path: String, config: TokenizerConfig) throws {
        processor = try SentencePieceProcessor(model: model, path: path)
        var tokens: [AddedToken] = []
        var special = Set<Int>()
        for (i, t) in model.types.enumerated() where t == .control || t == .unknown || t == .userDefined {
            let isSpecial = t != .userDefined
            if isSpecial { special.insert(i) }
            tokens.append(AddedToken(content: String(decoding: model.pieces[i], as: UTF8.self), id: i, special: isSpecial))
        }
        // T5's sentinels: <extra_id_0> is the last id, counting down.
        var extra: [Int: [UInt8]] = [:], extraByText: [[UInt8]: Int] = [:]
        let n = model.pieces.count
        for k in 0..<config.extraIDs {
            let text = Array("<extra_id_\(k)>".utf8)
            let id = n + config.extraIDs - 1 - k
            extra[id] = text
            extraByText[text] = id
            special.insert(id)
            tokens.append(AddedToken(content: String(decoding: text, as: UTF8.self), id: id))
        }
        matcher = AddedTokenMatcher(tokens)
        specialIDs = special
        self.extra = extra
        self.extraByText = extraByText
        let cls = config.tokenizerClass ?? ""
        let addBos = config.addBosToken ?? cls.hasPrefix("Llama")
        let addEos = config.addEosToken ?? cls.hasPrefix("T5")
        prefix = addBos && model.bosID >= 0 && model.bosID < n ? [model.bosID] : []
        suffix = addEos && model.eosID >= 0 && model.eosID < n ? [model.eosID] : []
    }

    func pieceIDs(_ text: String) -> [Int] {
        var ids: [Int] = []
        let bytes = Array(text.utf8)
        bytes.withUnsafeBufferPointer { t in
            matcher.split(t, 0..<t.count) { r, token in
                if let token {
                    ids.append(token.id)
                } else if !r.isEmpty {
                    for p in processor.encode(Array(t[r])) { ids.append(p.id) }
                }
            }
        }
        return ids
    }

    /// `text` as SentencePiece encodes it (control and user-defined pieces typed in the text kept
    /// whole), with the folder's special tokens around it when `addSpecialTokens`. Cost: about
    /// linear in the text's length.
    public func encode(_ text: String, addSpecialTokens: Bool) -> Encoding {
        let a = pieceIDs(text)
        return template(addSpecialTokens).apply(a, nil)
    }

    /// Both texts, each with the special tokens when `addSpecialTokens` (the second with token type 1).
    public func encode(_ text: String, pair: String, addSpecialTokens: Bool) -> Encoding {
        template(addSpecialTokens).apply(pieceIDs(text), pieceIDs(pair))
    }

    private func template(_ add: Bool) -> PostProcessorTemplate {
        guard add else { return .none }
        var single: [PostProcessorTemplate.Piece] = [], pair: [PostProcessorTemplate.Piece] = []
        if !prefix.isEmpty { single.append(.special(ids: prefix, typeID: 0)) }
        single.append(.first(typeID: 0))
        if !suffix.isEmpty { single.append(.special(ids: suffix, typeID: 0)) }
        pair = single
        if !prefix.isEmpty { pair.append(.special(ids: prefix, typeID: 1)) }
        pair.append(.second(typeID: 1))
        if !suffix.isEmpty { pair.append(.special(ids: suffix, typeID: 1)) }
        return PostProcessorTemplate(single: single, pair: pair)
    }

    /// The text of `ids` through SentencePiece's decoder; control pieces and extra ids are written as
    /// they are unless `skipSpecialTokens`. Ids no piece has are left out. Cost: linear in the ids.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var out = ""
        var run: [[UInt8]] = []
        for id in ids {
            if skipSpecialTokens && specialIDs.contains(id) { continue }
            if let e = extra[id] {
                out += processor.decode(pieces: run) + String(decoding: e, as: UTF8.self)
                run.removeAll()
            } else if let p = processor.model.pieces[safe: id] {
                if processor.model.types[id] == .control {
                    out += processor.decode(pieces: run) + String(decoding: p, as: UTF8.self)
                    run.removeAll()
                } else {
                    run.append(p)
                }
            }
        }
        return out + processor.decode(pieces: run)
    }

    /// The piece of `id` (or its `<extra_id_N>` text), or nil.
    public func token(for id: Int) -> String? {
        if let e = extra[id] { return String(decoding: e, as: UTF8.self) }
        return processor.model.pieces[safe: id].map { String(decoding: $0, as: UTF8.self) }
    }

    /// The id of the piece (or extra id) spelled exactly `token`, or nil.
    public func id(for token: String) -> Int? {
        let b = Array(token.utf8)
        return extraByText[b] ?? processor.vocabulary.id(b)
    }

    /// Whether `id` is a special token (a control or unknown piece, or one the folder's configuration
    /// marks special): left out by `decode` with `skipSpecialTokens`.
    public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

    /// The model's pieces plus the extra ids.
    public var idLimit: Int { processor.model.pieces.count + extra.count }
}
