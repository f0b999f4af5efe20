/*
 * int8 weights, AVX2 + FMA kernels (contracts in attend_kernels.h, "int8 weights").
 *
 * GEMV: 32 weights per step (one group): four vpmovsxbd + vcvtdq2ps widen them to floats,
 * FMAs against x (two rows of x share each widened vector); per group the partial vector is
 * scaled with one more FMA into the row's accumulator (per channel: scaled once at the end).
 *
 * GEMM: a 2 x 4 tile (two rows of quantized activations against four weight rows) over 32-byte
 * steps. vpmaddubsw multiplies unsigned by signed bytes and adds pairs with int16
 * saturation; with symmetric int8 on both sides (|a|, |w| <= 127) the pairs of
 * |a| * (w * sign a) (vpabsb, vpsignb) reach at most 2 * 127 * 127 = 32258 < 32767, so they
 * never saturate and the products are exact; vpmaddwd against ones then adds pairs into int32.
 * Each step is one group of 32 inputs (one activation scale): its int32 lanes are converted
 * and scaled by (activation scale * weight scale) into float lanes. The k % 32 tail is scalar.
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

static inline __m256 q8_widen8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

static inline float q8_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t q8_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* One or two rows of x (rows = 1 or 2, constant after inlining) against weight row j. */
static inline __attribute__((always_inline)) void q8_gemv_row(int rows, const float *x0,
                                                              const float *x1,
                                                              const ck_q8_weight *w, size_t j,
                                                              float out[2]) {
    const size_t k = w->k, k32 = k / 32 * 32;
    const int8_t *q = w->q + j * w->ldq;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    float t0 = 0.0f, t1 = 0.0f; /* the scalar tail (k % 32) */
    if (w->group == 0) {
        for (size_t p = 0; p < k32; p += 32) {
            const __m256 w0 = q8_widen8(q + p), w1 = q8_widen8(q + p + 8);
            const __m256 w2 = q8_widen8(q + p + 16), w3 = q8_widen8(q + p + 24);
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + p), a0);
            a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x0 + p + 8), a1);
            a0 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x0 + p + 16), a0);
            a1 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x0 + p + 24), a1);
            if (rows == 2) {
                b0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + p), b0);
                b1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1 + p + 8), b1);
                b0 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x1 + p + 16), b0);
                b1 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x1 + p + 24), b1);
            }
        }
        for (size_t p = k32; p < k; p++) {
            t0 += x0[p] * (float)q[p];
            if (rows == 2) t1 += x1[p] * (float)q[p];
        }
        const float s = ck_q8_scale(w, j, 0);
        out[0] = (q8_hsum_ps(_mm256_add_ps(a0, a1)) + t0) * s;
        if (rows == 2) out[1] = (q8_hsum_ps(_mm256_add_ps(b0, b1)) + t1) * s;
        return;
    }
    for (size_t p = 0, g = 0; p < k32; p += 32, g++) {
        const __m256 w0 = q8_widen8(q + p), w1 = q8_widen8(q + p + 8);
        const __m256 w2 = q8_widen8(q + p + 16), w3 = q8_widen8(q + p + 24);
        const __m256 s = _mm256_set1_ps(ck_q8_scale(w, j, g));
        __m256 pa = _mm256_mul_ps(w0, _mm256_loadu_ps(x0 + p));
        __m256 pb = _mm256_mul_ps(w1, _mm256_loadu_ps(x0 + p + 8));
        pa = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x0 + p + 16), pa);
        pb = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x0 + p + 24), pb);
        a0 = _mm256_fmadd_ps(_mm256_add_ps(pa, pb), s, a0);
        if (rows == 2) {
            __m256 qa = _mm256_mul_ps(w0, _mm256_loadu_ps(x1 + p));
            __m256 qb = _mm256_mul_ps(w1, _mm256_loadu_ps(x1 + p + 8));
            qa = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x1 + p + 16), qa);
            qb = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x1 + p + 24), qb);
            b0 = _mm256_fmadd_ps(_mm256_add_ps(qa, qb), s, b0);
        }
    }
    if (k32 < k) {
        for (size_t p = k32; p < k; p++) {
            t0 += x0[p] * (float)q[p];
            if (rows == 2) t1 += x1[p] * (float)q[p];
        }
        const float s = ck_q8_scale(w, j, k32 / 32);
        t0 *= s;
        t1 *= s;
    }
    out[0] = q8_hsum_ps(a0) + t0;
    if (rows == 2) out[1] = q8_hsum_ps(b0) + t1;
}

