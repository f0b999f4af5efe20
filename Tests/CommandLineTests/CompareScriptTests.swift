// Benchmarks/scripts/compare.py, the side-by-side harness: its own tests (argument parsing,
// the ratio math, a fake bench and fake peers end to end) run where python3 is installed.
import Foundation
import Testing

@Suite("compare.py, the side-by-side harness")
struct CompareScriptTests {
    /// <root>/Benchmarks/scripts/compare.py (this file is <root>/Tests/CommandLineTests/...).
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Benchmarks/scripts/compare.py")

    /// Whether `python3` runs (CI has it; elsewhere the test has nothing to run).
    static var hasPython: Bool {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import sys; assert sys.version_info >= (3, 8)"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        do { try probe.run() } catch { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }

    /// Runs compare.py with `arguments`: exit status and stdout + stderr.
    func compare(_ arguments: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.script.path] + arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    @Test("--self-test passes: argument parsing, ratios, a fake bench and peers end to end")
    func selfTest() throws {
        #expect(FileManager.default.fileExists(atPath: Self.script.path))
        guard Self.hasPython else { return }
        let (status, text) = try compare(["--self-test"])
        #expect(status == 0, "\(text)")
        #expect(text.contains("test_gemm_with_fakes") && text.contains("\nOK"), "\(text)")
    }

    @Test("a wrong command line is refused with status 2 before anything runs")
    func refusals() throws {
        guard Self.hasPython else { return }
        for bad in [["--rounds", "0"], ["--threads", "1,x"], ["--only", "softmax"]] {
            let (status, text) = try compare(bad)
            #expect(status == 2, "\(bad): \(text)")
            #expect(text.contains("usage: compare.py"), "\(bad): \(text)")
        }
    }
}
