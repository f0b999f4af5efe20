/// One piece of text between pre-tokenization steps: its bytes (valid UTF-8) and whether it
/// starts at the very beginning of the input (Metaspace's `prepend_scheme: first` asks).
struct TextPiece: Sendable {
    var bytes: [UInt8]
    var atStart: Bool
}

/// How `Split`-style pre-tokenizers treat the delimiter they find.
enum SplitBehavior: Sendable {
    case removed, isolated, mergedWithPrevious, mergedWithNext, contiguous

    init(_ f: JSONFields, _ key: String) throws {
        switch try f.string(key) ?? "Isolated" {
        case "Removed": self = .removed
        case "Isolated": self = .isolated
        case "MergedWithPrevious": self = .mergedWithPrevious
        case "MergedWithNext": self = .mergedWithNext
        case "Contiguous": self = .contiguous
        case let other: throw f.fail(key, "unknown split behavior \(SafeTensorsError.quoted(other))")
        }
    }
}

/// Metaspace's rule for adding the replacement character in front of a piece.
enum PrependScheme: Sendable {
    case always, first, never
}

/// A tokenizer.json pre-tokenizer: cuts normalized text into the pieces the model sees one at
/// a time. Cost: linear in the text.
indirect enum PreTokenizer: Sendable {
    case bert
    case whitespaceSplit
    /// `\w+|[^\w\s]+`.
    case whitespace
    case metaspace(replacement: [UInt8], prepend: PrependScheme, split: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case punctuation(SplitBehavior)
    case digits(individual: Bool)
    /// A literal delimiter.
    case splitLiteral(pattern: [UInt8], behavior: SplitBehavior, invert: Bool)
    /// One of the known regular expressions (GPT-2's, Qwen2's, Llama 3's), implemented by hand.
    case splitRegex(KnownPattern, behavior: SplitBehavior, invert: Bool)
    case sequence([PreTokenizer])

    func apply(_ pieces: [TextPiece]) -> [TextPiece] {
        var out: [TextPiece] = []
        out.reserveCapacity(pieces.count * 2)
        for p in pieces { apply(p, into: &out) }
        return out
    }

    func apply(_ piece: TextPiece, into out: inout [TextPiece]) {
        switch self {
        case .sequence(let steps):
            var current = [piece]
            for s in steps { current = s.apply(current) }
            out += current
        case .bert:
            var words: [PreToken] = []
            piece.bytes.withUnsafeBufferPointer { bertPreTokenize($0, 0..<$0.count, into: &words) }
            for w in words { out.append(TextPiece(bytes: Array(piece.bytes[w.start..<w.end]), atStart: piece.atStart && w.start == 0)) }
        case .whitespaceSplit:
            splitMatches(piece, behavior: .removed, into: &out) { t, i in
                var j = i
                while j < t.count {
                    let (v, n) = decodeUTF8(t, at: j)
                    guard isUnicodeWhitespace(v) else { break }
                    j += n
                }
                return j > i ? j : nil
            }
        case .whitespace:
            splitMatches(piece, behavior: .removed, into: &out, invert: true) { t, i in
                // \w+ | [^\w\s]+ : a run of one class.
                let (v, _) = decodeUTF8(t, at: i)
                if isUnicodeWhitespace(v) { return nil }
                let word = isRegexWordCharacter(v)
                var j = i
                while j < t.count {
                    let (w, n) = decodeUTF8(t, at: j)
                    if isUnicodeWhitespace(w) || isRegexWordCharacter(w) != word { break }
                    j += n
                }
                return j
            }
        case .metaspace(let replacement, let scheme, let split):
            var b = replaceAll(piece.bytes, [0x20], replacement)
            let starts = b.starts(with: replacement)
            switch scheme {
            case .always: if !starts { b = replacement + b }
            case .first: if !starts && piece.atStart { b = replacement + b }
            case .never: break
            }
            let p = TextPiece(bytes: b, atStart: piece.atStart)
            if split {
                splitMatches(p, behavior: .mergedWithNext, into: &out) { t, i in
                    i + replacement.count <= t.count && t[i..<(i + replacement.count)].elementsEqual(replacement) ? i + replacement.count : nil
                }
            } else {
                out.append(p)
            }
        case .byteLevel(let addPrefixSpace, let useRegex):
            var p = piece
            if addPrefixSpace && p.bytes.first != 0x20 { p.bytes.insert(0x20, at: 0) }
            var parts: [TextPiece] = []
            if useRegex {
                splitMatches(p, behavior: .isolated, into: &parts, invert: true) { t, i in gpt2Match(t, i) }
            } else {
                parts = [p]
            }
            for q in parts { out.append(TextPiece(bytes: ByteLevelTable.shared.encode(q.bytes), atStart: q.atStart)) }
        case .punctuation(let behavior):
            splitMatches(piece, behavior: behavior, into: &out) { t, i in
                let (v, n) = decodeUTF8(t, at: i)
                return isBertPunctuation(v) ? i + n : nil
            }
        case .digits(let individual):
            // Rust's `char::is_numeric`: every number category (Nd, Nl, No).
            splitMatches(piece, behavior: .isolated, into: &out) { t, i in
                let (v, n) = decodeUTF8(t, at: i)
                guard isNumber(v) else { return nil }
                if individual { return i + n }
                var j = i + n
                while j < t.count {
                    let (w, m) = decodeUTF8(t, at: j)
                    guard isNumber(w) else { break }
                    j += m
                }
                return j
            }
        case .splitLiteral(let pattern, let behavior, let invert):
            if pattern.isEmpty {
                out.append(piece)
                return
            }
            splitMatches(piece, behavior: behavior, into: &out, invert: invert) { t, i in
                i + pattern.count <= t.count && t[i..<(i + pattern.count)].elementsEqual(pattern) ? i + pattern.count : nil
            }
        case .splitRegex(let known, let behavior, let invert):
            splitMatches(piece, behavior: behavior, into: &out, invert: invert) { t, i in known.match(t, i) }
        }
    }

    /// Splits `piece` around the matches that `match(text, i)` finds (the end of a match
    /// starting at byte i, or nil), scanning left to right without overlap, and keeps the
    /// delimiters as `behavior` says. With `invert`, the matches are the pieces kept and the
    /// text between them is the delimiter.
    private func splitMatches(
        _ piece: TextPiece, behavior: SplitBehavior, into out: inout [TextPiece], invert: Bool = false,
        _ match: (UnsafeBufferPointer<UInt8>, Int) -> Int?
    ) {
        // (range, isMatch) in order, covering the text.
        var spans: [(Range<Int>, Bool)] = []
        piece.bytes.withUnsafeBufferPointer { t in
            var i = 0, last = 0
            while i < t.count {
                if let e = match(t, i), e > i {
                    if last < i { spans.append((last..<i, false)) }
                    spans.append((i..<e, true))
                    i = e
                    last = e
                } else {
                    i += max(1, validUTF8Length(t, at: i))
                }
            }
            if last < t.count { spans.append((last..<t.count, false)) }
        }
        if invert { spans = spans.map { ($0.0, !$0.1) } }
        var ranges: [Range<Int>] = []
        switch behavior {
        case .removed:
            ranges = spans.filter { !$0.1 }.map(\.0)
        case .isolated:
            ranges = spans.map(\.0)
        case .mergedWithPrevious:
            var pending: Range<Int>? = nil
            for (r, isDelimiter) in spans {
                if isDelimiter {
                    ranges.append((pending?.lowerBound ?? r.lowerBound)..<r.upperBound)
                    pending = nil
                } else {
                    if let p = pending { ranges.append(p) }
                    pending = r
                }
            }
            if let p = pending { ranges.append(p) }
        case .mergedWithNext:
            var pending: Range<Int>? = nil
            for (r, isDelimiter) in spans {
                if isDelimiter {
                    if let p = pending { ranges.append(p) }
                    pending = r
                } else {
                    ranges.append((pending?.lowerBound ?? r.lowerBound)..<r.upperBound)
                    pending = nil
                }
            }
            if let p = pending { ranges.append(p) }
        case .contiguous:
            var current: (Range<Int>, Bool)? = nil
            for (r, isDelimiter) in spans {
                if let c = current, c.1 && isDelimiter {
                    current = (c.0.lowerBound..<r.upperBound, true)
                } else {
                    if let c = current { ranges.append(c.0) }
                    current = (r, isDelimiter)
                }
            }
            if let c = current { ranges.append(c.0) }
        }
        for r in ranges where !r.isEmpty {
            out.append(TextPiece(bytes: Array(piece.bytes[r]), atStart: piece.atStart && r.lowerBound == 0))
        }
    }

    /// Reads tokenizer.json's `pre_tokenizer` object.
    init(_ f: JSONFields) throws {
        let type = try f.string("type") ?? ""
        switch type {
        case "BertPreTokenizer": self = .bert
        case "WhitespaceSplit": self = .whitespaceSplit
        case "Whitespace": self = .whitespace
        case "Metaspace":
            let replacement = try f.bytes("replacement") ?? Array("\u{2581}".utf8)
            guard !replacement.isEmpty else { throw f.fail("replacement", "empty") }
            var scheme = PrependScheme.always
            if let s = try f.string("prepend_scheme") {
                switch s {
                case "always": scheme = .always
                case "first": scheme = .first
                case "never": scheme = .never
                default: throw f.fail("prepend_scheme", "expected always, first or never, found \(SafeTensorsError.quoted(s))")
                }
            } else if let legacy = try f.bool("add_prefix_space") {
                scheme = legacy ? .always : .never
            }
            self = .metaspace(replacement: replacement, prepend: scheme, split: try f.bool("split") ?? true)
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: try f.bool("add_prefix_space") ?? true, useRegex: try f.bool("use_regex") ?? true)
        case "Punctuation": self = .punctuation(try SplitBehavior(f, "behavior"))
        case "Digits": self = .digits(individual: try f.bool("individual_digits") ?? false)
        case "Split":
            guard let p = try f.object("pattern") else { throw f.fail("pattern", "missing") }
            let behavior = try SplitBehavior(f, "behavior")
            let invert = try f.bool("invert") ?? false
            if let s = try p.bytes("String") {
                self = .splitLiteral(pattern: s, behavior: behavior, invert: invert)
            } else if let r = try p.string("Regex") {
                guard let known = KnownPattern(r) else {
                    throw ModelFileError.unsupported(
                        path: f.path,
                        what:
                            "\(p.key("Regex")): pre-tokenizer type \"Split\" with the regular expression \(SafeTensorsError.quoted(r)) (implemented: the patterns of GPT-2, Qwen2 and Llama 3)"
                    )
                }
                self = .splitRegex(known, behavior: behavior, invert: invert)
            } else {
                throw p.fail("String", "missing")
            }
        case "Sequence":
            guard let items = try f.array("pretokenizers") else { throw f.fail("pretokenizers", "missing") }
            self = .sequence(
                try items.enumerated().map { i, v in
                    try PreTokenizer(try JSONFields(v, path: f.path, prefix: f.key("pretokenizers") + "[\(i)]"))
                })
        default:
            throw unsupportedComponent(
                f, kind: "pre-tokenizer", type: type,
                supported:
                    "BertPreTokenizer, Whitespace, WhitespaceSplit, Metaspace, ByteLevel, Punctuation, Digits, Split (literal, or the GPT-2 / Qwen2 / Llama 3 pattern), Sequence"
            )
        }
    }
}

