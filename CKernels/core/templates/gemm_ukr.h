/*
 * The SGEMM micro-kernel, written once with clang/GCC vector extensions and instantiated per
 * ISA (x86/avx2, x86/avx512, arm/neon) inside that ISA's target-attribute region. The vector
 * width and the tile are the instantiation's parameters; everything else is shared, so the
 * AVX-512 instantiation can be checked by compiling the very same source for AVX2
 * (ck_kernels_avx512_layout_on_avx2) on machines without AVX-512.
 *
 * Included once per tile shape (variant.h: the GEMM's, and the fused attention's where it has
 * its own). Before including, define:
 *   CK_T_NAME    function name, e.g. ck_f32_gemm_ukr_6x16__avx2
 *   CK_T_ROWS_NAME  (optional) the same kernel reading A rows in place, e.g.
 *                ck_f32_gemm_ukr_rows_6x16__avx2
 *   CK_T_SCALED_NAME  (optional) the same kernel accumulating into C scaled per column,
 *                C = C * colscale[j] + A * B (the fused attention's O^T update, its online
 *                softmax's rescale folded into the write-back), e.g. ck_f32_attn_ukr_scaled__avx2
 *   CK_VEC       vector type, float __attribute__((vector_size(4*CK_VL)))
 *   CK_VL        lanes per vector
 *   CK_T_MR      rows of the tile (broadcast from packed A)
 *   CK_T_NV      vectors per tile row; NR = CK_T_NV * CK_VL (loaded from packed B)
 *
 * Register use: CK_T_MR*CK_T_NV accumulators + CK_T_NV B vectors + 1 broadcast must fit the
 * file (16 ymm on AVX2, 32 zmm on AVX-512, 32 q on NEON).
 *
 *          packed B micro-panel (kc rows of NR)       C tile (MR x NR, registers)
 *          p=0 [b b b b ... b]                        acc[0][0..NV)
 *          p=1 [b b b b ... b]      a[p*MR+i] x  ->    ...
 *          ...                                        acc[MR-1][0..NV)
 *   packed A micro-panel: for each p, MR consecutive floats (column p of the A sliver).
 */

#define CK_NR (CK_T_NV * CK_VL)
#define CK_CAT2(x, y) x##y
#define CK_CAT(x, y) CK_CAT2(x, y)

#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_fma)
#define CK_VFMA(x, y, z) __builtin_elementwise_fma((x), (y), (z))
#endif
#endif
#ifndef CK_VFMA
#define CK_VFMA(x, y, z) ((x) * (y) + (z))
#endif
/* Broadcast a scalar: x + (-0.0) is an exact identity, so it folds away and only the splat
 * (vbroadcastss, or an embedded {1toN} operand on AVX-512) remains. (0.0 + x would not fold:
 * it turns -0.0 into +0.0.) */
#define CK_SPLAT(x) (-(CK_VEC){0} + (x))

/* The one body of every entry point: element (i, p) of the A sliver is a[i*si + p*sp], so the
 * packed panel is (si, sp) = (1, MR) and rows read in place are (lda, 1); colscale NULL gives
 * C = alpha*AB + beta*C, else C = C * colscale[j] + AB (one rounding: a fused multiply-add).
 * Always inlined with the constants, so each kernel compiles exactly as if written for its
 * layout. */
