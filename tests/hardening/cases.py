"""The registry of public functions that every hardening test runs over.

Each entry of ``CASES`` describes one public function of mla: its array
arguments as shape templates, its options, its NumPy reference, the values
on which mla must agree with that reference, and the invalid calls that are
particular to it. The property, leak, fuzz, size and stress tests read
nothing else, so covering a new function is adding one ``Case`` here. The
test ``test_registry_covers_public_api`` fails until that is done.

Shape templates
---------------
A template is a tuple of entries, one per dimension:

- a dimension name such as ``"n"``: the same size in every array that names
  it, drawn once per call;
- an integer: that fixed size;
- ``SHAPE``: any number of leading dimensions (0 to 3), identical in every
  array of the call that uses it (elementwise functions, equal shapes);
- ``BATCH``: leading batch dimensions that broadcast between the arrays
  that use it, as in ``np.matmul``;
- ``FULL_BATCH``: the broadcast of the ``BATCH`` dimensions of all the other
  arrays, in full, for an argument shaped like the result (the gradient of
  an output, say).

A function with several accepted layouts (``matmul`` with 1-D operands,
say) lists one signature per layout; a signature is a tuple of ``Array``.

Value domains
-------------
Each array draws its values from a named domain (see ``DOMAINS``), chosen so
that the property "mla agrees with the float64 reference within the
tolerance of ``conftest.TOLERANCES``" holds exactly. Where a formula
overflows, cancels or branches differently when computed in float32 rather
than float64, the domain is narrowed and the entry says why.

Budgets
-------
The tests read their sizes from the environment, so that ``pytest`` stays
quick and ``.ci/run`` (or a developer) can run them longer:
``MLA_LEAK_CALLS``, ``MLA_FUZZ_SECONDS``, ``MLA_STRESS_SECONDS`` and
hypothesis's ``--hypothesis-profile`` (``mla-dev``, ``mla-ci`` and
``mla-long``, registered in ``tests/conftest.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import mla
from mla import reference

SHAPE = "*"
BATCH = "..."
FULL_BATCH = "...+"

# Size of every named dimension in the small fixed calls of the leak, size
# and invalid-input tests, unless the entry's size range excludes it.
FIXED_SIZE = 3

# Sizes that straddle the SIMD widths and cache blocks, mixed into the
# property tests' draws.
NOTABLE_SIZES = (1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 61, 96, 97, 127)


def env_number(name, default):
    """Return the number in environment variable ``name``, else ``default``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return type(default)(text)
    except ValueError:
        raise ValueError(f"{name} must be a number; got {text!r}") from None


# ---------------------------------------------------------------------------
# Value domains


@dataclass(frozen=True)
class Domain:
    """Values an array argument draws in the property tests.

    ``bound`` limits finite magnitudes (None: the dtype's whole range, its
    largest finite value included). ``specials`` allows NaN and infinities
    at a few positions. ``integers`` restricts values to whole numbers, so
    that sums and products are exact in every dtype.
    """

    bound: float | None
    specials: bool
    integers: bool = False


DOMAINS = {
    # Every value a float can take: NaN, +-inf, subnormals, the largest
    # finite value.
    "any": Domain(bound=None, specials=True),
    # Finite values up to 1e3, subnormals included, with a few NaN and
    # infinities: sums of products neither overflow in float32 nor depend
    # on the summation order for their NaN and inf pattern.
    "bounded": Domain(bound=1e3, specials=True),
    # The same without NaN and infinities, for probability labels: with an
    # infinite probability, a float32 softmax that underflows to 0 gives a
    # gradient of 0 * inf = NaN where float64 gives inf.
    "bounded-finite": Domain(bound=1e3, specials=False),
    # Up to 4: attention's softmax amplifies the float32 rounding of large
    # scores, so only small scores keep float32 within 1e-4 of float64.
    "small": Domain(bound=4.0, specials=True),
    # The same without NaN and infinities, for the attention gradients.
    "small-finite": Domain(bound=4.0, specials=False),
    # Whole numbers up to 4, exact in float32: relu' in backprop jumps at 0,
    # and float32 rounding could move a pre-activation across it.
    "integers": Domain(bound=4.0, specials=True, integers=True),
}


# ---------------------------------------------------------------------------
# Registry entries


@dataclass(frozen=True)
class Array:
    """An array argument: its name, shape template and values.

    ``values`` is a key of ``DOMAINS``, or None for the entry's default.
    ``classes`` makes the argument an array of integer class labels in
    ``[0, dims[classes])`` instead, which keeps its integer dtype and is
    passed to the reference as it is. ``sets_dtype=False`` leaves a real
    argument out of the dtype rule, for a function that converts it to the
    dtype of its other arguments (probability labels to that of the
    logits).
    """

    name: str
    shape: tuple
    values: str | None = None
    classes: str | None = None
    sets_dtype: bool = True


def real_arrays(signature, arrays):
    """Return the arrays of a call that hold real values, not labels."""
    return [a for spec, a in zip(signature, arrays) if spec.classes is None]


