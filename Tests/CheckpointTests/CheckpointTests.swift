// Whole checkpoints: a single model.safetensors, shards through model.safetensors.index.json,
// explicit file lists, and broken indexes.
import Foundation
import Testing

@testable import Attend

@Suite("SafeTensorsCheckpoint")
struct SafeTensorsCheckpointTests {
    @Test func singleFileDirectory() throws {
        let ckpt = try SafeTensorsCheckpoint(directory: Fixtures.url("single"))
        #expect(ckpt.tensorNames == ["a", "b"])
        #expect(ckpt.files.count == 1)
        #expect(try ckpt.tensor("a") == Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Float]))
        #expect(ckpt.info("b")?.shape == [2])
        let path = Fixtures.url("single/model.safetensors").path
        #expect(safeTensorsError { _ = try ckpt.tensor("zz") } == .missingTensor(file: path, tensor: "zz"))
    }

    @Test func shardedDirectoryPrefersTheIndex() async throws {
        let ckpt = try SafeTensorsCheckpoint(directory: Fixtures.url("sharded"))
        #expect(ckpt.tensorNames == ["a", "b", "c", "d"])  // not the decoy model.safetensors
        #expect(
            ckpt.files.map { $0.url.lastPathComponent }
                == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
        #expect(try ckpt.tensor("b").scalars == [5, 6])
        #expect(try ckpt.tensor("c").scalars == [7])
        #expect(try ckpt.integers("d") == [3, 1, 4])
        #expect(try ckpt.tensor("d").scalars == [3, 1, 4])
        #expect(ckpt.file(containing: "c")?.url.lastPathComponent == "model-00002-of-00002.safetensors")
        #expect(ckpt.info("a")?.dtype == .F32)
        #expect(ckpt.info("decoy") == nil)
        let index = Fixtures.url("sharded/model.safetensors.index.json").path
        #expect(safeTensorsError { _ = try ckpt.integers("decoy") } == .missingTensor(file: index, tensor: "decoy"))
        // The checkpoint is Sendable and usable from other tasks.
        let c = ckpt
        let t = try await Task.detached { try c.tensor("a") }.value
        #expect(t.shape == [2, 2])
    }

    @Test func explicitFileLists() throws {
        let s1 = Fixtures.url("sharded/model-00001-of-00002.safetensors")
        let s2 = Fixtures.url("sharded/model-00002-of-00002.safetensors")
        let ckpt = try SafeTensorsCheckpoint(files: [s2, s1])
        #expect(ckpt.tensorNames == ["a", "b", "c", "d"])
        #expect(try ckpt.tensor("a").scalars == [1, 2, 3, 4])

        let single = Fixtures.url("single/model.safetensors")
        #expect(
            safeTensorsError { _ = try SafeTensorsCheckpoint(files: [single, s1]) }
                == .duplicateTensorAcrossFiles(file: s1.path, tensor: "a", otherFile: single.path))
        let empty = try SafeTensorsCheckpoint(files: [])
        #expect(empty.tensorNames.isEmpty)
        #expect(safeTensorsError { _ = try empty.tensor("a") } == .missingTensor(file: "(empty checkpoint)", tensor: "a"))
        // A bad file in the list is reported by its own path.
        let bad = Fixtures.url("malformed/gap.safetensors")
        #expect(safeTensorsError { _ = try SafeTensorsCheckpoint(files: [s1, bad]) }?.file == bad.path)
    }

    @Test func brokenIndexes() throws {
        let mismatch = Fixtures.url("index_mismatch/model.safetensors.index.json").path
        #expect(
            safeTensorsError { _ = try SafeTensorsCheckpoint(directory: Fixtures.url("index_mismatch")) }
                == .indexMismatch(file: mismatch, tensor: "c", shard: "model-00001-of-00001.safetensors"))

        let escape = Fixtures.url("index_escape/model.safetensors.index.json").path
        let e1 = safeTensorsError { _ = try SafeTensorsCheckpoint(directory: Fixtures.url("index_escape")) }
        guard case .invalidIndex(escape, let reason) = e1 else {
            Issue.record("expected .invalidIndex, got \(String(describing: e1))")
            return
        }
        #expect(reason.contains("../single/model.safetensors"))

        let noMap = Fixtures.url("index_no_weight_map/model.safetensors.index.json").path
        #expect(
            safeTensorsError { _ = try SafeTensorsCheckpoint(directory: Fixtures.url("index_no_weight_map")) }
                == .invalidIndex(file: noMap, reason: "no \"weight_map\""))

        let dup = Fixtures.url("index_duplicate_key/model.safetensors.index.json").path
        let e2 = safeTensorsError { _ = try SafeTensorsCheckpoint(directory: Fixtures.url("index_duplicate_key")) }
        guard case .invalidJSON(dup, _, let why) = e2 else {
            Issue.record("expected .invalidJSON, got \(String(describing: e2))")
            return
        }
        #expect(why == "duplicate key \"a\"")

        let e3 = safeTensorsError { _ = try SafeTensorsCheckpoint(directory: Fixtures.url("index_missing_shard")) }
        guard case .unreadable(let file, _) = e3 else {
            Issue.record("expected .unreadable, got \(String(describing: e3))")
            return
        }
        #expect(file == Fixtures.url("index_missing_shard/model-00001-of-00009.safetensors").path)

        let edge = Fixtures.url("edge")
        #expect(
            safeTensorsError { _ = try SafeTensorsCheckpoint(directory: edge) }
                == .invalidIndex(
                    file: edge.path, reason: "neither model.safetensors.index.json nor model.safetensors is there"))
    }
}
