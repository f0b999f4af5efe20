/*
 * Kernels over 16-bit weights (contracts in attend_kernels.h, "16-bit weights"): the weight
 * stays F16 or BF16 in memory and is widened to float32 in registers. Instantiated per ISA by
 * variant.h. The includer may define
 *   CK_LOAD_F16(p)   CK_VL binary16 values at p (any alignment) widened to a CK_VEC (F16C's
 *                    vcvtph2ps, NEON's fcvtl); without it, lane by lane in scalar code.
 *   CK_LOAD_BF16(p)  CK_VL bfloat16 values at p (any alignment) widened to a CK_VEC in the
 *                    lanes and bits of the portable form below; without it, zero-extend to
 *                    32 bits and shift left by 16.
 */

/* Rows of at most 8192 values go one at a time, as ck_f32_gemv's do (CK_GEMV_F32_SHORT_ROW:
 * one sequential stream the prefetcher follows; longer rows four at a time), so a 16-bit
 * weight's product sums exactly as the float32 product for every k. Measured on Zen 4, a
 * [3072, 768] or [50257, 768] BF16 weight streams about twice as fast one row at a time as
 * four rows at a time (4.4-4.8 vs 2.1 GB/s, 1 thread); on Zen 5 TinyLlama's BF16 weights
 * (rows of 2048 and 5632) 36 vs 21 GB/s. */
#ifndef CK_W16_SHORT_ROW
#define CK_W16_SHORT_ROW 8192
#endif

typedef uint16_t CK_FN(ck_h16v) __attribute__((vector_size(CK_VL * 2)));
typedef uint32_t CK_FN(ck_u32v) __attribute__((vector_size(CK_VL * 4)));

/* CK_VL bfloat16 values at p, widened. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload_bf16)(const uint16_t *p) {
#if defined(CK_LOAD_BF16)
    return (CK_VEC)CK_LOAD_BF16(p);
#else
    CK_FN(ck_h16v) h;
    memcpy(&h, p, sizeof h);
    const CK_FN(ck_u32v) u = __builtin_convertvector(h, CK_FN(ck_u32v)) << 16;
    CK_VEC v;
    memcpy(&v, &u, sizeof v);
    return v;
#endif
}

/* CK_VL binary16 values at p, widened. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload_f16)(const uint16_t *p) {
#if defined(CK_LOAD_F16)
    return (CK_VEC)CK_LOAD_F16(p);
#else
    CK_VEC v;
    for (int i = 0; i < CK_VL; i++) v[i] = ck_f16_to_f32(p[i]);
    return v;
#endif
}

static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload_w16)(int dtype,
                                                                       const uint16_t *p) {
    return dtype == CK_W16_BF16 ? CK_FN(ck_vload_bf16)(p) : CK_FN(ck_vload_f16)(p);
}

static inline __attribute__((always_inline)) float CK_FN(ck_w16_one)(int dtype, uint16_t h) {
    return dtype == CK_W16_BF16 ? ck_bf16_to_f32(h) : ck_f16_to_f32(h);
}

void CK_FN(ck_w16_widen)(int dtype, size_t n, const uint16_t *src, float *dst) {
    size_t i = 0;
    if (dtype == CK_W16_BF16) {
        for (; i + CK_VL <= n; i += CK_VL) CK_FN(ck_vstore)(dst + i, CK_FN(ck_vload_bf16)(src + i));
    } else {
        for (; i + CK_VL <= n; i += CK_VL) CK_FN(ck_vstore)(dst + i, CK_FN(ck_vload_f16)(src + i));
    }
    for (; i < n; i++) dst[i] = CK_FN(ck_w16_one)(dtype, src[i]);
}
