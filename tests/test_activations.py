"""Parity and edge-case tests for sigmoid, relu and their derivatives."""

import warnings

import numpy as np
import pytest
from conftest import (
    FLOAT_DTYPES,
    LAYOUTS,
    assert_close,
    assert_unchanged,
    compute_dtype,
    dtype_id,
    shape_id,
    to_float64,
    to_layout,
)

import mla
from mla import reference

ACTIVATION_NAMES = ("sigmoid", "relu", "sigmoid_derivative", "relu_derivative")

# Lengths around the SIMD widths (4 and 8 doubles, 8 and 16 floats), the
# unrolled block sizes, and a few long arrays with ragged tails.
SHAPES = [
    (0,),
    (1,),
    (2,),
    (3,),
    (4,),
    (5,),
    (7,),
    (8,),
    (9,),
    (15,),
    (16,),
    (17,),
    (31,),
    (32,),
    (33,),
    (63,),
    (64,),
    (65,),
    (1000,),
    (1031,),
    (4099,),
    (3, 5),
    (2, 3, 4),
    (2, 0, 3),
    (1, 1, 1, 1),
    (4, 3, 2, 5),
]


def edge_values(dtype):
    """Return the special inputs of the activations in the given dtype."""
    info = np.finfo(dtype)
    values = [
        np.inf,
        -np.inf,
        np.nan,
        1e4,
        -1e4,
        -745.0,
        745.0,
        710.0,
        -710.0,
        -700.0,
        40.0,
        -40.0,
        -90.0,
        -80.0,
        1.0,
        -1.0,
        0.0,
        -0.0,
        float(info.smallest_subnormal),
        -float(info.smallest_subnormal),
        float(info.smallest_normal),
        float(info.max),
        -float(info.max),
    ]
    return np.array(values, dtype=dtype)


def evaluate_reference(name, x):
    """Return the reference result for ``x`` evaluated in float64."""
    with np.errstate(all="ignore"):
        return getattr(reference, name)(to_float64(x))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_matches_reference(name, shape, dtype, rng):
    x = (rng.standard_normal(shape) * 4).astype(dtype)

    result = getattr(mla, name)(x)

    assert_close(result, evaluate_reference(name, x), dtype, "elementwise")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(6, 11), (17, 4), (3, 5, 7)], ids=shape_id)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_memory_layouts(name, shape, layout, rng):
    x = to_layout(rng.standard_normal(shape) * 4, layout)

    result = getattr(mla, name)(x)

    assert_close(
        result,
        evaluate_reference(name, x),
        np.float64,
        "elementwise",
        layout=layout,
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_edge_values(name, dtype):
    x = edge_values(dtype)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = getattr(mla, name)(x)

    assert_close(result, evaluate_reference(name, x), dtype, "elementwise")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_dense_value_sweep(name, dtype):
    # Every branch and polynomial interval of the exp kernels, up to and past
    # the point where exp underflows (about -745 in float64, -104 in float32).
    limit = 800.0 if dtype is np.float64 else 110.0
    x = np.concatenate(
        [np.linspace(-limit, limit, 40001), np.linspace(-1.0, 1.0, 20001)]
    ).astype(dtype)

    result = getattr(mla, name)(x)

    assert_close(result, evaluate_reference(name, x), dtype, "elementwise")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_sigmoid_saturated_values(dtype):
    x = np.array([-np.inf, -1e4, 1e4, np.inf], dtype=dtype)

    result = mla.sigmoid(x)

    np.testing.assert_array_equal(result, np.array([0, 0, 1, 1], dtype=dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_sigmoid_large_negative_no_warning(dtype):
    x = np.array([-1e4, -800.0, -745.0, -100.0, -np.inf], dtype=dtype)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            result = mla.sigmoid(x)
            derivative = mla.sigmoid_derivative(x)

    assert np.all(result >= 0)
    assert np.all(result < 1e-30)
    assert np.all(derivative >= 0)
    assert np.all(derivative < 1e-30)


def test_sigmoid_derivative_keeps_tail_precision():
    # s * (1 - s) cancels to zero once s rounds to 1, but s(x) * s(-x) does not.
    x = np.array([40.0, -40.0, 700.0, -700.0])
    expected = np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))) ** 2

    result = mla.sigmoid_derivative(x)

    np.testing.assert_allclose(result, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_relu_propagates_nan(dtype):
    x = np.array([np.nan, -1.0, 2.0, -np.nan], dtype=dtype)

    result = mla.relu(x)

    assert np.isnan(result[0])
    assert np.isnan(result[3])
    assert result[1] == 0
    assert result[2] == 2


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_relu_derivative_of_nan_zero(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([np.nan, -np.inf, -0.0, 0.0, -tiny, tiny, np.inf], dtype=dtype)

    result = mla.relu_derivative(x)

    expected = np.array([0, 0, 0, 0, 0, 1, 1], dtype=dtype)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    "dtype",
    [np.float16, np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_],
    ids=dtype_id,
)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_dtype_rule(name, dtype, rng):
    if dtype is np.bool_:
        x = rng.integers(0, 2, size=(5, 7)).astype(bool)
    elif np.dtype(dtype).kind == "u":
        x = rng.integers(0, 20, size=(5, 7)).astype(dtype)
    else:
        x = (rng.standard_normal((5, 7)) * 8).astype(dtype)
    expected_dtype = compute_dtype(dtype)

    result = getattr(mla, name)(x)

    assert result.dtype == expected_dtype
    assert_close(result, evaluate_reference(name, x), expected_dtype, "elementwise")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_zero_dimensional_input(name, dtype):
    x = np.array(-1.5, dtype=dtype)

    result = getattr(mla, name)(x)

    assert np.shape(result) == ()
    assert_close(result, evaluate_reference(name, x), dtype, "elementwise")


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_accepts_python_list(name):
    x = [[-2.0, 0.5], [3.0, -0.25]]

    result = getattr(mla, name)(x)

    assert isinstance(result, np.ndarray)
    assert_close(result, evaluate_reference(name, x), np.float64, "elementwise")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_leaves_input_unchanged(name, layout, rng):
    x = to_layout(rng.standard_normal((9, 6)), layout)
    before = x.copy()

    getattr(mla, name)(x)

    assert_unchanged(before, x, "x")


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_returns_new_array(name, rng):
    x = rng.standard_normal(33)

    result = getattr(mla, name)(x)

    assert result is not x
    assert not np.shares_memory(result, x)
