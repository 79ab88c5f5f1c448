/*
 * py_dense.c: wrappers of the dense-layer kernels (dense.c): one sample,
 * a batch, the backward pass of a layer on a batch, and the gradients of
 * the two-layer network.
 */
#include "wrappers.h"

static const char *const layer_names[] = {"x", "W", "b", "activation"};

MLA_WRAPPER(forward_layer)
{
    static const char *func = "forward_layer";
    PyObject *values[4];
    mla_array_arg arrays[3] = {
        {"x", NULL, 0, NULL}, {"W", NULL, 0, NULL}, {"b", NULL, 0, NULL}};
    mla_activation activation;
    PyArrayObject *y = NULL;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, layer_names, 4, 3,
                       values) < 0 ||
        mla_parse_activation(func, values[3], &activation) < 0) {
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        arrays[i].obj = values[i];
    }
    mla_array_arg *x = &arrays[0], *w = &arrays[1], *b = &arrays[2];

    /* x (n_in,), W (n_out, n_in), b (n_out,). */
    if (mla_convert(func, arrays, 3, &typenum) < 0 ||
        mla_check_ndim(func, x, 1, 1) < 0 || mla_check_ndim(func, w, 2, 2) < 0 ||
        mla_check_ndim(func, b, 1, 1) < 0 ||
        mla_check_dim(func, arrays, 3, w, 1, x, 0) < 0 ||
        mla_check_dim(func, arrays, 3, b, 0, w, 0) < 0) {
        goto fail;
    }
    ptrdiff_t n_out = PyArray_DIM(w->arr, 0), n_in = PyArray_DIM(w->arr, 1);
    npy_intp dims[1] = {n_out};
    y = (PyArrayObject *)PyArray_SimpleNew(1, dims, typenum);
    if (y == NULL) {
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    MLA_DISPATCH(typenum, mla_forward_layer, PyArray_DATA(y),
                 PyArray_DATA(x->arr), PyArray_DATA(w->arr),
                 PyArray_DATA(b->arr), n_out, n_in, activation);
    Py_END_ALLOW_THREADS

    mla_release(arrays, 3);
    return (PyObject *)y;

fail:
    mla_release(arrays, 3);
    Py_XDECREF(y);
    return NULL;
}

MLA_WRAPPER(forward_layer_batch)
{
    static const char *func = "forward_layer_batch";
    static const char *const names[] = {"X", "W", "b", "activation"};
    PyObject *values[4];
    /* W is read through its strides, so W.T or a slice costs no copy. */
    mla_array_arg arrays[3] = {
        {"X", NULL, 0, NULL}, {"W", NULL, 1, NULL}, {"b", NULL, 0, NULL}};
    mla_activation activation;
    PyArrayObject *y = NULL;
    mla_status status;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 4, 3, values) < 0 ||
        mla_parse_activation(func, values[3], &activation) < 0) {
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        arrays[i].obj = values[i];
    }
    mla_array_arg *x = &arrays[0], *w = &arrays[1], *b = &arrays[2];

    /* X (batch, n_in), W (n_out, n_in), b (n_out,). */
    if (mla_convert(func, arrays, 3, &typenum) < 0 ||
        mla_check_ndim(func, x, 2, 2) < 0 || mla_check_ndim(func, w, 2, 2) < 0 ||
        mla_check_ndim(func, b, 1, 1) < 0 ||
        mla_check_dim(func, arrays, 3, w, 1, x, 1) < 0 ||
        mla_check_dim(func, arrays, 3, b, 0, w, 0) < 0) {
        goto fail;
    }
    ptrdiff_t batch = PyArray_DIM(x->arr, 0);
    ptrdiff_t n_out = PyArray_DIM(w->arr, 0), n_in = PyArray_DIM(w->arr, 1);
    npy_intp dims[2] = {batch, n_out};
    y = (PyArrayObject *)PyArray_SimpleNew(2, dims, typenum);
    if (y == NULL) {
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    status = MLA_DISPATCH(typenum, mla_forward_layer_batch, PyArray_DATA(y),
                          PyArray_DATA(x->arr), PyArray_DATA(w->arr),
                          mla_stride(w->arr, 0), mla_stride(w->arr, 1),
                          PyArray_DATA(b->arr), batch, n_out, n_in,
                          activation);
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }

    mla_release(arrays, 3);
    return (PyObject *)y;

