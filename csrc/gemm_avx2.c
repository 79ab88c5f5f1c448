/*
 * gemm_avx2.c: AVX2 + FMA micro-kernels of the blocked product (gemm.h
 * states their contract), instantiated from gemm_ukernel_impl.h. Each
 * function carries its own target attribute, so the file builds without
 * -mavx2 and runs only where runtime.c found the instructions.
 *
 * Tiles: float64 6 x 8 and float32 6 x 16. The 6 rows times two vector
 * registers give 12 accumulators. With two registers of B and one
 * broadcast of A, the kernels use 15 of the 16 ymm registers.
 *
 * The file also compiles the AVX-512 kernels' tiles (8 x 16 and 8 x 32)
 * for AVX2, each 512-bit vector emulated by a pair of 256-bit ones. The
 * tests run them to check the AVX-512 tile logic on CPUs without AVX-512.
 */
#include "gemm.h"

#ifdef MLA_HAVE_X86_KERNELS

#include <immintrin.h>

#define AVX2_ATTR __attribute__((target("avx2,fma")))

#define UK_NAME mla_ukernel_avx2_f64
#define UK_STRIDED_NAME mla_ukernel_avx2_strided_f64
#define UK_HALF_NAME mla_ukernel_avx2_half_strided_f64
#define UK_GEMV_DOT_NAME mla_gemv_dot_avx2_f64
#define UK_GEMV_AXPY_NAME mla_gemv_axpy_avx2_f64
#define UK_CHAINS_NAME mla_fma_chains_avx2_f64
#define UK_ATTR AVX2_ATTR
#define UK_T double
#define UK_V __m256d
#define UK_VLEN 4
#define UK_MR MLA_AVX2_MR
#define UK_NV (MLA_AVX2_NR_F64 / 4)
#define UK_ZERO() _mm256_setzero_pd()
#define UK_SET1(x) _mm256_set1_pd(x)
#define UK_LOAD(p) _mm256_loadu_pd(p)
#define UK_STORE(p, v) _mm256_storeu_pd((p), (v))
#define UK_FMA(x, y, z) _mm256_fmadd_pd((x), (y), (z))
#define UK_MUL(x, y) _mm256_mul_pd((x), (y))
#define UK_ADD(x, y) _mm256_add_pd((x), (y))
#include "gemm_ukernel_impl.h"

#define UK_NAME mla_ukernel_avx2_f32
#define UK_STRIDED_NAME mla_ukernel_avx2_strided_f32
#define UK_GEMV_DOT_NAME mla_gemv_dot_avx2_f32
#define UK_GEMV_AXPY_NAME mla_gemv_axpy_avx2_f32
#define UK_CHAINS_NAME mla_fma_chains_avx2_f32
#define UK_ATTR AVX2_ATTR
#define UK_T float
#define UK_V __m256
#define UK_VLEN 8
#define UK_MR MLA_AVX2_MR
#define UK_NV (MLA_AVX2_NR_F32 / 8)
#define UK_ZERO() _mm256_setzero_ps()
#define UK_SET1(x) _mm256_set1_ps(x)
#define UK_LOAD(p) _mm256_loadu_ps(p)
#define UK_STORE(p, v) _mm256_storeu_ps((p), (v))
#define UK_FMA(x, y, z) _mm256_fmadd_ps((x), (y), (z))
#define UK_MUL(x, y) _mm256_mul_ps((x), (y))
#define UK_ADD(x, y) _mm256_add_ps((x), (y))
#include "gemm_ukernel_impl.h"

/*
 * A 512-bit vector as two 256-bit halves, lo holding lanes 0 to 3 (or 0 to
 * 7). Every operation works lane by lane, like its AVX-512 counterpart.
 */
typedef struct {
    __m256d lo, hi;
} pair_pd;

typedef struct {
    __m256 lo, hi;
} pair_ps;

static inline AVX2_ATTR pair_pd
pair_pd_set1(double x)
{
    pair_pd r = {_mm256_set1_pd(x), _mm256_set1_pd(x)};
    return r;
}

