// The scalar conversions, exhaustively, and the strict JSON parser on its own.
import Foundation
import Testing

@testable import Attend

@Suite("Float conversions")
struct ConversionTests {
    /// All 65536 half-precision patterns: the bit-twiddling path against the generic minifloat
    /// decoder (an independent formula) and, where the platform has it, Swift's Float16.
    @Test func halfPrecisionExhaustive() {
        for bits in 0...UInt16.max {
            let fast = SafeTensorsConvert.float(fromHalfBits: bits)
            let generic = SafeTensorsConvert.float(
                minifloatBits: UInt32(bits), exponentBits: 5, mantissaBits: 10, bias: 15, special: .ieee)
            if !sameFloat(fast, generic) {
                Issue.record("F16 0x\(String(bits, radix: 16)): fast \(fast), generic \(generic)")
            }
            #if !(os(macOS) && arch(x86_64))
                let oracle = Float(Float16(bitPattern: bits))
                if !sameFloat(fast, oracle) {
                    Issue.record("F16 0x\(String(bits, radix: 16)): \(fast), Float16 says \(oracle)")
                }
            #endif
            // A NaN keeps its payload (shifted into place) and its sign.
            if fast.isNaN {
                #expect(fast.bitPattern == (UInt32(bits & 0x8000) << 16) | 0x7F80_0000 | (UInt32(bits & 0x3FF) << 13))
            }
        }
    }

    @Test func bfloat16IsTheTopHalf() {
        for bits in stride(from: 0, through: 0xFFFF, by: 1) {
            let f = SafeTensorsConvert.float(fromBFloat16Bits: UInt16(bits))
            #expect(f.bitPattern == UInt32(bits) << 16)
        }
    }

    @Test func eightBitTablesAgreeWithHalfAndKnownValues() {
        // E5M2 is the top byte of a half.
        let e5 = SafeTensorsConvert.table(for: .F8_E5M2)
        for b in 0..<256 {
            #expect(sameFloat(e5[b], SafeTensorsConvert.float(fromHalfBits: UInt16(b) << 8)))
        }
        let e4 = SafeTensorsConvert.table(for: .F8_E4M3)
        #expect(e4.filter(\.isNaN).count == 2)  // 0x7F and 0xFF only
        #expect(e4.filter { !$0.isNaN }.max() == 448 && e4.filter { !$0.isNaN }.min() == -448)
        #expect(!e4.contains(.infinity))
        let e4z = SafeTensorsConvert.table(for: .F8_E4M3FNUZ)
        #expect(e4z.filter(\.isNaN).count == 1 && e4z[0x80].isNaN)
        #expect(e4z.filter { $0 == 0 }.count == 1)  // no negative zero
        #expect(e4z[0x7F] == 240)
        let e5z = SafeTensorsConvert.table(for: .F8_E5M2FNUZ)
        #expect(e5z[0x7F] == 57344 && e5z[0x80].isNaN && e5z.filter(\.isNaN).count == 1)
        let e8 = SafeTensorsConvert.table(for: .F8_E8M0)
        for b in 0..<255 { #expect(e8[b] == Float(sign: .plus, exponent: b - 127, significand: 1)) }
        #expect(e8[255].isNaN)
    }

    @Test func byteSizes() {
        let sizes = Dictionary(uniqueKeysWithValues: SafeTensorsDType.allCases.map { ($0.rawValue, $0.byteSize) })
        #expect(
            sizes == [
                "F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
                "U16": 2, "U8": 1, "BOOL": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1,
                "F8_E8M0": 1, "C64": 8,
            ])
    }
}

@Suite("StrictJSON")
struct StrictJSONTests {
    func parse(_ text: String) throws -> StrictJSONValue {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { try StrictJSON.parse($0) }
    }

    func failure(_ text: String) -> StrictJSONError? {
        do {
            _ = try parse(text)
            return nil
        } catch let e as StrictJSONError {
            return e
        } catch {
            return nil
        }
    }

