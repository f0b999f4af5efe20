import Foundation

/// How token vectors become one sentence vector (sentence-transformers' `Pooling` module).
public enum SentencePooling: String, Sendable, CaseIterable {
    /// The first token's (`[CLS]`) vector.
    case cls
    /// The element-wise maximum over real tokens.
    case max
    /// The mean over real tokens (the attention mask's 1s).
    case mean
    /// The sum over real tokens divided by the square root of their number.
    case meanSqrtLength
    /// The last real token's vector.
    case lastToken
}

/// Sentence embeddings the sentence-transformers way, read from a model folder: tokenize
/// (truncating to `maxLength`), run the BERT encoder, pool over the attention mask, and
/// L2-normalize when the folder has a `Normalize` module. For all-MiniLM-L6-v2: mean pooling
/// over at most 256 tokens, then unit length; 384 dimensions.
///
/// Texts are sorted by length and run in batches (as sentence-transformers does), each batch
/// as one token matrix without padding; the result is in the input's order, and equal (to
/// float rounding) to embedding each text alone. Immutable and `Sendable`: any number of
/// tasks may call one embedder at once, each getting what a call alone returns
/// (``embedAsync(_:batchSize:compute:priority:)`` runs off the caller's thread; see
/// <doc:Concurrency> for how concurrent calls share the worker threads).
public struct SentenceEmbedder: Sendable {
    /// The encoder.
    public let model: BERTModel
    /// The tokenizer.
    public let tokenizer: WordPieceTokenizer
    /// Pooling modes, concatenated in this order (sentence-transformers' order) when several.
    public let pooling: [SentencePooling]
    /// Whether vectors are scaled to unit length (a `Normalize` module).
    public let normalize: Bool
    /// Texts are cut to this many tokens, `[CLS]` and `[SEP]` included
    /// (sentence_bert_config.json's `max_seq_length`, at most the model's positions).
    public let maxLength: Int
    /// Lowercase texts before tokenizing (sentence_bert_config.json's `do_lower_case`), with
    /// Swift's `lowercased()` (Python's `str.lower`, which sentence-transformers uses, can
    /// differ for context-dependent rules such as a word-final Σ).
    public let lowercasesInput: Bool

    /// Width of a sentence vector: d times the number of pooling modes.
    public var dimension: Int { model.hiddenSize * pooling.count }

