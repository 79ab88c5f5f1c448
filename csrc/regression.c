/*
 * regression.c: linear regression for float32 and float64 (reading the
 * data, from regression_impl.h) and the double-precision solvers they
 * share: a blocked Cholesky with pivoted LU as the fallback for the normal
 * equations, and Householder QR with back substitution.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "gemm.h"
#include "mla.h"

#ifdef MLA_HAVE_OPENMP
#include <omp.h>
#define MLA_THREAD_ID() omp_get_thread_num()
#else
#define MLA_THREAD_ID() 0
#endif

/*
 * Rows of the design read, scaled and multiplied at a time: 512 rows of
 * 52 doubles (50 features, the bias and a target) take 208 KiB, which
 * stays in L2.
 */
#define MLA_REGRESSION_SLAB 512

/*
 * Row tasks: about one per MLA_REGRESSION_TASK_ROWS rows, at most
 * MLA_REGRESSION_MAX_TASKS, with their result buffers together at most
 * MLA_REGRESSION_TASK_MEMORY doubles (32 MiB). With tasks of 2048 rows,
 * a few thousand rows already give the threads several tasks to share,
 * and 100000 rows give 49 tasks, which split evenly enough. Each task
 * costs one more sum of the result buffers.
 */
#define MLA_REGRESSION_TASK_ROWS 2048
#define MLA_REGRESSION_MAX_TASKS 64
#define MLA_REGRESSION_TASK_MEMORY ((ptrdiff_t)1 << 22)

/*
 * A pivot at or below this multiple of dim * DBL_EPSILON, relative to the
 * size of its matrix, is rounding noise: the system is singular to working
 * precision. The margin of 8 covers the few roundings that a pivot of an
 * exactly singular Gram matrix collects.
 */
#define MLA_PIVOT_MARGIN 8.0

/* Columns per block of the blocked Cholesky factorization. */
#define MLA_CHOLESKY_BLOCK 64

/*
 * Cholesky factorization in place of the nb x nb diagonal block at a (row
 * stride ld), whose entries already contain the updates of the blocks to
 * its left. Return 0 when a pivot is not positive beyond rounding relative
 * to the original diagonal entry diag[j] (tol times it), or not finite.
 */
static int
cholesky_block(double *a, ptrdiff_t ld, ptrdiff_t nb, const double *diag,
               double tol)
{
    for (ptrdiff_t j = 0; j < nb; j++) {
        double *rj = a + j * ld;
        double d = rj[j];
        for (ptrdiff_t k = 0; k < j; k++) {
            d -= rj[k] * rj[k];
        }
        if (!(d > tol * diag[j]) || !isfinite(d)) {
            return 0;
        }
        double l = sqrt(d);
        rj[j] = l;
        for (ptrdiff_t i = j + 1; i < nb; i++) {
            double *ri = a + i * ld;
            double s = ri[j];
            for (ptrdiff_t k = 0; k < j; k++) {
                s -= ri[k] * rj[k];
            }
            ri[j] = s / l;
        }
    }
    return 1;
}

/*
 * Cholesky factorization a = L L^T in place (lower triangle) of the
 * symmetric dim x dim matrix a, right-looking by blocks of
 * MLA_CHOLESKY_BLOCK: factor the diagonal block, solve the panel below it,
 * then subtract the panel's product with itself from the trailing matrix
 * through the blocked lower-triangle product (syrk.c). Scratch: diag (dim,),
 * update (dim - block)^2 and syrk_work, sized by mla_solve_spd. Return 0
 * when a pivot is not positive beyond rounding relative to its original
 * diagonal entry, or not finite.
 */
