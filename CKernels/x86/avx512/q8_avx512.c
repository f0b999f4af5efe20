/*
 * int8 weights, AVX-512 VNNI kernels (contracts in attend_kernels.h, "int8 weights"; drivers
 * in core/templates/q8_driver.h).
 *
 * An R x C tile (R, C <= 4) over 64-byte steps. vpdpbusd multiplies unsigned by signed bytes
 * and adds four products into an int32 lane without intermediate saturation: the activations
 * are uint8 (0..255) and the weights int8, so one vpdpbusd per step and pair (activation row,
 * weight row) gives exact int32 lanes; lanes 0-7 sum to the step's first group of 32, lanes
 * 8-15 to its second. They are converted and scaled into float lanes by a vector holding the
 * two groups' (activation scale * weight scale) (per channel: the activation scales, the
 * channel's scale once at the end). The offsets' share, o * F per group, is formed in the same
 * step from the weight bytes already loaded (a vpdpbusd against ones), so the weight's stored
 * group sums are not read. The last partial step uses masked weight loads (zeros past
 * k; the activation rows are zero-padded to a multiple of 64). The GEMV (q8_tile_vnni_gemv)
 * forms the per-group factors once per block of 16 groups (one vector each of sa sw and o sw,
 * the 16 weight scales loaded and widened once) and permutes each step's pair out of them:
 * per 64-byte step and activation row two vpdpbusd, two conversions, two permutes and two
 * FMAs (the weight bytes' sum shared by the rows), the same work per channel and per 32
 * (before, per 32 loaded, widened and multiplied the scales in every step, and ran 10-25%
 * slower than per channel). Without VNNI the AVX2
 * kernels run (ck_q8_gemv__avx2, ck_q8_gemm__avx2).
 */
#include "../../core/ck_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#pragma clang attribute push(                                                                      \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma,f16c"),         \
                   min_vector_width(512))),                                                        \
    apply_to = function)

static inline __mmask64 q8_mask64(size_t r) {
    return r >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << r) - 1);
}

/* Bytes ahead of the current step each weight row is prefetched (measured on Zen 4 over a
 * t5-small-shaped set of weights larger than L3: 2 KiB ahead beat none, 1, 4 and 8 KiB). */
#define Q8_PREFETCH 2048
/* The blocked GEMV tile (q8_tile_vnni_blocked): accumulator chains per row; a software
 * prefetch of each weight row ck_q8_blocked_prefetch_bytes() ahead and (per 32 inputs) of its
 * group scales a quarter of that ahead (none on Zen 4, 2 KiB and 512 B on Zen 5:
 * attend_kernels.h). Measured on Zen 4, 1 thread, 40 weights of 2048 x 512 and
 * 512 x 2048 on huge pages (larger than L3): 1 chain 28-29 GB/s, 2 chains 29-31, 4 chains
 * 27-29; each prefetch distance tried (512 B - 4 KiB) cost 20-30%, and two or four weight rows
 * interleaved halved the rate (row-major layout with the prefetch: 22-24 GB/s). */
#define Q8_BLK_CHAINS 2

/* Rows i0 ... i0 + R - 1 of a: their quantized values, scales and offsets. */
static inline __attribute__((always_inline)) void q8_row_pointers(int R, const ck_q8_rows *a, size_t i0,
                                                                  const uint8_t *arow[4], const float *srow[4],
                                                                  const float *orow[4]) {
    CK_UNROLL_FULL
    for (int r = 0; r < R; r++) {
        arow[r] = a->q + (i0 + (size_t)r) * a->ldq;
        srow[r] = a->scale + (i0 + (size_t)r) * a->lds;
        orow[r] = a->offset + (i0 + (size_t)r) * a->lds;
    }
}

/* Lanes 0-7: v[0], lanes 8-15: v[1] (0 when only one group remains). */
static inline __m512 q8_pair(const float *v, int two) {
    const __m512 x = _mm512_maskz_loadu_ps(two ? 3 : 1, v);
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), x);
}

