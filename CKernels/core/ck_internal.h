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

#endif
