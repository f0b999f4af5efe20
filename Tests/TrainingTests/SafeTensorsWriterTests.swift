import Foundation
import Testing
import AttendTestSupport
@testable import Attend

@Suite struct SafeTensorsWriterTests {
    static func temporaryFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-writer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The tensors make_optim_fixtures.py saved with `safetensors.torch.save_file`.
    static func pythonTensors() -> ParameterSet {
        ParameterSet([
            ("b.weight", Tensor(shape: [3, 4], scalars: (0..<12).map { Float($0) / 8 - 0.5 })),
            ("a", Tensor(shape: [3], scalars: [1.5, -0.0, .infinity])),
            ("quote\"back\\slash", Tensor(shape: [], scalars: [3.25])),
            ("new\nline\ttab\u{1}", Tensor.zeros([0, 2])),
            ("caf\u{e9}.\u{4e2d}", Tensor(shape: [2, 1], scalars: [1e-30, -7])),
        ])
    }

    /// Byte for byte the file the Python `safetensors` package writes for the same tensors
    /// (sorted names, escapes, a scalar, an empty tensor, padding) and metadata.
    @Test func writesTheBytesOfThePythonPackage() throws {
        let want = try [UInt8](Data(contentsOf: OptimFixtures.url("written_by_python.safetensors")))
        let got = try SafeTensorsWriter.encode(Self.pythonTensors(), metadata: ["format": "pt"])
        #expect(got.count == want.count)
        if got != want {
            let i = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
            Issue.record("first different byte at \(i): \(String(decoding: got.prefix(i + 20).suffix(60), as: UTF8.self))")
        }
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("out.safetensors")
        try SafeTensorsWriter.write(Self.pythonTensors(), metadata: ["format": "pt"], to: url)
        #expect(try [UInt8](Data(contentsOf: url)) == want)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.safetensors"])
    }

    /// Several metadata keys: the reference writer's order varies from run to run (a hash
    /// map); Attend sorts them. Same parsed content, same length, same tensor bytes.
    @Test func metadataMatchesThePythonPackageAfterParsing() throws {
        let url = OptimFixtures.url("written_by_python_metadata.safetensors")
        let python = try SafeTensorsFile(contentsOf: url)
        let metadata = ["format": "pt", "z": "last", "a key": "x\"y\u{e9}\n"]
        #expect(python.metadata == metadata)
        let bytes = try SafeTensorsWriter.encode(Self.pythonTensors(), metadata: metadata)
        let ours = try SafeTensorsFile(bytes: bytes)
        #expect(ours.metadata == metadata && ours.tensorNames == python.tensorNames)
        #expect(bytes.count == (try Data(contentsOf: url)).count)
        for name in python.tensorNames {
            #expect(ours.info(name)?.shape == python.info(name)?.shape)
            #expect(ours.info(name)?.byteRange == python.info(name)?.byteRange)
            expectBitwise(try ours.tensor(name), try python.tensor(name), name)
        }
        let header = String(decoding: bytes, as: UTF8.self)
        #expect(header.contains("{\"__metadata__\":{\"a key\":\"x\\\"y\u{e9}\\n\",\"format\":\"pt\",\"z\":\"last\"},"))
    }

