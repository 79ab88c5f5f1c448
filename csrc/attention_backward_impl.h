/*
 * attention_backward_impl.h: the gradients of scaled dot-product
 * attention, instantiated per element type by attention.c after
 * attention_impl.h, whose blocks, scratch and streaming pass it reuses.
 *
 * Where a query block's P for all keys fits ATTENTION_ROWS_BYTES, the row
 * scheme runs (attention_rows_item). A thread computes P from whole rows
 * of scores and gets D = rowsum(dO * out) from P and dP, so each block
 * costs five products and one exponential per score. Batches of fewer
 * than ATTENTION_FUSED_MIN_PROBLEMS problems split each problem's query
 * blocks into chunks. A chunk sums into a slot of partial sums where
 * another chunk or problem adds into the same gradient, and the slots are
 * added in a fixed order afterwards.
 *
 * Past that size, or where the slots would exceed ATTENTION_PARTIAL_BYTES,
 * the scheme is FlashAttention-2's. A streaming pass stores each query
 * row's log-sum-exp and D. Then one pass over key blocks sums dK and dV,
 * and one pass over query blocks sums dQ, both recomputing P block by
 * block from the log-sum-exp. Where Q, K or V is broadcast, the problems
 * that add into one gradient matrix form a group that one thread sums in
 * increasing order. Batches of ATTENTION_FUSED_MIN_PROBLEMS or more
 * problems that share no gradient matrix run all three passes of a
 * problem on one thread instead, recomputing P once per block rather than
 * twice.
 */

#ifndef MLA_ATTENTION_BACKWARD_COMMON
#define MLA_ATTENTION_BACKWARD_COMMON

static ptrdiff_t
attention_root(ptrdiff_t *parent, ptrdiff_t t)
{
    while (parent[t] != t) {
        parent[t] = parent[parent[t]];
        t = parent[t];
    }
    return t;
}

/* Join the sets of a and b, whose root becomes the smaller of the two. */
static void
attention_unite(ptrdiff_t *parent, ptrdiff_t a, ptrdiff_t b)
{
    a = attention_root(parent, a);
    b = attention_root(parent, b);
    if (a < b) {
        parent[b] = a;
    }
    else if (b < a) {
        parent[a] = b;
    }
}

/*
 * Join every two problems whose gradient matrices share a target: the
 * target of t is offsets[t] / size (offsets into a C-contiguous gradient
 * whose matrices have size elements). first has room for batch entries.
 */
static void
attention_join_targets(ptrdiff_t *parent, ptrdiff_t *first,
                       const ptrdiff_t *offsets, ptrdiff_t size,
                       ptrdiff_t batch)
{
    for (ptrdiff_t key = 0; key < batch; key++) {
        first[key] = -1;
    }
    for (ptrdiff_t t = 0; t < batch; t++) {
        ptrdiff_t key = size > 0 ? offsets[t] / size : 0;
        if (first[key] < 0) {
            first[key] = t;
        }
        else {
            attention_unite(parent, t, first[key]);
        }
    }
}

/*
 * Group the problems that write a common gradient matrix, so that one
 * thread sums their contributions in a fixed order. A target is shared
 * where a batch dimension of Q, K or V broadcasts. Problems t join when
 * they share a target in offsets_a (matrices of size_a elements) or, if
 * offsets_b is not NULL, in offsets_b.
 *
 * On return group g contains order[starts[g]] .. order[starts[g + 1] - 1], in
 * increasing t, and *ngroups is the number of groups. order and the two
 * work arrays have batch entries, starts batch + 1.
 */
static void
attention_groups(ptrdiff_t *order, ptrdiff_t *starts, ptrdiff_t *ngroups,
                 const ptrdiff_t *offsets_a, ptrdiff_t size_a,
                 const ptrdiff_t *offsets_b, ptrdiff_t size_b,
                 ptrdiff_t batch, ptrdiff_t *parent, ptrdiff_t *first)
{
    for (ptrdiff_t t = 0; t < batch; t++) {
        parent[t] = t;
    }
    attention_join_targets(parent, first, offsets_a, size_a, batch);
    if (offsets_b != NULL) {
        attention_join_targets(parent, first, offsets_b, size_b, batch);
    }

    /* Number the groups by their smallest member, the root. */
    ptrdiff_t count = 0;
    for (ptrdiff_t t = 0; t < batch; t++) {
        parent[t] = attention_root(parent, t);
        if (parent[t] == t) {
            first[t] = count++;
        }
    }
    /* From here parent[t] is the group of t. */
    for (ptrdiff_t t = 0; t < batch; t++) {
        parent[t] = first[parent[t]];
    }

    for (ptrdiff_t g = 0; g <= count; g++) {
        starts[g] = 0;
    }
    for (ptrdiff_t t = 0; t < batch; t++) {
        starts[parent[t] + 1]++;
    }
    for (ptrdiff_t g = 0; g < count; g++) {
        starts[g + 1] += starts[g];
        first[g] = starts[g];
    }
    for (ptrdiff_t t = 0; t < batch; t++) {
        order[first[parent[t]]++] = t;
    }
    *ngroups = count;
}