    /// Assembles an embedder; `maxLength` (at most the model's positions) must leave room for
    /// text besides the template's special tokens, and every
    /// id and token type the tokenizer can produce must have an embedding row (all checked:
    /// thrown `CheckpointError.invalidConfig`). `maxLength` nil means the model's positions.
    public init(
        model: BERTModel, tokenizer: WordPieceTokenizer, pooling: [SentencePooling] = [.mean],
        normalize: Bool = true, maxLength: Int? = nil, lowercasesInput: Bool = false
    ) throws {
        let limit = model.config.maxPositionEmbeddings
        let length = min(maxLength ?? limit, limit)
        guard length > tokenizer.specialTokenCount() else {
            throw CheckpointError.invalidConfig(
                "max length \(length) leaves no room for text besides \(tokenizer.specialTokenCount()) special tokens")
        }
        guard !pooling.isEmpty else { throw CheckpointError.invalidConfig("no pooling mode") }
        guard tokenizer.idLimit <= model.config.vocabSize else {
            throw CheckpointError.invalidConfig(
                "the tokenizer has ids up to \(tokenizer.idLimit - 1) but the model's vocabulary has \(model.config.vocabSize) rows")
        }
        guard tokenizer.typeIDLimit() <= model.config.typeVocabSize else {
            throw CheckpointError.invalidConfig(
                "the tokenizer's template uses token type \(tokenizer.typeIDLimit() - 1) but the model has \(model.config.typeVocabSize) token types")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.maxLength = length
        self.lowercasesInput = lowercasesInput
    }

    /// Loads a sentence-transformers folder: `modules.json` (Transformer, Pooling, and an
    /// optional Normalize module), the pooling module's `config.json`,
    /// `sentence_bert_config.json` (`max_seq_length`, `do_lower_case`), the model
    /// (``BERTModel/init(directory:)``) and the tokenizer (``WordPieceTokenizer/init(directory:)``).
    /// Without `modules.json` the folder is a plain BERT and gets mean pooling without
    /// normalization (sentence-transformers' fallback). Throws `ModelFileError`,
    /// `SafeTensorsError` or `CheckpointError` naming the file at fault; a module type this
    /// library does not implement (Dense, ...) is `.unsupported`.
    public init(directory: URL) throws {
        try self.init(directory: directory, weightPrecision: nil)
    }

    /// Loads a sentence-transformers folder as ``init(directory:)`` does, with the model's
    /// weight matrices held in `weightPrecision` (``BERTModel/init(directory:weightPrecision:)``).
    /// `weightPrecision` is the element type the `Linear` and `Embedding` weights are held in
    /// (see ``WeightPrecision``): nil keeps each as the checkpoint stores it (an F16 or BF16
    /// file stays 16-bit, mapped, never widened in memory: about half the memory and decoding
    /// time of float32; int8 weights of an `attend quantize` folder stay int8 whatever the
    /// precision), `.float32` widens 16-bit weights at load, `.float16` / `.bfloat16` round
    /// float32 weights to 16 bits at load (one pass). Biases and norms stay float32.
    public init(directory: URL, weightPrecision: WeightPrecision?) throws {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        guard FileManager.default.fileExists(atPath: directory.path) else {
            throw ModelFileError.missingFile(path: directory.path)
        }
        var pooling: [SentencePooling] = [.mean]
        var normalize = false
        let modulesURL = directory.appendingPathComponent("modules.json")
        if FileManager.default.fileExists(atPath: modulesURL.path) {
            (pooling, normalize) = try SentenceEmbedder.readModules(directory: directory, modulesURL: modulesURL)
        }
        let (maxLength, lowercase) = try SentenceEmbedder.readSentenceBertConfig(directory: directory)
        let model = try BERTModel(directory: directory, weightPrecision: weightPrecision)
        let tokenizer = try WordPieceTokenizer(directory: directory)
        try self.init(
            model: model, tokenizer: tokenizer, pooling: pooling, normalize: normalize,
            maxLength: maxLength, lowercasesInput: lowercase)
    }

    /// `max_seq_length` and `do_lower_case` of a folder's `sentence_bert_config.json`
    /// ((nil, false) when the file is absent). Throws `ModelFileError` for a bad file.
    public static func readSentenceBertConfig(directory: URL) throws -> (maxSeqLength: Int?, doLowerCase: Bool) {
        let directory = try resolveModelDirectory(directory)  // a Hub cache folder: its snapshot of main
        let url = directory.appendingPathComponent("sentence_bert_config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return (nil, false) }
        let c = try JSONFields(try readModelJSON(url), path: url.path)
        return (try c.int("max_seq_length", in: 3...(1 << 24)), try c.bool("do_lower_case") ?? false)
    }

    private static func readModules(directory: URL, modulesURL: URL) throws -> ([SentencePooling], Bool) {
        guard case .array(let items) = try readModelJSON(modulesURL) else {
            throw ModelFileError.invalidValue(path: modulesURL.path, key: "(top level)", reason: "expected an array of modules")
        }
        var pooling: [SentencePooling]? = nil
        var normalize = false
        for (i, item) in items.enumerated() {
            let m = try JSONFields(item, path: modulesURL.path, prefix: "[\(i)]")
            guard let type = try m.string("type") else { throw m.fail("type", "missing") }
            let path = try m.string("path") ?? ""
            switch type {
            case "sentence_transformers.models.Transformer":
                guard i == 0, path.isEmpty else {
                    throw ModelFileError.unsupported(path: modulesURL.path, what: "a Transformer module other than the first, at the folder's root")
                }
            case "sentence_transformers.models.Pooling":
                guard pooling == nil else { throw ModelFileError.unsupported(path: modulesURL.path, what: "two Pooling modules") }
                pooling = try readPooling(directory.appendingPathComponent(path).appendingPathComponent("config.json"))
            case "sentence_transformers.models.Normalize":
                normalize = true
            default:
                throw ModelFileError.unsupported(path: modulesURL.path, what: "module \(type) (Transformer, Pooling and Normalize are implemented)")
            }
        }
        guard let pooling else { throw ModelFileError.unsupported(path: modulesURL.path, what: "no Pooling module") }
        return (pooling, normalize)
    }

    private static func readPooling(_ url: URL) throws -> [SentencePooling] {
        let c = try JSONFields(try readModelJSON(url), path: url.path)
        for unsupported in ["pooling_mode_weightedmean_tokens"] where try c.bool(unsupported) == true {
            throw ModelFileError.unsupported(path: url.path, what: unsupported)
        }
        if let mode = try c.string("pooling_mode") {  // older configs name one mode
            let map: [String: SentencePooling] = [
                "cls": .cls, "max": .max, "mean": .mean, "mean_sqrt_len_tokens": .meanSqrtLength, "lasttoken": .lastToken,
            ]
            guard let m = map[mode] else { throw ModelFileError.unsupported(path: url.path, what: "pooling_mode \"\(mode)\"") }
            return [m]
        }
        let keys: [(String, SentencePooling)] = [
            ("pooling_mode_cls_token", .cls), ("pooling_mode_max_tokens", .max), ("pooling_mode_mean_tokens", .mean),
            ("pooling_mode_mean_sqrt_len_tokens", .meanSqrtLength), ("pooling_mode_lasttoken", .lastToken),
        ]
        let modes = try keys.filter { try c.bool($0.0) == true }.map(\.1)
        guard !modes.isEmpty else { throw ModelFileError.invalidValue(path: url.path, key: "pooling_mode_*", reason: "no pooling mode is enabled") }
        return modes
    }

    // MARK: Embedding

    /// The encoding of one text as the embedder tokenizes it (lowercased if configured,
    /// truncated to ``maxLength``).
    public func encode(_ text: String) -> Encoding {
        // The init checked that maxLength leaves room for the special tokens.
        tokenizer.encode(lowercasesInput ? text.lowercased() : text, checkedMaxLength: maxLength)
    }

    /// The sentence vector of `text` (``dimension`` floats, unit length when normalizing).
    public func embed(_ text: String, compute: Compute = .default) throws(ModelInputError) -> [Float] {
        try embed([text], compute: compute).scalars
    }

    /// The sentence vectors of `texts`, `[texts.count, dimension]`, in order. Texts are
    /// tokenized, sorted by length and run `batchSize` at a time; a batch's texts are stacked
    /// without padding (attention stays within each text), so the result equals embedding
    /// each text alone, to float rounding. Cost: about `2 * parameters` flops per token, plus
    /// attention.
    public func embed(_ texts: [String], batchSize: Int = 32, compute: Compute = .default) throws(ModelInputError) -> Tensor {
        let encodings = texts.map { encode($0) }
        return try embed(encodings: encodings, batchSize: batchSize, compute: compute)
    }

    /// Sentence vectors of already tokenized texts (from ``encode(_:)``, unpadded or padded).
    /// Throws ``ModelInputError`` for a batch size below 1, an encoding padded on the left or
    /// with holes in its mask, ids outside the model's vocabulary or a text longer than its
    /// position table.
    public func embed(encodings: [Encoding], batchSize: Int = 32, compute: Compute = .default) throws(ModelInputError) -> Tensor {
        if batchSize < 1 { throw ModelInputError("SentenceEmbedder.embed: batchSize \(batchSize) must be at least 1") }
        let dim = dimension, d = model.hiddenSize
        var out = [Float](repeating: 0, count: encodings.count * dim)  // [count, dim]
        // Longest first, ties in input order (sentence-transformers sorts by length too).
        let order = encodings.indices.sorted { (encodings[$0].length, $1) > (encodings[$1].length, $0) }
        var start = 0
        while start < order.count {
            let idx = Array(order[start..<min(start + batchSize, order.count)])
            start += idx.count
            // The real tokens only (padding the caller added is dropped): the batch runs
            // unpadded, its sequences stacked, so no work goes to padding.
            var ids: [[Int]] = [], types: [[Int]] = []
            for i in idx {
                let e = encodings[i], n = e.length
                if !e.attentionMask.prefix(n).allSatisfy({ $0 == 1 }) {
                    throw ModelInputError("SentenceEmbedder.embed: encoding \(i) is padded on the left or has holes in its attention mask")
                }
                ids.append(Array(e.ids.prefix(n)))
                types.append(Array(e.tokenTypeIDs.prefix(n)))
            }
            let (hidden, rows) = try model.forwardUnpadded(ids, tokenTypeIDs: types, compute: compute)  // [Σ n, d]
            let h = hidden.scalars  // [Σ n * d]
            for (k, i) in idx.enumerated() {
                let first = rows.starts[k], n = rows.lengths[k]
                SentenceEmbedder.pool(
                    h[(first * d)..<((first + n) * d)], count: n, width: d, modes: pooling,
                    into: &out[(i * dim)..<((i + 1) * dim)])
            }
        }
        if normalize {
            for i in 0..<encodings.count {
                var ss = 0.0
                for j in 0..<dim { ss += Double(out[i * dim + j]) * Double(out[i * dim + j]) }
                let inv = 1 / max(ss.squareRoot(), 1e-12)  // torch.nn.functional.normalize's eps
                for j in 0..<dim { out[i * dim + j] = Float(Double(out[i * dim + j]) * inv) }
            }
        }
        return Tensor(shape: [encodings.count, dim], scalars: out)
    }

    /// Pools `count` token vectors of `width` (row-major in `tokens`) into `out`, one block of
    /// `width` per mode. Sums run in Double.
    static func pool(
        _ tokenSlice: ArraySlice<Float>, count n: Int, width d: Int, modes: [SentencePooling],
        into outSlice: inout ArraySlice<Float>
    ) {
        let tokens = Array(tokenSlice)
        let base = outSlice.startIndex
        func put(_ index: Int, _ value: Float) { outSlice[base + index] = value }
        for (k, mode) in modes.enumerated() {
            let o = k * d
            switch mode {
            case .cls:
                for j in 0..<d { put(o + j, n > 0 ? tokens[j] : 0) }
            case .lastToken:
                for j in 0..<d { put(o + j, n > 0 ? tokens[(n - 1) * d + j] : 0) }
            case .max:
                for j in 0..<d {
                    var m = -Float.greatestFiniteMagnitude  // sentence-transformers fills padding with -1e9
                    for t in 0..<n { m = Swift.max(m, tokens[t * d + j]) }
                    put(o + j, n > 0 ? m : 0)
                }
            case .mean, .meanSqrtLength:
                let divisor = mode == .mean ? Swift.max(Double(n), 1e-9) : Swift.max(Double(n), 1e-9).squareRoot()
                for j in 0..<d {
                    var s = 0.0
                    for t in 0..<n { s += Double(tokens[t * d + j]) }
                    put(o + j, Float(s / divisor))
                }
            }
        }
    }
}

/// Cosine similarity of every pair of rows of `vectors` `[n, dim]`: `[n, n]`, in Double then
/// rounded. A zero row has similarity 0 with everything. Throws ``ModelInputError`` naming the
/// shape when `vectors` is not of rank 2. Cost: O(n² dim).
public func cosineSimilarityMatrix(_ vectors: Tensor) throws(ModelInputError) -> Tensor {
    guard vectors.rank == 2 else { throw ModelInputError("cosineSimilarityMatrix: vectors \(vectors.shape) must be [n, dim]") }
    let n = vectors.shape[0], d = vectors.shape[1]
    let v = vectors.scalars
    var norms = [Double](repeating: 0, count: n)
    for i in 0..<n {
        var s = 0.0
        for j in 0..<d { s += Double(v[i * d + j]) * Double(v[i * d + j]) }
        norms[i] = s.squareRoot()
    }
    return Tensor(shape: [n, n]) { flat in
        let a = flat / n, b = flat % n
        guard norms[a] > 0 && norms[b] > 0 else { return 0 }
        var dot = 0.0
        for j in 0..<d { dot += Double(v[a * d + j]) * Double(v[b * d + j]) }
        return Float(dot / (norms[a] * norms[b]))
    }
}