/* The weight scales of row j, groups g and g + 1, as q8_pair lays them out. */
static inline __attribute__((always_inline)) __m512 q8_wpair(const ck_q8_weight *w, size_t j, size_t g, int two, int f16) {
    if (!f16) return q8_pair((const float *)w->scales + j * w->lds + g, two);
    const __m128i h = _mm_maskz_loadu_epi16(two ? 3 : 1, (const uint16_t *)w->scales + j * w->lds + g);
    const __m512 x = _mm512_castps128_ps512(_mm_cvtph_ps(h));
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), x);
}

/* grouped, f16: the weight's scale layout and type; own: the offsets' share computed here
 * too (constants after inlining). With own, a second vpdpbusd against a vector of ones sums
 * each step's weight bytes per lane (S, exact), F = sw * S (per lane of the group's
 * ck_q8_group_sums value; per channel the channel's scale comes at the end), and o * F joins
 * the same accumulator, so the weight's group sums (w->gsum) are not read: 1/8 fewer bytes
 * per pass over the weight, for the memory-bound GEMV. The GEMM (compute-bound) leaves the
 * offsets to the driver and keeps its sums as they were. */
static inline __attribute__((always_inline)) void q8_tile_vnni(int R, int C, const ck_q8_rows *a,
                                                               size_t i0, const ck_q8_weight *w,
                                                               size_t j0, float out[4][4],
                                                               int grouped, int f16, int own) {
    const size_t k = w->k, groups = (k + 31) / 32;
    const uint8_t *arow[4];
    const float *srow[4], *orow[4];
    const int8_t *qrow[4];
    q8_row_pointers(R, a, i0, arow, srow, orow);
    CK_UNROLL_FULL
    for (int cc = 0; cc < C; cc++) qrow[cc] = w->q + (j0 + (size_t)cc) * w->ldq;
    const __m512i ones = _mm512_set1_epi8(1);
    __m512 fa[4][4];
    CK_UNROLL_FULL
    for (int r = 0; r < R; r++)
        CK_UNROLL_FULL
        for (int cc = 0; cc < C; cc++) fa[r][cc] = _mm512_setzero_ps();
    /* Full steps unmasked; the last partial step with masked weight loads. */
#define Q8_STEP(MASKED)                                                                            \
    do {                                                                                           \
        const __mmask64 mk = q8_mask64(k - p);                                                     \
        const int two = g + 1 < groups;                                                            \
        __m512i av[4];                                                                             \
        __m512 sav[4], oav[4] = {0};                                                                     \
        CK_UNROLL_FULL                                                                             \
        for (int r = 0; r < R; r++) {                                                              \
            av[r] = _mm512_loadu_si512((const void *)(arow[r] + p));                               \
            sav[r] = q8_pair(srow[r] + g, two);                                                    \
            if (own) oav[r] = q8_pair(orow[r] + g, two);                                           \
        }                                                                                          \
        CK_UNROLL_FULL                                                                             \
        for (int cc = 0; cc < C; cc++) {                                                           \
            _mm_prefetch((const char *)(qrow[cc] + p + Q8_PREFETCH), _MM_HINT_T0);                 \
            const __m512i wv = MASKED ? _mm512_maskz_loadu_epi8(mk, qrow[cc] + p)                  \
                                      : _mm512_loadu_si512((const void *)(qrow[cc] + p));          \
            const __m512 swv = grouped ? q8_wpair(w, j0 + (size_t)cc, g, two, f16) : _mm512_setzero_ps(); \
            __m512 f = _mm512_setzero_ps();                                                        \
            if (own) {                                                                             \
                f = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, wv));     \
                if (grouped) f = _mm512_mul_ps(f, swv);                                            \
            }                                                                                      \
            CK_UNROLL_FULL                                                                         \
            for (int r = 0; r < R; r++) {                                                          \
                const __m512 d = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), av[r], wv)); \
                fa[r][cc] = _mm512_fmadd_ps(d, grouped ? _mm512_mul_ps(sav[r], swv) : sav[r], fa[r][cc]); \
                if (own) fa[r][cc] = _mm512_fmadd_ps(f, oav[r], fa[r][cc]);                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    size_t p = 0, g = 0;
    for (; p + 64 <= k; p += 64, g += 2) Q8_STEP(0);
    if (p < k) Q8_STEP(1);
