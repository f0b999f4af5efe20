import Foundation
import Testing
@testable import Attend

@Suite struct BERTTrainingGoldenTests {
    @Test func stepZeroGradientsMatchPyTorch() throws {
        let run = try GoldenTrainingRun("bert")
        let model = try BERTForPreTraining(directory: run.initial)
        #expect(model.parameters.names == BERTForPreTraining.parameterShapes(model.config).map(\.0))
        #expect(model.parameters.count == 46)
        let worst = try run.checkStepZeroGradients(model)
        print("BERT step-0 gradients: largest difference \(worst)")
    }

    @Test func fiveAdamWStepsMatchPyTorch() throws {
        let run = try GoldenTrainingRun("bert")
        let model = try BERTForPreTraining(directory: run.initial)
        try run.train(model)
        let worst = try run.checkTrained(model.parameters)
        print("BERT after \(run.steps) steps: largest parameter difference \(worst)")
    }

    /// A batch without next_sentence_label trains the masked-LM loss alone:
    /// `BertForMaskedLM`'s loss and gradients on the same weights (Fixtures/bert_mlm, made by
    /// make_bert_mlm_fixture.py), the pooler and NSP head (not in that model) with zero gradients.
    @Test func maskedLMOnlyMatchesPyTorch() throws {
        let folder = Bundle.module.url(forResource: "Fixtures/bert_mlm", withExtension: nil)!
        let batches = try TrainingBatch.readJSONLines(at: folder.appendingPathComponent("batches.jsonl"))
        let run = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("run.json"))) as! [String: Any]
        let losses = run["losses"] as! [Double]
        #expect(batches.count == losses.count && batches.allSatisfy { $0.nextSentenceLabel == nil })
        let model = try BERTForPreTraining(directory: try GoldenTrainingRun("bert").initial)
        for (batch, want) in zip(batches, losses).reversed() {  // batch 0 last: its gradients are checked
            let loss = try model.loss(batch)
            #expect(abs(Double(loss) - want) <= 1e-5 * want, "masked-LM loss \(loss) vs \(want)")
            if batch != batches[0] { _ = try model.backward() }
        }
        let grads = try model.backward()
        let reference = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("grads0.safetensors"))
        let headOnly = ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "cls.seq_relationship.weight", "cls.seq_relationship.bias"]
        #expect(Set(reference.tensorNames) == Set(grads.names).subtracting(headOnly))
        var worst: Float = 0
        for name in reference.tensorNames {
            let d = maxDifference(grads[name]!, try reference.tensor(name))
            worst = max(worst, d)
            #expect(d <= 1e-4, "\(name): gradient differs by \(d)")
        }
        for name in headOnly { #expect(grads[name]!.scalars.allSatisfy { $0 == 0 }, "\(name) has a gradient") }
        #expect(grads["bert.embeddings.word_embeddings.weight"]!.scalars.contains { abs($0) > 1e-4 })
        print("BERT masked-LM-only step-0 gradients: largest difference \(worst)")
    }

    @Test func backwardWithoutLossThrows() throws {
        let run = try GoldenTrainingRun("bert")
        let model = try BERTForPreTraining(directory: run.initial)
        #expect(throws: TrainingError.self) { try model.backward() }
        _ = try model.loss(run.batches[0])
        _ = try model.backward()
        #expect(throws: TrainingError.self) { try model.backward() }
        var bad = run.batches[0]
        bad.nextSentenceLabel = bad.nextSentenceLabel!.map { _ in -100 }
        #expect { try model.loss(bad) } throws: { ($0 as? TrainingError)?.message.contains("every next_sentence_label is -100") == true }
        bad = run.batches[0]
        bad.inputIDs[1][2] = 500
        #expect { try model.loss(bad) } throws: { ($0 as? TrainingError)?.message.contains("input_ids[1][2] = 500") == true }
    }
}