static int
cholesky(double *a, ptrdiff_t dim, double *diag, double *update,
         double *syrk_work)
{
    double tol = MLA_PIVOT_MARGIN * (double)dim * DBL_EPSILON;
    for (ptrdiff_t i = 0; i < dim; i++) {
        diag[i] = a[i * dim + i];
    }

    for (ptrdiff_t k0 = 0; k0 < dim; k0 += MLA_CHOLESKY_BLOCK) {
        ptrdiff_t kb = dim - k0 < MLA_CHOLESKY_BLOCK ? dim - k0
                                                     : MLA_CHOLESKY_BLOCK;
        double *a11 = a + k0 * dim + k0;
        if (!cholesky_block(a11, dim, kb, diag + k0, tol)) {
            return 0;
        }
        ptrdiff_t rest = dim - k0 - kb;
        if (rest == 0) {
            break;
        }

        /* Panel: L21 = A21 L11^-T, one row at a time. */
        double *a21 = a + (k0 + kb) * dim + k0;
        for (ptrdiff_t r = 0; r < rest; r++) {
            double *row = a21 + r * dim;
            for (ptrdiff_t j = 0; j < kb; j++) {
                double s = row[j];
                for (ptrdiff_t l = 0; l < j; l++) {
                    s -= row[l] * a11[j * dim + l];
                }
                row[j] = s / a11[j * dim + j];
            }
        }

        /* Trailing matrix: A22 -= L21 L21^T, lower triangle. */
        int threads = mla_syrk_threads_f64(rest, kb);
        mla_syrk_run_f64(update, rest, a21, dim, 1, rest, kb, syrk_work,
                         threads);
        double *a22 = a21 + kb;
        for (ptrdiff_t i = 0; i < rest; i++) {
            for (ptrdiff_t j = 0; j <= i; j++) {
                a22[i * dim + j] -= update[i * rest + j];
            }
        }
    }
    return 1;
}

/* Solve L L^T x = b in place for the t columns of b (dim, t). */
static void
cholesky_solve(double *b, const double *l, ptrdiff_t dim, ptrdiff_t t)
{
    for (ptrdiff_t c = 0; c < t; c++) {
        /* L z = b, forward. */
        for (ptrdiff_t i = 0; i < dim; i++) {
            double s = b[i * t + c];
            for (ptrdiff_t k = 0; k < i; k++) {
                s -= l[i * dim + k] * b[k * t + c];
            }
            b[i * t + c] = s / l[i * dim + i];
        }
        /* L^T x = z, backward. */
        for (ptrdiff_t i = dim - 1; i >= 0; i--) {
            double s = b[i * t + c];
            for (ptrdiff_t k = i + 1; k < dim; k++) {
                s -= l[k * dim + i] * b[k * t + c];
            }
            b[i * t + c] = s / l[i * dim + i];
        }
    }
}

/*
 * LU factorization with partial pivoting, P a = L U, in place; pivots[j]
 * is the row swapped into row j. Return 0 when a pivot is at most
 * rounding noise relative to the largest entry of a.
 */
static int
lu_factor(double *a, ptrdiff_t *pivots, ptrdiff_t dim)
{
    double max_entry = 0;
    for (ptrdiff_t i = 0; i < dim * dim; i++) {
        double v = fabs(a[i]);
        max_entry = v > max_entry ? v : max_entry;
    }
    double tol = MLA_PIVOT_MARGIN * (double)dim * DBL_EPSILON * max_entry;

    for (ptrdiff_t j = 0; j < dim; j++) {
        ptrdiff_t best = j;
        for (ptrdiff_t i = j + 1; i < dim; i++) {
            if (fabs(a[i * dim + j]) > fabs(a[best * dim + j])) {
                best = i;
            }
        }
        pivots[j] = best;
        if (!(fabs(a[best * dim + j]) > tol)) {
            return 0;
        }
        if (best != j) {
            for (ptrdiff_t k = 0; k < dim; k++) {
                double tmp = a[j * dim + k];
                a[j * dim + k] = a[best * dim + k];
                a[best * dim + k] = tmp;
            }
        }
        for (ptrdiff_t i = j + 1; i < dim; i++) {
            double f = a[i * dim + j] / a[j * dim + j];
            a[i * dim + j] = f;
            for (ptrdiff_t k = j + 1; k < dim; k++) {
                a[i * dim + k] -= f * a[j * dim + k];
            }
        }
    }
    return 1;
}

