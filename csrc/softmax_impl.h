/*
 * softmax_impl.h: softmax, log-softmax and softmax cross-entropy along one
 * axis, and the clipped cross-entropy loss, instantiated per element type
 * by softmax.c.
 *
 * Every row is read from memory in at most two passes. The first is the
 * online max-and-sum recurrence, taken a chunk of MLA_SOFTMAX_CHUNK
 * elements at a time: the chunk's max m_c, then s_c = sum(exp(z - m_c))
 * over the chunk while it is still in L1 (softmax also stores those
 * exponentials, and log-softmax the differences z - m_c). The loop over
 * the exponentials of chunk c also reads chunk c + 1 for its max, so that
 * the loads from memory overlap the arithmetic. With M the max of the row,
 * its sum is S = sum_c s_c exp(m_c - M). The second pass turns
 * the stored values into the result, from the cache for rows up to the
 * size of L2: softmax scales each chunk by exp(m_c - M) / S, and
 * log-softmax subtracts (M - m_c) and then log(S). exp is the vectorized
 * one of vecmath.h.
 *
 * NaN and infinities follow the NumPy formula: a row holding +inf or NaN,
 * or only -inf, gives NaN. A chunk of only -inf is shifted by 0 instead of
 * its max, so that its exponentials are 0 rather than NaN.
 */

typedef FN(mla_vector_kernels) FN(vector_kernels);

/*
 * Return the length of the chunk that starts at `start` in a row of n
 * elements: MLA_SOFTMAX_CHUNK, less for the last chunk, 0 past the end.
 */
static inline ptrdiff_t
FN(chunk_length)(ptrdiff_t n, ptrdiff_t start)
{
    ptrdiff_t rest = n - start;
    return rest < MLA_SOFTMAX_CHUNK ? rest : MLA_SOFTMAX_CHUNK;
}

/*
 * Pass 1 over the contiguous row z (n >= 1). For each chunk c, stores its
 * shift in shift[c] (its max, or 0 if that max is -inf) and
 * sum(exp(z - shift[c])) over it in sum[c]. Unless y is NULL, also stores
 * in y the exponentials, or with `shifted` the differences z - shift[c].
 * Returns the max of the row, NaN if it contains a NaN.
 */
static T
FN(row_first_pass)(const FN(vector_kernels) *kernels, T *y, int shifted,
                   const T *z, ptrdiff_t n, T *shift, double *sum)
{
    T row_max = -INFINITY;
    T chunk_max = kernels->max(z, FN(chunk_length)(n, 0));
    for (ptrdiff_t c = 0, start = 0; start < n; c++) {
        ptrdiff_t len = FN(chunk_length)(n, start);
        ptrdiff_t next = start + len;
        ptrdiff_t next_len = FN(chunk_length)(n, next);
        T next_max;
        shift[c] = chunk_max == -INFINITY ? 0 : chunk_max;
        sum[c] = kernels->exp_sum(y == NULL ? NULL : y + start, z + start,
                                  shift[c], len, shifted, z + next, next_len,
                                  &next_max);
        if (chunk_max > row_max || chunk_max != chunk_max) {
            row_max = chunk_max;
        }
        chunk_max = next_max;
        start = next;
    }
    return row_max;
}

/*
 * For a finite row max, stores factor[c] = exp(shift[c] - max) and returns
 * the row's sum(exp(z - max)) = sum_c sum[c] factor[c]. A chunk of only
 * -inf has sum[c] == 0 and gets factor 0.
 */
static double
FN(row_total)(const T *shift, const double *sum, ptrdiff_t chunks, T max,
              double *factor)
{
    double total = 0;
    for (ptrdiff_t c = 0; c < chunks; c++) {
        factor[c] = sum[c] == 0 ? 0 : exp((double)shift[c] - (double)max);
        total += sum[c] * factor[c];
    }
    return total;
}

static void
FN(fill_nan)(T *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        y[i] = NAN;
    }
}

