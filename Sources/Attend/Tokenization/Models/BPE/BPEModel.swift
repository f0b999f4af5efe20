import Foundation

/// Byte-pair encoding as tokenizers runs it (GPT-2, RoBERTa, Qwen, Llama): a word starts as
/// its characters (each looked up in the vocabulary, with the continuing-subword prefix after
/// the first and the end-of-word suffix on the last); unknown characters become their
/// `<0xXX>` byte pieces (`byteFallback`) or the unknown token (adjacent ones fused with
/// `fuseUnknown`), or are dropped without one. Then the adjacent pair of lowest merge rank
/// is merged, leftmost first, until no pair has a merge. Results of short words are cached.
/// Cost: O(n log n) per word of n characters (a heap of candidate merges).
struct BPEModel: Sendable {
    let vocabulary: ByteVocabulary
    /// (left id << 32 | right id) -> (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let unknownID: Int?
    let fuseUnknown: Bool
    let byteFallback: Bool
    let continuingSubwordPrefix: [UInt8]
    let endOfWordSuffix: [UInt8]
    let ignoreMerges: Bool
    let byteIDs: [Int?]
    let cache: WordCache

    init(
        vocabulary: ByteVocabulary, merges: [([UInt8], [UInt8])], unknownToken: [UInt8]?, fuseUnknown: Bool,
        byteFallback: Bool, continuingSubwordPrefix: [UInt8], endOfWordSuffix: [UInt8], ignoreMerges: Bool,
        path: String
    ) throws {
        self.vocabulary = vocabulary
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocabulary.id(a), let ib = vocabulary.id(b) else {
                let missing = vocabulary.id(a) == nil ? a : b
                throw ModelFileError.invalidValue(
                    path: path, key: "model.merges[\(rank)]", reason: "token \(quotedBytes(missing)) is not in the vocabulary")
            }
            let prefixLength = continuingSubwordPrefix.count
            var merged = a
            merged += (prefixLength > 0 && b.starts(with: continuingSubwordPrefix)) ? Array(b[prefixLength...]) : b
            guard let im = vocabulary.id(merged) else {
                throw ModelFileError.invalidValue(
                    path: path, key: "model.merges[\(rank)]", reason: "merged token \(quotedBytes(merged)) is not in the vocabulary")
            }
            let key = UInt64(ia) << 32 | UInt64(ib)
            table[key] = (Int32(rank), Int32(im))  // a repeated pair: the last rank wins, as in the reference
        }
        self.merges = table
        if let u = unknownToken {
            guard let id = vocabulary.id(u) else {
                throw ModelFileError.invalidValue(path: path, key: "model.unk_token", reason: "\(quotedBytes(u)) is not in the vocabulary")
            }
            unknownID = id
        } else {
            unknownID = nil
        }
        self.fuseUnknown = fuseUnknown
        self.byteFallback = byteFallback
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        self.ignoreMerges = ignoreMerges
        self.byteIDs = (0..<256).map { vocabulary.id(Array(byteToken(UInt8($0)).utf8)) }
        self.cache = WordCache()
    }

    /// Appends the ids of one pre-tokenized word.
    func tokenize(_ word: [UInt8], into ids: inout [Int]) {
        if word.isEmpty { return }
        if ignoreMerges, let id = vocabulary.id(word) {
            ids.append(id)
            return
        }
        let cacheable = word.count <= WordCache.maxWordBytes
        if cacheable, let hit = cache.get(word) {
            ids += hit
            return
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        word.withUnsafeBufferPointer { w in
            var unknown: Int32? = nil
            var i = 0
            var piece: [UInt8] = []
            while i < w.count {
                let n = max(1, validUTF8Length(w, at: i))
                let end = min(w.count, i + n)
                piece.removeAll(keepingCapacity: true)
                if i > 0 { piece += continuingSubwordPrefix }
                piece += w[i..<end]
                if end == w.count { piece += endOfWordSuffix }
                if let id = vocabulary.id(piece) {
                    if let u = unknown {
                        symbols.append(u)
                        unknown = nil
                    }
                    symbols.append(Int32(id))
                } else {
                    var handled = false
                    if byteFallback {
                        let bytes = piece.map { byteIDs[Int($0)] }
                        if bytes.allSatisfy({ $0 != nil }) {
                            // As the reference: a pending unknown is not flushed here.
                            for b in bytes { symbols.append(Int32(b!)) }
                            handled = true
                        }
                    }
                    if !handled, let unknownID {
                        if let u = unknown, !fuseUnknown { symbols.append(u) }
                        unknown = Int32(unknownID)
                    }
                }
                i = end
            }
            if let u = unknown { symbols.append(u) }
        }
        let result = mergeAll(symbols)
        if cacheable { cache.put(word, result) }
        ids += result
    }

    /// Applies the merges to `symbols` (ids), lowest rank first, leftmost among equal ranks.
    func mergeAll(_ start: [Int32]) -> [Int] {
        var ids = start
        let n = ids.count
        if n < 2 { return ids.map(Int.init) }
        var next = [Int32](repeating: -1, count: n), prev = [Int32](repeating: -1, count: n)
        var alive = [Bool](repeating: true, count: n)
        for i in 0..<n {
            next[i] = i + 1 < n ? Int32(i + 1) : -1
            prev[i] = Int32(i - 1)
        }
        var heap = BinaryHeap<MergeCandidate>()
        for i in 0..<(n - 1) {
            if let m = merges[UInt64(UInt32(ids[i])) << 32 | UInt64(UInt32(ids[i + 1]))] {
                heap.push(MergeCandidate(rank: m.rank, pos: Int32(i), id: m.id))
            }
        }
        while let top = heap.pop() {
            let p = Int(top.pos)
            guard alive[p], next[p] >= 0 else { continue }
            let q = Int(next[p])
            guard let m = merges[UInt64(UInt32(ids[p])) << 32 | UInt64(UInt32(ids[q]))], m.id == top.id else { continue }
            ids[p] = top.id
            alive[q] = false
            next[p] = next[q]
            if next[q] >= 0 { prev[Int(next[q])] = Int32(p) }
            if prev[p] >= 0 {
                let l = Int(prev[p])
                if let m2 = merges[UInt64(UInt32(ids[l])) << 32 | UInt64(UInt32(ids[p]))] {
                    heap.push(MergeCandidate(rank: m2.rank, pos: Int32(l), id: m2.id))
                }
            }
            if next[p] >= 0 {
                let r = Int(next[p])
                if let m2 = merges[UInt64(UInt32(ids[p])) << 32 | UInt64(UInt32(ids[r]))] {
                    heap.push(MergeCandidate(rank: m2.rank, pos: Int32(p), id: m2.id))
                }
            }
        }
        var out: [Int] = []
        out.reserveCapacity(n)
        for i in 0..<n where alive[i] { out.append(Int(ids[i])) }
        return out
    }
}

struct MergeCandidate: Comparable {
    var rank: Int32
    var pos: Int32
    var id: Int32
    /// Lowest rank first, then leftmost.
    static func < (a: MergeCandidate, b: MergeCandidate) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos }
}

/// A bounded, thread-safe cache of words' ids (a word seen again skips the merges). When
/// full it is cleared (no eviction bookkeeping on the hot path).
final class WordCache: @unchecked Sendable {
    static let maxWordBytes = 64
    static let capacity = 20_000
    private let lock = NSLock()
    private var table: [[UInt8]: [Int]] = [:]

    func get(_ word: [UInt8]) -> [Int]? {
        lock.lock()
        defer { lock.unlock() }
        return table[word]
    }

    func put(_ word: [UInt8], _ ids: [Int]) {
        lock.lock()
        defer { lock.unlock() }
        if table.count >= WordCache.capacity { table.removeAll(keepingCapacity: true) }
        table[word] = ids
    }
}
