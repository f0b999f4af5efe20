// `attend embed --output`: the sentence vectors of any number of texts (--input FILE, "-" or
// standard input), written to a .npy or .jsonl file in bounded memory, with progress on
// stderr, a summary, and --resume after an interruption.
//
// Texts are read one line at a time. A window of 16 batches is tokenized, sorted by length
// (longest first) and run batch by batch; its vectors are then written in input order, so at
// most one window of texts and vectors is in memory whatever the input's size.
//
// The files:
// - .npy: numpy format 1.0, float32 little-endian, C order, shape (rows, dimension). The
//   header is padded to 128 bytes, so the row count can be rewritten in place: it is updated
//   after every window. An interrupted file loads with np.load (the rows its header counts;
//   rows written after the last update are ignored until --resume counts them).
// - .jsonl: one line per text, {"text": ..., "ids": [...], "embedding": [...]}, as
//   `attend embed --json` prints it.
//
// --resume: the rows already in the output are kept and the same number of texts is skipped.
// .npy: the rows are the file's complete rows after the header (its size, not the header's
// count); a partial last row is cut off and the header rewritten. .jsonl: the complete lines;
// a partial last line is cut off, and the last complete line's text must equal the input's
// text of that number. Both: the dimension must be the model's. Without an output file,
// --resume starts a new one.
import Attend
import AttendCommandLine
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Embeds `--input` (or standard input) into `--output` (see the file comment).
func embedToFile(folder: URL, _ args: Arguments) throws {
    guard let outputPath = args.output else { return }
    let inputPath = args.input.flatMap { $0 == "-" ? nil : $0 }
    if let inputPath, sameFile(inputPath, outputPath) {
        throw UsageError(description: "--output \(outputPath) is the --input file")
    }
    let kind = try EmbeddingFile.Kind(path: outputPath)
    // Everything about the command line is checked before the model loads.
    if let inputPath {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: inputPath, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw UsageError(description: "--input \(inputPath): no such file")
        }
    }
    let embedder = try loadEmbedder(folder: folder, args)
    let dim = embedder.dimension
    let total = try inputPath.flatMap { try countTexts(path: $0, format: args.inputFormat) }
    let output = try EmbeddingFile(path: outputPath, kind: kind, dimension: dim, resume: args.resume)
    defer { output.close() }

    let reader = try TextLineReader(path: inputPath, format: args.inputFormat)
    // Skip the texts the output already holds.
    let kept = output.rows
    for n in 0..<kept {
        guard let text = try reader.next() else {
            throw UsageError(description: "--resume: \(outputPath) holds \(kept) rows but the input has only \(n) texts")
        }
        if n == kept - 1, let last = output.lastText, last != text {
            throw UsageError(
                description: "--resume: line \(kept) of \(outputPath) is the text \(jsonString(last)) but text \(kept) of the input is \(jsonString(text)) (another input?)")
        }
    }

    let progress = EmbedProgress(total: total, done: kept)
    let batchSize = args.batchSize
    // 16 batches per window, saturating: --batch-size may be as large as an Int holds.
    let (product, overflow) = batchSize.multipliedReportingOverflow(by: 16)
    let window = overflow ? Int.max : product
    var tokens = 0
    while true {
        var texts: [String] = []
        while texts.count < window, let t = try reader.next() { texts.append(t) }
        if texts.isEmpty { break }
        let encodings = texts.map { embedder.encode($0) }
        // Longest first, ties in input order: batches of similar lengths.
        let order = encodings.indices.sorted { (encodings[$0].length, $1) > (encodings[$1].length, $0) }
        var vectors = [Float](repeating: 0, count: texts.count * dim)
        var start = 0
        while start < order.count {
            let idx = order[start..<min(start + batchSize, order.count)]
            start += idx.count
            let v = try embedder.embed(encodings: idx.map { encodings[$0] }, batchSize: idx.count).scalars
            for (k, i) in idx.enumerated() {
                vectors.replaceSubrange((i * dim)..<((i + 1) * dim), with: v[(k * dim)..<((k + 1) * dim)])
                tokens += encodings[i].length
            }
            progress.advance(idx.count, tokens: tokens)
        }
        try output.append(texts: texts, ids: encodings.map(\.ids), vectors: vectors)
    }
    try output.finish()
    progress.finish()
    let seconds = progress.elapsed
    let embedded = output.rows - kept
    var line = String(
        format: "attend: embedded %d texts (%d tokens) in %.2f s: %.1f texts/s, %.0f tokens/s, peak memory %.0f MiB",
        embedded, tokens, seconds, seconds > 0 ? Double(embedded) / seconds : 0, seconds > 0 ? Double(tokens) / seconds : 0,
        peakMemoryMiB())
    if kept > 0 { line += "; resumed after \(kept) rows" }
    line += "; \(output.rows) rows of \(dim) in \(outputPath)\n"
    FileHandle.standardError.write(Data(line.utf8))
}

