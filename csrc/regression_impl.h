/*
 * regression_impl.h: least squares with a bias column, through the
 * regularized normal equations or Householder QR, instantiated per element
 * type by regression.c.
 *
 * Both element types compute in double: the Gram matrix squares the
 * condition number of the data, and float32 would leave few correct
 * digits. The data is read once, in slabs of a few hundred rows (see
 * regression.c), each turned into rows of the scaled augmented design
 * A = [1, X D, y / s_y] in double, where D = diag(1 / s_j) divides each
 * feature column by a power of two near its largest magnitude and s_y does
 * the same for each target. Scaling keeps the products from overflowing
 * for data near 1e160 and from underflowing for tiny data, and leaves the
 * scaled system well balanced. The rows are split into a number of tasks
 * that depends on the shape only. Tasks run on OpenMP threads and their
 * results are combined in task order, so the weights do not depend on the
 * thread count.
 */

/*
 * Store in maxima (threads, p + t) the largest magnitude of each column of
 * x (n, p) and then y (n, t) seen by each thread, NaN sticking (NaN > max
 * is false). scales_from_maxima combines the threads.
 */
static void
FN(column_maxima_block)(double *max, const T *x, const T *y, ptrdiff_t n,
                        ptrdiff_t p, ptrdiff_t t, ptrdiff_t b)
{
    ptrdiff_t last = (b + 1) * MLA_REGRESSION_SLAB;
    last = last < n ? last : n;
    for (ptrdiff_t r = b * MLA_REGRESSION_SLAB; r < last; r++) {
        for (ptrdiff_t j = 0; j < p; j++) {
            double v = fabs((double)x[r * p + j]);
            max[j] = v > max[j] || v != v ? v : max[j];
        }
        for (ptrdiff_t c = 0; c < t; c++) {
            double v = fabs((double)y[r * t + c]);
            max[p + c] = v > max[p + c] || v != v ? v : max[p + c];
        }
    }
}

