/*
 * AVX2 + FMA variant: the SGEMM micro-kernel ck_f32_gemm_ukr_6x16__avx2 and the FMA probe.
 *
 * Registers (16 ymm, 8 floats each): 6 rows x 2 vectors = 12 accumulators, 2 B vectors,
 * 1 broadcast of A = 15. Per k step: 2 loads of B + 6 broadcasts for 12 FMAs (6 cycles on two
 * FMA ports), so loads never limit; 12 independent chains cover FMA latency 4 x 2 ports = 8.
 *
 * Cache blocks (float32), measured on Zen 5 (sweep of mc 48..288 x kc 256..1024, see
 * BENCHMARKS.md): a long kc wins, because every kc block re-reads and re-writes the whole C
 * block, and the B micro-panel streams well from L2:
 *   kc = 1024: A micro-panel 6 x kc = 24 KiB stays in L1 (48 KiB); B micro-panel kc x 16 =
 *              64 KiB streams from L2
 *   mc = 48:   packed A block 48 x 1024 = 192 KiB stays in L2 (1 MiB) next to B micro-panels
 *   nc = 4096: packed B block 1024 x 4096 = 16 MiB in L3 (32 MiB), streamed once per A block
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

typedef float ck_v8f __attribute__((vector_size(32)));
typedef int ck_v8i __attribute__((vector_size(32)));

#define CK_UKR_NAME ck_f32_gemm_ukr_6x16__avx2
#define CK_VEC ck_v8f
#define CK_VL 8
#define CK_MR 6
#define CK_NV 2
#include "../../core/gemm_ukr_template.h"
#undef CK_UKR_NAME
#undef CK_MR
#undef CK_NV

#define CK_PEAK_NAME ck_f32_fma_peak__avx2
#define CK_PEAK_CHAINS 12
#include "../../core/fma_peak_template.h"
#undef CK_PEAK_NAME
#undef CK_PEAK_CHAINS
#undef CK_VEC
#undef CK_VL

/*
 * The AVX-512 micro-kernel's exact source and tile (14 x 32 with 16-lane vectors), compiled
 * for AVX2: the compiler splits each 64-byte vector into two ymm halves. Slow (it spills), but
 * it runs the same packing, tile shape and arithmetic as the AVX-512 variant, so tests on a
 * CPU without AVX-512 still check that code path's logic.
 */
/* Static helpers pass 64-byte vectors between themselves (all inlined, never across the ABI). */
#pragma clang diagnostic ignored "-Wpsabi"
typedef float ck_v16f_on_avx2 __attribute__((vector_size(64)));
typedef int ck_v16i_on_avx2 __attribute__((vector_size(64)));
#define CK_UKR_NAME ck_f32_gemm_ukr_14x32__avx512_layout_on_avx2
#define CK_VEC ck_v16f_on_avx2
#define CK_VL 16
#define CK_MR 14
#define CK_NV 2
#include "../../core/gemm_ukr_template.h"
#undef CK_UKR_NAME
#undef CK_VEC
#undef CK_VL
#undef CK_MR
#undef CK_NV


#define CK_FN(name) name##__avx2
#define CK_VEC ck_v8f
#define CK_IVEC ck_v8i
#define CK_VL 8
#define CK_ANV 2
#include "../../core/vmath_template.h"
#undef CK_FN
#undef CK_VEC
#undef CK_IVEC
#undef CK_VL
#undef CK_ANV

#define CK_FN(name) name##__avx512_layout_on_avx2
#define CK_VEC ck_v16f_on_avx2
#define CK_IVEC ck_v16i_on_avx2
#define CK_VL 16
#define CK_ANV 2
#include "../../core/vmath_template.h"
#undef CK_FN
#undef CK_VEC
#undef CK_IVEC
#undef CK_VL
#undef CK_ANV

#pragma clang attribute pop

/* Overridable only to let a tuning build sweep them (-DCK_AVX2_MC=...); the defaults are the
 * measured best on Zen 5 (see BENCHMARKS.md). */
#ifndef CK_AVX2_MC
#define CK_AVX2_MC 48
#endif
#ifndef CK_AVX2_KC
#define CK_AVX2_KC 1024
#endif
#ifndef CK_AVX2_NC
#define CK_AVX2_NC 4096
#endif

const ck_kernels ck_kernels_avx2 = {
    .variant = CK_VARIANT_AVX2,
    .name = "avx2",
    .gemm = {.mr = 6, .nr = 16, .mc = CK_AVX2_MC, .kc = CK_AVX2_KC, .nc = CK_AVX2_NC},
    .gemm_ukr = ck_f32_gemm_ukr_6x16__avx2,
    .gemm_ukr_name = "ck_f32_gemm_ukr_6x16__avx2",
    .fma_peak = ck_f32_fma_peak__avx2,
    .exp = ck_f32_exp__avx2,
    .softmax_rows = ck_f32_softmax_rows__avx2,
    .attn_softmax_step = ck_f32_attn_softmax_step__avx2,
    .gemv = ck_f32_gemv__avx2,
    .gemv_t = ck_f32_gemv_t__avx2,
    .activation = ck_f32_activation__avx2,
    .norm_rows = ck_f32_norm_rows__avx2,
    .attn_query_panels = 2, /* 32 queries: Q panels 2 x 64 x 16 floats = 8 KiB */
    .attn_key_block = 384,  /* score tile 384 x 32 floats = 48 KiB (L1/L2); measured best of 48..1152 */
};

const ck_kernels ck_kernels_avx512_layout_avx2 = {
    .variant = CK_VARIANT_AVX2,
    .name = "avx512-layout-on-avx2",
    .gemm = {.mr = 14, .nr = 32, .mc = 168, .kc = 256, .nc = 3072},
    .gemm_ukr = ck_f32_gemm_ukr_14x32__avx512_layout_on_avx2,
    .gemm_ukr_name = "ck_f32_gemm_ukr_14x32__avx512_layout_on_avx2",
    .fma_peak = ck_f32_fma_peak__avx2,
    .exp = ck_f32_exp__avx512_layout_on_avx2,
    .softmax_rows = ck_f32_softmax_rows__avx512_layout_on_avx2,
    .attn_softmax_step = ck_f32_attn_softmax_step__avx512_layout_on_avx2,
    .gemv = ck_f32_gemv__avx512_layout_on_avx2,
    .gemv_t = ck_f32_gemv_t__avx512_layout_on_avx2,
    .activation = ck_f32_activation__avx512_layout_on_avx2,
    .norm_rows = ck_f32_norm_rows__avx512_layout_on_avx2,
    .attn_query_panels = 1,
    .attn_key_block = 392,
};

#endif
