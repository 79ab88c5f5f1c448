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
    MLA_ACT_SIGMOID,
    MLA_ACT_TANH
} mla_activation;

/* SIMD level of the kernels chosen at import (runtime.c). */
typedef enum {
    MLA_LEVEL_GENERIC = 0,
    MLA_LEVEL_AVX2,
    MLA_LEVEL_AVX512
} mla_level;

/*
 * One attention call (attention.c): for each problem t < batch, the output
 * softmax(scale Q K^T, restricted to the allowed keys) V with Q (lq, d),
 * K (lk, d) and V (lk, dv). Element (i, j) of Q for problem t is
 * q[q_offsets[t] + i * rs_q + j * cs_q], and likewise for K and V; the
 * pointers have the kernel's element type. Query i may attend to key j
 * when mask is NULL or mask[mask_offsets[t] + i * rs_mask + j * cs_mask]
 * is nonzero, and, with causal set, j <= i.
 */
typedef struct {
    const void *q;
    ptrdiff_t rs_q, cs_q;
    const void *k;
    ptrdiff_t rs_k, cs_k;
    const void *v;
    ptrdiff_t rs_v, cs_v;
    const unsigned char *mask;
    ptrdiff_t rs_mask, cs_mask;
    const ptrdiff_t *q_offsets;
    const ptrdiff_t *k_offsets;
    const ptrdiff_t *v_offsets;
    const ptrdiff_t *mask_offsets;
    ptrdiff_t batch, lq, lk, d, dv;
    double scale;
    int causal;
} mla_attention_args;

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
void mla_note_parallel(int nthreads); /* call before a region of 2+ threads */
int mla_team_threads(int nthreads);   /* nthreads, or fewer that can start */
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
    /* y = exp(x) elementwise, vectorized; y may equal x (vecmath.c). */      \
    void mla_exp_##S(T *y, const T *x, ptrdiff_t n);                          \
                                                                              \
    mla_status mla_gemm_##S(                                                  \
        T *c, ptrdiff_t rs_c, ptrdiff_t cs_c,                                 \
        const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,                           \
        const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,                           \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,                                \
        const mla_epilogue_##S *epilogue);                                    \
    mla_status mla_gemm_update_##S(                                           \
        T *c, ptrdiff_t rs_c, ptrdiff_t cs_c,                                 \
        const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,                           \
        const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,                           \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T beta,                        \
        const mla_epilogue_##S *epilogue);                                    \
    mla_status mla_syrk_lower_##S(                                            \
        T *c, ptrdiff_t rs_c, ptrdiff_t cs_c,                                 \
        const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,                           \
        ptrdiff_t n, ptrdiff_t k, T alpha, T beta);                           \
    int mla_gemm_threads_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);          \
    size_t mla_gemm_workspace_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,      \
                                  int nthreads);                              \
    void mla_gemm_run_##S(                                                    \
        T *c, ptrdiff_t rs_c, ptrdiff_t cs_c,                                 \
        const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,                           \
        const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,                           \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,                                \
        const mla_epilogue_##S *epilogue, T *work, int nthreads);             \
    void mla_gemm_run_update_##S(                                             \
        T *c, ptrdiff_t rs_c, ptrdiff_t cs_c,                                 \
        const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,                           \
        const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,                           \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T beta,                        \
        const mla_epilogue_##S *epilogue, T *work, int nthreads);             \
    mla_status mla_matmul_batched_##S(                                        \
        T *c, const ptrdiff_t *c_offsets, ptrdiff_t rs_c, ptrdiff_t cs_c,     \
        const T *a, const ptrdiff_t *a_offsets, ptrdiff_t rs_a,               \
        ptrdiff_t cs_a,                                                       \
        const T *b, const ptrdiff_t *b_offsets, ptrdiff_t rs_b,               \
        ptrdiff_t cs_b,                                                       \
        ptrdiff_t batch, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);              \
    /* syrk.c: lower triangle of C = A A^T, on the GEMM (see there). */       \
    int mla_syrk_threads_##S(ptrdiff_t n, ptrdiff_t k);                       \
    size_t mla_syrk_workspace_##S(ptrdiff_t n, ptrdiff_t k, int nthreads);    \
    void mla_syrk_run_##S(T *c, ptrdiff_t ldc, const T *a, ptrdiff_t rs_a,    \
                          ptrdiff_t cs_a, ptrdiff_t n, ptrdiff_t k, T *work,  \
                          int nthreads);                                      \
    mla_status mla_syrk_##S(T *c, ptrdiff_t ldc, const T *a, ptrdiff_t rs_a,  \
                            ptrdiff_t cs_a, ptrdiff_t n, ptrdiff_t k);        \
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
    mla_status mla_dense_backward_##S(                                        \
        T *dx, T *dw, T *db, const T *d_out, const T *x, ptrdiff_t rs_x,      \
        ptrdiff_t cs_x, const T *w, ptrdiff_t rs_w, ptrdiff_t cs_w,           \
        const T *z, ptrdiff_t batch, ptrdiff_t n_out, ptrdiff_t n_in,         \
        mla_activation activation);                                           \
    mla_status mla_simple_backprop_##S(                                       \
        T *dw1, T *dw2, T *db1, T *db2, const T *x, const T *y_true,          \
        ptrdiff_t y_true_stride, const T *w1, const T *w2, const T *b1,       \
        const T *b2, ptrdiff_t n_in, ptrdiff_t n_hidden, ptrdiff_t n_out);    \
                                                                              \
    void mla_sgd_update_##S(T *param, T *velocity, const T *grad,            \
                            ptrdiff_t n, T lr, T momentum);                   \
    void mla_adam_update_##S(T *param, T *first, T *second, const T *grad,    \
                             ptrdiff_t n, T step_size, T beta1, T beta2,      \
                             T eps);                                          \
                                                                              \
    double mla_cosine_similarity_##S(                                         \
        const T *u, ptrdiff_t su, const T *v, ptrdiff_t sv, ptrdiff_t n);     \
    mla_status mla_cosine_similarity_matrix_##S(                              \
        T *s, const T *x, ptrdiff_t n, ptrdiff_t d);                          \
    mla_status mla_cosine_similarity_cross_##S(                               \
        T *s, const T *x, ptrdiff_t n, const T *y, ptrdiff_t m, ptrdiff_t d); \
                                                                              \
    mla_status mla_linear_regression_##S(                                     \
        T *w, const T *x, const T *y, ptrdiff_t n, ptrdiff_t p,               \
        ptrdiff_t t, double regularization);                                  \
    mla_status mla_linear_regression_qr_##S(                                  \
        T *w, const T *x, const T *y, ptrdiff_t n, ptrdiff_t p,               \
        ptrdiff_t t, double regularization);                                  \
                                                                              \
    mla_status mla_softmax_##S(                                               \
        T *y, const T *z, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner);     \
    mla_status mla_log_softmax_##S(                                           \
        T *y, const T *z, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner);     \
    mla_status mla_softmax_cross_entropy_##S(                                 \
        double *loss, T *grad, const T *logits, const ptrdiff_t *labels,      \
        const T *probs, ptrdiff_t batch, ptrdiff_t classes);                  \
    double mla_cross_entropy_##S(const T *y_pred, const T *y_true,            \
                                 ptrdiff_t n);                                \
                                                                              \
    mla_status mla_attention_##S(T *out, T *weights,                          \
                                 const mla_attention_args *args);             \
    mla_status mla_attention_backward_##S(                                    \
        T *grad_q, const ptrdiff_t *grad_q_offsets, T *grad_k,                \
        const ptrdiff_t *grad_k_offsets, T *grad_v,                           \
        const ptrdiff_t *grad_v_offsets, const T *d_out,                      \
        const ptrdiff_t *d_out_offsets, ptrdiff_t rs_do, ptrdiff_t cs_do,     \
        const mla_attention_args *args);

MLA_DECLARE_KERNELS(float, f32)
MLA_DECLARE_KERNELS(double, f64)

#undef MLA_DECLARE_KERNELS

#endif /* MLA_H */
