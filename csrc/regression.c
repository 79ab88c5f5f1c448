/*
 * regression.c: linear regression for float32 and float64 (the Gram
 * matrix, from regression_impl.h) and the double-precision solver they
 * share: Cholesky, with pivoted LU as the fallback.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "mla.h"

/*
 * A pivot at or below this multiple of dim * DBL_EPSILON, relative to the
 * size of its matrix, is rounding noise: the system is singular to working
 * precision. The margin of 8 covers the few roundings that a pivot of an
 * exactly singular Gram matrix collects.
 */
#define MLA_PIVOT_MARGIN 8.0

/*
 * Cholesky factorization a = L L^T in place (lower triangle) of the
 * symmetric dim x dim matrix a. Return 0 when a pivot is not positive
 * beyond rounding relative to its own diagonal entry, or not finite.
 */
static int
cholesky(double *a, ptrdiff_t dim)
{
    double tol = MLA_PIVOT_MARGIN * (double)dim * DBL_EPSILON;
    for (ptrdiff_t j = 0; j < dim; j++) {
        double *rj = a + j * dim;
        double d = rj[j];
        for (ptrdiff_t k = 0; k < j; k++) {
            d -= rj[k] * rj[k];
        }
        if (!(d > tol * rj[j]) || !isfinite(d)) {
            return 0;
        }
        double l = sqrt(d);
        rj[j] = l;
        for (ptrdiff_t i = j + 1; i < dim; i++) {
            double *ri = a + i * dim;
            double s = ri[j];
            for (ptrdiff_t k = 0; k < j; k++) {
                s -= ri[k] * rj[k];
            }
            ri[j] = s / l;
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
 * system regular.
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
    if (cholesky(work, dim)) {
        cholesky_solve(b, work, dim, t);
        return MLA_OK;
    }
    if (lu_factor(a, pivots, dim)) {
        lu_solve(b, a, pivots, dim, t);
        return MLA_OK;
    }
    return MLA_ERR_SINGULAR;
}

#define MLA_DTYPE 32
#include "dtype.h"
#include "regression_impl.h"
#undef MLA_DTYPE

#define MLA_DTYPE 64
#include "dtype.h"
#include "regression_impl.h"
#undef MLA_DTYPE
