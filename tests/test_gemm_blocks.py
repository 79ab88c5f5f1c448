"""The blocked GEMM on every kernel level, at every register and cache edge.

The product (csrc/gemm_impl.h) packs A in MC-row blocks of MR-row panels and
B in NC-column blocks of NR-column panels, KC deep, and runs one micro-kernel
per MR x NR tile. Products of at most 64^3 (float64) or 96^3 (float32)
multiply-adds, and products on one thread at most one tile wide, skip
packing and run the strided twin of the kernel on the operands in place.
On an AVX-512 CPU, products at most as wide as an AVX2 tile run the AVX2
kernel. The tile and block sizes of each level:

==========================  ==  ===========  ===========  ===========  ====
level                       MR  NR f32/f64   MC f32/f64   KC f32/f64   NC
==========================  ==  ===========  ===========  ===========  ====
generic                     4   8 / 8        96 / 96      256 / 256    4096
avx2                        6   16 / 8       96 / 96      256 / 256    4096
avx512, avx512-emulated     8   32 / 16      144 / 192    256 / 384    4096
==========================  ==  ===========  ===========  ===========  ====

Each shape below sits on one side of such an edge, in the direct or the
packed path. The level is switched in-process with private hooks, so every
micro-kernel this CPU can run is tested here, not only the fastest one.
"avx512-emulated" runs the AVX-512 kernels' source compiled for AVX2 with
each 512-bit vector split in two, which tests the AVX-512 tiles' logic on a
CPU without AVX-512.
"""

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, assert_close, dtype_id, to_layout

import mla
from mla import _core

SUPPORTED = _core._config()["supported_levels"]
LEVELS = [level for level in ("generic", "avx2", "avx512") if level in SUPPORTED]
if "avx2" in SUPPORTED:
    LEVELS.append("avx512-emulated")

# Register tile (MR, NR) of each level, as (MR, NR float32, NR float64).
TILES = {
    "generic": (4, 8, 8),
    "avx2": (6, 16, 8),
    "avx512": (8, 32, 16),
    "avx512-emulated": (8, 32, 16),
}

# (m, k, n) with m * k * n at most 64^3: the direct, unpacked path. Rows
# and columns straddle MR (4, 6, 8) and NR (8, 16, 32). The inner sizes
# straddle KC = 256 and its multiples, so several K slices run unpacked.
DIRECT_EDGES = [
    (1, 1, 1),
    (3, 2, 7),
    (4, 3, 8),
    (5, 4, 9),
    (6, 5, 15),
    (7, 6, 16),
    (8, 5, 16),
    (9, 11, 18),
    (11, 7, 17),
    (12, 8, 31),
    (13, 9, 32),
    (25, 10, 33),
    (2, 255, 9),
    (3, 256, 8),
    (5, 257, 16),
    (4, 511, 17),
    (6, 512, 31),
    (7, 513, 33),
    (2, 769, 3),
    (64, 64, 64),
]

# (m, k, n) above 96^3 multiply-adds: the packed, blocked path. Rows
# straddle MC (96, 144, 192) and the register tiles, columns NC (4096) and NR,
# and the inner sizes KC and its multiples.
PACKED_EDGES = [
    (95, 97, 100),
    (96, 98, 101),
    (97, 99, 103),
    (143, 100, 67),
    (144, 101, 65),
    (145, 102, 63),
    (191, 100, 64),
    (192, 101, 65),
    (193, 99, 66),
    (289, 60, 61),
    (100, 255, 40),
    (101, 256, 41),
    (102, 257, 39),
    (60, 383, 45),
    (61, 384, 44),
    (59, 385, 46),
    (50, 511, 47),
    (49, 512, 49),
    (51, 513, 50),
    (37, 769, 35),
    (13, 17, 4095),
    (13, 17, 4096),
    (13, 17, 4097),
    (241, 257, 23),
]


@pytest.fixture
def restore_threads():
    """Restore the thread count that a test changes."""
    original = mla.get_num_threads()
    yield original
    mla.set_num_threads(original)


def mkn_id(mkn):
    return "m{}_k{}_n{}".format(*mkn)


def random_pair(rng, m, k, n, dtype):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    return a, b


