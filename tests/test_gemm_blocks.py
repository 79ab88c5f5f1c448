"""The blocked GEMM at every register and cache block edge, on each kernel level.

The product packs A in MC-row blocks of MR-row panels and B in NC-column
blocks of NR-column panels, KC deep (csrc/gemm.h: MR 4 or 6, NR 8 or 16,
MC 96, KC 256, NC 4096). Each size below sits on one side of such an edge.
The level is switched in-process with the private ``_set_kernel_level``, so
every micro-kernel this CPU supports runs here, not only the fastest one.
"""

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, assert_close, dtype_id

import mla
from mla import _core

LEVELS = [
    level
    for level in _core._config()["supported_levels"]
    if level in ("generic", "avx2")
]

# (m, k, n): register tiles (MR 4/6, NR 8/16), MC = 96, KC = 256, NC = 4096.
BLOCK_EDGES = [
    (1, 1, 1),
    (3, 2, 7),
    (4, 3, 8),
    (5, 4, 9),
    (6, 5, 15),
    (7, 6, 16),
    (12, 7, 17),
    (13, 8, 33),
    (95, 9, 10),
    (96, 10, 11),
    (97, 11, 12),
    (193, 12, 13),
    (9, 255, 10),
    (10, 256, 9),
    (11, 257, 8),
    (5, 513, 7),
    (3, 5, 4095),
    (2, 3, 4096),
    (3, 2, 4097),
    (97, 257, 41),
]


@pytest.fixture(params=LEVELS)
def kernel_level(request):
    """Run the test with one kernel level forced, then restore the default."""
    before = _core._config()["kernel_level"]
    _core._set_kernel_level(request.param)
    yield request.param
    _core._set_kernel_level(before)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "mkn", BLOCK_EDGES, ids=lambda mkn: "m{}_k{}_n{}".format(*mkn)
)
def test_gemm_block_edges_match_reference(kernel_level, mkn, dtype, rng):
    m, k, n = mkn
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    assert_close(mla.matmul(a, b), expected, dtype, "reduction", inner=k)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_gemm_transposed_views_each_level(kernel_level, dtype, rng):
    a = rng.standard_normal((130, 97)).astype(dtype)
    b = rng.standard_normal((41, 130)).astype(dtype)
    expected = a.T.astype(np.float64) @ b.T.astype(np.float64)
    assert_close(mla.matmul(a.T, b.T), expected, dtype, "reduction", inner=130)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_fused_dense_block_edges_each_level(kernel_level, dtype, rng):
    x = rng.standard_normal((97, 257)).astype(dtype)
    w = rng.standard_normal((17, 257)).astype(dtype)
    b = rng.standard_normal(17).astype(dtype)
    z = x.astype(np.float64) @ w.T.astype(np.float64) + b
    for activation, expected in [
        ("relu", np.maximum(z, 0)),
        ("linear", z),
        ("sigmoid", mla.reference.sigmoid(z)),
    ]:
        actual = mla.forward_layer_batch(x, w, b, activation)
        assert_close(actual, expected, dtype, "reduction", inner=257)


def test_kernel_levels_agree_to_rounding(rng):
    # Different micro-kernels sum in different orders, so compare with a
    # tolerance; the level restored afterwards must be the default again.
    before = _core._config()["kernel_level"]
    a = rng.standard_normal((150, 300))
    b = rng.standard_normal((300, 70))
    results = []
    for level in LEVELS:
        _core._set_kernel_level(level)
        results.append(mla.matmul(a, b))
    _core._set_kernel_level(before)
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-12, atol=1e-12)
    assert _core._config()["kernel_level"] == before


def test_set_kernel_level_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown kernel level 'sse9'"):
        _core._set_kernel_level("sse9")
