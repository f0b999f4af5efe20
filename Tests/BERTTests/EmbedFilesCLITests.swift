// `attend embed --input FILE --output OUT.npy|OUT.jsonl`: the files equal `attend embed --json`,
// the .npy loads with numpy, --resume after a cut-off file gives the full run's file, memory
// stays flat as the input grows, --max-length cuts texts, and the errors of a wrong command
// line or output. Models: Fixtures/sentence_bert (a copy of HostileInputTests/Fixtures/bert: a
// sentence-transformers folder around a 2-layer BERT, dimension 64, words w0 ... w114) and
// Fixtures/fill_mask (dimension 32).
import AttendTestSupport
import Dispatch
import Foundation
import Testing

@Suite("attend embed --output")
struct EmbedFilesCLITests {
    static var model: String { Fixtures.url("sentence_bert").path }

    /// Runs `attend` and waits for it on a Dispatch thread, not on one of Swift's cooperative
    /// threads: these runs take seconds, and the other suites' async tests (streams whose
    /// producer and consumer share that small pool) must not starve meanwhile.
    static func run(_ arguments: [String], stdin: Data? = nil, timeout: Double = 300) async throws -> ChildResult {
        let tool = builtProduct("attend", besides: Bundle.module)
        try #require(FileManager.default.isExecutableFile(atPath: tool), "the attend executable is not built at \(tool)")
        return try await offPool { try runChild(tool, arguments, stdin: stdin, timeout: timeout) }
    }

