/*
 * Matrix-vector products (contracts in attend_kernels.h): CK_FN(ck_f32_gemv), y = W x for a
 * row-major [n, k] weight (decoding's projections), its multi-row forms CK_FN(ck_f32_gemv_rows)
 * and CK_FN(ck_w16_gemv) (a few rows of x, beams or a small batch, sharing every load of the
 * weight; the latter over a 16-bit weight, widened in registers by w16.h), and
 * CK_FN(ck_f32_gemv_t), y = W^T x (the value step of few-query attention). Instantiated per
 * ISA by variant.h.
 */
#ifndef CK_GEMV_GROUP
#define CK_GEMV_GROUP 2
#endif
_Static_assert(CK_GEMV_GROUP >= 1 && CK_GEMV_GROUP <= 4, "CK_GEMV_GROUP is 1 to 4");

/* The weight kinds of the GEMV body: the two 16-bit types (CK_W16_F16, CK_W16_BF16) and
 * float32. */
#define CK_GEMV_F32 2

/* Fully unrolls the loops over rows, accumulators and weight rows below (their counts are
 * compile-time constants), so the accumulators stay in registers through the reductions. */
#if defined(__clang__)
#define CK_GEMV_UNROLL _Pragma("clang loop unroll(full)")
#else
#define CK_GEMV_UNROLL
#endif

/* CK_VL weights of kind `kind` at element i of w, as float32. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_gemv_wload)(const int kind,
                                                                        const void *w, size_t i) {
    return kind == CK_GEMV_F32 ? CK_FN(ck_vload)((const float *)w + i)
                               : CK_FN(ck_vload_w16)(kind, (const uint16_t *)w + i);
}

static inline __attribute__((always_inline)) float CK_FN(ck_gemv_wone)(const int kind,
                                                                      const void *w, size_t i) {
    return kind == CK_GEMV_F32 ? ((const float *)w)[i]
                               : CK_FN(ck_w16_one)(kind, ((const uint16_t *)w)[i]);
}

/* One output: alpha * d + beta * y (beta == 0: y not read). The two products are exact in
 * double, so the sum is rounded the same way whether or not a compiler contracts it into a
 * fused multiply-add (GCC's default -ffp-contract=fast does, differently in different
 * inlined copies): every copy of the body writes the same bits. */
static inline __attribute__((always_inline)) void CK_FN(ck_gemv_out)(float *y, float alpha, float d,
                                                                    float beta) {
    *y = beta == 0.0f ? alpha * d : (float)((double)alpha * (double)d + (double)beta * (double)*y);
}

/*
 * The GEMV sums, shared by ck_f32_gemv, ck_f32_gemv_rows and ck_w16_gemv (contracts in
 * attend_kernels.h). `kind` and `R` (rows of x in this pass, 1..CK_GEMV_GROUP) are
 * compile-time constants after inlining, so the accumulators below live in registers.
 * Per row of x the sums are the one-row sums, term for term and in the same order, whatever R:
 *   short rows (one weight row j): four accumulators over 4-vector steps, then single vectors
 *     into the first, the halving-tree lane sum (ck_hsum_tree) of (a0 + a1) + (a2 + a3), the
 *     k % VL tail in order;
 *   long rows (four weight rows j..j+3): one accumulator per weight row, its tree lane sum,
 *     then the tail;
 *   the n % 4 long rows: one accumulator each.
 * Every loaded (and widened) weight vector serves all R rows.
 */
