/*
 * mla.h: the kernel interface shared by every C file.
 *
 * Kernels are plain C: they never include Python.h, never print and never
 * abort. Each returns an mla_status, and the wrapper layer turns a failure
 * into a Python exception. Arguments come in one order everywhere: outputs,
 * then inputs, then sizes and strides. Sizes and strides are ptrdiff_t and
 * strides count elements, not bytes, so negative strides are allowed.
 *
 * Every kernel exists for float32 (suffix _f32) and float64 (suffix _f64);
 * both are instantiated from one *_impl.h body through dtype.h.
 */
#ifndef MLA_H
#define MLA_H

#include <stddef.h>

typedef enum {
    MLA_OK = 0,
    MLA_ERR_NOMEM,    /* a scratch allocation failed */
    MLA_ERR_SINGULAR  /* a linear system is singular to working precision */
} mla_status;

/* Activation applied by the fused dense kernels. */
typedef enum {
    MLA_ACT_LINEAR = 0,
    MLA_ACT_RELU,
    MLA_ACT_SIGMOID
} mla_activation;

/* SIMD level of the kernels chosen at import (runtime.c). */
typedef enum {
    MLA_LEVEL_GENERIC = 0,
    MLA_LEVEL_AVX2,
    MLA_LEVEL_AVX512
} mla_level;

/* regression.c: solve the symmetric system a x = b in double (see there). */
mla_status mla_solve_spd(double *b, double *a, double *work,
                         ptrdiff_t *pivots, ptrdiff_t dim, ptrdiff_t t);

/* runtime.c: CPU features, the selected level, threads and scratch memory. */
int mla_cpu_supports(mla_level level);
mla_level mla_get_level(void);
void mla_set_level(mla_level level);
const char *mla_level_name(mla_level level);
int mla_get_num_threads(void);
void mla_set_num_threads(int n);
void mla_runtime_init(void);
void mla_note_parallel(void); /* call before a region of 2+ threads */
int mla_have_openmp(void);
void *mla_alloc(size_t count, size_t size);
void mla_free(void *p);
long mla_live_allocations(void); /* blocks of mla_alloc not yet freed */

/*
 * Declarations for one element type: T is the element, S the name suffix.
 * Shapes are stated in the *_impl.h file beside each definition.
 */
#define MLA_DECLARE_KERNELS(T, S)                                             \
    typedef struct {                                                          \
        T alpha;            /* scale of the product */                        \
        const T *bias;      /* NULL, or bias[i * bias_rs + j * bias_cs] */    \
        ptrdiff_t bias_rs;                                                    \
        ptrdiff_t bias_cs;                                                    \
        mla_activation activation;                                            \
    } mla_epilogue_##S;                                                       \
                                                                              \
    void mla_sigmoid_##S(T *y, const T *x, ptrdiff_t n);                      \
    void mla_relu_##S(T *y, const T *x, ptrdiff_t n);                         \
    void mla_sigmoid_derivative_##S(T *y, const T *x, ptrdiff_t n);           \
    void mla_relu_derivative_##S(T *y, const T *x, ptrdiff_t n);              \
                                                                              \
    mla_status mla_gemm_##S(                                                  \
        T *c, ptrdiff_t rs_c, ptrdiff_t cs_c,                                 \
        const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,                           \
        const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,                           \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,                                \
        const mla_epilogue_##S *epilogue);                                    \
    int mla_gemm_threads_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);          \
    size_t mla_gemm_workspace_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,      \
                                  int nthreads);                              \
    void mla_gemm_run_##S(                                                    \
        T *c, ptrdiff_t rs_c, ptrdiff_t cs_c,                                 \
        const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,                           \
        const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,                           \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,                                \
        const mla_epilogue_##S *epilogue, T *work, int nthreads);             \
    mla_status mla_matmul_batched_##S(                                        \
        T *c, const ptrdiff_t *c_offsets, ptrdiff_t rs_c, ptrdiff_t cs_c,     \
        const T *a, const ptrdiff_t *a_offsets, ptrdiff_t rs_a,               \
        ptrdiff_t cs_a,                                                       \
        const T *b, const ptrdiff_t *b_offsets, ptrdiff_t rs_b,               \
        ptrdiff_t cs_b,                                                       \
        ptrdiff_t batch, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);              \
    void mla_matmul_loop_##S(                                                 \
        T *c, const T *a, const T *b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k); \
                                                                              \
    void mla_forward_layer_##S(                                               \
        T *y, const T *x, const T *w, const T *b, ptrdiff_t n_out,            \
        ptrdiff_t n_in, mla_activation activation);                           \
    mla_status mla_forward_layer_batch_##S(                                   \
        T *y, const T *x, const T *w, ptrdiff_t rs_w, ptrdiff_t cs_w,         \
        const T *b, ptrdiff_t batch, ptrdiff_t n_out, ptrdiff_t n_in,         \
        mla_activation activation);                                           \
    mla_status mla_simple_backprop_##S(                                       \
        T *dw1, T *dw2, T *db1, T *db2, const T *x, const T *y_true,          \
        ptrdiff_t y_true_stride, const T *w1, const T *w2, const T *b1,       \
        const T *b2, ptrdiff_t n_in, ptrdiff_t n_hidden, ptrdiff_t n_out);    \
                                                                              \
    double mla_cosine_similarity_##S(                                         \
        const T *u, ptrdiff_t su, const T *v, ptrdiff_t sv, ptrdiff_t n);     \
    mla_status mla_cosine_similarity_matrix_##S(                              \
        T *s, const T *x, ptrdiff_t n, ptrdiff_t d);                          \
                                                                              \
    mla_status mla_linear_regression_##S(                                     \
        T *w, const T *x, const T *y, ptrdiff_t n, ptrdiff_t p,               \
        ptrdiff_t t, double regularization);                                  \
                                                                              \
    mla_status mla_softmax_##S(                                               \
        T *y, const T *z, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner);     \
    double mla_cross_entropy_##S(const T *y_pred, const T *y_true,            \
                                 ptrdiff_t n);                                \
                                                                              \
    mla_status mla_attention_##S(                                             \
        T *out, T *weights, const T *q, ptrdiff_t rs_q, ptrdiff_t cs_q,       \
        const T *k, ptrdiff_t rs_k, ptrdiff_t cs_k, const T *v,               \
        ptrdiff_t rs_v, ptrdiff_t cs_v, const ptrdiff_t *offsets,             \
        ptrdiff_t batch, ptrdiff_t lq, ptrdiff_t lk, ptrdiff_t d,             \
        ptrdiff_t dv);

MLA_DECLARE_KERNELS(float, f32)
MLA_DECLARE_KERNELS(double, f64)

#undef MLA_DECLARE_KERNELS

#endif /* MLA_H */
