// OwnedMemory, the allocator of Attend's owned buffers: alignment, the huge-page policy,
// every byte usable, each buffer freed as it was allocated (also when the training recycler
// kept it), and on Linux the kernel's view that a large buffer may get huge pages.
import Foundation
import Testing

@testable import Attend
import AttendTestSupport

/// Sizes around the huge-page threshold and the huge page itself.
private let sizes: [Int] = [
    0, 1, 63, 4096, OwnedMemory.hugePageBytes + 4, OwnedMemory.hugePageMinimumBytes - 4,
    OwnedMemory.hugePageMinimumBytes, OwnedMemory.hugePageMinimumBytes + 12_345, 3 * OwnedMemory.hugePageBytes + 1,
]

/// Whether an address is a multiple of `alignment`.
private func isAligned(_ p: UnsafeRawPointer, _ alignment: Int) -> Bool { Int(bitPattern: p) % alignment == 0 }

/// The alignment a buffer of `bytes` must have.
private func expectedAlignment(_ bytes: Int) -> Int {
    OwnedMemory.usesHugePages(bytes: bytes) ? OwnedMemory.hugePageBytes : OwnedMemory.alignment
}

@Suite("OwnedMemory: large buffers on huge pages")
struct OwnedMemoryTests {
    @Test func hugePagesFromTheThresholdUpOnLinuxOnly() {
        #if os(Linux)
            #expect(!OwnedMemory.usesHugePages(bytes: OwnedMemory.hugePageMinimumBytes - 1))
            #expect(OwnedMemory.usesHugePages(bytes: OwnedMemory.hugePageMinimumBytes))
            #expect(OwnedMemory.usesHugePages(bytes: 1 << 30))
        #else
            #expect(!OwnedMemory.usesHugePages(bytes: 1 << 30))
        #endif
        #expect(!OwnedMemory.usesHugePages(bytes: 0))
        for bytes in sizes {
            let reserved = OwnedMemory.reservedBytes(bytes)
            #expect(reserved >= max(bytes, 1), "\(bytes)")
            if OwnedMemory.usesHugePages(bytes: bytes) {
                #expect(reserved % OwnedMemory.hugePageBytes == 0 && reserved - bytes < OwnedMemory.hugePageBytes, "\(bytes)")
            } else {
                #expect(reserved == max(bytes, 1), "\(bytes)")
            }
        }
    }

    @Test func buffersAreAlignedWritableAndFreed() {
        for bytes in sizes {
            let p = OwnedMemory.allocate(bytes: bytes)
            #expect(isAligned(p, expectedAlignment(bytes)), "\(bytes) bytes at \(p)")
            // Every requested byte holds what was written (a pattern that differs per page).
            let b = p.bindMemory(to: UInt8.self, capacity: max(bytes, 1))
            for i in 0..<bytes { b[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 12) }
            var wrong = 0
            for i in 0..<bytes where b[i] != UInt8(truncatingIfNeeded: i &* 31 &+ i >> 12) { wrong += 1 }
            #expect(wrong == 0, "\(bytes)")
            OwnedMemory.deallocate(p, bytes: bytes)
        }
    }

    @Test func tensorHalfAndRawStorageUseIt() {
        let count = OwnedMemory.hugePageMinimumBytes / 4 + 1_003
        let t = Tensor(shape: [count], generating: { Float($0 % 256) })
        #expect(isAligned(t.storage.base, expectedAlignment(count * 4)))
        #expect(t[count - 1] == Float((count - 1) % 256) && t[12_345] == 57)

        let half = HalfMatrix(rounding: t.reshaped([1, count]), to: .bf16)
        #expect(isAligned(half.base, expectedAlignment(count * 2)))
        // Integers up to 256 are exact in bfloat16 (8 significant bits). Counted, not compared
        // as arrays: a failing array comparison would diff a million elements.
        let widened = half.widened().scalars, original = t.scalars
        #expect(zip(widened, original).filter { $0 != $1 }.count == 0)

        let raw = RawBytes(count: 2 * count) { out in
            for i in 0..<out.count { out[i] = UInt8(truncatingIfNeeded: i) }
        }
        #expect(isAligned(raw.base, expectedAlignment(2 * count)))
        #expect(raw.buffer[2 * count - 1] == UInt8(truncatingIfNeeded: 2 * count - 1))
        // A small tensor keeps the ordinary 64-byte alignment.
        #expect(isAligned(Tensor(repeating: 1, shape: [3]).storage.base, OwnedMemory.alignment))
    }

