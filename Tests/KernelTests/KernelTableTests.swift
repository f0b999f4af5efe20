// The C kernel tables and the variant plumbing: every supported variant has a consistent
// table, names round-trip, the workspace promise of the header holds.
import CKernels
import Testing

@testable import Attend
import AttendTestSupport

@Suite("Kernel tables")
struct KernelTableTests {
    @Test("each supported variant has a consistent table", arguments: KernelVariant.supported)
    func tableIsConsistent(_ variant: KernelVariant) {
        let k = variant.kernels.pointee
        let g = k.gemm
        #expect(k.variant == variant.cValue, "\(variant): table says variant \(k.variant)")
        #expect(String(cString: k.name) == variant.rawValue, "\(variant): table name \(String(cString: k.name))")
        #expect(g.mr > 0 && g.nr > 0 && g.mc > 0 && g.kc > 0 && g.nc > 0, "\(variant): blocking \(g)")
        #expect(g.mc % g.mr == 0, "\(variant): mc \(g.mc) is not a multiple of mr \(g.mr)")
        #expect(g.nc % g.nr == 0, "\(variant): nc \(g.nc) is not a multiple of nr \(g.nr)")
        #expect(variant.gemmMicroKernelName == String(cString: k.gemm_ukr_name))
        #expect(
            variant.gemmMicroKernelName.contains("\(g.mr)x\(g.nr)"),
            "\(variant): micro-kernel \(variant.gemmMicroKernelName) does not name its \(g.mr)x\(g.nr) tile")
        #expect(k.attn_mr > 0 && k.attn_nr > 0 && k.attn_query_panels > 0, "\(variant): attention tile \(k.attn_mr)x\(k.attn_nr)")
        #expect(k.attn_key_block % k.attn_mr == 0, "\(variant): key block \(k.attn_key_block) is not a multiple of attn_mr \(k.attn_mr)")
        #expect(k.attn_ukr != nil, "\(variant): a NULL slot")
    }

    @Test("the AVX-512-layout test table exists exactly on AVX2 machines and has the AVX-512 tile")
    func avx512LayoutTable() {
        let table = ck_kernels_avx512_layout_on_avx2()
        #expect((table != nil) == KernelVariant.avx2.isSupported)
        if let t = table {
            #expect(t.pointee.gemm.mr == 14 && t.pointee.gemm.nr == 32, "layout table tile \(t.pointee.gemm)")
            #expect(t.pointee.gemm.mc % t.pointee.gemm.mr == 0 && t.pointee.gemm.nc % t.pointee.gemm.nr == 0)
            if KernelVariant.avx512.isSupported {
                let r = KernelVariant.avx512.kernels.pointee
                #expect(
                    r.attn_mr == t.pointee.attn_mr && r.attn_nr == t.pointee.attn_nr
                        && r.attn_query_panels == t.pointee.attn_query_panels && r.attn_key_block == t.pointee.attn_key_block,
                    "AVX-512 attention tiling differs from the layout table's")
                let real = KernelVariant.avx512.kernels.pointee.gemm
                #expect(
                    real.mr == t.pointee.gemm.mr && real.nr == t.pointee.gemm.nr && real.mc == t.pointee.gemm.mc
                        && real.kc == t.pointee.gemm.kc && real.nc == t.pointee.gemm.nc,
                    "AVX-512 blocking \(real) differs from the layout table's \(t.pointee.gemm)")
            }
        }
    }

    @Test("variant names round-trip through the C tables")
    func variantNames() {
        for v in KernelVariant.allCases {
            #expect(String(cString: ck_variant_name(v.cValue)) == v.rawValue)
            #expect(ck_variant_from_name(v.rawValue) == v.cValue)
            #expect(KernelVariant(cValue: v.cValue) == v)
            #expect((ck_kernels_get(v.cValue) != nil) == v.isSupported, "\(v)")
        }
        #expect(ck_variant_from_name("bogus") == -1)
        #expect(ck_variant_name(99) == nil)
        #expect(ck_variant_name(-1) == nil)
        #expect(ck_kernels_get(99) == nil)
        #expect(KernelVariant(cValue: 99) == nil)
    }

    /// Header: the workspace is never more than (mc + nc) * kc + 64 floats, and the driver
    /// must run in exactly that much (the GEMM sweeps allocate what ck_f32_gemm_workspace
    /// says, through nativeGEMM).
    @Test("workspace size stays within the header's promise", arguments: TestedBackend.nativeOnly)
    func workspaceBound(_ backend: TestedBackend) {
        let kern = backend.kernels!
        let g = kern.pointee.gemm
        let limit = (Int(g.mc) + Int(g.nc)) * Int(g.kc) + 64
        for m in [0, 1, 7, Int(g.mc) + 1, 100_000] {
            for n in [0, 1, 33, Int(g.nc) + 1, 100_000] {
                for k in [0, 1, 300, 100_000] {
                    let ws = ck_f32_gemm_workspace(kern, m, n, k)
                    #expect(ws <= limit, "\(backend) m=\(m) n=\(n) k=\(k): workspace \(ws) > \(limit)")
                    #expect(ws >= 1, "\(backend) m=\(m) n=\(n) k=\(k): workspace \(ws)")
                }
            }
        }
    }
}
