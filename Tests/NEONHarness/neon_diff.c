/*
 * neon_diff.c — C-level differential test of the NEON kernel table against the scalar table
 * and against naive double-precision references. Plain C, not a SwiftPM target: built by
 * scripts/ci-neon-qemu.sh for aarch64 and run under qemu-aarch64 (or natively on AArch64).
 *
 * Every slot of the table is exercised: the SGEMM driver and micro-kernel, the FMA probe,
 * exp, softmax_rows, the online-softmax step, gemv, gemv_t, the 16-bit weight kernels (w16_widen,
 * w16_gemv, ck_w16_gemm), activation, norm_rows, the fused
 * attention (pack_kv + attention_block), the GEMM on a packed weight (pack_weight, pack_a,
 * gemm_packed with its epilogue, split into row x panel ranges) and the attention on in-place
 * K/V (attention_short, attention_few), and the attention backward (grad_pack_kv,
 * attention_backward with attn_grad_step, the forward's attention_block_lse), and the other
 * training kernels (cross_entropy, norm_rows_train + norm_backward, activation_backward and
 * gated_backward, embedding_backward), and the int8-weight kernels (ck_q8_group_sums,
 * ck_q8_quantize_rows, q8_gemv and q8_gemm on the table's sdot path and on the widening baseline). Both variants (NEON and scalar) are checked against
 * the same double reference with error bounds derived from the operation (k*u*sum|a||b| for
 * dot products, ulps for exp), and every output buffer sits between guard bands (and has its
 * row padding filled with a guard pattern) that must come back untouched.
 *
 * Deterministic: a fixed seed (override with argv[1]). Exit status 0 iff every check passed.
 */
#include "attend_kernels.h"
#include "attend_kernels_testing.h"
#include "attend_attention_backward.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define U ((double)FLT_EPSILON / 2) /* unit roundoff of float, 2^-24 */
#define PI_D 3.14159265358979323846
#define GUARD 37                               /* floats of guard band on each side of an output */
static const uint32_t GUARD_BITS = 0x7fc0dead; /* a quiet NaN with a recognisable payload */

/* ---------------------------------------------------------------- bookkeeping */

typedef struct {
    const char *name;
    long cases, checks, fails;
    double max_ratio; /* max over checks of error / allowed error */
    double max_err;   /* kernel-specific figure (ulps, relative error, ...) */
    const char *err_unit;
} stat_t;

enum {
    S_DISPATCH,
    S_UKR,
    S_GEMM,
    S_PEAK,
    S_EXP,
    S_SOFTMAX,
    S_STEP,
    S_GEMV,
    S_ACT_RELU,
    S_ACT_GELU,
    S_ACT_GELU_TANH,
    S_ACT_SILU,
    S_NORM,
    S_ATTN,
    S_PACKED,
    S_GEMV_T,
    S_ATTN_SHORT,
    S_ATTN_FEW,
    S_ATTN_BWD,
    S_CE,
    S_NORM_BWD,
    S_ACT_BWD,
    S_EMB_BWD,
    S_W16,
    S_Q8_GEMV,
    S_Q8_GEMM,
    S_COUNT
};
static const char *const stat_names[S_COUNT] = {
    "dispatch",      "gemm_ukr",          "gemm",          "fma_peak",      "exp",
    "softmax_rows",  "attn_softmax_step", "gemv",          "act relu",      "act gelu",
    "act gelu_tanh", "act silu",          "norm_rows",     "attention",     "gemm_packed",
    "gemv_t",        "attention_short",   "attention_few", "attention_bwd", "cross_entropy",
    "norm_backward", "act_backward",      "embedding_bwd", "w16 (16-bit weights)",
    "q8_gemv",       "q8_gemm"};
static const char *const stat_units[S_COUNT] = {"-",
                                                "err/(u*sum|ab|)",
                                                "err/(u*sum|ab|)",
                                                "-",
                                                "ulp",
                                                "rel err",
                                                "rel err",
                                                "err/(u*sum|ab|)",
                                                "abs err",
                                                "rel err",
                                                "rel err",
                                                "rel err",
                                                "err/(u*scale)",
                                                "err/(u*sum p|v|)",
                                                "err/(u*(sum|ab|+|c|))",
                                                "err/(u*sum|ab|)",
                                                "err/(u*sum p|v|)",
                                                "err/(u*sum p|v|)",
                                                "err/(u*sum|terms|)",
                                                "err/u (grad /scale)",
                                                "-",
                                                "-",
                                                "-",
                                                "err/(u*sum|ab|)",
                                                "err/bound",
                                                "err/bound"};
static stat_t stats[2][S_COUNT]; /* [0] neon, [1] scalar */
static long total_fails;
static const int MAX_PRINTED_FAILS = 4000;

static int cur_var;         /* 0 neon, 1 scalar: which stats row */
static char case_desc[512]; /* current case, printed with a failure */

static void set_case(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(case_desc, sizeof case_desc, fmt, ap);
    va_end(ap);
}

static void new_case(int s) { stats[cur_var][s].cases++; }

/* Records one check: `err` measured, `allowed` its bound (ok iff err <= allowed, NaN fails),
 * `figure` the kernel-specific error figure for the summary. */
static int check(int s, int ok, double ratio, double figure, const char *fmt, ...) {
    stat_t *st = &stats[cur_var][s];
    st->checks++;
    if (ratio == ratio && ratio > st->max_ratio) st->max_ratio = ratio;
    if (figure == figure && figure > st->max_err) st->max_err = figure;
    if (ok) return 1;
    st->fails++;
    if (total_fails++ < MAX_PRINTED_FAILS) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL [%s/%s] %s: ", cur_var ? "scalar" : "neon", st->name, case_desc);
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    return 0;
}

static int close_enough(double err, double allowed) { return err <= allowed; } /* NaN: false */

/* ---------------------------------------------------------------- random numbers */

static uint64_t rng_state;
static uint64_t rnd_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rnd_unit(void) { return (double)(rnd_u64() >> 11) * 0x1.0p-53; } /* [0,1) */
static float rnd_f(float lo, float hi) { return (float)(lo + (hi - lo) * rnd_unit()); }
static size_t rnd_n(size_t n) { return (size_t)(rnd_u64() % n); }
static void fill(float *p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = rnd_f(lo, hi);
}
static void fill_int(float *p, size_t n, int span) { /* small integers: exact products */
    for (size_t i = 0; i < n; i++) p[i] = (float)((int)rnd_n((size_t)(2 * span + 1)) - span);
}

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---------------------------------------------------------------- guarded buffers */

/* A matrix `rows` x `ld` (of which `cols` are data) between guard bands, starting `off`
 * floats past the band (misalignment). Everything that is not data holds GUARD_BITS. */
typedef struct {
    float *base, *p;
    size_t total, off, rows, cols, ld;
} gbuf;

static gbuf gb_new(size_t rows, size_t cols, size_t ld, size_t off) {
    gbuf g;
    g.rows = rows;
    g.cols = cols;
    g.ld = ld;
    g.off = off;
    g.total = GUARD + off + rows * ld + GUARD;
    g.base = malloc(g.total * sizeof(float));
    if (!g.base) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < g.total; i++) g.base[i] = bitsf(GUARD_BITS);
    g.p = g.base + GUARD + off;
    return g;
}
static void gb_free(gbuf *g) {
    free(g->base);
    g->base = g->p = NULL;
}
static float *gb_at(gbuf *g, size_t i, size_t j) { return g->p + i * g->ld + j; }
/* Number of non-data floats whose guard pattern changed. */
static size_t gb_damage(const gbuf *g, size_t *first) {
    size_t bad = 0;
    for (size_t idx = 0; idx < g->total; idx++) {
        const ptrdiff_t rel = (ptrdiff_t)idx - (ptrdiff_t)(GUARD + g->off);
        if (rel >= 0 && (size_t)rel < g->rows * g->ld && (size_t)rel % g->ld < g->cols) continue;
        if (fbits(g->base[idx]) != GUARD_BITS) {
            if (!bad && first) *first = idx;
            bad++;
        }
    }
    return bad;
}
static void check_guard(int s, const gbuf *g, const char *what) {
    size_t first = 0, bad = gb_damage(g, &first);
    check(s, bad == 0, 0, 0, "%zu guard floats of %s overwritten (first at %td relative to data)",
          bad, what, (ptrdiff_t)first - (ptrdiff_t)(GUARD + g->off));
}

static void *xaligned(size_t floats) { /* 64-byte aligned, for kernels that require it */
    void *p = NULL;
    if (posix_memalign(&p, 64, (floats ? floats : 1) * sizeof(float))) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---------------------------------------------------------------- tables */

static const ck_kernels *KN, *KS; /* neon, scalar */
static const ck_kernels *var_table(int v) { return v ? KS : KN; }

/* ---------------------------------------------------------------- dispatch */

static void test_dispatch(void) {
    cur_var = 0;
    set_case("dispatch");
    new_case(S_DISPATCH);
    const int s = S_DISPATCH;
    check(s, ck_variant_supported(CK_VARIANT_NEON) == 1, 0, 0, "ck_variant_supported(NEON) != 1");
    check(s, ck_variant_supported(CK_VARIANT_SCALAR) == 1, 0, 0, "scalar unsupported");
    check(s, ck_variant_supported(CK_VARIANT_AVX2) == 0, 0, 0, "AVX2 claimed on AArch64");
    check(s, ck_variant_supported(CK_VARIANT_AVX512) == 0, 0, 0, "AVX-512 claimed on AArch64");
    check(s, ck_variant_supported(-1) == 0 && ck_variant_supported(CK_VARIANT_COUNT) == 0, 0, 0,
          "out-of-range variant supported");
    check(s, ck_variant_best() == CK_VARIANT_NEON, 0, 0, "ck_variant_best() = %d, not NEON",
          ck_variant_best());
    check(s, ck_kernels_get(CK_VARIANT_AVX2) == NULL && ck_kernels_get(CK_VARIANT_AVX512) == NULL,
          0, 0, "x86 tables returned on AArch64");
    check(s, ck_kernels_avx512_layout_on_avx2() == NULL, 0, 0, "avx512-on-avx2 table on AArch64");
    check(s,
          ck_variant_from_name("neon") == CK_VARIANT_NEON && ck_variant_from_name("x") == -1 &&
              ck_variant_from_name(NULL) == -1,
          0, 0, "ck_variant_from_name");
    check(s,
          ck_variant_name(CK_VARIANT_NEON) &&
              strcmp(ck_variant_name(CK_VARIANT_NEON), "neon") == 0 &&
              ck_variant_name(CK_VARIANT_COUNT) == NULL,
          0, 0, "ck_variant_name");
    const struct {
        const char *env;
        int want, status;
    } envs[] = {{NULL, CK_VARIANT_NEON, 0},       {"", CK_VARIANT_NEON, 0},
                {"scalar", CK_VARIANT_SCALAR, 1}, {"neon", CK_VARIANT_NEON, 1},
                {"avx2", CK_VARIANT_NEON, -2},    {"bogus", CK_VARIANT_NEON, -1}};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        if (envs[i].env)
            setenv("ATTEND_VARIANT", envs[i].env, 1);
        else
            unsetenv("ATTEND_VARIANT");
        int st = 99, v = ck_variant_initial(&st);
        check(s, v == envs[i].want && st == envs[i].status, 0, 0,
              "ATTEND_VARIANT=%s: variant %d status %d, want %d %d",
              envs[i].env ? envs[i].env : "(unset)", v, st, envs[i].want, envs[i].status);
    }
    unsetenv("ATTEND_VARIANT");
#if defined(__OPTIMIZE__)
    check(s, ck_build_optimized() == 1, 0, 0, "ck_build_optimized() in an optimized build");
#else
    check(s, ck_build_optimized() == 0, 0, 0, "ck_build_optimized() in an -O0 build");
#endif
    for (int v = 0; v < 2; v++) {
        const ck_kernels *k = var_table(v);
        const int want = v ? CK_VARIANT_SCALAR : CK_VARIANT_NEON;
        check(s, k != NULL, 0, 0, "ck_kernels_get(%d) NULL", want);
        if (!k) continue;
        check(s, k->variant == want && strcmp(k->name, ck_variant_name(want)) == 0, 0, 0,
              "table %d: variant %d name %s", want, k->variant, k->name);
        check(s,
              k->gemm_ukr && k->gemm_ukr_name && k->fma_peak && k->exp && k->softmax_rows &&
                  k->attn_softmax_step && k->gemv && k->gemv_t && k->activation && k->norm_rows &&
                      k->w16_widen && k->w16_gemv && k->gemv_rows && k->attn_ukr && k->attn_short && k->gemm_epilogue,
              0, 0, "table %s has a NULL slot", k->name);
        const ck_gemm_blocking *g = &k->gemm;
        check(s,
              g->mr > 0 && g->nr > 0 && g->mr * g->nr <= 1024 && g->mc % g->mr == 0 &&
                  g->nc % g->nr == 0 && g->kc > 0 && k->attn_mr > 0 && k->attn_nr > 0 &&
                  k->attn_key_block % k->attn_mr == 0 && k->attn_query_panels > 0,
              0, 0, "table %s: inconsistent blocking", k->name);
    }
    if (KN) {
        check(s, KN->gemm.nr % 4 == 0, 0, 0, "neon nr not a multiple of the vector width");
        check(s, strcmp(KN->gemm_ukr_name, "ck_f32_gemm_ukr_8x12__neon") == 0, 0, 0, "ukr name %s",
              KN->gemm_ukr_name);
    }
    /* helpers */
    ck_cpu_relax();
    int64_t cell = 5;
    check(s, ck_atomic_load(&cell) == 5, 0, 0, "atomic load");
    ck_atomic_store(&cell, 7);
    check(s, ck_atomic_fetch_add(&cell, 3) == 7 && cell == 10, 0, 0, "atomic fetch_add");
    check(s,
          ck_atomic_compare_exchange(&cell, 10, 1) == 1 && cell == 1 &&
              ck_atomic_compare_exchange(&cell, 10, 2) == 0 && cell == 1,
          0, 0, "atomic compare_exchange");
}

/* ---------------------------------------------------------------- GEMM micro-kernel */

static void test_ukr_one(const ck_kernels *k, size_t kc, size_t ldc_pad, size_t coff, float alpha,
                         float beta, int ints) {
    const size_t mr = (size_t)k->gemm.mr, nr = (size_t)k->gemm.nr, ldc = nr + ldc_pad;
    set_case("%s ukr kc=%zu ldc=%zu c_off=%zu alpha=%g beta=%g ints=%d", k->name, kc, ldc, coff,
             alpha, beta, ints);
    new_case(S_UKR);
    float *a = xaligned(kc * mr + 1), *b = xaligned(kc * nr + 1);
    if (ints) {
        fill_int(a, kc * mr, 3);
        fill_int(b, kc * nr, 3);
    } else {
        fill(a, kc * mr, -1, 1);
        fill(b, kc * nr, -1, 1);
    }
    gbuf c = gb_new(mr, nr, ldc, coff);
    double *c0 = malloc(mr * nr * sizeof(double));
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            float v = beta == 0.0f ? NAN : (ints ? (float)((int)rnd_n(7) - 3) : rnd_f(-1, 1));
            *gb_at(&c, i, j) = v;
            c0[i * nr + j] = v;
        }
    k->gemm_ukr(kc, a, b, c.p, ldc, alpha, beta);
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            double dot = 0, mag = 0;
            for (size_t p = 0; p < kc; p++) {
                dot += (double)a[p * mr + i] * b[p * nr + j];
                mag += fabs((double)a[p * mr + i] * b[p * nr + j]);
            }
            double ref = alpha * dot, bnd = fabs(alpha) * mag;
            if (beta != 0.0f) {
                ref += beta * c0[i * nr + j];
                bnd += fabs(beta * c0[i * nr + j]);
            }
            const double got = *gb_at(&c, i, j), err = fabs(got - ref);
            const double allowed = (double)(kc + 4) * U * bnd;
            check(S_UKR, close_enough(err, allowed) && (!ints || err == 0),
                  allowed ? err / allowed : err, bnd ? err / (U * bnd) : 0,
                  "C[%zu][%zu] = %.9g, reference %.9g (allowed %.3g)", i, j, got, ref, allowed);
        }
    check_guard(S_UKR, &c, "C tile");
    gb_free(&c);
    free(a);
    free(b);
    free(c0);
}

static void test_ukr(int v) {
    const ck_kernels *k = var_table(v);
    const size_t kcs[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 64, 255, 256, 257, 600};
    for (size_t t = 0; t < sizeof kcs / sizeof kcs[0]; t++) {
        test_ukr_one(k, kcs[t], 0, 0, 1.0f, 0.0f, 0);
        test_ukr_one(k, kcs[t], 3, 1, -0.75f, 1.0f, 0);
        test_ukr_one(k, kcs[t], 5, 3, 2.0f, -0.5f, 0);
        test_ukr_one(k, kcs[t], 1, 2, 1.0f, 0.0f, 1);
        test_ukr_one(k, kcs[t], 7, 0, -1.0f, 2.0f, 1);
    }
}

/* ---------------------------------------------------------------- GEMM driver */

typedef struct {
    size_t m, n, k;
} shape_t;

static void test_gemm_one(const ck_kernels *k, size_t m, size_t n, size_t kd, int ta, int tb,
                          float alpha, float beta, int ints, size_t pad, size_t off, int nan_a) {
    /* op(A) m x k; A stored (ta ? k x m : m x k) with row padding `pad` filled with NaN. */
    const size_t arows = ta ? kd : m, acols = ta ? m : kd, lda = acols + pad;
    const size_t brows = tb ? n : kd, bcols = tb ? kd : n, ldb = bcols + (pad ? pad + 1 : 0);
    const size_t ldc = n + (pad ? pad + 2 : 0);
    set_case("%s gemm m=%zu n=%zu k=%zu ta=%d tb=%d alpha=%g beta=%g ints=%d lda=%zu ldb=%zu "
             "ldc=%zu off=%zu nanA=%d",
             k->name, m, n, kd, ta, tb, alpha, beta, ints, lda, ldb, ldc, off, nan_a);
    new_case(S_GEMM);
    float *a = malloc((arows * lda + off + 1) * sizeof(float));
    float *b = malloc((brows * ldb + off + 1) * sizeof(float));
    float *ap = a + off, *bp = b + (off ? off - 1 : 0) + 1; /* misaligned differently */
    for (size_t i = 0; i < arows * lda; i++) ap[i] = NAN;   /* padding stays NaN */
    for (size_t i = 0; i < brows * ldb; i++) bp[i] = NAN;
    for (size_t i = 0; i < arows; i++) {
        if (ints)
            fill_int(ap + i * lda, acols, 4);
        else
            fill(ap + i * lda, acols, -1, 1);
    }
    for (size_t i = 0; i < brows; i++) {
        if (ints)
            fill_int(bp + i * ldb, bcols, 4);
        else
            fill(bp + i * ldb, bcols, -1, 1);
    }
    if (nan_a && arows && acols) ap[0] = NAN; /* alpha == 0: A must not leak into C */
    gbuf c = gb_new(m, n, ldc, off);
    double *c0 = malloc((m * n + 1) * sizeof(double));
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float v = beta == 0.0f ? NAN : (ints ? (float)((int)rnd_n(9) - 4) : rnd_f(-1, 1));
            *gb_at(&c, i, j) = v;
            c0[i * n + j] = v;
        }
    const size_t wsz = ck_f32_gemm_workspace(k, m, n, kd);
    {
        /* the documented ceiling */
        const ck_gemm_blocking *g = &k->gemm;
        check(S_GEMM, wsz <= (size_t)(g->mc + g->nc) * (size_t)g->kc + 64, 0, 0,
              "workspace %zu above the documented ceiling", wsz);
    }
    float *ws = malloc((wsz + 1) * sizeof(float));
    ck_f32_gemm(k, ta, tb, m, n, kd, alpha, ap, lda, bp, ldb, beta, c.p, ldc,
                ws + 1 /* any alignment */);
    const size_t nblk = kd ? (kd + (size_t)k->gemm.kc - 1) / (size_t)k->gemm.kc : 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double dot = 0, mag = 0;
            if (alpha != 0.0f)
                for (size_t p = 0; p < kd; p++) {
                    const double x = ta ? ap[p * lda + i] : ap[i * lda + p];
                    const double y = tb ? bp[j * ldb + p] : bp[p * ldb + j];
                    dot += x * y;
                    mag += fabs(x * y);
                }
            double ref = alpha * dot, bnd = fabs(alpha) * mag;
            if (beta != 0.0f) {
                ref += beta * c0[i * n + j];
                bnd += fabs(beta * c0[i * n + j]);
            }
            const double got = *gb_at(&c, i, j), err = fabs(got - ref);
            const double allowed = (double)(kd + 2 * nblk + 4) * U * bnd;
            if (!check(S_GEMM, close_enough(err, allowed) && (!ints || err == 0),
                       allowed ? err / allowed : err, bnd ? err / (U * bnd) : 0,
                       "C[%zu][%zu] = %.9g, reference %.9g (allowed %.3g)", i, j, got, ref,
                       allowed))
                i = m, j = n; /* one report per case */
        }
    check_guard(S_GEMM, &c, "C");
    gb_free(&c);
    free(a);
    free(b);
    free(c0);
    free(ws);
}

