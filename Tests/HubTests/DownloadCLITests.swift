// `attend download` against the local Hub: the environment variables huggingface_hub reads
// (HF_ENDPOINT, HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE), --to, and --model taking the cache
// folder models--ORG--NAME.
import AttendTestSupport
import Foundation
import Testing

@Suite("attend download")
struct DownloadCLITests {
    static func run(_ arguments: [String], environment: [String: String]) throws -> ChildResult {
        let tool = builtProduct("attend", besides: Bundle.module)
        try #require(FileManager.default.isExecutableFile(atPath: tool), "the attend executable is not built at \(tool)")
        return try runChild(tool, arguments, timeout: 120, environment: environment)
    }

    @Test func downloadCopyAndLoadFromTheCache() throws {
        let hub = try LocalHub(folder: DownloadTests.fixture)
        let scratch = try DownloadTests.scratch()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let cache = scratch.appendingPathComponent("hub")
        let env = ["HF_ENDPOINT": hub.endpoint.absoluteString, "HF_HUB_CACHE": cache.path, "HF_TOKEN": "hf_cli", "HF_HUB_OFFLINE": "0"]

        // Offline with an empty cache: one error line, exit 1, no request.
        var offline = env
        offline["HF_HUB_OFFLINE"] = "1"
        let missing = try Self.run(["download", "acme/tiny-bert"], environment: offline)
        #expect(missing.status == 1 && missing.stderr.hasPrefix("attend: acme/tiny-bert at revision main is not in the cache"), "\(missing)")
        #expect(missing.stderr.split(separator: "\n").count == 1 && hub.log.isEmpty)

        let out = scratch.appendingPathComponent("folder")
        let r = try Self.run(["download", "acme/tiny-bert", "--to", out.path], environment: env)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout == out.path + "\n")
        #expect(r.stderr.contains("attend: fetching model.safetensors (355.7 kB)"), "\(r.stderr)")
        #expect(hub.log.allSatisfy { $0.headers["authorization"] == "Bearer hf_cli" })
        for name in DownloadTests.modelFiles {
            #expect(FileManager.default.contents(atPath: out.appendingPathComponent(name).path) == hub.file(name).data, "\(name)")
        }

        // Again, offline: the snapshot folder, nothing fetched.
        let again = try Self.run(["download", "acme/tiny-bert"], environment: offline)
        #expect(again.status == 0 && again.stderr.isEmpty, "\(again)")
        let snapshot = cache.appendingPathComponent("models--acme--tiny-bert/snapshots/\(hub.commit)").path
        #expect(again.stdout == snapshot + "\n")

        // --model takes the snapshot, the cache folder, the id and the plain copy alike.
        var outputs: [String] = []
        for folder in [snapshot, cache.appendingPathComponent("models--acme--tiny-bert").path, "acme/tiny-bert", out.path] {
            let e = try Self.run(["embed", "--model", folder, "--json", "w1 w2 w3"], environment: offline)
            #expect(e.status == 0, "\(folder): \(e)")
            outputs.append(e.stdout)
        }
        #expect(Set(outputs).count == 1 && !outputs[0].isEmpty)
    }

    @Test func usageErrors() throws {
        for args in [["download"], ["download", "a/b", "c/d"], ["download", "a/b", "--model", "x"], ["download", "a/b", "--revision"]] {
            let r = try Self.run(args, environment: ["HF_HUB_OFFLINE": "1"])
            #expect(r.status == 2 && r.stderr.hasSuffix("Run 'attend download --help' for usage.\n"), "\(args): \(r)")
        }
        let bad = try Self.run(["download", "../etc"], environment: ["HF_HUB_OFFLINE": "1"])
        #expect(bad.status == 1 && bad.stderr.contains("is not a Hub model id"), "\(bad)")
    }
}
