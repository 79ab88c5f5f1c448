"""Plain NumPy versions of mla's functions, all but MLP and the configuration ones.

These are the oracle of the parity tests, the tour and the benchmarks. They
follow the same contract as the C kernels (argument names, shapes, the
zero-vector convention of cosine similarity, the list of activations) but
make no attempt to be fast, and they do not validate or convert dtypes the way
the C wrappers do: feed them float arrays.

Where the textbook formula loses precision, the reference uses the
rearranged form that the kernels use too:

- ``sigmoid`` evaluates ``exp(-|x|)`` so that large negative ``x`` neither
  overflows nor warns;
- ``sigmoid_derivative`` is ``sigmoid(x) * sigmoid(-x)``, which equals
  ``s * (1 - s)`` but keeps its relative accuracy where ``1 - s`` would
  cancel to zero.
"""

import math

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "sigmoid",
    "relu",
    "sigmoid_derivative",
    "relu_derivative",
    "forward_layer",
    "forward_layer_batch",
    "dense_backward",
    "simple_backprop",
    "matmul",
    "matmul_loop",
    "cosine_similarity",
    "cosine_similarity_matrix",
    "linear_regression",
    "softmax",
    "log_softmax",
    "softmax_cross_entropy",
    "cross_entropy_loss",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_backward",
]

ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear", None)