fail:
    mla_release(arrays, 3);
    Py_XDECREF(y);
    return NULL;
}

MLA_WRAPPER(simple_backprop)
{
    static const char *func = "simple_backprop";
    static const char *const names[] = {"x", "y_true", "W1", "W2", "b1", "b2"};
    static const char *const keys[] = {"dW1", "dW2", "db1", "db2"};
    PyObject *values[6];
    mla_array_arg arrays[6] = {
        {"x", NULL, 0, NULL},  {"y_true", NULL, 0, NULL},
        {"W1", NULL, 0, NULL}, {"W2", NULL, 0, NULL},
        {"b1", NULL, 0, NULL}, {"b2", NULL, 0, NULL}};
    PyArrayObject *grads[4] = {NULL, NULL, NULL, NULL};
    PyObject *result = NULL;
    mla_status status;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 6, 6, values) < 0) {
        return NULL;
    }
    for (int i = 0; i < 6; i++) {
        arrays[i].obj = values[i];
    }
    mla_array_arg *x = &arrays[0], *y_true = &arrays[1], *w1 = &arrays[2],
                  *w2 = &arrays[3], *b1 = &arrays[4], *b2 = &arrays[5];

    /*
     * x (n_in,), W1 (n_hidden, n_in), b1 (n_hidden,), W2 (n_out, n_hidden),
     * b2 (n_out,), y_true (n_out,), (1,) or a scalar.
     */
    if (mla_convert(func, arrays, 6, &typenum) < 0 ||
        mla_check_ndim(func, x, 1, 1) < 0 ||
        mla_check_ndim(func, y_true, 0, 1) < 0 ||
        mla_check_ndim(func, w1, 2, 2) < 0 ||
        mla_check_ndim(func, w2, 2, 2) < 0 ||
        mla_check_ndim(func, b1, 1, 1) < 0 ||
        mla_check_ndim(func, b2, 1, 1) < 0 ||
        mla_check_dim(func, arrays, 6, w1, 1, x, 0) < 0 ||
        mla_check_dim(func, arrays, 6, b1, 0, w1, 0) < 0 ||
        mla_check_dim(func, arrays, 6, w2, 1, w1, 0) < 0 ||
        mla_check_dim(func, arrays, 6, b2, 0, w2, 0) < 0) {
        goto fail;
    }
    ptrdiff_t n_in = PyArray_DIM(w1->arr, 1);
    ptrdiff_t n_hidden = PyArray_DIM(w1->arr, 0);
    ptrdiff_t n_out = PyArray_DIM(w2->arr, 0);
    ptrdiff_t y_size = (ptrdiff_t)PyArray_SIZE(y_true->arr);
    if (y_size != 1 && y_size != n_out) {
        mla_shape_error(func, arrays, 6,
                        "y_true must have W2.shape[0] (%ld) elements or one",
                        (long)n_out);
        goto fail;
    }

    npy_intp shapes[4][2] = {
        {n_hidden, n_in}, {n_out, n_hidden}, {n_hidden, 0}, {n_out, 0}};
    for (int g = 0; g < 4; g++) {
        grads[g] = (PyArrayObject *)PyArray_SimpleNew(g < 2 ? 2 : 1, shapes[g],
                                                      typenum);
        if (grads[g] == NULL) {
            goto fail;
        }
    }

    Py_BEGIN_ALLOW_THREADS
    status = MLA_DISPATCH(
        typenum, mla_simple_backprop, PyArray_DATA(grads[0]),
        PyArray_DATA(grads[1]), PyArray_DATA(grads[2]), PyArray_DATA(grads[3]),
        PyArray_DATA(x->arr), PyArray_DATA(y_true->arr), y_size == 1 ? 0 : 1,
        PyArray_DATA(w1->arr), PyArray_DATA(w2->arr), PyArray_DATA(b1->arr),
        PyArray_DATA(b2->arr), n_in, n_hidden, n_out);
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }

    result = PyDict_New();
    if (result == NULL) {
        goto fail;
    }
    for (int g = 0; g < 4; g++) {
        if (PyDict_SetItemString(result, keys[g], (PyObject *)grads[g]) < 0) {
            goto fail;
        }
        Py_CLEAR(grads[g]);
    }
    mla_release(arrays, 6);
    return result;

fail:
    mla_release(arrays, 6);
    for (int g = 0; g < 4; g++) {
        Py_XDECREF(grads[g]);
    }
    Py_XDECREF(result);
    return NULL;
}

