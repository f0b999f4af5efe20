/*
 * Portable scalar variant: the fallback row of every table. Plain C, no vector extensions,
 * no ISA assumptions. The SGEMM micro-kernel is 4 x 4 (16 accumulators fit any register file
 * that a compiler can keep scalars in); blocks sized for a generic 32 KiB L1 / 256 KiB L2 where
 * the caches are not reported (otherwise derived from them at run time, as for every variant).
 */
#include "../core/ck_internal.h"

enum { REF_MR = 4, REF_NR = 4 };

/* The 4 x 4 tile with A element (i, p) at a[i*si + p*sp]: packed panels (1, MR) and rows read
 * in place (lda, 1) share it. colscale NULL: C = alpha*AB + beta*C; else the attention's O^T
 * update, C = C * colscale[j] + AB. */
static inline void ck_ukr_4x4_scalar(size_t kc, const float *a, size_t si, size_t sp,
                                     const float *b, float *c, size_t ldc, float alpha,
                                     float beta, const float *colscale) {
    float acc[REF_MR][REF_NR] = {{0}};
    for (size_t p = 0; p < kc; p++) {
        for (int i = 0; i < REF_MR; i++) {
            for (int j = 0; j < REF_NR; j++) acc[i][j] += a[(size_t)i * si] * b[j];
        }
        a += sp;
        b += REF_NR;
    }
    for (int i = 0; i < REF_MR; i++) {
        float *row = c + (size_t)i * ldc;
        for (int j = 0; j < REF_NR; j++)
            row[j] = colscale      ? row[j] * colscale[j] + acc[i][j]
                     : beta == 0.0f ? alpha * acc[i][j]
                                    : alpha * acc[i][j] + beta * row[j];
    }
}

void ck_f32_gemm_ukr_4x4__scalar(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                 float alpha, float beta) {
    ck_ukr_4x4_scalar(kc, a, 1, REF_MR, b, c, ldc, alpha, beta, NULL);
}

void ck_f32_gemm_ukr_rows_4x4__scalar(size_t kc, const float *a, size_t lda, const float *b,
                                      float *c, size_t ldc, float alpha, float beta) {
    ck_ukr_4x4_scalar(kc, a, lda, 1, b, c, ldc, alpha, beta, NULL);
}

/* The attention's O^T update, C = C * colscale[j] + A * B, on the same 4 x 4 tile (the
 * attention uses the GEMM's tile here). */
void ck_f32_attn_ukr_scaled__scalar(size_t kc, const float *a, const float *b, float *c,
                                    size_t ldc, const float *colscale) {
    ck_ukr_4x4_scalar(kc, a, 1, REF_MR, b, c, ldc, 1.0f, 1.0f, colscale);
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

/* Every other kernel: the shared templates with one-lane vectors, i.e. plain scalar
 * arithmetic in a fixed order, without fused multiply-adds. */
typedef float ck_v1f __attribute__((vector_size(4)));
typedef int ck_v1i __attribute__((vector_size(4)));

#define CK_NO_FMA
#define CK_CUSTOM_UKR
#define CK_CUSTOM_PEAK
#define CK_VEC ck_v1f
#define CK_IVEC ck_v1i
#define CK_VL 1
#define CK_FN(name) name##__scalar
#define CK_UKR_NAME ck_f32_gemm_ukr_4x4__scalar
#define CK_UKR_ROWS_NAME ck_f32_gemm_ukr_rows_4x4__scalar
#define CK_PEAK_NAME ck_f32_fma_peak__scalar
#define CK_MR REF_MR
#define CK_NV REF_NR
#define CK_MC 64
#define CK_KC 256
#define CK_NC 1024
#define CK_ANV 4
#define CK_ATTN_QUERY_PANELS 2 /* 8 queries */
#define CK_ATTN_KEY_BLOCK 64
#define CK_TABLE ck_kernels_scalar
#define CK_VARIANT_ID CK_VARIANT_SCALAR
#define CK_VARIANT_NAME "scalar"
#include "../core/templates/variant.h"
