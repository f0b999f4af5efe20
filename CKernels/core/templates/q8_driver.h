/*
 * The int8 products' drivers (ck_q8_gemm_fn contract in attend_kernels.h, "int8 weights"),
 * written once and included by each variant's int8 file (ref/q8_scalar.c, x86/avx2/q8_avx2.c,
 * x86/avx512/q8_avx512.c, arm/neon/q8_neon.c; NEON twice: with and without sdot). The
 * includer defines
 *   Q8_TILE(R, C, a, i0, w, j0, out)   an always-inline function: out[r][c] for r < R <= 4,
 *                                      c < C <= 4 = sum_g sw(j0+c, g) sa(i0+r, g) I_g (the
 *                                      integer part; constants R, C after inlining)
 *   Q8_NAME(x)                         a unique name for this inclusion's functions
 *   Q8_GEMV, Q8_GEMM                   the two entry points' names
 *   Q8_GEMM_ROWS                       rows per GEMM strip (2 or 4)
 *   Q8_GEMV_COLS                       weight rows per GEMV tile (1, 2 or 4)
 *   Q8_OFFSET_SHIFT                    0, or 128 when the tile's I_g are on q - 128 (NEON's
 *                                      sdot): the offset becomes o + 128 sa
 *   Q8_GEMV_SMALL (optional)           int Q8_GEMV_SMALL(m, a, w, bias, c, ldc, offsets): the
 *                                      whole GEMV of a few rows (row-major weight) with the
 *                                      same bits as the tiles, offsets = this file's
 *                                      Q8_NAME(offsets); returns 0 when it declines (then the
 *                                      tiles run)
 *   Q8_GEMV_TILE (optional)            the GEMV's tile when it differs: out[r][c] then holds
 *                                      the offsets' share too (the AVX-512 VNNI GEMV forms it
 *                                      from the weight bytes and does not read w->gsum)
 *   Q8_BLOCKED_TILE (optional)         the tile on the blocked layout (w->blocked): out[r][c]
 *                                      with the offsets' share, as Q8_GEMV_TILE; without it a
 *                                      blocked weight goes to ck_q8_blocked_portable
 * and this file adds the offsets' share, sum_g o(i, g) F(j, g) (except after Q8_GEMV_TILE and
 * Q8_BLOCKED_TILE), and the bias, then stores.
 * GEMV: two rows per pass over the weight, then the odd row; GEMM: strips of Q8_GEMM_ROWS.
 */

/* sum_g (o[g] + shift * s[g]) * f[g] over g < G: eight lanes of partial sums (a vector of
 * the variant's ISA), then the scalar tail. */
typedef float Q8_NAME(v8) __attribute__((vector_size(32)));
static inline __attribute__((always_inline)) float Q8_NAME(offsets)(const float *o, const float *s,
                                                                   const float *f, size_t G) {
    (void)s;
    Q8_NAME(v8) acc = {0, 0, 0, 0, 0, 0, 0, 0}, ov, fv;
    size_t g = 0;
    for (; g + 8 <= G; g += 8) {
        memcpy(&ov, o + g, sizeof ov);
        memcpy(&fv, f + g, sizeof fv);
#if Q8_OFFSET_SHIFT
        Q8_NAME(v8) sv;
        memcpy(&sv, s + g, sizeof sv);
        ov += (float)Q8_OFFSET_SHIFT * sv;
#endif
        acc += ov * fv;
    }
    float t = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; g < G; g++) t += (o[g] + (float)Q8_OFFSET_SHIFT * s[g]) * f[g];
    return t;
}

#if defined(Q8_GEMV_TILE)
#define Q8_GEMV_OWN_OFFSETS 1
#else
#define Q8_GEMV_TILE Q8_TILE
#define Q8_GEMV_OWN_OFFSETS 0
#endif

/* Rows [i0, i0 + R) against every weight row, C at a time, then one at a time; `gemv`
 * (a constant) selects Q8_GEMV_TILE. */
