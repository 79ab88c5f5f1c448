/*
 * py_attention.c: wrappers of scaled dot-product attention and its
 * gradient (attention.c). Both check their arguments in parse_attention.
 * Q is (..., Lq, d), K (..., Lk, d), V (..., Lk, dv), and the boolean mask
 * broadcasts to (..., Lq, Lk). The batch dimensions of all four broadcast
 * together. The options after the arrays are keyword-only.
 */
#include "wrappers.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* The checked arguments of one call. */
typedef struct {
    /* Q, K, V, then d_output (backward only), then the mask when given. */
    mla_array_arg arrays[5];
    int narrays;
    mla_array_arg *d_output; /* NULL in the forward call */
    mla_array_arg *mask;     /* NULL without a mask */
    int mask_core;           /* dimensions of the mask past the batch */
    int typenum;
    int batch_ndim;
    /* The batch shape, then room for the two dimensions of a matrix. */
    npy_intp dims[MLA_MAXDIMS + 2];
    ptrdiff_t *offsets; /* PyMem: batch offsets of each array, in order */
    mla_attention_args args;
} attention_call;

static int
check_positional(const char *func, Py_ssize_t nargs, int count)
{
    if (nargs > count) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes %d positional arguments but %zd were given; "
                     "pass mask, causal and scale by keyword",
                     func, count, nargs);
        return -1;
    }
    return 0;
}

/*
 * Store the scale in *scale: 1 / sqrt(d) for NULL or None, which is
 * infinite when d == 0, else obj as a float, which must be finite in the
 * dtype of the computation.
 */
static int
parse_scale(const char *func, PyObject *obj, ptrdiff_t d, int typenum,
            double *scale)
{
    if (obj == NULL || obj == Py_None) {
        *scale = 1 / sqrt((double)d);
        return 0;
    }
    double value;
    if (mla_parse_real(func, "scale", "a real number or None", obj,
                       &value) < 0) {
        return -1;
    }
    if (!isfinite(value)) {
        PyErr_Format(PyExc_ValueError, "%s: scale must be finite; got %R",
                     func, obj);
        return -1;
    }
    if (typenum == NPY_FLOAT && fabs(value) > FLT_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "%s: scale must be finite in float32, the dtype the "
                     "inputs are computed in; got %R",
                     func, obj);
        return -1;
    }
    *scale = value;
    return 0;
}

/*
 * Check the mask's last two dimensions against (Lq, Lk): each must be
 * equal or 1, and a mask of fewer than two dimensions broadcasts as NumPy
 * would. Sets call->mask_core.
 */
static int
check_mask(const char *func, attention_call *call)
{
    PyArrayObject *mask = call->mask->arr;
    int ndim = PyArray_NDIM(mask);
    npy_intp rows = ndim >= 2 ? PyArray_DIM(mask, ndim - 2) : 1;
    npy_intp cols = ndim >= 1 ? PyArray_DIM(mask, ndim - 1) : 1;

    call->mask_core = ndim < 2 ? ndim : 2;
    if ((rows != 1 && rows != call->args.lq) ||
        (cols != 1 && cols != call->args.lk)) {
        return mla_shape_error(
            func, call->arrays, call->narrays,
            "the last two dimensions of mask must broadcast to (Lq, Lk) = "
            "(%ld, %ld)",
            (long)call->args.lq, (long)call->args.lk);
    }
    return 0;
}

/* Check that d_output has the shape of the output, (..., Lq, dv). */
static int
check_d_output(const char *func, attention_call *call)
{
    PyArrayObject *d_output = call->d_output->arr;
    int ndim = call->batch_ndim + 2;
    int equal = PyArray_NDIM(d_output) == ndim &&
                PyArray_CompareLists(PyArray_DIMS(d_output), call->dims,
                                     ndim);
    if (equal) {
        return 0;
    }
    char shape[MLA_SHAPE_CHARS];
    mla_format_shape(shape, ndim, call->dims);
    return mla_shape_error(func, call->arrays, call->narrays,
                           "d_output must have the shape of the output %s",
                           shape);
}

/*
 * Convert and check the arrays (the first nfloat of Q, K, V, d_output by
 * the dtype rule, the mask as bool) and the options of a call. On return
 * call->dims contains the output's shape (..., Lq, dv). On failure the
 * caller still releases call.
 */
