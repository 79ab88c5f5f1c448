/*
 * py_matmul.c: wrappers of the matrix products (gemm.c): matmul with
 * np.matmul's semantics, and the textbook triple loop.
 */
#include "gemm.h"
#include "wrappers.h"

/* [lo, hi) byte range an array's elements can touch. */
static void
memory_bounds(PyArrayObject *arr, char **lo, char **hi)
{
    char *start = PyArray_BYTES(arr), *end = PyArray_BYTES(arr);
    for (int d = 0; d < PyArray_NDIM(arr); d++) {
        npy_intp extent = (PyArray_DIM(arr, d) - 1) * PyArray_STRIDE(arr, d);
        if (extent < 0) {
            start += extent;
        }
        else {
            end += extent;
        }
    }
    *lo = start;
    *hi = end + PyArray_ITEMSIZE(arr);
}

static int
may_overlap(PyArrayObject *a, PyArrayObject *b)
{
    char *alo, *ahi, *blo, *bhi;
    if (PyArray_SIZE(a) == 0 || PyArray_SIZE(b) == 0) {
        return 0;
    }
    memory_bounds(a, &alo, &ahi);
    memory_bounds(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

/*
 * Return 1 if no two elements of arr share an address, proven by ordering
 * the axes by stride: each |stride| must be at least the extent of the
 * smaller axes below it. Every layout NumPy creates, transposed, reversed
 * or sliced, passes; only hand-made overlapping strides fail.
 */
static int
strides_are_nested(PyArrayObject *arr)
{
    int ndim = PyArray_NDIM(arr), order[NPY_MAXDIMS];
    int count = 0;
    for (int d = 0; d < ndim; d++) {
        if (PyArray_DIM(arr, d) > 1) {
            order[count++] = d;
        }
    }

    /* Insertion sort of the axes that matter by |stride|. */
    for (int i = 1; i < count; i++) {
        int axis = order[i], j = i;
        npy_intp key = PyArray_STRIDE(arr, axis);
        key = key < 0 ? -key : key;
        while (j > 0) {
            npy_intp prev = PyArray_STRIDE(arr, order[j - 1]);
            if ((prev < 0 ? -prev : prev) <= key) {
                break;
            }
            order[j] = order[j - 1];
            j--;
        }
        order[j] = axis;
    }

    npy_intp extent = PyArray_ITEMSIZE(arr);
    for (int i = 0; i < count; i++) {
        npy_intp stride = PyArray_STRIDE(arr, order[i]);
        stride = stride < 0 ? -stride : stride;
        if (stride < extent) {
            return 0;
        }
        extent = stride * PyArray_DIM(arr, order[i]);
    }
    return 1;
}

/*
 * Check that out can receive a result of shape dims and type typenum:
 * an ndarray of exactly that shape and dtype, writeable, aligned, native
 * byte order, and with no two elements at the same address.
 */
static int
check_out(const char *func, PyObject *out, int ndim, const npy_intp *dims,
          int typenum)
{
    char want[MLA_SHAPE_CHARS], got[MLA_SHAPE_CHARS];
    if (!PyArray_Check(out)) {
        PyErr_Format(PyExc_TypeError, "%s: out must be a numpy.ndarray; got %.100s",
                     func, Py_TYPE(out)->tp_name);
        return -1;
    }
    PyArrayObject *arr = (PyArrayObject *)out;
    if (PyArray_TYPE(arr) != typenum || !PyArray_ISNOTSWAPPED(arr)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: out must have dtype %s in native byte order, the "
                     "dtype of the result; got dtype %S",
                     func, typenum == NPY_FLOAT ? "float32" : "float64",
                     (PyObject *)PyArray_DESCR(arr));
        return -1;
    }
    mla_format_shape(want, ndim, dims);
    mla_format_shape(got, PyArray_NDIM(arr), PyArray_DIMS(arr));
    if (PyArray_NDIM(arr) != ndim ||
        !PyArray_CompareLists(PyArray_DIMS(arr), dims, ndim)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: out must have the result's shape %s; got shape %s",
                     func, want, got);
        return -1;
    }
    if (!PyArray_ISWRITEABLE(arr)) {
        PyErr_Format(PyExc_ValueError, "%s: out must be writeable", func);
        return -1;
    }
    if (!PyArray_ISALIGNED(arr)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: out must be aligned to its dtype (as arrays made "
                     "by numpy.empty are)",
                     func);
        return -1;
    }
    if (PyArray_SIZE(arr) > 0 && !strides_are_nested(arr)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: out must not have overlapping elements; pass an "
                     "array made by numpy.empty or a slice of one",
                     func);
        return -1;
    }
    return 0;
}

