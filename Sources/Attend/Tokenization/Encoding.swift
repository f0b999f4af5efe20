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
        precondition(
            tokenTypeIDs.count == ids.count && attentionMask.count == ids.count && specialTokensMask.count == ids.count,
            "Encoding: ids (\(ids.count)), tokenTypeIDs (\(tokenTypeIDs.count)), attentionMask (\(attentionMask.count)) and specialTokensMask (\(specialTokensMask.count)) differ in length"
        )
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
