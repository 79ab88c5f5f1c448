/*
 * similarity.c: cosine similarity for float32 and float64, from
 * similarity_impl.h.
 */
#include <float.h>
#include <math.h>

#include "mla.h"

/* Tile edge of the mirroring pass, so both tiles it touches stay in L1. */
#define MLA_MIRROR_TILE 64

#define MLA_DTYPE 32
#include "dtype.h"
#include "similarity_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "similarity_impl.h"
#undef MLA_DTYPE
