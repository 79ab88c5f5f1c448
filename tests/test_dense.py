"""Tests for the dense layer kernels: forward_layer, forward_layer_batch and
simple_backprop."""

import re

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
from mla import reference

ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear", None)

# (n_in, n_out): empty, 1, primes, sizes around the SIMD widths and blocks.
LAYER_SHAPES = [
    (0, 0),
    (0, 3),
    (3, 0),
    (1, 1),
    (2, 3),
    (4, 8),
    (8, 6),
    (6, 2),
    (7, 13),
    (16, 16),
    (17, 15),
    (64, 128),
    (128, 257),
    (257, 64),
    # Split among threads in units of 256 output rows.
    (300, 700),
]

# (batch, n_in, n_out)
BATCH_SHAPES = [
    (0, 3, 4),
    (3, 0, 4),
    (3, 4, 0),
    (1, 1, 1),
    (5, 4, 8),
    (100, 4, 8),
    (8, 8, 8),
    (3, 7, 13),
    (16, 17, 15),
    (64, 64, 64),
    (33, 128, 257),
    (257, 65, 31),
    (130, 129, 128),
]

# (n_in, hidden, n_out)
BACKPROP_SHAPES = [
    (1, 1, 1),
    (2, 3, 1),
    (4, 8, 2),
    (7, 13, 5),
    (16, 33, 3),
    (65, 17, 9),
    (0, 3, 2),
    (3, 0, 2),
    (3, 4, 0),
]


def activation_id(activation):
    return str(activation)


def layer_inputs(rng, n_in, n_out, dtype, batch=None):
    """Return ``(x, W, b)`` with standard normal entries in ``dtype``."""
    x_shape = (n_in,) if batch is None else (batch, n_in)
    x = rng.standard_normal(x_shape).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    return x, W, b


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=shape_id)
def test_forward_layer_matches_reference(shape, activation, dtype, rng):
    n_in, n_out = shape
    x, W, b = layer_inputs(rng, n_in, n_out, dtype)

    result = mla.forward_layer(x, W, b, activation)

    expected = reference.forward_layer(*to_float64(x, W, b), activation)
    assert_close(result, expected, dtype, "reduction", inner=n_in)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
