/*
 * AVX-512 variant: the SGEMM micro-kernel ck_f32_gemm_ukr_14x32__avx512 and the FMA probe.
 *
 * Registers (32 zmm, 16 floats each): 14 rows x 2 vectors = 28 accumulators, 2 B vectors,
 * 1 broadcast of A (folded into the FMA as an embedded {1to16} broadcast) = 31.
 * Per k step: 2 loads of B + 14 broadcasts for 28 FMAs (14 cycles on two 512-bit FMA ports);
 * 28 independent chains cover FMA latency 4 x 2 ports = 8 with room to spare.
 *
 * Cache blocks (float32):
 *   kc = 256: B micro-panel kc x 32 = 32 KiB (L1 is 48 KiB on Zen 5), A micro-panel 14 KiB
 *   mc = 168: packed A block 168 x 256 = 168 KiB in L2 (1 MiB)
 *   nc = 3072: packed B block 256 x 3072 = 3 MiB in L3
 *
 * min_vector_width(512) keeps the backend from splitting the 64-byte vectors into 256-bit
 * halves on CPUs tuned to prefer 256-bit vectors.
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)

#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"), min_vector_width(512))), apply_to = function)

typedef float ck_v16f __attribute__((vector_size(64)));
typedef int ck_v16i __attribute__((vector_size(64)));

#define CK_UKR_NAME ck_f32_gemm_ukr_14x32__avx512
#define CK_VEC ck_v16f
#define CK_VL 16
#define CK_MR 14
#define CK_NV 2
#include "../../core/gemm_ukr_template.h"
#undef CK_UKR_NAME
#undef CK_MR
#undef CK_NV

#define CK_PEAK_NAME ck_f32_fma_peak__avx512
#define CK_PEAK_CHAINS 24
#include "../../core/fma_peak_template.h"
#undef CK_PEAK_NAME
#undef CK_PEAK_CHAINS
#undef CK_VEC
#undef CK_VL


#define CK_FN(name) name##__avx512
#define CK_VEC ck_v16f
#define CK_IVEC ck_v16i
#define CK_VL 16
#define CK_ANV 2
#include "../../core/vmath_template.h"
#undef CK_FN
#undef CK_VEC
#undef CK_IVEC
#undef CK_VL
#undef CK_ANV

#pragma clang attribute pop

const ck_kernels ck_kernels_avx512 = {
    .variant = CK_VARIANT_AVX512,
    .name = "avx512",
    .gemm = {.mr = 14, .nr = 32, .mc = 168, .kc = 256, .nc = 3072},
    .gemm_ukr = ck_f32_gemm_ukr_14x32__avx512,
    .gemm_ukr_name = "ck_f32_gemm_ukr_14x32__avx512",
    .fma_peak = ck_f32_fma_peak__avx512,
    .exp = ck_f32_exp__avx512,
    .softmax_rows = ck_f32_softmax_rows__avx512,
    .attn_softmax_step = ck_f32_attn_softmax_step__avx512,
    .gemv = ck_f32_gemv__avx512,
    .gemv_t = ck_f32_gemv_t__avx512,
    .activation = ck_f32_activation__avx512,
    .norm_rows = ck_f32_norm_rows__avx512,
    .attn_query_panels = 1, /* 32 queries: Q panel 64 x 32 floats = 8 KiB */
    .attn_key_block = 392,  /* score tile 392 x 32 floats = 49 KiB, as measured best on AVX2 */
};

#endif
