import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Downloads model folders from the Hugging Face Hub into the cache `huggingface_hub` uses
/// (see ``HubCache``), so that Attend and the Python tools share their files.
///
/// Only the files a model folder needs are fetched (``isModelFile(_:)``), over HTTPS with
/// URLSession. A partial file (`blobs/<etag>.incomplete`, left by a dropped connection or an
/// interrupted process) is resumed with an HTTP `Range` request. Every file is checked before
/// it enters the cache: an LFS file (the weights) against the SHA-256 the Hub reports, any
/// other against its git blob id (SHA-1 of `"blob <size>\0"` and the bytes). A file already
/// in the snapshot is not requested again.
///
/// ```swift
/// let snapshot = try HubClient().download(repository: "sentence-transformers/all-MiniLM-L6-v2")
/// let embedder = try SentenceEmbedder(directory: snapshot.directory)
/// ```
public struct HubClient: Sendable {
    /// The Hub's address (`https://huggingface.co`; `HF_ENDPOINT` overrides it).
    public var endpoint: URL
    /// Sent as `Authorization: Bearer <token>` (gated and private repositories; `HF_TOKEN`).
    public var token: String?
    /// Use only the cache, make no request (`HF_HUB_OFFLINE=1`).
    public var offline: Bool
    /// Where files are cached.
    public var cache: HubCache

    /// A client with explicit settings; nothing is read from the environment.
    public init(endpoint: URL = URL(string: "https://huggingface.co")!, token: String? = nil, offline: Bool = false, cache: HubCache = HubCache()) {
        self.endpoint = endpoint
        self.token = token
        self.offline = offline
        self.cache = cache
    }

    /// A client configured as `huggingface_hub` is by these variables: `HF_ENDPOINT`,
    /// `HF_TOKEN`, `HF_HUB_OFFLINE` (`1`, `true`, `yes` or `on`) and the cache folder
    /// (``HubCache/init(environment:)``). An `HF_ENDPOINT` that is not an http(s) URL is
    /// ignored.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        var endpoint = URL(string: "https://huggingface.co")!
        if let e = environment["HF_ENDPOINT"], let u = URL(string: e), u.scheme == "https" || u.scheme == "http", u.host != nil {
            endpoint = u
        }
        let token = environment["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let offline = ["1", "ON", "YES", "TRUE"].contains((environment["HF_HUB_OFFLINE"] ?? "").uppercased())
        self.init(endpoint: endpoint, token: token, offline: offline, cache: HubCache(environment: environment))
    }

    /// Whether a repository file belongs to a model folder Attend (or transformers) loads:
    /// `config.json`, `generation_config.json`, top-level `*.safetensors` and
    /// `model.safetensors.index.json`, the tokenizer files (`tokenizer.json`,
    /// `tokenizer_config.json`, `special_tokens_map.json`, `vocab.txt`, `vocab.json`,
    /// `merges.txt`, `spiece.model`, `tokenizer.model`, `sentencepiece.bpe.model`,
    /// `source.spm`, `target.spm`) and sentence-transformers' `modules.json`,
    /// `sentence_bert_config.json` and `1_Pooling/config.json`. (Of the weights,
    /// ``download(repository:revision:progress:)`` takes only those the loader reads.)
    public static func isModelFile(_ name: String) -> Bool {
        if modelFileNames.contains(name) { return true }
        return !name.contains("/") && name.hasSuffix(".safetensors")
    }

    private static let modelFileNames: Set<String> = [
        "config.json", "generation_config.json", "model.safetensors.index.json",
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
        "spiece.model", "tokenizer.model", "sentencepiece.bpe.model", "source.spm", "target.spm",
        "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
    ]