/* Softmax (or log-softmax) of the contiguous row z (n >= 1) into y. */
static void
FN(softmax_row)(const FN(vector_kernels) *kernels, T *y, const T *z,
                ptrdiff_t n, int log_softmax, T *shift, double *sum,
                double *factor)
{
    ptrdiff_t chunks = (n + MLA_SOFTMAX_CHUNK - 1) / MLA_SOFTMAX_CHUNK;
    T max = FN(row_first_pass)(kernels, y, log_softmax, z, n, shift, sum);
    if (!isfinite(max)) {
        FN(fill_nan)(y, n);
        return;
    }
    double total = FN(row_total)(shift, sum, chunks, max, factor);

    /*
     * Pass 2: y contains exp(z - shift) or z - shift per chunk.
     * log-softmax subtracts (max - shift) then log(total), which leaves the
     * chunk of the max as (z - max) - log(total) exactly.
     */
    T log_total = (T)log(total);
    for (ptrdiff_t c = 0; c < chunks; c++) {
        ptrdiff_t start = c * MLA_SOFTMAX_CHUNK;
        ptrdiff_t len = FN(chunk_length)(n, start);
        if (log_softmax) {
            kernels->log_normalize(y + start, y + start, max - shift[c],
                                   log_total, len);
        }
        else {
            kernels->scale(y + start, y + start, (T)(factor[c] / total), len);
        }
    }
}

/*
 * Softmax (or log-softmax) down the n rows of the w columns z[i * ld + j],
 * j < w, into y with the same layout: the columns of one (n, inner) slab of
 * an axis that is not the last. Each row contributes a segment of w
 * contiguous elements, so memory is read in order. Chunks are `rows` rows
 * deep (rows * w <= MLA_SOFTMAX_CHUNK), and the scratch contains
 * chunk_shift and chunk_sum (chunks, w) and col_max, col_log_sum (w,) in T
 * and col_total (w,) in double.
 */
static void
FN(softmax_columns)(const FN(vector_kernels) *kernels, T *y, const T *z,
                    ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, ptrdiff_t rows,
                    int log_softmax, T *chunk_shift, T *chunk_sum,
                    T *col_max, T *col_log_sum, double *col_total)
{
    ptrdiff_t chunks = (n + rows - 1) / rows;
    for (ptrdiff_t j = 0; j < w; j++) {
        col_max[j] = -INFINITY;
    }

    /* Pass 1: per chunk, the max of each column, then the exp sums. */
    for (ptrdiff_t c = 0; c < chunks; c++) {
        ptrdiff_t first = c * rows;
        ptrdiff_t last = first + rows < n ? first + rows : n;
        T *shift = chunk_shift + c * w, *sum = chunk_sum + c * w;
        for (ptrdiff_t j = 0; j < w; j++) {
            shift[j] = z[first * ld + j];
            sum[j] = 0;
        }
        kernels->max_columns(shift, z + (first + 1) * ld, ld,
                             last - first - 1, w);
        kernels->max_columns(col_max, shift, 0, 1, w);
        for (ptrdiff_t j = 0; j < w; j++) {
            shift[j] = shift[j] == -INFINITY ? 0 : shift[j];
        }
        kernels->exp_sum_columns(log_softmax ? NULL : y + first * ld,
                                 z + first * ld, ld, last - first, shift, sum,
                                 w);
    }

    /*
     * chunk_shift becomes exp(shift - col_max), 0 for a chunk of only -inf
     * in that column, computed by the vectorized exp in one call.
     */
    for (ptrdiff_t c = 0; c < chunks; c++) {
        T *shift = chunk_shift + c * w;
        const T *sum = chunk_sum + c * w;
        for (ptrdiff_t j = 0; j < w; j++) {
            shift[j] = sum[j] == 0 ? -INFINITY : shift[j] - col_max[j];
        }
    }
    kernels->exp(chunk_shift, chunk_shift, chunks * w);
    for (ptrdiff_t j = 0; j < w; j++) {
        col_total[j] = 0;
    }
    for (ptrdiff_t c = 0; c < chunks; c++) {
        const T *factor = chunk_shift + c * w, *sum = chunk_sum + c * w;
        for (ptrdiff_t j = 0; j < w; j++) {
            col_total[j] += (double)sum[j] * (double)factor[j];
        }
    }

    /*
     * Pass 2. A column whose max is not finite becomes NaN. For softmax,
     * col_total becomes 1 / col_total and chunk_shift the factors.
     */
    if (log_softmax) {
        for (ptrdiff_t j = 0; j < w; j++) {
            if (isfinite(col_max[j])) {
                col_log_sum[j] = (T)log(col_total[j]);
            }
            else {
                col_max[j] = NAN;
                col_log_sum[j] = 0;
            }
        }
        kernels->log_normalize_columns(y, z, ld, n, col_max, col_log_sum, w);
        return;
    }
    for (ptrdiff_t j = 0; j < w; j++) {
        col_total[j] = isfinite(col_max[j]) ? 1 / col_total[j] : NAN;
    }
    for (ptrdiff_t c = 0; c < chunks; c++) {
        T *factor = chunk_shift + c * w;
        for (ptrdiff_t j = 0; j < w; j++) {
            factor[j] = (T)((double)factor[j] * col_total[j]);
        }
    }
    for (ptrdiff_t c = 0; c < chunks; c++) {
        ptrdiff_t first = c * rows;
        ptrdiff_t count = first + rows < n ? rows : n - first;
        kernels->scale_columns(y + first * ld, y + first * ld, ld, count,
                               chunk_shift + c * w, w);
    }
}

