/*
 * optimizer.c: the parameter updates of SGD with momentum and of Adam for
 * float32 and float64, from optimizer_impl.h.
 */
#include <float.h>
#include <math.h>

#include "mla.h"

#define MLA_DTYPE 32
#include "dtype.h"
#include "optimizer_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "optimizer_impl.h"
#undef MLA_DTYPE