/// Whether two paths name one existing file (same device and inode).
func sameFile(_ a: String, _ b: String) -> Bool {
    var sa = stat(), sb = stat()
    guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
}

/// The folder's embedder; `--max-length N` cuts texts to N tokens ([CLS] and [SEP] included,
/// at most the model's positions) instead of sentence_bert_config.json's `max_seq_length`.
func loadEmbedder(folder: URL, _ args: Arguments) throws -> SentenceEmbedder {
    let e = try SentenceEmbedder(directory: folder, weightPrecision: args.precision)
    guard let m = args.maxLength else { return e }
    guard m > e.tokenizer.specialTokenCount() else {
        throw UsageError(description: "--max-length \(m) leaves no room for text besides the \(e.tokenizer.specialTokenCount()) special tokens")
    }
    return try SentenceEmbedder(
        model: e.model, tokenizer: e.tokenizer, pooling: e.pooling, normalize: e.normalize, maxLength: m,
        lowercasesInput: e.lowercasesInput)
}

// MARK: Input

/// The texts of a file or standard input, one line at a time (`--input-format lines`: every
/// line, its line break and a final "\r" removed; `jsonl`: the "text" of each non-blank line).
final class TextLineReader {
    private let file: UnsafeMutablePointer<FILE>
    private let ownsFile: Bool
    private let name: String
    private let format: Arguments.InputFormat
    private var buffer: UnsafeMutablePointer<CChar>? = nil
    private var capacity = 0
    /// The number of the line read last (1-based).
    private(set) var lineNumber = 0

    /// Opens `path` (nil: standard input). Throws `UsageError` when it cannot be opened.
    init(path: String?, format: Arguments.InputFormat) throws {
        if let path {
            guard let f = fopen(path, "rb") else { throw UsageError(description: "--input \(path): cannot open the file") }
            (file, ownsFile, name) = (f, true, path)
        } else {
            guard let f = fdopen(0, "rb") else { throw UsageError(description: "standard input cannot be read") }
            (file, ownsFile, name) = (f, false, "-")
        }
        self.format = format
    }

    deinit {
        free(buffer)
        if ownsFile { fclose(file) }
    }

    /// The next line's bytes (without its line break), nil at the end.
    func nextLine() -> [UInt8]? {
        let n = getline(&buffer, &capacity, file)
        guard n >= 0, let buffer else { return nil }
        lineNumber += 1
        var count = n
        if count > 0 && buffer[count - 1] == 0x0A { count -= 1 }
        if count > 0 && buffer[count - 1] == 0x0D { count -= 1 }
        return buffer.withMemoryRebound(to: UInt8.self, capacity: count) { Array(UnsafeBufferPointer(start: $0, count: count)) }
    }

    /// The next text, nil at the end. Throws `UsageError` for a JSONL line without a "text".
    func next() throws -> String? {
        while let bytes = nextLine() {
            switch format {
            case .lines: return String(decoding: bytes, as: UTF8.self)
            case .jsonl:
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                    let text = object["text"] as? String
                else {
                    throw UsageError(description: "\(name): line \(lineNumber) is not a JSON object with a string \"text\"")
                }
                return text
            }
        }
        return nil
    }
}

