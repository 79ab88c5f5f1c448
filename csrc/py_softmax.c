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
    PyObject *error =
        axis_obj != NULL
            ? PyObject_CallFunction(mla_AxisError, "Ois", axis_obj, ndim, func)
            : PyObject_CallFunction(mla_AxisError, "iis", -1, ndim, func);
    if (error != NULL) {
        PyErr_SetObject(mla_AxisError, error);
        Py_DECREF(error);
    }
}

MLA_WRAPPER(softmax)
{
    static const char *func = "softmax";
    static const char *const names[] = {"z", "axis"};
    PyObject *values[2];
    mla_array_arg z = {"z", NULL, 0, NULL};
    PyArrayObject *y = NULL;
    mla_status status;
    PyObject *axis_obj = NULL;
    long axis = -1;
    int typenum;
    (void)module;

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
    status = MLA_DISPATCH(typenum, mla_softmax, PyArray_DATA(y),
                          PyArray_DATA(z.arr), outer, n, inner);
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