/*
 * Batches of at least this many problems, none sharing a gradient matrix
 * with another, run the fused backward (attention_problem_item), one
 * problem per work item. Smaller batches run three passes over blocks,
 * which recompute P twice but share one problem among threads.
 */
#define ATTENTION_FUSED_MIN_PROBLEMS 4

#endif /* MLA_ATTENTION_BACKWARD_COMMON */

/*
 * Stream query rows i0 .. i0 + m - 1 of problem t to get their output,
 * then store each row's log-sum-exp and D = rowsum(dO * out).
 */
static void
FN(attention_lse_rows)(const FN(attention_job) *job, FN(attention_scratch) *s,
                       ptrdiff_t t, ptrdiff_t i0, ptrdiff_t m)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t dv = a->dv;
    ACC *lse = job->lse + t * a->lq + i0;
    ACC *delta = job->delta + t * a->lq + i0;

    FN(attention_stream_rows)(s->output, dv, lse, job, s, t, i0, m);
    for (ptrdiff_t r = 0; r < m; r++) {
        const T *g = job->d_out + job->d_out_offsets[t] + (i0 + r) * job->rs_do;
        const T *orow = s->output + r * dv;
        ACC sum = 0;
        for (ptrdiff_t c = 0; c < dv; c++) {
            sum += (ACC)g[c * job->cs_do] * orow[c];
        }
        delta[r] = sum;
    }
}

static void
FN(attention_lse_item)(const FN(attention_job) *job, FN(attention_scratch) *s,
                       ptrdiff_t item)
{
    ptrdiff_t t, i0, m;
    FN(attention_query_block)(job, item, &t, &i0, &m);
    FN(attention_lse_rows)(job, s, t, i0, m);
}

/*
 * Zero query row r of the transposed n x m block x_t (row stride ld): a
 * row with no allowed key had a zero output whatever V holds, so its dS
 * is 0 even where dP is not finite.
 */
static void
FN(attention_zero_row_t)(T *x_t, ptrdiff_t ld, ptrdiff_t n, ptrdiff_t r)
{
    for (ptrdiff_t c = 0; c < n; c++) {
        x_t[c * ld + r] = 0;
    }
}

/*
 * Recompute the transposed blocks P^T (s->probs) and dS^T (s->grads),
 * both n x m with row stride m, for keys j0.. and query rows i0.. of
 * problem t:
 *
 *     P = exp(scale Q_i K_j^T - lse),  dP = dO_i V_j^T,  dS = P (dP - D).
 *
 * s->q_t and s->d_out_t hold Q_i^T and dO_i^T, (d, m) and (dv, m). lse
 * and delta are the rows' log-sum-exp and D rounded to T. A row whose
 * unrounded log-sum-exp is +inf has no allowed key.
 */
static void
FN(attention_backward_block_t)(const FN(attention_job) *job,
                               FN(attention_scratch) *s, ptrdiff_t t,
                               ptrdiff_t i0, ptrdiff_t m, ptrdiff_t j0,
                               ptrdiff_t n, const T *lse, const T *delta)
{
    const mla_attention_args *a = job->args;
    const FN(mla_vector_kernels) *vk = FN(mla_select_vector_kernels)();
    const ACC *row_lse = job->lse + t * a->lq + i0;
    FN(mla_epilogue) score_ep = {(T)a->scale, NULL, 0, 0, MLA_ACT_LINEAR};
    FN(mla_epilogue) plain_ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};

    FN(mla_gemm_run)(s->probs, m, 1, job->k + a->k_offsets[t] + j0 * a->rs_k,
                     a->rs_k, a->cs_k, s->q_t, m, 1, n, m, a->d, &score_ep,
                     s->gemm, 1);
    FN(attention_mask_block_t)(s->probs, m, a, t, i0, m, j0, n);
    /* P = exp(S - lse); block_sum receives sums that nothing reads. */
    for (ptrdiff_t r = 0; r < m; r++) {
        s->block_sum[r] = 0;
    }
    vk->exp_sum_columns(s->probs, s->probs, m, n, lse, s->block_sum, m);

    /* dP^T = V_j dO_i^T. */
    FN(mla_gemm_run)(s->grads, m, 1, job->v + a->v_offsets[t] + j0 * a->rs_v,
                     a->rs_v, a->cs_v, s->d_out_t, m, 1, n, m, a->dv,
                     &plain_ep, s->gemm, 1);
    vk->softmax_grad_columns(s->grads, s->probs, m, n, delta, m);
    for (ptrdiff_t r = 0; r < m; r++) {
        if (row_lse[r] == INFINITY) {
            FN(attention_zero_row_t)(s->grads, m, n, r);
        }
    }
}