#undef Q8_STEP
    for (int r = 0; r < R; r++)
        for (int cc = 0; cc < C; cc++) {
            const float v = _mm512_reduce_add_ps(fa[r][cc]);
            out[r][cc] = grouped ? v : v * ck_q8_scale(w, j0 + (size_t)cc, 0);
        }
}

/* q8_tile_vnni with the offsets' share, per 32, for the GEMV tile's rare overflow: one copy
 * out of line (R, C at run time), so that the GEMV's instantiations do not each carry it (an
 * unoptimized build's stack frame holds every inlined copy's temporaries). */
static __attribute__((noinline)) void q8_tile_vnni_own_g32(int R, int C, const ck_q8_rows *a, size_t i0,
                                                           const ck_q8_weight *w, size_t j0, float out[4][4],
                                                           int f16) {
    q8_tile_vnni(R, C, a, i0, w, j0, out, 1, f16, 1);
}

/* Lane 0 of each 128-bit lane c < 4 of the result: the sum of v[c]'s sixteen lanes. */
static inline __m512 q8_reduce4(const __m512 v[4]) {
    const __m512 a = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x44), _mm512_shuffle_f32x4(v[0], v[1], 0xEE));
    const __m512 b = _mm512_add_ps(_mm512_shuffle_f32x4(v[2], v[3], 0x44), _mm512_shuffle_f32x4(v[2], v[3], 0xEE));
    const __m512 c = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
    const __m512 d = _mm512_add_ps(c, _mm512_shuffle_ps(c, c, 0x4E));
    return _mm512_add_ps(d, _mm512_shuffle_ps(d, d, 0xB1));
}

/* out[r][c] = the sum of fa[r][c]'s lanes, r < R, c < C (four weight rows reduced together). */
static inline __attribute__((always_inline)) void q8_reduce_tile(int R, int C, __m512 fa[4][4], float out[4][4]) {
    CK_UNROLL_FULL
    for (int r = 0; r < R; r++) {
        if (C == 4) {
            float t[16];
            _mm512_storeu_ps(t, q8_reduce4(fa[r]));
            CK_UNROLL_FULL
            for (int cc = 0; cc < 4; cc++) out[r][cc] = t[4 * cc];
        } else
            CK_UNROLL_FULL
            for (int cc = 0; cc < C; cc++) out[r][cc] = _mm512_reduce_add_ps(fa[r][cc]);
    }
}

/* The GEMV tile (offsets' share included) on C weight rows one after another (each streamed
 * whole, as one row per tile streams; the C accumulators are reduced together at the end).
 * Per block of 16 groups (eight 64-byte steps) a row's factors are formed once for the 16
 * groups: sa sw and o sw (per 32: the row's 16 weight scales loaded and widened once; per
 * channel sw = 1 here and the channel's scale comes at the end), and each step only permutes
 * its two groups' factors out of them (lanes 0-7, 8-15) for its two FMAs, instead of loading,
 * widening and multiplying scales per step.
 * Per 32 the offsets' share is S * fl(o sw) (S: the exact integer group sum) against
 * fl(sw S) * o in the contract's F: the same one rounding of a product; where o sw overflows
 * (S may be 0, and fl(sw S) * o then finite) the tile is redone by q8_tile_vnni. */
