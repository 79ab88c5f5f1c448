/*
 * gemm_ukernel_impl.h: the body of every SIMD micro-kernel, written once
 * over a vector type and included once per instantiation (gemm_avx2.c,
 * gemm_avx512.c). gemm.h states the contract of the function it defines.
 *
 * Before including it, define:
 *
 *   UK_NAME         name of the kernel of packed panels
 *   UK_STRIDED_NAME name of the kernel that reads A and B through strides
 *   UK_CHAINS_NAME  optional: name of the peak FLOP/s loop (see there)
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

#define UK_PASTE_(x, y) x##y
#define UK_PASTE(x, y) UK_PASTE_(x, y)
#define UK_CORE UK_PASTE(UK_NAME, _core)

/*
 * The kernel for A read as a[i * rs_a + p * cs_a] and B as b[p * rs_b + j].
 * The packed kernel inlines it with constant strides.
 */
static inline __attribute__((always_inline)) UK_ATTR void
UK_CORE(ptrdiff_t kc, const UK_T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
        const UK_T *b, ptrdiff_t rs_b, UK_T *c, ptrdiff_t rs_c, UK_T alpha,
        UK_T beta)
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
            UK_V ai = UK_SET1(a[i * rs_a]);
#pragma GCC unroll 4
            for (int v = 0; v < UK_NV; v++) {
                acc[i][v] = UK_FMA(ai, bv[v], acc[i][v]);
            }
        }
        a += cs_a;
        b += rs_b;
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

UK_ATTR void
UK_NAME(ptrdiff_t kc, const UK_T *a, const UK_T *b, UK_T *c, ptrdiff_t rs_c,
        UK_T alpha, UK_T beta)
{
    UK_CORE(kc, a, 1, UK_MR, b, UK_NV * UK_VLEN, c, rs_c, alpha, beta);
}

UK_ATTR void
UK_STRIDED_NAME(ptrdiff_t kc, const UK_T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                const UK_T *b, ptrdiff_t rs_b, UK_T *c, ptrdiff_t rs_c,
                UK_T alpha, UK_T beta)
{
    UK_CORE(kc, a, rs_a, cs_a, b, rs_b, c, rs_c, alpha, beta);
}

#ifdef UK_CHAINS_NAME
/*
 * Run `iterations` steps of 12 independent chains of fused multiply-adds,
 * as many as the core can keep in flight, and return the sum of the chains
 * so that none is optimized away. Timing it measures the peak FLOP/s of one
 * core: each step is 12 * 2 * UK_VLEN floating-point operations.
 */
UK_ATTR double
UK_CHAINS_NAME(ptrdiff_t iterations)
{
    UK_V x = UK_SET1((UK_T)0.999999), y = UK_SET1((UK_T)1e-7);
    UK_V acc[12];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        acc[i] = UK_SET1((UK_T)i);
    }
    for (ptrdiff_t step = 0; step < iterations; step++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            acc[i] = UK_FMA(acc[i], x, y);
        }
    }
#pragma GCC unroll 12
    for (int i = 1; i < 12; i++) {
        acc[0] = UK_ADD(acc[0], acc[i]);
    }
    UK_T lanes[UK_VLEN];
    UK_STORE(lanes, acc[0]);
    double sum = 0;
    for (int i = 0; i < UK_VLEN; i++) {
        sum += lanes[i];
    }
    return sum;
}
#undef UK_CHAINS_NAME
#endif

#undef UK_PASTE_
#undef UK_PASTE
#undef UK_CORE
#undef UK_NAME
#undef UK_STRIDED_NAME
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