static int
parse_attention(const char *func, attention_call *call,
                PyObject *const *values, int nfloat, PyObject *mask_obj,
                PyObject *causal_obj, PyObject *scale_obj)
{
    static const char *const names[] = {"Q", "K", "V", "d_output"};
    mla_attention_args *a = &call->args;

    for (int i = 0; i < nfloat; i++) {
        call->arrays[i].name = names[i];
        call->arrays[i].obj = values[i];
        /* Every array is read through its strides: views cost no copy. */
        call->arrays[i].strided = 1;
    }
    call->narrays = nfloat;
    call->d_output = nfloat == 4 ? &call->arrays[3] : NULL;
    if (mla_convert(func, call->arrays, nfloat, &call->typenum) < 0) {
        return -1;
    }
    if (mask_obj != NULL && mask_obj != Py_None) {
        call->mask = &call->arrays[call->narrays++];
        call->mask->name = "mask";
        call->mask->obj = mask_obj;
        call->mask->strided = 1;
        if (mla_convert_bool(func, call->mask) < 0) {
            return -1;
        }
    }

    mla_array_arg *q = &call->arrays[0], *k = &call->arrays[1];
    mla_array_arg *v = &call->arrays[2];
    for (int i = 0; i < nfloat; i++) {
        if (mla_check_ndim(func, &call->arrays[i], 2, -1) < 0) {
            return -1;
        }
    }
    if (mla_check_dim(func, call->arrays, call->narrays, k, -1, q, -1) < 0 ||
        mla_check_dim(func, call->arrays, call->narrays, v, -2, k, -2) < 0) {
        return -1;
    }
    int qn = PyArray_NDIM(q->arr), vn = PyArray_NDIM(v->arr);
    a->lq = PyArray_DIM(q->arr, qn - 2);
    a->d = PyArray_DIM(q->arr, qn - 1);
    a->lk = PyArray_DIM(v->arr, vn - 2);
    a->dv = PyArray_DIM(v->arr, vn - 1);
    if (call->mask != NULL && check_mask(func, call) < 0) {
        return -1;
    }

    /* Q, K, V and the mask broadcast, but d_output must match the result. */
    mla_array_arg operands[4] = {*q, *k, *v};
    int core[4] = {2, 2, 2, call->mask_core};
    int noperands = 3;
    if (call->mask != NULL) {
        operands[noperands++] = *call->mask;
    }
    if (mla_broadcast_batch(func, operands, noperands, core, &call->batch_ndim,
                            call->dims) < 0 ||
        mla_shape_size(func, call->dims, call->batch_ndim, &a->batch) < 0) {
        return -1;
    }
    call->dims[call->batch_ndim] = a->lq;
    call->dims[call->batch_ndim + 1] = a->dv;
    if (call->d_output != NULL && check_d_output(func, call) < 0) {
        return -1;
    }

    if (mla_parse_flag(func, "causal", causal_obj, 0, &a->causal) < 0 ||
        parse_scale(func, scale_obj, a->d, call->typenum, &a->scale) < 0) {
        return -1;
    }
    return 0;
}

/*
 * Fill the data pointers, strides and batch offsets of call->args, once
 * the call has work to do (the offsets take memory per batch entry).
 */
static int
prepare_kernel(attention_call *call)
{
    mla_attention_args *a = &call->args;
    PyArrayObject *operands[5];
    int core[5];

    for (int i = 0; i < call->narrays; i++) {
        operands[i] = call->arrays[i].arr;
        core[i] = 2;
    }
    if (call->mask != NULL) {
        core[call->narrays - 1] = call->mask_core;
    }
    call->offsets = mla_batch_offsets(operands, call->narrays, core,
                                      call->batch_ndim, call->dims, a->batch);
    if (call->offsets == NULL) {
        return -1;
    }

    PyArrayObject *q = operands[0], *k = operands[1], *v = operands[2];
    int qn = PyArray_NDIM(q), kn = PyArray_NDIM(k), vn = PyArray_NDIM(v);
    a->q = PyArray_DATA(q);
    a->rs_q = mla_stride(q, qn - 2);
    a->cs_q = mla_stride(q, qn - 1);
    a->k = PyArray_DATA(k);
    a->rs_k = mla_stride(k, kn - 2);
    a->cs_k = mla_stride(k, kn - 1);
    a->v = PyArray_DATA(v);
    a->rs_v = mla_stride(v, vn - 2);
    a->cs_v = mla_stride(v, vn - 1);
    a->q_offsets = call->offsets;
    a->k_offsets = call->offsets + a->batch;
    a->v_offsets = call->offsets + 2 * a->batch;

    if (call->mask != NULL) {
        PyArrayObject *mask = call->mask->arr;
        int mn = PyArray_NDIM(mask);
        /* A dimension of size 1 broadcasts: read it with stride 0. */
        a->mask = PyArray_DATA(mask);
        a->rs_mask = mn >= 2 && PyArray_DIM(mask, mn - 2) != 1
                         ? mla_stride(mask, mn - 2)
                         : 0;
        a->cs_mask = mn >= 1 && PyArray_DIM(mask, mn - 1) != 1
                         ? mla_stride(mask, mn - 1)
                         : 0;
        a->mask_offsets = call->offsets + (call->narrays - 1) * a->batch;
    }
    return 0;
}

