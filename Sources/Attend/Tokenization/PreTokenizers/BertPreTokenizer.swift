/// A word found by the pre-tokenizer: a byte range of the normalized text and its length in
/// Unicode scalars.
struct PreToken {
    var start: Int
    var end: Int
    var scalars: Int
}

/// BERT's pre-tokenizer on normalized UTF-8: splits on whitespace (the White_Space property)
/// and makes every punctuation character its own word. Appends the words of
/// `text[range]` to `words`. Cost: O(range).
func bertPreTokenize(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into words: inout [PreToken]) {
    var start = range.lowerBound, scalars = 0
    var i = range.lowerBound
    @inline(__always) func close(_ at: Int) {
        if at > start { words.append(PreToken(start: start, end: at, scalars: scalars)) }
        scalars = 0
    }
    while i < range.upperBound {
        let (v, len) = decodeUTF8(text, at: i)
        if isUnicodeWhitespace(v) {
            close(i)
            start = i + len
        } else if isBertPunctuation(v) {
            close(i)
            words.append(PreToken(start: i, end: i + len, scalars: 1))
            start = i + len
        } else {
            scalars += 1
        }
        i += len
    }
    close(range.upperBound)
}