/* Solve P^-1 L U x = b in place for the t columns of b (dim, t). */
static void
lu_solve(double *b, const double *lu, const ptrdiff_t *pivots, ptrdiff_t dim,
         ptrdiff_t t)
{
    for (ptrdiff_t c = 0; c < t; c++) {
        for (ptrdiff_t i = 0; i < dim; i++) {
            ptrdiff_t r = pivots[i];
            if (r != i) {
                double tmp = b[i * t + c];
                b[i * t + c] = b[r * t + c];
                b[r * t + c] = tmp;
            }
        }
        for (ptrdiff_t i = 0; i < dim; i++) {
            double s = b[i * t + c];
            for (ptrdiff_t k = 0; k < i; k++) {
                s -= lu[i * dim + k] * b[k * t + c];
            }
            b[i * t + c] = s;
        }
        for (ptrdiff_t i = dim - 1; i >= 0; i--) {
            double s = b[i * t + c];
            for (ptrdiff_t k = i + 1; k < dim; k++) {
                s -= lu[i * dim + k] * b[k * t + c];
            }
            b[i * t + c] = s / lu[i * dim + i];
        }
    }
}

/*
 * Solve a x = b for the symmetric matrix a (dim, dim), overwriting b
 * (dim, t) with x. Cholesky is tried first on a copy in work (dim, dim);
 * when it fails, pivoted LU runs on a itself. A non-finite a or b gives an
 * all-NaN x. Returns MLA_ERR_SINGULAR when neither factorization finds the
 * system regular, and MLA_ERR_NOMEM when the scratch of the blocked
 * Cholesky cannot be allocated.
 */
mla_status
mla_solve_spd(double *b, double *a, double *work, ptrdiff_t *pivots,
              ptrdiff_t dim, ptrdiff_t t)
{
    int finite = 1;
    for (ptrdiff_t i = 0; i < dim * dim; i++) {
        finite &= isfinite(a[i]) != 0;
    }
    for (ptrdiff_t i = 0; i < dim * t; i++) {
        finite &= isfinite(b[i]) != 0;
    }
    if (!finite) {
        for (ptrdiff_t i = 0; i < dim * t; i++) {
            b[i] = NAN;
        }
        return MLA_OK;
    }

    for (ptrdiff_t i = 0; i < dim * dim; i++) {
        work[i] = a[i];
    }
    ptrdiff_t rest = dim > MLA_CHOLESKY_BLOCK ? dim - MLA_CHOLESKY_BLOCK : 0;
    int threads = mla_syrk_threads_f64(rest, MLA_CHOLESKY_BLOCK);
    size_t syrk_size = mla_syrk_workspace_f64(rest, MLA_CHOLESKY_BLOCK,
                                              threads);
    double *scratch = mla_alloc((size_t)dim + (size_t)rest * (size_t)rest +
                                    syrk_size,
                                sizeof(double));
    if (scratch == NULL) {
        return MLA_ERR_NOMEM;
    }
    int factored = cholesky(work, dim, scratch, scratch + dim,
                            scratch + dim + rest * rest);
    mla_free(scratch);
    if (factored) {
        cholesky_solve(b, work, dim, t);
        return MLA_OK;
    }
    if (lu_factor(a, pivots, dim)) {
        lu_solve(b, a, pivots, dim, t);
        return MLA_OK;
    }
    return MLA_ERR_SINGULAR;
}

/*
 * Householder QR of the m x ncols matrix b (row-major, row stride ncols),
 * reflecting its first min(m, kmax) columns and applying each reflection to
 * every column to its right. Afterwards the first min(m, kmax) rows contain
 * R (upper trapezoidal) and, in the columns past kmax, Q^T times those
 * columns. The entries below the diagonal are set to 0, and the rows past
 * kmax are left as scratch. w is scratch of ncols elements.
 *
 * The reflection of column j is H = I - tau u u^T, where x is the column
 * from row j down, alpha = -sign(x_0) |x| (so x_0 - alpha never cancels),
 * u = (x - alpha e_1) / (x_0 - alpha) has u_0 = 1, and
 * tau = (alpha - x_0) / alpha lies in [1, 2], as in LAPACK's dlarfg. |x|
 * is taken after dividing by the largest |x_r|, and no product of two
 * entries of x is formed, so tiny or huge columns neither underflow nor
 * overflow.
 */