static void
release_call(attention_call *call)
{
    PyMem_Free(call->offsets);
    mla_release(call->arrays, call->narrays);
}

/*
 * Return 1 when V adds batch dimensions that Q, K and the mask lack. The
 * weights do not depend on V, so they do not extend along those.
 */
static int
v_adds_batch(const char *func, attention_call *call)
{
    mla_array_arg operands[3] = {call->arrays[0], call->arrays[1]};
    int core[3] = {2, 2, call->mask_core};
    int noperands = 2, ndim;
    npy_intp dims[MLA_MAXDIMS + 2];
    if (call->mask != NULL) {
        operands[noperands++] = *call->mask;
    }
    if (mla_broadcast_batch(func, operands, noperands, core, &ndim, dims) < 0) {
        return -1;
    }
    return ndim != call->batch_ndim ||
           !PyArray_CompareLists(dims, call->dims, ndim);
}

/*
 * Compute the weights alone, over the batch of Q, K and the mask: the
 * same call with V replaced by an empty (Lk, 0) array, whose output is
 * empty.
 */
static PyObject *
weights_without_v(PyObject *module, attention_call *call,
                  PyObject *const *values)
{
    npy_intp dims[2] = {call->args.lk, 0};
    PyObject *v = PyArray_SimpleNew(2, dims, call->typenum);
    if (v == NULL) {
        return NULL;
    }
    PyObject *kwnames = Py_BuildValue("(sss)", "mask", "causal", "scale");
    if (kwnames == NULL) {
        Py_DECREF(v);
        return NULL;
    }
    PyObject *stack[6] = {
        (PyObject *)call->arrays[0].arr, (PyObject *)call->arrays[1].arr, v,
        values[3] != NULL ? values[3] : Py_None,
        values[4] != NULL ? values[4] : Py_False,
        values[5] != NULL ? values[5] : Py_None,
    };
    PyObject *result =
        py_scaled_dot_product_attention(module, stack, 3, kwnames);
    Py_DECREF(kwnames);
    Py_DECREF(v);
    if (result == NULL) {
        return NULL;
    }
    PyObject *weights = PyTuple_GET_ITEM(result, 1);
    Py_INCREF(weights);
    Py_DECREF(result);
    return weights;
}

