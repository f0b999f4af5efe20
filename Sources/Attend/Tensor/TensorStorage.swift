// The one layer that touches raw memory. Everything above works with `Tensor` values and
// `withUnsafe...` scopes; pointers never escape those scopes.

import Foundation

/// Buffer of float32 scalars behind `Tensor`'s copy-on-write value semantics: either owned
/// (`OwnedMemory`: 64-byte aligned, one cache line, one AVX-512 vector; large ones on huge
/// pages where the OS gives them) or borrowed from an owner
/// object that keeps it alive, such as a memory-mapped checkpoint file (then read-only and
/// only 4-byte aligned; no kernel relies on more for its inputs).
final class TensorStorage: @unchecked Sendable {
    /// Alignment of every owned tensor buffer, in bytes.
    static let alignment = OwnedMemory.alignment

    let count: Int
    let base: UnsafeMutablePointer<Float>
    /// Bytes of the owned allocation behind `base`: the request's, or a little more when the
    /// recycler handed back a kept buffer of a nearby size (0 for borrowed storage).
    private let allocatedBytes: Int
    /// The object whose lifetime keeps borrowed scalars valid; nil for owned storage.
    /// Borrowed storage is never written: `Tensor` copies it before its first mutation.
    let owner: AnyObject?

    /// Scalars owned by `owner` (read-only, valid while `owner` lives), not copied.
    init(borrowing base: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.count = count
        self.base = UnsafeMutablePointer(mutating: base)
        self.owner = owner
        self.allocatedBytes = 0
    }

    /// Uninitialized storage for `count` scalars (callers initialize before reading).
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative scalar count \(count)")
        self.count = count
        self.owner = nil
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let (raw, allocated) = LargeBufferRecycler.shared.take(bytes: bytes) ?? (OwnedMemory.allocate(bytes: bytes), bytes)
        allocatedBytes = allocated
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        base.initialize(repeating: value, count: count)
    }

    convenience init<C: Collection>(copying scalars: C) where C.Element == Float {
        self.init(uninitializedCount: scalars.count)
        var p = base
        for x in scalars {
            p.initialize(to: x)
            p += 1
        }
    }

    /// A copy of this storage (the "copy" in copy-on-write).
    func copy() -> TensorStorage {
        let s = TensorStorage(uninitializedCount: count)
        s.base.initialize(from: base, count: count)
        return s
    }

    deinit {
        guard owner == nil else { return }
        let raw = UnsafeMutableRawPointer(base)
        if !LargeBufferRecycler.shared.keep(raw, bytes: allocatedBytes) { OwnedMemory.deallocate(raw, bytes: allocatedBytes) }
    }
}

/// Large owned buffers kept for reuse while a model is alive.
///
/// A forward pass or a training step allocates the same large activations again and again (a
/// base encoder at 4096 tokens: a 32 MiB feed-forward tensor, a 24 MiB QKV projection and
/// 8-16 MiB others per layer). Fresh, each is mapped by the C allocator and every page faulted
/// in and zeroed by the kernel on first touch: 15% of a one-thread base encoder pass at 4096
/// tokens on Zen 5 went to zeroing pages. So while a model layer is alive (every ``Linear``
/// holds a ``Token``, so do the trainable models), a freed buffer of ``minimumBytes`` or more
/// is kept when its size recurs, and handed back to the next request of that size or a little
/// less (see ``nearbyBytes(_:)``: batches of sentences of varying length ask for activations of
/// varying size; all-MiniLM-L6-v2 from strings spent 2% of a pass zeroing fresh pages when only
/// exact sizes were handed back).
///
/// What is kept, and for how long:
/// - only sizes whose class (``sizeClass(_:)``, 8 per doubling) was requested at least twice
///   in the last ``maximumAge`` large requests (a forward
///   pass's per-layer tensors, a training step's); a one-off size (a cache grown once, a first
///   call's shapes) is freed as before, so the pool does not fill with sizes that never come
///   back;
/// - at most ``maximumBytes`` in all (512 MiB): to keep a new buffer past it, the oldest kept
///   ones are freed;
/// - a kept buffer not asked for within ``maximumAge`` large requests, or within
///   ``maximumIdleSeconds`` (one second; a timer on a global queue frees it), is freed: what a
///   model's loading or a finished pass leaves kept does not stay;
/// - when the last token goes, every kept buffer is freed.
/// So memory held beyond what is in use is bounded by ``maximumBytes`` and, in the steady state
/// of repeated passes, by what the pass itself had in use at its peak, and falls back to what
/// is in use a second after the last pass. A kept buffer's scalars are whatever its last
/// tensor left: storage made uninitialized is written before it is read, as with fresh memory.
/// Cost: a lock and a scan of the (few, at most 128) kept buffers per large request.
final class LargeBufferRecycler: @unchecked Sendable {
    static let shared = LargeBufferRecycler()
    /// The smallest buffer kept by default: where owned buffers go to huge pages (smaller ones
    /// come from the C allocator's heap, whose pages are mostly reused without zeroing).
    static let defaultMinimumBytes = OwnedMemory.hugePageMinimumBytes
    /// The most kept at once by default (beyond what is in use).
    static let defaultMaximumBytes = 512 << 20
    /// Large requests (of `minimumBytes` or more) after which a kept buffer not handed back, or a
    /// size not requested again, is forgotten.
    static let maximumAge = 512
    /// Seconds a kept buffer stays without being handed back, by default.
    static let defaultMaximumIdleSeconds = 1.0

