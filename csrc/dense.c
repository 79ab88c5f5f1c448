/*
 * dense.c: dense layers forward (one sample and a batch), the gradients of
 * the two-layer network (dense_impl.h) and the backward pass of a layer on
 * a batch (dense_backward_impl.h), for float32 and float64.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mla.h"
#include "vecmath.h"

#define MLA_DTYPE 32
#include "dtype.h"
#include "activate_impl.h"
#include "dense_impl.h"
#include "dense_backward_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "activate_impl.h"
#include "dense_impl.h"
#include "dense_backward_impl.h"
#undef MLA_DTYPE
