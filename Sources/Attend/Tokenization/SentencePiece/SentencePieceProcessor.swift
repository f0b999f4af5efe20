import Foundation

/// SentencePiece's own encoder and decoder over a ``SentencePieceModel``, as the C++ library
/// runs them: its normalizer (charsmap rules by longest match, whitespace folding, dummy
/// prefix, spaces as "▁"), then Unigram (Viterbi in Float, adjacent unknowns fused) or BPE
/// (highest-scoring pair first) over the whole normalized text, byte fallback for unknowns.
/// Cost: linear in the text (times the matches per position; BPE n log n).
struct SentencePieceProcessor: Sendable {
    let model: SentencePieceModel
    let vocabulary: ByteVocabulary
    let unigram: UnigramModel?
    /// User-defined pieces, matched whole before normalization rules.
    let userDefinedTrie: ByteTrie
    let byteIDs: [Int]?
    static let space: [UInt8] = Array("\u{2581}".utf8)

    init(model: SentencePieceModel, path: String) throws {
        self.model = model
        var entries: [(token: [UInt8], id: Int)] = []
        var seen = Set<[UInt8]>()
        for (i, p) in model.pieces.enumerated() where seen.insert(p).inserted { entries.append((p, i)) }
        vocabulary = try buildVocabulary(entries, path: path, key: "ModelProto.pieces")
        let userDefined = model.types.indices.filter { model.types[$0] == .userDefined }
        userDefinedTrie = ByteTrie(userDefined.map { model.pieces[$0] }, values: userDefined)
        var bytes: [Int] = []
        for b in 0..<256 {
            guard let id = vocabulary.id(Array(byteToken(UInt8(b)).utf8)), model.types[id] == .byte else { break }
            bytes.append(id)
        }
        byteIDs = bytes.count == 256 ? bytes : nil
        switch model.modelType {
        case .unigram:
            do {
                unigram = try UnigramModel(
                    pieces: model.pieces, scores: model.scores.map(Double.init), unknownID: model.unknownID,
                    byteFallback: model.byteFallback,
                    inLattice: model.types.map { $0 == .normal || $0 == .userDefined },
                    inScoreRange: model.types.map { $0 == .normal },
                    userDefined: Set(userDefined), sentencePieceFlavor: true)
            } catch let e as ByteVocabulary.BuildError {
                throw vocabularyError(e, path: path, key: "ModelProto.pieces")
            }
        case .bpe:
            unigram = nil
        case .word, .character:
            throw ModelFileError.unsupported(
                path: path, what: "trainer_spec.model_type: \(model.modelType == .word ? "WORD" : "CHAR") models (Unigram and BPE are implemented)")
        }
    }

    // MARK: Normalizing

    /// The longest user-defined piece at the start of `input` (its length), or 0.
    private func userDefinedPrefix(_ input: UnsafeBufferPointer<UInt8>) -> Int {
        var longest = 0
        userDefinedTrie.prefixes(input, from: 0) { len, _ in longest = len }
        return longest
    }

    private func normalizePrefix(_ input: UnsafeBufferPointer<UInt8>) -> (ArraySlice<UInt8>, Int) {
        let u = userDefinedPrefix(input)
        if u > 0 { return (ArraySlice(input[0..<u]), u) }
        if let c = model.charsmap { return c.normalizePrefix(input) }
        let n = validUTF8Length(input, at: 0)
        if n == 0 { return (ArraySlice(replacementCharacterUTF8), 1) }
        return (ArraySlice(input[0..<n]), n)
    }

