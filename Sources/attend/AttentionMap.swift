// `attend attention-map`: one layer's attention probabilities (transformers'
// `output_attentions`) for one text, drawn as an SVG heatmap (one panel per head) and/or
// printed as one JSON line. The folder's config.json says which model it is: BERT
// (self-attention), a decoder-only model (causal self-attention over the prompt), or T5 /
// Marian (`--part encoder|decoder|cross`, the decoder reading `--target`, `--target-ids` or
// what the model generates).
import Attend
import AttendCommandLine
import Foundation

/// One layer's maps and what labels them.
private struct AttentionMaps {
    /// `[heads, queries, keys]`, flattened.
    var probabilities: [Float]
    var heads: Int
    var layer: Int
    var layerCount: Int
    var queryTokens: [String]
    var keyTokens: [String]
    /// What the drawing's title calls the maps ("attention probabilities", "decoder self-attention ...").
    var what: String
    var footnote: String
    /// Extra JSON fields (the part, the target).
    var json: [(String, JSONValue)] = []
}

/// The model type of a folder's config.json (`model_type`), or nil when it cannot be read
/// (the loader then names the problem).
private func modelType(_ folder: URL) -> String? {
    let url = folder.appendingPathComponent("config.json")
    guard let data = try? Data(contentsOf: url), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        return nil
    }
    return object["model_type"] as? String
}

/// Labels for `ids`: the tokenizer's tokens, else the ids themselves.
private func labels(_ ids: [Int], _ tokenizer: (any Tokenizer)?) -> [String] {
    ids.map { id in tokenizer?.token(for: id) ?? "\(id)" }
}

/// The layer asked for (default the last), checked against `count`. Throws `UsageError`.
private func chosenLayer(_ args: Arguments, count: Int, _ what: String) throws -> Int {
    guard count > 0 else { throw InspectionError(description: "the model has no \(what)") }
    let layer = args.layer ?? count - 1
    guard layer < count else { throw UsageError(description: "--layer \(layer): the model has \(what) 0..<\(count)") }
    return layer
}

/// Checks `ids` against a vocabulary of `size` ids (and `limit` positions). Throws `UsageError` naming the flag.
private func checkIDs(_ ids: [Int], _ flag: String, vocabulary size: Int, limit: Int? = nil) throws {
    if let bad = ids.firstIndex(where: { $0 >= size }) {
        throw UsageError(description: "\(flag): item \(bad + 1) (\(ids[bad])) is outside the model's vocabulary of \(size) tokens")
    }
    if let limit, ids.count > limit { throw UsageError(description: "\(flag): \(ids.count) tokens; the model takes at most \(limit)") }
}

/// `attend attention-map`: loads the folder as its config.json says, computes the layer's
/// probabilities and draws and/or prints them.
func attentionMap(folder: URL, texts: [String], _ args: Arguments) throws {
    let folder = try resolveModelDirectory(folder)
    guard texts.count == 1 || (texts.isEmpty && !args.ids.isEmpty) else {
        throw UsageError(description: "attention-map takes one text, got \(texts.count)")
    }
    let text = texts.first
    let type = modelType(folder)
    let seq2seq = ["t5", "mt5", "marian"].contains(type ?? "")
    if !seq2seq,
        let flag = [("--part", args.part != nil), ("--target", args.target != nil), ("--target-ids", args.targetIDs != nil)].first(where: \.1)?.0
    {
        throw UsageError(description: "\(flag) is for T5 and Marian folders; this one is \(type.map { "\"\($0)\"" } ?? "not one")")
    }
    var maps: AttentionMaps
    var json: [(String, JSONValue)] = text.map { [("text", .string($0))] } ?? []
    if seq2seq {
        maps = try seq2seqMaps(folder: folder, text: text, args, json: &json)
    } else if DecoderOnlyModel.handles(directory: folder) {
        maps = try decoderOnlyMaps(folder: folder, text: text, args, json: &json)
    } else if type == nil || type == "bert" {
        maps = try bertMaps(folder: folder, text: text, args, json: &json)  // (a config.json it cannot read: the loader says why)
    } else {
        throw InspectionError(
            description:
                "\(folder.appendingPathComponent("config.json").path): model_type \"\(type!)\" is not one attention-map reads (bert, gpt2, llama, mistral, qwen2, t5, mt5, marian)"
        )
    }
    if let h = args.head, h >= maps.heads { throw UsageError(description: "--head \(h): the model has heads 0..<\(maps.heads)") }
    let (q, k) = (maps.queryTokens.count, maps.keyTokens.count)
    let shown = args.head.map { [$0] } ?? Array(0..<maps.heads)
    let panels = shown.map { h in Array(maps.probabilities[(h * q * k)..<((h + 1) * q * k)]) }
    if let path = args.svg {
        let name = folder.standardizedFileURL.lastPathComponent
        var drawing = Heatmap(
            title: "\(name): \(maps.what), layer \(maps.layer) (layers 0 to \(maps.layerCount - 1))",
            rowLabels: maps.queryTokens, columnLabels: maps.keyTokens,
            panels: zip(shown, panels).map { HeatmapPanel(caption: "head \($0)", values: $1) })
        drawing.footnote = maps.footnote
        drawing.range = 0...Double(max(panels.flatMap { $0 }.max() ?? 1, 1e-6))  // probabilities: 0 up to the largest
        do {
            try drawing.document().write(to: URL(fileURLWithPath: path))
        } catch {
            throw InspectionError(description: "--svg \(path): cannot write the file (\(error.localizedDescription))")
        }
    }
    if args.json {
        let attention =
            "["
            + panels.map { m in
                "["
                    + (0..<q).map { i in "[" + m[(i * k)..<((i + 1) * k)].map { formatFloat($0) }.joined(separator: ", ") + "]" }
                    .joined(separator: ", ") + "]"
            }.joined(separator: ", ") + "]"
        print(jsonObject(json + maps.json + [("layer", .int(maps.layer)), ("heads", .ints(shown)), ("attention", .raw(attention))]))
    }
}

