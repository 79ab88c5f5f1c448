/*
 * syrk.c: the blocked lower-triangle product C = A A^T for float32 and
 * float64, from syrk_impl.h.
 */
#include "mla.h"

#ifdef MLA_HAVE_OPENMP
#include <omp.h>
#define MLA_THREAD_ID() omp_get_thread_num()
#else
#define MLA_THREAD_ID() 0
#endif

/*
 * Rows per block: a multiple of every GEMM micro-kernel's tile (4, 6, 8
 * and 16 here), large enough that packing costs little beside the
 * products.
 */
#define MLA_SYRK_BLOCK 192

#define MLA_DTYPE 32
#include "dtype.h"
#include "syrk_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "syrk_impl.h"
#undef MLA_DTYPE