/// The number of texts in a regular file (for the progress bar), nil for a pipe or device.
func countTexts(path: String, format: Arguments.InputFormat) throws -> Int? {
    var st = stat()
    guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    let reader = try TextLineReader(path: path, format: format)
    var n = 0
    while let line = reader.nextLine() {
        if format == .lines || !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { n += 1 }
    }
    return n
}

// MARK: Output

/// A read or write of the output file that failed (a full disk, a lost mount): exit status 1.
struct OutputFileError: Error, CustomStringConvertible {
    let description: String
}

/// An output file of sentence vectors, .npy or .jsonl, appended to window by window.
final class EmbeddingFile {
    enum Kind {
        case npy, jsonl

        /// The kind an output path's extension names; `UsageError` for another.
        init(path: String) throws {
            switch URL(fileURLWithPath: path).pathExtension.lowercased() {
            case "npy": self = .npy
            case "jsonl": self = .jsonl
            default:
                throw UsageError(description: "--output \(path): unknown extension (use .npy for a float32 matrix or .jsonl for one JSON object per text)")
            }
        }
    }

    /// The size of the .npy header written here: room for any row count.
    static let npyHeaderSize = 128

    let path: String
    let kind: Kind
    let dimension: Int
    /// Rows written (complete rows kept from an earlier run included).
    private(set) var rows = 0
    /// (.jsonl, resumed) the text of the last complete line kept.
    private(set) var lastText: String? = nil
    /// (.npy) where the rows start.
    private var dataOffset = EmbeddingFile.npyHeaderSize
    private var fd: Int32

