"""Tests for linear_regression (ridge-regularized normal equations)."""

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

# (n_samples, n_features)
DESIGN_SHAPES = [
    (1, 0),
    (5, 0),
    (2, 1),
    (5, 1),
    (10, 3),
    (50, 7),
    (100, 8),
    (200, 16),
    (300, 33),
    (70, 65),
]


def gram_condition(X, regularization=0.0):
    """Return the condition number of ``Xb^T Xb + lambda I``, ``Xb = [1, X]``."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    X_bias = np.column_stack([np.ones(len(X)), X])
    gram = X_bias.T @ X_bias + regularization * np.eye(X_bias.shape[1])
    return float(np.linalg.cond(gram))


def article_data():
    """Return the article's regression data: 100 samples, 3 features."""
    np.random.seed(42)
    X = np.random.randn(100, 3)
    true_weights = np.array([2.0, 1.5, -1.0, 0.5])
    y = np.column_stack([np.ones(100), X]) @ true_weights
    y = y + np.random.randn(100) * 0.5
    return X, y, true_weights


def test_linear_regression_article_data():
    X, y, true_weights = article_data()

    weights = mla.linear_regression(X, y)

    expected = reference.linear_regression(X, y)
    assert weights.shape == (4,)
    assert_close(
        weights,
        expected,
        np.float64,
        "reduction",
        inner=100,
        condition=gram_condition(X),
    )
    # The fit recovers the generating weights up to the noise.
    np.testing.assert_allclose(weights, true_weights, atol=0.2)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", DESIGN_SHAPES, ids=shape_id)