static void test_gemm(int v) {
    const ck_kernels *k = var_table(v);
    const size_t mr = (size_t)k->gemm.mr, nr = (size_t)k->gemm.nr;
    const size_t mc = (size_t)k->gemm.mc, kc = (size_t)k->gemm.kc, nc = (size_t)k->gemm.nc;
    /* Edge-heavy shapes: 0, 1, micro-tile +-1, cache blocks +-1. */
    const size_t ms[] = {1, mr - 1, mr, mr + 1, 2 * mr + 3};
    const size_t ns[] = {1, nr - 1, nr, nr + 1, 2 * nr + 5};
    const size_t ks[] = {1, 2, 7, 33};
    const float alphas[] = {1.0f, -0.5f, 1.75f};
    const float betas[] = {0.0f, 1.0f, -1.5f, 0.25f};
    int sel = 0;
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++, sel++) {
                if (!ms[a] || !ns[b]) continue;
                test_gemm_one(k, ms[a], ns[b], ks[c], sel & 1, (sel >> 1) & 1, alphas[sel % 3],
                              betas[sel % 4], sel % 5 == 0, sel % 3 ? (size_t)(sel % 4) : 0,
                              (size_t)(sel % 3), 0);
            }
    /* all four transposes, both padding layouts, for a few mid shapes */
    const shape_t mids[] = {
        {mr * 3 + 1, nr * 2 + 1, 40}, {17, 29, 13}, {mr, nr, kc}, {5, 3, kc + 1}};
    for (size_t s = 0; s < sizeof mids / sizeof mids[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int bi = 0; bi < 4; bi++)
                test_gemm_one(k, mids[s].m, mids[s].n, mids[s].k, t & 1, t >> 1,
                              alphas[(t + bi) % 3], betas[bi], (t + bi) % 4 == 3, (size_t)bi,
                              (size_t)t, 0);
    /* cache-block edges */
    const shape_t blocks[] = {
        {mc - 1, nr + 1, 9},
        {mc, 2 * nr, 9},
        {mc + 1, nr - 1, 9},
        {2 * mc + mr + 1, 5, 3},
        {mr + 1, nr + 1, kc - 1},
        {mr + 1, nr + 1, kc},
        {mr + 1, nr + 1, kc + 1},
        {3, 7, 2 * kc + 5},
        {mc + 1, nr + 3, kc + 1},
        {3, nc - 1, 4},
        {2, nc, 3},
        {mr + 1, nc + 1, 5},
        {1, 2 * nc + nr + 1, 2},
        {mc + 3, nc + 1, 2},
    };
    for (size_t s = 0; s < sizeof blocks / sizeof blocks[0]; s++)
        test_gemm_one(k, blocks[s].m, blocks[s].n, blocks[s].k, (int)(s & 1), (int)((s >> 1) & 1),
                      alphas[s % 3], betas[s % 4], s % 4 == 1, s % 3, s % 4, 0);
    /* larger products, blocked in all three dimensions on the NEON table */
    const shape_t large[] = {{mc + mr + 3, nr * 9 + 7, kc + 37}, {200, 150, 300}, {64, 64, 64}};
    for (size_t s = 0; s < sizeof large / sizeof large[0]; s++)
        test_gemm_one(k, large[s].m, large[s].n, large[s].k, (int)(s == 1), (int)(s == 2), 1.0f,
                      s == 1 ? 0.5f : 0.0f, 0, s, s + 1, 0);
    /* degenerate: m or n 0 (C untouched), k 0 and alpha 0 (C = beta*C, A/B unused) */
    const float degen_betas[] = {0.0f, 1.0f, 2.5f};
    for (int bi = 0; bi < 3; bi++) {
        test_gemm_one(k, 0, 5, 3, 0, 0, 1.0f, degen_betas[bi], 0, 1, 0, 0);
        test_gemm_one(k, 4, 0, 3, 1, 0, 1.0f, degen_betas[bi], 0, 1, 0, 0);
        test_gemm_one(k, 7, 9, 0, 0, 1, 1.0f, degen_betas[bi], 0, 2, 1, 0);
        test_gemm_one(k, 7, 13, 5, 1, 1, 0.0f, degen_betas[bi], 0, 2, 1, 1);
    }
    /* random shapes */
    for (int r = 0; r < 40; r++) {
        const size_t m = 1 + rnd_n(3 * mr), n = 1 + rnd_n(3 * nr), kd = 1 + rnd_n(70);
        test_gemm_one(k, m, n, kd, (int)rnd_n(2), (int)rnd_n(2), alphas[rnd_n(3)], betas[rnd_n(4)],
                      (int)rnd_n(4) == 0, rnd_n(4), rnd_n(4), 0);
    }
}

/* ---------------------------------------------------------------- FMA probe */

static void test_peak(int v) {
    const ck_kernels *k = var_table(v);
    set_case("%s fma_peak", k->name);
    new_case(S_PEAK);
    const double f0 = k->fma_peak(0), f1 = k->fma_peak(1000), f2 = k->fma_peak(2000);
    const double want = v ? 8 * 2.0 : 24 * 4 * 2.0; /* chains x lanes x 2 per iteration */
    check(S_PEAK, f0 == 0 && f1 == 1000 * want && f2 == 2 * f1, 0, 0,
          "flops %g %g %g, want %g per iter", f0, f1, f2, want);
}

/* ---------------------------------------------------------------- exp */

static uint32_t order_bits(float f) { /* monotone map of floats onto uint32 (for ulp distance) */
    uint32_t u = fbits(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static long exp_checks_printed;
static void exp_check_batch(const ck_kernels *k, const float *x, size_t n) {
    float *y = malloc((n + 1) * sizeof(float));
    k->exp(n, x, y);
    for (size_t i = 0; i < n; i++) {
        const float xi = x[i], yi = y[i];
        int ok;
        double ulps = 0;
        if (xi != xi) {
            ok = yi != yi;
        } else {
            const float ref =
                (float)exp((double)xi); /* correctly rounded but for double rounding */
            if (isinf(ref))
                ok = isinf(yi) && yi > 0;
            else {
                ok = !(yi != yi) && !signbit(yi);
                const uint32_t a = order_bits(yi), b = order_bits(ref);
                ulps = (double)(a > b ? a - b : b - a);
                /* the contract: x > 88.7228 may round up to +inf (FLT_MAX is 1 ulp below) */
                ok = ok && ulps <= 2;
            }
            if ((xi == 0.0f && yi != 1.0f) ||
                (isinf(xi) && xi < 0 && (yi != 0.0f || signbit(yi))) ||
                (xi > 88.72284f && !isinf(yi)) || (xi < -103.98f && yi != 0.0f))
                ok = 0;
        }
        if (!check(S_EXP, ok, ulps / 2, ulps, "exp(%.9g [0x%08x]) = %.9g [0x%08x], double exp %.9g",
                   xi, fbits(xi), yi, fbits(yi), exp((double)xi)))
            if (++exp_checks_printed > 10) break;
    }
    free(y);
}

static void test_exp(int v) {
    const ck_kernels *k = var_table(v);
    set_case("%s exp specials", k->name);
    new_case(S_EXP);
    const float specials[] = {
        0.0f,     -0.0f,    1.0f,      -1.0f,     0x1p-149f,  -0x1p-149f,  0x1p-127f,  -0x1p-127f,
        FLT_MIN,  -FLT_MIN, 1e-30f,    -1e-30f,   INFINITY,   -INFINITY,   NAN,        -NAN,
        88.0f,    88.7228f, 88.72279f, 88.72281f, 88.72283f,  88.722839f,  88.7229f,   88.72291f,
        89.0f,    100.0f,   1e30f,     FLT_MAX,   -87.0f,     -87.3365f,   -87.34f,    -100.0f,
        -103.0f,  -103.27f, -103.28f,  -103.97f,  -103.972f,  -103.98f,    -103.99f,   -104.0f,
        -104.01f, -150.0f,  -1e30f,    -FLT_MAX,  0.3465736f, -0.3465736f, 0.6931472f, -0.6931472f,
        10.0f,    -10.0f,   50.5f,     -50.5f};
    const size_t ns = sizeof specials / sizeof specials[0];
    exp_check_batch(k, specials, ns);
    /* every tail length, in place (x == y), with guard bands */
    for (size_t n = 0; n <= 19; n++) {
        set_case("%s exp in-place n=%zu", k->name, n);
        new_case(S_EXP);
        gbuf g = gb_new(1, n, n ? n : 1, n % 3);
        for (size_t i = 0; i < n; i++) g.p[i] = specials[(i * 7 + n) % ns];
        float *x = malloc((n + 1) * sizeof(float));
        memcpy(x, g.p, n * sizeof(float));
        k->exp(n, g.p, g.p);
        float *want = malloc((n + 1) * sizeof(float));
        k->exp(n, x, want);
        for (size_t i = 0; i < n; i++)
            check(S_EXP,
                  fbits(g.p[i]) == fbits(want[i]) || (g.p[i] != g.p[i] && want[i] != want[i]), 0, 0,
                  "in-place result differs at %zu", i);
        if (n == 0 || g.ld == n) check_guard(S_EXP, &g, "y");
        gb_free(&g);
        free(x);
        free(want);
    }
    /* sweep: every (2^31/N)-th bit pattern of both signs, plus dense runs at the edges */
    enum { B = 4096 };
    float *x = malloc(B * sizeof(float));
    size_t fill_n = 0;
    set_case("%s exp bit-pattern sweep", k->name);
    new_case(S_EXP);
    const uint32_t stride = v ? 4093u : 1021u; /* the NEON kernel gets the denser sweep */
    for (uint64_t u = 0; u < 0x100000000ull; u += stride) {
        x[fill_n++] = bitsf((uint32_t)u);
        if (fill_n == B) {
            exp_check_batch(k, x, fill_n);
            fill_n = 0;
        }
    }
    if (fill_n) {
        exp_check_batch(k, x, fill_n);
        fill_n = 0;
    }
    const float edges[][2] = {
        {88.70f, 88.7300f}, {-88.0f, -86.5f}, {-104.2f, -103.0f}, {-0.36f, 0.36f}, {-1e-6f, 1e-6f}};
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
        set_case("%s exp dense [%g, %g]", k->name, edges[e][0], edges[e][1]);
        new_case(S_EXP);
        float lo = edges[e][0] < edges[e][1] ? edges[e][0] : edges[e][1];
        float hi = edges[e][0] < edges[e][1] ? edges[e][1] : edges[e][0];
        size_t count = 0;
        for (float f = lo; f <= hi && count < 200000; f = nextafterf(f, INFINITY), count++) {
            x[fill_n++] = f;
            if (fill_n == B) {
                exp_check_batch(k, x, fill_n);
                fill_n = 0;
            }
            /* keep long ranges sparse: skip ahead once the run is long */
            if (count > 20000) f = nextafterf(f + (hi - lo) * 1e-5f, INFINITY);
        }
        if (fill_n) {
            exp_check_batch(k, x, fill_n);
            fill_n = 0;
        }
    }
    if (fill_n) exp_check_batch(k, x, fill_n);
    free(x);
}

/* ---------------------------------------------------------------- softmax_rows */

static void test_softmax_one(const ck_kernels *k, size_t rows, size_t n, float scale, int mask_kind,
                             int special, int inplace, float range) {
    /* mask_kind: 0 none, 1 per row, 2 one row (ldmask 0); special: 0 none, 1 a row all -inf
     * (through the mask, or x), 2 a NaN row, 3 huge values, 4 -inf entries */
    const size_t ldx = n + (rows % 3), ldy = inplace ? ldx : n + 2 + (n % 2);
    const size_t ldm = mask_kind == 2 ? 0 : n + 1;
    set_case("%s softmax rows=%zu n=%zu scale=%g mask=%d special=%d inplace=%d range=%g", k->name,
             rows, n, scale, mask_kind, special, inplace, range);
    new_case(S_SOFTMAX);
    float *x = malloc((rows * ldx + 1) * sizeof(float));
    fill(x, rows * ldx, -range, range);
    float *mask = NULL;
    const size_t mrows = mask_kind == 2 ? 1 : rows;
    if (mask_kind) {
        mask = malloc((mrows * (n + 1) + 1) * sizeof(float));
        fill(mask, mrows * (n + 1), -2, 2);
        for (size_t i = 0; i < mrows * (n + 1); i++)
            if (rnd_n(5) == 0) mask[i] = -INFINITY;
    }
    const size_t bad_row = rows / 2;
    if (special == 1 && n) {
        for (size_t j = 0; j < n; j++) {
            if (mask_kind == 1)
                mask[bad_row * ldm + j] = -INFINITY;
            else
                x[bad_row * ldx + j] = scale >= 0 ? -INFINITY : INFINITY;
        }
    } else if (special == 2 && n) {
        x[bad_row * ldx + rnd_n(n)] = NAN;
    } else if (special == 3) {
        for (size_t i = 0; i < rows * ldx; i++)
            x[i] = (rnd_n(2) ? 1e30f : -1e30f) * (float)(1 + rnd_n(3));
    } else if (special == 4) {
        for (size_t i = 0; i < rows * ldx; i++)
            if (rnd_n(3) == 0) x[i] = scale >= 0 ? -INFINITY : INFINITY;
    }
    gbuf y = gb_new(rows, n, ldy ? ldy : 1, inplace ? 0 : 1);
    if (inplace) memcpy(y.p, x, rows * ldx * sizeof(float));
    /* in place: the kernel reads x from y's buffer (row padding there is guard data, unread) */
    const float *xin = inplace ? y.p : x;
    if (inplace)
        for (size_t r = 0; r < rows; r++)
            for (size_t j = n; j < ldx; j++) y.p[r * ldx + j] = bitsf(GUARD_BITS);
    k->softmax_rows(rows, n, xin, ldx, y.p, ldy, scale, mask, ldm);
    double *t = malloc((n + 1) * sizeof(double)), *dt = malloc((n + 1) * sizeof(double));
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx, *mrow = mask ? mask + r * ldm : NULL;
        double mx = -INFINITY, D = 0;
        int any_nan = 0;
        for (size_t j = 0; j < n; j++) {
            /* float evaluation may round x*scale and the mask add: bound that error (dt). */
            const double xs = (double)xr[j] * scale;
            t[j] = xs + (mrow ? mrow[j] : 0.0);
            dt[j] = 2 * U * (fabs(xs) + fabs(t[j]));
            if (t[j] != t[j]) any_nan = 1;
            if (t[j] > mx) mx = t[j];
        }
        for (size_t j = 0; j < n; j++)
            if (t[j] > -INFINITY && dt[j] > D) D = dt[j];
        double sum = 0;
        if (!any_nan && mx > -INFINITY)
            for (size_t j = 0; j < n; j++) sum += exp(t[j] - mx);
        for (size_t j = 0; j < n; j++) {
            const float got = y.p[r * ldy + j];
            if (any_nan) {
                if (!check(S_SOFTMAX, got != got, 0, 0, "row %zu has a NaN term but y[%zu] = %g", r,
                           j, got))
                    break;
                continue;
            }
            if (mx == -INFINITY) {
                if (!check(S_SOFTMAX, got == 0.0f, 0, 0, "row %zu all -inf but y[%zu] = %g", r, j,
                           got))
                    break;
                continue;
            }
            if (t[j] == -INFINITY) { /* a masked term is exactly 0 */
                if (!check(S_SOFTMAX, got == 0.0f, 0, 0, "row %zu: masked y[%zu] = %g", r, j, got))
                    break;
                continue;
            }
            const double ref = exp(t[j] - mx) / sum, err = fabs(got - ref);
            /* two exps (2 ulp each) + normalisation (n u) + up to 5 u per rescale of the
             * running sum (once per block of >= 16 terms, at most 63) + argument rounding
             * (dt_j + D), and terms below 2^-126 may be flushed to zero */
            const size_t rescales = n <= 16 ? 0 : (n + 15) / 16 - 1 < 63 ? (n + 15) / 16 - 1 : 63;
            const double rel = 2 * (dt[j] + D) + (double)(n + 16 + 5 * rescales) * U;
            const double allowed = ref * rel + (double)FLT_MIN;
            if (!check(S_SOFTMAX, close_enough(err, allowed), err / allowed,
                       ref > 1e-30 ? err / ref : 0,
                       "row %zu: y[%zu] = %.9g, reference %.9g (allowed %.3g)", r, j, got, ref,
                       allowed))
                break;
        }
    }
    check_guard(S_SOFTMAX, &y, "y");
    gb_free(&y);
    free(x);
    free(mask);
    free(t);
    free(dt);
}

static void test_softmax(int v) {
    const ck_kernels *k = var_table(v);
    const size_t ns[] = {0,  1,  2,  3,  4,  5,  7,   8,   9,    12,
                         15, 16, 17, 31, 33, 64, 100, 257, 1000, 4099};
    const float scales[] = {1.0f, 0.125f, -0.5f, 2.0f};
    int sel = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int mk = 0; mk < 3; mk++)
            for (int sp = 0; sp < 5; sp++, sel++) {
                const size_t rows = ns[i] > 1000 ? 1 + (size_t)(sel % 2) : 1 + (size_t)(sel % 5);
                test_softmax_one(k, rows, ns[i], scales[sel % 4], mk, sp, sel % 3 == 0,
                                 sel % 2 ? 4.0f : 30.0f);
            }
    /* exact expectations for huge inputs */
    set_case("%s softmax huge exact", k->name);
    new_case(S_SOFTMAX);
    float x[6] = {1e30f, 1e30f, -1e30f, 3e30f, 3e30f, 3e30f}, y[6];
    k->softmax_rows(2, 3, x, 3, y, 3, 1.0f, NULL, 0);
    check(S_SOFTMAX, y[0] == 0.5f && y[1] == 0.5f && y[2] == 0.0f, 0, 0,
          "[1e30,1e30,-1e30] -> %g %g %g", y[0], y[1], y[2]);
    const float third = 1.0f / 3.0f;
    check(S_SOFTMAX, fabsf(y[3] - third) <= 2 * FLT_EPSILON && y[3] == y[4] && y[4] == y[5], 0, 0,
          "[3e30 x3] -> %.9g %.9g %.9g", y[3], y[4], y[5]);
}

/* ---------------------------------------------------------------- attention softmax step */

