// A local HTTP server that answers as the Hugging Face Hub does for one model repository,
// on 127.0.0.1 and an ephemeral port, written on POSIX sockets (one thread per connection,
// one request per connection, `Connection: close`):
//
//   GET  /api/models/ORG/NAME/revision/R[?blobs=true]   {"id", "sha", "siblings": [...]}
//   HEAD|GET /ORG/NAME/resolve/R/FILE   a regular file: 200 with ETag (git blob id),
//                                       X-Repo-Commit, Content-Length and the bytes;
//                                       an LFS file: 302 to /cdn/<sha256> with X-Linked-Etag,
//                                       X-Linked-Size, X-Repo-Commit
//   GET  /cdn/<sha256>                  the LFS bytes; 206 for `Range: bytes=N-`
//
// R is "main" or the commit. Knobs make it misbehave: drop the connection partway through a
// file, serve altered bytes under the right hash, list extra (hostile) names, or list files
// without their hashes (the client then reads the resolve headers). Every request is logged.
import Foundation

import Attend

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One request the server received.
struct LoggedRequest: Sendable {
    var method: String
    var path: String
    var headers: [String: String]  // lowercased names
    var status: Int
}

final class LocalHub: @unchecked Sendable {
    struct File {
        var name: String
        var data: Data
        var lfs: Bool
        var sha256: String
        var gitBlob: String
    }

    let repository: String
    let commit = "5f3c1a9e0b7d2c4e6f8091a2b3c4d5e6f7a8b9c0"
    let files: [File]
    /// Names listed in the API answer besides the files (README.md, .gitattributes, ...).
    let otherNames: [String]

    private let lock = NSLock()
    private var _log: [LoggedRequest] = []
    private var _dropAfter: [String: Int] = [:]
    private var _corrupt: Set<String> = []
    private var _extraSiblings: [String] = []
    private var _omitHashes = false
    private var _cdnHost: String? = nil
    private var _ignoreRange = false
    private var listener: Int32 = -1
    private(set) var port: UInt16 = 0

    /// Serves the files of `folder` (recursively) as `repository`; `*.safetensors` as LFS.
    init(folder: URL, repository: String = "acme/tiny-bert", otherNames: [String] = ["README.md", ".gitattributes"]) throws {
        self.repository = repository
        self.otherNames = otherNames
        let fm = FileManager.default
        var files: [File] = []
        for name in try fm.subpathsOfDirectory(atPath: folder.path).sorted() {
            var isDir: ObjCBool = false
            let url = folder.appendingPathComponent(name)
            guard fm.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue, name != "README.md" else { continue }
            let data = try Data(contentsOf: url)
            var s256 = SHA256()
            s256.update(data)
            var s1 = SHA1()
            s1.update(Array("blob \(data.count)\0".utf8))
            s1.update(data)
            files.append(File(name: name, data: data, lfs: name.hasSuffix(".safetensors"), sha256: s256.finalizeHex(), gitBlob: s1.finalizeHex()))
        }
        self.files = files
        try start()
    }

    deinit { stop() }

    var endpoint: URL { URL(string: "http://127.0.0.1:\(port)")! }

    func file(_ name: String) -> File { files.first { $0.name == name }! }

    /// The etag the cache names a file's blob by.
    func etag(_ name: String) -> String { let f = file(name); return f.lfs ? f.sha256 : f.gitBlob }

    var log: [LoggedRequest] { lock.withLock { _log } }
    func clearLog() { lock.withLock { _log = [] } }
    /// Requests for file bytes or headers (resolve and CDN), not the API.
    var fileRequests: [LoggedRequest] { log.filter { !$0.path.hasPrefix("/api/") } }

