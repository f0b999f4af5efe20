import Foundation

/// Why a download from (or a lookup in the cache of) the Hugging Face Hub failed.
///
/// Every case names the repository, file, address or path at fault; `description` is one
/// line saying what is wrong.
public enum HubError: Error, CustomStringConvertible, Equatable {
    /// The repository id is not `NAME` or `ORG/NAME` of letters, digits, `-`, `_` and `.`.
    case invalidRepository(String)
    /// The revision is empty, or has an empty, `.` or `..` part.
    case invalidRevision(String)
    /// Offline (`HF_HUB_OFFLINE`), and the cache holds no snapshot of this revision.
    case notCached(repository: String, revision: String, cache: String)
    /// The server answered with an HTTP error status (`401`/`403`: a gated or private
    /// repository and no or a wrong `HF_TOKEN`; `404`: no such repository, revision or file).
    case httpStatus(url: String, status: Int, message: String)
    /// The transfer failed (no connection, a timeout, the connection dropped midway). A
    /// partial file stays in the cache and the next call resumes it.
    case transfer(url: String, reason: String)
    /// The server's answer is not what the Hub sends (JSON, headers, a range).
    case invalidResponse(url: String, reason: String)
    /// The server named a file that could leave the repository folder (`..`, an absolute
    /// path, a backslash, an empty part); nothing is written for such a listing.
    case unsafeFileName(repository: String, name: String)
    /// The repository lists none of the files a model folder needs (no `config.json`).
    case noModelFiles(repository: String, revision: String)
    /// A downloaded file's bytes do not have the hash (or size) the Hub reports; the bytes
    /// are removed from the cache.
    case checksumMismatch(file: String, expected: String, actual: String)
    /// Reading or writing the cache (or the `--to` folder) failed.
    case fileSystem(path: String, reason: String)

    /// One line: what failed, and where.
    public var description: String {
        switch self {
        case .invalidRepository(let r):
            return "'\(r)' is not a Hub model id (NAME or ORG/NAME: letters, digits, '-', '_', '.')"
        case .invalidRevision(let r):
            return "'\(r)' is not a revision (a branch, tag or commit)"
        case .notCached(let r, let rev, let c):
            return "\(r) at revision \(rev) is not in the cache \(c), and HF_HUB_OFFLINE is set"
        case .httpStatus(let u, let s, let m):
            let hint =
                s == 401 || s == 403 ? " (a gated or private repository: set HF_TOKEN)"
                : s == 404 ? " (no such repository, revision or file)" : ""
            return "\(u): HTTP \(s)\(hint)\(m.isEmpty ? "" : ": \(m)")"
        case .transfer(let u, let r): return "\(u): \(r)"
        case .invalidResponse(let u, let r): return "\(u): unexpected answer: \(r)"
        case .unsafeFileName(let r, let n): return "\(r): the server lists an unsafe file name '\(n)'; nothing downloaded"
        case .noModelFiles(let r, let rev): return "\(r) at \(rev) has no config.json: not a model folder"
        case .checksumMismatch(let f, let e, let a): return "\(f): downloaded bytes do not match the Hub's hash: expected \(e), got \(a)"
        case .fileSystem(let p, let r): return "\(p): \(r)"
        }
    }
}
