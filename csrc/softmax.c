/*
 * softmax.c: softmax, log-softmax, softmax cross-entropy and the clipped
 * cross-entropy loss for float32 and float64, from softmax_impl.h.
 */
#include <float.h>
#include <math.h>

#include "mla.h"
#include "vecmath.h"

#ifdef MLA_HAVE_OPENMP
#include <omp.h>
#define MLA_THREAD_ID() omp_get_thread_num()
#else
#define MLA_THREAD_ID() 0
#endif

/* Elements per chunk of the first pass: 4 or 8 KiB, well inside L1. */
#define MLA_SOFTMAX_CHUNK 1024

/*
 * Columns per block of an axis that is not the last, and the most rows per
 * chunk there, so that a float32 column sum adds at most 64 terms before
 * it is added in double.
 */
#define MLA_SOFTMAX_COLUMNS 64
#define MLA_SOFTMAX_MAX_ROWS 64

/* Minimum elements per thread before a call uses several threads. */
#define MLA_SOFTMAX_MIN_WORK 32768

#define MLA_DTYPE 32
#include "dtype.h"
#include "softmax_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "softmax_impl.h"
#undef MLA_DTYPE