static inline __attribute__((always_inline)) void Q8_NAME(strip)(int R, int C, const ck_q8_rows *a,
                                                                size_t i0, const ck_q8_weight *w,
                                                                const float *bias, float *c,
                                                                size_t ldc, const int gemv,
                                                                const int blocked) {
    const size_t n = w->n, G = (w->k + 31) / 32;
    const int own = blocked || (gemv && Q8_GEMV_OWN_OFFSETS);
    float out[4][4];
    for (size_t j = 0; j < n;) {
        const int cols = n - j >= (size_t)C ? C : 1;
        if (blocked) {
#if defined(Q8_BLOCKED_TILE)
            if (cols == C)
                Q8_BLOCKED_TILE(R, C, a, i0, w, j, out);
            else
                Q8_BLOCKED_TILE(R, 1, a, i0, w, j, out);
#endif
        } else if (gemv) {
            if (cols == C)
                Q8_GEMV_TILE(R, C, a, i0, w, j, out);
            else
                Q8_GEMV_TILE(R, 1, a, i0, w, j, out);
        } else if (cols == C)
            Q8_TILE(R, C, a, i0, w, j, out);
        else
            Q8_TILE(R, 1, a, i0, w, j, out);
        for (int r = 0; r < R; r++) {
            const size_t i = i0 + (size_t)r;
            for (int cc = 0; cc < cols; cc++) {
                const size_t jj = j + (size_t)cc;
                const float o = own ? 0.0f
                                    : Q8_NAME(offsets)(a->offset + i * a->lds, a->scale + i * a->lds,
                                                       w->gsum + jj * w->ldg, G);
                c[i * ldc + jj] = ck_q8_finish(own ? out[r][cc] : out[r][cc] + o, bias, jj);
            }
        }
        j += (size_t)cols;
    }
}

/* The blocked layout: strips of four rows (three, two, one at the end) against tiles of four
 * weight rows, or the portable loop when this variant has no blocked tile. */
static void Q8_NAME(blocked)(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias,
                             float *c, size_t ldc) {
#if defined(Q8_BLOCKED_TILE)
    size_t i = 0;
    for (; i + 4 <= m; i += 4) Q8_NAME(strip)(4, 4, a, i, w, bias, c, ldc, 0, 1);
    if (m - i == 3) Q8_NAME(strip)(3, 4, a, i, w, bias, c, ldc, 0, 1);
    else if (m - i == 2) Q8_NAME(strip)(2, 4, a, i, w, bias, c, ldc, 0, 1);
    else if (m - i == 1) Q8_NAME(strip)(1, 4, a, i, w, bias, c, ldc, 0, 1);
#else
    ck_q8_blocked_portable(m, a, w, bias, c, ldc);
#endif
}

void Q8_GEMV(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias, float *c,
             size_t ldc) {
    if (w->blocked) {
        Q8_NAME(blocked)(m, a, w, bias, c, ldc);
        return;
    }
#if defined(Q8_GEMV_SMALL)
    if (Q8_GEMV_SMALL(m, a, w, bias, c, ldc, Q8_NAME(offsets))) return;
#endif
    size_t i = 0;
    for (; i + 2 <= m; i += 2) Q8_NAME(strip)(2, Q8_GEMV_COLS, a, i, w, bias, c, ldc, 1, 0);
    if (i < m) Q8_NAME(strip)(1, Q8_GEMV_COLS, a, i, w, bias, c, ldc, 1, 0);
}

void Q8_GEMM(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias, float *c,
             size_t ldc) {
    if (w->blocked) {
        Q8_NAME(blocked)(m, a, w, bias, c, ldc);
        return;
    }
    size_t i = 0;
#if Q8_GEMM_ROWS == 4
    for (; i + 4 <= m; i += 4) Q8_NAME(strip)(4, 4, a, i, w, bias, c, ldc, 0, 0);
    if (m - i == 3) {
        Q8_NAME(strip)(3, 4, a, i, w, bias, c, ldc, 0, 0);
        return;
    }
#endif
    for (; i + 2 <= m; i += 2) Q8_NAME(strip)(2, 4, a, i, w, bias, c, ldc, 0, 0);
    if (i < m) Q8_NAME(strip)(1, 4, a, i, w, bias, c, ldc, 0, 0);
}
#undef Q8_GEMV_TILE
#undef Q8_GEMV_OWN_OFFSETS
