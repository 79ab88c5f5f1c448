/*
 * dense_impl.h: dense layers forward and the gradients of the two-layer
 * network, instantiated per element type by dense.c.
 */

/*
 * y (n_out,) = act(W (n_out, n_in) x (n_in,) + b (n_out,)), W C-contiguous.
 * The product is the GEMM's matrix-vector form with the bias and the
 * activation in its epilogue. That form reads rows of W with the SIMD dot
 * kernel and shares them among threads. It needs no scratch, so nothing
 * is allocated.
 */
void
FN(mla_forward_layer)(T *y, const T *x, const T *w, const T *b,
                      ptrdiff_t n_out, ptrdiff_t n_in, mla_activation activation)
{
    FN(mla_epilogue) ep = {1, b, 1, 0, activation};
    FN(mla_gemm_run)(y, 1, 1, w, n_in, 1, x, 1, 1, n_out, 1, n_in, &ep, NULL,
                     FN(mla_gemm_threads)(n_out, 1, n_in));
}

/*
 * Y (batch, n_out) = act(X (batch, n_in) W^T + b), with W (n_out, n_in)
 * read through strides (rs_w, cs_w) and X, Y, b C-contiguous. The product
 * runs on the blocked GEMM with B = W^T, whose epilogue adds b along the
 * columns and applies the activation as each tile is stored.
 */
mla_status
FN(mla_forward_layer_batch)(T *y, const T *x, const T *w, ptrdiff_t rs_w,
                            ptrdiff_t cs_w, const T *b, ptrdiff_t batch,
                            ptrdiff_t n_out, ptrdiff_t n_in,
                            mla_activation activation)
{
    FN(mla_epilogue) ep = {1, b, 0, 1, activation};
    return FN(mla_gemm)(y, n_out, 1, x, n_in, 1, w, cs_w, rs_w, batch, n_out,
                        n_in, &ep);
}

/*
 * Gradients of L = sum((y_pred - y_true)^2) for the network
 * y_pred = sigmoid(z2), z2 = W2 a1 + b2, a1 = relu(z1), z1 = W1 x + b1.
 *
 * Shapes: x (n_in,), W1 (n_hidden, n_in), b1 (n_hidden,),
 * W2 (n_out, n_hidden), b2 (n_out,), y_true read as y_true[o * stride] (a
 * stride of 0 broadcasts one value); outputs dW1 like W1, dW2 like W2, db1
 * like b1, db2 like b2. Every array is C-contiguous.
 */
mla_status
FN(mla_simple_backprop)(T *dw1, T *dw2, T *db1, T *db2, const T *x,
                        const T *y_true, ptrdiff_t y_true_stride, const T *w1,
                        const T *w2, const T *b1, const T *b2, ptrdiff_t n_in,
                        ptrdiff_t n_hidden, ptrdiff_t n_out)
{
    T *z1 = mla_alloc((size_t)n_hidden * 2, sizeof(T));
    if (z1 == NULL) {
        return MLA_ERR_NOMEM;
    }
    T *a1 = z1 + n_hidden;

    /* Forward: z1 = W1 x + b1, a1 = relu(z1), and z2 = W2 a1 + b2 in db2. */
    FN(mla_forward_layer)(z1, x, w1, b1, n_hidden, n_in, MLA_ACT_LINEAR);
    for (ptrdiff_t j = 0; j < n_hidden; j++) {
        a1[j] = FN(relu_one)(z1[j]);
    }
    FN(mla_forward_layer)(db2, a1, w2, b2, n_out, n_hidden, MLA_ACT_LINEAR);

    /*
     * Output layer: dL/dy = 2 (y_pred - y_true), times sigmoid'(z2) gives
     * dz2, which is db2; dW2 is the outer product dz2 a1^T.
     */
    for (ptrdiff_t o = 0; o < n_out; o++) {
        T z2 = db2[o];
        T dz2 = 2 * (FN(sigmoid_one)(z2) - y_true[o * y_true_stride]) *
                FN(sigmoid_derivative_one)(z2);
        db2[o] = dz2;
        for (ptrdiff_t j = 0; j < n_hidden; j++) {
            dw2[o * n_hidden + j] = dz2 * a1[j];
        }
    }

    /*
     * Hidden layer: dz1 = (W2^T dz2) * relu'(z1), which is db1; dW1 is the
     * outer product dz1 x^T. Multiplying by relu' (rather than branching)
     * keeps a NaN in W2^T dz2 visible, as in NumPy.
     */
    for (ptrdiff_t j = 0; j < n_hidden; j++) {
        T sum = 0;
        for (ptrdiff_t o = 0; o < n_out; o++) {
            sum += w2[o * n_hidden + j] * db2[o];
        }
        db1[j] = sum * (T)(z1[j] > 0 ? 1 : 0);
    }
    for (ptrdiff_t j = 0; j < n_hidden; j++) {
        for (ptrdiff_t i = 0; i < n_in; i++) {
            dw1[j * n_in + i] = db1[j] * x[i];
        }
    }

    mla_free(z1);
    return MLA_OK;
}
