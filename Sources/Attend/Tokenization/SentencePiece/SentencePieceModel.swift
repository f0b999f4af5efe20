import Foundation

/// The contents of a SentencePiece model file (`spiece.model`, `tokenizer.model`, Marian's
/// `source.spm` / `target.spm`): a `ModelProto` protocol buffer, read here field by field
/// (wire format: varint keys, varint / 32-bit / 64-bit / length-delimited values; unknown
/// fields skipped). Only what encoding and decoding need is kept.
///
/// Every length and offset is checked against the bytes: a malformed file throws
/// `ModelFileError.invalidValue` naming the field and byte offset, never reads out of bounds.
public struct SentencePieceModel: Sendable {
    /// A piece's role (`ModelProto.SentencePiece.Type`).
    public enum PieceType: Int, Sendable {
        /// `normal` text pieces, the `unknown` piece, `control` pieces (`<s>`, `</s>`: never produced
        /// from text), `userDefined` pieces (matched whole), `unused`, and `byte` pieces (`<0xXX>`).
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// The model's algorithm (`TrainerSpec.ModelType`).
    public enum ModelType: Int, Sendable {
        /// Unigram (T5, ALBERT, XLM-R), BPE (Llama), and the whole-word and character models.
        case unigram = 1, bpe = 2, word = 3, character = 4
    }

    /// Pieces by id, as UTF-8 bytes.
    public internal(set) var pieces: [[UInt8]] = []
    /// Their scores (log probabilities for Unigram, merge priorities for BPE).
    public internal(set) var scores: [Float] = []
    /// Their types.
    public internal(set) var types: [PieceType] = []
    /// Unigram or BPE (word and character models are read but not encoded).
    public internal(set) var modelType: ModelType = .unigram
    /// Unknown characters become their UTF-8 bytes' `<0xXX>` pieces.
    public internal(set) var byteFallback = false
    /// The unknown piece's id (`trainer_spec.unk_id`).
    public internal(set) var unknownID = 0
    /// The begin-of-sequence piece's id (-1: none).
    public internal(set) var bosID = 1
    /// The end-of-sequence piece's id (-1: none).
    public internal(set) var eosID = 2
    /// The padding piece's id (-1: none).
    public internal(set) var padID = -1
    /// What the unknown piece decodes to (" ⁇ " by default).
    public internal(set) var unknownSurface: [UInt8] = Array(" \u{2047} ".utf8)
    /// "▁" ends words instead of starting them.
    public internal(set) var treatWhitespaceAsSuffix = false
    /// The normalizer's name (`nmt_nfkc`, `identity`, ...) and its compiled rules.
    public internal(set) var normalizerName = ""
    var charsmap: PrecompiledCharsmap? = nil
    /// A "▁" is put in front of the text.
    public internal(set) var addDummyPrefix = true
    /// Leading, trailing and repeated spaces are dropped.
    public internal(set) var removeExtraWhitespaces = true
    /// Spaces become "▁".
    public internal(set) var escapeWhitespaces = true

    /// Reads a model file. Throws `ModelFileError`. Cost: O(file size).
    public init(contentsOf url: URL) throws {
        try self.init(bytes: try readModelFile(url), path: url.path)
    }