static void
FN(column_maxima)(double *maxima, const T *x, const T *y, ptrdiff_t n,
                  ptrdiff_t p, ptrdiff_t t, int threads)
{
    ptrdiff_t width = p + t;
    ptrdiff_t blocks = (n + MLA_REGRESSION_SLAB - 1) / MLA_REGRESSION_SLAB;
    for (ptrdiff_t i = 0; i < threads * width; i++) {
        maxima[i] = 0;
    }
    if (threads == 1) {
        for (ptrdiff_t b = 0; b < blocks; b++) {
            FN(column_maxima_block)(maxima, x, y, n, p, t, b);
        }
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (ptrdiff_t b = 0; b < blocks; b++) {
        FN(column_maxima_block)(maxima + (ptrdiff_t)MLA_THREAD_ID() * width,
                                x, y, n, p, t, b);
    }
}

/*
 * Store in scale[j] the power of two 2^e with 2^(e-1) <= m_j < 2^e, where
 * m_j is the largest of maxima[k * (p + t) + j] over k < count: the
 * largest magnitude in column j of x (n, p), for j < p, or of y (n, t)
 * after them. A zero column gets 1 and a column with a NaN gets NaN.
 * Feature maxima are raised to floor_scale first.
 */
static void
FN(scales_from_maxima)(double *scale, const double *maxima, int count,
                       ptrdiff_t p, ptrdiff_t t, double floor_scale)
{
    ptrdiff_t width = p + t;
    for (ptrdiff_t j = 0; j < width; j++) {
        double max = maxima[j];
        for (int k = 1; k < count; k++) {
            double v = maxima[k * width + j];
            max = v > max || v != v ? v : max;
        }
        if (j < p && max < floor_scale) {
            max = floor_scale;
        }
        if (max == 0) {
            scale[j] = 1;
        }
        else if (!isfinite(max)) {
            scale[j] = max != max ? NAN : INFINITY;
        }
        else {
            int e;
            frexp(max, &e);
            scale[j] = ldexp(1.0, e);
        }
    }
}

/*
 * Whether every scale lies in [2^-400, 2^400]. The unscaled Gram matrix of
 * such data neither overflows nor loses a product that matters to
 * underflow, and scaling it afterwards by powers of two is exact.
 */
static int
FN(scales_moderate)(const double *scale, ptrdiff_t width)
{
    for (ptrdiff_t j = 0; j < width; j++) {
        if (!(scale[j] >= 0x1p-400 && scale[j] <= 0x1p400)) {
            return 0;
        }
    }
    return 1;
}

/*
 * Fill buf (rows, ld) with the rows r0 .. r0 + rows - 1 of the unscaled
 * design [1, x, y], ncols = 1 + p + t <= ld columns followed by zeros,
 * and raise max (p + t) to the largest magnitude of each column. NaN
 * compares false and is skipped, so mla_linear_regression finds it through
 * the diagonal of the Gram matrix.
 * Inlined into a portable, an AVX2 and an AVX-512 copy (fill_unscaled).
 */
static inline __attribute__((always_inline)) void
FN(fill_unscaled_body)(double *buf, ptrdiff_t ld, const T *x, const T *y,
                       ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t p, ptrdiff_t t,
                       double *max)
{
    ptrdiff_t ncols = 1 + p + t;
    for (ptrdiff_t r = 0; r < rows; r++) {
        double *row = buf + r * ld;
        const T *xr = x + (r0 + r) * p;
        const T *yr = y + (r0 + r) * t;
        row[0] = 1;
        for (ptrdiff_t j = 0; j < p; j++) {
            double v = (double)xr[j], a = fabs(v);
            row[1 + j] = v;
            max[j] = a > max[j] ? a : max[j];
        }
        for (ptrdiff_t c = 0; c < t; c++) {
            double v = (double)yr[c], a = fabs(v);
            row[1 + p + c] = v;
            max[p + c] = a > max[p + c] ? a : max[p + c];
        }
        for (ptrdiff_t j = ncols; j < ld; j++) {
            row[j] = 0;
        }
    }
}

static void
FN(fill_unscaled_generic)(double *buf, ptrdiff_t ld, const T *x, const T *y,
                          ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t p,
                          ptrdiff_t t, double *max)
{
    FN(fill_unscaled_body)(buf, ld, x, y, r0, rows, p, t, max);
}

#ifdef MLA_HAVE_X86_KERNELS
static __attribute__((target("avx2"))) void
FN(fill_unscaled_avx2)(double *buf, ptrdiff_t ld, const T *x, const T *y,
                       ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t p, ptrdiff_t t,
                       double *max)
{
    FN(fill_unscaled_body)(buf, ld, x, y, r0, rows, p, t, max);
}
static __attribute__((target("avx512f,avx512vl,avx2,fma"))) void
FN(fill_unscaled_avx512)(double *buf, ptrdiff_t ld, const T *x, const T *y,
                         ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t p,
                         ptrdiff_t t, double *max)
{
    FN(fill_unscaled_body)(buf, ld, x, y, r0, rows, p, t, max);
}
#endif

/*
 * fill_unscaled_body in the widest vectors of the level chosen at import.
 * The copies only convert, copy and compare, so they store the same
 * values. On an Intel Xeon core the AVX-512 copy took 100000 x 50
 * float64 data from 7.4 to 6.8 ms. An earlier trial on AMD Zen 4 showed
 * no gain.
 */
static void
FN(fill_unscaled)(double *buf, ptrdiff_t ld, const T *x, const T *y,
                  ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t p, ptrdiff_t t,
                  double *max)
{
#ifdef MLA_HAVE_X86_KERNELS
    if (mla_get_level() >= MLA_LEVEL_AVX512) {
        FN(fill_unscaled_avx512)(buf, ld, x, y, r0, rows, p, t, max);
        return;
    }
    if (mla_get_level() >= MLA_LEVEL_AVX2) {
        FN(fill_unscaled_avx2)(buf, ld, x, y, r0, rows, p, t, max);
        return;
    }
#endif
    FN(fill_unscaled_generic)(buf, ld, x, y, r0, rows, p, t, max);
}

/*
 * Fill buf (rows, ld) with the rows r0 .. r0 + rows - 1 of the scaled
 * augmented design [1, x / scale, y / scale], ncols = 1 + p + t <= ld
 * columns followed by ld - ncols zeros. inverse
 * contains 1 / scale when every such reciprocal is finite, else NULL, and
 * the slower division runs. With scale NULL the rows are [1, x, y]
 * unscaled and max (p + t) gathers the largest finite magnitude of each
 * column or infinity (fill_unscaled).
 */
static void
FN(fill_design)(double *buf, ptrdiff_t ld, const T *x, const T *y,
                ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t p, ptrdiff_t t,
                const double *scale, const double *inverse, double *max)
{
    ptrdiff_t ncols = 1 + p + t;
    if (scale == NULL) {
        FN(fill_unscaled)(buf, ld, x, y, r0, rows, p, t, max);
        return;
    }
    for (ptrdiff_t r = 0; r < rows; r++) {
        double *row = buf + r * ld;
        const T *xr = x + (r0 + r) * p;
        const T *yr = y + (r0 + r) * t;
        row[0] = 1;
        if (inverse != NULL) {
            for (ptrdiff_t j = 0; j < p; j++) {
                row[1 + j] = (double)xr[j] * inverse[j];
            }
            for (ptrdiff_t c = 0; c < t; c++) {
                row[1 + p + c] = (double)yr[c] * inverse[p + c];
            }
        }
        else {
            for (ptrdiff_t j = 0; j < p; j++) {
                row[1 + j] = (double)xr[j] / scale[j];
            }
            for (ptrdiff_t c = 0; c < t; c++) {
                row[1 + p + c] = (double)yr[c] / scale[p + c];
            }
        }
        for (ptrdiff_t j = ncols; j < ld; j++) {
            row[j] = 0;
        }
    }
}

/*
 * Number of row tasks for n rows when each task keeps a results buffer
 * of `buffer` doubles: about one per MLA_REGRESSION_TASK_ROWS rows, at
 * most MLA_REGRESSION_MAX_TASKS, and fewer when the buffers would exceed
 * MLA_REGRESSION_TASK_MEMORY doubles together.
 */
static ptrdiff_t
FN(regression_tasks)(ptrdiff_t n, ptrdiff_t buffer)
{
    ptrdiff_t tasks = (n + MLA_REGRESSION_TASK_ROWS - 1) /
                      MLA_REGRESSION_TASK_ROWS;
    ptrdiff_t by_memory = MLA_REGRESSION_TASK_MEMORY / buffer;
    tasks = tasks < by_memory ? tasks : by_memory;
    tasks = tasks < MLA_REGRESSION_MAX_TASKS ? tasks : MLA_REGRESSION_MAX_TASKS;
    return tasks < 1 ? 1 : tasks;
}

/* Threads for `tasks` tasks over n rows of ncols columns. */
static int
FN(regression_threads)(ptrdiff_t tasks, ptrdiff_t n, ptrdiff_t ncols)
{
    int threads = mla_get_num_threads();
    if ((double)n * (double)ncols * (double)ncols < 4.0e6) {
        return 1;
    }
    threads = mla_team_threads(threads < tasks ? threads : (int)tasks);
    if (threads > 1) {
        mla_note_parallel(threads);
    }
    return threads;
}

/* sqrt(lambda) 2^-30: the least scale of a feature column (see below). */
static double
FN(scale_floor)(double regularization)
{
    /*
     * A column far smaller than sqrt(lambda) is nearly all penalty, and
     * the floor keeps lambda / s^2 below 2^60. The scaled weight then
     * stays in the normal range, and only data terms below 2^-60 lambda,
     * negligible beside the penalty, can underflow.
     */
    return sqrt(regularization) * 0x1p-30;
}

/*
 * Store in inverse (p + t) the reciprocals of scale and return inverse, or
 * NULL when one of them is not finite.
 */
static const double *
FN(scale_inverses)(double *inverse, const double *scale, ptrdiff_t width)
{
    int finite = 1;
    for (ptrdiff_t j = 0; j < width; j++) {
        inverse[j] = 1 / scale[j];
        finite &= isfinite(inverse[j]) != 0;
    }
    return finite ? inverse : NULL;
}

/* w (dim, t) = v (dim, t) with row i + 1 divided by scale[i], times s_y. */
static void
FN(unscale_weights)(T *w, const double *v, const double *scale, ptrdiff_t p,
                    ptrdiff_t t)
{
    for (ptrdiff_t i = 0; i <= p; i++) {
        for (ptrdiff_t c = 0; c < t; c++) {
            double value = v[i * t + c] * scale[p + c];
            w[i * t + c] = (T)(i == 0 ? value : value / scale[i - 1]);
        }
    }
}

/*
 * One task of gram_tasks: sum A^T A over `count` rows from row `first`
 * (fewer at the end of the data), slab by slab in order, into the lower
 * triangle of sum (ld, ld). With tiles set, ld is tiles->ld and the slabs
 * of MLA_GRAM_TILE_SLAB rows go through gram_tiles_add (regression.c).
 * Otherwise ld is ncols, and each slab of MLA_REGRESSION_SLAB rows goes
 * through the blocked lower-triangle product (syrk.c) on inner_threads
 * into a partial sum, then into sum. buf is this thread's scratch: the
 * slab, and without tiles the partial sum and the product's workspace.
 * max as fill_design.
 */
static void
FN(gram_task)(double *sum, double *buf, const gram_tiles *tiles,
              int inner_threads, const T *x, const T *y, ptrdiff_t first,
              ptrdiff_t count, ptrdiff_t n, ptrdiff_t p, ptrdiff_t t,
              const double *scale, const double *inverse, double *max)
{
    ptrdiff_t ncols = 1 + p + t;
    ptrdiff_t ld = tiles != NULL ? tiles->ld : ncols;
    ptrdiff_t slab = tiles != NULL ? MLA_GRAM_TILE_SLAB : MLA_REGRESSION_SLAB;
    double *partial = buf + slab * ld;
    double *syrk_work = partial + ld * ld;
    ptrdiff_t last = first + count < n ? first + count : n;

    for (ptrdiff_t i = 0; i < ld * ld; i++) {
        sum[i] = 0;
    }
    for (ptrdiff_t r0 = first; r0 < last; r0 += slab) {
        ptrdiff_t rows = last - r0 < slab ? last - r0 : slab;
        FN(fill_design)(buf, ld, x, y, r0, rows, p, t, scale, inverse, max);
        if (tiles != NULL) {
            /* The next slab's rows of x; y is smaller and left to the CPU. */
            ptrdiff_t next = last - r0 - rows < slab ? last - r0 - rows : slab;
            gram_tiles_add(sum, buf, rows, tiles,
                           (const char *)(x + (r0 + rows) * p),
                           next * p * (ptrdiff_t)sizeof(T));
            continue;
        }
        /* A^T A: the slab transposed is (ncols, rows), by strides. */
        mla_syrk_run_f64(partial, ncols, buf, 1, ncols, ncols, rows,
                         syrk_work, inner_threads);
        for (ptrdiff_t i = 0; i < ncols; i++) {
            for (ptrdiff_t j = 0; j <= i; j++) {
                sum[i * ncols + j] += partial[i * ncols + j];
            }
        }
    }
}

/*
 * Sum A^T A over the rows of the augmented design A (see fill_design), by
 * slabs, into the lower triangle of total (ld, ld), ld as gram_task. Rows
 * are split into `tasks` tasks. Each task sums its slabs in order into
 * its own square of task_sums, and the tasks are added in task order into
 * total. scale and inverse as fill_design; with scale NULL the design is
 * unscaled and maxima (threads, p + t) gathers each thread's column
 * maxima. Per thread, scratch has room for per_thread doubles (see
 * gram_task).
 */
static void
FN(gram_tasks)(double *total, double *task_sums, ptrdiff_t tasks,
               double *scratch, size_t per_thread, int threads,
               const gram_tiles *tiles, int inner_threads, const T *x,
               const T *y, ptrdiff_t n, ptrdiff_t p, ptrdiff_t t,
               const double *scale, const double *inverse, double *maxima)
{
    ptrdiff_t ld = tiles != NULL ? tiles->ld : 1 + p + t, square = ld * ld;
    ptrdiff_t task_rows = (n + tasks - 1) / tasks;

    if (maxima != NULL) {
        for (ptrdiff_t i = 0; i < threads * (p + t); i++) {
            maxima[i] = 0;
        }
    }
    if (threads == 1) {
        for (ptrdiff_t task = 0; task < tasks; task++) {
            FN(gram_task)(task_sums + task * square, scratch, tiles,
                          inner_threads, x, y, task * task_rows, task_rows, n,
                          p, t, scale, inverse, maxima);
        }
    }
    else {
#pragma omp parallel for num_threads(threads) schedule(dynamic)
        for (ptrdiff_t task = 0; task < tasks; task++) {
            int id = MLA_THREAD_ID();
            FN(gram_task)(task_sums + task * square,
                          scratch + (size_t)id * per_thread, tiles,
                          inner_threads, x, y, task * task_rows, task_rows, n,
                          p, t, scale, inverse,
                          maxima == NULL ? NULL : maxima + id * (p + t));
        }
    }

    for (ptrdiff_t i = 0; i < square; i++) {
        total[i] = task_sums[i];
    }
    for (ptrdiff_t task = 1; task < tasks; task++) {
        for (ptrdiff_t i = 0; i < square; i++) {
            total[i] += task_sums[task * square + i];
        }
    }
}

/*
 * Solve (Xb^T Xb + lambda I) w = Xb^T y, where Xb = [1, X] prepends a
 * column of ones to X (n, p); y is (n, t) and w is (p + 1, t), all
 * C-contiguous. Non-finite data gives NaN weights, the way LAPACK's
 * solvers propagate it.
 *
 * With the scaled design A = [Xb D, y / s_y] (D = diag(1, 1 / s_1, ...)),
 * one lower-triangle product A^T A per slab (gram_tiles_add, or syrk.c for
 * designs of more than MLA_GRAM_TILE_COLS columns) gives both the scaled
 * Gram matrix D Xb^T Xb D and the right-hand side D Xb^T y / s_y. The
 * system (D Xb^T Xb D + lambda D^2) v = D Xb^T y / s_y is then solved by
 * mla_solve_spd (regression.c), and w = D v s_y.
 *
 * The scales are powers of two found in the same pass. The products run on
 * the unscaled design while the column maxima are gathered, and the sum is
 * scaled afterwards. That gives the same bits as scaling the data first,
 * as long as no product overflows or underflows. When a scale falls
 * outside [2^-400, 2^400], where one might, a second pass runs on the
 * scaled design instead.
 */
mla_status
FN(mla_linear_regression)(T *w, const T *x, const T *y, ptrdiff_t n,
                          ptrdiff_t p, ptrdiff_t t, double regularization)
{
    ptrdiff_t dim = p + 1, ncols = dim + t;

    /* A (ncols, ncols) system that cannot be addressed cannot be allocated. */
    if ((size_t)ncols > SIZE_MAX / 8 / (size_t)ncols) {
        return MLA_ERR_NOMEM;
    }
    gram_tiles tile_layout = gram_tiles_for(ncols);
    const gram_tiles *tiles = ncols <= MLA_GRAM_TILE_COLS ? &tile_layout
                                                          : NULL;
    ptrdiff_t ld = tiles != NULL ? tiles->ld : ncols, square = ld * ld;
    ptrdiff_t tasks = FN(regression_tasks)(n, square);
    int threads = FN(regression_threads)(tasks, n, ncols);
    size_t per_thread;
    int inner_threads = 1;
    if (tiles != NULL) {
        per_thread = (size_t)MLA_GRAM_TILE_SLAB * (size_t)ld;
    }
    else {
        /* One task: the rows run in order and the products use threads. */
        if (tasks == 1) {
            inner_threads = mla_syrk_threads_f64(ncols, MLA_REGRESSION_SLAB);
        }
        per_thread = (size_t)MLA_REGRESSION_SLAB * (size_t)ncols +
                     (size_t)square +
                     mla_syrk_workspace_f64(ncols, MLA_REGRESSION_SLAB,
                                            inner_threads);
    }

    double *scratch = mla_alloc(
        (size_t)threads * per_thread + (size_t)(tasks + 1) * (size_t)square +
            2 * (size_t)dim * (size_t)dim + (size_t)dim * (size_t)t +
            2 * (size_t)(p + t) + (size_t)threads * (size_t)(p + t),
        sizeof(double));
    ptrdiff_t *pivots = mla_alloc((size_t)dim, sizeof(ptrdiff_t));
    if (scratch == NULL || pivots == NULL) {
        mla_free(scratch);
        mla_free(pivots);
        return MLA_ERR_NOMEM;
    }
    double *task_sums = scratch + (size_t)threads * per_thread;
    double *total = task_sums + (size_t)tasks * (size_t)square;
    double *gram = total + square;
    double *work = gram + dim * dim;
    double *rhs = work + dim * dim;
    double *scale = rhs + dim * t;
    double *inverse = scale + (p + t);
    double *maxima = inverse + (p + t);

    FN(gram_tasks)(total, task_sums, tasks, scratch, per_thread, threads,
                   tiles, inner_threads, x, y, n, p, t, NULL, NULL, maxima);
    /*
     * Those maxima skip NaN. A NaN or an infinity in the data, or a
     * product that overflows, leaves a sum of squares on the diagonal that
     * is not finite. The maxima are then gathered again with NaN sticking,
     * so that such a column gets a NaN or huge scale and the scaled pass
     * below runs.
     */
    int finite = 1;
    for (ptrdiff_t i = 1; i < ncols; i++) {
        finite &= isfinite(total[i * ld + i]) != 0;
    }
    if (!finite) {
        FN(column_maxima)(maxima, x, y, n, p, t, threads);
    }
    FN(scales_from_maxima)(scale, maxima, threads, p, t,
                           FN(scale_floor)(regularization));
    if (FN(scales_moderate)(scale, p + t)) {
        /* Column i of A is column i of [1, x, y] over s_i, s_0 = 1. */
        for (ptrdiff_t i = 0; i < ncols; i++) {
            double si = i == 0 ? 1 : scale[i - 1];
            for (ptrdiff_t j = 0; j <= i; j++) {
                double sj = j == 0 ? 1 : scale[j - 1];
                total[i * ld + j] = total[i * ld + j] / si / sj;
            }
        }
    }
    else {
        const double *inv = FN(scale_inverses)(inverse, scale, p + t);
        FN(gram_tasks)(total, task_sums, tasks, scratch, per_thread, threads,
                       tiles, inner_threads, x, y, n, p, t, scale, inv, NULL);
    }

    /*
     * The Gram matrix is the leading (dim, dim) block, mirrored; the
     * right-hand side is the block of rows dim.. below it, transposed.
     */
    for (ptrdiff_t i = 0; i < dim; i++) {
        for (ptrdiff_t j = 0; j <= i; j++) {
            gram[i * dim + j] = total[i * ld + j];
            gram[j * dim + i] = total[i * ld + j];
        }
        for (ptrdiff_t c = 0; c < t; c++) {
            rhs[i * t + c] = total[(dim + c) * ld + i];
        }
    }
    if (regularization > 0) {
        gram[0] += regularization;
        for (ptrdiff_t j = 0; j < p; j++) {
            gram[(j + 1) * dim + j + 1] += regularization / scale[j] / scale[j];
        }
    }

    mla_status status = mla_solve_spd(rhs, gram, work, pivots, dim, t);
    if (status == MLA_OK) {
        FN(unscale_weights)(w, rhs, scale, p, t);
    }
    mla_free(scratch);
    mla_free(pivots);
    return status;
}

/*
 * One task of mla_linear_regression_qr: fold `count` rows from row
 * `first` (fewer at the end of the data) into R, slab by slab. Then copy
 * the first p + 1 rows of R, or fewer if the task has fewer rows, into r
 * (rows of ncols). buf is this thread's scratch of (p + 1 + slab) rows and
 * one more row for the reflections.
 */
static void
FN(qr_task)(double *r, double *buf, const T *x, const T *y, ptrdiff_t first,
            ptrdiff_t count, ptrdiff_t n, ptrdiff_t p, ptrdiff_t t,
            const double *scale, const double *inverse)
{
    ptrdiff_t dim = p + 1, ncols = dim + t;
    double *vec = buf + (dim + MLA_REGRESSION_SLAB) * ncols;
    ptrdiff_t last = first + count < n ? first + count : n;
    ptrdiff_t r_rows = 0;

    for (ptrdiff_t r0 = first; r0 < last; r0 += MLA_REGRESSION_SLAB) {
        ptrdiff_t rows = last - r0 < MLA_REGRESSION_SLAB ? last - r0
                                                         : MLA_REGRESSION_SLAB;
        FN(fill_design)(buf + r_rows * ncols, ncols, x, y, r0, rows, p, t,
                        scale, inverse, NULL);
        householder_reduce(buf, r_rows + rows, ncols, dim, vec);
        r_rows = r_rows + rows < dim ? r_rows + rows : dim;
    }
    for (ptrdiff_t i = 0; i < r_rows * ncols; i++) {
        r[i] = buf[i];
    }
}

/*
 * The same least-squares problem as mla_linear_regression, solved by
 * Householder QR of the design matrix instead of the normal equations:
 * minimize |Xb w - y|^2 + lambda |w|^2, which is plain least squares on
 * Xb stacked over sqrt(lambda) I. Its accuracy depends on the condition
 * number of Xb rather than its square.
 *
 * Each task folds its slabs into a running R: the slab's rows of the
 * scaled design [Xb D, y / s_y] are stacked under the current R and
 * reduced again (householder_reduce, regression.c). The data is thus read
 * once, and each thread keeps only (p + 1 + slab) rows. The rows
 * sqrt(lambda) D for the penalty and the tasks' R factors are stacked and
 * reduced once more. The columns of y then contain Q^T y / s_y above the
 * diagonal block, and R v = Q^T y / s_y is solved by back substitution
 * (solve_upper), with w = D v s_y. A rank-deficient design raises
 * MLA_ERR_SINGULAR.
 */
mla_status
FN(mla_linear_regression_qr)(T *w, const T *x, const T *y, ptrdiff_t n,
                             ptrdiff_t p, ptrdiff_t t, double regularization)
{
    ptrdiff_t dim = p + 1, ncols = dim + t;

    if ((size_t)ncols > SIZE_MAX / 8 / (size_t)ncols) {
        return MLA_ERR_NOMEM;
    }
    ptrdiff_t tasks = FN(regression_tasks)(n, dim * ncols);
    int threads = FN(regression_threads)(tasks, n, ncols);
    ptrdiff_t penalty_rows = regularization > 0 ? dim : 0;
    ptrdiff_t stack_rows = penalty_rows + tasks * dim;
    size_t per_thread = (size_t)(dim + MLA_REGRESSION_SLAB) * (size_t)ncols +
                        (size_t)ncols;

    double *scratch = mla_alloc(
        (size_t)threads * per_thread + (size_t)stack_rows * (size_t)ncols +
            (size_t)ncols + (size_t)dim * (size_t)t + 2 * (size_t)(p + t) +
            (size_t)threads * (size_t)(p + t),
        sizeof(double));
    if (scratch == NULL) {
        return MLA_ERR_NOMEM;
    }
    double *stack = scratch + (size_t)threads * per_thread;
    double *reflect_work = stack + stack_rows * ncols;
    double *rhs = reflect_work + ncols;
    double *scale = rhs + dim * t;
    double *inverse = scale + (p + t);
    double *scale_scratch = inverse + (p + t);

    FN(column_maxima)(scale_scratch, x, y, n, p, t, threads);
    FN(scales_from_maxima)(scale, scale_scratch, threads, p, t,
                           FN(scale_floor)(regularization));
    const double *inv = FN(scale_inverses)(inverse, scale, p + t);
    for (ptrdiff_t i = 0; i < stack_rows * ncols; i++) {
        stack[i] = 0;
    }

    /* Each task's R, built on top of its buffer, lands in the stack. */
    ptrdiff_t task_rows = (n + tasks - 1) / tasks;
    double *task_stack = stack + penalty_rows * ncols;
    if (threads == 1) {
        for (ptrdiff_t task = 0; task < tasks; task++) {
            FN(qr_task)(task_stack + task * dim * ncols, scratch, x, y,
                        task * task_rows, task_rows, n, p, t, scale, inv);
        }
    }
    else {
#pragma omp parallel for num_threads(threads) schedule(dynamic)
        for (ptrdiff_t task = 0; task < tasks; task++) {
            FN(qr_task)(task_stack + task * dim * ncols,
                        scratch + (size_t)MLA_THREAD_ID() * per_thread, x, y,
                        task * task_rows, task_rows, n, p, t, scale, inv);
        }
    }

    /*
     * The penalty rows, sqrt(lambda) for the bias and sqrt(lambda) / s_j,
     * go on top. Where a penalty dominates its column, the reflection then
     * starts from the penalty row, whose target entries are 0. The data
     * reaches the result through the reflection vector, where it keeps its
     * digits, rather than through (1 - tau) times the top row, which
     * rounds to 0 when the top entry is tiny beside the column's norm.
     */
    if (regularization > 0) {
        double *penalty = stack;
        double root = sqrt(regularization);
        penalty[0] = root;
        for (ptrdiff_t j = 0; j < p; j++) {
            penalty[(j + 1) * ncols + j + 1] = root / scale[j];
        }
    }
    householder_reduce(stack, stack_rows, ncols, dim, reflect_work);

    for (ptrdiff_t i = 0; i < dim; i++) {
        for (ptrdiff_t c = 0; c < t; c++) {
            rhs[i * t + c] = stack[i * ncols + dim + c];
        }
    }
    mla_status status = solve_upper(rhs, stack, ncols, dim, t);
    if (status == MLA_OK) {
        FN(unscale_weights)(w, rhs, scale, p, t);
    }
    mla_free(scratch);
    return status;
}