static inline AVX2_ATTR pair_pd
pair_pd_load(const double *p)
{
    pair_pd r = {_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4)};
    return r;
}

static inline AVX2_ATTR void
pair_pd_store(double *p, pair_pd v)
{
    _mm256_storeu_pd(p, v.lo);
    _mm256_storeu_pd(p + 4, v.hi);
}

static inline AVX2_ATTR pair_pd
pair_pd_fma(pair_pd x, pair_pd y, pair_pd z)
{
    pair_pd r = {_mm256_fmadd_pd(x.lo, y.lo, z.lo),
                 _mm256_fmadd_pd(x.hi, y.hi, z.hi)};
    return r;
}

static inline AVX2_ATTR pair_pd
pair_pd_mul(pair_pd x, pair_pd y)
{
    pair_pd r = {_mm256_mul_pd(x.lo, y.lo), _mm256_mul_pd(x.hi, y.hi)};
    return r;
}

static inline AVX2_ATTR pair_pd
pair_pd_add(pair_pd x, pair_pd y)
{
    pair_pd r = {_mm256_add_pd(x.lo, y.lo), _mm256_add_pd(x.hi, y.hi)};
    return r;
}

static inline AVX2_ATTR pair_ps
pair_ps_set1(float x)
{
    pair_ps r = {_mm256_set1_ps(x), _mm256_set1_ps(x)};
    return r;
}

