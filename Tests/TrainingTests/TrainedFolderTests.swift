import Foundation
import Testing
@testable import Attend

/// Saving a trained model: the folder holds what `transformers` stores for the trained
/// reference (same tensor names, shapes and dtypes; values within the training tolerance),
/// loads in Attend's inference models and gives the reference's outputs.
@Suite struct TrainedFolderTests {
    static func temporaryFolder(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("attend-trained-\(name)-\(UInt64.random(in: 0...UInt64.max))")
    }

    /// Name -> (dtype, shape) of every tensor of a safetensors file, and its metadata.
    static func header(_ url: URL) throws -> (tensors: [String: String], metadata: [String: String]) {
        let bytes = try Data(contentsOf: url)
        let n = bytes.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let json = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + n))) as! [String: Any]
        var tensors: [String: String] = [:]
        for (k, v) in json where k != "__metadata__" {
            let info = v as! [String: Any]
            tensors[k] = "\(info["dtype"]!) \(info["shape"]!)"
        }
        return (tensors, (json["__metadata__"] as? [String: String]) ?? [:])
    }

    func checkFolder(_ saved: URL, like reference: URL, run: GoldenTrainingRun) throws {
        let a = try Self.header(saved.appendingPathComponent("model.safetensors"))
        let b = try Self.header(reference.appendingPathComponent("model.safetensors"))
        #expect(a.tensors == b.tensors, "saved tensors differ from the reference folder's")
        #expect(a.metadata == b.metadata)
        for file in ["config.json", "generation_config.json"]
        where FileManager.default.fileExists(atPath: reference.appendingPathComponent(file).path) {
            #expect(
                try Data(contentsOf: saved.appendingPathComponent(file)) == Data(contentsOf: reference.appendingPathComponent(file)),
                "\(file) differs")
        }
        let file = try SafeTensorsFile(contentsOf: saved.appendingPathComponent("model.safetensors"))
        let parameters = ParameterSet(try file.tensorNames.sorted().map { ($0, try file.tensor($0)) })
        try run.checkTrained(parameters)
        let files = try FileManager.default.contentsOfDirectory(atPath: saved.path)
        #expect(!files.contains { $0.hasPrefix(".") }, "temporary files left behind: \(files)")
    }

    @Test func bertSavesWhatTransformersStoresAndLoadsBack() throws {
        let run = try GoldenTrainingRun("bert")
        let model = try TrainableModels.load(directory: run.initial)
        #expect(model is BERTForPreTraining)
        try run.train(model)
        let folder = Self.temporaryFolder("bert")
        defer { try? FileManager.default.removeItem(at: folder) }
        try model.save(to: folder)
        try checkFolder(folder, like: run.trained, run: run)
        // Attend's inference model reads the saved folder and gives the trained outputs.
        let mine = try BERTModel(directory: folder), reference = try BERTModel(directory: run.trained)
        let batch = run.batches[0]
        let a = try mine.forward(inputIDs: batch.inputIDs, tokenTypeIDs: batch.tokenTypeIDs, attentionMask: batch.attentionMask)
        let b = try reference.forward(inputIDs: batch.inputIDs, tokenTypeIDs: batch.tokenTypeIDs, attentionMask: batch.attentionMask)
        #expect(maxDifference(try mine.maskedLMLogits(a.lastHiddenState), try reference.maskedLMLogits(b.lastHiddenState)) <= 1e-4)
        #expect(maxDifference(try mine.pooled(a.lastHiddenState), try reference.pooled(b.lastHiddenState)) <= 1e-4)
        // Saving again over the folder replaces it.
        try model.save(to: folder)
        try checkFolder(folder, like: run.trained, run: run)
    }

    @Test func t5SavesWhatTransformersStoresAndLoadsBack() throws {
        let run = try GoldenTrainingRun("t5")
        let model = try TrainableModels.load(directory: run.initial)
        #expect(model is T5ForConditionalGeneration)
        try run.train(model)
        let folder = Self.temporaryFolder("t5")
        defer { try? FileManager.default.removeItem(at: folder) }
        try model.save(to: folder)
        try checkFolder(folder, like: run.trained, run: run)
        let mine = try Seq2SeqModel(directory: folder), reference = try Seq2SeqModel(directory: run.trained)
        let sources = [[46, 44, 23, 46, 83], [76, 70, 81]], targets = [[0, 2, 44], [0, 44, 69]]
        let a = try mine.decode(targets, encoded: try mine.encode(sources))
        let b = try reference.decode(targets, encoded: try reference.encode(sources))
        #expect(maxDifference(a, b) <= 1e-4)
    }

    @Test func marianSavesWhatTransformersStoresAndLoadsBack() throws {
        let run = try GoldenTrainingRun("marian")
        let model = try TrainableModels.load(directory: run.initial)
        #expect(model is MarianMTModel)
        try run.train(model)
        let folder = Self.temporaryFolder("marian")
        defer { try? FileManager.default.removeItem(at: folder) }
        try model.save(to: folder)
        try checkFolder(folder, like: run.trained, run: run)
        let mine = try Seq2SeqModel(directory: folder), reference = try Seq2SeqModel(directory: run.trained)
        let sources = [[78, 4, 61, 1, 0], [29, 23, 0]], targets = [[89, 56, 1], [89, 77, 0]]
        let a = try mine.decode(targets, encoded: try mine.encode(sources))
        let b = try reference.decode(targets, encoded: try reference.encode(sources))
        #expect(maxDifference(a, b) <= 1e-4)
    }

    @Test func loadRejectsArchitecturesItDoesNotTrain() throws {
        let folder = Self.temporaryFolder("gpt2")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}"#.utf8).write(to: folder.appendingPathComponent("config.json"))
        #expect { try TrainableModels.load(directory: folder) } throws: { "\($0)".contains("GPT2LMHeadModel") }
        #expect(throws: (any Error).self) { try TrainableModels.load(directory: folder.appendingPathComponent("absent")) }
    }
}
