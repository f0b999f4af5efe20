import Foundation
import Testing
@testable import Attend

@Suite struct T5TrainingGoldenTests {
    @Test func stepZeroGradientsMatchPyTorch() throws {
        let run = try GoldenTrainingRun("t5")
        let model = try T5ForConditionalGeneration(directory: run.initial)
        #expect(model.parameters.count == 47)
        #expect(model.parameters.names.first == "shared.weight" && model.parameters.names.last == "decoder.final_layer_norm.weight")
        let worst = try run.checkStepZeroGradients(model)
        print("T5 step-0 gradients: largest difference \(worst)")
    }

    @Test func fiveAdamWStepsMatchPyTorch() throws {
        let run = try GoldenTrainingRun("t5")
        let model = try T5ForConditionalGeneration(directory: run.initial)
        try run.train(model)
        let worst = try run.checkTrained(model.parameters)
        print("T5 after \(run.steps) steps: largest parameter difference \(worst)")
    }

    @Test func decoderInputIsShiftedLabels() throws {
        let run = try GoldenTrainingRun("t5")
        let model = try T5ForConditionalGeneration(directory: run.initial)
        let batch = TrainingBatch(inputIDs: [[5, 6]], labels: [[7, 8, -100]])
        #expect(model.decoderInput(batch) == [[0, 7, 8]])
        let shifted = TrainingBatch(inputIDs: [[5, 6]], labels: [[7, -100, 9]])
        #expect(model.decoderInput(shifted) == [[0, 7, 0]])
        // Giving the shifted ids explicitly gives the same loss.
        var explicit = run.batches[0]
        explicit.decoderInputIDs = model.decoderInput(run.batches[0])
        let a = try model.loss(run.batches[0])
        _ = try model.backward()
        let b = try model.loss(explicit)
        #expect(a == b)
        #expect { try model.loss(TrainingBatch(inputIDs: [[5]], labels: [[-100]])) } throws: {
            ($0 as? TrainingError)?.message.contains("-100") == true
        }
    }
}