/*
 * Task `task` of the column blocks of z (outer, n, inner): block
 * task % blocks of slab task / blocks, with this thread's scratch
 * (2 * chunks * block + 2 * block elements of T) and totals (block).
 */
static void
FN(softmax_column_task)(const FN(vector_kernels) *kernels, T *y, const T *z,
                        ptrdiff_t n, ptrdiff_t inner, ptrdiff_t block,
                        ptrdiff_t rows, int log_softmax, ptrdiff_t task,
                        T *scratch, double *totals)
{
    ptrdiff_t blocks = (inner + block - 1) / block;
    ptrdiff_t chunks = (n + rows - 1) / rows;
    ptrdiff_t r = task / blocks, j0 = (task % blocks) * block;
    ptrdiff_t w = inner - j0 < block ? inner - j0 : block;
    ptrdiff_t offset = r * n * inner + j0;
    FN(softmax_columns)(kernels, y + offset, z + offset, n, inner, w, rows,
                        log_softmax, scratch, scratch + chunks * block,
                        scratch + 2 * chunks * block,
                        scratch + 2 * chunks * block + block, totals);
}

/* Threads for `elements` elements in `tasks` independent tasks. */
static int
FN(softmax_threads)(ptrdiff_t tasks, ptrdiff_t elements)
{
    ptrdiff_t by_work = elements / MLA_SOFTMAX_MIN_WORK;
    ptrdiff_t limit = by_work < tasks ? by_work : tasks;
    int threads = mla_get_num_threads();
    if (limit < threads) {
        threads = limit < 1 ? 1 : (int)limit;
    }
    threads = mla_team_threads(threads);
    if (threads > 1) {
        mla_note_parallel(threads);
    }
    return threads;
}

/*
 * The body of mla_softmax and mla_log_softmax. Rows (inner == 1) or
 * column blocks (inner > 1) are shared out among threads; each thread has
 * its own scratch, and every row is computed the same way whatever the
 * thread count. One thread runs without entering a parallel region, which
 * would cost about a microsecond even with a false if clause.
 */
