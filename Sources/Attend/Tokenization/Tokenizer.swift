import Foundation

/// A text tokenizer as transformers uses it: text to ids (with the template's special tokens)
/// and ids back to text, with the same results as the Hugging Face implementation for the
/// same files. Conforming types: ``WordPieceTokenizer`` (BERT), ``PipelineTokenizer`` (any
/// `tokenizer.json`: Unigram, BPE, byte-level BPE), ``SentencePieceTokenizer`` (`.model` /
/// `.spm` files) and ``MarianTokenizer``. ``loadTokenizer(directory:)`` picks one for a folder.
///
/// Implementations are immutable and `Sendable`: encode and decode from any number of threads.
/// No input text or id list traps: unknown ids are skipped when decoding.
public protocol Tokenizer: Sendable {
    /// `text` as the model sees it: ids, token types, attention mask and special-token mask,
    /// with the template's special tokens when `addSpecialTokens` (transformers' default).
    /// Cost: about linear in the text's length.
    func encode(_ text: String, addSpecialTokens: Bool) -> Encoding

    /// A pair of texts (question and context, sentence A and B) in the template's pair form.
    func encode(_ text: String, pair: String, addSpecialTokens: Bool) -> Encoding

    /// The text of `ids`, as transformers' `decode(ids, skip_special_tokens=...)`. Ids no token
    /// has are left out. Cost: linear in the number of ids.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String

    /// The token with `id` (as `convert_ids_to_tokens` shows it), or nil when none has it.
    func token(for id: Int) -> String?

    /// The id of the token spelled exactly `token` (added tokens included), or nil.
    func id(for token: String) -> Int?

    /// Whether `id` is a special token (left out by `decode` with `skipSpecialTokens`).
    func isSpecial(_ id: Int) -> Bool

    /// One more than the largest id the tokenizer can produce.
    var idLimit: Int { get }
}

extension Tokenizer {
    /// `text` with the template's special tokens (transformers' `tokenizer(text)`).
    public func encode(_ text: String) -> Encoding { encode(text, addSpecialTokens: true) }

    /// Text given as bytes: invalid UTF-8 is read with U+FFFD for each bad sequence (as
    /// Python's `errors="replace"`), then encoded as ``encode(_:addSpecialTokens:)``.
    public func encode(bytes: [UInt8], addSpecialTokens: Bool = true) -> Encoding {
        encode(String(decoding: bytes, as: UTF8.self), addSpecialTokens: addSpecialTokens)
    }

    /// Several texts, each encoded by ``encode(_:addSpecialTokens:)``, unpadded.
    public func encode(batch texts: [String], addSpecialTokens: Bool = true) -> [Encoding] {
        texts.map { encode($0, addSpecialTokens: addSpecialTokens) }
    }

    /// The text of `ids` without special tokens (transformers' `decode(ids,
    /// skip_special_tokens=True)`).
    public func decode(_ ids: [Int]) -> String { decode(ids, skipSpecialTokens: true) }

    /// The tokens of `ids` (nil for an id no token has).
    public func tokens(for ids: [Int]) -> [String?] { ids.map { token(for: $0) } }
}

