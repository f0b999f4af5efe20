/*
 * attend_kernels_backward.h — the training kernels' part of the C contract: optimizer steps,
 * gradient-norm helpers, and the backward passes of the non-attention layers. Included by
 * attend_kernels.h (the slots live at the end of ck_kernels); the same rules hold: a kernel is
 * a total function on pointers, sizes and row strides, never allocates, never fails, is
 * single-threaded, and the caller (Swift, Sources/Attend/Native/TrainingKernels.swift)
 * validates shapes and splits the work so results do not depend on the thread count.
 */
#ifndef ATTEND_KERNELS_BACKWARD_H
#define ATTEND_KERNELS_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- optimizers */

/**
 * The float32 constants of one AdamW step (torch.optim.AdamW, non-amsgrad), computed by the
 * caller in double exactly as PyTorch's _single_tensor_adam does and rounded to float once:
 *   decay            1 - lr * weight_decay       (1: no decay; then param is not multiplied)
 *   beta1_weight     1 - beta1                   (the lerp weight of the first moment)
 *   beta2            beta2
 *   one_minus_beta2  1 - beta2
 *   bias2_sqrt       sqrt(1 - beta2^step)
 *   eps              eps
 *   neg_step_size    -lr / (1 - beta1^step)
 */
typedef struct ck_adamw_params {
    float decay, beta1_weight, beta2, one_minus_beta2, bias2_sqrt, eps, neg_step_size;
} ck_adamw_params;

/**
 * One AdamW step on n parameters, in place, in PyTorch's float32 operation order:
 *   param = param * decay                                   (skipped when decay == 1)
 *   m     = w < 0.5 ? fma(w, g - m, m) : fma(w - 1, g - m, g)   (w = beta1_weight: m.lerp_(g, w))
 *   v     = fma(one_minus_beta2 * g, g, v * beta2)          (v.mul_(beta2).addcmul_(g, g, 1-beta2))
 *   denom = sqrt(v) / bias2_sqrt + eps
 *   param = param + (neg_step_size * m) / denom             (param.addcdiv_(m, denom, -step))
 * Variants with fused multiply-add reproduce PyTorch's CPU moments bit for bit, and the
 * parameter too except where PyTorch's own float32 sqrt (MKL vector math, within 1 ulp but
 * not correctly rounded; this sqrt is) differs; the portable scalar variant rounds each fma's
 * product separately. Cost: one pass, 1 sqrt and 1 division per element.
 */
typedef void (*ck_f32_adamw_fn)(size_t n, float *param, const float *grad, float *m, float *v,
                                const ck_adamw_params *p);

/**
 * The float32 constants of one SGD step (torch.optim.SGD):
 *   weight_decay     added as grad + weight_decay * param (0: none)
 *   momentum         0: no momentum buffer (buf may be NULL)
 *   dampening_weight 1 - dampening
 *   neg_lr           -lr
 *   nesterov         nonzero: Nesterov momentum
 *   first_step       nonzero: the buffer does not exist yet; it is set to the gradient
 *                    (PyTorch clones the gradient, without dampening)
 */
typedef struct ck_sgd_params {
    float weight_decay, momentum, dampening_weight, neg_lr;
    int nesterov, first_step;
} ck_sgd_params;

/**
 * One SGD step on n parameters, in place, in PyTorch's float32 operation order:
 *   g     = weight_decay != 0 ? fma(param, weight_decay, grad) : grad
 *   buf   = first_step ? g : fma(g, dampening_weight, buf * momentum)     (momentum != 0)
 *   g     = nesterov ? fma(buf, momentum, g) : buf                         (momentum != 0)
 *   param = fma(g, neg_lr, param)
 * grad is not written. Cost: one pass.
 */
typedef void (*ck_f32_sgd_fn)(size_t n, float *param, const float *grad, float *buf,
                              const ck_sgd_params *p);

/**
 * Sum of x[i]^2 over i < n, each square exact in double and summed in double lanes in a fixed
 * order (deterministic for a given variant and n): the global gradient norm for clipping is
 * sqrt of the sum over every tensor. Cost: one pass.
 */
typedef double (*ck_f32_sum_squares_fn)(size_t n, const float *x);

/** x[i] *= s for i < n (gradient clipping's rescale; PyTorch's grad.mul_(coef)). */
typedef void (*ck_f32_scale_fn)(size_t n, float s, float *x);

/* ---------------------------------------------------------------- softmax cross-entropy */

/**
 * Fused softmax cross-entropy over vocabulary rows (PyTorch's F.cross_entropy with
 * ignore_index and label_smoothing), the loss and its gradient in one kernel. For each row r
 * (logits x at logits + r*ld, vocab floats; target t = targets[r]):
 *   lse     = log sum_j exp(x_j)
 *   loss[r] = (1 - smoothing) * (lse - x_t) + smoothing * (lse - mean_j x_j)   (0 if ignored)
 *   dlogits[r*ldd + j] = grad_scale * (softmax_j - (1 - smoothing) [j == t] - smoothing / vocab)
 * A row is ignored when t == ignore_index: its loss is 0 and its gradient row is zeros.
 * Every other target must be in [0, vocab) (the caller checks). The mean loss is the sum of
 * loss[] over the counted rows divided by their count, and its gradient is grad_scale =
 * upstream / count: the caller counts first, so the gradient is written in the same pass.
 * dlogits may be NULL (loss only) or alias logits (same stride). loss is per row (float).
 * Two passes over the row: the first reads it once in L1-sized chunks (chunk max, then the
 * chunk's exp-sum against the running max, rescaled when the max grows; sums in double
 * across chunks), the second writes the gradient. Probabilities below 2^-126 become 0; a NaN
 * logit makes the row's loss and gradient NaN; +inf logits are not supported (NaN).
 * Cost: 1 exp per element per pass with a gradient (1 without).
 */
