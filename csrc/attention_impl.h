/*
 * attention_impl.h: scaled dot-product attention, instantiated per element
 * type by attention.c. The gradients are in attention_backward_impl.h,
 * which reuses the blocks, scratch and streaming pass defined here.
 *
 * Problem t of a call (mla_attention_args in mla.h) computes
 *
 *     S = scale Q K^T,  S[i, j] = -inf where query i may not attend key j,
 *     P = softmax(S) along the keys,  out = P V,
 *
 * with one exception: a query row with no allowed key gets zero weights
 * and a zero output instead of the NaN that softmax of -inf gives.
 *
 * Three kernels share these blocks:
 *
 * - materialized (weights requested): each block of query rows writes its
 *   scores straight into the weights, normalizes them in place and
 *   multiplies them by V;
 * - streaming (no weights): each block of query rows visits the keys in
 *   blocks and keeps the online-softmax state of FlashAttention: per row
 *   the running max, the running sum of exponentials and the unnormalized
 *   output, rescaled whenever the max grows. Memory is the output plus one
 *   block of scores per thread, never Lq x Lk;
 * - backward (attention_backward_impl.h): P recomputed from whole rows of
 *   scores of a query block, or, for longer keys, the FlashAttention-2
 *   scheme, which recomputes P block by block from each row's log-sum-exp.
 *
 * Work items (a block of query rows, or of keys, of one problem or group
 * of problems, or a whole problem in the fused backward) are shared among
 * OpenMP threads. Each item is computed by one thread, in an order fixed
 * by the item alone, and no two items write the same element, so results
 * are identical for every thread count. Every product goes through
 * mla_gemm_run or mla_gemm_run_update on one thread, and every
 * exponential through the vectorized exp of vecmath.h.
 *
 * With causal set, key blocks entirely above the diagonal are skipped.
 * Within the blocks that remain, a key that a query may not attend still
 * enters P V with weight zero. A NaN or infinity in that key's row of V
 * can therefore reach the query's output, as zero times NaN does in
 * NumPy's weights @ V, and whether it does depends on the block bounds.
 */

#ifndef MLA_ATTENTION_COMMON
#define MLA_ATTENTION_COMMON

/*
 * Query rows per work item. 96 is the GEMM's row block (MLA_MC) and a
 * multiple of every micro-kernel's MR and NR.
 */
#define ATTENTION_BLOCK_Q 96

/*
 * Keys per block of the streaming and backward passes. A 96 x 96 block of
 * scores takes 36 KiB in float32, and with d and dv up to 96 every float32
 * product of a block stays at or below 96^3 multiply-adds, which the GEMM
 * runs without packing (GEMM_DIRECT_MAX_WORK in gemm_impl.h). 96 is a
 * multiple of every MR and NR, so no tile of a full block is an edge tile.
 */
#define ATTENTION_STREAM_K 96

/* Independent accumulators of the row reductions. */
#define ATTENTION_LANES 8

/*
 * The fused backward holds P^T and dS^T of one query block for all keys
 * (attention_rows_item) while each takes at most this many bytes. Beyond
 * it, the blocks are recomputed from a streamed log-sum-exp instead.
 */
#define ATTENTION_ROWS_BYTES ((size_t)1 << 22)

/* Largest partial sums of dK and dV that the row scheme allocates. */
#define ATTENTION_PARTIAL_BYTES ((size_t)1 << 26)

/* Kernel modes, which decide the scratch each thread needs. */
enum {
    ATTENTION_MATERIALIZED,
    ATTENTION_STREAMING,
    ATTENTION_BACKWARD,
    ATTENTION_BACKWARD_ROWS
};

/* Byte offsets of one thread's arrays in the scratch, and its size. */
typedef struct {
    size_t gemm, scores, probs, grads, output, row, q_t, d_out_t;
    size_t row_max, exponent, alpha, shift, block_sum, row_sum;
    size_t stride;
} attention_layout;

/* Reserve count elements of size bytes at *used, in whole cache lines. */
static size_t
attention_reserve(size_t *used, size_t count, size_t size)
{
    size_t at = *used;
    *used += (count * size + 63) / 64 * 64;
    return at;
}

static ptrdiff_t
attention_min(ptrdiff_t a, ptrdiff_t b)
{
    return a < b ? a : b;
}