static const char *const matmul_names[] = {"A", "B", "out"};

MLA_WRAPPER(matmul)
{
    static const char *func = "matmul";
    PyObject *values[3];
    mla_array_arg arrays[2] = {{"A", NULL, 1, NULL}, {"B", NULL, 1, NULL}};
    PyArrayObject *c = NULL, *target = NULL;
    ptrdiff_t *offsets = NULL;
    npy_intp dims[MLA_MAXDIMS + 2];
    int batch_ndim, typenum;
    mla_status status = MLA_OK;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, matmul_names, 3, 2,
                       values) < 0) {
        return NULL;
    }
    PyObject *out = values[2] == Py_None ? NULL : values[2];
    arrays[0].obj = values[0];
    arrays[1].obj = values[1];
    mla_array_arg *a = &arrays[0], *b = &arrays[1];

    if (mla_convert(func, arrays, 2, &typenum) < 0 ||
        mla_check_ndim(func, a, 1, -1) < 0 ||
        mla_check_ndim(func, b, 1, -1) < 0) {
        goto fail;
    }

    /* A 1-D operand is a row (A) or a column (B) that the result drops. */
    int a_vector = PyArray_NDIM(a->arr) == 1;
    int b_vector = PyArray_NDIM(b->arr) == 1;
    int core[3] = {a_vector ? 1 : 2, b_vector ? 1 : 2, 0};
    if (mla_check_dim(func, arrays, 2, a, -1, b, b_vector ? -1 : -2) < 0 ||
        mla_broadcast_batch(func, arrays, 2, core, &batch_ndim, dims) < 0) {
        goto fail;
    }
    ptrdiff_t m = a_vector ? 1 : PyArray_DIM(a->arr, PyArray_NDIM(a->arr) - 2);
    ptrdiff_t k = PyArray_DIM(a->arr, PyArray_NDIM(a->arr) - 1);
    ptrdiff_t n = b_vector ? 1 : PyArray_DIM(b->arr, PyArray_NDIM(b->arr) - 1);
    int ndim = batch_ndim;
    ptrdiff_t batch;
    if (mla_shape_size(func, dims, batch_ndim, &batch) < 0) {
        goto fail;
    }
    if (!a_vector) {
        dims[ndim++] = m;
    }
    if (!b_vector) {
        dims[ndim++] = n;
    }

    /* Compute into out, or into a fresh array when out may alias an input. */
    if (out != NULL) {
        if (check_out(func, out, ndim, dims, typenum) < 0) {
            goto fail;
        }
        target = (PyArrayObject *)out;
        Py_INCREF(target);
        if (!may_overlap(target, a->arr) && !may_overlap(target, b->arr)) {
            c = target;
            Py_INCREF(c);
        }
    }
    if (c == NULL) {
        c = (PyArrayObject *)PyArray_SimpleNew(ndim, dims, typenum);
        if (c == NULL) {
            goto fail;
        }
    }

    if (PyArray_SIZE(c) > 0) {
        /* Core strides of C: the result drops the axis of a 1-D operand. */
        int cn = PyArray_NDIM(c);
        ptrdiff_t rs_c = 0, cs_c = 0;
        if (!a_vector && !b_vector) {
            rs_c = mla_stride(c, cn - 2);
            cs_c = mla_stride(c, cn - 1);
        }
        else if (!a_vector) {
            rs_c = mla_stride(c, cn - 1);
        }
        else if (!b_vector) {
            cs_c = mla_stride(c, cn - 1);
        }
        int an = PyArray_NDIM(a->arr), bn = PyArray_NDIM(b->arr);
        ptrdiff_t rs_a = a_vector ? 0 : mla_stride(a->arr, an - 2);
        ptrdiff_t cs_a = mla_stride(a->arr, an - 1);
        ptrdiff_t rs_b = mla_stride(b->arr, bn - (b_vector ? 1 : 2));
        ptrdiff_t cs_b = b_vector ? 0 : mla_stride(b->arr, bn - 1);

        PyArrayObject *operands[3] = {c, a->arr, b->arr};
        int core_ndim[3] = {ndim - batch_ndim, core[0], core[1]};
        offsets = mla_batch_offsets(operands, 3, core_ndim, batch_ndim, dims,
                                    batch);
        if (offsets == NULL) {
            goto fail;
        }
        ptrdiff_t *c_off = offsets, *a_off = c_off + batch;
        ptrdiff_t *b_off = a_off + batch;

        Py_BEGIN_ALLOW_THREADS
        status = MLA_DISPATCH(typenum, mla_matmul_batched, PyArray_DATA(c),
                              c_off, rs_c, cs_c, PyArray_DATA(a->arr), a_off,
                              rs_a, cs_a, PyArray_DATA(b->arr), b_off, rs_b,
                              cs_b, batch, m, n, k);
        Py_END_ALLOW_THREADS
        if (status != MLA_OK) {
            mla_raise_status(func, status);
            goto fail;
        }
    }

    if (target != NULL && target != c) {
        if (PyArray_CopyInto(target, c) < 0) {
            goto fail;
        }
    }
    PyMem_Free(offsets);
    mla_release(arrays, 2);
    if (target != NULL) {
        Py_DECREF(c);
        return (PyObject *)target;
    }
    return PyArray_Return(c);

