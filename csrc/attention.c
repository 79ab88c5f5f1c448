/*
 * attention.c: scaled dot-product attention for float32 and float64, from
 * attention_impl.h, built on the blocked GEMM and the softmax kernel.
 */
#include <float.h>
#include <math.h>

#include "mla.h"

#define MLA_DTYPE 32
#include "dtype.h"
#include "attention_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "attention_impl.h"
#undef MLA_DTYPE
