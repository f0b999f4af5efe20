import AttendTestSupport
import Testing

@testable import Attend

// Large step buffers are recycled while a trainable model lives (LargeBufferRecycler): the same
// size is handed back instead of mapped afresh, and small buffers are never kept.

@Suite struct BufferRecyclingTests {
    @Test func aFreedLargeBufferIsHandedBackForTheSameSizeWhileAModelLives() {
        // An unusual size, so no other test running meanwhile asks for it.
        let count = LargeBufferRecycler.defaultMinimumBytes / 4 + 4_099
        let token = LargeBufferRecycler.Token()
        var first: Tensor? = Tensor(repeating: 1, shape: [count])
        let address = first!.storage.base
        first = nil
        let second = Tensor.uninitialized([count])
        #expect(second.storage.base == address)
        // A different size does not get it.
        let other = Tensor.uninitialized([count + 16])
        #expect(other.storage.base != address)
        withExtendedLifetime((token, second, other)) {}
    }

    @Test func smallBuffersAreNeverKept() {
        let token = LargeBufferRecycler.Token()
        let p = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: TensorStorage.alignment)
        #expect(!LargeBufferRecycler.shared.keep(p, bytes: 4096))
        p.deallocate()
        #expect(LargeBufferRecycler.shared.take(bytes: 4096) == nil)
        withExtendedLifetime(token) {}
    }

    @Test func trainingStepsGiveTheSameBitsWithRecycledBuffers() throws {
        // Two steps of one model (the second on recycled, uninitialized buffers) against two
        // fresh models' first steps: a kernel that read its output before writing would differ.
        let config = PyTorchLayerConfig(modelDim: 64, heads: 4, feedForwardDim: 256)
        var rng = SeededRNG(seed: 21)
        let x = Tensor(shape: [8, 256, 64], generating: { _ in Float.random(in: -1...1, using: &rng) })
        let t = Tensor(shape: [8, 256, 64], generating: { _ in Float.random(in: -1...1, using: &rng) })
        let recycler = LargeBufferRecycler.shared
        recycler.minimumBytes = 1 << 20  // this model's feed-forward tensors are 2 MiB
        defer { recycler.minimumBytes = LargeBufferRecycler.defaultMinimumBytes }
        let m = try EncoderStackTraining(layers: 1, config: config, seed: 22)
        _ = try m.loss(input: x, target: t)
        let g1 = try m.backward()
        _ = try m.loss(input: x, target: t)
        let g2 = try m.backward()
        for name in g1.names {
            #expect(g1[name]!.scalars.map(\.bitPattern) == g2[name]!.scalars.map(\.bitPattern), "\(name)")
        }
    }
}
