/*
 * attend_attention_backward.h — the fused attention's training half: the forward that also
 * saves each query's log-sum-exp, and the backward (FlashAttention-2 style) that recomputes
 * the score tiles from Q, K and that log-sum-exp instead of storing the seq_q x seq_k
 * probabilities. Same rules as attend_kernels.h: total functions on pointers, sizes and row
 * strides, no allocation, single-threaded; the caller validates shapes and owns threads.
 *
 * For one head, with s(i, j) the forward's score (attend_kernels.h, ck_attention_head) and
 *
 *   lse_i = log sum_j exp s(i, j)          (-inf for a query that sees no key)
 *   P_ij  = exp(s(i, j) - lse_i)           dP_ij = dO_i . (v_j [+ a^V_c(i,j)])
 *   D_i   = dO_i . O_i                     dS_ij = P_ij (dP_ij - D_i)
 *
 * the gradients are dV_j += sum_i P_ij dO_i, dK_j += scale sum_i dS_ij q_i,
 * dQ_i = scale sum_j dS_ij k_j (+ the Shaw key term), d rel_bias[(i - j) + zero] += dS_ij,
 * and for Shaw positions the per-bucket sums of P and dS (the caller turns them into the
 * table gradients with two small GEMMs).
 */
#ifndef ATTEND_ATTENTION_BACKWARD_H
#define ATTEND_ATTENTION_BACKWARD_H

#include "attend_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * ck_f32_attention_block (attend_kernels.h) that also writes lse[i] = m_i + log(l_i) for
 * its queries i in [query0, query0 + count) (lse has seq_q floats; -inf where a query saw no
 * key), the statistic the backward recomputes the probabilities from. Same workspace.
 */
void ck_f32_attention_block_lse(const ck_kernels *k, const ck_attention_head *head, size_t query0,
                                size_t count, float *workspace, float *lse);

/**
 * One query head of the backward. Scores as ck_attention_head (scale, causal with
 * causal_offset, key_bias, rel_bias at rel_bias_zero, Shaw buckets with shaw_clip and W =
 * 2 shaw_clip + 1):
 *
 *   q, o, dout:   query i's row, the forward's output and its gradient (head_dim floats at
 *                 q + i*ldq, o + i*ldo, dout + i*lddo); lse: seq_q floats from the forward.
 *   packed_kv:    the K/V head, packed by ck_f32_attention_grad_pack_kv.
 *   dq:           written: dq + i*lddq, head_dim floats per query.
 *   dk_acc, dv_acc: accumulated (+=): ck_f32_attention_grad_acc_size floats each, row j at
 *                 j * ck_f32_attention_grad_acc_ld (several query heads sharing a K/V head
 *                 add into the same accumulators); ck_f32_attention_grad_store_kv reads them.
 *   d_rel_bias:   NULL, or accumulated (+=) at (i - j) + rel_bias_zero, like rel_bias (which
 *                 then must hold ck_f32_attention_grad_rel_bias_length floats).
 *   Shaw (shaw_clip > 0): shaw_qk[i*W + c] = scale * q_i . a^K_c (as the forward),
 *                 shaw_dov[i*W + c] = dO_i . a^V_c, shaw_k the a^K table (W x head_dim);
 *                 shaw_p[i*W + c] and shaw_ds[i*W + c] are written with the sums of P_ij and
 *                 dS_ij over the keys j in bucket c, and dq gains scale * sum_c shaw_ds a^K_c.
 *   dropout:      NULL, or the forward's dropout on the probabilities (no Shaw terms), its
 *                 factors Z_ij recomputed from the hash: dV = (P Z)^T dO,
 *                 dS = P (Z dP - D) with D_i = dO_i . o_i as without dropout.
 */
typedef struct ck_attention_grad_head {
    size_t seq_q, seq_k, head_dim;
    const float *q;
    size_t ldq;
    const float *o;
    size_t ldo;
    const float *dout;
    size_t lddo;
    const float *lse;
    const float *packed_kv;
    float *dq;
    size_t lddq;
    float *dk_acc;
    float *dv_acc;
    float scale;
    int causal;
    ptrdiff_t causal_offset;
    const float *key_bias;
    const float *rel_bias;
    ptrdiff_t rel_bias_zero;
    float *d_rel_bias;
    size_t shaw_clip;
    const float *shaw_qk;
    const float *shaw_dov;
    const float *shaw_k;
    float *shaw_p;
    float *shaw_ds;
    const ck_attention_dropout *dropout;
} ck_attention_grad_head;