static void test_step_one(const ck_kernels *k, size_t rows, size_t valid, int causal,
                          ptrdiff_t coff, int use_kb, int use_rel, int fresh, size_t window) {
    const size_t nq = (size_t)k->attn_nr; /* one query panel */
    const size_t key0 = 8 * (size_t)k->attn_mr, query0 = 3 * nq + 1, seq_k = key0 + rows + 5;
    set_case("%s step rows=%zu valid=%zu causal=%d off=%td kb=%d rel=%d fresh=%d window=%zu",
             k->name, rows, valid, causal, coff, use_kb, use_rel, fresh, window);
    new_case(S_STEP);
    float *s = xaligned(rows * nq + 1), *s0 = malloc((rows * nq + 1) * sizeof(float));
    fill(s, rows * nq, -6, 6);
    memcpy(s0, s, rows * nq * sizeof(float));
    float *kb = NULL, *rel = NULL;
    if (use_kb) {
        kb = malloc(seq_k * sizeof(float));
        fill(kb, seq_k, -1, 1);
        for (size_t j = 0; j < seq_k; j++)
            if (rnd_n(4) == 0) kb[j] = -INFINITY;
    }
    const size_t relen = query0 + nq + seq_k;
    if (use_rel) {
        rel = malloc(relen * sizeof(float));
        fill(rel, relen, -2, 2);
    }
    ck_attention_head h = {0};
    h.seq_q = query0 + nq;
    h.seq_k = seq_k;
    h.causal = causal;
    h.causal_offset = coff;
    h.key_bias = kb;
    h.rel_bias = rel;
    h.rel_bias_zero = (ptrdiff_t)seq_k - 1;
    h.window = window;
    float m[64], l[64], corr[64], m0[64], l0[64];
    for (size_t j = 0; j < nq; j++) {
        m0[j] = fresh || j % 5 == 0 ? -INFINITY : rnd_f(-3, 8);
        l0[j] = m0[j] == -INFINITY ? 0.0f : rnd_f(0.5f, 20);
        m[j] = m0[j];
        l[j] = l0[j];
        corr[j] = NAN;
    }
    k->attn_softmax_step(rows, valid, s, m, l, corr, key0, query0, &h);
    for (size_t j = 0; j < nq; j++) {
        const size_t qi = query0 + j;
        double bmax = -INFINITY, emax = 0;
        double *val = malloc((rows + 1) * sizeof(double)),
               *ev = malloc((rows + 1) * sizeof(double));
        for (size_t r = 0; r < rows; r++) {
            double v = -INFINITY, mag = 0;
            const size_t key = key0 + r;
            if (r < valid) {
                const double kbv = kb ? kb[key] : 0.0;
                const double rv = rel ? rel[(ptrdiff_t)qi - (ptrdiff_t)key + h.rel_bias_zero] : 0.0;
                v = (double)s0[r * nq + j] + kbv + rv;
                mag = fabs(s0[r * nq + j]) + fabs(kbv) + fabs(rv);
                if (causal && (ptrdiff_t)key > (ptrdiff_t)qi + coff) v = -INFINITY;
                if (window && (ptrdiff_t)qi + coff - (ptrdiff_t)key >= (ptrdiff_t)window)
                    v = -INFINITY;
            }
            val[r] = v;
            /* the score plus two biases, added in float: at most 2 roundings of |terms| */
            ev[r] = v == -INFINITY ? 0 : 2 * U * mag;
            if (ev[r] > emax) emax = ev[r];
            if (v > bmax) bmax = v;
        }
        const double mnew = m0[j] > bmax ? m0[j] : bmax;
        const double muse = mnew == -INFINITY ? 0 : mnew;
        const double c = exp(m0[j] - muse);
        double lsum = 0;
        const int mok = mnew == -INFINITY ? m[j] == -INFINITY : fabs(m[j] - mnew) <= emax;
        check(S_STEP, mok, 0, 0, "query %zu: m = %.9g, want %.9g (allowed %.3g)", j, m[j], mnew,
              emax);
        /* corr = exp(m_old - m_new): the new max carries emax, then exp's 2 ulp */
        const double cerr = fabs(corr[j] - c);
        const double callow = m0[j] == -INFINITY ? 0.0 : c * (1.1 * emax + 6 * U) + FLT_MIN;
        check(S_STEP, close_enough(cerr, callow), callow ? cerr / callow : cerr,
              c > 0 ? cerr / c : 0, "query %zu: corr = %.9g, want %.9g", j, corr[j], c);
        for (size_t r = 0; r < rows; r++) {
            /* p = exp(v - m): both rounded as above, then exp (2 ulp; < 2^-126 may flush) */
            const double p = exp(val[r] - muse), got = s[r * nq + j], err = fabs(got - p);
            const double allowed = p * (1.1 * (ev[r] + emax) + 6 * U) + FLT_MIN;
            lsum += p;
            if (!check(S_STEP, close_enough(err, allowed), err / allowed, p > 1e-30 ? err / p : 0,
                       "query %zu key %zu: p = %.9g, want %.9g", j, r, got, p))
                break;
        }
        const double lref = l0[j] * c + lsum, lerr = fabs(l[j] - lref);
        const double lallow = lref * ((double)(rows + 8) * U + 2.2 * emax) + FLT_MIN;
        check(S_STEP, close_enough(lerr, lallow), lerr / lallow, lref > 0 ? lerr / lref : 0,
              "query %zu: l = %.9g, want %.9g", j, l[j], lref);
        free(ev);
        free(val);
    }
    free(s);
    free(s0);
    free(kb);
    free(rel);
}

static void test_step(int v) {
    const ck_kernels *k = var_table(v);
    const size_t mr = (size_t)k->attn_mr;
    const size_t rows_list[] = {mr, 2 * mr, 5 * mr};
    int sel = 0;
    for (size_t i = 0; i < 3; i++) {
        const size_t rows = rows_list[i];
        const size_t valids[] = {rows, rows - 1, 1, rows / 2 + 1};
        for (size_t vi = 0; vi < 4; vi++)
            for (int opt = 0; opt < 8; opt++, sel++) {
                const ptrdiff_t offs[] = {0, -3, 5, -(ptrdiff_t)(10 * mr)};
                test_step_one(k, rows, valids[vi], opt & 1, offs[sel % 4], (opt >> 1) & 1,
                              (opt >> 2) & 1, sel % 3 == 0, 0);
            }
        /* sliding windows cutting through the panel's queries and the block's keys */
        const size_t wins[] = {1, 2, mr + 3, (size_t)k->attn_nr + 7, (size_t)1 << 30};
        for (size_t w = 0; w < 5; w++)
            test_step_one(k, rows, valids[w % 4], w % 2 == 0, (ptrdiff_t)(w * mr) - 3, 0,
                          (int)(w % 3 == 1), w == 2, wins[w]);
    }
}

/* ---------------------------------------------------------------- gemv */

/* gemv (trans == 0: y[j] = alpha * sum_p x[p] W[j][p] + beta * y[j], W n x k) or gemv_t
 * (trans != 0: y[d] = alpha * sum_j x[j] W[j][d] + beta * y[d], W k x n), W's row padding NaN. */
static void test_gemv_one(const ck_kernels *k, int trans, size_t n, size_t kd, float alpha,
                          float beta, size_t pad) {
    const int s = trans ? S_GEMV_T : S_GEMV;
    const size_t wrows = trans ? kd : n, wcols = trans ? n : kd, ldw = wcols + pad;
    set_case("%s %s n=%zu k=%zu ldw=%zu alpha=%g beta=%g", k->name, trans ? "gemv_t" : "gemv", n,
             kd, ldw, alpha, beta);
    new_case(s);
    float *x = malloc((kd + 1) * sizeof(float)), *w = malloc((wrows * ldw + 2) * sizeof(float));
    fill(x, kd, -1, 1);
    float *wp = w + 1;                                    /* misaligned */
    for (size_t i = 0; i < wrows * ldw; i++) wp[i] = NAN; /* padding must not be read */
    for (size_t r = 0; r < wrows; r++) fill(wp + r * ldw, wcols, -1, 1);
    gbuf y = gb_new(1, n, n ? n : 1, n % (trans ? 3 : 2));
    double *y0 = malloc((n + 1) * sizeof(double));
    for (size_t j = 0; j < n; j++) y0[j] = y.p[j] = beta == 0.0f ? NAN : rnd_f(-2, 2);
    (trans ? k->gemv_t : k->gemv)(n, kd, alpha, x, wp, ldw, beta, y.p);
    for (size_t j = 0; j < n; j++) {
        double dot = 0, mag = 0;
        for (size_t p = 0; p < kd; p++) {
            const double t = (double)x[p] * (trans ? wp[p * ldw + j] : wp[j * ldw + p]);
            dot += t;
            mag += fabs(t);
        }
        double ref = alpha * dot, bnd = fabs(alpha) * mag;
        if (beta != 0.0f) {
            ref += beta * y0[j];
            bnd += fabs(beta * y0[j]);
        }
        const double err = fabs(y.p[j] - ref), allowed = (double)(kd + 4) * U * bnd;
        if (!check(s, close_enough(err, allowed), allowed ? err / allowed : err,
                   bnd ? err / (U * bnd) : 0, "y[%zu] = %.9g, reference %.9g (allowed %.3g)", j,
                   y.p[j], ref, allowed))
            break;
    }
    /* gemv_t's contract: each column is the same in-order sum whatever the block. Checked
     * bitwise for beta == 0 (the partial call here starts from an unset y). With beta != 0
     * the merge alpha * acc + beta * y is one explicit fused multiply-add in every loop, so
     * GCC's -ffp-contract=fast cannot make columns differ with the block either. */
    for (size_t d0 = 1; trans && beta == 0.0f && d0 < n; d0 += d0 < 8 ? 3 : n / 2 + 1) {
        float *part = malloc((n - d0 + 1) * sizeof(float));
        k->gemv_t(n - d0, kd, alpha, x, wp + d0, ldw, beta, part);
        for (size_t d = d0; d < n; d++)
            if (!check(s, fbits(part[d - d0]) == fbits(y.p[d]), 0, 0,
                       "column %zu alone from %zu: %.9g, in the full call %.9g", d, d0,
                       part[d - d0], y.p[d]))
                break;
        free(part);
    }
    if (n == y.ld || n == 0) check_guard(s, &y, "y");
    gb_free(&y);
    free(x);
    free(w);
    free(y0);
}

static void test_gemv(int v) {
    const ck_kernels *k = var_table(v);
    const size_t ns[] = {0, 1, 3, 4, 5, 7, 8, 13};
    const size_t ks[] = {0, 1, 3, 4, 5, 7, 8, 33, 257, 1000};
    int sel = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++, sel++) {
            test_gemv_one(k, 0, ns[i], ks[j], 1.0f, 0.0f, (size_t)(sel % 3));
            test_gemv_one(k, 0, ns[i], ks[j], -0.75f, 1.5f, (size_t)(sel % 4));
        }
    test_gemv_one(k, 0, 384, 384, 1.0f, 1.0f, 0);
    test_gemv_one(k, 0, 67, 1531, 0.5f, 0.0f, 5);
}

/* ---------------------------------------------------------------- activation */

static double gelu_ref(double x) {
    return x >= 0 ? 0.5 * x * (1 + erf(x / sqrt(2.0))) : 0.5 * x * erfc(-x / sqrt(2.0));
}
static double gelu_tanh_ref(double x, double *arg) {
    const double u = sqrt(2.0 / PI_D) * (x + 0.044715 * x * x * x);
    *arg = fabs(2 * u);
    /* 0.5 x (1 + tanh u) = x / (1 + exp(-2u)), stable for every sign */
    return x / (1 + exp(-2 * u));
}

static void test_act_batch(const ck_kernels *k, int kind, const float *x, size_t n) {
    const int s = S_ACT_RELU + kind;
    float *y = malloc((n + 1) * sizeof(float));
    k->activation(kind, n, x, y);
    for (size_t i = 0; i < n; i++) {
        const double xi = x[i], got = y[i];
        if (xi != xi) {
            if (!check(s, got != got, 0, 0, "f(NaN) = %g", got)) break;
            continue;
        }
        double ref, arg = 0;
        switch (kind) {
        case CK_ACT_RELU:
            ref = xi < 0 ? 0.0 : xi;
            break;
        case CK_ACT_GELU:
            ref = gelu_ref(xi);
            arg = xi * xi / 2;
            break;
        case CK_ACT_GELU_TANH:
            ref = gelu_tanh_ref(xi, &arg);
            break;
        default:
            ref = xi / (1 + exp(-xi));
            arg = fabs(xi);
            break;
        }
        if (isinf(ref) || isinf(xi)) {
            /* +inf stays +inf; -inf gives 0 (gelu, silu) or NaN from inf/inf: accept 0 or NaN */
            int ok = xi > 0 ? got == INFINITY
                            : (kind == CK_ACT_RELU ? got == 0 : (got == 0 || got != got));
            if (!check(s, ok, 0, 0, "f(%g) = %g", xi, got)) break;
            continue;
        }
        const double err = fabs(got - ref);
        double allowed;
        if (kind == CK_ACT_RELU)
            allowed = 0;
        else {
            /* documented 1e-6-level relative error, plus the conditioning of exp(-arg) to
             * float rounding of its argument (a few u per unit of |arg|), plus an absolute
             * floor at the bottom of the float range where results underflow */
            const double base = kind == CK_ACT_GELU ? 1.5e-6 : 16 * U;
            allowed = fabs(ref) * (base + 4 * U * arg) + 0x1p-120;
        }
        if (!check(s, close_enough(err, allowed) && (kind != CK_ACT_RELU || got == ref),
                   allowed ? err / allowed : err,
                   kind == CK_ACT_RELU ? err : (fabs(ref) > 1e-30 ? err / fabs(ref) : 0),
                   "f(%.9g) = %.9g, reference %.9g (allowed %.3g)", xi, got, ref, allowed))
            break;
    }
    free(y);
}

static void test_activation(int v) {
    const ck_kernels *k = var_table(v);
    const float specials[] = {0.0f,    -0.0f,   0x1p-149f, -0x1p-149f, FLT_MIN,   -FLT_MIN, 1e-20f,
                              -1e-20f, 1e-3f,   -1e-3f,    0.5f,       -0.5f,     1,        -1,
                              3,       -3,      5.5f,      -5.5f,      10,        -10,      13,
                              -13,     20,      -20,       50,         -50,       87,       -87,
                              88.8f,   -88.8f,  100,       -100,       1e10f,     -1e10f,   1e30f,
                              -1e30f,  FLT_MAX, -FLT_MAX,  INFINITY,   -INFINITY, NAN};
    const size_t ns = sizeof specials / sizeof specials[0];
    enum { N = 20011 };
    float *x = malloc(N * sizeof(float));
    for (int kind = 0; kind < 4; kind++) {
        set_case("%s activation kind=%d specials", k->name, kind);
        new_case(S_ACT_RELU + kind);
        test_act_batch(k, kind, specials, ns);
        set_case("%s activation kind=%d sweep [-12, 12]", k->name, kind);
        new_case(S_ACT_RELU + kind);
        for (size_t i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / (N - 1);
        test_act_batch(k, kind, x, N);
        set_case("%s activation kind=%d random wide", k->name, kind);
        new_case(S_ACT_RELU + kind);
        for (size_t i = 0; i < N; i++) x[i] = (rnd_n(2) ? 1 : -1) * (float)exp(rnd_f(-30, 5));
        test_act_batch(k, kind, x, N);
        /* tails and in place, guard bands */
        for (size_t n = 0; n <= 11; n++) {
            set_case("%s activation kind=%d in-place n=%zu", k->name, kind, n);
            new_case(S_ACT_RELU + kind);
            gbuf g = gb_new(1, n, n ? n : 1, n % 3);
            float want[16];
            for (size_t i = 0; i < n; i++) g.p[i] = specials[(i * 5 + n) % ns];
            k->activation(kind, n, g.p, want);
            k->activation(kind, n, g.p, g.p);
            for (size_t i = 0; i < n; i++)
                check(S_ACT_RELU + kind,
                      fbits(g.p[i]) == fbits(want[i]) || (g.p[i] != g.p[i] && want[i] != want[i]),
                      0, 0, "in-place result differs at %zu", i);
            check_guard(S_ACT_RELU + kind, &g, "y");
            gb_free(&g);
        }
    }
    free(x);
}

/* ---------------------------------------------------------------- norm_rows */

static void test_norm_one(const ck_kernels *k, int rms, size_t rows, size_t n, int use_res,
                          int use_beta, int alias, float eps, float offset) {
    /* alias: 0 none, 1 y == x, 2 y == residual (same stride, as the contract requires) */
    if (alias == 2 && !use_res) alias = 0;
    const size_t ldx = n + (n % 3), ldr = n + 1;
    const size_t ldy = alias == 1 ? ldx : (alias == 2 ? ldr : n + 2);
    set_case("%s norm rms=%d rows=%zu n=%zu res=%d beta=%d alias=%d eps=%g offset=%g", k->name, rms,
             rows, n, use_res, use_beta, alias, eps, offset);
    new_case(S_NORM);
    float *xs = malloc((rows * ldx + 1) * sizeof(float)),
          *rs = malloc((rows * ldr + 1) * sizeof(float));
    for (size_t i = 0; i < rows * ldx; i++) xs[i] = offset + rnd_f(-2, 2);
    fill(rs, rows * ldr, -1, 1);
    if (n > 3 && rows > 1) /* a constant row: variance 0 */
        for (size_t j = 0; j < n; j++) {
            xs[ldx + j] = offset + 0.5f;
            rs[ldr + j] = 0.25f;
        }
    float *gamma = malloc((n + 1) * sizeof(float)), *beta = malloc((n + 1) * sizeof(float));
    fill(gamma, n, 0.5f, 1.5f);
    fill(beta, n, -1, 1);
    gbuf y = gb_new(rows, n, ldy, 1);
    const float *xin = xs, *rin = use_res ? rs : NULL;
    if (alias == 1) {
        for (size_t r = 0; r < rows; r++) memcpy(y.p + r * ldy, xs + r * ldx, n * sizeof(float));
        xin = y.p;
    } else if (alias == 2) {
        for (size_t r = 0; r < rows; r++) memcpy(y.p + r * ldy, rs + r * ldr, n * sizeof(float));
        rin = y.p;
    }
    k->norm_rows(rms, rows, n, xin, ldx, rin, ldr, gamma, use_beta ? beta : NULL, eps, y.p, ldy);
    double *t = malloc((n + 1) * sizeof(double));
    for (size_t r = 0; r < rows; r++) {
        double mean = 0, var = 0, mabs = 0;
        for (size_t j = 0; j < n; j++) {
            /* t = x + residual is one float addition in the kernel: reproduce it exactly */
            t[j] = (double)(float)(xs[r * ldx + j] + (use_res ? rs[r * ldr + j] : 0.0f));
            mean += t[j];
            mabs += fabs(t[j]);
        }
        mean /= (double)n;
        mabs /= (double)n;
        if (rms) {
            for (size_t j = 0; j < n; j++) var += t[j] * t[j];
            var /= (double)n;
            mean = 0;
        } else {
            for (size_t j = 0; j < n; j++) var += (t[j] - mean) * (t[j] - mean);
            var /= (double)n;
        }
        const double rstd = 1 / sqrt(var + eps);
        for (size_t j = 0; j < n; j++) {
            const double ref = (t[j] - mean) * rstd * gamma[j] + (use_beta && !rms ? beta[j] : 0.0);
            /* float sums of n terms: the mean is off by ~n u mean|t|, the variance (and so
             * rstd) by ~n u relative; both scaled by gamma * rstd */
            const double scale = fabs(gamma[j]) * rstd * ((rms ? 0 : mabs) + fabs(t[j] - mean)) +
                                 (use_beta && !rms ? fabs(beta[j]) : 0.0);
            const double allowed = (double)(n + 8) * U * scale + FLT_MIN;
            const double got = y.p[r * y.ld + j], err = fabs(got - ref);
            if (!check(S_NORM, close_enough(err, allowed), err / allowed, err / (U * scale),
                       "row %zu y[%zu] = %.9g, reference %.9g (allowed %.3g)", r, j, got, ref,
                       allowed))
                break;
        }
    }
    check_guard(S_NORM, &y, "y");
    gb_free(&y);
    free(xs);
    free(rs);
    free(gamma);
    free(beta);
    free(t);
}

static void test_norm(int v) {
    const ck_kernels *k = var_table(v);
    const size_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 64, 100, 384, 768, 1003};
    const float epss[] = {1e-5f, 1e-6f, 1e-12f};
    const float offsets[] = {0.0f, 3.0f, 1000.0f};
    int sel = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int rms = 0; rms < 2; rms++)
            for (int opt = 0; opt < 6; opt++, sel++)
                test_norm_one(k, rms, 1 + (size_t)(sel % 3), ns[i], opt & 1, (opt >> 1) & 1,
                              opt % 3, epss[sel % 3], offsets[(sel / 2) % 3]);
}

