// HubClient against the local Hub (LocalHub.swift): the cache layout byte for byte, no
// second transfer, resuming a dropped transfer with Range, hash checks naming the file,
// offline mode, copies into a plain folder, loading a models--ORG--NAME folder, the `attend
// download` command, and hostile listings. No test touches the internet.
import AttendTestSupport
import Foundation
import Testing

import Attend

@Suite("Hub downloads")
struct DownloadTests {
    static let fixture = Bundle.module.url(forResource: "Fixtures/bert", withExtension: nil)!
    static let modelFiles = ["1_Pooling/config.json", "config.json", "model.safetensors", "modules.json", "sentence_bert_config.json", "vocab.txt"]

    /// A scratch folder, removed by the caller's `defer`.
    static func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("attend-hub-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func client(_ hub: LocalHub, cache: URL, token: String? = nil, offline: Bool = false) -> HubClient {
        HubClient(endpoint: hub.endpoint, token: token, offline: offline, cache: HubCache(root: cache))
    }

    /// Every file under `dir` (recursively, links not followed), sorted.
    static func tree(_ dir: URL) throws -> [String] {
        try FileManager.default.subpathsOfDirectory(atPath: dir.path).sorted()
    }

    @Test func freshDownloadFillsTheCacheLayout() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        let snapshot = try Self.client(hub, cache: cache, token: "hf_test").download(repository: "acme/tiny-bert")