    /// Reads model bytes held in memory (`path` names them in errors). Cost: O(bytes).
    public init(bytes: [UInt8], path: String = "sentencepiece.model") throws {
        var r = ProtoReader(bytes: bytes, range: 0..<bytes.count, path: path, context: "ModelProto")
        while let (field, wire) = try r.nextKey() {
            switch (field, wire) {
            case (1, 2):
                var m = try r.message("pieces[\(pieces.count)]")
                var piece: [UInt8] = [], score: Float = 0, type = PieceType.normal
                while let (f, w) = try m.nextKey() {
                    switch (f, w) {
                    case (1, 2): piece = try m.readBytes()
                    case (2, 5): score = Float(bitPattern: try m.fixed32())
                    case (3, 0):
                        let v = try m.varint()
                        guard let t = PieceType(rawValue: Int(truncatingIfNeeded: v)) else {
                            throw m.fail("type \(v) is not a piece type (1...6)")
                        }
                        type = t
                    default: try m.skip(w)
                    }
                }
                guard score.isFinite else { throw m.fail("score is not finite") }
                guard String(validating: piece, as: UTF8.self) != nil else { throw m.fail("piece is not valid UTF-8") }
                pieces.append(piece)
                scores.append(score)
                types.append(type)
            case (2, 2):
                var m = try r.message("trainer_spec")
                while let (f, w) = try m.nextKey() {
                    switch (f, w) {
                    case (3, 0):
                        let v = try m.varint()
                        guard let t = ModelType(rawValue: Int(truncatingIfNeeded: v)) else { throw m.fail("model_type \(v) is unknown") }
                        modelType = t
                    case (24, 0): treatWhitespaceAsSuffix = try m.varint() != 0
                    case (35, 0): byteFallback = try m.varint() != 0
                    case (40, 0): unknownID = Int(Int32(truncatingIfNeeded: try m.varint()))
                    case (41, 0): bosID = Int(Int32(truncatingIfNeeded: try m.varint()))
                    case (42, 0): eosID = Int(Int32(truncatingIfNeeded: try m.varint()))
                    case (43, 0): padID = Int(Int32(truncatingIfNeeded: try m.varint()))
                    case (44, 2): unknownSurface = try m.readBytes()
                    default: try m.skip(w)
                    }
                }
            case (3, 2):
                var m = try r.message("normalizer_spec")
                while let (f, w) = try m.nextKey() {
                    switch (f, w) {
                    case (1, 2): normalizerName = String(decoding: try m.readBytes(), as: UTF8.self)
                    case (2, 2):
                        let b = try m.readBytes()
                        if !b.isEmpty {
                            do {
                                charsmap = try PrecompiledCharsmap(b)
                            } catch let e as PrecompiledCharsmap.CharsmapError {
                                throw m.fail("precompiled_charsmap: \(e.reason)")
                            }
                        }
                    case (3, 0): addDummyPrefix = try m.varint() != 0
                    case (4, 0): removeExtraWhitespaces = try m.varint() != 0
                    case (5, 0): escapeWhitespaces = try m.varint() != 0
                    default: try m.skip(w)
                    }
                }
            default:
                try r.skip(wire)
            }
        }
        guard !pieces.isEmpty else { throw ModelFileError.invalidValue(path: path, key: "ModelProto.pieces", reason: "no pieces") }
        guard pieces.count < Int(Int32.max) else {
            throw ModelFileError.invalidValue(path: path, key: "ModelProto.pieces", reason: "too many pieces")
        }
        guard unknownID >= 0 && unknownID < pieces.count else {
            throw ModelFileError.invalidValue(path: path, key: "trainer_spec.unk_id", reason: "\(unknownID) is not a piece id (0..<\(pieces.count))")
        }
    }
}

/// A bounds-checked protocol buffer reader over `bytes[range]`.
struct ProtoReader {
    let bytes: [UInt8]
    var position: Int
    let end: Int
    let path: String
    let context: String

    init(bytes: [UInt8], range: Range<Int>, path: String, context: String) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
        self.path = path
        self.context = context
    }

    func fail(_ reason: String) -> ModelFileError {
        ModelFileError.invalidValue(path: path, key: context, reason: "\(reason) (byte \(position))")
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw fail("truncated varint") }
            let b = bytes[position]
            position += 1
            guard shift < 64 else { throw fail("varint longer than 10 bytes") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// The next field number and wire type, or nil at the end.
    mutating func nextKey() throws -> (Int, Int)? {
        guard position < end else { return nil }
        let key = try varint()
        let field = key >> 3
        guard field > 0 && field < (1 << 29) else { throw fail("invalid field number \(field)") }
        return (Int(field), Int(key & 7))
    }

    mutating func fixed32() throws -> UInt32 {
        guard end - position >= 4 else { throw fail("truncated 32-bit value") }
        let v = UInt32(bytes[position]) | UInt32(bytes[position + 1]) << 8 | UInt32(bytes[position + 2]) << 16 | UInt32(bytes[position + 3]) << 24
        position += 4
        return v
    }

    private mutating func lengthDelimited() throws -> Range<Int> {
        let n = try varint()
        guard n <= UInt64(end - position) else { throw fail("length \(n) runs past the end") }
        let r = position..<(position + Int(n))
        position += Int(n)
        return r
    }

    mutating func readBytes() throws -> [UInt8] {
        let r = try lengthDelimited()
        return Array(bytes[r])
    }

    mutating func message(_ name: String) throws -> ProtoReader {
        let r = try lengthDelimited()
        return ProtoReader(bytes: bytes, range: r, path: path, context: context + "." + name)
    }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard end - position >= 8 else { throw fail("truncated 64-bit value") }
            position += 8
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw fail("unsupported wire type \(wire)")
        }
    }
}