#if defined(__OPTIMIZE__)
#define Q8_GEMV_TILE_INLINE inline __attribute__((always_inline))
#else /* one out-of-line copy: -O0 keeps every inlined copy's temporaries in the frame */
#define Q8_GEMV_TILE_INLINE __attribute__((noinline))
#endif
static Q8_GEMV_TILE_INLINE void q8_tile_vnni_gemv(int R, int C, const ck_q8_rows *a, size_t i0,
                                                                   const ck_q8_weight *w, size_t j0,
                                                                   float out[4][4], int grouped, int f16) {
    const size_t k = w->k, groups = (k + 31) / 32;
    const uint8_t *arow[4];
    const float *srow[4], *orow[4];
    q8_row_pointers(R, a, i0, arow, srow, orow);
    const __m512i ones = _mm512_set1_epi8(1);
    /* step s of a block takes groups 2s (lanes 0-7) and 2s + 1 (lanes 8-15) */
    const __m512i pair0 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 fa[4][4];
    __mmask16 overflow = 0;
    CK_UNROLL_FULL
    for (int cc = 0; cc < C; cc++) {
        const size_t j = j0 + (size_t)cc;
        const int8_t *qrow = w->q + j * w->ldq;
        CK_UNROLL_FULL
        for (int r = 0; r < R; r++) fa[r][cc] = _mm512_setzero_ps();
#define Q8_GEMV_STEP(MASKED, s)                                                                    \
    do {                                                                                           \
        const size_t p = p0 + 64 * (size_t)(s);                                                    \
        const __m512i idx = _mm512_add_epi32(pair0, _mm512_set1_epi32(2 * (s)));                  \
        _mm_prefetch((const char *)(qrow + p + Q8_PREFETCH), _MM_HINT_T0);                         \
        const __m512i wv = MASKED ? _mm512_maskz_loadu_epi8(q8_mask64(k - p), qrow + p)            \
                                  : _mm512_loadu_si512((const void *)(qrow + p));                  \
        const __m512 f = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, wv)); \
        CK_UNROLL_FULL                                                                             \
        for (int r = 0; r < R; r++) {                                                              \
            const __m512i av = _mm512_loadu_si512((const void *)(arow[r] + p));                    \
            const __m512 d = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), av, wv)); \
            fa[r][cc] = _mm512_fmadd_ps(d, _mm512_permutexvar_ps(idx, ks[r]), fa[r][cc]);          \
            fa[r][cc] = _mm512_fmadd_ps(f, _mm512_permutexvar_ps(idx, ko[r]), fa[r][cc]);          \
        }                                                                                          \
    } while (0)
        for (size_t g0 = 0; g0 < groups; g0 += 16) {
            const size_t p0 = 32 * g0;
            const __mmask16 gm = groups - g0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (groups - g0)) - 1);
            __m512 ks[4], ko[4];
            CK_UNROLL_FULL
            for (int r = 0; r < R; r++) {
                ks[r] = _mm512_maskz_loadu_ps(gm, srow[r] + g0);
                ko[r] = _mm512_maskz_loadu_ps(gm, orow[r] + g0);
            }
            if (grouped) {
                const void *ws = f16 ? (const void *)((const uint16_t *)w->scales + j * w->lds + g0)
                                     : (const void *)((const float *)w->scales + j * w->lds + g0);
                const __m512 sw = f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, ws)) : _mm512_maskz_loadu_ps(gm, ws);
                CK_UNROLL_FULL
                for (int r = 0; r < R; r++) {
                    ks[r] = _mm512_mul_ps(ks[r], sw);
                    ko[r] = _mm512_mul_ps(ko[r], sw);
                    overflow |= _mm512_fpclass_ps_mask(ko[r], 0x18); /* +-Inf */
                }
            }
            if (k - p0 >= 512) {
                CK_UNROLL_FULL
                for (int s = 0; s < 8; s++) Q8_GEMV_STEP(0, s);
            } else {
                CK_UNROLL_FULL
                for (int s = 0; s < 8; s++) {
                    if (p0 + 64 * (size_t)s >= k) break;
                    if (k - p0 - 64 * (size_t)s >= 64)
                        Q8_GEMV_STEP(0, s);
                    else
                        Q8_GEMV_STEP(1, s);
                }
            }
        }
