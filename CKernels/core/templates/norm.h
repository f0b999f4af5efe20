/*
 * Row normalization fused with the residual add (contract in attend_kernels.h):
 * CK_FN(ck_f32_norm_rows), layer norm or RMS norm. Instantiated per ISA by variant.h.
 * CK_FN(ck_norm_row) is the one row's arithmetic, shared with the training forward
 * (norm_backward.h), so both give the same bits.
 */

/* One row: t = x + residual (written to s, which may be y), its mean and rstd (returned
 * through *mean_out / *rstd_out), then y = (t - mean) * rstd * gamma (+ beta). */
static inline __attribute__((always_inline)) void
CK_FN(ck_norm_row)(int rms, size_t n, const float *xr, const float *rr, const float *gamma,
                   const float *beta, float eps, float *yr, float *sr, float *mean_out,
                   float *rstd_out) {
    CK_VEC vs = (CK_VEC){0};
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL) {
        CK_VEC t = CK_FN(ck_vload)(xr + i);
        if (rr) t += CK_FN(ck_vload)(rr + i);
        CK_FN(ck_vstore)(sr + i, t);
        vs += rms ? t * t : t;
    }
    float tail = 0;
    for (; i < n; i++) {
        float t = xr[i] + (rr ? rr[i] : 0.0f);
        sr[i] = t;
        tail += rms ? t * t : t;
    }
    const float s1 = (CK_FN(ck_hsum)(vs) + tail) / (float)n;
    float mean = 0.0f, var;
    if (rms) {
        var = s1;
    } else {
        mean = s1;
        const CK_VEC vm = CK_VSPLAT(mean);
        CK_VEC vv = (CK_VEC){0};
        float tv = 0;
        for (i = 0; i + CK_VL <= n; i += CK_VL) {
            CK_VEC d = CK_FN(ck_vload)(sr + i) - vm;
            vv = CK_VFMA2(d, d, vv);
        }
        for (; i < n; i++) tv += (sr[i] - mean) * (sr[i] - mean);
        var = (CK_FN(ck_hsum)(vv) + tv) / (float)n;
    }
    const float rstd = 1.0f / __builtin_sqrtf(var + eps);
    *mean_out = mean;
    *rstd_out = rstd;
    const CK_VEC vm = CK_VSPLAT(mean), vr = CK_VSPLAT(rstd);
    for (i = 0; i + CK_VL <= n; i += CK_VL) {
        CK_VEC t = (CK_FN(ck_vload)(sr + i) - vm) * vr * CK_FN(ck_vload)(gamma + i);
        if (beta && !rms) t += CK_FN(ck_vload)(beta + i);
        CK_FN(ck_vstore)(yr + i, t);
    }
    for (; i < n; i++)
        yr[i] = (sr[i] - mean) * rstd * gamma[i] + (beta && !rms ? beta[i] : 0.0f);
}

void CK_FN(ck_f32_norm_rows)(int rms, size_t rows, size_t n, const float *x, size_t ldx,
                             const float *residual, size_t ldr, const float *gamma,
                             const float *beta, float eps, float *y, size_t ldy) {
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * ldy;
        float mean, rstd;
        /* t is written to y first (y may alias either input). */
        CK_FN(ck_norm_row)(rms, n, x + r * ldx, residual ? residual + r * ldr : NULL, gamma, beta,
                           eps, yr, yr, &mean, &rstd);
    }
}