def dtype_arrays(signature, arrays):
    """Return the arrays of a call whose dtypes set the result's dtype."""
    return [
        a
        for spec, a in zip(signature, arrays)
        if spec.classes is None and spec.sets_dtype
    ]


def reference_arrays(signature, arrays, dtype=np.float64):
    """Return the arrays as the reference takes them: real ones in ``dtype``."""
    return [
        np.asarray(a) if spec.classes is not None else np.asarray(a, dtype=dtype)
        for spec, a in zip(signature, arrays)
    ]


def class_labels(array, shape, dims, rng):
    """Return seeded class labels for an ``Array`` with ``classes``."""
    return rng.integers(0, max(dims[array.classes], 1), size=shape)


@dataclass(frozen=True)
class Invalid:
    """An invalid call particular to one function.

    ``change(args, kwargs)`` receives a valid call (a list of positional
    arrays and a dict of options, both copies it may modify) and returns the
    invalid one. ``error`` is the exception type mla must raise, with a
    message that starts with the function's name.
    """

    label: str
    change: Callable[[list, dict], tuple[list, dict]]
    error: type


@dataclass(frozen=True, repr=False)
class Case:
    """One public function of mla and how to test it.

    Attributes
    ----------
    name : str
        The function's name in ``mla``.
    signatures : tuple of tuple of Array
        Accepted argument layouts, in positional order. The first one is
        used for the fixed calls and the derived invalid calls.
    reference : callable
        ``reference(*arrays, **options)`` in plain NumPy, called on float64
        copies of the real arrays.
    defaults : dict
        The keyword options with their default values, in positional order
        after the arrays.
    options : callable, optional
        ``options(draw, dims, arrays)`` returns valid keyword options for
        arrays already made; ``draw`` has ``integer(lo, hi)`` and
        ``choice(seq)``, and the first choice is the plainest call.
    reference_skips : tuple of str
        Options the reference does not take (``out``).
    sizes : dict
        Size range ``(lo, hi)`` per dimension name, or a function of the
        sizes drawn so far returning one. Unlisted dimensions use 0 to the
        test's maximum.
    values : str
        Default value domain of the arrays (a key of ``DOMAINS``).
    inner : str or callable or None
        Dimension summed over, for the tolerance, or a function of the
        sizes returning its length. None means 1.
    scale : callable or None
        ``scale(arrays)`` is the magnitude of one summed term, for the
        absolute tolerance; None uses the square of the largest finite input
        magnitude (at least 1).
    expect : callable or None
        ``expect(arrays, options)`` replaces the reference where the
        documented result differs from it (the all-NaN weights of a
        regression on non-finite data).
    condition : callable or None
        ``condition(arrays, options)`` is the condition number of the solved
        system, which widens the tolerance. At or above ``max_condition``
        the result is not compared and mla may raise LinAlgError.
    invalid : tuple of Invalid
        Invalid calls beyond those derived from the signature.
    large_sizes : dict
        Sizes for the large calls of the stress and memory tests, big enough
        that the GEMM runs on several OpenMP threads. Keys are dimension
        names, or SHAPE and BATCH with a whole shape.
    """

    name: str
    signatures: tuple
    reference: Callable
    defaults: dict = field(default_factory=dict)
    options: Callable | None = None
    reference_skips: tuple = ()
    sizes: dict = field(default_factory=dict)
    values: str = "bounded"
    inner: Any = None
    scale: Callable | None = None
    expect: Callable | None = None
    condition: Callable | None = None
    max_condition: float = 1e8
    invalid: tuple = ()
    large_sizes: dict = field(default_factory=dict)

    @property
    def function(self):
        return getattr(mla, self.name)

    def inner_length(self, dims):
        if self.inner is None:
            return 1
        if callable(self.inner):
            return max(int(self.inner(dims)), 1)
        return max(dims[self.inner], 1)

    def __repr__(self):
        return f"Case({self.name})"


def unit_scale(arrays):
    """Scale of functions whose terms are normalized (softmax, cosines)."""
    return 1.0


def cross_entropy_scale(arrays):
    """Scale of a cross-entropy term: |y_true| times at most -log(1e-15)."""
    labels = arrays[1]
    finite = np.abs(labels[np.isfinite(labels)])
    return max(1.0, float(finite.max(initial=0.0))) * 35.0


def softmax_cross_entropy_scale(arrays):
    """Scale of a softmax cross-entropy term: the logits' spread times |p|.

    A row's loss is a sum of label weights times log-probabilities, which
    grow with the largest logit magnitude. Class indices weigh 1.
    """
    logits, labels = arrays
    finite = np.abs(logits[np.isfinite(logits)])
    scale = max(1.0, float(finite.max(initial=0.0)))
    if labels.ndim == logits.ndim:
        weights = np.abs(labels[np.isfinite(labels)])
        scale *= max(1.0, float(weights.max(initial=0.0)))
    return scale


# Options --------------------------------------------------------------------


def activation_options(draw, dims, arrays):
    return {"activation": draw.choice(("relu",) + tuple(reference.ACTIVATIONS))}