MLA_WRAPPER(dense_backward)
{
    static const char *func = "dense_backward";
    static const char *const names[] = {"d_out", "X",          "W",
                                        "Z",     "activation", "input_grad"};
    PyObject *values[6];
    /* The products read X and W through their strides. */
    mla_array_arg arrays[4] = {{"d_out", NULL, 0, NULL},
                               {"X", NULL, 1, NULL},
                               {"W", NULL, 1, NULL},
                               {"Z", NULL, 0, NULL}};
    PyArrayObject *grads[3] = {NULL, NULL, NULL};
    PyObject *result = NULL;
    mla_activation activation;
    mla_status status;
    int typenum, input_grad = 1;
    (void)module;

    /* Before mla_parse_args, which would count input_grad as positional. */
    if (nargs > 5) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most 5 positional arguments (%zd given); "
                     "pass input_grad by keyword",
                     func, nargs);
        return NULL;
    }
    if (mla_parse_args(func, args, nargs, kwnames, names, 6, 4, values) < 0) {
        return NULL;
    }
    if (mla_parse_activation(func, values[4], &activation) < 0 ||
        mla_parse_flag(func, "input_grad", values[5], 1, &input_grad) < 0) {
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        arrays[i].obj = values[i];
    }
    mla_array_arg *d_out = &arrays[0], *x = &arrays[1], *w = &arrays[2],
                  *z = &arrays[3];

    /* d_out (batch, n_out), X (batch, n_in), W (n_out, n_in), Z like d_out. */
    if (mla_convert(func, arrays, 4, &typenum) < 0 ||
        mla_check_ndim(func, d_out, 2, 2) < 0 ||
        mla_check_ndim(func, x, 2, 2) < 0 ||
        mla_check_ndim(func, w, 2, 2) < 0 ||
        mla_check_ndim(func, z, 2, 2) < 0 ||
        mla_check_dim(func, arrays, 4, x, 0, d_out, 0) < 0 ||
        mla_check_dim(func, arrays, 4, w, 0, d_out, 1) < 0 ||
        mla_check_dim(func, arrays, 4, w, 1, x, 1) < 0 ||
        mla_check_dim(func, arrays, 4, z, 0, d_out, 0) < 0 ||
        mla_check_dim(func, arrays, 4, z, 1, d_out, 1) < 0) {
        goto fail;
    }
    ptrdiff_t batch = PyArray_DIM(x->arr, 0);
    ptrdiff_t n_out = PyArray_DIM(w->arr, 0), n_in = PyArray_DIM(w->arr, 1);

    npy_intp shapes[3][2] = {{batch, n_in}, {n_out, n_in}, {n_out, 0}};
    for (int g = input_grad ? 0 : 1; g < 3; g++) {
        grads[g] = (PyArrayObject *)PyArray_SimpleNew(g < 2 ? 2 : 1, shapes[g],
                                                      typenum);
        if (grads[g] == NULL) {
            goto fail;
        }
    }

    Py_BEGIN_ALLOW_THREADS
    status = MLA_DISPATCH(
        typenum, mla_dense_backward,
        grads[0] == NULL ? NULL : PyArray_DATA(grads[0]),
        PyArray_DATA(grads[1]), PyArray_DATA(grads[2]),
        PyArray_DATA(d_out->arr), PyArray_DATA(x->arr), mla_stride(x->arr, 0),
        mla_stride(x->arr, 1), PyArray_DATA(w->arr), mla_stride(w->arr, 0),
        mla_stride(w->arr, 1), PyArray_DATA(z->arr), batch, n_out, n_in,
        activation);
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }

    result = PyTuple_New(3);
    if (result == NULL) {
        goto fail;
    }
    /* The tuple takes the three references; None stands for a skipped dX. */
    PyTuple_SET_ITEM(result, 0,
                     grads[0] == NULL ? Py_NewRef(Py_None)
                                      : (PyObject *)grads[0]);
    PyTuple_SET_ITEM(result, 1, (PyObject *)grads[1]);
    PyTuple_SET_ITEM(result, 2, (PyObject *)grads[2]);
    mla_release(arrays, 4);
    return result;

fail:
    mla_release(arrays, 4);
    for (int g = 0; g < 3; g++) {
        Py_XDECREF(grads[g]);
    }
    return NULL;
}