static inline __attribute__((always_inline)) void
CK_FN(ck_gemv_short_row)(const int kind, const int R, size_t k, float alpha, const float *x,
                         size_t ldx, const void *w, size_t wo, float beta, float *y, size_t ldy,
                         size_t pf) {
    const size_t kv = k / CK_VL * CK_VL, esize = kind == CK_GEMV_F32 ? 4 : 2;
    CK_VEC a[4][4];
    CK_GEMV_UNROLL
    for (int r = 0; r < R; r++)
        CK_GEMV_UNROLL
        for (int s = 0; s < 4; s++) a[r][s] = (CK_VEC){0};
    size_t p = 0;
    for (; p + 4 * CK_VL <= kv; p += 4 * CK_VL) {
        if (pf)
            for (size_t off = 0; off < 4 * CK_VL * esize; off += 64)
                __builtin_prefetch((const char *)w + (wo + p) * esize + pf + off, 0, 3);
        CK_GEMV_UNROLL
        for (int s = 0; s < 4; s++) {
            const CK_VEC wv = CK_FN(ck_gemv_wload)(kind, w, wo + p + (size_t)s * CK_VL);
            CK_GEMV_UNROLL
            for (int r = 0; r < R; r++)
                a[r][s] = CK_VFMA2(CK_FN(ck_vload)(x + (size_t)r * ldx + p + (size_t)s * CK_VL), wv,
                                   a[r][s]);
        }
    }
    for (; p < kv; p += CK_VL) {
        const CK_VEC wv = CK_FN(ck_gemv_wload)(kind, w, wo + p);
        CK_GEMV_UNROLL
        for (int r = 0; r < R; r++)
            a[r][0] = CK_VFMA2(CK_FN(ck_vload)(x + (size_t)r * ldx + p), wv, a[r][0]);
    }
    float d[4];
    CK_GEMV_UNROLL
    for (int r = 0; r < R; r++) d[r] = CK_FN(ck_hsum_tree)((a[r][0] + a[r][1]) + (a[r][2] + a[r][3]));
    for (p = kv; p < k; p++) {
        const float wp = CK_FN(ck_gemv_wone)(kind, w, wo + p);
        CK_GEMV_UNROLL
        for (int r = 0; r < R; r++) d[r] += x[(size_t)r * ldx + p] * wp;
    }
    CK_GEMV_UNROLL
    for (int r = 0; r < R; r++) CK_FN(ck_gemv_out)(y + (size_t)r * ldy, alpha, d[r], beta);
}

/* Long rows: `V` (4 or 1) weight rows starting at element wo, ldw apart, R rows of x. */
static inline __attribute__((always_inline)) void
CK_FN(ck_gemv_long_rows)(const int kind, const int R, const int V, size_t k, float alpha,
                         const float *x, size_t ldx, const void *w, size_t wo, size_t ldw,
                         float beta, float *y, size_t ldy) {
    const size_t kv = k / CK_VL * CK_VL;
    CK_VEC a[4][4];
    CK_GEMV_UNROLL
    for (int r = 0; r < R; r++)
        CK_GEMV_UNROLL
        for (int v = 0; v < V; v++) a[r][v] = (CK_VEC){0};
    for (size_t p = 0; p < kv; p += CK_VL) {
        CK_VEC wv[4];
        CK_GEMV_UNROLL
        for (int v = 0; v < V; v++) wv[v] = CK_FN(ck_gemv_wload)(kind, w, wo + (size_t)v * ldw + p);
        CK_GEMV_UNROLL
        for (int r = 0; r < R; r++) {
            const CK_VEC xv = CK_FN(ck_vload)(x + (size_t)r * ldx + p);
            CK_GEMV_UNROLL
            for (int v = 0; v < V; v++) a[r][v] = CK_VFMA2(xv, wv[v], a[r][v]);
        }
    }
    float d[4][4];
    CK_GEMV_UNROLL
    for (int r = 0; r < R; r++)
        CK_GEMV_UNROLL
        for (int v = 0; v < V; v++) d[r][v] = CK_FN(ck_hsum_tree)(a[r][v]);
    for (size_t p = kv; p < k; p++) {
        float u[4];
        CK_GEMV_UNROLL
        for (int v = 0; v < V; v++) u[v] = CK_FN(ck_gemv_wone)(kind, w, wo + (size_t)v * ldw + p);
        CK_GEMV_UNROLL
        for (int r = 0; r < R; r++)
            CK_GEMV_UNROLL
            for (int v = 0; v < V; v++) d[r][v] += x[(size_t)r * ldx + p] * u[v];
    }
    CK_GEMV_UNROLL
    for (int r = 0; r < R; r++)
        CK_GEMV_UNROLL
        for (int v = 0; v < V; v++)
            CK_FN(ck_gemv_out)(y + (size_t)r * ldy + v, alpha, d[r][v], beta);
}

/* Runs CALL(R) for the R = rr (1..CK_GEMV_GROUP) rows of this pass, R a constant. */
#define CK_GEMV_BY_ROWS(rr, CALL)                                                                   \
    do {                                                                                           \
        if (CK_GEMV_GROUP >= 4 && (rr) == 4) CALL(4);                                              \
        else if (CK_GEMV_GROUP >= 3 && (rr) == 3) CALL(3);                                         \
        else if (CK_GEMV_GROUP >= 2 && (rr) == 2) CALL(2);                                         \
        else CALL(1);                                                                              \
    } while (0)

