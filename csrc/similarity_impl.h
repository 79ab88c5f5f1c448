/*
 * similarity_impl.h: cosine similarity of two vectors and of every pair of
 * rows, instantiated per element type by similarity.c.
 *
 * A zero vector has no direction; its similarity with anything is 0.0, the
 * convention of scikit-learn and PyTorch. Results are clamped to [-1, 1]. Sums of squares are taken after
 * dividing by the vector's largest magnitude, so they neither overflow for
 * huge entries nor underflow for tiny ones when the true cosine is
 * representable.
 */

/* Largest |x[i * stride]| over n elements; NaN if any element is NaN. */
static T
FN(max_abs)(const T *x, ptrdiff_t stride, ptrdiff_t n)
{
    T max = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = FABS(x[i * stride]);
        if (v > max || v != v) {
            max = v;
            if (v != v) {
                break;
            }
        }
    }
    return max;
}

/*
 * Clamp a rounded cosine into [-1, 1], so that arccos of it is defined; a
 * parallel pair can round to 1.0000000000000002. NaN passes through.
 */
static inline double
FN(clamp_cosine)(double c)
{
    return c > 1 ? 1 : (c < -1 ? -1 : c);
}

/*
 * u (n,) with stride su and v (n,) with stride sv. Returns
 * u.v / (|u| |v|). An inf or NaN entry in either vector gives NaN, as the
 * plain formula does, even when the other vector is zero. Otherwise a zero
 * vector or n == 0 gives 0.0.
 */
double
FN(mla_cosine_similarity)(const T *u, ptrdiff_t su, const T *v, ptrdiff_t sv,
                          ptrdiff_t n)
{
    double scale_u = FN(max_abs)(u, su, n);
    double scale_v = FN(max_abs)(v, sv, n);
    if (!isfinite(scale_u) || !isfinite(scale_v)) {
        return NAN;
    }
    if (scale_u == 0 || scale_v == 0) {
        return 0.0;
    }

    double dot = 0, uu = 0, vv = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        double a = u[i * su] / scale_u;
        double b = v[i * sv] / scale_v;
        dot += a * b;
        uu += a * a;
        vv += b * b;
    }
    return FN(clamp_cosine)(dot / (sqrt(uu) * sqrt(vv)));
}

/*
 * S (n, n) = cosine similarity of every pair of rows of X (n, d), both
 * C-contiguous. The rows are normalized once into scratch (zero rows stay
 * zero), then S = Xn Xn^T runs on the blocked GEMM, reading Xn^T through
 * strides.
 */
mla_status
FN(mla_cosine_similarity_matrix)(T *s, const T *x, ptrdiff_t n, ptrdiff_t d)
{
    if (n == 0) {
        return MLA_OK;
    }
    T *xn = mla_alloc((size_t)n * (size_t)d, sizeof(T));
    if (xn == NULL) {
        return MLA_ERR_NOMEM;
    }

    /* Normalize each row by its norm, computed with scaling in double. */
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *row = x + i * d;
        T *out = xn + i * d;
        double scale = FN(max_abs)(row, 1, d);
        double inv_norm = 0;
        if (scale != 0 && isfinite(scale)) {
            double ss = 0;
            for (ptrdiff_t j = 0; j < d; j++) {
                double a = row[j] / scale;
                ss += a * a;
            }
            inv_norm = 1 / sqrt(ss);
        }
        else if (scale != 0) {
            /* An inf or NaN entry: the row's similarities are NaN. */
            inv_norm = NAN;
        }
        for (ptrdiff_t j = 0; j < d; j++) {
            out[j] = inv_norm == 0 ? 0 : (T)(row[j] / scale * inv_norm);
        }
    }

    FN(mla_epilogue) ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};
    mla_status status =
        FN(mla_gemm)(s, n, 1, xn, d, 1, xn, 1, d, n, n, d, &ep);
    mla_free(xn);
    if (status != MLA_OK) {
        return status;
    }

    /* The same clamp as the vector version, in one pass over S. */
    for (ptrdiff_t i = 0; i < n * n; i++) {
        s[i] = (T)FN(clamp_cosine)(s[i]);
    }
    return MLA_OK;
}