MLA_WRAPPER(scaled_dot_product_attention)
{
    static const char *func = "scaled_dot_product_attention";
    static const char *const names[] = {"Q",     "K",     "V",
                                        "mask",  "causal", "scale",
                                        "return_weights"};
    PyObject *values[7];
    attention_call call;
    PyArrayObject *out = NULL, *weights = NULL;
    int return_weights;
    mla_status status = MLA_OK;

    memset(&call, 0, sizeof(call));
    if (check_positional(func, nargs, 3) < 0 ||
        mla_parse_args(func, args, nargs, kwnames, names, 7, 3, values) < 0 ||
        mla_parse_flag(func, "return_weights", values[6], 1, &return_weights) < 0 ||
        parse_attention(func, &call, values, 3, values[3], values[4],
                        values[5]) < 0) {
        goto fail;
    }

    /* out (..., Lq, dv) and weights (..., Lq, Lk). */
    int ndim = call.batch_ndim + 2;
    out = (PyArrayObject *)PyArray_SimpleNew(ndim, call.dims, call.typenum);
    if (out == NULL) {
        goto fail;
    }
    /*
     * When V adds batch dimensions, the main call streams and the weights
     * come from a second call over the smaller batch of Q, K and the mask.
     */
    int v_batch = return_weights ? v_adds_batch(func, &call) : 0;
    if (v_batch < 0) {
        goto fail;
    }
    if (return_weights && !v_batch) {
        call.dims[ndim - 1] = call.args.lk;
        weights = (PyArrayObject *)PyArray_SimpleNew(ndim, call.dims,
                                                     call.typenum);
        if (weights == NULL) {
            goto fail;
        }
    }

    if (PyArray_SIZE(out) > 0 ||
        (weights != NULL && PyArray_SIZE(weights) > 0)) {
        if (prepare_kernel(&call) < 0) {
            goto fail;
        }
        void *weights_data = weights != NULL ? PyArray_DATA(weights) : NULL;
        Py_BEGIN_ALLOW_THREADS
        status = MLA_DISPATCH(call.typenum, mla_attention, PyArray_DATA(out),
                              weights_data, &call.args);
        Py_END_ALLOW_THREADS
        if (status != MLA_OK) {
            mla_raise_status(func, status);
            goto fail;
        }
    }

    if (v_batch) {
        weights = (PyArrayObject *)weights_without_v(module, &call, values);
        if (weights == NULL) {
            goto fail;
        }
    }

    release_call(&call);
    if (!return_weights) {
        return (PyObject *)out;
    }
    return Py_BuildValue("(NN)", (PyObject *)out, (PyObject *)weights);

fail:
    release_call(&call);
    Py_XDECREF(out);
    Py_XDECREF(weights);
    return NULL;
}

MLA_WRAPPER(scaled_dot_product_attention_backward)
{
    static const char *func = "scaled_dot_product_attention_backward";
    static const char *const names[] = {"Q",    "K",      "V",    "d_output",
                                        "mask", "causal", "scale"};
    PyObject *values[7];
    attention_call call;
    PyArrayObject *grads[3] = {NULL, NULL, NULL};
    ptrdiff_t *grad_offsets = NULL;
    mla_status status = MLA_OK;
    (void)module;

    memset(&call, 0, sizeof(call));
    if (check_positional(func, nargs, 4) < 0 ||
        mla_parse_args(func, args, nargs, kwnames, names, 7, 4, values) < 0 ||
        parse_attention(func, &call, values, 4, values[4], values[5],
                        values[6]) < 0) {
        goto fail;
    }

    /* dQ, dK and dV have the shapes of Q, K and V and start at zero. */
    for (int i = 0; i < 3; i++) {
        PyArrayObject *input = call.arrays[i].arr;
        grads[i] = (PyArrayObject *)PyArray_ZEROS(
            PyArray_NDIM(input), PyArray_DIMS(input), call.typenum, 0);
        if (grads[i] == NULL) {
            goto fail;
        }
    }

    mla_attention_args *a = &call.args;
    if (a->batch > 0 && a->lq > 0 && a->lk > 0) {
        int core[3] = {2, 2, 2};
        if (prepare_kernel(&call) < 0) {
            goto fail;
        }
        grad_offsets = mla_batch_offsets(grads, 3, core, call.batch_ndim,
                                         call.dims, a->batch);
        if (grad_offsets == NULL) {
            goto fail;
        }
        PyArrayObject *d_output = call.d_output->arr;
        int dn = PyArray_NDIM(d_output);
        Py_BEGIN_ALLOW_THREADS
        status = MLA_DISPATCH(
            call.typenum, mla_attention_backward, PyArray_DATA(grads[0]),
            grad_offsets, PyArray_DATA(grads[1]), grad_offsets + a->batch,
            PyArray_DATA(grads[2]), grad_offsets + 2 * a->batch,
            PyArray_DATA(d_output), call.offsets + 3 * a->batch,
            mla_stride(d_output, dn - 2), mla_stride(d_output, dn - 1), a);
        Py_END_ALLOW_THREADS
        if (status != MLA_OK) {
            mla_raise_status(func, status);
            goto fail;
        }
    }

    PyMem_Free(grad_offsets);
    release_call(&call);
    return Py_BuildValue("(NNN)", (PyObject *)grads[0], (PyObject *)grads[1],
                         (PyObject *)grads[2]);

fail:
    PyMem_Free(grad_offsets);
    release_call(&call);
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(grads[i]);
    }
    return NULL;
}
