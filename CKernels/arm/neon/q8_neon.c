/*
 * int8 weights, NEON kernels (contracts in attend_kernels.h, "int8 weights").
 *
 * GEMV: 16 weights per step widened to floats (sxtl, sxtl, scvtf) and FMAs against one or two
 * rows of x; per group of 32 the partial vector is scaled with one FMA; scalar k % 32 tail.
 *
 * GEMM: a 4 x 4 tile (q8_neon_gemm.h) over 32-byte steps. With the dot-product extension
 * (Armv8.2 dotprod, checked at run time: HWCAP_ASIMDDP on Linux, FEAT_DotProd on macOS),
 * sdot adds four byte products into each int32 lane; without it smull / smull2 form int16
 * products (|a w| <= 127 * 127, exact) and sadalp adds their pairs into int32. Both exact.
 */
#include "../../core/ck_internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

static inline __attribute__((always_inline)) void q8_gemv_row_neon(int rows, const float *x0,
                                                                   const float *x1,
                                                                   const ck_q8_weight *w,
                                                                   size_t j, float out[2]) {
    const size_t k = w->k, k32 = k / 32 * 32;
    const int8_t *q = w->q + j * w->ldq;
    const int grouped = w->group != 0;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, b0 = a0, b1 = a0;
    float t0 = 0.0f, t1 = 0.0f;
    for (size_t p = 0, g = 0; p < k32; p += 32, g++) {
        float32x4_t wf[8];
        for (int h = 0; h < 2; h++) {
            const int8x16_t v = vld1q_s8(q + p + 16 * (size_t)h);
            const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
            wf[4 * h + 0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
            wf[4 * h + 1] = vcvtq_f32_s32(vmovl_high_s16(lo));
            wf[4 * h + 2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
            wf[4 * h + 3] = vcvtq_f32_s32(vmovl_high_s16(hi));
        }
        if (!grouped) {
            for (int v = 0; v < 8; v += 2) {
                a0 = vfmaq_f32(a0, wf[v], vld1q_f32(x0 + p + 4 * (size_t)v));
                a1 = vfmaq_f32(a1, wf[v + 1], vld1q_f32(x0 + p + 4 * (size_t)v + 4));
                if (rows == 2) {
                    b0 = vfmaq_f32(b0, wf[v], vld1q_f32(x1 + p + 4 * (size_t)v));
                    b1 = vfmaq_f32(b1, wf[v + 1], vld1q_f32(x1 + p + 4 * (size_t)v + 4));
                }
            }
        } else {
            const float32x4_t s = vdupq_n_f32(ck_q8_scale(w, j, g));
            float32x4_t pa = vmulq_f32(wf[0], vld1q_f32(x0 + p));
            float32x4_t pb = vmulq_f32(wf[1], vld1q_f32(x0 + p + 4));
            for (int v = 2; v < 8; v += 2) {
                pa = vfmaq_f32(pa, wf[v], vld1q_f32(x0 + p + 4 * (size_t)v));
                pb = vfmaq_f32(pb, wf[v + 1], vld1q_f32(x0 + p + 4 * (size_t)v + 4));
            }
            a0 = vfmaq_f32(a0, vaddq_f32(pa, pb), s);
            if (rows == 2) {
                float32x4_t qa = vmulq_f32(wf[0], vld1q_f32(x1 + p));
                float32x4_t qb = vmulq_f32(wf[1], vld1q_f32(x1 + p + 4));
                for (int v = 2; v < 8; v += 2) {
                    qa = vfmaq_f32(qa, wf[v], vld1q_f32(x1 + p + 4 * (size_t)v));
                    qb = vfmaq_f32(qb, wf[v + 1], vld1q_f32(x1 + p + 4 * (size_t)v + 4));
                }
                b0 = vfmaq_f32(b0, vaddq_f32(qa, qb), s);
            }
        }
    }
    for (size_t p = k32; p < k; p++) {
        t0 += x0[p] * (float)q[p];
        if (rows == 2) t1 += x1[p] * (float)q[p];
    }
    if (!grouped) {
        const float s = ck_q8_scale(w, j, 0);
        out[0] = (vaddvq_f32(vaddq_f32(a0, a1)) + t0) * s;
        if (rows == 2) out[1] = (vaddvq_f32(vaddq_f32(b0, b1)) + t1) * s;
    } else {
        const float s = k32 < k ? ck_q8_scale(w, j, k32 / 32) : 0.0f;
        out[0] = vaddvq_f32(a0) + t0 * s;
        if (rows == 2) out[1] = vaddvq_f32(b0) + t1 * s;
    }
}

void ck_q8_gemv__neon(size_t m, const float *x, size_t ldx, const ck_q8_weight *w,
                      const float *bias, float *y, size_t ldy) {
    size_t i = 0;
    for (; i + 2 <= m; i += 2) {
        const float *x0 = x + i * ldx, *x1 = x0 + ldx;
        float *y0 = y + i * ldy, *y1 = y0 + ldy;
        for (size_t j = 0; j < w->n; j++) {
            float out[2];
            q8_gemv_row_neon(2, x0, x1, w, j, out);
            y0[j] = bias ? out[0] + bias[j] : out[0];
            y1[j] = bias ? out[1] + bias[j] : out[1];
        }
    }
    if (i < m) {
        const float *x0 = x + i * ldx;
        float *y0 = y + i * ldy;
        for (size_t j = 0; j < w->n; j++) {
            float out[2];
            q8_gemv_row_neon(1, x0, x0, w, j, out);
            y0[j] = bias ? out[0] + bias[j] : out[0];
        }
    }
}

/* Widening: smull / smull2 (int16 products, exact), sadalp (pairs into int32). */
static inline int32x4_t q8_dot16_widening(int32x4_t acc, int8x16_t a, int8x16_t w) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(w)));
    return vpadalq_s16(acc, vmull_high_s8(a, w));
}

#define Q8_FN ck_q8_gemm_widening_impl__neon
#define Q8_DOT16(acc, a, w) q8_dot16_widening(acc, a, w)
#include "q8_neon_gemm.h"
#undef Q8_FN
#undef Q8_DOT16

void ck_q8_gemm_widening__neon(size_t m, const int8_t *aq, size_t ldaq, const float *sa,
                               size_t ldsa, const ck_q8_weight *w, const float *bias, float *c,
                               size_t ldc) {
    ck_q8_gemm_widening_impl__neon(m, aq, ldaq, sa, ldsa, w, bias, c, ldc);
}

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif

#define Q8_FN ck_q8_gemm_sdot_impl__neon
#define Q8_DOT16(acc, a, w) vdotq_s32(acc, a, w)
#include "q8_neon_gemm.h"
#undef Q8_FN
#undef Q8_DOT16

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

void ck_q8_gemm__neon(size_t m, const int8_t *aq, size_t ldaq, const float *sa, size_t ldsa,
                      const ck_q8_weight *w, const float *bias, float *c, size_t ldc) {
    if (ck_q8_cpu_has_dotprod())
        ck_q8_gemm_sdot_impl__neon(m, aq, ldaq, sa, ldsa, w, bias, c, ldc);
    else
        ck_q8_gemm_widening_impl__neon(m, aq, ldaq, sa, ldsa, w, bias, c, ldc);
}

#endif
