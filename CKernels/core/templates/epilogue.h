/*
 * The GEMM epilogue on a block of C (contract: ck_kernels.gemm_epilogue in attend_kernels.h):
 * c = act(c + bias) + residual in one pass over each row, in the variant's vectors, with the
 * activation of templates/activation.h inlined (its kind a constant in each specialized
 * loop). Per element the operations and their order are those of an add, the activation
 * kernel and an add, so the result is the same bits as those three passes. Instantiated per
 * ISA by variant.h (after activation.h).
 */
static inline __attribute__((always_inline)) void CK_FN(ck_epilogue_rows)(
    int kind, const float *bias, const float *res, size_t ldr, size_t rows, size_t cols, float *c,
    size_t ldc) {
    for (size_t i = 0; i < rows; i++) {
        float *crow = c + i * ldc;
        const float *r = res ? res + i * ldr : NULL;
        size_t j = 0;
        for (; j + CK_VL <= cols; j += CK_VL) {
            CK_VEC v = CK_FN(ck_vload)(crow + j);
            if (bias) v = v + CK_FN(ck_vload)(bias + j);
            if (kind != CK_ACT_NONE) v = CK_FN(ck_vactivation)(kind, v);
            if (r) v = v + CK_FN(ck_vload)(r + j);
            CK_FN(ck_vstore)(crow + j, v);
        }
        if (j < cols) {
            /* The tail through zero-padded vectors (lanes past cols are never stored). */
            const size_t n = cols - j;
            float cb[CK_VL] = {0}, bb[CK_VL] = {0}, rb[CK_VL] = {0};
            memcpy(cb, crow + j, n * sizeof(float));
            CK_VEC v = CK_FN(ck_vload)(cb);
            if (bias) {
                memcpy(bb, bias + j, n * sizeof(float));
                v = v + CK_FN(ck_vload)(bb);
            }
            if (kind != CK_ACT_NONE) v = CK_FN(ck_vactivation)(kind, v);
            if (r) {
                memcpy(rb, r + j, n * sizeof(float));
                v = v + CK_FN(ck_vload)(rb);
            }
            CK_FN(ck_vstore)(cb, v);
            memcpy(crow + j, cb, n * sizeof(float));
        }
    }
}

void CK_FN(ck_f32_gemm_epilogue)(const struct ck_gemm_epilogue *ep, size_t row0, size_t col0,
                                 size_t rows, size_t cols, float *c, size_t ldc) {
    const float *bias = ep->bias ? ep->bias + col0 : NULL;
    const float *res = ep->residual ? ep->residual + row0 * ep->ldr + col0 : NULL;
    const size_t ldr = ep->ldr;
    switch (ep->activation) {
    case CK_ACT_NONE:
        CK_FN(ck_epilogue_rows)(CK_ACT_NONE, bias, res, ldr, rows, cols, c, ldc);
        break;
    case CK_ACT_RELU:
        CK_FN(ck_epilogue_rows)(CK_ACT_RELU, bias, res, ldr, rows, cols, c, ldc);
        break;
    case CK_ACT_GELU:
        CK_FN(ck_epilogue_rows)(CK_ACT_GELU, bias, res, ldr, rows, cols, c, ldc);
        break;
    case CK_ACT_GELU_TANH:
        CK_FN(ck_epilogue_rows)(CK_ACT_GELU_TANH, bias, res, ldr, rows, cols, c, ldc);
        break;
    default: /* CK_ACT_SILU */
        CK_FN(ck_epilogue_rows)(CK_ACT_SILU, bias, res, ldr, rows, cols, c, ldc);
        break;
    }
}
