import Foundation

/// BERT pre-training batches from plain text, built as `transformers`'
/// `TextDatasetForNextSentencePrediction` pairs sentences and `DataCollatorForLanguageModeling`
/// masks them.
///
/// Pairs: each document (a list of sentences) is cut into chunks of sentences of about
/// `maxLength - 3` tokens (10% of chunks get a shorter random target, as in the reference);
/// a chunk splits at a random sentence into A and B. Half the time (`nextSentenceProbability`,
/// and always for a one-sentence chunk) B is replaced by sentences from a random other
/// document, with `next_sentence_label` 1; otherwise B is the text that follows A (label 0),
/// and the sentences a random B leaves unused start the next chunk. The longer of A and B
/// loses a token from a random end until `[CLS] A [SEP] B [SEP]` fits `maxLength`;
/// `token_type_ids` are 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
///
/// Batches: the pairs are shuffled (`shuffles`, as the trainer's random sampler does), cut into
/// groups of `batchSize` (the last may be smaller) and padded on the right to the longest pair
/// of the group (`[PAD]`, attention mask 0, token type 0). Masking: each token that is not
/// special (`[CLS]`, `[SEP]`, padding, or any id the tokenizer calls special) is selected with
/// probability `maskProbability` (15%); a selected token becomes `[MASK]` with probability
/// `maskTokenProbability` (80%), else a uniformly random id of the tokenizer's vocabulary with
/// probability `randomTokenProbability` (10%), else stays (10%). `labels` hold the original id
/// at selected positions and -100 everywhere else.
///
/// Randomness: one ``SplitMix64`` stream seeded with `seed` drives every choice, in the order
/// above (pairs document by document, then the shuffle, then the masks batch by batch), so the
/// same documents, tokenizer, settings and seed always give the same batches on every
/// platform. The draws follow the reference's algorithm but not PyTorch's or Python's random
/// number generators, so the batches are not bit-equal to those of `transformers` for any seed;
/// their statistics are the same.
///
/// Cost: tokenizing every sentence once, then O(tokens) for pairing and masking.
public struct MaskedLanguageModelingData: Sendable {
    /// Longest `[CLS] A [SEP] B [SEP]` row, in tokens (at least 5).
    public var maxLength: Int
    /// Rows per batch (at least 1).
    public var batchSize: Int
    /// Share of non-special tokens selected for prediction (0.15).
    public var maskProbability: Double = 0.15
    /// Share of selected tokens replaced by `[MASK]` (0.8).
    public var maskTokenProbability: Double = 0.8
    /// Share of selected tokens replaced by a random token (0.1); the rest stay unchanged.
    public var randomTokenProbability: Double = 0.1
    /// Share of pairs whose B is a random other document's text (0.5).
    public var nextSentenceProbability: Double = 0.5
    /// Share of chunks cut to a random shorter target length (0.1).
    public var shortSequenceProbability: Double = 0.1
    /// Whether the pairs are shuffled before they are grouped into batches.
    public var shuffles = true

    /// Settings for rows of at most `maxLength` tokens in batches of `batchSize` rows, with the
    /// reference's probabilities.
    public init(maxLength: Int = 128, batchSize: Int = 32) {
        self.maxLength = maxLength
        self.batchSize = batchSize
    }

    /// One `[CLS] A [SEP] B [SEP]` row before masking.
    public struct SentencePair: Sendable, Equatable {
        /// The row's token ids, special tokens included.
        public var inputIDs: [Int]
        /// 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
        public var tokenTypeIDs: [Int]
        /// 0: B follows A in the document; 1: B is from a random document.
        public var nextSentenceLabel: Int
    }

