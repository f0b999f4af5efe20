import Foundation

/// One training batch: the keyword arguments of a `transformers` model's forward, as lists of
/// ints, one inner list per batch row.
///
/// - `inputIDs` [rows, length]: token ids (encoder input for T5 and Marian).
/// - `attentionMask` [rows, length]: 1 for a real token, 0 for padding (nil: all ones).
/// - `tokenTypeIDs` [rows, length]: BERT segment ids (nil: all zeros).
/// - `labels`: BERT MLM targets [rows, length] or seq2seq targets [rows, labelLength];
///   -100 marks a position the loss ignores.
/// - `nextSentenceLabel` [rows]: BERT's NSP target (0 = B follows A, 1 = B is random, -100 =
///   ignored); nil: the batch trains the masked-LM loss alone.
/// - `decoderInputIDs` [rows, labelLength]: seq2seq decoder input; nil means "shift `labels`
///   right, start with the decoder start id, -100 replaced by the pad id", as `transformers`
///   does.
///
/// Shapes are checked by `validate(...)` and by the models; the parser checks that every list
/// is rectangular and every value an integer.
public struct TrainingBatch: Sendable, Equatable {
    /// Token ids [rows, length].
    public var inputIDs: [[Int]]
    /// 1 = attend, 0 = padding, [rows, length]; nil means every position is a token.
    public var attentionMask: [[Int]]?
    /// Segment ids [rows, length]; nil means all zeros.
    public var tokenTypeIDs: [[Int]]?
    /// Targets; -100 is ignored by the loss.
    public var labels: [[Int]]?
    /// Next-sentence targets [rows].
    public var nextSentenceLabel: [Int]?
    /// Seq2seq decoder input [rows, labelLength]; nil: shifted from `labels`.
    public var decoderInputIDs: [[Int]]?
    /// Seq2seq decoder mask [rows, labelLength]; nil: all ones.
    public var decoderAttentionMask: [[Int]]?

    /// A batch of these fields (see the type's description for their shapes).
    public init(
        inputIDs: [[Int]], attentionMask: [[Int]]? = nil, tokenTypeIDs: [[Int]]? = nil,
        labels: [[Int]]? = nil, nextSentenceLabel: [Int]? = nil,
        decoderInputIDs: [[Int]]? = nil, decoderAttentionMask: [[Int]]? = nil
    ) {
        self.inputIDs = inputIDs
        self.attentionMask = attentionMask
        self.tokenTypeIDs = tokenTypeIDs
        self.labels = labels
        self.nextSentenceLabel = nextSentenceLabel
        self.decoderInputIDs = decoderInputIDs
        self.decoderAttentionMask = decoderAttentionMask
    }

    /// Rows in the batch.
    public var rows: Int { inputIDs.count }

    /// Length of the input rows (0 for an empty batch).
    public var length: Int { inputIDs.first?.count ?? 0 }

    /// Real (unpadded) input tokens: the sum of `attentionMask`, or rows x length without one.
    public var tokenCount: Int {
        guard let mask = attentionMask else { return rows * length }
        return mask.reduce(0) { $0 + $1.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }
    }

