/*
 * Fused attention backward driver (portable): tiling, packing and the transposes live here;
 * the arithmetic runs on each variant's GEMM micro-kernel and its attn_grad_step.
 *
 * For one query head, per query block of Br = panels * nr queries and key block of Bc keys
 * (FlashAttention-2's recomputation, with the loops in the order that keeps dQ local):
 *
 *   S^T  (Bc x Br)  = K_blk (Bc x D) * (scale Q_blk)^T       micro-kernel, kc = D
 *   dP^T (Bc x Br)  = V_blk (Bc x D) * dO_blk^T              micro-kernel, kc = D
 *   attn_grad_step:   P = exp(S + biases - lse), dS = P (dP - D_i)   (vectors across queries)
 *   dV_blk (Bc x D) += P^T  * dO_blk                         rows of P^T read in place, kc = nr
 *   dK_blk (Bc x D) += scale dS^T * Q_blk                    rows of dS^T read in place, kc = nr
 *   dQ^T  (D x Br)  += scale K_blk^T * dS^T                  micro-kernel, kc = Bc
 *
 * The tiles are stored per query panel with row stride nr, so a tile *is* the packed "B"
 * panel of the dQ^T product (as in the forward) and each of its mr-key row groups is the
 * in-place "A" of the dK/dV products. dK and dV live in the caller's accumulators for the
 * whole K/V head (several query heads of a group add into them); dQ^T for the query block
 * lives in the workspace and is transposed out once per block.
 *
 *   workspace:  Qs [panels][D][nr] | dOt [panels][D][nr] | Qr, dOr [panels][Dn/nr][nr][nr] |
 *               S, dS [panels][Bc][nr] | dQt [panels][Dp][nr] | lse, delta [Br]
 *   packed K/V: K [Skp/mr][D][mr] | V [Skp/mr][D][mr] | K^T [Dp/mr][Skp][mr]
 */
#include "ck_internal.h"
#include "attend_attention_backward.h"

#include <string.h>

static inline size_t ck_bw_rup(size_t x, size_t m) { return (x + m - 1) / m * m; }
static inline size_t ck_bw_al(size_t floats) { return ck_bw_rup(floats, CK_ALIGN / sizeof(float)); }

/* Query panels per block (Br = panels * nr, about 64 queries) and keys per block (Bc, a
 * multiple of mr, about 140): the two Bc x Br tiles (70 KiB) stay in L2 next to the head's
 * packed K/V and dK/dV accumulators. Measured on Zen 4 (AVX-512, seq 512, head size 64,
 * thread CPU time): Br 32..128 x Bc 56..196 all within the noise of a shared machine
 * (59-68% of the FMA peak non-causal) except Br >= 96 (worse: more causal waste, tiles out
 * of L2); 64 x 140 was best in repeated runs. */
/* Block sizes (overridable for a tuning sweep); panels <= 64 (prows below) as nr >= 4. */
#ifndef CK_BW_QUERIES
#define CK_BW_QUERIES 64
#endif
#ifndef CK_BW_KEYS
#define CK_BW_KEYS 140
#endif
_Static_assert(CK_BW_QUERIES <= 256, "at most 64 query panels of nr >= 4");
static size_t ck_bw_panels(const ck_kernels *k) {
    const size_t nr = (size_t)k->gemm.nr;
    return (CK_BW_QUERIES + nr - 1) / nr;
}
static size_t ck_bw_key_block(const ck_kernels *k) {
    const size_t mr = (size_t)k->gemm.mr;
    return ck_bw_rup(CK_BW_KEYS, mr);
}

size_t ck_f32_attention_grad_packed_kv_size(const ck_kernels *k, size_t seq_k, size_t head_dim) {
    const size_t mr = (size_t)k->gemm.mr, skp = ck_bw_rup(seq_k, mr);
    return 2 * ck_bw_al(skp * head_dim) + ck_bw_rup(head_dim, mr) * skp;
}

size_t ck_f32_attention_grad_acc_ld(const ck_kernels *k, size_t head_dim) {
    return ck_bw_rup(head_dim ? head_dim : 1, (size_t)k->gemm.nr);
}

size_t ck_f32_attention_grad_acc_size(const ck_kernels *k, size_t seq_k, size_t head_dim) {
    return ck_bw_rup(seq_k, (size_t)k->gemm.mr) * ck_f32_attention_grad_acc_ld(k, head_dim);
}

