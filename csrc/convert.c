/*
 * convert.c: argument parsing, dtype conversion, shape checks and error
 * messages shared by the wrappers (convert.h states the rules).
 */
#include "convert.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

PyObject *mla_LinAlgError = NULL;
PyObject *mla_AxisError = NULL;

/*
 * Fill values[0..count) from a vectorcall argument list, by position and
 * then by keyword, with NULL for options left out. The first `required`
 * names must be given. Raises TypeError in CPython's wording otherwise.
 */
int
mla_parse_args(const char *func, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames, const char *const *names, int count,
               int required, PyObject **values)
{
    if (nargs > count) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most %d positional argument%s (%zd given)",
                     func, count, count == 1 ? "" : "s", nargs);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        values[i] = i < nargs ? args[i] : NULL;
    }

    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int i = 0; i < count; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                found = i;
                break;
            }
        }
        if (found < 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'", func,
                         key);
            return -1;
        }
        if (values[found] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'", func,
                         names[found]);
            return -1;
        }
        values[found] = args[nargs + k];
    }

    for (int i = 0; i < required; i++) {
        if (values[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %d)", func,
                         names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

/* NPY_FLOAT or NPY_DOUBLE for a type the dtype rule accepts, else -1. */
static int
compute_type(int typenum)
{
    if (typenum == NPY_FLOAT || typenum == NPY_HALF) {
        return NPY_FLOAT;
    }
    if (typenum == NPY_DOUBLE || typenum == NPY_LONGDOUBLE ||
        typenum == NPY_BOOL || PyTypeNum_ISINTEGER(typenum)) {
        return NPY_DOUBLE;
    }
    return -1;
}

static int
raise_dtype_error(const char *func, const mla_array_arg *arg)
{
    if (arg->obj == Py_None) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s must be an array of real numbers; got None",
                     func, arg->name);
        return -1;
    }
    PyErr_Format(PyExc_TypeError,
                 "%s: %s must contain real numbers (float, integer or bool); "
                 "got dtype %S",
                 func, arg->name, (PyObject *)PyArray_DESCR(arg->arr));
    return -1;
}

/*
 * Re-raise NumPy's ValueError or TypeError from converting arg (a ragged
 * list, say) with the function and argument named, chained to the
 * original. Always returns -1.
 */
static int
raise_conversion_error(const char *func, const mla_array_arg *arg)
{
    PyObject *type, *value, *traceback;
    if (!PyErr_ExceptionMatches(PyExc_ValueError) &&
        !PyErr_ExceptionMatches(PyExc_TypeError)) {
        return -1;
    }
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyErr_Format(type, "%s: %s could not be converted to an array: %S", func,
                 arg->name, value);
    Py_XDECREF(type);
    Py_XDECREF(traceback);

    PyObject *new_type, *new_value, *new_traceback;
    PyErr_Fetch(&new_type, &new_value, &new_traceback);
    PyErr_NormalizeException(&new_type, &new_value, &new_traceback);
    if (new_value != NULL && value != NULL) {
        PyException_SetCause(new_value, value);
    }
    else {
        Py_XDECREF(value);
    }
    PyErr_Restore(new_type, new_value, new_traceback);
    return -1;
}

/*
 * Convert every args[i].obj to an aligned, native-order array of the
 * common compute type, stored in args[i].arr; C-contiguous unless
 * args[i].strided. Arrays that already qualify are not copied. On failure
 * the arrays made so far stay in args for mla_release.
 */
int
mla_convert(const char *func, mla_array_arg *args, int n, int *typenum)
{
    int common = NPY_FLOAT;

    for (int i = 0; i < n; i++) {
        args[i].arr = (PyArrayObject *)PyArray_FromAny(args[i].obj, NULL, 0, 0,
                                                       0, NULL);
        if (args[i].arr == NULL) {
            return raise_conversion_error(func, &args[i]);
        }
        int type = compute_type(PyArray_TYPE(args[i].arr));
        if (type < 0) {
            return raise_dtype_error(func, &args[i]);
        }
        if (type == NPY_DOUBLE) {
            common = NPY_DOUBLE;
        }
    }

    for (int i = 0; i < n; i++) {
        int flags = NPY_ARRAY_ALIGNED | NPY_ARRAY_NOTSWAPPED |
                    NPY_ARRAY_FORCECAST;
        if (!args[i].strided) {
            flags |= NPY_ARRAY_C_CONTIGUOUS;
        }
        PyObject *converted = PyArray_FromArray(
            args[i].arr, PyArray_DescrFromType(common), flags);
        if (converted == NULL) {
            return -1;
        }
        Py_SETREF(args[i].arr, (PyArrayObject *)converted);
    }
    *typenum = common;
    return 0;
}

