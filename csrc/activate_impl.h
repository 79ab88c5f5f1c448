/*
 * activate_impl.h: scalar activations shared by the elementwise kernels and
 * by the epilogues of the fused products. Instantiated per element type
 * through dtype.h.
 */

/* Return sigmoid(x) from e = exp(-|x|), which lies in (0, 1]. */
static inline T
FN(sigmoid_one)(T x)
{
    T e = EXP(-FABS(x));
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/* max(0, x) with np.maximum semantics: NaN propagates. */
static inline T
FN(relu_one)(T x)
{
    return (x > 0 || x != x) ? x : 0;
}

/*
 * s * (1 - s) written as sigmoid(x) * sigmoid(-x) = e / (1 + e)^2 with
 * e = exp(-|x|): the textbook form cancels to 0 once s rounds to 1, this one
 * keeps full relative accuracy for large |x|.
 */
static inline T
FN(sigmoid_derivative_one)(T x)
{
    T e = EXP(-FABS(x));
    T s = 1 / (1 + e);
    return s * (e * s);
}

static inline T
FN(activate)(T x, mla_activation activation)
{
    switch (activation) {
    case MLA_ACT_RELU:
        return FN(relu_one)(x);
    case MLA_ACT_SIGMOID:
        return FN(sigmoid_one)(x);
    case MLA_ACT_TANH:
        return TANH(x);
    default:
        return x;
    }
}
