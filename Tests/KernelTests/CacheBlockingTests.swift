// The GEMM blocking derived from the cache hierarchy (ck_gemm_blocking_derive): the rule of the
// header on known hierarchies, the fallback to the compiled-in constants, and the live tables.
import CKernels
import Testing

@testable import Attend

@Suite("Cache blocking")
struct CacheBlockingTests {
    static func level(_ size: Int64, ways: Int32 = 8, sharing: Int32 = 1) -> ck_cache_level {
        ck_cache_level(size: size, ways: ways, line: 64, sharing: sharing)
    }

    static func caches(l1: Int64, l2: Int64, l3: Int64, l2Sharing: Int32 = 1, l3Sharing: Int32 = 1, cpus: Int32 = 2) -> ck_cache_info {
        ck_cache_info(
            l1d: level(l1), l2: level(l2, sharing: l2Sharing), l3: level(l3, ways: 16, sharing: l3Sharing), cpus: cpus,
            source: Int32(CK_CACHE_FROM_SYSFS.rawValue))
    }

    static func derive(_ fallback: ck_gemm_blocking, _ c: ck_cache_info) -> ck_gemm_blocking {
        var f = fallback, c = c
        return ck_gemm_blocking_derive(&f, &c)
    }

    static let avx512Tile = ck_gemm_blocking(mr: 14, nr: 32, mc: 168, kc: 256, nc: 3072)
    static let avx2Tile = ck_gemm_blocking(mr: 6, nr: 16, mc: 48, kc: 1024, nc: 4096)

    @Test("the header's rule on a Zen 4 core (32 KiB L1d, 1 MiB L2, 32 MiB L3 shared by 8 of 16 CPUs)")
    func zen4() {
        let c = Self.caches(l1: 32 << 10, l2: 1 << 20, l3: 32 << 20, l3Sharing: 8, cpus: 16)
        let g = Self.derive(Self.avx512Tile, c)
        // kc: 512 KiB / (8 * 14 * 4) = 1170 -> capped at 1024; mc: 1 MiB / (1024 * 4) = 256 -> 252;
        // nc: 32 MiB / 2 / 8 / (1024 * 4) = 512.
        #expect(g.mr == 14 && g.nr == 32)
        #expect(g.kc == 1024 && g.mc == 252 && g.nc == 512, "\(g)")
        let g2 = Self.derive(Self.avx2Tile, c)
        #expect(g2.kc == 1024 && g2.mc == 252 && g2.nc == 512, "\(g2)")
    }

    @Test("a small L2 shortens kc; a shared L2 and few online CPUs are accounted for")
    func sharedCaches() {
        // 256 KiB L2: kc = 128 KiB / (8 * 14 * 4) = 292 -> 288; mc = 256 KiB / (288 * 4) = 227 -> 224.
        let small = Self.derive(Self.avx512Tile, Self.caches(l1: 48 << 10, l2: 256 << 10, l3: 8 << 20, l3Sharing: 4, cpus: 8))
        #expect(small.kc == 288 && small.mc == 224, "\(small)")
        // nc: 8 MiB / 2 / 4 / (288 * 4) = 910 -> 896.
        #expect(small.nc == 896, "\(small)")
        // A 4 MiB L2 shared by 4 cores is 1 MiB each; an L3 "shared by 64" on a 2-CPU machine is
        // shared by 2: nc = 32 MiB / 2 / 2 / 4096 = 2048.
        let shared = Self.derive(
            Self.avx512Tile, Self.caches(l1: 64 << 10, l2: 4 << 20, l3: 32 << 20, l2Sharing: 4, l3Sharing: 64, cpus: 2))
        #expect(shared.kc == 1024 && shared.mc == 252 && shared.nc == 2048, "\(shared)")
    }

