"""Tests for linear_regression: the normal equations and Householder QR."""

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
    # several row tasks, with a short last slab
    (20011, 5),
    # more than 128 columns: the Gram matrix goes through the blocked SYRK
    (400, 130),
]


def gram_condition(X, regularization=0.0):
    """Return the condition number of ``Xb^T Xb + lambda I``, ``Xb = [1, X]``."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    X_bias = np.column_stack([np.ones(len(X)), X])
    gram = X_bias.T @ X_bias + regularization * np.eye(X_bias.shape[1])
    return float(np.linalg.cond(gram))


def assert_matches_reference(
    weights, X, y, dtype, regularization=0.0, method="normal", **options
):
    """Compare fitted weights with the float64 reference fit of the same data."""
    expected = reference.linear_regression(
        *to_float64(X, y), float(regularization), method
    )
    assert_close(
        weights,
        expected,
        dtype,
        "reduction",
        inner=len(X),
        condition=gram_condition(X, regularization),
        **options,
    )


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

    assert weights.shape == (4,)
    assert_matches_reference(weights, X, y, np.float64)
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

    assert weights.shape == (p + 1,)
    assert_matches_reference(weights, X, y, dtype, regularization)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", [(300, 33), (1000, 51)], ids=shape_id)
def test_linear_regression_kernel_levels(gemm_kernel_level, shape, dtype, rng):
    # The normal equations sum the Gram matrix in the GEMM's register tiles,
    # so every micro-kernel level, the emulated AVX-512 tiles included, runs.
    n, p = shape
    X = (rng.standard_normal(shape) + 3).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)

    weights = mla.linear_regression(X, y)

    assert_matches_reference(weights, X, y, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_linear_regression_one_dimensional_x(dtype, rng):
    x = rng.standard_normal(30).astype(dtype)
    y = (3.0 * x - 1.0 + 0.1 * rng.standard_normal(30)).astype(dtype)

    weights = mla.linear_regression(x, y)

    assert weights.shape == (2,)
    assert_matches_reference(weights, x[:, None], y, dtype)


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

    assert_matches_reference(weights, X, y, np.float64, regularization)


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

    assert_matches_reference(weights, X, y, np.float64, 0.5)
    assert weights[1] == pytest.approx(weights[2], rel=1e-10)


def test_linear_regression_no_samples_with_ridge():
    weights = mla.linear_regression(np.zeros((0, 3)), np.zeros(0), regularization=1.0)

    np.testing.assert_array_equal(weights, np.zeros(4))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_regression_memory_layouts(layout, rng):
    X = to_layout(rng.standard_normal((31, 6)), layout)
    y = to_layout(rng.standard_normal(31), layout)

    weights = mla.linear_regression(X, y)

    assert_matches_reference(weights, X, y, np.float64, layout=layout)


def test_linear_regression_ill_conditioned_design(rng):
    # Nearly collinear but not singular columns: cond(Gram) is about 4e6.
    base = rng.standard_normal(200)
    X = np.column_stack([base, base + 1e-3 * rng.standard_normal(200)])
    y = base + rng.standard_normal(200)

    weights = mla.linear_regression(X, y)

    assert_matches_reference(weights, X, y, np.float64)


@pytest.mark.parametrize(
    "regularization",
    [-1.0, -1e-300, np.nan, np.inf, -np.inf, 10**400, 10**5000, np.longdouble("1e4000")],
    ids=["negative", "tiny-negative", "nan", "inf", "negative-inf", "huge-int", "huger-int", "huge-longdouble"],
)
def test_linear_regression_invalid_regularization(regularization, rng):
    X = rng.standard_normal((10, 2))
    y = rng.standard_normal(10)

    with pytest.raises(ValueError, match=r"^linear_regression: .*regularization"):
        mla.linear_regression(X, y, regularization=regularization)


@pytest.mark.parametrize(
    "value",
    [
        "1.0",
        None,
        [1.0],
        1j,
        np.array([0.5]),
        np.complex64(1j),
        np.array(1 + 0j),
        # NumPy would parse these strings and read the masked value as NaN.
        np.array("1.5"),
        np.array("2", dtype=object),
        np.ma.masked_array(1.0, mask=True),
        np.timedelta64(1),
    ],
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
    assert_matches_reference(weights, X32, y32, np.float32)


def test_linear_regression_leaves_inputs_unchanged(rng):
    X = to_layout(rng.standard_normal((20, 3)), "strided")
    y = to_layout(rng.standard_normal(20), "negative")
    before = (X.copy(), y.copy())

    mla.linear_regression(X, y, regularization=0.3)

    assert_unchanged(before[0], X, "X")
    assert_unchanged(before[1], y, "y")


@pytest.mark.parametrize("method", ["normal", "qr"])
@pytest.mark.parametrize("magnitude", [1e155, 1e-200], ids=["huge", "tiny"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_linear_regression_extreme_magnitudes(magnitude, dtype, method, rng):
    # The naive Gram matrix overflows (or underflows) here although the
    # weights are representable; mla scales each column first.
    if dtype == np.float32:
        magnitude = {1e155: 1e30, 1e-200: 1e-30}[magnitude]
    X = rng.standard_normal((40, 3))
    true_weights = np.array([0.5, 2.0, -1.0, 3.0])
    y = true_weights[0] + X @ true_weights[1:]
    weights = mla.linear_regression(
        (X * magnitude).astype(dtype), y.astype(dtype), method=method
    )
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


def design_condition(X, regularization=0.0):
    """Return the condition number of ``[Xb; sqrt(lambda) I]``, ``Xb = [1, X]``.

    The error of the QR method grows with it, while the normal equations'
    grows with its square, the condition number of the Gram matrix.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    X_bias = np.column_stack([np.ones(len(X)), X])
    penalty = np.sqrt(regularization) * np.eye(X_bias.shape[1])
    return float(np.linalg.cond(np.vstack([X_bias, penalty])))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", DESIGN_SHAPES, ids=shape_id)
