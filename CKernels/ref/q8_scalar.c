/*
 * int8 weights, portable scalar kernels (contracts in attend_kernels.h, "int8 weights"): the
 * reference order every other variant is measured against. GEMV: per row and group, the
 * products x * q summed in float in order, then scaled and added to the row's sum. GEMM: per
 * group of 32 the exact int32 dot product, converted, times (activation scale * weight
 * scale), summed in float; the bias in the shared epilogue (ck_q8_finish).
 */
#include "../core/ck_internal.h"

void ck_q8_gemv__scalar(size_t m, const float *x, size_t ldx, const ck_q8_weight *w,
                        const float *bias, float *y, size_t ldy) {
    const size_t n = w->n, k = w->k;
    const size_t gs = w->group ? (size_t)w->group : (k ? k : 1);
    for (size_t i = 0; i < m; i++) {
        const float *xr = x + i * ldx;
        for (size_t j = 0; j < n; j++) {
            const int8_t *q = w->q + j * w->ldq;
            float acc = 0.0f;
            for (size_t p0 = 0, g = 0; p0 < k; p0 += gs, g++) {
                const size_t p1 = p0 + gs < k ? p0 + gs : k;
                float d = 0.0f;
                for (size_t p = p0; p < p1; p++) d += xr[p] * (float)q[p];
                acc += ck_q8_scale(w, j, g) * d;
            }
            y[i * ldy + j] = bias ? acc + bias[j] : acc;
        }
    }
}

void ck_q8_gemm__scalar(size_t m, const int8_t *aq, size_t ldaq, const float *sa, size_t ldsa,
                        const ck_q8_weight *w, const float *bias, float *c, size_t ldc) {
    const size_t n = w->n, k = w->k;
    for (size_t i = 0; i < m; i++) {
        const int8_t *a = aq + i * ldaq;
        for (size_t j = 0; j < n; j++) {
            const int8_t *q = w->q + j * w->ldq;
            float acc = 0.0f;
            for (size_t p0 = 0, g = 0; p0 < k; p0 += 32, g++) {
                const size_t p1 = p0 + 32 < k ? p0 + 32 : k;
                int32_t d = 0;
                for (size_t p = p0; p < p1; p++) d += (int32_t)a[p] * (int32_t)q[p];
                acc += (float)d * (sa[i * ldsa + g] * ck_q8_scale(w, j, g));
            }
            c[i * ldc + j] = ck_q8_finish(acc, bias, j);
        }
    }
}
