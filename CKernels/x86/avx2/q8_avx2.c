/*
 * int8 weights, AVX2 + FMA kernels (contracts in attend_kernels.h, "int8 weights"; drivers in
 * core/templates/q8_driver.h).
 *
 * An R x C tile (R <= 2 activation rows, C <= 4 weight rows) over 32-byte steps, one group of
 * 32 inputs each. The activations are uint8 (0..255), so vpmaddubsw (uint8 x int8, pairs
 * added with int16 saturation) could reach 2 * 255 * 127 = 64770 and saturate; instead both
 * sides are widened to int16 (vpmovzxbw / vpmovsxbw, the weight's shared by the rows) and
 * vpmaddwd adds pairs of exact products into int32: per group one int32 vector whose lanes sum
 * to I_g, converted and scaled by (activation scale * weight scale) into float lanes (per
 * channel by the activation scale, the channel's scale once at the end). The partial last
 * group (k % 32) is scalar. The AVX-512 table runs this tile on CPUs without AVX-512 VNNI.
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

/* F16C comes with every AVX2 CPU; dispatch.c checks its cpuid bit for this variant. */
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

/* Bytes ahead of the current step each weight row is prefetched (as the AVX-512 kernels). */
#define Q8_PREFETCH 2048

static inline float q8_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* grouped, f16: the weight's scale layout and type (constants after inlining). */
static inline __attribute__((always_inline)) void q8_tile_avx2(int R, int C, const ck_q8_rows *a,
                                                               size_t i0, const ck_q8_weight *w,
                                                               size_t j0, float out[4][4],
                                                               int grouped, int f16) {
    const size_t k = w->k, k32 = k / 32 * 32;
    const uint8_t *arow[2];
    const float *srow[2];
    const int8_t *qrow[4];
    CK_UNROLL_FULL
    for (int r = 0; r < R; r++) {
        arow[r] = a->q + (i0 + (size_t)r) * a->ldq;
        srow[r] = a->scale + (i0 + (size_t)r) * a->lds;
    }
    CK_UNROLL_FULL
    for (int cc = 0; cc < C; cc++) qrow[cc] = w->q + (j0 + (size_t)cc) * w->ldq;
    __m256 fa[2][4];
    CK_UNROLL_FULL
    for (int r = 0; r < R; r++)
        CK_UNROLL_FULL
        for (int cc = 0; cc < C; cc++) fa[r][cc] = _mm256_setzero_ps();
    for (size_t p = 0, g = 0; p < k32; p += 32, g++) {
        __m256i al[2], ah[2];
        CK_UNROLL_FULL
        for (int r = 0; r < R; r++) {
            al[r] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(arow[r] + p)));
            ah[r] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(arow[r] + p + 16)));
        }
        CK_UNROLL_FULL
        for (int cc = 0; cc < C; cc++) {
            _mm_prefetch((const char *)(qrow[cc] + p + Q8_PREFETCH), _MM_HINT_T0);
            const __m256i wl = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qrow[cc] + p)));
            const __m256i wh = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qrow[cc] + p + 16)));
            const size_t sidx = (j0 + (size_t)cc) * w->lds + g;
            const float sw = !grouped ? 1.0f
                             : f16    ? _cvtsh_ss(((const uint16_t *)w->scales)[sidx])
                                      : ((const float *)w->scales)[sidx];
            CK_UNROLL_FULL
            for (int r = 0; r < R; r++) {
                const __m256i d = _mm256_add_epi32(_mm256_madd_epi16(al[r], wl), _mm256_madd_epi16(ah[r], wh));
                const __m256 s = _mm256_set1_ps(grouped ? srow[r][g] * sw : srow[r][g]);
                fa[r][cc] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), s, fa[r][cc]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int cc = 0; cc < C; cc++) {
            const size_t j = j0 + (size_t)cc;
            float v = q8_hsum_ps(fa[r][cc]);
            if (k32 < k) { /* the last, partial group */
                int32_t d = 0;
                for (size_t p = k32; p < k; p++) d += (int32_t)arow[r][p] * (int32_t)qrow[cc][p];
                const float sa = srow[r][k32 / 32];
                v += (float)d * (grouped ? sa * ck_q8_scale(w, j, k32 / 32) : sa);
            }
            out[r][cc] = grouped ? v : v * ck_q8_scale(w, j, 0);
        }
}

/* One activation row already widened to int16 (a16, k values) against weight row j: the
 * same integers, the same float steps in the same order as q8_tile_avx2(1, 1, ...) (its bits),
 * without the two vpmovzxbw per step that widen the activation again for every weight row.
 * Zen 1, `vpmaddwd` on one pipe: 2048 x 512 channel in cache 4.18 -> 3.26 ns per 32 bytes,
 * 32128 x 512 from memory 4.63 -> 3.94 (C harness, old and new alternated, best of 500 / 30). */
