/*
 * module.c: the mla._core extension module: the method table, the
 * configuration functions and module initialization.
 */
#define MLA_IMPORT_ARRAY
#include "wrappers.h"

#define MLA_METHOD(name)                                                      \
    {#name, (PyCFunction)(void (*)(void))py_##name,                           \
     METH_FASTCALL | METH_KEYWORDS, NULL}

static PyObject *
py_get_num_threads(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromLong(mla_get_num_threads());
}

static PyObject *
py_set_num_threads(PyObject *module, PyObject *arg)
{
    (void)module;
    if (arg == Py_None) {
        mla_set_num_threads(0);
        Py_RETURN_NONE;
    }
    /* A bool would pass as 0 or 1, but a flag in place of a count is a bug. */
    PyObject *index = PyBool_Check(arg) ? NULL : PyNumber_Index(arg);
    if (index == NULL) {
        if (PyBool_Check(arg) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError,
                         "set_num_threads: n must be an integer or None; "
                         "got %.100s",
                         Py_TYPE(arg)->tp_name);
        }
        return NULL;
    }
    int overflow;
    long n = PyLong_AsLongAndOverflow(index, &overflow);
    Py_DECREF(index);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow != 0) {
        /* Not %R: repr of an int over 4300 digits raises. */
        PyErr_SetString(PyExc_ValueError,
                        "set_num_threads: n must be between 1 and 4096; got "
                        "an int beyond the range of a C long");
        return NULL;
    }
    if (n < 1 || n > 4096) {
        PyErr_Format(PyExc_ValueError,
                     "set_num_threads: n must be between 1 and 4096; got %ld",
                     n);
        return NULL;
    }
    mla_set_num_threads((int)n);
    Py_RETURN_NONE;
}

/* Number of mla_alloc blocks not yet freed, for the leak tests. */
static PyObject *
py_live_allocations(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromLong(mla_live_allocations());
}

/* Clear the thread override: OpenMP's default applies again. */
static PyObject *
py_reset_num_threads(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mla_set_num_threads(0);
    Py_RETURN_NONE;
}

static const char *const level_names[] = {"generic", "avx2", "avx512"};

