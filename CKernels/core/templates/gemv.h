/*
 * Matrix-vector products (contracts in attend_kernels.h): CK_FN(ck_f32_gemv), y = W x for a
 * row-major [n, k] weight (decoding's projections), and CK_FN(ck_f32_gemv_t), y = W^T x (the
 * value step of few-query attention). Instantiated per ISA by variant.h.
 */
/* y = alpha * W x + beta * y for W [n, k] row-major (contract in attend_kernels.h). Four
 * rows at a time share each load of x; each row's dot product runs in one vector accumulator
 * and is reduced at the end, then the k % VL tail is added in order. */
void CK_FN(ck_f32_gemv)(size_t n, size_t k, float alpha, const float *x, const float *w, size_t ldw,
                        float beta, float *y) {
    const size_t kv = k / CK_VL * CK_VL;
    size_t j = 0;
    if (k <= 512) {
        /* Short rows (2 KB or less, d_model-sized): one row at a time reads the weight as one
         * sequential stream, which the hardware prefetcher follows better than four streams
         * that each end after 2 KB (measured on Zen 5: 9.5 vs 7.6 GB/s for a 32128 x 512
         * weight; from 768 columns on, four rows at a time is as fast or faster). */
        for (; j < n; j++) {
            const float *wr = w + j * ldw;
            CK_VEC a0 = (CK_VEC){0}, a1 = (CK_VEC){0}, a2 = (CK_VEC){0}, a3 = (CK_VEC){0};
            size_t p = 0;
            for (; p + 4 * CK_VL <= kv; p += 4 * CK_VL) {
                a0 = CK_VFMA2(CK_FN(ck_vload)(x + p), CK_FN(ck_vload)(wr + p), a0);
                a1 = CK_VFMA2(CK_FN(ck_vload)(x + p + CK_VL), CK_FN(ck_vload)(wr + p + CK_VL), a1);
                a2 = CK_VFMA2(CK_FN(ck_vload)(x + p + 2 * CK_VL),
                              CK_FN(ck_vload)(wr + p + 2 * CK_VL), a2);
                a3 = CK_VFMA2(CK_FN(ck_vload)(x + p + 3 * CK_VL),
                              CK_FN(ck_vload)(wr + p + 3 * CK_VL), a3);
            }
            for (; p < kv; p += CK_VL)
                a0 = CK_VFMA2(CK_FN(ck_vload)(x + p), CK_FN(ck_vload)(wr + p), a0);
            float d = CK_FN(ck_hsum)((a0 + a1) + (a2 + a3));
            for (p = kv; p < k; p++) d += x[p] * wr[p];
            y[j] = beta == 0.0f ? alpha * d : alpha * d + beta * y[j];
        }
        return;
    }
    for (; j + 4 <= n; j += 4) {
        const float *w0 = w + j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        CK_VEC a0 = (CK_VEC){0}, a1 = (CK_VEC){0}, a2 = (CK_VEC){0}, a3 = (CK_VEC){0};
        for (size_t p = 0; p < kv; p += CK_VL) {
            const CK_VEC xv = CK_FN(ck_vload)(x + p);
            a0 = CK_VFMA2(xv, CK_FN(ck_vload)(w0 + p), a0);
            a1 = CK_VFMA2(xv, CK_FN(ck_vload)(w1 + p), a1);
            a2 = CK_VFMA2(xv, CK_FN(ck_vload)(w2 + p), a2);
            a3 = CK_VFMA2(xv, CK_FN(ck_vload)(w3 + p), a3);
        }
        float d[4] = {CK_FN(ck_hsum)(a0), CK_FN(ck_hsum)(a1), CK_FN(ck_hsum)(a2),
                      CK_FN(ck_hsum)(a3)};
        for (size_t p = kv; p < k; p++) {
            d[0] += x[p] * w0[p];
            d[1] += x[p] * w1[p];
            d[2] += x[p] * w2[p];
            d[3] += x[p] * w3[p];
        }
        for (int r = 0; r < 4; r++)
            y[j + r] = beta == 0.0f ? alpha * d[r] : alpha * d[r] + beta * y[j + r];
    }
    for (; j < n; j++) {
        const float *wr = w + j * ldw;
        CK_VEC a = (CK_VEC){0};
        for (size_t p = 0; p < kv; p += CK_VL)
            a = CK_VFMA2(CK_FN(ck_vload)(x + p), CK_FN(ck_vload)(wr + p), a);
        float d = CK_FN(ck_hsum)(a);
        for (size_t p = kv; p < k; p++) d += x[p] * wr[p];
        y[j] = beta == 0.0f ? alpha * d : alpha * d + beta * y[j];
    }
}

