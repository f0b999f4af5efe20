// MARK: - Template

/// The post-processor: where `[CLS]`/`[SEP]` go and which token type each part gets.
struct PostProcessorTemplate: Sendable {
    enum Piece: Sendable {
        case first(typeID: Int)
        case second(typeID: Int)
        case special(ids: [Int], typeID: Int)
    }
    let single: [Piece]
    let pair: [Piece]

    static let none = PostProcessorTemplate(single: [.first(typeID: 0)], pair: [.first(typeID: 0), .second(typeID: 1)])

    static func bert(cls: Int, sep: Int) -> PostProcessorTemplate {
        PostProcessorTemplate(
            single: [.special(ids: [cls], typeID: 0), .first(typeID: 0), .special(ids: [sep], typeID: 0)],
            pair: [
                .special(ids: [cls], typeID: 0), .first(typeID: 0), .special(ids: [sep], typeID: 0),
                .second(typeID: 1), .special(ids: [sep], typeID: 1),
            ])
    }

    init(single: [Piece], pair: [Piece]) {
        self.single = single
        self.pair = pair
    }

    /// From tokenizer.json's `post_processor`: TemplateProcessing or BertProcessing.
    init(_ p: JSONFields, vocabulary: ByteVocabulary, added: [AddedToken]) throws {
        let type = try p.string("type") ?? "(none)"
        // BertProcessing's and RobertaProcessing's `cls` / `sep`: [token, id].
        func pairValue(_ key: String) throws -> Int {
            guard let items = try p.array(key), items.count == 2, let id = items[1].intValue, id >= 0,
                id < Int(Int32.max)
            else {
                throw p.fail(key, "expected [token, id]")
            }
            return id
        }
        switch type {
        case "ByteLevel":
            self = .none  // changes offsets only
        case "RobertaProcessing":
            let cls = try pairValue("cls"), sep = try pairValue("sep")
            self.init(
                single: [.special(ids: [cls], typeID: 0), .first(typeID: 0), .special(ids: [sep], typeID: 0)],
                pair: [
                    .special(ids: [cls], typeID: 0), .first(typeID: 0), .special(ids: [sep, sep], typeID: 0),
                    .second(typeID: 0), .special(ids: [sep], typeID: 0),
                ])
        case "Sequence":
            // Offsets-only steps (ByteLevel) and at most one step that adds tokens.
            guard let items = try p.array("processors") else { throw p.fail("processors", "missing") }
            var chosen: PostProcessorTemplate? = nil
            for (i, item) in items.enumerated() {
                let f = try JSONFields(item, path: p.path, prefix: p.key("processors") + "[\(i)]")
                if try f.string("type") == "ByteLevel" { continue }
                guard chosen == nil else {
                    throw ModelFileError.unsupported(path: p.path, what: "\(f.prefix): a second post-processor that adds tokens in one Sequence")
                }
                chosen = try PostProcessorTemplate(f, vocabulary: vocabulary, added: added)
            }
            self = chosen ?? .none
        case "BertProcessing":
            self = .bert(cls: try pairValue("cls"), sep: try pairValue("sep"))
        case "TemplateProcessing":
            var specials: [[UInt8]: [Int]] = [:]
            if let s = try p.object("special_tokens"), case .object(let members) = s.value {
                for (name, v) in members {
                    let f = try JSONFields(v, path: p.path, prefix: s.key(keyName(name)))
                    guard let ids = try f.array("ids") else { throw f.fail("ids", "missing") }
                    specials[name] = try ids.map { v in
                        guard let i = v.intValue, i >= 0 else { throw f.fail("ids", "expected non-negative integers") }
                        // Bounded like every id (idLimit, one more than the largest, must not overflow).
                        guard i < Int(Int32.max) else { throw f.fail("ids", "expected integers in 0...\(Int(Int32.max) - 1)") }
                        return i
                    }
                }
            }
            func pieces(_ key: String) throws -> [Piece] {
                guard let items = try p.array(key) else { throw p.fail(key, "missing") }
                return try items.enumerated().map { i, item in
                    let f = try JSONFields(item, path: p.path, prefix: p.key(key) + "[\(i)]")
                    if let s = try f.object("SpecialToken") {
                        guard let name = try s.bytes("id") else { throw s.fail("id", "missing") }
                        guard let ids = specials[name] else {
                            throw s.fail("id", "\(quotedBytes(name)) is not in special_tokens")
                        }
                        return .special(ids: ids, typeID: try s.int("type_id", in: 0...Int(Int32.max)) ?? 0)
                    }
                    if let s = try f.object("Sequence") {
                        let id = try s.string("id") ?? "A"
                        let typeID = try s.int("type_id", in: 0...Int(Int32.max)) ?? 0
                        switch id {
                        case "A": return .first(typeID: typeID)
                        case "B": return .second(typeID: typeID)
                        default: throw s.fail("id", "expected \"A\" or \"B\", found \(SafeTensorsError.quoted(id))")
                        }
                    }
                    throw f.fail("", "expected SpecialToken or Sequence")
                }
            }
            self.init(single: try pieces("single"), pair: try pieces("pair"))
        default:
            throw ModelFileError.unsupported(
                path: p.path,
                what:
                    "\(p.prefix): post-processor type \(SafeTensorsError.quoted(type)) (implemented: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence)"
            )
        }
    }

    /// The largest id among the template's special tokens (-1 when none).
    var maxID: Int {
        (single + pair).reduce(-1) { m, p in
            if case .special(let ids, _) = p { return max(m, ids.max() ?? -1) }
            return m
        }
    }

    /// The largest token type id the template gives.
    func maxTypeID(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { m, p in
            switch p {
            case .first(let t), .second(let t), .special(_, let t): return max(m, t)
            }
        }
    }

    /// Tokens the template adds around one text (`pair: false`) or two.
    func addedCount(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { n, p in
            if case .special(let ids, _) = p { return n + ids.count }
            return n
        }
    }

    func apply(_ a: [Int], _ b: [Int]?) -> Encoding {
        var ids: [Int] = [], types: [Int] = [], special: [Int] = []
        let n = a.count + (b?.count ?? 0) + addedCount(pair: b != nil)
        ids.reserveCapacity(n)
        types.reserveCapacity(n)
        special.reserveCapacity(n)
        for p in b == nil ? single : pair {
            switch p {
            case .first(let t):
                ids += a
                types += repeatElement(t, count: a.count)
                special += repeatElement(0, count: a.count)
            case .second(let t):
                let s = b ?? []
                ids += s
                types += repeatElement(t, count: s.count)
                special += repeatElement(0, count: s.count)
            case .special(let sids, let t):
                ids += sids
                types += repeatElement(t, count: sids.count)
                special += repeatElement(1, count: sids.count)
            }
        }
        return Encoding(ids: ids, tokenTypeIDs: types, attentionMask: Array(repeating: 1, count: ids.count), specialTokensMask: special)
    }
}

/// A JSON object key as part of a key path in a message: as it is when it is plain text,
/// quoted with control characters escaped otherwise (the message must stay one line).
func keyName(_ bytes: [UInt8]) -> String {
    let plain = bytes.allSatisfy { $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    return plain ? String(decoding: bytes, as: UTF8.self) : quotedBytes(bytes)
}