/* Keys that rows before row_end may attend: causal rows stop at the row. */
static ptrdiff_t
attention_key_end(const mla_attention_args *a, ptrdiff_t row_end)
{
    return a->causal ? attention_min(a->lk, row_end) : a->lk;
}

/* Return the thread count for items work items of work multiply-adds. */
static int
attention_threads(ptrdiff_t items, double work)
{
    int nthreads = mla_get_num_threads();
    /* The GEMM's threshold, below which a second thread costs more. */
    if (work < 4.0e6 || items < 2) {
        return 1;
    }
    return mla_team_threads((ptrdiff_t)nthreads < items ? nthreads : (int)items);
}

#endif /* MLA_ATTENTION_COMMON */

/*
 * y[i] = exp(x[i]) for i < n, through the vectorized exp of the SIMD level
 * chosen at import (within 2 ulp of the C library). The column kernels of
 * vecmath.h use the same exp.
 */
static void
FN(attention_exp)(T *y, const T *x, ptrdiff_t n)
{
    FN(mla_exp)(y, x, n);
}

/* One thread's scratch arrays (sizes in FN(attention_plan)). */
typedef struct {
    T *gemm;      /* GEMM workspace */
    T *scores;    /* streaming: S^T of a block, then its exponentials */
    T *probs;     /* backward: P^T of a block */
    T *grads;     /* backward: dP^T, then dS^T, of a block */
    T *output;    /* backward: the streamed output of a query block */
    T *row;       /* materialized: exponentials of one row of scores */
    T *q_t;       /* the query block transposed, (d, rows) */
    T *d_out_t;   /* backward: the block of dO transposed, (dv, rows) */
    T *row_max;   /* per query row: running max of the scores */
    T *exponent;  /* per query row: old max minus new max; row scheme:
                     1 / the sum of exponentials */
    T *alpha;     /* per query row: exp(exponent); backward: D */
    T *shift;     /* per query row: the max subtracted before exp; backward:
                     the log-sum-exp */
    T *block_sum; /* per query row: sum of exponentials of one key block */
    ACC *row_sum; /* per query row: running sum of exponentials */
} FN(attention_scratch);

/* Everything a work item reads, shared by all threads. */
typedef struct {
    const mla_attention_args *args;
    const T *q, *k, *v;
    T *out, *weights;

    const T *d_out;
    const ptrdiff_t *d_out_offsets;
    ptrdiff_t rs_do, cs_do;
    T *grad_q, *grad_k, *grad_v;
    const ptrdiff_t *grad_q_offsets, *grad_k_offsets, *grad_v_offsets;
    ACC *lse;   /* (batch, lq): log-sum-exp of each row, +inf if no key */
    ACC *delta; /* (batch, lq): rowsum(dO * out) */
    const ptrdiff_t *q_order, *q_starts, *kv_order, *kv_starts;

    ptrdiff_t q_blocks, k_blocks;
    /* Row scheme: query rows per chunk and chunks per problem. */
    ptrdiff_t chunk_rows, chunks;
    /* Whether the first chunk adds straight into dK and dV, and every
       chunk into dQ. */
    int kv_direct, q_direct;
    /* Partial sums: `slots` slots of slot_size elements, one per item but
       for first chunks that add straight into all three gradients. */
    ptrdiff_t slot_size, slots;
    T *partial;
    unsigned char *scratch;
    attention_layout layout;
} FN(attention_job);

typedef void (*FN(attention_item_fn))(const FN(attention_job) *job,
                                      FN(attention_scratch) *s,
                                      ptrdiff_t item);

/* Largest GEMM workspace over the products of a mode, on one thread. */
static size_t
FN(attention_gemm_size)(const mla_attention_args *a, int mode)
{
    ptrdiff_t bq = attention_min(ATTENTION_BLOCK_Q, a->lq);
    ptrdiff_t bs = attention_min(ATTENTION_STREAM_K, a->lk);
    ptrdiff_t d = a->d, dv = a->dv;
    size_t sizes[6] = {0};

    if (mode == ATTENTION_MATERIALIZED) {
        sizes[0] = FN(mla_gemm_workspace)(bq, a->lk, d, 1);
        sizes[1] = FN(mla_gemm_workspace)(bq, dv, a->lk, 1);
    }
    else {
        /*
         * The streaming pass, which the block backward runs first. The
         * row scheme runs the same products, a key block at a time.
         */
        sizes[0] = FN(mla_gemm_workspace)(bs, bq, d, 1);
        sizes[1] = FN(mla_gemm_workspace)(bq, dv, bs, 1);
    }
    if (mode == ATTENTION_BACKWARD || mode == ATTENTION_BACKWARD_ROWS) {
        /* attention_backward_block_t and the three gradient products. */
        sizes[2] = FN(mla_gemm_workspace)(bs, bq, dv, 1);
        sizes[3] = FN(mla_gemm_workspace)(bs, dv, bq, 1);
        sizes[4] = FN(mla_gemm_workspace)(bs, d, bq, 1);
        sizes[5] = FN(mla_gemm_workspace)(bq, d, bs, 1);
    }
    size_t largest = 0;
    for (int i = 0; i < 6; i++) {
        largest = sizes[i] > largest ? sizes[i] : largest;
    }
    return largest;
}

