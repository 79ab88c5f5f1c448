/*
 * gemm.h: internals of the blocked matrix product shared by gemm.c and the
 * SIMD micro-kernels (gemm_avx2.c, gemm_avx512.c).
 *
 * A micro-kernel updates one MR x NR tile of C from packed panels:
 *
 *     C[i * rs_c + j] = alpha * sum over p < kc of a[p * MR + i] * b[p * NR + j]
 *                       + beta * C[i * rs_c + j]
 *
 * for i < MR, j < NR, with the columns of C contiguous. Its strided twin
 * reads a[i * rs_a + p * cs_a] and b[p * rs_b + j] instead, straight from
 * the operands of a small product, and rounds exactly like it. The sum starts from
 * zero and is accumulated with one fused multiply-add per p in increasing p
 * order, then scaled, then added to beta * C. beta == 0 never reads C, so
 * C may hold garbage or NaN. beta == 1 and alpha == 1 skip their multiply,
 * which leaves the result bit for bit the same as multiplying by one.
 * Every kernel of one tile shape rounds the same way, which is what makes
 * results independent of the thread count: the driver only changes which
 * thread runs a tile, never the order of a tile's sums.
 */
#ifndef MLA_GEMM_H
#define MLA_GEMM_H

#include <stddef.h>

/* Largest tile of any micro-kernel, in elements, for edge-tile buffers. */
#define MLA_MAX_MR 12
#define MLA_MAX_NR 32

typedef void (*mla_ukernel_f64)(ptrdiff_t kc, const double *a, const double *b,
                                double *c, ptrdiff_t rs_c, double alpha,
                                double beta);
typedef void (*mla_ukernel_f32)(ptrdiff_t kc, const float *a, const float *b,
                                float *c, ptrdiff_t rs_c, float alpha,
                                float beta);
typedef void (*mla_ukernel_strided_f64)(ptrdiff_t kc, const double *a,
                                        ptrdiff_t rs_a, ptrdiff_t cs_a,
                                        const double *b, ptrdiff_t rs_b,
                                        double *c, ptrdiff_t rs_c,
                                        double alpha, double beta);
typedef void (*mla_ukernel_strided_f32)(ptrdiff_t kc, const float *a,
                                        ptrdiff_t rs_a, ptrdiff_t cs_a,
                                        const float *b, ptrdiff_t rs_b,
                                        float *c, ptrdiff_t rs_c, float alpha,
                                        float beta);

/*
 * Matrix-vector products y = alpha * A x + beta * y of the m x k matrix A
 * (gemm_ukernel_impl.h states them in full). The dot form reads rows of A
 * with unit column stride and a contiguous x. The column form reads
 * columns of A with unit row stride and x at any stride.
 */
typedef void (*mla_gemv_dot_f64)(ptrdiff_t m, ptrdiff_t k, const double *a,
                                 ptrdiff_t rs_a, const double *x, double *y,
                                 ptrdiff_t incy, double alpha, double beta);
typedef void (*mla_gemv_dot_f32)(ptrdiff_t m, ptrdiff_t k, const float *a,
                                 ptrdiff_t rs_a, const float *x, float *y,
                                 ptrdiff_t incy, float alpha, float beta);
typedef void (*mla_gemv_axpy_f64)(ptrdiff_t m, ptrdiff_t k, const double *a,
                                  ptrdiff_t cs_a, const double *x,
                                  ptrdiff_t incx, double *y, ptrdiff_t incy,
                                  double alpha, double beta);
typedef void (*mla_gemv_axpy_f32)(ptrdiff_t m, ptrdiff_t k, const float *a,
                                  ptrdiff_t cs_a, const float *x,
                                  ptrdiff_t incx, float *y, ptrdiff_t incy,
                                  float alpha, float beta);

/*
 * Declare the kernels of one level and element type T:
 * mla_ukernel_<level>_<S> and mla_ukernel_<level>_strided_<S>, the packed
 * and the strided micro-kernel, and mla_gemv_dot_<level>_<S> and
 * mla_gemv_axpy_<level>_<S>, the two matrix-vector products.
 */
#define MLA_DECLARE_UKERNELS(level, S, T)                                     \
    void mla_ukernel_##level##_##S(ptrdiff_t kc, const T *a, const T *b,      \
                                   T *c, ptrdiff_t rs_c, T alpha, T beta);    \
    void mla_ukernel_##level##_strided_##S(                                   \
        ptrdiff_t kc, const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,             \
        const T *b, ptrdiff_t rs_b, T *c, ptrdiff_t rs_c, T alpha, T beta);   \
    void mla_gemv_dot_##level##_##S(ptrdiff_t m, ptrdiff_t k, const T *a,     \
                                    ptrdiff_t rs_a, const T *x, T *y,         \
                                    ptrdiff_t incy, T alpha, T beta);         \
    void mla_gemv_axpy_##level##_##S(                                         \
        ptrdiff_t m, ptrdiff_t k, const T *a, ptrdiff_t cs_a, const T *x,     \
        ptrdiff_t incx, T *y, ptrdiff_t incy, T alpha, T beta);

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MLA_HAVE_X86_KERNELS 1

