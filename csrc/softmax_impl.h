/*
 * softmax_impl.h: softmax along one axis and the cross-entropy loss,
 * instantiated per element type by softmax.c.
 */

/*
 * y = exp(z - max) / sum(exp(z - max)) along the middle axis of
 * z (outer, n, inner), C-contiguous; y has the same shape and may alias z.
 *
 * With inner == 1 each row is contiguous: one pass finds the max, one writes
 * the shifted exponentials and sums them in double, one scales. With
 * inner > 1 the same three passes run over whole (n, inner) slabs, keeping
 * inner running maxima and sums in scratch, so a softmax over a leading
 * axis reads memory in order and needs no transposed copy.
 *
 * NaN and infinities follow the NumPy formula: a row holding +inf or NaN,
 * or only -inf, becomes NaN.
 */
mla_status
FN(mla_softmax)(T *y, const T *z, ptrdiff_t outer, ptrdiff_t n,
                ptrdiff_t inner)
{
    if (outer == 0 || n == 0 || inner == 0) {
        return MLA_OK;
    }

    if (inner == 1) {
        for (ptrdiff_t r = 0; r < outer; r++) {
            const T *zr = z + r * n;
            T *yr = y + r * n;
            T max = zr[0];
            for (ptrdiff_t i = 1; i < n; i++) {
                /* A NaN max makes the whole row NaN, as np.max would. */
                if (zr[i] > max || zr[i] != zr[i]) {
                    max = zr[i];
                }
            }
            ACC sum = 0;
            for (ptrdiff_t i = 0; i < n; i++) {
                T e = EXP(zr[i] - max);
                yr[i] = e;
                sum += e;
            }
            T scale = (T)(1 / sum);
            for (ptrdiff_t i = 0; i < n; i++) {
                yr[i] *= scale;
            }
        }
        return MLA_OK;
    }

    T *max = mla_alloc((size_t)inner, sizeof(T));
    ACC *sum = mla_alloc((size_t)inner, sizeof(ACC));
    if (max == NULL || sum == NULL) {
        mla_free(max);
        mla_free(sum);
        return MLA_ERR_NOMEM;
    }
    for (ptrdiff_t r = 0; r < outer; r++) {
        const T *zr = z + r * n * inner;
        T *yr = y + r * n * inner;

        for (ptrdiff_t j = 0; j < inner; j++) {
            max[j] = zr[j];
            sum[j] = 0;
        }
        for (ptrdiff_t i = 1; i < n; i++) {
            for (ptrdiff_t j = 0; j < inner; j++) {
                T v = zr[i * inner + j];
                if (v > max[j] || v != v) {
                    max[j] = v;
                }
            }
        }

        for (ptrdiff_t i = 0; i < n; i++) {
            for (ptrdiff_t j = 0; j < inner; j++) {
                T e = EXP(zr[i * inner + j] - max[j]);
                yr[i * inner + j] = e;
                sum[j] += e;
            }
        }

        for (ptrdiff_t j = 0; j < inner; j++) {
            sum[j] = 1 / sum[j];
        }
        for (ptrdiff_t i = 0; i < n; i++) {
            for (ptrdiff_t j = 0; j < inner; j++) {
                yr[i * inner + j] *= (T)sum[j];
            }
        }
    }
    mla_free(max);
    mla_free(sum);
    return MLA_OK;
}

/*
 * Return -sum(y_true * log(clip(y_pred, 1e-15, 1 - 1e-15))) over n
 * elements of two C-contiguous arrays, summed in double. The clip passes NaN
 * through, as np.clip does.
 */
double
FN(mla_cross_entropy)(const T *y_pred, const T *y_true, ptrdiff_t n)
{
    const double lo = 1e-15, hi = 1 - 1e-15;
    double sum = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        double p = y_pred[i];
        p = p < lo ? lo : (p > hi ? hi : p);
        sum += (double)y_true[i] * log(p);
    }
    /* 0 - sum rather than -sum: an empty input gives 0.0, not -0.0. */
    return 0.0 - sum;
}
