/*
 * Fused attention driver (portable): tiling, packing and the output transpose live here; the
 * arithmetic runs on each variant's attention micro-kernel (attn_ukr, an attn_mr x attn_nr
 * tile: mr = attn_mr, nr = attn_nr below) and online-softmax step.
 *
 * For one head and a block of Br = panels * nr queries, the kernel walks key blocks of Bc keys
 * and never forms more than a Bc x Br tile of scores:
 *
 *   S^T (Bc x Br)  = K_blk (Bc x D) * (scale Q_blk)^T      micro-kernel, kc = D
 *   online softmax over S^T's rows, vectors across queries  (m, l per query; corr rescales O)
 *   O^T (D x Br)   = O^T * corr + V_blk^T (D x Bc) * P^T    micro-kernel with the rescale in
 *                                                           its write-back (attn_ukr_scaled),
 *                                                           kc = Bc
 *
 * Transposing the problem makes every operand land in the micro-kernel's packed layouts
 * without a copy: the packed keys are "A" panels (mr keys x D), the scaled queries are "B"
 * panels (D x nr), the score tile written with ldc = nr *is* the packed "B" panel of P^T for
 * the second product, and V^T packs into "A" panels of mr dimensions by copying mr
 * contiguous floats per key. Softmax vectors run across queries, so a row max is a plain
 * vector max and each key's padding or causal mask is a per-row broadcast or compare.
 *
 *   workspace (per call):  Qp [panels][D][nr] | S [panels][Bc][nr] | Ot [panels][Dp][nr] | m,l,corr [Br]
 *   packed K/V (per head): K [Skp/mr][D][mr]   | V^T [Dp/mr][Skp][mr]      (Skp, Dp: multiples of mr)
 */
#include "ck_internal.h"
#include "attend_attention_backward.h"

#include <math.h>
#include <string.h>

static inline size_t ck_rup(size_t x, size_t m) { return (x + m - 1) / m * m; }

size_t ck_f32_attention_query_block(const ck_kernels *k) {
    return (size_t)k->attn_query_panels * (size_t)k->attn_nr;
}

/* Offset (floats) of V^T inside a packed head: after K, rounded up to 64 bytes. */
static size_t ck_vt_offset(const ck_kernels *k, size_t seq_k, size_t head_dim) {
    return ck_rup(ck_rup(seq_k, (size_t)k->attn_mr) * head_dim, CK_ALIGN / sizeof(float));
}

size_t ck_f32_attention_packed_kv_size(const ck_kernels *k, size_t seq_k, size_t head_dim) {
    const size_t mr = (size_t)k->attn_mr;
    return ck_vt_offset(k, seq_k, head_dim) + ck_rup(head_dim, mr) * ck_rup(seq_k, mr);
}

size_t ck_f32_attention_rel_bias_length(const ck_kernels *k, size_t seq_q, size_t seq_k) {
    return ck_rup(seq_q ? seq_q : 1, ck_f32_attention_query_block(k)) + (seq_k ? seq_k : 1) - 1;
}

size_t ck_f32_attention_workspace(const ck_kernels *k, size_t head_dim, size_t shaw_clip) {
    const size_t nr = (size_t)k->attn_nr, panels = (size_t)k->attn_query_panels;
    const size_t dp = ck_rup(head_dim, (size_t)k->attn_mr);
    const size_t shaw = shaw_clip ? 2 * shaw_clip + 1 : 0;
    return panels * nr * (head_dim + (size_t)k->attn_key_block + dp + 3 + shaw);
}

/* Shaw bucket of key j for query i (absolute query position i + causal_offset). */
static inline size_t ck_shaw_bucket(const ck_attention_head *h, size_t i, size_t j) {
    const ptrdiff_t c = (ptrdiff_t)h->shaw_clip;
    ptrdiff_t d = (ptrdiff_t)j - ((ptrdiff_t)i + h->causal_offset);
    d = d < -c ? -c : (d > c ? c : d);
    return (size_t)(d + c);
}