/* ---------------------------------------------------------------- attention references */

/* Shaw bucket of key j for query i: clamp(j - (i + coff), -clip, clip) + clip. */
static size_t shaw_bucket(size_t i, size_t j, ptrdiff_t coff, size_t clip) {
    ptrdiff_t dd = (ptrdiff_t)j - ((ptrdiff_t)i + coff);
    const ptrdiff_t cl = (ptrdiff_t)clip;
    dd = dd < -cl ? -cl : (dd > cl ? cl : dd);
    return (size_t)(dd + cl);
}

/* The double reference of query i's attention weights (qi: its D floats): s[j] = scale *
 * qi.k_j + kb[j] + rel[(i - j) + rzero] + extra[j] (each term when non-NULL), -inf where
 * causal or the sliding window hides key j; es[j] = exp(s[j] - max) (all 0 when every score is -inf) and their sum
 * in *l. Returns the largest error of a float score: scaled q (1 rounding), a dot of D terms,
 * then up to 3 bias adds. */
static double ref_weights(size_t i, size_t Sk, size_t D, const float *qi, const float *kk,
                          size_t ldk, float scale, const float *kb, const float *rel,
                          ptrdiff_t rzero, const double *extra, int causal, ptrdiff_t coff,
                          size_t window, double *s, double *es, double *l) {
    double mx = -INFINITY, Es = 0;
    for (size_t j = 0; j < Sk; j++) {
        double dot = 0, mag = 0;
        for (size_t d = 0; d < D; d++) {
            dot += (double)qi[d] * kk[j * ldk + d];
            mag += fabs((double)qi[d] * kk[j * ldk + d]);
        }
        double v = (double)scale * dot, bias = 0;
        if (kb) bias += kb[j];
        if (rel) bias += rel[(ptrdiff_t)i - (ptrdiff_t)j + rzero];
        if (extra) bias += extra[j];
        v += bias;
        if (causal && (ptrdiff_t)j > (ptrdiff_t)i + coff) v = -INFINITY;
        if (window && (ptrdiff_t)i + coff - (ptrdiff_t)j >= (ptrdiff_t)window) v = -INFINITY;
        s[j] = v;
        if (v > -INFINITY) {
            const double e =
                (double)(D + 3) * U * fabs(scale) * mag + 4 * U * (fabs(bias) + fabs(v));
            if (e > Es) Es = e;
        }
        if (v > mx) mx = v;
    }
    *l = 0;
    for (size_t j = 0; j < Sk; j++) {
        es[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
        *l += es[j];
    }
    return Es;
}

/* ---------------------------------------------------------------- GEMM on a packed weight */

static double act_ref(int kind, double x) {
    switch (kind) {
    case CK_ACT_RELU:
        return x > 0 ? x : (x == x ? 0.0 : x);
    case CK_ACT_GELU:
        return gelu_ref(x);
    case CK_ACT_GELU_TANH:
        return 0.5 * x * (1 + tanh(sqrt(2 / PI_D) * (x + 0.044715 * x * x * x)));
    case CK_ACT_SILU:
        return x / (1 + exp(-x));
    default:
        return x;
    }
}

/* One product on a packed weight: rows [0, m) x the weight rows col0 ..< col0 + n (col0 =
 * col_panels * nr of a weight with `extra` more rows), A in place or packed, the work split
 * into row_parts x panel_parts calls (or, `partial`, only the block of the last row range and
 * the first panel range: the rest of C must stay bitwise), with bias / activation / residual. */
typedef struct {
    size_t m, n, k, col_panels, extra;
    float beta;
    int bias, act, residual, packed_a, row_parts, panel_parts, partial;
} packed_case;

static size_t split_bound(size_t units, size_t parts, size_t t, size_t step, size_t count) {
    if (parts > units) parts = units ? units : 1;
    const size_t b = units * t / parts * step;
    return t >= parts || b > count ? count : b;
}

static void test_packed_one(const ck_kernels *k, const packed_case *pc) {
    const size_t mr = (size_t)k->gemm.mr, nr = (size_t)k->gemm.nr;
    const size_t m = pc->m, n = pc->n, kd = pc->k, col0 = pc->col_panels * nr;
    const size_t wn = col0 + n + pc->extra, lda = kd + 1, ldw = kd + 2, ldc = n + 3, ldr = n + 1;
    set_case(
        "%s gemm_packed m=%zu n=%zu k=%zu col0=%zu weight_n=%zu beta=%g bias=%d act=%d residual=%d "
        "packed_a=%d calls %dx%d partial=%d",
        k->name, m, n, kd, col0, wn, pc->beta, pc->bias, pc->act, pc->residual, pc->packed_a,
        pc->row_parts, pc->panel_parts, pc->partial);
    new_case(S_PACKED);
    float *a = malloc((m * lda + 2) * sizeof(float)), *w = malloc((wn * ldw + 2) * sizeof(float));
    float *ap = a + 1, *wp = w + 1;                   /* misaligned */
    for (size_t i = 0; i < m * lda; i++) ap[i] = NAN; /* padding must not be read */
    for (size_t i = 0; i < wn * ldw; i++) wp[i] = NAN;
    for (size_t i = 0; i < m; i++) fill(ap + i * lda, kd, -1, 1);
    for (size_t j = 0; j < wn; j++) fill(wp + j * ldw, kd, -1, 1);
    float *bias = malloc((n + 1) * sizeof(float)), *res = malloc((m * ldr + 1) * sizeof(float));
    fill(bias, n, -1, 1);
    for (size_t i = 0; i < m * ldr; i++) res[i] = NAN;
    for (size_t i = 0; i < m; i++) fill(res + i * ldr, n, -1, 1);
    gbuf c = gb_new(m, n, ldc, 1);
    double *c0 = malloc((m * n + 1) * sizeof(double));
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c0[i * n + j] = *gb_at(&c, i, j) = pc->beta == 0.0f ? NAN : rnd_f(-1, 1);
    /* packed weight in two panel ranges (the second past the end), with a guard after */
    const size_t wsz = ck_f32_packed_weight_size(k, wn, kd), panels_w = (wn + nr - 1) / nr;
    float *packed = xaligned(wsz + 16);
    for (size_t i = 0; i < wsz + 16; i++) packed[i] = bitsf(GUARD_BITS);
    ck_f32_pack_weight(k, wn, kd, wp, ldw, 0, panels_w / 2, packed);
    ck_f32_pack_weight(k, wn, kd, wp, ldw, panels_w / 2, panels_w + 3, packed);
    size_t damage = 0;
    for (size_t i = wsz; i < wsz + 16; i++) damage += fbits(packed[i]) != GUARD_BITS;
    check(S_PACKED, damage == 0, 0, 0, "pack_weight wrote past its documented size %zu", wsz);
    float *pa = NULL;
    size_t asz = 0;
    if (pc->packed_a) {
        asz = ck_f32_packed_a_size(k, m, kd);
        pa = xaligned(asz + 16);
        for (size_t i = 0; i < asz + 16; i++) pa[i] = bitsf(GUARD_BITS);
        ck_f32_pack_a(k, m, kd, ap, lda, pa);
        damage = 0;
        for (size_t i = asz; i < asz + 16; i++) damage += fbits(pa[i]) != GUARD_BITS;
        check(S_PACKED, damage == 0, 0, 0, "pack_a wrote past its documented size %zu", asz);
    }
    const size_t wsn = ck_f32_gemm_packed_workspace(k, m, kd);
    float *ws = malloc((wsn + 17) * sizeof(float));
    for (size_t i = 0; i < wsn + 17; i++) ws[i] = bitsf(GUARD_BITS);
    ck_gemm_packed g = {m,
                        n,
                        kd,
                        ap,
                        lda,
                        pa,
                        packed,
                        wn,
                        col0,
                        c.p,
                        ldc,
                        pc->beta,
                        {pc->bias ? bias : NULL, pc->act, pc->residual ? res : NULL, ldr},
                        0};
    const size_t step = pc->packed_a ? mr : 1, runits = (m + step - 1) / step,
                 punits = (n + nr - 1) / nr;
    size_t r_lo = 0, r_hi = m, p_lo = 0, p_hi = punits;
    for (int rt = 0; rt < pc->row_parts; rt++) {
        const size_t i0 = split_bound(runits, (size_t)pc->row_parts, (size_t)rt, step, m);
        const size_t i1 = split_bound(runits, (size_t)pc->row_parts, (size_t)rt + 1, step, m);
        if (i0 >= i1) continue;
        for (int pt = 0; pt < pc->panel_parts; pt++) {
            const size_t j0 = split_bound(punits, (size_t)pc->panel_parts, (size_t)pt, 1, punits);
            const size_t j1 =
                split_bound(punits, (size_t)pc->panel_parts, (size_t)pt + 1, 1, punits);
            if (j0 >= j1) continue;
            if (pc->partial) { /* only the last row range, first panel range */
                if (i1 != m || pt != 0) continue;
                r_lo = i0;
                r_hi = i1;
                p_lo = j0;
                p_hi = j1;
            }
            ck_f32_gemm_packed(k, &g, i0, i1, j0, j1, ws + 1);
        }
    }
    damage = 0;
    for (size_t i = wsn + 1; i < wsn + 17; i++) damage += fbits(ws[i]) != GUARD_BITS;
    check(S_PACKED, damage == 0, 0, 0, "gemm_packed wrote past its documented workspace %zu", wsn);
    const size_t c_lo = p_lo * nr, c_hi = p_hi * nr < n ? p_hi * nr : n;
    const size_t nblk = kd ? (kd + (size_t)k->gemm.kc - 1) / (size_t)k->gemm.kc : 0;
    int reported = 0;
    for (size_t i = 0; i < m && !reported; i++)
        for (size_t j = 0; j < n && !reported; j++) {
            const double got = *gb_at(&c, i, j);
            if (i < r_lo || i >= r_hi || j < c_lo || j >= c_hi) {
                reported =
                    !check(S_PACKED,
                           fbits((float)got) == fbits((float)c0[i * n + j]) ||
                               (got != got && c0[i * n + j] != c0[i * n + j]),
                           0, 0, "C[%zu][%zu] is outside the block computed but changed to %.9g", i,
                           j, got);
                continue;
            }
            double z = 0, mag = 0;
            for (size_t p = 0; p < kd; p++) {
                const double x = (double)ap[i * lda + p] * wp[(col0 + j) * ldw + p];
                z += x;
                mag += fabs(x);
            }
            if (pc->beta != 0.0f) {
                z += pc->beta * c0[i * n + j];
                mag += fabs(pc->beta * c0[i * n + j]);
            }
            double allowed = (double)(kd + 2 * nblk + 4) * U * mag;
            if (pc->bias) {
                z += bias[j];
                allowed += U * (fabs(z) + fabs(bias[j]));
            }
            double ref = z;
            if (pc->act != CK_ACT_NONE) {
                ref = act_ref(pc->act, z);
                /* Lipschitz <= 1.13, plus the activation's own error (about 1e-6 relative) */
                allowed = 1.13 * allowed + 2e-6 * fabs(ref) + 1e-7 * z * z * fabs(ref);
            }
            if (pc->residual) {
                ref += res[i * ldr + j];
                allowed += U * (fabs(ref) + fabs(res[i * ldr + j]));
            }
            allowed += FLT_MIN;
            const double err = fabs(got - ref);
            /* figure: the error in units of u times the scale of the result (sum|ab| plus |result|:
             * the epilogue's roundings scale with the latter) */
            reported = !check(S_PACKED, close_enough(err, allowed), err / allowed,
                              err / (U * (mag + fabs(ref)) + FLT_MIN),
                              "C[%zu][%zu] = %.9g, reference %.9g (allowed %.3g)", i, j, got, ref,
                              allowed);
        }
    check_guard(S_PACKED, &c, "C");
    gb_free(&c);
    free(a);
    free(w);
    free(bias);
    free(res);
    free(c0);
    free(packed);
    free(pa);
    free(ws);
}

static void test_packed(int v) {
    const ck_kernels *k = var_table(v);
    const size_t mr = (size_t)k->gemm.mr, nr = (size_t)k->gemm.nr;
    const size_t mc = (size_t)k->gemm.mc, kc = (size_t)k->gemm.kc;
    const size_t ms[] = {1, mr - 1, mr, mr + 1, 2 * mr + 3};
    const size_t ns[] = {1, nr - 1, nr, nr + 1, 2 * nr + 5};
    const size_t ks[] = {1, 2, 7, 33};
    const float betas[] = {0.0f, 0.0f, 1.0f, -1.5f};
    const int acts[] = {CK_ACT_NONE, CK_ACT_RELU, CK_ACT_GELU, CK_ACT_GELU_TANH, CK_ACT_SILU};
    int sel = 0;
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++, sel++) {
                packed_case pc = {ms[a],
                                  ns[b],
                                  ks[c],
                                  (size_t)(sel % 3 == 2),
                                  (size_t)(sel % 4),
                                  betas[sel % 4],
                                  sel % 2,
                                  acts[sel % 5],
                                  sel % 3 == 0,
                                  sel % 4 == 1,
                                  1 + sel % 3,
                                  1 + (sel / 3) % 2,
                                  sel % 7 == 3};
                test_packed_one(k, &pc);
            }
    /* k over kc (epilogue after the last k block), m over mc (row blocks), column offsets */
    const size_t kk[] = {kc - 1, kc, kc + 1, 2 * kc + 3};
    for (int t = 0; t < 8; t++) {
        packed_case pc = {mr + 1, nr + 1, kk[t % 4], 0, 1, t % 2 ? 0.5f : 0.0f, 1, acts[1 + t % 4],
                          1,      t >= 4, 2,         2, 0};
        test_packed_one(k, &pc);
    }
    const size_t mm[] = {mc - 1, mc, mc + 1, 2 * mc + 3};
    for (int t = 0; t < 8; t++) {
        packed_case pc = {mm[t % 4],   2 * nr + 1, 5,      (size_t)(t % 2), 3, 0.0f,  1,
                          CK_ACT_GELU, t % 2 == 0, t >= 4, 1 + t % 3,       2, t == 7};
        test_packed_one(k, &pc);
    }
    for (int t = 0; t < 4; t++) {
        packed_case pc = {2 * mr + 3, 3 * nr - 1, 40, 1 + (size_t)(t % 2),
                          nr + 1,     0.0f,       1,  CK_ACT_RELU,
                          1,          t >= 2,     3,  3,
                          t % 2};
        test_packed_one(k, &pc);
    }
    /* k == 0: C = beta * C, then the epilogue */
    for (int t = 0; t < 2; t++) {
        packed_case pc = {mr + 2, nr + 2, 0, 0, 0, t ? 2.0f : 0.0f, 1, CK_ACT_SILU, 1, 0, 1, 1, 0};
        test_packed_one(k, &pc);
    }
    /* a larger product, blocked in m and k */
    packed_case big = {mc + mr + 3, 4 * nr + 7, kc + 37, 1, 5, 1.0f, 1, CK_ACT_GELU, 1, 0, 2, 3, 0};
    test_packed_one(k, &big);
}

/* ---------------------------------------------------------------- transposed gemv */

static void test_gemv_t(int v) {
    const ck_kernels *k = var_table(v);
    const size_t ns[] = {0, 1, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 31, 33, 64, 65};
    const size_t ks[] = {0, 1, 3, 8, 33, 257};
    int sel = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++, sel++) {
            test_gemv_one(k, 1, ns[i], ks[j], 1.0f, 0.0f, (size_t)(sel % 3));
            test_gemv_one(k, 1, ns[i], ks[j], -0.75f, 1.5f, (size_t)(sel % 4));
        }
    test_gemv_one(k, 1, 384, 1000, 1.0f, 1.0f, 0);
    test_gemv_one(k, 1, 67, 1531, 0.5f, 0.0f, 5);
}

/* ---------------------------------------------------------------- attention on in-place K/V */

/* One head through ck_f32_attention_short (few == 0) or ck_f32_attention_few (queries in
 * calls of `per_call`, 0: one call; `only_last`: only the last call, the other queries' rows
 * must stay untouched), against the naive double reference. key_bias: 0 none, 1 random with
 * -inf padding, 2 every key padded, 3 a padded batch row (the last third of the keys -inf, the
 * rest random; the short kernel drops them). */
static void test_rows_one(const ck_kernels *k, int few, size_t Sq, size_t Sk, size_t D, int causal,
                          ptrdiff_t coff, int key_bias, int rel, float scale, size_t per_call,
                          int only_last, size_t window) {
    const size_t ldq = D + 3, ldk = D + 1, ldv = D + 2, ldo = D + 5;
    const int s = few ? S_ATTN_FEW : S_ATTN_SHORT;
    set_case("%s attention_%s seq_q=%zu seq_k=%zu d=%zu causal=%d off=%td key_bias=%d rel=%d "
             "scale=%g per_call=%zu%s window=%zu",
             k->name, few ? "few" : "short", Sq, Sk, D, causal, coff, key_bias, rel, scale,
             per_call, only_last ? " (last call only)" : "", window);
    new_case(s);
    float *q = malloc((Sq * ldq + 1) * sizeof(float)), *kk = malloc((Sk * ldk + 1) * sizeof(float));
    float *vv = malloc((Sk * ldv + 1) * sizeof(float));
    for (size_t i = 0; i < Sq * ldq; i++) q[i] = NAN; /* padding must not be read */
    for (size_t i = 0; i < Sk * ldk; i++) kk[i] = NAN;
    for (size_t i = 0; i < Sk * ldv; i++) vv[i] = NAN;
    for (size_t i = 0; i < Sq; i++) fill(q + i * ldq, D, -1, 1);
    for (size_t j = 0; j < Sk; j++) {
        fill(kk + j * ldk, D, -1, 1);
        fill(vv + j * ldv, D, -1, 1);
    }
    float *kb = NULL, *relb = NULL;
    if (key_bias) {
        kb = malloc((Sk + 1) * sizeof(float));
        for (size_t j = 0; j < Sk; j++)
            kb[j] = key_bias == 2 || (key_bias == 1 && rnd_n(5) == 0) || (key_bias == 3 && 3 * j >= 2 * Sk)
                        ? -INFINITY
                        : rnd_f(-1, 1);
    }
    const size_t rlen = Sq + Sk; /* entries (i - j) + Sk - 1 for i < Sq, j < Sk, then a NaN */
    if (rel) {
        relb = malloc((rlen + 1) * sizeof(float));
        fill(relb, rlen, -2, 2);
        relb[rlen - 1] = NAN;
    }
    gbuf o = gb_new(Sq, D, ldo, 2);
    for (size_t i = 0; i < Sq; i++)
        for (size_t d = 0; d < D; d++) *gb_at(&o, i, d) = -7.0f;
    ck_attention_rows h = {Sq,
                           Sk,
                           D,
                           q,
                           ldq,
                           kk,
                           ldk,
                           vv,
                           ldv,
                           o.p,
                           ldo,
                           scale,
                           causal,
                           coff,
                           kb,
                           relb,
                           (ptrdiff_t)Sk - 1,
                           window};
    const size_t wsz = few ? ck_f32_attention_few_workspace(Sk, D)
                           : ck_f32_attention_short_workspace(k, Sq, Sk, D);
    float *ws = malloc((wsz + 17) * sizeof(float));
    for (size_t i = 0; i < wsz + 17; i++) ws[i] = bitsf(GUARD_BITS);
    size_t q_lo = 0, q_hi = Sq;
    if (!few) {
        ck_f32_attention_short(k, &h, ws + 1); /* any alignment */
    } else if (per_call == 0) {
        ck_f32_attention_few(k, &h, 0, Sq, ws + 1);
    } else {
        for (size_t q0 = 0; q0 < Sq; q0 += per_call) {
            q_lo = q0;
            q_hi = Sq - q0 < per_call ? Sq : q0 + per_call;
            if (!only_last || q_hi == Sq) ck_f32_attention_few(k, &h, q_lo, q_hi - q_lo, ws + 1);
        }
        if (!only_last) q_lo = 0;
    }
    size_t damage = 0;
    for (size_t i = wsz + 1; i < wsz + 17; i++) damage += fbits(ws[i]) != GUARD_BITS;
    check(s, damage == 0, 0, 0, "wrote past its documented workspace %zu", wsz);
    double *sc = malloc((Sk + 1) * sizeof(double)), *es = malloc((Sk + 1) * sizeof(double));
    int reported = 0;
    for (size_t i = 0; i < Sq && !reported; i++) {
        if (i < q_lo || i >= q_hi) { /* a query no call computed: untouched */
            for (size_t d = 0; d < D && !reported; d++)
                reported = !check(s, *gb_at(&o, i, d) == -7.0f, 0, 0,
                                  "o[%zu][%zu] = %.9g written, but query %zu was not computed", i,
                                  d, *gb_at(&o, i, d), i);
            continue;
        }
        double l;
        const double Es = ref_weights(i, Sk, D, q + i * ldq, kk, ldk, scale, kb, relb,
                                      (ptrdiff_t)Sk - 1, NULL, causal, coff, window, sc, es, &l);
        for (size_t d = 0; d < D; d++) {
            double ref = 0, mag = 0;
            for (size_t j = 0; j < Sk; j++) {
                if (es[j] == 0) continue;
                ref += es[j] * vv[j * ldv + d];
                mag += es[j] * fabs(vv[j * ldv + d]);
            }
            if (l > 0) {
                ref /= l;
                mag /= l;
            }
            const double got = *gb_at(&o, i, d), err = fabs(got - ref);
            const double allowed = mag * (2.5 * Es + (double)(2 * Sk + 12) * U) + FLT_MIN;
            if (!check(s, close_enough(err, allowed) && (l > 0 || got == 0.0f), err / allowed,
                       mag > 0 ? err / (U * mag) : 0,
                       "o[%zu][%zu] = %.9g, reference %.9g (allowed %.3g)", i, d, got, ref,
                       allowed)) {
                reported = 1;
                break;
            }
        }
    }
    check_guard(s, &o, "o");
    gb_free(&o);
    free(q);
    free(kk);
    free(vv);
    free(kb);
    free(relb);
    free(ws);
    free(sc);
    free(es);
}

