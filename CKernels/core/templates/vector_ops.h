/*
 * Vector primitives shared by the row kernels (exp, softmax, GEMV, activations, norms, the
 * attention softmax step), written once with vector extensions and instantiated per ISA by
 * variant.h. Defined by the includer:
 *   CK_VEC, CK_VL   float vector type and its lanes
 *   CK_IVEC         int32 vector type with the same lanes
 *   CK_FN(name)     appends the variant suffix: CK_FN(ck_f32_exp) -> ck_f32_exp__avx2
 *   CK_NO_FMA       (optional) the portable scalar instantiation: no fused multiply-add
 * Defines static inline helpers only: ck_vload/ck_vstore, ck_vmax, ck_hmax/ck_hsum, the
 * vector exp (ck_vexp, ck_vexp_nonpos) and the CK_VSPLAT / CK_VSELECT / CK_VFMA2 macros.
 */
#include <string.h>

#define CK_VSPLAT(x) (-(CK_VEC){0} + (x))
#define CK_ISPLAT(x) ((CK_IVEC){0} + (x))
/* Lane-wise select: mask lanes are all-ones (true) or all-zeros (false). */
#define CK_VSELECT(mask, a, b) ((CK_VEC)((((CK_IVEC)(a)) & (mask)) | (((CK_IVEC)(b)) & ~(mask))))

/* CK_NO_FMA: the portable scalar instantiation, where a fused multiply-add may not exist
 * in hardware and would become a slow library call. */
#if defined(__has_builtin) && !defined(CK_NO_FMA)
#if __has_builtin(__builtin_elementwise_fma)
#define CK_VFMA2(x, y, z) __builtin_elementwise_fma((x), (y), (z))
#endif
#endif
#ifndef CK_VFMA2
#define CK_VFMA2(x, y, z) ((x) * (y) + (z))
#endif

