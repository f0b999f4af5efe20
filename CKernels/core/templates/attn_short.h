/*
 * Short attention (a sentence: the ck_f32_attention_short contract in attend_kernels.h), one
 * head with Q, K and V read in place from their strided rows. Instantiated per ISA by
 * variant.h as CK_FN(ck_f32_attn_short); core/attention.c handles the empty cases and the
 * workspace alignment and calls it through the table (attn_short).
 *
 *   kn   = seq_k less the trailing keys key_bias masks (-inf): a padded batch row attends to
 *          its real keys only, and key vectors past them are never computed
 *   K^T  = kt[d][j] (D x skp, skp = kn rounded up to CK_VL, zeros past kn): the one copy
 *   per block of CK_SHORT_ROWS queries (the last block repeats its last row, not stored):
 *     S  = Q_blk K^T      registers: rows x up to CK_SHORT_NV key vectors, q broadcast from
 *                         the query rows in place, K^T vectors loaded
 *     P  = exp(S * scale + bias - rowmax), l = row sum   (the block's rows of skp in L1; every
 *                         key of the row is there, so no running max and no rescaling)
 *     O  = (P V) / l      registers: rows x up to CK_SHORT_NV vectors of head dimensions,
 *                         p broadcast, V rows loaded in place; written to the output rows
 *
 * Workspace: D * skp + CK_SHORT_ROWS * skp floats (<= ck_f32_attention_short_workspace),
 * 64-byte aligned by the caller. Cost: 4 * seq_q * skp * D flops (keys padded to a vector
 * only) plus kn * D copied floats.
 */
#ifndef CK_SHORT_ROWS
#if CK_VL >= 16
#define CK_SHORT_ROWS 6 /* 6 x 4 accumulators + 4 loaded vectors of 32 zmm */
#define CK_SHORT_NV 4
#elif CK_VL == 8
#define CK_SHORT_ROWS 4 /* 4 x 2 accumulators + 2 loaded + 1 broadcast of 16 ymm */
#define CK_SHORT_NV 2
#else
#define CK_SHORT_ROWS 6 /* NEON: 6 x 4 of 32 q registers; scalar: plain accumulators */
#define CK_SHORT_NV 4
#endif
#endif
_Static_assert(CK_SHORT_ROWS <= CK_SHORT_WS_ROWS && 64 % CK_VL == 0,
               "ck_f32_attention_short_workspace reserves CK_SHORT_WS_ROWS rows of keys rounded to 64");

/* S rows [0, R) x key vectors [0, nv) of the block: s[i*skp + v*VL] = q_i . kt[., v*VL ..]. */
static inline __attribute__((always_inline)) void
CK_FN(ck_short_scores)(int nv, size_t D, const float *const *qrow, const float *kt, size_t skp,
                       float *s) {
    CK_VEC acc[CK_SHORT_ROWS][CK_SHORT_NV];
    CK_UNROLL_FULL
    for (int i = 0; i < CK_SHORT_ROWS; i++) {
        CK_UNROLL_FULL
        for (int v = 0; v < nv; v++) acc[i][v] = (CK_VEC){0};
    }
    for (size_t d = 0; d < D; d++) {
        CK_VEC b[CK_SHORT_NV];
        CK_UNROLL_FULL
        for (int v = 0; v < nv; v++) b[v] = CK_FN(ck_vload)(kt + d * skp + (size_t)v * CK_VL);
        CK_UNROLL_FULL
        for (int i = 0; i < CK_SHORT_ROWS; i++) {
            const CK_VEC a = CK_VSPLAT(qrow[i][d]);
            CK_UNROLL_FULL
            for (int v = 0; v < nv; v++) acc[i][v] = CK_VFMA2(a, b[v], acc[i][v]);
        }
    }
    CK_UNROLL_FULL
    for (int i = 0; i < CK_SHORT_ROWS; i++) {
        CK_UNROLL_FULL
        for (int v = 0; v < nv; v++) CK_FN(ck_vstore)(s + (size_t)i * skp + (size_t)v * CK_VL, acc[i][v]);
    }
}

/* O rows [0, rows) x head dimensions [c0, c0 + w) (w <= nv * VL; a partial last vector reads
 * only the w valid floats of each value row): o_i = inv_i * sum_{j < kn} p[i*skp + j] v_j. */
