import Foundation

/// transformers' `MarianTokenizer` (opus-mt): SentencePiece pieces of `source.spm`, mapped to
/// ids through `vocab.json` (a piece it lacks is `<unk>`), `</s>` appended. `</s>`, `<unk>` and
/// `<pad>` typed in the text are kept whole, and a leading language code `>>xx<<` is one
/// token. Decoding maps ids back through the vocabulary and joins the pieces with the
/// SentencePiece decoder — `source.spm`'s when source and target share `vocab.json`
/// (`separate_vocabs` false, as transformers 5 does), else `target.spm` with `target_vocab.json`.
/// The Moses punctuation normalizer transformers applies only when `sacremoses` is installed
/// is not applied.
public struct MarianTokenizer: Tokenizer {
    let source: SentencePieceProcessor
    let target: SentencePieceProcessor
    let vocabulary: ByteVocabulary
    let decodeVocabulary: ByteVocabulary
    let separateVocabularies: Bool
    let matcher: AddedTokenMatcher
    /// The ids of `</s>`, `<unk>` and `<pad>`.
    public let eosID: Int
    /// The id of `<unk>` (pieces the vocabulary lacks).
    public let unknownID: Int
    /// The id of `<pad>`, when the vocabulary has it.
    public let padID: Int?
    let specialIDs: Set<Int>