    @Test func aRecycledHugeBufferIsHandedBackAlignedAndFreedByTheRecycler() {
        // Above the recycler's default minimum (and the huge-page threshold), a size no other
        // test asks for, nor one up to an eighth smaller (such a request may be handed it).
        let count = (30 << 20) / 4 + 2_053
        #expect(OwnedMemory.usesHugePages(bytes: count * 4) == OwnedMemory.usesHugePages(bytes: 1 << 30))
        var token: LargeBufferRecycler.Token? = LargeBufferRecycler.Token()
        var once: Tensor? = Tensor(repeating: 0, shape: [count])  // a size's first request: not kept
        once = nil
        var first: Tensor? = Tensor(repeating: 1, shape: [count])
        let address = first!.storage.base
        first = nil
        // Handed back, still aligned for huge pages, and every scalar writable.
        var second: Tensor? = Tensor(repeating: 2, shape: [count])
        #expect(second!.storage.base == address)
        #expect(isAligned(second!.storage.base, expectedAlignment(count * 4)))
        #expect(second![count - 1] == 2 && second![0] == 2)
        // Kept again on free, then freed by the recycler (with the allocator's own free) when the
        // last token goes, or by the next owner of the size; either way the memory is released
        // the way it was allocated (glibc aborts on a mismatched free; ASan reports it).
        second = nil
        token = nil
        let third = Tensor(repeating: 3, shape: [count])
        #expect(third[count - 1] == 3)
        withExtendedLifetime((token, third, once)) {}
    }

    @Test func smallWeightsShareHugePageChunks() {
        #expect(!WeightArena.places(bytes: WeightArena.minimumBytes - 1))
        #expect(!WeightArena.places(bytes: OwnedMemory.hugePageMinimumBytes))
        #expect(WeightArena.places(bytes: WeightArena.minimumBytes) == OwnedMemory.usesHugePages(bytes: 1 << 30))
        // Buffers placed one after another: 64-byte aligned, inside their 2 MiB-aligned chunk,
        // and not overlapping (each keeps its own pattern).
        let sizes = [WeightArena.minimumBytes + 1, 1 << 20, 3 << 20, 200_000, 3 << 20]
        let placed = sizes.compactMap { WeightArena.shared.allocate(bytes: $0) }
        #expect(placed.count == (WeightArena.places(bytes: 1 << 20) ? sizes.count : 0))
        for (i, (p, chunk)) in placed.enumerated() {
            #expect(isAligned(p, OwnedMemory.alignment) && isAligned(chunk.base, OwnedMemory.hugePageBytes))
            #expect(p >= chunk.base && p + sizes[i] <= chunk.base + WeightArena.chunkBytes)
            memset(p, Int32(i + 1), sizes[i])
        }
        for (i, (p, _)) in placed.enumerated() {
            let b = p.assumingMemoryBound(to: UInt8.self)
            #expect((0..<sizes[i]).allSatisfy { b[$0] == UInt8(i + 1) }, "buffer \(i)")
        }
        withExtendedLifetime(placed) {}
    }