static void test_attention_short(int v) {
    const ck_kernels *k = var_table(v);
    const size_t mr = (size_t)k->gemm.mr, nr = (size_t)k->gemm.nr;
    const size_t seqs[] = {1, 2, 5, mr - 1, mr, mr + 1, nr - 1, nr, nr + 1, 2 * nr + 1, 41};
    const size_t ds[] = {1, 7, nr - 1, nr, nr + 1, 64};
    int sel = 0;
    for (size_t a = 0; a < sizeof seqs / sizeof seqs[0]; a++)
        for (int t = 0; t < 4; t++, sel++) {
            const size_t sq = seqs[a],
                         sk = t < 2 ? sq
                                    : seqs[(a + 3 + (size_t)t) % (sizeof seqs / sizeof seqs[0])];
            const ptrdiff_t offs[] = {0, (ptrdiff_t)sk - (ptrdiff_t)sq, -2, 3};
            const float scales[] = {1.0f / sqrtf((float)ds[sel % 6]), 0.0f, -0.5f};
            test_rows_one(k, 0, sq, sk, ds[sel % 6], sel % 4 >= 2, offs[sel % 4],
                          sel % 5 == 4 ? 2 : sel % 3 == 1, sel % 3 == 2,
                          scales[sel % 7 == 6 ? 1 + sel % 2 : 0], 0, 0, 0);
        }
    test_rows_one(k, 0, 5, 0, 9, 0, 0, 0, 0, 0.3f, 0, 0, 0); /* no keys: zeros */
    /* the short kernel's blocks: query rows around 6 (neon) and 1 (scalar), key vectors
     * around 4 x 4 lanes, head size 32 (a sentence model's) and around it; padded rows */
    const size_t rows_seqs[] = {6, 7, 12, 13, 16, 17, 33, 48, 64, 65};
    const size_t rows_ds[] = {32, 31, 33, 17};
    for (size_t a = 0; a < sizeof rows_seqs / sizeof rows_seqs[0]; a++)
        for (int t = 0; t < 2; t++)
            test_rows_one(k, 0, rows_seqs[a], rows_seqs[a], rows_ds[(a + (size_t)t) % 4], 0, 0,
                          t ? 3 : (int)(a % 2), 0, 1.0f / sqrtf(32.0f), 0, 0, 0);
    test_rows_one(k, 0, 130, 130, 64, 0, 0, 1, 1, 0.125f, 0, 0, 0);
    /* sliding windows: 1, a few, around a panel, past the sequence; causal or not */
    const size_t wins[] = {1, 3, nr - 1, nr + 2, 200};
    for (size_t a = 0; a < 5; a++)
        test_rows_one(k, 0, 41, 41, 9, a != 3, a == 2 ? -2 : 0, (int)(a % 2), a == 4, 0.3f, 0, 0,
                      wins[a]);
}

static void test_attention_few(int v) {
    const ck_kernels *k = var_table(v);
    const size_t nr = (size_t)k->gemm.nr;
    const size_t sks[] = {0, 1, 3, 4, 5, 8, 9, 16, 17, 63, 64, 65, nr + 1, 130, 1000};
    const size_t ds[] = {1, 3, 4, 8, 13, 16, 17, 64, 65, 128};
    int sel = 0;
    for (size_t a = 0; a < sizeof sks / sizeof sks[0]; a++)
        for (size_t sq = 1; sq <= 3; sq++, sel++) {
            const size_t sk = sks[a], d = sk >= 1000 && ds[sel % 10] > 16 ? 16 : ds[sel % 10];
            const ptrdiff_t offs[] = {(ptrdiff_t)sk - (ptrdiff_t)sq, (ptrdiff_t)sk - (ptrdiff_t)sq,
                                      0, -1};
            test_rows_one(k, 1, sq, sk, d, sel % 3 != 0, offs[sel % 4], sel % 7 == 6 ? 2 : sel % 2,
                          sel % 4 == 1, sel % 11 == 10 ? -0.5f : 1.0f / sqrtf((float)d),
                          sq > 1 && sel % 2 == 0 ? 1 : 0, sq > 1 && sel % 4 == 0, 0);
        }
    /* sliding windows on decode steps against a long cache (only the window is read) */
    const size_t wins[] = {1, 4, 17, 129, 2000};
    for (size_t a = 0; a < 5; a++)
        test_rows_one(k, 1, 1 + a % 2, 300, 16, a != 3, (ptrdiff_t)(300 - 1 - a % 2), (int)(a % 2),
                      a == 2, 0.25f, 0, 0, wins[a]);
}

/* ---------------------------------------------------------------- fused attention */

typedef struct {
    size_t seq_q, seq_k, d;
    int causal;
    ptrdiff_t coff;
    int key_bias; /* 0 none, 1 random with -inf padding, 2 increasing ramp, 3 first block masked */
    int rel;
    size_t shaw;
    float scale, qrange;
    size_t window;
} attn_case;

static void test_attn_one(const ck_kernels *k, const attn_case *ac) {
    const size_t Sq = ac->seq_q, Sk = ac->seq_k, D = ac->d;
    const size_t ldq = D + 3, ldk = D + 1, ldv = D + 2, ldo = D + 5;
    const size_t W = ac->shaw ? 2 * ac->shaw + 1 : 0;
    set_case("%s attention seq_q=%zu seq_k=%zu d=%zu causal=%d off=%td key_bias=%d rel=%d shaw=%zu "
             "scale=%g window=%zu",
             k->name, Sq, Sk, D, ac->causal, ac->coff, ac->key_bias, ac->rel, ac->shaw, ac->scale,
             ac->window);
    new_case(S_ATTN);
    float *q = malloc((Sq * ldq + 1) * sizeof(float)), *kk = malloc((Sk * ldk + 1) * sizeof(float));
    float *vv = malloc((Sk * ldv + 1) * sizeof(float));
    fill(q, Sq * ldq, -ac->qrange, ac->qrange);
    fill(kk, Sk * ldk, -1, 1);
    fill(vv, Sk * ldv, -1, 1);
    float *kb = NULL, *rel = NULL, *sqk = NULL, *sv = NULL;
    if (ac->key_bias) {
        kb = malloc((Sk + 1) * sizeof(float));
        for (size_t j = 0; j < Sk; j++) {
            if (ac->key_bias == 1)
                kb[j] = rnd_n(6) == 0 ? -INFINITY : rnd_f(-1, 1);
            else if (ac->key_bias == 2)
                kb[j] = 0.05f * (float)j;
            else
                kb[j] = j < (size_t)k->attn_key_block + 3 ? -INFINITY : rnd_f(-1, 1);
        }
        if (ac->key_bias == 1 && Sk > 4) kb[Sk - 1] = kb[Sk - 2] = -INFINITY; /* padded tail */
    }
    const ptrdiff_t rzero = (ptrdiff_t)Sk - 1;
    const size_t rlen = ck_f32_attention_rel_bias_length(k, Sq, Sk);
    if (ac->rel) {
        rel = malloc((rlen + 1) * sizeof(float));
        for (size_t i = 0; i < rlen; i++)
            rel[i] = -0.1f * fabsf((float)((ptrdiff_t)i - rzero)) + rnd_f(-0.5f, 0.5f);
    }
    if (W) {
        sqk = malloc((Sq * W + 1) * sizeof(float));
        sv = malloc((W * D + 1) * sizeof(float));
        fill(sqk, Sq * W, -1, 1);
        fill(sv, W * D, -1, 1);
    }
    const size_t psz = ck_f32_attention_packed_kv_size(k, Sk, D);
    float *packed = xaligned(psz + 16);
    for (size_t i = 0; i < psz + 16; i++) packed[i] = bitsf(GUARD_BITS);
    ck_f32_attention_pack_kv(k, Sk, D, kk, ldk, vv, ldv, packed);
    size_t pk_damage = 0;
    for (size_t i = psz; i < psz + 16; i++) pk_damage += fbits(packed[i]) != GUARD_BITS;
    check(S_ATTN, pk_damage == 0, 0, 0, "pack_kv wrote past its documented size %zu", psz);
    gbuf o = gb_new(Sq, D, ldo, 2);
    ck_attention_head h = {0};
    h.seq_q = Sq;
    h.seq_k = Sk;
    h.head_dim = D;
    h.q = q;
    h.ldq = ldq;
    h.packed_kv = packed;
    h.o = o.p;
    h.ldo = ldo;
    h.scale = ac->scale;
    h.causal = ac->causal;
    h.causal_offset = ac->coff;
    h.key_bias = kb;
    h.rel_bias = rel;
    h.rel_bias_zero = rzero;
    h.shaw_clip = ac->shaw;
    h.shaw_qk = sqk;
    h.shaw_v = sv;
    h.window = ac->window;
    const size_t qb = ck_f32_attention_query_block(k),
                 wsz = ck_f32_attention_workspace(k, D, ac->shaw);
    float *ws = xaligned(wsz + 16);
    for (size_t i = 0; i < wsz + 16; i++) ws[i] = bitsf(GUARD_BITS);
    for (size_t q0 = 0; q0 < Sq; q0 += qb) {
        const size_t count = Sq - q0 < qb ? Sq - q0 : qb;
        ck_f32_attention_block(k, &h, q0, count, ws);
    }
    size_t ws_damage = 0;
    for (size_t i = wsz; i < wsz + 16; i++) ws_damage += fbits(ws[i]) != GUARD_BITS;
    check(S_ATTN, ws_damage == 0, 0, 0, "attention_block wrote past its documented workspace %zu",
          wsz);
    /* naive double reference */
    double *s = malloc((Sk + 1) * sizeof(double)), *es = malloc((Sk + 1) * sizeof(double));
    const size_t nblocks = (Sk + (size_t)k->attn_key_block - 1) / (size_t)k->attn_key_block + 1;
    int reported = 0;
    double *ex = malloc((Sk + 1) * sizeof(double));
    for (size_t i = 0; i < Sq && !reported; i++) {
        for (size_t j = 0; W && j < Sk; j++)
            ex[j] = sqk[i * W + shaw_bucket(i, j, ac->coff, ac->shaw)];
        double l;
        const double Es = ref_weights(i, Sk, D, q + i * ldq, kk, ldk, ac->scale, kb, rel, rzero,
                                      W ? ex : NULL, ac->causal, ac->coff, ac->window, s, es, &l);
        for (size_t d = 0; d < D; d++) {
            double ref = 0, mag = 0;
            for (size_t j = 0; j < Sk; j++) {
                if (es[j] == 0) continue;
                double vd = vv[j * ldv + d];
                if (W) {
                    const double a = sv[shaw_bucket(i, j, ac->coff, ac->shaw) * D + d];
                    vd += a;
                    mag += es[j] * (fabs(vv[j * ldv + d]) + fabs(a));
                } else {
                    mag += es[j] * fabs(vd);
                }
                ref += es[j] * vd;
            }
            if (l > 0) {
                ref /= l;
                mag /= l;
            }
            const double got = *gb_at(&o, i, d), err = fabs(got - ref);
            /* score errors (Es) perturb each weight by ~2 Es; the sums over Sk keys, the
             * per-block rescaling and the final division add ~(Sk + 3 blocks + 8) u */
            const double allowed =
                mag * (2.5 * Es + (double)(Sk + 3 * nblocks + 8 + 2 * W) * U) + FLT_MIN;
            if (!check(S_ATTN, close_enough(err, allowed) && (l > 0 || got == 0.0f), err / allowed,
                       mag > 0 ? err / (U * mag) : 0,
                       "o[%zu][%zu] = %.9g, reference %.9g (allowed %.3g)", i, d, got, ref,
                       allowed))
                reported = 1;
            if (reported) break;
        }
    }
    check_guard(S_ATTN, &o, "o");
    gb_free(&o);
    free(q);
    free(kk);
    free(vv);
    free(kb);
    free(rel);
    free(sqk);
    free(sv);
    free(packed);
    free(ws);
    free(s);
    free(es);
    free(ex);
}

static void test_attention(int v) {
    const ck_kernels *k = var_table(v);
    const size_t qb = ck_f32_attention_query_block(k), bc = (size_t)k->attn_key_block;
    const size_t mr = (size_t)k->attn_mr;
    /* query counts around the query block, key counts around the key block */
    const size_t sqs[] = {1, 2, qb - 1, qb, qb + 1, 2 * qb + 1};
    const size_t sks[] = {1, 3, mr - 1, mr + 1, 17, bc - 1, bc, bc + 1, 2 * bc + 5};
    const size_t ds[] = {1, 7, 8, 9, 16, 33, 64};
    int sel = 0;
    for (size_t a = 0; a < sizeof sqs / sizeof sqs[0]; a++)
        for (size_t b = 0; b < sizeof sks / sizeof sks[0]; b++, sel++) {
            attn_case ac = {0};
            ac.seq_q = sqs[a];
            ac.seq_k = sks[b];
            ac.d = ds[sel % 7];
            ac.causal = sel % 3 != 0;
            /* decode-style (keys behind the queries), plain, and a negative offset */
            const ptrdiff_t offs[] = {(ptrdiff_t)ac.seq_k - (ptrdiff_t)ac.seq_q, 0, -2, 3};
            ac.coff = offs[sel % 4];
            ac.key_bias = sel % 4;
            ac.rel = sel % 2;
            ac.shaw = sel % 5 == 1 ? 1 + (size_t)(sel % 4) : 0;
            ac.scale = 1.0f / sqrtf((float)ac.d);
            ac.qrange = sel % 7 == 3 ? 8.0f : 1.0f;
            test_attn_one(k, &ac);
        }
    /* every option alone and together, mid sizes */
    for (int opt = 0; opt < 32; opt++) {
        attn_case ac = {0};
        ac.seq_q = qb + 5 + (size_t)(opt % 3);
        ac.seq_k = bc + 7 + (size_t)opt;
        ac.d = 1 + (size_t)(opt * 7 % 40);
        ac.causal = opt & 1;
        ac.coff = (opt & 1) ? (ptrdiff_t)ac.seq_k - (ptrdiff_t)ac.seq_q : (ptrdiff_t)(opt % 5) - 2;
        ac.key_bias = (opt >> 1) & 1 ? 1 + (opt % 3) : 0;
        ac.rel = (opt >> 2) & 1;
        ac.shaw = (opt >> 3) & 1 ? 1 + (size_t)(opt % 3) * 3 : 0;
        ac.scale = (opt >> 4) & 1 ? 0.125f : 1.0f / sqrtf((float)ac.d);
        ac.qrange = (opt >> 4) & 1 ? 4.0f : 1.0f;
        test_attn_one(k, &ac);
    }
    /* no keys visible at all: causal with a large negative offset -> zeros */
    attn_case z = {qb + 1, bc + 1, 9, 1, -(ptrdiff_t)(2 * qb) - 5, 0, 0, 0, 0.3f, 1.0f, 0};
    test_attn_one(k, &z);
    z.shaw = 2;
    test_attn_one(k, &z);
    /* sliding windows: 1, a few, around the query block and the key block, past the keys;
     * self-attention and a query block at the end of a cache, causal or not */
    const size_t wins[] = {1, 5, qb - 1, qb + 3, bc + 2, 4 * bc};
    for (size_t a = 0; a < 6; a++)
        for (int t = 0; t < 3; t++) {
            attn_case ac = {0};
            ac.seq_k = 2 * bc + 9;
            ac.seq_q = t == 1 ? qb + 3 : ac.seq_k;
            ac.d = 8 + (size_t)t;
            ac.causal = t != 2;
            ac.coff = (ptrdiff_t)ac.seq_k - (ptrdiff_t)ac.seq_q;
            ac.key_bias = (int)(a % 2);
            ac.rel = t == 0;
            ac.shaw = a == 3 ? 2 : 0;
            ac.scale = 0.35f;
            ac.qrange = 1.0f;
            ac.window = wins[a];
            test_attn_one(k, &ac);
        }
}

/* ---------------------------------------------------------------- attention backward */

/* One K/V head read by `group` query heads (their dK/dV add into the same accumulators), with
 * the O and lse the kernel is given taken from the double reference. Checked: dQ, dK, dV and
 * d rel_bias against the reference with the bound (16 (Sq + Sk + D) + 4 |lse|max) u * B, B
 * the magnitude of the terms of each gradient (dS_ij made of P_ij (sum |dO||v| + |D_i|)),
 * the guards of every output, and the forward's lse (attention_block_lse). With dropout_p > 0,
 * dropout on the probabilities (factors Z from ck_dropout_factor, query head h's counters at
 * h Sq Sk): O = (P Z) V, dS = P (Z dP - D), dV = (P Z)^T dO. */
