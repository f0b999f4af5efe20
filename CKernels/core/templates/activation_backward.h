/*
 * Activation backward passes (contracts in attend_kernels_backward.h): the derivative of each
 * CK_ACT_* kind of activation.h, alone (dx = dy * f'(x)) and for gated units (y = f(a) * b).
 * Instantiated per ISA by variant.h, after activation.h (whose erfc it shares).
 */
/* f(x) and f'(x) of one vector (relu is handled by the callers: exact selects). */
static inline __attribute__((always_inline)) void CK_FN(ck_vact_and_grad)(int kind, CK_VEC x,
                                                                          CK_VEC *f, CK_VEC *df) {
    const CK_VEC zero = (CK_VEC){0}, one = CK_VSPLAT(1.0f), half = CK_VSPLAT(0.5f);
    switch (kind) {
    case CK_ACT_GELU: {
        /* Phi(x) through erfc on the side where it does not cancel; phi = exp(-x^2/2)/sqrt(2pi) */
        CK_IVEC neg = x < zero;
        CK_VEC z = CK_VSELECT(neg, -x, x) * CK_VSPLAT(0.70710678118654752f);
        CK_VEC e = CK_FN(ck_verfc_nonneg)(z) * half;
        CK_VEC cdf = CK_VSELECT(neg, e, one - e);
        CK_VEC pdf = CK_FN(ck_vexp)(CK_VSPLAT(-0.5f) * (x * x)) * CK_VSPLAT(0.39894228040143268f);
        *f = x * cdf;
        *df = CK_VFMA2(x, pdf, cdf);
        return;
    }
    case CK_ACT_GELU_TANH: {
        /* s = (1 + tanh u)/2 = 1 / (1 + e), e = exp(-2u); f' = s + 2 (x s) (1 - s) k (1 + 3c x^2),
         * with 1 - s = e s (no cancellation as s -> 1; 1 where e overflowed and s == 0) */
        const CK_VEC k = CK_VSPLAT(0.79788456080286536f), c = CK_VSPLAT(0.044715f);
        CK_VEC x2 = x * x;
        CK_VEC u = k * CK_VFMA2(c * x, x2, x);
        CK_VEC e = CK_FN(ck_vexp)(CK_VSPLAT(-2.0f) * u);
        CK_VEC s = one / (one + e);
        CK_VEC oms = CK_VSELECT(s == zero, one, e * s);
        CK_VEC q = x * s;
        CK_VEC dk = k * CK_VFMA2(CK_VSPLAT(3.0f * 0.044715f), x2, one);
        *f = q;
        *df = CK_VFMA2(CK_VSPLAT(2.0f) * q * oms, dk, s);
        return;
    }
    default: { /* CK_ACT_SILU: f' = s + (x s)(1 - s), 1 - s = e s with e = exp(-x) */
        CK_VEC e = CK_FN(ck_vexp)(-x);
        CK_VEC s = one / (one + e);
        CK_VEC oms = CK_VSELECT(s == zero, one, e * s);
        CK_VEC q = x * s;
        *f = q;
        *df = CK_VFMA2(q, oms, s);
        return;
    }
    }
}

static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vact_backward)(int kind, CK_VEC x,
                                                                            CK_VEC dy) {
    if (kind == CK_ACT_RELU) /* PyTorch's threshold_backward: 0 where x <= 0, else dy as is */
        return CK_VSELECT(x <= (CK_VEC){0}, (CK_VEC){0}, dy);
    CK_VEC f, df;
    CK_FN(ck_vact_and_grad)(kind, x, &f, &df);
    return dy * df;
}

void CK_FN(ck_f32_activation_backward)(int kind, size_t n, const float *x, const float *dy,
                                       float *dx) {
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL) CK_FN(ck_vstore)
    (dx + i, CK_FN(ck_vact_backward)(kind, CK_FN(ck_vload)(x + i), CK_FN(ck_vload)(dy + i)));
    if (i < n) {
        float bx[CK_VL] = {0}, bd[CK_VL] = {0};
        memcpy(bx, x + i, (n - i) * sizeof(float));
        memcpy(bd, dy + i, (n - i) * sizeof(float));
        CK_FN(ck_vstore)
        (bd, CK_FN(ck_vact_backward)(kind, CK_FN(ck_vload)(bx), CK_FN(ck_vload)(bd)));
        memcpy(dx + i, bd, (n - i) * sizeof(float));
    }
}

/* da = dy * b * f'(a), db = dy * f(a) of one vector. */
static inline __attribute__((always_inline)) void
CK_FN(ck_vgated_backward)(int kind, CK_VEC a, CK_VEC b, CK_VEC dy, CK_VEC *da, CK_VEC *db) {
    if (kind == CK_ACT_RELU) {
        const CK_VEC zero = (CK_VEC){0};
        *da = CK_VSELECT(a <= zero, zero, dy * b);
        *db = dy * CK_VSELECT(a < zero, zero, a); /* the forward's relu: NaN stays NaN */
        return;
    }
    CK_VEC f, df;
    CK_FN(ck_vact_and_grad)(kind, a, &f, &df);
    *da = dy * b * df;
    *db = dy * f;
}

void CK_FN(ck_f32_gated_backward)(int kind, size_t n, const float *a, const float *b,
                                  const float *dy, float *da, float *db) {
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL) {
        CK_VEC va, vb;
        CK_FN(ck_vgated_backward)
        (kind, CK_FN(ck_vload)(a + i), CK_FN(ck_vload)(b + i), CK_FN(ck_vload)(dy + i), &va, &vb);
        CK_FN(ck_vstore)(da + i, va);
        CK_FN(ck_vstore)(db + i, vb);
    }
    if (i < n) {
        const size_t bytes = (n - i) * sizeof(float);
        float ba[CK_VL] = {0}, bb[CK_VL] = {0}, bd[CK_VL] = {0};
        memcpy(ba, a + i, bytes);
        memcpy(bb, b + i, bytes);
        memcpy(bd, dy + i, bytes);
        CK_VEC va, vb;
        CK_FN(ck_vgated_backward)
        (kind, CK_FN(ck_vload)(ba), CK_FN(ck_vload)(bb), CK_FN(ck_vload)(bd), &va, &vb);
        CK_FN(ck_vstore)(ba, va);
        CK_FN(ck_vstore)(bb, vb);
        memcpy(da + i, ba, bytes);
        memcpy(db + i, bb, bytes);
    }
}
