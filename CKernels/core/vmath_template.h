/*
 * Vector math shared by the softmax and attention kernels, written once with vector
 * extensions and instantiated per ISA (like gemm_ukr_template.h). Define before including:
 *   CK_VEC, CK_VL   float vector type and its lanes
 *   CK_IVEC         int32 vector type with the same lanes
 *   CK_FN(name)     appends the variant suffix: CK_FN(ck_f32_exp) -> ck_f32_exp__avx2
 * Defines static helpers (ck_vexp, ck_vmax, ...) and the table functions
 * CK_FN(ck_f32_exp), CK_FN(ck_f32_softmax_rows), CK_FN(ck_f32_attn_softmax_step).
 */
#include <string.h>

#define CK_VSPLAT(x) (-(CK_VEC){0} + (x))
#define CK_ISPLAT(x) ((CK_IVEC){0} + (x))
/* Lane-wise select: mask lanes are all-ones (true) or all-zeros (false). */
#define CK_VSELECT(mask, a, b) ((CK_VEC)((((CK_IVEC)(a)) & (mask)) | (((CK_IVEC)(b)) & ~(mask))))

/* CK_NO_FMA: the portable scalar instantiation, where a fused multiply-add may not exist
 * in hardware and would become a slow library call. */
#if defined(__has_builtin) && !defined(CK_NO_FMA)
#if __has_builtin(__builtin_elementwise_fma)
#define CK_VFMA2(x, y, z) __builtin_elementwise_fma((x), (y), (z))
#endif
#endif
#ifndef CK_VFMA2
#define CK_VFMA2(x, y, z) ((x) * (y) + (z))
#endif

static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload)(const float *p) {
    CK_VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void CK_FN(ck_vstore)(float *p, CK_VEC v) { memcpy(p, &v, sizeof v); }

/* max; which operand wins when one is NaN is unspecified (callers track NaN separately). */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vmax)(CK_VEC a, CK_VEC b) {
#if defined(__has_builtin) && __has_builtin(__builtin_elementwise_max)
    return __builtin_elementwise_max(a, b);
#else
    return CK_VSELECT(a > b, a, b);
#endif
}

static inline __attribute__((always_inline)) float CK_FN(ck_hmax)(CK_VEC v) {
    float m = v[0];
    for (int i = 1; i < CK_VL; i++) m = v[i] > m ? v[i] : m;
    return m;
}
static inline __attribute__((always_inline)) float CK_FN(ck_hsum)(CK_VEC v) {
    float s = 0;
    for (int i = 0; i < CK_VL; i++) s += v[i];
    return s;
}

/*
 * exp(x), lane-wise. x = k*ln2 + r with k = round(x / ln2) by the 1.5*2^23 trick (no float to
 * int conversion, so NaN cannot trigger undefined behaviour), r computed with ln2 split in
 * two (Cody-Waite), exp(r) by the Cephes degree-6 minimax polynomial, then multiplied by 2^k
 * as 2^(k/2) * 2^(k - k/2): both factors are normal for every k in [-150, 128], so a subnormal
 * result is rounded exactly once. x is first clamped to [-104, 88.7229]: exp(-104) is below
 * half the smallest subnormal and rounds to +0, and at 88.7229 the product overflows to +inf,
 * so no case needs a fix-up afterwards. NaN fails both clamp compares and stays NaN.
 * Accuracy: <= 2 ulp (tests measure it over the whole float range).
 */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp_poly)(CK_VEC xc, CK_IVEC *k) {
    const CK_VEC magic = CK_VSPLAT(12582912.0f); /* 1.5 * 2^23 */
    CK_VEC t = CK_VFMA2(xc, CK_VSPLAT(1.44269504088896341f), magic);
    *k = ((CK_IVEC)t) - (CK_IVEC)magic; /* integer k in the low mantissa bits */
    CK_VEC kf = t - magic;
    CK_VEC r = CK_VFMA2(kf, CK_VSPLAT(-0.693359375f), xc);
    r = CK_VFMA2(kf, CK_VSPLAT(2.12194440e-4f), r);
    CK_VEC p = CK_VSPLAT(1.9875691500e-4f);
    p = CK_VFMA2(p, r, CK_VSPLAT(1.3981999507e-3f));
    p = CK_VFMA2(p, r, CK_VSPLAT(8.3334519073e-3f));
    p = CK_VFMA2(p, r, CK_VSPLAT(4.1665795894e-2f));
    p = CK_VFMA2(p, r, CK_VSPLAT(1.6666665459e-1f));
    p = CK_VFMA2(p, r, CK_VSPLAT(5.0000001201e-1f));
    return CK_VFMA2(p, r * r, r + 1.0f);
}