def test_linear_regression_qr_matches_reference(shape, dtype, rng):
    n, p = shape
    X = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    regularization = 0.0 if n > p else 0.5

    weights = mla.linear_regression(X, y, regularization, method="qr")

    expected = reference.linear_regression(*to_float64(X, y), regularization, "qr")
    assert weights.shape == (p + 1,)
    assert weights.dtype == dtype
    assert_close(
        weights,
        expected,
        dtype,
        "reduction",
        inner=n,
        condition=design_condition(X, regularization),
    )


@pytest.mark.parametrize("targets", [1, 3], ids=lambda t: f"targets{t}")
@pytest.mark.parametrize("regularization", [0.0, 0.7])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_linear_regression_qr_agrees_with_normal(dtype, regularization, targets, rng):
    # Well-conditioned data: both methods give the same weights.
    X = rng.standard_normal((300, 12)).astype(dtype)
    y = rng.standard_normal((300, targets)).astype(dtype)

    by_qr = mla.linear_regression(X, y, regularization, method="qr")
    by_normal = mla.linear_regression(X, y, regularization, method="normal")

    assert by_qr.shape == (13, targets)
    assert_close(
        by_qr,
        by_normal.astype(np.float64),
        dtype,
        "reduction",
        inner=300,
        condition=gram_condition(X, regularization),
    )


def vandermonde_problem(degree=10, samples=200):
    """Return X = [x, x^2, ..., x^degree] on [0, 1], exact y and its weights."""
    x = np.linspace(0.0, 1.0, samples)
    X = np.vander(x, degree + 1, increasing=True)[:, 1:]
    true_weights = np.cos(np.arange(degree + 1.0))
    y = np.column_stack([np.ones(samples), X]) @ true_weights
    return X, y, true_weights


