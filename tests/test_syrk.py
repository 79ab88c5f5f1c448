"""Tests of the blocked lower-triangle product C = A A^T (``_core._syrk``).

The product is cut into blocks of 192 rows. Blocks on and below the
diagonal are computed, blocks above it are left alone, which the hook makes
visible by starting C as NaN.
"""

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, LAYOUTS, assert_close, dtype_id, shape_id, to_layout

import mla
from mla import _core

BLOCK = 192

SHAPES = [
    (0, 3),
    (1, 1),
    (3, 0),
    (5, 3),
    (17, 9),
    (191, 7),
    (192, 40),
    (193, 5),
    (385, 33),
    (400, 260),
]


def lower_mask(n):
    return np.tril(np.ones((n, n), dtype=bool))


def diagonal_block_mask(n):
    """Return True where an entry lies in a block on the diagonal."""
    blocks = np.arange(n) // BLOCK
    return blocks[:, None] == blocks[None, :]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_syrk_lower_triangle_matches_product(shape, dtype, rng):
    A = rng.standard_normal(shape).astype(dtype)

    C = _core._syrk(A)

    n, k = shape
    A64 = A.astype(np.float64)
    expected = A64 @ A64.T
    lower = lower_mask(n)
    assert C.dtype == dtype
    assert_close(C[lower], expected[lower], dtype, "reduction", inner=k)


@pytest.mark.parametrize("shape", [(193, 5), (400, 3), (600, 2)], ids=shape_id)
def test_syrk_leaves_upper_blocks_alone(shape, rng):
    A = rng.standard_normal(shape)

    C = _core._syrk(A)

    n = shape[0]
    diagonal = diagonal_block_mask(n)
    untouched = ~lower_mask(n) & ~diagonal
    assert np.all(np.isnan(C[untouched]))
    written = lower_mask(n) | diagonal
    np.testing.assert_allclose(C[written], (A @ A.T)[written], rtol=1e-12, atol=1e-12)


def test_syrk_diagonal_blocks_symmetric(rng):
    A = rng.standard_normal((300, 20))

    C = _core._syrk(A)

    diagonal = diagonal_block_mask(300)
    np.testing.assert_array_equal(C[diagonal], C.T[diagonal])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_syrk_memory_layouts(layout, rng):
    A = to_layout(rng.standard_normal((210, 13)), layout)

    C = _core._syrk(A)

    lower = lower_mask(210)
    A64 = np.asarray(A, dtype=np.float64)
    expected = A64 @ A64.T
    assert_close(
        C[lower], expected[lower], np.float64, "reduction", inner=13, layout=layout
    )


def test_syrk_transposed_view_gives_gram_of_columns(rng):
    # A^T A of a tall matrix X is the same call on the view X.T.
    X = rng.standard_normal((1000, 30))

    C = _core._syrk(X.T)

    lower = lower_mask(30)
    assert_close(C[lower], (X.T @ X)[lower], np.float64, "reduction", inner=1000)


def test_syrk_thread_count_gives_identical_results(rng):
    A = rng.standard_normal((500, 300))
    original = mla.get_num_threads()
    try:
        mla.set_num_threads(1)
        single = _core._syrk(A)
        mla.set_num_threads(2)
        double = _core._syrk(A)
    finally:
        mla.set_num_threads(original)

    np.testing.assert_array_equal(single, double)