/// Regular expressions that tokenizer.json files use, matched by hand code (no regex engine:
/// the same results on every platform).
enum KnownPattern: Sendable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (GPT-2, RoBERTa).
    case gpt2
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,n}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with n = 1 (Qwen2) or 3 (Llama 3, cl100k).
    case cl100k(maxDigits: Int)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwenSource = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init?(_ source: String) {
        switch source {
        case KnownPattern.gpt2Source: self = .gpt2
        case KnownPattern.qwenSource: self = .cl100k(maxDigits: 1)
        case KnownPattern.llama3Source: self = .cl100k(maxDigits: 3)
        default: return nil
        }
    }

    func match(_ t: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int? {
        switch self {
        case .gpt2: return gpt2Match(t, i)
        case .cl100k(let maxDigits): return cl100kMatch(t, i, maxDigits: maxDigits)
        }
    }
}

@inline(__always) func isLetter(_ v: UInt32) -> Bool {
    if v < 0x80 { return (v | 0x20) >= 0x61 && (v | 0x20) <= 0x7A }
    switch Unicode.Scalar(v)!.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
}

@inline(__always) func isNumber(_ v: UInt32) -> Bool {
    if v < 0x80 { return v >= 0x30 && v <= 0x39 }
    switch Unicode.Scalar(v)!.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}

