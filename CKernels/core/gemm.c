/*
 * SGEMM driver: the portable half of the BLIS structure. Loops, packing and edge tiles are
 * here, written once; each ISA supplies only an MR x NR micro-kernel (ck_kernels.gemm_ukr).
 *
 *   for jc in 0..<n step nc                         B block: kc x nc     (L3)
 *     for pc in 0..<k step kc        pack B block   -> panels of nr columns
 *       for ic in 0..<m step mc      pack A block   -> panels of mr rows   (L2)
 *         for jr in 0..<nc step nr                  B micro-panel kc x nr (L1)
 *           for ir in 0..<mc step mr                A micro-panel mr x kc
 *             micro-kernel: C[ir:ir+mr, jr:jr+nr] (+)= A panel * B panel
 *
 * Packed layouts (each panel zero-padded to a full mr or nr, so the micro-kernel only ever
 * sees full tiles):
 *
 *   packed A, one panel per mr rows         packed B, one panel per nr columns
 *   p=0: a00 a10 .. a(mr-1)0               p=0: b00 b01 .. b0(nr-1)
 *   p=1: a01 a11 .. a(mr-1)1               p=1: b10 b11 .. b1(nr-1)
 *   ...  (kc columns of mr floats)         ...  (kc rows of nr floats)
 *
 * Edge tiles (m or n not a multiple of mr / nr): the micro-kernel writes a full tile into an
 * aligned stack buffer, and only the valid part is merged into C with alpha and beta. This is
 * the one place edges are handled, for every ISA and for both drivers: ck_f32_gemm (packs A
 * and B per call) and ck_f32_gemm_packed (a weight packed once by ck_f32_pack_weight, with a
 * fused bias / activation / residual epilogue) share ck_macro_kernel.
 */
#include "ck_internal.h"

#include <string.h>

#define CK_MAX_TILE 1024 /* floats; the largest mr*nr of any variant (14 x 32 = 448) fits */

