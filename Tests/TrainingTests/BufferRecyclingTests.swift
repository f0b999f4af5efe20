import AttendTestSupport
import Testing

@testable import Attend

// Large buffers are recycled while a model lives (LargeBufferRecycler): a recurring size is
// handed back instead of mapped afresh; one-off sizes and small buffers are never kept; kept
// buffers go oldest first past the byte limit and when not asked for again.

/// Where a tensor of `count` floats was, freed after its size recurred (the first request of a
/// size is a one-off: freed, not kept; the second makes it recur), so the shared recycler keeps
/// it while a token lives. Tests use sizes of their own, odd and far from any other test's:
/// a request up to an eighth smaller may be handed a kept buffer.
private func keptAddress(count: Int) -> UnsafeMutablePointer<Float> {
    _ = Tensor(repeating: 0, shape: [count])
    return Tensor(repeating: 1, shape: [count]).storage.base
}

@Suite struct BufferRecyclingTests {
    @Test func aFreedLargeBufferIsHandedBackForTheSameSizeWhileAModelLives() {
        let count = (22 << 20) / 4 + 4_099
        let token = LargeBufferRecycler.Token()
        let address = keptAddress(count: count)
        let second = Tensor.uninitialized([count])
        #expect(second.storage.base == address)
        // A larger size does not get it.
        let other = Tensor.uninitialized([count + 16])
        #expect(other.storage.base != address)
        withExtendedLifetime((token, second, other)) {}
    }

