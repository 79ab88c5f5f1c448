/*
 * activations_impl.h: elementwise activations and their derivatives, the
 * body instantiated per element type by activations.c.
 *
 * All take y (n,) and x (n,), contiguous; y may alias x. The scalar
 * formulas live in activate_impl.h: the sigmoid never evaluates exp of a
 * positive number, so it neither overflows nor raises a floating-point
 * warning for large negative x.
 */

#include "activate_impl.h"

void
FN(mla_sigmoid)(T *y, const T *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        y[i] = FN(sigmoid_one)(x[i]);
    }
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
    for (ptrdiff_t i = 0; i < n; i++) {
        y[i] = FN(sigmoid_derivative_one)(x[i]);
    }
}

void
FN(mla_relu_derivative)(T *y, const T *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        y[i] = x[i] > 0 ? 1 : 0;
    }
}