    /// Makes the cache hold `revision` (a branch, tag or commit; default `main`) of the model
    /// `repository` (`ORG/NAME`) and returns its snapshot folder, which every
    /// `init(directory:)` of Attend loads.
    ///
    /// Online: one request to `/api/models/ORG/NAME/revision/R?blobs=true` for the commit
    /// and the file list with sizes and hashes, then one `resolve` request per model file not
    /// yet in the snapshot (none on a second call). `refs/<revision>` is set to the commit.
    /// Offline: no request; the snapshot `refs/<revision>` names. When the Hub cannot be
    /// reached at all and the cache holds the revision, that snapshot too (reported as
    /// ``HubProgress/usingCache(reason:)``).
    ///
    /// Blocks until done; `progress` is called (on this thread or URLSession's) as files
    /// start and finish. Cost: the bytes transferred plus one hashing pass over each new file.
    /// Throws ``HubError``: `.notCached` (offline), `.httpStatus` (a 401 for a gated model
    /// without `HF_TOKEN`, a 404), `.transfer` (the partial file is kept and the next call
    /// resumes it), `.checksumMismatch` naming the file (its bytes are discarded),
    /// `.unsafeFileName` (a listing naming `../` and the like: nothing is written),
    /// `.invalidResponse`, `.fileSystem`.
    public func download(
        repository: String, revision: String = "main", progress: (@Sendable (HubProgress) -> Void)? = nil
    ) throws -> HubSnapshot {
        let folder = try cache.repositoryFolder(repository)
        try HubCache.checkRevision(revision)
        func cached() throws -> HubSnapshot? {
            guard let dir = try cache.snapshot(repository: repository, revision: revision),
                FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path)
            else { return nil }
            return HubSnapshot(
                repository: repository, revision: revision, commit: dir.lastPathComponent, directory: dir,
                files: try HubSnapshot.listFiles(dir).filter { HubClient.isModelFile($0) || $0.hasSuffix(".safetensors") }, fetched: [])
        }
        if offline {
            guard let snapshot = try cached() else { throw HubError.notCached(repository: repository, revision: revision, cache: folder.path) }
            return snapshot
        }

        let info: (commit: String, files: [RemoteFile])
        do {
            info = try repositoryInfo(repository: repository, revision: revision)
        } catch let error as HubError {
            // No answer at all (no network): the cached snapshot, as huggingface_hub falls back.
            guard case .transfer = error, let snapshot = try cached() else { throw error }
            progress?(.usingCache(reason: error.description))
            return snapshot
        }
        // The small files first (a bad configuration shows before the weights are fetched).
        var wanted = info.files.filter { HubClient.isModelFile($0.name) }
            .sorted { ($0.name.hasSuffix(".safetensors") ? 1 : 0, $0.name) < ($1.name.hasSuffix(".safetensors") ? 1 : 0, $1.name) }
        guard wanted.contains(where: { $0.name == "config.json" }) else {
            throw HubError.noModelFiles(repository: repository, revision: revision)
        }
        let snapshot = folder.appendingPathComponent("snapshots").appendingPathComponent(info.commit, isDirectory: true)
        if revision != info.commit {
            let ref = folder.appendingPathComponent("refs").appendingPathComponent(revision)
            try fileSystem(ref.path) {
                try FileManager.default.createDirectory(at: ref.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(info.commit.utf8).write(to: ref, options: .atomic)
            }
        }

        var fetched: [String] = []
        let files = Set(info.files.map(\.name))
        // The weights the loader reads: the index and its shards, else model.safetensors.
        if let index = wanted.first(where: { $0.name == SafeTensorsCheckpoint.indexFileName }) {
            if try ensure(index, repository: repository, commit: info.commit, folder: folder, progress: progress) { fetched.append(index.name) }
            let shards = try shardNames(snapshot.appendingPathComponent(index.name), repository: repository)
            for s in shards where !files.contains(s) {
                throw HubError.invalidResponse(url: index.name, reason: "shard \(s) is not in the repository")
            }
            wanted = wanted.filter { !$0.name.hasSuffix(".safetensors") } + info.files.filter { shards.contains($0.name) }
        } else if wanted.contains(where: { $0.name == SafeTensorsCheckpoint.singleFileName }) {
            wanted.removeAll { $0.name.hasSuffix(".safetensors") && $0.name != SafeTensorsCheckpoint.singleFileName }
        }
        for file in wanted where file.name != SafeTensorsCheckpoint.indexFileName {
            if try ensure(file, repository: repository, commit: info.commit, folder: folder, progress: progress) { fetched.append(file.name) }
        }
        return HubSnapshot(
            repository: repository, revision: revision, commit: info.commit, directory: snapshot,
            files: wanted.map(\.name).sorted(), fetched: fetched)
    }

    // MARK: the Hub's API

    /// A repository file as the API lists it: its name, and (with `?blobs=true`) its etag
    /// (LFS SHA-256, else git blob id) and size.
    struct RemoteFile {
        var name: String
        var etag: String?
        var size: UInt64?
    }

