/*
 * CPU detection and the kernel tables. Detection runs once (cpuid/XCR0 are pure, so a racing
 * second detection computes the same answer). The tables are the variants' const tables with
 * the GEMM cache blocks derived from the caches read at run time (cache.c), made once.
 *
 * x86-64: a variant is trusted only when cpuid reports the instructions AND the OS saves the
 * registers they use (XCR0): AVX2 needs XMM|YMM state (bits 1,2), AVX-512 additionally
 * opmask|ZMM_Hi256|Hi16_ZMM (bits 5,6,7). macOS enables AVX-512 state lazily, so there the
 * kernel's own sysctl answer is used instead of XCR0. AArch64: NEON is architectural.
 */
#include "core/ck_internal.h"
#include "attend_kernels_testing.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__APPLE__) && (defined(__x86_64__) || defined(_M_X64))
#include <sys/sysctl.h>
#endif

static const char *const ck_names[CK_VARIANT_COUNT] = {"scalar", "avx2", "avx512", "neon"};

const char *ck_variant_name(int variant) {
    return variant >= 0 && variant < CK_VARIANT_COUNT ? ck_names[variant] : NULL;
}

int ck_variant_from_name(const char *name) {
    if (!name) return -1;
    for (int v = 0; v < CK_VARIANT_COUNT; v++)
        if (strcmp(name, ck_names[v]) == 0) return v;
    return -1;
}

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

static uint64_t ck_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

#if defined(__APPLE__)
static int ck_sysctl_flag(const char *name) {
    int value = 0;
    size_t size = sizeof value;
    return sysctlbyname(name, &value, &size, NULL, 0) == 0 && value != 0;
}
#endif

/* Bit mask of supported variants. */
static int ck_detect(void) {
    int mask = 1 << CK_VARIANT_SCALAR;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return mask;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    const int f16c = (c >> 29) & 1; /* vcvtph2ps, used by the 16-bit weight kernels */
    if (!osxsave || !avx) return mask;
    const uint64_t xcr0 = ck_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return mask; /* OS does not save YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return mask;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    const int avx512 = ((b >> 16) & 1) /* F */ && ((b >> 17) & 1) /* DQ */ &&
                       ((b >> 30) & 1) /* BW */ && ((b >> 31) & 1) /* VL */;
    if (avx2 && fma && f16c) mask |= 1 << CK_VARIANT_AVX2;
#if defined(__APPLE__)
    const int zmm_state = ck_sysctl_flag("hw.optional.avx512f");
#else
    const int zmm_state = (xcr0 & 0xE0) == 0xE0;
#endif
    if (avx2 && fma && f16c && avx512 && zmm_state) mask |= 1 << CK_VARIANT_AVX512;
    return mask;
}
#elif defined(__aarch64__)
static int ck_detect(void) { return (1 << CK_VARIANT_SCALAR) | (1 << CK_VARIANT_NEON); }
#else
static int ck_detect(void) { return 1 << CK_VARIANT_SCALAR; }
#endif

static atomic_int ck_supported_mask = 0; /* 0 = not yet detected (scalar is always set) */

static int ck_mask(void) {
    int m = atomic_load_explicit(&ck_supported_mask, memory_order_relaxed);
    if (m == 0) {
        m = ck_detect();
        atomic_store_explicit(&ck_supported_mask, m, memory_order_relaxed);
    }
    return m;
}

int ck_variant_supported(int variant) {
    return variant >= 0 && variant < CK_VARIANT_COUNT && ((ck_mask() >> variant) & 1);
}