static inline AVX2_ATTR pair_ps
pair_ps_load(const float *p)
{
    pair_ps r = {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
    return r;
}

static inline AVX2_ATTR void
pair_ps_store(float *p, pair_ps v)
{
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}

static inline AVX2_ATTR pair_ps
pair_ps_fma(pair_ps x, pair_ps y, pair_ps z)
{
    pair_ps r = {_mm256_fmadd_ps(x.lo, y.lo, z.lo),
                 _mm256_fmadd_ps(x.hi, y.hi, z.hi)};
    return r;
}

static inline AVX2_ATTR pair_ps
pair_ps_mul(pair_ps x, pair_ps y)
{
    pair_ps r = {_mm256_mul_ps(x.lo, y.lo), _mm256_mul_ps(x.hi, y.hi)};
    return r;
}

static inline AVX2_ATTR pair_ps
pair_ps_add(pair_ps x, pair_ps y)
{
    pair_ps r = {_mm256_add_ps(x.lo, y.lo), _mm256_add_ps(x.hi, y.hi)};
    return r;
}

#define UK_NAME mla_ukernel_avx512_on_avx2_f64
#define UK_STRIDED_NAME mla_ukernel_avx512_on_avx2_strided_f64
#define UK_GEMV_DOT_NAME mla_gemv_dot_avx512_on_avx2_f64
#define UK_GEMV_AXPY_NAME mla_gemv_axpy_avx512_on_avx2_f64
#define UK_ATTR AVX2_ATTR
#define UK_T double
#define UK_V pair_pd
#define UK_VLEN 8
#define UK_MR MLA_AVX512_MR
#define UK_NV (MLA_AVX512_NR_F64 / 8)
#define UK_ZERO() pair_pd_set1(0.0)
#define UK_SET1(x) pair_pd_set1(x)
#define UK_LOAD(p) pair_pd_load(p)
#define UK_STORE(p, v) pair_pd_store((p), (v))
#define UK_FMA(x, y, z) pair_pd_fma((x), (y), (z))
#define UK_MUL(x, y) pair_pd_mul((x), (y))
#define UK_ADD(x, y) pair_pd_add((x), (y))
#include "gemm_ukernel_impl.h"

#define UK_NAME mla_ukernel_avx512_on_avx2_f32
#define UK_STRIDED_NAME mla_ukernel_avx512_on_avx2_strided_f32
#define UK_GEMV_DOT_NAME mla_gemv_dot_avx512_on_avx2_f32
#define UK_GEMV_AXPY_NAME mla_gemv_axpy_avx512_on_avx2_f32
#define UK_ATTR AVX2_ATTR
#define UK_T float
#define UK_V pair_ps
#define UK_VLEN 16
#define UK_MR MLA_AVX512_MR
#define UK_NV (MLA_AVX512_NR_F32 / 16)
#define UK_ZERO() pair_ps_set1(0.0f)
#define UK_SET1(x) pair_ps_set1(x)
#define UK_LOAD(p) pair_ps_load(p)
#define UK_STORE(p, v) pair_ps_store((p), (v))
#define UK_FMA(x, y, z) pair_ps_fma((x), (y), (z))
#define UK_MUL(x, y) pair_ps_mul((x), (y))
#define UK_ADD(x, y) pair_ps_add((x), (y))
#include "gemm_ukernel_impl.h"

/*
 * Pack a full 6-row panel of A with contiguous rows (row stride rs) for
 * the 6 x NR kernels: dst[p * 6 + i] = a[i * rs + p] for i < 6, p < kc.
 * Four columns at a time go through registers: rows 0 to 3 by a 4 x 4
 * transpose, rows 4 and 5 by interleaving.
 */
AVX2_ATTR void
mla_pack_a6_avx2_f64(double *dst, const double *a, ptrdiff_t rs, ptrdiff_t kc)
{
    ptrdiff_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        __m256d r0 = _mm256_loadu_pd(a + p), r1 = _mm256_loadu_pd(a + rs + p);
        __m256d r2 = _mm256_loadu_pd(a + 2 * rs + p);
        __m256d r3 = _mm256_loadu_pd(a + 3 * rs + p);
        __m256d r4 = _mm256_loadu_pd(a + 4 * rs + p);
        __m256d r5 = _mm256_loadu_pd(a + 5 * rs + p);
        __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
        __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
        __m256d u0 = _mm256_unpacklo_pd(r4, r5), u1 = _mm256_unpackhi_pd(r4, r5);
        double *out = dst + p * 6;
        _mm256_storeu_pd(out, _mm256_permute2f128_pd(t0, t2, 0x20));
        _mm_storeu_pd(out + 4, _mm256_castpd256_pd128(u0));
        _mm256_storeu_pd(out + 6, _mm256_permute2f128_pd(t1, t3, 0x20));
        _mm_storeu_pd(out + 10, _mm256_castpd256_pd128(u1));
        _mm256_storeu_pd(out + 12, _mm256_permute2f128_pd(t0, t2, 0x31));
        _mm_storeu_pd(out + 16, _mm256_extractf128_pd(u0, 1));
        _mm256_storeu_pd(out + 18, _mm256_permute2f128_pd(t1, t3, 0x31));
        _mm_storeu_pd(out + 22, _mm256_extractf128_pd(u1, 1));
    }
    for (; p < kc; p++) {
        for (int i = 0; i < 6; i++) {
            dst[p * 6 + i] = a[i * rs + p];
        }
    }
}

/* The float32 twin of mla_pack_a6_avx2_f64, with 128-bit transposes. */
AVX2_ATTR void
mla_pack_a6_avx2_f32(float *dst, const float *a, ptrdiff_t rs, ptrdiff_t kc)
{
    ptrdiff_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        __m128 r0 = _mm_loadu_ps(a + p), r1 = _mm_loadu_ps(a + rs + p);
        __m128 r2 = _mm_loadu_ps(a + 2 * rs + p);
        __m128 r3 = _mm_loadu_ps(a + 3 * rs + p);
        __m128 r4 = _mm_loadu_ps(a + 4 * rs + p);
        __m128 r5 = _mm_loadu_ps(a + 5 * rs + p);
        __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpackhi_ps(r0, r1);
        __m128 t2 = _mm_unpacklo_ps(r2, r3), t3 = _mm_unpackhi_ps(r2, r3);
        __m128 u0 = _mm_unpacklo_ps(r4, r5), u1 = _mm_unpackhi_ps(r4, r5);
        float *out = dst + p * 6;
        _mm_storeu_ps(out, _mm_movelh_ps(t0, t2));
        _mm_storel_pi((__m64 *)(out + 4), u0);
        _mm_storeu_ps(out + 6, _mm_movehl_ps(t2, t0));
        _mm_storeh_pi((__m64 *)(out + 10), u0);
        _mm_storeu_ps(out + 12, _mm_movelh_ps(t1, t3));
        _mm_storel_pi((__m64 *)(out + 16), u1);
        _mm_storeu_ps(out + 18, _mm_movehl_ps(t3, t1));
        _mm_storeh_pi((__m64 *)(out + 22), u1);
    }
    for (; p < kc; p++) {
        for (int i = 0; i < 6; i++) {
            dst[p * 6 + i] = a[i * rs + p];
        }
    }
}