    /// The next transfer of `file` sends `bytes` of its body, then closes the connection.
    func dropOnce(_ file: String, after bytes: Int) { lock.withLock { _dropAfter[file] = bytes } }
    /// `file` is served with its first byte changed (the listed hashes stay right).
    func corrupt(_ file: String) { lock.withLock { _ = _corrupt.insert(file) } }
    /// Names added to the API's sibling list.
    func listExtra(_ names: [String]) { lock.withLock { _extraSiblings = names } }
    /// LFS redirects go to `http://<host>:<port>/cdn/...` (another host name for the same
    /// server, as the Hub's CDN is another host) instead of a relative path.
    func redirectLFS(toHost host: String) { lock.withLock { _cdnHost = host } }
    /// `Range` is ignored: the whole file, 200 (as servers without range support answer).
    func ignoreRange() { lock.withLock { _ignoreRange = true } }
    /// The API lists names only (no blobId, lfs or size), as without `?blobs=true`.
    func omitHashes() { lock.withLock { _omitHashes = true } }

    // MARK: socket plumbing

    private func start() throws {
        #if canImport(Glibc)
            listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            listener = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard listener >= 0 else { throw POSIXError(.EIO) }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) }
        }
        port = UInt16(bigEndian: addr.sin_port)
        let fd = listener
        let thread = Thread { [weak self] in
            while self?.isStopped == false {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return  // the listener was closed
                }
                guard let self else {
                    close(client)
                    return
                }
                Thread { self.serve(client) }.start()
            }
        }
        thread.start()
    }

    private var isStopped: Bool { lock.withLock { listener < 0 } }

    func stop() {
        lock.lock()
        defer { lock.unlock() }
        if listener >= 0 {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
            listener = -1
        }
    }

    private func send(_ fd: Int32, _ data: Data) -> Bool {
        #if canImport(Glibc)
            let flags = Int32(MSG_NOSIGNAL)
        #else
            let flags: Int32 = 0
        #endif
        return data.withUnsafeBytes { buf in
            var sent = 0
            while sent < buf.count {
                let n = Glibc_send(fd, buf.baseAddress! + sent, buf.count - sent, flags)
                if n <= 0 { return false }
                sent += n
            }
            return true
        }
    }

    private func serve(_ fd: Int32) {
        #if canImport(Darwin)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        defer {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !buffer.suffix(4).elementsEqual([13, 10, 13, 10]) {
            if buffer.count > 65536 { return }
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return }
            buffer += chunk[0..<n]
            if let r = String(decoding: buffer, as: UTF8.self).range(of: "\r\n\r\n") {
                buffer = Array(String(decoding: buffer, as: UTF8.self)[..<r.upperBound].utf8)
                break
            }
        }
        let lines = String(decoding: buffer, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let method = String(parts[0])
        let target = String(parts[1])
        let answer = respond(method: method, target: target, headers: headers)
        lock.withLock { _log.append(LoggedRequest(method: method, path: target, headers: headers, status: answer.status)) }
        var head = "HTTP/1.1 \(answer.status) \(answer.status == 200 ? "OK" : answer.status == 206 ? "Partial Content" : answer.status == 302 ? "Found" : "Error")\r\n"
        var fields = answer.headers
        fields["Content-Length"] = fields["Content-Length"] ?? String(answer.body.count)
        fields["Connection"] = "close"
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        guard send(fd, Data(head.utf8)) else { return }
        if method == "HEAD" { return }
        if let cut = answer.dropAfter {
            _ = send(fd, answer.body.prefix(cut))
            usleep(50_000)  // let the bytes reach the client before the connection ends
            return
        }
        _ = send(fd, answer.body)
    }

    private struct Answer {
        var status: Int
        var headers: [String: String] = [:]
        var body = Data()
        var dropAfter: Int? = nil
    }

    private func respond(method: String, target: String, headers: [String: String]) -> Answer {
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        let notFound = Answer(status: 404, headers: ["Content-Type": "application/json"], body: Data(#"{"error":"Entry not found"}"#.utf8))
        let apiPrefix = "/api/models/\(repository)/revision/"
        if path.hasPrefix(apiPrefix) {
            let revision = String(path.dropFirst(apiPrefix.count)).removingPercentEncoding ?? ""
            guard revision == "main" || revision == commit else {
                return Answer(status: 404, headers: ["Content-Type": "application/json"], body: Data(#"{"error":"Revision Not Found"}"#.utf8))
            }
            return Answer(status: 200, headers: ["Content-Type": "application/json"], body: apiJSON())
        }
        let resolvePrefix = "/\(repository)/resolve/"
        if path.hasPrefix(resolvePrefix) {
            let rest = String(path.dropFirst(resolvePrefix.count))
            guard let slash = rest.firstIndex(of: "/") else { return notFound }
            let revision = String(rest[..<slash])
            let name = String(rest[rest.index(after: slash)...]).removingPercentEncoding ?? ""
            guard revision == "main" || revision == commit, let f = files.first(where: { $0.name == name }) else { return notFound }
            if f.lfs {
                return Answer(
                    status: 302,
                    headers: [
                        "Location": (lock.withLock { _cdnHost }.map { "http://\($0):\(port)" } ?? "") + "/cdn/\(f.sha256)", "X-Repo-Commit": commit, "X-Linked-Etag": "\"\(f.sha256)\"",
                        "X-Linked-Size": String(f.data.count), "ETag": "\"\(f.gitBlob)\"",
                    ])
            }
            var a = body(of: f, headers: headers)
            a.headers["ETag"] = "\"\(f.gitBlob)\""
            a.headers["X-Repo-Commit"] = commit
            return a
        }
        if path.hasPrefix("/cdn/"), let f = files.first(where: { $0.lfs && "/cdn/\($0.sha256)" == path }) {
            return body(of: f, headers: headers)
        }
        return notFound
    }

    /// The bytes of `f` (a 206 from the `Range` start when asked), with the knobs applied.
    private func body(of f: File, headers: [String: String]) -> Answer {
        var data = f.data
        let (drop, corrupt, noRange) = lock.withLock { () -> (Int?, Bool, Bool) in
            let d = _dropAfter.removeValue(forKey: f.name)
            return (d, _corrupt.contains(f.name), _ignoreRange)
        }
        if corrupt, !data.isEmpty { data[data.startIndex] ^= 0xFF }
        var a = Answer(status: 200, headers: ["Content-Type": "application/octet-stream"], body: data)
        if !noRange, let range = headers["range"], range.hasPrefix("bytes="), range.hasSuffix("-"),
            let start = Int(range.dropFirst(6).dropLast())
        {
            guard start < data.count else { return Answer(status: 416, headers: ["Content-Range": "bytes */\(data.count)"]) }
            a.status = 206
            a.body = data.subdata(in: start..<data.count)
            a.headers["Content-Range"] = "bytes \(start)-\(data.count - 1)/\(data.count)"
        }
        a.dropAfter = drop
        return a
    }

    private func apiJSON() -> Data {
        let (extra, omit) = lock.withLock { (_extraSiblings, _omitHashes) }
        var siblings: [[String: Any]] = []
        for f in files {
            var s: [String: Any] = ["rfilename": f.name]
            if !omit {
                s["blobId"] = f.gitBlob
                s["size"] = f.data.count
                if f.lfs { s["lfs"] = ["sha256": f.sha256, "size": f.data.count, "pointerSize": 134] }
            }
            siblings.append(s)
        }
        for name in otherNames + extra {
            siblings.append(["rfilename": name, "blobId": String(repeating: "e", count: 40), "size": 10])
        }
        let json: [String: Any] = ["_id": "0", "id": repository, "modelId": repository, "sha": commit, "private": false, "siblings": siblings]
        return try! JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    }
}

#if canImport(Glibc)
    private let Glibc_send = Glibc.send
#else
    private let Glibc_send = Darwin.send
#endif
