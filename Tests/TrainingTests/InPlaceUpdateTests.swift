import Foundation
import Testing
@testable import Attend

/// An optimizer step through `model.parameters` updates the weights where they are: no
/// parameter's storage is copied (the training forward reads the parameter tensors in place
/// and keeps no reference to them past `backward()`), and the next loss sees the new values.
/// The first update copies each tensor once out of the memory-mapped checkpoint (read-only);
/// every later step must not copy.
@Suite struct InPlaceUpdateTests {
    static func models() throws -> [(String, any TrainableModel, TrainingBatch)] {
        let bert = try GoldenTrainingRun("bert"), t5 = try GoldenTrainingRun("t5"), marian = try GoldenTrainingRun("marian")
        let transformer = try GoldenTrainingRun("transformer")
        return [
            ("bert", try BERTForPreTraining(directory: bert.initial), bert.batches[0]),
            ("t5", try T5ForConditionalGeneration(directory: t5.initial), t5.batches[0]),
            ("marian", try MarianMTModel(directory: marian.initial), marian.batches[0]),
            ("transformer", try TransformerTrainingGoldenTests.load(transformer), transformer.batches[0]),
        ]
    }

    @Test func optimizerStepsWriteTheParametersInPlace() throws {
        for (name, model, batch) in try Self.models() {
            var optimizer = try AdamW(parameters: model.parameters, learningRate: 1e-2)
            var before: Float = 0
            for step in 0..<3 {
                let storages = model.parameters.entries.map { ObjectIdentifier($0.tensor.storage) }
                let loss = try model.loss(batch)
                if step == 0 { before = loss }
                try optimizer.step(&model.parameters, gradients: try model.backward())
                let after = model.parameters.entries.map { ObjectIdentifier($0.tensor.storage) }
                guard step > 0 else { continue }
                #expect(after == storages, "\(name) step \(step): \(zip(after, storages).filter { $0 != $1 }.count) parameters were copied")
            }
            #expect(try model.loss(batch) < before, "\(name): the updates are not seen by the next loss")
            _ = try model.backward()
        }
    }
}