static inline size_t ck_min(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t ck_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
static inline float *ck_align(float *p) {
    uintptr_t u = ((uintptr_t)p + (CK_ALIGN - 1)) & ~(uintptr_t)(CK_ALIGN - 1);
    return (float *)u;
}

/* The row block for m rows: as many blocks as g->mc requires, of equal whole row tiles (37
 * tiles in blocks of at most 18 run as 13, 13, 11, not 18, 18, 1, whose last block would
 * stream the whole B block from L3 for one row tile). At most g->mc (at least mr). */
static size_t ck_balanced_mc(const ck_gemm_blocking *g, size_t m) {
    const size_t mr = (size_t)g->mr, tiles = (m ? m + mr - 1 : mr) / mr;
    const size_t per = (size_t)g->mc / mr ? (size_t)g->mc / mr : 1, blocks = (tiles + per - 1) / per;
    return (tiles + blocks - 1) / blocks * mr;
}

/* Block sizes trimmed to the problem, so small products need small workspaces. */
static void ck_blocks(const ck_kernels *kern, size_t m, size_t n, size_t kdim, size_t *mc,
                      size_t *nc, size_t *kc) {
    const ck_gemm_blocking *g = &kern->gemm;
    *mc = ck_balanced_mc(g, m);
    *nc = ck_min((size_t)g->nc, ck_round_up(n ? n : 1, (size_t)g->nr));
    *kc = ck_min((size_t)g->kc, kdim ? kdim : 1);
}

size_t ck_f32_gemm_workspace(const ck_kernels *kern, size_t m, size_t n, size_t kdim) {
    size_t mc, nc, kc;
    ck_blocks(kern, m, n, kdim, &mc, &nc, &kc);
    return mc * kc + nc * kc + 2 * (CK_ALIGN / sizeof(float));
}

/* Four floats, the portable 128-bit vector (SSE2 on every x86-64, NEON on AArch64). */
typedef float ck_f4 __attribute__((vector_size(16)));

static inline ck_f4 ck_f4_load(const float *p) {
    ck_f4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ck_pack_rows (contract in ck_internal.h). Whole 4 x 4 blocks are transposed in registers
 * (four loads, eight shuffles, four stores for 16 floats); the k range is taken in strips of
 * CK_PACK_STRIP, so each row contributes whole cache lines and the strip's destination
 * (CK_PACK_STRIP * w floats) stays in L1 while it is filled. */
#define CK_PACK_STRIP 16
void ck_pack_rows(size_t w, size_t rows, size_t kcb, const float *src, size_t ld, float *dst) {
    const size_t rows4 = rows / 4 * 4;
    for (size_t p0 = 0; p0 < kcb; p0 += CK_PACK_STRIP) {
        const size_t len = ck_min(CK_PACK_STRIP, kcb - p0), len4 = len / 4 * 4;
        float *d = dst + p0 * w;
        for (size_t r = 0; r < rows4; r += 4) {
            const float *s = src + r * ld + p0;
            for (size_t p = 0; p < len4; p += 4) {
                const ck_f4 r0 = ck_f4_load(s + p), r1 = ck_f4_load(s + ld + p);
                const ck_f4 r2 = ck_f4_load(s + 2 * ld + p), r3 = ck_f4_load(s + 3 * ld + p);
                const ck_f4 t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5);
                const ck_f4 t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
                const ck_f4 t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5);
                const ck_f4 t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
                const ck_f4 c0 = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
                const ck_f4 c1 = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
                const ck_f4 c2 = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
                const ck_f4 c3 = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
                float *o = d + p * w + r;
                memcpy(o, &c0, sizeof c0);
                memcpy(o + w, &c1, sizeof c1);
                memcpy(o + 2 * w, &c2, sizeof c2);
                memcpy(o + 3 * w, &c3, sizeof c3);
            }
            for (size_t p = len4; p < len; p++)
                for (size_t i = 0; i < 4; i++) d[p * w + r + i] = s[i * ld + p];
        }
        for (size_t r = rows4; r < rows; r++) {
            const float *s = src + r * ld + p0;
            for (size_t p = 0; p < len; p++) d[p * w + r] = s[p];
        }
        for (size_t p = 0; p < len; p++)
            for (size_t r = rows; r < w; r++) d[p * w + r] = 0.0f;
    }
}

/* Packs op(A)[i0 ..< i0+mcb, p0 ..< p0+kcb] into mr-row panels. */
static void ck_pack_a(size_t mr, size_t mcb, size_t kcb, const float *a, size_t lda, int trans,
                      size_t i0, size_t p0, float *dst) {
    for (size_t ir = 0; ir < mcb; ir += mr) {
        size_t rows = ck_min(mr, mcb - ir);
        if (!trans) {
            /* op(A)[i][p] = a[i*lda + p]: rows scattered by mr. */
            ck_pack_rows(mr, rows, kcb, a + (i0 + ir) * lda + p0, lda, dst);
        } else {
            /* op(A)[i][p] = a[p*lda + i]: each packed column is a contiguous run of A. */
            for (size_t p = 0; p < kcb; p++) {
                const float *src = a + (p0 + p) * lda + i0 + ir;
                float *d = dst + p * mr;
                memcpy(d, src, rows * sizeof(float));
                for (size_t i = rows; i < mr; i++) d[i] = 0.0f;
            }
        }
        dst += mr * kcb;
    }
}

/* Packs op(B)[p0 ..< p0+kcb, j0 ..< j0+ncb] into nr-column panels. */
static void ck_pack_b(size_t nr, size_t ncb, size_t kcb, const float *b, size_t ldb, int trans,
                      size_t p0, size_t j0, float *dst) {
    for (size_t jr = 0; jr < ncb; jr += nr) {
        size_t cols = ck_min(nr, ncb - jr);
        if (!trans) {
            /* op(B)[p][j] = b[p*ldb + j]: each packed row is a contiguous run of B. */
            for (size_t p = 0; p < kcb; p++) {
                const float *src = b + (p0 + p) * ldb + j0 + jr;
                float *d = dst + p * nr;
                memcpy(d, src, cols * sizeof(float));
                for (size_t j = cols; j < nr; j++) d[j] = 0.0f;
            }
        } else {
            /* op(B)[p][j] = b[j*ldb + p] (weights stored [out, in]): rows scattered by nr. */
            ck_pack_rows(nr, cols, kcb, b + (j0 + jr) * ldb + p0, ldb, dst);
        }
        dst += nr * kcb;
    }
}

