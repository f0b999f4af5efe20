/*
 * Test-only table (attend_kernels_testing.h): the AVX-512 variant's exact template
 * parameters (14 x 32 micro-tile with 16-lane vectors, its blocking and attention tiling)
 * compiled for AVX2: the compiler splits each 64-byte vector into two ymm halves. Slow (it
 * spills), but it runs the same packing, tile shape and arithmetic as the AVX-512 variant (its
 * exp too, through the emulated vscalefps and vpermps below), so tests on a CPU without
 * AVX-512 still check that code path's logic.
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
/* Static helpers pass 64-byte vectors between themselves (all inlined, never across the ABI). */
#pragma clang diagnostic ignored "-Wpsabi"

typedef float ck_v16f_on_avx2 __attribute__((vector_size(64)));
typedef int ck_v16i_on_avx2 __attribute__((vector_size(64)));

/* The AVX-512 variant's two exp instructions, emulated lane by lane (slow; test-only), so
 * that its table exp (vector_ops.h, CK_VSCALEF and CK_VPERM16) is what this table runs too:
 * vpermps (table[low 4 bits of idx]) and vscalefps (p * 2^floor(k), rounded once: the
 * product formed in double, where it is exact, then rounded to float; NaN stays NaN). */
static inline __attribute__((always_inline)) ck_v16f_on_avx2 ck_perm16_on_avx2(ck_v16f_on_avx2 idx,
                                                                             ck_v16f_on_avx2 table) {
    const ck_v16i_on_avx2 i = (ck_v16i_on_avx2)idx & 15;
    ck_v16f_on_avx2 out;
    for (int l = 0; l < 16; l++) out[l] = table[i[l]];
    return out;
}
static inline __attribute__((always_inline)) ck_v16f_on_avx2 ck_scalef_on_avx2(ck_v16f_on_avx2 p,
                                                                             ck_v16f_on_avx2 k) {
    ck_v16f_on_avx2 out;
    for (int l = 0; l < 16; l++) {
        const float kl = k[l];
        if (kl != kl || p[l] != p[l]) {
            out[l] = p[l] + kl;
            continue;
        }
        float f = __builtin_floorf(kl);
        f = f < -1000.0f ? -1000.0f : f > 1000.0f ? 1000.0f : f;
        const uint64_t bits = (uint64_t)((int64_t)f + 1023) << 52;
        double scale;
        memcpy(&scale, &bits, sizeof scale);
        out[l] = (float)((double)p[l] * scale);
    }
    return out;
}
#define CK_VSCALEF(p, k) ck_scalef_on_avx2((p), (k))
#define CK_VPERM16(idx, table) ck_perm16_on_avx2((idx), (table))

#define CK_VEC ck_v16f_on_avx2
#define CK_IVEC ck_v16i_on_avx2
#define CK_VL 16
#define CK_FN(name) name##__avx512_layout_on_avx2
#define CK_UKR_NAME ck_f32_gemm_ukr_14x32__avx512_layout_on_avx2
#define CK_UKR_ROWS_NAME ck_f32_gemm_ukr_rows_14x32__avx512_layout_on_avx2
#define CK_MR 14
#define CK_NV 2
#define CK_MC 168
#define CK_KC 256
#define CK_NC 3072
#define CK_PEAK_CHAINS 24
#define CK_ANV 3
#define CK_ATTN_UKR_NAME ck_f32_attn_ukr_8x48__avx512_layout_on_avx2
#define CK_ATTN_MR 8
#define CK_ATTN_QUERY_PANELS 1
#define CK_ATTN_KEY_BLOCK 384
#define CK_GEMV_GROUP 4 /* as the AVX-512 variant: its 4-row GEMV pass */
#define CK_TABLE ck_kernels_avx512_layout_avx2
#define CK_VARIANT_ID CK_VARIANT_AVX2
#define CK_VARIANT_NAME "avx512-layout-on-avx2"
#define CK_Q8_GEMV ck_q8_gemv__avx2 /* the int8 kernels do not depend on the GEMM layout */
#define CK_Q8_GEMM ck_q8_gemm__avx2
#include "../../core/templates/variant.h"

#pragma clang attribute pop

#endif
