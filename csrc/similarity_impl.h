/*
 * similarity_impl.h: cosine similarity of two vectors and of every pair of
 * rows, instantiated per element type by similarity.c.
 *
 * A zero vector has no direction; its similarity with anything is 0.0, the
 * convention of scikit-learn and PyTorch. Results are clamped to [-1, 1].
 * Sums of squares are taken after scaling by the vector's largest
 * magnitude, except where they need no scaling: matrix rows whose largest
 * magnitude is moderate (normalize_rows), and pairs of vectors whose
 * unscaled sums stay in a safe range (mla_cosine_similarity). So they
 * neither overflow for huge entries nor underflow for tiny ones when the
 * true cosine is representable.
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
 * Store in sums[0..2] u.v, u.u and v.v over n elements of u and v (strides
 * su and sv), each scaled by a power of two, which is exact. The
 * contiguous case runs in eight interleaved partial sums that the compiler
 * keeps in vector registers.
 */
static void
FN(cosine_sums)(double *sums, const T *u, ptrdiff_t su, double scale_u,
                const T *v, ptrdiff_t sv, double scale_v, ptrdiff_t n)
{
    double dot[8] = {0}, uu[8] = {0}, vv[8] = {0};
    ptrdiff_t i = 0;
    if (su == 1 && sv == 1) {
        for (; i + 8 <= n; i += 8) {
            for (int k = 0; k < 8; k++) {
                double a = (double)u[i + k] * scale_u;
                double b = (double)v[i + k] * scale_v;
                dot[k] += a * b;
                uu[k] += a * a;
                vv[k] += b * b;
            }
        }
    }
    for (; i < n; i++) {
        double a = (double)u[i * su] * scale_u;
        double b = (double)v[i * sv] * scale_v;
        dot[0] += a * b;
        uu[0] += a * a;
        vv[0] += b * b;
    }
    sums[0] = sums[1] = sums[2] = 0;
    for (int k = 0; k < 8; k++) {
        sums[0] += dot[k];
        sums[1] += uu[k];
        sums[2] += vv[k];
    }
}

/*
 * Unscaled sums need no second pass when u.u and v.v lie within
 * [COSINE_SAFE_MIN, COSINE_SAFE_MAX] and |u.v| is at least
 * COSINE_SAFE_MIN. The largest square then lies far from overflow, and
 * squares or products that underflow, each off by at most 2^-1075, are
 * too small to change the sums.
 */
#define COSINE_SAFE_MIN 0x1p-900
#define COSINE_SAFE_MAX 0x1p900

/*
 * Return 2^-e, where 2^(e-1) <= m < 2^e, for finite m > 0, but at most
 * 2^1000: 2^-e overflows for m below 2^-1024, and m 2^1000 is at least
 * 2^-74 anyway.
 */
static double
FN(inverse_power_of_two)(double m)
{
    int e;
    frexp(m, &e);
    return ldexp(1.0, e < -1000 ? 1000 : -e);
}

/*
 * u (n,) with stride su and v (n,) with stride sv. Returns
 * u.v / (|u| |v|). An inf or NaN entry in either vector gives NaN, as the
 * plain formula does, even when the other vector is zero. Otherwise a zero
 * vector or n == 0 gives 0.0.
 *
 * The sums are first taken unscaled, one pass over the data. Only when
 * they are outside the safe range (orthogonal vectors included), or not
 * finite, are the largest magnitudes found and the sums taken again,
 * scaled.
 */
double
FN(mla_cosine_similarity)(const T *u, ptrdiff_t su, const T *v, ptrdiff_t sv,
                          ptrdiff_t n)
{
    double sums[3];
    FN(cosine_sums)(sums, u, su, 1, v, sv, 1, n);
    int safe = fabs(sums[0]) >= COSINE_SAFE_MIN;
    for (int k = 1; k < 3; k++) {
        safe = safe && sums[k] >= COSINE_SAFE_MIN &&
               sums[k] <= COSINE_SAFE_MAX;
    }
    if (!safe) {
        double max_u = FN(max_abs)(u, su, n);
        double max_v = FN(max_abs)(v, sv, n);
        if (!isfinite(max_u) || !isfinite(max_v)) {
            return NAN;
        }
        if (max_u == 0 || max_v == 0) {
            return 0.0;
        }
        FN(cosine_sums)(sums, u, su, FN(inverse_power_of_two)(max_u), v, sv,
                        FN(inverse_power_of_two)(max_v), n);
    }
    return FN(clamp_cosine)(sums[0] / (sqrt(sums[1]) * sqrt(sums[2])));
}

/*
 * Return the sum of the squares of x (d,) in double and store in *max the
 * largest magnitude, skipping NaN (which makes the sum NaN). Both run in
 * eight interleaved partial results that the compiler can keep in vector
 * registers.
 */
