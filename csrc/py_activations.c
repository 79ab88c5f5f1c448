/*
 * py_activations.c: wrappers of the elementwise kernels (activations.c).
 * Any shape is accepted; a 0-d input gives a NumPy scalar, as a ufunc does.
 */
#include "wrappers.h"

typedef void (*unary_f32)(float *y, const float *x, ptrdiff_t n);
typedef void (*unary_f64)(double *y, const double *x, ptrdiff_t n);

static PyObject *
elementwise(const char *func, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames, unary_f32 kernel_f32, unary_f64 kernel_f64)
{
    static const char *const names[] = {"x"};
    PyObject *values[1];
    mla_array_arg x = {"x", NULL, 0, NULL};
    PyArrayObject *y = NULL;
    int typenum;

    if (mla_parse_args(func, args, nargs, kwnames, names, 1, 1, values) < 0) {
        return NULL;
    }
    x.obj = values[0];
    if (mla_convert(func, &x, 1, &typenum) < 0) {
        goto fail;
    }
    y = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(x.arr),
                                           PyArray_DIMS(x.arr), typenum);
    if (y == NULL) {
        goto fail;
    }

    ptrdiff_t n = (ptrdiff_t)PyArray_SIZE(x.arr);
    void *out = PyArray_DATA(y), *in = PyArray_DATA(x.arr);
    Py_BEGIN_ALLOW_THREADS
    if (typenum == NPY_FLOAT) {
        kernel_f32(out, in, n);
    }
    else {
        kernel_f64(out, in, n);
    }
    Py_END_ALLOW_THREADS

    mla_release(&x, 1);
    return PyArray_Return(y);

fail:
    mla_release(&x, 1);
    Py_XDECREF(y);
    return NULL;
}

MLA_WRAPPER(sigmoid)
{
    (void)module;
    return elementwise("sigmoid", args, nargs, kwnames, mla_sigmoid_f32,
                       mla_sigmoid_f64);
}

MLA_WRAPPER(relu)
{
    (void)module;
    return elementwise("relu", args, nargs, kwnames, mla_relu_f32,
                       mla_relu_f64);
}

MLA_WRAPPER(sigmoid_derivative)
{
    (void)module;
    return elementwise("sigmoid_derivative", args, nargs, kwnames,
                       mla_sigmoid_derivative_f32, mla_sigmoid_derivative_f64);
}

MLA_WRAPPER(relu_derivative)
{
    (void)module;
    return elementwise("relu_derivative", args, nargs, kwnames,
                       mla_relu_derivative_f32, mla_relu_derivative_f64);
}

/*
 * _exp(x): the vectorized exp of the selected SIMD level, for the tests
 * that measure its error against the C library.
 */
MLA_WRAPPER(exp)
{
    (void)module;
    return elementwise("_exp", args, nargs, kwnames, mla_exp_f32,
                       mla_exp_f64);
}