/*
 * Convert arg->obj to a boolean array in arg->arr, in whatever memory
 * layout it has (one byte per element, so strides count elements). Raises
 * TypeError unless the dtype is bool. Numbers are not cast, so that a
 * float or integer mask is never read as "nonzero means True".
 */
int
mla_convert_bool(const char *func, mla_array_arg *arg)
{
    arg->arr = (PyArrayObject *)PyArray_FromAny(arg->obj, NULL, 0, 0, 0, NULL);
    if (arg->arr == NULL) {
        return raise_conversion_error(func, arg);
    }
    if (PyArray_TYPE(arg->arr) != NPY_BOOL) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s must be a boolean array; got dtype %S", func,
                     arg->name, (PyObject *)PyArray_DESCR(arg->arr));
        return -1;
    }
    return 0;
}

void
mla_release(mla_array_arg *args, int n)
{
    for (int i = 0; i < n; i++) {
        Py_CLEAR(args[i].arr);
    }
}

void
mla_format_shape(char *buf, int ndim, const npy_intp *dims)
{
    size_t used = 0;
    buf[used++] = '(';
    for (int i = 0; i < ndim; i++) {
        used += (size_t)snprintf(buf + used, MLA_SHAPE_CHARS - used, "%s%ld",
                                 i > 0 ? ", " : "", (long)dims[i]);
    }
    snprintf(buf + used, MLA_SHAPE_CHARS - used, ndim == 1 ? ",)" : ")");
}

/*
 * Raise ValueError "func: <message>; got shapes a=(..), b=(..)" where the
 * message comes from format and the shapes from the converted args.
 */
int
mla_shape_error(const char *func, const mla_array_arg *args, int n,
                const char *format, ...)
{
    char rule[512];
    char shapes[1024];
    char shape[MLA_SHAPE_CHARS];
    size_t used = 0;
    va_list ap;

    va_start(ap, format);
    vsnprintf(rule, sizeof(rule), format, ap);
    va_end(ap);

    shapes[0] = '\0';
    for (int i = 0; i < n && used < sizeof(shapes); i++) {
        PyArrayObject *arr = args[i].arr;
        mla_format_shape(shape, PyArray_NDIM(arr), PyArray_DIMS(arr));
        used += (size_t)snprintf(shapes + used, sizeof(shapes) - used,
                                 "%s%s=%s", i > 0 ? ", " : "", args[i].name,
                                 shape);
    }
    PyErr_Format(PyExc_ValueError, "%s: %s; got shapes %s", func, rule,
                 shapes);
    return -1;
}

/* Raise ValueError unless min_ndim <= arg.ndim <= max_ndim (-1: no max). */
int
mla_check_ndim(const char *func, const mla_array_arg *arg, int min_ndim,
               int max_ndim)
{
    int ndim = PyArray_NDIM(arg->arr);
    if (ndim >= min_ndim && (max_ndim < 0 || ndim <= max_ndim)) {
        return 0;
    }
    char shape[MLA_SHAPE_CHARS];
    mla_format_shape(shape, ndim, PyArray_DIMS(arg->arr));
    if (max_ndim < 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must have at least %d dimension%s; got shape %s",
                     func, arg->name, min_ndim, min_ndim == 1 ? "" : "s",
                     shape);
    }
    else if (min_ndim == max_ndim) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be %d-D; got shape %s",
                     func, arg->name, min_ndim, shape);
    }
    else {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must be %d-D or %d-D; got shape %s", func,
                     arg->name, min_ndim, max_ndim, shape);
    }
    return -1;
}

/*
 * Raise ValueError unless a.shape[axis_a] == b.shape[axis_b]; negative axes
 * count from the end. The message lists the shapes of all n args.
 */
int
mla_check_dim(const char *func, const mla_array_arg *args, int n,
              const mla_array_arg *a, int axis_a, const mla_array_arg *b,
              int axis_b)
{
    int ia = axis_a < 0 ? PyArray_NDIM(a->arr) + axis_a : axis_a;
    int ib = axis_b < 0 ? PyArray_NDIM(b->arr) + axis_b : axis_b;
    npy_intp da = PyArray_DIM(a->arr, ia);
    npy_intp db = PyArray_DIM(b->arr, ib);
    if (da == db) {
        return 0;
    }
    return mla_shape_error(func, args, n,
                           "%s.shape[%d] (%ld) must equal %s.shape[%d] (%ld)",
                           a->name, axis_a, (long)da, b->name, axis_b,
                           (long)db);
}