/* Lay out one thread's scratch for a mode. */
static attention_layout
FN(attention_plan)(const mla_attention_args *a, int mode)
{
    size_t bq = (size_t)attention_min(ATTENTION_BLOCK_Q, a->lq);
    size_t bs = (size_t)attention_min(ATTENTION_STREAM_K, a->lk);
    size_t d = (size_t)a->d, dv = (size_t)a->dv;
    int rows = mode == ATTENTION_BACKWARD_ROWS;
    int backward = mode == ATTENTION_BACKWARD || rows;
    size_t block = mode == ATTENTION_MATERIALIZED ? 0 : bq * bs;
    attention_layout layout;
    size_t used = 0;

    layout.gemm = attention_reserve(&used, FN(attention_gemm_size)(a, mode),
                                    sizeof(T));
    layout.scores = attention_reserve(&used, rows ? 0 : block, sizeof(T));
    /* The row scheme holds P^T and dS^T of a query block for all keys. */
    block = rows ? bq * (size_t)a->lk : block;
    layout.probs = attention_reserve(&used, backward ? block : 0, sizeof(T));
    layout.grads = attention_reserve(&used, backward ? block : 0, sizeof(T));
    layout.output = attention_reserve(
        &used, mode == ATTENTION_BACKWARD ? bq * dv : 0, sizeof(T));
    layout.row = attention_reserve(
        &used, mode == ATTENTION_MATERIALIZED ? (size_t)a->lk : 0, sizeof(T));
    layout.q_t = attention_reserve(
        &used, mode == ATTENTION_MATERIALIZED ? 0 : bq * d, sizeof(T));
    layout.d_out_t = attention_reserve(&used, backward ? bq * dv : 0,
                                       sizeof(T));
    layout.row_max = attention_reserve(&used, bq, sizeof(T));
    layout.exponent = attention_reserve(&used, bq, sizeof(T));
    layout.alpha = attention_reserve(&used, bq, sizeof(T));
    layout.shift = attention_reserve(&used, bq, sizeof(T));
    layout.block_sum = attention_reserve(&used, bq, sizeof(T));
    layout.row_sum = attention_reserve(&used, bq, sizeof(ACC));
    layout.stride = used;
    return layout;
}

static FN(attention_scratch)
FN(attention_scratch_of)(const FN(attention_job) *job, int thread)
{
    const attention_layout *l = &job->layout;
    unsigned char *base = job->scratch + (size_t)thread * l->stride;
    FN(attention_scratch) s;
    s.gemm = (T *)(base + l->gemm);
    s.scores = (T *)(base + l->scores);
    s.probs = (T *)(base + l->probs);
    s.grads = (T *)(base + l->grads);
    s.output = (T *)(base + l->output);
    s.row = (T *)(base + l->row);
    s.q_t = (T *)(base + l->q_t);
    s.d_out_t = (T *)(base + l->d_out_t);
    s.row_max = (T *)(base + l->row_max);
    s.exponent = (T *)(base + l->exponent);
    s.alpha = (T *)(base + l->alpha);
    s.shift = (T *)(base + l->shift);
    s.block_sum = (T *)(base + l->block_sum);
    s.row_sum = (ACC *)(base + l->row_sum);
    return s;
}