/*
 * y_r = alpha * W x_r + beta * y_r for `rows` rows of x against a weight of kind `kind`.
 * Short rows (k <= short_k) go weight row by weight row, each read from memory once (one
 * sequential stream the prefetcher follows) and from L1 by the row groups after the first;
 * long rows four weight rows at a time. Short rows are also prefetched in software,
 * ck_f32_gemv_prefetch_bytes() (float32) or ck_w16_gemv_prefetch_bytes() (16-bit) ahead
 * (0: not).
 */
static inline __attribute__((always_inline)) void
CK_FN(ck_gemv_rows_body)(const int kind, const size_t short_k, size_t rows, size_t n, size_t k,
                         float alpha, const float *x, size_t ldx, const void *w, size_t ldw,
                         float beta, float *y, size_t ldy) {
    size_t j = 0;
    const size_t pf = (size_t)(kind == CK_GEMV_F32 ? ck_f32_gemv_prefetch_bytes() : ck_w16_gemv_prefetch_bytes());
    if (k <= short_k) {
        for (; j < n; j++)
            for (size_t r0 = 0; r0 < rows; r0 += CK_GEMV_GROUP) {
                const size_t rr = rows - r0 < CK_GEMV_GROUP ? rows - r0 : CK_GEMV_GROUP;
#define CK_CALL(R)                                                                                 \
    CK_FN(ck_gemv_short_row)(kind, R, k, alpha, x + r0 * ldx, ldx, w, j * ldw, beta,              \
                             y + r0 * ldy + j, ldy, pf)
                CK_GEMV_BY_ROWS(rr, CK_CALL);
#undef CK_CALL
            }
        return;
    }
    /* Four weight rows at a time, then the n % 4 last ones alone. */
    while (j < n) {
        const int four = n - j >= 4;
        for (size_t r0 = 0; r0 < rows; r0 += CK_GEMV_GROUP) {
            const size_t rr = rows - r0 < CK_GEMV_GROUP ? rows - r0 : CK_GEMV_GROUP;
#define CK_LONG(R, V)                                                                              \
    CK_FN(ck_gemv_long_rows)(kind, R, V, k, alpha, x + r0 * ldx, ldx, w, j * ldw, ldw, beta,      \
                             y + r0 * ldy + j, ldy)
#define CK_CALL(R)                                                                                 \
    do {                                                                                           \
        if (four) CK_LONG(R, 4);                                                                   \
        else CK_LONG(R, 1);                                                                        \
    } while (0)
            CK_GEMV_BY_ROWS(rr, CK_CALL);
#undef CK_CALL
#undef CK_LONG
        }
        j += four ? 4 : 1;
    }
}

/* Rows of up to 8192 values (32 KiB of float32: every d_model, and d_ff up to TinyLlama's
 * 5632) go one weight row at a time: the weight is read as one sequential stream, which the
 * hardware prefetcher follows better than four interleaved streams that each end after a
 * row, and a few rows of x re-read each weight row from L1. Longer rows (Llama-7B's
 * 11008-wide down projection) go four at a time. Measured on Zen 5 (1 thread): TinyLlama's
 * decode (rows of 2048 and 5632) 1.2x faster in float32 and 1.55x in BF16 than four rows at
 * a time (bench --only lm, interleaved; 16-bit rows four at a time streamed 21 GB/s, one at
 * a time 36 GB/s); a 32128 x 512 weight 9.5 vs 7.6 GB/s; Zen 4, GPT-2 small's 768-wide
 * layers: 1.4x. The 16-bit kernels switch at the same k (CK_W16_SHORT_ROW), so ck_w16_gemv sums exactly as
 * ck_f32_gemv does for every k. */
#define CK_GEMV_F32_SHORT_ROW 8192

void CK_FN(ck_f32_gemv)(size_t n, size_t k, float alpha, const float *x, const float *w, size_t ldw,
                        float beta, float *y) {
    CK_FN(ck_gemv_rows_body)(CK_GEMV_F32, CK_GEMV_F32_SHORT_ROW, 1, n, k, alpha, x, 0, w, ldw, beta,
                             y, 0);
}

