/*
 * py_similarity.c: wrappers of the cosine-similarity kernels
 * (similarity.c).
 */
#include "wrappers.h"

MLA_WRAPPER(cosine_similarity)
{
    static const char *func = "cosine_similarity";
    static const char *const names[] = {"u", "v"};
    PyObject *values[2];
    /* Both vectors are read through their strides. */
    mla_array_arg arrays[2] = {{"u", NULL, 1, NULL}, {"v", NULL, 1, NULL}};
    double result;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 2, 2, values) < 0) {
        return NULL;
    }
    arrays[0].obj = values[0];
    arrays[1].obj = values[1];
    mla_array_arg *u = &arrays[0], *v = &arrays[1];

    /* u (n,), v (n,). */
    if (mla_convert(func, arrays, 2, &typenum) < 0 ||
        mla_check_ndim(func, u, 1, 1) < 0 || mla_check_ndim(func, v, 1, 1) < 0 ||
        mla_check_dim(func, arrays, 2, u, 0, v, 0) < 0) {
        mla_release(arrays, 2);
        return NULL;
    }

    Py_BEGIN_ALLOW_THREADS
    result = MLA_DISPATCH(typenum, mla_cosine_similarity, PyArray_DATA(u->arr),
                          mla_stride(u->arr, 0), PyArray_DATA(v->arr),
                          mla_stride(v->arr, 0), PyArray_DIM(u->arr, 0));
    Py_END_ALLOW_THREADS

    mla_release(arrays, 2);
    return PyFloat_FromDouble(result);
}

MLA_WRAPPER(cosine_similarity_matrix)
{
    static const char *func = "cosine_similarity_matrix";
    static const char *const names[] = {"X", "Y"};
    PyObject *values[2];
    mla_array_arg arrays[2] = {{"X", NULL, 0, NULL}, {"Y", NULL, 0, NULL}};
    PyArrayObject *s = NULL;
    mla_status status;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 2, 1, values) < 0) {
        return NULL;
    }
    /* Y None, or the very object X: the rows of X against themselves. */
    int self = values[1] == NULL || values[1] == Py_None ||
               values[1] == values[0];
    int count = self ? 1 : 2;
    arrays[0].obj = values[0];
    arrays[1].obj = values[1];
    mla_array_arg *x = &arrays[0], *y = &arrays[1];

    /* X (n, d) and Y (m, d) give S (n, m); Y = X gives S (n, n). */
    if (mla_convert(func, arrays, count, &typenum) < 0 ||
        mla_check_ndim(func, x, 2, 2) < 0 ||
        (!self && (mla_check_ndim(func, y, 2, 2) < 0 ||
                   mla_check_dim(func, arrays, 2, x, 1, y, 1) < 0))) {
        goto fail;
    }
    ptrdiff_t n = PyArray_DIM(x->arr, 0), d = PyArray_DIM(x->arr, 1);
    ptrdiff_t m = self ? n : PyArray_DIM(y->arr, 0);
    npy_intp dims[2] = {n, m};
    s = (PyArrayObject *)PyArray_SimpleNew(2, dims, typenum);
    if (s == NULL) {
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    if (self) {
        status = MLA_DISPATCH(typenum, mla_cosine_similarity_matrix,
                              PyArray_DATA(s), PyArray_DATA(x->arr), n, d);
    }
    else {
        status = MLA_DISPATCH(typenum, mla_cosine_similarity_cross,
                              PyArray_DATA(s), PyArray_DATA(x->arr), n,
                              PyArray_DATA(y->arr), m, d);
    }
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }
    mla_release(arrays, 2);
    return (PyObject *)s;

fail:
    mla_release(arrays, 2);
    Py_XDECREF(s);
    return NULL;
}
