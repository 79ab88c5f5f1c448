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

    /* TODO: one workspace and one parallel loop over the whole batch. */
    for (ptrdiff_t t = 0; t < batch; t++) {
        const T *qt = q + offsets[t];
        const T *kt = k + offsets[batch + t];
        const T *vt = v + offsets[2 * batch + t];
        T *wt = weights + t * lq * lk;
        T *ot = out + t * lq * dv;
        mla_status status;

        /* Scores Q K^T / sqrt(d), with K^T read through strides. */
        status = FN(mla_gemm)(wt, lk, 1, qt, rs_q, cs_q, kt, cs_k, rs_k, lq,
                              lk, d, &scores_ep);
        if (status == MLA_OK) {
            status = FN(mla_softmax)(wt, wt, lq, lk, 1);
        }
        if (status == MLA_OK) {
            status = FN(mla_gemm)(ot, dv, 1, wt, lk, 1, vt, rs_v, cs_v, lq,
                                  dv, lk, &plain_ep);
        }
        if (status != MLA_OK) {
            return status;
        }
    }
    return MLA_OK;
}
