// The JSON-lines writer of attend and bench: every control character escaped, non-finite
// numbers as null, and every line read back by JSONSerialization as the values written.
import AttendCommandLine
import Foundation
import Testing

@Suite("JSON lines")
struct JSONLinesTests {
    /// The object a line parses to (failing the test when it is not one JSON object).
    func parse(_ line: String) throws -> [String: Any] {
        #expect(!line.contains("\n") && !line.contains("\r"), "a line break in \(line)")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
    }

    @Test("every control character U+0000-U+001F, quotes, backslashes, DEL, U+2028/9 and non-ASCII round-trip")
    func strings() throws {
        var all = (0..<0x20).map { String(UnicodeScalar(UInt8($0))) }.joined()
        all += "\"\\/'\u{7F}\u{2028}\u{2029}é🙂\u{FFFD}end"
        let line = jsonObject([("text", .string(all)), (all, .strings([all, ""]))])
        let object = try parse(line)
        #expect(object["text"] as? String == all)
        #expect(object[all] as? [String] == [all, ""])
        // Only printable ASCII or the non-ASCII letters are left unescaped.
        #expect(line.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F && $0.value != 0x2028 && $0.value != 0x2029 })
        #expect(jsonString("\u{0}\u{1F}\u{8}\u{C}\n\r\t") == #""\u0000\u001f\b\f\n\r\t""#)
        #expect(jsonString("a\"b\\c") == #""a\"b\\c""#)
    }

    @Test("non-finite floats and doubles are null; finite ones read back exactly")
    func numbers() throws {
        let floats: [Float] = [0, -0.0, 1, -1e-5, 0.1, .greatestFiniteMagnitude, .leastNonzeroMagnitude, .nan, .infinity, -.infinity]
        let doubles: [Double] = [0.1, 1e300, -Double.leastNonzeroMagnitude * 5, 123456789.123, .nan, -.infinity]
        let line = jsonObject([
            ("f", .floats(floats)), ("d", .doubles(doubles)), ("x", .float(.nan)), ("y", .double(.infinity)), ("z", .double(0.3)),
            ("n", .int(Int.min)), ("i", .ints([1, -2])), ("b", .bool(true)), ("c", .bool(false)), ("u", .null), ("r", .raw("[[1], {}]")),
        ])
        let o = try parse(line)
        let fs = try #require(o["f"] as? [Any])
        for (x, parsed) in zip(floats, fs) {
            if x.isFinite {
                #expect(Float((parsed as? NSNumber)?.doubleValue ?? .nan) == x, "\(x) -> \(parsed)")
            } else {
                #expect(parsed is NSNull, "\(x) -> \(parsed)")
            }
        }
        let ds = try #require(o["d"] as? [Any])
        for (x, parsed) in zip(doubles, ds) {
            if x.isFinite { #expect((parsed as? NSNumber)?.doubleValue == x) } else { #expect(parsed is NSNull) }
        }
        #expect(o["x"] is NSNull && o["y"] is NSNull && o["u"] is NSNull)
        #expect((o["z"] as? NSNumber)?.doubleValue == 0.3)
        #expect((o["n"] as? NSNumber)?.intValue == Int.min && o["i"] as? [Int] == [1, -2])
        #expect(o["b"] as? Bool == true && o["c"] as? Bool == false)
        #expect(line.contains("\"b\": true") && line.contains("\"r\": [[1], {}]"))
    }

    @Test("keys stay in the order given")
    func order() {
        #expect(jsonObject([("b", .int(1)), ("a", .string("x")), ("c", .ints([]))]) == #"{"b": 1, "a": "x", "c": []}"#)
        #expect(jsonObject([]) == "{}")
    }
}