/* Prefetches rows first ..< first + count (those below rows) of a row-major matrix, D floats
 * each, every cache line of them. */
static inline void ck_prefetch_rows(const float *base, size_t ld, size_t D, size_t first,
                                    size_t count, size_t rows) {
    for (size_t r = first; r < first + count && r < rows; r++) {
        const char *row = (const char *)(base + r * ld);
        for (size_t off = 0; off < D * sizeof(float); off += 64) __builtin_prefetch(row + off, 0);
        __builtin_prefetch(row + D * sizeof(float) - 1, 0);
    }
}

void ck_f32_attention_pack_kv(const ck_kernels *k, size_t seq_k, size_t head_dim, const float *keys,
                              size_t ldk, const float *values, size_t ldv, float *packed) {
    const size_t mr = (size_t)k->attn_mr, D = head_dim;
    const size_t skp = ck_rup(seq_k, mr), dp = ck_rup(D, mr);
    /* Keys: panel p holds keys p*mr ..< p*mr+mr, column d = those keys' d-th component.
     * Written in order, column by column, reading the panel's mr key rows side by side
     * (one strided store per float took 2% of the kernel's time at seq 4096, head size 64). */
    float *kp = packed;
    /* The rows are usually not in cache and their stride (the fused QKV layout) defeats the
     * prefetcher: the next panel's lines are requested while this one is copied. */
    const size_t ahead = mr;
    for (size_t p = 0; p < skp / mr; p++) {
        ck_prefetch_rows(keys, ldk, D, p * mr + ahead, mr, seq_k);
        const size_t have = seq_k - p * mr < mr ? seq_k - p * mr : mr;
        /* 4 x 4 blocks transposed in registers (a float at a time, column by column, was 6% of
         * a 512-token head's attention on Zen 5, with the values' copy below). */
        ck_pack_rows(mr, have, D, keys + p * mr * ldk, ldk, kp + p * D * mr);
    }
    /* Values transposed: panel q holds dimensions q*mr ..< q*mr+mr; column j = key j. */
    float *vt = packed + ck_vt_offset(k, seq_k, D);
    /* Key by key, each value row read once (prefetched ahead, as the keys) and split into the
     * dp / mr panels. */
    for (size_t j = 0; j < skp; j++) {
        if (j % mr == 0) ck_prefetch_rows(values, ldv, D, j + ahead, mr, seq_k);
        for (size_t q = 0; q < dp / mr; q++) {
            float *col = vt + q * skp * mr + j * mr;
            const size_t d0 = q * mr, width = D - d0 < mr ? D - d0 : mr;
            if (j < seq_k) {
                /* Four floats at a time inline (mr floats are 32 bytes: a memcpy call per
                 * piece cost more than the copy). */
                const float *src = values + j * ldv + d0;
                size_t i = 0;
                for (; i + 4 <= width; i += 4) memcpy(col + i, src + i, 4 * sizeof(float));
                for (; i < width; i++) col[i] = src[i];
                for (i = width; i < mr; i++) col[i] = 0.0f;
            } else {
                for (size_t i = 0; i < mr; i++) col[i] = 0.0f;
            }
        }
    }
}

static void ck_attention_block(const ck_kernels *k, const ck_attention_head *h, size_t query0,
                               size_t count, float *workspace, float *lse);

void ck_f32_attention_block(const ck_kernels *k, const ck_attention_head *h, size_t query0,
                            size_t count, float *workspace) {
    ck_attention_block(k, h, query0, count, workspace, NULL);
}

void ck_f32_attention_block_lse(const ck_kernels *k, const ck_attention_head *h, size_t query0,
                                size_t count, float *workspace, float *lse) {
    ck_attention_block(k, h, query0, count, workspace, lse);
}