/**
 * The backward's per-tile step (the ck_kernels slot attn_grad_step), for one panel of nr
 * queries (vectors across queries) against `rows` keys from key0 (rows >= valid_rows are
 * padding): p holds the tile's S^T = scale K Q^T (plus any Shaw key term), ds holds dP^T
 * (plus any Shaw value term), both `rows` x nr with row stride nr. Adds key_bias / rel_bias,
 * applies the causal mask and writes P = exp(s - lse) into p and dS = P (dP - delta) into ds
 * (0 on padding rows and masked entries); with g->d_rel_bias, adds dS into it. lse, delta: nr
 * floats per query of the panel (lse +inf for a query with no key or past seq_q).
 */
typedef void (*ck_f32_attn_grad_step_fn)(size_t rows, size_t valid_rows, float *p, float *ds,
                                         size_t key0, size_t query0,
                                         const struct ck_attention_grad_head *g, const float *lse,
                                         const float *delta);

/** Floats of one K/V head packed for the backward (ck_f32_attention_grad_pack_kv). */
size_t ck_f32_attention_grad_packed_kv_size(const ck_kernels *k, size_t seq_k, size_t head_dim);

/**
 * Packs one K/V head for the backward (64-byte aligned `packed`), keys zero-padded to a
 * multiple of mr: K and V as GEMM "A" panels (mr keys x head_dim: the tiles S^T = K Q^T and
 * dP^T = V dO^T), then K^T in panels of mr dimensions (the update dQ^T += K^T dS^T).
 * Cost: one read of K and V, three writes.
 */
void ck_f32_attention_grad_pack_kv(const ck_kernels *k, size_t seq_k, size_t head_dim,
                                   const float *keys, size_t ldk, const float *values, size_t ldv,
                                   float *packed);

/** Row stride (floats) of the dK/dV accumulators: head_dim rounded up to nr. */
size_t ck_f32_attention_grad_acc_ld(const ck_kernels *k, size_t head_dim);

/** Floats of one dK (or dV) accumulator: seq_k rounded up to mr rows of acc_ld. */
size_t ck_f32_attention_grad_acc_size(const ck_kernels *k, size_t seq_k, size_t head_dim);

/** Floats the rel_bias / d_rel_bias tables of the backward must hold (zero at seq_k - 1). */
size_t ck_f32_attention_grad_rel_bias_length(const ck_kernels *k, size_t seq_q, size_t seq_k);

/** Floats of workspace (64-byte aligned) one ck_f32_attention_backward call needs. */
size_t ck_f32_attention_grad_workspace(const ck_kernels *k, size_t head_dim);

/**
 * The backward of one query head: for query blocks of Br queries and key blocks of Bc keys
 * it recomputes S^T and dP^T on the GEMM micro-kernel, runs attn_grad_step, and accumulates
 * dV += P^T dO, dK += scale dS^T Q (A rows read in place) and dQ^T += scale K^T dS^T, so
 * nothing larger than a Bc x Br tile is formed. Causal key blocks no query of the block sees
 * are skipped. Sums run in a fixed order (deterministic). Cost: 10 * seq_q * visible keys *
 * head_dim flops (5 products) plus one exp per score.
 */
void ck_f32_attention_backward(const ck_kernels *k, const ck_attention_grad_head *g,
                               float *workspace);

/** Writes the accumulators out: dk[j*lddk + d] = dk_acc[j][d], dv likewise, j < seq_k. */
void ck_f32_attention_grad_store_kv(const ck_kernels *k, size_t seq_k, size_t head_dim,
                                    const float *dk_acc, const float *dv_acc, float *dk,
                                    size_t lddk, float *dv, size_t lddv);

#ifdef __cplusplus
}
#endif
#endif
