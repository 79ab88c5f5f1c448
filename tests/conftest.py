"""Shared fixtures and helpers for the mla test suite.

Every parity test compares an mla result with ``mla.reference`` evaluated in
float64 on the same values. The tolerance depends on the dtype mla computes in
and on the kind of operation:

- ``"elementwise"``: one rounding chain per element (activations).
- ``"reduction"``: sums, products and solves, whose absolute error grows with
  the inner (summed) dimension.

Warnings raised while the suite runs are turned into errors, so a kernel or a
wrapper that emits a ``RuntimeWarning`` fails its test.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

SEED = 20240607

# Hypothesis profiles of the property tests in tests/hardening: a plain
# `pytest` runs mla-dev, .ci/sanitize runs mla-sanitize, and mla-ci and
# mla-long are for longer runs by hand. Select one with
# --hypothesis-profile=NAME, or with MLA_HYPOTHESIS_PROFILE=NAME, which
# .ci/sanitize sets. There is no deadline because the shared CI machine
# makes timings noisy.
for _name, _examples in (
    ("mla-sanitize", 5),
    ("mla-dev", 15),
    ("mla-ci", 150),
    ("mla-long", 2000),
):
    settings.register_profile(
        _name,
        max_examples=_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
settings.load_profile(os.environ.get("MLA_HYPOTHESIS_PROFILE") or "mla-dev")

# Relative tolerance and absolute tolerance per unit of inner dimension, keyed
# by the compute dtype and the kind of operation.
TOLERANCES = {
    ("float64", "elementwise"): {"rtol": 1e-12, "atol_per_inner": 0.0},
    ("float64", "reduction"): {"rtol": 1e-10, "atol_per_inner": 1e-14},
    ("float32", "elementwise"): {"rtol": 1e-6, "atol_per_inner": 0.0},
    ("float32", "reduction"): {"rtol": 1e-4, "atol_per_inner": 1e-6},
}

# Memory layouts that every kernel must accept, as built by `to_layout`.
LAYOUTS = ("C", "F", "transposed", "negative", "strided", "unaligned", "byteswapped")

FLOAT_DTYPES = (np.float32, np.float64)


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "error")
    # Hypothesis writes a patch for each failing example with libcst, whose
    # import warns that mypy_extensions.TypedDict is deprecated (libcst 1.0
    # with mypy_extensions 1.1). As an error, that warning would replace the
    # failure report.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning",
    )


@pytest.fixture
def rng():
    """Return a NumPy generator with a fixed seed, fresh for each test."""
    return np.random.default_rng(SEED)


@pytest.fixture(params=["generic", "avx2", "avx512"])
def kernel_level(request):
    """Select one SIMD level for the test and restore the original after.

    The test is skipped where the CPU lacks the level.
    """
    from mla import _core

    config = _core._config()
    if request.param not in config["supported_levels"]:
        pytest.skip(f"this CPU does not support the {request.param} level")
    _core._set_kernel_level(request.param)
    yield request.param
    _core._set_kernel_level(config["kernel_level"])


@pytest.fixture(params=["generic", "avx2", "avx512", "avx512-emulated"])
def gemm_kernel_level(request):
    """Select one GEMM micro-kernel level for the test and restore the original after.

    "avx512-emulated" runs the AVX-512 kernels' tiles compiled for AVX2, so
    that their tile logic is tested on CPUs without AVX-512. The test is
    skipped where the CPU lacks the level (AVX2 for the emulated one).
    """
    from mla import _core

    config = _core._config()
    emulated = request.param == "avx512-emulated"
    needed = "avx2" if emulated else request.param
    if needed not in config["supported_levels"]:
        pytest.skip(f"this CPU does not support the {needed} level")
    _core._set_kernel_level(needed)
    _core._set_gemm_avx512_on_avx2(emulated)
    yield request.param
    _core._set_gemm_avx512_on_avx2(False)
    _core._set_kernel_level(config["kernel_level"])


def dtype_id(dtype):
    """Return the short name of a dtype for use in parametrize ids."""
    return np.dtype(dtype).name


def shape_id(shape):
    """Return a shape as ``2x3x4`` (``scalar`` for 0-d) for parametrize ids."""
    if len(shape) == 0:
        return "scalar"
    return "x".join(str(size) for size in shape)


def compute_dtype(*dtypes):
    """Return the dtype mla computes and returns for inputs of these dtypes.

    float16 and float32 map to float32, every other real dtype (float64,
    integers, bool) maps to float64, and the widest of the mapped dtypes wins.
    """
    for dtype in dtypes:
        dtype = np.dtype(dtype)
        if dtype.kind != "f" or dtype.itemsize > 4:
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def to_float64(*arrays):
    """Return each input as a float64 array, the form the reference expects."""
    converted = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    if len(converted) == 1:
        return converted[0]
    return converted


def to_layout(a, layout):
    """Return an array with the values of ``a`` stored in the given layout.

    ``"C"`` and ``"F"`` are contiguous copies. ``"transposed"`` is a view that
    swaps the last two axes of a C-contiguous array (for 1-D input it is C).
    ``"negative"`` has negative strides on every axis. ``"strided"`` is a view
    that takes every second element along every axis of an array twice as
    large, whose skipped elements are NaN (zero for non-float dtypes), so a
    kernel that reads them produces a visibly wrong result. ``"unaligned"``
    is a C-contiguous array whose data starts one byte past an aligned
    address, and ``"byteswapped"`` is a C-contiguous copy in the non-native
    byte order.
    """
    a = np.asarray(a)
    # np.ascontiguousarray and np.asfortranarray would turn a 0-d array into
    # shape (1,).
    if layout == "C":
        return np.array(a, order="C", copy=True)
    if layout == "F":
        return np.array(a, order="F", copy=True)
    if a.ndim == 0 and layout in ("transposed", "negative", "strided"):
        return a.copy()
    if layout == "transposed":
        if a.ndim == 1:
            return a.copy()
        swapped = np.ascontiguousarray(np.swapaxes(a, -1, -2))
        return np.swapaxes(swapped, -1, -2)
    if layout == "negative":
        flip = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[flip])[flip]
    if layout == "strided":
        every_second = (slice(None, None, 2),) * a.ndim
        wide = np.zeros(tuple(2 * size for size in a.shape), dtype=a.dtype)
        if a.dtype.kind == "f":
            wide[...] = np.nan
        wide[every_second] = a
        return wide[every_second]
    if layout == "unaligned":
        buffer = np.zeros(a.nbytes + 1, dtype=np.uint8)
        shifted = np.ndarray(a.shape, dtype=a.dtype, buffer=buffer, offset=1)
        shifted[...] = a
        return shifted
    if layout == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    raise ValueError(f"invalid layout {layout!r}, expected one of {LAYOUTS}")


def describe(array):
    """Return ``dtype``, ``shape`` and memory order of an array, for messages."""
    array = np.asarray(array)
    if array.flags.c_contiguous:
        order = "C-contiguous"
    elif array.flags.f_contiguous:
        order = "F-contiguous"
    else:
        order = f"strides {array.strides}"
    if not array.flags.aligned:
        order += ", unaligned"
    return f"{array.dtype.str} {array.shape} {order}"


def assert_close(
    actual,
    expected,
    dtype,
    kind,
    inner=1,
    scale=1.0,
    condition=None,
    layout="C",
):
    """Assert that an mla result matches a float64 reference result.

    Parameters
    ----------
    actual : ndarray or float
        The mla result. An array must have exactly ``dtype``.
    expected : array_like
        The reference result, computed in float64.
    dtype : dtype
        The dtype mla computes in, which selects the row of `TOLERANCES`.
    kind : {"elementwise", "reduction"}
        The column of `TOLERANCES`.
    inner : int
        Length of the summed dimension. The absolute tolerance grows with it.
    scale : float
        Typical magnitude of one summed term, for inputs far from 1.
    condition : float, optional
        Condition number of a solved system. The relative tolerance becomes at
        least ``100 * eps * condition`` and applies to the largest element,
        because a solve is accurate in norm, not in every component.
    layout : str
        Name of the input layout, printed when the assertion fails.
    """
    dtype = np.dtype(dtype)
    expected = np.asarray(expected, dtype=np.float64)
    tolerance = TOLERANCES[(dtype.name, kind)]
    rtol = tolerance["rtol"]
    atol = tolerance["atol_per_inner"] * max(inner, 1) * scale
    if kind == "elementwise":
        # Subnormal results carry no relative precision.
        atol = max(atol, float(np.finfo(dtype).smallest_normal))
    if condition is not None:
        rtol = max(rtol, 100 * float(np.finfo(dtype).eps) * condition)
        finite = expected[np.isfinite(expected)]
        if finite.size:
            atol = max(atol, rtol * float(np.max(np.abs(finite))))

    context = (
        f"dtype={dtype}, shape={np.shape(expected)}, layout={layout}, "
        f"kind={kind}, inner={inner}"
    )
    if isinstance(actual, np.ndarray):
        assert actual.dtype == dtype, f"result dtype {actual.dtype}, {context}"
    assert np.shape(actual) == expected.shape, (
        f"result shape {np.shape(actual)}, {context}"
    )
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64),
        expected,
        rtol=rtol,
        atol=atol,
        equal_nan=True,
        err_msg=context,
    )


def ordered_integers(values, dtype):
    """Map floats to integers in the same order, adjacent floats 1 apart."""
    signed = np.int32 if np.dtype(dtype) == np.float32 else np.int64
    bits = np.asarray(values, dtype=dtype).view(signed).astype(np.int64)
    return np.where(bits < 0, np.iinfo(signed).min - bits, bits)


def ulp_distance(actual, expected, dtype):
    """Return how many floats of dtype lie between actual and expected."""
    return np.abs(ordered_integers(actual, dtype) - ordered_integers(expected, dtype))


def assert_unchanged(before, after, name="input"):
    """Assert that an input array still contains its original values."""
    np.testing.assert_array_equal(
        after, before, err_msg=f"{name} was modified: {describe(after)}"
    )
