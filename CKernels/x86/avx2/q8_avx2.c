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

/* grouped, f16: the weight's scale layout and type (constants after inlining). a16: NULL (a
 * constant), or the rows i0 ... i0 + R - 1 of a already widened to int16 (row r at a16 + r *
 * lda16, 32-byte aligned), read instead of widening a's bytes again for every weight row:
 * the same integers, so the same bits. */
static inline __attribute__((always_inline)) void q8_tile_avx2(int R, int C, const ck_q8_rows *a,
                                                               size_t i0, const ck_q8_weight *w,
                                                               size_t j0, float out[4][4],
                                                               int grouped, int f16,
                                                               const int16_t *a16, size_t lda16) {
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
            if (a16) {
                al[r] = _mm256_load_si256((const __m256i *)(a16 + (size_t)r * lda16 + p));
                ah[r] = _mm256_load_si256((const __m256i *)(a16 + (size_t)r * lda16 + p + 16));
            } else {
                al[r] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(arow[r] + p)));
                ah[r] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(arow[r] + p + 16)));
            }
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

/* int16 values the small GEMV widens on the stack (16 KiB): one row of up to 8192 inputs or
 * two of up to 4096; longer rows take the tile. */
#define Q8_A16_MAX 8192

/* Every weight row against R rows already widened to int16 (a16, row stride lda16): the
 * tile on them, then the offsets' share and the bias as the driver's strip adds them (the
 * same bits as the strip on a's bytes). */
typedef float (*q8_offsets_fn)(const float *, const float *, const float *, size_t);
static inline __attribute__((always_inline)) void q8_rows_a16_avx2(int R, const int16_t *a16, size_t lda16,
                                                                   const ck_q8_rows *a, const ck_q8_weight *w,
                                                                   const float *bias, float *c, size_t ldc,
                                                                   q8_offsets_fn offsets, int grouped, int f16) {
    const size_t G = (w->k + 31) / 32;
    for (size_t j = 0; j < w->n; j++) {
        float out[4][4];
        q8_tile_avx2(R, 1, a, 0, w, j, out, grouped, f16, a16, lda16);
        for (int r = 0; r < R; r++) {
            const float o = offsets(a->offset + (size_t)r * a->lds, a->scale + (size_t)r * a->lds, w->gsum + j * w->ldg, G);
            c[(size_t)r * ldc + j] = ck_q8_finish(out[r][0] + o, bias, j);
        }
    }
}

/* The GEMV of one or two rows (Q8_GEMV_SMALL of q8_driver.h): the rows of a widened to int16
 * once, then every weight row against them. Returns 0 (nothing done) when m > 2 or the rows
 * do not fit Q8_A16_MAX. Zen 1 (`vpmaddwd` on one pipe), C harness, old and new alternated,
 * ns per 32-byte step of the weight: one row 2048 x 512 channel in cache 4.18 -> 3.26, 32128
 * x 512 from memory 4.63 -> 3.94; two rows 6.9 -> 5.5 and 7.2 -> 5.8. */
static int q8_gemv_small_avx2(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias,
                              float *c, size_t ldc, q8_offsets_fn offsets) {
    const size_t k = w->k, lda16 = (k + 15) / 16 * 16;
    if (m < 1 || m > 2 || m * lda16 > Q8_A16_MAX) return 0;
    int16_t a16[Q8_A16_MAX] __attribute__((aligned(32)));
    for (size_t r = 0; r < m; r++)
        for (size_t p = 0; p < k; p++) a16[r * lda16 + p] = (int16_t)a->q[r * a->ldq + p];
    /* The weight's scale layout chosen once per call, so each loop over the rows has it as
     * a constant (chosen per weight row, the path ran ~5% slower). */
#define Q8_ROWS_A16(R)                                                                             \
    do {                                                                                           \
        if (!w->group)                                                                             \
            q8_rows_a16_avx2(R, a16, lda16, a, w, bias, c, ldc, offsets, 0, 0);                    \
        else if (w->scales_f16)                                                                    \
            q8_rows_a16_avx2(R, a16, lda16, a, w, bias, c, ldc, offsets, 1, 1);                    \
        else                                                                                       \
            q8_rows_a16_avx2(R, a16, lda16, a, w, bias, c, ldc, offsets, 1, 0);                    \
    } while (0)
    if (m == 1)
        Q8_ROWS_A16(1);
    else
        Q8_ROWS_A16(2);
#undef Q8_ROWS_A16
    return 1;
}

/* The tile on a's bytes, as CK_Q8_TILE_BY_LAYOUT calls it (grouped, f16 appended). */
#define q8_tile_avx2_bytes(R, C, a, i0, w, j0, out, grouped, f16)                                  \
    q8_tile_avx2(R, C, a, i0, w, j0, out, grouped, f16, NULL, 0)
#define Q8_TILE(R, C, a, i0, w, j0, out) CK_Q8_TILE_BY_LAYOUT(q8_tile_avx2_bytes, R, C, a, i0, w, j0, out)
#define Q8_GEMV_SMALL q8_gemv_small_avx2
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
