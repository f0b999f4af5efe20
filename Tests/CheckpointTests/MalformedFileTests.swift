// The malformed corpus (Fixtures/malformed, one defect per file, see make_fixtures.py): each
// file must be rejected with the right SafeTensorsError case, naming the file and the tensor.
import Foundation
import Testing

@testable import Attend

/// What a malformed fixture must raise.
enum ExpectedRejection: Sendable {
    /// Exactly this error, given the fixture's path.
    case exact(@Sendable (String) -> SafeTensorsError)
    /// `.invalidJSON` whose reason contains this text.
    case invalidJSON(String)
}

let malformedExpectations: [String: ExpectedRejection] = [
    "empty": .exact { .fileTooSmall(file: $0, size: 0) },
    "truncated_length": .exact { .fileTooSmall(file: $0, size: 5) },
    "header_huge": .exact { .headerTooLarge(file: $0, headerLength: 1 << 40) },
    "header_u64_max": .exact { .headerTooLarge(file: $0, headerLength: .max) },
    "header_just_over_limit": .exact { .headerTooLarge(file: $0, headerLength: 100_000_001) },
    "header_past_end": .exact { .headerPastEndOfFile(file: $0, headerLength: 1000, fileSize: 50) },
    "not_json": .invalidJSON("invalid literal"),
    "json_array": .exact { .headerNotObject(file: $0) },
    "json_string": .exact { .headerNotObject(file: $0) },
    "not_utf8": .exact { .headerNotUTF8(file: $0, offset: 11) },
    "overlong_utf8": .exact { .headerNotUTF8(file: $0, offset: 10) },
    "surrogate_utf8": .exact { .headerNotUTF8(file: $0, offset: 10) },
    "unknown_dtype": .exact { .unknownDType(file: $0, tensor: "a", dtype: "F31") },
    "lowercase_dtype": .exact { .unknownDType(file: $0, tensor: "a", dtype: "f32") },
    "sub_byte_dtype": .exact { .unknownDType(file: $0, tensor: "a", dtype: "F4") },
    "shape_mismatch": .exact {
        .sizeMismatch(file: $0, tensor: "a", dtype: .F32, shape: [3], expectedBytes: 12, rangeBytes: 8)
    },
    "shape_overflow": .exact { .shapeOverflow(file: $0, tensor: "a", shape: [1 << 40, 1 << 40], dtype: .F32) },
    "shape_negative": .exact {
        .invalidShape(file: $0, tensor: "a", reason: "entry 0 is -1, not a non-negative integer")
    },
    "shape_float": .exact { .invalidShape(file: $0, tensor: "a", reason: "entry 0 is 2.0, not a non-negative integer") },
    "shape_string": .exact { .invalidShape(file: $0, tensor: "a", reason: "entry 0 is a string, not an integer") },
    "shape_too_large": .exact {
        .invalidShape(file: $0, tensor: "a", reason: "entry 0 is 18446744073709551616, too large")
    },
    "offsets_out_of_range": .exact { .offsetsOutOfRange(file: $0, tensor: "a", range: 0..<4000, dataSize: 16) },
    "offsets_reversed": .exact { .reversedOffsets(file: $0, tensor: "a", begin: 8, end: 0) },
    "offsets_three": .exact { .invalidOffsets(file: $0, tensor: "a", reason: "3 entries, expected [begin, end]") },
    "offsets_negative": .exact { .invalidOffsets(file: $0, tensor: "a", reason: "-8 is not a non-negative integer") },
    "offsets_too_large": .exact { .invalidOffsets(file: $0, tensor: "a", reason: "99999999999999999999 is too large") },
    "overlap": .exact { .overlappingTensors(file: $0, tensor: "b", other: "a") },
    "gap": .exact { .gapBeforeTensor(file: $0, tensor: "b", expectedBegin: 8, begin: 12) },
    "gap_at_start": .exact { .gapBeforeTensor(file: $0, tensor: "a", expectedBegin: 0, begin: 4) },
    "duplicate_names": .exact { .duplicateTensor(file: $0, tensor: "a") },
    "duplicate_field": .invalidJSON("duplicate key \"shape\""),
    "duplicate_metadata": .exact { .invalidMetadata(file: $0, reason: "__metadata__ appears twice") },
    "data_truncated": .exact { .offsetsOutOfRange(file: $0, tensor: "b", range: 8..<16, dataSize: 12) },
    "trailing_bytes": .exact { .trailingBytes(file: $0, declaredBytes: 16, dataSize: 20) },
    "metadata_not_strings": .exact { .invalidMetadata(file: $0, reason: "value of \"a\" is a number, not a string") },
    "metadata_not_object": .exact { .invalidMetadata(file: $0, reason: "it is a string, not an object") },
    "missing_dtype": .exact { .invalidTensorEntry(file: $0, tensor: "a", reason: "missing \"dtype\"") },
    "entry_not_object": .exact { .invalidTensorEntry(file: $0, tensor: "a", reason: "entry is an array, not an object") },
    "deep_nesting": .invalidJSON("nesting deeper than 128 levels"),
    "trailing_comma": .invalidJSON("expected a string key"),
    "nul_padding": .invalidJSON("unexpected characters after the JSON value"),
    "lone_surrogate": .invalidJSON("lone high surrogate"),
    "control_char": .invalidJSON("unescaped control character"),
    "leading_zero": .invalidJSON("leading zero"),
    "unterminated": .invalidJSON("unexpected end of input inside an object"),
    // Truncation at every stage: inside the header, right after the length, inside the data.
    "truncated_in_header": .exact { .headerPastEndOfFile(file: $0, headerLength: 112, fileSize: 20) },
    "truncated_after_length": .exact { .headerPastEndOfFile(file: $0, headerLength: 112, fileSize: 8) },
    "truncated_in_first_tensor": .exact { .offsetsOutOfRange(file: $0, tensor: "a", range: 0..<8, dataSize: 4) },
    // Overlaps: identical ranges, one range inside another, an empty tensor inside another.
    "overlap_identical": .exact { .overlappingTensors(file: $0, tensor: "b", other: "a") },
    "overlap_contained": .exact { .overlappingTensors(file: $0, tensor: "b", other: "a") },
    "overlap_zero_size_inside": .exact { .overlappingTensors(file: $0, tensor: "z", other: "a") },
    // A consistent shape and range of 2^62 bytes in an 8-byte data section: rejected, nothing allocated.
    "offsets_out_of_range_huge": .exact {
        .offsetsOutOfRange(file: $0, tensor: "a", range: 0..<(1 << 62), dataSize: 8)
    },
    "offsets_not_array": .exact { .invalidOffsets(file: $0, tensor: "a", reason: "it is a string, not an array") },
    "shape_mismatch_scalar": .exact {
        .sizeMismatch(file: $0, tensor: "a", dtype: .F32, shape: [], expectedBytes: 4, rangeBytes: 8)
    },
    "shape_mismatch_zero": .exact {
        .sizeMismatch(file: $0, tensor: "a", dtype: .F32, shape: [0], expectedBytes: 0, rangeBytes: 8)
    },
    "shape_mismatch_bf16": .exact {
        .sizeMismatch(file: $0, tensor: "a", dtype: .BF16, shape: [2], expectedBytes: 4, rangeBytes: 8)
    },
    "dtype_not_string": .exact {
        .invalidTensorEntry(file: $0, tensor: "a", reason: "\"dtype\" is a number, not a string")
    },
    "dtype_empty": .exact { .unknownDType(file: $0, tensor: "a", dtype: "") },
    "not_utf8_truncated_sequence": .exact { .headerNotUTF8(file: $0, offset: 30) },
    "not_utf8_above_max": .exact { .headerNotUTF8(file: $0, offset: 30) },
    "not_utf8_in_padding": .exact { .headerNotUTF8(file: $0, offset: 10) },
    // Duplicates: in the metadata, spelled with an escape, canonically equivalent (one Swift
    // String, two byte strings: stricter than the reference), nested inside an entry.
    "duplicate_metadata_key": .invalidJSON("duplicate key \"format\""),
    "duplicate_names_escaped": .exact { .duplicateTensor(file: $0, tensor: "a") },
    "duplicate_names_canonical": .exact { .duplicateTensor(file: $0, tensor: "e\u{301}") },
    "duplicate_nested_key": .invalidJSON("duplicate key \"k\""),
]

