"""Docstrings of the C functions in ``mla._core``.

The kernels are exported straight from the extension, so that a call goes
through no Python frame; their documentation is written here, where it is
easy to edit, and attached at import. The first line of each text is the
signature that ``inspect.signature`` and ``help`` show.
"""

_DTYPES = """\
Real input is computed in its own precision: float32 stays float32,
float64 stays float64, float16 is computed and returned as float32, and
integers, bools and long double become float64. With several inputs,
each is mapped first and the widest result wins, so float32 with an
integer or bool array gives float64."""

DOCSTRINGS = {
    "sigmoid": """sigmoid($module, x)
--

Apply the logistic sigmoid ``1 / (1 + exp(-x))`` elementwise.

The kernel evaluates ``exp(-|x|)`` only, so large negative inputs neither
overflow nor warn: ``sigmoid(-1000.0)`` is ``0.0``.

{dtypes}

Parameters
----------
x : array_like, any shape

Returns
-------
y : ndarray, same shape as x
    A NumPy scalar when x is 0-d.

Raises
------
TypeError
    If x is complex, object, string or another non-real dtype.

Examples
--------
>>> import mla
>>> mla.sigmoid([-1000.0, 0.0, 2.0])
array([0.        , 0.5       , 0.88079708])
""",
    "relu": """relu($module, x)
--

Apply ``max(0, x)`` elementwise; NaN propagates as in ``np.maximum``.

Parameters
----------
x : array_like, any shape

Returns
-------
y : ndarray, same shape as x
    A NumPy scalar when x is 0-d.

Raises
------
TypeError
    If x is complex, object, string or another non-real dtype.

Examples
--------
>>> import mla
>>> mla.relu([-2.0, 0.5, float("nan")])
array([0. , 0.5, nan])
""",
    "sigmoid_derivative": """sigmoid_derivative($module, x)
--

Compute the derivative ``s * (1 - s)`` of the sigmoid, ``s = sigmoid(x)``.

The kernel evaluates it as ``sigmoid(x) * sigmoid(-x)``, which is equal but
keeps full relative accuracy where ``1 - s`` would round to zero: the
derivative at 40.0 is about 4.2e-18, not 0.

Parameters
----------
x : array_like, any shape

Returns
-------
y : ndarray, same shape as x
    A NumPy scalar when x is 0-d.

Raises
------
TypeError
    If x is complex, object, string or another non-real dtype.

Examples
--------
>>> import mla
>>> mla.sigmoid_derivative([0.0, 40.0])
array([2.50000000e-01, 4.24835426e-18])
""",
    "relu_derivative": """relu_derivative($module, x)
--

Return 1.0 where ``x > 0`` and 0.0 elsewhere (NaN included).

Parameters
----------
x : array_like, any shape

Returns
-------
y : ndarray, same shape as x, float32 or float64
    A NumPy scalar when x is 0-d.

Raises
------
TypeError
    If x is complex, object, string or another non-real dtype.

Examples
--------
>>> import mla
>>> mla.relu_derivative([-1.0, 0.0, 3.0])
array([0., 0., 1.])
""",
    "forward_layer": """forward_layer($module, x, W, b, activation='relu')
--

Compute one dense layer for one sample: ``act(W @ x + b)``.

{dtypes}

Parameters
----------
x : array_like, shape (n_in,)
W : array_like, shape (n_out, n_in)
b : array_like, shape (n_out,)
activation : {{'relu', 'sigmoid', 'tanh', 'linear', None}}, default 'relu'
    ``'linear'`` and None return the pre-activation ``W @ x + b``.

Returns
-------
y : ndarray, shape (n_out,)

Raises
------
ValueError
    If a shape does not fit, or activation is not one of the names above
    (an unknown name is an error, not a silent linear layer).
TypeError
    If an input has a non-real dtype, or activation is not a str or None.

Examples
--------
>>> import numpy as np
>>> import mla
>>> W = np.array([[1.0, -1.0], [0.5, 0.5]])
>>> mla.forward_layer(np.array([1.0, 2.0]), W, np.zeros(2))
array([0. , 1.5])
""",
    "forward_layer_batch": """forward_layer_batch($module, X, W, b, activation='relu')
--

Compute one dense layer for a batch: ``act(X @ W.T + b)``.

The bias and the activation are applied as each tile of the product is
stored, so the layer makes one pass over its output. W is read through its
strides: passing a transposed or sliced view costs no copy.

Parameters
----------
X : array_like, shape (batch, n_in)
W : array_like, shape (n_out, n_in)
b : array_like, shape (n_out,)
activation : {{'relu', 'sigmoid', 'tanh', 'linear', None}}, default 'relu'

Returns
-------
Y : ndarray, shape (batch, n_out)

Raises
------
ValueError
    If a shape does not fit or activation is an unknown name.
TypeError
    If an input has a non-real dtype, or activation is not a str or None.

Examples
--------
>>> import numpy as np
>>> import mla
>>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
>>> mla.forward_layer_batch(X, np.eye(2), np.array([0.0, -5.0]))
array([[1., 0.],
       [3., 0.]])
""",
    "dense_backward": """dense_backward($module, d_out, X, W, Z, activation='relu', *, input_grad=True)
--

Compute the gradients of a dense layer on a batch, in one call.

The layer is ``Y = act(Z)`` with ``Z = X @ W.T + b``, as computed by
``forward_layer_batch``. From the gradient ``d_out`` of the loss with
respect to ``Y`` and the cached pre-activation ``Z``, the kernel computes
``dZ = d_out * act'(Z)`` and, in the same pass, ``db = dZ.sum(axis=0)``,
then ``dW = dZ.T @ X`` and ``dX = dZ @ W`` on the blocked matrix product.
X and W are read through their strides: transposed or sliced views cost no
copy. ``b`` itself is not needed.

``act'`` is 1 where ``Z > 0`` for relu (0 elsewhere, NaN included),
``sigmoid(Z) * sigmoid(-Z)`` for sigmoid and ``1 - tanh(Z)**2`` for tanh,
both evaluated in a form that keeps full relative accuracy for large
``|Z|``, and 1 for linear, where Z is only checked for its shape.

{dtypes}

Parameters
----------
d_out : array_like, shape (batch, n_out)
    Gradient of the loss with respect to the layer's output ``Y``.
X : array_like, shape (batch, n_in)
    The layer's input.
W : array_like, shape (n_out, n_in)
Z : array_like, shape (batch, n_out)
    The pre-activation ``X @ W.T + b`` of the forward pass.
activation : {{'relu', 'sigmoid', 'tanh', 'linear', None}}, default 'relu'
input_grad : bool, default True
    Compute ``dX``. A network's first layer needs no gradient for its
    input, and False skips that product.

Returns
-------
dX : ndarray, shape (batch, n_in), or None when input_grad is False
dW : ndarray, shape (n_out, n_in)
db : ndarray, shape (n_out,)

Raises
------
ValueError
    If a shape does not fit or activation is an unknown name.
TypeError
    If an input has a non-real dtype, activation is not a str or None, or
    input_grad is not True or False or is passed by position.

Examples
--------
>>> import numpy as np
>>> import mla
>>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
>>> W = np.array([[1.0, 0.0], [0.0, -1.0]])
>>> Z = X @ W.T
>>> dX, dW, db = mla.dense_backward(np.ones((2, 2)), X, W, Z, "relu")
>>> dW
array([[4., 6.],
       [0., 0.]])
>>> db
array([2., 0.])
>>> dX
array([[1., 0.],
       [1., 0.]])
""",
    "simple_backprop": """simple_backprop($module, x, y_true, W1, W2, b1, b2)
--

Compute the gradients of a two-layer network's squared error.

The network is ``y_pred = sigmoid(W2 @ relu(W1 @ x + b1) + b2)`` and the
loss ``sum((y_pred - y_true) ** 2)``. The output error term is
``dz2 = 2 * (y_pred - y_true) * sigmoid'(z2)``; the hidden one is
``dz1 = (W2.T @ dz2) * relu'(z1)``. The weight gradients are the outer
products ``dz2 a1^T`` and ``dz1 x^T``.

Parameters
----------
x : array_like, shape (n_in,)
y_true : array_like, shape (n_out,), (1,) or ()
    A single value is compared with every output.
W1 : array_like, shape (n_hidden, n_in)
W2 : array_like, shape (n_out, n_hidden)
b1 : array_like, shape (n_hidden,)
b2 : array_like, shape (n_out,)

Returns
-------
gradients : dict
    ``dW1`` (n_hidden, n_in), ``dW2`` (n_out, n_hidden), ``db1``
    (n_hidden,) and ``db2`` (n_out,).

Raises
------
ValueError
    If a shape does not fit.
TypeError
    If an input has a non-real dtype.

Examples
--------
>>> import numpy as np
>>> import mla
>>> grads = mla.simple_backprop(np.array([1.0, 2.0]), np.array([1.0]),
...                             np.ones((3, 2)), np.ones((1, 3)),
...                             np.zeros(3), np.zeros(1))
>>> sorted((name, g.shape) for name, g in grads.items())
[('dW1', (3, 2)), ('dW2', (1, 3)), ('db1', (3,)), ('db2', (1,))]
""",
    "matmul": """matmul($module, A, B, out=None)
--

Compute the matrix product with ``np.matmul``'s semantics.

A 1-D first operand is a row vector and a 1-D second operand a column
vector, and their axis is dropped from the result; dimensions before the
last two broadcast. Inputs may have any strides (transposed, Fortran-order,
reversed or sliced views are read in place). The kernel is a packed,
cache-blocked product with SIMD micro-kernels, on several threads for large
problems; its result does not depend on the thread count.

Unlike ``np.matmul``, integer and bool inputs are computed in float64:
integers are exact up to 2**53 in magnitude, and bools are counted (the
product of two bool matrices contains sums, not a logical OR).

Parameters
----------
A : array_like, shape (..., m, k) or (k,)
B : array_like, shape (..., k, n) or (k,)
out : ndarray, optional
    Receives the result: it must have the result's shape and dtype and be
    writeable and aligned. It may overlap A or B. It is returned.

Returns
-------
C : ndarray, shape (..., m, n) with 1-D axes dropped
    A NumPy scalar for two 1-D operands.

Raises
------
ValueError
    If an operand is 0-d, the inner dimensions differ, the batch
    dimensions do not broadcast, or out has the wrong shape, is read-only,
    is not aligned or has overlapping elements.
TypeError
    If an input has a non-real dtype, or out is not an ndarray of the
    result's dtype in native byte order.

Examples
--------
>>> import numpy as np
>>> import mla
>>> A = np.arange(6.0).reshape(2, 3)
>>> mla.matmul(A, A.T)
array([[ 5., 14.],
       [14., 50.]])
""",
    "matmul_loop": """matmul_loop($module, A, B)
--

Multiply two matrices with the textbook triple loop in C.

No blocking and no SIMD: this is the baseline that shows what cache
blocking and vector instructions buy (compare ``matmul``).

Parameters
----------
A : array_like, shape (m, k)
B : array_like, shape (k, n)

Returns
-------
C : ndarray, shape (m, n)

Raises
------
ValueError
    If an input is not 2-D or the inner dimensions differ.
TypeError
    If an input has a non-real dtype.

Examples
--------
>>> import numpy as np
>>> import mla
>>> mla.matmul_loop(np.eye(2), np.array([[1.0, 2.0], [3.0, 4.0]]))
array([[1., 2.],
       [3., 4.]])
""",
    "cosine_similarity": """cosine_similarity($module, u, v)
--

Compute the cosine similarity ``u.v / (|u| |v|)`` of two vectors.

A zero vector has no direction: its similarity with anything is 0.0, the
convention of scikit-learn and PyTorch. The norms are computed with scaling,
so entries near the overflow or underflow threshold still give the true
cosine, and the result is clamped to [-1, 1], where rounding can leave it
just outside (``np.arccos`` of it is always defined).

Parameters
----------
u, v : array_like, shape (n,)

Returns
-------
similarity : float

Raises
------
ValueError
    If an input is not 1-D or the lengths differ.
TypeError
    If an input has a non-real dtype.

Examples
--------
>>> import mla
>>> round(mla.cosine_similarity([1.0, 0.0], [1.0, 1.0]), 6)
0.707107
>>> mla.cosine_similarity([0.0, 0.0], [1.0, 1.0])
0.0
""",
    "cosine_similarity_matrix": """cosine_similarity_matrix($module, X, Y=None)
--

Compute the cosine similarity of every row of X with every row of Y.

The rows are normalized once and the similarities come from one matrix
product. Without Y (or with Y the same object as X) the rows of X are
compared with each other: only the lower triangle of the product is
computed, in blocks, and mirrored, so S is exactly symmetric. Zero rows
give 0.0, on the diagonal too; a row holding inf or NaN gives NaN; entries
are clamped to [-1, 1].

{dtypes}

Parameters
----------
X : array_like, shape (n, d)
Y : array_like, shape (m, d), optional

Returns
-------
S : ndarray, shape (n, m), or (n, n) without Y
    ``S[i, j]`` is the cosine similarity of ``X[i]`` and ``Y[j]``.

Raises
------
ValueError
    If X or Y is not 2-D, or their rows differ in length.
TypeError
    If X or Y has a non-real dtype.

Examples
--------
>>> import numpy as np
>>> import mla
>>> mla.cosine_similarity_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
array([[1., 0., 0.],
       [0., 1., 0.],
       [0., 0., 0.]])
>>> mla.cosine_similarity_matrix([[1.0, 0.0]], [[3.0, 3.0], [-1.0, 0.0]]).round(4)
array([[ 0.7071, -1.    ]])
""",
    "linear_regression": """linear_regression($module, X, y, regularization=0.0, method='normal')
--

Fit least-squares weights, with a bias, in double precision.

A column of ones is prepended to X, giving ``Xb``, and the weights
minimize ``|Xb w - y|^2 + regularization * |w|^2``; the bias is
regularized like the other weights. Each column is scaled by a power of
two near its largest magnitude first, so data near 1e150 or 1e-150
neither overflows nor underflows. The data is read once, in slabs, and
the result does not depend on the thread count.

``method="normal"`` (the default) solves the normal equations
``(Xb^T Xb + regularization * I) w = Xb^T y``: the Gram matrix and
``Xb^T y`` come from one lower-triangle matrix product, then a blocked
Cholesky factorization (pivoted LU as the fallback) solves the system.
The normal equations square the condition number of ``Xb``: features with
a large offset and a small spread (``x + 1e6`` for x in [0, 1]) lose
digits, and with an offset near 1e8 times the spread the system is
singular to working precision. Centering the features first avoids both.

``method="qr"`` factors ``Xb`` (stacked over ``sqrt(regularization) I``)
by Householder QR instead and solves the triangular system. Its error
grows with the condition number of ``Xb`` rather than its square, so it
stays accurate where the normal equations lose digits (a polynomial
design such as ``[x, x^2, ..., x^8]``, say). It is several times slower:
about five times on 100000 samples of 50 features.

Parameters
----------
X : array_like, shape (n, p) or (n,)
    1-D X is one feature.
y : array_like, shape (n,) or (n, t)
    2-D y fits one column of weights per target.
regularization : float, default 0.0
    Ridge penalty; must be finite and >= 0.
method : {{'normal', 'qr'}}, default 'normal'
    Solve the normal equations, or factor the design matrix by QR.

Returns
-------
w : ndarray, shape (p + 1,) or (p + 1, t)
    ``[bias, w1, ..., wp]``. NaN when the data hold inf or NaN. float32
    for float32 and float16 data, although the sums run in double, and
    float64 otherwise.

Raises
------
numpy.linalg.LinAlgError
    If the system is singular to working precision, for example when a
    feature repeats another one, or there are fewer samples than weights,
    and regularization is 0.
ValueError
    If regularization is negative or not finite, method is not 'normal' or
    'qr', or the shapes do not fit.
TypeError
    If an input has a non-real dtype or method is not a str.

Examples
--------
>>> import numpy as np
>>> import mla
>>> X = np.array([0.0, 1.0, 2.0, 3.0])
>>> mla.linear_regression(X, 1.0 + 2.0 * X)
array([1., 2.])
>>> mla.linear_regression(X, 1.0 + 2.0 * X, method="qr").round(12)
array([1., 2.])
""",
    "softmax": """softmax($module, z, axis=-1)
--

Compute ``exp(z - max) / sum(exp(z - max))`` along an axis.

Subtracting the maximum keeps the exponentials finite for logits of any
size. Each slice is read in two passes, with a vectorized exp: the first
finds the maximum and the sum of exponentials together, the second writes
the normalized result. Any axis works without a transposed copy. A slice
holding +inf or NaN, or only -inf, gives NaN, as the NumPy formula does; a
zero-length axis gives an empty result.

{dtypes}

Parameters
----------
z : array_like, at least 1-D
axis : int, default -1

Returns
-------
p : ndarray, same shape as z

Raises
------
numpy.exceptions.AxisError
    If axis is out of range for z.
TypeError
    If z has a non-real dtype or axis is not an integer.

Examples
--------
>>> import mla
>>> mla.softmax([2.0, 1.0, 0.5])
array([0.62853172, 0.2312239 , 0.14024438])
""",
    "log_softmax": """log_softmax($module, z, axis=-1)
--

Compute ``log(softmax(z))`` as ``(z - max) - log(sum(exp(z - max)))``.

The result stays finite and accurate for logits of any magnitude, where
``np.log(softmax(z))`` gives ``-inf`` once a probability underflows. Each
slice is read in two passes, as in ``softmax``, and any axis works without
a transposed copy. A slice holding +inf or NaN, or only
-inf, gives NaN, as the NumPy formula does; a -inf logit elsewhere gives
-inf; a zero-length axis gives an empty result.

{dtypes}

Parameters
----------
z : array_like, at least 1-D
axis : int, default -1

Returns
-------
log_p : ndarray, same shape as z

Raises
------
numpy.exceptions.AxisError
    If axis is out of range for z.
TypeError
    If z has a non-real dtype or axis is not an integer.

Examples
--------
>>> import mla
>>> mla.log_softmax([1000.0, 0.0])
array([    0., -1000.])
""",
    "softmax_cross_entropy": """softmax_cross_entropy($module, logits, labels, return_grad=False)
--

Compute the mean cross-entropy of ``softmax(logits)`` over a batch.

Each row's loss is ``-sum(p * log_softmax(z))``, where ``p`` is the one-hot
row of a class index or a row of probabilities, and the result is the mean
over the rows. The loss and the gradient come from one computation of the
log-softmax, which is stable for logits of any magnitude. A probability of 0
contributes 0 even where its logit is ``-inf`` (``0 log 0 = 0``).
Probability rows are used as given; they are not checked to sum to 1.

The computation runs in the precision of logits: float32 stays float32,
float64 stays float64, float16 is computed as float32, and integers,
bools and long double become float64. Probability labels are converted
to that precision, and the loss is accumulated in double precision.

Parameters
----------
logits : array_like, shape (batch, classes) or (classes,)
    Unnormalized log-probabilities; a 1-D array is a single sample.
labels : array_like, shape (batch,), () or the shape of logits
    Class indices in ``[0, classes)`` (an integer dtype, one per row, or a
    0-d index for 1-D logits), or target probabilities shaped like logits.
    The number of dimensions decides which form labels has, so 1-D
    integer labels for 1-D logits are read as probabilities.
return_grad : bool, default False
    Also return the gradient of the mean loss with respect to logits.

Returns
-------
loss : float
    The mean loss over the batch; 0.0 for an empty batch. A row holding NaN
    or +inf, or only -inf, makes it NaN.
grad : ndarray, same shape as logits, in the precision of the computation
    Only with ``return_grad=True``: ``(softmax(z) * sum(p) - p) / batch``
    row by row, which is ``(softmax(z) - onehot) / batch`` for indices.

Raises
------
ValueError
    If a class index is negative or not below the number of classes (the
    message names it and the valid range), logits is not 1-D or 2-D or has
    no classes, or the shape of labels fits neither form.
TypeError
    If labels shaped as class indices has a non-integer dtype (float
    indices such as ``[0.0, 2.0]`` are rejected: use ``labels.astype(int)``),
    an input has a non-real dtype, or return_grad is not True or False.

Examples
--------
>>> import numpy as np
>>> import mla
>>> logits = np.array([[2.0, 1.0, 0.5], [0.0, 0.0, 0.0]])
>>> round(mla.softmax_cross_entropy(logits, [0, 2]), 6)
0.781491
>>> loss, grad = mla.softmax_cross_entropy(logits, [0, 2], return_grad=True)
>>> grad.round(4)
array([[-0.1857,  0.1156,  0.0701],
       [ 0.1667,  0.1667, -0.3333]])
""",
    "cross_entropy_loss": """cross_entropy_loss($module, y_pred, y_true)
--

Compute ``-sum(y_true * log(clip(y_pred, 1e-15, 1 - 1e-15)))``.

The sum runs over every element (a batch of rows is summed, not averaged)
and is accumulated in double precision from partial sums of at most 16
terms in the input's precision, so float32 terms near the float32 limit
can overflow, as in NumPy. The clip keeps a predicted probability of 0
from giving an infinite loss. As in NumPy, its bounds are rounded to the
input's dtype, so in float32 the upper bound is 1 and a probability of 1
adds 0 (NaN for an infinite target).

Parameters
----------
y_pred : array_like
    Predicted probabilities.
y_true : array_like, same shape as y_pred
    Targets, for example one-hot rows.

Returns
-------
loss : float

Raises
------
ValueError
    If the shapes differ.
TypeError
    If an input has a non-real dtype.

Examples
--------
>>> import mla
>>> round(mla.cross_entropy_loss([0.7, 0.2, 0.1], [1.0, 0.0, 0.0]), 6)
0.356675
""",
    "scaled_dot_product_attention": """scaled_dot_product_attention($module, Q, K, V, *, mask=None, causal=False, scale=None, return_weights=True)
--

Compute scaled dot-product attention and, by default, its weights.

``weights = softmax(scale * Q @ K^T)`` along the keys, where the scores of
the keys that a query may not attend are -inf, and the output is
``weights @ V``. Leading (batch or head) dimensions of Q, K, V and mask
broadcast together.

A query row with no key to attend to (all masked, or Lk = 0) gets zero
weights and a zero output, not the NaN that a softmax of -inf scores
gives. Otherwise NaN and infinity propagate as in the NumPy formula
(``mla.reference``), with one exception: a NaN or infinity in a row of V
may reach the output of a query that may not attend that key, as zero
times NaN does in NumPy, or may not, since causal attention skips whole
blocks of keys beyond the diagonal.

With ``return_weights=False`` only the output is returned and the
Lq x Lk weights are never stored: the kernel visits the keys in blocks and
keeps a running max and sum per query row (the online softmax of
FlashAttention), so its memory beyond the output is a block of scores per
thread. Work is split over batch entries, heads and blocks of queries;
results do not depend on the thread count.

{dtypes}

Parameters
----------
Q : array_like, shape (..., Lq, d)
K : array_like, shape (..., Lk, d)
V : array_like, shape (..., Lk, dv)
mask : array_like of bool, optional
    Broadcastable to (..., Lq, Lk): True where a query may attend a key.
    It must have dtype bool; numbers are not converted.
causal : bool, optional
    If True, query i may attend keys 0 to i only, counted from the first
    query and the first key also when Lq != Lk. Combined with mask, a
    query may attend a key only where both allow it.
scale : float, optional
    Factor of the scores; default ``1 / sqrt(d)``, which is infinite for
    d = 0 and then gives NaN scores, as in NumPy. It must be finite.
return_weights : bool, optional
    If False, return the output alone and never store the weights.

Returns
-------
output : ndarray, shape (..., Lq, dv)
weights : ndarray, shape (..., Lq, Lk)
    Only when return_weights is True.

Raises
------
ValueError
    If an input has fewer than 2 dimensions, d or Lk differ, the batch
    dimensions do not broadcast, the mask does not broadcast to
    (..., Lq, Lk), or scale is not finite (in float32 for float32 input).
TypeError
    If Q, K or V has a non-real dtype, mask is not boolean, or scale is
    not a real number.

See Also
--------
scaled_dot_product_attention_backward : the gradients of this function.

Examples
--------
>>> import numpy as np
>>> import mla
>>> Q = K = np.eye(2)
>>> output, weights = mla.scaled_dot_product_attention(Q, K, np.eye(2))
>>> weights.round(4)
array([[0.6698, 0.3302],
       [0.3302, 0.6698]])
>>> _, weights = mla.scaled_dot_product_attention(Q, K, np.eye(2), causal=True)
>>> weights.round(4)
array([[1.    , 0.    ],
       [0.3302, 0.6698]])

A row whose keys are all masked gets zeros:

>>> mask = np.array([[True, False], [False, False]])
>>> output, weights = mla.scaled_dot_product_attention(Q, K, np.eye(2), mask=mask)
>>> output
array([[1., 0.],
       [0., 0.]])

Eight heads of 1024 queries, without storing the weights:

>>> rng = np.random.default_rng(0)
>>> Q, K, V = rng.standard_normal((3, 8, 1024, 64), dtype=np.float32)
>>> output = mla.scaled_dot_product_attention(
...     Q, K, V, causal=True, return_weights=False
... )
>>> output.shape, output.dtype
((8, 1024, 64), dtype('float32'))
""",
    "scaled_dot_product_attention_backward": """scaled_dot_product_attention_backward($module, Q, K, V, d_output, *, mask=None, causal=False, scale=None)
--

Compute the gradients of scaled dot-product attention.

Returns the gradients of ``sum(d_output * output)`` with respect to Q, K
and V, where ``output`` is ``scaled_dot_product_attention(Q, K, V,
mask=mask, causal=causal, scale=scale, return_weights=False)``. With
``dS = weights * (d_output @ V^T - D)`` and
``D = rowsum(d_output * output)``::

    dQ = scale * dS @ K,   dK = scale * dS^T @ Q,   dV = weights^T @ d_output

The weights are recomputed, never stored whole. Where min(96, Lq) query
rows of weights for all keys take at most 4 MiB, each thread holds such
a block of weights and of their gradient, and runs five products per
block. A call with fewer than four batch entries splits each entry's
query rows into up to four parts. Parts that add into one gradient,
because an input is broadcast or because they belong to one entry, sum
into partial copies of it, at most 64 MiB in all. A call with four or
more entries that share no input runs each entry whole on one thread, so
it uses at most one thread per entry. Past these limits the weights are
recomputed block by block from each query row's log-sum-exp, as in
FlashAttention-2. Memory beyond the gradients is then two numbers per
query row, a few per batch entry and a block of scores per thread. A
gradient is summed over the dimensions along which its input was
broadcast, so dQ, dK and dV have the shapes of Q, K and V. The sums run
in a fixed order, so results do not depend on the thread count. Rows
with no key to attend to contribute nothing. The mask and scale are
constants: they get no gradient.

NaN and infinity propagate as in the NumPy formula (``mla.reference``),
with two exceptions. Causal attention skips the keys past each query's
diagonal in whole blocks, so a NaN or infinity that the formula would
multiply by their zero weights may not reach the gradients. And past
the limits above, D comes from d_output and output, where the formula
takes ``rowsum(dW * weights)`` with ``dW = d_output @ V^T``: the same in
exact arithmetic, but where an infinite d_output makes one form
inf - inf = NaN, the other can give an infinity.

{dtypes}

Parameters
----------
Q : array_like, shape (..., Lq, d)
K : array_like, shape (..., Lk, d)
V : array_like, shape (..., Lk, dv)
d_output : array_like, shape of the output (..., Lq, dv)
    Gradient of the loss with respect to the output; its batch dimensions
    are those of the broadcast of Q, K, V and mask.
mask, causal, scale
    As in ``scaled_dot_product_attention``.

Returns
-------
dQ : ndarray, shape of Q
dK : ndarray, shape of K
dV : ndarray, shape of V

Raises
------
ValueError
    As in ``scaled_dot_product_attention``, or if d_output does not have
    the output's shape.
TypeError
    As in ``scaled_dot_product_attention``, or if d_output has a non-real
    dtype.

Examples
--------
>>> import numpy as np
>>> import mla
>>> Q = K = V = np.eye(2)
>>> d_output = np.array([[1.0, 0.0], [0.0, 0.0]])
>>> dQ, dK, dV = mla.scaled_dot_product_attention_backward(Q, K, V, d_output)
>>> dV.round(4)  # weights[0] routed back to the rows of V
array([[0.6698, 0.    ],
       [0.3302, 0.    ]])
""",
    "get_num_threads": """get_num_threads($module, /)
--

Return the number of threads the kernels use.

This is the value given to ``set_num_threads`` or ``MLA_NUM_THREADS``;
without either, OpenMP's default, which ``OMP_NUM_THREADS`` and
threadpoolctl control (once either is set, threadpoolctl no longer changes
it). A build without OpenMP always returns 1, and so does a process forked
after mla ran a kernel on several threads, since OpenMP's thread pool does
not survive ``fork``.

Examples
--------
>>> import mla
>>> mla.get_num_threads() >= 1
True
""",
    "set_num_threads": """set_num_threads($module, n, /)
--

Set the number of threads the kernels use, for every later call.

Small problems run on one thread whatever the setting. Results do not depend
on the thread count.

Parameters
----------
n : int or None
    From 1 to 4096, or None to remove the setting (and that of
    ``MLA_NUM_THREADS``), so that OpenMP's default applies again:
    ``OMP_NUM_THREADS`` and threadpoolctl control it.

Raises
------
ValueError
    If n is below 1 or above 4096.
TypeError
    If n is not an integer or None (a bool is rejected too).

Examples
--------
>>> import mla
>>> mla.set_num_threads(1)
>>> mla.get_num_threads()
1
>>> mla.set_num_threads(None)
""",
}


def attach(core):
    """Attach every docstring in DOCSTRINGS to its function in ``core``."""
    for name, text in DOCSTRINGS.items():
        core._add_docstring(getattr(core, name), text.format(dtypes=_DTYPES))
