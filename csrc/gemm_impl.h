/*
 * gemm_impl.h: the blocked matrix product C = act(alpha * A B + bias) and
 * the textbook triple loop, instantiated per element type by gemm.c.
 *
 * The structure is Goto and van de Geijn's. For each NC-wide column block
 * of B and each KC-deep slice of the inner dimension, B is packed once into
 * KC x NR panels. Each MC-tall row block of A is then packed into MR x KC
 * panels and swept by the micro-kernel. Packing reads A and B through any
 * pair of strides, so transposed or reversed views cost no copy, and pads
 * the last panel with zeros, so the micro-kernel always sees full tiles.
 * Row blocks of A are shared out among OpenMP threads; every element of C
 * is summed in the same order whatever the thread count.
 */

typedef void (*FN(ukernel_fn))(ptrdiff_t kc, const T *a, const T *b, T *ab);

typedef struct {
    ptrdiff_t mr;
    ptrdiff_t nr;
    FN(ukernel_fn) kernel;
} FN(ukernel_desc);

#define GENERIC_MR 4
#define GENERIC_NR 8

/* Portable micro-kernel: a 4 x 8 tile the compiler can vectorize. */
static void
FN(ukernel_generic)(ptrdiff_t kc, const T *a, const T *b, T *ab)
{
    T acc[GENERIC_MR][GENERIC_NR] = {{0}};

    for (ptrdiff_t p = 0; p < kc; p++) {
        for (int i = 0; i < GENERIC_MR; i++) {
            T ai = a[i];
            for (int j = 0; j < GENERIC_NR; j++) {
                acc[i][j] += ai * b[j];
            }
        }
        a += GENERIC_MR;
        b += GENERIC_NR;
    }
    for (int i = 0; i < GENERIC_MR; i++) {
        for (int j = 0; j < GENERIC_NR; j++) {
            ab[i * GENERIC_NR + j] = acc[i][j];
        }
    }
}

static FN(ukernel_desc)
FN(select_ukernel)(void)
{
    FN(ukernel_desc) desc = {GENERIC_MR, GENERIC_NR, FN(ukernel_generic)};
#ifdef MLA_HAVE_X86_KERNELS
    /* TODO: AVX-512 micro-kernels; that level runs the AVX2 ones for now. */
    if (mla_get_level() >= MLA_LEVEL_AVX2) {
#if MLA_DTYPE == 32
        desc.mr = MLA_AVX2_MR;
        desc.nr = MLA_AVX2_NR_F32;
        desc.kernel = mla_ukernel_avx2_f32;
#else
        desc.mr = MLA_AVX2_MR;
        desc.nr = MLA_AVX2_NR_F64;
        desc.kernel = mla_ukernel_avx2_f64;
#endif
    }
#endif
    return desc;
}

/*
 * Pack the mc x kc block a (strides rs_a, cs_a) into panels of mr rows:
 * panel r contains dst[r * mr * kc + p * mr + i] = a[(r * mr + i), p], with
 * rows past mc set to zero.
 */
static void
FN(pack_a)(T *dst, const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a, ptrdiff_t mc,
           ptrdiff_t kc, ptrdiff_t mr)
{
    for (ptrdiff_t ir = 0; ir < mc; ir += mr) {
        ptrdiff_t rows = mc - ir < mr ? mc - ir : mr;
        const T *panel = a + ir * rs_a;
        for (ptrdiff_t p = 0; p < kc; p++) {
            ptrdiff_t i = 0;
            for (; i < rows; i++) {
                dst[i] = panel[i * rs_a + p * cs_a];
            }
            for (; i < mr; i++) {
                dst[i] = 0;
            }
            dst += mr;
        }
    }
}

/*
 * Pack the kc x nc block b (strides rs_b, cs_b) into panels of nr columns:
 * dst[r * nr * kc + p * nr + j] = b[p, (r * nr + j)], zero past nc.
 */