/* AVX2 with FMA (gemm_avx2.c): float64 6 x 8, float32 6 x 16. */
#define MLA_AVX2_MR 6
#define MLA_AVX2_NR_F64 8
#define MLA_AVX2_NR_F32 16
MLA_DECLARE_UKERNELS(avx2, f64, double)
MLA_DECLARE_UKERNELS(avx2, f32, float)
double mla_fma_chains_avx2_f64(ptrdiff_t iterations);
void mla_ukernel_avx2_half_strided_f64(ptrdiff_t kc, const double *a,
                                       ptrdiff_t rs_a, ptrdiff_t cs_a,
                                       const double *b, ptrdiff_t rs_b,
                                       double *c, ptrdiff_t rs_c, double alpha,
                                       double beta);
double mla_fma_chains_avx2_f32(ptrdiff_t iterations);

/* Pack a full 6-row panel of A with contiguous rows (gemm_avx2.c). */
void mla_pack_a6_avx2_f64(double *dst, const double *a, ptrdiff_t rs,
                          ptrdiff_t kc);
void mla_pack_a6_avx2_f32(float *dst, const float *a, ptrdiff_t rs,
                          ptrdiff_t kc);

/* Pack a full panel of B with contiguous columns (gemm_avx2.c). */
void mla_pack_bt_avx2_f64(double *dst, const double *b, ptrdiff_t cs,
                          ptrdiff_t kc, ptrdiff_t nr);
void mla_pack_bt_avx2_f32(float *dst, const float *b, ptrdiff_t cs,
                          ptrdiff_t kc, ptrdiff_t nr);

/* AVX-512 (gemm_avx512.c): float64 8 x 16, float32 8 x 32. */
#define MLA_AVX512_MR 8
#define MLA_AVX512_NR_F64 16
#define MLA_AVX512_NR_F32 32
MLA_DECLARE_UKERNELS(avx512, f64, double)
MLA_DECLARE_UKERNELS(avx512, f32, float)
double mla_fma_chains_avx512_f64(ptrdiff_t iterations);
void mla_ukernel_avx512_half_strided_f64(ptrdiff_t kc, const double *a,
                                         ptrdiff_t rs_a, ptrdiff_t cs_a,
                                         const double *b, ptrdiff_t rs_b,
                                         double *c, ptrdiff_t rs_c,
                                         double alpha, double beta);
double mla_fma_chains_avx512_f32(ptrdiff_t iterations);

/*
 * The AVX-512 kernels' source compiled for AVX2, each 512-bit register
 * emulated by two 256-bit ones (gemm_avx2.c). Same tiles and the same
 * per-lane arithmetic as the AVX-512 kernels, so the tests can run the
 * AVX-512 tile logic on a CPU without AVX-512. Slow: tests only.
 */
MLA_DECLARE_UKERNELS(avx512_on_avx2, f64, double)
MLA_DECLARE_UKERNELS(avx512_on_avx2, f32, float)
#endif

/*
 * The strided micro-kernel of the level chosen at import, with its tile
 * in *mr and *nr (gemm.c).
 */
mla_ukernel_strided_f64 mla_gemm_strided_kernel_f64(ptrdiff_t *mr,
                                                    ptrdiff_t *nr);
mla_ukernel_strided_f32 mla_gemm_strided_kernel_f32(ptrdiff_t *mr,
                                                    ptrdiff_t *nr);

/*
 * The strided float64 kernel whose tile is mr x nr / 2 of the tile of
 * full, computing each element as full does, or NULL where full has no
 * such twin (gemm.c).
 */
mla_ukernel_strided_f64
mla_gemm_half_strided_kernel_f64(mla_ukernel_strided_f64 full);

/*
 * Store the row units, column units and row panels of the first column
 * block of an m x n product on nthreads threads. The tests call it through
 * a hook (gemm.c).
 */
void mla_gemm_grid_units_f64(ptrdiff_t m, ptrdiff_t n, int nthreads,
                             ptrdiff_t units[3]);
void mla_gemm_grid_units_f32(ptrdiff_t m, ptrdiff_t n, int nthreads,
                             ptrdiff_t units[3]);

/* The peak FLOP/s loop of the selected level, for the benchmark (gemm.c). */
double mla_gemm_peak_loop_f64(ptrdiff_t iterations, double *sink);
double mla_gemm_peak_loop_f32(ptrdiff_t iterations, double *sink);

/*
 * Test hook: with a nonzero value, products that would run the AVX2
 * kernels run the AVX-512 kernels' logic on AVX2 instead (gemm.c).
 */
void mla_gemm_set_avx512_on_avx2(int enabled);
int mla_gemm_get_avx512_on_avx2(void);

#endif /* MLA_GEMM_H */