static mla_status
FN(softmax_along_axis)(T *y, const T *z, ptrdiff_t outer, ptrdiff_t n,
                       ptrdiff_t inner, int log_softmax)
{
    if (outer == 0 || n == 0 || inner == 0) {
        return MLA_OK;
    }
    const FN(vector_kernels) *kernels = FN(mla_select_vector_kernels)();

    if (inner == 1) {
        ptrdiff_t chunks = (n + MLA_SOFTMAX_CHUNK - 1) / MLA_SOFTMAX_CHUNK;
        int threads = FN(softmax_threads)(outer, outer * n);
        T *shift = mla_alloc((size_t)threads * (size_t)chunks, sizeof(T));
        double *sums =
            mla_alloc(2 * (size_t)threads * (size_t)chunks, sizeof(double));
        if (shift == NULL || sums == NULL) {
            mla_free(shift);
            mla_free(sums);
            return MLA_ERR_NOMEM;
        }
        if (threads == 1) {
            for (ptrdiff_t r = 0; r < outer; r++) {
                FN(softmax_row)(kernels, y + r * n, z + r * n, n, log_softmax,
                                shift, sums, sums + chunks);
            }
        }
        else {
#pragma omp parallel for num_threads(threads) schedule(static)
            for (ptrdiff_t r = 0; r < outer; r++) {
                int t = MLA_THREAD_ID();
                double *sum = sums + 2 * (ptrdiff_t)t * chunks;
                FN(softmax_row)(kernels, y + r * n, z + r * n, n, log_softmax,
                                shift + (ptrdiff_t)t * chunks, sum,
                                sum + chunks);
            }
        }
        mla_free(shift);
        mla_free(sums);
        return MLA_OK;
    }

    /* Column blocks of up to MLA_SOFTMAX_COLUMNS, each its own task. */
    ptrdiff_t block = inner < MLA_SOFTMAX_COLUMNS ? inner : MLA_SOFTMAX_COLUMNS;
    ptrdiff_t blocks = (inner + block - 1) / block;
    ptrdiff_t rows = MLA_SOFTMAX_CHUNK / block;
    rows = rows < MLA_SOFTMAX_MAX_ROWS ? rows : MLA_SOFTMAX_MAX_ROWS;
    ptrdiff_t chunks = (n + rows - 1) / rows;
    ptrdiff_t per_thread = 2 * chunks * block + 2 * block;
    int threads = FN(softmax_threads)(outer * blocks, outer * n * inner);
    T *scratch =
        mla_alloc((size_t)threads * (size_t)per_thread, sizeof(T));
    double *totals = mla_alloc((size_t)threads * (size_t)block, sizeof(double));
    if (scratch == NULL || totals == NULL) {
        mla_free(scratch);
        mla_free(totals);
        return MLA_ERR_NOMEM;
    }
    if (threads == 1) {
        for (ptrdiff_t task = 0; task < outer * blocks; task++) {
            FN(softmax_column_task)(kernels, y, z, n, inner, block, rows,
                                    log_softmax, task, scratch, totals);
        }
    }
    else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (ptrdiff_t task = 0; task < outer * blocks; task++) {
            int t = MLA_THREAD_ID();
            FN(softmax_column_task)(kernels, y, z, n, inner, block, rows,
                                    log_softmax, task,
                                    scratch + (ptrdiff_t)t * per_thread,
                                    totals + (ptrdiff_t)t * block);
        }
    }
    mla_free(scratch);
    mla_free(totals);
    return MLA_OK;
}

/*
 * y = exp(z - max) / sum(exp(z - max)) along the middle axis of
 * z (outer, n, inner), C-contiguous; y has the same shape and may alias z.
 * With inner > 1 the axis is not the last one: its columns are processed
 * in blocks of contiguous row segments, with no transposed copy.
 */
mla_status
FN(mla_softmax)(T *y, const T *z, ptrdiff_t outer, ptrdiff_t n,
                ptrdiff_t inner)
{
    return FN(softmax_along_axis)(y, z, outer, n, inner, 0);
}

/*
 * y = (z - max) - log(sum(exp(z - max))) along the middle axis of
 * z (outer, n, inner), C-contiguous; y has the same shape and may alias z.
 * The difference z - max is taken before log(sum) is subtracted, so entries
 * near the max keep their small magnitude exactly, and logits of any size
 * stay finite. A -inf entry of a row with a finite max gives -inf.
 */
mla_status
FN(mla_log_softmax)(T *y, const T *z, ptrdiff_t outer, ptrdiff_t n,
                    ptrdiff_t inner)
{
    return FN(softmax_along_axis)(y, z, outer, n, inner, 1);
}

/*
 * Loss of one row of softmax_cross_entropy (see there), and its gradient
 * row in g scaled by inv_batch unless g is NULL. label is the class index,
 * or -1 when p (classes,) contains probabilities.
 */