def softmax_options(draw, dims, arrays):
    # Axis 0 first: the fixed calls then take the path with scratch memory.
    ndim = arrays[0].ndim
    return {"axis": draw.choice((0, -1, draw.integer(-ndim, ndim - 1)))}


def attention_options(draw, dims, arrays):
    """Draw causal, scale and a boolean (lq, lk) mask, each in half the calls."""
    options = {}
    if draw.choice((False, True)):
        options["causal"] = True
    if draw.choice((False, True)):
        options["scale"] = draw.choice((0.5, 2.0))
    if draw.choice((False, True)):
        rng = np.random.default_rng(draw.integer(0, 2**31))
        options["mask"] = rng.random((dims["lq"], dims["lk"])) < 0.7
    return options


def attention_backward_options(draw, dims, arrays):
    """Draw attention_options, with a finite scale where d is 0.

    With d = 0 the default scale 1 / sqrt(d) is infinite, and every score
    becomes inf * 0 = NaN: the non-finite scores that the backward case
    leaves out (see its NOTE).
    """
    options = attention_options(draw, dims, arrays)
    if dims["d"] == 0 and "scale" not in options:
        options["scale"] = 1.0
    return options


def cross_entropy_options(draw, dims, arrays):
    return {"return_grad": draw.choice((False, True))}


def regression_options(draw, dims, arrays):
    return {"regularization": draw.choice((0.0, 0.5, 3.0))}


def matmul_result_shape(A, B):
    shape = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    if A.ndim >= 2:
        shape += (A.shape[-2],)
    if B.ndim >= 2:
        shape += (B.shape[-1],)
    return shape


def matmul_options(draw, dims, arrays):
    """Give out= in half the calls: an array of the result's shape and dtype."""
    if draw.choice((False, True)):
        A, B = arrays
        dtype = compute_dtype(A.dtype, B.dtype)
        return {"out": np.full(matmul_result_shape(A, B), np.nan, dtype=dtype)}
    return {}


# Reference adjustments -------------------------------------------------------


def regression_condition(arrays, options):
    """Condition number of the reference's regularized normal equations.

    Non-finite data has no condition number. It returns 1 there, because
    the expected result (all NaN) is then compared exactly.
    """
    X, y = arrays
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        return 1.0
    X = X.reshape(len(X), -1)
    X_bias = np.column_stack([np.ones(len(X)), X])
    gram = X_bias.T @ X_bias
    gram += options.get("regularization", 0.0) * np.eye(len(gram))
    return float(np.linalg.cond(gram))


def regression_expect(arrays, options):
    """Return all-NaN weights for non-finite data, else the reference solve."""
    X, y = arrays
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        p = 1 if X.ndim == 1 else X.shape[1]
        return np.full((p + 1,) + y.shape[1:], np.nan)
    return reference.linear_regression(X, y, **options)


def softmax_expect(arrays, options):
    """Return the reference softmax, or an empty result for an empty input."""
    (z,) = arrays
    if z.size == 0:
        return np.empty_like(z)
    return reference.softmax(z, **options)


def log_softmax_expect(arrays, options):
    """Return the reference log_softmax, or an empty result for an empty input."""
    (z,) = arrays
    if z.size == 0:
        return np.empty_like(z)
    return reference.log_softmax(z, **options)


def softmax_cross_entropy_expect(arrays, options):
    """Return the reference loss, but NaN if a row of logits is not finite.

    mla's loss is NaN when a row contains NaN or +inf, or only -inf, as its
    docstring states. The reference's ``0 log 0 = 0`` rule instead drops
    such a row's terms whose probability is 0.
    """
    logits, labels = arrays
    result = reference.softmax_cross_entropy(logits, labels, **options)
    rows = logits.reshape(-1, logits.shape[-1])
    broken = (
        np.isnan(rows).any(axis=1)
        | (rows == np.inf).any(axis=1)
        | (rows == -np.inf).all(axis=1)
    )
    if not broken.any():
        return result
    if options.get("return_grad"):
        return float("nan"), result[1]
    return float("nan")


def log_softmax_scale(arrays):
    """Scale of log_softmax: its terms grow with the spread of the logits."""
    finite = np.abs(arrays[0][np.isfinite(arrays[0])])
    return max(1.0, float(finite.max(initial=0.0)))


def attention_expect(arrays, options):
    """Return the reference attention, or zeros and empty weights with no keys.

    The reference's softmax cannot reduce over zero keys, while mla returns
    an output of zeros and empty weights, as its docstring states.
    """
    Q, K, V = arrays
    if K.shape[-2] > 0:
        return reference.scaled_dot_product_attention(Q, K, V)
    qk_batch = np.broadcast_shapes(Q.shape[:-2], K.shape[:-2])
    batch = np.broadcast_shapes(qk_batch, V.shape[:-2])
    lq, dv = Q.shape[-2], V.shape[-1]
    return np.zeros(batch + (lq, dv)), np.empty(qk_batch + (lq, 0))


