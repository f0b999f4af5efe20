/*
 * One kernel variant: every per-ISA kernel instantiated from the templates beside this file,
 * and the variant's const table. An ISA file (x86/avx2/avx2.c, ...) is its blocking comment,
 * its target-attribute region, a few defines and one include of this file:
 *
 *   CK_VEC, CK_IVEC, CK_VL      float / int32 vector types and lanes
 *   CK_FN(name)                 the variant suffix: CK_FN(ck_f32_exp) -> ck_f32_exp__avx2
 *   CK_UKR_NAME                 the micro-kernel's name, ck_f32_gemm_ukr_<MR>x<NR>__<variant>
 *   CK_UKR_ROWS_NAME            its A-in-place twin, ck_f32_gemm_ukr_rows_<MR>x<NR>__<variant>
 *   CK_MR, CK_NV                micro-tile: CK_MR rows x CK_NV vectors (nr = CK_NV * CK_VL)
 *   CK_MC, CK_KC, CK_NC         cache blocks (mc a multiple of mr, nc of nr)
 *   CK_PEAK_CHAINS              independent FMA chains of the peak probe
 *   CK_ANV                      query vectors per attention panel (query panel = CK_ANV*CK_VL)
 *   CK_ATTN_QUERY_PANELS, CK_ATTN_KEY_BLOCK   fused attention tiling (key block % attn mr == 0)
 *   CK_ATTN_UKR_NAME, CK_ATTN_MR  (optional) the fused attention's own micro-kernel,
 *                               CK_ATTN_MR x CK_ANV vectors (default: the GEMM's, CK_ANV == CK_NV);
 *                               its column-scaled twin is CK_FN(ck_f32_attn_ukr_scaled), from
 *                               the same template (a CK_CUSTOM_UKR file writes it itself)
 *   CK_TABLE, CK_VARIANT_ID, CK_VARIANT_NAME  the table's symbol, enum value and name
 *   CK_LOAD_F16(p)              (optional) CK_VL binary16 values widened (see w16.h)
 *   CK_GEMV_GROUP               (optional, 1-4, default 2) rows of x per pass of the multi-row
 *                               GEMV (gemv.h): as many as the vector registers hold
 * Optional: CK_NO_FMA (no fused multiply-add: the portable scalar row), CK_CUSTOM_UKR and
 * CK_CUSTOM_PEAK (the includer wrote the functions CK_UKR_NAME and CK_UKR_ROWS_NAME / CK_PEAK_NAME
 * itself).
 */
#define CK_STR2(x) #x
#define CK_STR(x) CK_STR2(x)

#ifndef CK_CUSTOM_UKR
#define CK_T_NAME CK_UKR_NAME
#define CK_T_ROWS_NAME CK_UKR_ROWS_NAME
#ifndef CK_ATTN_UKR_NAME
#define CK_T_SCALED_NAME CK_FN(ck_f32_attn_ukr_scaled)
#endif
#define CK_T_MR CK_MR
#define CK_T_NV CK_NV
#include "gemm_ukr.h"
#undef CK_T_NAME
#undef CK_T_ROWS_NAME
#undef CK_T_SCALED_NAME
#undef CK_T_MR
#undef CK_T_NV
#endif
/* The fused attention's tile: CK_ATTN_MR keys (S^T) or head dimensions (O^T) x CK_ANV vectors
 * of queries; the GEMM's micro-kernel unless the ISA file names its own (CK_ATTN_UKR_NAME). */
#ifdef CK_ATTN_UKR_NAME
#define CK_T_NAME CK_ATTN_UKR_NAME
#define CK_T_SCALED_NAME CK_FN(ck_f32_attn_ukr_scaled)
#define CK_T_MR CK_ATTN_MR
#define CK_T_NV CK_ANV
#include "gemm_ukr.h"
#undef CK_T_NAME
#undef CK_T_SCALED_NAME
#undef CK_T_MR
#undef CK_T_NV
#else
#define CK_ATTN_UKR_NAME CK_UKR_NAME
#define CK_ATTN_MR CK_MR
_Static_assert(CK_ANV == CK_NV, "without its own attention tile, a query panel is the GEMM's nr");
#endif
#ifndef CK_CUSTOM_PEAK
#define CK_PEAK_NAME CK_FN(ck_f32_fma_peak)
#include "fma_peak.h"
#endif

