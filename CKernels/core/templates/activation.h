/*
 * Element-wise activations (contract in attend_kernels.h): CK_FN(ck_f32_activation) with ReLU,
 * exact GELU (through erfc), tanh GELU and SiLU on the vector exp. Instantiated per ISA by
 * variant.h.
 */
/* erfc(z) for z >= 0 as t Q(t) exp(-z^2), t = 1/(1 + z/2) in (0, 1]: Q(t) = erfcx(z)/t
 * (erfcx(z) = erfc(z) exp(z^2)) is smooth in t, from 1 at z = 0 to 1/(2 sqrt(pi)) as z grows,
 * and a degree-8 polynomial fitted to it over t in [0.17, 1] (z <= 9.76; beyond z = 9.3,
 * exp(-z^2) < 2^-126) errs by < 6.4e-8 relative with its float32 coefficients (by Estrin's
 * scheme in float32: < 2.2e-7 = 3.6u), against the 1.2e-7 of Numerical Recipes' erfcc that
 * this replaced (t exp(P(t) - z^2), P of degree 9 by Horner). exp(-z^2) depends on z alone, so
 * it runs beside the division and the polynomial instead of after them: on one Zen 3 core
 * (AVX2, in cache) 1.51 -> 0.98 ns an element, the dependency chain (~86 cycles a vector,
 * more than the reorder window holds) having been the limit, not the operation count.
 * ck_vexp_nonpos: -z^2 <= 0; AVX-512's rounds results below 2^-126 once, the other variants'
 * flush them (z > 9.33, |x| > 13.19, where |GELU(x)| < 2^-126: inside the bound's |x| 2^-51;
 * the two-step exp before kept these subnormal results on every variant). With
 * CK_VRCP (an approximate reciprocal, AVX-512's 14-bit one) t takes one Newton step instead
 * of a division (relative error ~2^-28 before rounding). */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_verfc_nonneg)(CK_VEC z) {
    const CK_VEC one = CK_VSPLAT(1.0f);
    const CK_VEC e = CK_FN(ck_vexp_nonpos)(-(z * z));
#ifdef CK_VRCP
    const CK_VEC den = CK_VFMA2(z, CK_VSPLAT(0.5f), one);
    const CK_VEC r0 = CK_VRCP(den);
    const CK_VEC t = CK_VFMA2(r0, CK_VFMA2(-den, r0, one), r0);
#else
    const CK_VEC t = one / CK_VFMA2(z, CK_VSPLAT(0.5f), one);
#endif
    const CK_VEC t2 = t * t, t4 = t2 * t2, t8 = t4 * t4;
    const CK_VEC a0 = CK_VFMA2(t, CK_VSPLAT(0.282366086f), CK_VSPLAT(0.282086948f));
    const CK_VEC a1 = CK_VFMA2(t, CK_VSPLAT(0.202425032f), CK_VSPLAT(0.243170364f));
    const CK_VEC a2 = CK_VFMA2(t, CK_VSPLAT(0.277178218f), CK_VSPLAT(-0.0260102787f));
    const CK_VEC a3 = CK_VFMA2(t, CK_VSPLAT(0.284202746f), CK_VSPLAT(-0.486426229f));
    const CK_VEC q = CK_VFMA2(CK_VSPLAT(-0.0589929291f), t8, CK_VFMA2(CK_VFMA2(a3, t2, a2), t4, CK_VFMA2(a1, t2, a0)));
    return (t * q) * e;
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
