/*
 * Kernels over 16-bit weights (contracts in attend_kernels.h, "16-bit weights"): the weight
 * stays F16 or BF16 in memory and is widened to float32 in registers. Instantiated per ISA by
 * variant.h. The includer may define
 *   CK_LOAD_F16(p)   CK_VL binary16 values at p (any alignment) widened to a CK_VEC (F16C's
 *                    vcvtph2ps, NEON's fcvtl); without it, lane by lane in scalar code.
 * BF16 is widened the same way on every ISA: zero-extend to 32 bits, shift left by 16.
 */

/* Rows of at most 2 KiB go one at a time, as ck_f32_gemv's rows of 512 floats do (one
 * sequential stream the prefetcher follows; longer rows four at a time). In 16-bit values
 * that is 1024: measured on Zen 4, a [3072, 768] or [50257, 768] BF16 weight streams about
 * twice as fast one row at a time as four rows at a time (4.4-4.8 vs 2.1 GB/s, 1 thread). */
#ifndef CK_W16_SHORT_ROW
#define CK_W16_SHORT_ROW 1024
#endif

typedef uint16_t CK_FN(ck_h16v) __attribute__((vector_size(CK_VL * 2)));
typedef uint32_t CK_FN(ck_u32v) __attribute__((vector_size(CK_VL * 4)));

/* CK_VL bfloat16 values at p, widened. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload_bf16)(const uint16_t *p) {
    CK_FN(ck_h16v) h;
    memcpy(&h, p, sizeof h);
    const CK_FN(ck_u32v) u = __builtin_convertvector(h, CK_FN(ck_u32v)) << 16;
    CK_VEC v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* CK_VL binary16 values at p, widened. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload_f16)(const uint16_t *p) {
#if defined(CK_LOAD_F16)
    return (CK_VEC)CK_LOAD_F16(p);
#else
    CK_VEC v;
    for (int i = 0; i < CK_VL; i++) v[i] = ck_f16_to_f32(p[i]);
    return v;
#endif
}

static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload_w16)(int dtype,
                                                                       const uint16_t *p) {
    return dtype == CK_W16_BF16 ? CK_FN(ck_vload_bf16)(p) : CK_FN(ck_vload_f16)(p);
}

static inline __attribute__((always_inline)) float CK_FN(ck_w16_one)(int dtype, uint16_t h) {
    return dtype == CK_W16_BF16 ? ck_bf16_to_f32(h) : ck_f16_to_f32(h);
}

void CK_FN(ck_w16_widen)(int dtype, size_t n, const uint16_t *src, float *dst) {
    size_t i = 0;
    if (dtype == CK_W16_BF16) {
        for (; i + CK_VL <= n; i += CK_VL) CK_FN(ck_vstore)(dst + i, CK_FN(ck_vload_bf16)(src + i));
    } else {
        for (; i + CK_VL <= n; i += CK_VL) CK_FN(ck_vstore)(dst + i, CK_FN(ck_vload_f16)(src + i));
    }
    for (; i < n; i++) dst[i] = CK_FN(ck_w16_one)(dtype, src[i]);
}

/* One row of y: alpha * d + beta * y (beta == 0: y not read), as ck_f32_gemv writes it. */
static inline __attribute__((always_inline)) void CK_FN(ck_w16_out)(float *y, float alpha, float d,
                                                                   float beta) {
    *y = beta == 0.0f ? alpha * d : alpha * d + beta * *y;
}

/*
 * The GEMV body for one dtype and one or two rows (both compile-time constants after
 * inlining). Per row the sums are ck_f32_gemv's short-row and long-row sums, term for term
 * and in the same order: short rows (k <= 1024: 2 KiB) one weight row at a time with four
 * accumulators over 4-vector steps, then single vectors, a horizontal sum of
 * (a0 + a1) + (a2 + a3) and the k % VL tail in order; long rows four weight rows at a time
 * with one accumulator each. (ck_f32_gemv switches at 512: for 512 < k <= 1024 the orders
 * differ, both within the float32 bound.)
 */
