/*
 * NEON (AArch64) variant: the SGEMM micro-kernel ck_f32_gemm_ukr_8x12__neon and the FMA probe.
 *
 * Registers (32 q, 4 floats each): 8 rows x 3 vectors = 24 accumulators, 3 B vectors,
 * 1-2 for A = 28. 24 independent chains cover FMA latency 4 x up to 4 FMA pipes.
 *
 * Cache blocks (float32):
 *   kc = 256: B micro-panel 256 x 12 = 12 KiB and A micro-panel 8 KiB in L1 (64+ KiB)
 *   mc = 128: packed A block 128 KiB in L2
 *   nc = 4092 (a multiple of 12): packed B block 4 MiB
 */
#include "../../core/ck_internal.h"

#if defined(__aarch64__)

typedef float ck_v4f __attribute__((vector_size(16)));
typedef int ck_v4i __attribute__((vector_size(16)));

#define CK_UKR_NAME ck_f32_gemm_ukr_8x12__neon
#define CK_VEC ck_v4f
#define CK_VL 4
#define CK_MR 8
#define CK_NV 3
#include "../../core/gemm_ukr_template.h"
#undef CK_UKR_NAME
#undef CK_MR
#undef CK_NV

#define CK_PEAK_NAME ck_f32_fma_peak__neon
#define CK_PEAK_CHAINS 24
#include "../../core/fma_peak_template.h"
#undef CK_PEAK_NAME
#undef CK_PEAK_CHAINS
#undef CK_VEC
#undef CK_VL


#define CK_FN(name) name##__neon
#define CK_VEC ck_v4f
#define CK_IVEC ck_v4i
#define CK_VL 4
#define CK_ANV 3
#include "../../core/vmath_template.h"
#undef CK_FN
#undef CK_VEC
#undef CK_IVEC
#undef CK_VL
#undef CK_ANV

const ck_kernels ck_kernels_neon = {
    .variant = CK_VARIANT_NEON,
    .name = "neon",
    .gemm = {.mr = 8, .nr = 12, .mc = 128, .kc = 256, .nc = 4092},
    .gemm_ukr = ck_f32_gemm_ukr_8x12__neon,
    .gemm_ukr_name = "ck_f32_gemm_ukr_8x12__neon",
    .fma_peak = ck_f32_fma_peak__neon,
    .exp = ck_f32_exp__neon,
    .softmax_rows = ck_f32_softmax_rows__neon,
    .attn_softmax_step = ck_f32_attn_softmax_step__neon,
    .gemv = ck_f32_gemv__neon,
    .gemv_t = ck_f32_gemv_t__neon,
    .activation = ck_f32_activation__neon,
    .norm_rows = ck_f32_norm_rows__neon,
    .attn_query_panels = 2, /* 24 queries */
    .attn_key_block = 384,  /* score tile 384 x 24 floats = 36 KiB */
};

#endif