static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp)(CK_VEC x) {
    const CK_VEC hi = CK_VSPLAT(88.7229f), lo = CK_VSPLAT(-104.0f);
    CK_VEC xc = CK_VSELECT(x > hi, hi, x);
    xc = CK_VSELECT(xc < lo, lo, xc);
    CK_IVEC k;
    CK_VEC p = CK_FN(ck_vexp_poly)(xc, &k);
    CK_IVEC k1 = k >> 1, k2 = k - k1;
    return p * (CK_VEC)((k1 + 127) << 23) * (CK_VEC)((k2 + 127) << 23);
}

/*
 * exp(x) for x <= 0 where results below 2^-126 may be flushed to 0: the softmax and attention
 * inner loops, whose terms are x - max <= 0 and are summed against a largest term of 1, so a
 * flushed term changes nothing representable. One scaling step; -inf gives exactly 0.
 */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp_nonpos)(CK_VEC x) {
    const CK_VEC lo = CK_VSPLAT(-87.0f);
    CK_IVEC tiny = x < lo;
    CK_IVEC k;
    CK_VEC p = CK_FN(ck_vexp_poly)(CK_VSELECT(tiny, lo, x), &k);
    CK_VEC y = p * (CK_VEC)((k + 127) << 23);
    return (CK_VEC)((CK_IVEC)y & ~tiny);
}

void CK_FN(ck_f32_exp)(size_t n, const float *x, float *y) {
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL) CK_FN(ck_vstore)(y + i, CK_FN(ck_vexp)(CK_FN(ck_vload)(x + i)));
    if (i < n) {
        float buf[CK_VL] = {0};
        memcpy(buf, x + i, (n - i) * sizeof(float));
        CK_VEC v = CK_FN(ck_vexp)(CK_FN(ck_vload)(buf));
        CK_FN(ck_vstore)(buf, v);
        memcpy(y + i, buf, (n - i) * sizeof(float));
    }
}