    @Test func acceptsTheGrammar() throws {
        let v = try parse(" {\"a\": [1, -0, 2.5e-3, 1E+2, true, false, null, \"x\\u00e9\\ud83d\\ude00\\/\\b\"], \"b\": {}}\t\r\n")
        guard case .object(let o) = v, case .array(let items)? = o["a"] else {
            Issue.record("not an object with an array")
            return
        }
        #expect(items.count == 8)
        if case .number(let n) = items[0] { #expect(n.intValue == 1 && n.isIntegerLiteral) }
        if case .number(let n) = items[1] { #expect(n.intValue == 0 && n.isNegative) }
        if case .number(let n) = items[2] { #expect(!n.isIntegerLiteral && n.intValue == nil && n.text == "2.5e-3") }
        if case .string(let s) = items[7] { #expect(s == "x\u{e9}\u{1F600}/\u{8}") }
        if case .number(let n) = try parse("9223372036854775807") { #expect(n.intValue == Int.max) }
        if case .number(let n) = try parse("-9223372036854775808") { #expect(n.intValue == Int.min) }
        if case .number(let n) = try parse("9223372036854775808") { #expect(n.intValue == nil) }
    }

    @Test(arguments: [
        "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[01]", "[1.]", "[.5]", "[1e]", "[+1]",
        "[-]", "[NaN]", "[Infinity]", "tru", "nul", "{'a':1}", "{\"a\":1}x", "[\"\\x\"]", "[\"\\u12\"]",
        "[\"\\udc00\"]", "[\"\\ud800x\"]", "[\"\\ud800\\u0041\"]", "[\"a\u{1}\"]", "\u{feff}{}", "{\"a\":1 \"b\":2}",
        "[1 2]", "// c\n{}", "{\"a\":1,\"a\":2}", "\"unterminated",
    ])
    func rejects(_ text: String) {
        #expect(failure(text) != nil, "accepted \(text.debugDescription)")
    }

    @Test func duplicateKeysReportDepthAndOffset() {
        let e = failure("{\"x\": {\"k\": 1, \"k\": 2}}")
        #expect(e == StrictJSONError(kind: .duplicateKey("k"), offset: 15, depth: 2))
    }

    /// One parser serves both readers: the checkpoint view compares keys as Swift Strings,
    /// the tokenizer view as bytes; grammar errors are the same, at the same offsets.
    @Test func oneParserTwoKeyComparisons() throws {
        let canonical = "{\"\u{e9}\": 1, \"e\u{301}\": 2}"
        #expect(failure(canonical) == StrictJSONError(kind: .duplicateKey("e\u{301}"), offset: 10, depth: 1))
        let bytes = try Array(canonical.utf8).withUnsafeBytes { try ByteJSONParser.parse($0) }
        guard case .object(let members) = bytes else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.key) == [[0xC3, 0xA9], [0x65, 0xCC, 0x81]])
        for text in ["[1,]", "{\"a\":\"\\x\"}", "[01]", "{\"a\":1,\"a\":2}", "[\"\\ud800\"]", "{\"a\" 1}", "tru", "[1 2]"] {
            let strict = try #require(failure(text), "\(text)")
            var tokenizer: ByteJSONError?
            do { _ = try Array(text.utf8).withUnsafeBytes { try ByteJSONParser.parse($0) } } catch let e as ByteJSONError { tokenizer = e }
            #expect(tokenizer?.offset == strict.offset && tokenizer?.message == strict.message, "\(text)")
        }
    }

    @Test func depthIsBounded() {
        let ok = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(failure(ok) == nil)
        let deep = String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        #expect(failure(deep)?.kind == .tooDeep(128))
        // Far deeper input fails fast, without deep recursion.
        let huge = String(repeating: "[", count: 1_000_000)
        #expect(failure(huge)?.kind == .tooDeep(128))
    }

    @Test func utf8Validation() {
        func bad(_ bytes: [UInt8]) -> Int? { bytes.withUnsafeBytes { StrictJSON.firstInvalidUTF8($0) } }
        #expect(bad(Array("plain ascii, longer than eight bytes".utf8)) == nil)
        #expect(bad(Array("é ✓ 😀 ünïcode".utf8)) == nil)
        #expect(bad([0x41, 0x80]) == 1)  // stray continuation
        #expect(bad([0xC0, 0xAF]) == 0)  // overlong '/'
        #expect(bad([0xE0, 0x80, 0xAF]) == 0)  // overlong
        #expect(bad([0xED, 0xA0, 0x80]) == 0)  // surrogate U+D800
        #expect(bad([0xF4, 0x90, 0x80, 0x80]) == 0)  // above U+10FFFF
        #expect(bad([0xF8, 0x88, 0x80, 0x80, 0x80]) == 0)  // 5-byte form
        #expect(bad(Array("12345678".utf8) + [0xE2, 0x9C]) == 8)  // truncated at the end
        #expect(bad(Array("1234567".utf8) + [0xFF] + Array("abcdefgh".utf8)) == 7)
    }
}