    @Test("blocks stay multiples of the tile and within the bounds, on any hierarchy")
    func invariants() {
        var rng = SplitMix64(state: 7)
        for fallback in [Self.avx512Tile, Self.avx2Tile, ck_gemm_blocking(mr: 8, nr: 12, mc: 128, kc: 256, nc: 4092)] {
            for _ in 0..<500 {
                let c = Self.caches(
                    l1: Int64(1 << Int.random(in: 10...18, using: &rng)), l2: Int64(1 << Int.random(in: 12...25, using: &rng)),
                    l3: Int64.random(in: 0...(1 << 28), using: &rng), l2Sharing: Int32.random(in: 0...8, using: &rng),
                    l3Sharing: Int32.random(in: 0...128, using: &rng), cpus: Int32.random(in: 0...256, using: &rng))
                let g = Self.derive(fallback, c)
                #expect(g.mr == fallback.mr && g.nr == fallback.nr)
                #expect(g.mc > 0 && g.mc % g.mr == 0 && g.mc <= CK_BLOCK_MC_MAX, "\(g) from \(c)")
                #expect(g.nc >= CK_BLOCK_NC_MIN && g.nc % g.nr == 0 && g.nc <= CK_BLOCK_NC_MAX, "\(g) from \(c)")
                #expect(g.kc >= CK_BLOCK_KC_MIN && g.kc <= CK_BLOCK_KC_MAX && g.kc % 8 == 0, "\(g) from \(c)")
                // The A block fits the core's share of L2 unless kc and mc are at their floors.
                let l2Share = c.l2.size / Int64(max(c.l2.sharing, 1))
                if g.kc > CK_BLOCK_KC_MIN && g.mc > g.mr {
                    #expect(Int64(g.mc) * Int64(g.kc) * 4 <= l2Share, "\(g) from \(c)")
                }
            }
        }
    }

    @Test("a cache that is not reported leaves its block at the compiled-in constant")
    func fallback() {
        var none = ck_cache_info()
        let g = Self.derive(Self.avx512Tile, none)
        #expect(g.mc == 168 && g.kc == 256 && g.nc == 3072, "\(g)")
        none.l2 = Self.level(1 << 20)
        let onlyL2 = Self.derive(Self.avx512Tile, none)
        #expect(onlyL2.kc == 1024 && onlyL2.mc == 252 && onlyL2.nc == 3072, "\(onlyL2)")
        none.l2 = ck_cache_level()
        none.l3 = Self.level(32 << 20, sharing: 2)
        let onlyL3 = Self.derive(Self.avx512Tile, none)
        // kc stays 256: nc = 32 MiB / 2 / 2 / (256 * 4) = 8192.
        #expect(onlyL3.kc == 256 && onlyL3.mc == 168 && onlyL3.nc == 8192, "\(onlyL3)")
    }

    @Test("each variant's table carries the blocking derived from this machine's caches", arguments: KernelVariant.supported)
    func liveTables(_ variant: KernelVariant) {
        let constants = variant.gemmBlockingConstants
        var f = ck_gemm_blocking(
            mr: Int32(constants.mr), nr: Int32(constants.nr), mc: Int32(constants.mc), kc: Int32(constants.kc), nc: Int32(constants.nc))
        let want = GEMMBlocking(ck_gemm_blocking_derive(&f, ck_cache_info_get()))
        #expect(variant.gemmBlocking == want, "\(variant): table \(variant.gemmBlocking), derived \(want)")
        if CacheHierarchy.current.source == "none" {
            #expect(variant.gemmBlocking == constants, "\(variant): no caches reported, yet the blocking changed")
        }
    }

    @Test("the hierarchy read at start-up is plausible")
    func hierarchy() {
        let h = CacheHierarchy.current
        #expect(["cpuid", "sysfs", "sysctl", "none"].contains(h.source), "\(h)")
        #expect(h.onlineCPUs >= 1, "\(h)")
        if h.source != "none" {
            #expect(h.l1Data != nil || h.l2 != nil || h.l3 != nil, "\(h)")
        }
        for level in [h.l1Data, h.l2, h.l3].compactMap({ $0 }) {
            #expect(level.bytes >= 1024, "\(h)")
            #expect(level.lineBytes == 0 || level.lineBytes & (level.lineBytes - 1) == 0, "\(h)")
        }
        if let l1 = h.l1Data, let l2 = h.l2 { #expect(l1.bytes <= l2.bytes, "\(h)") }
        if let l2 = h.l2, let l3 = h.l3 { #expect(l2.bytes <= l3.bytes, "\(h)") }
        var again = ck_cache_info()
        ck_cache_info_read(&again)
        #expect(CacheHierarchy(again) == h, "a second read differs: \(CacheHierarchy(again)) vs \(h)")
    }
}