/*
 * Prepare query rows i0 .. i0 + m - 1 of problem t for
 * attention_backward_block_t: Q_i^T in s->q_t, dO_i^T in s->d_out_t, and
 * the rows' log-sum-exp and D rounded to T in s->shift and s->alpha.
 */
static void
FN(attention_backward_rows)(const FN(attention_job) *job,
                            FN(attention_scratch) *s, ptrdiff_t t,
                            ptrdiff_t i0, ptrdiff_t m)
{
    const mla_attention_args *a = job->args;
    const T *q = job->q + a->q_offsets[t] + i0 * a->rs_q;
    const T *d_out = job->d_out + job->d_out_offsets[t] + i0 * job->rs_do;

    FN(attention_transpose)(s->q_t, q, a->rs_q, a->cs_q, m, a->d);
    FN(attention_transpose)(s->d_out_t, d_out, job->rs_do, job->cs_do, m,
                            a->dv);
    for (ptrdiff_t r = 0; r < m; r++) {
        s->shift[r] = (T)job->lse[t * a->lq + i0 + r];
        s->alpha[r] = (T)job->delta[t * a->lq + i0 + r];
    }
}

/*
 * Backward, second pass of the block scheme: rows j0.. of dK and dV for
 * one key block and one group of problems, summed over the group's
 * problems and then the query blocks, in increasing order:
 *
 *     dV_j += P^T dO_i,  dK_j += scale dS^T Q_i.
 */
static void
FN(attention_kv_item)(const FN(attention_job) *job, FN(attention_scratch) *s,
                      ptrdiff_t item)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t group = item / job->k_blocks;
    ptrdiff_t j0 = item % job->k_blocks * ATTENTION_STREAM_K;
    ptrdiff_t n = attention_min(ATTENTION_STREAM_K, a->lk - j0);
    ptrdiff_t d = a->d, dv = a->dv;
    /* Under the causal rule, key j0 is first attended by row j0. */
    ptrdiff_t first_block = a->causal ? j0 / ATTENTION_BLOCK_Q : 0;
    FN(mla_epilogue) scaled_ep = {(T)a->scale, NULL, 0, 0, MLA_ACT_LINEAR};
    FN(mla_epilogue) plain_ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};

    for (ptrdiff_t at = job->kv_starts[group]; at < job->kv_starts[group + 1];
         at++) {
        ptrdiff_t t = job->kv_order[at];
        T *grad_k = job->grad_k + job->grad_k_offsets[t] + j0 * d;
        T *grad_v = job->grad_v + job->grad_v_offsets[t] + j0 * dv;
        const T *q = job->q + a->q_offsets[t];
        const T *d_out = job->d_out + job->d_out_offsets[t];

        for (ptrdiff_t block = first_block; block < job->q_blocks; block++) {
            ptrdiff_t i0 = block * ATTENTION_BLOCK_Q;
            ptrdiff_t m = attention_min(ATTENTION_BLOCK_Q, a->lq - i0);
            FN(attention_backward_rows)(job, s, t, i0, m);
            FN(attention_backward_block_t)(job, s, t, i0, m, j0, n, s->shift,
                                           s->alpha);

            /* The gradients start at zero, and each product adds to them. */
            FN(mla_gemm_run_update)(grad_v, dv, 1, s->probs, m, 1,
                                    d_out + i0 * job->rs_do, job->rs_do,
                                    job->cs_do, n, dv, m, 1, &plain_ep,
                                    s->gemm, 1);
            FN(mla_gemm_run_update)(grad_k, d, 1, s->grads, m, 1,
                                    q + i0 * a->rs_q, a->rs_q, a->cs_q, n, d,
                                    m, 1, &scaled_ep, s->gemm, 1);
        }
    }
}

/*
 * Backward, third pass of the block scheme: rows i0.. of dQ for one query
 * block and one group of problems, summed over the group's problems and
 * then the key blocks, in increasing order: dQ_i += scale dS K_j.
 */
