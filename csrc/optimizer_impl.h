/*
 * optimizer_impl.h: in-place parameter updates of SGD with momentum and of
 * Adam, one pass over the parameter each, instantiated per element type by
 * optimizer.c. mla.MLP.step calls them through mla._core.
 *
 * Every array has n contiguous elements, and the arrays must not overlap.
 */

/*
 * SGD with momentum in PyTorch's form, per element:
 *     velocity = momentum * velocity + grad
 *     param   -= lr * velocity
 */
void
FN(mla_sgd_update)(T *param, T *velocity, const T *grad, ptrdiff_t n, T lr,
                   T momentum)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = momentum * velocity[i] + grad[i];
        velocity[i] = v;
        param[i] -= lr * v;
    }
}

/*
 * Adam, per element, with the bias corrections folded into the scalars by
 * the caller (step_size = lr sqrt(1 - beta2^t) / (1 - beta1^t) and
 * eps = eps sqrt(1 - beta2^t)):
 *     first   = beta1 * first + (1 - beta1) * grad
 *     second  = beta2 * second + (1 - beta2) * grad^2
 *     param  -= step_size * first / (sqrt(second) + eps)
 */
void
FN(mla_adam_update)(T *param, T *first, T *second, const T *grad, ptrdiff_t n,
                    T step_size, T beta1, T beta2, T eps)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T g = grad[i];
        T m = beta1 * first[i] + (1 - beta1) * g;
        T v = beta2 * second[i] + (1 - beta2) * (g * g);
        first[i] = m;
        second[i] = v;
        param[i] -= step_size * m / (SQRT(v) + eps);
    }
}
