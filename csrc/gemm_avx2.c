/*
 * gemm_avx2.c: AVX2 + FMA micro-kernels of the blocked product (gemm.h
 * states their contract). Each function carries its own target attribute,
 * so the file builds without -mavx2 and runs only where runtime.c found the
 * instructions.
 *
 * Tiles: float64 6 x 8 and float32 6 x 16. The 6 rows times two vector
 * registers give 12 accumulators; with two registers of B and one broadcast
 * of A that is 15 of the 16 ymm registers.
 */
#include "gemm.h"

#ifdef MLA_HAVE_X86_KERNELS

#include <immintrin.h>

__attribute__((target("avx2,fma"))) void
mla_ukernel_avx2_f64(ptrdiff_t kc, const double *a, const double *b,
                     double *ab)
{
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();

    for (ptrdiff_t p = 0; p < kc; p++) {
        __m256d b0 = _mm256_loadu_pd(b);
        __m256d b1 = _mm256_loadu_pd(b + 4);
        __m256d ai;

        ai = _mm256_broadcast_sd(a + 0);
        c00 = _mm256_fmadd_pd(ai, b0, c00);
        c01 = _mm256_fmadd_pd(ai, b1, c01);
        ai = _mm256_broadcast_sd(a + 1);
        c10 = _mm256_fmadd_pd(ai, b0, c10);
        c11 = _mm256_fmadd_pd(ai, b1, c11);
        ai = _mm256_broadcast_sd(a + 2);
        c20 = _mm256_fmadd_pd(ai, b0, c20);
        c21 = _mm256_fmadd_pd(ai, b1, c21);
        ai = _mm256_broadcast_sd(a + 3);
        c30 = _mm256_fmadd_pd(ai, b0, c30);
        c31 = _mm256_fmadd_pd(ai, b1, c31);
        ai = _mm256_broadcast_sd(a + 4);
        c40 = _mm256_fmadd_pd(ai, b0, c40);
        c41 = _mm256_fmadd_pd(ai, b1, c41);
        ai = _mm256_broadcast_sd(a + 5);
        c50 = _mm256_fmadd_pd(ai, b0, c50);
        c51 = _mm256_fmadd_pd(ai, b1, c51);

        a += MLA_AVX2_MR;
        b += MLA_AVX2_NR_F64;
    }

    _mm256_storeu_pd(ab + 0, c00);
    _mm256_storeu_pd(ab + 4, c01);
    _mm256_storeu_pd(ab + 8, c10);
    _mm256_storeu_pd(ab + 12, c11);
    _mm256_storeu_pd(ab + 16, c20);
    _mm256_storeu_pd(ab + 20, c21);
    _mm256_storeu_pd(ab + 24, c30);
    _mm256_storeu_pd(ab + 28, c31);
    _mm256_storeu_pd(ab + 32, c40);
    _mm256_storeu_pd(ab + 36, c41);
    _mm256_storeu_pd(ab + 40, c50);
    _mm256_storeu_pd(ab + 44, c51);
}

__attribute__((target("avx2,fma"))) void
mla_ukernel_avx2_f32(ptrdiff_t kc, const float *a, const float *b, float *ab)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

    for (ptrdiff_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b);
        __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 ai;

        ai = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);

        a += MLA_AVX2_MR;
        b += MLA_AVX2_NR_F32;
    }

    _mm256_storeu_ps(ab + 0, c00);
    _mm256_storeu_ps(ab + 8, c01);
    _mm256_storeu_ps(ab + 16, c10);
    _mm256_storeu_ps(ab + 24, c11);
    _mm256_storeu_ps(ab + 32, c20);
    _mm256_storeu_ps(ab + 40, c21);
    _mm256_storeu_ps(ab + 48, c30);
    _mm256_storeu_ps(ab + 56, c31);
    _mm256_storeu_ps(ab + 64, c40);
    _mm256_storeu_ps(ab + 72, c41);
    _mm256_storeu_ps(ab + 80, c50);
    _mm256_storeu_ps(ab + 88, c51);
}

#else

/* ISO C forbids an empty translation unit. */
typedef int mla_gemm_avx2_unused;

#endif /* MLA_HAVE_X86_KERNELS */