static void
FN(pack_b)(T *dst, const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b, ptrdiff_t kc,
           ptrdiff_t nc, ptrdiff_t nr)
{
    for (ptrdiff_t jr = 0; jr < nc; jr += nr) {
        ptrdiff_t cols = nc - jr < nr ? nc - jr : nr;
        const T *panel = b + jr * cs_b;
        for (ptrdiff_t p = 0; p < kc; p++) {
            ptrdiff_t j = 0;
            for (; j < cols; j++) {
                dst[j] = panel[p * rs_b + j * cs_b];
            }
            for (; j < nr; j++) {
                dst[j] = 0;
            }
            dst += nr;
        }
    }
}

/*
 * Write the rows x cols corner of the tile ab (row length ld) to C at
 * (i0, j0). With accumulate the tile is added to what C contains (a later K
 * slice); with a non-NULL epilogue (the last K slice) the final value
 * act(alpha * sum + bias) is stored.
 */
static void
FN(store_tile)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *ab, ptrdiff_t ld,
               ptrdiff_t rows, ptrdiff_t cols, int accumulate,
               const FN(mla_epilogue) *ep, ptrdiff_t i0, ptrdiff_t j0)
{
    for (ptrdiff_t i = 0; i < rows; i++) {
        T *crow = c + i * rs_c;
        for (ptrdiff_t j = 0; j < cols; j++) {
            T v = ab[i * ld + j];
            if (accumulate) {
                v += crow[j * cs_c];
            }
            if (ep != NULL) {
                v *= ep->alpha;
                if (ep->bias != NULL) {
                    v += ep->bias[(i0 + i) * ep->bias_rs + (j0 + j) * ep->bias_cs];
                }
                v = FN(activate)(v, ep->activation);
            }
            crow[j * cs_c] = v;
        }
    }
}

/* Elements of packed A that each thread of gemm_run owns. */
static size_t
FN(gemm_apack_size)(const FN(ukernel_desc) *kd, ptrdiff_t m, ptrdiff_t k)
{
    ptrdiff_t kc = k < MLA_KC ? k : MLA_KC;
    ptrdiff_t mc = m < MLA_MC ? m : MLA_MC;
    mc = (mc + kd->mr - 1) / kd->mr * kd->mr;
    return (size_t)mc * (size_t)kc;
}

/* Elements of packed B that gemm_run shares among its threads. */
static size_t
FN(gemm_bpack_size)(const FN(ukernel_desc) *kd, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t kc = k < MLA_KC ? k : MLA_KC;
    ptrdiff_t nc = n < MLA_NC ? n : MLA_NC;
    nc = (nc + kd->nr - 1) / kd->nr * kd->nr;
    return (size_t)kc * (size_t)nc;
}

/* Scratch elements one gemm_run call needs for m x n x k on nthreads. */
static size_t
FN(gemm_workspace)(const FN(ukernel_desc) *kd, ptrdiff_t m, ptrdiff_t n,
                   ptrdiff_t k, int nthreads)
{
    return FN(gemm_bpack_size)(kd, n, k) +
           (size_t)nthreads * FN(gemm_apack_size)(kd, m, k);
}

/* Threads worth starting for an m x n x k product. */
static int
FN(gemm_threads)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    int nthreads = mla_get_num_threads();
    ptrdiff_t row_blocks = (m + MLA_MC - 1) / MLA_MC;
    /*
     * Below about 160^3 multiply-adds, waking a second thread costs more
     * than it saves, and far more when another process occupies the core.
     */
    if ((double)m * (double)n * (double)k < 4.0e6 || row_blocks < 2) {
        return 1;
    }
    return nthreads < row_blocks ? nthreads : (int)row_blocks;
}

/*
 * Compute one MC-row block of C for the current K slice and column block.
 * The mc x kc block of A (a points at its first element) is packed into
 * apack, then the mc x nc block of C (c points at it) is swept tile by tile
 * while B's packed panel stays in L1. (i0, j0) is the block's place in C,
 * which the epilogue needs for the bias.
 */
