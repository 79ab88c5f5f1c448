/*
 * gemm_avx512.c: AVX-512 micro-kernels of the blocked product (gemm.h
 * states their contract), instantiated from gemm_ukernel_impl.h with
 * AVX-512F instructions only. Each function carries its own target
 * attribute, so the file builds without -mavx512f and runs only where
 * runtime.c found the instructions.
 *
 * Tiles: float64 8 x 16 and float32 8 x 32. The 8 rows times two zmm
 * registers give 16 accumulators, enough to hide the latency of the
 * fused multiply-adds, and 8 divides the power-of-two sizes of most
 * layers. With two registers of B and one broadcast of A, the kernels use
 * 19 of the 32 zmm registers. They were measured on AMD Zen 4. The test
 * suite runs them wherever the CPU has AVX-512F, and their tile logic
 * through the AVX2 emulation (gemm_avx2.c) elsewhere.
 */
#include "gemm.h"

#ifdef MLA_HAVE_X86_KERNELS

#include <immintrin.h>

#define AVX512_ATTR __attribute__((target("avx512f")))

#define UK_NAME mla_ukernel_avx512_f64
#define UK_STRIDED_NAME mla_ukernel_avx512_strided_f64
#define UK_HALF_NAME mla_ukernel_avx512_half_strided_f64
#define UK_GEMV_DOT_NAME mla_gemv_dot_avx512_f64
#define UK_GEMV_AXPY_NAME mla_gemv_axpy_avx512_f64
#define UK_CHAINS_NAME mla_fma_chains_avx512_f64
#define UK_ATTR AVX512_ATTR
#define UK_T double
#define UK_V __m512d
#define UK_VLEN 8
#define UK_MR MLA_AVX512_MR
#define UK_NV (MLA_AVX512_NR_F64 / 8)
#define UK_ZERO() _mm512_setzero_pd()
#define UK_SET1(x) _mm512_set1_pd(x)
#define UK_LOAD(p) _mm512_loadu_pd(p)
#define UK_STORE(p, v) _mm512_storeu_pd((p), (v))
#define UK_FMA(x, y, z) _mm512_fmadd_pd((x), (y), (z))
#define UK_MUL(x, y) _mm512_mul_pd((x), (y))
#define UK_ADD(x, y) _mm512_add_pd((x), (y))
#include "gemm_ukernel_impl.h"

#define UK_NAME mla_ukernel_avx512_f32
#define UK_STRIDED_NAME mla_ukernel_avx512_strided_f32
#define UK_GEMV_DOT_NAME mla_gemv_dot_avx512_f32
#define UK_GEMV_AXPY_NAME mla_gemv_axpy_avx512_f32
#define UK_CHAINS_NAME mla_fma_chains_avx512_f32
#define UK_ATTR AVX512_ATTR
#define UK_T float
#define UK_V __m512
#define UK_VLEN 16
#define UK_MR MLA_AVX512_MR
#define UK_NV (MLA_AVX512_NR_F32 / 16)
#define UK_ZERO() _mm512_setzero_ps()
#define UK_SET1(x) _mm512_set1_ps(x)
#define UK_LOAD(p) _mm512_loadu_ps(p)
#define UK_STORE(p, v) _mm512_storeu_ps((p), (v))
#define UK_FMA(x, y, z) _mm512_fmadd_ps((x), (y), (z))
#define UK_MUL(x, y) _mm512_mul_ps((x), (y))
#define UK_ADD(x, y) _mm512_add_ps((x), (y))
#include "gemm_ukernel_impl.h"

#else

/* ISO C forbids an empty translation unit. */
typedef int mla_gemm_avx512_unused;

#endif /* MLA_HAVE_X86_KERNELS */