static inline __attribute__((always_inline)) void
CK_FN(ck_short_pv)(int nv, size_t kn, const float *p, size_t skp, const float *v, size_t ldv,
                   size_t c0, size_t w, float *const *orow, const float *inv, size_t rows) {
    CK_VEC acc[CK_SHORT_ROWS][CK_SHORT_NV];
    CK_UNROLL_FULL
    for (int i = 0; i < CK_SHORT_ROWS; i++) {
        CK_UNROLL_FULL
        for (int c = 0; c < nv; c++) acc[i][c] = (CK_VEC){0};
    }
    const int whole = w == (size_t)nv * CK_VL;
#define CK_SHORT_PV_KEYS(LOAD)                                                                     \
    for (size_t j = 0; j < kn; j++) {                                                              \
        const float *vr = v + j * ldv + c0;                                                        \
        CK_VEC b[CK_SHORT_NV];                                                                     \
        CK_UNROLL_FULL                                                                             \
        for (int c = 0; c < nv; c++) b[c] = LOAD;                                                  \
        CK_UNROLL_FULL                                                                             \
        for (int i = 0; i < CK_SHORT_ROWS; i++) {                                                  \
            const CK_VEC a = CK_VSPLAT(p[(size_t)i * skp + j]);                                    \
            CK_UNROLL_FULL                                                                         \
            for (int c = 0; c < nv; c++) acc[i][c] = CK_VFMA2(a, b[c], acc[i][c]);                 \
        }                                                                                          \
    }
    if (whole) {
        CK_SHORT_PV_KEYS(CK_FN(ck_vload)(vr + (size_t)c * CK_VL))
    } else {
        CK_SHORT_PV_KEYS(CK_FN(ck_vload_pad)(vr, (size_t)c * CK_VL, w, 0.0f))
    }
#undef CK_SHORT_PV_KEYS
    CK_UNROLL_FULL
    for (int i = 0; i < CK_SHORT_ROWS; i++) {
        if ((size_t)i >= rows) break;
        const CK_VEC f = CK_VSPLAT(inv[i]);
        CK_UNROLL_FULL
        for (int c = 0; c < nv; c++) {
            const CK_VEC o = acc[i][c] * f;
            const size_t at = (size_t)c * CK_VL;
            if (whole || at + CK_VL <= w) {
                CK_FN(ck_vstore)(orow[i] + c0 + at, o);
            } else {
                for (size_t t = at; t < w; t++) orow[i][c0 + t] = o[t - at];
            }
        }
    }
}

/* Lanes of a halving step: lane l takes lane l % b + b (for l < b, lane l + b). */
#define CK_HALF(b, l) ((l) % (b) + (b))
#if CK_VL == 16
#define CK_HALVES(b)                                                                               \
    CK_HALF(b, 0), CK_HALF(b, 1), CK_HALF(b, 2), CK_HALF(b, 3), CK_HALF(b, 4), CK_HALF(b, 5),      \
        CK_HALF(b, 6), CK_HALF(b, 7), CK_HALF(b, 8), CK_HALF(b, 9), CK_HALF(b, 10),                \
        CK_HALF(b, 11), CK_HALF(b, 12), CK_HALF(b, 13), CK_HALF(b, 14), CK_HALF(b, 15)
#elif CK_VL == 8
#define CK_HALVES(b)                                                                               \
    CK_HALF(b, 0), CK_HALF(b, 1), CK_HALF(b, 2), CK_HALF(b, 3), CK_HALF(b, 4), CK_HALF(b, 5),      \
        CK_HALF(b, 6), CK_HALF(b, 7)
#elif CK_VL == 4
#define CK_HALVES(b) CK_HALF(b, 0), CK_HALF(b, 1), CK_HALF(b, 2), CK_HALF(b, 3)
#endif

/* Row i of the block (query qi): p = exp(t - max t) over the kn keys in place, t = s * scale
 * + biases (-inf masked), lanes past kn set to 0; returns 1 / sum (0 when every key is
 * masked: the row is all zeros then). */
