"""Property-based parity of every registered function with its reference.

For each entry of ``cases.CASES``, hypothesis draws a signature and sizes
from 0 to a few hundred, with the sizes around SIMD widths and cache blocks
mixed in. Each array gets a drawn dtype, memory layout and values from the
entry's domain (subnormals, +-inf, NaN and the largest finite values where
the domain has them), and the call gets drawn options. mla's result must
have the reference's shape, the dtype of the dtype rule, and values within
``conftest.TOLERANCES``, and the inputs must be unchanged. The reference
runs in float64; where it gives an infinity and mla NaN, the reference run
in mla's float32 decides (see ``allow_dtype_nan``). The number of
examples comes from the hypothesis profile (``--hypothesis-profile=mla-ci``
or ``mla-long`` for more).
"""

import inspect

import numpy as np
import pytest
from cases import (
    CASES,
    CASES_BY_NAME,
    compute_dtype,
    dtype_arrays,
    real_arrays,
    reference_arrays,
)
from conftest import assert_close, assert_unchanged
from hypothesis import given
from hypothesis import strategies as st
from strategies import draw_call

import mla


def product_scale(arrays):
    """Return the square of the largest finite input magnitude, at least 1.

    It bounds one product term of a sum. The square would overflow past
    1e150, far above the bounds of the reductions' domains.
    """
    largest = 1.0
    for array in arrays:
        finite = np.abs(array[np.isfinite(array)])
        largest = max(largest, float(finite.max(initial=0.0)))
    return min(largest, 1e150) ** 2


def result_parts(result, expected):
    """Pair up the arrays or floats of a result and of its reference."""
    if isinstance(expected, dict):
        assert isinstance(result, dict), type(result)
        assert set(result) == set(expected)
        return [(result[key], expected[key], key) for key in sorted(expected)]
    if isinstance(expected, tuple):
        assert isinstance(result, tuple), type(result)
        assert len(result) == len(expected)
        return [(r, e, f"item {i}") for i, (r, e) in enumerate(zip(result, expected))]
    return [(result, expected, "result")]


def reference_result(case, arrays, options):
    """Return the case's expected result on arrays (float64 or the compute dtype)."""
    with np.errstate(all="ignore"):
        if case.expect is not None:
            return case.expect(arrays, options)
        return case.reference(*arrays, **options)


def allow_dtype_nan(actual, wanted, in_dtype):
    """Return ``wanted`` with NaN where rounding to the compute dtype gives NaN.

    A product that underflows to 0 in float32 but not in float64, times an
    infinity, is NaN in float32 and an infinity in float64. So NaN is
    expected where mla's result is NaN, the float64 reference is infinite
    and the reference run in the compute dtype is NaN.
    """
    if any(part is None for part in (actual, wanted, in_dtype)):
        return wanted
    values = [np.asarray(part, dtype=np.float64) for part in (actual, wanted, in_dtype)]
    if len({part.shape for part in values}) > 1:
        return wanted
    rounded = np.isnan(values[0]) & np.isinf(values[1]) & np.isnan(values[2])
    if not rounded.any():
        return wanted
    if type(wanted) is float:
        return float("nan")
    return np.where(rounded, np.nan, values[1])


# Public callables that compute nothing from arrays, so have no entry.
NOT_ARRAY_FUNCTIONS = {"show_config", "set_num_threads", "get_num_threads"}


def test_registry_covers_public_api():
    # NOTE: classes (a model with fit and predict, say) take calls the
    # registry cannot describe, and are left out.
    functions = {
        name
        for name in mla.__all__
        if callable(getattr(mla, name))
        and not inspect.isclass(getattr(mla, name))
        and name not in NOT_ARRAY_FUNCTIONS
    }
    registered = {case.name for case in CASES}

    assert functions - registered == set(), "functions missing from cases.CASES"
    assert registered - functions == set(), "cases.CASES names unknown functions"


@pytest.mark.parametrize("name", [case.name for case in CASES])
@given(data=st.data())
def test_property_matches_reference(name, data):
    case = CASES_BY_NAME[name]
    signature, dims, arrays, options = draw_call(data, case)
    before = [array.copy() for array in arrays]
    dtype = compute_dtype(*(array.dtype for array in dtype_arrays(signature, arrays)))
    arrays64 = reference_arrays(signature, arrays)
    reference_options = {
        key: value for key, value in options.items() if key not in case.reference_skips
    }
    condition = None
    if case.condition is not None:
        condition = case.condition(arrays64, reference_options)
    comparable = condition is None or condition < case.max_condition

    try:
        result = case.function(*arrays, **options)
    except np.linalg.LinAlgError:
        assert not comparable, f"LinAlgError with condition number {condition:.3g}"
        return

    for argument, old, new in zip(case.signatures[0], before, arrays):
        assert_unchanged(old, new, f"{case.name} argument {argument.name}")
    if "out" in options:
        assert result is options["out"]
    if not comparable:
        return

    expected = reference_result(case, arrays64, reference_options)
    in_dtype = expected
    if dtype != np.float64:
        arrays_in_dtype = reference_arrays(signature, arrays, dtype)
        try:
            in_dtype = reference_result(case, arrays_in_dtype, reference_options)
        except np.linalg.LinAlgError:
            pass
    if case.scale is not None:
        scale = case.scale(arrays64)
    else:
        scale = product_scale(real_arrays(signature, arrays64))
    in_dtype_parts = [part[1] for part in result_parts(expected, in_dtype)]
    for (actual, wanted, label), rounded in zip(result_parts(result, expected), in_dtype_parts):
        if type(wanted) is float:
            assert type(actual) is float, f"{label}: {type(actual)}"
        else:
            assert np.asarray(actual).dtype == dtype, f"{label}: {np.asarray(actual).dtype}"
        assert_close(
            actual,
            allow_dtype_nan(actual, wanted, rounded),
            dtype,
            "elementwise" if case.inner is None else "reduction",
            inner=case.inner_length(dims),
            scale=scale,
            condition=condition,
            layout=f"{case.name} {label}, dims {dims}",
        )