/* Loads lanes [i, i+CK_VL) of a row of n, padding past n with `pad`. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload_pad)(const float *p, size_t i, size_t n, float pad) {
    if (i + CK_VL <= n) return CK_FN(ck_vload)(p + i);
    CK_VEC v = CK_VSPLAT(pad);
    for (size_t j = i; j < n; j++) v[j - i] = p[j];
    return v;
}

void CK_FN(ck_f32_softmax_rows)(size_t rows, size_t n, const float *x, size_t ldx, float *y,
                                size_t ldy, float scale, const float *mask, size_t ldmask) {
    const float ninf = -__builtin_inff();
    const CK_VEC vscale = CK_VSPLAT(scale);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        const float *mr = mask ? mask + r * ldmask : NULL;
        /* Pass 1: max of the terms, and whether any is NaN. */
        CK_VEC vmax = CK_VSPLAT(ninf);
        CK_IVEC nan = CK_ISPLAT(0);
        for (size_t i = 0; i < n; i += CK_VL) {
            /* Scale and mask first, then pad: padding -inf before a scale <= 0 would turn
             * into +inf or NaN. */
            CK_VEC t = CK_FN(ck_vload_pad)(xr, i, n, 0.0f) * vscale;
            if (mr) t += CK_FN(ck_vload_pad)(mr, i, n, 0.0f);
            for (size_t j = n > i ? n - i : 0; j < CK_VL; j++) t[j] = ninf;
            nan |= t != t;
            vmax = CK_FN(ck_vmax)(vmax, t);
        }
        int any_nan = 0;
        for (int i = 0; i < CK_VL; i++) any_nan |= nan[i] != 0;
        const float m = CK_FN(ck_hmax)(vmax);
        if (any_nan || m == ninf) {
            /* NaN in, NaN out; a row with nothing to attend to is all zeros, never NaN. */
            const float fill = any_nan ? __builtin_nanf("") : 0.0f;
            for (size_t i = 0; i < n; i++) yr[i] = fill;
            continue;
        }
        /* Pass 2: e = exp(t - max), stored, and summed. */
        const CK_VEC vm = CK_VSPLAT(m);
        CK_VEC vsum = (CK_VEC){0};
        for (size_t i = 0; i < n; i += CK_VL) {
            /* Scale and mask first, then pad: padding -inf before a scale <= 0 would turn
             * into +inf or NaN. */
            CK_VEC t = CK_FN(ck_vload_pad)(xr, i, n, 0.0f) * vscale;
            if (mr) t += CK_FN(ck_vload_pad)(mr, i, n, 0.0f);
            for (size_t j = n > i ? n - i : 0; j < CK_VL; j++) t[j] = ninf;
            CK_VEC e = CK_FN(ck_vexp_nonpos)(t - vm);
            if (i + CK_VL <= n) {
                CK_FN(ck_vstore)(yr + i, e);
            } else {
                for (size_t j = i; j < n; j++) yr[j] = e[j - i];
                for (size_t j = n - i; j < CK_VL; j++) e[j] = 0.0f;
            }
            vsum += e;
        }
        /* Pass 3: normalize (the row is in L1 now). sum >= 1: the max term contributes 1. */
        const CK_VEC vinv = CK_VSPLAT(1.0f / CK_FN(ck_hsum)(vsum));
        size_t i = 0;
        for (; i + CK_VL <= n; i += CK_VL) CK_FN(ck_vstore)(yr + i, CK_FN(ck_vload)(yr + i) * vinv);
        for (; i < n; i++) yr[i] *= vinv[0];
    }
}

/* y = alpha * W x + beta * y for W [n, k] row-major (contract in attend_kernels.h). Four
 * rows at a time share each load of x; each row's dot product runs in one vector accumulator
 * and is reduced at the end, then the k % VL tail is added in order. */
void CK_FN(ck_f32_gemv)(size_t n, size_t k, float alpha, const float *x, const float *w,
                        size_t ldw, float beta, float *y) {
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
                a2 = CK_VFMA2(CK_FN(ck_vload)(x + p + 2 * CK_VL), CK_FN(ck_vload)(wr + p + 2 * CK_VL), a2);
                a3 = CK_VFMA2(CK_FN(ck_vload)(x + p + 3 * CK_VL), CK_FN(ck_vload)(wr + p + 3 * CK_VL), a3);
            }
            for (; p < kv; p += CK_VL) a0 = CK_VFMA2(CK_FN(ck_vload)(x + p), CK_FN(ck_vload)(wr + p), a0);
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
        float d[4] = {CK_FN(ck_hsum)(a0), CK_FN(ck_hsum)(a1), CK_FN(ck_hsum)(a2), CK_FN(ck_hsum)(a3)};
        for (size_t p = kv; p < k; p++) {
            d[0] += x[p] * w0[p];
            d[1] += x[p] * w1[p];
            d[2] += x[p] * w2[p];
            d[3] += x[p] * w3[p];
        }
        for (int r = 0; r < 4; r++) y[j + r] = beta == 0.0f ? alpha * d[r] : alpha * d[r] + beta * y[j + r];
    }
    for (; j < n; j++) {
        const float *wr = w + j * ldw;
        CK_VEC a = (CK_VEC){0};
        for (size_t p = 0; p < kv; p += CK_VL) a = CK_VFMA2(CK_FN(ck_vload)(x + p), CK_FN(ck_vload)(wr + p), a);
        float d = CK_FN(ck_hsum)(a);
        for (size_t p = kv; p < k; p++) d += x[p] * wr[p];
        y[j] = beta == 0.0f ? alpha * d : alpha * d + beta * y[j];
    }
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
                *out = beta == 0.0f ? alpha * acc[v][t] : alpha * acc[v][t] + beta * *out;
            }
    }
    for (; d + CK_VL <= n; d += CK_VL) {
        CK_VEC a = (CK_VEC){0};
        for (size_t j = 0; j < k; j++) a = CK_VFMA2(CK_VSPLAT(x[j]), CK_FN(ck_vload)(w + j * ldw + d), a);
        for (int t = 0; t < CK_VL; t++) {
            float *out = y + d + (size_t)t;
            *out = beta == 0.0f ? alpha * a[t] : alpha * a[t] + beta * *out;
        }
    }
    for (; d < n; d++) {
        float a = 0.0f;
#if defined(CK_NO_FMA)
        for (size_t j = 0; j < k; j++) a = x[j] * w[j * ldw + d] + a;
#else
        for (size_t j = 0; j < k; j++) a = __builtin_fmaf(x[j], w[j * ldw + d], a);
#endif
        y[d] = beta == 0.0f ? alpha * a : alpha * a + beta * y[d];
    }
}