/* Run fn on items 0 .. items - 1, on up to nthreads threads. */
static void
FN(attention_run)(const FN(attention_job) *job, FN(attention_item_fn) fn,
                  ptrdiff_t items, int nthreads)
{
    if ((ptrdiff_t)nthreads > items) {
        nthreads = (int)items;
    }
    if (nthreads > 1) {
        mla_note_parallel(nthreads);
        /* Causal items differ in cost, so they are handed out one by one. */
#pragma omp parallel num_threads(nthreads)
        {
            FN(attention_scratch) s = FN(attention_scratch_of)(job,
                                                               MLA_THREAD_ID());
#pragma omp for schedule(dynamic, 1)
            for (ptrdiff_t item = 0; item < items; item++) {
                fn(job, &s, item);
            }
        }
    }
    else {
        FN(attention_scratch) s = FN(attention_scratch_of)(job, 0);
        for (ptrdiff_t item = 0; item < items; item++) {
            fn(job, &s, item);
        }
    }
}

/*
 * Max of x[0..n) and init, skipping NaN: a NaN score still reaches the
 * output through the sum of exponentials, which it makes NaN. Eight
 * independent lanes let the compiler vectorize the loop.
 */
static T
FN(attention_row_max)(const T *x, ptrdiff_t n, T init)
{
    T lane[ATTENTION_LANES];
    ptrdiff_t i = 0;

    for (int l = 0; l < ATTENTION_LANES; l++) {
        lane[l] = init;
    }
    for (; i + ATTENTION_LANES <= n; i += ATTENTION_LANES) {
        for (int l = 0; l < ATTENTION_LANES; l++) {
            lane[l] = x[i + l] > lane[l] ? x[i + l] : lane[l];
        }
    }
    for (; i < n; i++) {
        lane[0] = x[i] > lane[0] ? x[i] : lane[0];
    }
    T max = lane[0];
    for (int l = 1; l < ATTENTION_LANES; l++) {
        max = lane[l] > max ? lane[l] : max;
    }
    return max;
}

/* Whether x[0..n) contains a NaN. */
static int
FN(attention_has_nan)(const T *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        if (x[i] != x[i]) {
            return 1;
        }
    }
    return 0;
}

/* Sum of x[0..n) in ACC, over eight lanes added in a fixed order. */
static ACC
FN(attention_row_sum)(const T *x, ptrdiff_t n)
{
    ACC lane[ATTENTION_LANES] = {0};
    ptrdiff_t i = 0;

    for (; i + ATTENTION_LANES <= n; i += ATTENTION_LANES) {
        for (int l = 0; l < ATTENTION_LANES; l++) {
            lane[l] += x[i + l];
        }
    }
    ACC sum = 0;
    for (; i < n; i++) {
        sum += x[i];
    }
    for (int l = 0; l < ATTENTION_LANES; l++) {
        sum += lane[l];
    }
    return sum;
}

/*
 * Set to -inf the scores that the mask or the causal rule forbid, in the
 * m x n block s (row stride ld) of rows i0.. and keys j0.. of problem t.
 */
static void
FN(attention_mask_block)(T *s, ptrdiff_t ld, const mla_attention_args *a,
                         ptrdiff_t t, ptrdiff_t i0, ptrdiff_t m, ptrdiff_t j0,
                         ptrdiff_t n)
{
    const unsigned char *mask =
        a->mask == NULL ? NULL : a->mask + a->mask_offsets[t];
    /* A causal block whose last key is at or before its first row is open. */
    int causal = a->causal && j0 + n - 1 > i0;

    if (mask == NULL && !causal) {
        return;
    }
    for (ptrdiff_t r = 0; r < m; r++) {
        T *row = s + r * ld;
        ptrdiff_t i = i0 + r;
        if (mask != NULL) {
            const unsigned char *allowed =
                mask + i * a->rs_mask + j0 * a->cs_mask;
            for (ptrdiff_t c = 0; c < n; c++) {
                if (!allowed[c * a->cs_mask]) {
                    row[c] = (T)-INFINITY;
                }
            }
        }
        if (causal) {
            /* Key j0 + c is allowed while j0 + c <= i. */
            ptrdiff_t c = i - j0 + 1 > 0 ? i - j0 + 1 : 0;
            for (; c < n; c++) {
                row[c] = (T)-INFINITY;
            }
        }
    }
}

/*
 * Set to -inf the scores that the mask or the causal rule forbid, in the
 * transposed n x m block s_t (row stride ld) of problem t. Its element
 * (c, r) is the score of query i0 + r and key j0 + c.
 */
