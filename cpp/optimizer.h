// optimizer.h: one fused kernel per Keras 3 optimizer update (optimizer.cpp), in place.
// Same conventions as cnnkit.h: outputs (the arrays updated) first, float32, kernels trust
// their arguments.
//
// Every update kernel reads each value once and does, in Keras 3's order:
//   g = clip(grad, -clipvalue, clipvalue) * grad_scale   (clipvalue / clipnorm, global_clipnorm)
//   p = p - p * weight_decay * lr                        (decoupled weight decay, before the step)
//   p = the optimizer's step of p with g                 (its slots updated)
//   ema = ema_momentum * ema + (1 - ema_momentum) * p    (use_ema, after the step)
// so that one update is one pass over memory. The caller computes grad_scale from the norms
// (sum_squares) before the pass: the norm needs every gradient value before any is used.
#pragma once
#include <cstdint>

namespace cnnkit {

// What every optimizer does around its own step (BaseOptimizer's arguments).
struct UpdateCommon {
    float lr = 0;              // this step's learning rate (a schedule already evaluated)
    float clipvalue = 0;       // > 0: clip each gradient value into [-clipvalue, clipvalue]
    float grad_scale = 1;      // the clipnorm / global_clipnorm factor (1: no clipping)
    float weight_decay = 0;    // 0: no decay
    float* ema = nullptr;      // the moving average of the parameter (use_ema), or null
    float ema_momentum = 0;    // 0 on the first step, as Keras (the average starts at the value)
};

// Sum of x*x in double, summed in a fixed number of chunks in a fixed order, so that the result
// does not depend on the number of threads. x is (n,)
double sum_squares(const float* x, int64_t n);

// SGD: plain when momentum_buf is null, else momentum (optionally Nesterov).
void sgd_update(float* param, float* momentum_buf, const float* grad, int64_t n,
                const UpdateCommon& c, float momentum, bool nesterov);
// RMSprop: momentum_buf null when momentum == 0, average_grad null unless centered.
void rmsprop_update(float* param, float* velocity, float* momentum_buf, float* average_grad,
                    const float* grad, int64_t n, const UpdateCommon& c, float rho,
                    float momentum, float eps);
// Adam and AdamW (AdamW is Adam with weight decay); velocity_hat not null for amsgrad.
// step is the 1-based number of this update.
void adam_update(float* param, float* m, float* v, float* velocity_hat, const float* grad,
                 int64_t n, const UpdateCommon& c, float beta1, float beta2, float eps,
                 int64_t step);
// Adagrad: accumulator starts at initial_accumulator_value.
void adagrad_update(float* param, float* accumulator, const float* grad, int64_t n,
                    const UpdateCommon& c, float eps);
// Nadam, with the step's scalars computed by the caller (they depend on the product of the
// momentum schedule over all steps so far): m_hat = m_coef * m + g_coef * g,
// v_hat = v / v_divisor.
void nadam_update(float* param, float* m, float* v, const float* grad, int64_t n,
                  const UpdateCommon& c, float beta1, float beta2, float eps, float m_coef,
                  float g_coef, float v_divisor);
// Adamax (the infinity-norm Adam). step is the 1-based number of this update.
void adamax_update(float* param, float* m, float* u, const float* grad, int64_t n,
                   const UpdateCommon& c, float beta1, float beta2, float eps, int64_t step);

}  // namespace cnnkit
