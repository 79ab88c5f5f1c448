"""Tests for the in-place optimizer updates behind mla.MLP.step.

``mla._core._sgd_update`` and ``mla._core._adam_update`` are private: they
modify their arguments, unlike every public function. They are checked
against the NumPy formulas, in place, and on the arrays they must reject.
"""

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, assert_close, dtype_id, shape_id

from mla import _core

SHAPES = [(0,), (1,), (7,), (33, 17), (4, 5, 6)]


def state_arrays(rng, shape, dtype, count):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(count)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_sgd_update_matches_formula(shape, dtype, rng):
    param, velocity, grad = state_arrays(rng, shape, dtype, 3)
    param_in, velocity_in = param.copy(), velocity.copy()
    param_id, velocity_id = id(param), id(velocity)

    result = _core._sgd_update(param, velocity, grad, 0.1, 0.9)

    assert result is None
    assert id(param) == param_id
    assert id(velocity) == velocity_id
    expected_velocity = 0.9 * velocity_in.astype(np.float64) + grad
    expected_param = param_in - 0.1 * expected_velocity
    # 0.9 * velocity + grad can cancel, so compare as a sum, not elementwise.
    assert_close(velocity, expected_velocity, dtype, "reduction", layout="velocity")
    assert_close(param, expected_param, dtype, "reduction", layout="param")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_adam_update_matches_formula(shape, dtype, rng):
    param, first, grad = state_arrays(rng, shape, dtype, 3)
    second = np.abs(rng.standard_normal(shape)).astype(dtype)
    param_in = param.astype(np.float64)
    first_in, second_in = first.astype(np.float64), second.astype(np.float64)
    grad_in = grad.astype(np.float64)

    _core._adam_update(param, first, second, grad, 0.01, 0.9, 0.999, 1e-8)

    expected_first = 0.9 * first_in + 0.1 * grad_in
    expected_second = 0.999 * second_in + 0.001 * grad_in**2
    expected_param = param_in - 0.01 * expected_first / (
        np.sqrt(expected_second) + 1e-8
    )
    assert_close(first, expected_first, dtype, "reduction", layout="first")
    assert_close(second, expected_second, dtype, "reduction", layout="second")
    assert_close(param, expected_param, dtype, "reduction", layout="param")


def test_sgd_update_converts_grad(rng):
    param, velocity = state_arrays(rng, (5, 3), np.float32, 2)
    grad = rng.standard_normal((5, 3))
    expected = param - 0.5 * (0.0 * velocity + grad.astype(np.float32))

    _core._sgd_update(param, velocity, grad.tolist(), 0.5, 0.0)

    np.testing.assert_allclose(param, expected, rtol=1e-6)
    assert param.dtype == np.float32


def bad_states(rng):
    """Return ``{case: (array, error, pattern)}`` for a float64 (6, 4) param."""
    base = rng.standard_normal((6, 4))
    read_only = base.copy()
    read_only.flags.writeable = False
    return {
        "list": (base.tolist(), TypeError, r"must be a numpy.ndarray; got list"),
        "int64": (base.astype(np.int64), TypeError, r"must be float32 or float64"),
        "transposed": (base.T.copy().T, ValueError, r"must be C-contiguous"),
        "strided": (np.zeros((12, 4))[::2], ValueError, r"must be C-contiguous"),
        "read-only": (read_only, ValueError, r"must be C-contiguous, .* writeable"),
        "byteswapped": (
            base.astype(base.dtype.newbyteorder()),
            ValueError,
            r"must be C-contiguous, .* native byte order",
        ),
    }


@pytest.mark.parametrize(
    "case", ["list", "int64", "transposed", "strided", "read-only", "byteswapped"]
)
@pytest.mark.parametrize("argument", ["param", "velocity"])
def test_sgd_update_rejects_state(argument, case, rng):
    array, error, pattern = bad_states(rng)[case]
    arrays = {"param": np.zeros((6, 4)), "velocity": np.zeros((6, 4))}
    arrays[argument] = array

    with pytest.raises(error, match=rf"^_sgd_update: {argument} {pattern}"):
        _core._sgd_update(
            arrays["param"], arrays["velocity"], np.ones((6, 4)), 0.1, 0.9
        )


@pytest.mark.parametrize("argument", ["first", "second"])
def test_adam_update_state_mismatch(argument):
    arrays = {name: np.zeros((6, 4)) for name in ("param", "first", "second")}
    arrays[argument] = np.zeros((6, 4), dtype=np.float32)

    with pytest.raises(ValueError, match=rf"^_adam_update: {argument} must have the"):
        _core._adam_update(*arrays.values(), np.ones((6, 4)), 0.1, 0.9, 0.99, 1e-8)

    arrays[argument] = np.zeros((4, 6))
    with pytest.raises(ValueError, match=r"param \(float64 \(6, 4\)\); got float64"):
        _core._adam_update(*arrays.values(), np.ones((6, 4)), 0.1, 0.9, 0.99, 1e-8)


def test_optimizer_update_grad_shape_mismatch():
    param, velocity = np.zeros((6, 4)), np.zeros((6, 4))

    with pytest.raises(ValueError, match=r"grad must have the shape of param"):
        _core._sgd_update(param, velocity, np.ones((4, 6)), 0.1, 0.9)

    np.testing.assert_array_equal(param, 0.0)


def test_optimizer_update_scalar_not_number():
    param, velocity = np.zeros(3), np.zeros(3)

    with pytest.raises(TypeError):
        _core._sgd_update(param, velocity, np.ones(3), "0.1", 0.9)
