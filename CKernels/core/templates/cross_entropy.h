/*
 * Fused softmax cross-entropy with its gradient (contract in attend_kernels_backward.h):
 * CK_FN(ck_f32_cross_entropy), on the vector exp of vector_ops.h and ck_vload_pad of
 * exp_softmax.h. Instantiated per ISA by variant.h.
 */
#define CK_CE_CHUNK 2048 /* floats per chunk of the first pass: 8 KiB, read twice from L1 */

void CK_FN(ck_f32_cross_entropy)(size_t rows, size_t vocab, const float *logits, size_t ld,
                                 const int32_t *targets, int32_t ignore_index, float smoothing,
                                 float grad_scale, float *loss, float *dlogits, size_t ldd) {
    const float ninf = -__builtin_inff();
    for (size_t r = 0; r < rows; r++) {
        const float *x = logits + r * ld;
        float *d = dlogits ? dlogits + r * ldd : NULL;
        const int32_t target = targets[r];
        if (target == ignore_index) {
            loss[r] = 0.0f;
            if (d)
                for (size_t j = 0; j < vocab; j++) d[j] = 0.0f;
            continue;
        }
        const size_t t = (size_t)target;
        const float xt = x[t]; /* read before d (which may alias x) is written */
        /* Pass 1, chunk by chunk: the chunk's max (and sum, for smoothing), then its exp-sum
         * against the running max m, the running sum s rescaled when m grows. */
        float m = ninf;
        double s = 0, sx = 0;
        CK_IVEC nan = CK_ISPLAT(0);
        int tail_nan = 0;
        for (size_t c0 = 0; c0 < vocab; c0 += CK_CE_CHUNK) {
            const size_t c1 = vocab - c0 > CK_CE_CHUNK ? c0 + CK_CE_CHUNK : vocab;
            CK_VEC vmax = CK_VSPLAT(ninf), vsx = (CK_VEC){0};
            size_t i = c0;
            for (; i + CK_VL <= c1; i += CK_VL) {
                const CK_VEC v = CK_FN(ck_vload)(x + i);
                nan |= v != v;
                vmax = CK_FN(ck_vmax)(vmax, v);
                vsx += v;
            }
            float cmax = CK_FN(ck_hmax)(vmax), tsx = 0;
            for (; i < c1; i++) {
                tail_nan |= x[i] != x[i];
                cmax = x[i] > cmax ? x[i] : cmax;
                tsx += x[i];
            }
            sx += (double)(CK_FN(ck_hsum)(vsx) + tsx);
            if (cmax == ninf) continue; /* nothing to add; keeps -inf - -inf out */
            if (cmax > m) {
                s *= __builtin_exp((double)m - (double)cmax);
                m = cmax;
            }
            const CK_VEC vm = CK_VSPLAT(m);
            CK_VEC vs = (CK_VEC){0};
            for (i = c0; i < c1; i += CK_VL)
                vs += CK_FN(ck_vexp_nonpos)(CK_FN(ck_vload_pad)(x, i, c1, ninf) - vm);
            s += (double)CK_FN(ck_hsum)(vs);
        }
        int any_nan = tail_nan;
        for (int l = 0; l < CK_VL; l++) any_nan |= nan[l] != 0;
        if (any_nan || m == ninf) {
            const float q = __builtin_nanf("");
            loss[r] = q;
            if (d)
                for (size_t j = 0; j < vocab; j++) d[j] = q;
            continue;
        }
        const double log_s = __builtin_log(s), lse = (double)m + log_s;
        double l = (1.0 - (double)smoothing) * (lse - (double)xt);
        if (smoothing != 0.0f) l += (double)smoothing * (lse - sx / (double)vocab);
        loss[r] = (float)l;
        if (!d) continue;
        /* Pass 2: p_j = exp((x_j - m) - log s), the gradient scale * (p_j - smoothing/vocab),
         * and at the target scale * ((p_t - (1 - smoothing)) - smoothing/vocab). */
        const float lsf = (float)log_s, ce = smoothing / (float)vocab;
        const CK_VEC vm = CK_VSPLAT(m), vl = CK_VSPLAT(lsf), vce = CK_VSPLAT(ce),
                     vg = CK_VSPLAT(grad_scale);
        const CK_VEC pt = CK_FN(ck_vexp_nonpos)((CK_VSPLAT(xt) - vm) - vl);
        for (size_t i = 0; i < vocab; i += CK_VL) {
            const CK_VEC p =
                CK_FN(ck_vexp_nonpos)((CK_FN(ck_vload_pad)(x, i, vocab, 0.0f) - vm) - vl);
            const CK_VEC g = (p - vce) * vg;
            if (i + CK_VL <= vocab) {
                CK_FN(ck_vstore)(d + i, g);
            } else {
                for (size_t j = i; j < vocab; j++) d[j] = g[j - i];
            }
        }
        d[t] = ((pt[0] - (1.0f - smoothing)) - ce) * grad_scale;
    }
}
#undef CK_CE_CHUNK
