import Attend
import AttendCommandLine
import Foundation

/// The options of `attend download`.
struct DownloadOptions {
    var repository = ""
    var revision = "main"
    var to: String? = nil

    /// The options of `download ORG/NAME [--revision R] [--to DIR]` (flags checked by the
    /// grammar); throws `UsageError` unless exactly one model id is given.
    init(_ parsed: ParsedArguments) throws {
        let ids = parsed.positionals
        guard let repository = ids.first, !repository.isEmpty else { throw UsageError(description: "download needs a model id (ORG/NAME)") }
        guard ids.count == 1 else { throw UsageError(description: "download takes one model id, got '\(ids[0])' and '\(ids[1])'") }
        self.repository = repository
        revision = parsed.string("--revision") ?? "main"
        to = parsed.string("--to")
    }

    /// No model id yet (the other commands).
    init() {}
}

/// `attend download`: the snapshot (or the --to copy) on stdout, a line per transferred
/// file on stderr.
func download(_ o: DownloadOptions) throws {
    let client = HubClient()
    let snapshot = try client.download(repository: o.repository, revision: o.revision) { event in
        if case .usingCache(let reason) = event {
            FileHandle.standardError.write(Data("attend: note: using the cached snapshot: \(reason)\n".utf8))
        }
        if case .fetching(let file, let size, let from) = event {
            let what = size.map { formatBytes($0) } ?? "size unknown"
            let resume = from > 0 ? ", resuming at \(formatBytes(from))" : ""
            FileHandle.standardError.write(Data("attend: fetching \(file) (\(what)\(resume))\n".utf8))
        }
    }
    if let to = o.to {
        let url = URL(fileURLWithPath: to)
        try snapshot.copy(to: url)
        print(url.path)
    } else {
        print(snapshot.directory.path)
    }
}

/// A byte count for people: "612 B", "90.9 MB".
func formatBytes(_ n: UInt64) -> String {
    if n < 1000 { return "\(n) B" }
    let units = ["kB", "MB", "GB", "TB"]
    var v = Double(n) / 1000
    var u = 0
    while v >= 1000 && u < units.count - 1 {
        v /= 1000
        u += 1
    }
    return String(format: "%.1f", v) + " " + units[u]
}

/// The folder `--model` names: the path when it exists; otherwise, when it reads as a Hub id
/// (`ORG/NAME`) the Hub cache holds, that model's snapshot of main (what `attend download`
/// fetched). Else the path, so that the loader's error names it.
func modelFolder(_ model: String) -> URL {
    let url = URL(fileURLWithPath: model)
    if FileManager.default.fileExists(atPath: url.path) { return url }
    if let snapshot = try? HubCache().snapshot(repository: model) { return snapshot }
    return url
}
