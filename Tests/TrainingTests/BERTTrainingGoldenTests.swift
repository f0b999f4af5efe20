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

    @Test func backwardWithoutLossThrows() throws {
        let run = try GoldenTrainingRun("bert")
        let model = try BERTForPreTraining(directory: run.initial)
        #expect(throws: TrainingError.self) { try model.backward() }
        _ = try model.loss(run.batches[0])
        _ = try model.backward()
        #expect(throws: TrainingError.self) { try model.backward() }
        var bad = run.batches[0]
        bad.nextSentenceLabel = nil
        #expect(throws: TrainingError.self) { try model.loss(bad) }
        bad = run.batches[0]
        bad.inputIDs[1][2] = 500
        #expect { try model.loss(bad) } throws: { ($0 as? TrainingError)?.message.contains("input_ids[1][2] = 500") == true }
    }
}
