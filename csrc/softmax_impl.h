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
 * Max of the n > 0 contiguous elements of z (NaN when any element is NaN)
 * and the sum of exp(z[i] - max), accumulated in double.
 */
static void
FN(row_max_sum)(const T *z, ptrdiff_t n, T *max_out, double *sum_out)
{
    T max = z[0];
    for (ptrdiff_t i = 1; i < n; i++) {
        if (z[i] > max || z[i] != z[i]) {
            max = z[i];
        }
    }
    double sum = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        sum += EXP(z[i] - max);
    }
    *max_out = max;
    *sum_out = sum;
}

/*
 * y = (z - max) - log(sum(exp(z - max))) along the middle axis of
 * z (outer, n, inner), C-contiguous; y has the same shape and may alias z.
 * The layout and the passes are those of mla_softmax. The difference z - max
 * is taken before log(sum) is subtracted, so entries near the max keep
 * their small magnitude exactly, and logits of any size stay finite.
 *
 * NaN and infinities follow the NumPy formula: a row holding +inf or NaN,
 * or only -inf, becomes NaN, and a -inf entry of any other row gives -inf.
 */
mla_status
FN(mla_log_softmax)(T *y, const T *z, ptrdiff_t outer, ptrdiff_t n,
                    ptrdiff_t inner)
{
    if (outer == 0 || n == 0 || inner == 0) {
        return MLA_OK;
    }

    if (inner == 1) {
        for (ptrdiff_t r = 0; r < outer; r++) {
            const T *zr = z + r * n;
            T *yr = y + r * n;
            T max;
            double sum;
            FN(row_max_sum)(zr, n, &max, &sum);
            T log_sum = (T)log(sum);
            for (ptrdiff_t i = 0; i < n; i++) {
                yr[i] = (zr[i] - max) - log_sum;
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
                sum[j] += EXP(zr[i * inner + j] - max[j]);
            }
        }

        /* sum[j] becomes log(sum[j]), in the element type. */
        for (ptrdiff_t j = 0; j < inner; j++) {
            sum[j] = (T)log(sum[j]);
        }
        for (ptrdiff_t i = 0; i < n; i++) {
            for (ptrdiff_t j = 0; j < inner; j++) {
                yr[i * inner + j] =
                    (zr[i * inner + j] - max[j]) - (T)sum[j];
            }
        }
    }
    mla_free(max);
    mla_free(sum);
    return MLA_OK;
}

/*
 * Mean softmax cross-entropy of logits (batch, classes), C-contiguous,
 * against either class indices labels (batch,), each in [0, classes), or
 * probabilities probs (batch, classes); the other pointer is NULL. The
 * caller checks the indices. Stores the mean loss in *loss (0.0 when batch
 * is 0) and, when grad is not NULL, the gradient of that mean with respect
 * to the logits in grad (batch, classes), which must not alias the inputs.
 *
 * Per row, with m = max(z) and s = sum(exp(z - m)), the log-softmax is
 * z - m - log(s), so the row loss is (m - z[label]) + log(s) for an index
 * and sum_j p_j ((m - z_j) + log(s)) for probabilities. A term with
 * p_j == 0 counts as 0 even where z_j is -inf (0 log 0 = 0, as in
 * scipy.special.xlogy). The gradient of the row loss is
 * softmax(z) * sum(p) - p, which is softmax(z) - onehot for an index; both
 * are divided by batch for the mean. A row holding NaN or +inf, or only
 * -inf, gives a NaN loss and a NaN gradient row, as the NumPy formula does.
 */
mla_status
FN(mla_softmax_cross_entropy)(double *loss, T *grad, const T *logits,
                              const ptrdiff_t *labels, const T *probs,
                              ptrdiff_t batch, ptrdiff_t classes)
{
    double inv_batch = batch > 0 ? 1.0 / (double)batch : 0.0;
    double total = 0;

    for (ptrdiff_t r = 0; r < batch; r++) {
        const T *z = logits + r * classes;
        const T *p = probs == NULL ? NULL : probs + r * classes;
        T max;
        double sum;
        FN(row_max_sum)(z, classes, &max, &sum);
        double log_sum = log(sum);

        /* mass = sum(p), 1 for an index. */
        double mass = 1;
        if (labels != NULL) {
            total += ((double)max - (double)z[labels[r]]) + log_sum;
        }
        else {
            double cross = 0;
            mass = 0;
            for (ptrdiff_t j = 0; j < classes; j++) {
                if (p[j] != 0) {
                    mass += p[j];
                    cross += (double)p[j] * ((double)max - (double)z[j]);
                }
            }
            total += cross + mass * log_sum;
        }

        if (grad != NULL) {
            T *g = grad + r * classes;
            double scale = mass / sum * inv_batch;
            ptrdiff_t label = labels == NULL ? -1 : labels[r];
            for (ptrdiff_t j = 0; j < classes; j++) {
                double target = p != NULL ? (double)p[j] : (j == label);
                g[j] = (T)((double)EXP(z[j] - max) * scale -
                           target * inv_batch);
            }
        }
    }
    /* 0 + x rather than x: an empty batch gives 0.0, not -0.0. */
    *loss = 0.0 + total * inv_batch;
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
