/*
 * regression_impl.h: least squares through the regularized normal
 * equations, instantiated per element type by regression.c.
 *
 * Both element types form and solve the system in double: the Gram matrix
 * squares the condition number of the data, and float32 would leave few
 * correct digits.
 */

/* Largest |a[r * stride + j]| over r < rows, as a scale: 1 when it is 0. */
static double
FN(column_scale)(const T *a, ptrdiff_t rows, ptrdiff_t stride, ptrdiff_t j)
{
    double max = 0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        double v = fabs((double)a[r * stride + j]);
        if (v > max || v != v) {
            max = v;
        }
    }
    return max == 0 ? 1 : max;
}

/*
 * Solve (Xb^T Xb + lambda I) w = Xb^T y, where Xb = [1, X] prepends a
 * column of ones to X (n, p); y is (n, t) and w is (p + 1, t), all
 * C-contiguous. Non-finite data gives NaN weights, the way LAPACK's
 * solvers propagate it.
 *
 * Each feature column j is divided by its largest magnitude s_j and each
 * target column by its own, so the Gram matrix neither overflows for data
 * near 1e160 nor underflows for tiny data. With D = diag(1, 1/s_1, ...),
 * the scaled system is (D G D + lambda D^2) v = D Xb^T y / s_y, and
 * w = D v s_y. The Gram matrix and right-hand side are accumulated row by
 * row (one read of X), then mla_solve_spd (regression.c) factors them.
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
    size_t rhs_size = (size_t)dim * (size_t)t;
    double *gram = mla_alloc(2 * gram_size + rhs_size + 2 * (size_t)dim +
                                 2 * (size_t)t,
                             sizeof(double));
    ptrdiff_t *pivots = mla_alloc((size_t)dim, sizeof(ptrdiff_t));
    if (gram == NULL || pivots == NULL) {
        mla_free(gram);
        mla_free(pivots);
        return MLA_ERR_NOMEM;
    }
    double *work = gram + gram_size;
    double *rhs = work + gram_size;
    double *x_scale = rhs + rhs_size;
    double *x_row = x_scale + dim;
    double *y_scale = x_row + dim;
    double *y_row = y_scale + t;

    for (size_t i = 0; i < gram_size; i++) {
        gram[i] = 0;
    }
    for (size_t i = 0; i < rhs_size; i++) {
        rhs[i] = 0;
    }
    /*
     * A column far smaller than sqrt(lambda) is nearly all penalty. Its
     * scale is floored at sqrt(lambda) 2^-30: lambda / s^2 then stays below
     * 2^60 and the scaled weight w_j s_j stays in the normal range, while
     * only data terms below 2^-60 lambda, negligible beside the penalty,
     * can underflow.
     */
    double scale_floor = sqrt(regularization) * 0x1p-30;
    for (ptrdiff_t j = 0; j < p; j++) {
        double scale = FN(column_scale)(x, n, p, j);
        x_scale[j] = scale > scale_floor ? scale : scale_floor;
    }
    for (ptrdiff_t c = 0; c < t; c++) {
        y_scale[c] = FN(column_scale)(y, n, t, c);
    }

    /*
     * Upper triangle of the scaled Gram matrix, with the bias as index 0:
     * gram[0][0] = n, gram[0][j + 1] = sum X[:, j] / s_j and
     * gram[i + 1][j + 1] = sum X[:, i] X[:, j] / (s_i s_j).
     */
    gram[0] = (double)n;
    for (ptrdiff_t r = 0; r < n; r++) {
        for (ptrdiff_t j = 0; j < p; j++) {
            x_row[j] = (double)x[r * p + j] / x_scale[j];
        }
        for (ptrdiff_t c = 0; c < t; c++) {
            y_row[c] = (double)y[r * t + c] / y_scale[c];
        }
        for (ptrdiff_t i = 0; i < p; i++) {
            double xi = x_row[i];
            double *grow = gram + (i + 1) * dim + 1;
            gram[i + 1] += xi;
            for (ptrdiff_t j = i; j < p; j++) {
                grow[j] += xi * x_row[j];
            }
        }
        for (ptrdiff_t c = 0; c < t; c++) {
            double yc = y_row[c];
            rhs[c] += yc;
            for (ptrdiff_t i = 0; i < p; i++) {
                rhs[(i + 1) * t + c] += x_row[i] * yc;
            }
        }
    }

    /* Mirror the lower triangle and add lambda d_i^2 to the diagonal. */
    for (ptrdiff_t i = 0; i < dim; i++) {
        double d = i == 0 ? 1 : 1 / x_scale[i - 1];
        gram[i * dim + i] += regularization * d * d;
        for (ptrdiff_t j = 0; j < i; j++) {
            gram[i * dim + j] = gram[j * dim + i];
        }
    }

    mla_status status = mla_solve_spd(rhs, gram, work, pivots, dim, t);
    if (status == MLA_OK) {
        for (ptrdiff_t i = 0; i < dim; i++) {
            double d = i == 0 ? 1 : 1 / x_scale[i - 1];
            for (ptrdiff_t c = 0; c < t; c++) {
                w[i * t + c] = (T)(rhs[i * t + c] * d * y_scale[c]);
            }
        }
    }
    mla_free(gram);
    mla_free(pivots);
    return status;
}
