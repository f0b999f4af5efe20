/* Internal declarations shared by the C kernel files (not part of the Swift contract). */
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H

/* Full unrolling of the register-tile loops, for clang (the compiler SwiftPM uses) and GCC (the
 * cross build of the NEON test): without it GCC keeps the micro-kernel's accumulators in memory. */
#if defined(__clang__)
#define CK_UNROLL_FULL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define CK_UNROLL_FULL _Pragma("GCC unroll 64")
#else
#define CK_UNROLL_FULL
#endif

#include "attend_kernels.h"

#include <limits.h>

#define CK_ALIGN 64

/* Transposing copy into panels of w floats (the GEMM's A and B packing, the fused attention's
 * keys, queries and output): from `rows` rows of a row-major matrix (row r at src + r*ld, kcb
 * floats each, rows <= w), dst[p*w + r] = src[r*ld + p] for p < kcb, and rows rows..w-1 of
 * every panel step zero. Exact copies. Cost: w * kcb stores, rows * kcb loads. (gemm.c) */
void ck_pack_rows(size_t w, size_t rows, size_t kcb, const float *src, size_t ld, float *dst);

#include <string.h>

/* Exact scalar widening of the 16-bit weight types (attend_kernels.h, CK_W16_F16). */
static inline float ck_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline float ck_bf16_to_f32(uint16_t h) { return ck_bits_to_f32((uint32_t)h << 16); }
/* binary16: sign, 5 exponent bits (bias 15), 10 mantissa bits. Normal values rebias the
 * exponent; subnormals are m * 2^-24 (exact in float32); infinities and NaNs keep the payload,
 * and signalling NaNs come out quiet, as vcvtph2ps and fcvtl make them. */
static inline float ck_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu;
    if (em >= 0x7c00u) {
        const uint32_t mant = (uint32_t)(em & 0x3ffu) << 13;
        return ck_bits_to_f32(sign | 0x7f800000u | mant | (mant ? 0x400000u : 0));
    }
    if (em >= 0x0400u) return ck_bits_to_f32(sign | ((em + ((127u - 15u) << 10)) << 13));
    const float mag = (float)em * 0x1p-24f;
    uint32_t u;
    memcpy(&u, &mag, sizeof u);
    return ck_bits_to_f32(sign | u);
}

/* The first key query i (absolute position i + causal_offset) sees under a sliding window of
 * `window` positions (0: none): max(0, i + causal_offset - window + 1). */
static inline size_t ck_window_first_key(size_t window, size_t i, ptrdiff_t causal_offset) {
    if (window == 0) return 0;
    const ptrdiff_t pos = (ptrdiff_t)i + causal_offset;
    if (pos < 0 || (size_t)pos < window) return 0;
    return (size_t)pos - window + 1;
}

/* The score of query i for key j beyond scale * q.k: biases, or -inf when masked. */
static inline float ck_rows_bias(const ck_attention_rows *h, size_t i, size_t j) {
    if (h->causal && (ptrdiff_t)j > (ptrdiff_t)i + h->causal_offset) return -__builtin_inff();
    if (j < ck_window_first_key(h->window, i, h->causal_offset)) return -__builtin_inff();
    float b = 0.0f;
    if (h->key_bias) b += h->key_bias[j];
    if (h->rel_bias) b += h->rel_bias[(ptrdiff_t)i - (ptrdiff_t)j + h->rel_bias_zero];
    return b;
}

/* Score rows of one block of ck_f32_attn_short (templates/attn_short.h) that
 * ck_f32_attention_short_workspace reserves: every variant's block is at most this many rows. */
#define CK_SHORT_WS_ROWS 8

/* Per-variant tables, defined in ref/, x86/avx2/, x86/avx512/, arm/neon/.
 * A variant that is not compiled for this architecture has no table. */
extern const ck_kernels ck_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const ck_kernels ck_kernels_avx2;
extern const ck_kernels ck_kernels_avx512;
extern const ck_kernels ck_kernels_avx512_layout_avx2;
#endif
#if defined(__aarch64__)
extern const ck_kernels ck_kernels_neon;
#endif


