/*
 * Row normalization fused with the residual add (contract in attend_kernels.h):
 * CK_FN(ck_f32_norm_rows), layer norm or RMS norm. Instantiated per ISA by variant.h.
 */
void CK_FN(ck_f32_norm_rows)(int rms, size_t rows, size_t n, const float *x, size_t ldx,
                             const float *residual, size_t ldr, const float *gamma,
                             const float *beta, float eps, float *y, size_t ldy) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        const float *rr = residual ? residual + r * ldr : NULL;
        float *yr = y + r * ldy;
        /* t = x + residual, written to y first (y may alias either input). */
        CK_VEC vs = (CK_VEC){0};
        size_t i = 0;
        for (; i + CK_VL <= n; i += CK_VL) {
            CK_VEC t = CK_FN(ck_vload)(xr + i);
            if (rr) t += CK_FN(ck_vload)(rr + i);
            CK_FN(ck_vstore)(yr + i, t);
            vs += rms ? t * t : t;
        }
        float tail = 0;
        for (; i < n; i++) {
            float t = xr[i] + (rr ? rr[i] : 0.0f);
            yr[i] = t;
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
                CK_VEC d = CK_FN(ck_vload)(yr + i) - vm;
                vv = CK_VFMA2(d, d, vv);
            }
            for (; i < n; i++) tv += (yr[i] - mean) * (yr[i] - mean);
            var = (CK_FN(ck_hsum)(vv) + tv) / (float)n;
        }
        const float rstd = 1.0f / __builtin_sqrtf(var + eps);
        const CK_VEC vm = CK_VSPLAT(mean), vr = CK_VSPLAT(rstd);
        for (i = 0; i + CK_VL <= n; i += CK_VL) {
            CK_VEC t = (CK_FN(ck_vload)(yr + i) - vm) * vr * CK_FN(ck_vload)(gamma + i);
            if (beta && !rms) t += CK_FN(ck_vload)(beta + i);
            CK_FN(ck_vstore)(yr + i, t);
        }
        for (; i < n; i++)
            yr[i] = (yr[i] - mean) * rstd * gamma[i] + (beta && !rms ? beta[i] : 0.0f);
    }
}