/* C = beta * C for the m x n block; beta == 0 writes zeros without reading C. */
static void ck_scale_c(size_t m, size_t n, float beta, float *c, size_t ldc) {
    for (size_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f) {
            memset(row, 0, n * sizeof(float));
        } else if (beta != 1.0f) {
            for (size_t j = 0; j < n; j++) row[j] *= beta;
        }
    }
}

/*
 * The macro-kernel shared by both drivers: every micro-tile of an mcb x cols block of C
 * against consecutive packed B micro-panels (kcb rows of nr each) and the block's A, either
 * packed (pa: mr-row panels of kcb columns) or, when pa is NULL, read in place (ar: row i at
 * ar + i*lda) by the rows micro-kernel, with the last partial row tile taken from pa_tail (its
 * rows packed and zero-padded to mr). B micro-panel outer (it stays in L1), A inner. This is
 * the one place edge tiles are handled: a partial tile goes through an aligned buffer and
 * only its valid part is merged into C with alpha and beta. `ep` (NULL: none) is applied to
 * each tile right after it is written, while it is in L1; (row0, col0) locate the block in
 * the product.
 */
static void ck_macro_kernel(const ck_kernels *kern, size_t mcb, size_t cols, size_t kcb,
                            const float *pa, const float *ar, size_t lda, const float *pa_tail,
                            const float *pb, float *c, size_t ldc, float alpha, float beta,
                            const ck_gemm_epilogue *ep, size_t row0, size_t col0) {
    const size_t mr = (size_t)kern->gemm.mr, nr = (size_t)kern->gemm.nr;
    const ck_f32_gemm_ukr_fn ukr = kern->gemm_ukr;
    const ck_f32_gemm_ukr_rows_fn ukr_rows = kern->gemm_ukr_rows;
    _Alignas(CK_ALIGN) float tile[CK_MAX_TILE];
    for (size_t jr = 0; jr < cols; jr += nr) {
        const size_t nrb = ck_min(nr, cols - jr);
        const float *bp = pb + jr * kcb;
        for (size_t ir = 0; ir < mcb; ir += mr) {
            const size_t mrb = ck_min(mr, mcb - ir);
            /* Rows in place for full row tiles of an unpacked A; packed panels otherwise. */
            const int in_place = pa == NULL && mrb == mr;
            const float *ap = pa ? pa + ir * kcb : pa_tail;
            float *cij = c + ir * ldc + jr;
            if (ep && ep->residual) {
                /* The epilogue reads this tile's residual right after the micro-kernel: a
                 * strip of nr floats from each of mr rows, in an order the hardware
                 * prefetchers do not follow. Fetch it now; the micro-kernel's k loop hides
                 * the latency (GPT-2 small's 2-thread prefill: the epilogue's share of the
                 * samples 5.9% -> 4.3%, perf, timer sampling). */
                const float *res = ep->residual + (row0 + ir) * ep->ldr + col0 + jr;
                for (size_t i = 0; i < mrb; i++) {
                    __builtin_prefetch(res + i * ep->ldr, 0);
                    __builtin_prefetch(res + i * ep->ldr + nrb - 1, 0);
                }
            }
            if (mrb == mr && nrb == nr) {
                if (in_place)
                    ukr_rows(kcb, ar + ir * lda, lda, bp, cij, ldc, alpha, beta);
                else
                    ukr(kcb, ap, bp, cij, ldc, alpha, beta);
            } else {
                /* Edge tile: full tile into the buffer, merge the valid part. */
                if (in_place)
                    ukr_rows(kcb, ar + ir * lda, lda, bp, tile, nr, 1.0f, 0.0f);
                else
                    ukr(kcb, ap, bp, tile, nr, 1.0f, 0.0f);
                for (size_t i = 0; i < mrb; i++) {
                    float *crow = cij + i * ldc;
                    const float *trow = tile + i * nr;
                    for (size_t j = 0; j < nrb; j++)
                        crow[j] = beta == 0.0f ? alpha * trow[j] : alpha * trow[j] + beta * crow[j];
                }
            }
            if (ep) kern->gemm_epilogue(ep, row0 + ir, col0 + jr, mrb, nrb, cij, ldc);
        }
    }
}