static void test_bwd_one(const ck_kernels *k, size_t Sq, size_t Sk, size_t D, size_t group,
                         int causal, ptrdiff_t coff, int key_bias, int rel, float scale,
                         float dropout_p) {
    set_case("attn bwd Sq=%zu Sk=%zu D=%zu group=%zu causal=%d off=%td key_bias=%d rel=%d "
             "dropout=%g",
             Sq, Sk, D, group, causal, coff, key_bias, rel, (double)dropout_p);
    new_case(S_ATTN_BWD);
    const size_t ld = D + 3;
    float *q = malloc(group * Sq * ld * 4), *dout = malloc(group * Sq * ld * 4);
    float *kk = malloc((Sk + 1) * ld * 4), *vv = malloc((Sk + 1) * ld * 4);
    float *o = malloc(Sq * D * 4 + 4), *lse = malloc(Sq * 4 + 4);
    fill(q, group * Sq * ld, -1, 1);
    fill(dout, group * Sq * ld, -1, 1);
    fill(kk, (Sk + 1) * ld, -1, 1);
    fill(vv, (Sk + 1) * ld, -1, 1);
    float *kb = malloc((Sk + 1) * 4);
    for (size_t j = 0; j < Sk; j++)
        kb[j] = key_bias == 2 || (key_bias && rnd_n(4) == 0) ? -INFINITY : rnd_f(-1, 1);
    const size_t rlen = ck_f32_attention_grad_rel_bias_length(k, Sq, Sk);
    const size_t flen = ck_f32_attention_rel_bias_length(k, Sq, Sk);
    float *rb = malloc((rlen > flen ? rlen : flen) * 4);
    fill(rb, rlen > flen ? rlen : flen, -1, 1);
    const ptrdiff_t zero = (ptrdiff_t)(Sk ? Sk : 1) - 1;
    const size_t accn = ck_f32_attention_grad_acc_size(k, Sk, D);
    gbuf acc = gb_new(1, 2 * accn, 2 * accn, 3);
    for (size_t i = 0; i < 2 * accn; i++) acc.p[i] = 0.0f;
    gbuf drel = gb_new(1, rlen, rlen, 1);
    for (size_t i = 0; i < rlen; i++) drel.p[i] = 0.0f;
    float *packed = xaligned(ck_f32_attention_grad_packed_kv_size(k, Sk, D));
    float *ws = xaligned(ck_f32_attention_grad_workspace(k, D));
    if (Sk) ck_f32_attention_grad_pack_kv(k, Sk, D, kk, ld, vv, ld, packed);
    double *P = calloc(Sq * Sk + 1, 8), *dS = calloc(Sq * Sk + 1, 8), *A = calloc(Sq * Sk + 1, 8);
    double *rdk = calloc(Sk * D + 1, 8), *rdv = calloc(Sk * D + 1, 8), *rdrel = calloc(rlen, 8);
    double *bk = calloc(Sk + 1, 8), *bv = calloc(Sk + 1, 8), brel = 0, lmax = 1;
    double *ro = calloc(D + 1, 8), *rdq = calloc(D + 1, 8);
    for (size_t h = 0; h < group; h++) {
        const float *qh = q + h * Sq * ld, *dh = dout + h * Sq * ld;
        const ck_attention_dropout drop = {.seed = 0xD209ull + Sq * 1000003ull + Sk,
                                           .counter0 = (uint64_t)h * Sq * Sk,
                                           .threshold = (uint32_t)(dropout_p * 16777216.0f),
                                           .keep_scale = 1.0f / (1.0f - dropout_p)};
#define ZF(i, j) (dropout_p > 0 ? (double)ck_dropout_factor(&drop, Sk, (i), (j)) : 1.0)
        gbuf dq = gb_new(Sq, D, D + 1, h);
        double bq = 0;
        double *rdqh = calloc(Sq * D + 1, 8);
        for (size_t i = 0; i < Sq; i++) {
            double m = -INFINITY;
            for (size_t j = 0; j < Sk; j++) {
                double s = -INFINITY;
                if (!(causal && (ptrdiff_t)j > (ptrdiff_t)i + coff) &&
                    !(key_bias && kb[j] == -INFINITY)) {
                    s = 0;
                    for (size_t d = 0; d < D; d++) s += (double)qh[i * ld + d] * kk[j * ld + d];
                    s = s * scale + (key_bias ? kb[j] : 0) +
                        (rel ? rb[(ptrdiff_t)i - (ptrdiff_t)j + zero] : 0);
                }
                P[i * Sk + j] = s;
                if (s > m) m = s;
            }
            double l = -INFINITY;
            if (m > -INFINITY) {
                double sum = 0;
                for (size_t j = 0; j < Sk; j++) sum += exp(P[i * Sk + j] - m);
                l = m + log(sum);
                if (fabs(l) > lmax) lmax = fabs(l);
            }
            lse[i] = (float)l;
            double delta = 0, dabs = 0;
            for (size_t d = 0; d < D; d++) ro[d] = 0;
            for (size_t j = 0; j < Sk; j++) {
                P[i * Sk + j] = l > -INFINITY ? exp(P[i * Sk + j] - l) : 0;
                const double z = ZF(i, j);
                for (size_t d = 0; d < D; d++) ro[d] += P[i * Sk + j] * z * vv[j * ld + d];
            }
            for (size_t d = 0; d < D; d++) {
                o[i * D + d] = (float)ro[d];
                delta += dh[i * ld + d] * ro[d];
                dabs += fabs(dh[i * ld + d] * ro[d]);
            }
            double rowq = 0;
            for (size_t j = 0; j < Sk; j++) {
                const double p = P[i * Sk + j], z = ZF(i, j), pz = p * z;
                double dp = 0, dpa = 0;
                for (size_t d = 0; d < D; d++) {
                    dp += z * (double)dh[i * ld + d] * vv[j * ld + d];
                    dpa += fabs(z * (double)dh[i * ld + d] * vv[j * ld + d]);
                }
                dS[i * Sk + j] = p * (dp - delta);
                A[i * Sk + j] = p * (dpa + dabs) + fabs(dS[i * Sk + j]);
                rdrel[(ptrdiff_t)i - (ptrdiff_t)j + zero] += dS[i * Sk + j];
                brel += A[i * Sk + j];
                for (size_t d = 0; d < D; d++) {
                    rdqh[i * D + d] += scale * dS[i * Sk + j] * kk[j * ld + d];
                    rdk[j * D + d] += scale * dS[i * Sk + j] * qh[i * ld + d];
                    rdv[j * D + d] += pz * dh[i * ld + d];
                    if (fabs(scale * A[i * Sk + j] * kk[j * ld + d]) > 0)
                        rowq += fabs(scale * A[i * Sk + j] * kk[j * ld + d]) / (double)D;
                    bk[j] += fabs(scale * A[i * Sk + j] * qh[i * ld + d]) / (double)D;
                    bv[j] += fabs(pz * dh[i * ld + d]) / (double)D;
                }
            }
            if (rowq > bq) bq = rowq;
        }
        ck_attention_grad_head g = {.seq_q = Sq,
                                    .seq_k = Sk,
                                    .head_dim = D,
                                    .q = qh,
                                    .ldq = ld,
                                    .o = o,
                                    .ldo = D,
                                    .dout = dh,
                                    .lddo = ld,
                                    .lse = lse,
                                    .packed_kv = packed,
                                    .dq = dq.p,
                                    .lddq = dq.ld,
                                    .dk_acc = acc.p,
                                    .dv_acc = acc.p + accn,
                                    .scale = scale,
                                    .causal = causal,
                                    .causal_offset = coff,
                                    .key_bias = key_bias ? kb : NULL,
                                    .rel_bias = rel ? rb : NULL,
                                    .rel_bias_zero = zero,
                                    .d_rel_bias = rel ? drel.p : NULL,
                                    .dropout = dropout_p > 0 ? &drop : NULL};
#undef ZF
        ck_f32_attention_backward(k, &g, ws);
        const double factor = (16.0 * (double)(Sq + Sk + D) + 4 * lmax) * U;
        for (size_t i = 0; i < Sq; i++)
            for (size_t d = 0; d < D; d++) {
                const double err = fabs(*gb_at(&dq, i, d) - rdqh[i * D + d]);
                const double bound = factor * (bq + 1e-30);
                check(S_ATTN_BWD, close_enough(err, bound), err / bound, err / (U * (bq + 1e-30)),
                      "dQ[%zu][%zu] (head %zu) = %g, expected %g", i, d, h, *gb_at(&dq, i, d),
                      rdqh[i * D + d]);
            }
        check_guard(S_ATTN_BWD, &dq, "dQ");
        gb_free(&dq);
        free(rdqh);
        /* the forward's lse, query head 0 */
        if (h == 0 && Sk) {
            float *fp = xaligned(ck_f32_attention_packed_kv_size(k, Sk, D));
            float *fws = xaligned(ck_f32_attention_workspace(k, D, 0));
            float *fo = malloc(Sq * D * 4), *flse = malloc(Sq * 4);
            ck_f32_attention_pack_kv(k, Sk, D, kk, ld, vv, ld, fp);
            ck_attention_head fh = {.seq_q = Sq,
                                    .seq_k = Sk,
                                    .head_dim = D,
                                    .q = qh,
                                    .ldq = ld,
                                    .packed_kv = fp,
                                    .o = fo,
                                    .ldo = D,
                                    .scale = scale,
                                    .causal = causal,
                                    .causal_offset = coff,
                                    .key_bias = key_bias ? kb : NULL,
                                    .rel_bias = rel ? rb : NULL,
                                    .rel_bias_zero = zero};
            const size_t qb = ck_f32_attention_query_block(k);
            for (size_t q0 = 0; q0 < Sq; q0 += qb)
                ck_f32_attention_block_lse(k, &fh, q0, Sq - q0 < qb ? Sq - q0 : qb, fws, flse);
            for (size_t i = 0; i < Sq; i++) {
                const double want = lse[i], err = fabs((double)flse[i] - want);
                const double bound =
                    (8 + (double)(Sk + D) * lmax) * U * (fabs(want) > 1 ? fabs(want) : 1);
                const int ok = want == -INFINITY ? flse[i] == -INFINITY : close_enough(err, bound);
                check(S_ATTN_BWD, ok, want == -INFINITY ? 0 : err / bound, 0,
                      "forward lse[%zu] = %g, expected %g", i, flse[i], want);
            }
            free(fp);
            free(fws);
            free(fo);
            free(flse);
        }
    }
    /* dK, dV out of the accumulators; d rel_bias */
    gbuf gk = gb_new(Sk, D, D + 2, 5), gv = gb_new(Sk, D, D, 0);
    ck_f32_attention_grad_store_kv(k, Sk, D, acc.p, acc.p + accn, gk.p, gk.ld, gv.p, gv.ld);
    double mk = 0, mv = 0;
    for (size_t j = 0; j < Sk; j++) {
        if (bk[j] > mk) mk = bk[j];
        if (bv[j] > mv) mv = bv[j];
    }
    const double factor = (16.0 * (double)(Sq + Sk + D) + 4 * lmax) * U;
    for (size_t j = 0; j < Sk; j++)
        for (size_t d = 0; d < D; d++) {
            double err = fabs(*gb_at(&gk, j, d) - rdk[j * D + d]),
                   bound = factor * (mk * D + 1e-30);
            check(S_ATTN_BWD, close_enough(err, bound), err / bound, err / (U * (mk * D + 1e-30)),
                  "dK[%zu][%zu] = %g, expected %g", j, d, *gb_at(&gk, j, d), rdk[j * D + d]);
            err = fabs(*gb_at(&gv, j, d) - rdv[j * D + d]);
            bound = factor * (mv * D + 1e-30);
            check(S_ATTN_BWD, close_enough(err, bound), err / bound, err / (U * (mv * D + 1e-30)),
                  "dV[%zu][%zu] = %g, expected %g", j, d, *gb_at(&gv, j, d), rdv[j * D + d]);
        }
    if (rel)
        for (size_t t = 0; t < rlen; t++) {
            const double err = fabs(drel.p[t] - rdrel[t]), bound = factor * (brel + 1e-30);
            check(S_ATTN_BWD, close_enough(err, bound), err / bound, err / (U * (brel + 1e-30)),
                  "d_rel_bias[%zu] = %g, expected %g", t, drel.p[t], rdrel[t]);
        }
    check_guard(S_ATTN_BWD, &gk, "dK");
    check_guard(S_ATTN_BWD, &gv, "dV");
    check_guard(S_ATTN_BWD, &acc, "the dK/dV accumulators");
    check_guard(S_ATTN_BWD, &drel, "d_rel_bias");
    gb_free(&gk);
    gb_free(&gv);
    gb_free(&acc);
    gb_free(&drel);
    free(q), free(dout), free(kk), free(vv), free(o), free(lse), free(kb), free(rb);
    free(packed), free(ws), free(P), free(dS), free(A), free(rdk), free(rdv), free(rdrel);
    free(bk), free(bv), free(ro), free(rdq);
}

static void test_attention_backward(int v) {
    const ck_kernels *k = var_table(v);
    const size_t nr = (size_t)k->gemm.nr, mr = (size_t)k->gemm.mr;
    const size_t sqs[] = {1, nr - 1, nr + 1, 64, 73, 150};
    const size_t sks[] = {1, mr + 1, 95, 97, 130, 0};
    const size_t ds[] = {1, 7, 12, 13, 33, 64};
    int sel = 0;
    for (size_t a = 0; a < sizeof sqs / sizeof sqs[0]; a++)
        for (size_t b = 0; b < sizeof sks / sizeof sks[0]; b++, sel++) {
            const size_t d = ds[sel % 6], group = 1 + (size_t)(sel % 3 == 2);
            const int causal = sel % 3 != 0;
            const ptrdiff_t offs[] = {(ptrdiff_t)sks[b] - (ptrdiff_t)sqs[a], 0, -2, 3};
            test_bwd_one(k, sqs[a], sks[b], d, group, causal, offs[sel % 4], sel % 3, sel % 2,
                         sel % 5 == 1 ? 0.7f : 1.0f / sqrtf((float)d),
                         sel % 4 == 1 ? 0.1f : (sel % 4 == 3 ? 0.6f : 0.0f));
        }
}

/* ---------------------------------------------------------------- main */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- training backward kernels */
/* The backward kernels of attend_kernels_backward.h against double references, with the
 * error bounds derived in kernel-fuzz (Sources/KernelFuzz/TrainingBackwardFuzz.swift): the
 * same derivations, restated briefly at each check. */

/* cross_entropy: rows of `vocab` logits of amplitude `amp` (masked: some -inf), targets with
 * the ignore index -100, label smoothing; the gradient in its own buffer or over the logits. */
static void test_ce_one(const ck_kernels *k, size_t rows, size_t vocab, float amp, float smoothing,
                        int alias, int masked) {
    set_case("cross_entropy rows %zu vocab %zu amp %g smoothing %g alias %d masked %d", rows, vocab,
             amp, smoothing, alias, masked);
    new_case(S_CE);
    const size_t ld = vocab + vocab % 3;
    gbuf x = gb_new(rows, vocab, ld, rnd_n(16));
    gbuf dl = alias ? x : gb_new(rows, vocab, vocab + 1, rnd_n(16));
    gbuf loss = gb_new(1, rows, rows, 0);
    double *xd = malloc(rows * vocab * sizeof(double));
    int32_t *t = malloc(rows * sizeof(int32_t));
    size_t count = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < vocab; j++) {
            const float v = masked && rnd_unit() < 0.3 && j != 0 ? -INFINITY : rnd_f(-amp, amp);
            *gb_at(&x, r, j) = v;
            xd[r * vocab + j] = v;
        }
        t[r] = rnd_unit() < 0.2 ? -100 : (int32_t)rnd_n(vocab);
        if (t[r] != -100) count++;
    }
    const float scale = count ? 1.0f / (float)count : 0.0f;
    k->cross_entropy(rows, vocab, x.p, ld, t, -100, smoothing, scale, loss.p, dl.p, dl.ld);
    check_guard(S_CE, &loss, "loss");
    check_guard(S_CE, &dl, alias ? "dlogits = logits" : "dlogits");
    const double chunk = (double)(vocab < 2048 ? vocab : 2048), V = (double)vocab, e = smoothing;
    for (size_t r = 0; r < rows; r++) {
        const double *xr = xd + r * vocab;
        if (t[r] == -100) {
            int zero = fbits(loss.p[r]) == 0;
            for (size_t j = 0; j < vocab; j++) zero &= fbits(*gb_at(&dl, r, j)) == 0;
            check(S_CE, zero, 0, 0, "row %zu is ignored: loss and gradient must be +0", r);
            continue;
        }
        double m = -INFINITY, s = 0, sx = 0, sabs = 0, spread = 0;
        for (size_t j = 0; j < vocab; j++) m = xr[j] > m ? xr[j] : m;
        for (size_t j = 0; j < vocab; j++) {
            s += exp(xr[j] - m);
            sx += xr[j];
            if (xr[j] > -INFINITY) {
                sabs += fabs(xr[j]);
                spread = m - xr[j] > spread ? m - xr[j] : spread;
            }
        }
        const double lse = m + log(s), xt = xr[t[r]];
        const double ref = (1 - e) * (lse - xt) + (e != 0 ? e * (lse - sx / V) : 0);
        /* exp-sum: arguments rounded (u min(spread, V/e)), exp 4u, float lanes per chunk
         * (L + 2)u; the mean's float sum e(L + 2)u mean|x|; two roundings of the result */
        const double rel_s = U * ((spread < 0.37 * V ? spread : 0.37 * V) + chunk + 8);
        const double tol = rel_s + 0x1p-51 * (fabs(m) + fabs(xt)) + e * (chunk + 2) * U * sabs / V +
                           2 * U * fabs(ref) + 0x1p-147;
        const double err = fabs((double)loss.p[r] - ref);
        check(S_CE, isinf(ref) ? loss.p[r] == ref : close_enough(err, tol), err / tol, err / U,
              "row %zu loss %.9g, reference %.12g (tolerance %.3g)", r, loss.p[r], ref, tol);
        for (size_t j = 0; j < vocab; j++) {
            const double p = exp(xr[j] - lse);
            const double g = scale * (p - e / V - ((int32_t)j == t[r] ? 1 - e : 0));
            /* p's argument: u|x - m| twice, u log s twice, rel(s), exp 4u; the subtractions
             * 2u(p + e/V), at the target 4u(p + 1); flushed probabilities 2^-125; product and
             * reference rounding 2u|g| */
            const double arg =
                xr[j] > -INFINITY ? U * (2 * (m - xr[j]) + 2 * log(s)) + rel_s + 4 * U : 0;
            const double sub = (int32_t)j == t[r] ? 4 * U * (p + 1) : 2 * U * (p + e / V);
            const double gt = scale * (p * arg + sub + 0x1p-125) + 2 * U * fabs(g) + 0x1p-147;
            const double ge = fabs((double)*gb_at(&dl, r, j) - g);
            if (!check(S_CE, close_enough(ge, gt), ge / gt, ge / (U * scale),
                       "row %zu dlogits[%zu] %.9g, reference %.12g (tolerance %.3g)", r, j,
                       *gb_at(&dl, r, j), g, gt))
                break;
        }
    }
    free(t);
    free(xd);
    gb_free(&loss);
    if (!alias) gb_free(&dl);
    gb_free(&x);
}

static void test_cross_entropy(int v) {
    const ck_kernels *k = var_table(v);
    const size_t vocabs[] = {1,  2,  3,  4,  5,   7,    8,    9,    15,
                             16, 17, 31, 33, 100, 2047, 2048, 2049, 5000};
    const float amps[] = {1, 20, 80};
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++)
        for (size_t a = 0; a < 3; a++)
            test_ce_one(k, 1 + rnd_n(3), vocabs[i], amps[a], a == 1 ? 0.1f : 0.0f, (int)(i % 2),
                        a == 2 && i % 3 == 0);
}

/* norm_rows_train + norm_backward: the forward's y must be norm_rows' bits and t = x + r;
 * the backward (on the exact t and the double mean / rstd) against the double reference. */