/* 1 for a bool, integer or floating NumPy type, the real ones. */
static int
is_real_typenum(int typenum)
{
    return PyTypeNum_ISBOOL(typenum) || PyTypeNum_ISINTEGER(typenum) ||
           PyTypeNum_ISFLOAT(typenum);
}

/*
 * Store obj, a real number, as a double in *value: a Python int, float or
 * bool, an object with __float__ or __index__, a NumPy bool, integer or
 * floating scalar, or a 0-d ndarray of those dtypes. Anything else raises
 * TypeError, with expected naming what is valid ("a real number", say).
 * That includes a complex number, whose imaginary part NumPy would drop
 * with only a ComplexWarning. It also includes arrays of one or more
 * dimensions and 0-d arrays of strings or objects, which NumPy would
 * parse. A value beyond the range of a double (a huge int) raises
 * ValueError.
 */
int
mla_parse_real(const char *func, const char *name, const char *expected,
               PyObject *obj, double *value)
{
    int real;
    if (PyArray_Check(obj)) {
        PyArrayObject *arr = (PyArrayObject *)obj;
        /* Exact: a masked 0-d array would turn into NaN with a warning. */
        real = PyArray_CheckExact(obj) && PyArray_NDIM(arr) == 0 &&
               is_real_typenum(PyArray_TYPE(arr));
    }
    else if (PyArray_IsScalar(obj, Generic)) {
        PyArray_Descr *descr = PyArray_DescrFromScalar(obj);
        if (descr == NULL) {
            return -1;
        }
        real = is_real_typenum(descr->type_num);
        Py_DECREF(descr);
    }
    else {
        real = !PyComplex_Check(obj) && PyNumber_Check(obj);
    }
    if (real) {
        *value = PyFloat_AsDouble(obj);
        if (*value != -1.0 || !PyErr_Occurred()) {
            return 0;
        }
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Format(PyExc_ValueError,
                         "%s: %s must be finite; got an int beyond the range "
                         "of a double",
                         func, name);
            return -1;
        }
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            return -1;
        }
        PyErr_Clear();
    }
    PyErr_Format(PyExc_TypeError, "%s: %s must be %s; got %.100s", func, name,
                 expected, Py_TYPE(obj)->tp_name);
    return -1;
}

/*
 * Store a bool or numpy.bool_ option in *flag, or default_value when obj
 * is NULL (omitted). Other objects raise TypeError rather than count by
 * their truth value, which would read "False" as true.
 */
int
mla_parse_flag(const char *func, const char *name, PyObject *obj,
               int default_value, int *flag)
{
    if (obj == NULL) {
        *flag = default_value;
        return 0;
    }
    if (!PyBool_Check(obj) && !PyArray_IsScalar(obj, Bool)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s must be True or False; got %.100s", func, name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    *flag = PyObject_IsTrue(obj);
    return *flag < 0 ? -1 : 0;
}

/* Map an activation name (or None) to its enum; NULL means the default. */
int
mla_parse_activation(const char *func, PyObject *obj,
                     mla_activation *activation)
{
    if (obj == NULL) {
        *activation = MLA_ACT_RELU;
        return 0;
    }
    if (obj == Py_None) {
        *activation = MLA_ACT_LINEAR;
        return 0;
    }
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: activation must be a str or None; got %.100s", func,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyUnicode_CompareWithASCIIString(obj, "relu") == 0) {
        *activation = MLA_ACT_RELU;
    }
    else if (PyUnicode_CompareWithASCIIString(obj, "sigmoid") == 0) {
        *activation = MLA_ACT_SIGMOID;
    }
    else if (PyUnicode_CompareWithASCIIString(obj, "tanh") == 0) {
        *activation = MLA_ACT_TANH;
    }
    else if (PyUnicode_CompareWithASCIIString(obj, "linear") == 0) {
        *activation = MLA_ACT_LINEAR;
    }
    else {
        PyErr_Format(PyExc_ValueError,
                     "%s: unknown activation %R; expected 'relu', 'sigmoid', "
                     "'tanh', 'linear' or None",
                     func, obj);
        return -1;
    }
    return 0;
}

/*
 * Broadcast the batch dimensions of n arrays, those before the last
 * core_ndim[i] dimensions of args[i], with NumPy's rules. Writes the
 * result's batch_ndim and batch_shape; raises ValueError when a dimension
 * is neither equal nor 1 in every array.
 */
