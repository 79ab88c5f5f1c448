/*
 * gemm_ukernel_impl.h: the body of every SIMD micro-kernel, written once
 * over a vector type and included once per instantiation (gemm_avx2.c,
 * gemm_avx512.c). gemm.h states the contracts of the micro-kernels and the
 * matrix-vector products it defines.
 *
 * Before including it, define:
 *
 *   UK_NAME            name of the kernel of packed panels
 *   UK_STRIDED_NAME    name of the kernel that reads A and B through strides
 *   UK_GEMV_DOT_NAME   name of the matrix-vector product over rows of A
 *   UK_GEMV_AXPY_NAME  name of the matrix-vector product over columns of A
 *   UK_CHAINS_NAME     optional: name of the peak FLOP/s loop (see there)
 *   UK_HALF_NAME       optional: name of a strided kernel whose tile is
 *                      half as wide, UK_MR x (UK_NV / 2 * UK_VLEN)
 *   UK_ATTR            attributes of the functions, such as their target
 *   UK_T               element type (float or double)
 *   UK_V               vector type holding UK_VLEN elements
 *   UK_VLEN            elements per vector
 *   UK_MR              rows of the tile
 *   UK_NV              vectors per row of the tile: NR = UK_NV * UK_VLEN
 *   UK_ZERO()          vector of zeros
 *   UK_SET1(x)         vector with every lane equal to the scalar x
 *   UK_LOAD(p)         unaligned load from p
 *   UK_STORE(p, v)     unaligned store of v to p
 *   UK_FMA(x, y, z)    x * y + z, rounded once
 *   UK_MUL(x, y)       x * y
 *   UK_ADD(x, y)       x + y
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
 * Update the tile of UK_MR rows and nv vectors per row (nv <= UK_NV, a
 * constant once inlined) reading A as a[i * rs_a + p * cs_a] and B as
 * b[p * rs_b + j]. The packed kernel inlines it with constant strides.
 */
static inline __attribute__((always_inline)) UK_ATTR void
UK_CORE(ptrdiff_t kc, const UK_T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
        const UK_T *b, ptrdiff_t rs_b, UK_T *c, ptrdiff_t rs_c, UK_T alpha,
        UK_T beta, const int nv)
{
    UK_V acc[UK_MR][UK_NV];

    /* Start loading the C tile now: it is read or written only at the end. */
#pragma GCC unroll 16
    for (int i = 0; i < UK_MR; i++) {
        __builtin_prefetch(c + i * rs_c, 1);
        __builtin_prefetch(c + i * rs_c + nv * UK_VLEN - 1, 1);
    }

#pragma GCC unroll 16
    for (int i = 0; i < UK_MR; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            acc[i][v] = UK_ZERO();
        }
    }

