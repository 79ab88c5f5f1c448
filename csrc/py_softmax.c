/*
 * py_softmax.c: wrappers of softmax and the cross-entropy loss
 * (softmax.c).
 */
#include "wrappers.h"

#include <limits.h>

/*
 * Raise numpy.exceptions.AxisError "func: axis 2 is out of bounds ...",
 * naming the axis as the caller wrote it (axis_obj, or -1 if NULL).
 */
static void
raise_axis_error(const char *func, PyObject *axis_obj, int ndim)
{
    PyObject *error;
    PyObject *text = axis_obj != NULL ? PyObject_Str(axis_obj) : NULL;
    if (axis_obj != NULL && text == NULL) {
        /* str() of an int over 4300 digits raises (sys.int_info). */
        PyErr_Clear();
        error = PyObject_CallFunction(
            mla_AxisError, "N",
            PyUnicode_FromFormat("%s: axis is out of bounds for array of "
                                 "dimension %d; got an int too long to print",
                                 func, ndim));
    }
    else {
        Py_XDECREF(text);
        error = axis_obj != NULL ? PyObject_CallFunction(mla_AxisError, "Ois",
                                                         axis_obj, ndim, func)
                                 : PyObject_CallFunction(mla_AxisError, "iis",
                                                         -1, ndim, func);
    }
    if (error != NULL) {
        PyErr_SetObject(mla_AxisError, error);
        Py_DECREF(error);
    }
}

/*
 * The body of softmax and log_softmax: parse (z, axis=-1), view z as
 * (outer, n, inner) around the axis and run the kernel of func.
 */
static PyObject *
apply_along_axis(const char *func, int log_softmax, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"z", "axis"};
    PyObject *values[2];
    mla_array_arg z = {"z", NULL, 0, NULL};
    PyArrayObject *y = NULL;
    mla_status status;
    PyObject *axis_obj = NULL;
    long axis = -1;
    int typenum;

    if (mla_parse_args(func, args, nargs, kwnames, names, 2, 1, values) < 0) {
        return NULL;
    }
    if (values[1] != NULL && PyBool_Check(values[1])) {
        PyErr_Format(PyExc_TypeError, "%s: axis must be an integer; got bool",
                     func);
        return NULL;
    }
    if (values[1] != NULL) {
        PyObject *index = PyNumber_Index(values[1]);
        if (index == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Format(PyExc_TypeError,
                             "%s: axis must be an integer; got %.100s", func,
                             Py_TYPE(values[1])->tp_name);
            }
            return NULL;
        }
        int overflow;
        axis = PyLong_AsLongAndOverflow(index, &overflow);
        if (axis == -1 && PyErr_Occurred()) {
            Py_DECREF(index);
            return NULL;
        }
        axis_obj = index;
        if (overflow != 0) {
            /* Out of range for any array: let the range check reject it. */
            axis = overflow > 0 ? LONG_MAX : LONG_MIN;
        }
    }
    z.obj = values[0];
    if (mla_convert(func, &z, 1, &typenum) < 0) {
        goto fail;
    }

    /* Treat z as (outer, n, inner) around the normalized axis. */
    int ndim = PyArray_NDIM(z.arr);
    if (axis < -ndim || axis >= ndim) {
        raise_axis_error(func, axis_obj, ndim);
        goto fail;
    }
    int ax = (int)(axis < 0 ? axis + ndim : axis);
    ptrdiff_t outer = 1, inner = 1, n = PyArray_DIM(z.arr, ax);
    for (int d = 0; d < ax; d++) {
        outer *= PyArray_DIM(z.arr, d);
    }
    for (int d = ax + 1; d < ndim; d++) {
        inner *= PyArray_DIM(z.arr, d);
    }
    y = (PyArrayObject *)PyArray_SimpleNew(ndim, PyArray_DIMS(z.arr), typenum);
    if (y == NULL) {
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    if (log_softmax) {
        status = MLA_DISPATCH(typenum, mla_log_softmax, PyArray_DATA(y),
                              PyArray_DATA(z.arr), outer, n, inner);
    }
    else {
        status = MLA_DISPATCH(typenum, mla_softmax, PyArray_DATA(y),
                              PyArray_DATA(z.arr), outer, n, inner);
    }
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }
    Py_XDECREF(axis_obj);
    mla_release(&z, 1);
    return (PyObject *)y;

