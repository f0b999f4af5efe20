import Attend
import Foundation

/// The benchmark's folder of test fixtures (this file is <root>/Benchmarks/bench/TokenizerBench.swift).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

extension Bench {
    /// Sentences per second of encode (text -> ids, special tokens added) and decode (ids ->
    /// text, special tokens skipped) on one thread, for the four golden tokenizer folders of
    /// Tests/TokenizerTests and Benchmarks/bench/tokenizer_sentences.txt (1000 sentences: word
    /// salad of 12-30 words with the golden texts every tenth line). scripts/bench_tokenizers.py
    /// runs this section and Hugging Face `tokenizers` in interleaved rounds.
    func tokenizers() {
        let sentencesURL = packageRoot.appendingPathComponent("Benchmarks/bench/tokenizer_sentences.txt")
        guard let text = try? String(contentsOf: sentencesURL, encoding: .utf8) else {
            stderr("bench: tokenizers: cannot read \(sentencesURL.path); skipped")
            return
        }
        let sentences = text.split(separator: "\n").map(String.init)
        if !options.json {
            out("\nTokenizers: \(sentences.count) sentences (Benchmarks/bench/tokenizer_sentences.txt), one thread")
            out("family                 encode sent/s  decode sent/s   tokens/sentence")
        }
        for family in ["t5_unigram", "marian_spm", "llama_bpe", "gpt2_bytelevel"] {
            let folder = packageRoot.appendingPathComponent("Tests/TokenizerTests/Fixtures").appendingPathComponent(family)
            let tokenizer: any Tokenizer
            do {
                tokenizer = try loadTokenizer(directory: folder)
            } catch {
                stderr("bench: tokenizers: \(error)")
                continue
            }
            progress("tokenizers \(family)...")
            var ids: [[Int]] = []
            let encode = measure(warmup: 1, minReps: options.quick ? 1 : 5, minSeconds: options.quick ? 0.1 : 1.0) {
                ids = sentences.map { tokenizer.encode($0).ids }
            }
            var chars = 0
            let decode = measure(warmup: 1, minReps: options.quick ? 1 : 5, minSeconds: options.quick ? 0.1 : 1.0) {
                chars = ids.reduce(0) { $0 + tokenizer.decode($1, skipSpecialTokens: true).utf8.count }
            }
            let n = Double(sentences.count)
            let encodeRate = n / median(encode), decodeRate = n / median(decode)
            let perSentence = Double(ids.reduce(0) { $0 + $1.count }) / n
            emit(
                [
                    ("name", "tokenizer \(family)"), ("family", family), ("threads", 1), ("sentences", sentences.count),
                    ("encode_sentences_per_s", encodeRate), ("decode_sentences_per_s", decodeRate),
                    ("encode_ms", median(encode) * 1e3), ("decode_ms", median(decode) * 1e3),
                    ("tokens_per_sentence", perSentence), ("decoded_bytes", chars), ("ms", median(encode) * 1e3),
                ],
                row: pad(family, 20) + String(format: " %14.0f %14.0f %17.1f", encodeRate, decodeRate, perSentence))
        }
    }
}