def exact_product(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mkn", DIRECT_EDGES + PACKED_EDGES, ids=mkn_id)
def test_gemm_block_edges_match_reference(gemm_kernel_level, mkn, dtype, rng):
    m, k, n = mkn
    a, b = random_pair(rng, m, k, n, dtype)
    assert_close(
        mla.matmul(a, b), exact_product(a, b), dtype, "reduction", inner=k
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mkn", [(13, 31, 29), (131, 140, 67)], ids=mkn_id)
@pytest.mark.parametrize("layout", ["C", "F", "transposed", "negative", "strided"])
def test_gemm_layouts_each_level(gemm_kernel_level, layout, mkn, dtype, rng):
    # The first shape takes the direct path, the second the packed one.
    m, k, n = mkn
    a, b = random_pair(rng, m, k, n, dtype)
    a_view = to_layout(a, layout)
    b_view = to_layout(b, layout)
    bt_view = to_layout(b.T.copy(), layout).T
    expected = exact_product(a, b)
    for first, second in [(a_view, b_view), (a_view, bt_view), (a, bt_view)]:
        assert_close(
            mla.matmul(first, second),
            expected,
            dtype,
            "reduction",
            inner=k,
            layout=layout,
        )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_gemm_sliced_operands_each_level(gemm_kernel_level, dtype, rng):
    # Sub-blocks of larger arrays: row strides longer than the rows.
    big_a = rng.standard_normal((300, 250)).astype(dtype)
    big_b = rng.standard_normal((260, 310)).astype(dtype)
    for a, b in [
        (big_a[3:140, 5:205], big_b[7:207, 11:120]),
        (big_a[1:20, 2:30], big_b[3:31, 4:25]),
        (big_a[::-3, 10:60], big_b[100:150, ::-2]),
    ]:
        assert_close(
            mla.matmul(a, b),
            exact_product(a, b),
            dtype,
            "reduction",
            inner=a.shape[1],
            layout="sliced",
        )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("m, n", [(5, 7), (130, 140)])
def test_gemm_empty_inner_dimension_each_level(gemm_kernel_level, m, n, dtype):
    a = np.ones((m, 0), dtype=dtype)
    b = np.ones((0, n), dtype=dtype)
    result = mla.matmul(a, b)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, np.zeros((m, n)))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_fused_dense_empty_inner_dimension(gemm_kernel_level, dtype, rng):
    # act(0 + b) for each row: the epilogue of an empty sum.
    x = np.ones((6, 0), dtype=dtype)
    w = np.ones((5, 0), dtype=dtype)
    b = rng.standard_normal(5).astype(dtype)
    expected = np.broadcast_to(np.maximum(b.astype(np.float64), 0), (6, 5))
    actual = mla.forward_layer_batch(x, w, b, "relu")
    assert_close(actual, expected, dtype, "elementwise")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((2, 1, 9, 10), (3, 10, 11)),
        ((4, 13, 7), (7, 17)),
        ((13, 7), (4, 7, 17)),
        ((2, 1, 70, 80), (1, 3, 80, 90)),
        ((5, 30, 40), (1, 40, 35)),
    ],
    ids=str,
)
def test_gemm_batched_broadcasting_each_level(
    gemm_kernel_level, a_shape, b_shape, dtype, rng
):
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert_close(
        mla.matmul(a, b), expected, dtype, "reduction", inner=a_shape[-1]
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mkn", [(97, 257, 17), (5, 9, 3), (131, 300, 45)], ids=mkn_id)
def test_fused_dense_block_edges_each_level(gemm_kernel_level, mkn, dtype, rng):
    m, k, n = mkn
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    z = x.astype(np.float64) @ w.T.astype(np.float64) + b
    for activation, expected in [
        ("relu", np.maximum(z, 0)),
        ("linear", z),
        ("sigmoid", mla.reference.sigmoid(z)),
    ]:
        actual = mla.forward_layer_batch(x, w, b, activation)
        assert_close(actual, expected, dtype, "reduction", inner=k)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("k", [64, 300, 800])
def test_direct_and_packed_paths_round_alike(gemm_kernel_level, k, dtype, rng):
    # Rows 0..m of a tall product (packed path) and the same rows alone
    # (direct path) go through the same kernel arithmetic: identical bits.
    mr = TILES[gemm_kernel_level][0]
    m, n = 2 * mr + 1, 9
    a = rng.standard_normal((600, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    tall = mla.matmul(a, b)
    small = mla.matmul(a[:m], b)
    np.testing.assert_array_equal(small, tall[:m])


# (m, k) of matrix-vector products. The rows straddle 4 (rows per step of
# the dot form), the vector widths and the column form's chunks of 16 KiB
# of sums (2048 or 4096 rows). The inner sizes straddle 2 vectors (a step
# of the dot form) and 4 (a step of the column form).
GEMV_SHAPES = [
    (1, 1),
    (3, 5),
    (4, 7),
    (5, 8),
    (9, 15),
    (17, 16),
    (31, 17),
    (33, 33),
    (64, 63),
    (130, 64),
    (257, 65),
    (2047, 9),
    (2049, 6),
    (4097, 5),
]


def gemv_id(shape):
    return "m{}_k{}".format(*shape)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", GEMV_SHAPES, ids=gemv_id)
def test_matrix_vector_forms_each_level(gemm_kernel_level, shape, dtype, rng):
    # Row form (rows of A contiguous) and column form (columns contiguous),
    # reached from both sides: A @ x and y @ A.
    m, k = shape
    a = rng.standard_normal((m, k)).astype(dtype)
    x = rng.standard_normal(k).astype(dtype)
    y = rng.standard_normal(m).astype(dtype)
    a64, x64, y64 = (v.astype(np.float64) for v in (a, x, y))
    cases = {
        "A @ x, A C-ordered": (mla.matmul(a, x), a64 @ x64),
        "A @ x, A F-ordered": (mla.matmul(np.asfortranarray(a), x), a64 @ x64),
        "y @ A, A C-ordered": (mla.matmul(y, a), y64 @ a64),
        "y @ A, A F-ordered": (mla.matmul(y, np.asfortranarray(a)), y64 @ a64),
        "A @ x, x strided": (mla.matmul(a, to_layout(x, "strided")), a64 @ x64),
        "A[::-1] @ x": (mla.matmul(a[::-1], x), a64[::-1] @ x64),
        "(1, m) @ A": (mla.matmul(y[None, :], a), (y64 @ a64)[None, :]),
        "A @ (k, 1)": (mla.matmul(a, x[:, None]), (a64 @ x64)[:, None]),
    }
    for label, (actual, expected) in cases.items():
        inner = m if label.startswith(("y", "(1")) else k
        assert_close(actual, expected, dtype, "reduction", inner=inner, layout=label)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_matrix_vector_fused_dense_each_level(gemm_kernel_level, dtype, rng):
    # One output unit (n == 1) and one sample (m == 1) of a dense layer,
    # with the bias and the activation applied after the product.
    x = rng.standard_normal((300, 70)).astype(dtype)
    w = rng.standard_normal((1, 70)).astype(dtype)
    b = rng.standard_normal(1).astype(dtype)
    z = x.astype(np.float64) @ w.T.astype(np.float64) + b
    actual = mla.forward_layer_batch(x, w, b, "relu")
    assert_close(actual, np.maximum(z, 0), dtype, "reduction", inner=70)

    w = rng.standard_normal((90, 70)).astype(dtype)
    b = rng.standard_normal(90).astype(dtype)
    z = x[:1].astype(np.float64) @ w.T.astype(np.float64) + b
    actual = mla.forward_layer_batch(x[:1], w, b, "sigmoid")
    assert_close(actual, mla.reference.sigmoid(z), dtype, "reduction", inner=70)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("beta", [0.0, 1.0, -2.0])
def test_matrix_vector_update(gemm_kernel_level, beta, dtype, rng):
    a = rng.standard_normal((300, 200)).astype(dtype)
    x = rng.standard_normal((200, 1)).astype(dtype)
    a64, x64 = a.astype(np.float64), x.astype(np.float64)
    # C (300, 1) = A x, then C (1, 300) = x^T A^T.
    for first, second, exact in [(a, x, a64 @ x64), (x.T, a.T, x64.T @ a64.T)]:
        c = np.full(exact.shape, 0.5, dtype)
        _core._gemm_update(c, first, second, 3.0, beta)
        expected = 3.0 * exact + beta * 0.5
        assert_close(c, expected, dtype, "reduction", inner=201, scale=3)


def test_kernel_levels_agree_to_rounding(rng):
    # Different micro-kernels sum in different orders, so compare with a
    # tolerance; the level restored afterwards must be the default again.
    before = _core._config()["kernel_level"]
    a = rng.standard_normal((150, 300))
    b = rng.standard_normal((300, 70))
    results = []
    for level in [level for level in LEVELS if level != "avx512-emulated"]:
        _core._set_kernel_level(level)
        results.append(mla.matmul(a, b))
    _core._set_kernel_level(before)
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-12, atol=1e-12)
    assert _core._config()["kernel_level"] == before


@pytest.mark.skipif("avx512" not in SUPPORTED, reason="needs an AVX-512 CPU")
@pytest.mark.parametrize(
    "n, dtype",
    [(2, np.float32), (9, np.float32), (16, np.float32)]
    + [(2, np.float64), (5, np.float64), (8, np.float64)],
    ids=lambda value: dtype_id(value) if isinstance(value, type) else str(value),
)
def test_matmul_narrow_levels_identical_bytes(n, dtype, rng):
    # On an AVX-512 CPU a product at most as wide as an AVX2 tile runs the
    # AVX2 kernel, so both levels give the same bytes. In float64 the
    # AVX-512 blocks are 384 deep and the AVX2 ones 256, so for k = 700 the
    # AVX-512 tile would sum in other slices and round differently.
    before = _core._config()["kernel_level"]
    results = {}
    for m, k in [(50, 30), (256, 128), (300, 700)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        for level in ("avx2", "avx512"):
            _core._set_kernel_level(level)
            results[level] = mla.matmul(a, b)
        _core._set_kernel_level(before)
        np.testing.assert_array_equal(results["avx512"], results["avx2"])


def test_set_kernel_level_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown kernel level 'sse9'"):
        _core._set_kernel_level("sse9")


@pytest.mark.skipif("avx2" not in SUPPORTED, reason="this CPU has no AVX2")
def test_avx512_emulation_hook_returns_previous_setting():
    assert _core._set_gemm_avx512_on_avx2(True) is False
    assert _core._set_gemm_avx512_on_avx2(False) is True


# Products run on 1, 2 and 3 threads: rows split among threads (tall),
# columns split (one row panel, many columns), several K slices packed at
# once (deep) or one after another (deep and wide: more than 8 MiB of
# packed B), a batch shared out whole, transposed operands, and
# matrix-vector products.
THREAD_CASES = {
    "tall": lambda rng, dt: (rng.standard_normal((517, 300)).astype(dt),
                             rng.standard_normal((300, 129)).astype(dt)),
    "wide": lambda rng, dt: (rng.standard_normal((5, 400)).astype(dt),
                             rng.standard_normal((400, 3000)).astype(dt)),
    "deep": lambda rng, dt: (rng.standard_normal((200, 1100)).astype(dt),
                             rng.standard_normal((1100, 150)).astype(dt)),
    "deep and wide": lambda rng, dt: (rng.standard_normal((100, 2100)).astype(dt),
                                      rng.standard_normal((2100, 1100)).astype(dt)),
    "batched": lambda rng, dt: (rng.standard_normal((9, 40, 50)).astype(dt),
                                rng.standard_normal((9, 50, 60)).astype(dt)),
    "transposed": lambda rng, dt: (rng.standard_normal((300, 260)).astype(dt).T,
                                   rng.standard_normal((170, 300)).astype(dt).T),
    "matrix-vector": lambda rng, dt: (rng.standard_normal((3000, 1500)).astype(dt),
                                      rng.standard_normal(1500).astype(dt)),
    "vector-matrix": lambda rng, dt: (rng.standard_normal(1500).astype(dt),
                                      rng.standard_normal((1500, 3000)).astype(dt)),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", sorted(THREAD_CASES))
def test_matmul_thread_counts_identical_bytes(
    gemm_kernel_level, case, dtype, restore_threads
):
    a, b = THREAD_CASES[case](np.random.default_rng(5), dtype)
    mla.set_num_threads(1)
    one = mla.matmul(a, b)
    for threads in (2, 3):
        mla.set_num_threads(threads)
        many = mla.matmul(a, b)
        assert many.tobytes() == one.tobytes(), f"{threads} threads differ"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_fused_dense_thread_counts_identical_bytes(dtype, restore_threads, rng):
    x = rng.standard_normal((300, 257)).astype(dtype)
    w = rng.standard_normal((190, 257)).astype(dtype)
    b = rng.standard_normal(190).astype(dtype)
    for activation in ("relu", "sigmoid", "linear"):
        mla.set_num_threads(1)
        one = mla.forward_layer_batch(x, w, b, activation)
        mla.set_num_threads(2)
        two = mla.forward_layer_batch(x, w, b, activation)
        assert two.tobytes() == one.tobytes(), activation


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mkn", [(7, 5, 9), (140, 300, 130)], ids=mkn_id)
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (1.0, 1.0), (-0.5, 2.5)])
def test_gemm_update_matches_reference(gemm_kernel_level, mkn, alpha, beta, dtype, rng):
    m, k, n = mkn
    a, b = random_pair(rng, m, k, n, dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    expected = alpha * exact_product(a, b) + beta * c.astype(np.float64)
    _core._gemm_update(c, a, b, alpha, beta)
    assert_close(c, expected, dtype, "reduction", inner=k + 1, scale=3.0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_gemm_update_beta_zero_ignores_c(dtype, rng):
    a, b = random_pair(rng, 140, 90, 100, dtype)
    c = np.full((140, 100), np.nan, dtype=dtype)
    _core._gemm_update(c, a, b, 1.0, 0.0)
    assert_close(c, exact_product(a, b), dtype, "reduction", inner=90)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_gemm_update_strided_target(dtype, rng):
    # C is a transposed, sliced view: its tiles go through the edge buffer.
    a, b = random_pair(rng, 70, 40, 90, dtype)
    base = rng.standard_normal((200, 150)).astype(dtype)
    c = base[5:95, 3:143:2].T
    before = c.astype(np.float64)
    _core._gemm_update(c, a, b, 2.0, 1.0)
    assert_close(
        c, 2.0 * exact_product(a, b) + before, dtype, "reduction", inner=41, scale=2
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("n, k", [(1, 3), (13, 7), (97, 300), (300, 45)])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_syrk_lower_matches_reference(gemm_kernel_level, n, k, beta, dtype, rng):
    a = rng.standard_normal((n, k)).astype(dtype)
    c = rng.standard_normal((n, n)).astype(dtype)
    before = c.copy()
    _core._syrk_lower(c, a, 1.5, beta)
    exact = 1.5 * exact_product(a, a.T) + beta * before.astype(np.float64)
    lower = np.tril_indices(n)
    upper = np.triu_indices(n, 1)
    assert_close(c[lower], exact[lower], dtype, "reduction", inner=k + 1, scale=2)
    np.testing.assert_array_equal(c[upper], before[upper])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_syrk_lower_gram_of_transposed_view(dtype, rng):
    # X^T X through the strides of X.T, as a least-squares fit needs it.
    x = rng.standard_normal((500, 61)).astype(dtype)
    c = np.zeros((61, 61), dtype=dtype)
    _core._syrk_lower(c, x.T, 1.0, 0.0)
    exact = exact_product(x.T, x)
    lower = np.tril_indices(61)
    assert_close(c[lower], exact[lower], dtype, "reduction", inner=500)
    assert not np.any(c[np.triu_indices(61, 1)])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_syrk_lower_thread_counts_identical_bytes(dtype, restore_threads, rng):
    a = rng.standard_normal((400, 300)).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        mla.set_num_threads(threads)
        c = np.zeros((400, 400), dtype=dtype)
        _core._syrk_lower(c, a, 1.0, 0.0)
        results.append(c.tobytes())
    assert results[1] == results[0]
    assert results[2] == results[0]


def test_gemm_update_rejects_mismatched_shapes():
    c = np.zeros((3, 4))
    with pytest.raises(ValueError, match="_gemm_update: shapes must be"):
        _core._gemm_update(c, np.zeros((3, 5)), np.zeros((4, 4)), 1.0, 0.0)


def test_peak_loop_counts_operations():
    # 12 chains of 2 operations per step on vectors of 1 to 16 elements.
    for code in ("f", "d"):
        flops = _core._gemm_peak_loop(code, 1000)
        assert flops % (12 * 2 * 1000) == 0
        assert 1 <= flops / (12 * 2 * 1000) <= 16


def test_threadpoolctl_limits_gemm_threads(restore_threads, rng):
    # Without mla's own override, OpenMP's thread count applies, and
    # threadpoolctl sets it through the libgomp that mla is linked with.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _core._config()["openmp"]:
        pytest.skip("mla was built without OpenMP")
    a, b = random_pair(rng, 300, 200, 250, np.float64)
    _core._reset_num_threads()
    default = mla.matmul(a, b)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert mla.get_num_threads() == 1
        limited = mla.matmul(a, b)
    assert limited.tobytes() == default.tobytes()