size_t ck_f32_attention_grad_rel_bias_length(const ck_kernels *k, size_t seq_q, size_t seq_k) {
    const size_t br = ck_bw_panels(k) * (size_t)k->gemm.nr;
    return ck_bw_rup(seq_q ? seq_q : 1, br) + (seq_k ? seq_k : 1) - 1;
}

size_t ck_f32_attention_grad_workspace(const ck_kernels *k, size_t head_dim) {
    const size_t mr = (size_t)k->gemm.mr, nr = (size_t)k->gemm.nr, np = ck_bw_panels(k);
    const size_t D = head_dim, dn = ck_bw_rup(D ? D : 1, nr), dp = ck_bw_rup(D, mr);
    const size_t bc = ck_bw_key_block(k);
    return 2 * ck_bw_al(np * D * nr) + 2 * ck_bw_al(np * dn * nr) + 2 * ck_bw_al(np * bc * nr) +
           ck_bw_al(np * dp * nr) + 2 * ck_bw_al(np * nr);
}

void ck_f32_attention_grad_pack_kv(const ck_kernels *k, size_t seq_k, size_t head_dim,
                                   const float *keys, size_t ldk, const float *values, size_t ldv,
                                   float *packed) {
    const size_t mr = (size_t)k->gemm.mr, D = head_dim;
    const size_t skp = ck_bw_rup(seq_k, mr), dp = ck_bw_rup(D, mr);
    float *kp = packed, *vp = packed + ck_bw_al(skp * D), *kt = vp + ck_bw_al(skp * D);
    for (size_t p = 0; p < skp / mr; p++) {
        float *dk = kp + p * D * mr, *dv = vp + p * D * mr;
        for (size_t i = 0; i < mr; i++) {
            const size_t j = p * mr + i;
            for (size_t d = 0; d < D; d++) {
                dk[d * mr + i] = j < seq_k ? keys[j * ldk + d] : 0.0f;
                dv[d * mr + i] = j < seq_k ? values[j * ldv + d] : 0.0f;
            }
        }
    }
    for (size_t q = 0; q < dp / mr; q++) {
        float *dst = kt + q * skp * mr;
        const size_t d0 = q * mr;
        for (size_t j = 0; j < skp; j++)
            for (size_t i = 0; i < mr; i++)
                dst[j * mr + i] = j < seq_k && d0 + i < D ? keys[j * ldk + d0 + i] : 0.0f;
    }
}

/* Shaw bucket of key j for query i (absolute query position i + causal_offset). */
static inline size_t ck_bw_shaw_bucket(const ck_attention_grad_head *g, size_t i, size_t j) {
    const ptrdiff_t c = (ptrdiff_t)g->shaw_clip;
    ptrdiff_t d = (ptrdiff_t)j - ((ptrdiff_t)i + g->causal_offset);
    d = d < -c ? -c : (d > c ? c : d);
    return (size_t)(d + c);
}