    private struct Kept {
        var pointer: UnsafeMutableRawPointer
        var bytes: Int
        var event: Int
        /// When it was kept (`DispatchTime` nanoseconds).
        var time: UInt64
    }

    private let lock = NSLock()
    private var tokens = 0
    private var kept: [Kept] = []
    private var keptBytes = 0
    private var minimum = LargeBufferRecycler.defaultMinimumBytes
    private var maximum = LargeBufferRecycler.defaultMaximumBytes
    private var idleNanoseconds = UInt64(LargeBufferRecycler.defaultMaximumIdleSeconds * 1e9)
    /// Whether a timer to free idle buffers is scheduled.
    private var timerPending = false
    /// Large requests so far (the clock of the ages).
    private var event = 0
    /// Recently requested large sizes: how often, and the last request's event.
    private var requested: [Int: (count: Int, last: Int)] = [:]

    /// The smallest buffer kept (tests lower it to recycle small models' buffers).
    var minimumBytes: Int {
        get { lock.withLock { minimum } }
        set { lock.withLock { minimum = newValue } }
    }

    /// Seconds a kept buffer stays without being handed back (tests shorten it).
    var maximumIdleSeconds: Double {
        get { lock.withLock { Double(idleNanoseconds) / 1e9 } }
        set { lock.withLock { idleNanoseconds = UInt64(max(newValue, 0) * 1e9) } }
    }

    /// The most bytes kept at once (tests lower it to see the oldest go first).
    var maximumBytes: Int {
        get { lock.withLock { maximum } }
        set { lock.withLock { maximum = newValue } }
    }

    /// Held by a model (a ``Linear`` layer, a trainable model) for its lifetime: while any is
    /// alive, large buffers of recurring sizes are recycled.
    final class Token: @unchecked Sendable {
        let recycler: LargeBufferRecycler
        /// A token of `recycler` (tests use recyclers of their own).
        init(_ recycler: LargeBufferRecycler = .shared) {
            self.recycler = recycler
            recycler.retain()
        }
        deinit { recycler.release() }
    }

    private func retain() {
        lock.lock()
        tokens += 1
        lock.unlock()
    }

    private func release() {
        lock.lock()
        tokens -= 1
        var drained: [Kept] = []
        if tokens == 0 { (drained, kept, keptBytes, requested) = (kept, [], 0, [:]) }
        lock.unlock()
        for d in drained { OwnedMemory.deallocate(d.pointer, bytes: d.bytes) }
    }

    /// Removes kept buffers older than `maximumAge` and sizes not requested since; returns the
    /// buffers for the caller to free outside the lock. Called with the lock held.
    private func expire() -> [Kept] {
        let oldest = event - Self.maximumAge
        if requested.count > 64 { requested = requested.filter { $0.value.last >= oldest } }
        return removeKept { $0.event < oldest }
    }

    /// Removes the kept buffers `gone` selects and returns them (to free outside the lock).
    /// Called with the lock held.
    private func removeKept(where gone: (Kept) -> Bool) -> [Kept] {
        let removed = kept.filter(gone)
        if !removed.isEmpty {
            kept.removeAll(where: gone)
            keptBytes -= removed.reduce(0) { $0 + $1.bytes }
        }
        return removed
    }

