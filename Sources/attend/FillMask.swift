// `attend fill-mask`: the most likely tokens for each [MASK] of a text, from a BERT folder
// with an MLM head, as transformers' fill-mask pipeline gives them.
import Attend
import AttendCommandLine
import Foundation

/// A problem with the text or the folder for fill-mask (exit status 1).
struct FillMaskError: Error, CustomStringConvertible {
    let description: String
}

/// One prediction for one [MASK]: the pipeline's `score`, `token`, `token_str`, `sequence`.
struct MaskPrediction {
    var score: Float
    var token: Int
    var tokenString: String
    var sequence: String
}

/// The top-`k` predictions for each [MASK] of `text` (in the text's order). Each [MASK]'s
/// scores are the softmax over the whole vocabulary of the MLM logits at its position;
/// `sequence` is the text decoded with that one [MASK] filled in (special tokens left out
/// when the text has a single [MASK], kept otherwise, as the pipeline does).
/// Cost: one forward pass, and the MLM head on the [MASK] positions only.
func fillMask(
    _ text: String, model: BERTModel, tokenizer: any Tokenizer, maskID: Int, padID: Int, topK: Int
) throws -> [[MaskPrediction]] {
    let encoding = tokenizer.encode(text)
    let ids = encoding.ids
    let positions = ids.indices.filter { ids[$0] == maskID }
    guard !positions.isEmpty else { throw FillMaskError(description: "no [MASK] in the text \(quotedLine(text))") }
    guard ids.count <= model.config.maxPositionEmbeddings else {
        throw FillMaskError(
            description: "the text \(quotedLine(String(text.prefix(60)))) has \(ids.count) tokens; the model takes at most \(model.config.maxPositionEmbeddings)")
    }
    let hidden = try model.forward(inputIDs: [ids], tokenTypeIDs: [encoding.tokenTypeIDs], attentionMask: [encoding.attentionMask])
        .lastHiddenState  // [1, seq, d]
    let d = model.hiddenSize
    let atMasks = hidden.reshaped([ids.count, d]).gatherRows(positions).reshaped([1, positions.count, d])
    let logits = try model.maskedLMLogits(atMasks).scalars  // [1, masks, vocab]
    let vocabulary = logits.count / positions.count
    let k = min(topK, vocabulary)
    var result: [[MaskPrediction]] = []
    for (m, position) in positions.enumerated() {
        let row = logits[(m * vocabulary)..<((m + 1) * vocabulary)]
        let top = row.max() ?? 0
        var sum = 0.0
        for x in row { sum += exp(Double(x - top)) }
        // The k best, highest first; equal scores in id order.
        let best = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(k)
        result.append(
            best.map { index in
                let token = index - m * vocabulary
                var filled = ids
                filled[position] = token
                filled.removeAll { $0 == padID }
                return MaskPrediction(
                    score: Float(exp(Double(row[index] - top)) / sum), token: token,
                    tokenString: tokenizer.decode([token], skipSpecialTokens: false),
                    sequence: tokenizer.decode(filled, skipSpecialTokens: positions.count == 1))
            })
    }
    return result
}

/// Loads the folder's model and tokenizer and prints the predictions for every text (see the
/// usage text). Throws `FillMaskError` for a text without [MASK], a checkpoint without an MLM
/// head or a tokenizer without [MASK], and the loaders' errors for a bad folder.
func fillMask(folder: URL, texts: [String], _ args: Arguments) throws {
    let tokenizer = try loadTokenizer(directory: folder)
    guard let maskID = tokenizer.id(for: "[MASK]") else {
        throw FillMaskError(description: "\(folder.path): the tokenizer has no [MASK] token")
    }
    let padID = (tokenizer as? WordPieceTokenizer)?.padID ?? tokenizer.id(for: "[PAD]") ?? 0
    let model = try BERTModel(directory: folder, weightPrecision: args.precision)
    guard let head = model.maskedLMHead else {
        throw FillMaskError(
            description: "\(folder.path): the checkpoint has no MLM head (cls.predictions.*); fill-mask needs a BertForMaskedLM or BertForPreTraining folder")
    }
    guard tokenizer.idLimit <= head.decoder.outFeatures else {
        throw FillMaskError(
            description: "\(folder.path): the tokenizer has ids up to \(tokenizer.idLimit - 1), more than the model's vocabulary of \(head.decoder.outFeatures)")
    }
    guard !texts.isEmpty else { throw UsageError(description: "fill-mask: no texts given") }
    for text in texts {
        let predictions = try fillMask(text, model: model, tokenizer: tokenizer, maskID: maskID, padID: padID, topK: args.fillMaskTopK)
        if args.json {
            let masks = predictions.map { row in
                "[" + row.map { p in
                    jsonObject([
                        ("score", .float(p.score)), ("token", .int(p.token)), ("token_str", .string(p.tokenString)),
                        ("sequence", .string(p.sequence)),
                    ])
                }.joined(separator: ", ") + "]"
            }
            print(jsonObject([("text", .string(text)), ("predictions", .raw("[" + masks.joined(separator: ", ") + "]"))]))
        } else {
            print(quotedLine(text))
            for (m, row) in predictions.enumerated() {
                if predictions.count > 1 { print("  [MASK] \(m + 1):") }
                let indent = predictions.count > 1 ? "    " : "  "
                for p in row {
                    print(indent + String(format: "%.4f  ", Double(p.score)) + quotedLine(p.tokenString) + "  " + quotedLine(p.sequence))
                }
            }
        }
    }
}
