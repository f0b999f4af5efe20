/*
 * Embedding backward (contract in attend_kernels_backward.h): rows of dout added onto the
 * table rows their ids name, in row order. Instantiated per ISA by variant.h.
 */
void CK_FN(ck_f32_embedding_backward)(size_t rows, size_t dim, const int32_t *ids,
                                      const float *dout, size_t ldo, float *dtable, size_t ldt,
                                      int32_t padding_id) {
    for (size_t r = 0; r < rows; r++) {
        const int32_t id = ids[r];
        if (id == padding_id) continue;
        const float *src = dout + r * ldo;
        float *dst = dtable + (size_t)id * ldt;
        size_t j = 0;
        for (; j + CK_VL <= dim; j += CK_VL)
            CK_FN(ck_vstore)(dst + j, CK_FN(ck_vload)(dst + j) + CK_FN(ck_vload)(src + j));
        for (; j < dim; j++) dst[j] += src[j];
    }
}
