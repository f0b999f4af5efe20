/*
 * int8 weights, the portable half: the dynamic quantization of activation rows (the same
 * integers on every variant), the runtime checks of the dot-product extensions, and the
 * names the tools print. The kernels themselves are per variant: ref/q8_scalar.c,
 * x86/avx2/q8_avx2.c, x86/avx512/q8_avx512.c, arm/neon/q8_neon.c (contracts in
 * attend_kernels.h, "int8 weights").
 */
#include "ck_internal.h"
#include "attend_kernels_testing.h"

#include <float.h>
#include <stdlib.h>
#include <math.h>
#include <stdatomic.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

size_t ck_q8_row_stride(size_t k) { return (k + 63) / 64 * 64; }

void ck_q8_quantize_rows(size_t m, size_t k, const float *x, size_t ldx, uint8_t *q, size_t ldq,
                         float *scale, float *offset, size_t lds) {
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        uint8_t *qi = q + i * ldq;
        for (size_t p0 = 0, g = 0; p0 < k; p0 += 32, g++) {
            const size_t p1 = p0 + 32 < k ? p0 + 32 : k;
            float lo = row[p0], hi = row[p0];
            int finite = 1;
            /* Branch-free (vectorizable): a NaN compares false and leaves lo and hi alone; an
             * infinity may enter them, but then the group is not finite and they are unused. */
            for (size_t p = p0; p < p1; p++) {
                const float v = row[p];
                finite &= fabsf(v) <= FLT_MAX; /* 0 for Inf or NaN */
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            memset(qi + p0, 0, p1 - p0);
            if (!finite) {
                scale[i * lds + g] = offset[i * lds + g] = NAN;
                continue;
            }
            offset[i * lds + g] = lo;
            if (hi == lo) { /* constant: exact with q = 0 */
                scale[i * lds + g] = 0.0f;
                continue;
            }
            /* (hi - lo) / 255 in double (no overflow), rounded up to a float so that
             * 255 * s >= hi - lo and no q needs clamping; at least the smallest subnormal. */
            const double range = (double)hi - (double)lo;
            float s = (float)(range / 255.0);
            if ((double)s * 255.0 < range) s = nextafterf(s, INFINITY);
            if (s == 0.0f) s = 0x1p-149f;
            scale[i * lds + g] = s;
            /* t = (x - lo) / s is in [0, 255] (x >= lo; 255 s >= hi - lo), so adding and
             * subtracting 2^52 rounds it to the nearest integer, ties to even, exactly as rint
             * does in the default rounding mode, without a library call per element (the loop
             * vectorizes). */
            for (size_t p = p0; p < p1; p++) {
                double t = ((double)row[p] - (double)lo) / (double)s;
                t = (t + 0x1p52) - 0x1p52;
                t = t > 255.0 ? 255.0 : t < 0.0 ? 0.0 : t;
                qi[p] = (uint8_t)t;
            }
        }
        if (ldq > k) memset(qi + k, 0, ldq - k);
    }
}

void ck_q8_group_sums(const ck_q8_weight *w, float *gsum, size_t ldg) {
    for (size_t j = 0; j < w->n; j++) {
        const int8_t *q = w->q + j * w->ldq;
        for (size_t p0 = 0, g = 0; p0 < w->k; p0 += 32, g++) {
            const size_t p1 = p0 + 32 < w->k ? p0 + 32 : w->k;
            int32_t t = 0;
            for (size_t p = p0; p < p1; p++) t += q[p];
            gsum[j * ldg + g] = ck_q8_scale(w, j, w->group ? g : 0) * (float)t;
        }
    }
}

/* ---------------------------------------------------------------- blocked layout */

size_t ck_q8_blocked_stride(size_t k) { return 32 * ((k + 31) / 32); }

size_t ck_q8_blocked_offset(size_t k, size_t p) {
    const size_t G = (k + 31) / 32, g = p / 32, b = g / 16, l = g % 16;
    const size_t nb = G - 16 * b < 16 ? G - 16 * b : 16;
    return 512 * b + 4 * nb * ((p % 32) / 4) + 4 * l + p % 4;
}

