/*
 * The cache hierarchy, read once at run time, and the GEMM cache blocks derived from it
 * (contract in attend_kernels.h, "Cache hierarchy and GEMM blocking").
 *
 * Sources, first that answers: x86-64 cpuid's deterministic cache parameters (leaf 4 on
 * Intel, leaf 0x8000001D on AMD and Hygon with TOPOEXT), Linux sysfs
 * (/sys/devices/system/cpu/cpu0/cache/index<i>/), macOS sysctl (hw.perflevel0.* on CPUs with
 * performance levels, else hw.l1dcachesize / hw.l2cachesize / hw.l3cachesize). A level no
 * source reports stays zero, and the block it sizes keeps the variant's constant.
 */
#include "core/ck_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

/* Files the kernels may pick a level from: data and unified caches of levels 1 to 3. */
static void ck_cache_put(ck_cache_info *info, int level, int data_or_unified, ck_cache_level c) {
    if (!data_or_unified || c.size <= 0) return;
    ck_cache_level *slot = level == 1 ? &info->l1d : level == 2 ? &info->l2 : level == 3 ? &info->l3 : NULL;
    if (slot && slot->size == 0) *slot = c;
}

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

/* Leaf 4 (Intel) and 0x8000001D (AMD) share one layout: EAX type (0 = no more caches, 1 data,
 * 2 instruction, 3 unified), level in bits 7:5, logical CPUs sharing it - 1 in bits 25:14;
 * EBX ways - 1 (31:22), partitions - 1 (21:12), line - 1 (11:0); ECX sets - 1. */
static int ck_cache_from_cpuid(ck_cache_info *info) {
    unsigned a, b, c, d, leaf;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    const unsigned max_leaf = a;
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    if (strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0) {
        if (__get_cpuid_max(0x80000000u, NULL) < 0x8000001Du) return 0;
        __cpuid(0x80000001u, a, b, c, d);
        if (!((c >> 22) & 1)) return 0; /* no TOPOEXT: leaf 0x8000001D is not defined */
        leaf = 0x8000001Du;
    } else {
        if (max_leaf < 4) return 0;
        leaf = 4;
    }
    int found = 0;
    for (unsigned i = 0; i < 16; i++) {
        __cpuid_count(leaf, i, a, b, c, d);
        const unsigned type = a & 31;
        if (type == 0) break;
        const ck_cache_level lv = {
            .size = (int64_t)(((b >> 22) & 0x3ff) + 1) * (((b >> 12) & 0x3ff) + 1) *
                    ((b & 0xfff) + 1) * ((int64_t)c + 1),
            .ways = (a >> 9) & 1 ? 0 : (int)((b >> 22) & 0x3ff) + 1, /* 0: fully associative */
            .line = (int)(b & 0xfff) + 1,
            .sharing = (int)((a >> 14) & 0xfff) + 1,
        };
        ck_cache_put(info, (int)((a >> 5) & 7), type == 1 || type == 3, lv);
        found = 1;
    }
    return found;
}
#endif

#if defined(__linux__)
/* The first line of a small sysfs file, or 0 if it cannot be read. */
static int ck_read_line(const char *dir, const char *name, char *buf, size_t cap) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    const int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    return ok;
}

/* "32K", "1024K", "32M" or a plain byte count. */
static int64_t ck_parse_size(const char *s) {
    char *end;
    const long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0) return 0;
    if (*end == 'K' || *end == 'k') return (int64_t)v << 10;
    if (*end == 'M' || *end == 'm') return (int64_t)v << 20;
    if (*end == 'G' || *end == 'g') return (int64_t)v << 30;
    return (int64_t)v;
}

/* CPUs in a list such as "0-3,8,10-11". */
static int ck_count_cpus(const char *s) {
    int count = 0;
    while (*s) {
        char *end;
        const long lo = strtol(s, &end, 10);
        if (end == s) break;
        long hi = lo;
        s = end;
        if (*s == '-') {
            hi = strtol(s + 1, &end, 10);
            if (end == s + 1) break;
            s = end;
        }
        if (hi >= lo && hi - lo < 1 << 20) count += (int)(hi - lo + 1);
        if (*s != ',') break;
        s++;
    }
    return count;
}

static int ck_cache_from_sysfs(ck_cache_info *info) {
    int found = 0;
    for (int i = 0; i < 16; i++) {
        char dir[96], buf[256];
        snprintf(dir, sizeof dir, "/sys/devices/system/cpu/cpu0/cache/index%d", i);
        if (!ck_read_line(dir, "level", buf, sizeof buf)) break;
        const int level = atoi(buf);
        if (!ck_read_line(dir, "type", buf, sizeof buf)) continue;
        const int usable = strncmp(buf, "Data", 4) == 0 || strncmp(buf, "Unified", 7) == 0;
        ck_cache_level lv = {0};
        if (ck_read_line(dir, "size", buf, sizeof buf)) lv.size = ck_parse_size(buf);
        if (ck_read_line(dir, "ways_of_associativity", buf, sizeof buf)) lv.ways = atoi(buf);
        if (ck_read_line(dir, "coherency_line_size", buf, sizeof buf)) lv.line = atoi(buf);
        if (ck_read_line(dir, "shared_cpu_list", buf, sizeof buf)) lv.sharing = ck_count_cpus(buf);
        if (lv.size > 0) found = 1;
        ck_cache_put(info, level, usable, lv);
    }
    return found;
}
#endif