        let repo = cache.appendingPathComponent("models--acme--tiny-bert")
        #expect(snapshot.commit == hub.commit)
        #expect(snapshot.directory.standardizedFileURL.path == repo.appendingPathComponent("snapshots/\(hub.commit)").path)
        #expect(snapshot.files == Self.modelFiles)
        #expect(Set(snapshot.fetched) == Set(Self.modelFiles))
        // refs/main: the commit, no newline.
        #expect(try Data(contentsOf: repo.appendingPathComponent("refs/main")) == Data(hub.commit.utf8))
        // blobs/<etag>: the bytes; the LFS file under its SHA-256, the others under the git blob id.
        let fm = FileManager.default
        for name in Self.modelFiles {
            let etag = hub.etag(name)
            #expect(etag.count == (name.hasSuffix(".safetensors") ? 64 : 40))
            #expect(try Data(contentsOf: repo.appendingPathComponent("blobs/\(etag)")) == hub.file(name).data, "\(name)")
            // snapshots/<commit>/<file>: a relative link to the blob.
            let link = snapshot.directory.appendingPathComponent(name).path
            let depth = name.split(separator: "/").count
            #expect(try fm.destinationOfSymbolicLink(atPath: link) == String(repeating: "../", count: depth + 1) + "blobs/\(etag)", "\(name)")
        }
        let expectedTree =
            ["blobs", "refs", "refs/main", "snapshots", "snapshots/\(hub.commit)", "snapshots/\(hub.commit)/1_Pooling"]
            + Self.modelFiles.map { "blobs/\(hub.etag($0))" } + Self.modelFiles.map { "snapshots/\(hub.commit)/\($0)" }
        #expect(try Self.tree(repo) == expectedTree.sorted())
        // The lock folder huggingface_hub uses, one lock per blob.
        #expect(try Self.tree(cache.appendingPathComponent(".locks/models--acme--tiny-bert")) == Self.modelFiles.map { "\(hub.etag($0)).lock" }.sorted())
        // Requests: the API, then one resolve per file (plus the CDN for the LFS file), all with the token.
        let log = hub.log
        #expect(log.first?.path == "/api/models/acme/tiny-bert/revision/main?blobs=true")
        #expect(log.allSatisfy { $0.headers["authorization"] == "Bearer hf_test" })
        #expect(log.filter { $0.path.contains("/resolve/\(hub.commit)/") }.count == Self.modelFiles.count)
        #expect(log.filter { $0.path.hasPrefix("/cdn/") }.count == 1)
        #expect(!log.contains { $0.path.contains("README") || $0.path.contains("gitattributes") })
    }

    @Test func secondCallMakesNoFileRequests() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        let client = Self.client(hub, cache: cache)
        let first = try client.download(repository: "acme/tiny-bert")
        hub.clearLog()
        let second = try client.download(repository: "acme/tiny-bert")
        #expect(second.fetched.isEmpty)
        #expect(second.directory == first.directory)
        #expect(hub.fileRequests.isEmpty, "\(hub.fileRequests.map(\.path))")
        #expect(hub.log.count == 1)  // the API, for the commit of main
        // By commit: the same snapshot, no ref beside main.
        hub.clearLog()
        let byCommit = try client.download(repository: "acme/tiny-bert", revision: hub.commit)
        #expect(byCommit.directory == first.directory && hub.fileRequests.isEmpty)
        #expect(try Self.tree(cache.appendingPathComponent("models--acme--tiny-bert/refs")) == ["main"])
    }

    @Test func droppedTransferResumesWithRange() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        let client = Self.client(hub, cache: cache)
        let weights = hub.file("model.safetensors")
        hub.dropOnce("model.safetensors", after: 150_000)
        #expect {
            try client.download(repository: "acme/tiny-bert")
        } throws: { error in
            guard case .transfer(let url, _) = error as? HubError else { return false }
            return url.contains("model.safetensors")
        }
        let partial = cache.appendingPathComponent("models--acme--tiny-bert/blobs/\(weights.sha256).incomplete")
        let have = try #require(try FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? NSNumber).intValue
        #expect(have > 0 && have <= 150_000 && have < weights.data.count)
        #expect(try Data(contentsOf: partial) == weights.data.prefix(have))

        hub.clearLog()
        let snapshot = try client.download(repository: "acme/tiny-bert")
        let cdn = hub.log.filter { $0.path.hasPrefix("/cdn/") }
        #expect(cdn.count == 1)
        #expect(cdn.first?.headers["range"] == "bytes=\(have)-")
        #expect(cdn.first?.status == 206)
        #expect(snapshot.fetched == ["model.safetensors"])  // the rest was cached by the first call
        #expect(try Data(contentsOf: snapshot.directory.appendingPathComponent("model.safetensors")) == weights.data)
        #expect(!FileManager.default.fileExists(atPath: partial.path))
    }

    /// A server that answers a Range request with the whole file (200): the partial file is
    /// rewritten from the start, not appended to.
    @Test func resumeWithoutRangeSupportStartsOver() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        let client = Self.client(hub, cache: cache)
        let weights = hub.file("model.safetensors")
        hub.dropOnce("model.safetensors", after: 100_000)
        #expect(throws: HubError.self) { try client.download(repository: "acme/tiny-bert") }
        hub.ignoreRange()
        hub.clearLog()
        let snapshot = try client.download(repository: "acme/tiny-bert")
        let cdn = hub.log.filter { $0.path.hasPrefix("/cdn/") }
        #expect(cdn.count == 1 && cdn.first?.headers["range"] != nil && cdn.first?.status == 200)
        #expect(try Data(contentsOf: snapshot.directory.appendingPathComponent("model.safetensors")) == weights.data)
    }

    @Test(arguments: ["model.safetensors", "vocab.txt"])
    func corruptedFileIsRejectedNamingIt(_ name: String) throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        hub.corrupt(name)
        var caught: HubError?
        do {
            _ = try Self.client(hub, cache: cache).download(repository: "acme/tiny-bert")
        } catch let e as HubError {
            caught = e
        }
        let error = try #require(caught)
        guard case .checksumMismatch(let file, let expected, _) = error else {
            Issue.record("expected a checksum mismatch, got \(error)")
            return
        }
        #expect(file == name)
        #expect(expected == hub.etag(name))
        #expect(error.description.hasPrefix("\(name): "))
        let repo = cache.appendingPathComponent("models--acme--tiny-bert")
        let blobs = try Self.tree(repo.appendingPathComponent("blobs"))
        #expect(!blobs.contains { $0.hasPrefix(hub.etag(name)) }, "\(blobs)")  // neither the blob nor a partial file
        #expect(!FileManager.default.fileExists(atPath: repo.appendingPathComponent("snapshots/\(hub.commit)/\(name)").path))
    }

    @Test func offlineUsesTheCacheOnly() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        // Nothing cached: a clear error, no request.
        #expect(throws: HubError.notCached(repository: "acme/tiny-bert", revision: "main", cache: cache.appendingPathComponent("models--acme--tiny-bert").path)) {
            try Self.client(hub, cache: cache, offline: true).download(repository: "acme/tiny-bert")
        }
        #expect(hub.log.isEmpty)
        let online = try Self.client(hub, cache: cache).download(repository: "acme/tiny-bert")
        hub.clearLog()
        // Cached: the same snapshot by branch or by commit, no request.
        let offline = Self.client(hub, cache: cache, offline: true)
        let a = try offline.download(repository: "acme/tiny-bert")
        let b = try offline.download(repository: "acme/tiny-bert", revision: hub.commit)
        #expect(a.directory == online.directory && b.directory == online.directory)
        #expect(a.files == Self.modelFiles && a.fetched.isEmpty)
        #expect(hub.log.isEmpty)
        #expect(throws: HubError.self) { try offline.download(repository: "acme/tiny-bert", revision: "v2") }
        // From the environment, as huggingface_hub reads it.
        let env = HubClient(environment: ["HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.endpoint.absoluteString])
        #expect(try env.download(repository: "acme/tiny-bert").directory == online.directory)
        #expect(hub.log.isEmpty)
    }

    @Test func copyToAPlainFolder() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let snapshot = try Self.client(hub, cache: scratch.appendingPathComponent("cache")).download(repository: "acme/tiny-bert")
        let out = scratch.appendingPathComponent("out")
        try snapshot.copy(to: out)
        try snapshot.copy(to: out)  // again: files replaced
        #expect(try Self.tree(out) == (["1_Pooling"] + Self.modelFiles).sorted())
        for name in Self.modelFiles {
            let path = out.appendingPathComponent(name).path
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) == nil, "\(name) is a link")
            #expect(FileManager.default.contents(atPath: path) == hub.file(name).data)
        }
    }

    @Test func loadersReadACacheFolder() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        let snapshot = try Self.client(hub, cache: cache).download(repository: "acme/tiny-bert")
        let repo = cache.appendingPathComponent("models--acme--tiny-bert")
        #expect(try resolveModelDirectory(repo) == snapshot.directory)
        #expect(try resolveModelDirectory(Self.fixture) == Self.fixture)
        let expected = try SentenceEmbedder(directory: Self.fixture).embed(["w1 w2 w3"])
        let fromCache = try SentenceEmbedder(directory: repo).embed(["w1 w2 w3"])
        #expect(fromCache.scalars == expected.scalars)
        #expect(try BERTModel(directory: repo).config == BERTModel(directory: Self.fixture).config)
        #expect(try loadTokenizer(directory: repo).encode("w1 w2").ids == loadTokenizer(directory: Self.fixture).encode("w1 w2").ids)
        // A cache folder without refs/main says so.
        try FileManager.default.removeItem(at: repo.appendingPathComponent("refs/main"))
        #expect(throws: ModelFileError.missingFile(path: repo.appendingPathComponent("refs/main").path)) {
            try SentenceEmbedder(directory: repo)
        }
    }

    @Test(arguments: ["../evil.safetensors", "../../config.json", "1_Pooling/../../x", "/etc/passwd", "a//b", "sub\\..\\x", "./config.json"])
    func unsafeNamesInTheListingAreRefused(_ name: String) throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        hub.listExtra([name])
        #expect(throws: HubError.unsafeFileName(repository: "acme/tiny-bert", name: name)) {
            try Self.client(hub, cache: cache).download(repository: "acme/tiny-bert")
        }
        #expect(hub.fileRequests.isEmpty)
        #expect(try Self.tree(cache).isEmpty)
    }

    @Test func headersGiveTheHashesWhenTheListingLacksThem() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        hub.omitHashes()
        let snapshot = try Self.client(hub, cache: cache).download(repository: "acme/tiny-bert")
        #expect(hub.log.filter { $0.method == "HEAD" }.count == Self.modelFiles.count)
        for name in Self.modelFiles {
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: snapshot.directory.appendingPathComponent(name).path).hasSuffix("blobs/\(hub.etag(name))"))
        }
    }

    @Test func badIdsRevisionsAndMissingRepositories() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        let client = Self.client(hub, cache: cache)
        for id in ["", "a/b/c", "../x", "acme/..", "acme/x y", "acme/a--b", "/acme"] {
            #expect(throws: HubError.invalidRepository(id)) { try client.download(repository: id) }
        }
        for revision in ["", "../main", "a//b", "refs/.."] {
            #expect(throws: HubError.invalidRevision(revision)) { try client.download(repository: "acme/tiny-bert", revision: revision) }
        }
        #expect(hub.log.isEmpty)
        #expect {
            try client.download(repository: "acme/tiny-bert", revision: "v9")
        } throws: { error in
            guard case .httpStatus(_, 404, let message) = error as? HubError else { return false }
            return message == "Revision Not Found"
        }
        #expect {
            try client.download(repository: "acme/other")
        } throws: { error in
            guard case .httpStatus(_, 404, _) = error as? HubError else { return false }
            return true
        }
    }

    /// A repository with a sharded checkpoint and a stray single-file copy of the weights.
    static func shardedFolder(in scratch: URL, shard2: String = "model-00002-of-00002.safetensors") throws -> URL {
        let dir = scratch.appendingPathComponent("sharded-repo")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(#"{"model_type": "llama"}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        let index = #"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "\#(shard2)", "c": "model-00001-of-00002.safetensors"}}"#
        try Data(index.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        try Data(repeating: 1, count: 3000).write(to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try Data(repeating: 2, count: 2000).write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        try Data(repeating: 3, count: 5000).write(to: dir.appendingPathComponent("consolidated.safetensors"))
        try Data("{}".utf8).write(to: dir.appendingPathComponent("pytorch_model.bin"))
        return dir
    }

    @Test func shardedWeightsAreTheShardsTheIndexNames() throws {
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let hub = try LocalHub(folder: try Self.shardedFolder(in: scratch), repository: "acme/sharded")
        let snapshot = try Self.client(hub, cache: scratch.appendingPathComponent("cache")).download(repository: "acme/sharded")
        let expected = ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
        #expect(snapshot.files == expected)
        #expect(Set(snapshot.fetched) == Set(expected))
        #expect(!hub.log.contains { $0.path.contains("consolidated") || $0.path.contains("pytorch_model") })
    }

    @Test(arguments: ["../model-00002-of-00002.safetensors", "missing.safetensors"])
    func anIndexNamingABadShardIsRefused(_ shard: String) throws {
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let hub = try LocalHub(folder: try Self.shardedFolder(in: scratch, shard2: shard), repository: "acme/sharded")
        #expect {
            try Self.client(hub, cache: scratch.appendingPathComponent("cache")).download(repository: "acme/sharded")
        } throws: { error in
            switch error as? HubError {
            case .unsafeFileName(_, let name)?: return name == shard && shard.hasPrefix("..")
            case .invalidResponse(let url, let reason)?: return url.hasSuffix("model.safetensors.index.json") && reason.contains(shard)
            default: return false
            }
        }
        #expect(!hub.log.contains { $0.path.contains("-of-") })
    }

    @Test func cacheFolderFromTheEnvironment() {
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        #expect(HubCache(environment: [:]).root.path == home + "/.cache/huggingface/hub")
        #expect(HubCache(environment: ["XDG_CACHE_HOME": "/x"]).root.path == "/x/huggingface/hub")
        #expect(HubCache(environment: ["HF_HOME": "/h", "XDG_CACHE_HOME": "/x"]).root.path == "/h/hub")
        #expect(HubCache(environment: ["HF_HUB_CACHE": "/c", "HF_HOME": "/h"]).root.path == "/c")
        let client = HubClient(environment: ["HF_ENDPOINT": "http://127.0.0.1:1234", "HF_TOKEN": "t", "HF_HUB_OFFLINE": "true"])
        #expect(client.endpoint.absoluteString == "http://127.0.0.1:1234" && client.token == "t" && client.offline)
        let plain = HubClient(environment: ["HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "file:///etc"])
        #expect(plain.endpoint.absoluteString == "https://huggingface.co" && plain.token == nil && !plain.offline)
    }

    /// The token goes to the Hub, not to the CDN host an LFS file redirects to.
    @Test func tokenIsNotSentToAnotherHost() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        hub.redirectLFS(toHost: "localhost")
        let snapshot = try Self.client(hub, cache: cache, token: "hf_secret").download(repository: "acme/tiny-bert")
        #expect(try Data(contentsOf: snapshot.directory.appendingPathComponent("model.safetensors")) == hub.file("model.safetensors").data)
        let cdn = hub.log.filter { $0.path.hasPrefix("/cdn/") }
        #expect(cdn.count == 1 && cdn.allSatisfy { $0.headers["authorization"] == nil && $0.headers["host"]?.hasPrefix("localhost:") == true })
        #expect(hub.log.filter { !$0.path.hasPrefix("/cdn/") }.allSatisfy { $0.headers["authorization"] == "Bearer hf_secret" })
    }

    /// No answer from the Hub: the cached snapshot when there is one (reported), else the
    /// transfer error.
    @Test func unreachableHubFallsBackToTheCache() throws {
        let hub = try LocalHub(folder: Self.fixture)
        let cache = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: cache) }
        let online = try Self.client(hub, cache: cache).download(repository: "acme/tiny-bert")
        hub.stop()
        let events = EventLog()
        let fallback = try Self.client(hub, cache: cache).download(repository: "acme/tiny-bert") { events.append($0) }
        #expect(fallback.directory == online.directory && fallback.fetched.isEmpty)
        #expect(events.items.count == 1)
        if case .usingCache? = events.items.first {} else { Issue.record("no usingCache event: \(events.items)") }
        #expect {
            try Self.client(hub, cache: cache).download(repository: "acme/tiny-bert", revision: "v2")
        } throws: { error in
            if case .transfer? = error as? HubError { return true }
            return false
        }
    }
}

/// Progress events, collected from any thread.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var _items: [HubProgress] = []
    func append(_ e: HubProgress) { lock.withLock { _items.append(e) } }
    var items: [HubProgress] { lock.withLock { _items } }
}