def test_linear_regression_qr_accurate_on_vandermonde():
    # cond(Xb) is about 2e8, so cond(Gram) is about 4e16: the normal
    # equations keep almost no digits, QR keeps about eight.
    X, y, true_weights = vandermonde_problem()

    by_qr = mla.linear_regression(X, y, method="qr")

    qr_error = np.max(np.abs(by_qr - true_weights)) / np.max(np.abs(true_weights))
    assert design_condition(X) > 1e7
    assert qr_error < 1e-6, f"QR relative error {qr_error:.2e}"
    reference_error = np.max(
        np.abs(reference.linear_regression(X, y, method="qr") - true_weights)
    )
    assert qr_error < 100 * max(reference_error, 1e-15)


def test_linear_regression_normal_loses_digits_on_vandermonde():
    X, y, true_weights = vandermonde_problem(degree=8)

    by_qr = mla.linear_regression(X, y, method="qr")
    by_normal = mla.linear_regression(X, y, method="normal")

    qr_error = np.max(np.abs(by_qr - true_weights))
    normal_error = np.max(np.abs(by_normal - true_weights))
    assert qr_error < 1e-7, f"QR error {qr_error:.2e}"
    assert normal_error > 1000 * qr_error, (
        f"normal equations error {normal_error:.2e}, QR error {qr_error:.2e}"
    )


@pytest.mark.parametrize("method", ["normal", "qr"])
def test_linear_regression_method_positional(method, rng):
    X = rng.standard_normal((40, 3))
    y = rng.standard_normal(40)

    by_position = mla.linear_regression(X, y, 0.25, method)
    by_keyword = mla.linear_regression(X, y, regularization=0.25, method=method)

    np.testing.assert_array_equal(by_position, by_keyword)


def test_linear_regression_default_method_is_normal(rng):
    X = rng.standard_normal((40, 3))
    y = rng.standard_normal(40)

    np.testing.assert_array_equal(
        mla.linear_regression(X, y), mla.linear_regression(X, y, method="normal")
    )


@pytest.mark.parametrize("method", ["cholesky", "QR", "", "lstsq"])
def test_linear_regression_unknown_method(method):
    with pytest.raises(
        ValueError, match=r"^linear_regression: unknown method"
    ) as error:
        mla.linear_regression(np.ones((5, 1)), np.ones(5), method=method)

    assert repr(method) in str(error.value)
    assert "'normal' or 'qr'" in str(error.value)


@pytest.mark.parametrize("method", [None, 1, b"qr"], ids=repr)
def test_linear_regression_method_not_str(method):
    with pytest.raises(TypeError, match=r"^linear_regression: method must be a str"):
        mla.linear_regression(np.ones((5, 1)), np.ones(5), method=method)


def test_linear_regression_qr_duplicated_column(rng):
    column = rng.standard_normal(50)
    X = np.column_stack([column, rng.standard_normal(50), column])
    y = rng.standard_normal(50)

    with pytest.raises(np.linalg.LinAlgError, match=r"^linear_regression: "):
        mla.linear_regression(X, y, method="qr")


@pytest.mark.parametrize("shape", [(0, 3), (0, 0), (10, 2), (3, 5)], ids=shape_id)
def test_linear_regression_qr_singular_designs(shape, rng):
    X = np.zeros(shape) if shape != (3, 5) else rng.standard_normal(shape)
    y = np.ones(shape[0])

    with pytest.raises(np.linalg.LinAlgError, match=r"^linear_regression: "):
        mla.linear_regression(X, y, method="qr")


def test_linear_regression_qr_ridge_on_singular_design(rng):
    column = rng.standard_normal(20)
    X = np.column_stack([column, column])
    y = rng.standard_normal(20)

    weights = mla.linear_regression(X, y, regularization=0.5, method="qr")

    expected = reference.linear_regression(X, y, 0.5)
    assert_close(
        weights,
        expected,
        np.float64,
        "reduction",
        inner=20,
        condition=design_condition(X, 0.5),
    )