typedef void (*ck_f32_cross_entropy_fn)(size_t rows, size_t vocab, const float *logits, size_t ld,
                                        const int32_t *targets, int32_t ignore_index,
                                        float smoothing, float grad_scale, float *loss,
                                        float *dlogits, size_t ldd);

/* ---------------------------------------------------------------- layer norm / RMS norm */

/**
 * The training forward of ck_f32_norm_rows (same arithmetic, so y is bitwise the inference
 * kernel's), saving what the backward needs:
 *   t[r]    = x[r] + residual[r]  written when t != NULL (the residual stream; the backward's
 *             input), else only used internally
 *   mean[r] = mean of t[r] (0 for RMS norm), rstd[r] = 1 / sqrt(var + eps), one float per row
 * y and t may each alias x or residual (same stride), not each other. Cost: 3 passes.
 */
typedef void (*ck_f32_norm_rows_train_fn)(int rms, size_t rows, size_t n, const float *x,
                                          size_t ldx, const float *residual, size_t ldr,
                                          const float *gamma, const float *beta, float eps,
                                          float *y, size_t ldy, float *t, size_t ldt, float *mean,
                                          float *rstd);

/**
 * Backward of y = norm(t) * gamma + beta per row, from the forward's t, mean and rstd:
 *   xhat = (t - mean) * rstd,  g = dy * gamma
 *   layer norm: dt = rstd * (g - mean(g) - xhat * mean(g * xhat))
 *   RMS norm:   dt = rstd * (g - xhat * mean(g * xhat))                 (mean[] is ignored)
 *   dx[r] = dt (accumulate == 0) or dx[r] += dt (accumulate != 0: onto the residual stream's
 *   gradient, so the residual branch's gradient is added in the same pass; t = x + residual
 *   gives both inputs the same dt)
 *   dgamma[i] += sum_r dy * xhat,  dbeta[i] += sum_r dy   (each NULL: not computed), in row
 *   order: callers splitting rows give each piece its own zeroed dgamma/dbeta and add the
 *   pieces in a fixed order.
 * dx may alias dy (same stride) when not accumulating. Row sums in float lanes.
 * Cost: 2 passes over dy and t per row.
 */
typedef void (*ck_f32_norm_backward_fn)(int rms, size_t rows, size_t n, const float *dy,
                                        size_t lddy, const float *t, size_t ldt, const float *mean,
                                        const float *rstd, const float *gamma, float *dx,
                                        size_t lddx, int accumulate, float *dgamma, float *dbeta);

/* ---------------------------------------------------------------- activation backward */

/**
 * dx[i] = dy[i] * f'(x[i]), i < n, for the CK_ACT_* kinds of ck_f32_activation:
 *   relu       1 if x > 0, else 0 (PyTorch's threshold_backward: 0 at x == 0)
 *   gelu       Phi(x) + x * phi(x)   (Phi through the forward's erfc, phi = exp(-x^2/2)/sqrt(2pi))
 *   gelu_tanh  s + 2 x s (1 - s) * sqrt(2/pi) (1 + 3 * 0.044715 x^2),  s = (1 + tanh(u)) / 2
 *   silu       s + x s (1 - s),  s = sigmoid(x)
 * dx may alias x or dy. Finite for finite x up to |x| ~ 1e18 (x^2 overflows beyond); in the
 * far negative tails, derivatives below about 2^-110 (gelu_tanh, silu: where exp overflows)
 * become 0.
 * Cost: one pass, one exp (two for gelu) per element.
 */
typedef void (*ck_f32_activation_backward_fn)(int kind, size_t n, const float *x, const float *dy,
                                              float *dx);

/**
 * Backward of a gated unit y = f(a) * b (T5's gated-gelu: f = gelu_tanh; SwiGLU: f = silu; any
 * CK_ACT_* kind): da = dy * b * f'(a), db = dy * f(a), i < n. da may alias a or dy, db may
 * alias b or dy (not da). Cost: one pass, the forward's and the derivative's exps.
 */
typedef void (*ck_f32_gated_backward_fn)(int kind, size_t n, const float *a, const float *b,
                                         const float *dy, float *da, float *db);

/* ---------------------------------------------------------------- embedding backward */

/**
 * Embedding gradient: for r = 0, 1, ..., rows - 1 in order, unless ids[r] == padding_id:
 *   dtable[ids[r]*ldt + j] += dout[r*ldo + j],  j < dim
 * Ids must index rows of dtable (the caller checks). Each element's sum runs in row order,
 * so splitting the columns (dim) over threads, each call a column range, gives the same bits
 * for any thread count. padding_id < 0: no padding. Cost: rows * dim adds.
 */
typedef void (*ck_f32_embedding_backward_fn)(size_t rows, size_t dim, const int32_t *ids,
                                             const float *dout, size_t ldo, float *dtable,
                                             size_t ldt, int32_t padding_id);

#ifdef __cplusplus
}
#endif
#endif
