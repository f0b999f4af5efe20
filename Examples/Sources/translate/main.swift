// translate: text in, text out with an encoder-decoder folder (Marian opus-mt, T5, mT5):
// the folder's tokenizer (loadTokenizer) turns text into ids, Seq2SeqModel generates ids,
// and the tokenizer turns them back into text.
import Attend
import ExampleSupport
import Foundation

let spec = CommandSpec(
    name: "translate",
    summary: "translate (or summarize) text with a Marian, T5 or mT5 model folder",
    synopsis: "--model DIR [--tokenizer DIR] [--prefix TEXT] [--beams N] [--max-new-tokens N] [--stream] [TEXT ...]",
    options: [
        .value("--model", "DIR", "Hugging Face folder: config.json (model_type t5, mt5 or marian), model.safetensors"),
        .value("--tokenizer", "DIR", "folder with the tokenizer files (default: the model folder)"),
        .value("--prefix", "TEXT", "put before every input, e.g. \"translate English to German: \" for T5"),
        .value("--beams", "N", "beam search width (default: generation_config.json, else 1)"),
        .value("--max-new-tokens", "N", "most tokens to generate per input (default: generation_config.json)"),
        .value("--batch-size", "N", "inputs generated together (default 8)"),
        .value("--threads", "N", "threads for the kernels (default: all active cores)"),
        .flag("--stream", "print each translation as it is generated (greedy search, one input at a time)"),
        .flag("--ids", "also print the source and generated token ids"),
    ],
    notes: [
        "Texts come from the arguments; without any, each line of standard input is one text.",
        "Put '--' before a text that starts with '-'.",
        "",
        "example:",
        "  translate --model opus-mt-en-de \"How are you?\"",
        "  translate --model t5-small --prefix \"summarize: \" < article.txt",
    ])

runCommand(spec) { args in
    let folder = try modelFolder(try args.required("--model"), option: "--model")
    let tokenizerFolder =
        try args.value("--tokenizer").map { path throws(ExampleError) in
            try modelFolder(path, option: "--tokenizer")
        } ?? folder
    let prefix = args.value("--prefix") ?? ""
    let batchSize = try args.integer("--batch-size", default: 8, in: 1...1024)
    let threads = try args.integer("--threads", default: Compute.default.threads, in: 1...1024)
    let stream = args.has("--stream")
    let showIDs = args.has("--ids")
    let compute = try Compute.default.with(threads: threads)

    let model = try Seq2SeqModel(directory: folder)
    let tokenizer = try loadTokenizer(directory: tokenizerFolder)
    if tokenizer.idLimit > model.sourceVocabularySize || tokenizer.idLimit > model.vocabularySize {
        printError(
            "translate: warning: the tokenizer has \(tokenizer.idLimit) ids, the model's vocabularies \(model.sourceVocabularySize) (source) and \(model.vocabularySize) (target); do they belong together?"
        )
    }

    var config = model.generationDefaults
    config.numBeams = try args.integer("--beams", default: config.numBeams, in: 1...256)
    config.maxNewTokens = try args.integer("--max-new-tokens", default: config.maxNewTokens, in: 1...1_000_000)
    if stream && config.numBeams > 1 {
        throw ExampleError("--stream runs greedy search; leave out --beams \(config.numBeams) (or give --beams 1)", usage: true)
    }
    if stream { config.numBeams = 1 }
    if let limit = model.maxPositions, config.maxNewTokens > limit - 1 {
        // The decoder's position table (Marian's max_position_embeddings) ends generation.
        if args.value("--max-new-tokens") != nil {
            printError(
                "translate: note: the model's position table holds \(limit) positions, so at most \(limit - 1) tokens are generated, not \(config.maxNewTokens)"
            )
        }
        config.maxNewTokens = limit - 1
    }
    for note in model.ignoredGenerationSettings {
        printError("translate: note: generation_config.json sets \(note), which Attend does not implement; it is ignored")
    }
    config.numReturnSequences = 1

    var texts = args.positionals
    if texts.isEmpty {
        texts = try readLines(path: "-").map(\.text)
        guard !texts.isEmpty else { throw ExampleError("no text: give it as arguments or on standard input", usage: true) }
    }

    // Text to ids, checked against the model before any work.
    let sources = try texts.map { text throws(ExampleError) -> [Int] in
        let ids = tokenizer.encode(prefix + text).ids
        guard !ids.isEmpty else { throw ExampleError("\"\(text)\" encodes to no tokens") }
        if let bad = ids.first(where: { !(0..<model.sourceVocabularySize).contains($0) }) {
            throw ExampleError(
                "\"\(text)\" encodes to id \(bad), outside the model's source vocabulary 0..<\(model.sourceVocabularySize): the tokenizer in \(tokenizerFolder.path) does not belong to this model"
            )
        }
        return ids
    }

    func report(_ index: Int, _ generated: [Int]) {
        if showIDs {
            print("source ids: \(sources[index].map(String.init).joined(separator: ","))")
            print("output ids: \(generated.map(String.init).joined(separator: ","))")
        }
    }

    if stream {
        for (i, source) in sources.enumerated() {
            var decoder = IncrementalDecoder(tokenizer: tokenizer, skipSpecialTokens: true)
            let rows = try model.greedy(
                sources: [source], startTokenID: model.decoderStartTokenID,
                config: config, compute: compute
            ) { step in
                let piece = decoder.append(step[0])
                if !piece.isEmpty {
                    FileHandle.standardOutput.write(Data(piece.utf8))
                }
            }
            print(decoder.finish())
            report(i, rows[0])
        }
        return
    }

    var index = 0
    for start in stride(from: 0, to: sources.count, by: batchSize) {
        let batch = Array(sources[start..<min(start + batchSize, sources.count)])
        let output = try model.generate(sources: batch, config: config, compute: compute)
        for row in output.sequences {
            print(tokenizer.decode(row, skipSpecialTokens: true))
            report(index, row)
            index += 1
        }
    }
}