static void
householder_reduce(double *b, ptrdiff_t m, ptrdiff_t ncols, ptrdiff_t kmax,
                   double *w)
{
    ptrdiff_t steps = m < kmax ? m : kmax;
    for (ptrdiff_t j = 0; j < steps; j++) {
        double amax = 0;
        for (ptrdiff_t r = j; r < m; r++) {
            double v = fabs(b[r * ncols + j]);
            if (v > amax || v != v) {
                amax = v;
            }
        }
        if (amax == 0) {
            continue;
        }
        double ss = 0;
        for (ptrdiff_t r = j; r < m; r++) {
            double v = b[r * ncols + j] / amax;
            ss += v * v;
        }
        double norm = amax * sqrt(ss);
        double x0 = b[j * ncols + j];
        double alpha = x0 > 0 ? -norm : norm;
        double v0 = x0 - alpha;
        double tau = (alpha - x0) / alpha;
        b[j * ncols + j] = 1;
        for (ptrdiff_t r = j + 1; r < m; r++) {
            b[r * ncols + j] /= v0;
        }

        /* w = u^T B for the columns right of j, then B -= tau u w. */
        for (ptrdiff_t c = j + 1; c < ncols; c++) {
            w[c] = 0;
        }
        for (ptrdiff_t r = j; r < m; r++) {
            double ur = b[r * ncols + j];
            const double *row = b + r * ncols;
            for (ptrdiff_t c = j + 1; c < ncols; c++) {
                w[c] += ur * row[c];
            }
        }
        for (ptrdiff_t r = j; r < m; r++) {
            double f = tau * b[r * ncols + j];
            double *row = b + r * ncols;
            for (ptrdiff_t c = j + 1; c < ncols; c++) {
                row[c] -= f * w[c];
            }
        }
        b[j * ncols + j] = alpha;
    }
    for (ptrdiff_t r = 1; r < steps; r++) {
        for (ptrdiff_t j = 0; j < r; j++) {
            b[r * ncols + j] = 0;
        }
    }
}

/*
 * Solve R x = z for the upper triangular R, the first dim columns of the
 * first dim rows of r (row stride ld), and the t columns of z (dim, t)
 * in place. A non-finite R or z gives an all-NaN x. Return
 * MLA_ERR_SINGULAR when some |R_jj| is at most rounding noise beside the
 * norm of column j of R, which equals the norm of column j of the design
 * matrix.
 */
static mla_status
solve_upper(double *z, const double *r, ptrdiff_t ld, ptrdiff_t dim,
            ptrdiff_t t)
{
    int finite = 1;
    for (ptrdiff_t i = 0; i < dim; i++) {
        for (ptrdiff_t j = i; j < dim; j++) {
            finite &= isfinite(r[i * ld + j]) != 0;
        }
    }
    for (ptrdiff_t i = 0; i < dim * t; i++) {
        finite &= isfinite(z[i]) != 0;
    }
    if (!finite) {
        for (ptrdiff_t i = 0; i < dim * t; i++) {
            z[i] = NAN;
        }
        return MLA_OK;
    }

    double tol = MLA_PIVOT_MARGIN * (double)dim * DBL_EPSILON;
    for (ptrdiff_t j = 0; j < dim; j++) {
        double amax = 0, ss = 0;
        for (ptrdiff_t i = 0; i <= j; i++) {
            double v = fabs(r[i * ld + j]);
            amax = v > amax ? v : amax;
        }
        for (ptrdiff_t i = 0; amax > 0 && i <= j; i++) {
            double v = r[i * ld + j] / amax;
            ss += v * v;
        }
        if (!(fabs(r[j * ld + j]) > tol * amax * sqrt(ss))) {
            return MLA_ERR_SINGULAR;
        }
    }

    for (ptrdiff_t c = 0; c < t; c++) {
        for (ptrdiff_t i = dim - 1; i >= 0; i--) {
            double s = z[i * t + c];
            for (ptrdiff_t k = i + 1; k < dim; k++) {
                s -= r[i * ld + k] * z[k * t + c];
            }
            z[i * t + c] = s / r[i * ld + i];
        }
    }
    return MLA_OK;
}

/*
 * Widest augmented design, in columns, whose Gram matrix is summed tile by
 * tile straight from the slab (gram_tiles_add). Wider designs go through
 * the blocked lower-triangle product (syrk.c), which packs its operands,
 * because their slabs no longer fit in L2.
 */
#define MLA_GRAM_TILE_COLS 128