static inline __attribute__((always_inline)) float
CK_FN(ck_short_softmax_row)(const ck_attention_rows *h, size_t qi, float *row, size_t kn,
                            size_t skp, int general) {
    const float ninf = -__builtin_inff();
    const CK_VEC vscale = CK_VSPLAT(h->scale);
    if (general) {
        for (size_t j = 0; j < kn; j++) {
            const float b = ck_rows_bias(h, qi, j);
            row[j] = b == ninf ? ninf : row[j] * h->scale + b;
        }
        for (size_t j = kn; j < skp; j++) row[j] = ninf;
    } else {
        for (size_t j = 0; j < skp; j += CK_VL) {
            CK_VEC t = CK_FN(ck_vload)(row + j) * vscale;
            if (h->key_bias) t += CK_FN(ck_vload_pad)(h->key_bias, j, kn, 0.0f);
            if (j + CK_VL > kn)
                for (size_t l = kn - j; l < CK_VL; l++) t[l] = ninf;
            CK_FN(ck_vstore)(row + j, t);
        }
    }
    CK_VEC vm = CK_VSPLAT(ninf);
    for (size_t j = 0; j < skp; j += CK_VL) vm = CK_FN(ck_vmax)(vm, CK_FN(ck_vload)(row + j));
    /* The lanes' max and (below) sum as halving trees: the in-order scalar chains cost more
     * than the row's exps at a sentence's length. */
#if CK_VL == 16
    vm = CK_FN(ck_vmax)(vm, __builtin_shufflevector(vm, vm, CK_HALVES(8)));
#endif
#if CK_VL >= 8
    vm = CK_FN(ck_vmax)(vm, __builtin_shufflevector(vm, vm, CK_HALVES(4)));
#endif
#if CK_VL >= 4
    vm = CK_FN(ck_vmax)(vm, __builtin_shufflevector(vm, vm, CK_HALVES(2)));
    vm = CK_FN(ck_vmax)(vm, __builtin_shufflevector(vm, vm, CK_HALVES(1)));
#endif
    const float m = vm[0];
    if (m == ninf) {
        memset(row, 0, skp * sizeof(float));
        return 0.0f;
    }
    const CK_VEC vb = CK_VSPLAT(m);
    CK_VEC sum = (CK_VEC){0};
    for (size_t j = 0; j < skp; j += CK_VL) {
        const CK_VEC e = CK_FN(ck_vexp_nonpos)(CK_FN(ck_vload)(row + j) - vb);
        CK_FN(ck_vstore)(row + j, e);
        sum += e;
    }
    return 1.0f / CK_FN(ck_hsum_tree)(sum);
}

/* Lane lists of the in-register transpose: stage b swaps the b x b blocks off the diagonal of
 * each 2b x 2b block, between rows i and i + b ((A ++ B) lanes: A's 0..VL-1, B's VL..2VL-1). */
#define CK_TLO(b, l) (((l) & (b)) ? (l) - (b) + CK_VL : (l))
#define CK_THI(b, l) (((l) & (b)) ? (l) + CK_VL : (l) + (b))
#if CK_VL == 16
#define CK_TLANES(F, b)                                                                            \
    F(b, 0), F(b, 1), F(b, 2), F(b, 3), F(b, 4), F(b, 5), F(b, 6), F(b, 7), F(b, 8), F(b, 9),      \
        F(b, 10), F(b, 11), F(b, 12), F(b, 13), F(b, 14), F(b, 15)
#elif CK_VL == 8
#define CK_TLANES(F, b) F(b, 0), F(b, 1), F(b, 2), F(b, 3), F(b, 4), F(b, 5), F(b, 6), F(b, 7)
#elif CK_VL == 4
#define CK_TLANES(F, b) F(b, 0), F(b, 1), F(b, 2), F(b, 3)
#endif
#define CK_TSTAGE(r, b)                                                                            \
    CK_UNROLL_FULL                                                                                 \
    for (int i = 0; i < CK_VL; i++) {                                                              \
        if (i & (b)) continue;                                                                     \
        const CK_VEC A = r[i], B = r[i + (b)];                                                     \
        r[i] = __builtin_shufflevector(A, B, CK_TLANES(CK_TLO, b));                                \
        r[i + (b)] = __builtin_shufflevector(A, B, CK_TLANES(CK_THI, b));                          \
    }

/* kt[d*skp + j] = k_j[d] for j < kn, 0 for kn <= j < skp. With vectors, VL x VL blocks
 * transposed in registers (VL loads, VL log2 VL shuffles, VL stores per block): copied float by
 * float, the stores went one per cycle (a third of the kernel's time at 36 keys of 32 floats),
 * and vectorized by the compiler they became scatters (slower still). */