/* The fused forward; with lse, also each query's log-sum-exp m + log(l) (the training save). */
static void ck_attention_block(const ck_kernels *k, const ck_attention_head *h, size_t query0,
                               size_t count, float *workspace, float *lse) {
    const size_t mr = (size_t)k->attn_mr, nr = (size_t)k->attn_nr;
    const size_t panels = (size_t)k->attn_query_panels, bc = (size_t)k->attn_key_block;
    const size_t D = h->head_dim, dp = ck_rup(D, mr), skp = ck_rup(h->seq_k, mr);
    const size_t np = (count + nr - 1) / nr; /* query panels in use */
    float *qp = workspace;
    float *sp = qp + panels * D * nr;
    float *ot = sp + panels * bc * nr;
    float *m = ot + panels * dp * nr;
    float *l = m + panels * nr;
    float *corr = l + panels * nr;
    /* Shaw: per query, the softmax weight gathered per relative bucket (rescaled like O). */
    const size_t sw = h->shaw_clip ? 2 * h->shaw_clip + 1 : 0;
    float *bw = corr + panels * nr; /* [Br][sw] */
    const float *pk = h->packed_kv;
    const float *pvt = h->packed_kv + ck_vt_offset(k, h->seq_k, D);
    const ck_f32_gemm_ukr_fn ukr = k->attn_ukr;

    /* Scaled queries as B panels: qp[jp][d][j] = scale * q[query0 + jp*nr + j][d]. The rows
     * are usually not in cache and their stride defeats the prefetcher: every line is
     * requested first, so the misses overlap instead of stalling the packing one by one (2%
     * of the kernel's time at head size 64 with interleaved heads). */
    ck_prefetch_rows(h->q + query0 * h->ldq, h->ldq, D, 0, count, count);
    const float qscale = h->scale;
    for (size_t jp = 0; jp < np; jp++) {
        /* Transposed in 4 x 4 register blocks, then scaled in place (the same one rounding of
         * qscale * q per element; a float at a time this and the output's gather below were
         * 4% of a 512-token head's attention on Zen 5). Padding queries stay 0. */
        float *dst = qp + jp * D * nr;
        const size_t have = count - jp * nr < nr ? count - jp * nr : nr;
        ck_pack_rows(nr, have, D, h->q + (query0 + jp * nr) * h->ldq, h->ldq, dst);
        for (size_t d = 0; d < D; d++)
            for (size_t j = 0; j < have; j++) dst[d * nr + j] *= qscale;
    }
    for (size_t i = 0; i < np * nr; i++) {
        m[i] = -__builtin_inff();
        l[i] = 0.0f;
    }
    memset(ot, 0, np * dp * nr * sizeof(float));
    if (sw) memset(bw, 0, np * nr * sw * sizeof(float));

    /* Keys any query of this block can see: causal blocks past the last query are skipped,
     * and with a window the keys before the first query's window (from a multiple of mr, the
     * packed panels' start). */
    size_t kend = h->seq_k, kbeg = ck_window_first_key(h->window, query0, h->causal_offset);
    if (h->causal) {
        const ptrdiff_t last = (ptrdiff_t)(query0 + count - 1) + h->causal_offset + 1;
        kend = last <= 0 ? 0 : ((size_t)last < kend ? (size_t)last : kend);
    }
    kbeg = kbeg / mr * mr;
    for (size_t kb = kbeg; kb < kend; kb += bc) {
        const size_t valid = kend - kb < bc ? kend - kb : bc;
        const size_t rows = ck_rup(valid, mr);
        /* S^T tile: key panels x query panels, each an mr x nr micro-tile. */
        for (size_t ip = 0; ip < rows / mr; ip++) {
            const float *a = pk + (kb / mr + ip) * D * mr;
            for (size_t jp = 0; jp < np; jp++)
                ukr(D, a, qp + jp * D * nr, sp + jp * bc * nr + ip * mr * nr, nr, 1.0f, 0.0f);
        }
        for (size_t jp = 0; jp < np; jp++) {
            float *s = sp + jp * bc * nr, *c = corr + jp * nr, *o = ot + jp * dp * nr;
            if (sw) {
                /* Shaw key term: s(i, j) += qk[i][bucket(i, j)] (masks are applied after). */
                for (size_t r = 0; r < valid; r++)
                    for (size_t j = 0; j < nr; j++) {
                        const size_t qi = query0 + jp * nr + j;
                        if (qi < query0 + count)
                            s[r * nr + j] += h->shaw_qk[qi * sw + ck_shaw_bucket(h, qi, kb + r)];
                    }
            }
            /* A block every real query of the panel sees whole needs no causal or window
             * compare (padding queries' lanes are never written out). */
            const ck_attention_head *hs = h;
            ck_attention_head whole;
            if (h->causal || h->window) {
                const ptrdiff_t qa = (ptrdiff_t)(query0 + jp * nr) + h->causal_offset;
                const size_t last = query0 + jp * nr + nr < query0 + count ? query0 + jp * nr + nr
                                                                           : query0 + count;
                const ptrdiff_t qz = (ptrdiff_t)last - 1 + h->causal_offset;
                const ptrdiff_t k0 = (ptrdiff_t)kb, k1 = (ptrdiff_t)(kb + valid) - 1;
                if ((!h->causal || k1 <= qa) && (!h->window || qz - k0 < (ptrdiff_t)h->window)) {
                    whole = *h;
                    whole.causal = 0;
                    whole.window = 0;
                    hs = &whole;
                }
            }
            k->attn_softmax_step(rows, valid, s, m + jp * nr, l + jp * nr, c, kb, query0 + jp * nr,
                                 hs);
            if (h->dropout) {
                /* Dropout on the probabilities (l keeps their sum before it). */
                for (size_t j = 0; j < nr; j++) {
                    const size_t qi = query0 + jp * nr + j;
                    if (qi >= query0 + count) break;
                    for (size_t r = 0; r < valid; r++)
                        s[r * nr + j] *= ck_dropout_factor(h->dropout, h->seq_k, qi, kb + r);
                }
            }
            if (sw) {
                /* Shaw value term: bucket weights, rescaled with the running max. */
                for (size_t j = 0; j < nr; j++) {
                    const size_t qi = query0 + jp * nr + j;
                    if (qi >= query0 + count) continue;
                    float *b = bw + (jp * nr + j) * sw;
                    for (size_t t = 0; t < sw; t++) b[t] *= c[j];
                    for (size_t r = 0; r < valid; r++)
                        b[ck_shaw_bucket(h, qi, kb + r)] += s[r * nr + j];
                }
            }
            /* O^T = O^T * corr + V_blk^T * P^T: the rescale where a query's running max moved
             * (corr != 1; 0 on its first visible block) in the micro-kernel's write-back (a
             * pass of its own over O^T, scalar here, was 1% of the kernel's time at head size
             * 64 on Zen 3: the max moves in most blocks of 16 queries). kb is a multiple of
             * mr, so V^T columns start at kb. */
            for (size_t dq = 0; dq < dp / mr; dq++)
                k->attn_ukr_scaled(rows, pvt + (dq * skp + kb) * mr, s, o + dq * mr * nr, nr, c);
        }
    }
    /* o_i = O^T[:, i] / l_i (0 for a query that saw no key). O^T's columns are transposed into
     * rows in 4 x 4 register blocks, CK_OUT_CHUNK dimensions x up to CK_OUT_CHUNK queries at a
     * time, into a buffer in L1; each row is then scaled and written as whole vectors (the
     * output row is usually not in cache, and 4-byte stores to missing lines filled the store
     * queue: 2% of the kernel's time at head size 64). */
    enum { CK_OUT_CHUNK = 64 };
    for (size_t jp = 0; jp < np; jp++) {
        const size_t have = count - jp * nr < nr ? count - jp * nr : nr;
        for (size_t j0 = 0; j0 < have; j0 += CK_OUT_CHUNK) {
            const size_t nq = have - j0 < CK_OUT_CHUNK ? have - j0 : CK_OUT_CHUNK;
            for (size_t d0 = 0; d0 < D; d0 += CK_OUT_CHUNK) {
                float buf[CK_OUT_CHUNK * CK_OUT_CHUNK]; /* buf[j * CK_OUT_CHUNK + d] */
                const size_t w = D - d0 < CK_OUT_CHUNK ? D - d0 : CK_OUT_CHUNK;
                ck_pack_rows(CK_OUT_CHUNK, w, nq, ot + jp * dp * nr + d0 * nr + j0, nr, buf);
                for (size_t j = j0; j < j0 + nq; j++) {
                    const float li = l[jp * nr + j];
                    const float inv = li > 0.0f ? 1.0f / li : 0.0f;
                    const float *row = buf + (j - j0) * CK_OUT_CHUNK;
                    float *dst = h->o + (query0 + jp * nr + j) * h->ldo + d0;
                    for (size_t d = 0; d < w; d++) dst[d] = row[d] * inv;
                }
            }
        }
    }
    for (size_t qi = 0; qi < count; qi++) {
        const size_t jp = qi / nr, j = qi % nr;
        const float li = l[jp * nr + j];
        const float inv = li > 0.0f ? 1.0f / li : 0.0f;
        if (lse) lse[query0 + qi] = li > 0.0f ? m[jp * nr + j] + logf(li) : -__builtin_inff();
        float *dst = h->o + (query0 + qi) * h->ldo;
        if (sw) {
            const float *b = bw + qi * sw;
            for (size_t t = 0; t < sw; t++) {
                const float wt = b[t] * inv;
                if (wt == 0.0f) continue;
                const float *av = h->shaw_v + t * D;
                for (size_t d = 0; d < D; d++) dst[d] += wt * av[d];
            }
        }
    }
}