def sigmoid(x):
    """Return ``1 / (1 + exp(-x))`` elementwise without overflow."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(
        np.result_type(x, np.float32), copy=False
    )


def relu(x):
    """Return ``max(0, x)`` elementwise, propagating NaN."""
    return np.maximum(0, x)


def sigmoid_derivative(x):
    """Return ``s * (1 - s)`` with ``s = sigmoid(x)``, as ``s(x) * s(-x)``."""
    x = np.asarray(x)
    return sigmoid(x) * sigmoid(-x)


def relu_derivative(x):
    """Return 1.0 where ``x > 0``, else 0.0."""
    x = np.asarray(x)
    return (x > 0).astype(np.result_type(x, np.float32))


def _activate(z, activation):
    if activation == "relu":
        return relu(z)
    if activation == "sigmoid":
        return sigmoid(z)
    if activation == "tanh":
        return np.tanh(z)
    if activation == "linear" or activation is None:
        return z
    raise _unknown_activation(activation)


def _unknown_activation(activation):
    return ValueError(
        f"unknown activation {activation!r}; expected one of "
        "'relu', 'sigmoid', 'tanh', 'linear' or None"
    )


def forward_layer(x, W, b, activation="relu"):
    """Return ``act(W @ x + b)`` for one sample ``x`` of shape ``(n_in,)``."""
    return _activate(W @ x + b, activation)


def forward_layer_batch(X, W, b, activation="relu"):
    """Return ``act(X @ W.T + b)`` for a batch ``X`` of shape ``(batch, n_in)``."""
    return _activate(X @ W.T + b, activation)


def _activation_derivative(z, activation):
    if activation == "relu":
        return relu_derivative(z)
    if activation == "sigmoid":
        return sigmoid_derivative(z)
    if activation == "tanh":
        # 1 - tanh(z)**2 written as 4 * sigmoid'(2z), which does not cancel
        # to zero where tanh(z) rounds to +-1.
        return 4 * sigmoid_derivative(2 * z)
    if activation == "linear" or activation is None:
        return np.ones_like(z)
    raise _unknown_activation(activation)


def dense_backward(d_out, X, W, Z, activation="relu", *, input_grad=True):
    """Return ``(dX, dW, db)`` of the layer ``Y = act(Z)``, ``Z = X @ W.T + b``.

    ``d_out`` is the gradient of the loss with respect to ``Y`` and ``Z`` the
    cached pre-activation, both ``(batch, n_out)``. ``dX`` is None when
    ``input_grad`` is False.
    """
    dZ = d_out * _activation_derivative(Z, activation)
    dW = dZ.T @ X
    db = dZ.sum(axis=0)
    dX = dZ @ W if input_grad else None
    return dX, dW, db


def simple_backprop(x, y_true, W1, W2, b1, b2):
    """Return the gradients of the squared error of a 2-layer network.

    The network is ``sigmoid(W2 @ relu(W1 @ x + b1) + b2)``; the result is a
    dict with keys ``dW1``, ``dW2``, ``db1`` and ``db2``.
    """
    z1 = W1 @ x + b1
    a1 = relu(z1)
    z2 = W2 @ a1 + b2
    y_pred = sigmoid(z2)

    # Output layer: derivative of (y_pred - y_true)**2 times sigmoid'(z2).
    dz2 = 2 * (y_pred - y_true) * sigmoid_derivative(z2)
    dW2 = np.outer(dz2, a1)

    # Hidden layer: push dz2 back through W2, then through relu.
    dz1 = (W2.T @ dz2) * relu_derivative(z1)
    dW1 = np.outer(dz1, x)
    return {"dW1": dW1, "dW2": dW2, "db1": dz1, "db2": dz2}


def matmul(A, B):
    """Return ``np.matmul(A, B)``."""
    return np.matmul(A, B)


def matmul_loop(A, B):
    """Return ``A @ B`` for 2-D inputs, computed with a Python triple loop."""
    m, k = A.shape
    k2, n = B.shape
    if k != k2:
        raise ValueError(f"matmul_loop: shapes {A.shape} and {B.shape} do not fit")
    C = np.zeros((m, n), dtype=np.result_type(A, B))
    for i in range(m):
        for j in range(n):
            total = 0.0
            for p in range(k):
                total += A[i, p] * B[p, j]
            C[i, j] = total
    return C


def _unit_rows(X):
    """Return the rows of ``X`` divided by their norms, zero rows left zero.

    Each row is first divided by its largest magnitude, so that its norm
    neither overflows nor underflows.
    """
    scale = np.max(np.abs(X), axis=-1, keepdims=True, initial=0.0)
    scale = np.where(scale == 0, 1, scale)
    scaled = X / scale
    norms = np.linalg.norm(scaled, axis=-1, keepdims=True)
    return np.where(norms == 0, 0, scaled / np.where(norms == 0, 1, norms))


def cosine_similarity(u, v):
    """Return ``u.v / (|u| |v|)`` as a float; 0.0 when either vector is zero.

    The result is clipped to [-1, 1], where rounding can leave it just
    outside.
    """
    u = _unit_rows(np.asarray(u, dtype=np.float64))
    v = _unit_rows(np.asarray(v, dtype=np.float64))
    return float(np.clip(np.dot(u, v), -1.0, 1.0))


def cosine_similarity_matrix(X, Y=None):
    """Return the cosine similarity of the rows of ``X`` and ``Y``; zero rows give 0.

    ``Y`` defaults to ``X``, and then NumPy's product ``unit @ unit.T``
    computes one triangle and mirrors it.
    """
    unit = _unit_rows(np.asarray(X))
    other = unit if Y is None else _unit_rows(np.asarray(Y))
    return np.clip(unit @ other.T, -1.0, 1.0)


def linear_regression(X, y, regularization=0.0, method="normal"):
    """Solve ``(Xb^T Xb + lambda I) w = Xb^T y`` with ``Xb = [1, X]``.

    Returns ``w = [bias, w1, ...]``; 1-D ``X`` is one feature and 2-D ``y``
    gives one column of weights per target. ``method="qr"`` solves the same
    problem as least squares on ``Xb`` stacked over ``sqrt(lambda) I``
    through a QR factorization, whose accuracy depends on the condition
    number of ``Xb`` rather than its square.
    """
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    X_bias = np.column_stack([np.ones(len(X), dtype=X.dtype), X])
    dim = X_bias.shape[1]
    if method == "qr":
        y = np.asarray(y)
        penalty = np.sqrt(regularization) * np.eye(dim, dtype=X_bias.dtype)
        design = np.vstack([X_bias, penalty])
        target = np.concatenate([y, np.zeros((dim,) + y.shape[1:], dtype=y.dtype)])
        q, r = np.linalg.qr(design)
        return np.linalg.solve(r, q.T @ target)
    if method != "normal":
        raise ValueError(f"unknown method {method!r}; expected 'normal' or 'qr'")
    gram = X_bias.T @ X_bias
    gram = gram + regularization * np.eye(dim, dtype=gram.dtype)
    return np.linalg.solve(gram, X_bias.T @ y)


def softmax(z, axis=-1):
    """Return ``exp(z - max) / sum(exp(z - max))`` along ``axis``."""
    z_shifted = z - np.max(z, axis=axis, keepdims=True)
    exp_z = np.exp(z_shifted)
    return exp_z / np.sum(exp_z, axis=axis, keepdims=True)


def log_softmax(z, axis=-1):
    """Return ``(z - max) - log(sum(exp(z - max)))`` along ``axis``."""
    z_shifted = z - np.max(z, axis=axis, keepdims=True)
    return z_shifted - np.log(np.sum(np.exp(z_shifted), axis=axis, keepdims=True))


def softmax_cross_entropy(logits, labels, return_grad=False):
    """Return the mean cross-entropy of ``softmax(logits)`` over the batch.

    ``logits`` is ``(batch, classes)``, or ``(classes,)`` for one sample.
    ``labels`` is either integer class indices of shape ``logits.shape[:-1]``
    or probabilities shaped like ``logits``. A probability of 0 contributes 0
    even where a logit is ``-inf``. An empty batch gives 0.0. With
    ``return_grad`` the result is ``(loss, grad)``, where ``grad`` is the
    gradient of the mean loss, ``(softmax(logits) * sum(p) - p) / batch``
    row by row, which is ``(softmax - onehot) / batch`` for indices.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    batch = logits.shape[0] if logits.ndim == 2 else 1
    log_probs = log_softmax(logits, axis=-1)

    if labels.ndim == logits.ndim - 1:
        # Class indices: gather the log-probability of each label.
        index = labels[..., None]
        picked = np.take_along_axis(log_probs, index, axis=-1)
        loss = 0.0 if batch == 0 else float(-np.sum(picked) / batch)
        if not return_grad:
            return loss
        grad = np.exp(log_probs)
        at_label = np.take_along_axis(grad, index, axis=-1) - 1
        np.put_along_axis(grad, index, at_label, axis=-1)
        grad /= max(batch, 1)
        return loss, grad

    with np.errstate(invalid="ignore"):
        terms = np.where(labels == 0, 0.0, labels * log_probs)
    loss = 0.0 if batch == 0 else float(-np.sum(terms) / batch)
    if not return_grad:
        return loss
    mass = np.sum(labels, axis=-1, keepdims=True)
    grad = (np.exp(log_probs) * mass - labels) / max(batch, 1)
    return loss, grad.astype(log_probs.dtype, copy=False)


