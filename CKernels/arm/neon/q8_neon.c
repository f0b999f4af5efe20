/*
 * int8 weights, NEON kernels (contracts in attend_kernels.h, "int8 weights"; drivers in
 * core/templates/q8_driver.h, included twice below).
 *
 * An R x C tile (R, C <= 4) over groups of 32 inputs (two 16-byte steps). NEON's dot product
 * is signed x signed, so the uint8 activations go in as q - 128 (one eor with 0x80 per step,
 * shared by the weight rows): the tile's integer sums are sum (q - 128) w and the driver adds
 * the 128 * scale back through the offsets, o + 128 s (Q8_OFFSET_SHIFT), against the weight's
 * group sums. With the dot-product extension (Armv8.2 dotprod, checked at run time:
 * HWCAP_ASIMDDP on Linux, FEAT_DotProd on macOS) sdot adds four byte products into each int32
 * lane; without it smull / smull2 form int16 products (|(q - 128) w| <= 128 * 127, exact) and
 * sadalp adds their pairs into int32. Both exact. Per group the int32 lanes are converted and
 * scaled by (activation scale * weight scale); the partial last group (k % 32) is scalar.
 */
#include "../../core/ck_internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

/* Widening: smull / smull2 (int16 products, exact), sadalp (pairs into int32). */
static inline int32x4_t q8_dot16_widening(int32x4_t acc, int8x16_t a, int8x16_t w) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(w)));
    return vpadalq_s16(acc, vmull_high_s8(a, w));
}

/* The integer part of an R x C tile, with Q8_DOT16(acc, a, w) adding 16 byte products. */
#define Q8_NEON_TILE(NAME)                                                                         \
    static inline __attribute__((always_inline)) void NAME(int R, int C, const ck_q8_rows *a,     \
                                                           size_t i0, const ck_q8_weight *w,      \
                                                           size_t j0, float out[4][4]) {          \
        const size_t k = w->k, k32 = k / 32 * 32;                                                  \
        const int grouped = w->group != 0;                                                         \
        const uint8_t *arow[4];                                                                    \
        const float *srow[4];                                                                      \
        const int8_t *qrow[4];                                                                     \
        for (int r = 0; r < R; r++) {                                                              \
            arow[r] = a->q + (i0 + (size_t)r) * a->ldq;                                            \
            srow[r] = a->scale + (i0 + (size_t)r) * a->lds;                                        \
        }                                                                                          \
        for (int cc = 0; cc < C; cc++) qrow[cc] = w->q + (j0 + (size_t)cc) * w->ldq;              \
        float32x4_t fa[4][4];                                                                      \
        for (int r = 0; r < R; r++)                                                                \
            for (int cc = 0; cc < C; cc++) fa[r][cc] = vdupq_n_f32(0.0f);                         \
        const uint8x16_t flip = vdupq_n_u8(0x80);                                                  \
        for (size_t p = 0, g = 0; p < k32; p += 32, g++) {                                         \
            int8x16_t a0[4], a1[4];                                                                \
            for (int r = 0; r < R; r++) {                                                          \
                a0[r] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(arow[r] + p), flip));                \
                a1[r] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(arow[r] + p + 16), flip));           \
            }                                                                                      \
            for (int cc = 0; cc < C; cc++) {                                                       \
                const int8x16_t w0 = vld1q_s8(qrow[cc] + p), w1 = vld1q_s8(qrow[cc] + p + 16);    \
                const float sw = grouped ? ck_q8_scale(w, j0 + (size_t)cc, g) : 1.0f;              \
                for (int r = 0; r < R; r++) {                                                      \
                    const int32x4_t d = Q8_DOT16(Q8_DOT16(vdupq_n_s32(0), a0[r], w0), a1[r], w1); \
                    fa[r][cc] = vfmaq_f32(fa[r][cc], vcvtq_f32_s32(d),                             \
                                          vdupq_n_f32(grouped ? srow[r][g] * sw : srow[r][g]));    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < R; r++)                                                                \
            for (int cc = 0; cc < C; cc++) {                                                       \
                const size_t j = j0 + (size_t)cc;                                                  \
                float v = vaddvq_f32(fa[r][cc]);                                                   \
                if (k32 < k) { /* the last, partial group */                                       \
                    int32_t d = 0;                                                                 \
                    for (size_t p = k32; p < k; p++)                                               \
                        d += ((int32_t)arow[r][p] - 128) * (int32_t)qrow[cc][p];                   \
                    const float sa = srow[r][k32 / 32];                                            \
                    v += (float)d * (grouped ? sa * ck_q8_scale(w, j, k32 / 32) : sa);             \
                }                                                                                  \
                out[r][cc] = grouped ? v : v * ck_q8_scale(w, j, 0);                               \
            }                                                                                      \
    }

#define Q8_GEMM_ROWS 4
#define Q8_GEMV_COLS 4
#define Q8_OFFSET_SHIFT 128

/* Without the dot-product extension. */
#define Q8_DOT16(acc, a, w) q8_dot16_widening(acc, a, w)
Q8_NEON_TILE(q8_tile_widening)
#undef Q8_DOT16
#define Q8_TILE q8_tile_widening
#define Q8_NAME(x) q8_##x##_widening__neon
#define Q8_GEMV q8_gemv_widening__neon
#define Q8_GEMM ck_q8_gemm_widening__neon
static void Q8_GEMV(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias, float *c,
                    size_t ldc);
#include "../../core/templates/q8_driver.h"
#undef Q8_TILE
#undef Q8_NAME
#undef Q8_GEMV
#undef Q8_GEMM

/* With sdot, in functions compiled for it. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif

#define Q8_DOT16(acc, a, w) vdotq_s32(acc, a, w)
Q8_NEON_TILE(q8_tile_sdot)
#undef Q8_DOT16
#define Q8_TILE q8_tile_sdot
#define Q8_NAME(x) q8_##x##_sdot__neon
#define Q8_GEMV q8_gemv_sdot__neon
#define Q8_GEMM q8_gemm_sdot__neon
static void Q8_GEMV(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias, float *c,
                    size_t ldc);
static void Q8_GEMM(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias, float *c,
                    size_t ldc);
#include "../../core/templates/q8_driver.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

CK_Q8_DISPATCH(neon, ck_q8_cpu_has_dotprod, q8_gemv_sdot__neon, q8_gemm_sdot__neon,
               q8_gemv_widening__neon, ck_q8_gemm_widening__neon)

#endif