#undef Q8_GEMV_STEP
    }
    if (grouped && overflow) {
        q8_tile_vnni_own_g32(R, C, a, i0, w, j0, out, f16);
        return;
    }
    q8_reduce_tile(R, C, fa, out);
    if (!grouped)
        CK_UNROLL_FULL
        for (int r = 0; r < R; r++)
            CK_UNROLL_FULL
            for (int cc = 0; cc < C; cc++) out[r][cc] *= ck_q8_scale(w, j0 + (size_t)cc, 0);
}

static inline __attribute__((always_inline)) void q8_tile_vnni_gsum(int R, int C, const ck_q8_rows *a, size_t i0,
                                                                    const ck_q8_weight *w, size_t j0,
                                                                    float out[4][4], int grouped, int f16) {
    q8_tile_vnni(R, C, a, i0, w, j0, out, grouped, f16, 0);
}
static inline __attribute__((always_inline)) void q8_tile_vnni_own(int R, int C, const ck_q8_rows *a, size_t i0,
                                                                   const ck_q8_weight *w, size_t j0,
                                                                   float out[4][4], int grouped, int f16) {
    q8_tile_vnni_gemv(R, C, a, i0, w, j0, out, grouped, f16);
}
/* A tile of the blocked layout's rare overflow of o sw (see q8_tile_vnni_gemv): the portable
 * loop on the tile's rows and weight rows, out of line. */
static __attribute__((noinline)) void q8_tile_blocked_portable(int R, int C, const ck_q8_rows *a, size_t i0,
                                                               const ck_q8_weight *w, size_t j0,
                                                               float out[4][4]) {
    ck_q8_weight v = *w;
    v.n = (size_t)C;
    v.q = w->q + j0 * w->ldq;
    const size_t at = w->group ? j0 * w->lds : j0;
    v.scales = w->scales_f16 ? (const void *)((const uint16_t *)w->scales + at) : (const void *)((const float *)w->scales + at);
    const ck_q8_rows r = {a->q + i0 * a->ldq, a->ldq, a->scale + i0 * a->lds, a->offset + i0 * a->lds, a->lds};
    float t[16];
    ck_q8_blocked_portable((size_t)R, &r, &v, NULL, t, 4);
    for (int i = 0; i < R; i++)
        for (int c = 0; c < C; c++) out[i][c] = t[4 * i + c];
}

/* The tile on the blocked layout (attend_kernels.h; offsets' share included, w->gsum not
 * read). Lane l of a step is group l of the block, so per block of 16 groups and pair (row,
 * weight row) the 8 steps' vpdpbusd accumulate in one int32 register (exact: at most
 * 32 * 255 * 127 per lane), the weight bytes' sums in another (a vpdpbusd against ones, shared
 * by the rows), and the block ends with two conversions and two FMAs against the 16 groups'
 * factors sa sw and o sw, which line up with the lanes as loaded (no permutes): per 64-byte
 * step and row one vpdpbusd, against q8_tile_vnni_gemv's two vpdpbusd, two conversions, two
 * permutes and two FMAs. Decoding's one or two rows (R <= 2) stream the C weight rows one after
 * another, as q8_tile_vnni_gemv does; larger R take them two at a time, each activation load
 * serving both. Where o sw overflows the tile is redone by the portable loop. */