void ck_f32_gemm(const ck_kernels *kern, int trans_a, int trans_b, size_t m, size_t n, size_t kdim,
                 float alpha, const float *a, size_t lda, const float *b, size_t ldb, float beta,
                 float *c, size_t ldc, float *workspace) {
    if (m == 0 || n == 0) return;
    if (kdim == 0 || alpha == 0.0f) {
        ck_scale_c(m, n, beta, c, ldc);
        return;
    }
    const size_t mr = (size_t)kern->gemm.mr, nr = (size_t)kern->gemm.nr;
    size_t mc, nc, kc;
    ck_blocks(kern, m, n, kdim, &mc, &nc, &kc);
    float *pa = ck_align(workspace);
    float *pb = ck_align(pa + mc * kc);

    for (size_t jc = 0; jc < n; jc += nc) {
        const size_t ncb = ck_min(nc, n - jc);
        for (size_t pc = 0; pc < kdim; pc += kc) {
            const size_t kcb = ck_min(kc, kdim - pc);
            const float beta_p = pc == 0 ? beta : 1.0f; /* later k blocks accumulate */
            ck_pack_b(nr, ncb, kcb, b, ldb, trans_b, pc, jc, pb);
            for (size_t ic = 0; ic < m; ic += mc) {
                const size_t mcb = ck_min(mc, m - ic);
                ck_pack_a(mr, mcb, kcb, a, lda, trans_a, ic, pc, pa);
                ck_macro_kernel(kern, mcb, ncb, kcb, pa, NULL, 0, NULL, pb, c + ic * ldc + jc, ldc,
                                alpha, beta_p, NULL, ic, jc);
            }
        }
    }
}

/* ---------------------------------------------------------------- GEMM on a packed weight */

static size_t ck_panels(const ck_kernels *kern, size_t n) {
    const size_t nr = (size_t)kern->gemm.nr;
    return (n + nr - 1) / nr;
}

size_t ck_f32_packed_weight_size(const ck_kernels *kern, size_t n, size_t kdim) {
    return ck_panels(kern, n) * (size_t)kern->gemm.nr * kdim;
}

void ck_f32_pack_b(const ck_kernels *kern, int trans_b, size_t n, size_t kdim, const float *b,
                   size_t ldb, size_t panel0, size_t panel1, float *packed) {
    const size_t nr = (size_t)kern->gemm.nr, kc = (size_t)kern->gemm.kc;
    const size_t panels = ck_panels(kern, n);
    if (panel1 > panels) panel1 = panels;
    for (size_t pc = 0; pc < kdim; pc += kc) {
        const size_t kcb = ck_min(kc, kdim - pc);
        for (size_t j = panel0; j < panel1; j++) {
            /* op(B)'s columns j*nr ..< j*nr+nr (a weight's rows when transposed). */
            const size_t cols = ck_min(nr, n - j * nr);
            ck_pack_b(nr, cols, kcb, b, ldb, trans_b, pc, j * nr,
                      packed + pc * panels * nr + j * kcb * nr);
        }
    }
}

void ck_f32_pack_weight(const ck_kernels *kern, size_t n, size_t kdim, const float *w, size_t ldw,
                        size_t panel0, size_t panel1, float *packed) {
    ck_f32_pack_b(kern, 1, n, kdim, w, ldw, panel0, panel1, packed);
}

size_t ck_f32_packed_a_size(const ck_kernels *kern, size_t m, size_t kdim) {
    return ck_round_up(m, (size_t)kern->gemm.mr) * kdim;
}