static void test_normbwd_one(const ck_kernels *k, int rms, size_t rows, size_t n, int use_res,
                             float eps, int accumulate) {
    set_case("norm_backward %s rows %zu n %zu residual %d eps %g accumulate %d",
             rms ? "rms" : "layer", rows, n, use_res, eps, accumulate);
    new_case(S_NORM_BWD);
    gbuf x = gb_new(rows, n, n + 1, rnd_n(16)), res = gb_new(rows, n, n, rnd_n(16));
    gbuf y = gb_new(rows, n, n + 2, rnd_n(16)), y2 = gb_new(rows, n, n, 0);
    gbuf t = gb_new(rows, n, n, rnd_n(16)), dy = gb_new(rows, n, n + 3, rnd_n(16));
    gbuf dx = gb_new(rows, n, n, rnd_n(16)), dg = gb_new(1, n, n, rnd_n(16)),
         db = gb_new(1, n, n, rnd_n(16));
    float *gamma = malloc(n * sizeof(float)), *beta = malloc(n * sizeof(float));
    float *mean = malloc(rows * sizeof(float)), *rstd = malloc(rows * sizeof(float));
    float *mu_in = malloc(rows * sizeof(float)), *rs_in = malloc(rows * sizeof(float));
    double *old = malloc(rows * n * sizeof(double));
    fill(gamma, n, -2, 2);
    fill(beta, n, -1, 1);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < n; i++) {
            *gb_at(&x, r, i) = rnd_f(-1, 1);
            *gb_at(&res, r, i) = rnd_f(-0.5f, 0.5f);
            *gb_at(&dy, r, i) = rnd_f(-1, 1);
            *gb_at(&dx, r, i) = rnd_f(-1, 1);
            old[r * n + i] = *gb_at(&dx, r, i);
        }
    for (size_t i = 0; i < n; i++) {
        dg.p[i] = rnd_f(-1, 1);
        db.p[i] = rnd_f(-1, 1);
    }
    const float *rp = use_res ? res.p : NULL;
    k->norm_rows_train(rms, rows, n, x.p, x.ld, rp, res.ld, gamma, beta, eps, y.p, y.ld, t.p, t.ld,
                       mean, rstd);
    k->norm_rows(rms, rows, n, x.p, x.ld, rp, res.ld, gamma, beta, eps, y2.p, y2.ld);
    check_guard(S_NORM_BWD, &y, "y");
    check_guard(S_NORM_BWD, &t, "t");
    const double nd = (double)n;
    for (size_t r = 0; r < rows; r++) {
        int same = 1;
        double sum = 0, sabs = 0, var = 0, tmax = 0;
        for (size_t i = 0; i < n; i++) {
            const float tf = *gb_at(&x, r, i) + (use_res ? *gb_at(&res, r, i) : 0.0f);
            same &= fbits(*gb_at(&y, r, i)) == fbits(*gb_at(&y2, r, i)) &&
                    fbits(*gb_at(&t, r, i)) == fbits(tf);
            sum += tf;
            sabs += fabs(tf);
            tmax = fabs(tf) > tmax ? fabs(tf) : tmax;
        }
        check(S_NORM_BWD, same, 0, 0, "row %zu: y is not norm_rows' bits or t is not x + r", r);
        const double mu = rms ? 0 : sum / nd;
        for (size_t i = 0; i < n; i++) {
            const double d = *gb_at(&t, r, i) - mu;
            var += d * d;
        }
        var /= nd;
        const double rs = 1 / sqrt(var + eps);
        /* mean: (n + 2)u mean|t|; rstd: half the variance's relative error + 3u */
        const double mt = rms ? 0 : (nd + 2) * U * sabs / nd;
        const double delta = U * tmax + mt;
        const double var_err = (nd + 3) * U * var + 2 * delta * sqrt(var) + delta * delta;
        const double rt = rs * (0.5 * var_err / (var + eps) + 3 * U);
        check(S_NORM_BWD, close_enough(fabs(mean[r] - mu), mt + 0x1p-140), 0, 0,
              "row %zu mean %.9g, reference %.12g", r, mean[r], mu);
        check(S_NORM_BWD, close_enough(fabs(rstd[r] - rs), rt), fabs(rstd[r] - rs) / rt, 0,
              "row %zu rstd %.9g, reference %.12g (tolerance %.3g)", r, rstd[r], rs, rt);
        mu_in[r] = (float)mu;
        rs_in[r] = (float)rs;
    }
    /* The backward's references, from the inputs before the call (dx, dgamma, dbeta are
     * read: accumulated). c1 = sum(g)/n: (n + 2)u mean|g|; c2 = sum(g xhat)/n: (n + 6)u
     * mean|g xhat|; dt's own roundings u|g| + 2u|xhat c2| + 3u(|g| + |c1| + |xhat c2|);
     * times rstd; the product and the reference's rounding 2u|dx| (accumulating 3u|dx| +
     * u|old dx|); dgamma / dbeta: (rows + 4)u (|old| + sum|terms|). */
    double *dxr = malloc(rows * n * sizeof(double)), *dxt = malloc(rows * n * sizeof(double));
    double *sg = calloc(n, sizeof(double)), *sb = calloc(n, sizeof(double));
    double *ag = calloc(n, sizeof(double)), *ab = calloc(n, sizeof(double));
    for (size_t r = 0; r < rows; r++) {
        const double mu = rms ? 0 : mu_in[r], rs = rs_in[r];
        double c1 = 0, c2 = 0, a = 0, b = 0;
        for (size_t i = 0; i < n; i++) {
            const double xh = (*gb_at(&t, r, i) - mu) * rs, d = *gb_at(&dy, r, i), g = d * gamma[i];
            c1 += g;
            c2 += g * xh;
            a += fabs(g);
            b += fabs(g * xh);
            sg[i] += d * xh;
            sb[i] += d;
            ag[i] += fabs(d * xh);
            ab[i] += fabs(d);
        }
        c1 = rms ? 0 : c1 / nd;
        c2 /= nd;
        const double e1 = rms ? 0 : (nd + 2) * U * a / nd, e2 = (nd + 6) * U * b / nd;
        for (size_t i = 0; i < n; i++) {
            const double xh = (*gb_at(&t, r, i) - mu) * rs,
                         g = (double)*gb_at(&dy, r, i) * gamma[i];
            const double dt = rs * (g - c1 - xh * c2), ref = accumulate ? old[r * n + i] + dt : dt;
            const double inner = U * fabs(g) + e1 + fabs(xh) * e2 + 2 * U * fabs(xh * c2) +
                                 3 * U * (fabs(g) + fabs(c1) + fabs(xh * c2));
            dxr[r * n + i] = ref;
            dxt[r * n + i] =
                rs * (inner + (nd + 8) * 0x1p-149) +
                (accumulate ? 3 * U * fabs(ref) + U * fabs(old[r * n + i]) : 2 * U * fabs(ref)) +
                0x1p-147;
        }
    }
    for (size_t i = 0; i < n; i++) {
        ag[i] = ((double)rows + 4) * U * (fabs(dg.p[i]) + ag[i]) + 0x1p-140;
        ab[i] = ((double)rows + 4) * U * (fabs(db.p[i]) + ab[i]) + 0x1p-140;
        sg[i] += dg.p[i];
        sb[i] += db.p[i];
    }
    const uint32_t db_first = fbits(db.p[0]);
    k->norm_backward(rms, rows, n, dy.p, dy.ld, t.p, t.ld, mu_in, rs_in, gamma, dx.p, dx.ld,
                     accumulate, dg.p, rms ? NULL : db.p);
    check_guard(S_NORM_BWD, &dx, "dx");
    check_guard(S_NORM_BWD, &dg, "dgamma");
    check_guard(S_NORM_BWD, &db, "dbeta");
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < n; i++) {
            const double err = fabs(*gb_at(&dx, r, i) - dxr[r * n + i]), tol = dxt[r * n + i];
            if (!check(S_NORM_BWD, close_enough(err, tol), err / tol, 0,
                       "dx[%zu, %zu] %.9g, reference %.12g (tolerance %.3g)", r, i,
                       *gb_at(&dx, r, i), dxr[r * n + i], tol))
                r = rows - 1, i = n;
        }
    for (size_t i = 0; i < n; i++) {
        const double eg = fabs(dg.p[i] - sg[i]), eb = fabs(db.p[i] - sb[i]);
        check(S_NORM_BWD, close_enough(eg, ag[i]), eg / ag[i], 0,
              "dgamma[%zu] %.9g, reference %.12g (tolerance %.3g)", i, dg.p[i], sg[i], ag[i]);
        if (!rms)
            check(S_NORM_BWD, close_enough(eb, ab[i]), eb / ab[i], 0,
                  "dbeta[%zu] %.9g, reference %.12g (tolerance %.3g)", i, db.p[i], sb[i], ab[i]);
    }
    if (rms)
        check(S_NORM_BWD, fbits(db.p[0]) == db_first, 0, 0, "rms norm wrote dbeta (given NULL)");
    free(sg);
    free(sb);
    free(ag);
    free(ab);
    free(dxr);
    free(dxt);
    free(old);
    free(gamma);
    free(beta);
    free(mean);
    free(rstd);
    free(mu_in);
    free(rs_in);
    gbuf *all[] = {&x, &res, &y, &y2, &t, &dy, &dx, &dg, &db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gb_free(all[i]);
}

static void test_norm_backward(int v) {
    const ck_kernels *k = var_table(v);
    const size_t ns[] = {1, 3, 4, 5, 8, 15, 16, 17, 31, 33, 64, 100, 768, 1025};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int rms = 0; rms < 2; rms++)
            test_normbwd_one(k, rms, 1 + rnd_n(4), ns[i], (int)(i % 2), i % 3 ? 1e-5f : 1e-12f,
                             (int)((i + (size_t)rms) % 2));
}

/* Double f and f' of the activation kinds (f' as in SwiftSIMDTraining.swift's oracle) and the
 * error of the float f' (kernel-fuzz's derivation: a bound on the two terms of each form,
 * which cancel where f' crosses 0). */
static void act_grad_ref(int kind, double x, double *f, double *df, double *tol, double *frel) {
    const double u = U;
    switch (kind) {
    case CK_ACT_GELU: {
        const double e = 0.5 * erfc(fabs(x) / sqrt(2.0)), cdf = x < 0 ? e : 1 - e;
        const double pdf = exp(-0.5 * x * x) / sqrt(2 * PI_D);
        *f = x * cdf;
        *df = cdf + x * pdf;
        *tol = e * (1.2e-7 + u * (16 + 2 * x * x)) + u * cdf + fabs(x) * pdf * u * (8 + x * x);
        *frel = 1.2e-7 + u * (16 + 2 * x * x);
        return;
    }
    case CK_ACT_GELU_TANH: {
        const double k = sqrt(2 / PI_D), w = k * (x + 0.044715 * x * x * x);
        const double e = exp(-2 * w), s = 1 / (1 + e), oms = s == 0 ? 1 : e * s;
        const double d2 = 2 * x * s * oms * k * (1 + 3 * 0.044715 * x * x);
        *f = x * s;
        *df = s + d2;
        *tol = (s + fabs(d2)) * u * (40 + 24 * fabs(w));
        *frel = u * (16 + 8 * fabs(w));
        return;
    }
    default: {
        const double e = exp(-x), s = 1 / (1 + e), oms = s == 0 ? 1 : e * s;
        *f = x * s;
        *df = s + x * s * oms;
        *tol = (s + fabs(x * s * oms)) * 32 * u;
        *frel = 16 * u;
        return;
    }
    }
}

/* activation_backward and gated_backward of every kind on n values over +-range. */
static void test_actbwd_one(const ck_kernels *k, int kind, size_t n, float range) {
    set_case("activation backward kind %d n %zu range %g", kind, n, range);
    new_case(S_ACT_BWD);
    float *x = malloc((n + 1) * sizeof(float)), *b = malloc((n + 1) * sizeof(float));
    float *dy = malloc((n + 1) * sizeof(float));
    gbuf dx = gb_new(1, n, n, rnd_n(16)), da = gb_new(1, n, n, rnd_n(16)),
         dbv = gb_new(1, n, n, rnd_n(16));
    for (size_t i = 0; i < n; i++) {
        x[i] = i % 7 == 3 ? rnd_f(-0.8f, -0.7f) : rnd_f(-range, range);
        b[i] = rnd_f(-2, 2);
        dy[i] = rnd_f(-1, 1);
    }
    if (n > 2) x[0] = 0.0f, x[1] = -0.0f;
    k->activation_backward(kind, n, x, dy, dx.p);
    k->gated_backward(kind, n, x, b, dy, da.p, dbv.p);
    check_guard(S_ACT_BWD, &dx, "dx");
    check_guard(S_ACT_BWD, &da, "da");
    check_guard(S_ACT_BWD, &dbv, "db");
    for (size_t i = 0; i < n; i++) {
        if (kind == CK_ACT_RELU) { /* exact: PyTorch's threshold_backward, relu's forward */
            const float want = x[i] <= 0 ? 0.0f : dy[i], wa = x[i] <= 0 ? 0.0f : dy[i] * b[i];
            const float wb = dy[i] * (x[i] < 0 ? 0.0f : x[i]);
            if (!check(S_ACT_BWD,
                       fbits(dx.p[i]) == fbits(want) && fbits(da.p[i]) == fbits(wa) &&
                           fbits(dbv.p[i]) == fbits(wb),
                       0, 0, "relu at x %.9g: dx %.9g da %.9g db %.9g, want %.9g %.9g %.9g", x[i],
                       dx.p[i], da.p[i], dbv.p[i], want, wa, wb))
                break;
            continue;
        }
        double f, df, tf, fr;
        act_grad_ref(kind, x[i], &f, &df, &tf, &fr);
        /* f' within tf (+ 2^-109 for the flushed tails), times |dy| (|dy b|), the products
         * 2-3u; f(a) within the forward's bound (RowOpsFuzz.swift: relative fr, |x| 2^-51) */
        const double rd = (double)dy[i] * df, ra = (double)dy[i] * b[i] * df,
                     rb = (double)dy[i] * f;
        const double td = fabs(dy[i]) * (tf + 0x1p-109) + 2 * U * fabs(rd) + 0x1p-147;
        const double ta =
            fabs((double)dy[i] * b[i]) * (tf + 0x1p-109) + 3 * U * fabs(ra) + 0x1p-147;
        const double tb =
            fabs(dy[i]) * (fabs(f) * fr + fabs(x[i]) * 0x1p-51) + 2 * U * fabs(rb) + 0x1p-147;
        const double ed = fabs(dx.p[i] - rd), ea = fabs(da.p[i] - ra), eb = fabs(dbv.p[i] - rb);
        if (!check(S_ACT_BWD, close_enough(ed, td) && close_enough(ea, ta) && close_enough(eb, tb),
                   fmax(ed / td, fmax(ea / ta, eb / tb)), 0,
                   "kind %d at x %.9g (dy %.9g, b %.9g): dx %.9g / %.12g, da %.9g / %.12g, db %.9g "
                   "/ %.12g",
                   kind, x[i], dy[i], b[i], dx.p[i], rd, da.p[i], ra, dbv.p[i], rb))
            break;
    }
    free(x);
    free(b);
    free(dy);
    gb_free(&dx);
    gb_free(&da);
    gb_free(&dbv);
}

static void test_activation_backward(int v) {
    const ck_kernels *k = var_table(v);
    const size_t ns[] = {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 300};
    const float ranges[] = {1, 4, 16, 100};
    for (int kind = 0; kind < 4; kind++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            test_actbwd_one(k, kind, ns[i], ranges[i % 4]);
}

/* embedding_backward: repeated ids, a padding id; bitwise the row-order float sums, and the
 * columns split over two calls (the boundary's thread split) give the same bits. */
static void test_embbwd_one(const ck_kernels *k, size_t rows, size_t dim, size_t vocab, int32_t pad,
                            size_t split) {
    set_case("embedding backward rows %zu dim %zu vocab %zu padding %d split %zu", rows, dim, vocab,
             pad, split);
    new_case(S_EMB_BWD);
    int32_t *ids = malloc((rows + 1) * sizeof(int32_t));
    gbuf dout = gb_new(rows, dim, dim + 3, rnd_n(16));
    gbuf t1 = gb_new(vocab, dim, dim + 1, rnd_n(16)), t2 = gb_new(vocab, dim, dim + 1, rnd_n(16));
    float *want = malloc((vocab * dim + 1) * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        ids[r] = (int32_t)rnd_n(r % 2 ? vocab : (vocab < 3 ? vocab : 3));
        for (size_t j = 0; j < dim; j++) *gb_at(&dout, r, j) = rnd_f(-1, 1);
    }
    for (size_t i = 0; i < vocab; i++)
        for (size_t j = 0; j < dim; j++)
            want[i * dim + j] = *gb_at(&t1, i, j) = *gb_at(&t2, i, j) = rnd_f(-1, 1);
    for (size_t r = 0; r < rows; r++)
        if (ids[r] != pad)
            for (size_t j = 0; j < dim; j++) want[(size_t)ids[r] * dim + j] += *gb_at(&dout, r, j);
    k->embedding_backward(rows, dim, ids, dout.p, dout.ld, t1.p, t1.ld, pad);
    k->embedding_backward(rows, dim - split, ids, dout.p + split, dout.ld, t2.p + split, t2.ld,
                          pad);
    k->embedding_backward(rows, split, ids, dout.p, dout.ld, t2.p, t2.ld, pad);
    check_guard(S_EMB_BWD, &t1, "dtable");
    check_guard(S_EMB_BWD, &t2, "dtable (split)");
    int same = 1;
    for (size_t i = 0; i < vocab; i++)
        for (size_t j = 0; j < dim; j++)
            same &= fbits(*gb_at(&t1, i, j)) == fbits(want[i * dim + j]) &&
                    fbits(*gb_at(&t2, i, j)) == fbits(want[i * dim + j]);
    check(S_EMB_BWD, same, 0, 0, "dtable differs from the row-order sums (whole or split)");
    free(ids);
    free(want);
    gb_free(&dout);
    gb_free(&t1);
    gb_free(&t2);
}

static void test_embedding_backward(int v) {
    const ck_kernels *k = var_table(v);
    const size_t dims[] = {1, 3, 4, 5, 8, 15, 16, 17, 64, 300};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        test_embbwd_one(k, 1 + rnd_n(40), dims[i], 1 + rnd_n(30), i % 2 ? -1 : 0,
                        rnd_n(dims[i] + 1));
}

/* ---------------------------------------------------------------- 16-bit weights */

/* The value of a binary16 (bf == 0) or bfloat16 (bf != 0) pattern, decoded independently. */
static double w16_ref(uint16_t h, int bf) {
    if (bf) return (double)bitsf((uint32_t)h << 16);
    const int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);
    else
        v = ldexp((double)(1024 + m), e - 25);
    return sign ? -v : v;
}

/* A 16-bit pattern of a value uniform in [-1, 1] (bf16: truncated; f16: via the reference,
 * nearest of a few candidates is not needed: any pattern is a valid weight). */
static uint16_t w16_random(int bf) {
    const float f = rnd_f(-1, 1);
    if (bf) return (uint16_t)(fbits(f) >> 16);
    const double a = fabs((double)f);
    uint16_t h = 0;
    if (a >= 0x1p-14) {
        int e;
        const double fr = frexp(a, &e); /* a = fr * 2^e, fr in [0.5, 1) */
        h = (uint16_t)(((e + 14) << 10) | ((int)(fr * 2048) & 1023));
    } else {
        h = (uint16_t)(a * 0x1p24);
    }
    return (uint16_t)(h | (f < 0 ? 0x8000 : 0));
}

/* w16_widen on all 65536 patterns; w16_gemv (1 to 8 rows) against the double reference
 * and bitwise against gemv on the widened weight; gemv_rows (the float32 multi-row GEMV) on
 * the widened weight bitwise against gemv row by row; ck_w16_gemm against the reference. */