def cross_entropy_loss(y_pred, y_true):
    """Return ``-sum(y_true * log(clip(y_pred, 1e-15, 1 - 1e-15)))``."""
    epsilon = 1e-15
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return float(-np.sum(y_true * np.log(y_pred)))


def _default_scale(d):
    """Return ``1 / sqrt(d)`` as a Python float, infinite for ``d == 0``.

    A Python float keeps float32 scores in float32, where a NumPy float64
    scalar would promote them.
    """
    return 1 / math.sqrt(d) if d > 0 else math.inf


def _forbidden_keys(Lq, Lk, mask, causal):
    """Return where query i may not attend key j, or None if it may attend all."""
    forbidden = None
    if causal:
        forbidden = np.triu(np.ones((Lq, Lk), dtype=bool), k=1)
    if mask is not None:
        # asarray: ~ of a Python bool is an int (~False == -1).
        allowed = np.asarray(mask)
        forbidden = ~allowed if forbidden is None else forbidden | ~allowed
    return forbidden


def scaled_dot_product_attention(
    Q, K, V, *, mask=None, causal=False, scale=None, return_weights=True
):
    """Return ``softmax(scale * Q @ K^T, masked) @ V`` and the weights.

    ``mask`` is boolean, broadcastable to ``(..., Lq, Lk)``, True where a
    query may attend a key; ``causal`` allows keys ``j <= i`` only, counted
    from the first query and the first key. ``scale`` defaults to
    ``1 / sqrt(d)``. A query row with no allowed key gets zero weights and
    a zero output. Returns ``(output, weights)``, or the output alone when
    ``return_weights`` is False (the weights are still computed here).

    The steps run in place on the scores, so that the only temporaries of
    size ``(..., Lq, Lk)`` are the scores and, with a mask of that size,
    its negation.
    """
    Lq, d = Q.shape[-2:]
    Lk = K.shape[-2]
    if scale is None:
        scale = _default_scale(d)
    scores = Q @ np.swapaxes(K, -1, -2)
    scores *= scale
    forbidden = _forbidden_keys(Lq, Lk, mask, causal)
    if forbidden is not None:
        # A mask with more batch dimensions than Q and K widens the scores.
        shape = np.broadcast_shapes(scores.shape, forbidden.shape)
        if shape != scores.shape:
            scores = np.broadcast_to(scores, shape).copy()
        np.copyto(scores, -np.inf, where=forbidden)

    row_max = np.max(scores, axis=-1, keepdims=True, initial=-np.inf)
    no_key = row_max == -np.inf
    scores -= np.where(no_key, 0, row_max)
    np.exp(scores, out=scores)
    scores /= np.where(no_key, 1, np.sum(scores, axis=-1, keepdims=True))
    weights = scores
    np.copyto(weights, 0, where=no_key)
    # Zero rows stay zero even where V holds NaN or infinity.
    output = weights @ V
    np.copyto(output, 0, where=no_key)
    if return_weights:
        return output, weights
    return output