static void
FN(attention_mask_block_t)(T *s_t, ptrdiff_t ld, const mla_attention_args *a,
                           ptrdiff_t t, ptrdiff_t i0, ptrdiff_t m,
                           ptrdiff_t j0, ptrdiff_t n)
{
    const unsigned char *mask =
        a->mask == NULL ? NULL : a->mask + a->mask_offsets[t];
    /* A causal block whose last key is at or before its first row is open. */
    int causal = a->causal && j0 + n - 1 > i0;

    if (mask == NULL && !causal) {
        return;
    }
    for (ptrdiff_t c = 0; c < n; c++) {
        T *row = s_t + c * ld;
        ptrdiff_t j = j0 + c;
        if (mask != NULL) {
            const unsigned char *allowed =
                mask + i0 * a->rs_mask + j * a->cs_mask;
            for (ptrdiff_t r = 0; r < m; r++) {
                if (!allowed[r * a->rs_mask]) {
                    row[r] = (T)-INFINITY;
                }
            }
        }
        if (causal) {
            /* Query i0 + r may attend key j while j <= i0 + r. */
            ptrdiff_t end = attention_min(j - i0, m);
            for (ptrdiff_t r = 0; r < end; r++) {
                row[r] = (T)-INFINITY;
            }
        }
    }
}

/* Copy the m x d block x (strides rs, cs) into x_t (d, m), row by row of x. */
static void
FN(attention_transpose)(T *x_t, const T *x, ptrdiff_t rs, ptrdiff_t cs,
                        ptrdiff_t m, ptrdiff_t d)
{
    for (ptrdiff_t r = 0; r < m; r++) {
        const T *row = x + r * rs;
        for (ptrdiff_t p = 0; p < d; p++) {
            x_t[p * m + r] = row[p * cs];
        }
    }
}

/*
 * Stream the keys of problem t through query rows i0 .. i0 + m - 1.
 * o (m, dv), row stride ld_o, receives the output rows. lse, if not NULL,
 * receives each row's log-sum-exp of the allowed scores, +inf for a row
 * with no allowed key.
 *
 * Each key block of n keys is computed transposed, S^T (n, m) =
 * scale K_j Q_i^T, so that both products read their operands in place.
 * They read K_j and V_j by rows, Q_i^T from a copy made once per call, and
 * P as the block of P^T with swapped strides. The per-query reductions
 * then run down the columns of S^T, a vector of queries at a time.
 *
 * For each key block: the new row max M' = max(M, rowmax S), NaN
 * sticking; P = exp(S - M'); alpha = exp(M - M'); the running sum
 * l = alpha l + rowsum P and the output o = alpha o + P V_j. At the end
 * o / l is the softmax-weighted output.
 */
