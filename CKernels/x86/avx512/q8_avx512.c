/*
 * int8 weights, AVX-512 kernels (contracts in attend_kernels.h, "int8 weights").
 *
 * GEMV: 32 weights per step (one group) as two vpmovsxbd zmm + vcvtdq2ps, FMAs against one or
 * two rows of x; the last partial step uses masked loads (fault-free past the row's end), so
 * there is no scalar tail. Per group the partial vector is scaled with one FMA.
 *
 * GEMM with AVX-512 VNNI: a 4 x 4 tile over 64-byte steps. vpdpbusd multiplies unsigned by
 * signed bytes and adds four products into an int32 lane without intermediate saturation, so
 * the activations go in as a + 128 (one vpxor with 0x80 per step, shared by the four weight
 * rows) and 128 * sum(w) (one more vpdpbusd per weight row and step, shared by the four
 * activation rows) is subtracted at the end: sum (a + 128) w - 128 sum w = sum a w, exact in
 * wrapping int32 arithmetic. The last partial step uses masked loads (zeros past k). Each
 * step's lanes 0-7 and 8-15 are the two groups of 32 it spans; they are converted and scaled
 * into float lanes by a vector of the two groups' (activation scale * weight scale). Without VNNI the AVX2
 * vpmaddubsw kernel runs (ck_q8_gemm__avx2).
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#pragma clang attribute push(                                                                      \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"), min_vector_width(512))), \
    apply_to = function)

/* Masks of the first r of 16 lanes (r clamped to 0..16). */
static inline __mmask16 q8_mask16(size_t r) {
    return r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
}

static inline __m512 q8_widen16(const int8_t *p, __mmask16 m) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

static inline __attribute__((always_inline)) void q8_gemv_row512(int rows, const float *x0,
                                                                 const float *x1,
                                                                 const ck_q8_weight *w,
                                                                 size_t j, float out[2]) {
    const size_t k = w->k;
    const int8_t *q = w->q + j * w->ldq;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    const int grouped = w->group != 0;
    for (size_t p = 0, g = 0; p < k; p += 32, g++) {
        const size_t r = k - p;
        const __mmask16 m0 = q8_mask16(r), m1 = q8_mask16(r > 16 ? r - 16 : 0);
        const __m512 w0 = q8_widen16(q + p, m0), w1 = q8_widen16(q + p + 16, m1);
        const __m512 x00 = _mm512_maskz_loadu_ps(m0, x0 + p);
        const __m512 x01 = _mm512_maskz_loadu_ps(m1, x0 + p + 16);
        if (!grouped) {
            a0 = _mm512_fmadd_ps(w0, x00, a0);
            a1 = _mm512_fmadd_ps(w1, x01, a1);
            if (rows == 2) {
                b0 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m0, x1 + p), b0);
                b1 = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m1, x1 + p + 16), b1);
            }
        } else {
            const __m512 s = _mm512_set1_ps(ck_q8_scale(w, j, g));
            a0 = _mm512_fmadd_ps(_mm512_fmadd_ps(w1, x01, _mm512_mul_ps(w0, x00)), s, a0);
            if (rows == 2) {
                const __m512 pb = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m1, x1 + p + 16),
                                                  _mm512_mul_ps(w0, _mm512_maskz_loadu_ps(m0, x1 + p)));
                b0 = _mm512_fmadd_ps(pb, s, b0);
            }
        }
    }
    if (!grouped) {
        const float s = ck_q8_scale(w, j, 0);
        out[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * s;
        if (rows == 2) out[1] = _mm512_reduce_add_ps(_mm512_add_ps(b0, b1)) * s;
    } else {
        out[0] = _mm512_reduce_add_ps(a0);
        if (rows == 2) out[1] = _mm512_reduce_add_ps(b0);
    }
}

void ck_q8_gemv__avx512(size_t m, const float *x, size_t ldx, const ck_q8_weight *w,
                        const float *bias, float *y, size_t ldy) {
    size_t i = 0;
    for (; i + 2 <= m; i += 2) {
        const float *x0 = x + i * ldx, *x1 = x0 + ldx;
        float *y0 = y + i * ldy, *y1 = y0 + ldy;
        for (size_t j = 0; j < w->n; j++) {
            float out[2];
            q8_gemv_row512(2, x0, x1, w, j, out);
            y0[j] = bias ? out[0] + bias[j] : out[0];
            y1[j] = bias ? out[1] + bias[j] : out[1];
        }
    }
    if (i < m) {
        const float *x0 = x + i * ldx;
        float *y0 = y + i * ldy;
        for (size_t j = 0; j < w->n; j++) {
            float out[2];
            q8_gemv_row512(1, x0, x0, w, j, out);
            y0[j] = bias ? out[0] + bias[j] : out[0];
        }
    }
}