    /// The commit `revision` names and the repository's files.
    func repositoryInfo(repository: String, revision: String) throws -> (commit: String, files: [RemoteFile]) {
        let url = try address("api/models/\(repository)/revision/\(HubClient.encodeComponent(revision))?blobs=true")
        let request = HubRequest(self.request(url))
        let response = try request.run()
        guard response.statusCode == 200 else {
            throw HubError.httpStatus(url: url.absoluteString, status: response.statusCode, message: request.bodyMessage)
        }
        func bad(_ reason: String) -> HubError { .invalidResponse(url: url.absoluteString, reason: reason) }
        guard let json = try? JSONSerialization.jsonObject(with: request.body) as? [String: Any] else { throw bad("not a JSON object") }
        guard let commit = json["sha"] as? String, HubCache.isCommit(commit) else { throw bad("no commit hash in \"sha\"") }
        guard let siblings = json["siblings"] as? [Any] else { throw bad("no \"siblings\" list") }
        var files: [RemoteFile] = []
        for item in siblings {
            guard let s = item as? [String: Any], let name = s["rfilename"] as? String else { throw bad("a sibling without \"rfilename\"") }
            guard HubCache.isSafeFileName(name) else { throw HubError.unsafeFileName(repository: repository, name: name) }
            var file = RemoteFile(name: name)
            if let lfs = s["lfs"] as? [String: Any] {
                file.etag = lfs["sha256"] as? String ?? lfs["oid"] as? String
                file.size = (lfs["size"] as? NSNumber).map { $0.uint64Value }
            } else {
                file.etag = s["blobId"] as? String
                file.size = (s["size"] as? NSNumber).map { $0.uint64Value }
            }
            files.append(file)
        }
        return (commit, files)
    }

    /// The etag and size of a file from the headers of a `resolve` request (`HEAD`, not
    /// following the LFS redirect): `X-Linked-Etag` / `X-Linked-Size` for an LFS file, else
    /// `ETag` / `Content-Length`, as `huggingface_hub` reads them.
    func fileMetadata(repository: String, commit: String, file: String) throws -> (etag: String, size: UInt64?) {
        let url = try resolveURL(repository: repository, commit: commit, file: file)
        var r = request(url)
        r.httpMethod = "HEAD"
        let response = try HubRequest(r, followRedirects: false).run()
        guard (200..<400).contains(response.statusCode) else {
            throw HubError.httpStatus(url: url.absoluteString, status: response.statusCode, message: "")
        }
        let raw = response.value(forHTTPHeaderField: "X-Linked-Etag") ?? response.value(forHTTPHeaderField: "ETag") ?? ""
        var etag = raw.hasPrefix("W/") ? String(raw.dropFirst(2)) : raw
        etag = etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        let size = (response.value(forHTTPHeaderField: "X-Linked-Size") ?? response.value(forHTTPHeaderField: "Content-Length")).flatMap { UInt64($0) }
        return (etag, size)
    }

    /// Makes `snapshots/<commit>/<file>` exist, downloading its blob when the cache lacks
    /// it. Returns whether bytes were transferred.
    private func ensure(
        _ remote: RemoteFile, repository: String, commit: String, folder: URL, progress: (@Sendable (HubProgress) -> Void)?
    ) throws -> Bool {
        let fm = FileManager.default
        let pointer = folder.appendingPathComponent("snapshots").appendingPathComponent(commit).appendingPathComponent(remote.name)
        if fm.fileExists(atPath: pointer.path) {
            progress?(.cached(file: remote.name))
            return false
        }
        var etag = remote.etag
        var size = remote.size
        if etag == nil { (etag, size) = try fileMetadata(repository: repository, commit: commit, file: remote.name) }
        guard let etag, let digest = FileDigest(etag: etag) else {
            throw HubError.invalidResponse(url: remote.name, reason: "etag '\(etag ?? "")' is neither a SHA-256 nor a git blob id")
        }
        let blobs = folder.appendingPathComponent("blobs")
        let blob = blobs.appendingPathComponent(etag)
        var transferred = false
        if !fm.fileExists(atPath: blob.path) {
            let locks = cache.root.appendingPathComponent(".locks").appendingPathComponent(folder.lastPathComponent)
            try fileSystem(blobs.path) {
                try fm.createDirectory(at: blobs, withIntermediateDirectories: true)
                try fm.createDirectory(at: locks, withIntermediateDirectories: true)
            }
            let lock = try FileLock(path: locks.appendingPathComponent(etag + ".lock").path)
            defer { lock.unlock() }
            if !fm.fileExists(atPath: blob.path) {  // another process may have finished it
                try fetch(remote.name, repository: repository, commit: commit, digest: digest, size: size, into: blob, progress: progress)
                transferred = true
            }
        }
        try fileSystem(pointer.path) {
            try fm.createDirectory(at: pointer.deletingLastPathComponent(), withIntermediateDirectories: true)
            if (try? fm.destinationOfSymbolicLink(atPath: pointer.path)) != nil { try fm.removeItem(at: pointer) }  // dangling
            try fm.createSymbolicLink(atPath: pointer.path, withDestinationPath: HubCache.blobLinkTarget(file: remote.name, etag: etag))
        }
        if !transferred { progress?(.cached(file: remote.name)) }
        return transferred
    }