static void test_w16(int v) {
    const ck_kernels *k = var_table(v);
    const int s = S_W16;
    uint16_t *all = malloc(65536 * sizeof(uint16_t));
    float *wide = malloc(65536 * sizeof(float));
    for (int bf = 0; bf < 2; bf++) {
        set_case("%s w16_widen %s, every pattern", k->name, bf ? "bf16" : "f16");
        new_case(s);
        for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
        k->w16_widen(bf, 65536, all, wide);
        for (int i = 0; i < 65536; i++) {
            const double want = w16_ref((uint16_t)i, bf);
            const int ok = want != want ? wide[i] != wide[i] : (double)wide[i] == want;
            if (!check(s, ok, 0, 0, "0x%04x widened to %.9g, want %.9g", i, wide[i], want)) break;
        }
    }
    free(all);
    free(wide);
    const size_t ns[] = {0, 1, 3, 4, 5, 7, 13};
    const size_t ks[] = {0, 1, 3, 4, 5, 8, 33, 257, 512, 513, 1000, 1024, 1025, 1500};
    for (int bf = 0; bf < 2; bf++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
                for (size_t rows = 1; rows <= 8; rows = rows == 5 ? 8 : rows + 1) {
                    const size_t n = ns[i], kd = ks[j], ldw = kd + (j % 3), ldx = kd + 1, ldy = n + 2;
                    const float alpha = rows == 1 ? 1.0f : -0.75f, beta = j % 2 ? 1.5f : 0.0f;
                    set_case("%s w16_gemv %s rows=%zu n=%zu k=%zu ldw=%zu beta=%g", k->name,
                             bf ? "bf16" : "f16", rows, n, kd, ldw, beta);
                    new_case(s);
                    uint16_t *w = malloc((n * ldw + 1) * sizeof(uint16_t));
                    float *wf = malloc((n * ldw + 1) * sizeof(float));
                    float *x = malloc((rows * ldx + 1) * sizeof(float));
                    float *y = malloc((rows * ldy + 1) * sizeof(float));
                    float *yr = malloc((rows * ldy + 1) * sizeof(float));
                    double *y0 = malloc((rows * ldy + 1) * sizeof(double));
                    for (size_t q = 0; q < n * ldw; q++) {
                        w[q] = (q % ldw) < kd ? w16_random(bf) : 0x7e5a; /* padding: NaN */
                        wf[q] = (float)w16_ref(w[q], bf);
                    }
                    fill(x, rows * ldx, -1, 1);
                    for (size_t q = 0; q < rows * ldy; q++) {
                        y0[q] = (q % ldy) < n ? (beta == 0.0f ? NAN : rnd_f(-2, 2)) : 12345.0;
                        y[q] = yr[q] = (float)y0[q];
                    }
                    float *yf = malloc((rows * ldy + 1) * sizeof(float));
                    memcpy(yf, y, rows * ldy * sizeof(float));
                    k->w16_gemv(bf, rows, n, kd, alpha, x, ldx, w, ldw, beta, y, ldy);
                    for (size_t r = 0; r < rows; r++)
                        k->gemv(n, kd, alpha, x + r * ldx, wf, ldw, beta, yr + r * ldy);
                    k->gemv_rows(rows, n, kd, alpha, x, ldx, wf, ldw, beta, yf, ldy);
                    int ok = 1;
                    for (size_t q = 0; q < rows * ldy && ok; q++)
                        ok = check(s, fbits(yf[q]) == fbits(yr[q]), 0, 0,
                                   "gemv_rows y[%zu] = %.9g, gemv row by row %.9g", q, yf[q], yr[q]);
                    free(yf);
                    for (size_t r = 0; r < rows && ok; r++)
                        for (size_t jj = 0; jj < ldy && ok; jj++) {
                            const float got = y[r * ldy + jj];
                            if (jj >= n) {
                                ok = check(s, got == 12345.0f, 0, 0, "y[%zu][%zu] padding written", r, jj);
                                continue;
                            }
                            if (kd <= 512 || kd > 1024) /* the same sum order as gemv */
                                ok = check(s, fbits(got) == fbits(yr[r * ldy + jj]), 0, 0,
                                       "y[%zu][%zu] = %.9g, gemv on the widened weight %.9g", r, jj, got,
                                       yr[r * ldy + jj]);
                            double dot = 0, mag = 0;
                            for (size_t p = 0; p < kd; p++) {
                                const double t = (double)x[r * ldx + p] * w16_ref(w[jj * ldw + p], bf);
                                dot += t;
                                mag += fabs(t);
                            }
                            double ref = alpha * dot, bnd = fabs(alpha) * mag;
                            if (beta != 0.0f) {
                                ref += beta * y0[r * ldy + jj];
                                bnd += fabs(beta * y0[r * ldy + jj]);
                            }
                            const double err = fabs(got - ref), allowed = (double)(kd + 4) * U * bnd;
                            if (ok)
                                ok = check(s, close_enough(err, allowed), allowed ? err / allowed : err,
                                           bnd ? err / (U * bnd) : 0, "y[%zu][%zu] = %.9g, reference %.9g", r,
                                           jj, got, ref);
                        }
                    free(w);
                    free(wf);
                    free(x);
                    free(y);
                    free(yr);
                    free(y0);
                }
    const size_t kc = (size_t)k->gemm.kc, mr = (size_t)k->gemm.mr, nr = (size_t)k->gemm.nr;
    const size_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {mr + 1, nr + 1, 33}, {2 * mr, 3, kc + 5}, {5, 2 * nr - 1, 2 * kc + 1}};
    for (int bf = 0; bf < 2; bf++)
        for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
            const size_t m = shapes[t][0], n = shapes[t][1], kd = shapes[t][2];
            const size_t lda = kd + 1, ldw = kd + 2, ldc = n + 1;
            const float beta = t % 2 ? 0.5f : 0.0f;
            set_case("%s ck_w16_gemm %s m=%zu n=%zu k=%zu beta=%g", k->name, bf ? "bf16" : "f16", m, n, kd, beta);
            new_case(s);
            uint16_t *w = malloc(n * ldw * sizeof(uint16_t));
            float *a = malloc(m * lda * sizeof(float)), *c = malloc(m * ldc * sizeof(float));
            double *c0 = malloc(m * ldc * sizeof(double));
            for (size_t q = 0; q < n * ldw; q++) w[q] = w16_random(bf);
            fill(a, m * lda, -1, 1);
            for (size_t q = 0; q < m * ldc; q++) c[q] = (float)(c0[q] = beta == 0.0f ? NAN : rnd_f(-1, 1));
            float *ws = malloc(ck_w16_gemm_workspace(k, m, n, kd) * sizeof(float));
            ck_w16_gemm(k, bf, m, n, kd, a, lda, w, ldw, beta, c, ldc, ws);
            int ok = 1;
            for (size_t i = 0; i < m && ok; i++)
                for (size_t jj = 0; jj < n && ok; jj++) {
                    double dot = 0, mag = 0;
                    for (size_t p = 0; p < kd; p++) {
                        const double tt = (double)a[i * lda + p] * w16_ref(w[jj * ldw + p], bf);
                        dot += tt;
                        mag += fabs(tt);
                    }
                    if (beta != 0.0f) {
                        dot += beta * c0[i * ldc + jj];
                        mag += fabs(beta * c0[i * ldc + jj]);
                    }
                    const double err = fabs(c[i * ldc + jj] - dot), allowed = (double)(kd + 4) * U * mag;
                    ok = check(s, close_enough(err, allowed), allowed ? err / allowed : err, mag ? err / (U * mag) : 0,
                               "C[%zu][%zu] = %.9g, reference %.9g", i, jj, c[i * ldc + jj], dot);
                }
            free(ws);
            free(w);
            free(a);
            free(c);
            free(c0);
        }
}

/* ---------------------------------------------------------------- int8 weights */

/* A random int8 weight (ck_q8_weight): n x k bytes in [-127, 127], per-channel or per-32
 * scales, float or binary16 (normal values 2^-10 .. 2^2), its group sums from
 * ck_q8_group_sums (checked against fl(scale * sum q)). Dequantized into wd (double). */
typedef struct {
    ck_q8_weight w;
    int8_t *q;
    void *s;
    float *gs;
    double *wd;
} q8_case_weight;

static double q8_scale_of(const q8_case_weight *c, size_t idx) {
    if (c->w.scales_f16) {
        const uint16_t h = ((const uint16_t *)c->s)[idx];
        return ldexp(1.0 + (h & 0x3ff) / 1024.0, (int)((h >> 10) & 0x1f) - 15);
    }
    return ((const float *)c->s)[idx];
}

static q8_case_weight q8_make_weight(size_t n, size_t kd, int group, int f16, size_t pad) {
    q8_case_weight c;
    const size_t ldq = kd + pad, G = (kd + 31) / 32, groups = group ? G : 1, lds = groups + (pad & 1);
    const size_t ldg = G + (pad >> 1);
    c.q = malloc(n * ldq + 1);
    for (size_t i = 0; i < n * ldq; i++) c.q[i] = (int8_t)((int)rnd_n(255) - 127);
    const size_t ns = group ? n * lds : n;
    c.s = malloc(4 * ns + 4);
    for (size_t i = 0; i < ns; i++) {
        if (f16)
            ((uint16_t *)c.s)[i] = (uint16_t)(((5 + rnd_n(12)) << 10) | rnd_n(1024));
        else
            ((float *)c.s)[i] = rnd_f(0.001f, 2.0f);
    }
    c.gs = malloc((n * ldg + 1) * sizeof(float));
    c.w = (ck_q8_weight){.n = n, .k = kd, .q = c.q, .ldq = ldq, .scales = c.s, .lds = lds,
                         .group = group, .scales_f16 = f16, .gsum = c.gs, .ldg = ldg};
    ck_q8_group_sums(&c.w, c.gs, ldg);
    c.wd = malloc((n * kd + 1) * sizeof(double));
    for (size_t j = 0; j < n; j++)
        for (size_t p = 0; p < kd; p++)
            c.wd[j * kd + p] = q8_scale_of(&c, group ? j * lds + p / 32 : j) * c.q[j * ldq + p];
    return c;
}

static void q8_free_weight(q8_case_weight *c) {
    free(c->q);
    free(c->s);
    free(c->gs);
    free(c->wd);
}

/* The group sums against their contract, bit for bit. */
static int q8_check_sums(int slot, const q8_case_weight *c) {
    for (size_t j = 0; j < c->w.n; j++)
        for (size_t p0 = 0, g = 0; p0 < c->w.k; p0 += 32, g++) {
            long t = 0;
            for (size_t p = p0; p < p0 + 32 && p < c->w.k; p++) t += c->q[j * c->w.ldq + p];
            const float e = (float)(q8_scale_of(c, c->w.group ? j * c->w.lds + g : j) * (double)t);
            const float got = c->gs[j * c->w.ldg + g];
            if (!check(slot, got == e, 0, 0, "group sum [%zu][%zu] = %.9g, expected %.9g", j, g, got, e))
                return 0;
        }
    return 1;
}

/* One product (q8_gemv or q8_gemm) on rows quantized here: the quantization (per group:
 * offset = min, scale >= (max - min) / 255, |x - x^| <= 0.50001 scale, zero padding) and
 * every output against the double product over the float activations within the bound of
 * attend_kernels.h; a row with Inf gives NaN. */
static void test_q8_one(const ck_kernels *k, ck_q8_gemm_fn fn, int slot, const char *path, size_t m,
                        size_t n, size_t kd, int group, int f16, int use_bias) {
    set_case("%s %s (%s) m=%zu n=%zu k=%zu group=%d f16=%d bias=%d", k->name,
             slot == S_Q8_GEMV ? "q8_gemv" : "q8_gemm", path, m, n, kd, group, f16, use_bias);
    new_case(slot);
    q8_case_weight c = q8_make_weight(n, kd, group, f16, (kd + 1) % 4);
    const size_t ldx = kd + 2, ldaq = ck_q8_row_stride(kd), groups = (kd + 31) / 32, lds = groups + 1;
    float *x = malloc((m * ldx + 1) * sizeof(float)), *bias = malloc((n + 1) * sizeof(float));
    float *sa = malloc((m * lds + 1) * sizeof(float)), *so = malloc((m * lds + 1) * sizeof(float));
    uint8_t *aq = malloc(m * ldaq + 1);
    fill(x, m * ldx, -1, 1);
    if (m > 1) memset(x + ldx, 0, kd * sizeof(float)); /* an all-zero row */
    if (m > 2) x[2 * ldx] = INFINITY;                   /* a row with Inf: NaN outputs */
    if (m > 3)                                          /* a one-sided row far from zero */
        for (size_t p = 0; p < kd; p++) x[3 * ldx + p] = 5.0f + 0.001f * x[3 * ldx + p];
    fill(bias, n, -1, 1);
    ck_q8_quantize_rows(m, kd, x, ldx, aq, ldaq, sa, so, lds);
    ck_q8_rows a = {.q = aq, .ldq = ldaq, .scale = sa, .offset = so, .lds = lds};
    gbuf cm = gb_new(m, n, n ? n : 1, 3);
    fn(m, &a, &c.w, use_bias ? bias : NULL, cm.p, cm.ld);
    if (!q8_check_sums(slot, &c)) goto done;
    for (size_t i = 0; i < m; i++) {
        for (size_t g = 0; g < groups; g++) {
            const float s = sa[i * lds + g], o = so[i * lds + g];
            if (s != s) continue;
            for (size_t p = 32 * g; p < 32 * g + 32 && p < kd; p++) {
                const double xv = x[i * ldx + p], err = fabs(xv - ((double)s * aq[i * ldaq + p] + o));
                if (!check(slot, err <= 0.50001 * s, 0, 0, "row %zu: x[%zu] = %.9g quantized to %d (scale %g, offset %g)",
                           i, p, xv, aq[i * ldaq + p], s, o))
                    goto done;
            }
        }
        for (size_t p = kd; p < ldaq; p++)
            if (!check(slot, aq[i * ldaq + p] == 0, 0, 0, "row %zu: padding [%zu] = %d", i, p, aq[i * ldaq + p]))
                goto done;
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            const double got = *gb_at(&cm, i, j);
            int nan_row = 0;
            for (size_t g = 0; g < groups; g++) nan_row |= sa[i * lds + g] != sa[i * lds + g];
            if (nan_row) {
                if (!check(slot, got != got, 0, 0, "C[%zu][%zu] = %g for a row with Inf", i, j, got))
                    goto done;
                continue;
            }
            double ref = use_bias ? bias[j] : 0, bhat = 0, quant = 0;
            for (size_t p = 0; p < kd; p++) {
                const double wv = c.wd[j * kd + p], s = sa[i * lds + p / 32];
                ref += x[i * ldx + p] * wv;
                bhat += s * (aq[i * ldaq + p] + 256.0) * fabs(wv);
                quant += 0.50001 * s * fabs(wv);
            }
            for (size_t g = 0; g < groups; g++) bhat += fabs((double)so[i * lds + g] * c.gs[j * c.w.ldg + g]);
            const double allowed = (double)(groups + 5) * U * bhat + 2 * U * fabs(ref) + quant + 1e-30;
            const double err = fabs(got - ref);
            if (!check(slot, close_enough(err, allowed), err / allowed, err / allowed,
                       "C[%zu][%zu] = %.9g, reference %.9g (allowed %.3g)", i, j, got, ref, allowed))
                goto done;
        }
done:
    check_guard(slot, &cm, "C");
    gb_free(&cm);
    free(x);
    free(bias);
    free(sa);
    free(so);
    free(aq);
    q8_free_weight(&c);
}

static void test_q8(int v) {
    const ck_kernels *k = var_table(v);
    const size_t ks[] = {1, 31, 32, 33, 64, 65, 100, 384, 513};
    const size_t ns[] = {1, 3, 4, 5, 9};
    int sel = 0;
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++, sel++) {
            const int group = sel % 2 ? 32 : 0, f16 = (sel / 2) % 2, bias = (sel / 4) % 2;
            test_q8_one(k, k->q8_gemv, S_Q8_GEMV, "table", 1 + (size_t)(sel % 4), ns[b], ks[a], group, f16, bias);
            const size_t m = 1 + (size_t)(sel % 7);
            test_q8_one(k, k->q8_gemm, S_Q8_GEMM, "table", m, ns[b], ks[a], group, f16, bias);
            test_q8_one(k, ck_q8_gemm_baseline(k->variant), S_Q8_GEMM, "baseline", m, ns[b], ks[a], group,
                        f16, bias);
        }
    printf("%s q8_gemm instructions: %s\n", k->name, ck_q8_gemm_instructions(k));
}

int main(int argc, char **argv) {
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x5eed0a77e4dull;
    for (int s = 0; s < S_COUNT; s++)
        for (int v = 0; v < 2; v++) {
            stats[v][s].name = stat_names[s];
            stats[v][s].err_unit = stat_units[s];
        }
    KN = ck_kernels_get(CK_VARIANT_NEON);
    KS = ck_kernels_get(CK_VARIANT_SCALAR);
    printf("neon_diff: seed 0x%llx, %s build, tables %s / %s\n", (unsigned long long)seed,
           ck_build_optimized() ? "optimized" : "-O0", KN ? KN->name : "(none)",
           KS ? KS->name : "(none)");
    test_dispatch();
    if (!KN || !KS) {
        fprintf(stderr, "neon_diff: NEON or scalar table missing, cannot continue\n");
        return 1;
    }
    printf(
        "neon blocking: mr %d nr %d mc %d kc %d nc %d, attention: %d x %d tile, %d query panels, "
        "key block %d\n",
        KN->gemm.mr, KN->gemm.nr, KN->gemm.mc, KN->gemm.kc, KN->gemm.nc, KN->attn_mr, KN->attn_nr,
        KN->attn_query_panels, KN->attn_key_block);
    struct {
        const char *name;
        void (*fn)(int);
    } tests[] = {{"gemm_ukr", test_ukr},
                 {"gemm", test_gemm},
                 {"fma_peak", test_peak},
                 {"exp", test_exp},
                 {"softmax_rows", test_softmax},
                 {"attn_softmax_step", test_step},
                 {"gemv", test_gemv},
                 {"activation", test_activation},
                 {"norm_rows", test_norm},
                 {"attention", test_attention},
                 {"gemm_packed", test_packed},
                 {"gemv_t", test_gemv_t},
                 {"attention_short", test_attention_short},
                 {"attention_few", test_attention_few},
                 {"attention_bwd", test_attention_backward},
                 {"cross_entropy", test_cross_entropy},
                 {"norm_backward", test_norm_backward},
                 {"act_backward", test_activation_backward},
                 {"embedding_bwd", test_embedding_backward},
                 {"w16", test_w16},
                 {"q8", test_q8}};
    for (size_t t = 0; t < sizeof tests / sizeof tests[0]; t++) {
        for (int v = 0; v < 2; v++) {
            rng_state = seed ^ (0x1000193ull * (t + 1)) ^ ((uint64_t)v << 40);
            cur_var = v;
            const double t0 = now();
            tests[t].fn(v);
            fprintf(stderr, "  %-18s %-6s %6.2f s\n", tests[t].name, v ? "scalar" : "neon",
                    now() - t0);
        }
    }
    printf("\n%-18s | %-34s | %-34s\n", "kernel", "neon: cases checks fails  max",
           "scalar: cases checks fails  max");
    printf("%-18s | %-34s | %-34s | %s\n", "", "(err/bound, error figure)",
           "(err/bound, error figure)", "figure unit");
    for (int s = 0; s < S_COUNT; s++) {
        const stat_t *a = &stats[0][s], *b = &stats[1][s];
        printf("%-18s | %5ld %8ld %4ld  %5.3f %9.3g | %5ld %8ld %4ld  %5.3f %9.3g | %s\n", a->name,
               a->cases, a->checks, a->fails, a->max_ratio, a->max_err, b->cases, b->checks,
               b->fails, b->max_ratio, b->max_err, a->err_unit);
    }
    if (total_fails) {
        printf("\nneon_diff: FAILED, %ld failing checks (first %d printed above)\n", total_fails,
               MAX_PRINTED_FAILS);
        return 1;
    }
    printf("\nneon_diff: all checks passed\n");
    return 0;
}