static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vload)(const float *p) {
    CK_VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void CK_FN(ck_vstore)(float *p, CK_VEC v) {
    memcpy(p, &v, sizeof v);
}

/* max; which operand wins when one is NaN is unspecified (callers track NaN separately).
 * On x86 the compare-select form is exactly one maxps (which returns b when either is NaN);
 * __builtin_elementwise_max's IEEE maxNum there costs a compare and a blend besides. On other
 * targets the builtin is one instruction (fmaxnm) and the select form two. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vmax)(CK_VEC a, CK_VEC b) {
#if defined(__has_builtin) && __has_builtin(__builtin_elementwise_max) &&                          \
    !defined(__x86_64__) && !defined(_M_X64)
    return __builtin_elementwise_max(a, b);
#else
    return CK_VSELECT(a > b, a, b);
#endif
}

static inline __attribute__((always_inline)) float CK_FN(ck_hmax)(CK_VEC v) {
    float m = v[0];
    for (int i = 1; i < CK_VL; i++) m = v[i] > m ? v[i] : m;
    return m;
}
static inline __attribute__((always_inline)) float CK_FN(ck_hsum)(CK_VEC v) {
    float s = 0;
    for (int i = 0; i < CK_VL; i++) s += v[i];
    return s;
}

/* The lanes' sum as a halving tree: lane i plus lane i + VL/2, then the same on the first half,
 * down to one lane ((v0 + v8) + (v4 + v12)) + ... on 16 lanes). A few shuffles and adds, where
 * ck_hsum's in-order chain costs VL dependent scalar adds: the GEMV takes this one per output
 * (per weight row), which for short rows is a large part of the work between weight loads. */
static inline __attribute__((always_inline)) float CK_FN(ck_hsum_tree)(CK_VEC v) {
#if CK_VL == 16
    v = v + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    v = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
    v = v + __builtin_shufflevector(v, v, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    return v[0] + v[1];
#elif CK_VL == 8
    v = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 4, 5, 6, 7);
    v = v + __builtin_shufflevector(v, v, 2, 3, 2, 3, 2, 3, 2, 3);
    return v[0] + v[1];
#elif CK_VL == 4
    v = v + __builtin_shufflevector(v, v, 2, 3, 2, 3);
    return v[0] + v[1];
#else
    return CK_FN(ck_hsum)(v);
#endif
}

/*
 * exp(x), lane-wise. x = k*ln2 + r with k = round(x / ln2) by the 1.5*2^23 trick (no float to
 * int conversion, so NaN cannot trigger undefined behaviour), r computed with ln2 split in
 * two (Cody-Waite), exp(r) by the Cephes degree-6 minimax polynomial, then multiplied by 2^k
 * as 2^(k/2) * 2^(k - k/2): both factors are normal for every k in [-150, 128], so a subnormal
 * result is rounded exactly once. x is first clamped to [-104, 88.7229]: exp(-104) is below
 * half the smallest subnormal and rounds to +0, and at 88.7229 the product overflows to +inf,
 * so no case needs a fix-up afterwards. NaN fails both clamp compares and stays NaN.
 * Accuracy: <= 2 ulp (tests measure it over the whole float range).
 */
/* short: a degree-5 polynomial (exp(r) = 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3), fitted to
 * the relative error on [-ln2/2, ln2/2]) for the fused attention's probabilities: <= 4 ulp
 * against 2 (2.1e-7 vs 1.2e-7 relative over [-87, 0]), two FMAs fewer per vector. Variants
 * with CK_VSCALEF and CK_VPERM16 (AVX-512) use ck_vexp_table below for every exp instead,
 * those with CK_VPERM8 (AVX2) ck_vexp_table8: NEON and the scalar variant keep these. */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp_poly_n)(CK_VEC xc, CK_IVEC *k,
                                                                          int short_poly) {
    const CK_VEC magic = CK_VSPLAT(12582912.0f); /* 1.5 * 2^23 */
    CK_VEC t = CK_VFMA2(xc, CK_VSPLAT(1.44269504088896341f), magic);
    *k = ((CK_IVEC)t) - (CK_IVEC)magic; /* integer k in the low mantissa bits */
    CK_VEC kf = t - magic;
    CK_VEC r = CK_VFMA2(kf, CK_VSPLAT(-0.693359375f), xc);
    r = CK_VFMA2(kf, CK_VSPLAT(2.12194440e-4f), r);
    if (short_poly) {
        CK_VEC q = CK_VSPLAT(8.312530815601349e-3f);
        q = CK_VFMA2(q, r, CK_VSPLAT(4.189012199640274e-2f));
        q = CK_VFMA2(q, r, CK_VSPLAT(1.6667114198207855e-1f));
        q = CK_VFMA2(q, r, CK_VSPLAT(4.99992311000824e-1f));
        return CK_VFMA2(q, r * r, r + 1.0f);
    }
    CK_VEC p = CK_VSPLAT(1.9875691500e-4f);
    p = CK_VFMA2(p, r, CK_VSPLAT(1.3981999507e-3f));
    p = CK_VFMA2(p, r, CK_VSPLAT(8.3334519073e-3f));
    p = CK_VFMA2(p, r, CK_VSPLAT(4.1665795894e-2f));
    p = CK_VFMA2(p, r, CK_VSPLAT(1.6666665459e-1f));
    p = CK_VFMA2(p, r, CK_VSPLAT(5.0000001201e-1f));
    return CK_VFMA2(p, r * r, r + 1.0f);
}
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp_poly)(CK_VEC xc, CK_IVEC *k) {
    return CK_FN(ck_vexp_poly_n)(xc, k, 0);
}

