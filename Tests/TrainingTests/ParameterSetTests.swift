import Testing
@testable import Attend

@Suite struct ParameterSetTests {
    @Test func keepsInsertionOrderAndReplacesInPlace() {
        var set = ParameterSet([("b", Tensor.zeros([2])), ("a", Tensor.zeros([3]))])
        set["c"] = Tensor(repeating: 1, shape: [1])
        set["b"] = Tensor(repeating: 2, shape: [2])
        #expect(set.names == ["b", "a", "c"])
        #expect(set["b"]?.scalars == [2, 2])
        #expect(set.scalarCount == 6)
        set["a"] = nil
        #expect(set.names == ["b", "c"])
        #expect(!set.contains("a"))
        let z = set.zerosLike()
        #expect(z.names == ["b", "c"] && z["b"]?.scalars == [0, 0] && z["c"]?.shape == [1])
    }
}
