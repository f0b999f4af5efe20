/// The Unigram language model of SentencePiece (T5, mT5, ALBERT, XLM-R, Marian): each piece
/// has a log-probability score, and a word is cut into the pieces whose scores sum highest
/// (Viterbi over every vocabulary piece starting at every character). A character no piece
/// starts with becomes the unknown piece, scored 10 below the lowest score; adjacent unknown
/// characters fuse into one unknown token. With `byteFallback`, an unknown token becomes its
/// bytes' `<0xXX>` pieces instead.
///
/// Two flavors give the reference results bit for bit: tokenizers' (scores and sums in
/// Double, every piece in the lattice) and SentencePiece's (Float, only normal and
/// user-defined pieces in the lattice, user-defined pieces preferred). Cost: O(word x matches
/// per position).
struct UnigramModel: Sendable {
    let pieces: [[UInt8]]
    let scores: [Double]
    let unknownID: Int?
    let byteFallback: Bool
    let vocabulary: ByteVocabulary
    let trie: ByteTrie
    let minScore: Double
    let maxScore: Double
    /// SentencePiece's arithmetic (Float) and user-defined piece scoring.
    let sentencePieceFlavor: Bool
    let userDefined: Set<Int>
    /// `<0xXX>` piece ids (byte fallback), when all 256 exist.
    let byteIDs: [Int]?

    /// `inLattice[i]`: whether piece i may be chosen by the Viterbi search.
    /// `inScoreRange[i]`: whether piece i counts for the lowest and highest score (default: those in the lattice).
    init(
        pieces: [[UInt8]], scores: [Double], unknownID: Int?, byteFallback: Bool, inLattice: [Bool]? = nil,
        inScoreRange: [Bool]? = nil, userDefined: Set<Int> = [], sentencePieceFlavor: Bool = false
    ) throws {
        self.pieces = pieces
        self.scores = scores
        self.unknownID = unknownID
        self.byteFallback = byteFallback
        self.sentencePieceFlavor = sentencePieceFlavor
        self.userDefined = userDefined
        var entries: [(token: [UInt8], id: Int)] = []
        var seen = Set<[UInt8]>()
        for (i, p) in pieces.enumerated() where seen.insert(p).inserted { entries.append((p, i)) }
        vocabulary = try ByteVocabulary(entries)
        var keys: [[UInt8]] = [], values: [Int] = []
        var lo = Double.infinity, hi = -Double.infinity
        for (i, p) in pieces.enumerated() where inLattice?[i] ?? true {
            // The first of duplicate pieces keeps the key (a later one is unreachable, as in the reference).
            if vocabulary.id(p) != i { continue }
            keys.append(p)
            values.append(i)
        }
        for i in pieces.indices where inScoreRange?[i] ?? inLattice?[i] ?? true {
            lo = min(lo, scores[i])
            hi = max(hi, scores[i])
        }
        trie = ByteTrie(keys, values: values)
        minScore = lo.isFinite ? lo : 0
        maxScore = hi.isFinite ? hi : 0
        var bytes: [Int] = []
        for b in 0..<256 {
            guard let id = vocabulary.id(Array(byteToken(UInt8(b)).utf8)) else { break }
            bytes.append(id)
        }
        byteIDs = bytes.count == 256 ? bytes : nil
    }

    /// The pieces of `word` as (byte range, id); a fused unknown run has the unknown id.
    func segment(_ word: UnsafeBufferPointer<UInt8>) -> [(Range<Int>, Int)] {
        if sentencePieceFlavor { return viterbi(word, Float.self) }
        return viterbi(word, Double.self)
    }

    private func viterbi<S: BinaryFloatingPoint>(_ text: UnsafeBufferPointer<UInt8>, _: S.Type) -> [(Range<Int>, Int)] {
        let n = text.count
        if n == 0 { return [] }
        let unkScore = S(minScore) - 10
        var best = [S](repeating: 0, count: n + 1)
        var from = [Int](repeating: -1, count: n + 1)
        var ids = [Int](repeating: -1, count: n + 1)
        var start = 0
        while start < n {
            // Positions never reached (only possible after invalid input) are skipped.
            if start > 0 && from[start] < 0 {
                start += 1
                continue
            }
            let base = best[start]
            let charLength = max(1, validUTF8Length(text, at: start))
            var hasSingle = false
            trie.prefixes(text, from: start) { length, id in
                let end = start + length
                let score: S
                if sentencePieceFlavor && userDefined.contains(id) {
                    score = S(length) * S(maxScore) - 0.1
                } else {
                    score = S(scores[id])
                }
                let candidate = base + score
                if from[end] < 0 || candidate > best[end] {
                    best[end] = candidate
                    from[end] = start
                    ids[end] = id
                }
                if length == charLength { hasSingle = true }
            }
            if !hasSingle {
                let end = min(n, start + charLength)
                let candidate = base + unkScore
                if from[end] < 0 || candidate > best[end] {
                    best[end] = candidate
                    from[end] = start
                    ids[end] = unknownID ?? -1
                }
            }
            start += charLength
        }
        // Back from the end; adjacent unknowns fuse.
        var out: [(Range<Int>, Int)] = []
        var end = n
        var unknownEnd: Int? = nil
        while end > 0 {
            let s = from[end]
            guard s >= 0 else { break }
            let id = ids[end]
            let isUnknown = id == (unknownID ?? -1)
            if isUnknown {
                if unknownEnd == nil { unknownEnd = end }
            } else {
                if let u = unknownEnd {
                    out.append((end..<u, unknownID ?? -1))
                    unknownEnd = nil
                }
                out.append((s..<end, id))
            }
            end = s
        }
        if let u = unknownEnd { out.append((0..<u, unknownID ?? -1)) }
        out.reverse()
        return out
    }

    /// The ids of `word` (tokenizers' rules: a fused unknown run looked up as a token, then
    /// byte fallback, then the unknown id; without an unknown id the run is dropped).
    func tokenize(_ word: [UInt8], into ids: inout [Int]) {
        word.withUnsafeBufferPointer { w in
            for (r, id) in segment(w) {
                if id >= 0 && id != unknownID {
                    ids.append(id)
                    continue
                }
                if let found = vocabulary.id(prefix: nil, UnsafeBufferPointer(rebasing: w[r])) {
                    ids.append(found)
                } else if byteFallback, let byteIDs {
                    for b in w[r] { ids.append(byteIDs[Int(b)]) }
                } else if let unknownID {
                    ids.append(unknownID)
                }
            }
        }
    }
}

/// The byte-fallback piece of a byte: `<0x41>`.
func byteToken(_ b: UInt8) -> String {
    let hex = Array("0123456789ABCDEF")
    return "<0x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)]) + ">"
}
