// Stop strings: generation of a row ends when the text of its tokens comes to contain one of
// the strings, as transformers' `generate(..., stop_strings=..., tokenizer=...)` does.

/// Strings that end generation (transformers' `StopStringCriteria`): a row stops as soon as a
/// token is generated whose text completes one of the strings. The string may begin in earlier
/// tokens (the prompt's too) and the completing token may run past its end ("st" + "opera"
/// completes "stop"), but a string that already ended before the last token does not count
/// again. Matching reads the tokens' text as the tokenizer decodes it, special tokens
/// included. Set ``GenerationConfig/stopStrings``; greedy search and sampling honour it (beam
/// search refuses it, as its hypotheses end only at end tokens).
///
/// Cost: each check decodes the row's last `longest string + 2` tokens twice (about the
/// string's length in work), once per row and step.
public struct StopStrings: Sendable {
    /// The strings, as given.
    public let strings: [String]
    private let tokenizer: any Tokenizer
    private let window: Int

    /// Stop strings decoded with `tokenizer` (the model's). Throws
    /// ``GenerationError/invalidConfig(_:)`` when the list or one of its strings is empty.
    public init(_ strings: [String], tokenizer: any Tokenizer) throws {
        guard !strings.isEmpty else { throw GenerationError.invalidConfig("stop strings: the list is empty") }
        if let i = strings.firstIndex(where: \.isEmpty) { throw GenerationError.invalidConfig("stop string #\(i + 1) is empty") }
        self.strings = strings
        self.tokenizer = tokenizer
        // Every token decodes to at least one character, except rare empty pieces; two more
        // tokens cover the string's left overhang and a decoder that drops a leading space.
        self.window = strings.map(\.unicodeScalars.count).max()! + 2
    }

    /// Whether the last token of `row` completes one of the strings (the check generation
    /// makes after each step). An empty row never does.
    public func endsWithStop(_ row: [Int]) -> Bool {
        guard !row.isEmpty else { return false }
        return completes(row[max(0, row.count - window)...])
    }

    /// The index of the first token at or after `start` in `row` that completes a stop
    /// string, or nil: where a generated row's text should be cut (that token included).
    /// Cost: one ``endsWithStop(_:)`` per token from `start`.
    public func firstStop(in row: [Int], from start: Int) -> Int? {
        guard start < row.count else { return nil }
        return (max(0, start)..<row.count).first { i in completes(row[max(0, i + 1 - window)...i]) }
    }

    /// Whether the last token of `tail` completes a string: some occurrence ends after the
    /// text of the tokens before it.
    private func completes(_ tail: ArraySlice<Int>) -> Bool {
        let full = Array(tokenizer.decode(Array(tail), skipSpecialTokens: false).unicodeScalars)
        let before = Array(tokenizer.decode(Array(tail.dropLast()), skipSpecialTokens: false).unicodeScalars)
        // The last token's text starts where the two decodings part (a decoder may rewrite a
        // partial character or a space at the join).
        var shared = 0
        while shared < before.count && shared < full.count && before[shared] == full[shared] { shared += 1 }
        for s in strings {
            let needle = Array(s.unicodeScalars)
            guard needle.count <= full.count else { continue }
            // An occurrence ending at e (exclusive) with e > shared ends in the last token.
            for e in stride(from: full.count, to: max(shared, needle.count - 1), by: -1) where full[(e - needle.count)..<e].elementsEqual(needle) {
                return true
            }
        }
        return false
    }
}
