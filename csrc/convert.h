/*
 * convert.h: the argument-conversion layer every wrapper goes through.
 *
 * A wrapper parses its arguments with mla_parse_args, turns the array
 * arguments into arrays of one float type with mla_convert (the dtype rule
 * below), checks dimensions and shapes with the mla_check_* helpers, which
 * raise with messages that name the function and every shape, allocates its
 * result, calls a kernel with the GIL released, and ends with
 * mla_release. This is the only code besides the py_*.c wrappers that
 * touches Python objects.
 *
 * dtype rule: float32 and float16 compute in float32; float64, every
 * integer and bool type (and long double) compute in float64; the call uses
 * the widest of its arguments. Anything else (complex, object, strings,
 * datetimes, structured) raises TypeError.
 */
#ifndef MLA_CONVERT_H
#define MLA_CONVERT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL mla_ARRAY_API
#ifndef MLA_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "mla.h"

/* Array argument of a wrapper: fill name and obj, leave arr NULL. */
typedef struct {
    const char *name;    /* the argument's name in messages */
    PyObject *obj;       /* borrowed: what the caller passed */
    int strided;         /* 1 if the kernel reads any strides */
    PyArrayObject *arr;  /* owned: the converted array, or NULL */
} mla_array_arg;

/* Largest number of dimensions an mla array may have (NumPy's limit). */
#define MLA_MAXDIMS NPY_MAXDIMS

/* Shape of an array, formatted "(2, 3)" or "(3,)" into a caller buffer. */
#define MLA_SHAPE_CHARS (MLA_MAXDIMS * 22 + 8)

int mla_parse_args(const char *func, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, const char *const *names, int count,
                   int required, PyObject **values);
int mla_convert(const char *func, mla_array_arg *args, int n, int *typenum);
int mla_convert_bool(const char *func, mla_array_arg *arg);
void mla_release(mla_array_arg *args, int n);

void mla_format_shape(char *buf, int ndim, const npy_intp *dims);
int mla_shape_error(const char *func, const mla_array_arg *args, int n,
                    const char *format, ...);
int mla_check_ndim(const char *func, const mla_array_arg *arg, int min_ndim,
                   int max_ndim);
int mla_check_dim(const char *func, const mla_array_arg *args, int n,
                  const mla_array_arg *a, int axis_a, const mla_array_arg *b,
                  int axis_b);
int mla_parse_real(const char *func, const char *name, const char *expected,
                   PyObject *obj, double *value);
int mla_parse_flag(const char *func, const char *name, PyObject *obj,
                   int default_value, int *flag);
int mla_parse_activation(const char *func, PyObject *obj,
                         mla_activation *activation);
int mla_broadcast_batch(const char *func, const mla_array_arg *args, int n,
                        const int *core_ndim, int *batch_ndim,
                        npy_intp *batch_shape);
ptrdiff_t *mla_batch_offsets(PyArrayObject *const *arrays, int n,
                             const int *core_ndim, int batch_ndim,
                             const npy_intp *batch_shape, ptrdiff_t count);
int mla_shape_size(const char *func, const npy_intp *dims, int ndim,
                   ptrdiff_t *size);
PyObject *mla_raise_status(const char *func, mla_status status);

/* Element stride of axis of a converted (aligned, native) array. */
static inline ptrdiff_t
mla_stride(PyArrayObject *arr, int axis)
{
    return (ptrdiff_t)(PyArray_STRIDE(arr, axis) / PyArray_ITEMSIZE(arr));
}

/* Call kernel_f32 or kernel_f64 by typenum; data pointers pass as void *. */
#define MLA_DISPATCH(typenum, kernel, ...)                                    \
    ((typenum) == NPY_FLOAT ? kernel##_f32(__VA_ARGS__)                       \
                            : kernel##_f64(__VA_ARGS__))

/* Exception types looked up at import (module.c). */
extern PyObject *mla_LinAlgError;
extern PyObject *mla_AxisError;

#endif /* MLA_CONVERT_H */
