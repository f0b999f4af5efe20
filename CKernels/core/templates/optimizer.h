/*
 * Optimizer steps and gradient-norm helpers (contracts in attend_kernels_backward.h):
 * CK_FN(ck_f32_adamw), CK_FN(ck_f32_sgd), CK_FN(ck_f32_sum_squares), CK_FN(ck_f32_scale).
 * Every expression is written in PyTorch's float32 operation order (see the header), with
 * CK_VFMA2 exactly where PyTorch's CPU kernels fuse, so nothing is left to contraction.
 * Instantiated per ISA by variant.h.
 */
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

/* Lane-wise square root (IEEE, correctly rounded). */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vsqrt)(CK_VEC x) {
#if defined(__has_builtin) && __has_builtin(__builtin_elementwise_sqrt)
    return __builtin_elementwise_sqrt(x);
#else
    for (int i = 0; i < CK_VL; i++) x[i] = __builtin_sqrtf(x[i]);
    return x;
#endif
}

/* One AdamW element vector (header order); small: the lerp weight is below 1/2. */
static inline __attribute__((always_inline)) void CK_FN(ck_adamw_vec)(CK_VEC *p, CK_VEC g,
                                                                      CK_VEC *m, CK_VEC *v,
                                                                      int decay, int small,
                                                                      const ck_adamw_params *h) {
    CK_VEC pv = *p;
    if (decay) pv = pv * CK_VSPLAT(h->decay);
    const CK_VEC w = CK_VSPLAT(h->beta1_weight);
    const CK_VEC diff = g - *m;
    *m = small ? CK_VFMA2(w, diff, *m) : CK_VFMA2(w - CK_VSPLAT(1.0f), diff, g);
    const CK_VEC g2 = CK_VSPLAT(h->one_minus_beta2) * g;
    *v = CK_VFMA2(g2, g, *v * CK_VSPLAT(h->beta2));
    const CK_VEC denom = CK_FN(ck_vsqrt)(*v) / CK_VSPLAT(h->bias2_sqrt) + CK_VSPLAT(h->eps);
    *p = pv + (CK_VSPLAT(h->neg_step_size) * *m) / denom;
}

void CK_FN(ck_f32_adamw)(size_t n, float *param, const float *grad, float *m, float *v,
                         const ck_adamw_params *h) {
    const int decay = h->decay != 1.0f;
    /* PyTorch's lerp: |weight| < 0.5 takes the form anchored at m, else the one anchored at g */
    const int small = __builtin_fabsf(h->beta1_weight) < 0.5f;
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL) {
        CK_VEC pv = CK_FN(ck_vload)(param + i), mv = CK_FN(ck_vload)(m + i),
               vv = CK_FN(ck_vload)(v + i);
        CK_FN(ck_adamw_vec)(&pv, CK_FN(ck_vload)(grad + i), &mv, &vv, decay, small, h);
        CK_FN(ck_vstore)(param + i, pv);
        CK_FN(ck_vstore)(m + i, mv);
        CK_FN(ck_vstore)(v + i, vv);
    }
    if (i < n) {
        float bp[CK_VL] = {0}, bg[CK_VL] = {0}, bm[CK_VL] = {0}, bv[CK_VL] = {0};
        const size_t t = (n - i) * sizeof(float);
        memcpy(bp, param + i, t);
        memcpy(bg, grad + i, t);
        memcpy(bm, m + i, t);
        memcpy(bv, v + i, t);
        CK_VEC pv = CK_FN(ck_vload)(bp), mv = CK_FN(ck_vload)(bm), vv = CK_FN(ck_vload)(bv);
        CK_FN(ck_adamw_vec)(&pv, CK_FN(ck_vload)(bg), &mv, &vv, decay, small, h);
        CK_FN(ck_vstore)(bp, pv);
        CK_FN(ck_vstore)(bm, mv);
        CK_FN(ck_vstore)(bv, vv);
        memcpy(param + i, bp, t);
        memcpy(m + i, bm, t);
        memcpy(v + i, bv, t);
    }
}

/* One SGD element vector (header order). */
static inline __attribute__((always_inline)) CK_VEC
CK_FN(ck_sgd_vec)(CK_VEC p, CK_VEC g, CK_VEC *buf, const ck_sgd_params *h) {
    if (h->weight_decay != 0.0f) g = CK_VFMA2(p, CK_VSPLAT(h->weight_decay), g);
    if (h->momentum != 0.0f) {
        const CK_VEC mom = CK_VSPLAT(h->momentum);
        *buf = h->first_step ? g : CK_VFMA2(g, CK_VSPLAT(h->dampening_weight), *buf * mom);
        g = h->nesterov ? CK_VFMA2(*buf, mom, g) : *buf;
    }
    return CK_VFMA2(g, CK_VSPLAT(h->neg_lr), p);
}

void CK_FN(ck_f32_sgd)(size_t n, float *param, const float *grad, float *buf,
                       const ck_sgd_params *h) {
    const int mom = h->momentum != 0.0f;
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL) {
        CK_VEC b = mom && !h->first_step ? CK_FN(ck_vload)(buf + i) : (CK_VEC){0};
        CK_VEC p = CK_FN(ck_sgd_vec)(CK_FN(ck_vload)(param + i), CK_FN(ck_vload)(grad + i), &b, h);
        CK_FN(ck_vstore)(param + i, p);
        if (mom) CK_FN(ck_vstore)(buf + i, b);
    }
    if (i < n) {
        float bp[CK_VL] = {0}, bg[CK_VL] = {0}, bb[CK_VL] = {0};
        const size_t t = (n - i) * sizeof(float);
        memcpy(bp, param + i, t);
        memcpy(bg, grad + i, t);
        if (mom && !h->first_step) memcpy(bb, buf + i, t);
        CK_VEC b = CK_FN(ck_vload)(bb);
        CK_FN(ck_vstore)(bp, CK_FN(ck_sgd_vec)(CK_FN(ck_vload)(bp), CK_FN(ck_vload)(bg), &b, h));
        CK_FN(ck_vstore)(bb, b);
        memcpy(param + i, bp, t);
        if (mom) memcpy(buf + i, bb, t);
    }
}

double CK_FN(ck_f32_sum_squares)(size_t n, const float *x) {
    typedef double vd __attribute__((vector_size(CK_VL * sizeof(double))));
    vd a0 = (vd){0}, a1 = (vd){0};
    size_t i = 0;
    for (; i + 2 * CK_VL <= n; i += 2 * CK_VL) {
        vd d0 = __builtin_convertvector(CK_FN(ck_vload)(x + i), vd);
        vd d1 = __builtin_convertvector(CK_FN(ck_vload)(x + i + CK_VL), vd);
        a0 += d0 * d0; /* exact: a float's square fits in a double */
        a1 += d1 * d1;
    }
    a0 += a1;
    double s = 0;
    for (int l = 0; l < CK_VL; l++) s += a0[l];
    for (; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

void CK_FN(ck_f32_scale)(size_t n, float s, float *x) {
    const CK_VEC vs = CK_VSPLAT(s);
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL) CK_FN(ck_vstore)(x + i, CK_FN(ck_vload)(x + i) * vs);
    for (; i < n; i++) x[i] *= s;
}

#if defined(__clang__)
#pragma clang fp contract(on)
#endif