/// The source (or prompt) ids: `--ids` as given, else the text through `tokenizer`.
private func inputIDs(_ text: String?, _ args: Arguments, tokenizer: (any Tokenizer)?) throws -> [Int] {
    if let ids = args.ids.first { return ids }
    guard let tokenizer, let text else { preconditionFailure("attention-map: a text without a tokenizer") }
    let ids = tokenizer.encode(text).ids
    if ids.isEmpty { throw InspectionError(description: "the text \(quotedLine(text)) gives no tokens") }
    return ids
}

/// The tokenizer: required for a text, else loaded when the folder has one (for labels).
private func folderTokenizer(_ folder: URL, needed: Bool) throws -> (any Tokenizer)? {
    needed ? try loadTokenizer(directory: folder) : try? loadTokenizer(directory: folder)
}

/// BERT: one layer's self-attention over the text.
private func bertMaps(folder: URL, text: String?, _ args: Arguments, json: inout [(String, JSONValue)]) throws -> AttentionMaps {
    let tokenizer = try folderTokenizer(folder, needed: text != nil)
    let model = try BERTModel(directory: folder, weightPrecision: args.precision)
    let layer = try chosenLayer(args, count: model.layers.count, "layers")
    let encoding = text.map { tokenizer!.encode($0) }
    let ids = try inputIDs(text, args, tokenizer: tokenizer)
    try checkIDs(ids, "--ids", vocabulary: model.embeddings.word.count, limit: model.config.maxPositionEmbeddings)
    let out = try model.forward(
        inputIDs: [ids], tokenTypeIDs: encoding.map { [$0.tokenTypeIDs] }, attentionMask: encoding.map { [$0.attentionMask] },
        outputAttentions: [layer])
    let tokens = labels(ids, tokenizer)
    json += [("ids", .ints(ids)), ("tokens", .strings(tokens))]
    return AttentionMaps(
        probabilities: out.attentions[layer]!.scalars, heads: model.config.numAttentionHeads, layer: layer, layerCount: model.layers.count,
        queryTokens: tokens, keyTokens: tokens, what: "attention probabilities",
        footnote: "rows: queries, columns: keys (each row sums to 1)")
}

