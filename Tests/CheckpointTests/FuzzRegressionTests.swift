// Inputs that made the libFuzzer target FuzzSafeTensors (Tests/Fuzz) fail, each fixed in the
// reader and kept here (and in Tests/Fuzz/Corpus/FuzzSafeTensors as crash-*) so the bug stays
// fixed. The harness reads an input as a whole file and, when it starts with `{`, as header
// JSON up to the first NUL followed by the data; `harnessFiles` rebuilds both.
import Foundation
import Testing

@testable import Attend

/// The files the fuzz harness builds from one input (see FuzzSafeTensors.swift).
func harnessFiles(_ input: [UInt8]) -> [[UInt8]] {
    var files = [input]
    if input.first == UInt8(ascii: "{") {
        let end = input.firstIndex(of: 0) ?? input.count
        var file: [UInt8] = []
        withUnsafeBytes(of: UInt64(end).littleEndian) { file.append(contentsOf: $0) }
        file += input[..<end]
        if end < input.count { file += input[(end + 1)...] }
        files.append(file)
    }
    return files
}

@Suite("SafeTensorsFile: inputs found by fuzzing")
struct SafeTensorsFuzzRegressionTests {
    /// The harness's checks on a rejected file: a one-line message starting with the name.
    func rejection(_ bytes: [UInt8]) -> SafeTensorsError? {
        let error = safeTensorsError { _ = try SafeTensorsFile(bytes: bytes, name: "fuzz.safetensors") }
        if let error {
            #expect(error.description.hasPrefix("fuzz.safetensors: "))
            #expect(!error.description.contains("\n") && !error.description.contains("\r"), "\(error.description)")
        }
        return error
    }

    /// crash-escape-cr: a backslash followed by a carriage return in a key. The message quoted
    /// the escaped byte raw ("invalid escape '\<CR>'"), breaking the one-line rule; control and
    /// non-ASCII bytes are now named by value.
    @Test func invalidEscapeOfAControlByteIsNamedByValue() throws {
        let input: [UInt8] = [0x7B, 0x22, 0x60, 0x5C, 0x5C, 0x5C, 0x5C, 0x5C, 0x0D]  // {"`\\\\\<CR>
        let files = harnessFiles(input)
        #expect(rejection(files[0]) != nil)
        #expect(
            rejection(files[1])
                == .invalidJSON(
                    file: "fuzz.safetensors", offset: 15, reason: "invalid escape '\\' + byte 0xd"))

        let second: [UInt8] = [0x7B, 0x22, 0x5C, 0x5C, 0x5C, 0x0D, 0, 0, 0, 0, 0, 0, 0, 0]  // {"\\\<CR> NUL...
        #expect(
            rejection(harnessFiles(second)[1])
                == .invalidJSON(
                    file: "fuzz.safetensors", offset: 12, reason: "invalid escape '\\' + byte 0xd"))
        // A newline, a non-ASCII byte and a printable character after the backslash.
        for (byte, shown) in [(UInt8(0x0A), "'\\' + byte 0xa"), (0xC3, "'\\' + byte 0xc3"), (0x78, "'\\x'")] {
            var header: [UInt8] = Array(#"{"a\"#.utf8) + [byte]
            if byte == 0xC3 { header.append(0xA9) }  // keep the header valid UTF-8
            header += Array(#"":1}"#.utf8)
            let error = rejection(harnessFiles(header)[1])
            #expect(error == .invalidJSON(file: "fuzz.safetensors", offset: 11, reason: "invalid escape \(shown)"))
        }
    }

    /// Every crash input in the fuzz corpus (Tests/Fuzz/Corpus/FuzzSafeTensors/crash-*) loads
    /// or throws a one-line SafeTensorsError.
    @Test func crashInputsOfTheCorpus() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/Corpus/FuzzSafeTensors")
        let names = try FileManager.default.contentsOfDirectory(atPath: corpus.path).filter { $0.hasPrefix("crash-") }
        #expect(!names.isEmpty)
        for name in names {
            let input = Array(try Data(contentsOf: corpus.appendingPathComponent(name)))
            for file in harnessFiles(input) {
                if let loaded = try? SafeTensorsFile(bytes: file, name: "fuzz.safetensors") {
                    for t in loaded.tensorNames { _ = try? loaded.tensor(t); _ = try? loaded.integers(t) }
                } else {
                    _ = rejection(file)
                }
            }
        }
    }
}