static void
FN(gemm_block)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a, ptrdiff_t rs_a,
               ptrdiff_t cs_a, const T *bpack, T *apack, ptrdiff_t mc,
               ptrdiff_t nc, ptrdiff_t kc, const FN(ukernel_desc) *kd,
               int accumulate, const FN(mla_epilogue) *last, ptrdiff_t i0,
               ptrdiff_t j0)
{
    T tile[MLA_MAX_MR * MLA_MAX_NR];
    ptrdiff_t mr = kd->mr, nr = kd->nr;

    FN(pack_a)(apack, a, rs_a, cs_a, mc, kc, mr);
    for (ptrdiff_t jr = 0; jr < nc; jr += nr) {
        ptrdiff_t cols = nc - jr < nr ? nc - jr : nr;
        for (ptrdiff_t ir = 0; ir < mc; ir += mr) {
            ptrdiff_t rows = mc - ir < mr ? mc - ir : mr;
            kd->kernel(kc, apack + ir * kc, bpack + jr * kc, tile);
            FN(store_tile)(c + ir * rs_c + jr * cs_c, rs_c, cs_c, tile, nr,
                           rows, cols, accumulate, last, i0 + ir, j0 + jr);
        }
    }
}

/*
 * C (m, n) = act(alpha * A (m, k) B (k, n) + bias), all through strides.
 * C must not overlap A, B or the bias. work has room for gemm_workspace
 * elements.
 */
static void
FN(gemm_run)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a, ptrdiff_t rs_a,
             ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
             ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const FN(mla_epilogue) *ep,
             const FN(ukernel_desc) *kd, T *work, int nthreads)
{
    if (m == 0 || n == 0) {
        return;
    }

    /* An empty inner dimension leaves only the epilogue of a zero sum. */
    if (k == 0) {
        T zero[1] = {0};
        for (ptrdiff_t i = 0; i < m; i++) {
            for (ptrdiff_t j = 0; j < n; j++) {
                FN(store_tile)(c + i * rs_c + j * cs_c, rs_c, cs_c, zero, 1, 1,
                               1, 0, ep, i, j);
            }
        }
        return;
    }

    ptrdiff_t mr = kd->mr, nr = kd->nr;
    ptrdiff_t mc_max = MLA_MC / mr * mr;
    ptrdiff_t row_blocks = (m + mc_max - 1) / mc_max;
    size_t apack_size = FN(gemm_apack_size)(kd, m, k);
    T *bpack = work;
    T *apack_base = work + FN(gemm_bpack_size)(kd, n, k);

    for (ptrdiff_t jc = 0; jc < n; jc += MLA_NC) {
        ptrdiff_t nc = n - jc < MLA_NC ? n - jc : MLA_NC;
        for (ptrdiff_t pc = 0; pc < k; pc += MLA_KC) {
            ptrdiff_t kc = k - pc < MLA_KC ? k - pc : MLA_KC;
            int accumulate = pc > 0;
            const FN(mla_epilogue) *last = pc + kc == k ? ep : NULL;

            FN(pack_b)(bpack, b + pc * rs_b + jc * cs_b, rs_b, cs_b, kc, nc,
                       nr);
            if (nthreads > 1) {
                mla_note_parallel();
            }

            /*
             * Without a second thread, skip the OpenMP region: entering one
             * costs about a microsecond even with an if clause, which is
             * more than a whole small product.
             */
            if (nthreads > 1) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
                for (ptrdiff_t blk = 0; blk < row_blocks; blk++) {
                    ptrdiff_t ic = blk * mc_max;
                    FN(gemm_block)(c + ic * rs_c + jc * cs_c, rs_c, cs_c,
                                   a + ic * rs_a + pc * cs_a, rs_a, cs_a, bpack,
                                   apack_base +
                                       (size_t)MLA_THREAD_ID() * apack_size,
                                   m - ic < mc_max ? m - ic : mc_max, nc, kc,
                                   kd, accumulate, last, ic, jc);
                }
            }
            else {
                for (ptrdiff_t blk = 0; blk < row_blocks; blk++) {
                    ptrdiff_t ic = blk * mc_max;
                    FN(gemm_block)(c + ic * rs_c + jc * cs_c, rs_c, cs_c,
                                   a + ic * rs_a + pc * cs_a, rs_a, cs_a, bpack,
                                   apack_base, m - ic < mc_max ? m - ic : mc_max,
                                   nc, kc, kd, accumulate, last, ic, jc);
                }
            }
        }
    }
}

/* Threads a product of this size runs on: pass it to the two below. */
int
FN(mla_gemm_threads)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    return FN(gemm_threads)(m, n, k);
}