    /// Checks the batch against a model: at least one row, rectangular fields of the right
    /// shapes, input ids in `0..<vocabularySize`, masks of 0/1, segment ids in
    /// `0..<typeVocabularySize`, labels in the vocabulary or -100, NSP labels 0 or 1, and the
    /// fields the model needs present (`needsLabels`, `needsNextSentence`). `labelsMatchInput`
    /// is true for BERT (labels [rows, length]) and false for seq2seq (labels [rows, any]).
    /// Throws a one-line `TrainingError` naming the field, row and position. Cost: O(ids).
    public func validate(
        vocabularySize: Int, typeVocabularySize: Int? = nil, maxLength: Int? = nil,
        labelsMatchInput: Bool, needsLabels: Bool = true, needsNextSentence: Bool = false,
        where place: String = "batch"
    ) throws(TrainingError) {
        guard rows > 0 else { throw TrainingError("\(place): no rows in input_ids") }
        guard length > 0 else { throw TrainingError("\(place): input_ids rows are empty") }
        if let maxLength, length > maxLength {
            throw TrainingError("\(place): input_ids rows have \(length) tokens, more than the model's \(maxLength) positions")
        }
        func rect(_ name: String, _ m: [[Int]], rows r: Int, length l: Int?) throws(TrainingError) {
            guard m.count == r else { throw TrainingError("\(place): \(name) has \(m.count) rows, input_ids has \(r)") }
            let want = l ?? m[0].count
            for (i, row) in m.enumerated() where row.count != want {
                throw TrainingError("\(place): \(name) row \(i) has \(row.count) values, expected \(want)")
            }
            if want == 0 { throw TrainingError("\(place): \(name) rows are empty") }
        }
        func range(_ name: String, _ m: [[Int]], _ ok: (Int) -> Bool, _ what: String) throws(TrainingError) {
            for (i, row) in m.enumerated() {
                for (j, v) in row.enumerated() where !ok(v) {
                    throw TrainingError("\(place): \(name)[\(i)][\(j)] = \(v) is not \(what)")
                }
            }
        }
        try rect("input_ids", inputIDs, rows: rows, length: length)
        try range("input_ids", inputIDs, { $0 >= 0 && $0 < vocabularySize }, "a token id in 0..<\(vocabularySize)")
        if let attentionMask {
            try rect("attention_mask", attentionMask, rows: rows, length: length)
            try range("attention_mask", attentionMask, { $0 == 0 || $0 == 1 }, "0 or 1")
        }
        if let tokenTypeIDs {
            try rect("token_type_ids", tokenTypeIDs, rows: rows, length: length)
            let types = typeVocabularySize ?? 1
            try range("token_type_ids", tokenTypeIDs, { $0 >= 0 && $0 < types }, "a segment id in 0..<\(types)")
        }
        if let labels {
            try rect("labels", labels, rows: rows, length: labelsMatchInput ? length : nil)
            try range("labels", labels, { $0 == -100 || ($0 >= 0 && $0 < vocabularySize) }, "-100 or a token id in 0..<\(vocabularySize)")
        } else if needsLabels {
            throw TrainingError("\(place): labels are missing")
        }
        if let nextSentenceLabel {
            guard nextSentenceLabel.count == rows else {
                throw TrainingError("\(place): next_sentence_label has \(nextSentenceLabel.count) values, input_ids has \(rows) rows")
            }
            for (i, v) in nextSentenceLabel.enumerated() where v != 0 && v != 1 && v != -100 {
                throw TrainingError("\(place): next_sentence_label[\(i)] = \(v) is not 0, 1 or -100")
            }
        } else if needsNextSentence {
            throw TrainingError("\(place): next_sentence_label is missing")
        }
        let decoderLength = labels?.first?.count ?? decoderInputIDs?.first?.count
        if let decoderInputIDs {
            try rect("decoder_input_ids", decoderInputIDs, rows: rows, length: decoderLength)
            try range("decoder_input_ids", decoderInputIDs, { $0 >= 0 && $0 < vocabularySize }, "a token id in 0..<\(vocabularySize)")
        }
        if let decoderAttentionMask {
            try rect("decoder_attention_mask", decoderAttentionMask, rows: rows, length: decoderLength)
            try range("decoder_attention_mask", decoderAttentionMask, { $0 == 0 || $0 == 1 }, "0 or 1")
        }
    }