void ck_f32_pack_a_rows(const ck_kernels *kern, size_t m, size_t kdim, const float *a, size_t lda,
                        size_t row0, size_t row1, float *packed) {
    const size_t mr = (size_t)kern->gemm.mr, kc = (size_t)kern->gemm.kc;
    const size_t mpad = ck_round_up(m, mr);
    if (row1 > m) row1 = m;
    row0 -= row0 % mr; /* whole panels only */
    if (row0 >= row1) return;
    for (size_t pc = 0; pc < kdim; pc += kc) {
        const size_t kcb = ck_min(kc, kdim - pc);
        ck_pack_a(mr, row1 - row0, kcb, a, lda, 0, row0, pc, packed + pc * mpad + row0 * kcb);
    }
}

void ck_f32_pack_a(const ck_kernels *kern, size_t m, size_t kdim, const float *a, size_t lda,
                   float *packed) {
    ck_f32_pack_a_rows(kern, m, kdim, a, lda, 0, m, packed);
}

size_t ck_f32_gemm_packed_workspace(const ck_kernels *kern, size_t m, size_t kdim) {
    const size_t mr = (size_t)kern->gemm.mr;
    const size_t mc = ck_min((size_t)kern->gemm.mc, ck_round_up(m ? m : 1, mr));
    return mc * ck_min((size_t)kern->gemm.kc, kdim ? kdim : 1) + CK_ALIGN / sizeof(float);
}

/* Whether rows of stride lda can be read in place by the rows micro-kernel: mr rows whose
 * stride is a multiple of 4 KiB fall into the same L1 set (the set index is address bits
 * 6-11 on 64-set L1s) and evict one another, so those A blocks are packed instead. */
static int ck_rows_in_place(size_t lda) { return (lda * sizeof(float)) % 4096 != 0; }

int ck_f32_gemm_packed_reads_a_in_place(size_t lda) { return ck_rows_in_place(lda); }

void ck_f32_gemm_packed(const ck_kernels *kern, const ck_gemm_packed *g, size_t row0, size_t row1,
                        size_t panel0, size_t panel1, float *workspace) {
    const size_t mr = (size_t)kern->gemm.mr, nr = (size_t)kern->gemm.nr;
    const size_t kc = (size_t)kern->gemm.kc, mc = ck_balanced_mc(&kern->gemm, row1 - row0);
    const size_t wpanels = ck_panels(kern, g->weight_n), wp0 = g->weight_col0 / nr;
    const size_t col0 = panel0 * nr, col1 = ck_min(g->n, panel1 * nr);
    if (row0 >= row1 || col0 >= col1) return;
    const size_t cols = col1 - col0;
    const int has_ep =
        g->epilogue.bias || g->epilogue.residual || g->epilogue.activation != CK_ACT_NONE;
    if (g->k == 0) {
        float *c = g->c + row0 * g->ldc + col0;
        ck_scale_c(row1 - row0, cols, g->beta, c, g->ldc);
        if (has_ep) kern->gemm_epilogue(&g->epilogue, row0, col0, row1 - row0, cols, c, g->ldc);
        return;
    }
    const size_t mpad = ck_round_up(g->m, mr);
    const int in_place = !g->packed_a && !g->trans_a && ck_rows_in_place(g->lda);
    float *ws = ck_align(workspace);
    for (size_t ic = row0; ic < row1; ic += mc) {
        const size_t mcb = ck_min(mc, row1 - ic);
        const size_t full = mcb / mr * mr; /* rows of whole mr tiles; the rest is the tail */
        for (size_t pc = 0; pc < g->k; pc += kc) {
            const size_t kcb = ck_min(kc, g->k - pc);
            const float *pa = NULL, *ar = NULL;
            if (g->packed_a) {
                pa = g->packed_a + pc * mpad + ic * kcb;
            } else if (in_place) {
                /* A in place; only a partial last row tile is packed (zero-padded to mr). */
                ar = g->a + ic * g->lda + pc;
                if (full < mcb) ck_pack_a(mr, mcb - full, kcb, g->a, g->lda, 0, ic + full, pc, ws);
            } else {
                ck_pack_a(mr, mcb, kcb, g->a, g->lda, g->trans_a, ic, pc, ws);
                pa = ws;
            }
            const float *pb = g->packed_w + pc * wpanels * nr + (wp0 + panel0) * kcb * nr;
            const int last = pc + kcb == g->k;
            ck_macro_kernel(kern, mcb, cols, kcb, pa, ar, g->lda, ws, pb, g->c + ic * g->ldc + col0,
                            g->ldc, 1.0f, pc == 0 ? g->beta : 1.0f,
                            last && has_ep ? &g->epilogue : NULL, ic, col0);
        }
    }
}