/* Select a SIMD level by name; ValueError when the CPU lacks it. */
static PyObject *
py_set_kernel_level(PyObject *module, PyObject *arg)
{
    (void)module;
    for (int level = MLA_LEVEL_GENERIC; level <= MLA_LEVEL_AVX512; level++) {
        if (PyUnicode_Check(arg) &&
            PyUnicode_CompareWithASCIIString(arg, level_names[level]) == 0) {
            if (!mla_cpu_supports((mla_level)level)) {
                PyErr_Format(PyExc_ValueError,
                             "kernel level %R is not supported by this CPU",
                             arg);
                return NULL;
            }
            mla_set_level((mla_level)level);
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError,
                 "unknown kernel level %R; expected 'generic', 'avx2' or "
                 "'avx512'",
                 arg);
    return NULL;
}

/* The build and runtime facts show_config() prints, as a dict. */
static PyObject *
py_config(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *supported = PyList_New(0);
    if (supported == NULL) {
        return NULL;
    }
    for (int level = MLA_LEVEL_GENERIC; level <= MLA_LEVEL_AVX512; level++) {
        if (mla_cpu_supports((mla_level)level)) {
            PyObject *name = PyUnicode_FromString(level_names[level]);
            if (name == NULL || PyList_Append(supported, name) < 0) {
                Py_XDECREF(name);
                Py_DECREF(supported);
                return NULL;
            }
            Py_DECREF(name);
        }
    }
#if defined(__clang__)
    const char *compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *compiler = "gcc " __VERSION__;
#else
    const char *compiler = "unknown";
#endif
    return Py_BuildValue("{s:s,s:s,s:N,s:O,s:i}", "compiler", compiler,
                         "kernel_level", mla_level_name(mla_get_level()),
                         "supported_levels", supported, "openmp",
                         mla_have_openmp() ? Py_True : Py_False,
                         "num_threads", mla_get_num_threads());
}

/*
 * Attach a docstring to one of this module's functions. The docstrings
 * live in mla/_docstrings.py; the string is kept alive for good.
 */
static PyObject *
py_add_docstring(PyObject *module, PyObject *args)
{
    PyObject *func, *doc;
    if (!PyArg_ParseTuple(args, "O!U:_add_docstring", &PyCFunction_Type, &func,
                          &doc)) {
        return NULL;
    }
    PyCFunctionObject *cfunc = (PyCFunctionObject *)func;
    if (cfunc->m_self != module) {
        PyErr_SetString(PyExc_ValueError,
                        "_add_docstring: not a function of mla._core");
        return NULL;
    }
    const char *text = PyUnicode_AsUTF8(doc);
    if (text == NULL) {
        return NULL;
    }
    Py_INCREF(doc);
    cfunc->m_ml->ml_doc = text;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    MLA_METHOD(sigmoid),
    MLA_METHOD(relu),
    MLA_METHOD(sigmoid_derivative),
    MLA_METHOD(relu_derivative),
    MLA_METHOD(forward_layer),
    MLA_METHOD(forward_layer_batch),
    MLA_METHOD(dense_backward),
    MLA_METHOD(simple_backprop),
    MLA_METHOD(matmul),
    MLA_METHOD(matmul_loop),
    MLA_METHOD(cosine_similarity),
    MLA_METHOD(cosine_similarity_matrix),
    MLA_METHOD(linear_regression),
    MLA_METHOD(softmax),
    MLA_METHOD(log_softmax),
    MLA_METHOD(softmax_cross_entropy),
    MLA_METHOD(cross_entropy_loss),
    MLA_METHOD(scaled_dot_product_attention),
    MLA_METHOD(scaled_dot_product_attention_backward),
    {"_exp", (PyCFunction)(void (*)(void))py_exp,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_syrk", (PyCFunction)(void (*)(void))py_syrk,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_solve_symmetric", (PyCFunction)(void (*)(void))py_solve_symmetric,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_sgd_update", (PyCFunction)(void (*)(void))py_sgd_update,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_adam_update", (PyCFunction)(void (*)(void))py_adam_update,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, NULL},
    {"set_num_threads", py_set_num_threads, METH_O, NULL},
    {"_reset_num_threads", py_reset_num_threads, METH_NOARGS, NULL},
    {"_live_allocations", py_live_allocations, METH_NOARGS, NULL},
    {"_set_kernel_level", py_set_kernel_level, METH_O, NULL},
    {"_set_gemm_avx512_on_avx2", py_set_gemm_avx512_on_avx2, METH_O, NULL},
    {"_gemm_peak_loop", py_gemm_peak_loop, METH_VARARGS, NULL},
    {"_gemm_grid", py_gemm_grid, METH_VARARGS, NULL},
    {"_gemm_update", py_gemm_update, METH_VARARGS, NULL},
    {"_syrk_lower", py_syrk_lower, METH_VARARGS, NULL},
    {"_config", py_config, METH_NOARGS, NULL},
    {"_add_docstring", py_add_docstring, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_core",
    "C kernels of mla; import mla rather than this module.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* Return a new reference to module.attribute, or NULL with an error. */
static PyObject *
import_attribute(const char *module, const char *attribute)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(mod, attribute);
    Py_DECREF(mod);
    return value;
}

PyMODINIT_FUNC
PyInit__core(void)
{
    import_array();

    mla_LinAlgError = import_attribute("numpy.linalg", "LinAlgError");
    if (mla_LinAlgError == NULL) {
        return NULL;
    }
    mla_AxisError = import_attribute("numpy.exceptions", "AxisError");
    if (mla_AxisError == NULL) {
        /* NumPy before 1.25 kept AxisError at the top level. */
        PyErr_Clear();
        mla_AxisError = import_attribute("numpy", "AxisError");
        if (mla_AxisError == NULL) {
            return NULL;
        }
    }

    mla_runtime_init();

    /* Best SIMD level of this CPU; mla/__init__.py applies MLA_KERNEL. */
    for (int level = MLA_LEVEL_AVX512; level > MLA_LEVEL_GENERIC; level--) {
        if (mla_cpu_supports((mla_level)level)) {
            mla_set_level((mla_level)level);
            break;
        }
    }
    return PyModule_Create(&module_def);
}