void ck_q8_to_blocked(size_t m, size_t k, const void *src, size_t lds, void *dst, size_t ldd) {
    const size_t G = (k + 31) / 32;
    for (size_t i = 0; i < m; i++) {
        const uint8_t *s = (const uint8_t *)src + i * lds;
        uint8_t *d = (uint8_t *)dst + i * ldd;
        for (size_t b = 0; 16 * b < G; b++) {
            const size_t nb = G - 16 * b < 16 ? G - 16 * b : 16;
            for (size_t l = 0; l < nb; l++) {
                const size_t p0 = 32 * (16 * b + l);
                if (p0 + 32 <= k) { /* a whole group: eight dwords */
                    for (size_t st = 0; st < 8; st++) memcpy(d + 512 * b + 4 * nb * st + 4 * l, s + p0 + 4 * st, 4);
                    continue;
                }
                for (size_t st = 0; st < 8; st++)
                    for (size_t t = 0; t < 4; t++) {
                        const size_t p = p0 + 4 * st + t;
                        d[512 * b + 4 * nb * st + 4 * l + t] = p < k ? s[p] : 0;
                    }
            }
        }
    }
}

void ck_q8_blocked_portable(size_t m, const ck_q8_rows *a, const ck_q8_weight *w, const float *bias,
                            float *c, size_t ldc) {
    const size_t k = w->k, G = (k + 31) / 32;
    for (size_t i = 0; i < m; i++) {
        const uint8_t *ar = a->q + i * a->ldq;
        for (size_t j = 0; j < w->n; j++) {
            const int8_t *wr = w->q + j * w->ldq;
            float acc = 0.0f;
            for (size_t g = 0; g < G; g++) {
                int32_t dot = 0, sum = 0;
                for (size_t p = 32 * g; p < 32 * g + 32 && p < k; p++) {
                    const size_t at = ck_q8_blocked_offset(k, p);
                    dot += (int32_t)ar[at] * (int32_t)wr[at];
                    sum += wr[at];
                }
                const float sw = ck_q8_scale(w, j, w->group ? g : 0);
                const float F = sw * (float)sum;
                acc += sw * a->scale[i * a->lds + g] * (float)dot + a->offset[i * a->lds + g] * F;
            }
            c[i * ldc + j] = ck_q8_finish(acc, bias, j);
        }
    }
}

/* ---------------------------------------------------------------- CPU features */

static atomic_int ck_q8_features = -1; /* bit 0: AVX-512 VNNI, bit 1: AArch64 dot product */

static int ck_q8_detect(void) {
    int f = 0;
#if defined(__x86_64__) || defined(_M_X64)
    unsigned a, b, c, d;
    if (ck_variant_supported(CK_VARIANT_AVX512) && __get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if ((c >> 11) & 1) f |= 1; /* AVX512_VNNI */
    }
#elif defined(__aarch64__) && defined(__linux__)
    if (getauxval(AT_HWCAP) & (1ul << 20)) f |= 2; /* HWCAP_ASIMDDP */
#elif defined(__aarch64__) && defined(__APPLE__)
    int value = 0;
    size_t size = sizeof value;
    if (sysctlbyname("hw.optional.arm.FEAT_DotProd", &value, &size, NULL, 0) == 0 && value) f |= 2;
#endif
    return f;
}

static int ck_q8_feature_bits(void) {
    int f = atomic_load_explicit(&ck_q8_features, memory_order_relaxed);
    if (f < 0) {
        f = ck_q8_detect();
        atomic_store_explicit(&ck_q8_features, f, memory_order_relaxed);
    }
    return f;
}

int ck_q8_cpu_has_avx512_vnni(void) { return ck_q8_feature_bits() & 1; }

/* A prefetch distance in bytes: the environment variable `env` when set to 0 ... 16384
 * (rounded down to a multiple of 64), else `zen5` on AMD family 1Ah (Zen 5) and later, `zen3`
 * on Zen 3 (family 19h, models 00h-0Fh and 20h-5Fh; not Zen 4's 10h-1Fh, 60h-7Fh, A0h-AFh),
 * `zen1` on Zen and Zen+ (family 17h, models 00h-2Fh; not Zen 2's 30h and later), `xeon` on
 * Intel Xeon Sapphire Rapids and Emerald Rapids (family 6, models 8Fh and CFh; measured on
 * CFh, 8Fh has the same cores and mesh), else 0. */