@inline(__always) func isDecimalDigit(_ v: UInt32) -> Bool {
    if v < 0x80 { return v >= 0x30 && v <= 0x39 }
    return Unicode.Scalar(v)!.properties.generalCategory == .decimalNumber
}

/// `\w` of the reference's regex engine (Oniguruma, Unicode): alphabetic characters, marks,
/// decimal numbers, connector punctuation and the joiners U+200C / U+200D.
func isRegexWordCharacter(_ v: UInt32) -> Bool {
    if v < 0x80 { return isLetter(v) || isDecimalDigit(v) || v == 0x5F }
    if v == 0x200C || v == 0x200D { return true }
    let p = Unicode.Scalar(v)!.properties
    if p.isAlphabetic { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}

/// The end of GPT-2's pattern's match at byte `i` of valid UTF-8 `t` (every position starts a
/// match: the last alternative takes any whitespace, the others everything else).
func gpt2Match(_ t: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int? {
    let n = t.count
    // 's 't 're 've 'm 'll 'd
    if t[i] == 0x27 && i + 1 < n {
        let c = t[i + 1]
        if c == 0x73 || c == 0x74 || c == 0x6D || c == 0x64 { return i + 2 }
        if i + 2 < n {
            let d = t[i + 2]
            if (c == 0x72 && d == 0x65) || (c == 0x76 && d == 0x65) || (c == 0x6C && d == 0x6C) { return i + 3 }
        }
    }
    // ` ?` then a run of one class: letters, numbers, or neither-space-letter-nor-number.
    var j = i
    if t[j] == 0x20 && j + 1 < n { j += 1 }
    let (v, len) = decodeUTF8(t, at: j)
    func run(from start: Int, _ inClass: (UInt32) -> Bool) -> Int {
        var k = start
        while k < n {
            let (w, m) = decodeUTF8(t, at: k)
            guard inClass(w) else { break }
            k += m
        }
        return k
    }
    if isLetter(v) { return run(from: j + len, isLetter) }
    if isNumber(v) { return run(from: j + len, isNumber) }
    if !isUnicodeWhitespace(v) {
        return run(from: j + len) { !isUnicodeWhitespace($0) && !isLetter($0) && !isNumber($0) }
    }
    // Whitespace: `\s+(?!\S)` (a run not followed by a non-space: give back its last scalar when
    // it is), else `\s+`.
    var k = i, lastStart = i, count = 0
    while k < n {
        let (w, m) = decodeUTF8(t, at: k)
        guard isUnicodeWhitespace(w) else { break }
        lastStart = k
        k += m
        count += 1
    }
    if k < n && count > 1 { return lastStart }
    return k
}

/// GPT-2's byte-to-unicode table: each byte is a printable character (printable ASCII and
/// Latin-1 bytes stand for themselves, the rest map to U+0100 and up in order).
struct ByteLevelTable: Sendable {
    /// The UTF-8 of each byte's character.
    let encoded: [[UInt8]]
    /// Character (scalar value) -> byte, for U+0000...U+01FF (-1: not in the table).
    let decoded: [Int16]

    static let shared = ByteLevelTable()

    private init() {
        var scalars = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                scalars[b] = UInt32(b)
            } else {
                scalars[b] = 256 + extra
                extra += 1
            }
        }
        encoded = scalars.map { Array(String(Unicode.Scalar($0)!).utf8) }
        var d = [Int16](repeating: -1, count: 512)
        for (b, s) in scalars.enumerated() { d[Int(s)] = Int16(b) }
        decoded = d
    }

    func encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out += encoded[Int(b)] }
        return out
    }

    /// The bytes a token's characters stand for, or nil when one is not in the table.
    func decode(_ token: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        var ok = true
        token.withUnsafeBufferPointer { t in
            var i = 0
            while i < t.count {
                let n = validUTF8Length(t, at: i)
                guard n > 0 else { ok = false; return }
                let (v, _) = decodeUTF8(t, at: i)
                guard v < 512, decoded[Int(v)] >= 0 else { ok = false; return }
                out.append(UInt8(decoded[Int(v)]))
                i += n
            }
        }
        return ok ? out : nil
    }
}

