// SentencePiece's precompiled normalization rules ("charsmap"): a Darts double-array trie over
// UTF-8 byte strings whose values are offsets into a blob of NUL-terminated replacement
// strings. The same bytes appear in tokenizer.json (`Precompiled.precompiled_charsmap`,
// base64) and in a `.model` / `.spm` file (`normalizer_spec.precompiled_charsmap`).
//
// Layout: a little-endian UInt32 n (the trie's size in bytes, a multiple of 4), n bytes of
// trie units (little-endian UInt32 each), then the replacement blob. A unit u holds:
//   has_leaf = (u >> 8) & 1, value = u & 0x7FFF_FFFF, label = u & 0x8000_00FF,
//   offset = (u >> 10) << ((u & (1 << 9)) >> 6)
// Walking a key: pos = offset(unit[0]); for each byte b: pos ^= b; unit = units[pos];
// stop unless label(unit) == b; pos ^= offset(unit); if has_leaf(unit) the prefix read so far
// is a key whose value is value(units[pos]).
//
// Every index is checked: a corrupt trie ends a walk (no match) instead of reading out of bounds.

/// The SentencePiece normalization rules of a model, parsed and checked.
public struct PrecompiledCharsmap: Sendable {
    let units: [UInt32]
    let blob: [UInt8]
    /// `transform` of each ASCII character alone.
    private var asciiTable: [[UInt8]?] = []

    /// Parses the charsmap bytes; throws a reason when the layout is inconsistent.
    init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 4 else { throw CharsmapError(reason: "shorter than its 4-byte header") }
        let n = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        guard n % 4 == 0, n <= bytes.count - 4 else {
            throw CharsmapError(reason: "trie size \(n) is not a multiple of 4 within the \(bytes.count - 4) bytes that follow")
        }
        var units = [UInt32](repeating: 0, count: n / 4)
        for i in 0..<(n / 4) {
            let o = 4 + 4 * i
            units[i] = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        self.units = units
        self.blob = Array(bytes[(4 + n)...])
        // Replacements are spliced into the text, which must stay valid UTF-8.
        if let bad = blob.withUnsafeBufferPointer({ b -> Int? in
            var i = 0
            while i < b.count {
                let len = validUTF8Length(b, at: i)
                if len == 0 { return i }
                i += len
            }
            return nil
        }) {
            throw CharsmapError(reason: "the replacement strings are not valid UTF-8 (byte \(4 + n + bad))")
        }
        var table: [[UInt8]?] = []
        for c in 0..<128 {
            let key = [UInt8(c)]
            table.append(key.withUnsafeBufferPointer { transform($0) }.map(Array.init))
        }
        self.asciiTable = table
    }

    struct CharsmapError: Error { let reason: String }

    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

    /// Calls `body(length, value)` for every key that is a prefix of `key`, shortest first;
    /// `body` returns false to stop.
    @inline(__always)
    func prefixMatches(_ key: UnsafeBufferPointer<UInt8>, _ body: (Int, Int) -> Bool) {
        guard !units.isEmpty else { return }
        var pos = PrecompiledCharsmap.offset(units[0])
        for i in 0..<key.count {
            if key[i] == 0 { return }  // keys never hold NUL (the trie's terminal label)
            pos ^= Int(key[i])
            guard pos >= 0 && pos < units.count else { return }
            let u = units[pos]
            guard u & 0x8000_00FF == UInt32(key[i]) else { return }
            pos ^= PrecompiledCharsmap.offset(u)
            guard pos >= 0 && pos < units.count else { return }
            if (u >> 8) & 1 == 1 {
                if !body(i + 1, Int(units[pos] & 0x7FFF_FFFF)) { return }
            }
        }
    }

    /// The NUL-terminated replacement at `value` (nil when it lies outside the blob or inside a
    /// character).
    func replacement(_ value: Int) -> ArraySlice<UInt8>? {
        // Inside the blob and at the start of a character (the blob is valid UTF-8).
        guard value >= 0 && value < blob.count && blob[value] & 0xC0 != 0x80 else { return nil }
        var end = value
        while end < blob.count && blob[end] != 0 { end += 1 }
        return blob[value..<end]
    }

    /// tokenizers' `Precompiled.transform`: the replacement of the *shortest* key that is a
    /// prefix of `chunk` (not necessarily all of it), or nil.
    func transform(_ chunk: UnsafeBufferPointer<UInt8>) -> ArraySlice<UInt8>? {
        var found: Int? = nil
        prefixMatches(chunk) { _, v in
            found = v
            return false
        }
        return found.flatMap { replacement($0) }
    }

