/*
 * attend_kernels.h — the one contract between Attend's C kernels and its Swift layer.
 *
 * Rules every kernel here keeps (see shared DESIGN, "The C side"):
 *   - a kernel is a total function on pointers, sizes and row strides: it never allocates
 *     (workspace is passed in), never fails, never prints and is single-threaded;
 *   - all matrices are row-major float32 with an explicit row stride ("ld", in elements);
 *   - the caller (Swift) validates shapes, owns threads and splits the work.
 *
 * Variants: every kernel family has one implementation per variant. The dispatch table of a
 * variant starts as the portable scalar row (ref/) and each ISA overrides what it has, so no
 * slot is ever NULL.
 */
#ifndef ATTEND_KERNELS_H
#define ATTEND_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- variants & dispatch */

/** Instruction-set variants. The numeric values are stable (Swift mirrors them). */
typedef enum ck_variant {
    CK_VARIANT_SCALAR = 0, /* portable C, every CPU */
    CK_VARIANT_AVX2 = 1,   /* x86-64 AVX2 + FMA + F16C (OS must save YMM state) */
    CK_VARIANT_AVX512 = 2, /* x86-64 AVX-512 F/BW/DQ/VL (OS must save ZMM and opmask state) */
    CK_VARIANT_NEON = 3,   /* AArch64 Advanced SIMD */
    CK_VARIANT_COUNT = 4
} ck_variant;

/** "scalar", "avx2", "avx512", "neon"; NULL for an unknown value. */
const char *ck_variant_name(int variant);

/** Parses a variant name (as ck_variant_name prints it); -1 if unknown. */
int ck_variant_from_name(const char *name);

/** 1 if this CPU and OS can run the variant (cpuid + XCR0 checked on x86), else 0. */
int ck_variant_supported(int variant);

/** The fastest variant this CPU can run. Detected once, then cached. */
int ck_variant_best(void);

/**
 * The variant the process starts with: the one named by the environment variable
 * ATTEND_VARIANT when it is set, known and supported, otherwise ck_variant_best().
 * *env_status receives 0 (not set), 1 (honoured), -1 (unknown name), -2 (not supported here).
 */
int ck_variant_initial(int *env_status);

/** 1 if the C kernels were compiled with optimization (__OPTIMIZE__), else 0 (-O0 debug). */
int ck_build_optimized(void);

/* ---------------------------------------------------------------- SGEMM */

/**
 * Micro-kernel: C[0:MR, 0:NR] = alpha * (Apanel * Bpanel) + beta * C, a full MR x NR tile.
 *
 *   a:  packed A micro-panel, kc columns of MR floats:  a[p*MR + i] = op(A)[i][p]
 *   b:  packed B micro-panel, kc rows of NR floats:     b[p*NR + j] = op(B)[p][j]
 *       b is aligned to the variant's vector size (the driver's workspace guarantees it)
 *   c:  row-major tile, row stride ldc (any alignment)
 *   beta == 0 means C is written without being read (NaN/Inf in C do not propagate).
 *   kc may be 0 (then C = beta*C, or 0 when beta == 0).
 */
typedef void (*ck_f32_gemm_ukr_fn)(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                   float alpha, float beta);

/**
 * The fused attention's micro-kernel accumulating into a C scaled per column:
 * C[i][j] = C[i][j] * colscale[j] + (Apanel * Bpanel)[i][j], one rounding per element (a fused
 * multiply-add where the variant has one), a full attn_mr x attn_nr tile; a, b and c as for
 * ck_f32_gemm_ukr_fn, colscale attn_nr floats (any alignment). colscale[j] == 1 gives the
 * bits of the plain micro-kernel with alpha = beta = 1. C is read (NaN/Inf in C propagate).
 * Cost: as the micro-kernel, plus one multiply-add per element of C.
 */
typedef void (*ck_f32_attn_ukr_scaled_fn)(size_t kc, const float *a, const float *b, float *c,
                                          size_t ldc, const float *colscale);

/**
 * The same micro-kernel with A read in place from mr rows of a row-major matrix (row i at
 * a + i*lda, kc floats each) instead of a packed micro-panel: the packed-weight GEMM uses it
 * for full row tiles, so activations are not packed. b, c, alpha, beta as ck_f32_gemm_ukr_fn.
 */
typedef void (*ck_f32_gemm_ukr_rows_fn)(size_t kc, const float *a, size_t lda, const float *b,
                                        float *c, size_t ldc, float alpha, float beta);

/**
 * Block sizes of one variant. mr x nr is fixed per variant (register arithmetic beside its
 * definition); in the tables of ck_kernels_get, mc, kc and nc are derived at run time from
 * the caches (ck_gemm_blocking_derive), the ISA file's constants being the fallback.
 * mc is a multiple of mr, nc a multiple of nr.
 */
typedef struct ck_gemm_blocking {
    int mr, nr;     /* micro-tile: rows x columns of C held in registers */
    int mc, kc, nc; /* cache blocks: A block mc x kc (L2), B block kc x nc (L3) */
} ck_gemm_blocking;

/* ---------------------------------------------------------------- cache hierarchy, GEMM blocking */

/** One data (or unified) cache level. A field no source reports is 0. */
typedef struct ck_cache_level {
    int64_t size; /* bytes */
    int ways;     /* associativity (0: not reported, or fully associative) */
    int line;     /* line size in bytes */
    int sharing;  /* logical CPUs that share this cache */
} ck_cache_level;

/** Where ck_cache_info's sizes came from. The numeric values are stable (Swift mirrors them). */
typedef enum ck_cache_source {
    CK_CACHE_FROM_NONE = 0,   /* nothing answered: every block keeps the variant's constant */
    CK_CACHE_FROM_CPUID = 1,  /* x86-64 cpuid leaf 4 (Intel) or 0x8000001D (AMD, Hygon) */
    CK_CACHE_FROM_SYSFS = 2,  /* Linux /sys/devices/system/cpu/cpu0/cache/index<i>/ */
    CK_CACHE_FROM_SYSCTL = 3, /* macOS hw.perflevel0.* or hw.l1dcachesize, hw.l2cachesize, ... */
} ck_cache_source;

/** The cache hierarchy of the CPU, as ck_gemm_blocking_derive reads it. */
typedef struct ck_cache_info {
    ck_cache_level l1d, l2, l3; /* a level that does not exist or was not reported is all 0 */
    int cpus;                   /* logical CPUs online (0: unknown) */
    int source;                 /* ck_cache_source */
} ck_cache_info;

/**
 * Reads the cache hierarchy now: cpuid on x86-64, else sysfs on Linux, else sysctl on macOS
 * (the first source that reports a level wins; the others are not merged in). Cost: a few
 * cpuid instructions or small file reads.
 */
void ck_cache_info_read(ck_cache_info *out);

/** ck_cache_info_read's answer, read on first use and then cached (thread-safe). */
const ck_cache_info *ck_cache_info_get(void);

