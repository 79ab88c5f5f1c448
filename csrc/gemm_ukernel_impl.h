/*
 * gemm_ukernel_impl.h: the body of every SIMD micro-kernel, written once
 * over a vector type and included once per instantiation (gemm_avx2.c,
 * gemm_avx512.c). gemm.h states the contract of the function it defines.
 *
 * Before including it, define:
 *
 *   UK_NAME         function name
 *   UK_ATTR         attributes of the function, such as its target
 *   UK_T            element type (float or double)
 *   UK_V            vector type holding UK_VLEN elements
 *   UK_VLEN         elements per vector
 *   UK_MR           rows of the tile
 *   UK_NV           vectors per row of the tile, so NR = UK_NV * UK_VLEN
 *   UK_ZERO()       vector of zeros
 *   UK_SET1(x)      vector with every lane equal to the scalar x
 *   UK_LOAD(p)      unaligned load from p
 *   UK_STORE(p, v)  unaligned store of v to p
 *   UK_FMA(x, y, z) x * y + z, rounded once
 *   UK_MUL(x, y)    x * y
 *   UK_ADD(x, y)    x + y
 *
 * The file undefines all of them at the end.
 *
 * The tile lives in UK_MR * UK_NV accumulators. Each step p loads UK_NV
 * vectors of the B panel and broadcasts the UK_MR values of the A panel one
 * at a time, so the registers needed are UK_MR * UK_NV + UK_NV + 1.
 */

UK_ATTR void
UK_NAME(ptrdiff_t kc, const UK_T *a, const UK_T *b, UK_T *c, ptrdiff_t rs_c,
        UK_T alpha, UK_T beta)
{
    UK_V acc[UK_MR][UK_NV];

    /* Start loading the C tile now: it is read or written only at the end. */
#pragma GCC unroll 16
    for (int i = 0; i < UK_MR; i++) {
        __builtin_prefetch(c + i * rs_c, 1);
        __builtin_prefetch(c + i * rs_c + UK_NV * UK_VLEN - 1, 1);
    }

#pragma GCC unroll 16
    for (int i = 0; i < UK_MR; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < UK_NV; v++) {
            acc[i][v] = UK_ZERO();
        }
    }

#pragma GCC unroll 4
    for (ptrdiff_t p = 0; p < kc; p++) {
        UK_V bv[UK_NV];
#pragma GCC unroll 4
        for (int v = 0; v < UK_NV; v++) {
            bv[v] = UK_LOAD(b + v * UK_VLEN);
        }
#pragma GCC unroll 16
        for (int i = 0; i < UK_MR; i++) {
            UK_V ai = UK_SET1(a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < UK_NV; v++) {
                acc[i][v] = UK_FMA(ai, bv[v], acc[i][v]);
            }
        }
        a += UK_MR;
        b += UK_NV * UK_VLEN;
    }

    /* C = alpha * acc + beta * C, skipping the multiplies by one. */
    if (alpha != 1) {
        UK_V va = UK_SET1(alpha);
#pragma GCC unroll 16
        for (int i = 0; i < UK_MR; i++) {
#pragma GCC unroll 4
            for (int v = 0; v < UK_NV; v++) {
                acc[i][v] = UK_MUL(va, acc[i][v]);
            }
        }
    }
    if (beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < UK_MR; i++) {
#pragma GCC unroll 4
            for (int v = 0; v < UK_NV; v++) {
                UK_STORE(c + i * rs_c + v * UK_VLEN, acc[i][v]);
            }
        }
    }
    else if (beta == 1) {
#pragma GCC unroll 16
        for (int i = 0; i < UK_MR; i++) {
#pragma GCC unroll 4
            for (int v = 0; v < UK_NV; v++) {
                UK_T *cp = c + i * rs_c + v * UK_VLEN;
                UK_STORE(cp, UK_ADD(UK_LOAD(cp), acc[i][v]));
            }
        }
    }
    else {
        UK_V vb = UK_SET1(beta);
#pragma GCC unroll 16
        for (int i = 0; i < UK_MR; i++) {
#pragma GCC unroll 4
            for (int v = 0; v < UK_NV; v++) {
                UK_T *cp = c + i * rs_c + v * UK_VLEN;
                UK_STORE(cp, UK_ADD(UK_MUL(vb, UK_LOAD(cp)), acc[i][v]));
            }
        }
    }
}

#undef UK_NAME
#undef UK_ATTR
#undef UK_T
#undef UK_V
#undef UK_VLEN
#undef UK_MR
#undef UK_NV
#undef UK_ZERO
#undef UK_SET1
#undef UK_LOAD
#undef UK_STORE
#undef UK_FMA
#undef UK_MUL
#undef UK_ADD
