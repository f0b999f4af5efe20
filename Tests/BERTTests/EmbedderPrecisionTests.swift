// `weightPrecision` of SentenceEmbedder and `attend embed --precision`: the model's weight
// matrices are held in the precision asked for, the embeddings are those of a BERTModel loaded
// so, and the command line prints the library's vectors. Model: Fixtures/sentence_bert.
import AttendTestSupport
import Foundation
import Testing

@testable import Attend

@Suite("SentenceEmbedder weightPrecision and attend embed --precision")
struct EmbedderPrecisionTests {
    static let texts = ["w1 w2 w3", "w40 w7 w99 w12 w3"]

    @Test("each precision holds the weights so and embeds as a BERTModel loaded in it; nil keeps the folder's float32")
    func library() throws {
        let folder = Fixtures.url("sentence_bert")
        let stored = try SentenceEmbedder(directory: folder)
        #expect(try SentenceEmbedder(directory: folder, weightPrecision: nil).embed(Self.texts).scalars == stored.embed(Self.texts).scalars)
        for precision in WeightPrecision.allCases {
            let e = try SentenceEmbedder(directory: folder, weightPrecision: precision)
            #expect(e.model.layers[0].selfAttention.inProjection.weightPrecision == precision && e.model.embeddings.word.weightPrecision == precision)
            let model = try BERTModel(directory: folder, weightPrecision: precision)
            let same = try SentenceEmbedder(
                model: model, tokenizer: e.tokenizer, pooling: e.pooling, normalize: e.normalize, maxLength: e.maxLength,
                lowercasesInput: e.lowercasesInput)
            #expect(try e.embed(Self.texts).scalars == same.embed(Self.texts).scalars, "\(precision)")
        }
    }

    @Test("attend embed --precision bfloat16 --json prints the library's bfloat16 vectors")
    func commandLine() async throws {
        let folder = Fixtures.url("sentence_bert")
        let r = try await EmbedFilesCLITests.run(["embed", "--model", folder.path, "--precision", "bfloat16", "--json"] + Self.texts)
        #expect(r.status == 0, "\(r.stderr)")
        let want = try SentenceEmbedder(directory: folder, weightPrecision: .bfloat16).embed(Self.texts)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == Self.texts.count)
        let d = want.shape[1]
        for (i, line) in lines.enumerated() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let vector = try #require(object["embedding"] as? [Double], "\(line.prefix(80))")
            // (printed as the shortest decimal that reads back as the float; read here through Double)
            let expected = want.scalars[(i * d)..<((i + 1) * d)]
            #expect(vector.count == d && zip(vector, expected).allSatisfy { abs(Float($0) - $1) <= $1.ulp }, "text \(i)")
        }
    }
}