/*
 * Rows of the slab that gram_tiles_add reads: 128 rows of 56 doubles take
 * 56 KiB, and each tile's column panel of the slab, one cache line per
 * row, stays in L1. On one AMD EPYC core (Zen 3) with 100000 x 50 data,
 * 64 and 128 rows ran a few percent faster than 256 and 512 (measured on a
 * shared machine, so an estimate).
 */
#define MLA_GRAM_TILE_SLAB 128

/*
 * How gram_tiles_add cuts the Gram matrix of ncols columns into the
 * micro-kernel's mr x nr tiles. The slab and the sum both have row stride
 * ld, enough for whole tiles in either direction; the padding columns of
 * the slab are zero.
 */
typedef struct {
    mla_ukernel_strided_f64 kernel;
    mla_ukernel_strided_f64 half_kernel; /* mr x nr / 2 tiles, or NULL */
    ptrdiff_t mr, nr;
    ptrdiff_t ncols;
    ptrdiff_t ld;
} gram_tiles;

static gram_tiles
gram_tiles_for(ptrdiff_t ncols)
{
    gram_tiles g;
    g.kernel = mla_gemm_strided_kernel_f64(&g.mr, &g.nr);
    g.half_kernel = mla_gemm_half_strided_kernel_f64(g.kernel);
    g.ncols = ncols;
    ptrdiff_t rows = (ncols + g.mr - 1) / g.mr * g.mr;
    ptrdiff_t cols = (ncols + g.nr - 1) / g.nr * g.nr;
    ptrdiff_t ld = rows > cols ? rows : cols;
    /* Whole cache lines per row keep each tile's column panel aligned. */
    g.ld = (ld + 7) / 8 * 8;
    return g;
}

/*
 * Add A^T A to sum (ld, ld) for the slab A (rows, ld), on and below the
 * diagonal: every tile that contains an element with row >= column. Such a
 * tile is computed whole, so a few elements above the diagonal and in the
 * padding are written too; the callers read only the lower triangle of the
 * leading (ncols, ncols) block. The micro-kernel reads the slab through
 * strides: A^T by columns (row stride 1, column stride ld) and A by rows,
 * so nothing is packed. Each tile sums its rows from zero in increasing
 * order and then adds them to sum.
 *
 * A tile whose rows need at most nr / 2 of its columns, such as the top
 * half of a diagonal block, runs the half-width kernel where the level has
 * one. On one AMD Zen 4 core that took 100000 x 50 data from 10.3 to
 * 9.3 ms. Both kernels compute each element alike, so the sum does not
 * depend on which one ran.
 *
 * The tiles are bound by arithmetic and the slab's fill by memory, so
 * while they run, the `count` bytes from `ahead` (the data of the next
 * slab) are prefetched, a share before each tile.
 */
static void
gram_tiles_add(double *sum, const double *slab, ptrdiff_t rows,
               const gram_tiles *g, const char *ahead, ptrdiff_t count)
{
    ptrdiff_t ld = g->ld;
    ptrdiff_t tiles = 0;
    for (ptrdiff_t j0 = 0; j0 < g->ncols; j0 += g->nr) {
        tiles += (g->ncols - j0 / g->mr * g->mr + g->mr - 1) / g->mr;
    }
    ptrdiff_t lines = (count + 63) / 64;
    ptrdiff_t share = (lines + tiles - 1) / tiles, line = 0;

    for (ptrdiff_t j0 = 0; j0 < g->ncols; j0 += g->nr) {
        for (ptrdiff_t i0 = j0 / g->mr * g->mr; i0 < g->ncols; i0 += g->mr) {
            for (ptrdiff_t l = 0; l < share && line < lines; l++, line++) {
                __builtin_prefetch(ahead + line * 64, 0, 1);
            }
            /* Only columns before column_end reach the lower triangle. */
            ptrdiff_t column_end =
                i0 + g->mr < g->ncols ? i0 + g->mr : g->ncols;
            mla_ukernel_strided_f64 kernel = g->kernel;
            if (g->half_kernel != NULL && column_end - j0 <= g->nr / 2) {
                kernel = g->half_kernel;
            }
            kernel(rows, slab + i0, 1, ld, slab + j0, ld, sum + i0 * ld + j0,
                   ld, 1.0, 1.0);
        }
    }
}

#define MLA_DTYPE 32
#include "dtype.h"
#include "regression_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "regression_impl.h"
#undef MLA_DTYPE