void ck_f32_attention_backward(const ck_kernels *k, const ck_attention_grad_head *g,
                               float *workspace) {
    const size_t mr = (size_t)k->gemm.mr, nr = (size_t)k->gemm.nr;
    const size_t panels = ck_bw_panels(k), bc = ck_bw_key_block(k), br = panels * nr;
    const size_t D = g->head_dim, dp = ck_bw_rup(D, mr), dn = ck_bw_rup(D ? D : 1, nr);
    const size_t sq = g->seq_q, sk = g->seq_k, skp = ck_bw_rup(sk, mr), ldacc = dn;
    const size_t sw = g->shaw_clip ? 2 * g->shaw_clip + 1 : 0;
    float *qs = workspace;
    float *dot = qs + ck_bw_al(panels * D * nr);
    float *qr = dot + ck_bw_al(panels * D * nr);
    float *dor = qr + ck_bw_al(panels * dn * nr);
    float *st = dor + ck_bw_al(panels * dn * nr);
    float *dst = st + ck_bw_al(panels * bc * nr);
    float *dqt = dst + ck_bw_al(panels * bc * nr);
    float *lse = dqt + ck_bw_al(panels * dp * nr);
    float *delta = lse + ck_bw_al(panels * nr);
    const float *pk = g->packed_kv, *pv = pk + ck_bw_al(skp * D), *pkt = pv + ck_bw_al(skp * D);
    const ck_f32_gemm_ukr_fn ukr = k->gemm_ukr;
    const ck_f32_gemm_ukr_rows_fn ukr_rows = k->gemm_ukr_rows;

    for (size_t q0 = 0; q0 < sq; q0 += br) {
        const size_t count = sq - q0 < br ? sq - q0 : br;
        const size_t np = (count + nr - 1) / nr;
        /* Pack the block: Qs (scaled) and dOt as B panels over D, Qr and dOr as B panels over
         * dimensions (rows = queries), lse (+inf past the block or where no key was seen)
         * and delta_i = dO_i . O_i. */
        for (size_t jp = 0; jp < np; jp++) {
            for (size_t j = 0; j < nr; j++) {
                const size_t qi = jp * nr + j;
                const int real = qi < count;
                const float *qrow = real ? g->q + (q0 + qi) * g->ldq : NULL;
                const float *drow = real ? g->dout + (q0 + qi) * g->lddo : NULL;
                const float *orow = real ? g->o + (q0 + qi) * g->ldo : NULL;
                double dsum = 0.0;
                for (size_t d = 0; d < D; d++) {
                    const float qv = real ? qrow[d] : 0.0f, dv = real ? drow[d] : 0.0f;
                    qs[(jp * D + d) * nr + j] = g->scale * qv;
                    dot[(jp * D + d) * nr + j] = dv;
                    if (real) dsum += (double)dv * (double)orow[d];
                }
                for (size_t d = 0; d < dn; d++) {
                    const float qv = real && d < D ? qrow[d] : 0.0f;
                    const float dv = real && d < D ? drow[d] : 0.0f;
                    qr[((jp * (dn / nr) + d / nr) * nr + j) * nr + d % nr] = qv;
                    dor[((jp * (dn / nr) + d / nr) * nr + j) * nr + d % nr] = dv;
                }
                const float l = real ? g->lse[q0 + qi] : __builtin_inff();
                lse[jp * nr + j] = l == -__builtin_inff() ? __builtin_inff() : l;
                delta[jp * nr + j] = (float)dsum;
            }
        }
        memset(dqt, 0, np * dp * nr * sizeof(float));
        if (sw) {
            memset(g->shaw_p + q0 * sw, 0, count * sw * sizeof(float));
            memset(g->shaw_ds + q0 * sw, 0, count * sw * sizeof(float));
        }
        /* Keys any query of the block sees: causal blocks past the last query are skipped. */
        size_t kend = sk;
        if (g->causal) {
            const ptrdiff_t last = (ptrdiff_t)(q0 + count - 1) + g->causal_offset + 1;
            kend = last <= 0 ? 0 : ((size_t)last < kend ? (size_t)last : kend);
        }
        for (size_t kb = 0; kb < kend; kb += bc) {
            const size_t valid = kend - kb < bc ? kend - kb : bc;
            const size_t rows = ck_bw_rup(valid, mr);
            /* Causal: key panels of this block that no query of panel jp sees are skipped
             * (prows[jp] rows are computed, a multiple of mr). */
            size_t prows[64];
            for (size_t jp = 0; jp < np; jp++) {
                prows[jp] = rows;
                if (g->causal) {
                    const ptrdiff_t seen =
                        (ptrdiff_t)(q0 + jp * nr + nr) + g->causal_offset - (ptrdiff_t)kb;
                    const size_t lim = seen <= 0 ? 0 : ck_bw_rup((size_t)seen, mr);
                    if (lim < prows[jp]) prows[jp] = lim;
                }
            }
            for (size_t ip = 0; ip < rows / mr; ip++) {
                const size_t off = (kb / mr + ip) * D * mr;
                for (size_t jp = 0; jp < np; jp++) {
                    if (ip * mr >= prows[jp]) continue;
                    float *c = st + jp * bc * nr + ip * mr * nr;
                    ukr(D, pk + off, qs + jp * D * nr, c, nr, 1.0f, 0.0f);
                    ukr(D, pv + off, dot + jp * D * nr, dst + jp * bc * nr + ip * mr * nr, nr, 1.0f,
                        0.0f);
                }
            }
            for (size_t jp = 0; jp < np; jp++) {
                float *s = st + jp * bc * nr, *ds = dst + jp * bc * nr;
                const size_t prow = prows[jp], pvalid = valid < prow ? valid : prow;
                if (prow == 0) continue;
                if (sw) {
                    /* Shaw terms: s += q . a^K (scaled), dP += dO . a^V, per bucket. */
                    for (size_t r = 0; r < pvalid; r++)
                        for (size_t j = 0; j < nr; j++) {
                            const size_t qi = q0 + jp * nr + j;
                            if (qi >= q0 + count) continue;
                            const size_t c = qi * sw + ck_bw_shaw_bucket(g, qi, kb + r);
                            s[r * nr + j] += g->shaw_qk[c];
                            ds[r * nr + j] += g->shaw_dov[c];
                        }
                }
                if (g->dropout) {
                    /* dP of the probabilities before dropout: Z * dP (Z recomputed). */
                    for (size_t j = 0; j < nr; j++) {
                        const size_t qi = q0 + jp * nr + j;
                        if (qi >= q0 + count) break;
                        for (size_t r = 0; r < pvalid; r++)
                            ds[r * nr + j] *= ck_dropout_factor(g->dropout, sk, qi, kb + r);
                    }
                }
                k->attn_grad_step(prow, pvalid, s, ds, kb, q0 + jp * nr, g, lse + jp * nr,
                                  delta + jp * nr);
                if (g->dropout) {
                    /* dV reads the dropped probabilities P Z. */
                    for (size_t j = 0; j < nr; j++) {
                        const size_t qi = q0 + jp * nr + j;
                        if (qi >= q0 + count) break;
                        for (size_t r = 0; r < pvalid; r++)
                            s[r * nr + j] *= ck_dropout_factor(g->dropout, sk, qi, kb + r);
                    }
                }
                if (sw) {
                    for (size_t j = 0; j < nr; j++) {
                        const size_t qi = q0 + jp * nr + j;
                        if (qi >= q0 + count) continue;
                        float *bp = g->shaw_p + qi * sw, *bd = g->shaw_ds + qi * sw;
                        for (size_t r = 0; r < pvalid; r++) {
                            const size_t c = ck_bw_shaw_bucket(g, qi, kb + r);
                            bp[c] += s[r * nr + j];
                            bd[c] += ds[r * nr + j];
                        }
                    }
                }
            }
            /* dV += P^T dO, dK += scale dS^T Q: per mr keys, per query panel, per nr dims. */
            for (size_t ip = 0; ip < rows / mr; ip++) {
                float *cv = g->dv_acc + (kb + ip * mr) * ldacc;
                float *ck = g->dk_acc + (kb + ip * mr) * ldacc;
                for (size_t jp = 0; jp < np; jp++) {
                    if (ip * mr >= prows[jp]) continue;
                    const float *ap = st + jp * bc * nr + ip * mr * nr;
                    const float *ad = dst + jp * bc * nr + ip * mr * nr;
                    for (size_t dj = 0; dj < dn / nr; dj++) {
                        const size_t b = (jp * (dn / nr) + dj) * nr * nr;
                        ukr_rows(nr, ap, nr, dor + b, cv + dj * nr, ldacc, 1.0f, 1.0f);
                        ukr_rows(nr, ad, nr, qr + b, ck + dj * nr, ldacc, g->scale, 1.0f);
                    }
                }
            }
            /* dQ^T += scale K^T dS^T (kb is a multiple of mr: K^T columns start at kb). */
            for (size_t jp = 0; jp < np; jp++)
                for (size_t dq = 0; prows[jp] && dq < dp / mr; dq++)
                    ukr(prows[jp], pkt + (dq * skp + kb) * mr, dst + jp * bc * nr,
                        dqt + jp * dp * nr + dq * mr * nr, nr, g->scale, 1.0f);
        }
        /* dq_i = dQ^T[:, i] (+ scale * sum_c shaw_ds[i][c] a^K_c). */
        for (size_t qi = 0; qi < count; qi++) {
            const size_t jp = qi / nr, j = qi % nr;
            const float *src = dqt + jp * dp * nr + j;
            float *out = g->dq + (q0 + qi) * g->lddq;
            for (size_t d = 0; d < D; d++) out[d] = src[d * nr];
            if (sw) {
                const float *bd = g->shaw_ds + (q0 + qi) * sw;
                for (size_t c = 0; c < sw; c++) {
                    const float w = g->scale * bd[c];
                    if (w == 0.0f) continue;
                    const float *ak = g->shaw_k + c * D;
                    for (size_t d = 0; d < D; d++) out[d] += w * ak[d];
                }
            }
        }
    }
}

void ck_f32_attention_grad_store_kv(const ck_kernels *k, size_t seq_k, size_t head_dim,
                                    const float *dk_acc, const float *dv_acc, float *dk,
                                    size_t lddk, float *dv, size_t lddv) {
    const size_t ld = ck_f32_attention_grad_acc_ld(k, head_dim);
    for (size_t j = 0; j < seq_k; j++) {
        memcpy(dk + j * lddk, dk_acc + j * ld, head_dim * sizeof(float));
        memcpy(dv + j * lddv, dv_acc + j * ld, head_dim * sizeof(float));
    }
}
