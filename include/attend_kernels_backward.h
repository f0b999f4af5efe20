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

#ifdef __cplusplus
}
#endif
#endif
