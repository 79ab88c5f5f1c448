"""Tests for scaled_dot_product_attention."""

import numpy as np
import pytest
from conftest import (
    FLOAT_DTYPES,
    LAYOUTS,
    TOLERANCES,
    assert_close,
    assert_unchanged,
    dtype_id,
    shape_id,
    to_float64,
    to_layout,
)

import mla
from mla import reference

# (Lq, Lk, d, dv)
ATTENTION_SIZES = [
    (1, 1, 1, 1),
    (4, 4, 8, 8),
    (3, 5, 8, 8),
    (5, 3, 8, 6),
    (7, 9, 4, 16),
    (16, 17, 64, 32),
    (65, 130, 33, 7),
    (128, 128, 64, 64),
    (1, 257, 16, 3),
]

# (shape of Q, shape of K, shape of V): leading dimensions broadcast.
BATCHED_SHAPES = [
    ((2, 4, 8), (2, 6, 8), (2, 6, 5)),
    ((2, 1, 5, 8), (3, 7, 8), (3, 7, 4)),
    ((5, 8), (3, 7, 8), (3, 7, 4)),
    ((3, 5, 8), (7, 8), (7, 4)),
    ((2, 3, 5, 8), (1, 3, 7, 8), (2, 1, 7, 4)),
    ((1, 4, 8), (2, 6, 8), (6, 5)),
    ((0, 4, 8), (6, 8), (6, 5)),
    # Batch dimensions of V alone: the weights do not extend along them.
    ((5, 8), (7, 8), (2, 7, 4)),
    ((1, 5, 8), (3, 1, 7, 8), (2, 1, 1, 7, 4)),
    ((5, 8), (7, 8), (0, 7, 4)),
]


def attention_id(shapes):
    return "-".join(shape_id(shape) for shape in shapes)


def random_qkv(rng, q_shape, k_shape, v_shape, dtype=np.float64):
    Q = rng.standard_normal(q_shape).astype(dtype)
    K = rng.standard_normal(k_shape).astype(dtype)
    V = rng.standard_normal(v_shape).astype(dtype)
    return Q, K, V


