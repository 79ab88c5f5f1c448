/*
 * similarity.c: cosine similarity for float32 and float64, from
 * similarity_impl.h.
 */
#include <float.h>
#include <math.h>

#include "mla.h"

#define MLA_DTYPE 32
#include "dtype.h"
#include "similarity_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "similarity_impl.h"
#undef MLA_DTYPE
