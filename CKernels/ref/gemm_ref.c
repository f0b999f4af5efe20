/*
 * Portable scalar variant: the fallback row of every table. Plain C, no vector extensions,
 * no ISA assumptions. The SGEMM micro-kernel is 4 x 4 (16 accumulators fit any register file
 * that a compiler can keep scalars in); blocks sized for a generic 32 KiB L1 / 256 KiB L2.
 */
#include "../core/ck_internal.h"

enum { REF_MR = 4, REF_NR = 4 };

void ck_f32_gemm_ukr_4x4__scalar(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                 float alpha, float beta) {
    float acc[REF_MR][REF_NR] = {{0}};
    for (size_t p = 0; p < kc; p++) {
        for (int i = 0; i < REF_MR; i++) {
            for (int j = 0; j < REF_NR; j++) acc[i][j] += a[i] * b[j];
        }
        a += REF_MR;
        b += REF_NR;
    }
    for (int i = 0; i < REF_MR; i++) {
        float *row = c + (size_t)i * ldc;
        for (int j = 0; j < REF_NR; j++)
            row[j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * row[j];
    }
}

double ck_f32_fma_peak__scalar(size_t iters) {
    enum { CHAINS = 8 };
    float acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = (float)i;
    for (size_t it = 0; it < iters; it++)
        for (int i = 0; i < CHAINS; i++) acc[i] = acc[i] * 0.999999f + 1e-7f;
    float sink = 0;
    for (int i = 0; i < CHAINS; i++) sink += acc[i];
    volatile float keep = sink;
    (void)keep;
    return (double)iters * CHAINS * 2.0;
}

/* Softmax, exp and the attention step: the shared vector-math source with one-lane
 * vectors, i.e. plain scalar arithmetic in a fixed order. */
typedef float ck_v1f __attribute__((vector_size(4)));
typedef int ck_v1i __attribute__((vector_size(4)));

#define CK_NO_FMA
#define CK_FN(name) name##__scalar
#define CK_VEC ck_v1f
#define CK_IVEC ck_v1i
#define CK_VL 1
#define CK_ANV 4
#include "../core/vmath_template.h"
#undef CK_FN
#undef CK_VEC
#undef CK_IVEC
#undef CK_VL
#undef CK_ANV
#undef CK_NO_FMA

const ck_kernels ck_kernels_scalar = {
    .variant = CK_VARIANT_SCALAR,
    .name = "scalar",
    .gemm = {.mr = REF_MR, .nr = REF_NR, .mc = 64, .kc = 256, .nc = 1024},
    .gemm_ukr = ck_f32_gemm_ukr_4x4__scalar,
    .gemm_ukr_name = "ck_f32_gemm_ukr_4x4__scalar",
    .fma_peak = ck_f32_fma_peak__scalar,
    .exp = ck_f32_exp__scalar,
    .softmax_rows = ck_f32_softmax_rows__scalar,
    .attn_softmax_step = ck_f32_attn_softmax_step__scalar,
    .gemv = ck_f32_gemv__scalar,
    .gemv_t = ck_f32_gemv_t__scalar,
    .activation = ck_f32_activation__scalar,
    .norm_rows = ck_f32_norm_rows__scalar,
    .attn_query_panels = 2, /* 8 queries */
    .attn_key_block = 64,
};
