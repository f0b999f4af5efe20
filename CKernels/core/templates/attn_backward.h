/*
 * The attention backward's per-tile step (contract: ck_f32_attn_grad_step_fn in
 * attend_attention_backward.h), on the primitives of vector_ops.h. Instantiated per ISA by
 * variant.h as CK_FN(ck_f32_attn_grad_step); a panel is CK_NV vectors of queries (nr).
 *
 * Per key row of the tile, lanes across queries: s += key_bias + rel_bias, causal mask,
 * P = exp(s - lse) (s - lse <= 0 up to rounding: lse >= the row max), dS = P (dP - delta).
 */
#include "attend_attention_backward.h"

#define CK_NQ (CK_NV * CK_VL)
void CK_FN(ck_f32_attn_grad_step)(size_t rows, size_t valid_rows, float *p, float *ds, size_t key0,
                                  size_t query0, const ck_attention_grad_head *g, const float *lse,
                                  const float *delta) {
    const CK_VEC vzero = (CK_VEC){0}, vninf = CK_VSPLAT(-__builtin_inff());
    CK_VEC vlse[CK_NV], vdelta[CK_NV];
    CK_IVEC qidx[CK_NV];
    for (int j = 0; j < CK_NV; j++) {
        vlse[j] = CK_FN(ck_vload)(lse + j * CK_VL);
        vdelta[j] = CK_FN(ck_vload)(delta + j * CK_VL);
        for (int lane = 0; lane < CK_VL; lane++)
            qidx[j][lane] = (int)(query0 + (size_t)(j * CK_VL + lane));
    }
    const int masked = g->key_bias || g->rel_bias || g->causal;
    for (size_t r = 0; r < rows; r++) {
        float *pr = p + r * CK_NQ, *dr = ds + r * CK_NQ;
        if (r >= valid_rows) {
            for (int j = 0; j < CK_NV; j++) {
                CK_FN(ck_vstore)(pr + j * CK_VL, vzero);
                CK_FN(ck_vstore)(dr + j * CK_VL, vzero);
            }
            continue;
        }
        const size_t key = key0 + r;
        const ptrdiff_t rel0 = (ptrdiff_t)query0 - (ptrdiff_t)key + g->rel_bias_zero;
        const float kb = g->key_bias ? g->key_bias[key] : 0.0f;
        const CK_IVEC lim = CK_ISPLAT((int)((ptrdiff_t)key - g->causal_offset));
        for (int j = 0; j < CK_NV; j++) {
            CK_VEC s = CK_FN(ck_vload)(pr + j * CK_VL);
            if (masked) {
                s += kb;
                if (g->rel_bias) s += CK_FN(ck_vload)(g->rel_bias + rel0 + j * CK_VL);
                if (g->causal) s = CK_VSELECT(qidx[j] >= lim, s, vninf);
            }
            CK_VEC x = s - vlse[j];
            x = CK_VSELECT(x > vzero, vzero, x);
            const CK_VEC pv = CK_FN(ck_vexp_nonpos)(x);
            const CK_VEC dv = pv * (CK_FN(ck_vload)(dr + j * CK_VL) - vdelta[j]);
            CK_FN(ck_vstore)(pr + j * CK_VL, pv);
            CK_FN(ck_vstore)(dr + j * CK_VL, dv);
            if (g->d_rel_bias) {
                float *t = g->d_rel_bias + rel0 + j * CK_VL;
                CK_FN(ck_vstore)(t, CK_FN(ck_vload)(t) + dv);
            }
        }
    }
}
#undef CK_NQ
