/*
 * attention_impl.h: scaled dot-product attention with materialized
 * weights, instantiated per element type by attention.c.
 */

/*
 * For each of batch problems t: weights (lq, lk) = softmax(Q K^T / sqrt(d))
 * and out (lq, dv) = weights V, with Q (lq, d), K (lk, d), V (lk, dv).
 * Q, K and V of problem t start at the element offsets offsets[t],
 * offsets[batch + t] and offsets[2 batch + t] (broadcast batches repeat an
 * offset) and are read through their row and column strides, so broadcast
 * or transposed views cost no copy. out and weights are C-contiguous stacks
 * of batch matrices.
 *
 * The scores are written straight into weights by the GEMM, scaled in its
 * epilogue, and normalized there in place, so the only full-size buffer is
 * the weights the caller asked for. With lk == 0 the output is zero; with
 * d == 0 the scale is infinite and the scores 0 * inf = NaN, as in NumPy.
 */
mla_status
FN(mla_attention)(T *out, T *weights, const T *q, ptrdiff_t rs_q,
                  ptrdiff_t cs_q, const T *k, ptrdiff_t rs_k, ptrdiff_t cs_k,
                  const T *v, ptrdiff_t rs_v, ptrdiff_t cs_v,
                  const ptrdiff_t *offsets, ptrdiff_t batch, ptrdiff_t lq,
                  ptrdiff_t lk, ptrdiff_t d, ptrdiff_t dv)
{
    FN(mla_epilogue) scores_ep = {(T)(1 / sqrt((double)d)), NULL, 0, 0,
                                  MLA_ACT_LINEAR};
    FN(mla_epilogue) plain_ep = {1, NULL, 0, 0, MLA_ACT_LINEAR};

    /* One scratch buffer, sized for the larger of the two products. */
    int scores_threads = FN(mla_gemm_threads)(lq, lk, d);
    int output_threads = FN(mla_gemm_threads)(lq, dv, lk);
    size_t scores_work = FN(mla_gemm_workspace)(lq, lk, d, scores_threads);
    size_t output_work = FN(mla_gemm_workspace)(lq, dv, lk, output_threads);
    T *work = mla_alloc(scores_work > output_work ? scores_work : output_work,
                        sizeof(T));
    if (work == NULL) {
        return MLA_ERR_NOMEM;
    }

    /* NOTE: heads run one after another; only large products use threads. */
    mla_status status = MLA_OK;
    for (ptrdiff_t t = 0; t < batch && status == MLA_OK; t++) {
        const T *qt = q + offsets[t];
        const T *kt = k + offsets[batch + t];
        const T *vt = v + offsets[2 * batch + t];
        T *wt = weights + t * lq * lk;
        T *ot = out + t * lq * dv;

        /* Scores Q K^T / sqrt(d), with K^T read through strides. */
        FN(mla_gemm_run)(wt, lk, 1, qt, rs_q, cs_q, kt, cs_k, rs_k, lq, lk, d,
                         &scores_ep, work, scores_threads);
        status = FN(mla_softmax)(wt, wt, lq, lk, 1);
        if (status == MLA_OK) {
            FN(mla_gemm_run)(ot, dv, 1, wt, lk, 1, vt, rs_v, cs_v, lq, dv, lk,
                             &plain_ep, work, output_threads);
        }
    }
    mla_free(work);
    return status;
}