/* ---------------------------------------------------------------- attention on unpacked K/V */

size_t ck_f32_attention_short_workspace(const ck_kernels *k, size_t seq_q, size_t seq_k,
                                        size_t head_dim) {
    (void)k;
    (void)seq_q;
    /* attn_short (templates/attn_short.h): K^T and a block of score rows, keys rounded up to
     * the vector width (which divides 64), plus the alignment slack. */
    return (head_dim + CK_SHORT_WS_ROWS) * ck_rup(seq_k ? seq_k : 1, 64) + CK_ALIGN / sizeof(float);
}

void ck_f32_attention_short(const ck_kernels *k, const ck_attention_rows *h, float *workspace) {
    if (h->seq_q == 0) return;
    uintptr_t u = ((uintptr_t)workspace + (CK_ALIGN - 1)) & ~(uintptr_t)(CK_ALIGN - 1);
    k->attn_short(h, (float *)u);
}

size_t ck_f32_attention_few_workspace(size_t seq_k, size_t head_dim) {
    (void)head_dim;
    return seq_k ? seq_k : 1;
}

void ck_f32_attention_few(const ck_kernels *k, const ck_attention_rows *h, size_t query0,
                          size_t count, float *workspace) {
    const size_t D = h->head_dim;
    float *scores = workspace;
    for (size_t i = query0; i < query0 + count; i++) {
        float *out = h->o + i * h->ldo;
        /* Keys this query may see: [first, end), all of them, or up to its own position when
         * causal, from the start of its window when there is one. */
        size_t end = h->seq_k;
        if (h->causal) {
            const ptrdiff_t last = (ptrdiff_t)i + h->causal_offset + 1;
            end = last <= 0 ? 0 : ((size_t)last < end ? (size_t)last : end);
        }
        const size_t first = ck_window_first_key(h->window, i, h->causal_offset);
        if (first >= end) {
            memset(out, 0, D * sizeof(float));
            continue;
        }
        const size_t visible = end - first;
        k->gemv(visible, D, h->scale, h->q + i * h->ldq, h->k + first * h->ldk, h->ldk, 0.0f, scores);
        if (h->key_bias || h->rel_bias)
            for (size_t j = 0; j < visible; j++) scores[j] += ck_rows_bias(h, i, first + j);
        k->softmax_rows(1, visible, scores, visible, scores, visible, 1.0f, NULL, 0);
        k->gemv_t(D, visible, 1.0f, scores, h->v + first * h->ldv, h->ldv, 0.0f, out);
    }
}