    @Test func smallBuffersAreNeverKept() {
        let recycler = LargeBufferRecycler()
        let token = LargeBufferRecycler.Token(recycler)
        let p = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: TensorStorage.alignment)
        _ = (recycler.take(bytes: 4096), recycler.take(bytes: 4096))  // a recurring size, but small
        #expect(!recycler.keep(p, bytes: 4096))
        p.deallocate()
        #expect(recycler.take(bytes: 4096)?.pointer == nil)
        withExtendedLifetime(token) {}
    }

    @Test func aSizeRequestedOnceIsNotKept() {
        let recycler = LargeBufferRecycler()  // its own: no other test's requests or limits
        recycler.maximumIdleSeconds = 3600  // a loaded machine's pause must not free it meanwhile
        let bytes = LargeBufferRecycler.defaultMinimumBytes + 64
        let p = OwnedMemory.allocate(bytes: bytes)
        #expect(recycler.take(bytes: bytes)?.pointer == nil)
        #expect(!recycler.keep(p, bytes: bytes))  // no model alive
        var token: LargeBufferRecycler.Token? = LargeBufferRecycler.Token(recycler)
        #expect(!recycler.keep(p, bytes: bytes))  // one request so far: freed by the caller
        #expect(recycler.take(bytes: bytes)?.pointer == nil)
        #expect(recycler.keep(p, bytes: bytes))  // the size recurred
        #expect(recycler.keptByteCount == bytes)
        #expect(recycler.take(bytes: bytes + 64)?.pointer == nil)  // a larger size does not get it
        let back = recycler.take(bytes: bytes)?.pointer
        #expect(back == p)
        guard let back else { return }
        #expect(recycler.keep(back, bytes: bytes))
        withExtendedLifetime(token) {}
        // The last token gone, the kept buffer was freed (with the allocator's own free: glibc
        // aborts on a mismatched one, ASan reports it) and the sizes forgotten.
        token = nil
        #expect(recycler.keptByteCount == 0)
        #expect(recycler.take(bytes: bytes)?.pointer == nil)
    }

    @Test func aSlightlyLargerKeptBufferServesANearbySizeAndIsFreedWithItsOwnSize() {
        // Batches of varying length: a request a few rows smaller than a kept buffer gets it
        // (the smallest that fits, within an eighth), a much smaller or any larger one does not,
        // and the buffer goes back (and is freed) with the size it was allocated with.
        let recycler = LargeBufferRecycler()
        recycler.maximumIdleSeconds = 3600
        var token: LargeBufferRecycler.Token? = LargeBufferRecycler.Token(recycler)
        // 9 MiB: a quarter less is still above the recycler's minimum, so only the nearby
        // window can refuse it.
        let big = 2 * LargeBufferRecycler.defaultMinimumBytes + (1 << 20)
        #expect(big - big / 4 >= LargeBufferRecycler.defaultMinimumBytes)
        let bigger = big + 4096
        #expect(LargeBufferRecycler.sizeClass(big) == big && LargeBufferRecycler.sizeClass(big + 1) > big)
        #expect(LargeBufferRecycler.sizeClass(bigger) == LargeBufferRecycler.sizeClass(big + 1))
        _ = (recycler.take(bytes: big), recycler.take(bytes: bigger))  // two classes
        _ = (recycler.take(bytes: big - 4096), recycler.take(bytes: bigger + 4096))  // each class twice now
        let p = OwnedMemory.allocate(bytes: big), q = OwnedMemory.allocate(bytes: bigger)
        #expect(recycler.keep(q, bytes: bigger) && recycler.keep(p, bytes: big))
        #expect(recycler.take(bytes: bigger + 1)?.pointer == nil)  // larger than both
        #expect(recycler.take(bytes: big - big / 4)?.pointer == nil)  // too much smaller
        let near = recycler.take(bytes: big - 8192)  // both fit: the smaller one
        #expect(near?.pointer == p && near?.bytes == big)
        let next = recycler.take(bytes: big - 8192)
        #expect(next?.pointer == q && next?.bytes == bigger)
        #expect(recycler.keptByteCount == 0)
        if let next { #expect(recycler.keep(next.pointer, bytes: next.bytes)) }
        if let near { OwnedMemory.deallocate(near.pointer, bytes: near.bytes) }
        #expect(recycler.keptByteCount == bigger)
        token = nil  // frees q with its own size (glibc aborts on a mismatched free; ASan reports it)
        #expect(recycler.keptByteCount == 0)
        withExtendedLifetime(token) {}
    }

    @Test func aTensorOnANearbyRecycledBufferIsWholeAndGivesItBack() {
        // Through Tensor: a freed buffer serves a slightly smaller tensor, and when that tensor
        // goes the buffer is kept again under its allocated size (a request of the original
        // size gets it back).
        let count = (26 << 20) / 4 + 6_151
        let token = LargeBufferRecycler.Token()
        let address = keptAddress(count: count)
        var smaller: Tensor? = Tensor(repeating: 2, shape: [count - 96])
        #expect(smaller!.storage.base == address)
        #expect(smaller![count - 97] == 2 && smaller!.count == count - 96)
        smaller = nil
        let again = Tensor.uninitialized([count])
        #expect(again.storage.base == address)
        withExtendedLifetime((token, again, smaller)) {}
    }

    @Test func keptBuffersGoOldestFirstPastTheLimitAndWhenNotAskedForAgain() {
        let recycler = LargeBufferRecycler()
        recycler.maximumIdleSeconds = 3600  // only the request count ages buffers here
        let token = LargeBufferRecycler.Token(recycler)
        // Sizes far enough apart that none is handed to a request of another.
        let sizes = (1...3).map { LargeBufferRecycler.defaultMinimumBytes * $0 + 64 * $0 }
        for b in sizes { _ = (recycler.take(bytes: b), recycler.take(bytes: b)) }
        // Room for two of the three: keeping the third frees the first.
        recycler.maximumBytes = sizes[1] + sizes[2]
        let ps = sizes.map { OwnedMemory.allocate(bytes: $0) }
        for (p, b) in zip(ps, sizes) { #expect(recycler.keep(p, bytes: b)) }
        #expect(recycler.keptByteCount == sizes[1] + sizes[2])
        #expect(recycler.take(bytes: sizes[0])?.pointer == nil)
        let second = recycler.take(bytes: sizes[1])?.pointer
        #expect(second == ps[1])
        if let second { OwnedMemory.deallocate(second, bytes: sizes[1]) }
        // The third, not asked for during maximumAge large requests of another size, is freed.
        let other = LargeBufferRecycler.defaultMinimumBytes * 9 + 64 * 9
        // Eight large requests so far (two per size, two above): kept for maximumAge more from its
        // keep at the sixth.
        for _ in 0..<(LargeBufferRecycler.maximumAge - 8) { _ = recycler.take(bytes: other) }
        #expect(recycler.keptByteCount == sizes[2])
        for _ in 0...LargeBufferRecycler.maximumAge { _ = recycler.take(bytes: other) }
        #expect(recycler.keptByteCount == 0)
        #expect(recycler.take(bytes: sizes[2])?.pointer == nil)
        // A size last requested before the window is one-off again: not kept.
        let q = OwnedMemory.allocate(bytes: sizes[2])
        for _ in 0...LargeBufferRecycler.maximumAge { _ = recycler.take(bytes: other) }
        #expect(!recycler.keep(q, bytes: sizes[2]))
        OwnedMemory.deallocate(q, bytes: sizes[2])
        withExtendedLifetime(token) {}
    }

    @Test func aKeptBufferNotHandedBackIsFreedWhenIdle() async throws {
        let recycler = LargeBufferRecycler()
        recycler.maximumIdleSeconds = 0.05
        let token = LargeBufferRecycler.Token(recycler)
        let bytes = LargeBufferRecycler.defaultMinimumBytes + 64
        _ = (recycler.take(bytes: bytes), recycler.take(bytes: bytes))
        #expect(recycler.keep(OwnedMemory.allocate(bytes: bytes), bytes: bytes))
        #expect(recycler.keptByteCount == bytes)
        // Freed by the timer, with no further request (a loaded machine may delay it: poll).
        var waited = 0
        while recycler.keptByteCount != 0 && waited < 200 {
            try await Task.sleep(nanoseconds: 50_000_000)
            waited += 1
        }
        #expect(recycler.keptByteCount == 0)
        #expect(recycler.take(bytes: bytes)?.pointer == nil)
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
