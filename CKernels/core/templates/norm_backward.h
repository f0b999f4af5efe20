/*
 * Layer norm / RMS norm for training (contracts in attend_kernels_backward.h): the forward
 * that saves t = x + residual, the mean and rstd (norm.h's row arithmetic, so y is the
 * inference kernel's bit for bit), and the backward with dgamma/dbeta accumulated in row
 * order. Instantiated per ISA by variant.h.
 */
void CK_FN(ck_f32_norm_rows_train)(int rms, size_t rows, size_t n, const float *x, size_t ldx,
                                   const float *residual, size_t ldr, const float *gamma,
                                   const float *beta, float eps, float *y, size_t ldy, float *t,
                                   size_t ldt, float *mean_out, float *rstd_out) {
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * ldy;
        float *sr = t ? t + r * ldt : yr; /* where t lives during the row */
        CK_FN(ck_norm_row)(rms, n, x + r * ldx, residual ? residual + r * ldr : NULL, gamma, beta,
                           eps, yr, sr, &mean_out[r], &rstd_out[r]);
    }
}

void CK_FN(ck_f32_norm_backward)(int rms, size_t rows, size_t n, const float *dy, size_t lddy,
                                 const float *t, size_t ldt, const float *mean, const float *rstd,
                                 const float *gamma, float *dx, size_t lddx, int accumulate,
                                 float *dgamma, float *dbeta) {
    for (size_t r = 0; r < rows; r++) {
        const float *dyr = dy + r * lddy, *tr = t + r * ldt;
        float *dxr = dx + r * lddx;
        const float mu = rms ? 0.0f : mean[r], rs = rstd[r];
        const CK_VEC vmu = CK_VSPLAT(mu), vrs = CK_VSPLAT(rs);
        /* Pass 1: sum g and g * xhat (g = dy * gamma), and the parameter gradients. */
        CK_VEC s1 = (CK_VEC){0}, s2 = (CK_VEC){0};
        size_t i = 0;
        for (; i + CK_VL <= n; i += CK_VL) {
            const CK_VEC d = CK_FN(ck_vload)(dyr + i);
            const CK_VEC xh = (CK_FN(ck_vload)(tr + i) - vmu) * vrs;
            const CK_VEC g = d * CK_FN(ck_vload)(gamma + i);
            s1 += g;
            s2 = CK_VFMA2(g, xh, s2);
            if (dgamma) CK_FN(ck_vstore)(dgamma + i, CK_VFMA2(d, xh, CK_FN(ck_vload)(dgamma + i)));
            if (dbeta) CK_FN(ck_vstore)(dbeta + i, CK_FN(ck_vload)(dbeta + i) + d);
        }
        float t1 = 0, t2 = 0;
        for (; i < n; i++) {
            const float d = dyr[i], xh = (tr[i] - mu) * rs, g = d * gamma[i];
            t1 += g;
            t2 += g * xh;
            if (dgamma) dgamma[i] += d * xh;
            if (dbeta) dbeta[i] += d;
        }
        const float c1 = rms ? 0.0f : (CK_FN(ck_hsum)(s1) + t1) / (float)n;
        const float c2 = (CK_FN(ck_hsum)(s2) + t2) / (float)n;
        /* Pass 2: dt = rstd * (g - c1 - xhat * c2), written or added. */
        const CK_VEC vc1 = CK_VSPLAT(c1), vc2 = CK_VSPLAT(c2);
        for (i = 0; i + CK_VL <= n; i += CK_VL) {
            const CK_VEC xh = (CK_FN(ck_vload)(tr + i) - vmu) * vrs;
            const CK_VEC g = CK_FN(ck_vload)(dyr + i) * CK_FN(ck_vload)(gamma + i);
            CK_VEC v = (g - vc1 - xh * vc2) * vrs;
            if (accumulate) v += CK_FN(ck_vload)(dxr + i);
            CK_FN(ck_vstore)(dxr + i, v);
        }
        for (; i < n; i++) {
            const float xh = (tr[i] - mu) * rs, g = dyr[i] * gamma[i];
            const float v = (g - c1 - xh * c2) * rs;
            dxr[i] = accumulate ? dxr[i] + v : v;
        }
    }
}