    /// Creates (or, with `resume` and an existing file, reopens and checks) the output.
    init(path: String, kind: Kind, dimension: Int, resume: Bool) throws {
        (self.path, self.kind, self.dimension) = (path, kind, dimension)
        if resume && FileManager.default.fileExists(atPath: path) {
            fd = open(path, O_RDWR)
            guard fd >= 0 else { throw UsageError(description: "--output \(path): cannot open it (\(String(cString: strerror(errno))))") }
            do {
                switch kind {
                case .npy: try reopenNPY()
                case .jsonl: try reopenJSONL()
                }
                guard lseek(fd, 0, SEEK_END) >= 0 else { throw failure("seek") }
            } catch {
                closeDescriptor(fd)
                throw error
            }
        } else {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw UsageError(description: "--output \(path): cannot create it (\(String(cString: strerror(errno))))") }
            if kind == .npy { try writeAll(EmbeddingFile.npyHeader(rows: 0, dimension: dimension, size: dataOffset)) }
        }
    }

    /// Closes the file (idempotent).
    func close() {
        if fd >= 0 { closeDescriptor(fd) }
        fd = -1
    }

    /// Appends one window: `texts.count` rows of `vectors` (`[texts.count, dimension]`), then
    /// (.npy) rewrites the header's row count.
    func append(texts: [String], ids: [[Int]], vectors: [Float]) throws {
        switch kind {
        case .npy:
            // Little-endian float32 (every platform Swift runs Attend on is little-endian).
            try vectors.withUnsafeBytes { try writeAll(Array($0)) }
            rows += texts.count
            try rewriteNPYHeader()
        case .jsonl:
            var text = ""
            for (i, t) in texts.enumerated() {
                text += jsonObject([
                    ("text", .string(t)), ("ids", .ints(ids[i])),
                    ("embedding", .floats(Array(vectors[(i * dimension)..<((i + 1) * dimension)]))),
                ])
                text += "\n"
            }
            try writeAll(Array(text.utf8))
            rows += texts.count
        }
    }

    /// The last header update and a flush to the file system.
    func finish() throws {
        if kind == .npy { try rewriteNPYHeader() }
        _ = fsync(fd)
    }

    // MARK: .npy

    /// A format 1.0 header for `(rows, dimension)` float32 C-order data, padded with spaces to
    /// `size` bytes (a multiple of 64, as numpy aligns it). Nil when the dictionary does not fit.
    static func npyHeader(rows: Int, dimension: Int, size: Int = npyHeaderSize) -> [UInt8]? {
        var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(dimension)), }"
        let room = size - 10 - 1  // magic, version, length; the final newline
        guard dict.utf8.count <= room, size - 10 <= 0xFFFF else { return nil }
        dict += String(repeating: " ", count: room - dict.utf8.count) + "\n"
        let length = UInt16(size - 10)
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(dict.utf8)
    }

    private func writeAll(_ bytes: [UInt8]?) throws {
        guard let bytes else { throw UsageError(description: "--output \(path): the row count does not fit the .npy header") }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw failure("write") }
            done += n
        }
    }

    private func rewriteNPYHeader() throws {
        guard let header = EmbeddingFile.npyHeader(rows: rows, dimension: dimension, size: dataOffset) else {
            throw UsageError(description: "--output \(path): the row count \(rows) does not fit the .npy header")
        }
        let n = header.withUnsafeBytes { pwrite(fd, $0.baseAddress!, header.count, 0) }
        guard n == header.count else { throw failure("write the header of") }
    }

    private func failure(_ what: String) -> OutputFileError {
        OutputFileError(description: "--output \(path): cannot \(what) the file (\(String(cString: strerror(errno))))")
    }

    private func fileSize() throws -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure("read the size of") }
        return Int(st.st_size)
    }

    private func read(at offset: Int, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, off_t(offset)) }
        guard n >= 0 else { throw failure("read") }
        return Array(bytes.prefix(n))
    }

    /// Reads and checks the header of an existing .npy file (float32 little-endian, C order,
    /// 2-D with this dimension), counts its complete rows from its size, cuts a partial last
    /// row and rewrites the count.
    private func reopenNPY() throws {
        let name = "--resume: \(path)"
        let size = try fileSize()
        let start = try read(at: 0, count: 12)
        guard start.count >= 10, start.prefix(6) == [0x93] + Array("NUMPY".utf8) else {
            throw UsageError(description: "\(name) is not a .npy file")
        }
        let version = start[6]
        let headerLength: Int, prefix: Int
        switch version {
        case 1: (headerLength, prefix) = (Int(start[8]) | Int(start[9]) << 8, 10)
        case 2, 3:
            guard start.count == 12 else { throw UsageError(description: "\(name): the .npy header is cut off") }
            (headerLength, prefix) = (Int(start[8]) | Int(start[9]) << 8 | Int(start[10]) << 16 | Int(start[11]) << 24, 12)
        default: throw UsageError(description: "\(name): .npy format version \(version) is not 1, 2 or 3")
        }
        guard prefix + headerLength <= size, headerLength <= 1 << 20 else {
            throw UsageError(description: "\(name): the .npy header is cut off")
        }
        let dict = String(decoding: try read(at: prefix, count: headerLength), as: UTF8.self)
        func value(_ key: String) -> Substring? {
            guard let r = dict.range(of: "'\(key)':") else { return nil }
            return dict[r.upperBound...].drop(while: { $0 == " " })
        }
        guard let descr = value("descr"), descr.hasPrefix("'<f4'") || descr.hasPrefix("'float32'") else {
            throw UsageError(description: "\(name): the .npy data is not float32 little-endian ('descr': '<f4')")
        }
        guard let fortran = value("fortran_order"), fortran.hasPrefix("False") else {
            throw UsageError(description: "\(name): the .npy data is in Fortran order")
        }
        guard let shape = value("shape"), shape.hasPrefix("("), let close = shape.firstIndex(of: ")") else {
            throw UsageError(description: "\(name): the .npy header has no shape")
        }
        let dims = shape[shape.index(after: shape.startIndex)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard dims.count == 2, let fileDim = Int(dims[1]), Int(dims[0]) != nil else {
            throw UsageError(description: "\(name): shape (\(dims.joined(separator: ", "))) is not (rows, dimension)")
        }
        guard fileDim == dimension else {
            throw UsageError(description: "\(name) holds vectors of dimension \(fileDim) but the model's are \(dimension) (another model?)")
        }
        guard version == 1 else {
            throw UsageError(description: "\(name): .npy format version \(version) is not the 1.0 this writes")
        }
        dataOffset = prefix + headerLength
        let rowBytes = 4 * dimension
        rows = (size - dataOffset) / rowBytes
        guard ftruncate(fd, off_t(dataOffset + rows * rowBytes)) == 0 else { throw failure("truncate") }
        try rewriteNPYHeader()
    }

    /// Counts the complete lines of an existing .jsonl file (reading it in blocks), checks the
    /// dimension and keeps the text of the last one, and cuts a partial last line.
    private func reopenJSONL() throws {
        let size = try fileSize()
        let block = 1 << 16
        var offset = 0, lines = 0
        var lastEnd = -1, lastStart = 0  // the last complete line: [lastStart, lastEnd)
        while offset < size {
            let bytes = try read(at: offset, count: min(block, size - offset))
            if bytes.isEmpty { break }
            for (k, b) in bytes.enumerated() where b == 0x0A {
                lastStart = lastEnd + 1
                lastEnd = offset + k
                lines += 1
            }
            offset += bytes.count
        }
        if lines > 0 {
            let bytes = try read(at: lastStart, count: lastEnd - lastStart)
            guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                let text = object["text"] as? String, let embedding = object["embedding"] as? [Any]
            else {
                throw UsageError(description: "--resume: line \(lines) of \(path) is not an object with \"text\" and \"embedding\"")
            }
            guard embedding.count == dimension else {
                throw UsageError(
                    description: "--resume: \(path) holds vectors of dimension \(embedding.count) but the model's are \(dimension) (another model?)")
            }
            lastText = text
        }
        rows = lines
        guard ftruncate(fd, off_t(lastEnd + 1)) == 0 else { throw failure("truncate") }
    }
}

