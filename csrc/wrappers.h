/*
 * wrappers.h: the Python-facing functions of mla._core, one py_<name> per
 * public function, defined in the py_<family>.c files and listed in the
 * method table of module.c. All use the vectorcall convention
 * (METH_FASTCALL | METH_KEYWORDS).
 */
#ifndef MLA_WRAPPERS_H
#define MLA_WRAPPERS_H

#include "convert.h"

#define MLA_WRAPPER(name)                                                     \
    PyObject *py_##name(PyObject *module, PyObject *const *args,              \
                        Py_ssize_t nargs, PyObject *kwnames)

MLA_WRAPPER(sigmoid);
MLA_WRAPPER(relu);
MLA_WRAPPER(sigmoid_derivative);
MLA_WRAPPER(relu_derivative);
MLA_WRAPPER(exp);
MLA_WRAPPER(syrk);
MLA_WRAPPER(forward_layer);
MLA_WRAPPER(forward_layer_batch);
MLA_WRAPPER(dense_backward);
MLA_WRAPPER(simple_backprop);
MLA_WRAPPER(sgd_update);
MLA_WRAPPER(adam_update);
MLA_WRAPPER(matmul);
MLA_WRAPPER(matmul_loop);
MLA_WRAPPER(cosine_similarity);
MLA_WRAPPER(cosine_similarity_matrix);
MLA_WRAPPER(linear_regression);
MLA_WRAPPER(solve_symmetric);
MLA_WRAPPER(softmax);
MLA_WRAPPER(log_softmax);
MLA_WRAPPER(softmax_cross_entropy);
MLA_WRAPPER(cross_entropy_loss);
MLA_WRAPPER(scaled_dot_product_attention);
MLA_WRAPPER(scaled_dot_product_attention_backward);

PyObject *py_set_gemm_avx512_on_avx2(PyObject *module, PyObject *arg);
PyObject *py_gemm_peak_loop(PyObject *module, PyObject *args);
PyObject *py_gemm_grid(PyObject *module, PyObject *args);
PyObject *py_gemm_update(PyObject *module, PyObject *args);
PyObject *py_syrk_lower(PyObject *module, PyObject *args);

#endif /* MLA_WRAPPERS_H */