/* ---------------------------------------------------------------- GEMM on a 16-bit weight */

size_t ck_w16_gemm_workspace(const ck_kernels *kern, size_t m, size_t n, size_t kdim) {
    return ck_f32_gemm_workspace(kern, m, n, kdim);
}

/* Packs rows j0 ..< j0+ncb, columns p0 ..< p0+kcb of a 16-bit [n, k] weight into nr-column
 * panels (ck_pack_b's transposed case), each weight row widened by the variant's w16_widen
 * in chunks of a stack buffer, then scattered by nr. */
static void ck_pack_b_w16(const ck_kernels *kern, int dtype, size_t ncb, size_t kcb,
                          const uint16_t *w, size_t ldw, size_t p0, size_t j0, float *dst) {
    enum { CHUNK = 256 };
    _Alignas(CK_ALIGN) float row[CHUNK];
    const size_t nr = (size_t)kern->gemm.nr;
    for (size_t jr = 0; jr < ncb; jr += nr) {
        const size_t cols = ck_min(nr, ncb - jr);
        for (size_t j = 0; j < cols; j++) {
            const uint16_t *src = w + (j0 + jr + j) * ldw + p0;
            for (size_t q = 0; q < kcb; q += CHUNK) {
                const size_t len = ck_min(CHUNK, kcb - q);
                kern->w16_widen(dtype, len, src + q, row);
                float *d = dst + q * nr + j;
                for (size_t p = 0; p < len; p++) d[p * nr] = row[p];
            }
        }
        for (size_t j = cols; j < nr; j++)
            for (size_t p = 0; p < kcb; p++) dst[p * nr + j] = 0.0f;
        dst += nr * kcb;
    }
}

void ck_w16_gemm(const ck_kernels *kern, int dtype, size_t m, size_t n, size_t kdim, const float *a,
                 size_t lda, const uint16_t *w, size_t ldw, float beta, float *c, size_t ldc,
                 float *workspace) {
    if (m == 0 || n == 0) return;
    if (kdim == 0) {
        ck_scale_c(m, n, beta, c, ldc);
        return;
    }
    const size_t mr = (size_t)kern->gemm.mr;
    size_t mc, nc, kc;
    ck_blocks(kern, m, n, kdim, &mc, &nc, &kc);
    float *pa = ck_align(workspace);
    float *pb = ck_align(pa + mc * kc);
    for (size_t jc = 0; jc < n; jc += nc) {
        const size_t ncb = ck_min(nc, n - jc);
        for (size_t pc = 0; pc < kdim; pc += kc) {
            const size_t kcb = ck_min(kc, kdim - pc);
            const float beta_p = pc == 0 ? beta : 1.0f;
            ck_pack_b_w16(kern, dtype, ncb, kcb, w, ldw, pc, jc, pb);
            for (size_t ic = 0; ic < m; ic += mc) {
                const size_t mcb = ck_min(mc, m - ic);
                ck_pack_a(mr, mcb, kcb, a, lda, 0, ic, pc, pa);
                ck_macro_kernel(kern, mcb, ncb, kcb, pa, NULL, 0, NULL, pb, c + ic * ldc + jc, ldc,
                                1.0f, beta_p, NULL, ic, jc);
            }
        }
    }
}
