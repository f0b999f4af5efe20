import Testing
@testable import Attend

@Suite struct DropoutTests {
    @Test func identityAtZeroAndDrawsNothing() {
        var rng = SplitMix64(state: 7)
        let x = Tensor(shape: [3, 4], generating: { Float($0) })
        let (y, mask) = Dropout(probability: 0).trainingForward(x, generator: &rng)
        #expect(y == x && mask == nil && rng.state == 7)
        #expect(Dropout(probability: 0).backward(mask: nil, outputGradient: x) == x)
    }

    @Test func seededMaskScalesKeptValuesAndGradients() {
        let x = Tensor(repeating: 2, shape: [100, 100])
        var a = SplitMix64(state: 42), b = SplitMix64(state: 42)
        let d = Dropout(probability: 0.25)
        let (y1, m1) = d.trainingForward(x, generator: &a)
        let (y2, _) = d.trainingForward(x, generator: &b)
        #expect(y1 == y2)  // same seed, same mask
        let values = Set(y1.scalars)
        #expect(values == [0, 2 / 0.75])
        let dropped = y1.scalars.filter { $0 == 0 }.count
        #expect(abs(Double(dropped) / 10_000 - 0.25) < 0.02)
        let g = d.backward(mask: m1, outputGradient: Tensor(repeating: 1, shape: [100, 100]))
        #expect(zip(g.scalars, y1.scalars).allSatisfy { ($0 == 0) == ($1 == 0) })
    }
}
