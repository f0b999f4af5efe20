// semantic-search: embeds every non-empty line of a text file with a sentence-transformers
// folder (all-MiniLM-L6-v2, say) and answers queries with the most similar lines, by cosine
// similarity of the sentence vectors.
import Attend
import ExampleSupport
import Foundation

let spec = CommandSpec(
    name: "semantic-search",
    summary: "find the lines of a text file closest in meaning to a query",
    synopsis: "--model DIR --file FILE [--top K] [--batch-size N] [--threads N] [QUERY ...]",
    options: [
        .value("--model", "DIR", "sentence-transformers folder (config.json, model.safetensors, tokenizer, modules.json)"),
        .value("--file", "FILE", "text file to search, one passage per line ('-': standard input)"),
        .value("--top", "K", "lines to show per query (default 5)"),
        .value("--batch-size", "N", "lines embedded at a time (default 32)"),
        .value("--threads", "N", "threads for the kernels (default: all active cores)"),
    ],
    notes: [
        "Queries come from the arguments; without any, one query per line is read from standard",
        "input (a terminal gets a prompt). Put '--' before a query that starts with '-'.",
        "",
        "example:",
        "  bash scripts/fetch-minilm.sh      # in the Attend checkout: writes .cache/minilm",
        "  semantic-search --model ../.cache/minilm --file ../README.md \"how fast is the GEMM\"",
    ])

/// One searchable line.
struct Passage {
    let line: Int
    let text: String
}

/// The indices of the `k` largest scores, best first (ties: the earlier line first).
func topIndices(_ scores: [Double], _ k: Int) -> [Int] {
    Array(scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }.prefix(k))
}

/// Cosine similarity of `query` with each row of `vectors` (`[n, dim]`), in Double.
func cosines(_ query: [Float], _ vectors: [Float], dim: Int) -> [Double] {
    func norm(_ v: ArraySlice<Float>) -> Double { v.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }
    let qn = norm(query[...])
    return stride(from: 0, to: vectors.count, by: dim).map { start in
        let row = vectors[start..<(start + dim)]
        let rn = norm(row)
        guard qn > 0, rn > 0 else { return 0 }
        var dot = 0.0
        for (a, b) in zip(query, row) { dot += Double(a) * Double(b) }
        return dot / (qn * rn)
    }
}

runCommand(spec) { args in
    let folder = try modelFolder(try args.required("--model"), option: "--model")
    let file = try args.required("--file")
    let top = try args.integer("--top", default: 5, in: 1...100_000)
    let batchSize = try args.integer("--batch-size", default: 32, in: 1...4096)
    let threads = try args.integer("--threads", default: Compute.default.threads, in: 1...1024)
    if file == "-" && args.positionals.isEmpty {
        throw ExampleError("--file - reads the passages from standard input, so give the queries as arguments", usage: true)
    }
    let compute = try Compute.default.with(threads: threads)

    let embedder = try SentenceEmbedder(directory: folder)
    let passages = try readLines(path: file).map { Passage(line: $0.line, text: $0.text) }
    guard !passages.isEmpty else { throw ExampleError("\(file): no non-empty lines to search") }

    let start = Date()
    let vectors = try embedder.embed(passages.map(\.text), batchSize: batchSize, compute: compute)
    let seconds = Date().timeIntervalSince(start)
    printError(
        String(
            format: "semantic-search: %d lines embedded in %.2f s (%.0f lines/s, %d dimensions)",
            passages.count, seconds, Double(passages.count) / max(seconds, 1e-9), embedder.dimension))
    let matrix = vectors.scalars
    let dim = embedder.dimension

    func answer(_ query: String) throws {
        let q = try embedder.embed(query, compute: compute)
        let scores = cosines(q, matrix, dim: dim)
        print("query: \(query)")
        for i in topIndices(scores, top) {
            print(String(format: "  %.4f  ", scores[i]) + "line \(passages[i].line): \(passages[i].text)")
        }
    }

    if !args.positionals.isEmpty {
        for (n, query) in args.positionals.enumerated() {
            if n > 0 { print("") }
            try answer(query)
        }
        return
    }
    let interactive = isatty(STDIN_FILENO) != 0
    while true {
        if interactive {
            FileHandle.standardError.write(Data("query> ".utf8))
        }
        guard let line = readLine() else { break }
        let query = line.trimmingCharacters(in: .whitespaces)
        if query.isEmpty { continue }
        try answer(query)
        if !interactive { print("") }
    }
}
