// SHA-256 and SHA-1 against the NIST test vectors (FIPS 180-4 examples: "abc", the empty
// string, the 448- and 896-bit messages, one million 'a'), lengths around the 64-byte block
// and its padding boundary (55, 56, 63, 64, 65, 119, 120, 128), streaming in pieces of every
// size, and git's blob id.
import Foundation
import Testing

import Attend

@Suite("SHA-256 and SHA-1")
struct SHATests {
    static func sha256(_ bytes: [UInt8]) -> String {
        var h = SHA256()
        h.update(bytes)
        return h.finalizeHex()
    }

    static func sha1(_ bytes: [UInt8]) -> String {
        var h = SHA1()
        h.update(bytes)
        return h.finalizeHex()
    }

    static let m448 = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
    static let m896 = Array(
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)

    @Test func sha256NISTVectors() {
        #expect(Self.sha256(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Self.sha256([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.sha256(Self.m448) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Self.sha256(Self.m896) == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        #expect(Self.sha256([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func sha1NISTVectors() {
        #expect(Self.sha1(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Self.sha1([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(Self.sha1(Self.m448) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(Self.sha1(Self.m896) == "a49b2446a02c645bf419f995b67091253a04a259")
        #expect(Self.sha1([UInt8](repeating: 0x61, count: 1_000_000)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    /// n times 'a' around the block and padding boundaries (digests from Python's hashlib).
    static let boundaries: [(Int, String, String)] = [
        (55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318", "c1c8bbdc22796e28c0e15163d20899b65621d65a"),
        (56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a", "c2db330f6083854c99d4b5bfb6e8f29f201be699"),
        (63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34", "03f09f5b158a7a8cdad920bddc29b81c18a551f5"),
        (64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb", "0098ba824b5c16427bd7a1122a5a442a25ec644d"),
        (65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0", "11655326c708d70319be2610e8a57d9a5b959d3b"),
        (119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb", "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"),
        (120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c", "f34c1488385346a55709ba056ddd08280dd4c6d6"),
        (128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e", "ad5b3fdbcb526778c2839d2f151ea753995e26a0"),
    ]

    @Test func blockBoundaries() {
        for (n, s256, s1) in Self.boundaries {
            let bytes = [UInt8](repeating: 0x61, count: n)
            #expect(Self.sha256(bytes) == s256, "SHA-256 of \(n) bytes")
            #expect(Self.sha1(bytes) == s1, "SHA-1 of \(n) bytes")
        }
    }

    /// Feeding in pieces of every size from 1 to 130 gives the one-shot digest.
    @Test func streamingInPieces() {
        let message = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 >> 3) }
        let whole256 = Self.sha256(message)
        let whole1 = Self.sha1(message)
        for piece in 1...130 {
            var a = SHA256()
            var b = SHA1()
            var i = 0
            while i < message.count {
                let part = Array(message[i..<min(i + piece, message.count)])
                a.update(part)
                b.update(part)
                i += piece
            }
            #expect(a.finalizeHex() == whole256, "pieces of \(piece)")
            #expect(b.finalizeHex() == whole1, "pieces of \(piece)")
        }
    }

    /// Files: SHA-256 of the bytes, and git's blob id (`echo hello | git hash-object --stdin`).
    @Test func fileDigests() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("attend-sha-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data("hello\n".utf8).write(to: url)
        #expect(try FileDigest.gitBlob("").compute(fileAt: url) == "ce013625030ba8dba906f756967f9e9ca394464a")
        #expect(try FileDigest.sha256("").compute(fileAt: url) == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        #expect(FileDigest(etag: String(repeating: "a", count: 64)) == .sha256(String(repeating: "a", count: 64)))
        #expect(FileDigest(etag: String(repeating: "0", count: 40)) == .gitBlob(String(repeating: "0", count: 40)))
        #expect(FileDigest(etag: "../../etc/passwd") == nil)
        #expect(FileDigest(etag: String(repeating: "A", count: 64)) == nil)
    }
}