static void
FN(attention_q_item)(const FN(attention_job) *job, FN(attention_scratch) *s,
                     ptrdiff_t item)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t group, i0, m;
    FN(attention_query_block)(job, item, &group, &i0, &m);
    ptrdiff_t d = a->d;
    ptrdiff_t key_end = attention_key_end(a, i0 + m);
    FN(mla_epilogue) scaled_ep = {(T)a->scale, NULL, 0, 0, MLA_ACT_LINEAR};

    for (ptrdiff_t at = job->q_starts[group]; at < job->q_starts[group + 1];
         at++) {
        ptrdiff_t t = job->q_order[at];
        T *grad_q = job->grad_q + job->grad_q_offsets[t] + i0 * d;
        const T *k = job->k + a->k_offsets[t];

        FN(attention_backward_rows)(job, s, t, i0, m);
        for (ptrdiff_t j0 = 0; j0 < key_end; j0 += ATTENTION_STREAM_K) {
            ptrdiff_t n = attention_min(ATTENTION_STREAM_K, key_end - j0);
            FN(attention_backward_block_t)(job, s, t, i0, m, j0, n, s->shift,
                                           s->alpha);
            /* dS is the block of dS^T read with swapped strides. */
            FN(mla_gemm_run_update)(grad_q, d, 1, s->grads, 1, m,
                                    k + j0 * a->rs_k, a->rs_k, a->cs_k, m, d,
                                    n, 1, &scaled_ep, s->gemm, 1);
        }
    }
}

/*
 * Compute the gradients of one whole problem t on one thread, the fused
 * scheme. For each query block it streams the output to get the
 * log-sum-exp and D. Then for each key block it recomputes P and dS once
 * and adds all three gradient products,
 *
 *     dV_j += P^T dO_i,  dK_j += scale dS^T Q_i,  dQ_i += scale dS K_j,
 *
 * in increasing i, then j. It runs only where no two problems share a
 * gradient matrix, so the item owns its rows of dQ, dK and dV.
 */
static void
FN(attention_problem_item)(const FN(attention_job) *job,
                           FN(attention_scratch) *s, ptrdiff_t t)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t d = a->d, dv = a->dv;
    T *grad_q = job->grad_q + job->grad_q_offsets[t];
    T *grad_k = job->grad_k + job->grad_k_offsets[t];
    T *grad_v = job->grad_v + job->grad_v_offsets[t];
    const T *q = job->q + a->q_offsets[t];
    const T *k = job->k + a->k_offsets[t];
    const T *d_out = job->d_out + job->d_out_offsets[t];
    FN(mla_epilogue) scaled_ep = {(T)a->scale, NULL, 0, 0, MLA_ACT_LINEAR};
    FN(mla_epilogue) plain_ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};

    for (ptrdiff_t i0 = 0; i0 < a->lq; i0 += ATTENTION_BLOCK_Q) {
        ptrdiff_t m = attention_min(ATTENTION_BLOCK_Q, a->lq - i0);
        ptrdiff_t key_end = attention_key_end(a, i0 + m);
        const T *d_out_i = d_out + i0 * job->rs_do;

        FN(attention_lse_rows)(job, s, t, i0, m);
        FN(attention_backward_rows)(job, s, t, i0, m);

        for (ptrdiff_t j0 = 0; j0 < key_end; j0 += ATTENTION_STREAM_K) {
            ptrdiff_t n = attention_min(ATTENTION_STREAM_K, key_end - j0);
            FN(attention_backward_block_t)(job, s, t, i0, m, j0, n, s->shift,
                                           s->alpha);

            /*
             * P^T and dS^T are read in place, P and dS with swapped
             * strides. The gradients are zero on entry, and each product
             * adds into them.
             */
            FN(mla_gemm_run_update)(grad_v + j0 * dv, dv, 1, s->probs, m, 1,
                                    d_out_i, job->rs_do, job->cs_do, n, dv, m,
                                    1, &plain_ep, s->gemm, 1);
            FN(mla_gemm_run_update)(grad_k + j0 * d, d, 1, s->grads, m, 1,
                                    q + i0 * a->rs_q, a->rs_q, a->cs_q, n, d,
                                    m, 1, &scaled_ep, s->gemm, 1);
            FN(mla_gemm_run_update)(grad_q + i0 * d, d, 1, s->grads, 1, m,
                                    k + j0 * a->rs_k, a->rs_k, a->cs_k, m, d,
                                    n, 1, &scaled_ep, s->gemm, 1);
        }
    }
}

/*
 * Return the slot of partial sums of chunk `chunk` of problem t. Where
 * every first chunk adds straight into dK, dV and dQ, first chunks have no
 * slot, so the slots of problem t start at its second chunk.
 */
static T *
FN(attention_slot)(const FN(attention_job) *job, ptrdiff_t t,
                   ptrdiff_t chunk)
{
    ptrdiff_t skip = job->kv_direct && job->q_direct;
    return job->partial +
           (t * (job->chunks - skip) + chunk - skip) * job->slot_size;
}

