/*
 * py_attention.c: wrapper of scaled dot-product attention (attention.c).
 */
#include "wrappers.h"

/*
 * Return weights (qk_dims..., lq, lk) = softmax(Q K^T / sqrt(d)) for the
 * batch of Q and K alone (qk_ndim dimensions in qk_dims, which needs room
 * for two more), computed as attention with no value columns. The wrapper
 * needs it when V has batch dimensions that Q and K lack: the weights do
 * not depend on V and so do not extend along them.
 */
static PyArrayObject *
qk_weights(const char *func, PyArrayObject *q, PyArrayObject *k,
           int qk_ndim, npy_intp *qk_dims, ptrdiff_t lq, ptrdiff_t lk,
           ptrdiff_t d, int typenum)
{
    ptrdiff_t batch;
    if (mla_shape_size(func, qk_dims, qk_ndim, &batch) < 0) {
        return NULL;
    }
    qk_dims[qk_ndim] = lq;
    qk_dims[qk_ndim + 1] = lk;
    PyArrayObject *weights =
        (PyArrayObject *)PyArray_SimpleNew(qk_ndim + 2, qk_dims, typenum);
    if (weights == NULL || PyArray_SIZE(weights) == 0) {
        return weights;
    }

    /* Q is passed as V, whose dv = 0 columns are never read. */
    PyArrayObject *operands[3] = {q, k, q};
    int core[3] = {2, 2, 2};
    ptrdiff_t *offsets =
        mla_batch_offsets(operands, 3, core, qk_ndim, qk_dims, batch);
    if (offsets == NULL) {
        Py_DECREF(weights);
        return NULL;
    }
    int qn = PyArray_NDIM(q), kn = PyArray_NDIM(k);
    mla_status status;
    Py_BEGIN_ALLOW_THREADS
    status = MLA_DISPATCH(
        typenum, mla_attention, PyArray_DATA(weights), PyArray_DATA(weights),
        PyArray_DATA(q), mla_stride(q, qn - 2), mla_stride(q, qn - 1),
        PyArray_DATA(k), mla_stride(k, kn - 2), mla_stride(k, kn - 1),
        PyArray_DATA(q), 0, 0, offsets, batch, lq, lk, d, 0);
    Py_END_ALLOW_THREADS
    PyMem_Free(offsets);
    if (status != MLA_OK) {
        Py_DECREF(weights);
        return (PyArrayObject *)mla_raise_status(func, status);
    }
    return weights;
}

MLA_WRAPPER(scaled_dot_product_attention)
{
    static const char *func = "scaled_dot_product_attention";
    static const char *const names[] = {"Q", "K", "V"};
    PyObject *values[3];
    /* All three are read through their strides: views cost no copy. */
    mla_array_arg arrays[3] = {
        {"Q", NULL, 1, NULL}, {"K", NULL, 1, NULL}, {"V", NULL, 1, NULL}};
    PyArrayObject *out = NULL, *weights = NULL;
    ptrdiff_t *offsets = NULL;
    npy_intp dims[MLA_MAXDIMS + 2];
    int batch_ndim, typenum;
    mla_status status = MLA_OK;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 3, 3, values) < 0) {
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        arrays[i].obj = values[i];
    }
    mla_array_arg *q = &arrays[0], *k = &arrays[1], *v = &arrays[2];

    /* Q (..., Lq, d), K (..., Lk, d), V (..., Lk, dv); batches broadcast. */
    int core[3] = {2, 2, 2};
    if (mla_convert(func, arrays, 3, &typenum) < 0 ||
        mla_check_ndim(func, q, 2, -1) < 0 ||
        mla_check_ndim(func, k, 2, -1) < 0 ||
        mla_check_ndim(func, v, 2, -1) < 0 ||
        mla_check_dim(func, arrays, 3, k, -1, q, -1) < 0 ||
        mla_check_dim(func, arrays, 3, v, -2, k, -2) < 0 ||
        mla_broadcast_batch(func, arrays, 3, core, &batch_ndim, dims) < 0) {
        goto fail;
    }
    int qk_ndim;
    npy_intp qk_dims[MLA_MAXDIMS + 2];
    if (mla_broadcast_batch(func, arrays, 2, core, &qk_ndim, qk_dims) < 0) {
        goto fail;
    }
    int v_only_batch = qk_ndim != batch_ndim ||
                       !PyArray_CompareLists(qk_dims, dims, batch_ndim);
    int qn = PyArray_NDIM(q->arr), vn = PyArray_NDIM(v->arr);
    ptrdiff_t lq = PyArray_DIM(q->arr, qn - 2), d = PyArray_DIM(q->arr, qn - 1);
    ptrdiff_t lk = PyArray_DIM(v->arr, vn - 2), dv = PyArray_DIM(v->arr, vn - 1);
    ptrdiff_t batch;
    if (mla_shape_size(func, dims, batch_ndim, &batch) < 0) {
        goto fail;
    }

    dims[batch_ndim] = lq;
    dims[batch_ndim + 1] = dv;
    out = (PyArrayObject *)PyArray_SimpleNew(batch_ndim + 2, dims, typenum);
    dims[batch_ndim + 1] = lk;
    weights = (PyArrayObject *)PyArray_SimpleNew(batch_ndim + 2, dims, typenum);
    if (out == NULL || weights == NULL) {
        goto fail;
    }

    if (PyArray_SIZE(out) > 0 || PyArray_SIZE(weights) > 0) {
        PyArrayObject *operands[3] = {q->arr, k->arr, v->arr};
        offsets = mla_batch_offsets(operands, 3, core, batch_ndim, dims, batch);
        if (offsets == NULL) {
            goto fail;
        }
        Py_BEGIN_ALLOW_THREADS
        int kn = PyArray_NDIM(k->arr);
        status = MLA_DISPATCH(
            typenum, mla_attention, PyArray_DATA(out), PyArray_DATA(weights),
            PyArray_DATA(q->arr), mla_stride(q->arr, qn - 2),
            mla_stride(q->arr, qn - 1), PyArray_DATA(k->arr),
            mla_stride(k->arr, kn - 2), mla_stride(k->arr, kn - 1),
            PyArray_DATA(v->arr), mla_stride(v->arr, vn - 2),
            mla_stride(v->arr, vn - 1), offsets, batch, lq, lk, d, dv);
        Py_END_ALLOW_THREADS
        if (status != MLA_OK) {
            mla_raise_status(func, status);
            goto fail;
        }
    }

    if (v_only_batch) {
        Py_SETREF(weights, qk_weights(func, q->arr, k->arr, qk_ndim, qk_dims,
                                      lq, lk, d, typenum));
        if (weights == NULL) {
            goto fail;
        }
    }

    PyMem_Free(offsets);
    mla_release(arrays, 3);
    return Py_BuildValue("(NN)", (PyObject *)out, (PyObject *)weights);

fail:
    PyMem_Free(offsets);
    mla_release(arrays, 3);
    Py_XDECREF(out);
    Py_XDECREF(weights);
    return NULL;
}
