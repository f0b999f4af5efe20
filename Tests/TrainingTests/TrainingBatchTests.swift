import Foundation
import Testing
@testable import Attend

@Suite struct TrainingBatchTests {
    static func fixture(_ path: String) -> URL {
        Bundle.module.url(forResource: "Fixtures/" + path, withExtension: nil)!
    }

    @Test func readsTheGoldenBatches() throws {
        let bert = try TrainingBatch.readJSONLines(at: Self.fixture("bert/batches.jsonl"))
        #expect(bert.count == 3)
        #expect(bert[0].rows == 4 && bert[0].length == 16)
        #expect(bert[0].inputIDs[0].prefix(3) == [2, 44, 51])
        #expect(bert[0].nextSentenceLabel?.count == 4)
        #expect(bert[0].labels?[0].count == 16)
        for (i, b) in bert.enumerated() {
            try b.validate(vocabularySize: 120, typeVocabularySize: 2, maxLength: 64, labelsMatchInput: true,
                           needsNextSentence: true, where: "batch \(i)")
        }
        let t5 = try TrainingBatch.readJSONLines(at: Self.fixture("t5/batches.jsonl"))
        #expect(t5.count == 3 && t5[0].rows == 3 && t5[0].labels?[0].count == 7)
        #expect(t5[0].labels?[1].suffix(3) == [-100, -100, -100])
        try t5[0].validate(vocabularySize: 101, labelsMatchInput: false)
    }

    @Test(arguments: [
        ("", "no batches"),
        ("[1,2]", "expected a JSON object"),
        ("{\"input_ids\": [[1,2],[3]]}", "row 1 has 1 values"),
        ("{\"input_ids\": [[1,2.5]]}", "where an integer belongs"),
        ("{\"labels\": [[1]]}", "input_ids is missing"),
        ("{\"input_ids\": [[1]], \"foo\": 1}", "unknown key \"foo\""),
        ("{\"input_ids\": [[1]]} x", "not JSON"),
        ("{\"input_ids\": [[1]], \"input_ids\": [[2]]}", "not JSON"),
        ("{\"input_ids\": [[1],[2]], \"labels\": [[1],[2]], \"next_sentence_label\": [0, null]}", "next_sentence_label[1] is null"),
    ])
    func rejectsMalformedLines(text: String, message: String) {
        #expect {
            _ = try TrainingBatch.parseJSONLines(Data(("\n" + text + "\n").utf8), source: "f.jsonl")
        } throws: { error in
            let e = error as? TrainingError
            return e?.message.contains(message) == true && (text.isEmpty || e?.message.contains("f.jsonl line 2") == true)
        }
    }

    @Test func validationNamesFieldRowAndPosition() {
        let ok = TrainingBatch(inputIDs: [[1, 2, 3], [4, 5, 0]], attentionMask: [[1, 1, 1], [1, 1, 0]],
                               labels: [[-100, 2, -100], [1, -100, -100]], nextSentenceLabel: [0, 1])
        #expect(ok.tokenCount == 5)
        let cases: [(TrainingBatch, String)] = [
            (TrainingBatch(inputIDs: [[1, 9]], labels: [[1, 1]]), "input_ids[0][1] = 9"),
            (TrainingBatch(inputIDs: [[1, 2]], labels: [[1]]), "labels row 0 has 1 values"),
            (TrainingBatch(inputIDs: [[1, 2]]), "labels are missing"),
            (TrainingBatch(inputIDs: [[1, 2]], attentionMask: [[1, 2]], labels: [[1, 1]]), "attention_mask[0][1] = 2"),
            (TrainingBatch(inputIDs: [[1, 2]], labels: [[1, -5]]), "labels[0][1] = -5"),
            (TrainingBatch(inputIDs: [[1, 2]], labels: [[1, 1]]), "next_sentence_label is missing"),
            (TrainingBatch(inputIDs: [[1, 2]], tokenTypeIDs: [[0, 2]], labels: [[1, 1]], nextSentenceLabel: [0]), "token_type_ids[0][1] = 2"),
            (TrainingBatch(inputIDs: [], labels: []), "no rows"),
        ]
        for (batch, message) in cases {
            #expect {
                try batch.validate(vocabularySize: 8, typeVocabularySize: 2, labelsMatchInput: true, needsNextSentence: true)
            } throws: { ($0 as? TrainingError)?.message.contains(message) == true }
        }
        #expect(throws: Never.self) {
            try ok.validate(vocabularySize: 8, labelsMatchInput: true, needsNextSentence: true)
        }
    }
}
