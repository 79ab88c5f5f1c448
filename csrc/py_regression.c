/*
 * py_regression.c: wrapper of the least-squares kernel (regression.c).
 */
#include "wrappers.h"

#include <math.h>

/* Set *use_qr from method: "normal" (the default, also for NULL) or "qr". */
static int
parse_method(const char *func, PyObject *method, int *use_qr)
{
    *use_qr = 0;
    if (method == NULL) {
        return 0;
    }
    if (!PyUnicode_Check(method)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: method must be a str; got %.100s", func,
                     Py_TYPE(method)->tp_name);
        return -1;
    }
    if (PyUnicode_CompareWithASCIIString(method, "normal") == 0) {
        return 0;
    }
    if (PyUnicode_CompareWithASCIIString(method, "qr") == 0) {
        *use_qr = 1;
        return 0;
    }
    PyErr_Format(PyExc_ValueError,
                 "%s: unknown method %R; expected 'normal' or 'qr'", func,
                 method);
    return -1;
}

MLA_WRAPPER(linear_regression)
{
    static const char *func = "linear_regression";
    static const char *const names[] = {"X", "y", "regularization", "method"};
    PyObject *values[4];
    mla_array_arg arrays[2] = {{"X", NULL, 0, NULL}, {"y", NULL, 0, NULL}};
    PyArrayObject *w = NULL;
    double regularization = 0.0;
    int use_qr = 0;
    mla_status status;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 4, 2, values) < 0 ||
        parse_method(func, values[3], &use_qr) < 0) {
        return NULL;
    }
    if (values[2] != NULL) {
        if (mla_parse_real(func, "regularization", "a real number",
                           values[2], &regularization) < 0) {
            return NULL;
        }
        if (!(regularization >= 0) || !isfinite(regularization)) {
            PyErr_Format(PyExc_ValueError,
                         "%s: regularization must be finite and >= 0; got %R",
                         func, values[2]);
            return NULL;
        }
    }
    arrays[0].obj = values[0];
    arrays[1].obj = values[1];
    mla_array_arg *x = &arrays[0], *y = &arrays[1];

    /*
     * X (n,) is one feature, else X (n, p); y (n,) gives w (p + 1,) and
     * y (n, t) gives w (p + 1, t).
     */
    if (mla_convert(func, arrays, 2, &typenum) < 0 ||
        mla_check_ndim(func, x, 1, 2) < 0 || mla_check_ndim(func, y, 1, 2) < 0 ||
        mla_check_dim(func, arrays, 2, x, 0, y, 0) < 0) {
        goto fail;
    }
    ptrdiff_t n = PyArray_DIM(x->arr, 0);
    ptrdiff_t p = PyArray_NDIM(x->arr) == 2 ? PyArray_DIM(x->arr, 1) : 1;
    ptrdiff_t t = PyArray_NDIM(y->arr) == 2 ? PyArray_DIM(y->arr, 1) : 1;
    npy_intp dims[2] = {p + 1, t};
    w = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(y->arr), dims, typenum);
    if (w == NULL) {
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    if (use_qr) {
        status = MLA_DISPATCH(typenum, mla_linear_regression_qr,
                              PyArray_DATA(w), PyArray_DATA(x->arr),
                              PyArray_DATA(y->arr), n, p, t, regularization);
    }
    else {
        status = MLA_DISPATCH(typenum, mla_linear_regression, PyArray_DATA(w),
                              PyArray_DATA(x->arr), PyArray_DATA(y->arr), n, p,
                              t, regularization);
    }
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }
    mla_release(arrays, 2);
    return (PyObject *)w;

fail:
    mla_release(arrays, 2);
    Py_XDECREF(w);
    return NULL;
}

/*
 * _solve_symmetric(a, b): solve a x = b with the solver of
 * linear_regression, for tests that reach its LU fallback with a matrix no
 * Gram matrix produces (an indefinite one, say). a is (dim, dim) and
 * symmetric, b is (dim,) or (dim, t); both must be float64 (or integer).
 */
MLA_WRAPPER(solve_symmetric)
{
    static const char *func = "_solve_symmetric";
    static const char *const names[] = {"a", "b"};
    PyObject *values[2];
    mla_array_arg arrays[2] = {{"a", NULL, 0, NULL}, {"b", NULL, 0, NULL}};
    PyArrayObject *x = NULL, *a_copy = NULL;
    double *work = NULL;
    ptrdiff_t *pivots = NULL;
    mla_status status;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 2, 2, values) < 0) {
        return NULL;
    }
    arrays[0].obj = values[0];
    arrays[1].obj = values[1];
    if (mla_convert(func, arrays, 2, &typenum) < 0 ||
        mla_check_ndim(func, &arrays[0], 2, 2) < 0 ||
        mla_check_ndim(func, &arrays[1], 1, 2) < 0 ||
        mla_check_dim(func, arrays, 2, &arrays[0], 0, &arrays[0], 1) < 0 ||
        mla_check_dim(func, arrays, 2, &arrays[0], 0, &arrays[1], 0) < 0) {
        goto fail;
    }
    if (typenum != NPY_DOUBLE) {
        PyErr_Format(PyExc_TypeError, "%s: a and b must be float64", func);
        goto fail;
    }
    ptrdiff_t dim = PyArray_DIM(arrays[0].arr, 0);
    PyArrayObject *b = arrays[1].arr;
    ptrdiff_t t = PyArray_NDIM(b) == 2 ? PyArray_DIM(b, 1) : 1;

    /* The solver overwrites both a and b: work on copies. */
    a_copy = (PyArrayObject *)PyArray_NewCopy(arrays[0].arr, NPY_CORDER);
    x = (PyArrayObject *)PyArray_NewCopy(b, NPY_CORDER);
    work = mla_alloc((size_t)dim * (size_t)dim, sizeof(double));
    pivots = mla_alloc((size_t)dim, sizeof(ptrdiff_t));
    if (a_copy == NULL || x == NULL) {
        goto fail;
    }
    if (work == NULL || pivots == NULL) {
        PyErr_NoMemory();
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    status = mla_solve_spd(PyArray_DATA(x), PyArray_DATA(a_copy), work, pivots,
                           dim, t);
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }
    Py_DECREF(a_copy);
    mla_free(work);
    mla_free(pivots);
    mla_release(arrays, 2);
    return (PyObject *)x;

fail:
    Py_XDECREF(a_copy);
    Py_XDECREF(x);
    mla_free(work);
    mla_free(pivots);
    mla_release(arrays, 2);
    return NULL;
}