fail:
    Py_XDECREF(axis_obj);
    mla_release(&z, 1);
    Py_XDECREF(y);
    return NULL;
}

MLA_WRAPPER(softmax)
{
    (void)module;
    return apply_along_axis("softmax", 0, args, nargs, kwnames);
}

MLA_WRAPPER(log_softmax)
{
    (void)module;
    return apply_along_axis("log_softmax", 1, args, nargs, kwnames);
}

MLA_WRAPPER(cross_entropy_loss)
{
    static const char *func = "cross_entropy_loss";
    static const char *const names[] = {"y_pred", "y_true"};
    PyObject *values[2];
    mla_array_arg arrays[2] = {{"y_pred", NULL, 0, NULL},
                               {"y_true", NULL, 0, NULL}};
    double loss;
    int typenum;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 2, 2, values) < 0) {
        return NULL;
    }
    arrays[0].obj = values[0];
    arrays[1].obj = values[1];
    if (mla_convert(func, arrays, 2, &typenum) < 0) {
        mla_release(arrays, 2);
        return NULL;
    }
    PyArrayObject *pred = arrays[0].arr, *truth = arrays[1].arr;
    if (PyArray_NDIM(pred) != PyArray_NDIM(truth) ||
        !PyArray_CompareLists(PyArray_DIMS(pred), PyArray_DIMS(truth),
                              PyArray_NDIM(pred))) {
        mla_shape_error(func, arrays, 2, "y_pred and y_true must have equal shapes");
        mla_release(arrays, 2);
        return NULL;
    }

    Py_BEGIN_ALLOW_THREADS
    loss = MLA_DISPATCH(typenum, mla_cross_entropy, PyArray_DATA(pred),
                        PyArray_DATA(truth), (ptrdiff_t)PyArray_SIZE(pred));
    Py_END_ALLOW_THREADS

    mla_release(arrays, 2);
    return PyFloat_FromDouble(loss);
}

/*
 * Raise ValueError for the class index value found at flat position
 * `position` of labels, naming it and the valid range.
 */
static void
raise_index_error(const char *func, int labels_ndim, ptrdiff_t position,
                  const char *value, ptrdiff_t classes)
{
    char where[48];
    if (labels_ndim == 0) {
        snprintf(where, sizeof(where), "labels");
    }
    else {
        snprintf(where, sizeof(where), "labels[%lld]", (long long)position);
    }
    PyErr_Format(PyExc_ValueError,
                 "%s: class index %s = %s is out of range for %zd classes; "
                 "valid indices are 0 to %zd",
                 func, where, value, (Py_ssize_t)classes,
                 (Py_ssize_t)(classes - 1));
}

/*
 * Convert the integer class indices in labels (any integer dtype, any
 * layout) to a new C-contiguous intp array, after checking that each one
 * lies in [0, classes). Returns NULL with ValueError naming the first index
 * out of range.
 */