static void
FN(attention_stream_rows)(T *o, ptrdiff_t ld_o, ACC *lse,
                          const FN(attention_job) *job,
                          FN(attention_scratch) *s, ptrdiff_t t, ptrdiff_t i0,
                          ptrdiff_t m)
{
    const mla_attention_args *a = job->args;
    const FN(mla_vector_kernels) *vk = FN(mla_select_vector_kernels)();
    const T *q = job->q + a->q_offsets[t] + i0 * a->rs_q;
    const T *k = job->k + a->k_offsets[t];
    const T *v = job->v + a->v_offsets[t];
    FN(mla_epilogue) score_ep = {(T)a->scale, NULL, 0, 0, MLA_ACT_LINEAR};
    FN(mla_epilogue) plain_ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};
    ptrdiff_t d = a->d, dv = a->dv;
    ptrdiff_t key_end = attention_key_end(a, i0 + m);

    FN(attention_transpose)(s->q_t, q, a->rs_q, a->cs_q, m, d);
    for (ptrdiff_t r = 0; r < m; r++) {
        s->row_max[r] = (T)-INFINITY;
        s->row_sum[r] = 0;
    }

    for (ptrdiff_t j0 = 0; j0 < key_end; j0 += ATTENTION_STREAM_K) {
        ptrdiff_t n = attention_min(ATTENTION_STREAM_K, key_end - j0);

        FN(mla_gemm_run)(s->scores, m, 1, k + j0 * a->rs_k, a->rs_k, a->cs_k,
                         s->q_t, m, 1, n, m, d, &score_ep, s->gemm, 1);
        FN(attention_mask_block_t)(s->scores, m, a, t, i0, m, j0, n);

        /*
         * Shift each row by its new max. A row with no allowed key so far
         * is shifted by 0, so that its exponentials stay exp(-inf) = 0.
         */
        for (ptrdiff_t r = 0; r < m; r++) {
            s->exponent[r] = s->row_max[r];
        }
        vk->max_columns(s->row_max, s->scores, m, n, m);
        for (ptrdiff_t r = 0; r < m; r++) {
            T old_max = s->exponent[r], new_max = s->row_max[r];
            s->shift[r] = new_max == (T)-INFINITY ? 0 : new_max;
            s->exponent[r] = old_max == new_max ? 0 : old_max - new_max;
            s->block_sum[r] = 0;
        }
        vk->exp_sum_columns(s->scores, s->scores, m, n, s->shift,
                            s->block_sum, m);
        FN(attention_exp)(s->alpha, s->exponent, m);

        /*
         * Rescale the running sums and outputs, then add this block. Only
         * rows whose max grew have alpha != 1, and the first block writes
         * o without reading it.
         */
        for (ptrdiff_t r = 0; r < m; r++) {
            T alpha = s->alpha[r];
            T *orow = o + r * ld_o;
            s->row_sum[r] = alpha * s->row_sum[r] + s->block_sum[r];
            if (j0 > 0 && alpha != 1) {
                for (ptrdiff_t c = 0; c < dv; c++) {
                    orow[c] = alpha * orow[c];
                }
            }
        }
        FN(mla_gemm_run_update)(o, ld_o, 1, s->scores, 1, m, v + j0 * a->rs_v,
                                a->rs_v, a->cs_v, m, dv, n, j0 > 0 ? 1 : 0,
                                &plain_ep, s->gemm, 1);
    }

    for (ptrdiff_t r = 0; r < m; r++) {
        T *orow = o + r * ld_o;
        /* A NaN score makes the max NaN, so -inf means no allowed key. */
        if (s->row_max[r] == (T)-INFINITY) {
            /* No allowed key: zero output, even where V holds NaN. */
            for (ptrdiff_t c = 0; c < dv; c++) {
                orow[c] = 0;
            }
            if (lse != NULL) {
                lse[r] = INFINITY;
            }
            continue;
        }
        ACC inverse = 1 / s->row_sum[r];
        for (ptrdiff_t c = 0; c < dv; c++) {
            orow[c] = (T)(orow[c] * inverse);
        }
        if (lse != NULL) {
            lse[r] = (ACC)s->row_max[r] + log(s->row_sum[r]);
        }
    }
}

/*
 * Find the problem (or group), first row and row count of a query-block
 * item. Each problem's last block comes first because causal rows there
 * attend the most keys.
 */
static void
FN(attention_query_block)(const FN(attention_job) *job, ptrdiff_t item,
                          ptrdiff_t *t, ptrdiff_t *i0, ptrdiff_t *m)
{
    ptrdiff_t block = job->q_blocks - 1 - item % job->q_blocks;
    *t = item / job->q_blocks;
    *i0 = block * ATTENTION_BLOCK_Q;
    *m = attention_min(ATTENTION_BLOCK_Q, job->args->lq - *i0);
}

/* Streaming forward of one query block of one problem. */
static void
FN(attention_streaming_item)(const FN(attention_job) *job,
                             FN(attention_scratch) *s, ptrdiff_t item)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t t, i0, m;
    FN(attention_query_block)(job, item, &t, &i0, &m);
    T *o = job->out + (t * a->lq + i0) * a->dv;
    FN(attention_stream_rows)(o, a->dv, NULL, job, s, t, i0, m);
}

/*
 * Materialized forward of one query block of one problem: the scores go
 * straight into the block's rows of the weights (m, lk), which are then
 * normalized in place and multiplied by V.
 */