/* erfc(x) for x >= 0 (Numerical Recipes' erfcc: fractional error < 1.2e-7). */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_verfc_nonneg)(CK_VEC z) {
    const CK_VEC one = CK_VSPLAT(1.0f);
    CK_VEC t = one / CK_VFMA2(z, CK_VSPLAT(0.5f), one);
    CK_VEC p = CK_VSPLAT(0.17087277f);
    p = CK_VFMA2(p, t, CK_VSPLAT(-0.82215223f));
    p = CK_VFMA2(p, t, CK_VSPLAT(1.48851587f));
    p = CK_VFMA2(p, t, CK_VSPLAT(-1.13520398f));
    p = CK_VFMA2(p, t, CK_VSPLAT(0.27886807f));
    p = CK_VFMA2(p, t, CK_VSPLAT(-0.18628806f));
    p = CK_VFMA2(p, t, CK_VSPLAT(0.09678418f));
    p = CK_VFMA2(p, t, CK_VSPLAT(0.37409196f));
    p = CK_VFMA2(p, t, CK_VSPLAT(1.00002368f));
    p = CK_VFMA2(p, t, CK_VSPLAT(-1.26551223f));
    return t * CK_FN(ck_vexp)(p - z * z);
}

static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vactivation)(int kind, CK_VEC x) {
    const CK_VEC zero = (CK_VEC){0}, one = CK_VSPLAT(1.0f), half = CK_VSPLAT(0.5f);
    switch (kind) {
    case CK_ACT_RELU:
        return CK_VSELECT(x < zero, zero, x); /* NaN < 0 is false: NaN stays NaN */
    case CK_ACT_GELU: {
        /* x >= 0: x * (1 - erfc(x/sqrt2)/2); x < 0: x * erfc(-x/sqrt2)/2. */
        CK_IVEC neg = x < zero;
        CK_VEC z = CK_VSELECT(neg, -x, x) * CK_VSPLAT(0.70710678118654752f);
        CK_VEC e = CK_FN(ck_verfc_nonneg)(z) * half;
        return x * CK_VSELECT(neg, e, one - e);
    }
    case CK_ACT_GELU_TANH: {
        /* 1 + tanh(u) = 2 / (1 + exp(-2u)), so y = x / (1 + exp(-2u)). */
        CK_VEC u = CK_VSPLAT(0.79788456080286536f) * CK_VFMA2(CK_VSPLAT(0.044715f) * x, x * x, x);
        return x / (one + CK_FN(ck_vexp)(CK_VSPLAT(-2.0f) * u));
    }
    default: /* CK_ACT_SILU */
        return x / (one + CK_FN(ck_vexp)(-x));
    }
}

void CK_FN(ck_f32_activation)(int kind, size_t n, const float *x, float *y) {
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL)
        CK_FN(ck_vstore)(y + i, CK_FN(ck_vactivation)(kind, CK_FN(ck_vload)(x + i)));
    if (i < n) {
        float buf[CK_VL] = {0};
        memcpy(buf, x + i, (n - i) * sizeof(float));
        CK_FN(ck_vstore)(buf, CK_FN(ck_vactivation)(kind, CK_FN(ck_vload)(buf)));
        memcpy(y + i, buf, (n - i) * sizeof(float));
    }
}

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
        for (; i < n; i++) yr[i] = (yr[i] - mean) * rstd * gamma[i] + (beta && !rms ? beta[i] : 0.0f);
    }
}

