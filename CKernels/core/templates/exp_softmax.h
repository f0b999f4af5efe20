/*
 * exp, row softmax and the fused attention's online-softmax step (contracts in
 * attend_kernels.h), on the primitives of vector_ops.h. Instantiated per ISA by variant.h:
 * CK_FN(ck_f32_exp), CK_FN(ck_f32_softmax_rows), CK_FN(ck_f32_attn_softmax_step) (which also
 * needs CK_ANV, the query vectors per panel row: nr = CK_ANV * CK_VL).
 */
void CK_FN(ck_f32_exp)(size_t n, const float *x, float *y) {
    size_t i = 0;
    for (; i + CK_VL <= n; i += CK_VL)
        CK_FN(ck_vstore)(y + i, CK_FN(ck_vexp)(CK_FN(ck_vload)(x + i)));
    if (i < n) {
        float buf[CK_VL] = {0};
        memcpy(buf, x + i, (n - i) * sizeof(float));
        CK_VEC v = CK_FN(ck_vexp)(CK_FN(ck_vload)(buf));
        CK_FN(ck_vstore)(buf, v);
        memcpy(y + i, buf, (n - i) * sizeof(float));
    }
}

/* Loads lanes [i, i+CK_VL) of a row of n, padding past n with `pad`. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload_pad)(const float *p, size_t i,
                                                                        size_t n, float pad) {
    if (i + CK_VL <= n) return CK_FN(ck_vload)(p + i);
    CK_VEC v = CK_VSPLAT(pad);
    for (size_t j = i; j < n; j++) v[j - i] = p[j];
    return v;
}

/* Term lanes [i, i+CK_VL) of a softmax row: x * scale + mask, -inf past n. Scale and mask
 * first, then pad: padding -inf before a scale <= 0 would turn into +inf or NaN. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_softmax_terms)(const float *xr,
                                                                            const float *mr,
                                                                            size_t i, size_t n,
                                                                            CK_VEC vscale) {
    if (i + CK_VL <= n) {
        CK_VEC t = CK_FN(ck_vload)(xr + i) * vscale;
        return mr ? t + CK_FN(ck_vload)(mr + i) : t;
    }
    CK_VEC t = CK_FN(ck_vload_pad)(xr, i, n, 0.0f) * vscale;
    if (mr) t += CK_FN(ck_vload_pad)(mr, i, n, 0.0f);
    for (size_t j = n > i ? n - i : 0; j < CK_VL; j++) t[j] = -__builtin_inff();
    return t;
}

/* exp(x * scale + mask - base) for the whole vectors of [i0, i1) of a row into y, summed
 * into *vs in order; returns the first index not done. The terms as ck_softmax_terms forms
 * them (the same bits). Always inlined and called with mask NULL as a constant, so that loop
 * has no mask or bounds test: with them (and the row's pointers reloaded from the stack) the
 * loop ran ~35 instructions a vector around an exp of ~20, and the 4096 x 4096 softmax in
 * cache took 0.66 ns an element on one Zen 3 core (0.54 without). */
static inline __attribute__((always_inline)) size_t CK_FN(ck_softmax_exp_run)(
    const float *xr, const float *mr, size_t i0, size_t i1, float *yr, CK_VEC vscale, CK_VEC vb,
    CK_VEC *vs) {
    CK_VEC acc = *vs;
    size_t i = i0;
    for (; i + CK_VL <= i1; i += CK_VL) {
        CK_VEC t = CK_FN(ck_vload)(xr + i) * vscale;
        if (mr) t = t + CK_FN(ck_vload)(mr + i);
        const CK_VEC e = CK_FN(ck_vexp_nonpos)(t - vb);
        CK_FN(ck_vstore)(yr + i, e);
        acc += e;
    }
    *vs = acc;
    return i;
}

/* Online softmax, two passes over each row. Pass 1 reads the terms once, block by block:
 * a block's max raises the running max m (the sum so far is rescaled by exp(m_old - m_new),
 * exactly 1 when the max did not grow), then its terms' exp(t - m) are written to y and
 * summed; the max each block used is kept. Pass 2 scales each block of y by
 * exp(m_block - m) / sum. One exp per term, and the read of x from memory overlaps the exp
 * work. At most CK_SM_BLOCKS blocks per row (longer rows get longer blocks), their maxes on
 * the stack. */