static int ck_prefetch_detect(const char *env_name, int zen1, int zen3, int zen5, int xeon) {
    const char *env = getenv(env_name);
    if (env && *env) {
        char *end = NULL;
        const long v = strtol(env, &end, 10);
        if (end && *end == 0 && v >= 0 && v <= 16384) return (int)(v / 64 * 64);
    }
#if defined(__x86_64__) || defined(_M_X64)
    unsigned a, b, c, d;
    if (__get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u /* "AuthenticAMD" */ && __get_cpuid(1, &a, &b, &c, &d)) {
        const unsigned base = (a >> 8) & 0xf, family = base + (base == 0xf ? (a >> 20) & 0xff : 0);
        const unsigned model = ((a >> 4) & 0xf) | (base == 0xf ? ((a >> 16) & 0xf) << 4 : 0);
        if (family >= 0x1a) return zen5; /* Zen 5 and later */
        if (family == 0x19 && (model < 0x10 || (model >= 0x20 && model < 0x60))) return zen3;
        if (family == 0x17 && model < 0x30) return zen1;
    }
    if (__get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547u /* "GenuineIntel" */ && __get_cpuid(1, &a, &b, &c, &d)) {
        const unsigned base = (a >> 8) & 0xf;
        const unsigned model = ((a >> 4) & 0xf) | ((base == 0x6 || base == 0xf) ? ((a >> 16) & 0xf) << 4 : 0);
        if (base == 0x6 && (model == 0x8f || model == 0xcf)) return xeon; /* Sapphire / Emerald Rapids */
    }
#else
    (void)zen1;
    (void)zen3;
    (void)zen5;
    (void)xeon;
#endif
    return 0;
}

/* ck_prefetch_detect's answer, read once into `cell` (-1: not yet) and then cached. */
static int ck_prefetch_cached(atomic_int *cell, const char *env_name, int zen1, int zen3,
                              int zen5, int xeon) {
    int v = atomic_load_explicit(cell, memory_order_relaxed);
    if (v < 0) {
        v = ck_prefetch_detect(env_name, zen1, zen3, zen5, xeon);
        atomic_store_explicit(cell, v, memory_order_relaxed);
    }
    return v;
}

static atomic_int ck_q8_prefetch = -1, ck_w16_prefetch = -1, ck_f32_prefetch = -1;

int ck_q8_blocked_prefetch_bytes(void) {
    return ck_prefetch_cached(&ck_q8_prefetch, "ATTEND_Q8_PREFETCH", 0, 0, 2048, 2048);
}

/* (The 16-bit GEMV's distance lives here, beside the int8 one, for the shared detection.) */
int ck_w16_gemv_prefetch_bytes(void) {
    return ck_prefetch_cached(&ck_w16_prefetch, "ATTEND_W16_PREFETCH", 1024, 1024, 8192, 4096);
}

int ck_f32_gemv_prefetch_bytes(void) {
    return ck_prefetch_cached(&ck_f32_prefetch, "ATTEND_F32_PREFETCH", 0, 0, 0, 4096);
}

int ck_q8_cpu_has_dotprod(void) { return (ck_q8_feature_bits() >> 1) & 1; }

int ck_q8_prefers_blocked(const ck_kernels *k) {
#if defined(__x86_64__) || defined(_M_X64)
    return k && k->q8_gemv == ck_q8_gemv__avx512 && ck_q8_cpu_has_avx512_vnni();
#else
    (void)k;
    return 0;
#endif
}

const char *ck_q8_gemm_instructions(const ck_kernels *k) {
    if (!k) return "none";
    if (k->q8_gemm == ck_q8_gemm__scalar) return "scalar int32";
#if defined(__x86_64__) || defined(_M_X64)
    if (k->q8_gemm == ck_q8_gemm__avx512)
        return ck_q8_cpu_has_avx512_vnni() ? "vpdpbusd (AVX-512 VNNI)"
                                           : "vpmovsxbw + vpmaddwd (no AVX-512 VNNI)";
    if (k->q8_gemm == ck_q8_gemm__avx2) return "vpmovsxbw + vpmaddwd";
#endif
#if defined(__aarch64__)
    if (k->q8_gemm == ck_q8_gemm__neon)
        return ck_q8_cpu_has_dotprod() ? "sdot" : "smull + sadalp (no dot product)";
#endif
    return "unknown";
}

ck_q8_gemm_fn ck_q8_gemm_baseline(int variant) {
    if (!ck_variant_supported(variant)) return NULL;
    switch (variant) {
    case CK_VARIANT_SCALAR:
        return ck_q8_gemm__scalar;
#if defined(__x86_64__) || defined(_M_X64)
    case CK_VARIANT_AVX2:
    case CK_VARIANT_AVX512:
        return ck_q8_gemm__avx2;
#endif
#if defined(__aarch64__)
    case CK_VARIANT_NEON:
        return ck_q8_gemm_widening__neon;
#endif
    default:
        return NULL;
    }
}