/// Builds the tokenizer of a model folder as transformers' `AutoTokenizer` would:
///
/// 1. `tokenizer_config.json` naming `MarianTokenizer` (which has no fast form): ``MarianTokenizer``
///    from `source.spm`, `target.spm` and `vocab.json`;
/// 2. else `tokenizer.json`: a BERT WordPiece file gives ``WordPieceTokenizer``, any other
///    ``PipelineTokenizer``;
/// 3. else the slow tokenizer's files: `vocab.txt` (WordPiece), `spiece.model` /
///    `tokenizer.model` / `sentencepiece.bpe.model` (T5 and Llama: the pipeline transformers
///    converts them to; others ``SentencePieceTokenizer``), `vocab.json` +
///    `merges.txt` (byte-level BPE, GPT-2's pipeline).
///
/// Throws `ModelFileError` naming the file (and key and type, for an unsupported component).
/// Cost: reading and indexing the files.
public func loadTokenizer(directory: URL) throws -> any Tokenizer {
    let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
    let fm = FileManager.default
    func file(_ name: String) -> URL? {
        let u = directory.appendingPathComponent(name)
        return fm.fileExists(atPath: u.path) ? u : nil
    }
    guard fm.fileExists(atPath: directory.path) else { throw ModelFileError.missingFile(path: directory.path) }
    let config = try file("tokenizer_config.json").map { try TokenizerConfig(url: $0) } ?? TokenizerConfig()
    if config.tokenizerClass == "MarianTokenizer" || (file("source.spm") != nil && file("tokenizer.json") == nil) {
        return try MarianTokenizer(directory: directory)
    }
    if let json = file("tokenizer.json") {
        let bytes = try readModelFile(json)
        if try PipelineTokenizer.isBertWordPiece(bytes, path: json.path) {
            return try WordPieceTokenizer(tokenizerJSONBytes: bytes, path: json.path)
        }
        return try PipelineTokenizer(tokenizerJSONBytes: bytes, path: json.path, config: config)
    }
    if file("vocab.txt") != nil { return try WordPieceTokenizer(directory: directory) }
    for name in ["spiece.model", "tokenizer.model", "sentencepiece.bpe.model"] {
        if let u = file(name) {
            let model = try SentencePieceModel(contentsOf: u)
            if let converted = try PipelineTokenizer(convertingSentencePiece: model, config: config, path: u.path) {
                return converted
            }
            return try SentencePieceTokenizer(model: model, path: u.path, config: config)
        }
    }
    if let vocab = file("vocab.json"), let merges = file("merges.txt") {
        return try PipelineTokenizer(byteLevelVocabulary: vocab, merges: merges, config: config)
    }
    throw ModelFileError.missingFile(
        path: directory.appendingPathComponent("tokenizer.json").path
            + " (nor vocab.txt, spiece.model, tokenizer.model, source.spm or vocab.json + merges.txt)")
}

/// The settings of `tokenizer_config.json` that change what a tokenizer produces.
struct TokenizerConfig: Sendable {
    var tokenizerClass: String? = nil
    var cleanUpTokenizationSpaces = false
    var addBosToken: Bool? = nil
    var addEosToken: Bool? = nil
    var bosToken: String? = nil
    var eosToken: String? = nil
    var unkToken: String? = nil
    var padToken: String? = nil
    var extraIDs: Int = 0
    var addPrefixSpace: Bool? = nil
    var legacy: Bool? = nil

    init() {}

    init(url: URL) throws {
        let c = try JSONFields(try readModelJSON(url), path: url.path)
        tokenizerClass = try c.string("tokenizer_class")
        cleanUpTokenizationSpaces = try c.bool("clean_up_tokenization_spaces") ?? false
        addBosToken = try c.bool("add_bos_token")
        addEosToken = try c.bool("add_eos_token")
        bosToken = try TokenizerConfig.tokenName(c, "bos_token")
        eosToken = try TokenizerConfig.tokenName(c, "eos_token")
        unkToken = try TokenizerConfig.tokenName(c, "unk_token")
        padToken = try TokenizerConfig.tokenName(c, "pad_token")
        extraIDs = try c.int("extra_ids", in: 0...100_000) ?? 0
        addPrefixSpace = try c.bool("add_prefix_space")
        legacy = try c.bool("legacy")
    }

    /// A token setting: a string, or an object with `content`.
    static func tokenName(_ c: JSONFields, _ key: String) throws -> String? {
        guard let v = c.raw(key) else { return nil }
        if let s = v.stringValue { return s }
        if let o = try c.object(key), let s = try o.string("content") { return s }
        throw c.fail(key, "expected a string or an object with \"content\"")
    }
}

/// transformers' `clean_up_tokenization`: removes the space before `.`, `?`, `!`, `,` and a
/// few English contractions. Applied by `decode` when `clean_up_tokenization_spaces` is set.
func cleanUpTokenization(_ s: String) -> String {
    var bytes = Array(s.utf8)
    for (from, to) in [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
        (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ] {
        bytes = replaceAll(bytes, Array(from.utf8), Array(to.utf8))
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// `bytes` with every non-overlapping occurrence of `pattern` (left to right) replaced by
/// `content`, byte for byte (never by canonical equivalence). Cost: O(bytes x pattern).
func replaceAll(_ bytes: [UInt8], _ pattern: [UInt8], _ content: [UInt8]) -> [UInt8] {
    guard !pattern.isEmpty, bytes.count >= pattern.count else { return bytes }
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    let first = pattern[0]
    while i < bytes.count {
        if bytes[i] == first && i + pattern.count <= bytes.count && bytes[i..<(i + pattern.count)].elementsEqual(pattern) {
            out += content
            i += pattern.count
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return out
}