fail:
    PyMem_Free(offsets);
    mla_release(arrays, 2);
    Py_XDECREF(c);
    Py_XDECREF(target);
    return NULL;
}

MLA_WRAPPER(matmul_loop)
{
    static const char *func = "matmul_loop";
    PyObject *values[2];
    mla_array_arg arrays[2] = {{"A", NULL, 0, NULL}, {"B", NULL, 0, NULL}};
    PyArrayObject *c = NULL;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, matmul_names, 2, 2,
                       values) < 0) {
        return NULL;
    }
    arrays[0].obj = values[0];
    arrays[1].obj = values[1];
    mla_array_arg *a = &arrays[0], *b = &arrays[1];

    /* A (m, k), B (k, n). */
    if (mla_convert(func, arrays, 2, &typenum) < 0 ||
        mla_check_ndim(func, a, 2, 2) < 0 || mla_check_ndim(func, b, 2, 2) < 0 ||
        mla_check_dim(func, arrays, 2, a, 1, b, 0) < 0) {
        goto fail;
    }
    ptrdiff_t m = PyArray_DIM(a->arr, 0), k = PyArray_DIM(a->arr, 1);
    ptrdiff_t n = PyArray_DIM(b->arr, 1);
    npy_intp dims[2] = {m, n};
    c = (PyArrayObject *)PyArray_SimpleNew(2, dims, typenum);
    if (c == NULL) {
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    MLA_DISPATCH(typenum, mla_matmul_loop, PyArray_DATA(c),
                 PyArray_DATA(a->arr), PyArray_DATA(b->arr), m, n, k);
    Py_END_ALLOW_THREADS

    mla_release(arrays, 2);
    return (PyObject *)c;

fail:
    mla_release(arrays, 2);
    Py_XDECREF(c);
    return NULL;
}

/*
 * Test hook: _set_gemm_avx512_on_avx2(enabled) makes the products run the
 * AVX-512 tiles through their AVX2 emulation while the AVX2 level is
 * selected, and returns the previous setting. ValueError on a CPU or a
 * build without AVX2 kernels.
 */
PyObject *
py_set_gemm_avx512_on_avx2(PyObject *module, PyObject *arg)
{
    (void)module;
    int enabled = PyObject_IsTrue(arg);
    if (enabled < 0) {
        return NULL;
    }
#ifdef MLA_HAVE_X86_KERNELS
    if (mla_cpu_supports(MLA_LEVEL_AVX2)) {
        int previous = mla_gemm_get_avx512_on_avx2();
        mla_gemm_set_avx512_on_avx2(enabled);
        return PyBool_FromLong(previous);
    }
#endif
    PyErr_SetString(PyExc_ValueError,
                    "_set_gemm_avx512_on_avx2: this CPU or build has no AVX2 "
                    "kernels to emulate AVX-512 with");
    return NULL;
}

/*
 * Test hook: _gemm_grid(dtype, m, n, threads) returns (row_units,
 * col_units, row_panels), the work units of the first column block of an
 * m x n product of float32 (dtype "f") or float64 (dtype "d") at the
 * selected level on that many threads.
 */
