// The real sentence-transformers/all-MiniLM-L6-v2 against minilm_golden.json (transformers
// 5.23 / sentence-transformers 6.2): token ids exactly, sentence embeddings with cosine
// >= 0.99999 and max abs error <= 1e-5 per component, and the first text's embedding-layer
// output and last hidden state. The model files come from scripts/fetch-minilm.sh; without
// them these tests are skipped (each says so).
import Foundation
import Testing

@testable import Attend

enum MiniLMGolden {
    struct Case {
        let text: String
        let ids: [Int]
    }
    static var root: [String: Any] { try! Fixtures.json("minilm_golden.json") as! [String: Any] }
    static let cases: [Case] = (root["cases"] as! [[String: Any]]).map {
        Case(text: $0["text"] as! String, ids: $0["input_ids"] as! [Int])
    }
    static let embeddings: [[Float]] = (root["embeddings"] as! [[Double]]).map { $0.map(Float.init) }
    static let firstHidden: [String: [[Double]]] = root["first_sentence_hidden_states"] as! [String: [[Double]]]

    /// Loaded once for all real-model tests.
    static let embedder: SentenceEmbedder? = try? SentenceEmbedder(directory: RealMiniLM.directory)
}

@Suite("all-MiniLM-L6-v2 (real model)", .enabled(if: RealMiniLM.isAvailable, Comment(rawValue: RealMiniLM.skipMessage)))
struct MiniLMTests {
    @Test("the folder loads as a sentence-transformers pipeline: mean pooling, normalize, 256 tokens")
    func loads() throws {
        let e = try SentenceEmbedder(directory: RealMiniLM.directory)
        #expect(e.pooling == [.mean] && e.normalize && e.maxLength == 256 && e.dimension == 384)
        #expect(e.model.config == BERTConfig(vocabSize: 30522, hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 12, intermediateSize: 1536))
        #expect(e.model.pooler != nil && e.model.maskedLMHead == nil)
    }

    @Test("token ids equal the Hugging Face fast tokenizer's, from tokenizer.json and from vocab.txt")
    func ids() throws {
        let e = try #require(MiniLMGolden.embedder)
        let vocabOnly = try WordPieceTokenizer(vocabularyFile: RealMiniLM.directory.appendingPathComponent("vocab.txt"))
        for c in MiniLMGolden.cases {
            #expect(e.encode(c.text).ids == c.ids, "\(c.text)")
            #expect(try vocabOnly.encode(c.text, maxLength: 256).ids == c.ids, "vocab.txt: \(c.text)")
        }
    }

    @Test("sentence embeddings: cosine >= 0.99999 and max abs error <= 1e-5 for every golden text")
    func embeddings() throws {
        let e = try #require(MiniLMGolden.embedder)
        let got = try e.embed(MiniLMGolden.cases.map(\.text))
        var worstCos = 1.0, worstAbs = 0.0
        for (i, c) in MiniLMGolden.cases.enumerated() {
            let row = Array(got.scalars[(i * 384)..<((i + 1) * 384)])
            let (m, cos) = compare(row, MiniLMGolden.embeddings[i])
            worstCos = min(worstCos, cos)
            worstAbs = max(worstAbs, m)
            #expect(cos >= 0.99999 && m <= 1e-5, "\(c.text): cosine \(cos), max abs \(m)")
        }
        print("all-MiniLM-L6-v2 parity over \(MiniLMGolden.cases.count) texts: worst cosine \(worstCos), worst max abs error \(worstAbs)")
    }

    @Test("first text: embedding-layer output and last hidden state match transformers")
    func layers() throws {
        let e = try #require(MiniLMGolden.embedder)
        let c = MiniLMGolden.cases[0]
        let out = try e.model.forward(inputIDs: [c.ids], outputHiddenStates: true)
        let n = c.ids.count
        let checks: [(String, Tensor, Double)] = [
            ("embeddings", out.hiddenStates[0], 1e-5),
            ("last", out.lastHiddenState, 1e-4),
        ]
        for (key, tensor, tol) in checks {
            let want = try #require(MiniLMGolden.firstHidden[key])
            #expect(want.count == n)
            var worst = 0.0
            for i in 0..<n {
                for j in 0..<384 { worst = max(worst, abs(Double(tensor[0, i, j]) - want[i][j])) }
            }
            #expect(worst <= tol, "\(key): max abs error \(worst)")
            print("all-MiniLM-L6-v2 first text, \(key): max abs error \(worst)")
        }
    }

    @Test("a padded batch gives the same vectors as one text at a time")
    func batchEqualsSingle() throws {
        let e = try #require(MiniLMGolden.embedder)
        let texts = Array(MiniLMGolden.cases.map(\.text).prefix(6))
        let batch = try e.embed(texts, batchSize: 6)
        var worst: Float = 0
        for (i, t) in texts.enumerated() {
            let single = try e.embed(t)
            for j in 0..<384 { worst = max(worst, abs(single[j] - batch[i, j])) }
        }
        #expect(worst <= 1e-6, "batched vs single: max abs difference \(worst)")
    }
}
