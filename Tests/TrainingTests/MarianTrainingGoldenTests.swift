import Foundation
import Testing
@testable import Attend

@Suite struct MarianTrainingGoldenTests {
    @Test func stepZeroGradientsMatchPyTorch() throws {
        let run = try GoldenTrainingRun("marian")
        let model = try MarianMTModel(directory: run.initial)
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: run.folder.appendingPathComponent("run.json"))) as! [String: Any]
        #expect(model.parameters.names == expected["parameters"] as! [String])
        let worst = try run.checkStepZeroGradients(model)
        print("Marian step-0 gradients: largest difference \(worst)")
    }

    @Test func fiveAdamWStepsMatchPyTorch() throws {
        let run = try GoldenTrainingRun("marian")
        let model = try MarianMTModel(directory: run.initial)
        try run.train(model)
        let worst = try run.checkTrained(model.parameters)
        print("Marian after \(run.steps) steps: largest parameter difference \(worst)")
    }

    @Test func decoderInputIsShiftedLabels() throws {
        let run = try GoldenTrainingRun("marian")
        let model = try MarianMTModel(directory: run.initial)
        #expect(model.decoderInput(TrainingBatch(inputIDs: [[5]], labels: [[7, -100, 0]])) == [[89, 7, 89]])
        var long = run.batches[0]
        long.labels = [[Int]](repeating: [Int](repeating: 3, count: 65), count: long.rows)
        #expect { try model.loss(long) } throws: { ($0 as? TrainingError)?.message.contains("65 tokens") == true }
    }
}