PyObject *
py_gemm_grid(PyObject *module, PyObject *args)
{
    (void)module;
    const char *dtype;
    Py_ssize_t m, n;
    int threads;
    ptrdiff_t units[3];
    if (!PyArg_ParseTuple(args, "snni:_gemm_grid", &dtype, &m, &n,
                          &threads)) {
        return NULL;
    }
    if (m < 1 || n < 1 || threads < 1 ||
        (dtype[0] != 'f' && dtype[0] != 'd') || dtype[1] != '\0') {
        PyErr_Format(PyExc_ValueError,
                     "_gemm_grid: dtype must be 'f' or 'd' and m, n and "
                     "threads at least 1; got %R, %zd, %zd and %d",
                     PyTuple_GET_ITEM(args, 0), m, n, threads);
        return NULL;
    }
    if (dtype[0] == 'f') {
        mla_gemm_grid_units_f32(m, n, threads, units);
    }
    else {
        mla_gemm_grid_units_f64(m, n, threads, units);
    }
    return Py_BuildValue("(nnn)", (Py_ssize_t)units[0], (Py_ssize_t)units[1],
                         (Py_ssize_t)units[2]);
}

/*
 * Benchmark hook: _gemm_peak_loop(dtype, iterations) runs the peak FLOP/s
 * loop of the selected level in float32 (dtype "f") or float64 (dtype
 * "d") and returns the floating-point operations it did, for the caller to
 * divide by the time it took.
 */
PyObject *
py_gemm_peak_loop(PyObject *module, PyObject *args)
{
    (void)module;
    const char *dtype;
    Py_ssize_t iterations;
    double sink = 0, flops;
    if (!PyArg_ParseTuple(args, "sn:_gemm_peak_loop", &dtype, &iterations)) {
        return NULL;
    }
    if (iterations < 0 || (dtype[0] != 'f' && dtype[0] != 'd') ||
        dtype[1] != '\0') {
        PyErr_Format(PyExc_ValueError,
                     "_gemm_peak_loop: dtype must be 'f' or 'd' and "
                     "iterations >= 0; got %R and %zd",
                     PyTuple_GET_ITEM(args, 0), iterations);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (dtype[0] == 'f') {
        flops = mla_gemm_peak_loop_f32(iterations, &sink);
    }
    else {
        flops = mla_gemm_peak_loop_f64(iterations, &sink);
    }
    Py_END_ALLOW_THREADS
    /* The loop's result is finite; the check keeps it alive. */
    if (sink != sink) {
        PyErr_SetString(PyExc_RuntimeError, "_gemm_peak_loop: NaN result");
        return NULL;
    }
    return PyFloat_FromDouble(flops);
}

/*
 * Return a new reference to obj as a 2-D aligned, native array of
 * typenum that keeps its strides where it can, or NULL with an error.
 */
static PyArrayObject *
as_matrix(const char *func, const char *name, PyObject *obj, int typenum)
{
    PyArrayObject *arr = (PyArrayObject *)PyArray_FromAny(
        obj, PyArray_DescrFromType(typenum), 0, 0,
        NPY_ARRAY_ALIGNED | NPY_ARRAY_NOTSWAPPED | NPY_ARRAY_FORCECAST, NULL);
    if (arr != NULL && PyArray_NDIM(arr) != 2) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be 2-D; got %d dimensions",
                     func, name, PyArray_NDIM(arr));
        Py_CLEAR(arr);
    }
    return arr;
}

/* Check the in-place target C of a test hook; return its typenum or -1. */
static int
check_target(const char *func, PyObject *obj)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: C must be a numpy.ndarray; got %.100s",
                     func, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *c = (PyArrayObject *)obj;
    int typenum = PyArray_TYPE(c);
    if ((typenum != NPY_FLOAT && typenum != NPY_DOUBLE) || PyArray_NDIM(c) != 2 ||
        !PyArray_ISWRITEABLE(c) || !PyArray_ISALIGNED(c) ||
        !PyArray_ISNOTSWAPPED(c)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: C must be a writeable, aligned 2-D float32 or "
                     "float64 array in native byte order",
                     func);
        return -1;
    }
    return typenum;
}

/*
 * Test hook of mla_gemm_update: _gemm_update(C, A, B, alpha, beta) sets
 * C = alpha * A @ B + beta * C in place, C of shape (m, n), A (m, k) and
 * B (k, n) converted to C's dtype. C must not overlap A or B.
 */
