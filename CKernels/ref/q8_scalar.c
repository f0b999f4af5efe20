/*
 * int8 weights, portable scalar kernels (contracts in attend_kernels.h, "int8 weights"): the
 * reference order every other variant is measured against. Per row, weight row and group of
 * 32 the exact int32 dot product I_g of the quantized activations (0..255) and the weight,
 * converted, times (activation scale * weight scale), summed in float over the groups (per
 * channel: times the channel's scale once at the end); the offsets' share and the bias in
 * the shared driver (core/templates/q8_driver.h).
 */
#include "../core/ck_internal.h"

/* The integer part of an R x C tile (R, C <= 4). */
static inline __attribute__((always_inline)) void q8_tile_scalar(int R, int C, const ck_q8_rows *a,
                                                                 size_t i0, const ck_q8_weight *w,
                                                                 size_t j0, float out[4][4]) {
    const size_t k = w->k;
    for (int r = 0; r < R; r++) {
        const size_t i = i0 + (size_t)r;
        const uint8_t *x = a->q + i * a->ldq;
        const float *sa = a->scale + i * a->lds;
        for (int cc = 0; cc < C; cc++) {
            const size_t j = j0 + (size_t)cc;
            const int8_t *q = w->q + j * w->ldq;
            float acc = 0.0f;
            for (size_t p0 = 0, g = 0; p0 < k; p0 += 32, g++) {
                const size_t p1 = p0 + 32 < k ? p0 + 32 : k;
                int32_t d = 0;
                for (size_t p = p0; p < p1; p++) d += (int32_t)x[p] * (int32_t)q[p];
                acc += (float)d * (w->group ? sa[g] * ck_q8_scale(w, j, g) : sa[g]);
            }
            out[r][cc] = w->group ? acc : acc * ck_q8_scale(w, j, 0);
        }
    }
}

#define Q8_TILE q8_tile_scalar
#define Q8_NAME(x) q8_##x##__scalar
#define Q8_GEMV ck_q8_gemv__scalar
#define Q8_GEMM ck_q8_gemm__scalar
#define Q8_GEMM_ROWS 2
#define Q8_GEMV_COLS 1
#define Q8_OFFSET_SHIFT 0
#include "../core/templates/q8_driver.h"