    /// Downloads one file into `blob` through `blob.incomplete`, resuming it, and checks it.
    private func fetch(
        _ file: String, repository: String, commit: String, digest: FileDigest, size: UInt64?, into blob: URL,
        progress: (@Sendable (HubProgress) -> Void)?
    ) throws {
        let fm = FileManager.default
        let partial = URL(fileURLWithPath: blob.path + ".incomplete")
        let url = try resolveURL(repository: repository, commit: commit, file: file)
        func partialSize() -> UInt64 { ((try? fm.attributesOfItem(atPath: partial.path))?[.size] as? NSNumber)?.uint64Value ?? 0 }
        func check() throws -> Bool {
            let have = partialSize()
            if let size, have != size { return false }
            let actual = try fileSystem(partial.path) { try digest.compute(fileAt: partial) }
            return actual == digest.hex
        }
        var offset = partialSize()
        if let size, offset > size {
            try? fm.removeItem(at: partial)
            offset = 0
        }
        if let size, offset == size, offset > 0, try check() {
            // a complete file left before the rename
        } else {
            for attempt in 0..<2 {
                var r = request(url)
                if offset > 0 { r.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
                progress?(.fetching(file: file, size: size, resumingFrom: offset))
                let transfer = HubRequest(r, sink: .init(path: partial.path, offset: offset)) { bytes in
                    progress?(.received(file: file, bytes: bytes, size: size))
                }
                let response = try transfer.run()
                if response.statusCode == 416 && offset > 0 && attempt == 0 {
                    try? fm.removeItem(at: partial)  // the partial file does not fit the server's: start over
                    offset = 0
                    continue
                }
                guard response.statusCode == 200 || response.statusCode == 206 else {
                    throw HubError.httpStatus(url: url.absoluteString, status: response.statusCode, message: transfer.bodyMessage)
                }
                break
            }
            let got = partialSize()
            if let size, got != size {
                try? fm.removeItem(at: partial)
                throw HubError.checksumMismatch(file: file, expected: "\(size) bytes", actual: "\(got) bytes")
            }
            let actual = try fileSystem(partial.path) { try digest.compute(fileAt: partial) }
            guard actual == digest.hex else {
                try? fm.removeItem(at: partial)
                throw HubError.checksumMismatch(file: file, expected: digest.hex, actual: actual)
            }
        }
        try fileSystem(blob.path) {
            if fm.fileExists(atPath: blob.path) { try fm.removeItem(at: blob) }
            try fm.moveItem(at: partial, to: blob)
        }
        progress?(.fetched(file: file, bytes: size ?? partialSize()))
    }

    /// The shard file names `model.safetensors.index.json` lists (its `weight_map` values).
    private func shardNames(_ index: URL, repository: String) throws -> Set<String> {
        guard let data = FileManager.default.contents(atPath: index.path),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let map = json["weight_map"] as? [String: Any]
        else { throw HubError.invalidResponse(url: index.path, reason: "no \"weight_map\" object") }
        var names: Set<String> = []
        for case let name as String in map.values {
            guard HubCache.isSafeFileName(name) else { throw HubError.unsafeFileName(repository: repository, name: name) }
            names.insert(name)
        }
        return names
    }

    // MARK: requests

    private func address(_ path: String) throws -> URL {
        var base = endpoint.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        guard let url = URL(string: base + "/" + path) else { throw HubError.invalidResponse(url: base, reason: "cannot form an address for \(path)") }
        return url
    }

    /// `<endpoint>/ORG/NAME/resolve/<commit>/<file>`.
    func resolveURL(repository: String, commit: String, file: String) throws -> URL {
        let encoded = file.split(separator: "/").map { HubClient.encodeComponent(String($0)) }.joined(separator: "/")
        return try address("\(repository)/resolve/\(commit)/\(encoded)")
    }

    private func request(_ url: URL) -> URLRequest {
        var r = URLRequest(url: url)
        r.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        r.setValue("attend", forHTTPHeaderField: "User-Agent")
        if let token { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return r
    }

    /// Percent-encodes everything but letters, digits and `-._~` (so `/` in a revision
    /// becomes `%2F`, as `huggingface_hub` quotes it).
    static func encodeComponent(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}

/// Runs `body`, turning a file system error into `HubError.fileSystem` naming `path`.
func fileSystem<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as HubError {
        throw e
    } catch {
        throw HubError.fileSystem(path: path, reason: error.localizedDescription)
    }
}

/// An exclusive `flock` on a lock file, the lock `huggingface_hub` (the `filelock` package)
/// takes on the same path.
final class FileLock {
    private let fd: Int32

    init(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw HubError.fileSystem(path: path, reason: String(cString: strerror(errno))) }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let reason = String(cString: strerror(errno))
            close(fd)
            throw HubError.fileSystem(path: path, reason: "cannot lock: \(reason)")
        }
    }

