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

/// T5 v1.1's layout as transformers 5 saves it (Fixtures/t5v11): config.json says
/// `tie_word_embeddings: true` and `scale_decoder_outputs: false`, and the checkpoint keeps
/// its own `lm_head.weight` (different from `shared.weight`), which transformers then does not
/// tie. Training must train that head, not the shared table.
@Suite struct T5V11LayoutTrainingTests {
    @Test("a stored lm_head that differs from shared is the model's own head: step-0 gradients as PyTorch's")
    func stepZeroGradientsMatchPyTorch() throws {
        let run = try GoldenTrainingRun("t5v11")
        let model = try T5ForConditionalGeneration(directory: run.initial)
        #expect(model.separateHead && model.config.tieWordEmbeddings && !model.config.scaleDecoderOutputs)
        #expect(model.parameters.names.last == "lm_head.weight")
        let worst = try run.checkStepZeroGradients(model)
        print("T5 v1.1 layout step-0 gradients: largest difference \(worst)")
    }

    @Test("five AdamW steps as PyTorch's; the saved folder keeps the own head")
    func fiveAdamWStepsMatchPyTorch() throws {
        let run = try GoldenTrainingRun("t5v11")
        let model = try T5ForConditionalGeneration(directory: run.initial)
        try run.train(model)
        let worst = try run.checkTrained(model.parameters)
        print("T5 v1.1 layout after \(run.steps) steps: largest parameter difference \(worst)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-t5v11-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try model.save(to: dir)
        let reloaded = try T5ForConditionalGeneration(directory: dir)
        #expect(reloaded.separateHead && reloaded.parameters.names == model.parameters.names)
    }

    @Test("embed_tokens tables that differ from shared are refused with the tensor's name")
    func differingEmbeddingTableRefused() throws {
        let run = try GoldenTrainingRun("t5v11")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-t5v11-embed-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: run.initial.appendingPathComponent("config.json"), to: dir.appendingPathComponent("config.json"))
        let source = try SafeTensorsFile(contentsOf: run.initial.appendingPathComponent("model.safetensors"))
        var tensors = ParameterSet()
        for n in source.tensorNames { tensors[n] = try source.tensor(n) }
        tensors["encoder.embed_tokens.weight"] = try source.tensor("shared.weight").map { $0 * 2 }
        try SafeTensorsWriter.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        #expect { try T5ForConditionalGeneration(directory: dir) } throws: {
            "\($0)".contains("encoder.embed_tokens.weight differs from shared.weight")
        }
    }
}

/// A T5 `config.json` whose `relative_attention_max_distance` does not exceed the exact
/// buckets (transformers loads it; its bucket formula is undefined only beyond the exact
/// distances): buckets saturate there, and training and generation run instead of trapping.
@Suite struct T5ShortMaxDistanceTests {
    @Test("t5RelativePositionBucket: exact distances as always, then the last bucket of each side")
    func saturatingBuckets() {
        // Causal, 32 buckets: 16 exact distances; maxDistance 16 leaves no logarithmic range.
        for n in 0..<16 { #expect(t5RelativePositionBucket(-n, bidirectional: false, numBuckets: 32, maxDistance: 16) == n) }
        for n in [16, 17, 40, 1000] { #expect(t5RelativePositionBucket(-n, bidirectional: false, numBuckets: 32, maxDistance: 16) == 31) }
        #expect(t5RelativePositionBucket(5, bidirectional: false, numBuckets: 32, maxDistance: 16) == 0)  // a later key
        // Bidirectional, 8 buckets: 2 exact distances per side, maxDistance 1.
        #expect(t5RelativePositionBucket(-1, bidirectional: true, numBuckets: 8, maxDistance: 1) == 1)
        #expect(t5RelativePositionBucket(-9, bidirectional: true, numBuckets: 8, maxDistance: 1) == 3)
        #expect(t5RelativePositionBucket(1, bidirectional: true, numBuckets: 8, maxDistance: 1) == 5)
        #expect(t5RelativePositionBucket(9, bidirectional: true, numBuckets: 8, maxDistance: 1) == 7)
        // 2 buckets, bidirectional: no exact distance at all; one bucket per side.
        #expect(t5RelativePositionBucket(0, bidirectional: true, numBuckets: 2, maxDistance: 1) == 0)
        #expect(t5RelativePositionBucket(-3, bidirectional: true, numBuckets: 2, maxDistance: 1) == 0)
        #expect(t5RelativePositionBucket(3, bidirectional: true, numBuckets: 2, maxDistance: 1) == 1)
        // A maxDistance above the exact range keeps the logarithmic buckets (32 buckets, 128).
        #expect(t5RelativePositionBucket(-20, bidirectional: false, numBuckets: 32, maxDistance: 128) == 17)
    }

    @Test("a T5 folder with relative_attention_max_distance 2 trains and generates")
    func trainsAndGenerates() throws {
        let run = try GoldenTrainingRun("t5")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-t5-short-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: run.initial, to: dir)
        let configURL = dir.appendingPathComponent("config.json")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["relative_attention_max_distance"] = 2  // 8 buckets: 2 exact per side encoder, 4 decoder
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let model = try T5ForConditionalGeneration(directory: dir)
        var optimizer = try AdamW(learningRate: 1e-3)
        var losses: [Float] = []
        for step in 0..<3 {
            losses.append(try model.loss(run.batches[step % run.batches.count]))
            let grads = try model.backward()
            let finite = grads.names.allSatisfy { name in grads[name]!.scalars.allSatisfy { $0.isFinite } }
            #expect(finite)
            try optimizer.step(&model.parameters, gradients: grads)
        }
        let finiteLosses = losses.allSatisfy { $0.isFinite }
        #expect(finiteLosses, "\(losses)")
        let generator = try Seq2SeqModel(directory: dir)
        let out = try generator.generate(sources: [[5, 6, 7, 8, 9, 10, 11, 1]], config: GenerationConfig(maxNewTokens: 6))
        #expect(out.sequences.count == 1 && out.sequences[0].count > 1)
    }
}
