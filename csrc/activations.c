/*
 * activations.c: sigmoid, relu and their derivatives for float32 and
 * float64, instantiated from activations_impl.h.
 */
#include <float.h>
#include <math.h>

#include "mla.h"
#include "vecmath.h"

#define MLA_DTYPE 32
#include "dtype.h"
#include "activations_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "activations_impl.h"
#undef MLA_DTYPE
