// A token vocabulary keyed by the tokens' exact UTF-8 bytes.
//
// Tokens are compared byte for byte, never as Swift Strings: "é" (U+00E9) and "e" + U+0301
// are equal Strings but different tokens (as in the reference implementation, whose Rust
// `HashMap<String, u32>` compares bytes). Lookups take a byte slice, optionally behind a
// prefix (the WordPiece "##"), without allocating.

/// Token <-> id tables over byte strings: one contiguous byte buffer, an open-addressing hash
/// table (FNV-1a, linear probing, load <= 1/2) and an id -> entry index.
struct ByteVocabulary: Sendable {
    /// All token bytes, back to back.
    private let bytes: [UInt8]
    /// Entry e's bytes are `bytes[starts[e] ..< starts[e + 1]]`.
    private let starts: [Int]
    /// Entry e's id.
    private let ids: [Int]
    /// Hash slots: entry index, or -1 for empty. Capacity is a power of two.
    private let slots: [Int32]
    /// id -> entry index (or -1 where the ids have a gap).
    private let entryOfID: [Int32]
    /// The longest token, in bytes.
    let maxTokenBytes: Int

    /// Number of tokens.
    var count: Int { ids.count }
    /// One more than the largest id (0 when empty).
    var idLimit: Int { entryOfID.count }

    enum BuildError: Error {
        case duplicateToken([UInt8])
        case duplicateID(Int, [UInt8], [UInt8])
        case badID(Int, [UInt8])
    }

    /// Builds the tables. Ids must be unique, in `0 ..< 2^31`; tokens unique byte strings.
    init(_ entries: [(token: [UInt8], id: Int)]) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.reduce(0) { $0 + $1.token.count })
        var starts = [0]
        starts.reserveCapacity(entries.count + 1)
        var ids: [Int] = []
        ids.reserveCapacity(entries.count)
        var maxID = -1, maxLen = 0
        for (token, id) in entries {
            guard id >= 0 && id < Int(Int32.max) else { throw BuildError.badID(id, token) }
            bytes.append(contentsOf: token)
            starts.append(bytes.count)
            ids.append(id)
            maxID = max(maxID, id)
            maxLen = max(maxLen, token.count)
        }
        var capacity = 16
        while capacity < 2 * entries.count { capacity <<= 1 }
        var slots = [Int32](repeating: -1, count: capacity)
        var entryOfID = [Int32](repeating: -1, count: maxID + 1)
        let mask = capacity - 1
        try bytes.withUnsafeBufferPointer { all in
            for e in 0..<ids.count {
                let tok = UnsafeBufferPointer(rebasing: all[starts[e]..<starts[e + 1]])
                var h = Int(truncatingIfNeeded: ByteVocabulary.hash(prefix: nil, tok)) & mask
                while slots[h] >= 0 {
                    let other = Int(slots[h])
                    if all[starts[other]..<starts[other + 1]].elementsEqual(tok) {
                        throw BuildError.duplicateToken(Array(tok))
                    }
                    h = (h + 1) & mask
                }
                slots[h] = Int32(e)
                if entryOfID[ids[e]] >= 0 {
                    let other = Int(entryOfID[ids[e]])
                    throw BuildError.duplicateID(ids[e], Array(all[starts[other]..<starts[other + 1]]), Array(tok))
                }
                entryOfID[ids[e]] = Int32(e)
            }
        }
        self.bytes = bytes
        self.starts = starts
        self.ids = ids
        self.slots = slots
        self.entryOfID = entryOfID
        self.maxTokenBytes = maxLen
    }

    /// FNV-1a over `prefix` followed by `body`.
    @inline(__always)
    static func hash(prefix: UnsafeBufferPointer<UInt8>?, _ body: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        if let prefix {
            for b in prefix { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        }
        for b in body { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h ^ (h >> 29)
    }

    /// The id of the token whose bytes are `prefix + body`, or nil. Cost: O(length).
    func id(prefix: UnsafeBufferPointer<UInt8>?, _ body: UnsafeBufferPointer<UInt8>) -> Int? {
        let plen = prefix?.count ?? 0
        if plen + body.count > maxTokenBytes { return nil }
        let mask = slots.count - 1
        var h = Int(truncatingIfNeeded: ByteVocabulary.hash(prefix: prefix, body)) & mask
        return bytes.withUnsafeBufferPointer { all in
            while true {
                let e = Int(slots[h])
                if e < 0 { return nil }
                let s = starts[e], end = starts[e + 1]
                if end - s == plen + body.count {
                    var equal = true
                    if let prefix {
                        for i in 0..<plen where all[s + i] != prefix[i] { equal = false; break }
                    }
                    if equal {
                        for i in 0..<body.count where all[s + plen + i] != body[i] { equal = false; break }
                    }
                    if equal { return ids[e] }
                }
                h = (h + 1) & mask
            }
        }
    }

    /// The id of a token given as bytes, or nil.
    func id(_ token: [UInt8]) -> Int? {
        token.withUnsafeBufferPointer { id(prefix: nil, $0) }
    }

    /// The bytes of the token with `id`, or nil when no token has it.
    func token(_ id: Int) -> ArraySlice<UInt8>? {
        guard id >= 0 && id < entryOfID.count, entryOfID[id] >= 0 else { return nil }
        let e = Int(entryOfID[id])
        return bytes[starts[e]..<starts[e + 1]]
    }

    /// Every (token bytes, id) pair, in insertion order.
    var entries: [(token: [UInt8], id: Int)] {
        (0..<ids.count).map { (Array(bytes[starts[$0]..<starts[$0 + 1]]), ids[$0]) }
    }
}