#if defined(__APPLE__)
static int64_t ck_sysctl_i64(const char *name) {
    int64_t v = 0;
    size_t size = sizeof v;
    if (sysctlbyname(name, &v, &size, NULL, 0) != 0) return 0;
    if (size == sizeof(int32_t)) {
        int32_t v32;
        memcpy(&v32, &v, sizeof v32);
        return v32;
    }
    return v;
}

/* Apple silicon reports the performance cores' caches under hw.perflevel0 (the threads run
 * there); older Macs have only the hw.* names. The OS reports no associativity. */
static int ck_cache_from_sysctl(ck_cache_info *info) {
    const int64_t line = ck_sysctl_i64("hw.cachelinesize");
    int64_t l1 = ck_sysctl_i64("hw.perflevel0.l1dcachesize");
    int64_t l2 = ck_sysctl_i64("hw.perflevel0.l2cachesize");
    int64_t l2_cpus = ck_sysctl_i64("hw.perflevel0.cpusperl2");
    int64_t l3 = ck_sysctl_i64("hw.perflevel0.l3cachesize");
    int64_t l3_cpus = ck_sysctl_i64("hw.perflevel0.cpusperl3");
    if (l1 <= 0) l1 = ck_sysctl_i64("hw.l1dcachesize");
    if (l2 <= 0) l2 = ck_sysctl_i64("hw.l2cachesize");
    if (l3 <= 0) l3 = ck_sysctl_i64("hw.l3cachesize");
    const ck_cache_level c1 = {.size = l1, .line = (int)line, .sharing = 1};
    const ck_cache_level c2 = {.size = l2, .line = (int)line, .sharing = (int)l2_cpus};
    const ck_cache_level c3 = {.size = l3, .line = (int)line, .sharing = (int)l3_cpus};
    ck_cache_put(info, 1, 1, c1);
    ck_cache_put(info, 2, 1, c2);
    ck_cache_put(info, 3, 1, c3);
    return l1 > 0 || l2 > 0 || l3 > 0;
}
#endif

static int ck_cache_read_sources(ck_cache_info *out) {
#if defined(__x86_64__) || defined(_M_X64)
    if (ck_cache_from_cpuid(out)) return CK_CACHE_FROM_CPUID;
    memset(out, 0, sizeof *out);
#endif
#if defined(__linux__)
    if (ck_cache_from_sysfs(out)) return CK_CACHE_FROM_SYSFS;
    memset(out, 0, sizeof *out);
#endif
#if defined(__APPLE__)
    if (ck_cache_from_sysctl(out)) return CK_CACHE_FROM_SYSCTL;
    memset(out, 0, sizeof *out);
#endif
    return CK_CACHE_FROM_NONE;
}

void ck_cache_info_read(ck_cache_info *out) {
    memset(out, 0, sizeof *out);
    out->source = ck_cache_read_sources(out);
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    out->cpus = online >= 1 && online < 1 << 20 ? (int)online : 0;
}

/* Read once: 0 not started, 1 being read, 2 ready. The hierarchy does not change while the
 * process runs (a migrated thread lands on a core of the same kind, or the answer is as good
 * as any). */
static ck_cache_info ck_caches;
static atomic_int ck_caches_state = 0;

const ck_cache_info *ck_cache_info_get(void) {
    if (atomic_load_explicit(&ck_caches_state, memory_order_acquire) == 2) return &ck_caches;
    int expected = 0;
    if (atomic_compare_exchange_strong(&ck_caches_state, &expected, 1)) {
        ck_cache_info_read(&ck_caches);
        atomic_store_explicit(&ck_caches_state, 2, memory_order_release);
    } else {
        while (atomic_load_explicit(&ck_caches_state, memory_order_acquire) != 2) ck_cpu_relax();
    }
    return &ck_caches;
}

/* ---------------------------------------------------------------- the blocking rule */

static int64_t ck_clamp64(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

ck_gemm_blocking ck_gemm_blocking_derive(const ck_gemm_blocking *fallback,
                                         const ck_cache_info *caches) {
    ck_gemm_blocking g = *fallback;
    const int64_t mr = g.mr, nr = g.nr, f = (int64_t)sizeof(float);
    if (!caches || mr <= 0 || nr <= 0) return g;
    /* kc and mc from this core's share of L2: kc as long as an A block of
     * CK_BLOCK_MC_MIN_TILES row tiles in half of it allows, up to CK_BLOCK_KC_MAX; mc then
     * as many rows as the whole share holds. */
    if (caches->l2.size > 0) {
        const int64_t l2 = caches->l2.size / (caches->l2.sharing > 1 ? caches->l2.sharing : 1);
        const int64_t kc = l2 / 2 / (CK_BLOCK_MC_MIN_TILES * mr * f) / 8 * 8;
        g.kc = (int)ck_clamp64(kc, CK_BLOCK_KC_MIN, CK_BLOCK_KC_MAX);
        const int64_t mc = l2 / ((int64_t)g.kc * f) / mr * mr;
        g.mc = (int)ck_clamp64(mc, mr, CK_BLOCK_MC_MAX / mr * mr);
    }
    const int64_t kc = g.kc;
    /* nc from L3: every thread packs its own kc x nc B block; the blocks of the CPUs that
     * share the L3 fill at most half of it. */
    if (caches->l3.size > 0) {
        int64_t sharers = caches->l3.sharing > 1 ? caches->l3.sharing : 1;
        if (caches->cpus >= 1 && caches->cpus < sharers) sharers = caches->cpus;
        const int64_t nc = caches->l3.size / 2 / sharers / (kc * f) / nr * nr;
        g.nc = (int)ck_clamp64(nc, (CK_BLOCK_NC_MIN + nr - 1) / nr * nr, CK_BLOCK_NC_MAX / nr * nr);
    }
    return g;
}