/* One output of gemv_t: alpha * acc + beta * y, with the fused multiply-add spelled out so no
 * compiler contracts it differently in different loops (GCC's default -ffp-contract=fast
 * would, and a column's bits would then depend on which block computed it). */
static inline __attribute__((always_inline)) float CK_FN(ck_gemv_t_merge)(float alpha, float acc,
                                                                          float beta, float y) {
    return beta == 0.0f ? alpha * acc : __builtin_fmaf(beta, y, alpha * acc);
}

/* y = alpha * W^T x + beta * y for W [k, n] row-major: a weighted sum of k rows (contract in
 * attend_kernels.h). Columns go four vectors at a time, held in registers across all k rows,
 * so every output column is the same in-order sum of fused multiply-adds whatever the block
 * (the n % VL tail too, in scalars). */
void CK_FN(ck_f32_gemv_t)(size_t n, size_t k, float alpha, const float *x, const float *w,
                          size_t ldw, float beta, float *y) {
    size_t d = 0;
    for (; d + 4 * CK_VL <= n; d += 4 * CK_VL) {
        CK_VEC a0 = (CK_VEC){0}, a1 = (CK_VEC){0}, a2 = (CK_VEC){0}, a3 = (CK_VEC){0};
        for (size_t j = 0; j < k; j++) {
            const float *row = w + j * ldw + d;
            const CK_VEC xj = CK_VSPLAT(x[j]);
            a0 = CK_VFMA2(xj, CK_FN(ck_vload)(row), a0);
            a1 = CK_VFMA2(xj, CK_FN(ck_vload)(row + CK_VL), a1);
            a2 = CK_VFMA2(xj, CK_FN(ck_vload)(row + 2 * CK_VL), a2);
            a3 = CK_VFMA2(xj, CK_FN(ck_vload)(row + 3 * CK_VL), a3);
        }
        const CK_VEC acc[4] = {a0, a1, a2, a3};
        for (int v = 0; v < 4; v++)
            for (int t = 0; t < CK_VL; t++) {
                float *out = y + d + (size_t)v * CK_VL + (size_t)t;
                *out = CK_FN(ck_gemv_t_merge)(alpha, acc[v][t], beta, *out);
            }
    }
    for (; d + CK_VL <= n; d += CK_VL) {
        CK_VEC a = (CK_VEC){0};
        for (size_t j = 0; j < k; j++)
            a = CK_VFMA2(CK_VSPLAT(x[j]), CK_FN(ck_vload)(w + j * ldw + d), a);
        for (int t = 0; t < CK_VL; t++) {
            float *out = y + d + (size_t)t;
            *out = CK_FN(ck_gemv_t_merge)(alpha, a[t], beta, *out);
        }
    }
    for (; d < n; d++) {
        float a = 0.0f;
#if defined(CK_NO_FMA)
        for (size_t j = 0; j < k; j++) a = x[j] * w[j * ldw + d] + a;
#else
        for (size_t j = 0; j < k; j++) a = __builtin_fmaf(x[j], w[j * ldw + d], a);
#endif
        y[d] = CK_FN(ck_gemv_t_merge)(alpha, a, beta, y[d]);
    }
}