/* ---- int8 weights (core/q8.c, ref/q8_scalar.c, x86/{avx2,avx512}/q8_*.c, arm/neon/q8_neon.c) */
#include <string.h>

/* ck_f16_to_f32 (above) reads binary16 scales. */

/* The scale of row j, group g (g ignored for per-channel weights). */
static inline float ck_q8_scale(const ck_q8_weight *w, size_t j, size_t g) {
    const size_t idx = w->group ? j * w->lds + g : j;
    return w->scales_f16 ? ck_f16_to_f32(((const uint16_t *)w->scales)[idx])
                         : ((const float *)w->scales)[idx];
}

/* Groups per row: ceil(k / group), 1 per channel. */
static inline size_t ck_q8_groups(const ck_q8_weight *w) {
    return w->group ? (w->k + (size_t)w->group - 1) / (size_t)w->group : 1;
}

/* Runtime checks of the dot-product extensions (cached). */
int ck_q8_cpu_has_avx512_vnni(void);
int ck_q8_cpu_has_dotprod(void);

/* Every variant's two int8 slots (ck_q8_gemm_fn contract), from core/templates/q8_driver.h. */
#define CK_Q8_DECLARE(suffix)                                                                      \
    void ck_q8_gemv__##suffix(size_t m, const ck_q8_rows *a, const ck_q8_weight *w,             \
                              const float *bias, float *c, size_t ldc);                            \
    void ck_q8_gemm__##suffix(size_t m, const ck_q8_rows *a, const ck_q8_weight *w,             \
                              const float *bias, float *c, size_t ldc);
CK_Q8_DECLARE(scalar)
#if defined(__x86_64__) || defined(_M_X64)
CK_Q8_DECLARE(avx2)
CK_Q8_DECLARE(avx512)
#endif
#if defined(__aarch64__)
CK_Q8_DECLARE(neon)
void ck_q8_gemm_widening__neon(size_t m, const ck_q8_rows *a, const ck_q8_weight *w,
                               const float *bias, float *c, size_t ldc);
#endif

/* Every variant's products on blocked weights without a blocked kernel (the ck_q8_gemm_fn
 * contract, w->blocked != 0): one output at a time, group by group, in plain C. */
void ck_q8_blocked_portable(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias,
                            float *c, size_t ldc);

/* A variant's two int8 entry points, choosing at run time between the kernels on a
 * dot-product extension (has() != 0) and the ones without it. */
#define CK_Q8_DISPATCH(suffix, has, fast_gemv, fast_gemm, slow_gemv, slow_gemm)                    \
    void ck_q8_gemv__##suffix(size_t m, const ck_q8_rows *a, const ck_q8_weight *w,             \
                              const float *bias, float *c, size_t ldc) {                           \
        (has() ? fast_gemv : slow_gemv)(m, a, w, bias, c, ldc);                                    \
    }                                                                                              \
    void ck_q8_gemm__##suffix(size_t m, const ck_q8_rows *a, const ck_q8_weight *w,             \
                              const float *bias, float *c, size_t ldc) {                           \
        (has() ? fast_gemm : slow_gemm)(m, a, w, bias, c, ldc);                                    \
    }

/* A tile function tile(R, C, a, i0, w, j0, out, grouped, f16) called with the weight's scale
 * layout and type as constants, so each of the three is compiled without branches. */
#define CK_Q8_TILE_BY_LAYOUT(tile, R, C, a, i0, w, j0, out)                                        \
    do {                                                                                           \
        if (!(w)->group)                                                                           \
            tile(R, C, a, i0, w, j0, out, 0, 0);                                                   \
        else if ((w)->scales_f16)                                                                  \
            tile(R, C, a, i0, w, j0, out, 1, 1);                                                   \
        else                                                                                       \
            tile(R, C, a, i0, w, j0, out, 1, 0);                                                   \
    } while (0)

/* The epilogue every variant shares: the bias added to the sum over groups. */
static inline float ck_q8_finish(float acc, const float *bias, size_t j) {
    return bias ? acc + bias[j] : acc;
}

#endif
