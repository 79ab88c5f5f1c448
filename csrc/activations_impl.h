/*
 * activations_impl.h: elementwise activations and their derivatives, the
 * body instantiated per element type by activations.c.
 *
 * All take y (n,) and x (n,), contiguous; y may alias x. The sigmoid and
 * its derivative run on the vectorized exp of vecmath.h. They use the
 * formulas of the scalar versions in activate_impl.h, which the fused
 * products call. Neither evaluates exp of a positive number, so neither
 * overflows nor raises a floating-point warning for large negative x.
 */

#include "activate_impl.h"

void
FN(mla_sigmoid)(T *y, const T *x, ptrdiff_t n)
{
    FN(mla_select_vector_kernels)()->sigmoid(y, x, n);
}

void
FN(mla_relu)(T *y, const T *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        y[i] = FN(relu_one)(x[i]);
    }
}

void
FN(mla_sigmoid_derivative)(T *y, const T *x, ptrdiff_t n)
{
    FN(mla_select_vector_kernels)()->sigmoid_derivative(y, x, n);
}

void
FN(mla_relu_derivative)(T *y, const T *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        y[i] = x[i] > 0 ? 1 : 0;
    }
}