/* The online-softmax step of the fused attention (contract in attend_kernels.h). The tile
 * has CK_NQ = CK_ANV vectors of queries per key row. */
#define CK_NQ (CK_ANV * CK_VL)
void CK_FN(ck_f32_attn_softmax_step)(size_t rows, size_t valid_rows, float *s, float *m,
                                     float *l, float *corr, size_t key0, size_t query0,
                                     const ck_attention_head *h) {
    const float ninf = -__builtin_inff();
    const CK_VEC vninf = CK_VSPLAT(ninf);
    CK_VEC bmax[CK_ANV];
    CK_IVEC qidx[CK_ANV];
    for (int j = 0; j < CK_ANV; j++) {
        bmax[j] = vninf;
        for (int lane = 0; lane < CK_VL; lane++) qidx[j][lane] = (int)(query0 + (size_t)(j * CK_VL + lane));
    }
    const int masked = h->key_bias || h->rel_bias || h->causal;
    /* Pass 1: biases and masks (in place), block max per query. */
    for (size_t r = 0; r < rows; r++) {
        float *row = s + r * CK_NQ;
        if (r >= valid_rows) {
            for (int j = 0; j < CK_ANV; j++) CK_FN(ck_vstore)(row + j * CK_VL, vninf);
            continue;
        }
        const size_t key = key0 + r;
        if (!masked) {
            for (int j = 0; j < CK_ANV; j++) bmax[j] = CK_FN(ck_vmax)(bmax[j], CK_FN(ck_vload)(row + j * CK_VL));
            continue;
        }
        const float kb = h->key_bias ? h->key_bias[key] : 0.0f;
        /* rel_bias[(i - key) + zero] for the lanes' queries i: contiguous in i. */
        const float *rel = h->rel_bias ? h->rel_bias + ((ptrdiff_t)query0 - (ptrdiff_t)key + h->rel_bias_zero) : NULL;
        const CK_IVEC lim = CK_ISPLAT((int)((ptrdiff_t)key - h->causal_offset));
        for (int j = 0; j < CK_ANV; j++) {
            CK_VEC v = CK_FN(ck_vload)(row + j * CK_VL) + kb;
            if (rel) v += CK_FN(ck_vload)(rel + j * CK_VL);
            if (h->causal) v = CK_VSELECT(qidx[j] >= lim, v, vninf);
            CK_FN(ck_vstore)(row + j * CK_VL, v);
            bmax[j] = CK_FN(ck_vmax)(bmax[j], v);
        }
    }
    /* New running max; a query that has seen only -inf so far uses 0 so that exp gives 0. */
    CK_VEC muse[CK_ANV], lsum[CK_ANV];
    for (int j = 0; j < CK_ANV; j++) {
        CK_VEC mold = CK_FN(ck_vload)(m + j * CK_VL);
        CK_VEC mnew = CK_FN(ck_vmax)(mold, bmax[j]);
        muse[j] = CK_VSELECT(mnew == vninf, (CK_VEC){0}, mnew);
        CK_FN(ck_vstore)(corr + j * CK_VL, CK_FN(ck_vexp_nonpos)(mold - muse[j]));
        CK_FN(ck_vstore)(m + j * CK_VL, mnew);
        lsum[j] = (CK_VEC){0};
    }
    /* Pass 2: p = exp(s - m), in place (this tile is the next GEMM's packed B panel). */
    for (size_t r = 0; r < rows; r++) {
        float *row = s + r * CK_NQ;
        for (int j = 0; j < CK_ANV; j++) {
            CK_VEC p = CK_FN(ck_vexp_nonpos)(CK_FN(ck_vload)(row + j * CK_VL) - muse[j]);
            CK_FN(ck_vstore)(row + j * CK_VL, p);
            lsum[j] += p;
        }
    }
    for (int j = 0; j < CK_ANV; j++) {
        CK_VEC c = CK_FN(ck_vload)(corr + j * CK_VL);
        CK_FN(ck_vstore)(l + j * CK_VL, CK_FN(ck_vload)(l + j * CK_VL) * c + lsum[j]);
    }
}
#undef CK_NQ
#undef CK_VFMA2
