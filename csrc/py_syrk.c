/*
 * py_syrk.c: _syrk(A), a test hook for the lower-triangle product of
 * syrk.c.
 */
#include "wrappers.h"

#include <math.h>

/*
 * _syrk(A): C = A A^T for A (n, k) of any layout, read through its
 * strides. C starts as NaN and is returned as the kernel leaves it, so a
 * test can check both the lower triangle and what stays unwritten.
 */
MLA_WRAPPER(syrk)
{
    static const char *func = "_syrk";
    static const char *const names[] = {"A"};
    PyObject *values[1];
    mla_array_arg a = {"A", NULL, 1, NULL};
    PyArrayObject *c = NULL;
    mla_status status;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 1, 1, values) < 0) {
        return NULL;
    }
    a.obj = values[0];
    if (mla_convert(func, &a, 1, &typenum) < 0 ||
        mla_check_ndim(func, &a, 2, 2) < 0) {
        goto fail;
    }
    ptrdiff_t n = PyArray_DIM(a.arr, 0), k = PyArray_DIM(a.arr, 1);
    npy_intp dims[2] = {n, n};
    c = (PyArrayObject *)PyArray_SimpleNew(2, dims, typenum);
    if (c == NULL) {
        goto fail;
    }
    PyObject *nan = PyFloat_FromDouble(NAN);
    if (nan == NULL || PyArray_FillWithScalar(c, nan) < 0) {
        Py_XDECREF(nan);
        goto fail;
    }
    Py_DECREF(nan);

    Py_BEGIN_ALLOW_THREADS
    status = MLA_DISPATCH(typenum, mla_syrk, PyArray_DATA(c), n,
                          PyArray_DATA(a.arr), mla_stride(a.arr, 0),
                          mla_stride(a.arr, 1), n, k);
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }
    mla_release(&a, 1);
    return (PyObject *)c;

fail:
    mla_release(&a, 1);
    Py_XDECREF(c);
    return NULL;
}