void ck_q8_gemv__avx2(size_t m, const float *x, size_t ldx, const ck_q8_weight *w,
                      const float *bias, float *y, size_t ldy) {
    size_t i = 0;
    for (; i + 2 <= m; i += 2) {
        const float *x0 = x + i * ldx, *x1 = x0 + ldx;
        float *y0 = y + i * ldy, *y1 = y0 + ldy;
        for (size_t j = 0; j < w->n; j++) {
            float out[2];
            q8_gemv_row(2, x0, x1, w, j, out);
            y0[j] = bias ? out[0] + bias[j] : out[0];
            y1[j] = bias ? out[1] + bias[j] : out[1];
        }
    }
    if (i < m) {
        const float *x0 = x + i * ldx;
        float *y0 = y + i * ldy;
        for (size_t j = 0; j < w->n; j++) {
            float out[2];
            q8_gemv_row(1, x0, x0, w, j, out);
            y0[j] = bias ? out[0] + bias[j] : out[0];
        }
    }
}

/* Exact int32 dot products of 32 signed bytes, four per lane (see the file comment). */
static inline __m256i q8_dot32(__m256i absa, __m256i a, __m256i wv) {
    const __m256i p16 = _mm256_maddubs_epi16(absa, _mm256_sign_epi8(wv, a));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/* An R x C tile (R <= 2 activation rows, C <= 4 weight rows; constants after inlining): per
 * group of 32 (one ymm) the exact int32 dots, converted and scaled by sa * sw into float lanes. */
static inline __attribute__((always_inline)) void
q8_gemm_tile(int R, int C, const int8_t *aq, size_t ldaq, const float *sa, size_t ldsa,
             const ck_q8_weight *w, size_t j0, const float *bias, float *c, size_t ldc) {
    const size_t k = w->k, k32 = k / 32 * 32;
    const int8_t *qrow[4];
    for (int cc = 0; cc < C; cc++) qrow[cc] = w->q + (j0 + (size_t)cc) * w->ldq;
    __m256 fa[2][4];
    CK_UNROLL_FULL
    for (int r = 0; r < R; r++)
        CK_UNROLL_FULL
        for (int cc = 0; cc < C; cc++) fa[r][cc] = _mm256_setzero_ps();
    for (size_t p = 0, g = 0; p < k32; p += 32, g++) {
        __m256i av[2], abv[2];
        float sar[2];
        CK_UNROLL_FULL
        for (int r = 0; r < R; r++) {
            av[r] = _mm256_loadu_si256((const __m256i *)(aq + (size_t)r * ldaq + p));
            abv[r] = _mm256_abs_epi8(av[r]);
            sar[r] = sa[(size_t)r * ldsa + g];
        }
        CK_UNROLL_FULL
        for (int cc = 0; cc < C; cc++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(qrow[cc] + p));
            const float sw = ck_q8_scale(w, j0 + (size_t)cc, g);
            CK_UNROLL_FULL
            for (int r = 0; r < R; r++)
                fa[r][cc] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_dot32(abv[r], av[r], wv)),
                                            _mm256_set1_ps(sar[r] * sw), fa[r][cc]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int cc = 0; cc < C; cc++) {
            float v = q8_hsum_ps(fa[r][cc]);
            if (k32 < k) { /* the last, partial group */
                int32_t d = 0;
                const int8_t *a = aq + (size_t)r * ldaq;
                for (size_t p = k32; p < k; p++) d += (int32_t)a[p] * (int32_t)qrow[cc][p];
                v += (float)d * (sa[(size_t)r * ldsa + k32 / 32] * ck_q8_scale(w, j0 + (size_t)cc, k32 / 32));
            }
            c[(size_t)r * ldc + j0 + (size_t)cc] = ck_q8_finish(v, bias, j0 + (size_t)cc);
        }
}

void ck_q8_gemm__avx2(size_t m, const int8_t *aq, size_t ldaq, const float *sa, size_t ldsa,
                      const ck_q8_weight *w, const float *bias, float *c, size_t ldc) {
    const size_t n = w->n;
    size_t i = 0;
    for (; i + 2 <= m; i += 2) {
        const int8_t *a = aq + i * ldaq;
        float *ci = c + i * ldc;
        size_t j = 0;
        for (; j + 4 <= n; j += 4) q8_gemm_tile(2, 4, a, ldaq, sa + i * ldsa, ldsa, w, j, bias, ci, ldc);
        for (; j < n; j++) q8_gemm_tile(2, 1, a, ldaq, sa + i * ldsa, ldsa, w, j, bias, ci, ldc);
    }
    if (i < m) {
        const int8_t *a = aq + i * ldaq;
        float *ci = c + i * ldc;
        size_t j = 0;
        for (; j + 4 <= n; j += 4) q8_gemm_tile(1, 4, a, ldaq, sa + i * ldsa, ldsa, w, j, bias, ci, ldc);
        for (; j < n; j++) q8_gemm_tile(1, 1, a, ldaq, sa + i * ldsa, ldsa, w, j, bias, ci, ldc);
    }
}

#pragma clang attribute pop

#endif
