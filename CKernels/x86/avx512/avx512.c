/*
 * AVX-512 variant (x86-64, F/BW/DQ/VL): every kernel of core/templates/variant.h with a
 * 14 x 32 micro-tile (ck_f32_gemm_ukr_14x32__avx512).
 *
 * Registers (32 zmm, 16 floats each): 14 rows x 2 vectors = 28 accumulators, 2 B vectors,
 * 1 broadcast of A (folded into the FMA as an embedded {1to16} broadcast) = 31.
 * Per k step: 2 loads of B + 14 broadcasts for 28 FMAs (14 cycles on two 512-bit FMA ports);
 * 28 independent chains cover FMA latency 4 x 2 ports = 8 with room to spare.
 *
 * Cache blocks (float32), the fallback where the caches are not reported; the table handed
 * out derives them from the caches at run time (ck_gemm_blocking_derive: on a Zen 4 core with
 * 1 MiB of L2 and 32 MiB of L3 shared by 2, mc = 252, kc = 1024, nc = 2048):
 *   kc = 256: B micro-panel kc x 32 = 32 KiB (L1 is 48 KiB on Zen 5), A micro-panel 14 KiB
 *   mc = 168: packed A block 168 x 256 = 168 KiB in L2 (1 MiB)
 *   nc = 3072: packed B block 256 x 3072 = 3 MiB in L3
 *
 * The fused attention has its own 8 x 48 tile (ck_f32_attn_ukr_8x48__avx512): 24 accumulators,
 * 3 B vectors, 1 broadcast = 28 registers; per k step 3 loads of B + 8 broadcasts for 24 FMAs.
 * Its rows are keys (S^T = K Q^T) and head dimensions (O^T += V^T P^T), and 8 divides the head
 * sizes 64 and 128, where 14 rows padded 64 to 70 (9% of the second product wasted). Key
 * blocks of 384: the score tile 384 x 48 floats = 72 KiB lives in L2 and streams into both
 * the softmax step and the second product; measured on Zen 4 (thread CPU time, seq 4096, head
 * size 64): 14 x 32 with 392 keys 77% of the FMA peak, 8 x 48 with 128 / 192 / 256 / 384 keys
 * 80 / 81 / 81 / 82%, 4 x 64 with 256 keys 82%, 12 x 32 76%; two query panels no better.
 *
 * min_vector_width(512) keeps the backend from splitting the 64-byte vectors into 256-bit
 * halves on CPUs tuned to prefer 256-bit vectors.
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>

#pragma clang attribute push(                                                                      \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"), min_vector_width(512))), \
    apply_to = function)

typedef float ck_v16f __attribute__((vector_size(64)));
typedef int ck_v16i __attribute__((vector_size(64)));

#define CK_VEC ck_v16f
#define CK_IVEC ck_v16i
#define CK_VL 16
#define CK_FN(name) name##__avx512
#define CK_UKR_NAME ck_f32_gemm_ukr_14x32__avx512
#define CK_UKR_ROWS_NAME ck_f32_gemm_ukr_rows_14x32__avx512
#define CK_MR 14
#define CK_NV 2
#define CK_MC 168
#define CK_KC 256
#define CK_NC 3072
#define CK_PEAK_CHAINS 24
#define CK_VSCALEF(p, k) ((ck_v16f)_mm512_scalef_ps((__m512)(p), (__m512)(k))) /* p * 2^floor(k) */
/* table[low 4 bits of idx's bits], lane-wise: vpermps reads only those bits */
#define CK_VPERM16(idx, table) ((ck_v16f)_mm512_permutexvar_ps((__m512i)(idx), (__m512)(table)))
#define CK_VRCP(x) ((ck_v16f)_mm512_rcp14_ps((__m512)(x))) /* 1/x, relative error < 2^-14 */
#define CK_ATTN_UKR_NAME ck_f32_attn_ukr_8x48__avx512
#define CK_ATTN_MR 8
#define CK_ANV 3
#ifndef CK_AVX512_ATTN_KEYS /* overridable only to let a tuning build sweep it */
#define CK_AVX512_ATTN_KEYS 384
#endif
#define CK_ATTN_QUERY_PANELS 1 /* 48 queries: Q panel 64 x 48 floats = 12 KiB */
#define CK_ATTN_KEY_BLOCK CK_AVX512_ATTN_KEYS
#define CK_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define CK_GEMV_GROUP 4 /* multi-row GEMV: 4 rows x 4 accumulators + weights in 32 registers */
#define CK_TABLE ck_kernels_avx512
#define CK_VARIANT_ID CK_VARIANT_AVX512
#define CK_VARIANT_NAME "avx512"
#include "../../core/templates/variant.h"

#pragma clang attribute pop

#endif