#if defined(CK_VSCALEF) && defined(CK_VPERM16)
/*
 * exp(x) from a 16-entry table of 2^(j/16) held in one register (AVX-512 vpermps), where a
 * vector has 16 lanes. x / ln2 is rounded to a multiple of 1/16 by the 1.5*2^19 trick:
 * k16 = q + j/16, and the low 4 mantissa bits of the rounded sum are j (vpermps reads only
 * those bits, so no mask). r = x - k16 ln2 (Cody-Waite, both products exact for
 * |k16| <= 150) lies in [-ln2/32, ln2/32], where the cubic 1 + r + r^2/2 + r^3/6 is within
 * 1e-8 of exp(r). exp(x) = 2^q * (T_j + T_j * expm1(r)), the 2^q by vscalefps, which takes
 * floor(k16) = q itself, rounds a subnormal result once, gives 0 below and +inf above.
 * 7 multiply-adds, a subtract, a max, a permute and a scale per vector against the degree-6
 * polynomial's 10 (1.24 vs 1.78 ns a vector in cache on Zen 5), and <= 1.1 ulp against its
 * 1.3 (a sweep of [-104, 0] to normal results), so every exp of this variant maps here.
 * Clamped to [-104, 88.7229] (exp rounds to +0 below, and overflows to +inf at the top, as
 * in ck_vexp); NaN fails both compares and stays NaN. clamp_hi = 0 when x <= 0 is known.
 */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp_table)(CK_VEC x, int clamp_hi) {
    const CK_VEC table = {1.000000000e+00f, 1.044273734e+00f, 1.090507746e+00f, 1.138788581e+00f,
                          1.189207077e+00f, 1.241857767e+00f, 1.296839595e+00f, 1.354255557e+00f,
                          1.414213538e+00f, 1.476826191e+00f, 1.542210817e+00f, 1.610490322e+00f,
                          1.681792855e+00f, 1.756252170e+00f, 1.834008098e+00f, 1.915206552e+00f};
    const CK_VEC lo = CK_VSPLAT(-104.0f), hi = CK_VSPLAT(88.7229f);
    const CK_VEC magic = CK_VSPLAT(786432.0f); /* 1.5 * 2^19 */
    CK_VEC xc = CK_VSELECT(lo > x, lo, x);
    if (clamp_hi) xc = CK_VSELECT(xc > hi, hi, xc);
    const CK_VEC t = CK_VFMA2(xc, CK_VSPLAT(1.44269504088896341f), magic);
    const CK_VEC k16 = t - magic;
    CK_VEC r = CK_VFMA2(k16, CK_VSPLAT(-0.693359375f), xc);
    r = CK_VFMA2(k16, CK_VSPLAT(2.12194440e-4f), r);
    const CK_VEC q = CK_VFMA2(r, CK_VSPLAT(0.16666667163f), CK_VSPLAT(0.5f));
    const CK_VEC em1 = CK_VFMA2(q, r * r, r);
    const CK_VEC tj = CK_VPERM16(t, table);
    return CK_VSCALEF(CK_VFMA2(tj, em1, tj), k16);
}
#endif

#if !(defined(CK_VSCALEF) && defined(CK_VPERM16)) && defined(CK_VPERM8)
/*
 * exp(x) from an 8-entry table of 2^(j/8) in one register (AVX2 vpermps), where a vector has
 * 8 lanes: x / ln2 rounded to a multiple of 1/8 by the 1.5*2^20 trick, k8 = q + j/8, j the
 * low 3 mantissa bits of the rounded sum (vpermps reads only those) and q the bits above
 * (an arithmetic shift: floor(k8)). r = x - k8 ln2 (Cody-Waite) lies in [-ln2/16, ln2/16],
 * where 1 + r + r^2/2 + r^3/6 + r^4/24 is within 1.3e-9 of exp(r). exp(x) =
 * 2^q * (T_j + T_j * expm1(r)), 2^q from its exponent bits: the caller's kind of scaling
 * (ck_vexp: two factors, so a subnormal result is rounded once; ck_vexp_nonpos: one, with
 * the results below 2^-126 flushed). 8 multiply-adds against the degree-6 polynomial's 10 and
 * its add (1.63 vs 2.0 ns a vector in cache on Zen 5, 256-bit), and <= 0.9 ulp against its
 * 1.3 (a sweep of [-87, 0] to normal results). ck_vexp_table8_parts sets *q, *tj = T_j and
 * *em1 = expm1(r) for the caller to combine; ck_vexp_table8 returns T_j + T_j expm1(r).
 */