int ck_variant_best(void) {
    static const int order[] = {CK_VARIANT_AVX512, CK_VARIANT_AVX2, CK_VARIANT_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (ck_variant_supported(order[i])) return order[i];
    return CK_VARIANT_SCALAR;
}

int ck_variant_initial(int *env_status) {
    const char *env = getenv("ATTEND_VARIANT");
    int status = 0, chosen = ck_variant_best();
    if (env && *env) {
        int v = ck_variant_from_name(env);
        if (v < 0)
            status = -1;
        else if (!ck_variant_supported(v))
            status = -2;
        else {
            status = 1;
            chosen = v;
        }
    }
    if (env_status) *env_status = status;
    return chosen;
}

/* The compiled table of a variant (its blocking the ISA file's constants), or NULL. */
static const ck_kernels *ck_kernels_compiled(int variant) {
    switch (variant) {
    case CK_VARIANT_SCALAR:
        return &ck_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
    case CK_VARIANT_AVX2:
        return &ck_kernels_avx2;
    case CK_VARIANT_AVX512:
        return &ck_kernels_avx512;
#endif
#if defined(__aarch64__)
    case CK_VARIANT_NEON:
        return &ck_kernels_neon;
#endif
    default:
        return NULL;
    }
}

int ck_gemm_blocking_constants(int variant, ck_gemm_blocking *out) {
    const ck_kernels *k = ck_kernels_compiled(variant);
    if (k && out) *out = k->gemm;
    return k != NULL;
}

/*
 * The tables handed out: copies of the compiled ones whose GEMM cache blocks are derived from
 * the caches read at run time (ck_gemm_blocking_derive), made once per table and read-only
 * afterwards. Slot CK_VARIANT_COUNT is the test-only AVX-512-layout table, tuned by the same
 * rule so its blocking stays the AVX-512 variant's. State: 0 not made, 1 being made, 2 ready.
 */
static ck_kernels ck_tuned[CK_VARIANT_COUNT + 1];

/* ATTEND_GEMM_BLOCKING=mc,kc,nc (a tuning knob for sweeps): replaces the derived blocks when
 * all three parse and lie in the derive rule's bounds; mc is rounded down to a multiple of mr
 * and nc of nr (at least one tile each), kc to a multiple of 8. Anything else leaves the
 * derived blocks. Read once per table, before any weight is packed with it. */
static void ck_gemm_blocking_from_env(ck_gemm_blocking *g) {
    const char *env = getenv("ATTEND_GEMM_BLOCKING");
    if (!env || !*env) return;
    long v[3];
    const char *p = env;
    for (int i = 0; i < 3; i++) {
        char *end = NULL;
        v[i] = strtol(p, &end, 10);
        if (end == p || (i < 2 && *end != ',') || (i == 2 && *end != 0)) return;
        p = end + 1;
    }
    if (v[0] < g->mr || v[0] > CK_BLOCK_MC_MAX || v[1] < CK_BLOCK_KC_MIN || v[1] > CK_BLOCK_KC_MAX ||
        v[2] < g->nr || v[2] > CK_BLOCK_NC_MAX)
        return;
    g->mc = (int)(v[0] / g->mr * g->mr);
    g->kc = (int)(v[1] / 8 * 8);
    g->nc = (int)(v[2] / g->nr * g->nr);
}
static atomic_int ck_tuned_state[CK_VARIANT_COUNT + 1];

static const ck_kernels *ck_kernels_tuned(int slot, const ck_kernels *compiled) {
    if (atomic_load_explicit(&ck_tuned_state[slot], memory_order_acquire) != 2) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&ck_tuned_state[slot], &expected, 1)) {
            ck_kernels t = *compiled;
            t.gemm = ck_gemm_blocking_derive(&compiled->gemm, ck_cache_info_get());
            ck_gemm_blocking_from_env(&t.gemm);
            ck_tuned[slot] = t;
            atomic_store_explicit(&ck_tuned_state[slot], 2, memory_order_release);
        } else {
            while (atomic_load_explicit(&ck_tuned_state[slot], memory_order_acquire) != 2)
                ck_cpu_relax();
        }
    }
    return &ck_tuned[slot];
}

const ck_kernels *ck_kernels_get(int variant) {
    if (!ck_variant_supported(variant)) return NULL;
    const ck_kernels *k = ck_kernels_compiled(variant);
    return k ? ck_kernels_tuned(variant, k) : NULL;
}

const ck_kernels *ck_kernels_avx512_layout_on_avx2(void) {
#if defined(__x86_64__) || defined(_M_X64)
    return ck_variant_supported(CK_VARIANT_AVX2)
               ? ck_kernels_tuned(CK_VARIANT_COUNT, &ck_kernels_avx512_layout_avx2)
               : NULL;
#else
    return NULL;
#endif
}

int ck_build_optimized(void) {
#if defined(__OPTIMIZE__)
    return 1;
#else
    return 0;
#endif
}

/* ---------------------------------------------------------------- helpers for Swift */

void ck_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

int64_t ck_atomic_load(const int64_t *cell) { return atomic_load((const _Atomic int64_t *)cell); }
void ck_atomic_store(int64_t *cell, int64_t value) { atomic_store((_Atomic int64_t *)cell, value); }
int64_t ck_atomic_fetch_add(int64_t *cell, int64_t delta) {
    return atomic_fetch_add((_Atomic int64_t *)cell, delta);
}
int ck_atomic_compare_exchange(int64_t *cell, int64_t expected, int64_t desired) {
    return atomic_compare_exchange_strong((_Atomic int64_t *)cell, &expected, desired);
}