    /// The documents of a text: one sentence per line, documents separated by blank lines (the
    /// reference's file format; lines end at "\n", "\r\n" or "\r", as Python reads text files).
    /// Lines are trimmed of surrounding whitespace; empty documents are left out. Cost: O(text).
    public static func documents(text: String) -> [[String]] {
        var documents: [[String]] = [[]]
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let s = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if s.isEmpty {
                if !documents[documents.count - 1].isEmpty { documents.append([]) }
            } else {
                documents[documents.count - 1].append(s)
            }
        }
        return documents.filter { !$0.isEmpty }
    }

    /// The special ids the data needs from `tokenizer`: `[CLS]`, `[SEP]`, `[MASK]` and the
    /// padding id (`[PAD]`, else 0). Throws a `TrainingError` naming a token the vocabulary lacks.
    static func specialIDs(_ tokenizer: any Tokenizer) throws(TrainingError) -> (cls: Int, sep: Int, mask: Int, pad: Int) {
        func id(_ token: String) throws(TrainingError) -> Int {
            guard let id = tokenizer.id(for: token) else {
                throw TrainingError("the tokenizer has no \(token) token (BERT pre-training needs [CLS], [SEP] and [MASK])")
            }
            return id
        }
        let pad = (tokenizer as? WordPieceTokenizer)?.padID ?? tokenizer.id(for: "[PAD]") ?? 0
        return (try id("[CLS]"), try id("[SEP]"), try id("[MASK]"), pad)
    }

    /// Checks the settings; throws a `TrainingError` naming the first out of range.
    func validate() throws(TrainingError) {
        guard maxLength >= 5 else { throw TrainingError("maxLength \(maxLength): a sentence pair needs at least 5 tokens ([CLS] A [SEP] B [SEP])") }
        guard batchSize >= 1 else { throw TrainingError("batchSize \(batchSize) must be at least 1") }
        let probabilities = [
            ("maskProbability", maskProbability), ("maskTokenProbability", maskTokenProbability),
            ("randomTokenProbability", randomTokenProbability), ("nextSentenceProbability", nextSentenceProbability),
            ("shortSequenceProbability", shortSequenceProbability),
        ]
        for (name, p) in probabilities where !(p >= 0 && p <= 1) {
            throw TrainingError("\(name) \(p) is not a probability in [0, 1]")
        }
        guard maskTokenProbability + randomTokenProbability <= 1 else {
            throw TrainingError("maskTokenProbability + randomTokenProbability = \(maskTokenProbability + randomTokenProbability) exceeds 1")
        }
    }

    /// The sentence pairs of `documents` (each a list of sentences), tokenized with `tokenizer`
    /// without special tokens, before shuffling and masking. Draws from `rng`. Throws a
    /// `TrainingError` for settings out of range, a tokenizer without BERT's special tokens, or
    /// text with no tokens at all.
    public func sentencePairs(documents: [[String]], tokenizer: any Tokenizer, rng: inout SplitMix64) throws(TrainingError) -> [SentencePair] {
        try validate()
        let specials = try Self.specialIDs(tokenizer)
        let docs = documents.map { $0.map { tokenizer.encode($0, addSpecialTokens: false).ids }.filter { !$0.isEmpty } }.filter { !$0.isEmpty }
        guard !docs.isEmpty else { throw TrainingError("the text has no tokens: no sentence pairs to train on") }
        var pairs: [SentencePair] = []
        let maxTokens = maxLength - 3
        for (docIndex, document) in docs.enumerated() {
            var target = maxTokens
            if rng.unit() < shortSequenceProbability { target = rng.integer(in: 2...maxTokens) }
            var chunk: [[Int]] = []
            var chunkLength = 0
            var i = 0
            while i < document.count {
                chunk.append(document[i])
                chunkLength += document[i].count
                if i == document.count - 1 || chunkLength >= target {
                    let aEnd = chunk.count >= 2 ? rng.integer(in: 1...(chunk.count - 1)) : 1
                    var a = chunk[0..<aEnd].flatMap { $0 }
                    var b: [Int] = []
                    let randomNext = chunk.count == 1 || rng.unit() < nextSentenceProbability
                    if randomNext {
                        let targetB = target - a.count
                        var other = 0
                        for _ in 0..<10 {
                            other = rng.integer(in: 0...(docs.count - 1))
                            if other != docIndex { break }
                        }
                        let randomDocument = docs[other]
                        for j in rng.integer(in: 0...(randomDocument.count - 1))..<randomDocument.count {
                            b += randomDocument[j]
                            if b.count >= targetB { break }
                        }
                        i -= chunk.count - aEnd  // the unused sentences start the next chunk
                    } else {
                        b = chunk[aEnd...].flatMap { $0 }
                    }
                    while a.count + b.count > maxTokens {
                        if a.count > b.count {
                            if rng.unit() < 0.5 { a.removeFirst() } else { a.removeLast() }
                        } else {
                            if rng.unit() < 0.5 { b.removeFirst() } else { b.removeLast() }
                        }
                    }
                    let ids = [specials.cls] + a + [specials.sep] + b + [specials.sep]
                    let types = [Int](repeating: 0, count: a.count + 2) + [Int](repeating: 1, count: b.count + 1)
                    pairs.append(SentencePair(inputIDs: ids, tokenTypeIDs: types, nextSentenceLabel: randomNext ? 1 : 0))
                    chunk = []
                    chunkLength = 0
                }
                i += 1
            }
        }
        return pairs
    }

    /// Pre-training batches of `documents` (each a list of sentences; see
    /// ``documents(text:)``): pairs, shuffled, grouped, padded and masked as the type's
    /// description says, each with `input_ids`, `attention_mask`, `token_type_ids`, `labels`
    /// and `next_sentence_label`. The same arguments and `seed` give the same batches. Throws
    /// a `TrainingError` for settings out of range, a tokenizer without `[CLS]`, `[SEP]` or
    /// `[MASK]`, or text without tokens.
    public func batches(documents: [[String]], tokenizer: any Tokenizer, seed: UInt64) throws(TrainingError) -> [TrainingBatch] {
        var rng = SplitMix64(state: seed)
        var pairs = try sentencePairs(documents: documents, tokenizer: tokenizer, rng: &rng)
        if shuffles {
            for i in stride(from: pairs.count - 1, to: 0, by: -1) {
                pairs.swapAt(i, rng.integer(in: 0...i))
            }
        }
        let specials = try Self.specialIDs(tokenizer)
        let vocabulary = tokenizer.idLimit
        var out: [TrainingBatch] = []
        for start in stride(from: 0, to: pairs.count, by: batchSize) {
            let group = pairs[start..<min(start + batchSize, pairs.count)]
            let length = group.map(\.inputIDs.count).max() ?? 0
            var batch = TrainingBatch(inputIDs: [], attentionMask: [], tokenTypeIDs: [], labels: [], nextSentenceLabel: [])
            for pair in group {
                let n = pair.inputIDs.count
                var ids = pair.inputIDs + [Int](repeating: specials.pad, count: length - n)
                var labels = [Int](repeating: -100, count: length)
                for j in 0..<n {
                    let id = ids[j]
                    if id == specials.cls || id == specials.sep || tokenizer.isSpecial(id) { continue }
                    guard rng.unit() < maskProbability else { continue }
                    labels[j] = id
                    if rng.unit() < maskTokenProbability {
                        ids[j] = specials.mask
                    } else if maskTokenProbability < 1 && rng.unit() < randomTokenProbability / (1 - maskTokenProbability) {
                        ids[j] = rng.integer(in: 0...(vocabulary - 1))
                    }
                }
                batch.inputIDs.append(ids)
                batch.attentionMask!.append([Int](repeating: 1, count: n) + [Int](repeating: 0, count: length - n))
                batch.tokenTypeIDs!.append(pair.tokenTypeIDs + [Int](repeating: 0, count: length - n))
                batch.labels!.append(labels)
                batch.nextSentenceLabel!.append(pair.nextSentenceLabel)
            }
            out.append(batch)
        }
        return out
    }
}

extension SplitMix64 {
    /// Uniform in [0, 1) with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in `range` (both ends included), by the multiply-shift method on 64 bits (bias
    /// below 2^-40 for the ranges of data preparation). Deterministic for the generator's state.
    mutating func integer(in range: ClosedRange<Int>) -> Int {
        let width = UInt64(range.upperBound - range.lowerBound) &+ 1
        if width == 0 { return Int(bitPattern: UInt(next())) }  // the whole Int range
        return range.lowerBound + Int(next().multipliedFullWidth(by: width).high)
    }
}
