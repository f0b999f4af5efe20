// Seeded mutation fuzzing: thousands of corrupted variants of valid files must each either load
// (and then read every tensor without trouble) or throw a SafeTensorsError, never crash.
// Parsed from exact-size heap buffers, so a debug build traps on any out-of-bounds index into
// the bytes (UnsafeRawBufferPointer checks its bounds in debug builds); a slice of the cases
// also goes through real files and mmap.
import AttendTestSupport
import Foundation
import Testing

@testable import Attend

@Suite("SafeTensorsFile: fuzz")
struct FuzzTests {
    struct Outcome {
        var loaded = 0
        var rejected = 0
        var tensorsRead = 0
    }

    /// Parses `bytes` and, if they load, reads every tensor both ways.
    static func exercise(_ bytes: [UInt8], url: URL, outcome: inout Outcome, viaFile: Bool) {
        do {
            let file: SafeTensorsFile
            if viaFile {
                try Data(bytes).write(to: url)
                file = try SafeTensorsFile(contentsOf: url)
            } else {
                file = try SafeTensorsFile(url: url, path: url.path, bytes: MappedFileBytes(copying: bytes))
            }
            outcome.loaded += 1
            for name in file.tensorNames {
                let info = file.info(name)!
                precondition(info.byteRange.upperBound <= bytes.count && info.byteRange.lowerBound >= 8)
                if let t = try? file.tensor(name) {
                    precondition(t.shape == info.shape)
                    outcome.tensorsRead += 1
                }
                _ = try? file.integers(name)
            }
        } catch is SafeTensorsError {
            outcome.rejected += 1
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    /// One random corruption of `base`.
    static func mutate(_ base: [UInt8], rng: inout SeededRNG) -> [UInt8] {
        var b = base
        let headerEnd = min(b.count, 8 + Int(b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } & 0xFFFF))
        let rounds = Int.random(in: 1...4, using: &rng)
        for _ in 0..<rounds {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0, 1, 2:  // flip a bit, mostly in the header
                guard !b.isEmpty else { continue }
                let inHeader = Bool.random(using: &rng) && headerEnd > 0
                let i = inHeader ? Int.random(in: 0..<min(headerEnd, b.count), using: &rng) : Int.random(in: 0..<b.count, using: &rng)
                b[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            case 3:  // truncate
                b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
            case 4:  // append junk
                b += (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 5:  // change the header length
                guard b.count >= 8 else { continue }
                let old = b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                let choices: [UInt64] = [
                    0, 1, old &+ 1, old &- 1, old &+ 8, old &- 8, UInt64(b.count), UInt64(b.count - 8),
                    100_000_000, 100_000_001, .max, UInt64.random(in: 0...UInt64(b.count) * 2, using: &rng),
                    UInt64.random(in: 0...UInt64.max, using: &rng),
                ]
                let n = choices.randomElement(using: &rng)!
                withUnsafeBytes(of: n.littleEndian) { for k in 0..<8 { b[k] = $0[k] } }
            case 6:  // overwrite a header byte with JSON-significant punctuation or a digit
                guard headerEnd > 8, b.count > 8 else { continue }
                let i = Int.random(in: 8..<min(headerEnd, b.count), using: &rng)
                b[i] = Array("{}[],:\"\\-0123456789eE. \u{0}".utf8).randomElement(using: &rng)!
            case 7:  // delete or duplicate a run of header bytes
                guard headerEnd > 9, b.count > 9 else { continue }
                let i = Int.random(in: 8..<min(headerEnd, b.count), using: &rng)
                let len = Int.random(in: 1...min(8, b.count - i), using: &rng)
                if Bool.random(using: &rng) {
                    b.removeSubrange(i..<(i + len))
                } else {
                    b.insert(contentsOf: b[i..<(i + len)], at: i)
                }
            case 8:  // grow a number in the header (shapes and offsets)
                guard headerEnd > 8, b.count > 8 else { continue }
                let digits = (8..<min(headerEnd, b.count)).filter { b[$0] >= 0x30 && b[$0] <= 0x39 }
                guard let i = digits.randomElement(using: &rng) else { continue }
                let extra = Array(String(UInt64.random(in: 0...UInt64.max, using: &rng)).utf8.prefix(Int.random(in: 1...20, using: &rng)))
                b.insert(contentsOf: extra, at: i)
            default:  // random byte anywhere
                guard !b.isEmpty else { continue }
                b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
        }
        return b
    }

    @Test(arguments: [
        ("dtypes.safetensors", 1500),
        ("sharded/model-00001-of-00002.safetensors", 1500),
        ("edge/unordered_escaped.safetensors", 1000),
        ("edge/scalar_and_empty.safetensors", 1000),
    ])
    func mutationsNeverCrash(fixture: String, iterations: Int) throws {
        let base = try Fixtures.bytes(fixture)
        var rng = SeededRNG(seed: caseSeed(fixture.utf8.reduce(0) { $0 &* 31 &+ Int($1) }, iterations))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("fuzz.safetensors")

        var outcome = Outcome()
        for i in 0..<iterations {
            let mutated = FuzzTests.mutate(base, rng: &rng)
            FuzzTests.exercise(mutated, url: url, outcome: &outcome, viaFile: i % 10 == 0)
        }
        // Both outcomes happen: the loop explores valid and invalid files (\(rng)).
        #expect(outcome.loaded + outcome.rejected == iterations)
        #expect(outcome.loaded > 0, "no mutation of \(fixture) loaded (\(rng))")
        #expect(outcome.rejected > iterations / 4, "too few rejections for \(fixture) (\(rng))")
    }

    /// The unmutated fixtures load, from memory and from disk alike.
    @Test func baseFilesLoad() throws {
        for name in ["dtypes.safetensors", "mha.safetensors", "edge/unordered_escaped.safetensors"] {
            let bytes = try Fixtures.bytes(name)
            let a = try SafeTensorsFile(url: Fixtures.url(name), path: name, bytes: MappedFileBytes(copying: bytes))
            let b = try SafeTensorsFile(contentsOf: Fixtures.url(name))
            #expect(a.tensorNames == b.tensorNames)
            for t in a.tensorNames { #expect(a.info(t) == b.info(t)) }
        }
    }
}
