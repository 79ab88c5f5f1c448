/*
 * gemm.c: the blocked matrix product and the textbook triple loop for
 * float32 and float64, instantiated from gemm_impl.h.
 */
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "gemm.h"
#include "mla.h"

#ifdef MLA_HAVE_OPENMP
#include <omp.h>
#define MLA_THREAD_ID() omp_get_thread_num()
#else
#define MLA_THREAD_ID() 0
#endif

int mla_gemm_avx512_on_avx2 = 0;

void
mla_gemm_set_avx512_on_avx2(int enabled)
{
    mla_gemm_avx512_on_avx2 = enabled != 0;
}

int
mla_gemm_get_avx512_on_avx2(void)
{
    return mla_gemm_avx512_on_avx2;
}

#define MLA_DTYPE 32
#include "dtype.h"
#include "activate_impl.h"
#include "gemm_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "activate_impl.h"
#include "gemm_impl.h"
#undef MLA_DTYPE

mla_ukernel_strided_f64
mla_gemm_half_strided_kernel_f64(mla_ukernel_strided_f64 full)
{
#ifdef MLA_HAVE_X86_KERNELS
    if (full == mla_ukernel_avx512_strided_f64) {
        return mla_ukernel_avx512_half_strided_f64;
    }
    if (full == mla_ukernel_avx2_strided_f64) {
        return mla_ukernel_avx2_half_strided_f64;
    }
#else
    (void)full;
#endif
    return NULL;
}