/// The end of the cl100k-style pattern's match (Qwen2, Llama 3) at byte `i` of valid UTF-8
/// `t`, alternatives tried in order as a backtracking engine would.
func cl100kMatch(_ t: UnsafeBufferPointer<UInt8>, _ i: Int, maxDigits: Int) -> Int? {
    let n = t.count
    @inline(__always) func scalar(_ k: Int) -> (UInt32, Int) { decodeUTF8(t, at: k) }
    @inline(__always) func isNewline(_ v: UInt32) -> Bool { v == 0x0A || v == 0x0D }
    func run(from start: Int, _ inClass: (UInt32) -> Bool) -> Int {
        var k = start
        while k < n {
            let (w, m) = scalar(k)
            guard inClass(w) else { break }
            k += m
        }
        return k
    }
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if t[i] == 0x27 && i + 1 < n {
        let c = t[i + 1] | 0x20
        if c == 0x73 || c == 0x74 || c == 0x6D || c == 0x64 { return i + 2 }
        if i + 2 < n {
            let d = t[i + 2] | 0x20
            if (c == 0x72 && d == 0x65) || (c == 0x76 && d == 0x65) || (c == 0x6C && d == 0x6C) { return i + 3 }
        }
    }
    let (v, len) = scalar(i)
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if !isNewline(v) && !isLetter(v) && !isNumber(v) && i + len < n && isLetter(scalar(i + len).0) {
        return run(from: i + len, isLetter)
    }
    if isLetter(v) { return run(from: i + len, isLetter) }
    // \p{N}{1,maxDigits}
    if isNumber(v) {
        var k = i + len, count = 1
        while k < n && count < maxDigits {
            let (w, m) = scalar(k)
            guard isNumber(w) else { break }
            k += m
            count += 1
        }
        return k
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let other: (UInt32) -> Bool = { !isUnicodeWhitespace($0) && !isLetter($0) && !isNumber($0) }
    var j = i
    if v == 0x20 && i + 1 < n && other(scalar(i + 1).0) { j = i + 1 }
    if other(scalar(j).0) {
        let k = run(from: j, other)
        return run(from: k, isNewline)
    }
    // \s*[\r\n]+ : up to the last CR/LF of the whitespace run.
    var k = i, lastNewlineEnd: Int? = nil, lastStart = i, count = 0
    while k < n {
        let (w, m) = scalar(k)
        guard isUnicodeWhitespace(w) else { break }
        lastStart = k
        k += m
        count += 1
        if isNewline(w) { lastNewlineEnd = k }
    }
    if let e = lastNewlineEnd { return e }
    // \s+(?!\S), else \s+
    if k < n && count > 1 { return lastStart }
    return k
}