    /// What the writer writes, the reader reads back: names, shapes, values bit for bit
    /// (NaN payloads, signed zeros, subnormals), metadata, 8-byte aligned data.
    @Test func roundTripsThroughTheReader() throws {
        var rng = SeededRNG(seed: 42)
        var set = ParameterSet()
        let special: [Float] = [.nan, -.nan, Float(bitPattern: 0x7FC0_1234), -0.0, .leastNonzeroMagnitude, -.infinity, .greatestFiniteMagnitude]
        set["z.special"] = Tensor(shape: [special.count], scalars: special)
        for (i, shape) in [[3, 5], [1], [], [2, 0, 3], [4, 1, 2]].enumerated() {
            set["layer.\(i).weight"] = Tensor(shape: shape) { _ in Float.random(in: -2...2, using: &rng) }
        }
        for metadata in [[:], ["k": "v", "empty": "", "\u{7f}ctl\u{2}": "\\"]] {
            let bytes = try SafeTensorsWriter.encode(set, metadata: metadata)
            let n = Int(UInt64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
            #expect(n % 8 == 0 && bytes[8 + n - 1] != 0)
            let file = try SafeTensorsFile(bytes: bytes)
            #expect(file.metadata == metadata)
            #expect(file.tensorNames == set.names.sorted())
            for (name, t) in set.entries {
                let info = try #require(file.info(name))
                #expect(info.dtype == .F32 && info.byteRange.lowerBound % 4 == 0)
                #expect(bitwiseEqual(try file.tensor(name).scalars, t.scalars), "\(name)")
                #expect(try file.tensor(name).shape == t.shape)
            }
        }
        let empty = try SafeTensorsFile(bytes: try SafeTensorsWriter.encode(ParameterSet()))
        #expect(empty.tensorNames.isEmpty && empty.metadata.isEmpty)
    }

    @Test func writeErrorsNameTheFileAndLeaveNothing() throws {
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let set = ParameterSet([("w", Tensor(repeating: 1, shape: [4]))])
        let missing = dir.appendingPathComponent("no/such/folder/x.safetensors")
        #expect { try SafeTensorsWriter.write(set, to: missing) } throws: {
            guard case .unwritable(let f, _)? = $0 as? SafeTensorsError else { return false }
            return f == missing.path
        }
        let url = dir.appendingPathComponent("x.safetensors")
        try SafeTensorsWriter.write(set, to: url)
        let reserved = ParameterSet([("__metadata__", Tensor.zeros([1]))])
        #expect { try SafeTensorsWriter.write(reserved, to: url) } throws: {
            ($0 as? SafeTensorsError)?.description.contains("__metadata__") == true
        }
        // The failed write left the earlier file as it was, and no temporary file.
        #expect(try SafeTensorsFile(contentsOf: url).tensor("w").scalars == [1, 1, 1, 1])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["x.safetensors"])
        // Replacing works (rename over the old file).
        try SafeTensorsWriter.write(ParameterSet([("v", Tensor.zeros([2]))]), to: url)
        #expect(try SafeTensorsFile(contentsOf: url).tensorNames == ["v"])
        // A folder in the way is an error, not a crash.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("d"), withIntermediateDirectories: false)
        #expect(throws: SafeTensorsError.self) { try SafeTensorsWriter.write(set, to: dir.appendingPathComponent("d")) }
    }

    /// The Python `safetensors` package loads what Attend writes (run only where python3 can
    /// import safetensors and numpy; the byte comparison above covers the format otherwise).
    @Test func pythonReadsTheFile() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import safetensors.numpy, numpy"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        do { try probe.run() } catch { return }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { return }
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("attend.safetensors")
        try SafeTensorsWriter.write(Self.pythonTensors(), metadata: ["format": "pt", "by": "attend"], to: url)
        let script = """
            import sys, numpy as np
            from safetensors import safe_open
            with safe_open(sys.argv[1], "numpy") as f:
                assert f.metadata() == {"format": "pt", "by": "attend"}, f.metadata()
                t = {k: f.get_tensor(k) for k in f.keys()}
            assert (t["b.weight"] == np.arange(12, dtype=np.float32).reshape(3, 4) / 8 - 0.5).all()
            assert t["quote\\"back\\\\slash"].shape == () and t["new\\nline\\ttab\\x01"].shape == (0, 2)
            assert t["caf\\u00e9.\\u4e2d"][1, 0] == -7 and np.signbit(t["a"][1])
            print("ok")
            """
        let run = Process()
        run.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        run.arguments = ["python3", "-c", script, url.path]
        let out = Pipe()
        run.standardOutput = out
        run.standardError = out
        try run.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        run.waitUntilExit()
        #expect(run.terminationStatus == 0 && text.contains("ok"), "\(text)")
    }
}