/*
 * Compute the gradients of one chunk of query blocks of one problem on one
 * thread (the whole problem when job->chunks is 1), in the row scheme,
 * where P^T and dS^T of a query block fit the scratch for all keys
 * (ATTENTION_ROWS_BYTES). For each query block i it runs five products:
 *
 *     S^T = scale K Q_i^T,  dP^T = V dO_i^T,
 *     dV += P^T dO_i,  dK += scale dS^T Q_i,  dQ_i = scale dS K,
 *
 * with P from the whole rows of S, so that no pass streams the output
 * first, and D = rowsum(dO * out) = rowsum(P * dP) comes from P and dP.
 */
static void
FN(attention_rows_item)(const FN(attention_job) *job, FN(attention_scratch) *s,
                        ptrdiff_t item)
{
    const mla_attention_args *a = job->args;
    const FN(mla_vector_kernels) *vk = FN(mla_select_vector_kernels)();
    ptrdiff_t d = a->d, dv = a->dv;
    ptrdiff_t t = item / job->chunks, chunk = item % job->chunks;
    ptrdiff_t first = chunk * job->chunk_rows;
    ptrdiff_t last = attention_min(a->lq, first + job->chunk_rows);
    T *grad_q = job->grad_q + job->grad_q_offsets[t] + first * d;
    T *grad_k = job->grad_k + job->grad_k_offsets[t];
    T *grad_v = job->grad_v + job->grad_v_offsets[t];

    /*
     * An item sums into its own slot of partial sums where another item
     * also adds into the same gradient. That is dK and dV of every chunk
     * but the first, or of every chunk where K or V is shared. It is dQ
     * where Q is shared.
     */
    T *slot = NULL;
    if (chunk > 0 || !job->kv_direct || !job->q_direct) {
        slot = FN(attention_slot)(job, t, chunk);
    }
    if (chunk > 0 || !job->kv_direct) {
        grad_k = slot;
        grad_v = slot + a->lk * d;
        for (ptrdiff_t i = 0; i < a->lk * (d + dv); i++) {
            grad_k[i] = 0;
        }
    }
    if (!job->q_direct) {
        grad_q = slot + a->lk * (d + dv);
    }
    const T *q = job->q + a->q_offsets[t];
    const T *k = job->k + a->k_offsets[t];
    const T *v = job->v + a->v_offsets[t];
    const T *d_out = job->d_out + job->d_out_offsets[t];
    FN(mla_epilogue) scaled_ep = {(T)a->scale, NULL, 0, 0, MLA_ACT_LINEAR};
    FN(mla_epilogue) plain_ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};
    ACC delta[ATTENTION_BLOCK_Q];

    for (ptrdiff_t i0 = first; i0 < last; i0 += ATTENTION_BLOCK_Q) {
        ptrdiff_t m = attention_min(ATTENTION_BLOCK_Q, last - i0);
        ptrdiff_t key_end = attention_key_end(a, i0 + m);
        const T *q_i = q + i0 * a->rs_q;
        const T *d_out_i = d_out + i0 * job->rs_do;

        /* P^T = exp(S^T - max) / sum, column by column of S^T. */
        FN(attention_transpose)(s->q_t, q_i, a->rs_q, a->cs_q, m, d);
        for (ptrdiff_t j0 = 0; j0 < key_end; j0 += ATTENTION_STREAM_K) {
            ptrdiff_t n = attention_min(ATTENTION_STREAM_K, key_end - j0);
            FN(mla_gemm_run)(s->probs + j0 * m, m, 1, k + j0 * a->rs_k,
                             a->rs_k, a->cs_k, s->q_t, m, 1, n, m, d,
                             &scaled_ep, s->gemm, 1);
        }
        FN(attention_mask_block_t)(s->probs, m, a, t, i0, m, 0, key_end);
        for (ptrdiff_t r = 0; r < m; r++) {
            s->row_max[r] = (T)-INFINITY;
            s->row_sum[r] = 0;
        }
        vk->max_columns(s->row_max, s->probs, m, key_end, m);
        for (ptrdiff_t r = 0; r < m; r++) {
            /* A row with no allowed key is shifted by 0: its P is 0. */
            s->shift[r] = s->row_max[r] == (T)-INFINITY ? 0 : s->row_max[r];
        }
        /* The sums run per key block in T, then in ACC, as when streaming. */
        for (ptrdiff_t j0 = 0; j0 < key_end; j0 += ATTENTION_STREAM_K) {
            ptrdiff_t n = attention_min(ATTENTION_STREAM_K, key_end - j0);
            for (ptrdiff_t r = 0; r < m; r++) {
                s->block_sum[r] = 0;
            }
            vk->exp_sum_columns(s->probs + j0 * m, s->probs + j0 * m, m, n,
                                s->shift, s->block_sum, m);
            for (ptrdiff_t r = 0; r < m; r++) {
                s->row_sum[r] += s->block_sum[r];
            }
        }
        for (ptrdiff_t r = 0; r < m; r++) {
            s->exponent[r] = s->row_max[r] == (T)-INFINITY
                                 ? 0
                                 : (T)(1 / s->row_sum[r]);
            delta[r] = 0;
        }

        /*
         * dP^T = V dO_i^T. Then, a key block at a time, P = exp(S - max) /
         * sum and D = rowsum(P * dP) in T, summed over the blocks in ACC;
         * and last dS = P (dP - D).
         */
        FN(attention_transpose)(s->d_out_t, d_out_i, job->rs_do, job->cs_do,
                                m, dv);
        for (ptrdiff_t j0 = 0; j0 < key_end; j0 += ATTENTION_STREAM_K) {
            ptrdiff_t n = attention_min(ATTENTION_STREAM_K, key_end - j0);
            FN(mla_gemm_run)(s->grads + j0 * m, m, 1, v + j0 * a->rs_v,
                             a->rs_v, a->cs_v, s->d_out_t, m, 1, n, m, dv,
                             &plain_ep, s->gemm, 1);
            for (ptrdiff_t r = 0; r < m; r++) {
                s->block_sum[r] = 0;
            }
            vk->scale_dot_columns(s->probs + j0 * m, s->probs + j0 * m, m, n,
                                  s->exponent, s->grads + j0 * m,
                                  s->block_sum, m);
            for (ptrdiff_t r = 0; r < m; r++) {
                delta[r] += s->block_sum[r];
            }
        }
        for (ptrdiff_t r = 0; r < m; r++) {
            s->alpha[r] = (T)delta[r];
        }
        vk->softmax_grad_columns(s->grads, s->probs, m, key_end, s->alpha, m);
        for (ptrdiff_t r = 0; r < m; r++) {
            if (s->row_max[r] == (T)-INFINITY) {
                FN(attention_zero_row_t)(s->grads, m, key_end, r);
            }
        }

        /*
         * P^T and dS^T are read in place, dS with swapped strides. dK and
         * dV start at zero and are summed over the chunk's query blocks in
         * increasing order. Each block writes its own rows of dQ.
         */
        for (ptrdiff_t j0 = 0; j0 < key_end; j0 += ATTENTION_STREAM_K) {
            ptrdiff_t n = attention_min(ATTENTION_STREAM_K, key_end - j0);
            const T *p_t = s->probs + j0 * m, *ds_t = s->grads + j0 * m;
            FN(mla_gemm_run_update)(grad_v + j0 * dv, dv, 1, p_t, m, 1,
                                    d_out_i, job->rs_do, job->cs_do, n, dv, m,
                                    1, &plain_ep, s->gemm, 1);
            FN(mla_gemm_run_update)(grad_k + j0 * d, d, 1, ds_t, m, 1, q_i,
                                    a->rs_q, a->cs_q, n, d, m, 1, &scaled_ep,
                                    s->gemm, 1);
            FN(mla_gemm_run_update)(grad_q + (i0 - first) * d, d, 1, ds_t,
                                    1, m, k + j0 * a->rs_k, a->rs_k, a->cs_k,
                                    m, d, n, j0 > 0 ? 1 : 0, &scaled_ep,
                                    s->gemm, 1);
        }
    }
}

