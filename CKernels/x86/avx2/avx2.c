/*
 * AVX2 + FMA variant (x86-64): every kernel of core/templates/variant.h with a 6 x 16
 * micro-tile (ck_f32_gemm_ukr_6x16__avx2).
 *
 * Registers (16 ymm, 8 floats each): 6 rows x 2 vectors = 12 accumulators, 2 B vectors,
 * 1 broadcast of A = 15. Per k step: 2 loads of B + 6 broadcasts for 12 FMAs (6 cycles on two
 * FMA ports), so loads never limit; 12 independent chains cover FMA latency 4 x 2 ports = 8.
 *
 * Cache blocks (float32), measured on Zen 5 (sweep of mc 48..288 x kc 256..1024, see
 * BENCHMARKS.md): a long kc wins, because every kc block re-reads and re-writes the whole C
 * block, and the B micro-panel streams well from L2. These are the fallback where the caches
 * are not reported; the table handed out derives the blocks from the caches at run time
 * (ck_gemm_blocking_derive, the same rule: on 1 MiB of L2, kc = 1024 and mc = 252):
 *   kc = 1024: A micro-panel 6 x kc = 24 KiB stays in L1 (48 KiB); B micro-panel kc x 16 =
 *              64 KiB streams from L2
 *   mc = 48:   packed A block 48 x 1024 = 192 KiB stays in L2 (1 MiB) next to B micro-panels
 *   nc = 4096: packed B block 1024 x 4096 = 16 MiB in L3 (32 MiB), streamed once per A block
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)

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

#include <immintrin.h>

/* F16C (vcvtph2ps) comes with every AVX2 CPU; dispatch.c checks its cpuid bit too. */
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

typedef float ck_v8f __attribute__((vector_size(32)));
typedef int ck_v8i __attribute__((vector_size(32)));

#define CK_VEC ck_v8f
#define CK_IVEC ck_v8i
#define CK_VL 8
#define CK_FN(name) name##__avx2
#define CK_UKR_NAME ck_f32_gemm_ukr_6x16__avx2
#define CK_UKR_ROWS_NAME ck_f32_gemm_ukr_rows_6x16__avx2
#define CK_MR 6
#define CK_NV 2
#define CK_MC CK_AVX2_MC
#define CK_KC CK_AVX2_KC
#define CK_NC CK_AVX2_NC
#define CK_PEAK_CHAINS 12
#define CK_ANV 2
#define CK_ATTN_QUERY_PANELS 2 /* 32 queries: Q panels 2 x 64 x 16 floats = 8 KiB */
#define CK_ATTN_KEY_BLOCK                                                                          \
    384 /* score tile 384 x 32 floats = 48 KiB (L1/L2); measured best of 48..1152 */
/* table[low 3 bits of idx's bits], lane-wise: vpermps reads only those bits */
#define CK_VPERM8(idx, table) ((ck_v8f)_mm256_permutevar8x32_ps((__m256)(table), (__m256i)(idx)))
#define CK_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
/* BF16 in one shuffle: the 8 values loaded into both 128-bit lanes (vbroadcasti128, a load
 * alone), then vpshufb puts each lane's 4 values into the high halves of its dwords and zeroes
 * the low halves: the lanes and bits of zero-extend + shift (vpmovzxwd + vpslld), with one
 * shuffle-pipe instruction where those took two (Zen 3 runs both on the same two pipes). */
#define CK_LOAD_BF16(p)                                                                            \
    ((ck_v8f)_mm256_shuffle_epi8(                                                                  \
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(p))),          \
        _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, -1, -1, 8, 9, -1,  \
                         -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15)))
#define CK_TABLE ck_kernels_avx2
#define CK_VARIANT_ID CK_VARIANT_AVX2
#define CK_VARIANT_NAME "avx2"
#include "../../core/templates/variant.h"

#pragma clang attribute pop

#endif