static inline __attribute__((always_inline)) void CK_FN(ck_vexp_table8_parts)(CK_VEC xc, CK_IVEC *q, CK_VEC *tj,
                                                                        CK_VEC *em1) {
    const CK_VEC table = {1.000000000e+00f, 1.090507746e+00f, 1.189207077e+00f, 1.296839595e+00f,
                          1.414213538e+00f, 1.542210817e+00f, 1.681792855e+00f, 1.834008098e+00f};
    const CK_VEC magic = CK_VSPLAT(1572864.0f); /* 1.5 * 2^20 */
    const CK_VEC t = CK_VFMA2(xc, CK_VSPLAT(1.44269504088896341f), magic);
    const CK_VEC k8 = t - magic;
    /* (t - magic) >> 3 with no 32-bit overflow for any t (magic's low 3 bits are 0): t may
     * be anything when ck_vexp_nonpos passes an unclamped x. */
    *q = (((CK_IVEC)t) >> 3) - (((CK_IVEC)magic) >> 3);
    CK_VEC r = CK_VFMA2(k8, CK_VSPLAT(-0.693359375f), xc);
    r = CK_VFMA2(k8, CK_VSPLAT(2.12194440e-4f), r);
    CK_VEC c = CK_VFMA2(r, CK_VSPLAT(0.0416666679f), CK_VSPLAT(0.16666667163f));
    c = CK_VFMA2(c, r, CK_VSPLAT(0.5f));
    *em1 = CK_VFMA2(c, r * r, r);
    *tj = CK_VPERM8(t, table);
}
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp_table8)(CK_VEC xc, CK_IVEC *q) {
    CK_VEC tj, em1;
    CK_FN(ck_vexp_table8_parts)(xc, q, &tj, &em1);
    return CK_VFMA2(tj, em1, tj);
}
#endif

static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp)(CK_VEC x) {
#if defined(CK_VSCALEF) && defined(CK_VPERM16)
    return CK_FN(ck_vexp_table)(x, 1);
#else
    const CK_VEC hi = CK_VSPLAT(88.7229f), lo = CK_VSPLAT(-104.0f);
    CK_VEC xc = CK_VSELECT(x > hi, hi, x);
    xc = CK_VSELECT(xc < lo, lo, xc);
    CK_IVEC k;
#if defined(CK_VPERM8)
    const CK_VEC p = CK_FN(ck_vexp_table8)(xc, &k);
#else
    const CK_VEC p = CK_FN(ck_vexp_poly)(xc, &k);
#endif
    const CK_IVEC k1 = k >> 1, k2 = k - k1;
    return p * (CK_VEC)((k1 + 127) << 23) * (CK_VEC)((k2 + 127) << 23);
#endif
}

/*
 * exp(x) for x <= 0 where results below 2^-126 may be flushed to 0: the softmax and attention
 * inner loops, whose terms are x - max <= 0 and are summed against a largest term of 1, so a
 * flushed term changes nothing representable. One scaling step; -inf gives exactly 0.
 */
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp_nonpos_n)(CK_VEC x,
                                                                            int short_poly) {
#if defined(CK_VSCALEF) && defined(CK_VPERM16)
    (void)short_poly;
    return CK_FN(ck_vexp_table)(x, 0);
#elif defined(CK_VPERM8)
    (void)short_poly;
    /* x goes in unclamped: the lanes below -87 (and -inf) come out of the table exp as
     * anything, NaN included, and are zeroed by the mask below; every other lane, NaN
     * included, is computed exactly as from a clamped x. One instruction fewer: the row
     * softmax 4% faster in cache on Zen 3, whose exp loop is bound by its instruction count
     * (unrolling it with two sums gained nothing; each multiply-add removed ~0.4 cycle). */
    const CK_IVEC tiny = x < CK_VSPLAT(-87.0f);
    CK_IVEC k;
    CK_VEC tj, em1;
    CK_FN(ck_vexp_table8_parts)(x, &k, &tj, &em1);
    /* 2^k T_j by adding k to T_j's exponent (T_j in [1, 2), k >= -126 in every lane the
     * mask keeps: a normal float; vector integer arithmetic wraps in the others), an
     * integer add where the float multiply by 2^k competed with the multiply-adds (1.53 vs
     * 1.63 ns a vector in cache on Zen 5). */
    const CK_VEC tk = (CK_VEC)((CK_IVEC)tj + (k << 23));
    const CK_VEC y = CK_VFMA2(tk, em1, tk);
    return (CK_VEC)((CK_IVEC)y & ~tiny);
#else
    const CK_VEC lo = CK_VSPLAT(-87.0f);
    CK_IVEC tiny = x < lo;
    CK_IVEC k;
    CK_VEC p = CK_FN(ck_vexp_poly_n)(CK_VSELECT(tiny, lo, x), &k, short_poly);
    CK_VEC y = p * (CK_VEC)((k + 127) << 23);
    return (CK_VEC)((CK_IVEC)y & ~tiny);
#endif
}
static inline __attribute__((always_inline)) CK_VEC CK_FN(ck_vexp_nonpos)(CK_VEC x) {
    return CK_FN(ck_vexp_nonpos_n)(x, 0);
}