    func unlock() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// What ``HubClient/download(repository:revision:progress:)`` is doing.
public enum HubProgress: Sendable, Equatable {
    /// A file is in the snapshot already; nothing is transferred.
    case cached(file: String)
    /// A transfer starts (from byte `resumingFrom` when a partial file is resumed); `size`
    /// is the file's size when the Hub reports it.
    case fetching(file: String, size: UInt64?, resumingFrom: UInt64)
    /// `bytes` of the file are on disk (called as data arrives).
    case received(file: String, bytes: UInt64, size: UInt64?)
    /// The file is complete, checked and in the cache.
    case fetched(file: String, bytes: UInt64)
    /// The Hub could not be reached (`reason`), and the cache holds the revision: the cached
    /// snapshot is returned, as `huggingface_hub` does.
    case usingCache(reason: String)
}

/// A model folder in the Hub cache: a snapshot of one commit.
public struct HubSnapshot: Sendable, Equatable {
    /// The repository id (`ORG/NAME`).
    public var repository: String
    /// The revision asked for (a branch, tag or commit).
    public var revision: String
    /// The commit it named.
    public var commit: String
    /// `snapshots/<commit>` in the cache: a model folder every `init(directory:)` loads.
    public var directory: URL
    /// The model files of the folder, relative to `directory` (`1_Pooling/config.json`),
    /// sorted. (Offline, the model files the snapshot holds: ``HubClient/isModelFile(_:)``
    /// and every `*.safetensors`.)
    public var files: [String]
    /// The files this call transferred (empty when everything was cached).
    public var fetched: [String]

    /// Copies the snapshot's files into the plain folder `destination` (created when
    /// missing), as regular files rather than links into the cache: a folder to move, edit
    /// or ship. Files of the same name are replaced; others are left alone. Cost: one copy
    /// of every file. Throws `HubError.fileSystem` naming the file.
    public func copy(to destination: URL) throws {
        let fm = FileManager.default
        for file in files {
            let source = directory.appendingPathComponent(file).resolvingSymlinksInPath()
            let target = destination.appendingPathComponent(file)
            try fileSystem(target.path) {
                try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                if fm.fileExists(atPath: target.path) || (try? fm.destinationOfSymbolicLink(atPath: target.path)) != nil {
                    try fm.removeItem(at: target)
                }
                try fm.copyItem(at: source, to: target)
            }
        }
    }

    /// The regular files under `dir` (links followed), relative, sorted.
    static func listFiles(_ dir: URL) throws -> [String] {
        let fm = FileManager.default
        let all = try fileSystem(dir.path) { try fm.subpathsOfDirectory(atPath: dir.path) }
        return all.filter { name in
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: dir.appendingPathComponent(name).path, isDirectory: &isDir) && !isDir.boolValue
        }.sorted()
    }
}