static PyArrayObject *
convert_class_indices(const char *func, PyArrayObject *labels,
                      ptrdiff_t classes)
{
    int flags = NPY_ARRAY_ALIGNED | NPY_ARRAY_NOTSWAPPED |
                NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_FORCECAST;
    char value[32];

    /* An unsigned 64-bit index above the intp range would wrap in the cast. */
    if (PyTypeNum_ISUNSIGNED(PyArray_TYPE(labels)) &&
        PyArray_ITEMSIZE(labels) >= (int)sizeof(npy_intp)) {
        PyArrayObject *wide = (PyArrayObject *)PyArray_FromArray(
            labels, PyArray_DescrFromType(NPY_UINT64), flags);
        if (wide == NULL) {
            return NULL;
        }
        const npy_uint64 *data = PyArray_DATA(wide);
        ptrdiff_t size = (ptrdiff_t)PyArray_SIZE(wide);
        for (ptrdiff_t i = 0; i < size; i++) {
            if (data[i] >= (npy_uint64)classes) {
                snprintf(value, sizeof(value), "%llu",
                         (unsigned long long)data[i]);
                raise_index_error(func, PyArray_NDIM(labels), i, value,
                                  classes);
                Py_DECREF(wide);
                return NULL;
            }
        }
        Py_DECREF(wide);
    }

    PyArrayObject *indices = (PyArrayObject *)PyArray_FromArray(
        labels, PyArray_DescrFromType(NPY_INTP), flags);
    if (indices == NULL) {
        return NULL;
    }
    const npy_intp *data = PyArray_DATA(indices);
    ptrdiff_t size = (ptrdiff_t)PyArray_SIZE(indices);
    for (ptrdiff_t i = 0; i < size; i++) {
        if (data[i] < 0 || data[i] >= classes) {
            snprintf(value, sizeof(value), "%lld", (long long)data[i]);
            raise_index_error(func, PyArray_NDIM(labels), i, value, classes);
            Py_DECREF(indices);
            return NULL;
        }
    }
    return indices;
}