/*
 * Add the partial dK and dV sums of kv group g into the gradients: for
 * each problem of the group in increasing order, its chunks in order.
 */
static void
FN(attention_rows_kv_sum_item)(const FN(attention_job) *job,
                               FN(attention_scratch) *s, ptrdiff_t g)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t k_size = a->lk * a->d, v_size = a->lk * a->dv;
    (void)s;

    for (ptrdiff_t at = job->kv_starts[g]; at < job->kv_starts[g + 1];
         at++) {
        ptrdiff_t t = job->kv_order[at];
        T *grad_k = job->grad_k + job->grad_k_offsets[t];
        T *grad_v = job->grad_v + job->grad_v_offsets[t];
        for (ptrdiff_t chunk = job->kv_direct; chunk < job->chunks; chunk++) {
            const T *slot = FN(attention_slot)(job, t, chunk);
            for (ptrdiff_t i = 0; i < k_size; i++) {
                grad_k[i] += slot[i];
            }
            for (ptrdiff_t i = 0; i < v_size; i++) {
                grad_v[i] += slot[k_size + i];
            }
        }
    }
}

/*
 * Add the partial dQ rows of q group g into dQ, for each problem of the
 * group in increasing order.
 */
static void
FN(attention_rows_q_sum_item)(const FN(attention_job) *job,
                              FN(attention_scratch) *s, ptrdiff_t g)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t d = a->d;
    (void)s;

    for (ptrdiff_t at = job->q_starts[g]; at < job->q_starts[g + 1]; at++) {
        ptrdiff_t t = job->q_order[at];
        for (ptrdiff_t chunk = 0; chunk < job->chunks; chunk++) {
            ptrdiff_t first = chunk * job->chunk_rows;
            ptrdiff_t rows = attention_min(a->lq, first + job->chunk_rows) -
                             first;
            T *grad_q = job->grad_q + job->grad_q_offsets[t] + first * d;
            const T *slot = FN(attention_slot)(job, t, chunk) +
                            a->lk * (d + a->dv);
            for (ptrdiff_t i = 0; i < rows * d; i++) {
                grad_q[i] += slot[i];
            }
        }
    }
}