static inline __attribute__((always_inline)) void
CK_FN(ck_w16_gemv_body)(const int dtype, const int two, size_t n, size_t k, float alpha,
                        const float *x0, const float *x1, const uint16_t *w, size_t ldw, float beta,
                        float *y0, float *y1) {
    const size_t kv = k / CK_VL * CK_VL;
#define CK_W(p) CK_FN(ck_vload_w16)(dtype, (p))
#define CK_X(p) CK_FN(ck_vload)(p)
    size_t j = 0;
    if (k <= CK_W16_SHORT_ROW) {
        for (; j < n; j++) {
            const uint16_t *wr = w + j * ldw;
            CK_VEC a0 = (CK_VEC){0}, a1 = (CK_VEC){0}, a2 = (CK_VEC){0}, a3 = (CK_VEC){0};
            CK_VEC b0 = (CK_VEC){0}, b1 = (CK_VEC){0}, b2 = (CK_VEC){0}, b3 = (CK_VEC){0};
            size_t p = 0;
            for (; p + 4 * CK_VL <= kv; p += 4 * CK_VL) {
                const CK_VEC w0 = CK_W(wr + p), w1 = CK_W(wr + p + CK_VL),
                             w2 = CK_W(wr + p + 2 * CK_VL), w3 = CK_W(wr + p + 3 * CK_VL);
                a0 = CK_VFMA2(CK_X(x0 + p), w0, a0);
                a1 = CK_VFMA2(CK_X(x0 + p + CK_VL), w1, a1);
                a2 = CK_VFMA2(CK_X(x0 + p + 2 * CK_VL), w2, a2);
                a3 = CK_VFMA2(CK_X(x0 + p + 3 * CK_VL), w3, a3);
                if (two) {
                    b0 = CK_VFMA2(CK_X(x1 + p), w0, b0);
                    b1 = CK_VFMA2(CK_X(x1 + p + CK_VL), w1, b1);
                    b2 = CK_VFMA2(CK_X(x1 + p + 2 * CK_VL), w2, b2);
                    b3 = CK_VFMA2(CK_X(x1 + p + 3 * CK_VL), w3, b3);
                }
            }
            for (; p < kv; p += CK_VL) {
                const CK_VEC wv = CK_W(wr + p);
                a0 = CK_VFMA2(CK_X(x0 + p), wv, a0);
                if (two) b0 = CK_VFMA2(CK_X(x1 + p), wv, b0);
            }
            float d0 = CK_FN(ck_hsum)((a0 + a1) + (a2 + a3));
            float d1 = two ? CK_FN(ck_hsum)((b0 + b1) + (b2 + b3)) : 0.0f;
            for (p = kv; p < k; p++) {
                const float wp = CK_FN(ck_w16_one)(dtype, wr[p]);
                d0 += x0[p] * wp;
                if (two) d1 += x1[p] * wp;
            }
            CK_FN(ck_w16_out)(y0 + j, alpha, d0, beta);
            if (two) CK_FN(ck_w16_out)(y1 + j, alpha, d1, beta);
        }
        return;
    }
    for (; j + 4 <= n; j += 4) {
        const uint16_t *w0 = w + j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        CK_VEC a0 = (CK_VEC){0}, a1 = (CK_VEC){0}, a2 = (CK_VEC){0}, a3 = (CK_VEC){0};
        CK_VEC b0 = (CK_VEC){0}, b1 = (CK_VEC){0}, b2 = (CK_VEC){0}, b3 = (CK_VEC){0};
        for (size_t p = 0; p < kv; p += CK_VL) {
            const CK_VEC v0 = CK_W(w0 + p), v1 = CK_W(w1 + p), v2 = CK_W(w2 + p), v3 = CK_W(w3 + p);
            const CK_VEC xv = CK_X(x0 + p);
            a0 = CK_VFMA2(xv, v0, a0);
            a1 = CK_VFMA2(xv, v1, a1);
            a2 = CK_VFMA2(xv, v2, a2);
            a3 = CK_VFMA2(xv, v3, a3);
            if (two) {
                const CK_VEC xu = CK_X(x1 + p);
                b0 = CK_VFMA2(xu, v0, b0);
                b1 = CK_VFMA2(xu, v1, b1);
                b2 = CK_VFMA2(xu, v2, b2);
                b3 = CK_VFMA2(xu, v3, b3);
            }
        }
        float d[4] = {CK_FN(ck_hsum)(a0), CK_FN(ck_hsum)(a1), CK_FN(ck_hsum)(a2),
                      CK_FN(ck_hsum)(a3)};
        float e[4] = {0, 0, 0, 0};
        if (two) {
            e[0] = CK_FN(ck_hsum)(b0);
            e[1] = CK_FN(ck_hsum)(b1);
            e[2] = CK_FN(ck_hsum)(b2);
            e[3] = CK_FN(ck_hsum)(b3);
        }
        for (size_t p = kv; p < k; p++) {
            const float u0 = CK_FN(ck_w16_one)(dtype, w0[p]), u1 = CK_FN(ck_w16_one)(dtype, w1[p]),
                        u2 = CK_FN(ck_w16_one)(dtype, w2[p]), u3 = CK_FN(ck_w16_one)(dtype, w3[p]);
            d[0] += x0[p] * u0;
            d[1] += x0[p] * u1;
            d[2] += x0[p] * u2;
            d[3] += x0[p] * u3;
            if (two) {
                e[0] += x1[p] * u0;
                e[1] += x1[p] * u1;
                e[2] += x1[p] * u2;
                e[3] += x1[p] * u3;
            }
        }
        for (int r = 0; r < 4; r++) {
            CK_FN(ck_w16_out)(y0 + j + r, alpha, d[r], beta);
            if (two) CK_FN(ck_w16_out)(y1 + j + r, alpha, e[r], beta);
        }
    }
    for (; j < n; j++) {
        const uint16_t *wr = w + j * ldw;
        CK_VEC a = (CK_VEC){0}, b = (CK_VEC){0};
        for (size_t p = 0; p < kv; p += CK_VL) {
            const CK_VEC wv = CK_W(wr + p);
            a = CK_VFMA2(CK_X(x0 + p), wv, a);
            if (two) b = CK_VFMA2(CK_X(x1 + p), wv, b);
        }
        float d0 = CK_FN(ck_hsum)(a), d1 = two ? CK_FN(ck_hsum)(b) : 0.0f;
        for (size_t p = kv; p < k; p++) {
            const float wp = CK_FN(ck_w16_one)(dtype, wr[p]);
            d0 += x0[p] * wp;
            if (two) d1 += x1[p] * wp;
        }
        CK_FN(ck_w16_out)(y0 + j, alpha, d0, beta);
        if (two) CK_FN(ck_w16_out)(y1 + j, alpha, d1, beta);
    }
#undef CK_W
#undef CK_X
}

void CK_FN(ck_w16_gemv)(int dtype, size_t rows, size_t n, size_t k, float alpha, const float *x,
                        size_t ldx, const uint16_t *w, size_t ldw, float beta, float *y,
                        size_t ldy) {
    if (rows == 0) return;
    const float *x1 = rows >= 2 ? x + ldx : x;
    float *y1 = rows >= 2 ? y + ldy : y;
    if (dtype == CK_W16_BF16) {
        if (rows >= 2)
            CK_FN(ck_w16_gemv_body)(CK_W16_BF16, 1, n, k, alpha, x, x1, w, ldw, beta, y, y1);
        else
            CK_FN(ck_w16_gemv_body)(CK_W16_BF16, 0, n, k, alpha, x, x, w, ldw, beta, y, y);
    } else {
        if (rows >= 2)
            CK_FN(ck_w16_gemv_body)(CK_W16_F16, 1, n, k, alpha, x, x1, w, ldw, beta, y, y1);
        else
            CK_FN(ck_w16_gemv_body)(CK_W16_F16, 0, n, k, alpha, x, x, w, ldw, beta, y, y);
    }
}