def attention_backward_expect(arrays, options):
    """Return the reference gradients, or zeros with no queries or no keys.

    Without queries or keys every gradient is an empty sum, and the
    reference's temporaries of shape (..., Lq, 1) would not fit in memory
    for the 2**44 queries of the size tests.
    """
    Q, K, V, d_output = arrays
    if Q.shape[-2] == 0 or K.shape[-2] == 0:
        return np.zeros(Q.shape), np.zeros(K.shape), np.zeros(V.shape)
    return reference.scaled_dot_product_attention_backward(Q, K, V, d_output, **options)


# Invalid calls particular to one function -----------------------------------


def set_option(name, value):
    """Return an ``Invalid.change`` that sets option ``name`` to ``value``."""

    def change(args, kwargs):
        kwargs[name] = value
        return args, kwargs

    return change


def set_out(make):
    """Return an ``Invalid.change`` that sets ``out`` to ``make(args)``."""

    def change(args, kwargs):
        kwargs["out"] = make(args)
        return args, kwargs

    return change


def product_shape(args):
    return matmul_result_shape(args[0], args[1])


def read_only_out(args):
    out = np.empty(product_shape(args))
    out.setflags(write=False)
    return out


def overlapping_out(args):
    """Return an out= whose rows all share one row of memory."""
    shape = product_shape(args)
    row = np.empty(shape[-1])
    return np.lib.stride_tricks.as_strided(
        row, shape=shape, strides=(0,) * (len(shape) - 1) + (8,)
    )


def misaligned_out(args):
    shape = product_shape(args)
    buffer = np.empty(8 * int(np.prod(shape)) + 1, dtype=np.uint8)
    return np.ndarray(shape, dtype=np.float64, buffer=buffer, offset=1)


def set_label(position_value):
    """Return an ``Invalid.change`` that sets one class index of ``labels``."""

    def change(args, kwargs):
        labels = np.array(args[1])
        position, value = position_value(labels, args[0].shape[-1])
        labels.flat[position] = value
        args[1] = labels
        return args, kwargs

    return change


def float_labels(args, kwargs):
    args[1] = np.asarray(args[1], dtype=np.float64)
    return args, kwargs


def duplicated_columns(args, kwargs):
    X = np.array(args[0], dtype=np.float64)
    X[:, 1] = X[:, 0]
    args[0] = X
    return args, kwargs


ACTIVATION_INVALID = (
    Invalid("activation-unknown", set_option("activation", "softplus"), ValueError),
    Invalid("activation-not-str", set_option("activation", 1), TypeError),
)


# ---------------------------------------------------------------------------
# The registry

ELEMENTWISE = ((Array("x", (SHAPE,)),),)
ELEMENTWISE_LARGE = {SHAPE: (200, 150)}

