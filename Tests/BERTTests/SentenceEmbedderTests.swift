// The sentence-transformers pipeline on a small folder built from the bert_pretraining golden
// weights (no download needed): module files, pooling modes, normalization, truncation,
// batches against one text at a time, and the errors of bad module files.
import Foundation
import Testing

@testable import Attend

/// A sentence-transformers folder around the golden 2-layer BERT (vocabulary 120, d 64).
struct TinyFolder {
    let url: URL

    static let words = (0..<115).map { "w\($0)" }

    init(
        modules: String? =
            #"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}, {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]"#,
        pooling: String =
            #"{"word_embedding_dimension": 64, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}"#,
        sentenceBert: String? = #"{"max_seq_length": 16, "do_lower_case": false}"#,
        extraWords: Int = 0
    ) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("attend-st-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(at: url.appendingPathComponent("1_Pooling"), withIntermediateDirectories: true)
        try fm.copyItem(at: Fixtures.url("bert_pretraining.config.json"), to: url.appendingPathComponent("config.json"))
        try fm.copyItem(at: Fixtures.url("bert_pretraining.safetensors"), to: url.appendingPathComponent("model.safetensors"))
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TinyFolder.words + (0..<extraWords).map { "x\($0)" }
        try Data((vocab.joined(separator: "\n") + "\n").utf8).write(to: url.appendingPathComponent("vocab.txt"))
        if let modules { try Data(modules.utf8).write(to: url.appendingPathComponent("modules.json")) }
        try Data(pooling.utf8).write(to: url.appendingPathComponent("1_Pooling/config.json"))
        if let sentenceBert { try Data(sentenceBert.utf8).write(to: url.appendingPathComponent("sentence_bert_config.json")) }
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

@Suite("Sentence embedder")
struct SentenceEmbedderTests {
    static let texts = [
        "w1 w2 w3", "w4", "", "w5 w6 w7 w8 w9 w10 w11", "w12 unknownword w13", "w14 w15 w16 w17 w18 w19 w20 w21 w22 w23 w24 w25 w26 w27 w28 w29",
    ]

    @Test("mean pooling then unit length, batched equals one text at a time, order kept, truncation")
    func pipeline() throws {
        let folder = try TinyFolder()
        defer { folder.remove() }
        let e = try SentenceEmbedder(directory: folder.url)
        #expect(e.pooling == [.mean] && e.normalize && e.maxLength == 16 && e.dimension == 64)
        #expect(e.encode(Self.texts[5]).count == 16)  // 2 + 16 words cut to 16 tokens
        let batch = try e.embed(Self.texts, batchSize: 4)
        #expect(batch.shape == [6, 64])
        for (i, t) in Self.texts.enumerated() {
            let single = try e.embed(t)
            var norm = 0.0
            for j in 0..<64 {
                #expect(abs(single[j] - batch[i, j]) <= 1e-6, "text \(i) dim \(j)")
                norm += Double(single[j]) * Double(single[j])
            }
            #expect(abs(norm - 1) < 1e-5)
            // Against the model itself: the mean of the real tokens' last hidden state, normalized.
            let enc = e.encode(t)
            let h = try e.model.forward(inputIDs: [enc.ids]).lastHiddenState
            var mean = [Double](repeating: 0, count: 64)
            for k in 0..<enc.count { for j in 0..<64 { mean[j] += Double(h[0, k, j]) / Double(enc.count) } }
            let n = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for j in 0..<64 { #expect(abs(Double(single[j]) - mean[j] / n) <= 1e-5) }
        }
    }

    @Test("pooling modes: CLS, max, mean, mean/sqrt(n), last token, concatenated in sentence-transformers' order")
    func poolingModes() throws {
        let folder = try TinyFolder(
            modules:
                #"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#,
            pooling:
                #"{"word_embedding_dimension": 64, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true, "pooling_mode_mean_sqrt_len_tokens": true, "pooling_mode_lasttoken": true}"#
        )
        defer { folder.remove() }
        let e = try SentenceEmbedder(directory: folder.url)
        #expect(e.pooling == [.cls, .max, .mean, .meanSqrtLength, .lastToken] && !e.normalize && e.dimension == 320)
        let text = "w1 w2 w3 w4"
        let v = try e.embed(text)
        let enc = e.encode(text)
        let h = try e.model.forward(inputIDs: [enc.ids]).lastHiddenState
        let n = enc.count
        for j in 0..<64 {
            let column = (0..<n).map { Double(h[0, $0, j]) }
            let sum = column.reduce(0, +)
            #expect(v[j] == h[0, 0, j])
            #expect(Double(v[64 + j]) == column.max()!)
            #expect(abs(Double(v[128 + j]) - sum / Double(n)) <= 1e-6)
            #expect(abs(Double(v[192 + j]) - sum / Double(n).squareRoot()) <= 1e-5)
            #expect(v[256 + j] == h[0, n - 1, j])
        }
        let sims = try cosineSimilarityMatrix(e.embed(["w1 w2", "w1 w2", "w9"]))
        #expect(abs(sims[0, 1] - 1) < 1e-6 && abs(sims[0, 0] - 1) < 1e-6 && sims[0, 2] < 1)
    }

    @Test("without modules.json: mean pooling, no normalization; without sentence_bert_config: the model's positions")
    func plainFolder() throws {
        let folder = try TinyFolder(modules: nil, sentenceBert: nil)
        defer { folder.remove() }
        let e = try SentenceEmbedder(directory: folder.url)
        #expect(e.pooling == [.mean] && !e.normalize && e.maxLength == 64)
    }

    @Test("bad module files throw errors naming the file")
    func badFiles() throws {
        let cases: [(TinyFolder, String)] = [
            (
                try TinyFolder(
                    modules:
                        #"[{"type": "sentence_transformers.models.Transformer"}, {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}, {"type": "sentence_transformers.models.Dense", "path": "2_Dense"}]"#
                ), "Dense"
            ),
            (try TinyFolder(pooling: #"{"pooling_mode_weightedmean_tokens": true}"#), "weightedmean"),
            (try TinyFolder(pooling: #"{"pooling_mode_mean_tokens": false}"#), "no pooling mode"),
            (try TinyFolder(pooling: #"{"pooling_mode_mean_tokens": "yes"}"#), "pooling_mode_mean_tokens"),
            (try TinyFolder(modules: #"{"not": "a list"}"#), "modules.json"),
            (try TinyFolder(modules: #"[{"type": "sentence_transformers.models.Transformer"}]"#), "no Pooling"),
            (try TinyFolder(sentenceBert: #"{"max_seq_length": 2}"#), "max_seq_length"),
            (try TinyFolder(sentenceBert: #"{"max_seq_length": "long"}"#), "max_seq_length"),
        ]
        for (folder, needle) in cases {
            defer { folder.remove() }
            let e = thrownError { _ = try SentenceEmbedder(directory: folder.url) }
            let err = try #require(e as? ModelFileError, "\(needle): \(String(describing: e))")
            #expect(err.description.contains(needle) && err.description.hasPrefix(folder.url.path), "\(err)")
        }
        // A tokenizer with ids past the model's vocabulary.
        let big = try TinyFolder(extraWords: 10)
        defer { big.remove() }
        let e = thrownError { _ = try SentenceEmbedder(directory: big.url) }
        #expect((e as? CheckpointError)?.description.contains("vocabulary") == true)
        #expect((thrownError { _ = try SentenceEmbedder(directory: big.url.appendingPathComponent("none")) } as? ModelFileError) != nil)
    }

    @Test("cosineSimilarityMatrix: vectors that are not [n, dim] throw ModelInputError naming the shape, not a trap")
    func similarityOfBadShapes() throws {
        for shape in [[3], [2, 3, 4], []] {
            #expect(throws: ModelInputError("cosineSimilarityMatrix: vectors \(shape) must be [n, dim]")) {
                _ = try cosineSimilarityMatrix(Tensor.zeros(shape))
            }
        }
        let sims = try cosineSimilarityMatrix(Tensor(shape: [2, 2], scalars: [1, 0, 1, 1]))
        #expect(sims.shape == [2, 2] && abs(sims.scalars[1] - Float(1 / 2.0.squareRoot())) < 1e-6)
    }
}
