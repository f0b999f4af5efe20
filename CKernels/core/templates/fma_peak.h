/*
 * Peak-FMA probe, instantiated per ISA like the GEMM micro-kernel: CK_PEAK_CHAINS independent
 * accumulator chains (enough to cover FMA latency x FMA ports), register-only, no memory
 * traffic. Define CK_PEAK_NAME, CK_VEC, CK_VL, CK_PEAK_CHAINS before including.
 */
double CK_PEAK_NAME(size_t iters) {
    CK_VEC acc[CK_PEAK_CHAINS];
    CK_VEC x = (CK_VEC){0} + 0.999999f, y = (CK_VEC){0} + 1e-7f;
    CK_UNROLL_FULL
    for (int i = 0; i < CK_PEAK_CHAINS; i++) acc[i] = (CK_VEC){0} + (float)i;
    for (size_t it = 0; it < iters; it++) {
        CK_UNROLL_FULL
        for (int i = 0; i < CK_PEAK_CHAINS; i++) acc[i] = CK_VFMA(acc[i], x, y);
    }
    float sink = 0;
    CK_UNROLL_FULL
    for (int i = 0; i < CK_PEAK_CHAINS; i++) sink += acc[i][0];
    volatile float keep = sink; /* the chains' results are used: nothing is dead code */
    (void)keep;
    return (double)iters * CK_PEAK_CHAINS * CK_VL * 2.0;
}