static double
FN(cross_entropy_row)(const FN(vector_kernels) *kernels, T *g, const T *z,
                      ptrdiff_t label, const T *p, ptrdiff_t classes,
                      double inv_batch, T *shift, double *sum, double *factor)
{
    ptrdiff_t chunks = (classes + MLA_SOFTMAX_CHUNK - 1) / MLA_SOFTMAX_CHUNK;
    T max = FN(row_first_pass)(kernels, g, 0, z, classes, shift, sum);
    if (!isfinite(max)) {
        if (g != NULL) {
            FN(fill_nan)(g, classes);
        }
        return NAN;
    }
    double total = FN(row_total)(shift, sum, chunks, max, factor);

    /*
     * mass = sum(p) and cross = sum(p (max - z)) over p != 0, which are 1
     * and max - z[label] for an index. For probabilities, cross is gathered
     * per chunk as sum(p (shift - z)) + (max - shift) sum(p).
     */
    double mass = 1, cross = 0;
    if (label >= 0) {
        cross = (double)max - (double)z[label];
    }
    else {
        mass = 0;
        for (ptrdiff_t c = 0, start = 0; start < classes; c++) {
            ptrdiff_t len = FN(chunk_length)(classes, start);
            double chunk_mass = 0;
            cross += kernels->weighted_gap(p + start, z + start, shift[c],
                                           len, &chunk_mass);
            cross += ((double)max - (double)shift[c]) * chunk_mass;
            mass += chunk_mass;
            start += len;
        }
    }

    if (g != NULL) {
        for (ptrdiff_t c = 0, start = 0; start < classes; c++) {
            ptrdiff_t len = FN(chunk_length)(classes, start);
            double scale = factor[c] * mass / total * inv_batch;
            if (label < 0) {
                kernels->scale_subtract(g + start, g + start, (T)scale,
                                        p + start, (T)inv_batch, len);
            }
            else {
                kernels->scale(g + start, g + start, (T)scale, len);
            }
            start += len;
        }
        if (label >= 0) {
            /* softmax - 1 at the label, from one rounding in double. */
            ptrdiff_t c = label / MLA_SOFTMAX_CHUNK;
            double p_label = exp((double)z[label] - (double)shift[c]) *
                             factor[c] / total;
            g[label] = (T)((p_label - 1) * inv_batch);
        }
    }
    double log_total = log(total);
    if (label < 0 && !(isfinite(cross) && isfinite(mass))) {
        /*
         * An infinite probability makes the split form inf * 0 where
         * z_j == max, which is NaN, while its term p_j ((M - z_j) + log S)
         * is infinite. Sum the terms one by one instead.
         */
        double direct = 0;
        for (ptrdiff_t j = 0; j < classes; j++) {
            if (p[j] != 0) {
                direct += (double)p[j] *
                          (((double)max - (double)z[j]) + log_total);
            }
        }
        return direct;
    }
    return cross + mass * log_total;
}

/*
 * Mean softmax cross-entropy of logits (batch, classes), C-contiguous,
 * against either class indices labels (batch,), each in [0, classes), or
 * probabilities probs (batch, classes). The other pointer is NULL, and the
 * caller checks the indices. Stores the mean loss in *loss (0.0 when batch
 * is 0) and, when grad is not NULL, the gradient of that mean with respect
 * to the logits in grad (batch, classes), which must not alias the inputs.
 *
 * Per row, with M = max(z) and S = sum(exp(z - M)), the log-softmax is
 * z - M - log(S), so the row loss is (M - z[label]) + log(S) for an index
 * and sum_j p_j ((M - z_j) + log(S)) for probabilities. A term with
 * p_j == 0 counts as 0 even where z_j is -inf (0 log 0 = 0, as in
 * scipy.special.xlogy). The gradient of the row loss is
 * softmax(z) * sum(p) - p, which is softmax(z) - onehot for an index, and
 * the mean divides it by batch. The first pass over a row stores the
 * exponentials in grad, and the second scales them into the gradient. A
 * row containing NaN or +inf, or only -inf, gives a NaN loss and a NaN
 * gradient row, as the NumPy formula does. Row losses are summed in double
 * in row order, so the result does not depend on the thread count.
 */