void CK_FN(ck_f32_gemv_rows)(size_t rows, size_t n, size_t k, float alpha, const float *x,
                             size_t ldx, const float *w, size_t ldw, float beta, float *y,
                             size_t ldy) {
    CK_FN(ck_gemv_rows_body)(CK_GEMV_F32, CK_GEMV_F32_SHORT_ROW, rows, n, k, alpha, x, ldx, w, ldw,
                             beta, y, ldy);
}

void CK_FN(ck_w16_gemv)(int dtype, size_t rows, size_t n, size_t k, float alpha, const float *x,
                        size_t ldx, const uint16_t *w, size_t ldw, float beta, float *y,
                        size_t ldy) {
    if (dtype == CK_W16_BF16)
        CK_FN(ck_gemv_rows_body)(CK_W16_BF16, CK_W16_SHORT_ROW, rows, n, k, alpha, x, ldx, w, ldw,
                                 beta, y, ldy);
    else
        CK_FN(ck_gemv_rows_body)(CK_W16_F16, CK_W16_SHORT_ROW, rows, n, k, alpha, x, ldx, w, ldw,
                                 beta, y, ldy);
}

/* One output of gemv_t: alpha * acc + beta * y, with the fused multiply-add spelled out so no
 * compiler contracts it differently in different loops (GCC's default -ffp-contract=fast
 * would, and a column's bits would then depend on which block computed it). */
static inline __attribute__((always_inline)) float CK_FN(ck_gemv_t_merge)(float alpha, float acc,
                                                                          float beta, float y) {
    return beta == 0.0f ? alpha * acc : __builtin_fmaf(beta, y, alpha * acc);
}

/* y = alpha * W^T x + beta * y for W [k, n] row-major: a weighted sum of k rows (contract in
 * attend_kernels.h). Columns go four vectors at a time, held in registers across all k rows,
 * so every output column is the same in-order sum of fused multiply-adds whatever the block
 * (the n % VL tail too, in scalars). */
void CK_FN(ck_f32_gemv_t)(size_t n, size_t k, float alpha, const float *x, const float *w,
                          size_t ldw, float beta, float *y) {
    size_t d = 0;
    for (; d + 4 * CK_VL <= n; d += 4 * CK_VL) {
        CK_VEC a0 = (CK_VEC){0}, a1 = (CK_VEC){0}, a2 = (CK_VEC){0}, a3 = (CK_VEC){0};
        for (size_t j = 0; j < k; j++) {
            const float *row = w + j * ldw + d;
            const CK_VEC xj = CK_VSPLAT(x[j]);
            a0 = CK_VFMA2(xj, CK_FN(ck_vload)(row), a0);
            a1 = CK_VFMA2(xj, CK_FN(ck_vload)(row + CK_VL), a1);
            a2 = CK_VFMA2(xj, CK_FN(ck_vload)(row + 2 * CK_VL), a2);
            a3 = CK_VFMA2(xj, CK_FN(ck_vload)(row + 3 * CK_VL), a3);
        }
        const CK_VEC acc[4] = {a0, a1, a2, a3};
        for (int v = 0; v < 4; v++)
            for (int t = 0; t < CK_VL; t++) {
                float *out = y + d + (size_t)v * CK_VL + (size_t)t;
                *out = CK_FN(ck_gemv_t_merge)(alpha, acc[v][t], beta, *out);
            }
    }
    for (; d + CK_VL <= n; d += CK_VL) {
        CK_VEC a = (CK_VEC){0};
        for (size_t j = 0; j < k; j++)
            a = CK_VFMA2(CK_VSPLAT(x[j]), CK_FN(ck_vload)(w + j * ldw + d), a);
        for (int t = 0; t < CK_VL; t++) {
            float *out = y + d + (size_t)t;
            *out = CK_FN(ck_gemv_t_merge)(alpha, a[t], beta, *out);
        }
    }
    for (; d < n; d++) {
        float a = 0.0f;
#if defined(CK_NO_FMA)
        for (size_t j = 0; j < k; j++) a = x[j] * w[j * ldw + d] + a;
#else
        for (size_t j = 0; j < k; j++) a = __builtin_fmaf(x[j], w[j * ldw + d], a);
#endif
        y[d] = CK_FN(ck_gemv_t_merge)(alpha, a, beta, y[d]);
    }
}