static void
FN(attention_materialized_item)(const FN(attention_job) *job,
                                FN(attention_scratch) *s, ptrdiff_t item)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t t, i0, m;
    FN(attention_query_block)(job, item, &t, &i0, &m);
    ptrdiff_t lk = a->lk, dv = a->dv;
    ptrdiff_t key_end = attention_key_end(a, i0 + m);
    T *w = job->weights + (t * a->lq + i0) * lk;
    T *o = job->out + (t * a->lq + i0) * dv;
    FN(mla_epilogue) score_ep = {(T)a->scale, NULL, 0, 0, MLA_ACT_LINEAR};
    FN(mla_epilogue) plain_ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};

    /* Scores of the keys any row of the block may attend; zero past them. */
    FN(mla_gemm_run)(w, lk, 1, job->q + a->q_offsets[t] + i0 * a->rs_q,
                     a->rs_q, a->cs_q, job->k + a->k_offsets[t], a->cs_k,
                     a->rs_k, m, key_end, a->d, &score_ep, s->gemm, 1);
    for (ptrdiff_t r = 0; r < m; r++) {
        for (ptrdiff_t c = key_end; c < lk; c++) {
            w[r * lk + c] = 0;
        }
    }
    FN(attention_mask_block)(w, lk, a, t, i0, m, 0, key_end);

    for (ptrdiff_t r = 0; r < m; r++) {
        T *row = w + r * lk;
        T max = FN(attention_row_max)(row, key_end, (T)-INFINITY);
        int no_key = max == (T)-INFINITY &&
                     !FN(attention_has_nan)(row, key_end);
        /* row_max marks the rows whose output is set to zero below. */
        s->row_max[r] = no_key ? (T)-INFINITY : 0;
        if (no_key) {
            for (ptrdiff_t c = 0; c < key_end; c++) {
                row[c] = 0;
            }
            continue;
        }
        /* A row of only NaN and -inf is shifted by 0 and ends all NaN. */
        T shift = max == (T)-INFINITY ? 0 : max;
        for (ptrdiff_t c = 0; c < key_end; c++) {
            row[c] -= shift;
        }
        FN(attention_exp)(s->row, row, key_end);
        ACC inverse = 1 / FN(attention_row_sum)(s->row, key_end);
        for (ptrdiff_t c = 0; c < key_end; c++) {
            row[c] = (T)(s->row[c] * inverse);
        }
    }

    FN(mla_gemm_run)(o, dv, 1, w, lk, 1, job->v + a->v_offsets[t], a->rs_v,
                     a->cs_v, m, dv, key_end, &plain_ep, s->gemm, 1);
    for (ptrdiff_t r = 0; r < m; r++) {
        if (s->row_max[r] == (T)-INFINITY) {
            for (ptrdiff_t c = 0; c < dv; c++) {
                o[r * dv + c] = 0;
            }
        }
    }
}

/* Estimate the multiply-adds of one call, for attention_threads. */
static double
FN(attention_work)(const mla_attention_args *a, double products)
{
    double keys = (double)a->lk;
    if (a->causal && a->lq < 2 * a->lk) {
        keys = (double)a->lq / 2;
    }
    /* An estimate: one exponential costs about eight multiply-adds. */
    return (double)a->batch * (double)a->lq * keys *
           (products * (double)(a->d + a->dv) / 2 + 8);
}

/* Allocate the scratch of nthreads threads for a mode; NULL on failure. */
static unsigned char *
FN(attention_alloc_scratch)(FN(attention_job) *job, int mode, int nthreads)
{
    job->layout = FN(attention_plan)(job->args, mode);
    return mla_alloc((size_t)nthreads, job->layout.stride);
}

/*
 * Compute out (batch, lq, dv) and, if weights is not NULL, the weights
 * (batch, lq, lk), both C-contiguous, for the problems of args.
 * Without weights the streaming kernel runs and memory stays at one block
 * of scores per thread.
 */
mla_status
FN(mla_attention)(T *out, T *weights, const mla_attention_args *args)
{
    FN(attention_job) job = {0};
    int mode = weights != NULL ? ATTENTION_MATERIALIZED : ATTENTION_STREAMING;

    if (args->batch == 0 || args->lq == 0 ||
        (weights == NULL && args->dv == 0)) {
        return MLA_OK;
    }
    job.args = args;
    job.q = args->q;
    job.k = args->k;
    job.v = args->v;
    job.out = out;
    job.weights = weights;
    job.q_blocks = (args->lq + ATTENTION_BLOCK_Q - 1) / ATTENTION_BLOCK_Q;

    /*
     * NOTE: items are query blocks, so one problem with at most 96 queries
     * (decoding, say) runs on one thread however many keys it has.
     */
    ptrdiff_t items = args->batch * job.q_blocks;
    int nthreads = attention_threads(items, FN(attention_work)(args, 2));
    job.scratch = FN(attention_alloc_scratch)(&job, mode, nthreads);
    if (job.scratch == NULL) {
        return MLA_ERR_NOMEM;
    }
    FN(attention_run)(&job,
                      weights != NULL ? FN(attention_materialized_item)
                                      : FN(attention_streaming_item),
                      items, nthreads);
    mla_free(job.scratch);
    return MLA_OK;
}