/**
 * The GEMM blocking for fallback's micro-tile (mr, nr) on the given caches; a block whose
 * cache is not reported (size 0) keeps fallback's value. Pure. The rule (float32, f = 4
 * bytes, L2 and L3 divided among the CPUs that share them; each result rounded down to the
 * stated multiple and clamped to the CK_BLOCK_* bounds):
 *   kc = (L2 / 2) / (CK_BLOCK_MC_MIN_TILES * mr * f), a multiple of 8, at most
 *        CK_BLOCK_KC_MAX: as deep as half of L2 allows while an A block of at least
 *        CK_BLOCK_MC_MIN_TILES row tiles fits there. The C tile is read and written once per
 *        kc block, so depth pays; both micro-panels (mr x kc of A, kc x nr of B) stream from
 *        L2, whose bandwidth covers the micro-kernel's (mr + nr) * f bytes per k step.
 *        (BLIS's analytical rule instead keeps the B micro-panel and an A micro-panel in L1:
 *        kc = 146 for 14 x 32 on a 32 KiB 8-way L1d, measured 5-9% slower than 256, and 256
 *        10-15% slower than 1024 on Zen 4.)
 *   mc = L2 / (kc * f), a multiple of mr: the A block is as large as L2 (measured on Zen 4,
 *        1 MiB L2, kc = 1024, thread CPU time: mc = 252 took 1-2% less time than 126 on
 *        square products of 1024-4096, the same at 512; each B micro-panel, the operand
 *        read at twice A's rate, then serves twice as many row tiles once loaded)
 *   nc = (L3 / 2 / min(l3.sharing, cpus)) / (kc * f), a multiple of nr, at least
 *        CK_BLOCK_NC_MIN: the B blocks that every thread sharing the L3 packs for itself fill
 *        at most half of it
 * The kernel tables returned by ck_kernels_get carry the blocking derived from
 * ck_cache_info_get() with the variant's constants as fallback.
 */
ck_gemm_blocking ck_gemm_blocking_derive(const ck_gemm_blocking *fallback,
                                         const ck_cache_info *caches);

/** Bounds of ck_gemm_blocking_derive's blocks (kc in floats, mc in rows, nc in columns). */
#define CK_BLOCK_MC_MIN_TILES 8
#define CK_BLOCK_KC_MIN 64
#define CK_BLOCK_KC_MAX 1024
#define CK_BLOCK_MC_MAX 4096
#define CK_BLOCK_NC_MIN 512
#define CK_BLOCK_NC_MAX 16384

/**
 * The compile-time blocking of a variant (the constants in its ISA file), used for every
 * block the caches do not size. 1 and *out filled if the variant is compiled for this
 * architecture, else 0.
 */
int ck_gemm_blocking_constants(int variant, ck_gemm_blocking *out);

/**
 * Peak-FMA probe: runs `iters` iterations of a register-only loop of independent vector FMAs
 * and returns the number of floating-point operations performed (2 per lane per FMA).
 * Timed by the caller to measure this machine's single-core FMA peak for the variant.
 */
typedef double (*ck_fma_peak_fn)(size_t iters);

/* ---------------------------------------------------------------- vector math, softmax */

/**
 * y[i] = exp(x[i]) for i < n (x == y allowed). Vectorized: range reduction x = k*ln2 + r,
 * |r| <= ln2/2, a degree-6 minimax polynomial for exp(r) and an exact two-step scaling by 2^k,
 * so subnormal results are rounded once (AVX-512 and AVX2: x = (q + j/16) ln2 + r, resp.
 * j/8, a table of 2^(j/16) resp. 2^(j/8) and a cubic resp. quartic for exp(r), AVX-512
 * scaling by vscalefps). Accuracy: at most 2 ulp from the correctly rounded
 * result over the whole float range (tests check it against double-precision exp);
 * exp(-inf) = 0, exp(+inf) = +inf, x >= 88.72284 (above ln FLT_MAX) gives +inf (the floats just
 * below it have finite results, within 1 ulp), x < -103.98 gives 0, NaN gives NaN. Subnormal
 * results assume the CPU does not flush denormals to zero (the default on Linux and macOS).
 */
typedef void (*ck_f32_exp_fn)(size_t n, const float *x, float *y);

/**
 * Row softmax: for each of `rows` rows, y = softmax(x * scale + mask), max-subtracted.
 *   x[r*ldx + j], y[r*ldy + j] for j < n (x == y allowed with ldx == ldy);
 *   mask: NULL, or an additive row mask[r*ldmask + j] (ldmask 0: one mask for every row).
 * Rules: a row whose every term is -inf gives zeros (never NaN); a NaN term makes its row
 * NaN; huge inputs (1e30) do not overflow (the max is subtracted first).
 * Cost: 2 passes over the row, one exp per term: pass 1 reads x once, in blocks of at least
 * 64 vectors (at most 64 blocks), keeping a running max and a running sum rescaled by
 * exp(old max - new max) when a block raises the max, and writes exp(t - running max) to y;
 * pass 2 scales each block of y by exp(block's max - row max) / sum (in L1/L2 for rows <= 8K).
 * The max pass prefetches x 8 KiB ahead (never past the last row's end).
 * Accuracy: each y_j within about 16 u + (n - 1) u (the sum's worst case) + 5 u per rescale of
 * the sum, plus u |t_j - max| from the arguments (u = 2^-24).
 */
typedef void (*ck_f32_softmax_rows_fn)(size_t rows, size_t n, const float *x, size_t ldx, float *y,
                                       size_t ldy, float scale, const float *mask, size_t ldmask);


/**
 * Matrix-vector product against a row-major weight (a PyTorch Linear weight [n, k]):
 *   y[j] = alpha * sum_p x[p] * w[j*ldw + p] + beta * y[j],  j < n   (beta == 0: y not read)
 * The decode path (one token at a time), where packing the weight for a GEMM would cost more
 * than the product: memory-bound, one pass over w. Rows of at most 8192 floats are read one
 * at a time (one sequential stream the prefetcher follows), longer rows four at a time
 * (each load of x shared by four rows); each y[j] is one dot product in a fixed order either
 * way: vector lanes in order, then the lanes summed as a halving tree (a few shuffles; an
 * in-order chain of lane adds per output held short rows to about half their streaming rate).
 */
typedef void (*ck_f32_gemv_fn)(size_t n, size_t k, float alpha, const float *x, const float *w,
                               size_t ldw, float beta, float *y);

/**
 * ck_f32_gemv for `rows` rows of x (any count; meant for 1 to 8: beams, a small batch):
 *   y_r[j] = alpha * sum_p x_r[p] * w[j*ldw + p] + beta * y_r[j],  j < n, r < rows
 * with x_r at x + r*ldx, y_r at y + r*ldy (beta == 0: y not read; y must not alias x or w).
 * Every y_r is bit for bit ck_f32_gemv(n, k, alpha, x_r, w, ldw, beta, y_r): the same sums in
 * the same order. Rows go in groups of as many as the vector registers hold (2 on scalar and
 * AVX2, 4 on AVX-512 and NEON), each group sharing every load of w; a weight row of at most
 * 1024 floats is read from memory by the first group and from L1 by the others.
 * Cost: 2 * rows * n * k flops, one pass over the weight from memory.
 */
typedef void (*ck_f32_gemv_rows_fn)(size_t rows, size_t n, size_t k, float alpha, const float *x,
                                    size_t ldx, const float *w, size_t ldw, float beta, float *y,
                                    size_t ldy);

/**
 * Transposed matrix-vector product, a weighted sum of rows:
 *   y[d] = alpha * sum_{j < k} x[j] * w[j*ldw + d] + beta * y[d],  d < n   (beta == 0: y not read)
 * The value step of few-query attention (o = sum_j p_j v_j over a cache read in place).
 * Rows are summed in order j = 0, 1, ... per output column; vectors run across columns.
 * Cost: 2 * n * k flops, one pass over the k rows of n floats.
 */
typedef void (*ck_f32_gemv_t_fn)(size_t n, size_t k, float alpha, const float *x, const float *w,
                                 size_t ldw, float beta, float *y);

