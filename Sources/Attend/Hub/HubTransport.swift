import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One HTTP request, made synchronously with URLSession: the status, the headers and either
/// the body in memory (small answers) or the body streamed into a file (downloads, resumed
/// with `Range`). Redirects are followed (dropping `Authorization` when the host changes, as
/// `huggingface_hub` does) unless `followRedirects` is false.
final class HubRequest: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    /// Where a download's bytes go: `path`, continuing from byte `offset` on a 206.
    struct Sink {
        var path: String
        var offset: UInt64
    }

    let request: URLRequest
    let followRedirects: Bool
    let sink: Sink?
    /// Bytes received so far for the sink (called on URLSession's queue).
    let progress: (@Sendable (UInt64) -> Void)?

    // State written on the session's delegate queue, read after `done` is signalled.
    private(set) var response: HTTPURLResponse?
    private(set) var body = Data()
    private(set) var failure: HubError?
    private(set) var transportError: Error?
    private var handle: FileHandle?
    private var written: UInt64 = 0
    private let done = DispatchSemaphore(value: 0)

    init(_ request: URLRequest, followRedirects: Bool = true, sink: Sink? = nil, progress: (@Sendable (UInt64) -> Void)? = nil) {
        self.request = request
        self.followRedirects = followRedirects
        self.sink = sink
        self.progress = progress
    }

    /// Runs the request to its end. Throws `HubError.transfer` when no answer (or not the
    /// whole body) arrived, `HubError.fileSystem` or `.invalidResponse` from the sink.
    func run() throws -> HTTPURLResponse {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 60
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
        let task = session.dataTask(with: request)
        task.resume()
        done.wait()
        session.finishTasksAndInvalidate()
        try? handle?.close()
        handle = nil
        let url = request.url?.absoluteString ?? "?"
        if let failure { throw failure }
        if let transportError { throw HubError.transfer(url: url, reason: transportError.localizedDescription) }
        guard let response else { throw HubError.transfer(url: url, reason: "no HTTP answer") }
        return response
    }

    /// `body` as one line of text (for an error message), at most 200 characters.
    var bodyMessage: String {
        var text = String(decoding: body.prefix(400), as: UTF8.self)
        if let json = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let e = json["error"] as? String { text = e }
        return String(text.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(200))
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        let http = response as? HTTPURLResponse
        self.response = http
        if let sink, let http, http.statusCode == 200 || http.statusCode == 206 {
            do {
                try openSink(sink, http)
            } catch let e as HubError {
                failure = e
                completionHandler(.cancel)
                return
            } catch {
                failure = .fileSystem(path: sink.path, reason: error.localizedDescription)
                completionHandler(.cancel)
                return
            }
        }
        completionHandler(.allow)
    }

    private func openSink(_ sink: Sink, _ http: HTTPURLResponse) throws {
        let fm = FileManager.default
        if !fm.fileExists(atPath: sink.path) { _ = fm.createFile(atPath: sink.path, contents: nil) }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: sink.path))
        handle = h
        if http.statusCode == 206 {
            // Only a range starting where the partial file ends can be appended.
            let range = http.value(forHTTPHeaderField: "Content-Range") ?? ""
            guard sink.offset > 0, range.hasPrefix("bytes \(sink.offset)-") else {
                throw HubError.invalidResponse(
                    url: request.url?.absoluteString ?? "?", reason: "206 with Content-Range '\(range)' for a request from byte \(sink.offset)")
            }
            try h.truncate(atOffset: sink.offset)
            try h.seek(toOffset: sink.offset)
            written = sink.offset
        } else {
            try h.truncate(atOffset: 0)  // the server sends the whole file
            written = 0
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard failure == nil else { return }
        if let handle {
            do {
                try handle.write(contentsOf: data)
                written += UInt64(data.count)
                progress?(written)
            } catch {
                failure = .fileSystem(path: sink?.path ?? "?", reason: error.localizedDescription)
                dataTask.cancel()
            }
        } else if body.count < 64 << 20 {
            body.append(data)
        } else {
            failure = .invalidResponse(url: request.url?.absoluteString ?? "?", reason: "answer larger than 64 MiB")
            dataTask.cancel()
        }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        guard followRedirects else {
            completionHandler(nil)
            return
        }
        var next = newRequest
        if let range = request.value(forHTTPHeaderField: "Range") { next.setValue(range, forHTTPHeaderField: "Range") }
        next.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        if next.url?.host == request.url?.host, next.url?.port == request.url?.port,
            let auth = request.value(forHTTPHeaderField: "Authorization")
        {
            next.setValue(auth, forHTTPHeaderField: "Authorization")
        } else {
            next.setValue(nil, forHTTPHeaderField: "Authorization")
        }
        completionHandler(next)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, failure == nil { transportError = error }
        try? handle?.synchronize()
        done.signal()
    }
}
