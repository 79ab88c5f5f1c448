/*
 * vecmath.h: the vectorized exp and the array kernels built on it (softmax
 * passes, sigmoid), one table of function pointers per SIMD level and
 * element type.
 *
 * vecmath_impl.h contains the only body of these kernels, written once over
 * a vector type of VLEN lanes. vecmath.c instantiates it in portable C (one
 * lane), vecmath_avx2.c with AVX2 and FMA and vecmath_avx512.c with
 * AVX-512F; mla_select_vector_kernels_* picks the table of the level that
 * runtime.c selected. All kernels take contiguous arrays and accept any n,
 * including 0, unless a line below states otherwise.
 */
#ifndef MLA_VECMATH_H
#define MLA_VECMATH_H

#include <stddef.h>

#include "mla.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MLA_HAVE_X86_VECTOR 1
#endif

#define MLA_DECLARE_VECTOR_KERNELS(T, S)                                      \
    typedef struct {                                                          \
        /* y = exp(x); y may equal x. */                                      \
        void (*exp)(T *y, const T *x, ptrdiff_t n);                           \
        /* y = sigmoid(x) and sigmoid'(x); y may equal x. */                  \
        void (*sigmoid)(T *y, const T *x, ptrdiff_t n);                       \
        void (*sigmoid_derivative)(T *y, const T *x, ptrdiff_t n);            \
        /* max of x, NaN when any element is NaN; n >= 1. */                  \
        T (*max)(const T *x, ptrdiff_t n);                                    \
        /*                                                                    \
         * Returns sum(exp(x - shift)). Unless y is NULL, stores in y the     \
         * exponentials, or with `shifted` the differences x - shift. Also    \
         * stores in *next_max the max of next[0..next_n) as `max` gives it,  \
         * or -inf when next_n is 0 (next may then be NULL).                  \
         */                                                                   \
        double (*exp_sum)(T *y, const T *x, T shift, ptrdiff_t n,             \
                          int shifted, const T *next, ptrdiff_t next_n,       \
                          T *next_max);                                       \
        /* y = x * factor. */                                                 \
        void (*scale)(T *y, const T *x, T factor, ptrdiff_t n);               \
        /* y = x * factor - p * weight. */                                    \
        void (*scale_subtract)(T *y, const T *x, T factor, const T *p,        \
                               T weight, ptrdiff_t n);                        \
        /* y = (x - max) - log_sum. */                                        \
        void (*log_normalize)(T *y, const T *x, T max, T log_sum,             \
                              ptrdiff_t n);                                   \
        /* Returns sum(w * log(min(max(p, lo), hi))) for 0 < lo <= hi. */  \
        double (*clipped_log_dot)(const T *p, const T *w, T lo, T hi,         \
                                  ptrdiff_t n);                               \
        /*                                                                    \
         * Returns the sum of p * (shift - x) over the elements with          \
         * p != 0, and adds sum(p) to *mass.                                  \
         */                                                                   \
        double (*weighted_gap)(const T *p, const T *x, T shift,               \
                               ptrdiff_t n, double *mass);                    \
        /*                                                                    \
         * Per column j < n of `rows` rows, row i at x + i * ld (and          \
         * y + i * ld): max[j] = max(max[j], x[i][j]), NaN sticking.          \
         */                                                                   \
        void (*max_columns)(T *max, const T *x, ptrdiff_t ld,                 \
                            ptrdiff_t rows, ptrdiff_t n);                     \
        /* sum[j] += exp(x[i][j] - shift[j]), stored in y unless NULL. */     \
        void (*exp_sum_columns)(T *y, const T *x, ptrdiff_t ld,               \
                                ptrdiff_t rows, const T *shift, T *sum,       \
                                ptrdiff_t n);                                 \
        /* y[i][j] = x[i][j] * factor[j]. */                                  \
        void (*scale_columns)(T *y, const T *x, ptrdiff_t ld, ptrdiff_t rows, \
                              const T *factor, ptrdiff_t n);                  \
        /* y[i][j] = (x[i][j] - max[j]) - log_sum[j]. */                      \
        void (*log_normalize_columns)(T *y, const T *x, ptrdiff_t ld,         \
                                      ptrdiff_t rows, const T *max,           \
                                      const T *log_sum, ptrdiff_t n);         \
        /* y[i][j] = x[i][j] * factor[j]; sum[j] += y[i][j] * g[i][j]. */     \
        void (*scale_dot_columns)(T *y, const T *x, ptrdiff_t ld,             \
                                  ptrdiff_t rows, const T *factor,            \
                                  const T *g, T *sum, ptrdiff_t n);           \
        /* g[i][j] = p[i][j] * (g[i][j] - delta[j]). */                       \
        void (*softmax_grad_columns)(T *g, const T *p, ptrdiff_t ld,          \
                                     ptrdiff_t rows, const T *delta,          \
                                     ptrdiff_t n);                            \
    } mla_vector_kernels_##S;                                                 \
                                                                              \
    extern const mla_vector_kernels_##S mla_vector_kernels_generic_##S;       \
    extern const mla_vector_kernels_##S mla_vector_kernels_avx2_##S;          \
    extern const mla_vector_kernels_##S mla_vector_kernels_avx512_##S;        \
    const mla_vector_kernels_##S *mla_select_vector_kernels_##S(void);

MLA_DECLARE_VECTOR_KERNELS(float, f32)
MLA_DECLARE_VECTOR_KERNELS(double, f64)

#undef MLA_DECLARE_VECTOR_KERNELS

#endif /* MLA_VECMATH_H */
