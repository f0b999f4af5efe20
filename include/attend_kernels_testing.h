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

#ifdef __cplusplus
}
#endif
#endif