static double
FN(sum_squares_max)(const T *x, ptrdiff_t d, double *max)
{
    double sums[8] = {0}, maxima[8] = {0};
    ptrdiff_t j = 0;
    for (; j + 8 <= d; j += 8) {
        for (int k = 0; k < 8; k++) {
            double v = (double)x[j + k], a = fabs(v);
            sums[k] += v * v;
            maxima[k] = a > maxima[k] ? a : maxima[k];
        }
    }
    double ss = ((sums[0] + sums[1]) + (sums[2] + sums[3])) +
                ((sums[4] + sums[5]) + (sums[6] + sums[7]));
    double m = 0;
    for (int k = 0; k < 8; k++) {
        m = maxima[k] > m ? maxima[k] : m;
    }
    for (; j < d; j++) {
        double v = (double)x[j], a = fabs(v);
        ss += v * v;
        m = a > m ? a : m;
    }
    *max = m;
    return ss;
}

/*
 * Store in out (n, d) the rows of x (n, d), both C-contiguous, divided by
 * their norms: zero rows stay zero and rows holding inf or NaN become NaN.
 * Norms are taken in double. When the row's largest magnitude lies in
 * [2^-400, 2^400], no square overflows and the squares that underflow are
 * below 2^-200 of the largest one, so the row is used as it is. Otherwise
 * it is divided by its largest magnitude first.
 */
static void
FN(normalize_rows)(T *out, const T *x, ptrdiff_t n, ptrdiff_t d)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *row = x + i * d;
        T *dst = out + i * d;

        double max;
        double ss = FN(sum_squares_max)(row, d, &max);
        if (max >= 0x1p-400 && max <= 0x1p400) {
            double inv_norm = 1 / sqrt(ss);
            for (ptrdiff_t j = 0; j < d; j++) {
                dst[j] = (T)(row[j] * inv_norm);
            }
            continue;
        }

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
            dst[j] = inv_norm == 0 ? 0 : (T)(row[j] / scale * inv_norm);
        }
    }
}

/*
 * S (n, n) = cosine similarity of every pair of rows of X (n, d), both
 * C-contiguous. The rows are normalized once into scratch, then the lower
 * triangle of Xn Xn^T comes from the blocked lower-triangle product
 * (syrk.c), about half the multiply-adds of the full product. One pass
 * over tiles clamps it and mirrors it into the upper triangle, so S is
 * exactly symmetric.
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
    FN(normalize_rows)(xn, x, n, d);
    mla_status status = FN(mla_syrk)(s, n, xn, d, 1, n, d);
    mla_free(xn);
    if (status != MLA_OK) {
        return status;
    }

    for (ptrdiff_t i0 = 0; i0 < n; i0 += MLA_MIRROR_TILE) {
        ptrdiff_t i1 = i0 + MLA_MIRROR_TILE < n ? i0 + MLA_MIRROR_TILE : n;
        for (ptrdiff_t j0 = 0; j0 <= i0; j0 += MLA_MIRROR_TILE) {
            for (ptrdiff_t i = i0; i < i1; i++) {
                ptrdiff_t j1 = j0 + MLA_MIRROR_TILE < i + 1
                                   ? j0 + MLA_MIRROR_TILE
                                   : i + 1;
                for (ptrdiff_t j = j0; j < j1; j++) {
                    T v = (T)FN(clamp_cosine)(s[i * n + j]);
                    s[i * n + j] = v;
                    s[j * n + i] = v;
                }
            }
        }
    }
    return MLA_OK;
}

/*
 * S (n, m) = cosine similarity of every row of X (n, d) with every row of
 * Y (m, d), all C-contiguous: both are normalized into scratch and
 * S = Xn Yn^T runs on the blocked GEMM, reading Yn^T through strides, then
 * S is clamped to [-1, 1].
 */
mla_status
FN(mla_cosine_similarity_cross)(T *s, const T *x, ptrdiff_t n, const T *y,
                                ptrdiff_t m, ptrdiff_t d)
{
    if (n == 0 || m == 0) {
        return MLA_OK;
    }
    T *xn = mla_alloc((size_t)(n + m) * (size_t)d, sizeof(T));
    if (xn == NULL) {
        return MLA_ERR_NOMEM;
    }
    T *yn = xn + n * d;
    FN(normalize_rows)(xn, x, n, d);
    FN(normalize_rows)(yn, y, m, d);

    FN(mla_epilogue) ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};
    mla_status status =
        FN(mla_gemm)(s, m, 1, xn, d, 1, yn, 1, d, n, m, d, &ep);
    mla_free(xn);
    if (status != MLA_OK) {
        return status;
    }
    for (ptrdiff_t i = 0; i < n * m; i++) {
        T v = s[i];
        s[i] = v > 1 ? 1 : (v < -1 ? -1 : v);
    }
    return MLA_OK;
}