def test_forward_layer_default_relu(activation, rng):
    x, W, b = layer_inputs(rng, 5, 7, np.float64)

    result = mla.forward_layer(x, W, b)

    expected = reference.forward_layer(x, W, b, "relu")
    assert_close(result, expected, np.float64, "reduction", inner=5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_forward_layer_memory_layouts(layout, rng):
    x, W, b = layer_inputs(rng, 19, 11, np.float64)
    x, W, b = (to_layout(a, layout) for a in (x, W, b))

    result = mla.forward_layer(x, W, b, activation="sigmoid")

    expected = reference.forward_layer(x, W, b, "sigmoid")
    assert_close(result, expected, np.float64, "reduction", inner=19, layout=layout)


def test_forward_layer_article_network():
    # The three-layer network of the article: 4 inputs, hidden layers of 8
    # and 6 units, 2 sigmoid outputs.
    np.random.seed(42)
    W1 = np.random.randn(8, 4) * 0.5
    W2 = np.random.randn(6, 8) * 0.5
    W3 = np.random.randn(2, 6) * 0.5
    b1, b2, b3 = np.zeros(8), np.zeros(6), np.zeros(2)
    x = np.array([1.0, 2.0, 3.0, 4.0])

    h1 = mla.forward_layer(x, W1, b1, "relu")
    h2 = mla.forward_layer(h1, W2, b2, "relu")
    y = mla.forward_layer(h2, W3, b3, "sigmoid")

    expected_h1 = reference.forward_layer(x, W1, b1, "relu")
    expected_h2 = reference.forward_layer(expected_h1, W2, b2, "relu")
    expected_y = reference.forward_layer(expected_h2, W3, b3, "sigmoid")
    assert h1.shape == (8,)
    assert h2.shape == (6,)
    assert_close(y, expected_y, np.float64, "reduction", inner=8)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
@pytest.mark.parametrize("shape", BATCH_SHAPES, ids=shape_id)
def test_forward_layer_batch_matches_reference(shape, activation, dtype, rng):
    batch, n_in, n_out = shape
    X, W, b = layer_inputs(rng, n_in, n_out, dtype, batch=batch)

    result = mla.forward_layer_batch(X, W, b, activation)

    expected = reference.forward_layer_batch(*to_float64(X, W, b), activation)
    assert_close(result, expected, dtype, "reduction", inner=n_in)


@pytest.mark.parametrize("w_layout", LAYOUTS)
@pytest.mark.parametrize("x_layout", LAYOUTS)
def test_forward_layer_batch_memory_layouts(x_layout, w_layout, rng):
    X, W, b = layer_inputs(rng, 37, 23, np.float64, batch=29)
    X = to_layout(X, x_layout)
    W = to_layout(W, w_layout)
    b = to_layout(b, x_layout)

    result = mla.forward_layer_batch(X, W, b, activation="relu")

    expected = reference.forward_layer_batch(X, W, b, "relu")
    assert_close(
        result,
        expected,
        np.float64,
        "reduction",
        inner=37,
        layout=f"X {x_layout}, W {w_layout}",
    )


def test_forward_layer_batch_article_network():
    np.random.seed(42)
    W1 = np.random.randn(8, 4) * 0.5
    W2 = np.random.randn(6, 8) * 0.5
    W3 = np.random.randn(2, 6) * 0.5
    b1, b2, b3 = np.zeros(8), np.zeros(6), np.zeros(2)
    X_batch = np.random.randn(100, 4)

    H1 = mla.forward_layer_batch(X_batch, W1, b1, "relu")
    H2 = mla.forward_layer_batch(H1, W2, b2, "relu")
    Y = mla.forward_layer_batch(H2, W3, b3, "sigmoid")

    expected = reference.forward_layer_batch(X_batch, W1, b1, "relu")
    expected = reference.forward_layer_batch(expected, W2, b2, "relu")
    expected = reference.forward_layer_batch(expected, W3, b3, "sigmoid")
    assert Y.shape == (100, 2)
    assert_close(Y, expected, np.float64, "reduction", inner=8)


def test_forward_layer_batch_rows_match_single():
    rng = np.random.default_rng(7)
    X, W, b = layer_inputs(rng, 9, 5, np.float64, batch=6)

    batch_result = mla.forward_layer_batch(X, W, b, "sigmoid")

    for row in range(X.shape[0]):
        single = mla.forward_layer(X[row], W, b, "sigmoid")
        assert_close(batch_result[row], single, np.float64, "reduction", inner=9)


@pytest.mark.parametrize("name", ["softplus", "ReLU", "Tanh", "", "none", "Linear"])
@pytest.mark.parametrize("function", ["forward_layer", "forward_layer_batch"])
def test_dense_unknown_activation_name(function, name, rng):
    batch = None if function == "forward_layer" else 3
    x, W, b = layer_inputs(rng, 4, 2, np.float64, batch=batch)

    with pytest.raises(ValueError, match=rf"^{function}: ") as error:
        getattr(mla, function)(x, W, b, activation=name)

    message = str(error.value)
    assert repr(name) in message or f'"{name}"' in message
    for accepted in ("relu", "sigmoid", "tanh", "linear", "None"):
        assert accepted in message


@pytest.mark.parametrize("value", [1, 0.5, b"relu", ["relu"]], ids=repr)
@pytest.mark.parametrize("function", ["forward_layer", "forward_layer_batch"])
def test_dense_activation_not_string(function, value, rng):
    batch = None if function == "forward_layer" else 3
    x, W, b = layer_inputs(rng, 4, 2, np.float64, batch=batch)

    with pytest.raises(TypeError, match=rf"^{function}: .*activation"):
        getattr(mla, function)(x, W, b, activation=value)


@pytest.mark.parametrize(
    "x_shape, W_shape, b_shape",
    [
        ((3,), (4, 5), (4,)),
        ((5,), (4, 5), (5,)),
        ((5,), (4, 5), (1,)),
        ((0,), (4, 5), (4,)),
        ((5,), (5, 4), (5,)),
    ],
    ids=shape_id,
)
def test_forward_layer_shape_mismatch(x_shape, W_shape, b_shape):
    x, W, b = np.ones(x_shape), np.ones(W_shape), np.ones(b_shape)

    with pytest.raises(ValueError, match=r"^forward_layer: ") as error:
        mla.forward_layer(x, W, b)

    message = str(error.value)
    assert str(W_shape) in message
    if x_shape[0] != W_shape[1]:
        assert str(x_shape) in message
    if b_shape[0] != W_shape[0]:
        assert str(b_shape) in message


@pytest.mark.parametrize(
    "X_shape, W_shape, b_shape",
    [
        ((6, 3), (4, 5), (4,)),
        ((6, 5), (4, 5), (5,)),
        ((6, 5), (4, 5), (6,)),
        ((0, 3), (4, 5), (4,)),
        ((6, 5), (5, 4), (5,)),
    ],
    ids=shape_id,
)
def test_forward_layer_batch_shape_mismatch(X_shape, W_shape, b_shape):
    X, W, b = np.ones(X_shape), np.ones(W_shape), np.ones(b_shape)

    with pytest.raises(ValueError, match=r"^forward_layer_batch: ") as error:
        mla.forward_layer_batch(X, W, b)

    message = str(error.value)
    assert str(W_shape) in message
    if X_shape[1] != W_shape[1]:
        assert str(X_shape) in message
    if b_shape[0] != W_shape[0]:
        assert str(b_shape) in message


def backprop_inputs(rng, n_in, hidden, n_out, dtype=np.float64):
    """Return ``(x, y_true, W1, W2, b1, b2)`` for a network of these sizes."""
    x = rng.standard_normal(n_in).astype(dtype)
    y_true = rng.uniform(0, 1, n_out).astype(dtype)
    W1 = rng.standard_normal((hidden, n_in)).astype(dtype)
    W2 = rng.standard_normal((n_out, hidden)).astype(dtype)
    b1 = rng.standard_normal(hidden).astype(dtype)
    b2 = rng.standard_normal(n_out).astype(dtype)
    return x, y_true, W1, W2, b1, b2


def assert_gradients_close(result, expected, dtype, inner, layout="C"):
    assert isinstance(result, dict)
    assert set(result) == {"dW1", "dW2", "db1", "db2"}
    for key in ("dW1", "dW2", "db1", "db2"):
        assert_close(
            result[key],
            expected[key],
            dtype,
            "reduction",
            inner=inner,
            layout=f"{layout}, gradient {key}",
        )


def test_simple_backprop_article_example():
    # The article draws, after seeding with 42, the weights of its 3-layer
    # network and a batch before the small network used for backpropagation.
    np.random.seed(42)
    np.random.randn(8, 4)
    np.random.randn(6, 8)
    np.random.randn(2, 6)
    np.random.randn(100, 4)
    W1_small = np.random.randn(3, 2)
    b1_small = np.zeros(3)
    W2_small = np.random.randn(1, 3)
    b2_small = np.zeros(1)
    x = np.array([1.0, 2.0])
    y_true = np.array([1.0])
    args = (x, y_true, W1_small, W2_small, b1_small, b2_small)

    grads = mla.simple_backprop(*args)

    expected = reference.simple_backprop(*args)
    assert grads["dW1"].shape == (3, 2)
    assert grads["dW2"].shape == (1, 3)
    assert grads["db1"].shape == (3,)
    assert grads["db2"].shape == (1,)
    assert_gradients_close(grads, expected, np.float64, inner=3)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", BACKPROP_SHAPES, ids=shape_id)
def test_simple_backprop_matches_reference(shape, dtype, rng):
    args = backprop_inputs(rng, *shape, dtype=dtype)

    grads = mla.simple_backprop(*args)

    expected = reference.simple_backprop(*to_float64(*args))
    assert_gradients_close(grads, expected, dtype, inner=max(shape))


@pytest.mark.parametrize(
    "y_shape", [(), (1,), (3,)], ids=["0-d", "length-1", "length-n_out"]
)
def test_simple_backprop_target_shapes(y_shape, rng):
    x, _, W1, W2, b1, b2 = backprop_inputs(rng, 4, 5, 3)
    y_true = rng.uniform(0, 1, y_shape)

    grads = mla.simple_backprop(x, y_true, W1, W2, b1, b2)

    expected = reference.simple_backprop(x, y_true, W1, W2, b1, b2)
    assert_gradients_close(grads, expected, np.float64, inner=5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_simple_backprop_memory_layouts(layout, rng):
    args = backprop_inputs(rng, 11, 13, 6)
    args = tuple(to_layout(a, layout) for a in args)

    grads = mla.simple_backprop(*args)

    expected = reference.simple_backprop(*args)
    assert_gradients_close(grads, expected, np.float64, inner=13, layout=layout)


def test_simple_backprop_inactive_hidden_units():
    # Hidden units with negative pre-activation pass no gradient back.
    x = np.array([1.0, 2.0])
    W1 = np.array([[1.0, 1.0], [-1.0, -1.0], [0.5, -2.0]])
    b1 = np.zeros(3)
    W2 = np.array([[0.3, 0.7, -0.2]])
    b2 = np.zeros(1)
    y_true = np.array([1.0])

    grads = mla.simple_backprop(x, y_true, W1, W2, b1, b2)

    np.testing.assert_array_equal(grads["db1"][1:], [0.0, 0.0])
    np.testing.assert_array_equal(grads["dW1"][1:], np.zeros((2, 2)))
    assert grads["db1"][0] != 0


@pytest.mark.parametrize(
    "changed, bad_shape",
    [
        ("x", (5,)),
        ("y_true", (4,)),
        ("y_true", (2, 3)),
        ("W1", (5, 3)),
        ("W2", (3, 6)),
        ("b1", (4,)),
        ("b2", (2,)),
    ],
    ids=lambda value: value if isinstance(value, str) else shape_id(value),
)
def test_simple_backprop_shape_mismatch(changed, bad_shape, rng):
    # Network with n_in = 4, hidden = 5, n_out = 3.
    names = ("x", "y_true", "W1", "W2", "b1", "b2")
    args = dict(zip(names, backprop_inputs(rng, 4, 5, 3)))
    args[changed] = np.ones(bad_shape)

    with pytest.raises(ValueError, match=r"^simple_backprop: ") as error:
        mla.simple_backprop(*(args[name] for name in names))

    assert re.search(re.escape(str(bad_shape)), str(error.value))


@pytest.mark.parametrize("function", ["forward_layer", "forward_layer_batch"])
def test_dense_leaves_inputs_unchanged(function, rng):
    batch = None if function == "forward_layer" else 7
    args = layer_inputs(rng, 6, 4, np.float64, batch=batch)
    args = tuple(to_layout(a, "strided") for a in args)
    before = tuple(a.copy() for a in args)

    getattr(mla, function)(*args, activation="relu")

    for name, old, new in zip(("x", "W", "b"), before, args):
        assert_unchanged(old, new, name)


def test_simple_backprop_leaves_inputs_unchanged(rng):
    args = backprop_inputs(rng, 4, 6, 3)
    before = tuple(a.copy() for a in args)

    mla.simple_backprop(*args)

    names = ("x", "y_true", "W1", "W2", "b1", "b2")
    for name, old, new in zip(names, before, args):
        assert_unchanged(old, new, name)
