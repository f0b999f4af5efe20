/*
 * NEON (AArch64) variant: every kernel of core/templates/variant.h with an 8 x 12 micro-tile
 * (ck_f32_gemm_ukr_8x12__neon). NEON is architectural on AArch64: no target attributes.
 *
 * Registers (32 q, 4 floats each): 8 rows x 3 vectors = 24 accumulators, 3 B vectors,
 * 1-2 for A = 28. 24 independent chains cover FMA latency 4 x up to 4 FMA pipes.
 *
 * Cache blocks (float32), the fallback where the caches are not reported (the table handed
 * out derives them from the caches at run time, ck_gemm_blocking_derive):
 *   kc = 256: B micro-panel 256 x 12 = 12 KiB and A micro-panel 8 KiB in L1 (64+ KiB)
 *   mc = 128: packed A block 128 KiB in L2
 *   nc = 4092 (a multiple of 12): packed B block 4 MiB
 */
#include "../../core/ck_internal.h"

#if defined(__aarch64__)

#include <arm_neon.h>

typedef float ck_v4f __attribute__((vector_size(16)));
typedef int ck_v4i __attribute__((vector_size(16)));

#define CK_VEC ck_v4f
#define CK_IVEC ck_v4i
#define CK_VL 4
#define CK_FN(name) name##__neon
#define CK_UKR_NAME ck_f32_gemm_ukr_8x12__neon
#define CK_UKR_ROWS_NAME ck_f32_gemm_ukr_rows_8x12__neon
#define CK_MR 8
#define CK_NV 3
#define CK_MC 128
#define CK_KC 256
#define CK_NC 4092
#define CK_PEAK_CHAINS 24
#define CK_ANV 3
#define CK_ATTN_QUERY_PANELS 2 /* 24 queries */
#define CK_ATTN_KEY_BLOCK 384  /* score tile 384 x 24 floats = 36 KiB */
#define CK_LOAD_F16(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))) /* fcvtl */
#define CK_GEMV_GROUP 4 /* multi-row GEMV: 4 rows x 4 accumulators + weights in 32 registers */
#define CK_TABLE ck_kernels_neon
#define CK_VARIANT_ID CK_VARIANT_NEON
#define CK_VARIANT_NAME "neon"
#include "../../core/templates/variant.h"

#endif