@Suite("SafeTensorsFile: malformed files")
struct MalformedFileTests {
    @Test(arguments: malformedExpectations.keys.sorted())
    func rejected(_ name: String) throws {
        let url = Fixtures.url("malformed/\(name).safetensors")
        let path = url.path
        let error = try #require(safeTensorsError { _ = try SafeTensorsFile(contentsOf: url) }, "\(name) was accepted")
        switch malformedExpectations[name]! {
        case .exact(let make):
            #expect(error == make(path), "\(name)")
        case .invalidJSON(let text):
            guard case .invalidJSON(let file, let offset, let reason) = error else {
                Issue.record("\(name): expected .invalidJSON, got \(error)")
                return
            }
            #expect(file == path)
            #expect(reason.contains(text), "\(name): \(reason)")
            let size = try Fixtures.bytes("malformed/\(name).safetensors").count
            #expect(offset >= 8 && offset <= size)
        }
        // The message is one line naming the file and, when one is at fault, the tensor.
        #expect(error.description.hasPrefix(path + ": "))
        #expect(!error.description.contains("\n"))
        #expect(error.file == path)
        if let tensor = error.tensor { #expect(error.description.contains("\"\(tensor)\"")) }

        // The same bytes from memory give the same error (the fuzz test's path).
        let bytes = try Fixtures.bytes("malformed/\(name).safetensors")
        let again = safeTensorsError {
            _ = try SafeTensorsFile(url: url, path: path, bytes: MappedFileBytes(copying: bytes))
        }
        #expect(again == error)
    }

    @Test func everyMalformedFixtureHasAnExpectation() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Fixtures.url("malformed").path)
            .filter { $0.hasSuffix(".safetensors") }
            .map { String($0.dropLast(".safetensors".count)) }
        #expect(Set(names) == Set(malformedExpectations.keys))
    }

    @Test func descriptionsAreSingleLinesEvenForHostileNames() {
        let e = SafeTensorsError.missingTensor(file: "/m.safetensors", tensor: "a\nb\"c\u{7}")
        #expect(e.description == "/m.safetensors: no tensor named \"a\\nb\\\"c\\u{7}\"")
    }
}