#define CK_SM_BLOCKS 64
/* The max pass fetches x this many floats ahead (8 KiB: two of a 4096-row's blocks, into the
 * next row when rows are packed), so the load of x from memory overlaps the exp work of the
 * blocks before it instead of waiting on the hardware prefetcher at each block's max pass
 * (4096 x 4096 on Zen 5: 5.25 -> 3.79 ms on 1 thread; 1024 floats ahead measured slower, 4096
 * the same). */
#define CK_SM_PREFETCH 2048
#define CK_SM_MIN_BLOCK 64 /* vectors: few enough blocks that the per-block max, rescale and
                              * horizontal reductions stay small next to the exp work (16: 4-5%
                              * slower on Zen 4), 4 KiB of x re-read from L1 on AVX-512 */
void CK_FN(ck_f32_softmax_rows)(size_t rows, size_t n, const float *x, size_t ldx, float *y,
                                size_t ldy, float scale, const float *mask, size_t ldmask) {
    const float ninf = -__builtin_inff();
    const CK_VEC vscale = CK_VSPLAT(scale), vninf = CK_VSPLAT(ninf);
    const size_t nvec = (n + CK_VL - 1) / CK_VL;
    size_t bvec = (nvec + CK_SM_BLOCKS - 1) / CK_SM_BLOCKS;
    if (bvec < CK_SM_MIN_BLOCK) bvec = CK_SM_MIN_BLOCK;
    const size_t blen = bvec * CK_VL;
    float bmaxes[CK_SM_BLOCKS];
    /* Without a mask and with 0 < scale < inf, max(x * scale) = max(x) * scale exactly
     * (rounding is monotone), so the max pass reads x alone, without a multiply. */
    const int raw_max = !mask && scale > 0.0f && scale <= 3.40282347e38f;
    const float *xend = rows ? x + (rows - 1) * ldx + n : x;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        const float *mr = mask ? mask + r * ldmask : NULL;
        /* Pass 1. m: the running max (-inf until a finite or +inf term is seen; a block
         * still at -inf uses 0 as its exp base, so its terms give exp(-inf) = 0). */
        float m = ninf;
        CK_VEC vs = (CK_VEC){0};
        CK_IVEC nan = CK_ISPLAT(0);
        size_t nb = 0;
        for (size_t i0 = 0; i0 < n; i0 += blen, nb++) {
            const size_t i1 = n - i0 < blen ? n : i0 + blen;
            CK_VEC bmax = vninf;
            float hb;
            /* Prefetch only where every target of the block lies before the last row's end
             * (the final 8 KiB of x are not fetched ahead). */
            const int pf = (size_t)(xend - (xr + i1)) >= CK_SM_PREFETCH;
            if (raw_max) {
                size_t i = i0;
                for (; i + CK_VL <= i1; i += CK_VL) {
                    if (pf) __builtin_prefetch(xr + i + CK_SM_PREFETCH, 0, 3);
                    const CK_VEC t = CK_FN(ck_vload)(xr + i);
                    nan |= t != t;
                    bmax = CK_FN(ck_vmax)(bmax, t);
                }
                if (i < i1) {
                    const CK_VEC t = CK_FN(ck_softmax_terms)(xr, NULL, i, n, CK_VSPLAT(1.0f));
                    nan |= t != t;
                    bmax = CK_FN(ck_vmax)(bmax, t);
                }
                hb = CK_FN(ck_hmax)(bmax) * scale;
            } else {
                for (size_t i = i0; i < i1; i += CK_VL) {
                    if (pf) __builtin_prefetch(xr + i + CK_SM_PREFETCH, 0, 3);
                    const CK_VEC t = CK_FN(ck_softmax_terms)(xr, mr, i, n, vscale);
                    nan |= t != t;
                    bmax = CK_FN(ck_vmax)(bmax, t);
                }
                hb = CK_FN(ck_hmax)(bmax);
            }
            const float mnew = hb > m ? hb : m;
            const float base = mnew == ninf ? 0.0f : mnew;
            if (mnew != m) vs *= CK_FN(ck_vexp_nonpos)(CK_VSPLAT(m - base));
            const CK_VEC vb = CK_VSPLAT(base);
            size_t i = mr ? CK_FN(ck_softmax_exp_run)(xr, mr, i0, i1, yr, vscale, vb, &vs)
                          : CK_FN(ck_softmax_exp_run)(xr, NULL, i0, i1, yr, vscale, vb, &vs);
            if (i < i1) {
                CK_VEC e = CK_FN(ck_vexp_nonpos)(CK_FN(ck_softmax_terms)(xr, mr, i, n, vscale) - vb);
                for (size_t j = i; j < i1; j++) yr[j] = e[j - i];
                for (size_t j = i1 - i; j < CK_VL; j++) e[j] = 0.0f;
                vs += e;
            }
            m = mnew;
            bmaxes[nb] = mnew;
        }
        int any_nan = 0;
        for (int l = 0; l < CK_VL; l++) any_nan |= nan[l] != 0;
        if (any_nan || m == ninf) {
            /* NaN in, NaN out; a row with nothing to attend to is all zeros, never NaN. */
            const float fill = any_nan ? __builtin_nanf("") : 0.0f;
            for (size_t j = 0; j < n; j++) yr[j] = fill;
            continue;
        }
        /* Pass 2: y *= exp(m_block - m) / sum (a block before the first finite term has
         * m_block = -inf: factor 0, its y are 0 already). sum >= 1: the max term gave 1. */
        const float inv = 1.0f / CK_FN(ck_hsum)(vs);
        nb = 0;
        for (size_t i0 = 0; i0 < n; i0 += blen, nb++) {
            const size_t i1 = n - i0 < blen ? n : i0 + blen;
            const float f =
                bmaxes[nb] == m ? inv : CK_FN(ck_vexp_nonpos)(CK_VSPLAT(bmaxes[nb] - m))[0] * inv;
            const CK_VEC vf = CK_VSPLAT(f);
            size_t i = i0;
            for (; i + CK_VL <= i1; i += CK_VL) CK_FN(ck_vstore)(yr + i, CK_FN(ck_vload)(yr + i) * vf);
            for (; i < i1; i++) yr[i] *= f;
        }
    }
}
#undef CK_SM_BLOCKS
#undef CK_SM_MIN_BLOCK
#undef CK_SM_PREFETCH