/*
 * Pack a full panel of nr columns of B whose columns are contiguous
 * (column stride cs), as a transposed view such as W.T gives:
 * dst[p * nr + j] = b[j * cs + p] for j < nr, p < kc, with nr a multiple
 * of 4. Each 4 x 4 block goes through registers by one transpose.
 */
AVX2_ATTR void
mla_pack_bt_avx2_f64(double *dst, const double *b, ptrdiff_t cs, ptrdiff_t kc,
                     ptrdiff_t nr)
{
    ptrdiff_t full = kc / 4 * 4;
    for (ptrdiff_t j = 0; j < nr; j += 4) {
        const double *col = b + j * cs;
        for (ptrdiff_t p = 0; p < full; p += 4) {
            __m256d r0 = _mm256_loadu_pd(col + p);
            __m256d r1 = _mm256_loadu_pd(col + cs + p);
            __m256d r2 = _mm256_loadu_pd(col + 2 * cs + p);
            __m256d r3 = _mm256_loadu_pd(col + 3 * cs + p);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double *out = dst + p * nr + j;
            _mm256_storeu_pd(out, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(out + nr, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(out + 2 * nr, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(out + 3 * nr, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
        for (ptrdiff_t p = full; p < kc; p++) {
            for (int q = 0; q < 4; q++) {
                dst[p * nr + j + q] = col[q * cs + p];
            }
        }
    }
}

/* The float32 twin of mla_pack_bt_avx2_f64, with 128-bit transposes. */
AVX2_ATTR void
mla_pack_bt_avx2_f32(float *dst, const float *b, ptrdiff_t cs, ptrdiff_t kc,
                     ptrdiff_t nr)
{
    ptrdiff_t full = kc / 4 * 4;
    for (ptrdiff_t j = 0; j < nr; j += 4) {
        const float *col = b + j * cs;
        for (ptrdiff_t p = 0; p < full; p += 4) {
            __m128 r0 = _mm_loadu_ps(col + p), r1 = _mm_loadu_ps(col + cs + p);
            __m128 r2 = _mm_loadu_ps(col + 2 * cs + p);
            __m128 r3 = _mm_loadu_ps(col + 3 * cs + p);
            __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpackhi_ps(r0, r1);
            __m128 t2 = _mm_unpacklo_ps(r2, r3), t3 = _mm_unpackhi_ps(r2, r3);
            float *out = dst + p * nr + j;
            _mm_storeu_ps(out, _mm_movelh_ps(t0, t2));
            _mm_storeu_ps(out + nr, _mm_movehl_ps(t2, t0));
            _mm_storeu_ps(out + 2 * nr, _mm_movelh_ps(t1, t3));
            _mm_storeu_ps(out + 3 * nr, _mm_movehl_ps(t3, t1));
        }
        for (ptrdiff_t p = full; p < kc; p++) {
            for (int q = 0; q < 4; q++) {
                dst[p * nr + j + q] = col[q * cs + p];
            }
        }
    }
}

#else

/* ISO C forbids an empty translation unit. */
typedef int mla_gemm_avx2_unused;

#endif /* MLA_HAVE_X86_KERNELS */
