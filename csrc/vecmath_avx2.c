/*
 * vecmath_avx2.c: the vector kernels of vecmath_impl.h instantiated with
 * AVX2 and FMA: 8 float32 or 4 float64 lanes. Each function carries the
 * target attribute, so the file builds without -mavx2 and runs only where
 * runtime.c found the instructions.
 */
#include <float.h>
#include <math.h>

#include "vecmath.h"

#ifdef MLA_HAVE_X86_VECTOR

#include <immintrin.h>

#define VATTR __attribute__((target("avx2,fma")))

/*
 * m with x = 2^e m and m in [sqrt(1/2), sqrt(2)), e stored in *e, for x
 * positive and normal, from the bits of x as integers. Subtracting the
 * bits of sqrt(1/2) carries into the exponent field exactly when the
 * significand of x is at least sqrt(2). The offset 2^62 (2^30 for
 * float32) keeps the difference positive, so that a logical shift
 * extracts e + 1024 (e + 128).
 */
VATTR static inline __m256d
split_sqrt2_avx2_f64(__m256d x, __m256d *e)
{
    const __m256i offset = _mm256_set1_epi64x(1LL << 62);
    const __m256i sqrt_half = _mm256_set1_epi64x(0x3fe6a09e667f3bcdLL);
    const __m256i two52 = _mm256_set1_epi64x(0x4330000000000000LL);
    __m256i bits = _mm256_castpd_si256(x);
    __m256i diff = _mm256_sub_epi64(bits, sqrt_half);
    __m256i biased = _mm256_srli_epi64(_mm256_add_epi64(diff, offset), 52);
    __m256i m = _mm256_sub_epi64(bits, _mm256_slli_epi64(biased, 52));
    /* 2^52 + (e + 1024) as a double, minus 2^52 + 1024. */
    __m256d shifted = _mm256_castsi256_pd(_mm256_or_si256(biased, two52));
    *e = _mm256_sub_pd(shifted, _mm256_set1_pd(0x1p52 + 1024));
    return _mm256_castsi256_pd(_mm256_add_epi64(m, offset));
}

VATTR static inline __m256
split_sqrt2_avx2_f32(__m256 x, __m256 *e)
{
    const __m256i offset = _mm256_set1_epi32(1 << 30);
    __m256i bits = _mm256_castps_si256(x);
    __m256i diff = _mm256_sub_epi32(bits, _mm256_set1_epi32(0x3f3504f3));
    __m256i biased = _mm256_srli_epi32(_mm256_add_epi32(diff, offset), 23);
    __m256i m = _mm256_sub_epi32(bits, _mm256_slli_epi32(biased, 23));
    *e = _mm256_sub_ps(_mm256_cvtepi32_ps(biased), _mm256_set1_ps(128));
    return _mm256_castsi256_ps(_mm256_add_epi32(m, offset));
}

#define MLA_DTYPE 32
#include "dtype.h"
#define VFN(name) FN(FN_(name, avx2))
#define VT __m256
#define VMASK __m256
#define VLEN 8
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps((float)(x))
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_DIV(a, b) _mm256_div_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_FNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define V_MIN(a, b) _mm256_min_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_ABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a)
#define V_NEG(a) _mm256_xor_ps(a, _mm256_set1_ps(-0.0f))
#define V_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define V_EQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define V_UNORD(a, b) _mm256_cmp_ps(a, b, _CMP_UNORD_Q)
#define V_BLEND(m, a, b) _mm256_blendv_ps(a, b, m)
#define V_ANY(m) (_mm256_movemask_ps(m) != 0)
#define V_POW2_SHIFTED(t)                                                     \
    _mm256_castsi256_ps(_mm256_add_epi32(                                     \
        _mm256_slli_epi32(_mm256_castps_si256(t), 23),                        \
        _mm256_set1_epi32(127 << 23)))
#define V_SPLIT_SQRT2(x, e) split_sqrt2_avx2_f32(x, e)
#include "vecmath_impl.h"
#undef V_SPLIT_SQRT2
#undef VFN
#undef VT
#undef VMASK
#undef VLEN
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_FMA
#undef V_FNMA
#undef V_MIN
#undef V_MAX
#undef V_ABS
#undef V_NEG
#undef V_LT
#undef V_GT
#undef V_EQ
#undef V_UNORD
#undef V_BLEND
#undef V_ANY
#undef V_POW2_SHIFTED
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#define VFN(name) FN(FN_(name, avx2))
#define VT __m256d
#define VMASK __m256d
#define VLEN 4
#define V_LOAD(p) _mm256_loadu_pd(p)
#define V_STORE(p, v) _mm256_storeu_pd(p, v)
#define V_SET1(x) _mm256_set1_pd((double)(x))
#define V_ADD(a, b) _mm256_add_pd(a, b)
#define V_SUB(a, b) _mm256_sub_pd(a, b)
#define V_MUL(a, b) _mm256_mul_pd(a, b)
#define V_DIV(a, b) _mm256_div_pd(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_FNMA(a, b, c) _mm256_fnmadd_pd(a, b, c)
#define V_MIN(a, b) _mm256_min_pd(a, b)
#define V_MAX(a, b) _mm256_max_pd(a, b)
#define V_ABS(a) _mm256_andnot_pd(_mm256_set1_pd(-0.0), a)
#define V_NEG(a) _mm256_xor_pd(a, _mm256_set1_pd(-0.0))
#define V_LT(a, b) _mm256_cmp_pd(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm256_cmp_pd(a, b, _CMP_GT_OQ)
#define V_EQ(a, b) _mm256_cmp_pd(a, b, _CMP_EQ_OQ)
#define V_UNORD(a, b) _mm256_cmp_pd(a, b, _CMP_UNORD_Q)
#define V_BLEND(m, a, b) _mm256_blendv_pd(a, b, m)
#define V_ANY(m) (_mm256_movemask_pd(m) != 0)
#define V_POW2_SHIFTED(t)                                                     \
    _mm256_castsi256_pd(_mm256_add_epi64(                                     \
        _mm256_slli_epi64(_mm256_castpd_si256(t), 52),                        \
        _mm256_set1_epi64x(0x3ff0000000000000LL)))
#define V_SPLIT_SQRT2(x, e) split_sqrt2_avx2_f64(x, e)
#include "vecmath_impl.h"
#undef V_SPLIT_SQRT2

#endif /* MLA_HAVE_X86_VECTOR */