/*
 * Choose the chunks of the row scheme: problems of batches smaller than
 * ATTENTION_FUSED_MIN_PROBLEMS split their query blocks so that there is
 * work for several threads. Set the slot of partial sums that each item
 * needs, and return 0 where all the slots would exceed
 * ATTENTION_PARTIAL_BYTES, so that the block scheme runs instead.
 */
static int
FN(attention_rows_plan)(FN(attention_job) *job, ptrdiff_t q_groups,
                        ptrdiff_t kv_groups)
{
    const mla_attention_args *a = job->args;
    ptrdiff_t batch = a->batch;
    ptrdiff_t chunks = (ATTENTION_FUSED_MIN_PROBLEMS + batch - 1) / batch;
    chunks = attention_min(chunks, job->q_blocks);
    /* Drop the chunks that whole-block rounding would leave empty. */
    ptrdiff_t chunk_blocks = (job->q_blocks + chunks - 1) / chunks;
    chunks = (job->q_blocks + chunk_blocks - 1) / chunk_blocks;
    job->chunks = chunks;
    job->chunk_rows = (job->q_blocks + chunks - 1) / chunks *
                      ATTENTION_BLOCK_Q;
    job->kv_direct = kv_groups == batch;
    job->q_direct = q_groups == batch;

    /* A slot contains dK and dV, then the chunk's rows of dQ. */
    double slot = 0;
    if (chunks > 1 || !job->kv_direct || !job->q_direct) {
        slot = (double)a->lk * (double)(a->d + a->dv);
    }
    if (!job->q_direct) {
        slot += (double)job->chunk_rows * (double)a->d;
    }
    ptrdiff_t skip = job->kv_direct && job->q_direct;
    job->slots = batch * (chunks - skip);
    if (slot * (double)job->slots * sizeof(T) >
        (double)ATTENTION_PARTIAL_BYTES) {
        return 0;
    }
    job->slot_size = (ptrdiff_t)slot;
    return 1;
}

/*
 * Compute the gradients of sum(d_out * out) with respect to Q, K and V
 * for the problems of args. grad_q, grad_k and grad_v are C-contiguous arrays of
 * the shapes of Q, K and V, zero on entry. Problem t adds to the matrices
 * at grad_*_offsets[t], so problems that share a broadcast Q, K or V add
 * into one matrix, in increasing t. dO of problem t is d_out at
 * d_out_offsets[t] with strides rs_do and cs_do.
 *
 * Memory beyond the gradients: a few integers per problem, and scratch.
 * In the row scheme each thread holds two query blocks of P for all keys,
 * at most ATTENTION_ROWS_BYTES each, and the slots of partial sums take at
 * most ATTENTION_PARTIAL_BYTES. Otherwise each thread holds one block of
 * scratch, and every query row two doubles (log-sum-exp and D).
 */