MLA_WRAPPER(softmax_cross_entropy)
{
    static const char *func = "softmax_cross_entropy";
    static const char *const names[] = {"logits", "labels", "return_grad"};
    PyObject *values[3];
    /* arrays[1] is filled in only for probability labels. */
    mla_array_arg arrays[2] = {{"logits", NULL, 0, NULL},
                               {"labels", NULL, 0, NULL}};
    PyArrayObject *raw_labels = NULL, *indices = NULL, *grad = NULL;
    PyObject *result = NULL;
    mla_status status;
    double loss = 0.0;
    int return_grad, typenum, label_type;
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 3, 2, values) < 0 ||
        mla_parse_flag(func, "return_grad", values[2], 0, &return_grad) < 0) {
        return NULL;
    }

    /* logits (classes,) is one sample; else logits (batch, classes). */
    arrays[0].obj = values[0];
    if (mla_convert(func, &arrays[0], 1, &typenum) < 0 ||
        mla_check_ndim(func, &arrays[0], 1, 2) < 0) {
        goto fail;
    }
    PyArrayObject *logits = arrays[0].arr;
    int ndim = PyArray_NDIM(logits);
    ptrdiff_t batch = ndim == 2 ? PyArray_DIM(logits, 0) : 1;
    ptrdiff_t classes = PyArray_DIM(logits, ndim - 1);
    if (classes == 0) {
        mla_shape_error(func, arrays, 1,
                        "logits must have at least one class");
        goto fail;
    }

    raw_labels = (PyArrayObject *)PyArray_FromAny(values[1], NULL, 0, 0, 0,
                                                  NULL);
    int label_dtype = raw_labels == NULL ? -1 : PyArray_TYPE(raw_labels);
    if (raw_labels == NULL ||
        !(PyTypeNum_ISINTEGER(label_dtype) || PyTypeNum_ISFLOAT(label_dtype) ||
          label_dtype == NPY_BOOL)) {
        /*
         * A ragged list or a non-real dtype: the converter fails again on
         * the same object and words the error as every function does.
         */
        PyErr_Clear();
        arrays[1].obj = values[1];
        if (mla_convert(func, &arrays[1], 1, &label_type) == 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s: labels could not be converted to an array",
                         func);
        }
        goto fail;
    }

    if (PyArray_NDIM(raw_labels) == ndim - 1) {
        /* Class indices: labels (batch,), or a 0-d index for 1-D logits. */
        if (!PyTypeNum_ISINTEGER(label_dtype)) {
            char shape[MLA_SHAPE_CHARS];
            mla_format_shape(shape, PyArray_NDIM(raw_labels),
                             PyArray_DIMS(raw_labels));
            PyErr_Format(PyExc_TypeError,
                         "%s: labels of shape %s are class indices and must "
                         "have an integer dtype; got dtype %S (probabilities "
                         "must have the shape of logits)",
                         func, shape, (PyObject *)PyArray_DESCR(raw_labels));
            goto fail;
        }
        if (ndim == 2 && PyArray_DIM(raw_labels, 0) != batch) {
            char logits_shape[MLA_SHAPE_CHARS], labels_shape[MLA_SHAPE_CHARS];
            mla_format_shape(logits_shape, 2, PyArray_DIMS(logits));
            mla_format_shape(labels_shape, 1, PyArray_DIMS(raw_labels));
            PyErr_Format(PyExc_ValueError,
                         "%s: labels.shape[0] (%ld) must equal "
                         "logits.shape[0] (%ld); got shapes logits=%s, "
                         "labels=%s",
                         func, (long)PyArray_DIM(raw_labels, 0), (long)batch,
                         logits_shape, labels_shape);
            goto fail;
        }
        indices = convert_class_indices(func, raw_labels, classes);
        if (indices == NULL) {
            goto fail;
        }
    }
    else if (PyArray_NDIM(raw_labels) == ndim) {
        /* Probabilities shaped like logits, computed in logits' precision. */
        arrays[1].obj = (PyObject *)raw_labels;
        if (mla_convert(func, &arrays[1], 1, &label_type) < 0) {
            goto fail;
        }
        if (!PyArray_CompareLists(PyArray_DIMS(logits),
                                  PyArray_DIMS(arrays[1].arr), ndim)) {
            mla_shape_error(func, arrays, 2,
                            "probability labels must have the shape of "
                            "logits");
            goto fail;
        }
        if (label_type != typenum) {
            int flags = NPY_ARRAY_ALIGNED | NPY_ARRAY_NOTSWAPPED |
                        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_FORCECAST;
            PyObject *cast = PyArray_FromArray(
                arrays[1].arr, PyArray_DescrFromType(typenum), flags);
            if (cast == NULL) {
                goto fail;
            }
            Py_SETREF(arrays[1].arr, (PyArrayObject *)cast);
        }
    }
    else {
        char logits_shape[MLA_SHAPE_CHARS], labels_shape[MLA_SHAPE_CHARS];
        mla_format_shape(logits_shape, ndim, PyArray_DIMS(logits));
        mla_format_shape(labels_shape, PyArray_NDIM(raw_labels),
                         PyArray_DIMS(raw_labels));
        PyErr_Format(PyExc_ValueError,
                     "%s: labels must be class indices of shape "
                     "logits.shape[:-1] or probabilities of shape "
                     "logits.shape; got shapes logits=%s, labels=%s",
                     func, logits_shape, labels_shape);
        goto fail;
    }

    if (return_grad) {
        grad = (PyArrayObject *)PyArray_SimpleNew(ndim, PyArray_DIMS(logits),
                                                  typenum);
        if (grad == NULL) {
            goto fail;
        }
    }

    void *grad_data = grad == NULL ? NULL : PyArray_DATA(grad);
    const ptrdiff_t *index_data =
        indices == NULL ? NULL : (const ptrdiff_t *)PyArray_DATA(indices);
    void *prob_data = arrays[1].arr == NULL ? NULL : PyArray_DATA(arrays[1].arr);
    Py_BEGIN_ALLOW_THREADS
    status = MLA_DISPATCH(typenum, mla_softmax_cross_entropy, &loss,
                          grad_data, PyArray_DATA(logits), index_data,
                          prob_data, batch, classes);
    Py_END_ALLOW_THREADS
    if (status != MLA_OK) {
        mla_raise_status(func, status);
        goto fail;
    }

    if (grad == NULL) {
        result = PyFloat_FromDouble(loss);
    }
    else {
        result = Py_BuildValue("(dO)", loss, (PyObject *)grad);
    }

fail:
    Py_XDECREF(grad);
    Py_XDECREF(indices);
    Py_XDECREF(raw_labels);
    mla_release(arrays, 2);
    return result;
}