static inline void CK_FN(ck_short_kt)(const float *k, size_t ldk, size_t kn, size_t D, float *kt,
                                      size_t skp) {
#if CK_VL == 1
    (void)skp;
    for (size_t j = 0; j < kn; j++)
        for (size_t d = 0; d < D; d++) kt[d * kn + j] = k[j * ldk + d];
#else
    for (size_t j0 = 0; j0 < skp; j0 += CK_VL)
        for (size_t d0 = 0; d0 < D; d0 += CK_VL) {
            CK_VEC r[CK_VL];
            CK_UNROLL_FULL
            for (int i = 0; i < CK_VL; i++) {
                const size_t j = j0 + (size_t)i;
                r[i] = j >= kn              ? (CK_VEC){0}
                       : d0 + CK_VL <= D ? CK_FN(ck_vload)(k + j * ldk + d0)
                                           : CK_FN(ck_vload_pad)(k + j * ldk, d0, D, 0.0f);
            }
            CK_TSTAGE(r, 1)
            CK_TSTAGE(r, 2)
#if CK_VL >= 8
            CK_TSTAGE(r, 4)
#endif
#if CK_VL >= 16
            CK_TSTAGE(r, 8)
#endif
            CK_UNROLL_FULL
            for (int i = 0; i < CK_VL; i++)
                if (d0 + (size_t)i < D) CK_FN(ck_vstore)(kt + (d0 + (size_t)i) * skp + j0, r[i]);
        }
#endif
}
#undef CK_TLO
#undef CK_THI
#undef CK_TLANES
#undef CK_TSTAGE

void CK_FN(ck_f32_attn_short)(const ck_attention_rows *h, float *ws) {
    enum { R = CK_SHORT_ROWS, NV = CK_SHORT_NV };
    const size_t D = h->head_dim, sq = h->seq_q;
    size_t kn = h->seq_k;
    if (h->key_bias)
        while (kn > 0 && h->key_bias[kn - 1] == -__builtin_inff()) kn--;
    if (kn == 0 || D == 0) {
        for (size_t i = 0; i < sq; i++) memset(h->o + i * h->ldo, 0, D * sizeof(float));
        return;
    }
    const size_t skp = (kn + CK_VL - 1) / CK_VL * CK_VL, nkv = skp / CK_VL;
    float *kt = ws, *s = ws + D * skp;
    CK_FN(ck_short_kt)(h->k, h->ldk, kn, D, kt, skp);
    const int general = h->causal || h->window || h->rel_bias;
    for (size_t i0 = 0; i0 < sq; i0 += R) {
        const size_t rows = sq - i0 < R ? sq - i0 : R;
        const float *qrow[R];
        float *orow[R];
        float inv[R];
        for (int i = 0; i < R; i++) {
            const size_t qi = i0 + ((size_t)i < rows ? (size_t)i : rows - 1);
            qrow[i] = h->q + qi * h->ldq;
            orow[i] = h->o + qi * h->ldo;
        }
        for (size_t v0 = 0; v0 < nkv; v0 += NV) {
            const size_t left = nkv - v0;
            float *sb = s + v0 * CK_VL;
            const float *kb = kt + v0 * CK_VL;
            if (left >= NV) CK_FN(ck_short_scores)(NV, D, qrow, kb, skp, sb);
#if CK_SHORT_NV > 3
            else if (left == 3) CK_FN(ck_short_scores)(3, D, qrow, kb, skp, sb);
#endif
#if CK_SHORT_NV > 2
            else if (left == 2) CK_FN(ck_short_scores)(2, D, qrow, kb, skp, sb);
#endif
            else CK_FN(ck_short_scores)(1, D, qrow, kb, skp, sb);
        }
        for (size_t i = 0; i < rows; i++)
            inv[i] = CK_FN(ck_short_softmax_row)(h, i0 + i, s + i * skp, kn, skp, general);
        /* The repeated rows (past `rows`) must hold finite values: their products are
         * computed, never stored. */
        for (size_t i = rows; i < R; i++) memset(s + i * skp, 0, skp * sizeof(float));
        for (size_t c0 = 0; c0 < D; c0 += (size_t)NV * CK_VL) {
            const size_t w = D - c0 < (size_t)NV * CK_VL ? D - c0 : (size_t)NV * CK_VL;
            const size_t nvd = (w + CK_VL - 1) / CK_VL;
            if (nvd >= NV) CK_FN(ck_short_pv)(NV, kn, s, skp, h->v, h->ldv, c0, w, orow, inv, rows);
#if CK_SHORT_NV > 3
            else if (nvd == 3) CK_FN(ck_short_pv)(3, kn, s, skp, h->v, h->ldv, c0, w, orow, inv, rows);
#endif
#if CK_SHORT_NV > 2
            else if (nvd == 2) CK_FN(ck_short_pv)(2, kn, s, skp, h->v, h->ldv, c0, w, orow, inv, rows);
#endif
            else CK_FN(ck_short_pv)(1, kn, s, skp, h->v, h->ldv, c0, w, orow, inv, rows);
        }
    }
}

#undef CK_HALF
#undef CK_HALVES
#undef CK_SHORT_ROWS
#undef CK_SHORT_NV