def assert_attention_close(result, Q, K, V, dtype, layout="C"):
    """Check the ``(output, weights)`` pair against the float64 reference."""
    assert isinstance(result, tuple)
    assert len(result) == 2
    output, weights = result
    expected_output, expected_weights = reference.scaled_dot_product_attention(
        *to_float64(Q, K, V)
    )
    d, Lk = Q.shape[-1], K.shape[-2]
    assert_close(
        weights,
        expected_weights,
        dtype,
        "reduction",
        inner=d,
        layout=f"{layout}, weights",
    )
    assert_close(
        output,
        expected_output,
        dtype,
        "reduction",
        inner=d * Lk,
        layout=f"{layout}, output",
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", ATTENTION_SIZES, ids=shape_id)
def test_attention_matches_reference(sizes, dtype, rng):
    Lq, Lk, d, dv = sizes
    Q, K, V = random_qkv(rng, (Lq, d), (Lk, d), (Lk, dv), dtype)

    result = mla.scaled_dot_product_attention(Q, K, V)

    assert result[0].shape == (Lq, dv)
    assert result[1].shape == (Lq, Lk)
    assert_attention_close(result, Q, K, V, dtype)


def test_attention_article_shapes():
    # The article's example: sequence length 4 and d_k = 8. Its last seed(42)
    # precedes the regression data (100 x 3 features and 100 noise values).
    np.random.seed(42)
    np.random.randn(100, 3)
    np.random.randn(100)
    Q = np.random.randn(4, 8)
    K = np.random.randn(4, 8)
    V = np.random.randn(4, 8)

    output, weights = mla.scaled_dot_product_attention(Q, K, V)

    assert output.shape == (4, 8)
    assert weights.shape == (4, 4)
    assert_attention_close((output, weights), Q, K, V, np.float64)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shapes", BATCHED_SHAPES, ids=attention_id)
def test_attention_batched_broadcast(shapes, dtype, rng):
    Q, K, V = random_qkv(rng, *shapes, dtype)

    output, weights = mla.scaled_dot_product_attention(Q, K, V)

    expected_output, expected_weights = reference.scaled_dot_product_attention(
        *to_float64(Q, K, V)
    )
    assert output.shape == expected_output.shape
    assert weights.shape == expected_weights.shape
    assert_attention_close((output, weights), Q, K, V, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_attention_weights_rows_sum_one(dtype, rng):
    Q, K, V = random_qkv(rng, (3, 10, 16), (3, 12, 16), (3, 12, 5), dtype)

    _, weights = mla.scaled_dot_product_attention(Q, K, V)

    rtol = TOLERANCES[(np.dtype(dtype).name, "elementwise")]["rtol"] * 100
    np.testing.assert_allclose(weights.astype(np.float64).sum(axis=-1), 1.0, rtol=rtol)
    assert np.all(weights >= 0)


@pytest.mark.parametrize("v_layout", ["C", "F", "strided"])
@pytest.mark.parametrize("qk_layout", LAYOUTS)
def test_attention_memory_layouts(qk_layout, v_layout, rng):
    Q, K, V = random_qkv(rng, (2, 9, 12), (2, 11, 12), (2, 11, 7))
    Q = to_layout(Q, qk_layout)
    K = to_layout(K, qk_layout)
    V = to_layout(V, v_layout)

    result = mla.scaled_dot_product_attention(Q, K, V)

    assert_attention_close(
        result, Q, K, V, np.float64, layout=f"Q, K {qk_layout}, V {v_layout}"
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_attention_large_scores(dtype, rng):
    # Scores of several hundred would overflow exp without the max shift.
    Q = (rng.standard_normal((4, 8)) * 30).astype(dtype)
    K = (rng.standard_normal((6, 8)) * 30).astype(dtype)
    V = rng.standard_normal((6, 3)).astype(dtype)

    output, weights = mla.scaled_dot_product_attention(Q, K, V)

    assert np.all(np.isfinite(output))
    assert np.all(np.isfinite(weights))
    assert_attention_close((output, weights), Q, K, V, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "shapes",
    [((3, 8), (0, 8), (0, 5)), ((2, 3, 8), (2, 0, 8), (2, 0, 5))],
    ids=attention_id,
)
def test_attention_no_keys_zero_output(shapes, dtype):
    Q = np.ones(shapes[0], dtype=dtype)
    K = np.ones(shapes[1], dtype=dtype)
    V = np.ones(shapes[2], dtype=dtype)

    output, weights = mla.scaled_dot_product_attention(Q, K, V)

    batch = shapes[0][:-2]
    assert output.shape == batch + (3, 5)
    assert weights.shape == batch + (3, 0)
    assert output.dtype == dtype
    assert weights.dtype == dtype
    np.testing.assert_array_equal(output, np.zeros(batch + (3, 5)))


@pytest.mark.parametrize(
    "shapes",
    [((0, 8), (4, 8), (4, 5)), ((3, 8), (4, 8), (4, 0))],
    ids=attention_id,
)
def test_attention_empty_queries_or_values(shapes, rng):
    Q, K, V = random_qkv(rng, *shapes)

    result = mla.scaled_dot_product_attention(Q, K, V)

    assert result[0].shape == (shapes[0][0], shapes[2][1])
    assert result[1].shape == (shapes[0][0], shapes[1][0])
    assert_attention_close(result, Q, K, V, np.float64)


@pytest.mark.parametrize(
    "shapes",
    [
        ((4, 8), (4, 7), (4, 8)),
        ((4, 8), (5, 8), (4, 8)),
        ((2, 4, 8), (3, 4, 8), (3, 4, 8)),
        ((2, 4, 8), (2, 5, 8), (3, 5, 8)),
    ],
    ids=attention_id,
)
def test_attention_shape_mismatch(shapes):
    Q, K, V = (np.ones(shape) for shape in shapes)

    with pytest.raises(ValueError, match=r"^scaled_dot_product_attention: ") as error:
        mla.scaled_dot_product_attention(Q, K, V)

    message = str(error.value)
    for shape in shapes:
        assert str(shape) in message


@pytest.mark.parametrize(
    "shapes",
    [((8,), (4, 8), (4, 8)), ((4, 8), (8,), (4, 8)), ((4, 8), (4, 8), (8,))],
    ids=attention_id,
)
def test_attention_requires_two_dimensions(shapes):
    Q, K, V = (np.ones(shape) for shape in shapes)

    with pytest.raises(ValueError, match=r"^scaled_dot_product_attention: "):
        mla.scaled_dot_product_attention(Q, K, V)


def test_attention_leaves_inputs_unchanged(rng):
    Q, K, V = random_qkv(rng, (5, 8), (6, 8), (6, 4))
    Q, K, V = to_layout(Q, "strided"), to_layout(K, "negative"), to_layout(V, "F")
    before = (Q.copy(), K.copy(), V.copy())

    mla.scaled_dot_product_attention(Q, K, V)

    for name, old, new in zip("QKV", before, (Q, K, V)):
        assert_unchanged(old, new, name)


def test_attention_broadcast_views_not_copied(rng):
    # Q is one (2, 8) head broadcast to 50000: a copy would take 6.4 MB on
    # top of the 5.6 MB of outputs and the 1.2 MB of per-head offsets (three
    # 8-byte offsets a head). Read through its zero stride, Q adds nothing.
    import tracemalloc

    heads = 50_000
    q = np.broadcast_to(rng.standard_normal((1, 2, 8)), (heads, 2, 8))
    k = rng.standard_normal((3, 8))
    v = rng.standard_normal((3, 4))
    tracemalloc.start()
    try:
        output, weights = mla.scaled_dot_product_attention(q, k, v)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected_peak = output.nbytes + weights.nbytes + 3 * 8 * heads
    assert peak < expected_peak + 1_000_000, f"peak {peak} B"

    expected_output, expected_weights = reference.scaled_dot_product_attention(
        q[:1], k, v
    )
    np.testing.assert_allclose(output[-1:], expected_output, rtol=1e-12)
    np.testing.assert_allclose(weights[-1:], expected_weights, rtol=1e-12)


def test_attention_batch_count_overflow_rejected():
    base = np.zeros(1)
    q = np.lib.stride_tricks.as_strided(base, (2**32, 1, 1, 1), (0, 0, 0, 0))
    k = np.lib.stride_tricks.as_strided(base, (1, 2**32, 1, 1), (0, 0, 0, 0))
    with pytest.raises(
        ValueError, match="^scaled_dot_product_attention: the broadcast batch"
    ):
        mla.scaled_dot_product_attention(q, k, k)