    /// Loads `source.spm`, `target.spm`, `vocab.json` (and `target_vocab.json` with
    /// `separate_vocabs`) and `tokenizer_config.json`'s token names. Throws `ModelFileError`.
    public init(directory: URL) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        func url(_ n: String) -> URL { directory.appendingPathComponent(n) }
        let configURL = url("tokenizer_config.json")
        var separate = false
        var eos = "</s>", unk = "<unk>", pad = "<pad>"
        var targetVocabName = "target_vocab.json"
        if FileManager.default.fileExists(atPath: configURL.path) {
            let c = try JSONFields(try readModelJSON(configURL), path: configURL.path)
            separate = try c.bool("separate_vocabs") ?? false
            eos = try TokenizerConfig.tokenName(c, "eos_token") ?? eos
            unk = try TokenizerConfig.tokenName(c, "unk_token") ?? unk
            pad = try TokenizerConfig.tokenName(c, "pad_token") ?? pad
            if let t = try c.string("target_vocab_file") { targetVocabName = t }
        }
        let sourceURL = url("source.spm"), targetURL = url("target.spm")
        source = try SentencePieceProcessor(model: try SentencePieceModel(contentsOf: sourceURL), path: sourceURL.path)
        target = try SentencePieceProcessor(model: try SentencePieceModel(contentsOf: targetURL), path: targetURL.path)
        let vocabURL = url("vocab.json")
        let v = try JSONFields(try readModelJSON(vocabURL), path: vocabURL.path)
        vocabulary = try readVocabularyObject(JSONFields(.object([(Array("vocab".utf8), v.value)]), path: vocabURL.path), "vocab")
        separateVocabularies = separate
        if separate {
            let tURL = url(targetVocabName)
            let t = try JSONFields(try readModelJSON(tURL), path: tURL.path)
            decodeVocabulary = try readVocabularyObject(JSONFields(.object([(Array("vocab".utf8), t.value)]), path: tURL.path), "vocab")
        } else {
            decodeVocabulary = vocabulary
        }
        guard let u = vocabulary.id(Array(unk.utf8)) else {
            throw ModelFileError.invalidValue(
                path: vocabURL.path, key: "(top level)", reason: "the unknown token \(SafeTensorsError.quoted(unk)) is not in the vocabulary")
        }
        guard let e = vocabulary.id(Array(eos.utf8)) else {
            throw ModelFileError.invalidValue(
                path: vocabURL.path, key: "(top level)", reason: "the end token \(SafeTensorsError.quoted(eos)) is not in the vocabulary")
        }
        unknownID = u
        eosID = e
        padID = vocabulary.id(Array(pad.utf8))
        var tokens = [AddedToken(content: eos, id: e), AddedToken(content: unk, id: u)]
        if let padID { tokens.append(AddedToken(content: pad, id: padID)) }
        matcher = AddedTokenMatcher(tokens)
        specialIDs = Set(tokens.map(\.id))
    }

    /// `text`'s ids: added tokens whole, a leading language code as one token, the rest as
    /// pieces of `source.spm` (or, for `target`, of `target.spm` through the target vocabulary,
    /// transformers' target mode).
    func pieceIDs(_ text: String, target: Bool = false) -> [Int] {
        let spm = target ? self.target : source
        let vocabulary = target && separateVocabularies ? decodeVocabulary : self.vocabulary
        var ids: [Int] = []
        let bytes = Array(text.utf8)
        bytes.withUnsafeBufferPointer { t in
            matcher.split(t, 0..<t.count) { r, token in
                if let token {
                    ids.append(token.id)
                    return
                }
                if r.isEmpty { return }
                var chunk = Array(t[r])
                // A leading ">>xx<<" language code is one token.
                if chunk.starts(with: [0x3E, 0x3E]), let close = findBytes(chunk, [0x3C, 0x3C]) {
                    let code = Array(chunk[0..<(close + 2)])
                    ids.append(vocabulary.id(code) ?? unknownID)
                    chunk.removeFirst(close + 2)
                }
                for p in spm.encode(chunk) { ids.append(vocabulary.id(p.piece) ?? unknownID) }
            }
        }
        return ids
    }

    /// `text`'s pieces as vocabulary ids, `</s>` appended when `addSpecialTokens`.
    /// Cost: SentencePiece's, linear in the text.
    public func encode(_ text: String, addSpecialTokens: Bool) -> Encoding {
        let a = pieceIDs(text)
        return (addSpecialTokens ? template : .none).apply(a, nil)
    }

    /// `text` as a target (transformers' `tokenizer(text_target=text)`): pieces of
    /// `target.spm` mapped through the target vocabulary (`target_vocab.json` with
    /// `separate_vocabs`, else `vocab.json`), `</s>` appended when `addSpecialTokens`.
    /// Cost: SentencePiece's, linear in the text.
    public func encodeTarget(_ text: String, addSpecialTokens: Bool = true) -> Encoding {
        (addSpecialTokens ? template : .none).apply(pieceIDs(text, target: true), nil)
    }

    /// Both texts' pieces and one `</s>`, as `build_inputs_with_special_tokens` (all type 0).
    public func encode(_ text: String, pair: String, addSpecialTokens: Bool) -> Encoding {
        (addSpecialTokens ? template : .none).apply(pieceIDs(text), pieceIDs(pair))
    }

    private var template: PostProcessorTemplate {
        PostProcessorTemplate(
            single: [.first(typeID: 0), .special(ids: [eosID], typeID: 0)],
            pair: [.first(typeID: 0), .second(typeID: 0), .special(ids: [eosID], typeID: 0)])
    }

    /// transformers' `convert_tokens_to_string`: special tokens written as they are (followed
    /// by a space), the pieces between them through the SentencePiece decoder, "▁" as spaces,
    /// whitespace stripped at both ends.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        let spm = separateVocabularies ? target : source
        var out = ""
        var run: [[UInt8]] = []
        for id in ids {
            if skipSpecialTokens && specialIDs.contains(id) { continue }
            guard let piece = tokenBytes(id) else { continue }
            if specialIDs.contains(id) {
                out += spm.decode(pieces: run) + String(decoding: piece, as: UTF8.self) + " "
                run.removeAll()
            } else {
                run.append(piece)
            }
        }
        out += spm.decode(pieces: run)
        out = String(decoding: replaceAll(Array(out.utf8), SentencePieceProcessor.space, [0x20]), as: UTF8.self)
        return pythonStrip(out)
    }

    /// The token of `id`: the vocabulary's, else the decoding model's piece.
    func tokenBytes(_ id: Int) -> [UInt8]? {
        if let t = decodeVocabulary.token(id) { return Array(t) }
        let spm = separateVocabularies ? target : source
        return spm.model.pieces[safe: id]
    }

    /// The vocabulary's token with `id` (else the decoding model's piece), or nil.
    public func token(for id: Int) -> String? { tokenBytes(id).map { String(decoding: $0, as: UTF8.self) } }

    /// The vocabulary id of `token`, or nil.
    public func id(for token: String) -> Int? { vocabulary.id(Array(token.utf8)) }

    /// Whether `id` is `</s>`, `<unk>` or `<pad>`.
    public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

    /// One more than the largest vocabulary id.
    public var idLimit: Int { max(vocabulary.idLimit, decodeVocabulary.idLimit) }
}

/// The index of the first occurrence of `pattern` in `bytes`, or nil.
func findBytes(_ bytes: [UInt8], _ pattern: [UInt8]) -> Int? {
    guard !pattern.isEmpty, bytes.count >= pattern.count else { return nil }
    for i in 0...(bytes.count - pattern.count) where bytes[i..<(i + pattern.count)].elementsEqual(pattern) { return i }
    return nil
}

/// Python's `str.strip()`: whitespace (Unicode White_Space and the ASCII separators 0x1C-0x1F)
/// removed at both ends.
func pythonStrip(_ s: String) -> String {
    func isSpace(_ c: Unicode.Scalar) -> Bool { isUnicodeWhitespace(c.value) || (0x1C...0x1F).contains(c.value) }
    let scalars = Array(s.unicodeScalars)
    var lo = 0, hi = scalars.count
    while lo < hi && isSpace(scalars[lo]) { lo += 1 }
    while hi > lo && isSpace(scalars[hi - 1]) { hi -= 1 }
    var v = String.UnicodeScalarView()
    v.append(contentsOf: scalars[lo..<hi])
    return String(v)
}