/// A decoder-only model: one layer's causal self-attention over the prompt.
private func decoderOnlyMaps(folder: URL, text: String?, _ args: Arguments, json: inout [(String, JSONValue)]) throws -> AttentionMaps {
    let tokenizer = try folderTokenizer(folder, needed: text != nil)
    let model = try DecoderOnlyModel(directory: folder, weightPrecision: args.precision)
    let layer = try chosenLayer(args, count: model.layers.count, "layers")
    let ids = try inputIDs(text, args, tokenizer: tokenizer)
    try checkIDs(ids, "--ids", vocabulary: model.vocabularySize, limit: model.positionLimit?.limit)
    let out = try model.forward(inputIDs: [ids], outputAttentions: [layer])
    let tokens = labels(ids, tokenizer)
    json += [("ids", .ints(ids)), ("tokens", .strings(tokens))]
    return AttentionMaps(
        probabilities: out.attentions[layer]!.scalars, heads: model.heads, layer: layer, layerCount: model.layers.count,
        queryTokens: tokens, keyTokens: tokens, what: "causal self-attention probabilities",
        footnote: "rows: queries, columns: keys (each row sums to 1 over itself and the keys before it)")
}

/// T5 or Marian: the encoder's self-attention over the source, or the decoder's causal
/// self-attention or cross-attention for the target (given, or generated from the source).
private func seq2seqMaps(folder: URL, text: String?, _ args: Arguments, json: inout [(String, JSONValue)]) throws -> AttentionMaps {
    let part = args.part ?? "encoder"
    let tokenizer = try folderTokenizer(folder, needed: text != nil || args.target != nil)
    let model = try Seq2SeqModel(directory: folder, weightPrecision: args.precision)
    let source = try inputIDs(text, args, tokenizer: tokenizer)
    try checkIDs(source, "--ids", vocabulary: model.sourceVocabularySize, limit: model.maxPositions)
    let sourceTokens = labels(source, tokenizer)
    json += [("ids", .ints(source)), ("tokens", .strings(sourceTokens)), ("part", .string(part))]
    if part == "encoder" {
        let layer = try chosenLayer(args, count: model.encoder.layers.count, "encoder layers")
        let out = try model.forward(sources: [source], targets: [[model.decoderStartTokenID]], outputEncoderAttentions: [layer])
        return AttentionMaps(
            probabilities: out.encoderAttentions[layer]!.scalars, heads: out.encoderAttentions[layer]!.shape[1], layer: layer,
            layerCount: model.encoder.layers.count, queryTokens: sourceTokens, keyTokens: sourceTokens,
            what: "encoder self-attention probabilities", footnote: "rows: queries, columns: keys (the source; each row sums to 1)")
    }
    let layer = try chosenLayer(args, count: model.decoder.layers.count, "decoder layers")
    let target: [Int]
    if let ids = args.targetIDs {
        target = ids
    } else if let t = args.target {
        let pieces =
            (tokenizer as? MarianTokenizer)?.encodeTarget(t, addSpecialTokens: false).ids ?? tokenizer!.encode(t, addSpecialTokens: false).ids
        target = [model.decoderStartTokenID] + pieces
    } else {
        // What the model generates from the source (greedy), up to its end token: each query
        // position is the step that chose the next token.
        var config = model.generationDefaults
        config.numBeams = 1
        config.numReturnSequences = 1
        config.doSample = false
        if let m = model.maxPositions { config.maxNewTokens = min(config.maxNewTokens, max(1, m - 1)) }
        let row = try model.greedy(sources: [source], startTokenID: model.decoderStartTokenID, config: config) { _ in }[0]
        let end = row.dropFirst().firstIndex(where: Set(config.eosTokenIDs).contains) ?? row.count
        target = Array(row[..<end])
    }
    try checkIDs(target, args.target != nil ? "--target" : "--target-ids", vocabulary: model.vocabularySize, limit: model.maxPositions)
    let targetTokens = labels(target, tokenizer)
    json += [("target_ids", .ints(target)), ("target_tokens", .strings(targetTokens))]
    let cross = part == "cross"
    let out = try model.forward(
        sources: [source], targets: [target], outputDecoderAttentions: cross ? [] : [layer], outputCrossAttentions: cross ? [layer] : [])
    let map = cross ? out.crossAttentions[layer]! : out.decoderAttentions[layer]!
    return AttentionMaps(
        probabilities: map.scalars, heads: map.shape[1], layer: layer, layerCount: model.decoder.layers.count,
        queryTokens: targetTokens, keyTokens: cross ? sourceTokens : targetTokens,
        what: cross ? "cross-attention probabilities" : "decoder self-attention probabilities",
        footnote: cross
            ? "rows: target queries, columns: source keys (each row sums to 1)"
            : "rows: target queries, columns: target keys (each row sums to 1 over itself and the keys before it)")
}
