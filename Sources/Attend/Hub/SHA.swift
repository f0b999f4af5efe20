import Foundation

// SHA-256 and SHA-1 (FIPS 180-4), streaming, for checking downloaded files against the
// hashes the Hugging Face Hub reports: the SHA-256 of a large (LFS) file, and the git blob
// id (SHA-1 of "blob <size>\0" followed by the bytes) of a small one. Foundation has no
// hash on Linux, and Attend takes no package, so both are written out here. Cost: one
// pass over the bytes, 64 (SHA-256) or 80 (SHA-1) rounds per 64-byte block.

/// A hash fed in pieces: `update` any number of times, then `finalize` once.
package protocol StreamingHash {
    /// Feeds `bytes` (any length).
    mutating func update(_ bytes: UnsafeRawBufferPointer)
    /// The digest of everything fed (32 bytes for SHA-256, 20 for SHA-1). Call once.
    mutating func finalize() -> [UInt8]
}

extension StreamingHash {
    /// Feeds the bytes of `data`.
    package mutating func update(_ data: some DataProtocol) {
        for region in data.regions { region.withUnsafeBytes { update($0) } }
    }

    /// Feeds the bytes of `bytes`.
    package mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything fed, as lowercase hexadecimal. Call once.
    package mutating func finalizeHex() -> String {
        hexString(finalize())
    }
}

/// Lowercase hexadecimal of `bytes`.
package func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The 64-byte block buffering and the length padding SHA-1 and SHA-256 share.
private struct BlockBuffer {
    var pending = [UInt8](repeating: 0, count: 64)
    var pendingCount = 0
    var length: UInt64 = 0

    /// Calls `compress` on every complete 64-byte block of the stream so far.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ compress: (UnsafeRawPointer) -> Void) {
        guard var p = bytes.baseAddress, !bytes.isEmpty else { return }
        var n = bytes.count
        length &+= UInt64(n)
        if pendingCount > 0 {
            let take = min(64 - pendingCount, n)
            pending.withUnsafeMutableBytes { buf in
                (buf.baseAddress! + pendingCount).copyMemory(from: p, byteCount: take)
            }
            pendingCount += take
            p += take
            n -= take
            if pendingCount < 64 { return }
            pending.withUnsafeBytes { compress($0.baseAddress!) }
            pendingCount = 0
        }
        while n >= 64 {
            compress(p)
            p += 64
            n -= 64
        }
        if n > 0 {
            pending.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: p, byteCount: n) }
            pendingCount = n
        }
    }

    /// Appends 0x80, zeros and the bit length (big-endian), compressing the last blocks.
    mutating func pad(_ compress: (UnsafeRawPointer) -> Void) {
        let bits = length &* 8
        var tail: [UInt8] = [0x80]
        let used = (pendingCount + 1) % 64
        tail += [UInt8](repeating: 0, count: used <= 56 ? 56 - used : 120 - used)
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        let saved = length
        tail.withUnsafeBytes { feed($0, compress) }
        length = saved
        precondition(pendingCount == 0, "SHA padding must end on a block boundary")
    }
}

@inline(__always) private func bigEndianWord(_ p: UnsafeRawPointer, _ i: Int) -> UInt32 {
    UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
}

@inline(__always) private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x &>> n) | (x &<< (32 &- n)) }

/// SHA-256 (FIPS 180-4), fed in pieces.
package struct SHA256: StreamingHash {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    private var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var blocks = BlockBuffer()
    private var w = [UInt32](repeating: 0, count: 64)

    /// An empty hash.
    package init() {}

    package mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var state = (h, w)
        blocks.feed(bytes) { SHA256.compress($0, &state.0, &state.1) }
        (h, w) = state
    }

    package mutating func finalize() -> [UInt8] {
        var state = (h, w)
        blocks.pad { SHA256.compress($0, &state.0, &state.1) }
        h = state.0
        return h.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32($0))) } }
    }

    private static func compress(_ block: UnsafeRawPointer, _ h: inout [UInt32], _ w: inout [UInt32]) {
        k.withUnsafeBufferPointer { k in
            w.withUnsafeMutableBufferPointer { w in
                for i in 0..<16 { w[i] = bigEndianWord(block, i) }
                for i in 16..<64 {
                    let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                    let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                    w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                }
                var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
                for i in 0..<64 {
                    let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                    let ch = (e & f) ^ (~e & g)
                    let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                    let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                    let maj = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = s0 &+ maj
                    (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
                }
                h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d
                h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
            }
        }
    }
}

/// SHA-1 (FIPS 180-4), fed in pieces: git's object id. Used only to check a file against
/// the git blob id a server reports, never for security on its own (the transfer is HTTPS).
package struct SHA1: StreamingHash {
    private var h: [UInt32] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    private var blocks = BlockBuffer()
    private var w = [UInt32](repeating: 0, count: 80)

    /// An empty hash.
    package init() {}

    package mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var state = (h, w)
        blocks.feed(bytes) { SHA1.compress($0, &state.0, &state.1) }
        (h, w) = state
    }

    package mutating func finalize() -> [UInt8] {
        var state = (h, w)
        blocks.pad { SHA1.compress($0, &state.0, &state.1) }
        h = state.0
        return h.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32($0))) } }
    }

    private static func compress(_ block: UnsafeRawPointer, _ h: inout [UInt32], _ w: inout [UInt32]) {
        w.withUnsafeMutableBufferPointer { w in
            for i in 0..<16 { w[i] = bigEndianWord(block, i) }
            for i in 16..<80 { w[i] = rotr(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 31) }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let f: UInt32
                let k: UInt32
                switch i {
                case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A827999)
                case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9EBA1)
                case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1BBCDC)
                default: (f, k) = (b ^ c ^ d, 0xCA62C1D6)
                }
                let t = rotr(a, 27) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, rotr(b, 2), a, t)
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e
        }
    }
}

/// How a file's bytes are checked against the id a server gives for them.
package enum FileDigest: Sendable, Equatable {
    /// The SHA-256 of the bytes (64 hex digits; the LFS object id).
    case sha256(String)
    /// The git blob id: SHA-1 of `"blob <size>\0"` and the bytes (40 hex digits).
    case gitBlob(String)

    /// The digest an etag names: 64 hex digits are a SHA-256, 40 a git blob id, anything
    /// else nil.
    package init?(etag: String) {
        guard etag.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        switch etag.utf8.count {
        case 64: self = .sha256(etag)
        case 40: self = .gitBlob(etag)
        default: return nil
        }
    }

    /// The expected hexadecimal digest.
    package var hex: String {
        switch self {
        case .sha256(let s), .gitBlob(let s): return s
        }
    }

    /// The digest of the file at `url`, computed the same way (read in 1 MiB pieces).
    /// Throws the file system's error when it cannot be read.
    package func compute(fileAt url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        func run<H: StreamingHash>(_ hash: inout H) throws {
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hash.update(chunk) }
        }
        switch self {
        case .sha256:
            var hash = SHA256()
            try run(&hash)
            return hash.finalizeHex()
        case .gitBlob:
            let size = try handle.seekToEnd()
            try handle.seek(toOffset: 0)
            var hash = SHA1()
            hash.update(Array("blob \(size)\0".utf8))
            try run(&hash)
            return hash.finalizeHex()
        }
    }
}
