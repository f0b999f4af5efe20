/*
 * Element-wise activations (contract in attend_kernels.h): CK_FN(ck_f32_activation) with ReLU,
 * exact GELU (through erfc), tanh GELU and SiLU on the vector exp. Instantiated per ISA by
 * variant.h.
 */
/* erfc(x) for x >= 0 (Numerical Recipes' erfcc: fractional error < 1.2e-7). With CK_VRCP
 * (an approximate reciprocal, AVX-512's 14-bit one) t takes one Newton step instead of a
 * division (relative error ~2^-28 before rounding), and with CK_VSCALEF the exp is the one
 * scaling step of ck_vexp_nonpos (its argument is <= 0 up to rounding: erfc(z) (1 + z/2) <= 1;
 * results below 2^-126 are still rounded once, not flushed): a third fewer operations than
 * the division and the two-step exp, same bound in the tests. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_verfc_nonneg)(CK_VEC z) {
    const CK_VEC one = CK_VSPLAT(1.0f);
#ifdef CK_VRCP
    const CK_VEC den = CK_VFMA2(z, CK_VSPLAT(0.5f), one);
    const CK_VEC r0 = CK_VRCP(den);
    CK_VEC t = CK_VFMA2(r0, CK_VFMA2(-den, r0, one), r0);
#else
    CK_VEC t = one / CK_VFMA2(z, CK_VSPLAT(0.5f), one);
#endif
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
#ifdef CK_VSCALEF
    return t * CK_FN(ck_vexp_nonpos)(CK_VFMA2(-z, z, p));
#else
    return t * CK_FN(ck_vexp)(p - z * z);
#endif
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
