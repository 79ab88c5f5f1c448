/*
 * dtype.h: the element-type template used by every *_impl.h file.
 *
 * Define MLA_DTYPE as 32 or 64, include this file, then include a kernel
 * body. The body names its functions FN(mla_op), which becomes mla_op_f32 or
 * mla_op_f64. T is the element type, ACC the accumulator of reductions
 * (double for both, so that float32 sums neither overflow nor lose digits),
 * and the math macros pick the C library function of the right precision.
 * The file has no include guard on purpose: it is included once per type.
 */
#undef T
#undef ACC
#undef FN
#undef FN_
#undef FN__
#undef EXP
#undef LOG
#undef SQRT
#undef FABS
#undef TANH
#undef T_EPSILON
#undef T_MIN_NORMAL

#define FN__(name, suffix) name##_##suffix
#define FN_(name, suffix) FN__(name, suffix)

#if MLA_DTYPE == 32
#define T float
#define FN(name) FN_(name, f32)
#define EXP expf
#define LOG logf
#define SQRT sqrtf
#define FABS fabsf
#define TANH tanhf
#define T_EPSILON FLT_EPSILON
#define T_MIN_NORMAL FLT_MIN
#elif MLA_DTYPE == 64
#define T double
#define FN(name) FN_(name, f64)
#define EXP exp
#define LOG log
#define SQRT sqrt
#define FABS fabs
#define TANH tanh
#define T_EPSILON DBL_EPSILON
#define T_MIN_NORMAL DBL_MIN
#else
#error "define MLA_DTYPE as 32 or 64 before including dtype.h"
#endif

#define ACC double