mla_status
FN(mla_softmax_cross_entropy)(double *loss, T *grad, const T *logits,
                              const ptrdiff_t *labels, const T *probs,
                              ptrdiff_t batch, ptrdiff_t classes)
{
    *loss = 0.0;
    if (batch == 0) {
        return MLA_OK;
    }
    const FN(vector_kernels) *kernels = FN(mla_select_vector_kernels)();
    double inv_batch = 1.0 / (double)batch;
    ptrdiff_t chunks = (classes + MLA_SOFTMAX_CHUNK - 1) / MLA_SOFTMAX_CHUNK;
    int threads = FN(softmax_threads)(batch, batch * classes);

    T *shift = mla_alloc((size_t)threads * (size_t)chunks, sizeof(T));
    double *sums = mla_alloc(2 * (size_t)threads * (size_t)chunks +
                                 (size_t)batch,
                             sizeof(double));
    if (shift == NULL || sums == NULL) {
        mla_free(shift);
        mla_free(sums);
        return MLA_ERR_NOMEM;
    }
    double *row_loss = sums + 2 * (ptrdiff_t)threads * chunks;

    if (threads == 1) {
        for (ptrdiff_t r = 0; r < batch; r++) {
            row_loss[r] = FN(cross_entropy_row)(
                kernels, grad == NULL ? NULL : grad + r * classes,
                logits + r * classes, labels == NULL ? -1 : labels[r],
                probs == NULL ? NULL : probs + r * classes, classes,
                inv_batch, shift, sums, sums + chunks);
        }
    }
    else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (ptrdiff_t r = 0; r < batch; r++) {
            int t = MLA_THREAD_ID();
            double *sum = sums + 2 * (ptrdiff_t)t * chunks;
            row_loss[r] = FN(cross_entropy_row)(
                kernels, grad == NULL ? NULL : grad + r * classes,
                logits + r * classes, labels == NULL ? -1 : labels[r],
                probs == NULL ? NULL : probs + r * classes, classes,
                inv_batch, shift + (ptrdiff_t)t * chunks, sum, sum + chunks);
        }
    }

    double total = 0;
    for (ptrdiff_t r = 0; r < batch; r++) {
        total += row_loss[r];
    }
    /* 0 + x rather than x: a loss of -0.0 reads as 0.0. */
    *loss = 0.0 + total * inv_batch;
    mla_free(shift);
    mla_free(sums);
    return MLA_OK;
}

/* Tasks of mla_cross_entropy, each a run of consecutive chunks. */
#define CROSS_ENTROPY_TASKS 64

/*
 * Return the sum of y_true * log(clip(y_pred)) over the chunks of task
 * `task` of `tasks`.
 */
static double
FN(cross_entropy_task)(const FN(vector_kernels) *kernels, const T *y_pred,
                       const T *y_true, ptrdiff_t n, ptrdiff_t task,
                       ptrdiff_t tasks)
{
    const T lo = (T)1e-15, hi = (T)(1 - 1e-15);
    ptrdiff_t chunks = (n + MLA_SOFTMAX_CHUNK - 1) / MLA_SOFTMAX_CHUNK;
    ptrdiff_t first = task * chunks / tasks;
    ptrdiff_t last = (task + 1) * chunks / tasks;
    double sum = 0;
    for (ptrdiff_t c = first; c < last; c++) {
        ptrdiff_t start = c * MLA_SOFTMAX_CHUNK;
        ptrdiff_t len = FN(chunk_length)(n, start);
        sum += kernels->clipped_log_dot(y_pred + start, y_true + start, lo, hi,
                                        len);
    }
    return sum;
}

/*
 * Return -sum(y_true * log(clip(y_pred, 1e-15, 1 - 1e-15))) over n
 * elements of two C-contiguous arrays, with the bounds rounded to T as
 * NumPy rounds them for np.clip (1 - 1e-15 becomes 1 in float32). The
 * clip passes NaN through, as np.clip does. The tasks depend on n alone
 * and their sums are added in order, so the result does not depend on
 * the thread count.
 */
double
FN(mla_cross_entropy)(const T *y_pred, const T *y_true, ptrdiff_t n)
{
    const FN(vector_kernels) *kernels = FN(mla_select_vector_kernels)();
    ptrdiff_t chunks = (n + MLA_SOFTMAX_CHUNK - 1) / MLA_SOFTMAX_CHUNK;
    ptrdiff_t tasks = chunks < CROSS_ENTROPY_TASKS ? chunks
                                                   : CROSS_ENTROPY_TASKS;
    double task_sum[CROSS_ENTROPY_TASKS];
    int threads = FN(softmax_threads)(tasks, n);
    if (threads == 1) {
        for (ptrdiff_t t = 0; t < tasks; t++) {
            task_sum[t] = FN(cross_entropy_task)(kernels, y_pred, y_true, n, t,
                                                 tasks);
        }
    }
    else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (ptrdiff_t t = 0; t < tasks; t++) {
            task_sum[t] = FN(cross_entropy_task)(kernels, y_pred, y_true, n, t,
                                                 tasks);
        }
    }
    double sum = 0;
    for (ptrdiff_t t = 0; t < tasks; t++) {
        sum += task_sum[t];
    }
    /* 0 - sum rather than -sum: an empty input gives 0.0, not -0.0. */
    return 0.0 - sum;
}