def _sum_to_shape(gradient, shape):
    """Sum ``gradient`` over the dimensions that broadcasting added to ``shape``."""
    extra = gradient.ndim - len(shape)
    gradient = np.sum(gradient, axis=tuple(range(extra)))
    axes = tuple(
        axis
        for axis, size in enumerate(shape)
        if size == 1 and gradient.shape[axis] != 1
    )
    return np.sum(gradient, axis=axes, keepdims=True)


def scaled_dot_product_attention_backward(
    Q, K, V, d_output, *, mask=None, causal=False, scale=None
):
    """Return ``(dQ, dK, dV)``, the gradients of ``sum(d_output * output)``.

    ``output`` is ``scaled_dot_product_attention(Q, K, V, ...)``; each
    gradient has the shape of its input, summed over broadcast dimensions.
    With ``dS = weights * (dW - rowsum(dW * weights))`` and
    ``dW = d_output @ V^T``: ``dQ = scale * dS @ K``,
    ``dK = scale * dS^T @ Q`` and ``dV = weights^T @ d_output``.
    """
    d = Q.shape[-1]
    if scale is None:
        scale = _default_scale(d)
    _, weights = scaled_dot_product_attention(
        Q, K, V, mask=mask, causal=causal, scale=scale
    )
    d_weights = d_output @ np.swapaxes(V, -1, -2)
    d_scores = weights * (
        d_weights - np.sum(d_weights * weights, axis=-1, keepdims=True)
    )
    dQ = scale * (d_scores @ K)
    dK = scale * (np.swapaxes(d_scores, -1, -2) @ Q)
    dV = np.swapaxes(weights, -1, -2) @ d_output
    return (
        _sum_to_shape(dQ, Q.shape),
        _sum_to_shape(dK, K.shape),
        _sum_to_shape(dV, V.shape),
    )
