/*
 * dense.c: dense layers forward (one sample and a batch) and the gradients
 * of the two-layer network, for float32 and float64, from dense_impl.h.
 */
#include <float.h>
#include <math.h>

#include "mla.h"

#define MLA_DTYPE 32
#include "dtype.h"
#include "activate_impl.h"
#include "dense_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "activate_impl.h"
#include "dense_impl.h"
#undef MLA_DTYPE