PyObject *
py_gemm_update(PyObject *module, PyObject *args)
{
    static const char *func = "_gemm_update";
    PyObject *c_obj, *a_obj, *b_obj;
    PyArrayObject *a = NULL, *b = NULL;
    double alpha, beta;
    mla_status status;
    (void)module;

    if (!PyArg_ParseTuple(args, "OOOdd:_gemm_update", &c_obj, &a_obj, &b_obj,
                          &alpha, &beta)) {
        return NULL;
    }
    int typenum = check_target(func, c_obj);
    if (typenum < 0) {
        return NULL;
    }
    PyArrayObject *c = (PyArrayObject *)c_obj;
    a = as_matrix(func, "A", a_obj, typenum);
    b = a == NULL ? NULL : as_matrix(func, "B", b_obj, typenum);
    if (b == NULL) {
        goto fail;
    }
    ptrdiff_t m = PyArray_DIM(c, 0), n = PyArray_DIM(c, 1);
    ptrdiff_t k = PyArray_DIM(a, 1);
    if (PyArray_DIM(a, 0) != m || PyArray_DIM(b, 0) != k ||
        PyArray_DIM(b, 1) != n) {
        PyErr_Format(PyExc_ValueError,
                     "%s: shapes must be C (m, n), A (m, k), B (k, n)", func);
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    if (typenum == NPY_FLOAT) {
        mla_epilogue_f32 ep = {(float)alpha, NULL, 0, 0, MLA_ACT_LINEAR};
        status = mla_gemm_update_f32(
            PyArray_DATA(c), mla_stride(c, 0), mla_stride(c, 1),
            PyArray_DATA(a), mla_stride(a, 0), mla_stride(a, 1),
            PyArray_DATA(b), mla_stride(b, 0), mla_stride(b, 1), m, n, k,
            (float)beta, &ep);
    }
    else {
        mla_epilogue_f64 ep = {alpha, NULL, 0, 0, MLA_ACT_LINEAR};
        status = mla_gemm_update_f64(
            PyArray_DATA(c), mla_stride(c, 0), mla_stride(c, 1),
            PyArray_DATA(a), mla_stride(a, 0), mla_stride(a, 1),
            PyArray_DATA(b), mla_stride(b, 0), mla_stride(b, 1), m, n, k, beta,
            &ep);
    }
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }
    Py_DECREF(a);
    Py_DECREF(b);
    Py_RETURN_NONE;

fail:
    Py_XDECREF(a);
    Py_XDECREF(b);
    return NULL;
}

/*
 * Test hook of mla_syrk_lower: _syrk_lower(C, A, alpha, beta) sets the
 * lower triangle of C (n, n) to alpha * A @ A.T + beta * C in place, with
 * A (n, k) converted to C's dtype. C must not overlap A.
 */
PyObject *
py_syrk_lower(PyObject *module, PyObject *args)
{
    static const char *func = "_syrk_lower";
    PyObject *c_obj, *a_obj;
    double alpha, beta;
    mla_status status;
    (void)module;

    if (!PyArg_ParseTuple(args, "OOdd:_syrk_lower", &c_obj, &a_obj, &alpha,
                          &beta)) {
        return NULL;
    }
    int typenum = check_target(func, c_obj);
    if (typenum < 0) {
        return NULL;
    }
    PyArrayObject *c = (PyArrayObject *)c_obj;
    PyArrayObject *a = as_matrix(func, "A", a_obj, typenum);
    if (a == NULL) {
        return NULL;
    }
    ptrdiff_t n = PyArray_DIM(c, 0), k = PyArray_DIM(a, 1);
    if (PyArray_DIM(c, 1) != n || PyArray_DIM(a, 0) != n) {
        PyErr_Format(PyExc_ValueError,
                     "%s: shapes must be C (n, n) and A (n, k)", func);
        Py_DECREF(a);
        return NULL;
    }

    Py_BEGIN_ALLOW_THREADS
    if (typenum == NPY_FLOAT) {
        status = mla_syrk_lower_f32(PyArray_DATA(c), mla_stride(c, 0),
                                    mla_stride(c, 1), PyArray_DATA(a),
                                    mla_stride(a, 0), mla_stride(a, 1), n, k,
                                    (float)alpha, (float)beta);
    }
    else {
        status = mla_syrk_lower_f64(PyArray_DATA(c), mla_stride(c, 0),
                                    mla_stride(c, 1), PyArray_DATA(a),
                                    mla_stride(a, 0), mla_stride(a, 1), n, k,
                                    alpha, beta);
    }
    Py_END_ALLOW_THREADS
    Py_DECREF(a);
    if (status != MLA_OK) {
        return mla_raise_status(func, status);
    }
    Py_RETURN_NONE;
}