    /// The batches of a JSON-lines file: one JSON object per non-blank line whose members are
    /// the forward's keyword arguments (`input_ids`, `attention_mask`, `token_type_ids`,
    /// `labels`, `next_sentence_label`, `decoder_input_ids`, `decoder_attention_mask`) as
    /// (lists of) integers. An unknown key, a non-integer, a ragged list or a missing
    /// `input_ids` throws a `TrainingError` naming the file's line. Cost: O(file size).
    public static func readJSONLines(at url: URL) throws(TrainingError) -> [TrainingBatch] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TrainingError("\(url.path): cannot read: \(error.localizedDescription)")
        }
        return try parseJSONLines(data, source: url.path)
    }

    /// Parses JSON lines held in memory (see `readJSONLines(at:)`); `source` names the input in
    /// error messages.
    public static func parseJSONLines(_ data: Data, source: String = "batches") throws(TrainingError) -> [TrainingBatch] {
        var batches: [TrainingBatch] = []
        let bytes = [UInt8](data)
        var lineNumber = 0
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            lineNumber += 1
            let line = bytes[start..<end]
            start = end + 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let place = "\(source) line \(lineNumber)"
            batches.append(try parseLine(Array(line), place: place))
        }
        if batches.isEmpty { throw TrainingError("\(source): no batches (the file has no JSON lines)") }
        return batches
    }

    static func parseLine(_ line: [UInt8], place: String) throws(TrainingError) -> TrainingBatch {
        let value: StrictJSONValue
        do {
            value = try line.withUnsafeBytes { (raw) throws -> StrictJSONValue in
                if let bad = StrictJSON.firstInvalidUTF8(raw) {
                    throw TrainingError("\(place): invalid UTF-8 at byte \(bad)")
                }
                return try StrictJSON.parse(raw, maxDepth: 8)
            }
        } catch let error as TrainingError {
            throw error
        } catch {
            throw TrainingError("\(place): not JSON: \(error)")
        }
        guard case .object(let object) = value else {
            throw TrainingError("\(place): expected a JSON object, found \(value.typeName)")
        }
        func int(_ v: StrictJSONValue, _ name: String) throws(TrainingError) -> Int {
            guard case .number(let n) = v, let i = n.intValue else {
                throw TrainingError("\(place): \(name) holds \(v.typeName) where an integer belongs")
            }
            return i
        }
        func vector(_ v: StrictJSONValue, _ name: String) throws(TrainingError) -> [Int] {
            guard case .array(let items) = v else { throw TrainingError("\(place): \(name) must be a list of integers") }
            var out: [Int] = []
            out.reserveCapacity(items.count)
            for item in items { out.append(try int(item, name)) }
            return out
        }
        func matrix(_ v: StrictJSONValue, _ name: String) throws(TrainingError) -> [[Int]] {
            guard case .array(let rows) = v else { throw TrainingError("\(place): \(name) must be a list of lists of integers") }
            var out: [[Int]] = []
            for (i, row) in rows.enumerated() {
                let r = try vector(row, "\(name) row \(i)")
                if let first = out.first, first.count != r.count {
                    throw TrainingError("\(place): \(name) row \(i) has \(r.count) values, row 0 has \(first.count)")
                }
                out.append(r)
            }
            return out
        }
        var batch = TrainingBatch(inputIDs: [])
        var sawInput = false
        for (key, v) in object.members {
            switch key {
            case "input_ids": batch.inputIDs = try matrix(v, key); sawInput = true
            case "attention_mask": batch.attentionMask = try matrix(v, key)
            case "token_type_ids": batch.tokenTypeIDs = try matrix(v, key)
            case "labels": batch.labels = try matrix(v, key)
            case "next_sentence_label":
                // Every row has a label or the batch has none: a row without one is an error.
                if case .array(let items) = v, let row = items.firstIndex(where: { if case .null = $0 { return true } else { return false } }) {
                    throw TrainingError(
                        "\(place): next_sentence_label[\(row)] is null: give every row of a batch a next-sentence label (0, 1, or -100 to ignore the row), or leave next_sentence_label out to train the masked-LM loss alone"
                    )
                }
                batch.nextSentenceLabel = try vector(v, key)
            case "decoder_input_ids": batch.decoderInputIDs = try matrix(v, key)
            case "decoder_attention_mask": batch.decoderAttentionMask = try matrix(v, key)
            default:
                throw TrainingError("\(place): unknown key \"\(key)\" (expected input_ids, attention_mask, token_type_ids, labels, next_sentence_label, decoder_input_ids, decoder_attention_mask)")
            }
        }
        guard sawInput else { throw TrainingError("\(place): input_ids is missing") }
        return batch
    }
}