/* Scratch elements mla_gemm_run needs for this size on nthreads. */
size_t
FN(mla_gemm_workspace)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int nthreads)
{
    FN(ukernel_desc) kd = FN(select_ukernel)();
    if (m == 0 || n == 0 || k == 0) {
        return 0;
    }
    return FN(gemm_workspace)(&kd, m, n, k, nthreads);
}

/*
 * Compute the product of mla_gemm in caller-owned scratch. work has room
 * for at least mla_gemm_workspace(m, n, k, nthreads) elements, and nthreads
 * comes from mla_gemm_threads. Callers that run many products allocate once.
 */
void
FN(mla_gemm_run)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a,
                 ptrdiff_t rs_a, ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b,
                 ptrdiff_t cs_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                 const FN(mla_epilogue) *ep, T *work, int nthreads)
{
    FN(ukernel_desc) kd = FN(select_ukernel)();
    FN(gemm_run)(c, rs_c, cs_c, a, rs_a, cs_a, b, rs_b, cs_b, m, n, k, ep, &kd,
                 work, nthreads);
}

mla_status
FN(mla_gemm)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a, ptrdiff_t rs_a,
             ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
             ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const FN(mla_epilogue) *ep)
{
    int nthreads = FN(mla_gemm_threads)(m, n, k);
    T *work = mla_alloc(FN(mla_gemm_workspace)(m, n, k, nthreads), sizeof(T));
    if (work == NULL) {
        return MLA_ERR_NOMEM;
    }
    FN(mla_gemm_run)(c, rs_c, cs_c, a, rs_a, cs_a, b, rs_b, cs_b, m, n, k, ep,
                     work, nthreads);
    mla_free(work);
    return MLA_OK;
}

/*
 * batch independent products C[t] = A[t] B[t], where matrix t of each
 * operand starts at the element offset given in its offsets array (the
 * wrapper computes them from broadcast batch shapes). One workspace serves
 * every matrix.
 */
mla_status
FN(mla_matmul_batched)(T *c, const ptrdiff_t *c_offsets, ptrdiff_t rs_c,
                       ptrdiff_t cs_c, const T *a, const ptrdiff_t *a_offsets,
                       ptrdiff_t rs_a, ptrdiff_t cs_a, const T *b,
                       const ptrdiff_t *b_offsets, ptrdiff_t rs_b,
                       ptrdiff_t cs_b, ptrdiff_t batch, ptrdiff_t m,
                       ptrdiff_t n, ptrdiff_t k)
{
    FN(ukernel_desc) kd = FN(select_ukernel)();
    FN(mla_epilogue) ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};
    int nthreads = FN(gemm_threads)(m, n, k);
    T *work = NULL;

    if (batch == 0 || m == 0 || n == 0) {
        return MLA_OK;
    }
    if (k > 0) {
        work = mla_alloc(FN(gemm_workspace)(&kd, m, n, k, nthreads), sizeof(T));
        if (work == NULL) {
            return MLA_ERR_NOMEM;
        }
    }
    for (ptrdiff_t t = 0; t < batch; t++) {
        FN(gemm_run)(c + c_offsets[t], rs_c, cs_c, a + a_offsets[t], rs_a, cs_a,
                     b + b_offsets[t], rs_b, cs_b, m, n, k, &ep, &kd, work,
                     nthreads);
    }
    mla_free(work);
    return MLA_OK;
}

/*
 * The textbook product: C (m, n) = A (m, k) B (k, n), all C-contiguous,
 * one multiply-add at a time in i, j, l order, with no blocking and no
 * SIMD. It is the baseline of the loops-versus-vectorized comparison.
 */
void
FN(mla_matmul_loop)(T *c, const T *a, const T *b, ptrdiff_t m, ptrdiff_t n,
                    ptrdiff_t k)
{
    for (ptrdiff_t i = 0; i < m; i++) {
        for (ptrdiff_t j = 0; j < n; j++) {
            T sum = 0;
            for (ptrdiff_t l = 0; l < k; l++) {
                sum += a[i * k + l] * b[l * n + j];
            }
            c[i * n + j] = sum;
        }
    }
}