static inline __attribute__((always_inline)) float q8_row_a16_avx2(const int16_t *a16, const float *sa,
                                                                   const ck_q8_weight *w, size_t j,
                                                                   int grouped, int f16) {
    const size_t k = w->k, k32 = k / 32 * 32;
    const int8_t *q = w->q + j * w->ldq;
    __m256 f = _mm256_setzero_ps();
    for (size_t p = 0, g = 0; p < k32; p += 32, g++) {
        _mm_prefetch((const char *)(q + p + Q8_PREFETCH), _MM_HINT_T0);
        const __m256i wl = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + p)));
        const __m256i wh = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + p + 16)));
        const __m256i d = _mm256_add_epi32(
            _mm256_madd_epi16(_mm256_load_si256((const __m256i *)(a16 + p)), wl),
            _mm256_madd_epi16(_mm256_load_si256((const __m256i *)(a16 + p + 16)), wh));
        const size_t sidx = j * w->lds + g;
        const float sw = !grouped ? 1.0f
                         : f16    ? _cvtsh_ss(((const uint16_t *)w->scales)[sidx])
                                  : ((const float *)w->scales)[sidx];
        const __m256 s = _mm256_set1_ps(grouped ? sa[g] * sw : sa[g]);
        f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), s, f);
    }
    float v = q8_hsum_ps(f);
    if (k32 < k) { /* the last, partial group */
        int32_t d = 0;
        for (size_t p = k32; p < k; p++) d += (int32_t)a16[p] * (int32_t)q[p];
        const float s = sa[k32 / 32];
        v += (float)d * (grouped ? s * ck_q8_scale(w, j, k32 / 32) : s);
    }
    return grouped ? v : v * ck_q8_scale(w, j, 0);
}

/* Inputs a one-row GEMV widens once on the stack (16 KiB); longer rows take the tile. */
#define Q8_A16_MAX 8192

/* The one-row GEMV (Q8_GEMV1 of q8_driver.h): row 0 of a widened to int16 once, then every
 * weight row against it. Returns 0 (nothing done) when k > Q8_A16_MAX. */
static int q8_gemv1_avx2(const ck_q8_rows *a, const ck_q8_weight *w, const float *bias, float *c,
                         float (*offsets)(const float *, const float *, const float *, size_t)) {
    const size_t k = w->k, G = (k + 31) / 32;
    if (k > Q8_A16_MAX) return 0;
    int16_t a16[Q8_A16_MAX] __attribute__((aligned(32)));
    for (size_t p = 0; p < k; p++) a16[p] = (int16_t)a->q[p];
#define Q8_ROWS_A16(GROUPED, F16)                                                                  \
    for (size_t j = 0; j < w->n; j++) {                                                            \
        const float o = offsets(a->offset, a->scale, w->gsum + j * w->ldg, G);                     \
        c[j] = ck_q8_finish(q8_row_a16_avx2(a16, a->scale, w, j, GROUPED, F16) + o, bias, j);       \
    }
    if (!w->group)
        Q8_ROWS_A16(0, 0)
    else if (w->scales_f16)
        Q8_ROWS_A16(1, 1)
    else
        Q8_ROWS_A16(1, 0)
#undef Q8_ROWS_A16
    return 1;
}

#define Q8_TILE(R, C, a, i0, w, j0, out) CK_Q8_TILE_BY_LAYOUT(q8_tile_avx2, R, C, a, i0, w, j0, out)
#define Q8_GEMV1 q8_gemv1_avx2
#define Q8_NAME(x) q8_##x##__avx2
#define Q8_GEMV ck_q8_gemv__avx2
#define Q8_GEMM ck_q8_gemm__avx2
#define Q8_GEMM_ROWS 2
/* One weight row per GEMV tile: one sequential stream over the weight, which the hardware
 * prefetcher follows; two rows a tile (the activations' widening shared) are faster when the
 * weight sits in cache but read memory worse, as two 16-bit GEMV rows a pass do (Zen 3, 1
 * thread, `bench --only gemv`, runs alternated): in cache 2048 x 512 channel 42 -> 54 us; from
 * memory 2048 x 512 channel 75-77 -> 59-60 us (20 GB/s, the probed bandwidth), 32128 x 512
 * 1125-1220 -> 895-906 us; `bench --only quantized` t5-small int8-channel decode, 1 thread
 * 3.21-3.37 -> 2.90-2.98 ms per token. */
#ifndef Q8_GEMV_COLS
#define Q8_GEMV_COLS 1
#endif
#define Q8_OFFSET_SHIFT 0
#include "../../core/templates/q8_driver.h"

#pragma clang attribute pop

#endif