/* The online-softmax step of the fused attention (contract in attend_kernels.h). The tile
 * has CK_NQ = CK_ANV vectors of queries per key row. */
#define CK_NQ (CK_ANV * CK_VL)
void CK_FN(ck_f32_attn_softmax_step)(size_t rows, size_t valid_rows, float *s, float *m, float *l,
                                     float *corr, size_t key0, size_t query0,
                                     const ck_attention_head *h) {
    const float ninf = -__builtin_inff();
    const CK_VEC vninf = CK_VSPLAT(ninf);
    CK_VEC bmax[CK_ANV];
    CK_IVEC qidx[CK_ANV];
    for (int j = 0; j < CK_ANV; j++) {
        bmax[j] = vninf;
        for (int lane = 0; lane < CK_VL; lane++)
            qidx[j][lane] = (int)(query0 + (size_t)(j * CK_VL + lane));
    }
    const int masked = h->key_bias || h->rel_bias || h->causal || h->window;
    /* Pass 1: biases and masks (in place), block max per query. Unmasked (every block of a
     * full attention, and the causal blocks below the diagonal): the valid rows' max, two
     * rows at a time into two sets of maxima, without a branch per row (the loop below, a
     * test per row, was 2% of the kernel's time at head size 64 on Zen 3), then the padding
     * rows set to -inf. */
    if (!masked) {
        CK_VEC bmax2[CK_ANV];
        for (int j = 0; j < CK_ANV; j++) bmax2[j] = vninf;
        size_t r = 0;
        for (; r + 2 <= valid_rows; r += 2) {
            const float *row = s + r * CK_NQ;
            for (int j = 0; j < CK_ANV; j++) {
                bmax[j] = CK_FN(ck_vmax)(bmax[j], CK_FN(ck_vload)(row + j * CK_VL));
                bmax2[j] = CK_FN(ck_vmax)(bmax2[j], CK_FN(ck_vload)(row + CK_NQ + j * CK_VL));
            }
        }
        for (; r < valid_rows; r++)
            for (int j = 0; j < CK_ANV; j++)
                bmax[j] = CK_FN(ck_vmax)(bmax[j], CK_FN(ck_vload)(s + r * CK_NQ + j * CK_VL));
        for (int j = 0; j < CK_ANV; j++) bmax[j] = CK_FN(ck_vmax)(bmax[j], bmax2[j]);
        for (; r < rows; r++)
            for (int j = 0; j < CK_ANV; j++) CK_FN(ck_vstore)(s + r * CK_NQ + j * CK_VL, vninf);
    }
    for (size_t r = 0; masked && r < rows; r++) {
        float *row = s + r * CK_NQ;
        if (r >= valid_rows) {
            for (int j = 0; j < CK_ANV; j++) CK_FN(ck_vstore)(row + j * CK_VL, vninf);
            continue;
        }
        const size_t key = key0 + r;
        const float kb = h->key_bias ? h->key_bias[key] : 0.0f;
        /* rel_bias[(i - key) + zero] for the lanes' queries i: contiguous in i. */
        const float *rel =
            h->rel_bias ? h->rel_bias + ((ptrdiff_t)query0 - (ptrdiff_t)key + h->rel_bias_zero)
                        : NULL;
        const CK_IVEC lim = CK_ISPLAT((int)((ptrdiff_t)key - h->causal_offset));
        /* Sliding window: query i sees this key iff i < key - causal_offset + window (the
         * bound saturates at INT_MAX, far past any query index). */
        ptrdiff_t wend = INT_MAX;
        if (h->window < (size_t)INT_MAX) {
            wend = (ptrdiff_t)key - h->causal_offset + (ptrdiff_t)h->window;
            wend = wend > INT_MAX ? INT_MAX : (wend < INT_MIN ? INT_MIN : wend);
        }
        const CK_IVEC wlim = CK_ISPLAT((int)wend);
        for (int j = 0; j < CK_ANV; j++) {
            CK_VEC v = CK_FN(ck_vload)(row + j * CK_VL) + kb;
            if (rel) v += CK_FN(ck_vload)(rel + j * CK_VL);
            if (h->causal) v = CK_VSELECT(qidx[j] >= lim, v, vninf);
            if (h->window) v = CK_VSELECT(qidx[j] < wlim, v, vninf);
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
    /* Pass 2: p = exp(s - m), in place (this tile is the next GEMM's packed B panel), with
     * the short polynomial: the exp was ~10% of the kernel's time at head size 64 (AVX-512
     * and AVX2 take their table exps, as short and as exact as the long polynomial). */
    /* One query vector at a time down the keys: one running max and one sum live beside the
     * exp's constants (the query vectors side by side spilled registers on AVX2: the step
     * was 13% of the kernel's time at head size 64 on Zen 3). The sums add in key order, as
     * before. */
    for (int j = 0; j < CK_ANV; j++) {
        const CK_VEC mu = muse[j];
        CK_VEC sum = lsum[j];
        float *col = s + j * CK_VL;
        for (size_t r = 0; r < rows; r++) {
            CK_VEC p = CK_FN(ck_vexp_nonpos_n)(CK_FN(ck_vload)(col + r * CK_NQ) - mu, 1);
            CK_FN(ck_vstore)(col + r * CK_NQ, p);
            sum += p;
        }
        lsum[j] = sum;
    }
    for (int j = 0; j < CK_ANV; j++) {
        CK_VEC c = CK_FN(ck_vload)(corr + j * CK_VL);
        CK_FN(ck_vstore)(l + j * CK_VL, CK_FN(ck_vload)(l + j * CK_VL) * c + lsum[j]);
    }
}
#undef CK_NQ