/**
 * Element-wise activation y[i] = f(x[i]), i < n (x == y allowed). `kind` selects f:
 *   CK_ACT_RELU       max(x, 0)
 *   CK_ACT_GELU       x/2 * (1 + erf(x/sqrt 2)), the exact GELU (PyTorch's default), computed
 *                     through erfc on the side where it does not cancel: relative error
 *                     about 1e-6 for |x| <= 3 (erfc as t Q(t) exp(-z^2), Q a fitted
 *                     polynomial, 6.4e-8, times this library's exp), growing like x^2 * 6e-8 in the
 *                     negative tail (5.6e-6 at x = -8, 1.5e-5 at -12.8, where y ~ 1e-33);
 *                     below x = -13.19 (|y| < 2^-126) y is 0, except on AVX-512 (rounded)
 *   CK_ACT_GELU_TANH  x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *   CK_ACT_SILU       x * sigmoid(x) (swish)
 * Cost: one pass, one exp per element for the last three. (CK_ACT_NONE is only an epilogue
 * value, "no activation"; this kernel is never called with it.)
 */
enum { CK_ACT_NONE = -1, CK_ACT_RELU = 0, CK_ACT_GELU = 1, CK_ACT_GELU_TANH = 2, CK_ACT_SILU = 3 };
typedef void (*ck_f32_activation_fn)(int kind, size_t n, const float *x, float *y);

/**
 * Normalization of rows, fused with the residual add before it:
 *   t = x[r] + residual[r] (residual may be NULL)
 *   layer norm (rms == 0): y = (t - mean(t)) / sqrt(var(t) + eps) * gamma + beta
 *   RMS norm   (rms != 0): y = t / sqrt(mean(t^2) + eps) * gamma        (T5; beta ignored)
 * gamma, beta: n floats (beta may be NULL). Mean and variance in two passes over the row
 * (the second over t - mean, as PyTorch computes them), in float with vector lanes.
 * Strides in floats; y may alias x or residual (same stride). Cost: 3 passes over the row.
 */
typedef void (*ck_f32_norm_rows_fn)(int rms, size_t rows, size_t n, const float *x, size_t ldx,
                                    const float *residual, size_t ldr, const float *gamma,
                                    const float *beta, float eps, float *y, size_t ldy);

/* ---------------------------------------------------------------- fused attention */

/**
 * Dropout on the attention probabilities (training), recomputable without storing a mask:
 * probability (i, j) of a head is zeroed when the top 24 bits of
 *
 *   ck_dropout_hash(seed, counter0 + i * seq_k + j)     (i, j: the head's query and key)
 *
 * are below `threshold` (= floor(p * 2^24)), and otherwise scaled by keep_scale (1 / (1 - p)).
 * The hash is SplitMix64's output at stream position counter + 1 from state seed, so the
 * forward's tile loop and the backward's recomputation (and any other implementation, such as
 * Attend's Swift oracle) draw the same mask bit for bit, on every variant. A caller numbers
 * the heads of a problem so their counters never overlap, e.g. counter0 = (b * heads + h) *
 * seq_q * seq_k. The softmax's sum (and the saved lse) is over the probabilities before
 * dropout, as torch.nn.functional.dropout(softmax(s)) computes them.
 */
typedef struct ck_attention_dropout {
    uint64_t seed;
    uint64_t counter0;
    uint32_t threshold;
    float keep_scale;
} ck_attention_dropout;