static inline __attribute__((always_inline)) void
CK_CAT(CK_T_NAME, _body)(size_t kc, const float *a, size_t si, size_t sp, const float *b,
                           float *c, size_t ldc, float alpha, float beta, const float *colscale) {
    CK_VEC acc[CK_T_MR][CK_T_NV];
    CK_UNROLL_FULL
    for (int i = 0; i < CK_T_MR; i++) {
        CK_UNROLL_FULL
        for (int j = 0; j < CK_T_NV; j++) acc[i][j] = (CK_VEC){0};
    }
    const CK_VEC *bv = (const CK_VEC *)__builtin_assume_aligned(b, sizeof(CK_VEC));
    /* The C tile is written (and with beta, read) only after the k loop: start fetching its
     * lines now so the write-back does not stall on cache misses, and the packed GEMM's
     * epilogue, which reads the tile right after, finds it in L1. Also with beta == 0: in
     * GPT-2 small's 2-thread prefill the epilogue's share of the samples fell from 4.3% to
     * 2.3% (perf, timer sampling). */
    {
        CK_UNROLL_FULL
        for (int i = 0; i < CK_T_MR; i++) {
            __builtin_prefetch(c + (size_t)i * ldc, 1);
            __builtin_prefetch(c + (size_t)i * ldc + CK_NR - 1, 1);
        }
    }
    for (size_t p = 0; p < kc; p++) {
        CK_VEC bp[CK_T_NV];
        CK_UNROLL_FULL
        for (int j = 0; j < CK_T_NV; j++) bp[j] = bv[j];
        CK_UNROLL_FULL
        for (int i = 0; i < CK_T_MR; i++) {
            CK_VEC ai = CK_SPLAT(a[(size_t)i * si]);
            CK_UNROLL_FULL
            for (int j = 0; j < CK_T_NV; j++) acc[i][j] = CK_VFMA(ai, bp[j], acc[i][j]);
        }
        a += sp;
        bv += CK_T_NV;
    }
    /* Write back: C = alpha*acc + beta*C (beta == 0: C not read), or C * colscale + acc.
     * Unaligned row access. The colscale and beta loops stay apart: written as one loop that
     * picks the multiply-add per element (the pick folds away per entry point), clang 21
     * allocated the AVX-512 rows kernel's k loop differently (a stack frame, two register
     * moves a step). */
    if (colscale) {
        CK_VEC cs[CK_T_NV];
        CK_UNROLL_FULL
        for (int j = 0; j < CK_T_NV; j++) __builtin_memcpy(&cs[j], colscale + (size_t)j * CK_VL, sizeof cs[j]);
        CK_UNROLL_FULL
        for (int i = 0; i < CK_T_MR; i++) {
            CK_UNROLL_FULL
            for (int j = 0; j < CK_T_NV; j++) {
                CK_VEC old;
                float *cp = c + (size_t)i * ldc + (size_t)j * CK_VL;
                __builtin_memcpy(&old, cp, sizeof old);
                CK_VEC v = CK_VFMA(old, cs[j], acc[i][j]);
                __builtin_memcpy(cp, &v, sizeof v);
            }
        }
    } else if (beta == 0.0f) {
        CK_UNROLL_FULL
        for (int i = 0; i < CK_T_MR; i++) {
            CK_UNROLL_FULL
            for (int j = 0; j < CK_T_NV; j++) {
                CK_VEC v = acc[i][j] * alpha;
                __builtin_memcpy(c + (size_t)i * ldc + (size_t)j * CK_VL, &v, sizeof v);
            }
        }
    } else {
        CK_UNROLL_FULL
        for (int i = 0; i < CK_T_MR; i++) {
            CK_UNROLL_FULL
            for (int j = 0; j < CK_T_NV; j++) {
                CK_VEC old;
                float *cp = c + (size_t)i * ldc + (size_t)j * CK_VL;
                __builtin_memcpy(&old, cp, sizeof old);
                CK_VEC v = CK_VFMA(acc[i][j], CK_SPLAT(alpha), old * beta);
                __builtin_memcpy(cp, &v, sizeof v);
            }
        }
    }
}

/* A from a packed micro-panel: a[p*MR + i]. */
void CK_T_NAME(size_t kc, const float *a, const float *b, float *c, size_t ldc, float alpha,
                 float beta) {
    CK_CAT(CK_T_NAME, _body)(kc, a, 1, CK_T_MR, b, c, ldc, alpha, beta, NULL);
}

#ifdef CK_T_ROWS_NAME
/* A read in place from MR rows of a row-major matrix: a[i*lda + p] (ck_f32_gemm_ukr_rows_fn). */
void CK_T_ROWS_NAME(size_t kc, const float *a, size_t lda, const float *b, float *c, size_t ldc,
                    float alpha, float beta) {
    CK_CAT(CK_T_NAME, _body)(kc, a, lda, 1, b, c, ldc, alpha, beta, NULL);
}
#endif

#ifdef CK_T_SCALED_NAME
/* A from a packed micro-panel, C = C * colscale[j] + A * B (ck_f32_attn_ukr_scaled_fn). */
void CK_T_SCALED_NAME(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                      const float *colscale) {
    if (!colscale) __builtin_unreachable(); /* the contract; drops the alpha/beta write-back */
    CK_CAT(CK_T_NAME, _body)(kc, a, 1, CK_T_MR, b, c, ldc, 1.0f, 1.0f, colscale);
}
#endif

#undef CK_NR
