/*
 * attend_kernels_testing.h — kernel tables that exist for tests only, not for production use.
 * Part of the same C module as attend_kernels.h (so Swift tests and kernel-fuzz reach them),
 * kept apart so the production contract stays what models run.
 */
#ifndef ATTEND_KERNELS_TESTING_H
#define ATTEND_KERNELS_TESTING_H

#include "attend_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A test-only table: the AVX-512 variant's template parameters (14 x 32 micro-tile of 64-byte
 * vectors, its blocking and attention tiling) compiled for AVX2, so that its logic is
 * exercised on CPUs without AVX-512 (CKernels/x86/avx2/avx512_layout_on_avx2.c). NULL when AVX2
 * is not supported. Not a production variant: it is slower than the AVX2 one.
 */
const ck_kernels *ck_kernels_avx512_layout_on_avx2(void);

/**
 * The int8 GEMM of a variant without its dot-product extension (ck_q8_gemm_fn contract): the
 * AVX2 vpmaddwd kernel for avx512 (whose table uses vpdpbusd when the CPU has AVX-512
 * VNNI), the smull + sadalp kernel for neon (whose table uses sdot when the CPU has the
 * dot-product extension), the table's own kernel for scalar and avx2. NULL when the variant
 * is not supported here. Tests run both paths on CPUs that have the extensions.
 */
ck_q8_gemm_fn ck_q8_gemm_baseline(int variant);

#ifdef __cplusplus
}
#endif
#endif
