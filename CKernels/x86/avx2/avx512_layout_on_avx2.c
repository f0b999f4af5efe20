/*
 * Test-only table (attend_kernels_testing.h): the AVX-512 variant's exact template
 * parameters (14 x 32 micro-tile with 16-lane vectors, its blocking and attention tiling)
 * compiled for AVX2: the compiler splits each 64-byte vector into two ymm halves. Slow (it
 * spills), but it runs the same packing, tile shape and arithmetic as the AVX-512 variant, so
 * tests on a CPU without AVX-512 still check that code path's logic.
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
/* Static helpers pass 64-byte vectors between themselves (all inlined, never across the ABI). */
#pragma clang diagnostic ignored "-Wpsabi"

typedef float ck_v16f_on_avx2 __attribute__((vector_size(64)));
typedef int ck_v16i_on_avx2 __attribute__((vector_size(64)));

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
#define CK_TABLE ck_kernels_avx512_layout_avx2
#define CK_VARIANT_ID CK_VARIANT_AVX2
#define CK_VARIANT_NAME "avx512-layout-on-avx2"
#define CK_Q8_GEMV ck_q8_gemv__avx2 /* the int8 kernels do not depend on the GEMM layout */
#define CK_Q8_GEMM ck_q8_gemm__avx2
#include "../../core/templates/variant.h"

#pragma clang attribute pop

#endif