#include "vector_ops.h"
#include "exp_softmax.h"
#include "attn_short.h"
#include "w16.h"
#include "gemv.h"
#include "activation.h"
#include "epilogue.h"
#include "norm.h"
#include "attn_backward.h"
#include "optimizer.h"
#include "cross_entropy.h"
#include "norm_backward.h"
#include "activation_backward.h"
#include "embedding_backward.h"

/* The int8 kernels live in their own files per variant (ref/q8_scalar.c, x86/avx2/q8_avx2.c,
 * ...); a table may name another variant's (CK_Q8_GEMV / CK_Q8_GEMM). */
#ifndef CK_Q8_GEMV
#define CK_Q8_GEMV CK_FN(ck_q8_gemv)
#endif
#ifndef CK_Q8_GEMM
#define CK_Q8_GEMM CK_FN(ck_q8_gemm)
#endif

_Static_assert(CK_MC % CK_MR == 0, "mc must be a multiple of mr");
_Static_assert(CK_NC % (CK_NV * CK_VL) == 0, "nc must be a multiple of nr");
_Static_assert(CK_ATTN_KEY_BLOCK % CK_ATTN_MR == 0,
               "the attention key block must be a multiple of the attention tile's rows");
_Static_assert(CK_MR *CK_NV *CK_VL <= 1024,
               "the edge-tile buffer of core/gemm.c holds 1024 floats");

const ck_kernels CK_TABLE = {
    .variant = CK_VARIANT_ID,
    .name = CK_VARIANT_NAME,
    .gemm = {.mr = CK_MR, .nr = CK_NV * CK_VL, .mc = CK_MC, .kc = CK_KC, .nc = CK_NC},
    .gemm_ukr = CK_UKR_NAME,
    .gemm_ukr_rows = CK_UKR_ROWS_NAME,
    .gemm_ukr_name = CK_STR(CK_UKR_NAME),
    .fma_peak = CK_PEAK_NAME,
    .exp = CK_FN(ck_f32_exp),
    .softmax_rows = CK_FN(ck_f32_softmax_rows),
    .attn_softmax_step = CK_FN(ck_f32_attn_softmax_step),
    .gemv = CK_FN(ck_f32_gemv),
    .gemv_t = CK_FN(ck_f32_gemv_t),
    .activation = CK_FN(ck_f32_activation),
    .norm_rows = CK_FN(ck_f32_norm_rows),
    .attn_query_panels = CK_ATTN_QUERY_PANELS,
    .attn_key_block = CK_ATTN_KEY_BLOCK,
    .attn_grad_step = CK_FN(ck_f32_attn_grad_step),
    .adamw = CK_FN(ck_f32_adamw),
    .sgd = CK_FN(ck_f32_sgd),
    .sum_squares = CK_FN(ck_f32_sum_squares),
    .scale = CK_FN(ck_f32_scale),
    .cross_entropy = CK_FN(ck_f32_cross_entropy),
    .norm_rows_train = CK_FN(ck_f32_norm_rows_train),
    .norm_backward = CK_FN(ck_f32_norm_backward),
    .activation_backward = CK_FN(ck_f32_activation_backward),
    .gated_backward = CK_FN(ck_f32_gated_backward),
    .embedding_backward = CK_FN(ck_f32_embedding_backward),
    .w16_widen = CK_FN(ck_w16_widen),
    .w16_gemv = CK_FN(ck_w16_gemv),
    .q8_gemv = CK_Q8_GEMV,
    .q8_gemm = CK_Q8_GEMM,
    .gemv_rows = CK_FN(ck_f32_gemv_rows),
    .attn_ukr = CK_ATTN_UKR_NAME,
    .attn_mr = CK_ATTN_MR,
    .attn_nr = CK_ANV * CK_VL,
    .attn_short = CK_FN(ck_f32_attn_short),
    .gemm_epilogue = CK_FN(ck_f32_gemm_epilogue),
    .gemv_group = CK_GEMV_GROUP,
    .attn_ukr_scaled = CK_FN(ck_f32_attn_ukr_scaled),
};

#undef CK_VFMA
#undef CK_VFMA2
#undef CK_SPLAT
#undef CK_PEAK_NAME
#undef CK_Q8_GEMV
#undef CK_Q8_GEMM
#undef CK_ATTN_UKR_NAME
#undef CK_ATTN_MR
