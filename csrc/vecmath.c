/*
 * vecmath.c: the portable C instantiation of the vector kernels (one lane,
 * no fused multiply-add), the choice of a table by SIMD level, and the
 * public mla_exp_f32 and mla_exp_f64.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vecmath.h"

#define VATTR
#define VLEN 1
#define VMASK int
#define V_LOAD(p) (*(p))
#define V_STORE(p, v) (*(p) = (v))
#define V_SET1(x) ((T)(x))
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_FNMA(a, b, c) ((c) - (a) * (b))
#define V_MIN(a, b) ((a) < (b) ? (a) : (b))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define V_NEG(a) (-(a))
#define V_LT(a, b) ((a) < (b))
#define V_GT(a, b) ((a) > (b))
#define V_EQ(a, b) ((a) == (b))
#define V_UNORD(a, b) ((a) != (a) || (b) != (b))
#define V_BLEND(m, a, b) ((m) ? (b) : (a))
#define V_ANY(m) (m)

/* 2^k from the bits of t = k + 1.5 * 2^52, as the SIMD levels build it. */
static inline double
pow2_shifted_f64(double t)
{
    uint64_t bits;
    memcpy(&bits, &t, sizeof(bits));
    bits = (bits << 52) + ((uint64_t)1023 << 52);
    double result;
    memcpy(&result, &bits, sizeof(result));
    return result;
}

/* 2^k from the bits of t = k + 1.5 * 2^23. */
static inline float
pow2_shifted_f32(float t)
{
    uint32_t bits;
    memcpy(&bits, &t, sizeof(bits));
    bits = (bits << 23) + ((uint32_t)127 << 23);
    float result;
    memcpy(&result, &bits, sizeof(result));
    return result;
}

/*
 * m with x = 2^e m and m in [sqrt(1/2), sqrt(2)), e stored in *e, for x
 * positive and normal; NaN gives NaN. frexp gives m in [1/2, 1).
 */
static inline double
split_sqrt2_f64(double x, double *e)
{
    int exponent;
    double m = frexp(x, &exponent);
    if (m < 0x1.6a09e667f3bcdp-1) {
        m *= 2;
        exponent--;
    }
    *e = exponent;
    return m;
}

static inline float
split_sqrt2_f32(float x, float *e)
{
    int exponent;
    float m = frexpf(x, &exponent);
    if (m < 0x1.6a09e6p-1f) {
        m *= 2;
        exponent--;
    }
    *e = (float)exponent;
    return m;
}

#define MLA_DTYPE 32
#include "dtype.h"
#define VFN(name) FN(FN_(name, generic))
#define VT float
#define V_ABS(a) fabsf(a)
#define V_POW2_SHIFTED(t) pow2_shifted_f32(t)
#define V_SPLIT_SQRT2(x, e) split_sqrt2_f32(x, e)
#include "vecmath_impl.h"
#undef VFN
#undef VT
#undef V_ABS
#undef V_POW2_SHIFTED
#undef V_SPLIT_SQRT2
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#define VFN(name) FN(FN_(name, generic))
#define VT double
#define V_ABS(a) fabs(a)
#define V_POW2_SHIFTED(t) pow2_shifted_f64(t)
#define V_SPLIT_SQRT2(x, e) split_sqrt2_f64(x, e)
#include "vecmath_impl.h"
#undef VFN
#undef VT
#undef V_ABS
#undef V_POW2_SHIFTED
#undef V_SPLIT_SQRT2
#undef MLA_DTYPE

const mla_vector_kernels_f32 *
mla_select_vector_kernels_f32(void)
{
#ifdef MLA_HAVE_X86_VECTOR
    switch (mla_get_level()) {
    case MLA_LEVEL_AVX512:
        return &mla_vector_kernels_avx512_f32;
    case MLA_LEVEL_AVX2:
        return &mla_vector_kernels_avx2_f32;
    default:
        break;
    }
#endif
    return &mla_vector_kernels_generic_f32;
}

const mla_vector_kernels_f64 *
mla_select_vector_kernels_f64(void)
{
#ifdef MLA_HAVE_X86_VECTOR
    switch (mla_get_level()) {
    case MLA_LEVEL_AVX512:
        return &mla_vector_kernels_avx512_f64;
    case MLA_LEVEL_AVX2:
        return &mla_vector_kernels_avx2_f64;
    default:
        break;
    }
#endif
    return &mla_vector_kernels_generic_f64;
}

void
mla_exp_f32(float *y, const float *x, ptrdiff_t n)
{
    mla_select_vector_kernels_f32()->exp(y, x, n);
}

void
mla_exp_f64(double *y, const double *x, ptrdiff_t n)
{
    mla_select_vector_kernels_f64()->exp(y, x, n);
}