def test_linear_regression_qr_regularizes_bias():
    weights = mla.linear_regression(
        np.zeros((10, 2)), np.full(10, 4.0), regularization=10.0, method="qr"
    )

    np.testing.assert_allclose(weights, [2.0, 0.0, 0.0], rtol=1e-12, atol=1e-15)


def test_linear_regression_qr_no_samples_with_ridge():
    weights = mla.linear_regression(
        np.zeros((0, 3)), np.zeros(0), regularization=1.0, method="qr"
    )

    np.testing.assert_array_equal(weights, np.zeros(4))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_regression_qr_memory_layouts(layout, rng):
    X = to_layout(rng.standard_normal((31, 6)), layout)
    y = to_layout(rng.standard_normal(31), layout)

    weights = mla.linear_regression(X, y, method="qr")

    assert_close(
        weights,
        reference.linear_regression(X, y, method="qr"),
        np.float64,
        "reduction",
        inner=31,
        condition=design_condition(X),
        layout=layout,
    )


@pytest.mark.parametrize("method", ["normal", "qr"])
@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("target", [False, True], ids=["in-X", "in-y"])
def test_linear_regression_non_finite_data_gives_nan(target, value, method, rng):
    X = rng.standard_normal((30, 3))
    y = rng.standard_normal(30)
    if target:
        y[7] = value
    else:
        X[7, 1] = value

    weights = mla.linear_regression(X, y, method=method)

    assert np.all(np.isnan(weights))


def test_linear_regression_qr_tiny_column_with_ridge():
    x = np.array([1e-170, 2e-170, 3e-170])
    y = np.array([1.0, 2.0, 4.0])

    weights = mla.linear_regression(x, y, regularization=1.0, method="qr")

    np.testing.assert_allclose(weights, [1.75, 6.5e-170], rtol=1e-12)


@pytest.mark.parametrize("method", ["normal", "qr"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_linear_regression_many_rows(dtype, method, rng):
    # Several row tasks of 8192 rows and many slabs of 512 rows each.
    X = rng.standard_normal((41_000, 6)).astype(dtype)
    y = (X @ np.arange(1.0, 7.0) + rng.standard_normal(41_000)).astype(dtype)

    weights = mla.linear_regression(X, y, method=method)

    assert_matches_reference(weights, X, y, dtype, method=method)


@pytest.mark.parametrize("method", ["normal", "qr"])
@pytest.mark.parametrize("features", [63, 64, 150, 230])
def test_linear_regression_many_features(features, method, rng):
    # Past one block of the blocked Cholesky (64) and of the product (192).
    X = rng.standard_normal((features * 3, features))
    y = rng.standard_normal(features * 3)

    weights = mla.linear_regression(X, y, regularization=0.1, method=method)

    assert_matches_reference(weights, X, y, np.float64, 0.1, method=method)


@pytest.mark.parametrize("method", ["normal", "qr"])
def test_linear_regression_thread_count_gives_identical_results(method, rng):
    X = rng.standard_normal((30_000, 20))
    y = rng.standard_normal((30_000, 2))
    original = mla.get_num_threads()
    try:
        mla.set_num_threads(1)
        single = mla.linear_regression(X, y, method=method)
        mla.set_num_threads(2)
        double = mla.linear_regression(X, y, method=method)
    finally:
        mla.set_num_threads(original)

    np.testing.assert_array_equal(single, double)


@pytest.mark.parametrize("method", ["normal", "qr"])
def test_linear_regression_power_of_two_scaling_exact(method, rng):
    # Features scaled by 2^450 need the second, scaled pass. Its scaled
    # design is bit for bit that of the unscaled data, so the feature
    # weights are exactly 2^-450 times those of the one-pass fit.
    X = rng.standard_normal((3000, 5))
    y = rng.standard_normal(3000)

    plain = mla.linear_regression(X, y, method=method)
    scaled = mla.linear_regression(np.ldexp(X, 450), y, method=method)

    assert scaled[0] == plain[0]
    np.testing.assert_array_equal(scaled[1:], np.ldexp(plain[1:], -450))