    /// SentencePiece's `Normalizer::Normalize`.
    func normalize(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 3)
        let removeExtra = model.removeExtraWhitespaces
        let space: [UInt8] = model.escapeWhitespaces ? SentencePieceProcessor.space : [0x20]
        text.withUnsafeBufferPointer { all in
            var pos = 0
            if removeExtra {
                while pos < all.count {
                    let (r, n) = normalizePrefix(UnsafeBufferPointer(rebasing: all[pos...]))
                    guard r.elementsEqual([0x20]) else { break }
                    pos += n
                }
            }
            if pos >= all.count { return }
            if model.addDummyPrefix && !model.treatWhitespaceAsSuffix { out += space }
            var previousIsSpace = removeExtra
            while pos < all.count {
                let (r, n) = normalizePrefix(UnsafeBufferPointer(rebasing: all[pos...]))
                var piece = r[...]
                if previousIsSpace {
                    while piece.first == 0x20 { piece = piece.dropFirst() }
                }
                if !piece.isEmpty {
                    for b in piece {
                        if model.escapeWhitespaces && b == 0x20 { out += space } else { out.append(b) }
                    }
                    previousIsSpace = piece.last == 0x20
                }
                pos += n
                if !removeExtra { previousIsSpace = false }
            }
            if model.addDummyPrefix && model.treatWhitespaceAsSuffix { out += space }
            if removeExtra {
                while out.count >= space.count && out[(out.count - space.count)...].elementsEqual(space) {
                    out.removeLast(space.count)
                }
            }
        }
        return out
    }

    // MARK: Encoding

    /// The pieces of `text`: (surface bytes, id), unknown runs with the unknown id and their text.
    func encode(_ text: [UInt8]) -> [(piece: [UInt8], id: Int)] {
        let normalized = normalize(text)
        var raw: [(piece: [UInt8], id: Int)] = []
        normalized.withUnsafeBufferPointer { n in
            if let unigram {
                for (r, id) in unigram.segment(n) { raw.append((Array(n[r]), id >= 0 ? id : model.unknownID)) }
            } else {
                raw = bpeSegment(n)
            }
        }
        guard model.byteFallback, let byteIDs else { return raw }
        var out: [(piece: [UInt8], id: Int)] = []
        out.reserveCapacity(raw.count)
        for p in raw {
            if p.id == model.unknownID {
                for b in p.piece { out.append((model.pieces[byteIDs[Int(b)]], byteIDs[Int(b)])) }
            } else {
                out.append(p)
            }
        }
        return out
    }

    /// SentencePiece's BPE: characters (user-defined pieces whole), then repeatedly the
    /// adjacent pair whose concatenation is a piece with the highest score (leftmost on ties).
    private func bpeSegment(_ text: UnsafeBufferPointer<UInt8>) -> [(piece: [UInt8], id: Int)] {
        var starts: [Int] = [], ends: [Int] = []
        var i = 0
        while i < text.count {
            var n = userDefinedPrefix(UnsafeBufferPointer(rebasing: text[i...]))
            if n == 0 { n = max(1, validUTF8Length(text, at: i)) }
            starts.append(i)
            ends.append(min(text.count, i + n))
            i += n
        }
        let count = starts.count
        var next = (0..<count).map { $0 + 1 < count ? $0 + 1 : -1 }
        var prev = (0..<count).map { $0 - 1 }
        var alive = [Bool](repeating: true, count: count)
        struct Candidate: Comparable {
            var score: Float, left: Int, right: Int, length: Int
            static func < (a: Candidate, b: Candidate) -> Bool { a.score != b.score ? a.score > b.score : a.left < b.left }
        }
        var heap = BinaryHeap<Candidate>()
        func consider(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            guard let id = vocabulary.id(prefix: nil, UnsafeBufferPointer(rebasing: text[starts[l]..<ends[r]])) else { return }
            let t = model.types[id]
            guard t == .normal || t == .userDefined else { return }
            heap.push(Candidate(score: model.scores[id], left: l, right: r, length: ends[r] - starts[l]))
        }
        for k in 0..<max(0, count - 1) { consider(k, k + 1) }
        while let top = heap.pop() {
            let l = top.left, r = top.right
            guard alive[l], alive[r], next[l] == r, ends[r] - starts[l] == top.length else { continue }
            ends[l] = ends[r]
            alive[r] = false
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            consider(prev[l], l)
            consider(l, next[l])
        }
        var out: [(piece: [UInt8], id: Int)] = []
        for k in 0..<count where alive[k] {
            let piece = Array(text[starts[k]..<ends[k]])
            var id = vocabulary.id(piece) ?? model.unknownID
            if let t = model.types[safe: id], t != .normal && t != .userDefined { id = model.unknownID }
            if id == model.unknownID, let last = out.last, last.id == model.unknownID, !model.byteFallback {
                out[out.count - 1].piece += piece
            } else {
                out.append((piece, id))
            }
        }
        return out
    }

    // MARK: Decoding

    /// SentencePiece's `DecodePieces`: control pieces vanish, the unknown piece shows its
    /// surface, byte pieces are gathered into UTF-8 (U+FFFD per bad byte), "▁" becomes a space
    /// and the dummy-prefix space of the first piece is dropped.
    func decode(pieces: [[UInt8]]) -> String {
        var out: [UInt8] = []
        var bytes: [UInt8] = []
        var atStart = true
        func flushBytes() {
            guard !bytes.isEmpty else { return }
            let s = Array(String(decoding: bytes, as: UTF8.self).utf8)
            out += s
            bytes.removeAll()
            atStart = false
        }
        for p in pieces {
            let id = vocabulary.id(p) ?? model.unknownID
            let type = model.types[id]
            if type == .byte, let b = parseByteToken(p) {
                bytes.append(b)
                continue
            }
            flushBytes()
            var surface: [UInt8]
            switch type {
            case .control: continue
            case .unknown: surface = id == vocabulary.id(p) ? model.unknownSurface : p
            default:
                surface = p
                if atStart && (model.addDummyPrefix || model.removeExtraWhitespaces) && !model.treatWhitespaceAsSuffix
                    && surface.starts(with: SentencePieceProcessor.space)
                {
                    surface.removeFirst(SentencePieceProcessor.space.count)
                }
                surface = replaceAll(surface, SentencePieceProcessor.space, [0x20])
            }
            out += surface
            if !surface.isEmpty { atStart = false }
        }
        flushBytes()
        return String(decoding: out, as: UTF8.self)
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}

/// A binary min-heap (the least element by `<` pops first).
struct BinaryHeap<Element: Comparable> {
    private var items: [Element] = []

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i] < items[parent] else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Element? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l] < items[m] { m = l }
                if r < items.count && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}
