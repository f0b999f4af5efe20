import Foundation

// What transformers 5 builds from a SentencePiece model file when a folder has no
// tokenizer.json: for T5 and Llama, the same tokenizers pipeline its tokenizer.json would
// hold (so a slow-only folder encodes exactly as its fast twin); other classes keep
// SentencePiece's own algorithm (``SentencePieceTokenizer``).

extension PipelineTokenizer {
    /// The converted pipeline for `model` as the tokenizer class of `config` builds it, or nil
    /// when transformers has no such conversion here (T5 needs a Unigram model, Llama BPE).
    init?(convertingSentencePiece model: SentencePieceModel, config: TokenizerConfig, path: String) throws {
        let cls = config.tokenizerClass ?? ""
        var added: [AddedToken] = []
        for (i, t) in model.types.enumerated() where t == .control || t == .userDefined || t == .unknown {
            added.append(AddedToken(content: String(decoding: model.pieces[i], as: UTF8.self), id: i, special: t != .userDefined))
        }
        added.sort { $0.id < $1.id }
        if cls.hasPrefix("T5") && model.modelType == .unigram {
            let n = model.pieces.count
            for k in 0..<config.extraIDs {
                added.append(AddedToken(content: "<extra_id_\(config.extraIDs - 1 - k)>", id: n + k))
            }
            let unigram: UnigramModel
            do {
                unigram = try UnigramModel(
                    pieces: model.pieces, scores: model.scores.map(Double.init),
                    unknownID: model.unknownID, byteFallback: model.byteFallback)
            } catch let e as ByteVocabulary.BuildError {
                throw vocabularyError(e, path: path, key: "ModelProto.pieces")
            }
            let space = Array("\u{2581}".utf8)
            guard model.eosID >= 0 && model.eosID < n else {
                throw ModelFileError.invalidValue(path: path, key: "trainer_spec.eos_id", reason: "\(model.eosID) is not a piece id")
            }
            let eos = model.eosID
            self.init(
                normalizer: model.charsmap.map { .precompiled($0) },
                preTokenizer: .sequence([.whitespaceSplit, .metaspace(replacement: space, prepend: .always, split: true)]),
                model: .unigram(unigram),
                template: PostProcessorTemplate(
                    single: [.first(typeID: 0), .special(ids: [eos], typeID: 0)],
                    pair: [
                        .first(typeID: 0), .special(ids: [eos], typeID: 0),
                        .second(typeID: 0), .special(ids: [eos], typeID: 0),
                    ]),
                decoder: .metaspace(replacement: space, prependScheme: .always),
                addedTokens: added, cleanUpSpaces: config.cleanUpTokenizationSpaces)
            return
        }
        if cls.hasPrefix("Llama") && model.modelType == .bpe {
            var entries: [(token: [UInt8], id: Int)] = []
            var seen = Set<[UInt8]>()
            for (i, p) in model.pieces.enumerated() where seen.insert(p).inserted { entries.append((p, i)) }
            let vocabulary = try buildVocabulary(entries, path: path, key: "ModelProto.pieces")
            let bpe = try BPEModel(
                vocabulary: vocabulary, merges: generateMerges(model.pieces, vocabulary),
                unknownToken: nil, fuseUnknown: true, byteFallback: true, continuingSubwordPrefix: [],
                endOfWordSuffix: [], ignoreMerges: false, path: path)
            let addPrefixSpace = config.addPrefixSpace ?? true
            let scheme: PrependScheme = !addPrefixSpace ? .never : ((config.legacy ?? false) ? .always : .first)
            let space = Array("\u{2581}".utf8)
            var steps: [TokenDecoder] = [.replace(pattern: space, content: [0x20]), .byteFallback, .fuse]
            if addPrefixSpace { steps.append(.strip(content: 0x20, start: 1, stop: 0)) }
            self.init(
                normalizer: nil, preTokenizer: .metaspace(replacement: space, prepend: scheme, split: false),
                model: .bpe(bpe), template: .none, decoder: .sequence(steps), addedTokens: added,
                cleanUpSpaces: false)
            return
        }
        return nil
    }
}

/// transformers' `generate_merges` for a vocabulary given in id order: every split of every
/// piece into two pieces of the vocabulary, ordered by the piece's id, then the halves' ids
/// (stable), then by the left and right halves' lengths in characters.
func generateMerges(_ pieces: [[UInt8]], _ vocabulary: ByteVocabulary) -> [([UInt8], [UInt8])] {
    struct Merge { var left: [UInt8]; var right: [UInt8]; var rank: Int; var l: Int; var r: Int; var lc: Int; var rc: Int }
    var merges: [Merge] = []
    for (rank, piece) in pieces.enumerated() where vocabulary.id(piece) == rank {
        let s = String(decoding: piece, as: UTF8.self)
        let chars = Array(s.unicodeScalars)
        guard chars.count > 1 else { continue }
        var local: [Merge] = []
        var leftBytes = 0
        for k in 1..<chars.count {
            leftBytes += String(chars[k - 1]).utf8.count
            let l = Array(piece[0..<leftBytes]), r = Array(piece[leftBytes...])
            if let li = vocabulary.id(l), let ri = vocabulary.id(r) {
                local.append(Merge(left: l, right: r, rank: rank, l: li, r: ri, lc: k, rc: chars.count - k))
            }
        }
        local.sort { ($0.l, $0.r) < ($1.l, $1.r) }
        merges += local
    }
    // Python's sort is stable: by (rank, left length, right length).
    let order = merges.indices.sorted { a, b in
        let x = merges[a], y = merges[b]
        if (x.rank, x.lc, x.rc) != (y.rank, y.lc, y.rc) { return (x.rank, x.lc, x.rc) < (y.rank, y.lc, y.rc) }
        return a < b
    }
    return order.map { (merges[$0].left, merges[$0].right) }
}