def test_linear_regression_matches_reference(shape, dtype, rng):
    n, p = shape
    X = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    regularization = 0.0 if n > p else 0.5

    weights = mla.linear_regression(X, y, regularization=regularization)

    expected = reference.linear_regression(*to_float64(X, y), regularization)
    assert weights.shape == (p + 1,)
    assert_close(
        weights,
        expected,
        dtype,
        "reduction",
        inner=n,
        condition=gram_condition(X, regularization),
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_linear_regression_one_dimensional_x(dtype, rng):
    x = rng.standard_normal(30).astype(dtype)
    y = (3.0 * x - 1.0 + 0.1 * rng.standard_normal(30)).astype(dtype)

    weights = mla.linear_regression(x, y)

    expected = reference.linear_regression(*to_float64(x[:, None], y))
    assert weights.shape == (2,)
    assert_close(
        weights,
        expected,
        dtype,
        "reduction",
        inner=30,
        condition=gram_condition(x),
    )


@pytest.mark.parametrize("targets", [1, 3], ids=lambda t: f"targets{t}")
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_linear_regression_two_dimensional_y(targets, dtype, rng):
    X = rng.standard_normal((40, 5)).astype(dtype)
    Y = rng.standard_normal((40, targets)).astype(dtype)

    weights = mla.linear_regression(X, Y)

    expected = reference.linear_regression(*to_float64(X, Y))
    assert weights.shape == (6, targets)
    condition = gram_condition(X)
    assert_close(weights, expected, dtype, "reduction", inner=40, condition=condition)
    for column in range(targets):
        single = mla.linear_regression(X, Y[:, column])
        assert_close(
            weights[:, column],
            single,
            dtype,
            "reduction",
            inner=40,
            condition=condition,
        )


@pytest.mark.parametrize(
    "regularization", [1e-3, 0.1, 1.0, 1e3, 2, np.float32(0.25)], ids=repr
)
def test_linear_regression_regularization(regularization, rng):
    X = rng.standard_normal((25, 4))
    y = rng.standard_normal(25)

    weights = mla.linear_regression(X, y, regularization)

    expected = reference.linear_regression(X, y, float(regularization))
    assert_close(
        weights,
        expected,
        np.float64,
        "reduction",
        inner=25,
        condition=gram_condition(X, regularization),
    )


def test_linear_regression_regularizes_bias(rng):
    # With lambda = n the bias of a constant target y = c is n c / (n + lambda).
    X = np.zeros((10, 2))
    y = np.full(10, 4.0)

    weights = mla.linear_regression(X, y, regularization=10.0)

    np.testing.assert_allclose(weights, [2.0, 0.0, 0.0], rtol=1e-12, atol=1e-15)


def test_linear_regression_ridge_on_singular_design(rng):
    # A duplicated column makes the plain system singular, and ridge fixes it.
    column = rng.standard_normal(20)
    X = np.column_stack([column, column])
    y = rng.standard_normal(20)

    weights = mla.linear_regression(X, y, regularization=0.5)

    expected = reference.linear_regression(X, y, 0.5)
    assert_close(
        weights,
        expected,
        np.float64,
        "reduction",
        inner=20,
        condition=gram_condition(X, 0.5),
    )
    assert weights[1] == pytest.approx(weights[2], rel=1e-10)


def test_linear_regression_no_samples_with_ridge():
    weights = mla.linear_regression(np.zeros((0, 3)), np.zeros(0), regularization=1.0)

    np.testing.assert_array_equal(weights, np.zeros(4))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_regression_memory_layouts(layout, rng):
    X = to_layout(rng.standard_normal((31, 6)), layout)
    y = to_layout(rng.standard_normal(31), layout)

    weights = mla.linear_regression(X, y)

    expected = reference.linear_regression(X, y)
    assert_close(
        weights,
        expected,
        np.float64,
        "reduction",
        inner=31,
        condition=gram_condition(X),
        layout=layout,
    )


def test_linear_regression_ill_conditioned_design(rng):
    # Nearly collinear but not singular columns: cond(Gram) is about 4e6.
    base = rng.standard_normal(200)
    X = np.column_stack([base, base + 1e-3 * rng.standard_normal(200)])
    y = base + rng.standard_normal(200)

    weights = mla.linear_regression(X, y)

    expected = reference.linear_regression(X, y)
    assert_close(
        weights,
        expected,
        np.float64,
        "reduction",
        inner=200,
        condition=gram_condition(X),
    )


@pytest.mark.parametrize(
    "regularization",
    [-1.0, -1e-300, np.nan, np.inf, -np.inf, 10**400],
    ids=["negative", "tiny-negative", "nan", "inf", "negative-inf", "huge-int"],
)
def test_linear_regression_invalid_regularization(regularization, rng):
    X = rng.standard_normal((10, 2))
    y = rng.standard_normal(10)

    with pytest.raises(ValueError, match=r"^linear_regression: .*regularization"):
        mla.linear_regression(X, y, regularization=regularization)


@pytest.mark.parametrize(
    "value",
    ["1.0", None, [1.0], 1j, np.array([0.5]), np.complex64(1j), np.array(1 + 0j)],
    ids=repr,
)
def test_linear_regression_regularization_not_real(value, rng):
    X = rng.standard_normal((10, 2))
    y = rng.standard_normal(10)

    with pytest.raises(TypeError, match=r"^linear_regression: regularization"):
        mla.linear_regression(X, y, regularization=value)


def test_linear_regression_duplicated_column(rng):
    column = rng.standard_normal(50)
    X = np.column_stack([column, rng.standard_normal(50), column])
    y = rng.standard_normal(50)

    with pytest.raises(np.linalg.LinAlgError, match=r"^linear_regression: "):
        mla.linear_regression(X, y)


def test_linear_regression_column_equals_bias(rng):
    X = np.column_stack([np.ones(30), rng.standard_normal(30)])
    y = rng.standard_normal(30)

    with pytest.raises(np.linalg.LinAlgError, match=r"^linear_regression: "):
        mla.linear_regression(X, y)


@pytest.mark.parametrize("shape", [(0, 3), (0, 0), (10, 2)], ids=shape_id)
def test_linear_regression_zero_design_singular(shape):
    X = np.zeros(shape)
    y = np.zeros(shape[0])

    with pytest.raises(np.linalg.LinAlgError, match=r"^linear_regression: "):
        mla.linear_regression(X, y)


def test_linear_regression_fewer_samples_than_weights(rng):
    X = rng.standard_normal((3, 5))
    y = rng.standard_normal(3)

    with pytest.raises(np.linalg.LinAlgError, match=r"^linear_regression: "):
        mla.linear_regression(X, y)


@pytest.mark.parametrize(
    "x_shape, y_shape",
    [((10, 2), (9,)), ((10,), (11,)), ((10, 2), (9, 2)), ((0, 2), (1,))],
    ids=shape_id,
)
def test_linear_regression_shape_mismatch(x_shape, y_shape):
    with pytest.raises(ValueError, match=r"^linear_regression: ") as error:
        mla.linear_regression(np.ones(x_shape), np.ones(y_shape))

    assert str(x_shape) in str(error.value)
    assert str(y_shape) in str(error.value)


@pytest.mark.parametrize(
    "x_shape, y_shape",
    [((10, 2, 1), (10,)), ((10, 2), (10, 1, 1)), ((), (1,)), ((1, 2), ())],
    ids=shape_id,
)
def test_linear_regression_wrong_ndim(x_shape, y_shape):
    with pytest.raises(ValueError, match=r"^linear_regression: "):
        mla.linear_regression(np.ones(x_shape), np.ones(y_shape))


def test_linear_regression_float32_article_data():
    X, y, _ = article_data()
    X32 = X.astype(np.float32)
    y32 = y.astype(np.float32)

    weights = mla.linear_regression(X32, y32)

    assert weights.dtype == np.float32
    expected = reference.linear_regression(*to_float64(X32, y32))
    assert_close(
        weights,
        expected,
        np.float32,
        "reduction",
        inner=100,
        condition=gram_condition(X32),
    )


def test_linear_regression_leaves_inputs_unchanged(rng):
    X = to_layout(rng.standard_normal((20, 3)), "strided")
    y = to_layout(rng.standard_normal(20), "negative")
    before = (X.copy(), y.copy())

    mla.linear_regression(X, y, regularization=0.3)

    assert_unchanged(before[0], X, "X")
    assert_unchanged(before[1], y, "y")


@pytest.mark.parametrize("magnitude", [1e155, 1e-200], ids=["huge", "tiny"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_linear_regression_extreme_magnitudes(magnitude, dtype, rng):
    # The naive Gram matrix overflows (or underflows) here although the
    # weights are representable; mla scales each column first.
    if dtype == np.float32:
        magnitude = {1e155: 1e30, 1e-200: 1e-30}[magnitude]
    X = rng.standard_normal((40, 3))
    true_weights = np.array([0.5, 2.0, -1.0, 3.0])
    y = true_weights[0] + X @ true_weights[1:]
    weights = mla.linear_regression((X * magnitude).astype(dtype), y.astype(dtype))
    expected = true_weights / np.array([1.0, magnitude, magnitude, magnitude])
    rtol = 1e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(weights.astype(np.float64), expected, rtol=rtol)


def test_linear_regression_tiny_column_with_ridge():
    # lambda / s^2 would overflow for a 1e-170 column; the penalty must
    # still dominate it as it does in exact arithmetic.
    x = np.array([1e-170, 2e-170, 3e-170])
    y = np.array([1.0, 2.0, 4.0])
    weights = mla.linear_regression(x, y, regularization=1.0)
    # Exact solution of [[4, 6e-170], [6e-170, 1 + 1.4e-339]] w = [7, 1.7e-169].
    np.testing.assert_allclose(weights, [1.75, 6.5e-170], rtol=1e-12)
