import Foundation
import Testing
@testable import Attend

@Suite("SafeTensorsFile: zero-copy tensors")
struct ZeroCopyTests {
    @Test("aligned F32 tensors borrow the map; writing one copies it first and leaves the file's bytes alone")
    func borrowedTensorsAreCopiedOnWrite() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("mha.safetensors"))
        let original = try file.tensor("out_proj.weight")
        #expect(original.storage.owner != nil, "an aligned F32 tensor should borrow the mapped bytes")
        var changed = original
        changed[0, 0] = 12345
        #expect(changed.storage.owner == nil, "the first write must copy borrowed storage")
        #expect(original[0, 0] != 12345)
        let again = try file.tensor("out_proj.weight")
        #expect(again == original, "re-reading must see the file's values, not the write")
    }

    @Test("a borrowed tensor keeps the mapping alive after the file object is gone")
    func borrowedTensorOutlivesFile() throws {
        var tensor: Tensor
        do {
            let file = try SafeTensorsFile(contentsOf: Fixtures.url("mha.safetensors"))
            tensor = try file.tensor("in_proj_weight")
        }
        let sum = tensor.scalars.reduce(0, +)
        #expect(sum.isFinite)
        #expect(tensor.shape == [192, 64])
    }
}