int
mla_broadcast_batch(const char *func, const mla_array_arg *args, int n,
                    const int *core_ndim, int *batch_ndim,
                    npy_intp *batch_shape)
{
    int out_ndim = 0;
    for (int i = 0; i < n; i++) {
        int nb = PyArray_NDIM(args[i].arr) - core_ndim[i];
        out_ndim = nb > out_ndim ? nb : out_ndim;
    }
    for (int d = 0; d < out_ndim; d++) {
        batch_shape[d] = 1;
    }
    for (int i = 0; i < n; i++) {
        int nb = PyArray_NDIM(args[i].arr) - core_ndim[i];
        for (int d = 0; d < nb; d++) {
            npy_intp size = PyArray_DIM(args[i].arr, d);
            npy_intp *out = &batch_shape[out_ndim - nb + d];
            if (size == *out || size == 1) {
                continue;
            }
            if (*out != 1) {
                return mla_shape_error(
                    func, args, n,
                    "batch dimensions (all but the last %d) do not broadcast",
                    core_ndim[i]);
            }
            *out = size;
        }
    }
    *batch_ndim = out_ndim;
    return 0;
}

/*
 * Element offsets of matrix t (row-major over batch_shape) in each of the
 * n arrays, as offsets[i * count + t], with stride 0 along dimensions that
 * broadcast. count is the product of batch_shape. Returns PyMem memory, or
 * NULL with MemoryError set.
 */
ptrdiff_t *
mla_batch_offsets(PyArrayObject *const *arrays, int n, const int *core_ndim,
                  int batch_ndim, const npy_intp *batch_shape, ptrdiff_t count)
{
    ptrdiff_t strides[MLA_MAXDIMS][8];
    npy_intp index[MLA_MAXDIMS];
    ptrdiff_t *offsets;

    if (n > 8 ||
        (size_t)count > (size_t)PTRDIFF_MAX / sizeof(ptrdiff_t) / (size_t)n) {
        PyErr_NoMemory();
        return NULL;
    }
    offsets = PyMem_Malloc((size_t)(count > 0 ? count : 1) * (size_t)n *
                           sizeof(ptrdiff_t));
    if (offsets == NULL) {
        PyErr_NoMemory();
        return NULL;
    }

    /* Element stride of each batch dimension, right-aligned, 0 if size 1. */
    for (int d = 0; d < batch_ndim; d++) {
        index[d] = 0;
        for (int i = 0; i < n; i++) {
            int nb = PyArray_NDIM(arrays[i]) - core_ndim[i];
            int ad = d - (batch_ndim - nb);
            strides[d][i] = (ad < 0 || PyArray_DIM(arrays[i], ad) == 1)
                                ? 0
                                : mla_stride(arrays[i], ad);
        }
    }

    /* Walk the batch index like an odometer, updating offsets as it goes. */
    ptrdiff_t current[8] = {0};
    for (ptrdiff_t t = 0; t < count; t++) {
        for (int i = 0; i < n; i++) {
            offsets[i * count + t] = current[i];
        }
        for (int d = batch_ndim - 1; d >= 0; d--) {
            index[d]++;
            for (int i = 0; i < n; i++) {
                current[i] += strides[d][i];
            }
            if (index[d] < batch_shape[d]) {
                break;
            }
            for (int i = 0; i < n; i++) {
                current[i] -= strides[d][i] * (ptrdiff_t)batch_shape[d];
            }
            index[d] = 0;
        }
    }
    return offsets;
}

/*
 * Store the product of dims[0..ndim) in size. Raises ValueError when it
 * overflows, which shapes declared through zero strides can make it do.
 */
int
mla_shape_size(const char *func, const npy_intp *dims, int ndim,
               ptrdiff_t *size)
{
    ptrdiff_t product = 1;
    int overflow = 0;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] == 0) {
            *size = 0;
            return 0;
        }
        if (product > PTRDIFF_MAX / dims[d]) {
            overflow = 1;
        }
        else {
            product *= dims[d];
        }
    }
    if (overflow) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the broadcast batch has more matrices than fit in "
                     "a signed 64-bit count",
                     func);
        return -1;
    }
    *size = product;
    return 0;
}

/* Raise the exception for a failed kernel status; always returns NULL. */
PyObject *
mla_raise_status(const char *func, mla_status status)
{
    switch (status) {
    case MLA_ERR_NOMEM:
        PyErr_Format(PyExc_MemoryError,
                     "%s: could not allocate scratch memory", func);
        break;
    case MLA_ERR_SINGULAR:
        PyErr_Format(mla_LinAlgError,
                     "%s: the system is singular to working precision: the "
                     "columns of the design matrix are linearly dependent or "
                     "nearly so, or there are fewer samples than weights; add "
                     "regularization, remove redundant columns or center the "
                     "features",
                     func);
        break;
    default:
        PyErr_Format(PyExc_SystemError, "%s: kernel failed with status %d",
                     func, (int)status);
        break;
    }
    return NULL;
}