    @Test func aLinearLayerKeepsAMidSizedFloatWeightInTheArena() {
        var rng = SeededRNG(seed: 5)
        let w = randomTensor([256, 512], &rng)  // 512 KiB
        let b = randomTensor([256], &rng)
        let layer = Linear(weight: w, bias: b)
        #expect(layer.weight == w)
        #expect((layer.weight.storage.owner is WeightArena.Chunk) == WeightArena.places(bytes: w.count * 4))
        // Products read it there: against the naive sum.
        let x = randomTensor([3, 512], &rng)
        let y = layer(x)
        var worst: Float = 0
        for i in 0..<3 {
            for o in 0..<256 {
                var sum = Double(b[o])
                for k in 0..<512 { sum += Double(x[i, k]) * Double(w[o, k]) }
                worst = max(worst, abs(y[i, o] - Float(sum)))
            }
        }
        #expect(worst < 1e-4)
        // The weight is read-only where it lies: a write goes to a copy.
        var copy = layer.weight
        copy.withUnsafeMutableBufferPointer { $0[0] += 1 }
        #expect(layer.weight == w && copy != w)
        // A large weight keeps its own storage (on huge pages of its own where large).
        let big = Tensor(repeating: 0.5, shape: [1024, 1024])
        #expect(Linear(weight: big, bias: nil).weight.storage.base == big.storage.base)
    }

    @Test(
        .enabled(if: TransparentHugePages.available, Comment(rawValue: TransparentHugePages.skipReason)))
    func theKernelMayBackALargeBufferWithHugePages() {
        // THPeligible in /proc/self/smaps is the kernel's decision that the mapping may hold
        // huge pages (advised, and a whole aligned 2 MiB range inside it); whether it got them
        // depends on free memory, so that is not checked.
        let bytes = 2 * OwnedMemory.hugePageMinimumBytes
        let p = OwnedMemory.allocate(bytes: bytes)
        defer { OwnedMemory.deallocate(p, bytes: bytes) }
        memset(p, 1, bytes)
        let eligible: Bool? = TransparentHugePages.eligible(UInt(bitPattern: Int(bitPattern: p)))
        #expect(eligible == true, "no mapping in /proc/self/smaps holds \(p), or it is not eligible")
    }
}

/// What this Linux kernel says about transparent huge pages.
enum TransparentHugePages {
    /// The system mode (`always`, `madvise` or `never`), nil where there is no such file.
    static let mode: String? = {
        guard let s = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
            let open = s.firstIndex(of: "["), let close = s.firstIndex(of: "]"), open < close
        else { return nil }
        return String(s[s.index(after: open)..<close])
    }()

    /// Whether this process may have huge pages (`THP_enabled` in /proc/self/status; a
    /// `prctl(PR_SET_THP_DISABLE)` turns it off).
    static let processEnabled: Bool = {
        guard let s = procFile("/proc/self/status") else { return false }
        return s.split(separator: "\n").contains { $0.hasPrefix("THP_enabled:") && $0.hasSuffix("1") }
    }()

    /// Whether /proc/self/smaps reports THPeligible per mapping.
    static let smapsReportsEligibility: Bool = {
        procFile("/proc/self/smaps")?.contains("THPeligible:") ?? false
    }()

    static var available: Bool {
        #if os(Linux)
            return (mode == "always" || mode == "madvise") && processEnabled && smapsReportsEligibility
        #else
            return false
        #endif
    }

    static var skipReason: String {
        #if os(Linux)
            "transparent huge pages are unavailable here (mode \(mode ?? "unknown"), process THP_enabled \(processEnabled), smaps THPeligible \(smapsReportsEligibility))"
        #else
            "transparent huge pages are a Linux feature"
        #endif
    }

    /// THPeligible of the mapping holding `address` in /proc/self/smaps, nil if none holds it.
    static func eligible(_ address: UInt) -> Bool? {
        guard let smaps = procFile("/proc/self/smaps") else { return nil }
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, fields.count >= 5, range.contains("-"), !range.hasSuffix(":") {
                let bounds = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = bounds.count == 2 && bounds[0] <= address && address < bounds[1]
            } else if inside, fields.first == "THPeligible:", fields.count == 2 {
                return fields[1] == "1"
            }
        }
        return nil
    }

    /// The whole text of a /proc file, read to its end with read(2): such files report size 0,
    /// and a reader that trusts the size stops at the first page.
    static func procFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