#pragma clang attribute pop

/* ---------------------------------------------------------------- VNNI GEMM */

#pragma clang attribute push(                                                                      \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma"),              \
                   min_vector_width(512))),                                                        \
    apply_to = function)

static inline __mmask64 q8_mask64(size_t r) {
    return r >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << r) - 1);
}

/* The scales of groups g and g + 1 in lanes 0-7 and 8-15 (0 past the last group). */
static inline __m512 q8_pair(float s0, float s1) {
    return _mm512_mask_blend_ps((__mmask16)0xFF00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
}

/* An R x C tile (R, C <= 4; constants after inlining). */
static inline __attribute__((always_inline)) void
q8_gemm_tile_vnni(int R, int C, const int8_t *aq, size_t ldaq, const float *sa, size_t ldsa,
                  const ck_q8_weight *w, size_t j0, const float *bias, float *c, size_t ldc) {
    const size_t k = w->k, groups = (k + 31) / 32;
    const __m512i bias128 = _mm512_set1_epi8((char)0x80);
    const int8_t *qrow[4];
    for (int cc = 0; cc < C; cc++) qrow[cc] = w->q + (j0 + (size_t)cc) * w->ldq;
    __m512 fa[4][4];
    CK_UNROLL_FULL
    for (int r = 0; r < R; r++)
        CK_UNROLL_FULL
        for (int cc = 0; cc < C; cc++) fa[r][cc] = _mm512_setzero_ps();
    for (size_t p = 0, g = 0; p < k; p += 64, g += 2) {
        const __mmask64 mk = q8_mask64(k - p);
        const int second = g + 1 < groups;
        __m512i au[4];
        __m512 sav[4];
        CK_UNROLL_FULL
        for (int r = 0; r < R; r++) {
            au[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mk, aq + (size_t)r * ldaq + p), bias128);
            const float *s = sa + (size_t)r * ldsa + g;
            sav[r] = q8_pair(s[0], second ? s[1] : 0.0f);
        }
        CK_UNROLL_FULL
        for (int cc = 0; cc < C; cc++) {
            const size_t j = j0 + (size_t)cc;
            const __m512i wv = _mm512_maskz_loadu_epi8(mk, qrow[cc] + p);
            const __m512i corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias128, wv);
            const __m512 swv = q8_pair(ck_q8_scale(w, j, g), second ? ck_q8_scale(w, j, g + 1) : 0.0f);
            CK_UNROLL_FULL
            for (int r = 0; r < R; r++) {
                const __m512i d = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), au[r], wv), corr);
                fa[r][cc] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sav[r], swv), fa[r][cc]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int cc = 0; cc < C; cc++)
            c[(size_t)r * ldc + j0 + (size_t)cc] =
                ck_q8_finish(_mm512_reduce_add_ps(fa[r][cc]), bias, j0 + (size_t)cc);
}

static void ck_q8_gemm_vnni__avx512(size_t m, const int8_t *aq, size_t ldaq, const float *sa,
                                    size_t ldsa, const ck_q8_weight *w, const float *bias,
                                    float *c, size_t ldc) {
    const size_t n = w->n;
    size_t i = 0;
#define Q8_ROWS(R)                                                                                 \
    do {                                                                                           \
        const int8_t *a = aq + i * ldaq;                                                           \
        const float *s = sa + i * ldsa;                                                            \
        float *ci = c + i * ldc;                                                                   \
        size_t j = 0;                                                                              \
        for (; j + 4 <= n; j += 4) q8_gemm_tile_vnni(R, 4, a, ldaq, s, ldsa, w, j, bias, ci, ldc); \
        for (; j < n; j++) q8_gemm_tile_vnni(R, 1, a, ldaq, s, ldsa, w, j, bias, ci, ldc);         \
    } while (0)
    for (; i + 4 <= m; i += 4) Q8_ROWS(4);
    switch (m - i) {
    case 3: Q8_ROWS(3); break;
    case 2: Q8_ROWS(2); break;
    case 1: Q8_ROWS(1); break;
    default: break;
    }
#undef Q8_ROWS
}

#pragma clang attribute pop

void ck_q8_gemm__avx512(size_t m, const int8_t *aq, size_t ldaq, const float *sa, size_t ldsa,
                        const ck_q8_weight *w, const float *bias, float *c, size_t ldc) {
    if (ck_q8_cpu_has_avx512_vnni())
        ck_q8_gemm_vnni__avx512(m, aq, ldaq, sa, ldsa, w, bias, c, ldc);
    else
        ck_q8_gemm__avx2(m, aq, ldaq, sa, ldsa, w, bias, c, ldc);
}

#endif
