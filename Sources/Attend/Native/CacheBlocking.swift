internal import CKernels

/// The block sizes of a variant's matrix product (the BLIS loops of `ck_f32_gemm`).
///
/// `mr x nr` is the micro-tile held in registers, fixed per variant. The cache blocks are
/// derived once per process from the cache sizes read at start-up (``CacheHierarchy``), with
/// L2 and L3 divided among the CPUs that share them:
/// - `kc`, the depth of one packed block, is as deep as half of L2 allows while an A block of
///   at least 8 row tiles (`8 mr` rows) fits there, at most 1024: the C tile is read and
///   written once per `kc` block, so depth pays, and the `mr x kc` and `kc x nr` packed
///   micro-panels stream from L2 as fast as the micro-kernel consumes them;
/// - `mc` makes the `mc x kc` block of A fill that half of L2;
/// - `nc` keeps the `kc x nc` blocks of B, one per thread sharing the last-level cache, in
///   half of it (at least 512 columns).
///
/// A cache that is not reported leaves its block at the variant's compiled-in constant.
/// The rule is `ck_gemm_blocking_derive` in the C header.
public struct GEMMBlocking: Sendable, Hashable, CustomStringConvertible {
    /// Rows of the micro-tile (rows of C per micro-kernel call).
    public let mr: Int
    /// Columns of the micro-tile; packed weights are cut into panels this wide.
    public let nr: Int
    /// Rows of A packed per block (a multiple of `mr`), sized for L2.
    public let mc: Int
    /// Depth of the product per packed block (the length of the k loop of one micro-kernel
    /// call), sized with `mc` for L2.
    public let kc: Int
    /// Columns of B packed per block (a multiple of `nr`), sized for the last-level cache.
    public let nc: Int

    init(_ g: ck_gemm_blocking) {
        mr = Int(g.mr)
        nr = Int(g.nr)
        mc = Int(g.mc)
        kc = Int(g.kc)
        nc = Int(g.nc)
    }

    /// `"mr x nr = 14 x 32, mc 252, kc 1024, nc 2048"`.
    public var description: String { "mr x nr = \(mr) x \(nr), mc \(mc), kc \(kc), nc \(nc)" }
}

/// The data caches of the CPU as Attend read them at start-up, to size the GEMM's blocks.
///
/// Read on x86-64 with `cpuid` (leaf 4 on Intel, leaf 0x8000001D on AMD), otherwise from
/// Linux sysfs (`/sys/devices/system/cpu/cpu0/cache`) or macOS `sysctl`. In a virtual machine
/// these are the sizes the hypervisor reports.
public struct CacheHierarchy: Sendable, Hashable, CustomStringConvertible {
    /// One cache level.
    public struct Level: Sendable, Hashable {
        /// Capacity in bytes.
        public let bytes: Int
        /// Associativity (ways); 0 when not reported or fully associative.
        public let ways: Int
        /// Line size in bytes; 0 when not reported.
        public let lineBytes: Int
        /// Logical CPUs that share this cache; 0 when not reported.
        public let sharedBy: Int

        init?(_ c: ck_cache_level) {
            guard c.size > 0 else { return nil }
            bytes = Int(c.size)
            ways = Int(c.ways)
            lineBytes = Int(c.line)
            sharedBy = Int(c.sharing)
        }
    }

    /// The level-1 data cache of one core, or `nil` if no source reported it.
    public let l1Data: Level?
    /// The level-2 cache, or `nil`.
    public let l2: Level?
    /// The level-3 (last-level) cache, or `nil`.
    public let l3: Level?
    /// Logical CPUs online when the caches were read.
    public let onlineCPUs: Int
    /// Where the sizes came from: `"cpuid"`, `"sysfs"`, `"sysctl"` or `"none"` (every block
    /// keeps the variant's constant).
    public let source: String

    init(_ c: ck_cache_info) {
        l1Data = Level(c.l1d)
        l2 = Level(c.l2)
        l3 = Level(c.l3)
        onlineCPUs = Int(c.cpus)
        switch c.source {
        case Int32(CK_CACHE_FROM_CPUID.rawValue): source = "cpuid"
        case Int32(CK_CACHE_FROM_SYSFS.rawValue): source = "sysfs"
        case Int32(CK_CACHE_FROM_SYSCTL.rawValue): source = "sysctl"
        default: source = "none"
        }
    }

    /// The hierarchy read once per process (the one the GEMM blocking was derived from).
    /// Cost: a few `cpuid` instructions or file reads on first use, O(1) afterwards.
    public static var current: CacheHierarchy { CacheHierarchy(ck_cache_info_get().pointee) }

    /// `"L1d 32 KiB 8-way, L2 1 MiB 8-way, L3 32 MiB 16-way shared by 2 (cpuid)"`.
    public var description: String {
        func size(_ b: Int) -> String {
            b >= 1 << 20 && b % (1 << 20) == 0 ? "\(b >> 20) MiB" : "\(b >> 10) KiB"
        }
        func level(_ name: String, _ l: Level?) -> String {
            guard let l else { return "\(name) not reported" }
            var s = "\(name) \(size(l.bytes))"
            if l.ways > 0 { s += " \(l.ways)-way" }
            if l.sharedBy > 1 { s += " shared by \(l.sharedBy)" }
            return s
        }
        return [level("L1d", l1Data), level("L2", l2), level("L3", l3)].joined(separator: ", ") + " (\(source))"
    }
}

extension KernelVariant {
    /// The GEMM blocking this variant runs with on this machine: its micro-tile and the cache
    /// blocks derived from ``CacheHierarchy/current`` (see ``GEMMBlocking``). Cost: O(1).
    public var gemmBlocking: GEMMBlocking { GEMMBlocking(kernels.pointee.gemm) }

    /// The variant's compiled-in blocking: the cache blocks used where a cache size is not
    /// reported (the constants beside each ISA file's register and cache arithmetic).
    public var gemmBlockingConstants: GEMMBlocking {
        var g = ck_gemm_blocking()
        let ok = ck_gemm_blocking_constants(cValue, &g)
        precondition(ok != 0, "KernelVariant.\(self) is not compiled for this architecture")
        return GEMMBlocking(g)
    }
}
