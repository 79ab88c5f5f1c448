/*
 * dense_backward_impl.h: the backward pass of a dense layer on a batch,
 * instantiated per element type by dense.c beside the forward kernels.
 *
 * The layer is Y = act(Z) with Z = X W^T + b, as in forward_layer_batch.
 * From dL/dY and the cached pre-activation Z, one call computes
 *
 *     dZ = dL/dY * act'(Z)       elementwise
 *     db = sum of dZ over the batch
 *     dW = dZ^T X
 *     dX = dZ W
 *
 * The first two share one pass over dZ. The two products run on the blocked
 * GEMM (mla_gemm_run) in one workspace allocated for both.
 */

/*
 * Write dz = d_out * act'(z) for one row of n elements, for a nonlinear
 * activation. relu has a loop of its own, which the compiler vectorizes.
 * sigmoid' and tanh' go through the vectorized kernels of vecmath.h, which
 * write into dz first. tanh'(z) = 1 - tanh(z)^2 is computed as sech(z)^2
 * with sech(z) = 2u / (1 + u^2) and u = exp(-|z|), because the textbook
 * form cancels to 0 once |tanh(z)| rounds to 1. Squaring last keeps a
 * derivative below the smallest normal number from underflowing early:
 * in float32, tanh'(52) = 2.7e-45 is a subnormal that 4 sigmoid'(104)
 * rounds to 0.
 */
static void
FN(dense_backward_row)(const FN(mla_vector_kernels) *kernels,
                       T *restrict dz, const T *restrict d_out,
                       const T *restrict z, ptrdiff_t n,
                       mla_activation activation)
{
    if (activation == MLA_ACT_RELU) {
        /*
         * Multiplying by relu' instead of selecting keeps a NaN of d_out
         * visible. The 0/1 factor is computed without a branch, which
         * would mispredict on about half of the elements of random data.
         */
        for (ptrdiff_t j = 0; j < n; j++) {
            T derivative = (T)(z[j] > 0);
            dz[j] = d_out[j] * derivative;
        }
        return;
    }
    if (activation == MLA_ACT_TANH) {
        for (ptrdiff_t j = 0; j < n; j++) {
            dz[j] = -FABS(z[j]);
        }
        kernels->exp(dz, dz, n);
        for (ptrdiff_t j = 0; j < n; j++) {
            T sech = 2 * dz[j] / (1 + dz[j] * dz[j]);
            dz[j] = d_out[j] * (sech * sech);
        }
        return;
    }
    kernels->sigmoid_derivative(dz, z, n);
    for (ptrdiff_t j = 0; j < n; j++) {
        dz[j] = d_out[j] * dz[j];
    }
}

/*
 * Shapes: d_out and z (batch, n_out), C-contiguous; x (batch, n_in) read
 * through strides (rs_x, cs_x); w (n_out, n_in) read through (rs_w, cs_w).
 * Outputs, C-contiguous: dw (n_out, n_in), db (n_out,), and dx
 * (batch, n_in) unless dx is NULL, which skips that product (a network's
 * first layer needs no gradient for its input).
 *
 * Outputs must not overlap the inputs or each other. With a linear
 * activation z is not read. db is summed in double, row by row, so it does
 * not depend on the thread count.
 */
mla_status
FN(mla_dense_backward)(T *dx, T *dw, T *db, const T *d_out, const T *x,
                       ptrdiff_t rs_x, ptrdiff_t cs_x, const T *w,
                       ptrdiff_t rs_w, ptrdiff_t cs_w, const T *z,
                       ptrdiff_t batch, ptrdiff_t n_out, ptrdiff_t n_in,
                       mla_activation activation)
{
    FN(mla_epilogue) plain = {1, NULL, 0, 0, MLA_ACT_LINEAR};
    int linear = activation == MLA_ACT_LINEAR;

    /*
     * No outputs: dW and db are empty and dX is a sum over nothing. Return
     * before the row loop, which would otherwise visit every empty row.
     */
    if (n_out == 0) {
        if (dx != NULL && n_in > 0) {
            memset(dx, 0, (size_t)batch * (size_t)n_in * sizeof(T));
        }
        return MLA_OK;
    }

    /* dW (n_out, n_in) = dZ^T (n_out, batch) X (batch, n_in). */
    int threads_w = FN(mla_gemm_threads)(n_out, n_in, batch);
    size_t work_w = FN(mla_gemm_workspace)(n_out, n_in, batch, threads_w);

    /* dX (batch, n_in) = dZ (batch, n_out) W (n_out, n_in). */
    int threads_x = FN(mla_gemm_threads)(batch, n_in, n_out);
    size_t work_x = dx == NULL ? 0
                               : FN(mla_gemm_workspace)(batch, n_in, n_out,
                                                        threads_x);

    /* One buffer: dZ (none when it equals d_out), then the GEMM workspace. */
    size_t dz_size = linear ? 0 : (size_t)batch * (size_t)n_out;
    size_t work_size = work_w > work_x ? work_w : work_x;
    if (dz_size > SIZE_MAX / sizeof(T) - work_size) {
        return MLA_ERR_NOMEM;
    }
    T *scratch = mla_alloc(dz_size + work_size, sizeof(T));
    ACC *sums = mla_alloc((size_t)n_out, sizeof(ACC));
    if (scratch == NULL || sums == NULL) {
        mla_free(scratch);
        mla_free(sums);
        return MLA_ERR_NOMEM;
    }
    /* A linear layer's dZ is d_out itself, which is only read. */
    const T *dz = linear ? d_out : scratch;
    T *work = scratch + dz_size;

    /* dZ row by row, each row added to the column sums of db at once. */
    for (ptrdiff_t j = 0; j < n_out; j++) {
        sums[j] = 0;
    }
    const FN(mla_vector_kernels) *kernels = FN(mla_select_vector_kernels)();
    for (ptrdiff_t i = 0; i < batch; i++) {
        const T *dz_row = dz + i * n_out;
        if (!linear) {
            FN(dense_backward_row)(kernels, scratch + i * n_out, d_out + i * n_out,
                                   z + i * n_out, n_out, activation);
        }
        for (ptrdiff_t j = 0; j < n_out; j++) {
            sums[j] += (ACC)dz_row[j];
        }
    }
    for (ptrdiff_t j = 0; j < n_out; j++) {
        db[j] = (T)sums[j];
    }

    /* dW: A = dZ^T is dZ read with swapped strides, B = X. */
    FN(mla_gemm_run)(dw, n_in, 1, dz, 1, n_out, x, rs_x, cs_x, n_out, n_in,
                     batch, &plain, work, threads_w);

    /* dX: A = dZ, B = W as stored. */
    if (dx != NULL) {
        FN(mla_gemm_run)(dx, n_in, 1, dz, n_out, 1, w, rs_w, cs_w, batch, n_in,
                         n_out, &plain, work, threads_x);
    }

    mla_free(scratch);
    mla_free(sums);
    return MLA_OK;
}
