import Foundation

/// The Hugging Face Hub's local cache, laid out exactly as the Python `huggingface_hub`
/// lays it out, so that either tool reuses the files the other downloaded:
///
/// ```
/// <root>/models--ORG--NAME/
///     blobs/<etag>                     the file's bytes, named by the Hub's etag: the
///                                      SHA-256 of an LFS file, the git blob id of another
///     blobs/<etag>.incomplete          a download in progress (resumed from its size)
///     snapshots/<commit>/<file>        a relative symlink to ../../blobs/<etag> (one more
///                                      ../ per folder level of <file>)
///     refs/<revision>                  the commit the branch or tag named last (no newline)
/// <root>/.locks/models--ORG--NAME/<etag>.lock
///                                      held (flock) while that blob is written
/// ```
///
/// Creating a `HubCache` costs nothing and touches no file.
public struct HubCache: Sendable, Equatable {
    /// The cache folder (`.../huggingface/hub`).
    public var root: URL

    /// A cache at `root`.
    public init(root: URL) {
        self.root = root
    }

    /// The cache `huggingface_hub` uses with these environment variables: `HF_HUB_CACHE`,
    /// else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
    /// `~/.cache/huggingface/hub`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        func value(_ key: String) -> String? { environment[key].flatMap { $0.isEmpty ? nil : $0 } }
        func expand(_ path: String) -> URL { URL(fileURLWithPath: (path as NSString).expandingTildeInPath) }
        if let cache = value("HF_HUB_CACHE") ?? value("HUGGINGFACE_HUB_CACHE") {
            root = expand(cache)
        } else if let home = value("HF_HOME") {
            root = expand(home).appendingPathComponent("hub")
        } else {
            let base = value("XDG_CACHE_HOME").map(expand) ?? expand("~/.cache")
            root = base.appendingPathComponent("huggingface").appendingPathComponent("hub")
        }
    }

    /// The folder of a model repository: `<root>/models--ORG--NAME`. Throws
    /// `HubError.invalidRepository` for an id that is not `NAME` or `ORG/NAME`.
    public func repositoryFolder(_ repository: String) throws -> URL {
        root.appendingPathComponent(try HubCache.folderName(repository))
    }

    /// The snapshot folder of `revision` (a branch, tag or commit) if the cache holds it:
    /// `snapshots/<commit>`, the commit read from `refs/<revision>` unless `revision` is the
    /// commit itself. Nil when not cached. Throws `HubError` for an invalid id or revision.
    public func snapshot(repository: String, revision: String = "main") throws -> URL? {
        let folder = try repositoryFolder(repository)
        try HubCache.checkRevision(revision)
        let fm = FileManager.default
        if HubCache.isCommit(revision) {
            let s = folder.appendingPathComponent("snapshots").appendingPathComponent(revision, isDirectory: true)
            if fm.fileExists(atPath: s.path) { return s }
        }
        guard let commit = HubCache.readRef(folder.appendingPathComponent("refs").appendingPathComponent(revision)) else { return nil }
        let s = folder.appendingPathComponent("snapshots").appendingPathComponent(commit, isDirectory: true)
        return fm.fileExists(atPath: s.path) ? s : nil
    }

    // MARK: plumbing shared with HubClient

    /// `models--ORG--NAME` (`huggingface_hub`'s `repo_folder_name`).
    static func folderName(_ repository: String) throws -> String {
        let parts = repository.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { throw HubError.invalidRepository(repository) }
        for part in parts {
            guard !part.isEmpty, part.utf8.count <= 96, part != ".", part != "..", !part.contains("--"),
                part.utf8.allSatisfy({ b in
                    (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x2D || b == 0x5F || b == 0x2E
                })
            else { throw HubError.invalidRepository(repository) }
        }
        return "models--" + parts.joined(separator: "--")
    }

    /// Throws unless `revision` is a usable ref name (it becomes a path under `refs/`).
    static func checkRevision(_ revision: String) throws {
        let parts = revision.split(separator: "/", omittingEmptySubsequences: false)
        guard !revision.isEmpty, revision.utf8.count <= 255,
            parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
            revision.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F && $0 != 0x5C })
        else { throw HubError.invalidRevision(revision) }
    }

    /// Whether `s` is a commit hash (40 lowercase hex digits).
    static func isCommit(_ s: String) -> Bool {
        s.utf8.count == 40 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The commit a `refs/...` file holds, nil when absent or not a commit hash.
    static func readRef(_ url: URL) -> String? {
        guard let data = FileManager.default.contents(atPath: url.path), data.count <= 256 else { return nil }
        let commit = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return isCommit(commit) ? commit : nil
    }

    /// Whether `name` (a repository file name from a server) stays inside the snapshot:
    /// relative, `/`-separated parts that are neither empty, `.` nor `..`, no backslash or
    /// control character.
    static func isSafeFileName(_ name: String) -> Bool {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        return !name.isEmpty && name.utf8.count <= 1024 && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
            && name.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F && $0 != 0x5C }
    }

    /// The symlink target of `file` in a snapshot: `../../blobs/<etag>`, one more `../` per
    /// folder in `file` (what `os.path.relpath` gives `huggingface_hub`).
    static func blobLinkTarget(file: String, etag: String) -> String {
        let depth = file.split(separator: "/").count
        return String(repeating: "../", count: depth + 1) + "blobs/" + etag
    }
}

/// The folder a model loader reads for `directory`: `directory` itself, or, for a Hub cache
/// folder `models--ORG--NAME` (one `huggingface_hub` or ``HubClient`` filled), its snapshot
/// `snapshots/<commit>` of the commit `refs/main` names. Every `init(directory:)` of Attend's
/// models and tokenizers resolves its folder through this. Throws
/// `ModelFileError.missingFile` naming `refs/main` or the snapshot when the cache folder
/// lacks them. Cost: at most two small file reads.
public func resolveModelDirectory(_ directory: URL) throws -> URL {
    guard directory.lastPathComponent.hasPrefix("models--") else { return directory }
    let fm = FileManager.default
    let refs = directory.appendingPathComponent("refs")
    guard fm.fileExists(atPath: refs.path), !fm.fileExists(atPath: directory.appendingPathComponent("config.json").path) else {
        return directory
    }
    let ref = refs.appendingPathComponent("main")
    guard fm.fileExists(atPath: ref.path) else { throw ModelFileError.missingFile(path: ref.path) }
    guard let commit = HubCache.readRef(ref) else {
        throw ModelFileError.invalidValue(path: ref.path, key: "contents", reason: "not a commit hash (40 hex digits)")
    }
    let snapshot = directory.appendingPathComponent("snapshots").appendingPathComponent(commit, isDirectory: true)
    guard fm.fileExists(atPath: snapshot.path) else { throw ModelFileError.missingFile(path: snapshot.path) }
    return snapshot
}
