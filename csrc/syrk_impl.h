/*
 * syrk_impl.h: the blocked symmetric rank-k product C = A A^T, lower
 * triangle only, on top of the GEMM entry points of mla.h. Instantiated per
 * element type by syrk.c.
 *
 * A is (n, k), read through its strides (rs_a, cs_a), so A^T A of an (k, n)
 * matrix X is the same call with the strides of X swapped. C is (n, n) with
 * row stride ldc and column stride 1. The rows of C are cut into blocks of
 * MLA_SYRK_BLOCK; each block (I, J) with J <= I is one product
 * C_IJ = A_I A_J^T through mla_gemm_run, so about half the multiply-adds of
 * the full product are done. A diagonal block is computed whole, so the
 * entries above the diagonal inside it are written too, with the values of
 * their mirror images. The blocks above the diagonal are left as they
 * were. Every element is summed in the GEMM's order whatever the thread
 * count.
 */

/* Number of blocks (I, J) with J <= I in the lower triangle of (n, n). */
static ptrdiff_t
FN(syrk_pairs)(ptrdiff_t n)
{
    ptrdiff_t blocks = (n + MLA_SYRK_BLOCK - 1) / MLA_SYRK_BLOCK;
    return blocks * (blocks + 1) / 2;
}

/* Threads worth starting for an (n, k) product: one per block, at most. */
int
FN(mla_syrk_threads)(ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t pairs = FN(syrk_pairs)(n);
    int threads = mla_get_num_threads();
    /* The GEMM's threshold: below about 160^3 multiply-adds, one thread. */
    if ((double)n * (double)n * (double)k < 8.0e6 || pairs < 2) {
        return 1;
    }
    return mla_team_threads(threads < pairs ? threads : (int)pairs);
}

/* Scratch elements mla_syrk_run needs for an (n, k) product on nthreads. */
size_t
FN(mla_syrk_workspace)(ptrdiff_t n, ptrdiff_t k, int nthreads)
{
    ptrdiff_t block = n < MLA_SYRK_BLOCK ? n : MLA_SYRK_BLOCK;
    return (size_t)nthreads * FN(mla_gemm_workspace)(block, block, k, 1);
}

/*
 * Block `pair` of the lower triangle of C = A A^T (see mla_syrk_run), with
 * the GEMM scratch of one thread in work.
 */
static void
FN(syrk_block)(T *c, ptrdiff_t ldc, const T *a, ptrdiff_t rs_a,
               ptrdiff_t cs_a, ptrdiff_t n, ptrdiff_t k, ptrdiff_t pair,
               T *work)
{
    FN(mla_epilogue) ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};

    /* Block row i and column j <= i of the pair-th lower block. */
    ptrdiff_t i = 0;
    while ((i + 1) * (i + 2) / 2 <= pair) {
        i++;
    }
    ptrdiff_t j = pair - i * (i + 1) / 2;
    ptrdiff_t i0 = i * MLA_SYRK_BLOCK, j0 = j * MLA_SYRK_BLOCK;
    ptrdiff_t rows = n - i0 < MLA_SYRK_BLOCK ? n - i0 : MLA_SYRK_BLOCK;
    ptrdiff_t cols = n - j0 < MLA_SYRK_BLOCK ? n - j0 : MLA_SYRK_BLOCK;

    /* C_ij = A_i (rows, k) times A_j^T (k, cols), A_j^T by strides. */
    FN(mla_gemm_run)(c + i0 * ldc + j0, ldc, 1, a + i0 * rs_a, rs_a, cs_a,
                     a + j0 * rs_a, cs_a, rs_a, rows, cols, k, &ep, work, 1);
}

/*
 * Lower triangle of C (n, n) = A (n, k) A^T, in caller-owned scratch: work
 * has room for mla_syrk_workspace(n, k, nthreads) elements, and nthreads
 * comes from mla_syrk_threads. With nthreads == 1 it is safe to call inside
 * an OpenMP parallel region. C must not overlap A.
 */
void
FN(mla_syrk_run)(T *c, ptrdiff_t ldc, const T *a, ptrdiff_t rs_a,
                 ptrdiff_t cs_a, ptrdiff_t n, ptrdiff_t k, T *work,
                 int nthreads)
{
    ptrdiff_t pairs = FN(syrk_pairs)(n);
    size_t per_thread = FN(mla_syrk_workspace)(n, k, 1);
    if (n == 0) {
        return;
    }
    if (nthreads == 1) {
        for (ptrdiff_t pair = 0; pair < pairs; pair++) {
            FN(syrk_block)(c, ldc, a, rs_a, cs_a, n, k, pair, work);
        }
        return;
    }
    mla_note_parallel(nthreads);
#pragma omp parallel for num_threads(nthreads) schedule(dynamic)
    for (ptrdiff_t pair = 0; pair < pairs; pair++) {
        FN(syrk_block)(c, ldc, a, rs_a, cs_a, n, k, pair,
                       work + (size_t)MLA_THREAD_ID() * per_thread);
    }
}

/* mla_syrk_run with its own scratch and thread count. */
mla_status
FN(mla_syrk)(T *c, ptrdiff_t ldc, const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
             ptrdiff_t n, ptrdiff_t k)
{
    int nthreads = FN(mla_syrk_threads)(n, k);
    T *work = mla_alloc(FN(mla_syrk_workspace)(n, k, nthreads), sizeof(T));
    if (work == NULL) {
        return MLA_ERR_NOMEM;
    }
    FN(mla_syrk_run)(c, ldc, a, rs_a, cs_a, n, k, work, nthreads);
    mla_free(work);
    return MLA_OK;
}
