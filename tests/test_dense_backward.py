"""Tests for dense_backward: the gradients of a dense layer on a batch.

The kernel is checked against ``mla.reference.dense_backward``, against
central finite differences of a scalar loss, and against PyTorch autograd
when torch is installed.
"""

import numpy as np
import pytest
from conftest import (
    FLOAT_DTYPES,
    LAYOUTS,
    assert_close,
    assert_unchanged,
    dtype_id,
    shape_id,
    to_float64,
    to_layout,
)

import mla
from mla import _core, reference

ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear", None)

# (batch, n_in, n_out): empty axes, 1, primes, the register tiles and the
# GEMM blocks (MC = 96 rows, KC = 256 deep) on both sides.
SHAPES = [
    (0, 3, 4),
    (3, 0, 4),
    (3, 4, 0),
    (1, 1, 1),
    (2, 3, 5),
    (5, 4, 8),
    (7, 13, 3),
    (16, 17, 15),
    (97, 31, 10),
    (64, 96, 97),
    (257, 65, 33),
    (33, 257, 129),
]

GRADIENT_NAMES = ("dX", "dW", "db")


def activation_id(activation):
    return str(activation)


def layer_inputs(rng, batch, n_in, n_out, dtype=np.float64):
    """Return ``(d_out, X, W, Z)`` with standard normal entries in ``dtype``."""
    d_out = rng.standard_normal((batch, n_out)).astype(dtype)
    X = rng.standard_normal((batch, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    Z = rng.standard_normal((batch, n_out)).astype(dtype)
    return d_out, X, W, Z


def assert_gradients_close(result, expected, dtype, batch, n_out, layout="C"):
    """Compare ``(dX, dW, db)``. dW and db sum over the batch, dX over n_out."""
    assert isinstance(result, tuple)
    assert len(result) == 3
    inner = {"dX": n_out, "dW": batch, "db": batch}
    for name, actual, expected_item in zip(GRADIENT_NAMES, result, expected):
        assert_close(
            actual,
            expected_item,
            dtype,
            "reduction",
            inner=inner[name],
            scale=4.0,
            layout=f"{layout}, gradient {name}",
        )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_dense_backward_matches_reference(shape, activation, dtype, rng):
    batch, n_in, n_out = shape
    args = layer_inputs(rng, batch, n_in, n_out, dtype)

    result = mla.dense_backward(*args, activation)

    expected = reference.dense_backward(*to_float64(*args), activation)
    assert result[0].shape == (batch, n_in)
    assert result[1].shape == (n_out, n_in)
    assert result[2].shape == (n_out,)
    assert_gradients_close(result, expected, dtype, batch, n_out)


def test_dense_backward_default_relu(rng):
    args = layer_inputs(rng, 6, 5, 4)

    result = mla.dense_backward(*args)

    expected = reference.dense_backward(*args, "relu")
    assert_gradients_close(result, expected, np.float64, 6, 4)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
def test_dense_backward_without_input_grad(activation, dtype, rng):
    args = layer_inputs(rng, 9, 7, 5, dtype)

    dX, dW, db = mla.dense_backward(*args, activation, input_grad=False)

    full = mla.dense_backward(*args, activation)
    assert dX is None
    np.testing.assert_array_equal(dW, full[1])
    np.testing.assert_array_equal(db, full[2])


@pytest.mark.parametrize("w_layout", LAYOUTS)
@pytest.mark.parametrize("x_layout", LAYOUTS)
def test_dense_backward_memory_layouts(x_layout, w_layout, rng):
    d_out, X, W, Z = layer_inputs(rng, 29, 37, 23)
    d_out = to_layout(d_out, w_layout)
    X = to_layout(X, x_layout)
    W = to_layout(W, w_layout)
    Z = to_layout(Z, x_layout)

    result = mla.dense_backward(d_out, X, W, Z, "sigmoid")

    expected = reference.dense_backward(d_out, X, W, Z, "sigmoid")
    assert_gradients_close(
        result, expected, np.float64, 29, 23, layout=f"X {x_layout}, W {w_layout}"
    )


def layer_loss(X, W, b, G, activation):
    """Return ``sum(G * act(X @ W.T + b))``, whose gradient in Y is G."""
    Y = reference.forward_layer_batch(X, W, b, activation)
    return float(np.sum(G * Y))


def central_differences(loss, array, step=1e-6):
    """Return d loss / d array by central differences, one element at a time."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        upper = loss()
        array[index] = saved - step
        lower = loss()
        array[index] = saved
        gradient[index] = (upper - lower) / (2 * step)
    return gradient


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
def test_dense_backward_finite_differences(activation, rng):
    batch, n_in, n_out = 6, 5, 4
    X = rng.standard_normal((batch, n_in))
    W = rng.standard_normal((n_out, n_in))
    b = rng.standard_normal(n_out)
    G = rng.standard_normal((batch, n_out))
    Z = X @ W.T + b
    # A relu kink within one step of a pre-activation would spoil the
    # difference quotient.
    assert np.min(np.abs(Z)) > 1e-3

    dX, dW, db = mla.dense_backward(G, X, W, Z, activation)

    def loss():
        return layer_loss(X, W, b, G, activation)

    for name, actual, wrt in (("dX", dX, X), ("dW", dW, W), ("db", db, b)):
        numeric = central_differences(loss, wrt)
        np.testing.assert_allclose(
            actual, numeric, rtol=1e-6, atol=1e-8, err_msg=f"{activation} {name}"
        )


def torch_layer_gradients(torch, d_out, X, W, b, activation):
    """Return ``(dX, dW, db)`` from PyTorch autograd on the same layer."""
    X_t = torch.tensor(X, requires_grad=True)
    W_t = torch.tensor(W, requires_grad=True)
    b_t = torch.tensor(b, requires_grad=True)
    Z_t = torch.nn.functional.linear(X_t, W_t, b_t)
    if activation == "relu":
        Y_t = torch.relu(Z_t)
    elif activation == "sigmoid":
        Y_t = torch.sigmoid(Z_t)
    elif activation == "tanh":
        Y_t = torch.tanh(Z_t)
    else:
        Y_t = Z_t
    Y_t.backward(torch.tensor(d_out))
    return X_t.grad.numpy(), W_t.grad.numpy(), b_t.grad.numpy()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
def test_dense_backward_matches_torch_autograd(activation, dtype, rng):
    torch = pytest.importorskip("torch")
    batch, n_in, n_out = 33, 70, 19
    d_out, X, W, _ = layer_inputs(rng, batch, n_in, n_out, dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    Z = mla.forward_layer_batch(X, W, b, "linear")

    result = mla.dense_backward(d_out, X, W, Z, activation)

    expected = torch_layer_gradients(torch, d_out, X, W, b, activation)
    for name, actual, expected_item in zip(GRADIENT_NAMES, result, expected):
        assert actual.dtype == expected_item.dtype, name
        rtol = 1e-10 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(
            actual,
            expected_item,
            rtol=rtol,
            atol=rtol * 10,
            err_msg=f"{activation} {name} {np.dtype(dtype).name}",
        )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_dense_backward_derivative_edges(dtype):
    # One sample, identity weights: dX = dZ = d_out * act'(Z) elementwise.
    Z = np.array([[-np.inf, -40.0, -1.0, 0.0, 1e-30, 1.0, 20.0, np.inf]], dtype)
    d_out = np.ones_like(Z)
    W = np.eye(Z.shape[1], dtype=dtype)
    X = np.zeros_like(Z)

    relu_dX = mla.dense_backward(d_out, X, W, Z, "relu")[0]
    sigmoid_dX = mla.dense_backward(d_out, X, W, Z, "sigmoid")[0]
    tanh_dX = mla.dense_backward(d_out, X, W, Z, "tanh")[0]

    np.testing.assert_array_equal(relu_dX[0], [0, 0, 0, 0, 1, 1, 1, 1])
    Z64 = Z.astype(np.float64)
    assert_close(sigmoid_dX, reference.sigmoid_derivative(Z64), dtype, "elementwise")
    assert_close(
        tanh_dX,
        reference.dense_backward(d_out, X, W, Z64, "tanh")[0],
        dtype,
        "elementwise",
    )
    # 1 - tanh(20)**2 rounds to 0, but the derivative is 4 exp(-40) / (1 +
    # exp(-40))**2, about 1.7e-17, and keeps its relative accuracy.
    assert tanh_dX[0, 6] > 0
    assert tanh_dX[0, 6] == pytest.approx(4 * np.exp(-40.0), rel=1e-5)
    assert tanh_dX[0, 0] == 0
    assert tanh_dX[0, 7] == 0


def test_dense_backward_tanh_subnormal_derivative():
    # tanh'(52) = sech(52)^2 = 2.7e-45 is a float32 subnormal. It must not
    # round to 0 on the way, or an infinite weight turns inf into NaN.
    Z = np.array([[52.0, -52.0, 45.0]], np.float32)
    d_out = np.ones_like(Z)
    X = np.zeros((1, 1), np.float32)
    W = np.full((3, 1), np.inf, np.float32)

    dX, _, db = mla.dense_backward(d_out, X, W, Z, "tanh")

    expected = 1 / np.cosh(Z[0].astype(np.float64)) ** 2
    assert np.all(db > 0)
    np.testing.assert_allclose(db, expected, rtol=0.5)
    assert dX[0, 0] == np.inf


def test_dense_backward_nan_propagates(rng):
    d_out, X, W, Z = layer_inputs(rng, 4, 3, 5)
    d_out[1, 2] = np.nan
    Z[1, 2] = -1.0

    result = mla.dense_backward(d_out, X, W, Z, "relu")

    expected = reference.dense_backward(d_out, X, W, Z, "relu")
    # NaN * relu'(-1) = NaN * 0 is NaN, as in NumPy.
    assert np.isnan(result[2][2])
    assert np.isnan(result[1][2]).all()
    assert_gradients_close(result, expected, np.float64, 4, 5)


def test_dense_backward_one_two_threads_identical():
    rng = np.random.default_rng(5)
    args = layer_inputs(rng, 300, 257, 200, np.float32)
    before = mla.get_num_threads()
    try:
        mla.set_num_threads(1)
        one_thread = mla.dense_backward(*args, "tanh")
        mla.set_num_threads(2)
        two_threads = mla.dense_backward(*args, "tanh")
    finally:
        mla.set_num_threads(before)

    for name, one, two in zip(GRADIENT_NAMES, one_thread, two_threads):
        assert np.array_equal(one, two), name


LEVELS = [
    level
    for level in _core._config()["supported_levels"]
    if level in ("generic", "avx2")
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_dense_backward_each_kernel_level(dtype, level, rng):
    args = layer_inputs(rng, 101, 67, 45, dtype)
    saved = _core._config()["kernel_level"]
    _core._set_kernel_level(level)
    try:
        result = mla.dense_backward(*args, "relu")
    finally:
        _core._set_kernel_level(saved)

    expected = reference.dense_backward(*to_float64(*args), "relu")
    assert_gradients_close(result, expected, dtype, 101, 45, layout=level)


def test_dense_backward_leaves_inputs_unchanged(rng):
    args = layer_inputs(rng, 7, 6, 4)
    args = tuple(to_layout(a, "strided") for a in args)
    before = tuple(a.copy() for a in args)

    for activation in ACTIVATIONS:
        mla.dense_backward(*args, activation)

    for name, old, new in zip(("d_out", "X", "W", "Z"), before, args):
        assert_unchanged(old, new, name)


def test_dense_backward_read_only_inputs(rng):
    args = layer_inputs(rng, 5, 4, 3)
    for array in args:
        array.flags.writeable = False

    result = mla.dense_backward(*args, "linear")

    expected = reference.dense_backward(*args, "linear")
    assert_gradients_close(result, expected, np.float64, 5, 3)


@pytest.mark.parametrize(
    "changed, bad_shape",
    [
        ("d_out", (6, 4)),
        ("d_out", (5, 2)),
        ("X", (4, 4)),
        ("X", (5, 3)),
        ("W", (2, 4)),
        ("W", (3, 5)),
        ("Z", (5, 2)),
        ("Z", (6, 3)),
    ],
    ids=lambda value: value if isinstance(value, str) else shape_id(value),
)
def test_dense_backward_shape_mismatch(changed, bad_shape, rng):
    # A layer with batch = 5, n_in = 4, n_out = 3.
    names = ("d_out", "X", "W", "Z")
    args = dict(zip(names, layer_inputs(rng, 5, 4, 3)))
    args[changed] = np.ones(bad_shape)

    with pytest.raises(ValueError, match=r"^dense_backward: ") as error:
        mla.dense_backward(*(args[name] for name in names))

    assert f"{changed}={bad_shape}" in str(error.value)


@pytest.mark.parametrize("changed", ["d_out", "X", "W", "Z"])
def test_dense_backward_wrong_ndim(changed, rng):
    names = ("d_out", "X", "W", "Z")
    args = dict(zip(names, layer_inputs(rng, 5, 4, 3)))
    args[changed] = args[changed].ravel()

    with pytest.raises(ValueError, match=rf"^dense_backward: {changed} must be 2-D"):
        mla.dense_backward(*(args[name] for name in names))


def test_dense_backward_unknown_activation(rng):
    with pytest.raises(
        ValueError, match=r"^dense_backward: unknown activation"
    ) as error:
        mla.dense_backward(*layer_inputs(rng, 3, 2, 2), "softplus")

    for accepted in ("relu", "sigmoid", "tanh", "linear", "None"):
        assert accepted in str(error.value)


@pytest.mark.parametrize("flag", [None, "False", 0, 1.0, np.array([False])], ids=repr)
def test_dense_backward_input_grad_not_bool(flag, rng):
    # By truth value, "False" would compute dX and None would skip it.
    with pytest.raises(
        TypeError, match=r"^dense_backward: input_grad must be True or False; got"
    ):
        mla.dense_backward(*layer_inputs(rng, 3, 2, 2), "relu", input_grad=flag)


def test_dense_backward_input_grad_numpy_bool(rng):
    args = layer_inputs(rng, 3, 2, 2)

    assert mla.dense_backward(*args, input_grad=np.False_)[0] is None
    np.testing.assert_array_equal(
        mla.dense_backward(*args, input_grad=np.True_)[0], mla.dense_backward(*args)[0]
    )


def test_dense_backward_input_grad_keyword_only(rng):
    with pytest.raises(TypeError, match=r"dense_backward\(\) .*input_grad by keyword"):
        mla.dense_backward(*layer_inputs(rng, 3, 2, 2), "relu", False)