CASES = (
    Case(
        "sigmoid",
        ELEMENTWISE,
        reference.sigmoid,
        values="any",
        large_sizes=ELEMENTWISE_LARGE,
    ),
    Case(
        "relu",
        ELEMENTWISE,
        reference.relu,
        values="any",
        large_sizes=ELEMENTWISE_LARGE,
    ),
    Case(
        "sigmoid_derivative",
        ELEMENTWISE,
        reference.sigmoid_derivative,
        values="any",
        large_sizes=ELEMENTWISE_LARGE,
    ),
    Case(
        "relu_derivative",
        ELEMENTWISE,
        reference.relu_derivative,
        values="any",
        large_sizes=ELEMENTWISE_LARGE,
    ),
    Case(
        "forward_layer",
        (
            (
                Array("x", ("n_in",)),
                Array("W", ("n_out", "n_in")),
                Array("b", ("n_out",)),
            ),
        ),
        reference.forward_layer,
        defaults={"activation": "relu"},
        options=activation_options,
        inner="n_in",
        invalid=ACTIVATION_INVALID,
        large_sizes={"n_in": 300, "n_out": 200},
    ),
    Case(
        "forward_layer_batch",
        (
            (
                Array("X", ("batch", "n_in")),
                Array("W", ("n_out", "n_in")),
                Array("b", ("n_out",)),
            ),
        ),
        reference.forward_layer_batch,
        defaults={"activation": "relu"},
        options=activation_options,
        inner="n_in",
        invalid=ACTIVATION_INVALID,
        large_sizes={"batch": 200, "n_in": 160, "n_out": 150},
    ),
    Case(
        "simple_backprop",
        tuple(
            (
                Array("x", ("n_in",)),
                Array("y_true", y_shape),
                Array("W1", ("n_hidden", "n_in")),
                Array("W2", ("n_out", "n_hidden")),
                Array("b1", ("n_hidden",)),
                Array("b2", ("n_out",)),
            )
            for y_shape in (("n_out",), (1,), ())
        ),
        reference.simple_backprop,
        values="integers",
        inner=lambda dims: max(dims["n_in"], dims["n_hidden"], dims["n_out"]),
        large_sizes={"n_in": 300, "n_hidden": 200, "n_out": 50},
    ),
    Case(
        "matmul",
        (
            (Array("A", (BATCH, "m", "k")), Array("B", (BATCH, "k", "n"))),
            (Array("A", ("k",)), Array("B", (BATCH, "k", "n"))),
            (Array("A", (BATCH, "m", "k")), Array("B", ("k",))),
            (Array("A", ("k",)), Array("B", ("k",))),
        ),
        reference.matmul,
        defaults={"out": None},
        options=matmul_options,
        reference_skips=("out",),
        inner="k",
        invalid=(
            Invalid("out-shape", set_option("out", np.empty((7, 1))), ValueError),
            Invalid(
                "out-dtype",
                set_out(lambda args: np.empty(product_shape(args), np.float32)),
                TypeError,
            ),
            Invalid("out-read-only", set_out(read_only_out), ValueError),
            Invalid("out-overlapping", set_out(overlapping_out), ValueError),
            Invalid("out-misaligned", set_out(misaligned_out), ValueError),
            Invalid("out-list", set_option("out", [[0.0]]), TypeError),
        ),
        large_sizes={"m": 200, "k": 150, "n": 160, BATCH: (2,)},
    ),
    Case(
        "matmul_loop",
        ((Array("A", ("m", "k")), Array("B", ("k", "n"))),),
        # The reference's Python triple loop is too slow for the property
        # tests' sizes; np.matmul computes the same product.
        reference.matmul,
        inner="k",
        large_sizes={"m": 60, "k": 50, "n": 40},
    ),
    Case(
        "cosine_similarity",
        ((Array("u", ("n",)), Array("v", ("n",))),),
        reference.cosine_similarity,
        values="any",
        inner="n",
        scale=unit_scale,
        large_sizes={"n": 20000},
    ),
    Case(
        "cosine_similarity_matrix",
        ((Array("X", ("n", "d")),),),
        reference.cosine_similarity_matrix,
        defaults={"Y": None},
        values="any",
        inner="d",
        scale=unit_scale,
        large_sizes={"n": 200, "d": 150},
    ),
    Case(
        "linear_regression",
        tuple(
            (Array("X", x_shape), Array("y", y_shape))
            for x_shape in (("n", "p"), ("n",))
            for y_shape in (("n",), ("n", "t"))
        ),
        reference.linear_regression,
        defaults={"regularization": 0.0, "method": "normal"},
        options=regression_options,
        values="bounded",
        # Three samples more than weights, so that random data is full rank.
        sizes={
            "p": (0, 12),
            "t": (0, 4),
            "n": lambda dims: (dims.get("p", 1) + 3, 80),
        },
        inner="n",
        expect=regression_expect,
        condition=regression_condition,
        invalid=(
            Invalid(
                "regularization-negative",
                set_option("regularization", -1.0),
                ValueError,
            ),
            Invalid(
                "regularization-nan",
                set_option("regularization", float("nan")),
                ValueError,
            ),
            Invalid("regularization-str", set_option("regularization", "1"), TypeError),
            Invalid(
                "regularization-complex", set_option("regularization", 1j), TypeError
            ),
            Invalid(
                "regularization-numpy-complex",
                set_option("regularization", np.complex64(1j)),
                TypeError,
            ),
            Invalid("singular", duplicated_columns, np.linalg.LinAlgError),
        ),
        large_sizes={"n": 2000, "p": 40, "t": 3},
    ),
    Case(
        "softmax",
        ((Array("z", (SHAPE, "n")),),),
        reference.softmax,
        defaults={"axis": -1},
        options=softmax_options,
        values="any",
        expect=softmax_expect,
        inner=lambda dims: dims["n"],
        scale=unit_scale,
        invalid=(
            Invalid("axis-out-of-range", set_option("axis", 5), np.exceptions.AxisError),
            Invalid("axis-huge", set_option("axis", 2**70), np.exceptions.AxisError),
            Invalid("axis-float", set_option("axis", 1.5), TypeError),
            Invalid("axis-bool", set_option("axis", True), TypeError),
            Invalid("axis-str", set_option("axis", "0"), TypeError),
        ),
        large_sizes={SHAPE: (300,), "n": 200},
    ),
    Case(
        "log_softmax",
        ((Array("z", (SHAPE, "n")),),),
        reference.log_softmax,
        defaults={"axis": -1},
        options=softmax_options,
        values="bounded",
        expect=log_softmax_expect,
        inner=lambda dims: dims["n"],
        scale=log_softmax_scale,
        invalid=(
            Invalid("axis-out-of-range", set_option("axis", 5), np.exceptions.AxisError),
            Invalid("axis-float", set_option("axis", 1.5), TypeError),
        ),
        large_sizes={SHAPE: (300,), "n": 200},
    ),
    Case(
        "dense_backward",
        (
            (
                Array("d_out", ("batch", "n_out")),
                Array("X", ("batch", "n_in")),
                Array("W", ("n_out", "n_in")),
                Array("Z", ("batch", "n_out")),
            ),
        ),
        reference.dense_backward,
        defaults={"activation": "relu"},
        options=activation_options,
        values="bounded",
        inner=lambda dims: max(dims["batch"], dims["n_out"]),
        invalid=ACTIVATION_INVALID,
        large_sizes={"batch": 200, "n_in": 150, "n_out": 120},
    ),
    Case(
        "cross_entropy_loss",
        ((Array("y_pred", (SHAPE,), values="any"), Array("y_true", (SHAPE,))),),
        reference.cross_entropy_loss,
        inner=lambda dims: 1,
        scale=cross_entropy_scale,
        large_sizes={SHAPE: (300, 200)},
    ),
    Case(
        "softmax_cross_entropy",
        (
            # Class indices, one per row, or one 0-d index for 1-D logits.
            (
                Array("logits", ("batch", "classes")),
                Array("labels", ("batch",), classes="classes"),
            ),
            (Array("logits", ("classes",)), Array("labels", (), classes="classes")),
            # Probabilities shaped like the logits, converted to their dtype.
            (
                Array("logits", ("batch", "classes")),
                Array(
                    "labels",
                    ("batch", "classes"),
                    values="bounded-finite",
                    sets_dtype=False,
                ),
            ),
            (
                Array("logits", ("classes",)),
                Array(
                    "labels", ("classes",), values="bounded-finite", sets_dtype=False
                ),
            ),
        ),
        reference.softmax_cross_entropy,
        defaults={"return_grad": False},
        options=cross_entropy_options,
        # Logits of any magnitude would overflow log_softmax in float32 and
        # not in the float64 reference (z - max(z) for |z| near 3e38).
        values="bounded",
        # No classes raises ValueError, as the invalid calls check.
        sizes={"classes": (1, 300)},
        inner="classes",
        scale=softmax_cross_entropy_scale,
        expect=softmax_cross_entropy_expect,
        invalid=(
            Invalid(
                "label-too-large",
                set_label(lambda labels, classes: (labels.size - 1, classes)),
                ValueError,
            ),
            Invalid(
                "label-negative",
                set_label(lambda labels, classes: (0, -1)),
                ValueError,
            ),
            Invalid("labels-float", float_labels, TypeError),
            Invalid("return-grad-str", set_option("return_grad", "yes"), TypeError),
            Invalid("no-classes", lambda args, kwargs: ([np.ones((3, 0)), args[1]], kwargs), ValueError),
        ),
        large_sizes={"batch": 300, "classes": 200},
    ),
    Case(
        "scaled_dot_product_attention",
        (
            (
                Array("Q", (BATCH, "lq", "d")),
                Array("K", (BATCH, "lk", "d")),
                Array("V", (BATCH, "lk", "dv")),
            ),
        ),
        reference.scaled_dot_product_attention,
        values="small",
        expect=attention_expect,
        inner=lambda dims: max(dims["d"], dims["lk"]),
        large_sizes={"lq": 200, "lk": 180, "d": 64, "dv": 48, BATCH: (2,)},
    ),
    Case(
        "scaled_dot_product_attention_backward",
        (
            (
                Array("Q", (BATCH, "lq", "d")),
                Array("K", (BATCH, "lk", "d")),
                Array("V", (BATCH, "lk", "dv")),
                # The gradient of the output, whose shape it must have.
                Array("d_output", (FULL_BATCH, "lq", "dv")),
            ),
        ),
        reference.scaled_dot_product_attention_backward,
        defaults={"mask": None, "causal": False, "scale": None},
        options=attention_backward_options,
        # NOTE: NaN and infinities are left out. The kernel gives a row
        # with no key to attend to (all scores -inf) zero gradients, and it
        # skips the keys past the diagonal of causal attention. NumPy's
        # formula multiplies those zero weights by NaN and gets NaN, so the
        # two spread non-finite values differently, and no rule of which
        # gradients turn NaN is written down to compare against.
        values="small-finite",
        expect=attention_backward_expect,
        # dQ sums over keys and d, dK and dV over queries, and each
        # gradient over the batch entries its input was broadcast to.
        inner=lambda dims: 9 * max(dims["lq"], dims["lk"], dims["d"], dims["dv"]),
        invalid=(
            Invalid("scale-inf", set_option("scale", float("inf")), ValueError),
            Invalid("scale-str", set_option("scale", "1"), TypeError),
            Invalid("causal-str", set_option("causal", "yes"), TypeError),
            Invalid("mask-float", set_option("mask", np.ones((3, 3))), TypeError),
            Invalid("mask-shape", set_option("mask", np.ones((4, 4), bool)), ValueError),
        ),
        large_sizes={"lq": 128, "lk": 96, "d": 32, "dv": 32, BATCH: (2,)},
    ),
)

