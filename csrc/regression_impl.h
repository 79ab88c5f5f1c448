/*
 * regression_impl.h: least squares through the regularized normal
 * equations, instantiated per element type by regression.c.
 *
 * Both element types form and solve the system in double: the Gram matrix
 * squares the condition number of the data, and float32 would leave few
 * correct digits.
 */

/*
 * Solve (Xb^T Xb + lambda I) w = Xb^T y, where Xb = [1, X] prepends a
 * column of ones to X (n, p); y is (n, t) and w is (p + 1, t), all
 * C-contiguous. The Gram matrix and right-hand side are accumulated row by
 * row (one read of X), then mla_solve_spd (regression.c) factors them.
 * Non-finite data gives NaN weights, the way LAPACK's solvers propagate it.
 */
mla_status
FN(mla_linear_regression)(T *w, const T *x, const T *y, ptrdiff_t n,
                          ptrdiff_t p, ptrdiff_t t, double regularization)
{
    ptrdiff_t dim = p + 1;

    /* A (dim, dim) system that cannot be addressed cannot be allocated. */
    if ((size_t)dim > SIZE_MAX / 4 / (size_t)dim ||
        (size_t)t > SIZE_MAX / 4 / (size_t)dim) {
        return MLA_ERR_NOMEM;
    }
    size_t gram_size = (size_t)dim * (size_t)dim;
    double *gram = mla_alloc(2 * gram_size + (size_t)dim * (size_t)t,
                             sizeof(double));
    ptrdiff_t *pivots = mla_alloc((size_t)dim, sizeof(ptrdiff_t));
    if (gram == NULL || pivots == NULL) {
        mla_free(gram);
        mla_free(pivots);
        return MLA_ERR_NOMEM;
    }
    double *work = gram + gram_size;
    double *rhs = work + gram_size;

    for (size_t i = 0; i < gram_size; i++) {
        gram[i] = 0;
    }
    for (ptrdiff_t i = 0; i < dim * t; i++) {
        rhs[i] = 0;
    }

    /*
     * Upper triangle of the Gram matrix, with the bias as index 0:
     * gram[0][0] = n, gram[0][j + 1] = sum X[:, j] and
     * gram[i + 1][j + 1] = sum X[:, i] X[:, j].
     */
    gram[0] = (double)n;
    for (ptrdiff_t r = 0; r < n; r++) {
        const T *xr = x + r * p;
        const T *yr = y + r * t;
        for (ptrdiff_t i = 0; i < p; i++) {
            double xi = xr[i];
            double *grow = gram + (i + 1) * dim + 1;
            gram[i + 1] += xi;
            for (ptrdiff_t j = i; j < p; j++) {
                grow[j] += xi * (double)xr[j];
            }
        }
        for (ptrdiff_t c = 0; c < t; c++) {
            double yc = yr[c];
            rhs[c] += yc;
            for (ptrdiff_t i = 0; i < p; i++) {
                rhs[(i + 1) * t + c] += (double)xr[i] * yc;
            }
        }
    }
    for (ptrdiff_t i = 0; i < dim; i++) {
        gram[i * dim + i] += regularization;
        for (ptrdiff_t j = 0; j < i; j++) {
            gram[i * dim + j] = gram[j * dim + i];
        }
    }

    mla_status status = mla_solve_spd(rhs, gram, work, pivots, dim, t);
    if (status == MLA_OK) {
        for (ptrdiff_t i = 0; i < dim * t; i++) {
            w[i] = (T)rhs[i];
        }
    }
    mla_free(gram);
    mla_free(pivots);
    return status;
}
