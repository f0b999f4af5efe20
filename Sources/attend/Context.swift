// `attend context`: how a word's vector depends on its sentence, layer by layer, in a BERT
// folder (`attend attention-map` is AttentionMap.swift).
import Attend
import AttendCommandLine
import Foundation

/// A problem with the texts or the folder for context and attention-map (exit status 1).
struct InspectionError: Error, CustomStringConvertible {
    let description: String
}

/// The words of a WordPiece encoding: runs of non-special tokens where every token after the
/// first is a continuation piece (`##...`), with the word spelled from its pieces.
func wordPieceWords(_ ids: [Int], tokenizer: any Tokenizer) -> [(positions: [Int], spelling: String)] {
    var words: [(positions: [Int], spelling: String)] = []
    for (i, id) in ids.enumerated() {
        guard !tokenizer.isSpecial(id), let token = tokenizer.token(for: id) else { continue }
        if token.hasPrefix("##"), let last = words.last, last.positions.last == i - 1 {
            words[words.count - 1] = (last.positions + [i], last.spelling + token.dropFirst(2))
        } else {
            words.append(([i], token))
        }
    }
    return words
}

/// The positions of the word pieces of the first whole-word occurrence of `word` in
/// `encoding` (compared without case, after the tokenizer's own normalization), or nil.
/// Throws when `word` is not one word for the tokenizer or is unknown to it.
func wordPositions(of word: String, in ids: [Int], tokenizer: any Tokenizer) throws -> [Int]? {
    let alone = wordPieceWords(tokenizer.encode(word, addSpecialTokens: false).ids, tokenizer: tokenizer)
    guard alone.count == 1, let target = alone.first else {
        throw UsageError(description: "--word \(quotedLine(word)) is \(alone.count) words for this tokenizer (\(alone.map(\.spelling).joined(separator: " "))); give one")
    }
    if let unk = tokenizer.id(for: "[UNK]"), tokenizer.encode(word, addSpecialTokens: false).ids.contains(unk) {
        throw InspectionError(description: "--word \(quotedLine(word)) is not in the tokenizer's vocabulary (it becomes [UNK])")
    }
    let key = target.spelling.lowercased()
    return wordPieceWords(ids, tokenizer: tokenizer).first { $0.spelling.lowercased() == key }?.positions
}

/// The mean of rows `positions` of `matrix` `[rows, d]`, in Double.
private func meanRow(_ matrix: [Float], d: Int, positions: [Int]) -> [Double] {
    var v = [Double](repeating: 0, count: d)
    for p in positions {
        for c in 0..<d { v[c] += Double(matrix[p * d + c]) }
    }
    return v.map { $0 / Double(positions.count) }
}

/// The cosine of two vectors (0 when either is zero).
private func cosine(_ a: [Double], _ b: [Double]) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for (x, y) in zip(a, b) {
        dot += x * y
        na += x * x
        nb += y * y
    }
    return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
}

/// The cosines `attend context` prints: per pair of texts, of the word's input embeddings and,
/// per layer (0 = embedding output, then each encoder layer), of its contextual vectors.
struct WordContext {
    var pieces: [[String]]
    var pairs: [(Int, Int)]
    var input: [Double]
    var layers: [[Double]]
}

/// Runs each text through `model` on its own and compares the word's vectors across texts.
/// Throws `InspectionError` naming a text without the word, and the model's input errors.
func wordContext(word: String, texts: [String], model: BERTModel, tokenizer: any Tokenizer, compute: Compute = .default) throws -> WordContext {
    let d = model.hiddenSize
    var inputs: [[Double]] = [], layers: [[[Double]]] = [], pieces: [[String]] = []
    for (n, text) in texts.enumerated() {
        let encoding = tokenizer.encode(text)
        guard let positions = try wordPositions(of: word, in: encoding.ids, tokenizer: tokenizer) else {
            throw InspectionError(description: "text \(n + 1) \(quotedLine(text)) does not contain the word \(quotedLine(word))")
        }
        pieces.append(positions.map { tokenizer.token(for: encoding.ids[$0]) ?? "?" })
        let out = try model.forward(
            inputIDs: [encoding.ids], tokenTypeIDs: [encoding.tokenTypeIDs], attentionMask: [encoding.attentionMask],
            outputHiddenStates: true, compute: compute)
        let table = model.embeddings.word(positions.map { encoding.ids[$0] }).scalars  // [pieces, d]
        inputs.append(meanRow(table, d: d, positions: Array(positions.indices)))
        layers.append(out.hiddenStates.map { meanRow($0.scalars, d: d, positions: positions) })
    }
    var pairs: [(Int, Int)] = []
    for i in texts.indices {
        for j in texts.indices where j > i { pairs.append((i, j)) }
    }
    return WordContext(
        pieces: pieces, pairs: pairs, input: pairs.map { cosine(inputs[$0.0], inputs[$0.1]) },
        layers: (0..<(layers.first?.count ?? 0)).map { l in pairs.map { cosine(layers[$0.0][l], layers[$0.1][l]) } })
}

/// `attend context`: loads the folder and prints the table (or one JSON line).
func context(folder: URL, texts: [String], _ args: Arguments) throws {
    guard texts.count >= 2 else { throw UsageError(description: "context needs at least two texts to compare, got \(texts.count)") }
    let word = args.word ?? ""
    let tokenizer = try loadTokenizer(directory: folder)
    let model = try BERTModel(directory: folder, weightPrecision: args.precision)
    let r = try wordContext(word: word, texts: texts, model: model, tokenizer: tokenizer)
    if args.json {
        let pairs = "[" + r.pairs.map { "[\($0.0), \($0.1)]" }.joined(separator: ", ") + "]"
        let pieces = "[" + r.pieces.map { "[" + $0.map(jsonString).joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"
        let layers = "[" + r.layers.map { "[" + $0.map { "\($0)" }.joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"
        print(
            jsonObject([
                ("word", .string(word)), ("texts", .strings(texts)), ("pieces", .raw(pieces)), ("pairs", .raw(pairs)),
                ("input", .raw("[" + r.input.map { "\($0)" }.joined(separator: ", ") + "]")), ("layers", .raw(layers)),
            ]))
        return
    }
    print("word \(quotedLine(word)): cosine between its vectors (mean over its word pieces) in each pair of texts")
    for (i, t) in texts.enumerated() { print("[\(i + 1)] \(quotedLine(t))  pieces: \(r.pieces[i].joined(separator: " "))") }
    print("")
    let first = 18, width = 10
    func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, w - s.count))
        return left ? s + fill : fill + s
    }
    print(pad("layer", first, left: true) + r.pairs.map { pad("[\($0.0 + 1)]-[\($0.1 + 1)]", width) }.joined())
    print(pad("input embedding", first, left: true) + r.input.map { pad(String(format: "%.4f", $0), width) }.joined())
    for (l, row) in r.layers.enumerated() {
        let name = l == 0 ? "0 (embeddings)" : l == r.layers.count - 1 ? "\(l) (last)" : "\(l)"
        print(pad(name, first, left: true) + row.map { pad(String(format: "%.4f", $0), width) }.joined())
    }
}
