/*
 * attention.c: scaled dot-product attention and its gradient for float32
 * and float64, instantiated from attention_impl.h and
 * attention_backward_impl.h. The products run on the blocked GEMM
 * (mla_gemm_run on one thread per work item).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "mla.h"
#include "vecmath.h"

#ifdef MLA_HAVE_OPENMP
#include <omp.h>
#define MLA_THREAD_ID() omp_get_thread_num()
#else
#define MLA_THREAD_ID() 0
#endif

#define MLA_DTYPE 32
#include "dtype.h"
#include "attention_impl.h"
#include "attention_backward_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "attention_impl.h"
#include "attention_backward_impl.h"
#undef MLA_DTYPE
