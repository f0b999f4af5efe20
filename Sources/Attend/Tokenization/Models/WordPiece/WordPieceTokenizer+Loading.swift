import Foundation

// Loading a WordPiece tokenizer: tokenizer.json, vocab.txt (+ tokenizer_config.json) or a
// vocabulary in memory.

extension WordPieceTokenizer {
    // MARK: Loading

    /// Loads a model folder's tokenizer: `tokenizer.json` when present (the reference), else
    /// `vocab.txt` with the settings of `tokenizer_config.json` (if any). Throws
    /// `ModelFileError` naming the file at fault. Cost: O(file sizes).
    public init(directory: URL) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        let json = directory.appendingPathComponent("tokenizer.json")
        let vocab = directory.appendingPathComponent("vocab.txt")
        if FileManager.default.fileExists(atPath: json.path) {
            try self.init(tokenizerJSON: json)
        } else if FileManager.default.fileExists(atPath: vocab.path) {
            let config = directory.appendingPathComponent("tokenizer_config.json")
            if FileManager.default.fileExists(atPath: config.path) {
                let c = try JSONFields(try readModelJSON(config), path: config.path)
                let n = BERTNormalization(
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
        var normalization = BERTNormalization(cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false)
        if let n = try root.object("normalizer") {
            let type = try n.string("type") ?? "(none)"
            guard type == "BertNormalizer" else {
                throw ModelFileError.unsupported(path: path, what: "normalizer \(SafeTensorsError.quoted(type)) (only BertNormalizer is implemented)")
            }
            normalization = BERTNormalization(
                cleanText: try n.bool("clean_text") ?? true, handleChineseChars: try n.bool("handle_chinese_chars") ?? true,
                stripAccents: try n.bool("strip_accents"), lowercase: try n.bool("lowercase") ?? true)
        }
        // Pre-tokenizer.
        if let p = try root.object("pre_tokenizer") {
            let type = try p.string("type") ?? "(none)"
            guard type == "BertPreTokenizer" else {
                throw ModelFileError.unsupported(
                    path: path, what: "pre-tokenizer \(SafeTensorsError.quoted(type)) (only BertPreTokenizer is implemented)")
            }
        } else {
            throw ModelFileError.unsupported(path: path, what: "no pre_tokenizer (only BertPreTokenizer is implemented)")
        }
        // Added tokens.
        let added = try readAddedTokens(root)
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
        try self.init(
            vocabulary: vocabulary, normalization: normalization, unknownToken: unk, prefix: prefix,
            maxInputCharsPerWord: maxChars, addedTokens: added, template: template, decoder: decoder,
            padID: padID, path: path)
    }

    /// Loads a BERT `vocab.txt` (one token per line; line n has id n) and sets up the BERT
    /// pipeline around it: ``BERTNormalization`` `normalization`, the special tokens `[PAD]`,
    /// `[UNK]`, `[CLS]`, `[SEP]` and `[MASK]` (those the vocabulary has) matched whole in the
    /// text, the `[CLS] A [SEP] B [SEP]` template and the WordPiece decoder — what
    /// transformers' `BertTokenizerFast` builds from the same file. Throws `ModelFileError`
    /// (a duplicate token names its lines).
    public init(vocabularyFile url: URL, normalization: BERTNormalization = BERTNormalization(), unknownToken: String = "[UNK]") throws {
        try self.init(
            vocabularyFileBytes: try readModelFile(url), normalization: normalization,
            unknownToken: unknownToken, path: url.path)
    }

    /// Loads a `vocab.txt` held in memory: the same checks, errors and result as
    /// ``init(vocabularyFile:normalization:unknownToken:)``, with `path` standing for the
    /// file's path in error messages. Cost: O(bytes).
    public init(
        vocabularyFileBytes bytes: [UInt8], normalization: BERTNormalization = BERTNormalization(),
        unknownToken: String = "[UNK]", path: String = "vocab.txt"
    ) throws {
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
    public init(vocabulary: [String], normalization: BERTNormalization = BERTNormalization(), unknownToken: String = "[UNK]") throws {
        try self.init(
            vocabularyBytes: vocabulary.map { Array($0.utf8) }, normalization: normalization,
            unknownToken: unknownToken, path: "(vocabulary)")
    }

    private init(vocabularyBytes lines: [[UInt8]], normalization: BERTNormalization, unknownToken: String, path: String) throws {
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
        try self.init(
            vocabulary: vocabulary, normalization: normalization, unknownToken: unknownToken, prefix: "##",
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
                throw ModelFileError.invalidValue(
                    path: path, key: "vocabulary", reason: "tokens \(quotedBytes(a)) and \(quotedBytes(b)) share id \(id)")
            case .badID(let id, let t):
                throw ModelFileError.invalidValue(path: path, key: "vocabulary", reason: "token \(quotedBytes(t)) has id \(id), out of range")
            }
        }
    }

    private init(
        vocabulary: ByteVocabulary, normalization: BERTNormalization, unknownToken: String, prefix: String,
        maxInputCharsPerWord: Int, addedTokens: [AddedToken], template: PostProcessorTemplate,
        decoder: WordPieceDecoder?, padID: Int?, path: String
    ) throws {
        guard let unkID = vocabulary.id(Array(unknownToken.utf8)) else {
            throw ModelFileError.invalidValue(
                path: path, key: "vocabulary", reason: "the unknown token \(SafeTensorsError.quoted(unknownToken)) is not in the vocabulary")
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

}
