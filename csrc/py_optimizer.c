/*
 * py_optimizer.c: wrappers of the in-place optimizer updates (optimizer.c),
 * private helpers of mla.MLP.step:
 *
 *     _sgd_update(param, velocity, grad, lr, momentum)
 *     _adam_update(param, first, second, grad, step_size, beta1, beta2, eps)
 *
 * Unlike the public functions, these modify arrays: param and the optimizer
 * state are updated in place, so they are not converted. They must be
 * float32 or float64 ndarrays, C-contiguous, aligned, writeable and in
 * native byte order, with param's dtype and shape. grad is converted to
 * param's dtype and must have param's shape.
 */
#include "wrappers.h"

/* Raise unless obj is an ndarray that the kernel can update in place. */
static int
check_state(const char *func, const char *name, PyObject *obj,
            PyArrayObject *param)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s must be a numpy.ndarray; got %.100s", func, name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    int type = PyArray_TYPE(arr);
    if (type != NPY_FLOAT && type != NPY_DOUBLE) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s must be float32 or float64; got dtype %S", func,
                     name, (PyObject *)PyArray_DESCR(arr));
        return -1;
    }
    if (!PyArray_ISCARRAY(arr) || !PyArray_ISNOTSWAPPED(arr)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must be C-contiguous, aligned, writeable and in "
                     "native byte order, because it is updated in place",
                     func, name);
        return -1;
    }
    if (param == NULL) {
        return 0;
    }
    if (type != PyArray_TYPE(param) || !PyArray_SAMESHAPE(arr, param)) {
        char shape[MLA_SHAPE_CHARS], param_shape[MLA_SHAPE_CHARS];
        mla_format_shape(shape, PyArray_NDIM(arr), PyArray_DIMS(arr));
        mla_format_shape(param_shape, PyArray_NDIM(param), PyArray_DIMS(param));
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must have the dtype and shape of param (%S %s); "
                     "got %S %s",
                     func, name, (PyObject *)PyArray_DESCR(param), param_shape,
                     (PyObject *)PyArray_DESCR(arr), shape);
        return -1;
    }
    return 0;
}

/* Return grad as a C-contiguous array of param's dtype and shape, or NULL. */
static PyArrayObject *
convert_grad(const char *func, PyObject *obj, PyArrayObject *param)
{
    PyArrayObject *grad = (PyArrayObject *)PyArray_FROMANY(
        obj, PyArray_TYPE(param), 0, 0,
        NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (grad == NULL) {
        return NULL;
    }
    if (!PyArray_SAMESHAPE(grad, param)) {
        char shape[MLA_SHAPE_CHARS], param_shape[MLA_SHAPE_CHARS];
        mla_format_shape(shape, PyArray_NDIM(grad), PyArray_DIMS(grad));
        mla_format_shape(param_shape, PyArray_NDIM(param), PyArray_DIMS(param));
        PyErr_Format(PyExc_ValueError,
                     "%s: grad must have the shape of param %s; got %s", func,
                     param_shape, shape);
        Py_DECREF(grad);
        return NULL;
    }
    return grad;
}

/* Read n float arguments from values into numbers. Returns -1 on error. */
static int
parse_floats(PyObject *const *values, int n, double *numbers)
{
    for (int i = 0; i < n; i++) {
        numbers[i] = PyFloat_AsDouble(values[i]);
        if (numbers[i] == -1.0 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

MLA_WRAPPER(sgd_update)
{
    static const char *func = "_sgd_update";
    static const char *const names[] = {"param", "velocity", "grad", "lr",
                                        "momentum"};
    PyObject *values[5];
    double scalars[2];
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 5, 5, values) < 0 ||
        parse_floats(values + 3, 2, scalars) < 0 ||
        check_state(func, "param", values[0], NULL) < 0) {
        return NULL;
    }
    PyArrayObject *param = (PyArrayObject *)values[0];
    if (check_state(func, "velocity", values[1], param) < 0) {
        return NULL;
    }
    PyArrayObject *velocity = (PyArrayObject *)values[1];
    PyArrayObject *grad = convert_grad(func, values[2], param);
    if (grad == NULL) {
        return NULL;
    }
    ptrdiff_t n = (ptrdiff_t)PyArray_SIZE(param);

    Py_BEGIN_ALLOW_THREADS
    if (PyArray_TYPE(param) == NPY_FLOAT) {
        mla_sgd_update_f32(PyArray_DATA(param), PyArray_DATA(velocity),
                           PyArray_DATA(grad), n, (float)scalars[0],
                           (float)scalars[1]);
    }
    else {
        mla_sgd_update_f64(PyArray_DATA(param), PyArray_DATA(velocity),
                           PyArray_DATA(grad), n, scalars[0], scalars[1]);
    }
    Py_END_ALLOW_THREADS

    Py_DECREF(grad);
    Py_RETURN_NONE;
}

MLA_WRAPPER(adam_update)
{
    static const char *func = "_adam_update";
    static const char *const names[] = {"param", "first",     "second",
                                        "grad",  "step_size", "beta1",
                                        "beta2", "eps"};
    PyObject *values[8];
    double scalars[4];
    (void)module;

    if (mla_parse_args(func, args, nargs, kwnames, names, 8, 8, values) < 0 ||
        parse_floats(values + 4, 4, scalars) < 0 ||
        check_state(func, "param", values[0], NULL) < 0) {
        return NULL;
    }
    PyArrayObject *param = (PyArrayObject *)values[0];
    if (check_state(func, "first", values[1], param) < 0 ||
        check_state(func, "second", values[2], param) < 0) {
        return NULL;
    }
    PyArrayObject *first = (PyArrayObject *)values[1];
    PyArrayObject *second = (PyArrayObject *)values[2];
    PyArrayObject *grad = convert_grad(func, values[3], param);
    if (grad == NULL) {
        return NULL;
    }
    ptrdiff_t n = (ptrdiff_t)PyArray_SIZE(param);

    Py_BEGIN_ALLOW_THREADS
    if (PyArray_TYPE(param) == NPY_FLOAT) {
        mla_adam_update_f32(PyArray_DATA(param), PyArray_DATA(first),
                            PyArray_DATA(second), PyArray_DATA(grad), n,
                            (float)scalars[0], (float)scalars[1],
                            (float)scalars[2], (float)scalars[3]);
    }
    else {
        mla_adam_update_f64(PyArray_DATA(param), PyArray_DATA(first),
                            PyArray_DATA(second), PyArray_DATA(grad), n,
                            scalars[0], scalars[1], scalars[2], scalars[3]);
    }
    Py_END_ALLOW_THREADS

    Py_DECREF(grad);
    Py_RETURN_NONE;
}
