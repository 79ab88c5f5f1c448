/*
 * vecmath_avx512.c: the vector kernels of vecmath_impl.h instantiated with
 * AVX-512F: 16 float32 or 8 float64 lanes, comparisons into mask
 * registers. Each function carries the target attribute, so the file builds
 * without -mavx512f and runs only where runtime.c found the instructions.
 *
 * Unlike the AVX2 level, the exp here looks 2^(j/16) up in a table and
 * scales by 2^k with vscalef (V_TABLE16 and V_SCALEF in vecmath_impl.h).
 * The test suite runs this level wherever the CPU has AVX-512F, and it was
 * measured on AMD Zen 4.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "vecmath.h"

#ifdef MLA_HAVE_X86_VECTOR

#include <immintrin.h>

#define VATTR __attribute__((target("avx512f,avx2,fma")))

/* split_sqrt2_avx2_f64 and _f32 of vecmath_avx2.c in 512-bit vectors. */
VATTR static inline __m512d
split_sqrt2_avx512_f64(__m512d x, __m512d *e)
{
    const __m512i offset = _mm512_set1_epi64(1LL << 62);
    const __m512i sqrt_half = _mm512_set1_epi64(0x3fe6a09e667f3bcdLL);
    const __m512i two52 = _mm512_set1_epi64(0x4330000000000000LL);
    __m512i bits = _mm512_castpd_si512(x);
    __m512i diff = _mm512_sub_epi64(bits, sqrt_half);
    __m512i biased = _mm512_srli_epi64(_mm512_add_epi64(diff, offset), 52);
    __m512i m = _mm512_sub_epi64(bits, _mm512_slli_epi64(biased, 52));
    /* 2^52 + (e + 1024) as a double, minus 2^52 + 1024. */
    __m512d shifted = _mm512_castsi512_pd(_mm512_or_si512(biased, two52));
    *e = _mm512_sub_pd(shifted, _mm512_set1_pd(0x1p52 + 1024));
    return _mm512_castsi512_pd(_mm512_add_epi64(m, offset));
}

VATTR static inline __m512
split_sqrt2_avx512_f32(__m512 x, __m512 *e)
{
    const __m512i offset = _mm512_set1_epi32(1 << 30);
    __m512i bits = _mm512_castps_si512(x);
    __m512i diff = _mm512_sub_epi32(bits, _mm512_set1_epi32(0x3f3504f3));
    __m512i biased = _mm512_srli_epi32(_mm512_add_epi32(diff, offset), 23);
    __m512i m = _mm512_sub_epi32(bits, _mm512_slli_epi32(biased, 23));
    *e = _mm512_sub_ps(_mm512_cvtepi32_ps(biased), _mm512_set1_ps(128));
    return _mm512_castsi512_ps(_mm512_add_epi32(m, offset));
}

#define MLA_DTYPE 32
#include "dtype.h"
#define VFN(name) FN(FN_(name, avx512))
#define VT __m512
#define VMASK __mmask16
#define VLEN 16
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(x) _mm512_set1_ps((float)(x))
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_DIV(a, b) _mm512_div_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_FNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define V_MIN(a, b) _mm512_min_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_ABS(a) _mm512_abs_ps(a)
#define V_NEG(a)                                                              \
    _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a),              \
                                         _mm512_set1_epi32(INT32_MIN)))
#define V_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define V_EQ(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define V_UNORD(a, b) _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q)
#define V_BLEND(m, a, b) _mm512_mask_blend_ps(m, a, b)
#define V_ANY(m) ((m) != 0)
#define V_POW2_SHIFTED(t)                                                     \
    _mm512_castsi512_ps(_mm512_add_epi32(                                     \
        _mm512_slli_epi32(_mm512_castps_si512(t), 23),                        \
        _mm512_set1_epi32(127 << 23)))
#define V_SCALEF(a, k) _mm512_scalef_ps(a, k)
#define V_TABLE16(table, t)                                                   \
    _mm512_permutexvar_ps(_mm512_castps_si512(t), _mm512_loadu_ps(table))
#define V_SPLIT_SQRT2(x, e) split_sqrt2_avx512_f32(x, e)
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
#undef V_SCALEF
#undef V_TABLE16
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#define VFN(name) FN(FN_(name, avx512))
#define VT __m512d
#define VMASK __mmask8
#define VLEN 8
#define V_LOAD(p) _mm512_loadu_pd(p)
#define V_STORE(p, v) _mm512_storeu_pd(p, v)
#define V_SET1(x) _mm512_set1_pd((double)(x))
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_SUB(a, b) _mm512_sub_pd(a, b)
#define V_MUL(a, b) _mm512_mul_pd(a, b)
#define V_DIV(a, b) _mm512_div_pd(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_FNMA(a, b, c) _mm512_fnmadd_pd(a, b, c)
#define V_MIN(a, b) _mm512_min_pd(a, b)
#define V_MAX(a, b) _mm512_max_pd(a, b)
#define V_ABS(a) _mm512_abs_pd(a)
#define V_NEG(a)                                                              \
    _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(a),              \
                                         _mm512_set1_epi64(INT64_MIN)))
#define V_LT(a, b) _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ)
#define V_EQ(a, b) _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ)
#define V_UNORD(a, b) _mm512_cmp_pd_mask(a, b, _CMP_UNORD_Q)
#define V_BLEND(m, a, b) _mm512_mask_blend_pd(m, a, b)
#define V_ANY(m) ((m) != 0)
#define V_POW2_SHIFTED(t)                                                     \
    _mm512_castsi512_pd(_mm512_add_epi64(                                     \
        _mm512_slli_epi64(_mm512_castpd_si512(t), 52),                        \
        _mm512_set1_epi64(0x3ff0000000000000LL)))
#define V_SCALEF(a, k) _mm512_scalef_pd(a, k)
#define V_TABLE16(table, t)                                                   \
    _mm512_permutex2var_pd(_mm512_loadu_pd(table), _mm512_castpd_si512(t),    \
                           _mm512_loadu_pd((table) + 8))
#define V_SPLIT_SQRT2(x, e) split_sqrt2_avx512_f64(x, e)
#include "vecmath_impl.h"
#undef V_SPLIT_SQRT2

#endif /* MLA_HAVE_X86_VECTOR */