CASES_BY_NAME = {case.name: case for case in CASES}


# ---------------------------------------------------------------------------
# Drawing calls


def compute_dtype(*dtypes):
    """Return the dtype mla computes in for arrays of these dtypes."""
    for dtype in dtypes:
        dtype = np.dtype(dtype)
        if dtype.kind != "f" or dtype.itemsize > 4:
            return np.dtype(np.float64)
    return np.dtype(np.float32)


class RandomDraw:
    """The ``draw`` interface of the templates, backed by a NumPy generator."""

    def __init__(self, rng):
        self.rng = rng

    def integer(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]


class FixedDraw:
    """The ``draw`` interface that gives one size and the first choice."""

    def __init__(self, size):
        self.size = size

    def integer(self, lo, hi):
        return min(max(self.size, lo), hi)

    def choice(self, options):
        return options[0]


def dimension_names(signature):
    """Return the named dimensions of a signature in order of appearance."""
    names = []
    for array in signature:
        for entry in array.shape:
            named = isinstance(entry, str) and entry not in (SHAPE, BATCH, FULL_BATCH)
            if named and entry not in names:
                names.append(entry)
    return names


def draw_dims(case, signature, draw, max_size, sizes=None, budget=None):
    """Draw the size of every named dimension within the entry's ranges.

    ``sizes`` fixes single dimensions (``large_sizes``, say). With
    ``budget``, the product of the nonzero sizes stays at most that, so
    that a drawn matrix product remains quick for the reference.
    """
    sizes = sizes or {}
    names = dimension_names(signature)
    # Ranges that depend on other sizes are drawn last.
    names.sort(key=lambda name: callable(case.sizes.get(name)))
    dims = {}
    product = 1
    for name in names:
        if name in sizes:
            dims[name] = sizes[name]
            continue
        bounds = case.sizes.get(name, (0, max_size))
        if callable(bounds):
            bounds = bounds(dims)
        lo, hi = bounds
        hi = min(hi, max_size)
        if budget is not None:
            hi = min(hi, budget // product)
        dims[name] = draw.integer(lo, max(lo, hi))
        product *= max(dims[name], 1)
    return dims


def draw_shapes(signature, dims, draw, sizes=None, max_rank=3, max_extent=6):
    """Return the shape of every array of a signature.

    ``SHAPE`` becomes one shape shared by every array using it, ``BATCH`` a
    broadcast batch shape of which each array takes a suffix with some
    sizes replaced by 1. ``sizes`` may fix either with a whole shape.
    ``FULL_BATCH`` becomes the broadcast of the batch shapes that the other
    arrays took.
    """
    sizes = sizes or {}
    uses = {entry for array in signature for entry in array.shape}
    shared = sizes.get(SHAPE)
    if SHAPE in uses and shared is None:
        rank = draw.integer(0, max_rank)
        shared = tuple(draw.integer(0, max_extent) for _ in range(rank))
    batch = sizes.get(BATCH)
    if BATCH in uses and batch is None:
        rank = draw.integer(0, 2)
        batch = tuple(draw.integer(0, max_extent // 2) for _ in range(rank))

    shapes = []
    batch_parts = []
    for array in signature:
        shape = []
        for entry in array.shape:
            if entry == SHAPE:
                shape.extend(shared)
            elif entry == BATCH:
                own = draw.integer(0, len(batch)) if BATCH not in sizes else len(batch)
                part = [draw.choice((size, 1)) for size in batch[len(batch) - own :]]
                batch_parts.append(tuple(part))
                shape.extend(part)
            elif entry == FULL_BATCH:
                # Filled in below, once every BATCH part is drawn.
                shape.append(FULL_BATCH)
            elif isinstance(entry, str):
                shape.append(dims[entry])
            else:
                shape.append(entry)
        shapes.append(shape)
    full = np.broadcast_shapes(*batch_parts) if batch_parts else ()
    for shape in shapes:
        if FULL_BATCH in shape:
            position = shape.index(FULL_BATCH)
            shape[position : position + 1] = full
    return [tuple(shape) for shape in shapes]


def fixed_call(
    case,
    size=FIXED_SIZE,
    seed=0,
    dtype=np.float64,
    sizes=None,
    option_seed=None,
    signature_index=0,
):
    """Return a valid call ``(args, kwargs)`` of one signature, the first by default.

    Every named dimension is ``size`` (within the entry's ranges), ``SHAPE``
    is ``(size, size + 1)`` and ``BATCH`` is ``(2,)`` unless ``sizes`` sets
    them. Values are seeded standard normal, or small integers where the
    domain is "integers". Options are the plainest (first) choices, or
    random ones with ``option_seed``.
    """
    rng = np.random.default_rng(seed)
    signature = case.signatures[signature_index]
    sizes = {SHAPE: (size, size + 1), BATCH: (2,), **(sizes or {})}
    draw = FixedDraw(size)
    dims = draw_dims(case, signature, draw, max(size, 1), sizes)
    shapes = draw_shapes(signature, dims, draw, sizes)
    args = []
    for array, shape in zip(signature, shapes):
        if array.classes is not None:
            args.append(class_labels(array, shape, dims, rng))
            continue
        if (array.values or case.values) == "integers":
            values = rng.integers(-3, 4, size=shape).astype(np.float64)
        else:
            values = rng.standard_normal(shape)
        args.append(values.astype(dtype))
    if option_seed is not None:
        draw = RandomDraw(np.random.default_rng(option_seed))
    kwargs = case.options(draw, dims, args) if case.options else {}
    return args, kwargs


def large_call(case, seed=0, dtype=np.float64):
    """Return a valid call with the entry's ``large_sizes``."""
    return fixed_call(case, size=64, seed=seed, dtype=dtype, sizes=case.large_sizes)


# ---------------------------------------------------------------------------
# Invalid calls derived from the signature


@dataclass(frozen=True)
class InvalidCall:
    """A concrete invalid call and the exception type it must raise."""

    label: str
    args: tuple
    kwargs: dict
    error: type


def wrong_ndim_shape(case, index):
    """Return a shape of the wrong dimension for argument ``index``, or None.

    Arguments with a fixed number of dimensions get one more than any
    signature accepts, variable-rank ones one fewer than the least.
    """
    ranks = set()
    variable = False
    for signature in case.signatures:
        shape = signature[index].shape
        if SHAPE in shape or BATCH in shape or FULL_BATCH in shape:
            variable = True
            ranks.add(len(shape) - 1)
        else:
            ranks.add(len(shape))
    if variable:
        rank = min(ranks) - 1
        return None if rank < 0 else (2,) * rank
    return (FIXED_SIZE,) * (max(ranks) + 1)


def mismatched_shapes(case, args):
    """Yield ``(label, index, shape)``: one argument made not to fit.

    For each array, the first named dimension that another array shares is
    made one larger. An array of shared ``SHAPE`` gets a larger first
    dimension instead. The first array using ``BATCH`` also gets a batch
    dimension that does not broadcast with the others'.
    """
    signature = case.signatures[0]
    batch_users = [i for i, array in enumerate(signature) if BATCH in array.shape]
    for index, array in enumerate(signature):
        others = {
            entry
            for other in signature
            if other is not array
            for entry in other.shape
        }
        shape = list(args[index].shape)
        # SHAPE, BATCH or FULL_BATCH, always the first entry of a template,
        # expand to len(shape) - len(template) + 1 dimensions.
        offset = len(shape) - len(array.shape)
        for position, entry in enumerate(array.shape):
            if entry in (SHAPE, BATCH, FULL_BATCH) or not isinstance(entry, str):
                continue
            if entry in others:
                shape[position + offset] += 1
                yield f"{array.name}-shape", index, tuple(shape)
                break
        else:
            if SHAPE in array.shape and SHAPE in others and shape:
                shape[0] += 1
                yield f"{array.name}-shape", index, tuple(shape)
    if len(batch_users) > 1:
        index = batch_users[0]
        core = args[index].shape[-(len(signature[index].shape) - 1) :]
        batch = args[batch_users[1]].shape[: -(len(signature[batch_users[1]].shape) - 1)]
        yield "batch-shape", index, (max(batch, default=1) + 1,) + core


def invalid_calls(case):
    """Return every invalid call of a function, derived and particular.

    Derived from the signature, per array argument: a complex, object or
    string array or None in its place, a ragged list, the wrong number of
    dimensions, and a dimension that disagrees with another argument. Per
    function: a missing argument, an extra positional argument, an unknown
    keyword and an argument given twice. Then the entry's ``invalid``.
    """
    args, kwargs = fixed_call(case)
    signature = case.signatures[0]
    calls = []

    def replaced(index, value):
        changed = list(args)
        changed[index] = value
        return tuple(changed)

    def ones(index, shape):
        # Class labels keep an integer dtype, so that only the shape is wrong.
        integer = signature[index].classes is not None
        return np.ones(shape, dtype=np.int64 if integer else np.float64)

    for index, array in enumerate(signature):
        shape = args[index].shape
        name = array.name
        calls += [
            InvalidCall(f"{name}-complex", replaced(index, np.ones(shape, complex)), kwargs, TypeError),
            InvalidCall(f"{name}-object", replaced(index, np.ones(shape, object)), kwargs, TypeError),
            InvalidCall(f"{name}-str", replaced(index, np.full(shape, "a")), kwargs, TypeError),
            InvalidCall(f"{name}-none", replaced(index, None), kwargs, TypeError),
            InvalidCall(f"{name}-ragged", replaced(index, [[1.0, 2.0], [3.0]]), kwargs, ValueError),
        ]
        bad_shape = wrong_ndim_shape(case, index)
        if bad_shape is not None:
            calls.append(
                InvalidCall(f"{name}-ndim", replaced(index, ones(index, bad_shape)), kwargs, ValueError)
            )
    for label, index, shape in mismatched_shapes(case, args):
        calls.append(InvalidCall(label, replaced(index, ones(index, shape)), kwargs, ValueError))

    positional = tuple(args) + tuple(kwargs.get(k, v) for k, v in case.defaults.items())
    calls += [
        InvalidCall("missing-argument", tuple(args[:-1]), {}, TypeError),
        InvalidCall("extra-argument", positional + (1,), {}, TypeError),
        InvalidCall("unknown-keyword", tuple(args), {**kwargs, "unknown_option": 1}, TypeError),
        InvalidCall("argument-twice", tuple(args), {**kwargs, signature[0].name: args[0]}, TypeError),
    ]
    for invalid in case.invalid:
        changed_args, changed_kwargs = invalid.change(list(args), dict(kwargs))
        calls.append(InvalidCall(invalid.label, tuple(changed_args), changed_kwargs, invalid.error))
    return calls