/// Closes a file descriptor.
private func closeDescriptor(_ fd: Int32) {
    #if canImport(Glibc)
        _ = Glibc.close(fd)
    #else
        _ = Darwin.close(fd)
    #endif
}

// MARK: Progress

/// Progress on stderr: a bar redrawn in place when stderr is a terminal (texts/s, and the
/// percentage and time left when the number of texts is known), else a line every 5 seconds.
final class EmbedProgress {
    let total: Int?
    private let startTime = DispatchTime.now().uptimeNanoseconds
    private let initial: Int
    private var done: Int
    private var tokens = 0
    private let terminal = isatty(2) != 0
    private var lastReport = 0.0

    init(total: Int?, done: Int) {
        (self.total, self.initial, self.done) = (total, done, done)
    }

    /// Seconds since the start.
    var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - startTime) / 1e9 }

    /// `count` more texts are done (`tokens` so far).
    func advance(_ count: Int, tokens: Int) {
        done += count
        self.tokens = tokens
        let t = elapsed
        if t - lastReport >= (terminal ? 0.2 : 5) {
            lastReport = t
            report(t)
        }
    }

    /// Clears the bar.
    func finish() {
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    private func report(_ t: Double) {
        let rate = t > 0 ? Double(done - initial) / t : 0
        var parts = ["\(done)\(total.map { "/\($0)" } ?? "") texts", String(format: "%.1f texts/s", rate)]
        if t > 0 { parts.append(String(format: "%.0f tokens/s", Double(tokens) / t)) }
        var bar = ""
        if let total, total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            if rate > 0 { parts.append("ETA " + clock(Double(max(0, total - done)) / rate)) }
            let width = 24, filled = Int(fraction * Double(width))
            bar = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                + String(format: "%3.0f%% ", fraction * 100)
        }
        let line = bar + parts.joined(separator: ", ")
        FileHandle.standardError.write(Data((terminal ? "\r\u{1B}[K" + line : "attend: " + line + "\n").utf8))
    }

    private func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
