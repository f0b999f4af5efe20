// Reading valid safetensors files: a real PyTorch file, every dtype, and the format's corners.
import Foundation
import Testing

@testable import Attend

@Suite("SafeTensorsFile: valid files")
struct SafeTensorsFileTests {
    /// shared/golden/mha.safetensors (nn.MultiheadAttention, written by PyTorch). Expected values
    /// were read with numpy from the same bytes, parsing the header by hand.
    @Test func goldenMultiheadAttentionWeights() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("mha.safetensors"))
        #expect(file.tensorNames == ["in_proj_bias", "in_proj_weight", "out_proj.bias", "out_proj.weight"])
        #expect(file.metadata.isEmpty)

        let inInfo = try #require(file.info("in_proj_weight"))
        #expect(inInfo.dtype == .F32)
        #expect(inInfo.shape == [192, 64])
        #expect(inInfo.byteRange == 1080..<50232)
        #expect(file.info("in_proj_bias")?.byteRange == 312..<1080)
        #expect(file.info("out_proj.bias")?.shape == [64])
        #expect(file.info("out_proj.weight")?.byteRange == 50488..<66872)
        #expect(file.info("nope") == nil)

        let w = try file.tensor("in_proj_weight")
        #expect(w.shape == [192, 64])
        #expect(w[0, 0] == -0.09370248019695282)
        #expect(w[1, 2] == -0.10687577724456787)
        #expect(w[191, 63] == 0.26845666766166687)
        #expect(abs(w.scalars.reduce(0.0) { $0 + Double($1) } - 3.6636411378276534) < 1e-9)

        let b = try file.tensor("in_proj_bias")
        #expect(b.shape == [192])
        #expect(b[0] == -0.03086474910378456)
        #expect(b[191] == 0.0658634752035141)

        let ow = try file.tensor("out_proj.weight")
        #expect(ow[1, 2] == 0.10261710733175278)
        #expect(ow[63, 63] == 0.016471821814775467)
        #expect(abs(ow.scalars.reduce(0.0) { $0 + Double($1) } - 4.6513852961943485) < 1e-9)
        #expect(try file.tensor("out_proj.bias")[0] == 0.01034515630453825)

        // F32 bytes are copied verbatim.
        let raw = try Fixtures.bytes("mha.safetensors")
        let fromBytes = raw[50488..<66872].withUnsafeBytes { p in
            (0..<4096).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        #expect(ow.scalars.map(\.bitPattern) == fromBytes.map(\.bitPattern))
    }

    /// Every dtype against `expected.<name>` F32 tensors computed independently by
    /// make_fixtures.py (numpy casts, bit shifts, minifloat formulas).
    @Test func everyDTypeConvertsExactly() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("dtypes.safetensors"))
        #expect(file.metadata == ["format": "pt", "note": "ünïcode ✓"])
        let names = file.tensorNames.filter { !$0.hasPrefix("expected.") && $0 != "c64" }
        #expect(names.count == 20)
        var seen = Set<SafeTensorsDType>()
        for name in names {
            let info = try #require(file.info(name))
            seen.insert(info.dtype)
            let got = try file.tensor(name)
            let want = try file.tensor("expected." + name)
            #expect(got.shape == info.shape, "\(name)")
            #expect(got.shape == want.shape, "\(name)")
            for (i, (g, w)) in zip(got.scalars, want.scalars).enumerated() {
                #expect(sameFloat(g, w), "\(name)[\(i)]: got \(g) (0x\(String(g.bitPattern, radix: 16))), want \(w)")
            }
        }
        #expect(seen == Set(SafeTensorsDType.allCases).subtracting([.C64]))
    }

    @Test func specialValuesByHand() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("dtypes.safetensors"))
        let f16 = try file.tensor("f16").scalars
        #expect(f16[0].bitPattern == 0x0000_0000)  // +0
        #expect(f16[1].bitPattern == 0x8000_0000)  // -0
        #expect(f16[2] == 0x1p-24)  // smallest subnormal
        #expect(f16[3] == 1023 * 0x1p-24)  // largest subnormal
        #expect(f16[4] == 0x1p-14)  // smallest normal
        #expect(f16[5] == 1 && f16[6] == -2 && f16[7] == 65504)
        #expect(f16[8] == .infinity && f16[9] == -.infinity)
        #expect(f16[10].isNaN && f16[11].isNaN)
        #expect(f16[11].bitPattern == 0x7F80_2000)  // signalling NaN payload kept
        #expect(f16[13] == -0x1p-24)
        let bf16 = try file.tensor("bf16").scalars
        #expect(bf16[0].bitPattern == 0 && bf16[1].bitPattern == 0x8000_0000)
        #expect(bf16[2] == 0x1p-133)  // subnormal
        #expect(bf16[3] == 1 && bf16[4] == -2.5 && bf16[5] == .infinity && bf16[6] == -.infinity)
        #expect(bf16[7].isNaN && bf16[8] == 0x1.FEp127)
        let e4 = try file.tensor("f8_e4m3").scalars
        #expect(e4[0] == 0 && e4[1].sign == .minus && e4[2] == 0x1p-9 && e4[3] == 0x1p-6)
        #expect(e4[4] == 1 && e4[5] == 448 && e4[6].isNaN && e4[7].isNaN && e4[8] == -1)
        let e8 = try file.tensor("f8_e8m0").scalars
        #expect(e8[0] == 1 && e8[1] == 0x1p-127 && e8[2] == 0x1p127 && e8[3].isNaN)
        let f64 = try file.tensor("f64").scalars
        #expect(f64[0] == 1 && f64[1] == Float(0.1) && f64[2] == -.infinity && f64[3] == 0 && f64[4].isNaN)
        #expect(f64[5] == 16777216)  // 2^24 + 1 rounds to even
    }

    @Test func integersOfEveryIntegerType() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("dtypes.safetensors"))
        #expect(try file.integers("i64") == [0, -1, (1 << 53) + 1, Int.min, Int.max])
        #expect(try file.integers("i32") == [0, -1, Int(Int32.max), Int(Int32.min)])
        #expect(try file.integers("i16") == [-32768, 32767, 7])
        #expect(try file.integers("i8") == [-128, 127, -1])
        #expect(try file.integers("u64") == [0, Int.max])
        #expect(try file.integers("u32") == [0, Int(UInt32.max)])
        #expect(try file.integers("u16") == [0, 65535])
        #expect(try file.integers("u8") == [0, 1, 255])
        #expect(try file.integers("bool") == [0, 1, 1, 0])
        #expect(try file.integers("bool_raw") == [0, 1, 1])
        let path = Fixtures.url("dtypes.safetensors").path
        #expect(
            safeTensorsError { _ = try file.integers("u64_big") }
                == .integerOutOfRange(file: path, tensor: "u64_big", index: 0))
        for (name, dtype) in [("f32", SafeTensorsDType.F32), ("f16", .F16), ("bf16", .BF16), ("f8_e4m3", .F8_E4M3)] {
            #expect(
                safeTensorsError { _ = try file.integers(name) }
                    == .dtypeNotConvertible(file: path, tensor: name, dtype: dtype, target: "Int"))
        }
        #expect(
            safeTensorsError { _ = try file.tensor("c64") }
                == .dtypeNotConvertible(file: path, tensor: "c64", dtype: .C64, target: "Float32"))
        #expect(file.info("c64")?.shape == [2])
        #expect(safeTensorsError { _ = try file.tensor("missing") } == .missingTensor(file: path, tensor: "missing"))
        #expect(safeTensorsError { _ = try file.integers("missing") } == .missingTensor(file: path, tensor: "missing"))
    }

    @Test func emptyHeadersAndMetadata() throws {
        let empty = try SafeTensorsFile(contentsOf: Fixtures.url("edge/empty_header.safetensors"))
        #expect(empty.tensorNames.isEmpty && empty.metadata.isEmpty)
        let meta = try SafeTensorsFile(contentsOf: Fixtures.url("edge/metadata_only.safetensors"))
        #expect(meta.tensorNames.isEmpty && meta.metadata == ["format": "pt"])
        let null = try SafeTensorsFile(contentsOf: Fixtures.url("edge/metadata_null.safetensors"))
        #expect(null.metadata.isEmpty)
    }

    @Test func scalarsAndZeroSizedTensors() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("edge/scalar_and_empty.safetensors"))
        let s = try file.tensor("scalar")
        #expect(s.shape == [] && s.scalars == [7.25])
        let e = try file.tensor("empty")
        #expect(e.shape == [0, 3] && e.count == 0)
        #expect(try file.integers("empty_i64") == [])
        #expect(try file.integers("after") == [42])
        #expect(file.info("empty")?.byteRange.isEmpty == true)
    }

    @Test func unalignedDataAndUnpaddedHeader() throws {
        let url = Fixtures.url("edge/unaligned.safetensors")
        let file = try SafeTensorsFile(contentsOf: url)
        let info = try #require(file.info("f32"))
        #expect(info.byteRange.lowerBound % 4 != 0)  // the case the fixture exists for
        #expect(try file.tensor("f32").scalars == [1.5, -2])
        #expect(try file.integers("bytes") == [1, 2, 3])
        #expect(try file.tensor("f16").scalars == [1])
    }

    @Test func unorderedOffsetsEscapedNamesAndExtraKeys() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("edge/unordered_escaped.safetensors"))
        let odd = "quote\"d\u{e9}\n\u{1F600}"
        #expect(file.tensorNames == ["a.first", odd, "z.second"])
        #expect(try file.tensor("a.first").scalars == [1, 2])
        #expect(try file.tensor("z.second").scalars == [3, 4])
        #expect(try file.integers(odd) == [9])
        let utf8 = try SafeTensorsFile(contentsOf: Fixtures.url("edge/utf8_names.safetensors"))
        #expect(try utf8.tensor("gewicht.ä.😀").scalars == [0.5])
    }

    @Test func sharedAcrossThreads() async throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("mha.safetensors"))
        let want = try file.tensor("in_proj_weight")
        try await withThrowingTaskGroup(of: Tensor.self) { group in
            for _ in 0..<8 { group.addTask { try file.tensor("in_proj_weight") } }
            for try await t in group { #expect(t == want) }
        }
    }

    @Test func unreadablePaths() throws {
        let missing = Fixtures.url("does/not/exist.safetensors")
        let e = safeTensorsError { _ = try SafeTensorsFile(contentsOf: missing) }
        guard case .unreadable(let file, _) = e else {
            Issue.record("expected .unreadable, got \(String(describing: e))")
            return
        }
        #expect(file == missing.path)
        let dir = Fixtures.url("edge")
        #expect(
            safeTensorsError { _ = try SafeTensorsFile(contentsOf: dir) }
                == .unreadable(file: dir.path, reason: "not a regular file"))
    }
}