/** SplitMix64 at position counter + 1 from state seed (see ck_attention_dropout). */
static inline uint64_t ck_dropout_hash(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/** The factor of probability (i, j): 0 (dropped) or keep_scale. */
static inline float ck_dropout_factor(const ck_attention_dropout *d, size_t seq_k, size_t i,
                                      size_t j) {
    const uint64_t z = ck_dropout_hash(d->seed, d->counter0 + (uint64_t)i * seq_k + j);
    return (uint32_t)(z >> 40) < d->threshold ? 0.0f : d->keep_scale;
}

/**
 * One attention head, as the fused kernel sees it. For queries i < seq_q and keys j < seq_k:
 *
 *   s(i, j) = scale * dot(q_i, k_j) + key_bias[j] + rel_bias[(i - j) + rel_bias_zero]
 *             (-inf when causal and j > i + causal_offset, and -inf when window > 0 and
 *              (i + causal_offset) - j >= window)
 *   o_i     = sum_j softmax_j(s(i, .)) v_j          (o_i = 0 when every s(i, j) is -inf)
 *
 *   q:   query i at q + i*ldq, head_dim floats.   o: output i at o + i*ldo, head_dim floats.
 *   packed_kv: this head's keys and values, packed once by ck_f32_attention_pack_kv.
 *   key_bias: NULL or seq_k additive values (key padding: -inf for padded keys).
 *   rel_bias: NULL or a table indexed by (query - key) + rel_bias_zero, a function of the
 *     relative position only (T5 buckets looked up per head, ALiBi slope * distance, ...);
 *     it must hold ck_f32_attention_rel_bias_length(k, seq_q, seq_k) floats with
 *     rel_bias_zero = seq_k - 1 (entries past seq_q - 1 only feed padded query lanes).
 *   causal: key j is visible to query i iff j <= i + causal_offset (a query block that starts
 *     at cache position p against a cache of p + seq_q keys has causal_offset = p).
 *   Shaw et al. relative positions (shaw_clip > 0): with c(i, j) = clamp(j - (i +
 *     causal_offset), -shaw_clip, shaw_clip) + shaw_clip and W = 2*shaw_clip + 1,
 *       s(i, j) += shaw_qk[i*W + c(i, j)]       (the caller's q_i . a^K_c, already scaled)
 *       o_i     += sum_j softmax_j(s(i, .)) * shaw_v[c(i, j) * head_dim ...]   (a^V, W x head_dim)
 *     so the S x S relative embeddings are never formed: O(seq_q * W) extra memory.
 *   dropout: NULL, or dropout on the probabilities (see ck_attention_dropout; no Shaw terms):
 *     o_i = sum_j softmax_j(s(i, .)) * factor(i, j) v_j.
 *   window: 0, or a sliding window (Mistral's sliding_window): query i sees key j only if
 *     (i + causal_offset) - j < window, i.e. the `window` most recent positions up to its own
 *     (with causal). Key blocks left of every query's window are skipped like the causal
 *     ones, so a causal windowed head costs O(seq_q * (window + query block)), not O(seq_q *
 *     seq_k). (The attention backward has no window.)
 */
typedef struct ck_attention_head {
    size_t seq_q, seq_k, head_dim;
    const float *q;
    size_t ldq;
    const float *packed_kv;
    float *o;
    size_t ldo;
    float scale;
    int causal;
    ptrdiff_t causal_offset;
    const float *key_bias;
    const float *rel_bias;
    ptrdiff_t rel_bias_zero;
    size_t shaw_clip;
    const float *shaw_qk;
    const float *shaw_v;
    const ck_attention_dropout *dropout;
    size_t window;
} ck_attention_head;

/**
 * Online-softmax step of the fused attention over one key block, for one panel of attn_nr
 * queries (vectors run across queries). s holds the block's scores transposed, `rows` keys x
 * attn_nr queries (row stride attn_nr); rows >= valid_rows are padding. On return s holds
 * p = exp(s - m_new) (0 where masked), and m, l (running max and sum per query) and corr
 * (the factor exp(m_old - m_new) by which the caller rescales the output) are updated.
 * `key0`, `query0`: the indices of the block's first key and the panel's first query.
 */
typedef void (*ck_f32_attn_softmax_step_fn)(size_t rows, size_t valid_rows, float *s, float *m,
                                            float *l, float *corr, size_t key0, size_t query0,
                                            const ck_attention_head *head);

/* ---------------------------------------------------------------- 16-bit weights */

/**
 * Weights kept as stored: a matrix of IEEE binary16 (F16) or bfloat16 (BF16) values, read by
 * the kernels below and widened to float32 in registers (never copied to a float32 matrix).
 * The values mirror Swift's; `dtype` arguments take one of them.
 *
 * Widening is exact (every F16 and BF16 value, subnormals, signed zeros, infinities and NaN
 * payloads included, is a float32 value; F16 NaNs come out quiet): a product over a 16-bit
 * weight is the float32 product over the widened weight, with the same error bound.
 *   F16:  AVX2 and AVX-512 vcvtph2ps (F16C), NEON fcvtl, scalar bit arithmetic.
 *   BF16: the 16 bits shifted into the top half of a float32 (zero-extend, shift by 16), on
 *         every variant. (AVX-512 BF16's vdpbf16ps is not used: it would round the
 *         activations to bfloat16 too, which a float32 product does not.)
 */
enum { CK_W16_F16 = 0, CK_W16_BF16 = 1 };

/** dst[i] = widen(src[i]) for i < n (any alignment; src and dst must not overlap). */
typedef void (*ck_w16_widen_fn)(int dtype, size_t n, const uint16_t *src, float *dst);

/**
 * Matrix-vector product of `rows` (any count; meant for 1 to 8: beams, a small batch)
 * activation rows against a 16-bit row-major weight [n, k] (a PyTorch Linear weight as stored
 * in an F16 or BF16 checkpoint):
 *   y_r[j] = alpha * sum_p x_r[p] * widen(w[j*ldw + p]) + beta * y_r[j],  j < n, r < rows
 * with x_r at x + r*ldx, y_r at y + r*ldy (beta == 0: y not read; y must not alias x or w).
 * Rows of at most 16 KiB (k <= 8192) are read one at a time with four vector accumulators,
 * longer rows four at a time with one each, each y_r[j] one in-order dot product: for
 * every k the very sums ck_f32_gemv computes on the widened weight (bit for bit its result on
 * a float32 copy of w; it switches from one row to four at the same k), and every row
 * gets its one-row bits whatever `rows`. Rows go in groups of as many as the vector registers
 * hold (2 on scalar and AVX2, 4 on AVX-512 and NEON), each group sharing every load and
 * widening of w; a short weight row is read from memory by the first group, from L1 by the
 * others. Cost: 2 * rows * n * k flops, one pass over n * k * 2 bytes of weight (half of
 * float32's) from memory.
 */
typedef void (*ck_w16_gemv_fn)(int dtype, size_t rows, size_t n, size_t k, float alpha,
                               const float *x, size_t ldx, const uint16_t *w, size_t ldw,
                               float beta, float *y, size_t ldy);
/* ---------------------------------------------------------------- int8 weights */

struct ck_kernels; /* below */

/**
 * An int8 weight of a PyTorch Linear ([n, k], row-major), symmetric (no zero point):
 *
 *   w(j, p) = scale(j, p) * q[j*ldq + p],    q in [-127, 127] (never -128), j < n, p < k
 *   group == 0:   scale(j, p) = s[j]                  one scale per output channel
 *   group == 32:  scale(j, p) = s[j*lds + p / 32]     one per 32 consecutive inputs
 *                 (lds >= ceil(k / 32); the last group of a row may be shorter)
 *   scales: float32 (scales_f16 == 0) or IEEE binary16 bit patterns (scales_f16 != 0), finite;
 *   binary16 scales are widened exactly, so w(j, p) is the same real number on every variant.
 *   gsum[j*ldg + g]: the weight's sums over the groups of 32 inputs the activations are
 *   quantized in (whatever the scheme), as ck_q8_group_sums computes them once per weight:
 *   F(j, g) = fl(scale(j, 32g) * sum_{p in [32g, min(k, 32g + 32))} q[j*ldq + p]) (one
 *   rounding: the integer sum is exact), ldg >= ceil(k / 32).
 *   k <= CK_Q8_MAX_K (the load-time limit; the integer sums are per group of 32, < 2^24).
 * The caller (Swift) checks the weight once at load (no -128, finite scales). A row range
 * [j0, j1) is a weight too: q + j0*ldq, the scales and sums of row j0, n = j1 - j0.
 * Memory beside the n * k bytes: the scales and 4 * n * ceil(k / 32) bytes of sums (1/8 of
 * the int8 values).
 */
#define CK_Q8_MAX_K ((size_t)131072)
typedef struct ck_q8_weight {
    size_t n, k;
    const int8_t *q;
    size_t ldq;        /* bytes between rows of q, >= k */
    const void *scales;
    size_t lds;        /* scales between rows (group 32); ignored for group 0 */
    int group;         /* 0 (per channel) or 32 */
    int scales_f16;    /* 0: float scales, else binary16 */
    const float *gsum; /* n x ceil(k / 32) group sums F(j, g), row stride ldg (not read when blocked) */
    size_t ldg;
    int blocked;       /* 0: rows as above; else the blocked layout (below), rows too */
} ck_q8_weight;

/**
 * The blocked layout of int8 rows (weights, and the activation rows multiplied with them):
 * each row's G = ceil(k / 32) groups of 32 inputs (the last zero-padded to 32) taken 16 at a
 * time; block b holds groups 16b ... 16b + nb - 1 (nb = min(16, G - 16b)) in the 32 nb bytes
 * from 512 b, as 8 steps of nb dwords: input p = 32 (16b + l) + 4s + t (l < nb, s < 8,
 * t < 4) at byte 512 b + 4 nb s + 4 l + t. One 64-byte step then holds dword s of 16 groups,
 * lane l of a vpdpbusd being group l's: a kernel sums a group's integer products over its
 * block's 8 steps in one int32 lane (at most 32 * 255 * 127 < 2^24) and scales it once per
 * block, instead of converting and scaling every step. Row stride (ldq) >= 32 G. With
 * blocked != 0 the weight's q and the rows' q (ck_q8_rows) are both in this layout, and
 * gsum is not read (the kernels form F from the bytes). Every variant takes it (those
 * without a blocked kernel through a portable loop, far slower); ck_q8_prefers_blocked
 * says which run it fast.
 */
size_t ck_q8_blocked_stride(size_t k);

/** The byte of a blocked row holding input p of a row of k inputs (p < k). O(1). */
size_t ck_q8_blocked_offset(size_t k, size_t p);

/** Rows r < m of k bytes (src, row stride lds >= k) into the blocked layout (dst, row stride
 * ldd >= ck_q8_blocked_stride(k); the inputs past k of the last group zero, bytes past
 * ck_q8_blocked_stride(k) untouched); int8 or uint8 alike. Cost: one pass. */
void ck_q8_to_blocked(size_t m, size_t k, const void *src, size_t lds, void *dst, size_t ldd);

/** Bytes ahead of the current step the AVX-512 VNNI blocked kernels prefetch each weight row
 * (0: no software prefetch, the hardware prefetcher alone; scales per 32 inputs are
 * prefetched a quarter of that ahead): ATTEND_Q8_PREFETCH when set to 0 ... 16384
 * (rounded down to a multiple of 64), else 2048 on AMD family 1Ah (Zen 5) and later and on
 * Intel Xeon Sapphire / Emerald Rapids (family 6, models 8Fh and CFh), else 0. Measured on Zen 5, one thread, over a t5-small-shaped decoding step's int8-group32 weights
 * (37 products, 38 MB, larger than L3; medians of 5, three interleaved rounds): none
 * 0.91-1.10 ms, weights 2 KiB ahead 0.85-0.88, weights 2 KiB and scales 512 B ahead
 * 0.81-0.85; the bench's t5-small decode (1 thread, two interleaved runs) int8-group32
 * 2.64-3.02 ms/token without, 1.67-1.81 with both; per channel 1.25-1.53 without and
 * 1.46-1.65 with in such runs, but 2.32-2.44 without in a build whose code differed only in
 * how the (untaken) prefetch was compiled out, and 1.36-1.65 with in every build. On Zen 4 a weight prefetch cost 20-30% over repeated weights of one shape (the
 * decoding sequence not measured there). On Emerald Rapids (Xeon, family 6 model CFh, 2 vCPUs;
 * `bench --only gemv --threads 2` from memory, 0 / 2 / 4 KiB alternated, 2 rounds) the int8
 * rows read at 89-107% of the probed bandwidth without, 103-128% with 2 KiB, 101-139% with 4
 * KiB. Read once, then cached. */
int ck_q8_blocked_prefetch_bytes(void);

/** Bytes ahead ck_w16_gemv prefetches a 16-bit weight's rows of up to 8192 values in
 * software (0: none, the hardware prefetcher alone): ATTEND_W16_PREFETCH when set to 0 ...
 * 16384 (rounded down to a multiple of 64), else 8192 on AMD family 1Ah (Zen 5) and later,
 * 4096 on Intel Xeon Sapphire / Emerald Rapids (family 6, models 8Fh and CFh), 1024 on Zen 3
 * and on Zen / Zen+ (family 17h, models below 30h), else 0. Measured on Zen 5, one thread, over the BF16 weights of one decoding
 * step (best of 7): t5-small's shape 38.7-39.0 GB/s without, 47.1-49.1 with 8 KiB (4 KiB:
 * 42-44); GPT-2 small's 36.4-37.3 vs 40.9-41.7; TinyLlama's 36.0 (3 layers) vs 39.3-39.6. A
 * float32 weight's stream gained nothing (t5-small 45 GB/s either way, TinyLlama 38-42
 * without, 34-37 with 2 KiB), so ck_f32_gemv does not prefetch there. On Zen 3 (EPYC 7xx3, 1 and 2
 * threads, `bench --only gemv` from memory, BF16 and F16, runs alternated): 1 KiB ahead read
 * at 88-112% of the probed bandwidth against 78-103% without (t5-small FFN 2048 x 512 BF16, 1
 * thread, 1.75-1.88x float32's speed against 1.63-1.67x; TinyLlama's 5632 x 2048 1.83-1.98x
 * against 1.67-1.72x; `bench --only seq2seq` t5-small BF16 decode, 1 thread, 1.69-1.77x
 * float32 against 1.52-1.61x, 2 threads unchanged at 1.65-1.79x); 2 KiB was mixed and 4 KiB
 * worse than none (the 2-8 KiB distances tried earlier on Zen 3 lowered 2048-wide rows). On
 * Zen 1 (EPYC 7xx1, family 17h model 01h; `bench --only seq2seq,lm`, 0 and 1 KiB alternated,
 * 3 rounds): t5-small BF16 decode 1.57-1.60x float32's speed -> 1.89-1.99x on 1 thread,
 * 1.58-1.70x -> 1.82-1.88x on 2; GPT-2 small's 1.68-1.70x -> 1.84-2.20x on 1 thread; `bench
 * --only gemv`, 2 and 4 KiB read like 1 KiB. A float32 weight's stream: no difference at 1 or
 * 2 KiB on Zen 1 either. On Emerald Rapids (Xeon, family 6 model CFh, 2 vCPUs, one thread,
 * BF16 and float32 weights of one shape alternated over 100 copies): 3072 x 768 BF16 read at
 * 0.63-0.64 of float32's bytes per second without, 0.83 with 1 KiB, 0.87-0.97 with 2, 0.91-1.00
 * with 4 and 8; 2048 x 5632 0.64-0.65 without, 0.93-1.03 with 4 KiB; `bench --only gemv
 * --threads 2` from memory (0 and 4 KiB for both kinds alternated, 2 rounds): F16 / BF16
 * 1.26-1.59x float32's speed -> 1.51-2.11x (most 1.8-1.9x). On Zen 4 (EPYC 9xx4, family 19h
 * model 11h, 2 vCPUs; `bench --only gemv --threads 2` from memory, all three distances set
 * alike to 0, 1, 2, 4 and 8 KiB in turn, 3 rounds) 29 of the 30 shape x threads x format rows
 * read the most bytes per second without prefetch, 16-bit, float32 and int8 alike (BF16
 * TinyLlama FFN, 1 thread: 19.6 GB/s without, 11.0-13.8 with), so Zen 4 keeps 0 for all three.
 * Not measured on Zen 2.
 * Read once, then cached. */
int ck_w16_gemv_prefetch_bytes(void);

/** Bytes ahead ck_f32_gemv / ck_f32_gemv_rows prefetch a float32 weight's rows of up to 8192
 * values in software (0: none, the hardware prefetcher alone): ATTEND_F32_PREFETCH when set to
 * 0 ... 16384 (rounded down to a multiple of 64), else 4096 on Intel Xeon Sapphire / Emerald
 * Rapids (family 6, models 8Fh and CFh), else 0 (the AMD cores measured gained nothing: see
 * ck_w16_gemv_prefetch_bytes). On Emerald Rapids (model CFh, 2 vCPUs; `bench --only gemv
 * --threads 2` from memory, 0 and 4 KiB alternated, 2 rounds) float32 rows read at 101-115% of
 * the probed bandwidth without, 117-134% with 4 KiB; one thread over 100 copies of a 3072 x
 * 768 weight, 4 KiB read 1.14-1.21x the bytes per second of none, 2048 x 5632 1.06-1.12x (8
 * KiB about the same). Read once, then cached. */
int ck_f32_gemv_prefetch_bytes(void);

/** 1 when this table's q8_gemv and q8_gemm have kernels on the blocked layout on this CPU
 * (AVX-512 VNNI), 0 when they take it only through the portable loop. */
int ck_q8_prefers_blocked(const struct ck_kernels *k);

/** F(j, g) of every row and group of w (the ck_q8_weight contract; row-major, w->blocked == 0)
 * into gsum (row stride ldg >= ceil(k / 32)); w->gsum is not read. Cost: one pass over the
 * n * k bytes. */
void ck_q8_group_sums(const ck_q8_weight *w, float *gsum, size_t ldg);

/**
 * Rows of activations quantized per group of 32 inputs, asymmetric (ck_q8_quantize_rows):
 *
 *   x^(i, p) = scale[i*lds + g] * q[i*ldq + p] + offset[i*lds + g],   q in [0, 255], g = p / 32
 *
 * ldq >= ck_q8_row_stride(k) with q = 0 for k <= p < ldq (the kernels read whole vectors);
 * lds >= ceil(k / 32).
 */
typedef struct ck_q8_rows {
    const uint8_t *q;
    size_t ldq;
    const float *scale, *offset;
    size_t lds;
} ck_q8_rows;

/**
 * Dynamic quantization of activation rows (ONNX Runtime's DynamicQuantizeLinear, uint8 with
 * the group's minimum as the offset, per 32 inputs of a row): for each row i < m and group g
 * of inputs [32g, min(k, 32g + 32)), with lo and hi the group's minimum and maximum,
 *
 *   offset = lo,   scale = (hi - lo) / 255 rounded up to a float (at least 2^-149 when hi > lo),
 *   q(p)   = round((x_ip - lo) / scale) in [0, 255]   (in double, to nearest even)
 *
 * A constant group (all-zero included) has scale 0, q = 0 and is exact; a group holding Inf
 * or NaN gets scale = offset = NaN (its row's products are NaN). Each element is off by
 *
 *   |x_ip - x^_ip| <= 0.50001 * scale     (half a step plus the double division's rounding)
 *
 * Asymmetric uint8 spends all 256 levels on [lo, hi]: half the step of symmetric int8 on a
 * one-sided group (GELU outputs, the FFN's second product), and a group far from zero keeps
 * its full resolution. One scale per row (ONNX Runtime's choice) lets one outlier feature, as
 * transformer hidden states have, coarsen the whole row: measured on all-MiniLM-L6-v2 it cost
 * the embeddings up to 0.02 of cosine, per 32 inputs under 0.001. Portable C (the same
 * integers on every variant). Cost: two passes over x.
 */
void ck_q8_quantize_rows(size_t m, size_t k, const float *x, size_t ldx, uint8_t *q, size_t ldq,
                         float *scale, float *offset, size_t lds);

/**
 * int8-weight product on rows quantized by ck_q8_quantize_rows (a), for decoding (q8_gemv:
 * one or two rows per pass over the weight) and for batches (q8_gemm: tiles of up to four
 * rows); the same contract, bound and cost:
 *
 *   c[i*ldc + j] = sum_g sw(j, g) sa(i, g) I_g(i, j) + sum_g o(i, g) F(j, g) + (bias ? bias[j] : 0)
 *   I_g(i, j)    = sum_{p in group g of 32} a.q[i*ldq + p] * q[j*ldq + p]     (exact, int32)
 *
 * (sw(j, g): the weight's scale of row j for those inputs, per channel or per group; sa, o:
 * the rows' scale and offset; F: the weight's group sums). This is sum_p x^_ip w(j, p) up to
 * F's rounding: the offset's share of each group is o * sum_p w = o * F. The AVX-512 VNNI
 * q8_gemv forms F itself from the bytes it reads anyway (a second vpdpbusd against ones: exact
 * integer sums, times the scale) and does not read w->gsum, 1/8 fewer bytes per pass over the
 * weight; the other kernels read it. The integer dot
 * products are exact on every variant (scalar; AVX2 vpmovzxbw / vpmovsxbw + vpmaddwd;
 * AVX-512 VNNI vpdpbusd (uint8 x int8, no saturation); NEON sdot on q - 128 with the 128 s
 * moved into the offset, or smull + sadalp without the dot-product extension), |I_g| <= 32 *
 * 255 * 127 < 2^24 converts exactly, and the scales are applied per group in float lanes.
 * Error bound against the exact product over the float activations x, with G = ceil(k / 32),
 *
 *   B^ = sum_p sa(i, p) (a.q_ip + 256) |w(j, p)| + sum_g |o(i, g)| |F(j, g)|,
 *   |c - sum_p x_ip w(j, p) - bias| <= (G + 5) u B^ + u |c| + sum_p 0.50001 sa(i, p) |w(j, p)|
 *
 * (u = 2^-24; where products fall in the subnormal range, plus 2^-149 times
 * sum_p (a.q_ip + 256) |q[j*ldq + p]| + 4G: a scale product rounded there is multiplied by
 * the integer sums); the last term is the activations' quantization and dominates.
 * Cost: 2 * m * n * k integer multiply-adds and n * k bytes of weight read once per two rows
 * (q8_gemv) or per tile of rows (q8_gemm).
 * c must not alias the operands.
 */
typedef void (*ck_q8_gemm_fn)(size_t m, const ck_q8_rows *a, const ck_q8_weight *w,
                              const float *bias, float *c, size_t ldc);
typedef ck_q8_gemm_fn ck_q8_gemv_fn;

/** Bytes of row stride ck_q8_quantize_rows output should have for k inputs: k rounded up to
 * a multiple of 64 (every variant's widest load). */
size_t ck_q8_row_stride(size_t k);

/** The integer dot-product instructions a variant's q8_gemm runs on this CPU, e.g.
 * "vpdpbusd (AVX-512 VNNI)" or "vpmovsxbw + vpmaddwd"; for tools and benchmarks. */
const char *ck_q8_gemm_instructions(const struct ck_kernels *k);

struct ck_attention_grad_head; /* attend_attention_backward.h */
struct ck_attention_rows;      /* below (attention on unpacked K/V) */
struct ck_gemm_epilogue;       /* below (the packed GEMM's epilogue) */
#include "attend_kernels_backward.h" /* the training kernels' types (slots at the end) */

/** One variant's kernel table. Every slot is non-NULL. */
typedef struct ck_kernels {
    int variant;
    const char *name;
    ck_gemm_blocking gemm;
    ck_f32_gemm_ukr_fn gemm_ukr;
    ck_f32_gemm_ukr_rows_fn gemm_ukr_rows;
    const char *gemm_ukr_name;
    ck_fma_peak_fn fma_peak;
    ck_f32_exp_fn exp;
    ck_f32_softmax_rows_fn softmax_rows;
    ck_f32_attn_softmax_step_fn attn_softmax_step;
    ck_f32_gemv_fn gemv;
    ck_f32_gemv_t_fn gemv_t;
    ck_f32_activation_fn activation;
    ck_f32_norm_rows_fn norm_rows;
    int attn_query_panels; /* query block = attn_query_panels * attn_nr queries */
    int attn_key_block;    /* keys per block, a multiple of attn_mr */
    /* The attention backward's per-tile step (ck_f32_attn_grad_step_fn in
     * attend_attention_backward.h). */
    void (*attn_grad_step)(size_t rows, size_t valid_rows, float *p, float *ds, size_t key0,
                           size_t query0, const struct ck_attention_grad_head *g, const float *lse,
                           const float *delta);
    /* training (attend_kernels_backward.h) */
    ck_f32_adamw_fn adamw;
    ck_f32_sgd_fn sgd;
    ck_f32_sum_squares_fn sum_squares;
    ck_f32_scale_fn scale;
    ck_f32_cross_entropy_fn cross_entropy;
    ck_f32_norm_rows_train_fn norm_rows_train;
    ck_f32_norm_backward_fn norm_backward;
    ck_f32_activation_backward_fn activation_backward;
    ck_f32_gated_backward_fn gated_backward;
    ck_f32_embedding_backward_fn embedding_backward;
    /* 16-bit weights (see CK_W16_F16) */
    ck_w16_widen_fn w16_widen;
    ck_w16_gemv_fn w16_gemv;
    /* int8 weights (see ck_q8_weight) */
    ck_q8_gemv_fn q8_gemv;
    ck_q8_gemm_fn q8_gemm;
    /* multi-row GEMV (after the others: appended) */
    ck_f32_gemv_rows_fn gemv_rows;
    /* The fused attention's micro-kernel (the ck_f32_gemm_ukr_fn contract) and its tile:
     * attn_mr keys or head dimensions x attn_nr queries. The GEMM's where it fits the
     * attention's shapes; AVX-512 has its own (8 x 48: mr divides head sizes 64 and 128). */
    ck_f32_gemm_ukr_fn attn_ukr;
    int attn_mr, attn_nr;
    /* The per-ISA body of ck_f32_attention_short (called by it with the workspace 64-byte
     * aligned, seq_q > 0). */
    void (*attn_short)(const struct ck_attention_rows *h, float *workspace);
    /* The GEMM epilogue (ck_gemm_epilogue, below) on rows x cols of C at c (row stride ldc),
     * the block's first element being the product's (row0, col0): c = act(c + bias[col0 +
     * j]) + residual[(row0 + i) * ldr + col0 + j], one pass per row in the variant's vectors,
     * the same bits as an add, the activation kernel and an add. Called per micro-tile by
     * the packed GEMM right after the tile's last k block. Cost: one read and write of the
     * block (plus bias and residual reads), one activation per element. */
    void (*gemm_epilogue)(const struct ck_gemm_epilogue *ep, size_t row0, size_t col0,
                          size_t rows, size_t cols, float *c, size_t ldc);
    /* Rows gemv_rows takes in one pass over the weight (its group: 2 on scalar and AVX2, 4
     * on AVX-512 and NEON). */
    int gemv_group;
    /* attn_ukr accumulating into a C scaled per column (ck_f32_attn_ukr_scaled_fn): the fused
     * attention's O^T update with the online softmax's rescale in its write-back. */
    ck_f32_attn_ukr_scaled_fn attn_ukr_scaled;
} ck_kernels;

/** The kernel table for a variant, or NULL when the variant is unknown or unsupported here. */
const ck_kernels *ck_kernels_get(int variant);

/**
 * Workspace (in floats) that ck_f32_gemm needs for an m x n x k product with these kernels.
 * It holds one packed A block (mc x kc) and one packed B block (kc x nc), each trimmed to the
 * problem, plus 64-byte alignment slack. Never more than (mc + nc) * kc + 64 floats.
 */
size_t ck_f32_gemm_workspace(const ck_kernels *k, size_t m, size_t n, size_t kdim);

/**
 * SGEMM, BLIS-style:  C = alpha * op(A) * op(B) + beta * C
 *
 *   op(A) is m x k:  trans_a == 0: A[i*lda + p]   trans_a != 0: A[p*lda + i]
 *   op(B) is k x n:  trans_b == 0: B[p*ldb + j]   trans_b != 0: B[j*ldb + p]
 *   C is m x n, C[i*ldc + j]; C must not alias A or B.
 *   beta == 0: C is not read. k == 0 or alpha == 0: C = beta * C (C is not read for beta 0).
 *   workspace: at least ck_f32_gemm_workspace(k, m, n, kdim) floats, any alignment.
 *
 * Loops (jc over nc, pc over kc packing B, ic over mc packing A, jr over nr, ir over mr),
 * packing and the edge tiles live in core/gemm.c; only the micro-kernel is per-ISA.
 * Cost: 2*m*n*k flops; packing reads A once per column block of width nc and B once.
 */
void ck_f32_gemm(const ck_kernels *k, int trans_a, int trans_b, size_t m, size_t n, size_t kdim,
                 float alpha, const float *a, size_t lda, const float *b, size_t ldb, float beta,
                 float *c, size_t ldc, float *workspace);

/* ---------------------------------------------------------------- GEMM on a packed weight */

/**
 * A weight packed once (at load) into the micro-kernel's B layout, for C = A * W^T with W a
 * row-major [n, k] matrix (a PyTorch Linear weight). With (mr, nr, kc) the variant's blocking:
 *
 *   k is cut into blocks of kc rows; block pc (kcb = min(kc, k - pc) rows) starts at
 *   packed + pc * panels * nr, panels = ceil(n / nr), and holds the panels one after another:
 *
 *     panel j (kcb x nr):  panel[p*nr + jj] = W[j*nr + jj][pc + p]   (0 past row n of W)
 *
 * so every micro-panel the driver streams is contiguous, exactly what ck_f32_gemm's own B
 * packing produces. ck_f32_pack_weight packs panels [panel0, panel1) (callers split the
 * panels over threads); size: ck_f32_packed_weight_size floats, 64-byte aligned.
 */
size_t ck_f32_packed_weight_size(const ck_kernels *k, size_t n, size_t kdim);
void ck_f32_pack_weight(const ck_kernels *k, size_t n, size_t kdim, const float *w, size_t ldw,
                        size_t panel0, size_t panel1, float *packed);

/**
 * The same layout from either storage of op(B) (k x n): trans_b != 0 reads B[j*ldb + p] (a
 * weight, as ck_f32_pack_weight), trans_b == 0 reads B[p*ldb + j] (activations stored
 * [k, n], the right operand of a weight gradient dW = dY^T X). Packs panels [panel0, panel1)
 * (clamped to ceil(n / nr)); size ck_f32_packed_weight_size(k, n, kdim) floats. A product
 * whose threads share one packed B packs it once, split by panels, instead of once per thread.
 */
void ck_f32_pack_b(const ck_kernels *k, int trans_b, size_t n, size_t kdim, const float *b,
                   size_t ldb, size_t panel0, size_t panel1, float *packed);

/**
 * All of A (m x k, row stride lda) packed up front, for products whose work is split by
 * weight panels (few rows, many columns) so each thread does not repack the same rows:
 * block pc of kc columns at packed + pc * round_up(m, mr), mr-row panels inside it
 * (ck_f32_gemm's A layout). Size: ck_f32_packed_a_size floats, 64-byte aligned.
 */
size_t ck_f32_packed_a_size(const ck_kernels *k, size_t m, size_t kdim);
void ck_f32_pack_a(const ck_kernels *k, size_t m, size_t kdim, const float *a, size_t lda,
                   float *packed);

/**
 * Rows [row0, row1) of ck_f32_pack_a's layout (row1 clamped to m; row0 rounded down to a
 * multiple of mr, so each call fills whole mr-row panels, the last one zero-padded): the same bytes as
 * ck_f32_pack_a writes for those rows, so threads can pack disjoint row ranges of one A.
 * Cost: one read and one write of (row1 - row0) x kdim floats.
 */
void ck_f32_pack_a_rows(const ck_kernels *k, size_t m, size_t kdim, const float *a, size_t lda,
                        size_t row0, size_t row1, float *packed);

/**
 * A GEMM epilogue, applied to each tile of C right after its last k block (while in L1):
 *   C = act(C + bias) + residual
 *   bias: NULL or one float per column of C;  activation: CK_ACT_NONE or a CK_ACT_* kind;
 *   residual: NULL or a matrix shaped like C (row stride ldr) that must not alias C.
 */
typedef struct ck_gemm_epilogue {
    const float *bias;
    int activation;
    const float *residual;
    size_t ldr;
} ck_gemm_epilogue;

/**
 * C = act(beta * C + A * W[cols]^T + bias) + residual on a packed weight, where W[cols] are
 * the weight rows weight_col0 ..< weight_col0 + n (a fused QKV weight's key/value rows, say;
 * weight_col0 is a multiple of nr) of a packed [weight_n, k] weight.
 *
 *   C: m x n at c[i*ldc + j];  A: m x k at a[i*lda + p] (read when packed_a is NULL), or,
 *   with trans_a != 0, A^T stored k x m at a[p*lda + i] (dY^T of a weight gradient; always
 *   packed per block, never read in place); or packed_a: all of A from ck_f32_pack_a (then
 *   trans_a must be 0);  beta == 0: C not read.
 */
typedef struct ck_gemm_packed {
    size_t m, n, k;
    const float *a;
    size_t lda;
    const float *packed_a;
    const float *packed_w;
    size_t weight_n, weight_col0;
    float *c;
    size_t ldc;
    float beta;
    ck_gemm_epilogue epilogue;
    int trans_a; /* A read as op(A)[i][p] = a[p*lda + i] (0: a[i*lda + p]) */
} ck_gemm_packed;

/** Workspace (floats, any alignment) of one ck_f32_gemm_packed call: one packed mc x kc block
 * of A (A rows are read in place where their stride allows; see ck_f32_gemm_packed). */
size_t ck_f32_gemm_packed_workspace(const ck_kernels *k, size_t m, size_t kdim);

/**
 * The rows [row0, row1) x column panels [panel0, panel1) (columns panel0*nr ..< min(n,
 * panel1*nr)) of the packed product g. With packed_a, row0 must be a multiple of mr. Loops:
 * per mc block of rows, per kc block, ck_f32_gemm's macro-kernel over the panels. A: packed_a
 * when given; else full row tiles are read in place by gemm_ukr_rows (no packing) unless the
 * row stride is a multiple of 4 KiB (those rows would share one L1 set), in which case the
 * block is packed. Every sum runs in the same order whatever the split, so results do not
 * depend on how the caller divides the work. Cost: 2 * rows * cols * k flops.
 */
void ck_f32_gemm_packed(const ck_kernels *k, const ck_gemm_packed *g, size_t row0, size_t row1,
                        size_t panel0, size_t panel1, float *workspace);

/** 1 if ck_f32_gemm_packed reads A rows of this stride in place (no packing), else 0: callers
 * splitting one product over threads pack A once up front (ck_f32_pack_a) only when it is 0. */
int ck_f32_gemm_packed_reads_a_in_place(size_t lda);

/* ---------------------------------------------------------------- GEMM on a 16-bit weight */

/** Workspace (floats, any alignment) of one ck_w16_gemm call: one packed A block (mc x kc)
 * and one packed B block (kc x nc), trimmed to the problem, plus alignment slack. */
size_t ck_w16_gemm_workspace(const ck_kernels *k, size_t m, size_t n, size_t kdim);

/**
 * C = A * W^T + beta * C with W a 16-bit row-major [n, k] weight (dtype CK_W16_F16 or
 * CK_W16_BF16, row stride ldw), A m x k (row stride lda), C m x n (row stride ldc, not
 * aliasing A or W; beta == 0: C not read). ck_f32_gemm's loops with trans_b: per block of nc
 * weight rows and kc columns the block is widened (w16_widen, one weight row at a time) and
 * packed into the workspace's B panels, then every mc block of A is packed and multiplied
 * there, so the weight stays 16-bit in memory and is widened once per call (its float32 form
 * exists only one kc x nc block at a time, in the workspace). Results equal ck_f32_gemm's with
 * trans_b on the widened weight, bit for bit. Cost: 2*m*n*k flops, one read of the 16-bit
 * weight and one write and read of its packed float32 block per call.
 */
void ck_w16_gemm(const ck_kernels *k, int dtype, size_t m, size_t n, size_t kdim, const float *a,
                 size_t lda, const uint16_t *w, size_t ldw, float beta, float *c, size_t ldc,
                 float *workspace);

/* ---------------------------------------------------------------- fused attention driver */

/** Queries per block of ck_f32_attention_block (the unit Swift parallelizes over). */
size_t ck_f32_attention_query_block(const ck_kernels *k);

/** Floats of one head's packed keys and values (see ck_f32_attention_pack_kv). */
size_t ck_f32_attention_packed_kv_size(const ck_kernels *k, size_t seq_k, size_t head_dim);

/** Floats the rel_bias table must hold (see ck_attention_head). */
size_t ck_f32_attention_rel_bias_length(const ck_kernels *k, size_t seq_q, size_t seq_k);

/** Floats of workspace one ck_f32_attention_block call needs (64-byte aligned), with Shaw
 * relative positions clipped at shaw_clip (0: none). */
size_t ck_f32_attention_workspace(const ck_kernels *k, size_t head_dim, size_t shaw_clip);

/**
 * Packs one head's keys (key j at k + j*ldk) and values (v + j*ldv), head_dim floats each,
 * into `packed` (ck_f32_attention_packed_kv_size floats, 64-byte aligned). Layout, with
 * mr = k->attn_mr, keys zero-padded to a multiple of mr and dimensions to a multiple of mr:
 *   keys:   panels of mr keys, each head_dim columns of mr floats (the micro-kernel's "A"
 *           layout), so the score tile K_blk * Q_blk^T runs on attn_ukr with kc = head_dim;
 *   values: V^T in panels of mr dimensions, each seq_k columns of mr floats, so the update
 *           O^T += V_blk^T * P^T runs on the same micro-kernel with kc = keys in the block.
 * Cost: one read of K and V, one write of each.
 */
void ck_f32_attention_pack_kv(const ck_kernels *k, size_t seq_k, size_t head_dim, const float *keys,
                              size_t ldk, const float *values, size_t ldv, float *packed);

/**
 * Fused attention for queries [query0, query0 + count) of one head (count <=
 * ck_f32_attention_query_block). Never forms the seq_q x seq_k score matrix: per key block it
 * computes a (block x query-block) score tile with the attention micro-kernel, runs the online
 * softmax step, and accumulates O^T += V^T P^T, again on the micro-kernel. Key blocks that a
 * causal mask or a sliding window hides from every query of the block are skipped.
 * Cost: 4 * count * visible_keys * head_dim flops. `workspace`: 64-byte aligned,
 * ck_f32_attention_workspace floats.
 */
void ck_f32_attention_block(const ck_kernels *k, const ck_attention_head *head, size_t query0,
                            size_t count, float *workspace);

/* ---------------------------------------------------------------- attention on unpacked K/V */

/**
 * One attention head with keys and values read in place (strided rows, no packed copy), for
 * the two cases where the fused kernel's fixed costs dominate. Same scores as ck_attention_head:
 *
 *   s(i, j) = scale * dot(q_i, k_j) + key_bias[j] + rel_bias[(i - j) + rel_bias_zero]
 *             (-inf when causal and j > i + causal_offset, and when window > 0 and
 *              (i + causal_offset) - j >= window: the sliding window, as in ck_attention_head)
 *   o_i     = sum_j softmax_j(s(i, .)) v_j          (o_i = 0 when every s(i, j) is -inf)
 *
 *   q_i at q + i*ldq, k_j at k + j*ldk, v_j at v + j*ldv, o_i at o + i*ldo (head_dim floats);
 *   key_bias: NULL or seq_k floats; rel_bias: NULL or a table indexed by (i - j) +
 *   rel_bias_zero, valid for every i < seq_q, j < seq_k (the fused kernel's table fits).
 */
typedef struct ck_attention_rows {
    size_t seq_q, seq_k, head_dim;
    const float *q;
    size_t ldq;
    const float *k;
    size_t ldk;
    const float *v;
    size_t ldv;
    float *o;
    size_t ldo;
    float scale;
    int causal;
    ptrdiff_t causal_offset;
    const float *key_bias;
    const float *rel_bias;
    ptrdiff_t rel_bias_zero;
    size_t window;
} ck_attention_rows;

/** Floats of workspace (any alignment) one ck_f32_attention_short call needs. */
size_t ck_f32_attention_short_workspace(const ck_kernels *k, size_t seq_q, size_t seq_k,
                                        size_t head_dim);

/**
 * Short sequences (a sentence): one head with Q, K and V read in place, nothing packed but
 * K^T. Keys that key_bias masks at the end of the sequence (a padded batch row's padding)
 * are dropped first (kn real keys); K^T is copied once (head_dim x kn rounded up to the
 * vector width); then per block of a few queries, S = Q K^T in registers (query floats
 * broadcast from their rows), each score row's biases, masks and softmax whole in L1 (every
 * key at once: no running max), and O = P V / sum in registers (value rows loaded in place)
 * written to the output rows. Memory: O(head_dim * seq_k) workspace. Cost: 4 * seq_q * kn *
 * head_dim flops (keys padded to a vector only) plus the K^T copy.
 */
void ck_f32_attention_short(const ck_kernels *k, const ck_attention_rows *h, float *workspace);

/** Floats of workspace (any alignment) one ck_f32_attention_few call needs. */
size_t ck_f32_attention_few_workspace(size_t seq_k, size_t head_dim);

/**
 * Few queries (decoding: one new token against a cache), queries [query0, query0 + count):
 * per query, the scores of the visible keys by the GEMV kernel reading K in place, the biases
 * and masks, the row softmax kernel, then o = P V by the transposed GEMV reading V in place.
 * Only the visible keys are read (at most `window` of them with a window). No packing and no
 * 16-wide query panels. Cost: 4 * visible * head_dim flops per query, one pass over the
 * visible keys and values.
 */
void ck_f32_attention_few(const ck_kernels *k, const ck_attention_rows *h, size_t query0,
                          size_t count, float *workspace);

/* ---------------------------------------------------------------- small helpers for Swift */

/** Spin-wait hint (x86 PAUSE, AArch64 YIELD). */
void ck_cpu_relax(void);

/** Sequentially consistent atomics on a 64-bit cell, for the Swift worker pool. */
int64_t ck_atomic_load(const int64_t *cell);
void ck_atomic_store(int64_t *cell, int64_t value);
int64_t ck_atomic_fetch_add(int64_t *cell, int64_t delta);
/** Compare-and-swap: if *cell == expected, store desired and return 1; else return 0. */
int ck_atomic_compare_exchange(int64_t *cell, int64_t expected, int64_t desired);

#ifdef __cplusplus
}
#endif
#endif