#pragma GCC unroll 4
    for (ptrdiff_t p = 0; p < kc; p++) {
        UK_V bv[UK_NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            bv[v] = UK_LOAD(b + v * UK_VLEN);
        }
#pragma GCC unroll 16
        for (int i = 0; i < UK_MR; i++) {
            UK_V ai = UK_SET1(a[i * rs_a]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
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
            for (int v = 0; v < nv; v++) {
                acc[i][v] = UK_MUL(va, acc[i][v]);
            }
        }
    }
    if (beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < UK_MR; i++) {
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                UK_STORE(c + i * rs_c + v * UK_VLEN, acc[i][v]);
            }
        }
    }
    else if (beta == 1) {
#pragma GCC unroll 16
        for (int i = 0; i < UK_MR; i++) {
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
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
            for (int v = 0; v < nv; v++) {
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
    UK_CORE(kc, a, 1, UK_MR, b, UK_NV * UK_VLEN, c, rs_c, alpha, beta,
            UK_NV);
}

UK_ATTR void
UK_STRIDED_NAME(ptrdiff_t kc, const UK_T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                const UK_T *b, ptrdiff_t rs_b, UK_T *c, ptrdiff_t rs_c,
                UK_T alpha, UK_T beta)
{
    UK_CORE(kc, a, rs_a, cs_a, b, rs_b, c, rs_c, alpha, beta, UK_NV);
}

#ifdef UK_HALF_NAME
UK_ATTR void
UK_HALF_NAME(ptrdiff_t kc, const UK_T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
             const UK_T *b, ptrdiff_t rs_b, UK_T *c, ptrdiff_t rs_c,
             UK_T alpha, UK_T beta)
{
    UK_CORE(kc, a, rs_a, cs_a, b, rs_b, c, rs_c, alpha, beta, UK_NV / 2);
}
#undef UK_HALF_NAME
#endif

/* Set y = alpha * sum + beta * y, the store of the matrix-vector products. */
#define UK_FINISH_Y(y, sum, alpha, beta)                                      \
    do {                                                                      \
        UK_T finish_value_ = (sum);                                           \
        if ((alpha) != 1) {                                                   \
            finish_value_ = (alpha) * finish_value_;                          \
        }                                                                     \
        if ((beta) == 1) {                                                    \
            finish_value_ = (y) + finish_value_;                              \
        }                                                                     \
        else if ((beta) != 0) {                                               \
            UK_T finish_scaled_ = (beta) * (y);                               \
            finish_value_ = finish_scaled_ + finish_value_;                   \
        }                                                                     \
        (y) = finish_value_;                                                  \
    } while (0)

/*
 * Sum the lanes of v in lane order, then the scalar terms p >= from of the
 * row a against x, and return the result.
 */
static inline __attribute__((always_inline)) UK_ATTR UK_T
UK_PASTE(UK_NAME, _row_sum)(UK_V v, const UK_T *a, const UK_T *x,
                            ptrdiff_t from, ptrdiff_t k)
{
    UK_T lanes[UK_VLEN];
    UK_STORE(lanes, v);
    UK_T sum = lanes[0];
    for (int l = 1; l < UK_VLEN; l++) {
        sum += lanes[l];
    }
    for (ptrdiff_t p = from; p < k; p++) {
        UK_T prod = a[p] * x[p];
        sum += prod;
    }
    return sum;
}

/*
 * y[i * incy] = alpha * sum over p < k of a[i * rs_a + p] x[p]
 *               + beta * y[i * incy]                        for i < m,
 * for A with contiguous rows and a contiguous x. Four rows at a time, each
 * summed in two vector accumulators over the first k rounded down to
 * 2 UK_VLEN, then lane by lane, then the last terms one by one. beta == 0
 * never reads y. Each row's order of operations depends only on k.
 */
UK_ATTR void
UK_GEMV_DOT_NAME(ptrdiff_t m, ptrdiff_t k, const UK_T *a, ptrdiff_t rs_a,
                 const UK_T *x, UK_T *y, ptrdiff_t incy, UK_T alpha,
                 UK_T beta)
{
    ptrdiff_t kv = k / (2 * UK_VLEN) * (2 * UK_VLEN);
    ptrdiff_t i = 0;

    for (; i + 4 <= m; i += 4) {
        const UK_T *row = a + i * rs_a;
        UK_V acc[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            acc[r][0] = UK_ZERO();
            acc[r][1] = UK_ZERO();
        }
        for (ptrdiff_t p = 0; p < kv; p += 2 * UK_VLEN) {
            UK_V x0 = UK_LOAD(x + p), x1 = UK_LOAD(x + p + UK_VLEN);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const UK_T *ar = row + r * rs_a + p;
                acc[r][0] = UK_FMA(UK_LOAD(ar), x0, acc[r][0]);
                acc[r][1] = UK_FMA(UK_LOAD(ar + UK_VLEN), x1, acc[r][1]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            UK_T sum = UK_PASTE(UK_NAME, _row_sum)(
                UK_ADD(acc[r][0], acc[r][1]), row + r * rs_a, x, kv, k);
            UK_FINISH_Y(y[(i + r) * incy], sum, alpha, beta);
        }
    }
    for (; i < m; i++) {
        const UK_T *row = a + i * rs_a;
        UK_V acc0 = UK_ZERO(), acc1 = UK_ZERO();
        for (ptrdiff_t p = 0; p < kv; p += 2 * UK_VLEN) {
            acc0 = UK_FMA(UK_LOAD(row + p), UK_LOAD(x + p), acc0);
            acc1 = UK_FMA(UK_LOAD(row + p + UK_VLEN), UK_LOAD(x + p + UK_VLEN),
                          acc1);
        }
        UK_T sum = UK_PASTE(UK_NAME, _row_sum)(UK_ADD(acc0, acc1), row, x, kv,
                                              k);
        UK_FINISH_Y(y[i * incy], sum, alpha, beta);
    }
}

/*
 * y[i * incy] = alpha * sum over p < k of a[i + p * cs_a] x[p * incx]
 *               + beta * y[i * incy]                        for i < m,
 * for A with contiguous columns. Rows are taken in chunks whose sums fit in
 * L1. For each chunk, x[p] times the chunk's part of column p is added to
 * the sums for p = 0, 1, ..., four columns per pass, so A is read in runs
 * of a whole chunk. Every row is summed in increasing p with one fused
 * multiply-add per term (the last rows of a chunk that fill no vector:
 * multiply, then add). beta == 0 never reads y.
 */
UK_ATTR void
UK_GEMV_AXPY_NAME(ptrdiff_t m, ptrdiff_t k, const UK_T *a, ptrdiff_t cs_a,
                  const UK_T *x, ptrdiff_t incx, UK_T *y, ptrdiff_t incy,
                  UK_T alpha, UK_T beta)
{
    enum { CHUNK = 16384 / sizeof(UK_T) };
    _Alignas(64) UK_T acc[CHUNK];

    for (ptrdiff_t i0 = 0; i0 < m; i0 += CHUNK) {
        ptrdiff_t rows = m - i0 < CHUNK ? m - i0 : CHUNK;
        ptrdiff_t rv = rows / UK_VLEN * UK_VLEN;
        const UK_T *col = a + i0;
        for (ptrdiff_t i = 0; i < rows; i++) {
            acc[i] = 0;
        }

        ptrdiff_t p = 0;
        for (; p + 4 <= k; p += 4) {
            const UK_T *c0 = col + p * cs_a, *c1 = c0 + cs_a;
            const UK_T *c2 = c1 + cs_a, *c3 = c2 + cs_a;
            UK_T s0 = x[p * incx], s1 = x[(p + 1) * incx];
            UK_T s2 = x[(p + 2) * incx], s3 = x[(p + 3) * incx];
            UK_V x0 = UK_SET1(s0), x1 = UK_SET1(s1);
            UK_V x2 = UK_SET1(s2), x3 = UK_SET1(s3);
            for (ptrdiff_t i = 0; i < rv; i += UK_VLEN) {
                UK_V v = UK_LOAD(acc + i);
                v = UK_FMA(UK_LOAD(c0 + i), x0, v);
                v = UK_FMA(UK_LOAD(c1 + i), x1, v);
                v = UK_FMA(UK_LOAD(c2 + i), x2, v);
                v = UK_FMA(UK_LOAD(c3 + i), x3, v);
                UK_STORE(acc + i, v);
            }
            for (ptrdiff_t i = rv; i < rows; i++) {
                UK_T sum = acc[i], prod;
                prod = c0[i] * s0;
                sum += prod;
                prod = c1[i] * s1;
                sum += prod;
                prod = c2[i] * s2;
                sum += prod;
                prod = c3[i] * s3;
                sum += prod;
                acc[i] = sum;
            }
        }
        for (; p < k; p++) {
            const UK_T *c0 = col + p * cs_a;
            UK_T s0 = x[p * incx];
            UK_V x0 = UK_SET1(s0);
            for (ptrdiff_t i = 0; i < rv; i += UK_VLEN) {
                UK_STORE(acc + i, UK_FMA(UK_LOAD(c0 + i), x0, UK_LOAD(acc + i)));
            }
            for (ptrdiff_t i = rv; i < rows; i++) {
                UK_T prod = c0[i] * s0;
                acc[i] += prod;
            }
        }

        for (ptrdiff_t i = 0; i < rows; i++) {
            UK_FINISH_Y(y[(i0 + i) * incy], acc[i], alpha, beta);
        }
    }
}

#undef UK_FINISH_Y
#undef UK_GEMV_DOT_NAME
#undef UK_GEMV_AXPY_NAME

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