    /// The class of a large size for counting recurrences: `bytes` rounded up to a multiple of
    /// an eighth of the power of two at or below it (4 MiB + 1 and 4.5 MiB share a class, 4.5 MiB
    /// + 1 starts the next), so sizes that differ by a few rows count as one.
    static func sizeClass(_ bytes: Int) -> Int {
        let step = max(1, (1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount)) / 8)
        return (bytes + step - 1) / step * step
    }

    /// The largest kept buffer handed to a request of `bytes`: an eighth more (the unused tail
    /// of a recycled buffer is memory already in use, never touched again by the new tensor).
    static func nearbyBytes(_ bytes: Int) -> Int { bytes + bytes / 8 }

    /// A kept buffer (made by `OwnedMemory.allocate(bytes:)` for the `bytes` returned with it,
    /// which the caller frees or keeps with that count) of `bytes` up to ``nearbyBytes(_:)``,
    /// the smallest such, or nil (allocate one). Counts the request toward its class recurring.
    func take(bytes: Int) -> (pointer: UnsafeMutableRawPointer, bytes: Int)? {
        lock.lock()
        guard bytes >= minimum else {
            lock.unlock()
            return nil
        }
        event += 1
        let key = Self.sizeClass(bytes)
        let r = requested[key]
        requested[key] = ((r?.count ?? 0) + 1, event)
        var found: (pointer: UnsafeMutableRawPointer, bytes: Int)? = nil
        let limit = Self.nearbyBytes(bytes)
        var best: Int? = nil
        for (i, k) in kept.enumerated() where k.bytes >= bytes && k.bytes <= limit {
            if best == nil || k.bytes <= kept[best!].bytes { best = i }  // the smallest; the latest of equals
        }
        if let i = best {
            let k = kept.remove(at: i)
            keptBytes -= k.bytes
            found = (k.pointer, k.bytes)
        }
        let gone = expire()
        lock.unlock()
        for g in gone { OwnedMemory.deallocate(g.pointer, bytes: g.bytes) }
        return found
    }

    /// Keeps `pointer` (from `OwnedMemory.allocate(bytes:)` for this `bytes`) for reuse when a
    /// model is alive and its size class recurs (freeing the oldest kept buffers to stay within
    /// `maximumBytes`); false: the caller frees it. Kept buffers are freed with
    /// `OwnedMemory.deallocate(_:bytes:)` for the same `bytes`.
    func keep(_ pointer: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        lock.lock()
        guard bytes >= minimum, tokens > 0, bytes <= maximum, let r = requested[Self.sizeClass(bytes)], r.count >= 2,
            r.last >= event - Self.maximumAge
        else {
            lock.unlock()
            return false
        }
        var gone = expire()
        while keptBytes + bytes > maximum, !kept.isEmpty {
            let k = kept.removeFirst()
            keptBytes -= k.bytes
            gone.append(k)
        }
        kept.append(Kept(pointer: pointer, bytes: bytes, event: event, time: DispatchTime.now().uptimeNanoseconds))
        keptBytes += bytes
        let schedule = !timerPending
        timerPending = true
        let idle = idleNanoseconds
        lock.unlock()
        for g in gone { OwnedMemory.deallocate(g.pointer, bytes: g.bytes) }
        if schedule { scheduleIdleRelease(afterNanoseconds: idle) }
        return true
    }

    /// Frees, from a global queue after `afterNanoseconds`, the kept buffers idle for longer than
    /// the limit; reschedules itself while any remain.
    private func scheduleIdleRelease(afterNanoseconds: UInt64) {
        DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + .nanoseconds(Int(min(afterNanoseconds, 1 << 40)) + 1_000_000)) {
            [weak self] in
            self?.releaseIdle()
        }
    }

    private func releaseIdle() {
        lock.lock()
        let now = DispatchTime.now().uptimeNanoseconds, idle = idleNanoseconds
        let gone = removeKept { now &- $0.time >= idle }
        // The next check when the oldest remaining buffer reaches the limit.
        let next = kept.map { idle &- min(idle, now &- $0.time) }.min()
        timerPending = next != nil
        lock.unlock()
        for g in gone { OwnedMemory.deallocate(g.pointer, bytes: g.bytes) }
        if let next { scheduleIdleRelease(afterNanoseconds: next) }
    }

    /// Bytes kept now (for tests).
    var keptByteCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return keptBytes
    }
}