static Q8_GEMV_TILE_INLINE void q8_tile_vnni_blocked(int R, int C, const ck_q8_rows *a, size_t i0,
                                                                       const ck_q8_weight *w, size_t j0,
                                                                       float out[4][4], int grouped, int f16) {
    const size_t k = w->k, groups = (k + 31) / 32;
    /* Bytes ahead each weight row is prefetched (0: none), and (per 32 inputs) its group
     * scales a quarter of that ahead: a second stream, 1/16 of the bytes, whose loads stalled
     * without it. */
    const size_t prefetch = (size_t)ck_q8_blocked_prefetch_bytes(), sprefetch = prefetch / 4;
    const uint8_t *arow[4];
    const float *srow[4], *orow[4];
    q8_row_pointers(R, a, i0, arow, srow, orow);
    const __m512i ones = _mm512_set1_epi8(1);
    const int pass = R <= 2 ? 1 : 2; /* weight rows per pass */
    __m512 fa[4][4];
    __mmask16 overflow = 0;
    CK_UNROLL_FULL
    for (int c0 = 0; c0 < C; c0 += pass) {
        const int cn = C - c0 < pass ? C - c0 : pass;
        const int8_t *qrow[4];
        CK_UNROLL_FULL
        for (int cc = 0; cc < cn; cc++) qrow[cc] = w->q + (j0 + (size_t)(c0 + cc)) * w->ldq;
        CK_UNROLL_FULL
        for (int r = 0; r < R; r++)
            CK_UNROLL_FULL
            for (int cc = 0; cc < cn; cc++) fa[r][c0 + cc] = _mm512_setzero_ps();
        for (size_t g0 = 0; g0 < groups; g0 += 16) {
            const size_t nb = groups - g0 < 16 ? groups - g0 : 16, base = 32 * g0;
            /* decoding: two chains of accumulators (even and odd steps), half as long */
            const int chains = R <= 2 ? Q8_BLK_CHAINS : 1;
            __m512i ia[4][4][4], is[4][4];
            CK_UNROLL_FULL
            for (int h = 0; h < chains; h++)
                CK_UNROLL_FULL
                for (int cc = 0; cc < cn; cc++) {
                    is[h][cc] = _mm512_setzero_si512();
                    CK_UNROLL_FULL
                    for (int r = 0; r < R; r++) ia[h][r][cc] = _mm512_setzero_si512();
                }
#define Q8_BLK_STEP(MASKED, off, h)                                                                \
    do {                                                                                           \
        __m512i wv[4];                                                                             \
        CK_UNROLL_FULL                                                                             \
        for (int cc = 0; cc < cn; cc++) {                                                          \
            if (prefetch) _mm_prefetch((const char *)(qrow[cc] + base + (off) + prefetch), _MM_HINT_T0); \
            wv[cc] = MASKED ? _mm512_maskz_loadu_epi8(mk, qrow[cc] + base + (off))                 \
                            : _mm512_loadu_si512((const void *)(qrow[cc] + base + (off)));         \
            is[h][cc] = _mm512_dpbusd_epi32(is[h][cc], ones, wv[cc]);                              \
        }                                                                                          \
        CK_UNROLL_FULL                                                                             \
        for (int r = 0; r < R; r++) {                                                              \
            const __m512i av = MASKED ? _mm512_maskz_loadu_epi8(mk, arow[r] + base + (off))        \
                                      : _mm512_loadu_si512((const void *)(arow[r] + base + (off))); \
            CK_UNROLL_FULL                                                                         \
            for (int cc = 0; cc < cn; cc++) ia[h][r][cc] = _mm512_dpbusd_epi32(ia[h][r][cc], av, wv[cc]); \
        }                                                                                          \
    } while (0)
            if (nb == 16) {
                const __mmask64 mk = ~(__mmask64)0;
                (void)mk;
                CK_UNROLL_FULL
                for (int st = 0; st < 8; st++) Q8_BLK_STEP(0, 64 * (size_t)st, st % chains);
            } else {
                const __mmask64 mk = ((__mmask64)1 << (4 * nb)) - 1;
                CK_UNROLL_FULL
                for (int st = 0; st < 8; st++) Q8_BLK_STEP(1, 4 * nb * (size_t)st, st % chains);
            }
            CK_UNROLL_FULL
            for (int h = 1; h < chains; h++)
                CK_UNROLL_FULL
                for (int cc = 0; cc < cn; cc++) {
                    is[0][cc] = _mm512_add_epi32(is[0][cc], is[h][cc]);
                    CK_UNROLL_FULL
                    for (int r = 0; r < R; r++) ia[0][r][cc] = _mm512_add_epi32(ia[0][r][cc], ia[h][r][cc]);
                }
#undef Q8_BLK_STEP
            const __mmask16 gm = nb == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nb) - 1);
            CK_UNROLL_FULL
            for (int cc = 0; cc < cn; cc++) {
                __m512 sw = _mm512_setzero_ps();
                if (grouped) {
                    const size_t j = j0 + (size_t)(c0 + cc);
                    const void *ws = f16 ? (const void *)((const uint16_t *)w->scales + j * w->lds + g0)
                                         : (const void *)((const float *)w->scales + j * w->lds + g0);
                    if (sprefetch) _mm_prefetch((const char *)ws + sprefetch, _MM_HINT_T0);
                    sw = f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, ws)) : _mm512_maskz_loadu_ps(gm, ws);
                }
                const __m512 sums = _mm512_cvtepi32_ps(is[0][cc]);
                CK_UNROLL_FULL
                for (int r = 0; r < R; r++) {
                    __m512 ks = _mm512_maskz_loadu_ps(gm, srow[r] + g0), ko = _mm512_maskz_loadu_ps(gm, orow[r] + g0);
                    if (grouped) {
                        ks = _mm512_mul_ps(ks, sw);
                        ko = _mm512_mul_ps(ko, sw);
                        overflow |= _mm512_fpclass_ps_mask(ko, 0x18); /* +-Inf */
                    }
                    fa[r][c0 + cc] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[0][r][cc]), ks, fa[r][c0 + cc]);
                    fa[r][c0 + cc] = _mm512_fmadd_ps(sums, ko, fa[r][c0 + cc]);
                }
            }
        }
        if (pass != 1)
            CK_UNROLL_FULL
            for (int r = 0; r < R; r++)
                CK_UNROLL_FULL
                for (int cc = 0; cc < cn; cc++) out[r][c0 + cc] = _mm512_reduce_add_ps(fa[r][c0 + cc]);
    }
    if (grouped && overflow) {
        q8_tile_blocked_portable(R, C, a, i0, w, j0, out);
        return;
    }
    if (pass == 1) q8_reduce_tile(R, C, fa, out);
    if (!grouped)
        CK_UNROLL_FULL
        for (int r = 0; r < R; r++)
            CK_UNROLL_FULL
            for (int cc = 0; cc < C; cc++) out[r][cc] *= ck_q8_scale(w, j0 + (size_t)cc, 0);
}
#define Q8_BLOCKED_TILE(R, C, a, i0, w, j0, out) CK_Q8_TILE_BY_LAYOUT(q8_tile_vnni_blocked, R, C, a, i0, w, j0, out)
#define Q8_TILE(R, C, a, i0, w, j0, out) CK_Q8_TILE_BY_LAYOUT(q8_tile_vnni_gsum, R, C, a, i0, w, j0, out)
#define Q8_GEMV_TILE(R, C, a, i0, w, j0, out) CK_Q8_TILE_BY_LAYOUT(q8_tile_vnni_own, R, C, a, i0, w, j0, out)
#define Q8_NAME(x) q8_##x##__avx512
#define Q8_GEMV q8_gemv_vnni__avx512
#define Q8_GEMM q8_gemm_vnni__avx512
#define Q8_GEMM_ROWS 4
/* Four weight rows per GEMV tile, streamed one after another (measured on Zen 4 over weights
 * larger than L3, streaming one row at a time with the prefetch beat interleaving four rows'
 * loads); the tile reduces the four rows' accumulators together (q8_reduce4). */
#define Q8_GEMV_COLS 4
#define Q8_OFFSET_SHIFT 0
static void Q8_GEMV(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias, float *c,
                    size_t ldc);
static void Q8_GEMM(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias, float *c,
                    size_t ldc);
#include "../../core/templates/q8_driver.h"

#pragma clang attribute pop

CK_Q8_DISPATCH(avx512, ck_q8_cpu_has_avx512_vnni, q8_gemv_vnni__avx512, q8_gemm_vnni__avx512,
               ck_q8_gemv__avx2, ck_q8_gemm__avx2)

#endif
