/*
 * The int8 GEMM tile loop of the NEON kernels, included twice by q8_neon.c: once with
 * Q8_DOT16 = sdot (the dot-product extension, in a function compiled for it) and once with
 * the widening smull + sadalp pair. Q8_DOT16(acc, a, w) adds the products of 16 signed bytes
 * to 4 int32 lanes, exactly. Q8_FN names the function. Per group of 32 (two steps of 16) the
 * int32 lanes are converted and scaled by (activation scale * weight scale) into float lanes.
 */
static void Q8_FN(size_t m, const int8_t *aq, size_t ldaq, const float *sa, size_t ldsa,
                  const ck_q8_weight *w, const float *bias, float *c, size_t ldc) {
    const size_t n = w->n, k = w->k, k32 = k / 32 * 32;
    for (size_t i = 0; i < m; i += 4) {
        const int R = m - i >= 4 ? 4 : (int)(m - i);
        for (size_t j0 = 0; j0 < n; j0 += 4) {
            const int C = n - j0 >= 4 ? 4 : (int)(n - j0);
            const int8_t *arow[4], *qrow[4];
            const float *srow[4];
            for (int r = 0; r < 4; r++) {
                const size_t ir = i + (size_t)(r < R ? r : 0);
                arow[r] = aq + ir * ldaq;
                srow[r] = sa + ir * ldsa;
            }
            for (int cc = 0; cc < 4; cc++) qrow[cc] = w->q + (j0 + (size_t)(cc < C ? cc : 0)) * w->ldq;
            float32x4_t fa[4][4];
            for (int r = 0; r < 4; r++)
                for (int cc = 0; cc < 4; cc++) fa[r][cc] = vdupq_n_f32(0.0f);
            for (size_t p = 0, g = 0; p < k32; p += 32, g++) {
                int8x16_t a0[4], a1[4];
                for (int r = 0; r < 4; r++) {
                    a0[r] = vld1q_s8(arow[r] + p);
                    a1[r] = vld1q_s8(arow[r] + p + 16);
                }
                for (int cc = 0; cc < 4; cc++) {
                    const int8x16_t w0 = vld1q_s8(qrow[cc] + p), w1 = vld1q_s8(qrow[cc] + p + 16);
                    const float sw = ck_q8_scale(w, j0 + (size_t)(cc < C ? cc : 0), g);
                    for (int r = 0; r < 4; r++) {
                        int32x4_t d = Q8_DOT16(vdupq_n_s32(0), a0[r], w0);
                        d = Q8_DOT16(d, a1[r], w1);
                        fa[r][cc] = vfmaq_f32(fa[r][cc], vcvtq_f32_s32(d), vdupq_n_f32(srow[r][g] * sw));
                    }
                }
            }
            for (int r = 0; r < R; r++)
                for (int cc = 0; cc < C; cc++) {
                    float v = vaddvq_f32(fa[r][cc]);
                    if (k32 < k) { /* the last, partial group */
                        int32_t d = 0;
                        for (size_t p = k32; p < k; p++) d += (int32_t)arow[r][p] * (int32_t)qrow[cc][p];
                        v += (float)d * (srow[r][k32 / 32] * ck_q8_scale(w, j0 + (size_t)cc, k32 / 32));
                    }
                    c[(i + (size_t)r) * ldc + j0 + (size_t)cc] = ck_q8_finish(v, bias, j0 + (size_t)cc);
                }
        }
    }
}