mla_status
FN(mla_attention_backward)(T *grad_q, const ptrdiff_t *grad_q_offsets,
                           T *grad_k, const ptrdiff_t *grad_k_offsets,
                           T *grad_v, const ptrdiff_t *grad_v_offsets,
                           const T *d_out, const ptrdiff_t *d_out_offsets,
                           ptrdiff_t rs_do, ptrdiff_t cs_do,
                           const mla_attention_args *args)
{
    FN(attention_job) job = {0};
    ptrdiff_t batch = args->batch, lq = args->lq, lk = args->lk;
    mla_status status = MLA_OK;

    /* With no queries or no keys every gradient stays zero. */
    if (batch == 0 || lq == 0 || lk == 0) {
        return MLA_OK;
    }
    if ((double)batch * (double)lq > (double)PTRDIFF_MAX / 16) {
        return MLA_ERR_NOMEM;
    }
    job.args = args;
    job.q = args->q;
    job.k = args->k;
    job.v = args->v;
    job.d_out = d_out;
    job.d_out_offsets = d_out_offsets;
    job.rs_do = rs_do;
    job.cs_do = cs_do;
    job.grad_q = grad_q;
    job.grad_k = grad_k;
    job.grad_v = grad_v;
    job.grad_q_offsets = grad_q_offsets;
    job.grad_k_offsets = grad_k_offsets;
    job.grad_v_offsets = grad_v_offsets;
    job.q_blocks = (lq + ATTENTION_BLOCK_Q - 1) / ATTENTION_BLOCK_Q;
    job.k_blocks = (lk + ATTENTION_STREAM_K - 1) / ATTENTION_STREAM_K;

    ptrdiff_t *index = mla_alloc(6 * (size_t)batch + 2, sizeof(ptrdiff_t));
    ACC *rows = NULL;
    if (index == NULL) {
        return MLA_ERR_NOMEM;
    }

    /* Problems that write a common gradient matrix form one group. */
    ptrdiff_t *q_order = index, *q_starts = index + batch;
    ptrdiff_t *kv_order = index + 2 * batch + 1;
    ptrdiff_t *kv_starts = index + 3 * batch + 1;
    ptrdiff_t *parent = index + 4 * batch + 2, *first = index + 5 * batch + 2;
    ptrdiff_t q_groups, kv_groups;
    attention_groups(q_order, q_starts, &q_groups, grad_q_offsets,
                     lq * args->d, NULL, 0, batch, parent, first);
    attention_groups(kv_order, kv_starts, &kv_groups, grad_k_offsets,
                     lk * args->d, grad_v_offsets, lk * args->dv, batch,
                     parent, first);
    job.q_order = q_order;
    job.q_starts = q_starts;
    job.kv_order = kv_order;
    job.kv_starts = kv_starts;

    /*
     * NOTE: for ATTENTION_FUSED_MIN_PROBLEMS or more problems the fused
     * schemes share out whole problems, so they run on at most batch
     * threads. The choice depends on the shapes alone, never on the thread
     * count, so that results stay the same for every count.
     */
    int fused = q_groups == batch && kv_groups == batch &&
                batch >= ATTENTION_FUSED_MIN_PROBLEMS;
    size_t row_bytes = (size_t)attention_min(ATTENTION_BLOCK_Q, lq) *
                       (size_t)lk * sizeof(T);
    if (row_bytes <= ATTENTION_ROWS_BYTES &&
        FN(attention_rows_plan)(&job, q_groups, kv_groups)) {
        int nthreads = attention_threads(batch * job.chunks,
                                         FN(attention_work)(args, 5));
        job.scratch = FN(attention_alloc_scratch)(
            &job, ATTENTION_BACKWARD_ROWS, nthreads);
        if (job.slot_size > 0) {
            job.partial = mla_alloc((size_t)job.slots,
                                    (size_t)job.slot_size * sizeof(T));
        }
        if (job.scratch == NULL ||
            (job.slot_size > 0 && job.partial == NULL)) {
            status = MLA_ERR_NOMEM;
            goto done;
        }
        FN(attention_run)(&job, FN(attention_rows_item), batch * job.chunks,
                          nthreads);
        if (!job.kv_direct || job.chunks > 1) {
            FN(attention_run)(&job, FN(attention_rows_kv_sum_item),
                              kv_groups, nthreads);
        }
        if (!job.q_direct) {
            FN(attention_run)(&job, FN(attention_rows_q_sum_item), q_groups,
                              nthreads);
        }
        goto done;
    }

    ptrdiff_t blocks = job.q_blocks > job.k_blocks ? job.q_blocks
                                                   : job.k_blocks;
    int nthreads = attention_threads(batch * blocks,
                                     FN(attention_work)(args, 7));
    rows = mla_alloc(2 * (size_t)batch * (size_t)lq, sizeof(ACC));
    job.scratch = FN(attention_alloc_scratch)(&job, ATTENTION_BACKWARD,
                                              nthreads);
    if (rows == NULL || job.scratch == NULL) {
        status = MLA_ERR_NOMEM;
        goto done;
    }
    job.lse = rows;
    job.delta = rows + batch * lq;
    if (fused) {
        FN(attention_run)(&job, FN(attention_problem_item), batch, nthreads);
        goto done;
    }
    FN(attention_run)(&job, FN(attention_lse_item), batch * job.q_blocks,
                      nthreads);
    FN(attention_run)(&job, FN(attention_kv_item), kv_groups * job.k_blocks,
                      nthreads);
    FN(attention_run)(&job, FN(attention_q_item), q_groups * job.q_blocks,
                      nthreads);

done:
    mla_free(job.partial);
    mla_free(rows);
    mla_free(index);
    mla_free(job.scratch);
    return status;
}
