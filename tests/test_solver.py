"""The symmetric solver behind linear_regression: Cholesky and its LU fallback.

A Gram matrix plus a non-negative ridge is positive semi-definite, so
linear_regression alone rarely reaches the LU path; these tests drive the
solver directly through the private hook ``mla._core._solve_symmetric``.
"""

import numpy as np
import pytest

from mla import _core


def test_solver_positive_definite_matches_numpy(rng):
    a = rng.standard_normal((7, 7))
    a = a @ a.T + 7 * np.eye(7)
    b = rng.standard_normal((7, 3))
    np.testing.assert_allclose(
        _core._solve_symmetric(a, b), np.linalg.solve(a, b), rtol=1e-10
    )


def test_solver_indefinite_uses_lu(rng):
    # Cholesky stops at the zero leading pivot; pivoted LU solves it.
    a = np.array([[0.0, 1.0, 2.0], [1.0, -3.0, 0.5], [2.0, 0.5, 1.0]])
    b = rng.standard_normal(3)
    np.testing.assert_allclose(
        _core._solve_symmetric(a, b), np.linalg.solve(a, b), rtol=1e-12
    )


def test_solver_singular_raises_linalgerror():
    a = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(np.linalg.LinAlgError, match="singular to working precision"):
        _core._solve_symmetric(a, np.ones(2))


def test_solver_nonfinite_gives_nan():
    a = np.array([[1.0, np.inf], [np.inf, 1.0]])
    assert np.isnan(_core._solve_symmetric(a, np.ones(2))).all()


def test_solver_does_not_modify_inputs(rng):
    a = np.array([[0.0, 1.0], [1.0, 0.0]])
    b = rng.standard_normal(2)
    a_before, b_before = a.copy(), b.copy()
    _core._solve_symmetric(a, b)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)