    /// `body` on a Dispatch thread, awaited.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// A fresh scratch folder.
    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-embed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// `count` texts of the fixture's words, of 1 to `maxWords` words (an empty one among them).
    static func texts(_ count: Int, maxWords: Int = 12) -> [String] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        return (0..<count).map { i in
            i == 3 ? "" : (0..<(1 + next() % maxWords)).map { _ in "w\(next() % 115)" }.joined(separator: " ")
        }
    }

    /// `{"text": ...}` for `--input-format jsonl`.
    static func jsonString(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: ["text": text]), as: UTF8.self)
    }

    static func write(_ texts: [String], to url: URL) throws {
        try Data(texts.map { $0 + "\n" }.joined().utf8).write(to: url)
    }

    /// Parses a .npy file as written by `attend embed` (format 1.0, '<f4', C order, 2-D).
    static func readNPY(_ url: URL) throws -> (rows: Int, dim: Int, values: [Float]) {
        let data = try Data(contentsOf: url)
        try #require(data.count >= 10 && Array(data.prefix(6)) == [0x93] + Array("NUMPY".utf8), "\(url.path) is not .npy")
        #expect(data[6] == 1 && data[7] == 0, "version 1.0")
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        #expect((10 + headerLength) % 64 == 0, "the data starts 64-byte aligned")
        let header = String(decoding: data[10..<(10 + headerLength)], as: UTF8.self)
        #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': ("), "\(header)")
        #expect(header.hasSuffix("\n"))
        let shape = header.split(separator: "(")[1].split(separator: ")")[0].split(separator: ",").map {
            Int($0.trimmingCharacters(in: .whitespaces))!
        }
        let body = data.dropFirst(10 + headerLength)
        let values = body.withUnsafeBytes { raw in
            (0..<(body.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        return (shape[0], shape[1], values)
    }

    /// The `--json` lines of a .jsonl output (or of `attend embed --json`).
    static func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    static func embedding(_ o: [String: Any]) -> [Float] { (o["embedding"] as! [Double]).map { Float($0) } }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    /// The peak memory the summary line reports, in MiB.
    static func summaryPeak(_ stderr: String) throws -> Double {
        let line = try #require(stderr.split(separator: "\n").last { $0.hasPrefix("attend: embedded") }, "no summary in \(stderr)")
        let words = line.components(separatedBy: "peak memory ")
        try #require(words.count == 2, "\(line)")
        return try #require(Double(words[1].split(separator: " ")[0]), "\(line)")
    }

    /// Whether python3 with numpy can be run.
    static let numpyAvailable: Bool = {
        (try? runChild("/usr/bin/env", ["python3", "-c", "import numpy"], timeout: 60))?.status == 0
    }()

    @Test(".npy and .jsonl hold what `attend embed --json` prints, in input order; np.load reads the .npy")
    func filesMatchJSON() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let texts = Self.texts(150)
        let input = dir.appendingPathComponent("in.txt")
        try Self.write(texts, to: input)
        let npy = dir.appendingPathComponent("out.npy"), jsonl = dir.appendingPathComponent("out.jsonl")
        // Batches of 4 in windows of 64 texts: three windows, each sorted by length.
        let a = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", npy.path, "--batch-size", "4"])
        #expect(a.status == 0 && a.stdout.isEmpty, "\(a)")
        #expect(a.stderr.contains("attend: embedded 150 texts"), "\(a.stderr)")
        _ = try Self.summaryPeak(a.stderr)
        // Standard input ("-"), the other format.
        let b = try await Self.run(
            ["embed", "--model", Self.model, "--input", "-", "--output", jsonl.path], stdin: try Data(contentsOf: input))
        #expect(b.status == 0, "\(b)")

        // --input-format jsonl: {"text": ...} per line, blank lines skipped: the same rows.
        let jsonInput = dir.appendingPathComponent("in.jsonl"), fromJSON = dir.appendingPathComponent("json.npy")
        try Data(texts.map { Self.jsonString($0) + "\n\n" }.joined().utf8).write(to: jsonInput)
        let c = try await Self.run(
            ["embed", "--model", Self.model, "--input", jsonInput.path, "--input-format", "jsonl", "--output", fromJSON.path, "--batch-size", "4"])
        #expect(c.status == 0 && c.stderr.contains("attend: embedded 150 texts"), "\(c)")
        #expect(try Data(contentsOf: fromJSON) == Data(contentsOf: npy), "jsonl input gives the same file")

        let reference = try await Self.run(["embed", "--model", Self.model, "--json", "--"] + texts)
        #expect(reference.status == 0, "\(reference)")
        let want = try Self.jsonLines(reference.stdout)
        try #require(want.count == texts.count)

        let (rows, dim, values) = try Self.readNPY(npy)
        #expect(rows == texts.count && dim == 64 && values.count == rows * dim)
        let lines = try Self.jsonLines(try String(contentsOf: jsonl, encoding: .utf8))
        try #require(lines.count == texts.count)
        for (i, w) in want.enumerated() {
            let v = Self.embedding(w)
            #expect(Self.maxDifference(Array(values[(i * dim)..<((i + 1) * dim)]), v) <= 1e-5, "npy row \(i)")
            #expect(lines[i]["text"] as? String == texts[i], "jsonl line \(i + 1)")
            #expect(lines[i]["ids"] as? [Int] == w["ids"] as? [Int], "jsonl line \(i + 1)")
            #expect(Self.maxDifference(Self.embedding(lines[i]), v) <= 1e-5, "jsonl line \(i + 1)")
        }

        if Self.numpyAvailable {
            let script = "import numpy as np, sys; a = np.load(sys.argv[1]); print(a.dtype, a.shape, repr(float(a[1, 2])))"
            let r = try await Self.offPool { try runChild("/usr/bin/env", ["python3", "-c", script, npy.path], timeout: 60) }
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout.hasPrefix("float32 (150, 64) "), "\(r.stdout)")
            let x = Double(r.stdout.split(separator: " ").last!.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(x == Double(values[1 * 64 + 2]), "\(r.stdout)")
        }
    }

    @Test("an empty input gives a (0, dimension) .npy and an empty .jsonl")
    func emptyInput() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let npy = dir.appendingPathComponent("e.npy"), jsonl = dir.appendingPathComponent("e.jsonl")
        for out in [npy, jsonl] {
            let r = try await Self.run(["embed", "--model", Self.model, "--output", out.path], stdin: Data())
            #expect(r.status == 0, "\(r)")
        }
        let (rows, dim, values) = try Self.readNPY(npy)
        #expect(rows == 0 && dim == 64 && values.isEmpty)
        #expect(try Data(contentsOf: jsonl).isEmpty)
    }

    @Test("--resume after a cut-off .npy (a partial row, a stale header count) gives the full run's rows")
    func resumeNPY() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let texts = Self.texts(300)
        let input = dir.appendingPathComponent("in.txt")
        try Self.write(texts, to: input)
        let full = dir.appendingPathComponent("full.npy")
        let r = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", full.path, "--batch-size", "4"])
        #expect(r.status == 0, "\(r)")
        let whole = try Self.readNPY(full)
        let data = try Data(contentsOf: full)
        let rowBytes = 64 * 4
        // Cut after 70.5 rows; the header still says 300 (a count ahead of the data), or, in
        // the second copy, 64 (a run killed after its first window, before the header update).
        for (name, headerRows) in [("ahead", 300), ("stale", 64)] {
            let cut = dir.appendingPathComponent("\(name).npy")
            var bytes = Data(data.prefix(128 + 70 * rowBytes + rowBytes / 2))
            let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(headerRows), 64), }"
            let padded = header + String(repeating: " ", count: 117 - header.utf8.count) + "\n"
            bytes.replaceSubrange(10..<128, with: Data(padded.utf8))
            try bytes.write(to: cut)
            let again = try await Self.run(
                ["embed", "--model", Self.model, "--input", input.path, "--output", cut.path, "--resume", "--batch-size", "4"])
            #expect(again.status == 0, "\(again)")
            #expect(again.stderr.contains("embedded 230 texts") && again.stderr.contains("resumed after 70 rows"), "\(again.stderr)")
            let resumed = try Self.readNPY(cut)
            #expect(resumed.rows == 300 && resumed.dim == 64 && resumed.values.count == whole.values.count, "\(name)")
            #expect(Self.maxDifference(resumed.values, whole.values) <= 1e-5, "\(name)")
            #expect(resumed.values.prefix(70 * 64) == whole.values.prefix(70 * 64), "\(name): the kept rows are untouched")
        }
        // Resuming a complete file adds nothing.
        let done = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", full.path, "--resume"])
        #expect(done.status == 0 && done.stderr.contains("embedded 0 texts"), "\(done)")
        #expect(try Data(contentsOf: full) == data)
    }

    @Test("--resume after a .jsonl cut in the middle of a line gives the full run's lines")
    func resumeJSONL() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let texts = Self.texts(200)
        let input = dir.appendingPathComponent("in.txt")
        try Self.write(texts, to: input)
        let full = dir.appendingPathComponent("full.jsonl"), cut = dir.appendingPathComponent("cut.jsonl")
        let r = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", full.path, "--batch-size", "8"])
        #expect(r.status == 0, "\(r)")
        let data = try Data(contentsOf: full)
        let newlines = data.indices.filter { data[$0] == 0x0A }
        try #require(newlines.count == 200)
        try data.prefix(newlines[122] + 40).write(to: cut)  // 123 lines and 39 bytes of the next
        let again = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", cut.path, "--resume"])
        #expect(again.status == 0, "\(again)")
        #expect(again.stderr.contains("embedded 77 texts") && again.stderr.contains("resumed after 123 rows"), "\(again.stderr)")
        let want = try Self.jsonLines(String(decoding: data, as: UTF8.self))
        let got = try Self.jsonLines(try String(contentsOf: cut, encoding: .utf8))
        try #require(got.count == want.count)
        for (g, w) in zip(got, want) {
            #expect(g["text"] as? String == w["text"] as? String)
            #expect(g["ids"] as? [Int] == w["ids"] as? [Int])
            #expect(Self.maxDifference(Self.embedding(g), Self.embedding(w)) <= 1e-5)
        }
        // Another input under the same output: its text 123 differs.
        let other = dir.appendingPathComponent("other.txt")
        try Self.write(Self.texts(300, maxWords: 3), to: other)
        try data.prefix(newlines[122] + 1).write(to: cut)
        let wrong = try await Self.run(["embed", "--model", Self.model, "--input", other.path, "--output", cut.path, "--resume"])
        #expect(wrong.status == 2 && wrong.stderr.contains("line 123 of") && wrong.stderr.contains("another input"), "\(wrong)")
        // An input shorter than the output.
        let short = dir.appendingPathComponent("short.txt")
        try Self.write(Array(texts.prefix(10)), to: short)
        let shorter = try await Self.run(["embed", "--model", Self.model, "--input", short.path, "--output", cut.path, "--resume"])
        #expect(shorter.status == 2 && shorter.stderr.contains("holds 123 rows but the input has only 10 texts"), "\(shorter)")
    }

    @Test("memory stays flat: 20000 texts peak within a few MiB of 1000 texts (summary and measured)")
    func boundedMemory() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        var peaks: [(summary: Double, measuredMiB: Double)] = []
        for count in [1000, 20_000] {
            let input = dir.appendingPathComponent("in\(count).txt")
            try Self.write(Self.texts(count, maxWords: 2), to: input)
            let out = dir.appendingPathComponent("out\(count).npy")
            let r = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", out.path], timeout: 900)
            #expect(r.status == 0, "\(r)")
            #expect(try Self.readNPY(out).rows == count)
            peaks.append((try Self.summaryPeak(r.stderr), Double(r.peakRSSKiB) / 1024))
        }
        // Holding 20000 encodings and vectors at once would add well over 8 MiB.
        #expect(peaks[1].summary <= peaks[0].summary + 4, "\(peaks)")
        #expect(peaks[1].measuredMiB <= peaks[0].measuredMiB + 4, "\(peaks)")
        #expect(peaks[1].summary < 200, "\(peaks)")
    }

    @Test("--batch-size as large as an Int holds: one window, the same rows as the default batches (no overflow)")
    func hugeBatchSize() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.txt")
        try Self.write(Self.texts(40), to: input)
        let huge = dir.appendingPathComponent("huge.npy"), usual = dir.appendingPathComponent("usual.npy")
        let a = try await Self.run(
            ["embed", "--model", Self.model, "--input", input.path, "--output", huge.path, "--batch-size", "9223372036854775807"])
        #expect(a.status == 0 && a.stderr.contains("attend: embedded 40 texts"), "\(a)")
        let b = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", usual.path])
        #expect(b.status == 0, "\(b)")
        let (x, y) = (try Self.readNPY(huge), try Self.readNPY(usual))
        #expect(x.rows == 40 && y.rows == 40 && Self.maxDifference(x.values, y.values) <= 1e-5)
    }

    @Test("--max-length N cuts texts to N tokens on embed and similarity; too small a limit is an error")
    func maxLength() async throws {
        let text = "w1 w2 w3 w4 w5 w6"
        let cut = try await Self.run(["embed", "--model", Self.model, "--json", "--max-length", "4", text])
        #expect(cut.status == 0, "\(cut)")
        let short = try await Self.run(["embed", "--model", Self.model, "--json", "w1 w2"])
        let a = try Self.jsonLines(cut.stdout)[0], b = try Self.jsonLines(short.stdout)[0]
        #expect((a["ids"] as? [Int])?.count == 4)
        #expect(a["ids"] as? [Int] == b["ids"] as? [Int], "[CLS] w1 w2 [SEP]")
        #expect(Self.maxDifference(Self.embedding(a), Self.embedding(b)) <= 1e-6)
        let sims = try await Self.run(["similarity", "--model", Self.model, "--json", "--max-length", "4", text, "w1 w2"])
        #expect(sims.status == 0, "\(sims)")
        let row = try #require(try Self.jsonLines(sims.stdout)[0]["similarity"] as? [Double])
        #expect(abs(row[1] - 1) <= 1e-5, "\(row)")
        let tiny = try await Self.run(["embed", "--model", Self.model, "--max-length", "2", text])
        #expect(tiny.status == 2 && tiny.stderr.contains("--max-length 2 leaves no room"), "\(tiny)")
    }

    @Test("errors: missing input, unknown extension, another model's output, misplaced flags")
    func errors() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.txt")
        try Self.write(Self.texts(20), to: input)
        let missing = try await Self.run(["embed", "--model", Self.model, "--input", dir.appendingPathComponent("absent.txt").path, "--output", dir.appendingPathComponent("o.npy").path])
        #expect(missing.status == 2 && missing.stderr.contains("absent.txt: no such file"), "\(missing)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("o.npy").path), "nothing written")
        let same = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", input.path])
        #expect(same.status == 2 && same.stderr.contains("is the --input file"), "\(same)")
        let csv = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", dir.appendingPathComponent("o.csv").path])
        #expect(csv.status == 2 && csv.stderr.contains("o.csv: unknown extension (use .npy"), "\(csv)")

        // Written by a 32-wide model, resumed with the 64-wide one.
        for ext in ["npy", "jsonl"] {
            let out = dir.appendingPathComponent("small.\(ext)")
            let first = try await Self.run(["embed", "--model", Fixtures.url("fill_mask").path, "--input", input.path, "--output", out.path])
            #expect(first.status == 0, "\(first)")
            let before = try Data(contentsOf: out)
            let r = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", out.path, "--resume"])
            #expect(r.status == 2 && r.stderr.contains("holds vectors of dimension 32 but the model's are 64"), "\(ext): \(r)")
            #expect(try Data(contentsOf: out) == before, "\(ext): the file is left as it was")
        }
        let notNPY = dir.appendingPathComponent("text.npy")
        try Data("hello\n".utf8).write(to: notNPY)
        let bad = try await Self.run(["embed", "--model", Self.model, "--input", input.path, "--output", notNPY.path, "--resume"])
        #expect(bad.status == 2 && bad.stderr.contains("is not a .npy file"), "\(bad)")

        let cases: [([String], String)] = [
            (["embed", "--model", "M", "--resume", "a"], "--resume needs --output OUT"),
            (["embed", "--model", "M", "--output", "o.npy", "a"], "not arguments: 'a'"),
            (["embed", "--model", "M", "--output", "o.npy", "--json"], "--json does not apply with --output"),
            (["similarity", "--model", "M", "--output", "o.npy"], "--output is not an option of 'attend similarity' (it is an option of embed)"),
            (["train", "--model", "M", "--output", "o.npy"], "--output is not an option of 'attend train' (it is an option of embed)"),
        ]
        for (arguments, message) in cases {
            let r = try await Self.run(arguments)
            #expect(r.status == 2 && r.stderr.contains(message), "\(arguments): \(r)")
        }
    }
}
