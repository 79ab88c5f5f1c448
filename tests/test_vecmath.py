"""Tests of the vectorized exp (``mla._core._exp``) at every SIMD level.

The error is measured in units in the last place (ulp) against the C
library's exp (``math.exp``, in double), rounded to the element type. The
distance between two floats of the same type is the number of
representable values between them. The kernels promise at most 2 ulp.
"""

import math

import numpy as np
import pytest

import mla
from conftest import ulp_distance
from mla import _core

MAX_ULP = 2

SUPPORTED_LEVELS = _core._config()["supported_levels"]


def library_exp(x, dtype):
    """Return math.exp of every element, rounded to dtype; inf on overflow."""
    values = []
    for v in np.asarray(x, dtype=np.float64).tolist():
        try:
            values.append(math.exp(v))
        except OverflowError:
            values.append(math.inf)
    with np.errstate(over="ignore"):
        return np.array(values).astype(dtype)


def assert_within_ulp(x, dtype, level):
    x = np.asarray(x, dtype=dtype)
    actual = _core._exp(x)
    expected = library_exp(x, dtype)

    assert actual.dtype == dtype
    distance = ulp_distance(actual, expected, dtype)
    worst = int(np.argmax(distance))
    assert distance[worst] <= MAX_ULP, (
        f"{level} {np.dtype(dtype).name}: largest error {distance[worst]} ulp "
        f"at x = {x[worst]!r}: exp gave {actual[worst]!r}, the C library "
        f"{expected[worst]!r} ({x.size} inputs)"
    )


def neighbours(center, dtype, count):
    """Return the 2 * count floats of dtype nearest to center, in order."""
    center = np.asarray(center, dtype=dtype)
    below = [center]
    above = [center]
    for _ in range(count):
        below.append(np.nextafter(below[-1], dtype(-np.inf)))
        above.append(np.nextafter(above[-1], dtype(np.inf)))
    return np.array(below[::-1] + above[1:], dtype=dtype)


def float32_thresholds():
    """Inputs where float32 exp overflows, becomes subnormal, or rounds to 0."""
    return [
        math.log(float(np.finfo(np.float32).max)),
        math.log(float(np.finfo(np.float32).smallest_normal)),
        math.log(float(np.finfo(np.float32).smallest_subnormal)),
        math.log(float(np.finfo(np.float32).smallest_subnormal) / 2),
        0.0,
    ]


def test_exp_float32_powers_of_two(kernel_level):
    exponents = np.arange(-149, 128)
    powers = np.ldexp(np.float32(1), exponents).astype(np.float32)

    assert_within_ulp(np.concatenate([powers, -powers]), np.float32, kernel_level)


def test_exp_float32_dense_sweep(kernel_level):
    # 2^20 evenly spaced inputs across the whole range where exp is neither
    # 0 nor inf, and beyond it on both sides.
    x = np.linspace(-110.0, 95.0, 2**20, dtype=np.float64).astype(np.float32)

    assert_within_ulp(x, np.float32, kernel_level)


@pytest.mark.parametrize("threshold", float32_thresholds(), ids="{:.4f}".format)
def test_exp_float32_near_thresholds(threshold, kernel_level):
    x = neighbours(threshold, np.float32, 4096)
    x = np.concatenate(
        [x, np.float32(threshold) + np.linspace(-1, 1, 4097, dtype=np.float32)]
    )

    assert_within_ulp(x, np.float32, kernel_level)


def test_exp_float64_random(kernel_level, rng):
    # Uniform over the range where exp is neither 0 nor inf, and beyond it.
    x = rng.uniform(-760.0, 720.0, 200_000)

    assert_within_ulp(x, np.float64, kernel_level)


def test_exp_float64_small_inputs(kernel_level, rng):
    # Inputs near 0, where exp(x) is close to 1 + x, in every binade.
    x = rng.standard_normal(50_000) * np.exp2(rng.integers(-60, 3, 50_000))

    assert_within_ulp(x, np.float64, kernel_level)


@pytest.mark.parametrize(
    "threshold",
    [
        math.log(float(np.finfo(np.float64).max)),
        math.log(float(np.finfo(np.float64).smallest_normal)),
        math.log(float(np.finfo(np.float64).smallest_subnormal)),
        math.log(float(np.finfo(np.float64).smallest_subnormal)) - math.log(2),
    ],
    ids="{:.4f}".format,
)
def test_exp_float64_near_thresholds(threshold, kernel_level):
    x = neighbours(threshold, np.float64, 2048)
    x = np.concatenate([x, threshold + np.linspace(-1, 1, 4097)])

    assert_within_ulp(x, np.float64, kernel_level)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_special_values(dtype, kernel_level):
    x = np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            1e4,
            -1e4,
            np.finfo(dtype).max,
            -np.finfo(dtype).max,
            np.finfo(dtype).smallest_subnormal,
        ],
        dtype=dtype,
    )

    result = _core._exp(x)

    assert np.isnan(result[0])
    expected = np.array(
        [np.inf, 0.0, 1.0, 1.0, np.inf, 0.0, np.inf, 0.0, 1.0], dtype=dtype
    )
    np.testing.assert_array_equal(result[1:], expected, err_msg=kernel_level)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_every_length_matches_long_array(dtype, kernel_level, rng):
    # Tails shorter than a vector must go through the same arithmetic.
    x = (rng.standard_normal(67) * 30).astype(dtype)
    full = _core._exp(x)

    for n in range(68):
        np.testing.assert_array_equal(_core._exp(x[:n]), full[:n], err_msg=f"n={n}")


def test_exp_levels_agree_within_one_ulp(rng):
    x = rng.uniform(-745.0, 709.0, 100_000)
    original = _core._config()["kernel_level"]
    results = {}
    try:
        for name in SUPPORTED_LEVELS:
            _core._set_kernel_level(name)
            results[name] = _core._exp(x)
    finally:
        _core._set_kernel_level(original)

    for name, result in results.items():
        distance = ulp_distance(result, results["generic"], np.float64)
        assert distance.max() <= 1, (
            f"{name} differs from generic by {distance.max()} ulp"
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_sigmoid_at_every_level(dtype, kernel_level, rng):
    x = np.concatenate(
        [rng.standard_normal(1000) * 20, [0.0, -800.0, 800.0, np.nan]]
    ).astype(dtype)

    result = mla.sigmoid(x)
    derivative = mla.sigmoid_derivative(x)

    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        expected = 1 / (1 + np.exp(-x64))
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(
        result, expected, rtol=rtol, atol=0, err_msg=kernel_level
    )
    e = np.exp(-np.abs(x64))
    np.testing.assert_allclose(
        derivative, e / (1 + e) ** 2, rtol=rtol * 2, atol=1e-300, err_msg=kernel_level
    )