    /// tokenizers' `Precompiled` normalizer: for each extended grapheme cluster shorter than 6
    /// bytes, the replacement of its shortest matching prefix replaces the whole cluster;
    /// otherwise (no match, or a longer cluster) each scalar is replaced by its own match or
    /// kept. This is the reference's rule exactly, odd as it is. An ASCII character followed
    /// by another (or the end) is a cluster of its own: those take a precomputed table; the
    /// rest is segmented into clusters by Swift's `Character` (Unicode's rules).
    /// Cost: O(text x longest key).
    func normalizeLikeTokenizers(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count + text.count / 4)
        text.withUnsafeBufferPointer { t in
            let n = t.count
            var i = 0
            while i < n {
                let b = t[i]
                if b < 0x80 && (i + 1 == n || (t[i + 1] < 0x80 && !(b == 0x0D && t[i + 1] == 0x0A))) {
                    if let r = asciiTable[Int(b)] { out += r } else { out.append(b) }
                    i += 1
                    continue
                }
                // A run that may hold multi-scalar clusters: up to an ASCII character that stands
                // alone (ASCII after it, or the end) and that no Prepend character glues to.
                var j = i + 1
                while j < n {
                    if t[j] < 0x80 && (j + 1 == n || t[j + 1] < 0x80) && t[j] != 0x0A && !endsWithPrepend(t, i..<j) { break }
                    j += 1
                }
                normalizeClusters(UnsafeBufferPointer(rebasing: t[i..<j]), into: &out)
                i = j
            }
        }
        return out
    }

    /// The general path of ``normalizeLikeTokenizers(_:)`` over valid UTF-8.
    private func normalizeClusters(_ text: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        let s = String(decoding: text, as: UTF8.self)
        var buffer: [UInt8] = []
        for ch in s {
            buffer.removeAll(keepingCapacity: true)
            buffer.append(contentsOf: ch.utf8)
            let whole: ArraySlice<UInt8>? = buffer.count < 6 ? buffer.withUnsafeBufferPointer { transform($0) } : nil
            if let whole {
                out += whole
                continue
            }
            buffer.withUnsafeBufferPointer { g in
                var k = 0
                while k < g.count {
                    let len = max(1, validUTF8Length(g, at: k))
                    if let r = transform(UnsafeBufferPointer(rebasing: g[k..<min(g.count, k + len)])) {
                        out += r
                    } else {
                        out += g[k..<min(g.count, k + len)]
                    }
                    k += len
                }
            }
        }
    }

    /// Whether the last scalar of `t[range]` is a grapheme Prepend character (it joins the
    /// character after it into one cluster).
    private func endsWithPrepend(_ t: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
        var p = range.upperBound - 1
        while p > range.lowerBound && t[p] & 0xC0 == 0x80 { p -= 1 }
        guard t[p] >= 0xD8 else { return false }  // every Prepend character is U+0600 or above
        let v = decodeUTF8(t, at: p).0
        switch v {
        case 0x0600...0x0605, 0x06DD, 0x070F, 0x0890...0x0891, 0x08E2, 0x0D4E, 0x110BD, 0x110CD, 0x111C2...0x111C3,
            0x1193F, 0x11941, 0x11A3A, 0x11A84...0x11A89, 0x11D46, 0x11F02:
            return true
        default:
            return false
        }
    }

    /// SentencePiece's `Normalizer::NormalizePrefix`: the replacement of the *longest* key that
    /// is a prefix of `input` and the bytes it consumes; without a match, the first scalar
    /// unchanged, or U+FFFD consuming one byte when `input` starts with invalid UTF-8.
    func normalizePrefix(_ input: UnsafeBufferPointer<UInt8>) -> (replacement: ArraySlice<UInt8>, consumed: Int) {
        var best: (Int, Int)? = nil
        prefixMatches(input) { len, v in
            best = (len, v)
            return true
        }
        if let (len, v) = best, let r = replacement(v) { return (r, len) }
        let n = validUTF8Length(input, at: 0)
        if n == 0 { return (ArraySlice(replacementCharacterUTF8), 1) }
        return (ArraySlice(input[0..<n]), n)
    }
}

/// U+FFFD in UTF-8.
let replacementCharacterUTF8: [UInt8] = [0xEF, 0xBF, 0xBD]

/// The length of the valid UTF-8 scalar at `s[i]`, or 0 when the bytes there are not one.
func validUTF8Length(_ s: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
    let n = s.count - i
    guard n > 0 else { return 0 }
    let b0 = s[i]
    if b0 < 0x80 { return 1 }
    func cont(_ k: Int) -> Bool { k < n && s[i + k] & 0xC0 == 0x80 }
    if b0 >= 0xC2 && b0 <= 0xDF { return cont(1) ? 2 : 0 }
    if b0 >= 0xE0 && b0 <= 0xEF {
        guard cont(1) && cont(2) else { return 0 }
        let b1 = s[i + 1]
        if b0 == 0xE0 && b1 < 0xA0 { return 0 }
        if b0 == 0xED && b1 >= 0xA0 { return 0 }
        return 3
    }
    if b0 >= 0xF0 && b0 <= 0xF4 {
        guard cont(1) && cont(2) && cont(3) else { return 0 }
        let b1 = s[i + 1]
        if b0 == 0xF0 && b1 < 0x90 { return 0 }
        if b0 == 0xF4 && b1 >= 0x90 { return 0 }
        return 4
    }
    return 0
}
