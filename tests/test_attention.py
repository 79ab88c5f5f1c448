"""Tests for scaled_dot_product_attention and its backward."""

import subprocess
import sys
import textwrap
from pathlib import Path

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

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

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


# Options of the real-model interface: masks, causal, scale, streaming.

# (Lq, Lk, d, dv) around the block sizes: 96 query rows per work item, 96
# keys per block, d and dv up to 96 for block products that the GEMM runs
# without packing, and the GEMM's 256-deep slices.
BLOCK_EDGE_SIZES = [
    (1, 1, 1, 1),
    (95, 257, 64, 64),
    (96, 256, 65, 63),
    (97, 129, 1, 1),
    (193, 127, 16, 130),
    (2, 513, 257, 8),
    (200, 3, 8, 8),
    (98, 192, 96, 95),
    (40, 193, 97, 96),
]

MASK_KINDS = ("none", "random", "keys", "per_head")


def make_mask(kind, rng, heads, Lq, Lk):
    """Return a boolean mask of one kind, or None.

    ``"random"`` is one (Lq, Lk) pattern shared by all heads, ``"keys"`` a
    padding mask (heads, 1, Lk) that hides trailing keys, and
    ``"per_head"`` a full (heads, Lq, Lk) mask. Random masks leave some
    rows with no allowed key when Lk is small.
    """
    if kind == "none":
        return None
    if kind == "random":
        return rng.random((Lq, Lk)) < 0.7
    if kind == "keys":
        lengths = rng.integers(0, Lk + 1, size=heads)
        return np.arange(Lk)[None, None, :] < lengths[:, None, None]
    if kind == "per_head":
        return rng.random((heads, Lq, Lk)) < 0.5
    raise ValueError(f"invalid mask kind {kind!r}")


def assert_attention_options_close(Q, K, V, dtype, **options):
    """Check both kernels against the float64 reference for one option set."""
    expected_output, expected_weights = reference.scaled_dot_product_attention(
        *to_float64(Q, K, V), **options
    )
    d, Lk = Q.shape[-1], K.shape[-2]
    context = ", ".join(
        f"{name}={'array' if isinstance(value, np.ndarray) else value}"
        for name, value in options.items()
    )

    output, weights = mla.scaled_dot_product_attention(Q, K, V, **options)
    streamed = mla.scaled_dot_product_attention(
        Q, K, V, return_weights=False, **options
    )

    assert_close(weights, expected_weights, dtype, "reduction", inner=d, layout=context)
    assert_close(
        output,
        expected_output,
        dtype,
        "reduction",
        inner=d + Lk,
        layout=f"{context}, weights kept",
    )
    assert_close(
        streamed,
        expected_output,
        dtype,
        "reduction",
        inner=d + Lk,
        layout=f"{context}, streamed",
    )


@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", BLOCK_EDGE_SIZES, ids=shape_id)
def test_attention_options_match_reference(sizes, dtype, causal, mask_kind, rng):
    Lq, Lk, d, dv = sizes
    heads = 2
    Q, K, V = random_qkv(rng, (heads, Lq, d), (heads, Lk, d), (heads, Lk, dv), dtype)
    mask = make_mask(mask_kind, rng, heads, Lq, Lk)

    assert_attention_options_close(Q, K, V, dtype, mask=mask, causal=causal)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("Lq, Lk", [(3, 5), (5, 3), (1, 300), (300, 1), (100, 400)])
def test_attention_causal_top_left_aligned(Lq, Lk, dtype, rng):
    Q, K, V = random_qkv(rng, (Lq, 8), (Lk, 8), (Lk, 4), dtype)

    output, weights = mla.scaled_dot_product_attention(Q, K, V, causal=True)
    streamed = mla.scaled_dot_product_attention(
        Q, K, V, causal=True, return_weights=False
    )

    # Query i attends keys 0..i, counted from the first key.
    allowed = np.arange(Lk)[None, :] <= np.arange(Lq)[:, None]
    assert np.all(weights[~allowed] == 0)
    assert np.all(weights[allowed] > 0)
    assert weights[0, 0] == 1
    rtol = 100 * float(np.finfo(dtype).eps)
    np.testing.assert_allclose(weights.astype(np.float64).sum(axis=-1), 1.0, rtol=rtol)
    assert_attention_options_close(Q, K, V, dtype, causal=True)
    np.testing.assert_allclose(streamed, output, rtol=1e3 * rtol, atol=1e3 * rtol)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_attention_causal_and_mask_combine(dtype, rng):
    Lq, Lk = 150, 170
    Q, K, V = random_qkv(rng, (2, Lq, 16), (2, Lk, 16), (2, Lk, 8), dtype)
    mask = rng.random((2, Lq, Lk)) < 0.6
    both = mask & np.tri(Lq, Lk, dtype=bool)

    combined = mla.scaled_dot_product_attention(Q, K, V, mask=mask, causal=True)
    as_one_mask = mla.scaled_dot_product_attention(Q, K, V, mask=both)

    rtol = 100 * float(np.finfo(dtype).eps)
    for index, name in enumerate(["output", "weights"]):
        np.testing.assert_allclose(
            combined[index], as_one_mask[index], rtol=rtol, atol=rtol, err_msg=name
        )
    assert np.all(combined[1][~both] == 0)


@pytest.mark.parametrize(
    "mask_shape",
    [(), (1,), (7,), (1, 7), (5, 1), (5, 7), (3, 1, 7), (2, 3, 5, 7), (2, 1, 1, 1)],
    ids=shape_id,
)
def test_attention_mask_broadcasts(mask_shape, rng):
    Q, K, V = random_qkv(rng, (3, 5, 8), (3, 7, 8), (3, 7, 4))
    mask = rng.random(mask_shape) < 0.6

    output, weights = mla.scaled_dot_product_attention(Q, K, V, mask=mask)

    expected_batch = np.broadcast_shapes(mask_shape[:-2], (3,))
    assert output.shape == expected_batch + (5, 4)
    assert weights.shape == expected_batch + (5, 7)
    assert_attention_options_close(Q, K, V, np.float64, mask=mask)


@pytest.mark.parametrize(
    "mask", [False, True, np.False_, [True, False, True, True, False, True, True]], ids=repr
)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_mask_python_values(mask, causal, rng):
    # A Python bool or list broadcasts like the array it stands for, in mla
    # and in the reference (where ~False would be the int -1).
    Q, K, V = random_qkv(rng, (5, 8), (7, 8), (7, 4))

    assert_attention_options_close(Q, K, V, np.float64, mask=mask, causal=causal)
    d_output = rng.standard_normal((5, 4))
    assert_gradients_close(Q, K, V, d_output, np.float64, mask=mask, causal=causal)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_attention_mask_memory_layouts(layout, rng):
    Q, K, V = random_qkv(rng, (2, 9, 12), (2, 11, 12), (2, 11, 7))
    mask = to_layout(rng.random((2, 9, 11)) < 0.6, layout)

    assert_attention_options_close(Q, K, V, np.float64, mask=mask, causal=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_masked_rows_zero(causal, dtype, rng):
    Lq, Lk = 130, 300
    Q, K, V = random_qkv(rng, (Lq, 16), (Lk, 16), (Lk, 5), dtype)
    mask = rng.random((Lq, Lk)) < 0.5
    empty_rows = [0, 7, 96, 129]
    mask[empty_rows] = False

    output, weights = mla.scaled_dot_product_attention(
        Q, K, V, mask=mask, causal=causal
    )
    streamed = mla.scaled_dot_product_attention(
        Q, K, V, mask=mask, causal=causal, return_weights=False
    )

    for row in empty_rows:
        assert np.all(weights[row] == 0), f"weights row {row}"
        assert np.all(output[row] == 0), f"output row {row}"
        assert np.all(streamed[row] == 0), f"streamed row {row}"
    assert np.all(np.isfinite(output))
    assert np.all(np.isfinite(streamed))
    assert_attention_options_close(Q, K, V, dtype, mask=mask, causal=causal)


@pytest.mark.parametrize("return_weights", [True, False])
def test_attention_all_masked_ignores_nan_values(return_weights, rng):
    Q, K, V = random_qkv(rng, (2, 4, 8), (2, 6, 8), (2, 6, 3))
    V[:, 2] = np.nan
    V[:, 3] = np.inf

    result = mla.scaled_dot_product_attention(
        Q, K, V, mask=np.zeros((4, 6), dtype=bool), return_weights=return_weights
    )

    output = result[0] if return_weights else result
    np.testing.assert_array_equal(output, np.zeros((2, 4, 3)))
    if return_weights:
        np.testing.assert_array_equal(result[1], np.zeros((2, 4, 6)))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shapes", BATCHED_SHAPES, ids=attention_id)
def test_attention_streamed_batched_broadcast(shapes, dtype, rng):
    Q, K, V = random_qkv(rng, *shapes, dtype)

    streamed = mla.scaled_dot_product_attention(Q, K, V, return_weights=False)

    expected = reference.scaled_dot_product_attention(*to_float64(Q, K, V))[0]
    assert isinstance(streamed, np.ndarray)
    assert streamed.dtype == dtype
    assert_close(
        streamed, expected, dtype, "reduction", inner=Q.shape[-1] + K.shape[-2]
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_attention_streamed_matches_materialized(dtype, rng):
    heads, Lq, Lk = 3, 400, 1100
    Q, K, V = random_qkv(rng, (heads, Lq, 64), (heads, Lk, 64), (heads, Lk, 48), dtype)
    Q *= 2  # sharper weights, so the running max moves between key blocks
    mask = rng.random((heads, 1, Lk)) < 0.9

    for causal in (False, True):
        output, _ = mla.scaled_dot_product_attention(Q, K, V, mask=mask, causal=causal)
        streamed = mla.scaled_dot_product_attention(
            Q, K, V, mask=mask, causal=causal, return_weights=False
        )

        tolerance = 1e-12 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(
            streamed, output, rtol=tolerance, atol=tolerance, err_msg=f"causal={causal}"
        )


@pytest.mark.parametrize("return_weights", [True, False])
@pytest.mark.parametrize("v_layout", ["F", "negative", "strided"])
@pytest.mark.parametrize("qk_layout", LAYOUTS)
def test_attention_options_memory_layouts(qk_layout, v_layout, return_weights, rng):
    Q, K, V = random_qkv(rng, (2, 100, 12), (2, 140, 12), (2, 140, 7))
    expected = reference.scaled_dot_product_attention(Q, K, V, causal=True)[0]
    Q = to_layout(Q, qk_layout)
    K = to_layout(K, qk_layout)
    V = to_layout(V, v_layout)

    result = mla.scaled_dot_product_attention(
        Q, K, V, causal=True, return_weights=return_weights
    )

    output = result[0] if return_weights else result
    assert_close(
        output,
        expected,
        np.float64,
        "reduction",
        inner=152,
        layout=f"{qk_layout} {v_layout}",
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("scale", [0.5, -1.5, 3.0, 1])
def test_attention_scale_option(scale, dtype, rng):
    Q, K, V = random_qkv(rng, (2, 30, 16), (2, 40, 16), (2, 40, 8), dtype)

    assert_attention_options_close(Q, K, V, dtype, scale=scale, causal=True)


def test_attention_zero_scale_uniform_weights(rng):
    Q, K, V = random_qkv(rng, (6, 8), (9, 8), (9, 3))

    output, weights = mla.scaled_dot_product_attention(Q, K, V, scale=0.0)

    np.testing.assert_allclose(weights, np.full((6, 9), 1 / 9), rtol=1e-15)
    np.testing.assert_allclose(output, np.tile(V.mean(axis=0), (6, 1)), rtol=1e-13)


def test_attention_zero_depth_with_scale(rng):
    # d = 0: every score is an empty sum, so with a finite scale all weights
    # are equal. The default scale 1 / sqrt(0) would make them NaN.
    Q, K = np.ones((4, 0)), np.ones((5, 0))
    V = rng.standard_normal((5, 3))

    output, weights = mla.scaled_dot_product_attention(Q, K, V, scale=1.0)
    streamed = mla.scaled_dot_product_attention(
        Q, K, V, scale=1.0, return_weights=False
    )

    np.testing.assert_allclose(weights, np.full((4, 5), 0.2), rtol=1e-15)
    np.testing.assert_allclose(output, np.tile(V.mean(axis=0), (4, 1)), rtol=1e-13)
    np.testing.assert_allclose(streamed, output, rtol=1e-13)


def test_attention_zero_depth_default_scale_nan(rng):
    Q, K, V = np.ones((2, 0)), np.ones((3, 0)), rng.standard_normal((3, 2))

    output, weights = mla.scaled_dot_product_attention(Q, K, V)
    streamed = mla.scaled_dot_product_attention(Q, K, V, return_weights=False)

    assert np.all(np.isnan(weights))
    assert np.all(np.isnan(output))
    assert np.all(np.isnan(streamed))


@pytest.mark.parametrize("return_weights", [True, False])
def test_attention_nan_query_stays_in_row(return_weights, rng):
    Q, K, V = random_qkv(rng, (300, 8), (400, 8), (400, 3))
    Q[5, 2] = np.nan

    result = mla.scaled_dot_product_attention(Q, K, V, return_weights=return_weights)

    output = result[0] if return_weights else result
    assert np.all(np.isnan(output[5]))
    assert np.all(np.isfinite(np.delete(output, 5, axis=0)))
    if return_weights:
        assert np.all(np.isnan(result[1][5]))


@pytest.mark.parametrize("return_weights", [True, False])
def test_attention_lone_nan_score(return_weights, rng):
    # The only allowed key has a NaN score: the row is NaN, as in NumPy,
    # not the zero of a row with no allowed key.
    Q, K, V = random_qkv(rng, (3, 4), (5, 4), (5, 2))
    K[1, 0] = np.nan
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, 1] = True
    mask[1, 2] = True

    result = mla.scaled_dot_product_attention(
        Q, K, V, mask=mask, return_weights=return_weights
    )

    output = result[0] if return_weights else result
    assert np.all(np.isnan(output[0]))
    assert np.all(np.isfinite(output[1]))
    assert np.all(output[2] == 0)


def test_attention_masked_nan_key_ignored(rng):
    Q, K, V = random_qkv(rng, (6, 4), (8, 4), (8, 2))
    K[3] = np.nan
    mask = np.ones((6, 8), dtype=bool)
    mask[:, 3] = False

    assert_attention_options_close(Q, K, V, np.float64, mask=mask)
    output = mla.scaled_dot_product_attention(Q, K, V, mask=mask, return_weights=False)
    assert np.all(np.isfinite(output))


def test_attention_causal_skips_distant_nan(rng):
    # A causal query block reads no key past its last row, so a NaN in the
    # last row of V cannot reach the first 300 queries. Queries that share
    # a key block with it may see it as 0 * NaN, which the docstring allows.
    Lq = Lk = 600
    Q, K, V = random_qkv(rng, (Lq, 8), (Lk, 8), (Lk, 2))
    V[-1] = np.nan

    output = mla.scaled_dot_product_attention(
        Q, K, V, causal=True, return_weights=False
    )
    weighted, _ = mla.scaled_dot_product_attention(Q, K, V, causal=True)

    assert np.all(np.isfinite(output[:300]))
    assert np.all(np.isfinite(weighted[:300]))
    assert np.all(np.isnan(output[-1]))


@pytest.mark.parametrize("mask_kind", ["none", "random"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_attention_matches_torch(dtype, causal, mask_kind, rng):
    torch = pytest.importorskip("torch")
    heads, Lq, Lk = 3, 130, 300
    Q, K, V = random_qkv(
        rng, (2, heads, Lq, 32), (2, heads, Lk, 32), (2, heads, Lk, 24), dtype
    )
    mask = make_mask(mask_kind, rng, heads, Lq, Lk)
    torch_options = {"is_causal": causal}
    if mask is not None:
        # PyTorch gives NaN for rows with no allowed key: keep key 0 open.
        mask[..., 0] = True
        # PyTorch takes a mask or is_causal, not both: join them here.
        allowed = mask & np.tri(Lq, Lk, dtype=bool) if causal else mask
        torch_options = {"attn_mask": torch.from_numpy(allowed)}

    expected = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (Q, K, V)), scale=0.3, **torch_options
    ).numpy()
    output = mla.scaled_dot_product_attention(
        Q, K, V, mask=mask, causal=causal, scale=0.3, return_weights=False
    )

    assert_close(output, expected, dtype, "reduction", inner=32 + Lk)


# scaled_dot_product_attention_backward


def assert_gradients_close(Q, K, V, d_output, dtype, layout="C", **options):
    """Check (dQ, dK, dV) against the float64 reference for one option set."""
    expected = reference.scaled_dot_product_attention_backward(
        *to_float64(Q, K, V, d_output), **options
    )

    gradients = mla.scaled_dot_product_attention_backward(Q, K, V, d_output, **options)

    assert isinstance(gradients, tuple)
    assert len(gradients) == 3
    Lq, d = Q.shape[-2:]
    Lk, dv = V.shape[-2:]
    # Every gradient sums over Lq or Lk, of terms with dv or d factors.
    inner = Lq + Lk + d + dv
    for name, gradient, expected_gradient in zip(
        ("dQ", "dK", "dV"), gradients, expected
    ):
        assert_close(
            gradient,
            expected_gradient,
            dtype,
            "reduction",
            inner=inner,
            layout=f"{layout}, {name}, options {sorted(options)}",
        )


# (query heads, key and value heads) that select each form of the row
# scheme. Fewer than 4 problems split their query blocks into chunks with
# partial sums, and so do shared keys and values. 4 or more problems that
# share nothing run one problem per work item.
BACKWARD_HEADS = {"shared-kv": (2, 1), "row-chunks": (2, 2), "rows": (4, 4)}


def backward_inputs(rng, scheme, Lq, Lk, d, dv, dtype=np.float64):
    """Return Q, K, V and d_output shaped for one backward scheme."""
    heads, kv_heads = BACKWARD_HEADS[scheme]
    Q, K, V = random_qkv(
        rng, (heads, Lq, d), (kv_heads, Lk, d), (kv_heads, Lk, dv), dtype
    )
    d_output = rng.standard_normal((heads, Lq, dv)).astype(dtype)
    return Q, K, V, d_output


@pytest.mark.parametrize("scheme", list(BACKWARD_HEADS))
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", BLOCK_EDGE_SIZES, ids=shape_id)
def test_attention_backward_matches_reference(
    sizes, dtype, causal, mask_kind, scheme, rng
):
    Lq, Lk, d, dv = sizes
    Q, K, V, d_output = backward_inputs(rng, scheme, Lq, Lk, d, dv, dtype)
    mask = make_mask(mask_kind, rng, Q.shape[0], Lq, Lk)

    assert_gradients_close(Q, K, V, d_output, dtype, mask=mask, causal=causal)


# The row scheme keeps 96 query rows of weights for all keys while they
# take at most 4 MiB. Past that key count the backward streams key blocks,
# one problem per thread, or in three block passes where K and V are shared.
ROWS_SCHEME_MAX_KEYS = {np.float32: (1 << 22) // (96 * 4), np.float64: (1 << 22) // (96 * 8)}


@pytest.mark.parametrize("kv_heads", [4, 1], ids=["own-kv", "shared-kv"])
@pytest.mark.parametrize("past_limit", [0, 1], ids=["rows", "streamed"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_attention_backward_long_keys(dtype, causal, past_limit, kv_heads, rng):
    Lk = ROWS_SCHEME_MAX_KEYS[dtype] + past_limit
    Q, K, V = random_qkv(rng, (4, 97, 3), (kv_heads, Lk, 3), (kv_heads, Lk, 2), dtype)
    d_output = rng.standard_normal((4, 97, 2)).astype(dtype)
    mask = rng.random((97, Lk)) < 0.9
    # Query 5 may attend no key: its gradients must vanish, not turn NaN.
    mask[5] = False

    assert_gradients_close(Q, K, V, d_output, dtype, mask=mask, causal=causal)


# (batch, Lq): one problem of four and of five query blocks (chunks of
# two, two and one block, none left empty), and three problems of two.
CHUNKED_SHAPES = [(1, 385), (1, 481), (3, 193)]


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("batch_lq", CHUNKED_SHAPES, ids=str)
def test_attention_backward_query_chunks(batch_lq, causal, rng):
    batch, Lq = batch_lq
    Q, K, V = random_qkv(rng, (batch, Lq, 5), (batch, 300, 5), (batch, 300, 4))
    d_output = rng.standard_normal((batch, Lq, 4))
    mask = rng.random((Lq, 300)) < 0.8
    mask[Lq - 2] = False

    assert_gradients_close(Q, K, V, d_output, np.float64, mask=mask, causal=causal)


@pytest.mark.parametrize("width", [559, 560], ids=["slots-fit", "slots-too-big"])
def test_attention_backward_partial_sums_limit(width, rng):
    # One problem of four query blocks needs three slots of Lk * (d + dv)
    # doubles: 63.97 MiB at d + dv = 559, and past the 64 MiB limit, where
    # the block passes run instead, at 560.
    d = width // 2
    Q, K, V = random_qkv(rng, (1, 385, d), (1, 5000, d), (1, 5000, width - d))
    d_output = rng.standard_normal((1, 385, width - d))

    assert_gradients_close(Q, K, V, d_output, np.float64, causal=True)


# (Q, K, V, mask) shapes whose batch dimensions broadcast; None: no mask.
BACKWARD_BROADCAST_SHAPES = [
    ((2, 3, 50, 8), (3, 70, 8), (2, 3, 70, 5), None),
    ((50, 8), (4, 70, 8), (70, 5), None),
    ((4, 50, 8), (70, 8), (4, 70, 5), None),
    ((2, 1, 50, 8), (1, 3, 70, 8), (2, 3, 70, 5), None),
    ((2, 1, 130, 8), (3, 200, 8), (1, 200, 4), (2, 1, 1, 200)),
    ((50, 8), (70, 8), (70, 5), (4, 50, 70)),
    ((0, 50, 8), (70, 8), (70, 5), None),
]


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shapes", BACKWARD_BROADCAST_SHAPES, ids=str)
def test_attention_backward_broadcast_sums(shapes, causal, rng):
    q_shape, k_shape, v_shape, mask_shape = shapes
    Q, K, V = random_qkv(rng, q_shape, k_shape, v_shape)
    mask = None if mask_shape is None else rng.random(mask_shape) < 0.7
    output = mla.scaled_dot_product_attention(
        Q, K, V, mask=mask, causal=causal, return_weights=False
    )
    d_output = rng.standard_normal(output.shape)

    dQ, dK, dV = mla.scaled_dot_product_attention_backward(
        Q, K, V, d_output, mask=mask, causal=causal
    )

    assert dQ.shape == Q.shape
    assert dK.shape == K.shape
    assert dV.shape == V.shape
    assert_gradients_close(Q, K, V, d_output, np.float64, mask=mask, causal=causal)


def attention_loss(Q, K, V, d_output, **options):
    """Return sum(d_output * attention output), the loss the backward differentiates."""
    output = mla.scaled_dot_product_attention(Q, K, V, return_weights=False, **options)
    return float(np.sum(d_output * output))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"causal": True},
        {"scale": 0.7, "mask": "random"},
        {"causal": True, "mask": "random"},
    ],
    ids=["plain", "causal", "scale-mask", "causal-mask"],
)
@pytest.mark.parametrize("scheme", list(BACKWARD_HEADS))
def test_attention_backward_finite_differences(options, scheme, rng):
    Lq, Lk, d, dv = 110, 140, 6, 5
    Q, K, V, d_output = backward_inputs(rng, scheme, Lq, Lk, d, dv)
    options = dict(options)
    if options.get("mask") == "random":
        options["mask"] = rng.random((Lq, Lk)) < 0.6

    gradients = mla.scaled_dot_product_attention_backward(Q, K, V, d_output, **options)

    # Central differences along a random direction of each input: the
    # directional derivative must equal sum(gradient * direction).
    step = 1e-5
    inputs = [Q, K, V]
    for index, name in enumerate("QKV"):
        direction = rng.standard_normal(inputs[index].shape)
        plus = list(inputs)
        minus = list(inputs)
        plus[index] = inputs[index] + step * direction
        minus[index] = inputs[index] - step * direction
        numeric = (
            attention_loss(*plus, d_output, **options)
            - attention_loss(*minus, d_output, **options)
        ) / (2 * step)
        analytic = float(np.sum(gradients[index] * direction))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8), name


@pytest.mark.parametrize("mask_kind", ["none", "keys"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_attention_backward_matches_torch(dtype, causal, mask_kind, rng):
    torch = pytest.importorskip("torch")
    heads, Lq, Lk = 3, 130, 300
    Q, K, V = random_qkv(
        rng, (2, heads, Lq, 32), (2, heads, Lk, 32), (2, heads, Lk, 24), dtype
    )
    d_output = rng.standard_normal((2, heads, Lq, 24)).astype(dtype)
    mask = make_mask(mask_kind, rng, heads, Lq, Lk)
    torch_options = {"is_causal": causal}
    if mask is not None:
        mask[..., 0] = True
        allowed = mask & np.tri(Lq, Lk, dtype=bool) if causal else mask
        torch_options = {"attn_mask": torch.from_numpy(allowed)}
    tensors = [torch.from_numpy(a).requires_grad_() for a in (Q, K, V)]

    torch.nn.functional.scaled_dot_product_attention(
        *tensors, scale=0.4, **torch_options
    ).backward(torch.from_numpy(d_output))
    gradients = mla.scaled_dot_product_attention_backward(
        Q, K, V, d_output, mask=mask, causal=causal, scale=0.4
    )

    for name, gradient, tensor in zip(("dQ", "dK", "dV"), gradients, tensors):
        assert_close(
            gradient,
            tensor.grad.numpy(),
            dtype,
            "reduction",
            inner=Lq + Lk + 56,
            layout=name,
        )


@pytest.mark.parametrize("scheme", list(BACKWARD_HEADS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_attention_backward_masked_rows_zero(dtype, scheme, rng):
    Q, K, V, d_output = backward_inputs(rng, scheme, 100, 150, 8, 4, dtype)
    mask = rng.random((100, 150)) < 0.5
    mask[[3, 97]] = False
    mask[:, 10] = False

    dQ, dK, dV = mla.scaled_dot_product_attention_backward(Q, K, V, d_output, mask=mask)

    assert np.all(dQ[:, [3, 97]] == 0)
    assert np.all(dK[:, 10] == 0)
    assert np.all(dV[:, 10] == 0)
    assert_gradients_close(Q, K, V, d_output, dtype, mask=mask)


# (query heads, key and value heads, keys): the three forms of the row
# scheme, and past its key limit the streamed schemes.
EMPTY_ROW_SCHEMES = {
    **{name: (*heads, 150) for name, heads in BACKWARD_HEADS.items()},
    "streamed": (4, 4, ROWS_SCHEME_MAX_KEYS[np.float64] + 1),
    "streamed-shared-kv": (4, 1, ROWS_SCHEME_MAX_KEYS[np.float64] + 1),
}


@pytest.mark.parametrize("scheme", list(EMPTY_ROW_SCHEMES))
def test_attention_backward_empty_row_ignores_inf(scheme, rng):
    heads, kv_heads, Lk = EMPTY_ROW_SCHEMES[scheme]
    Q, K, V = random_qkv(rng, (heads, 100, 3), (kv_heads, Lk, 3), (kv_heads, Lk, 2))
    d_output = rng.standard_normal((heads, 100, 2))
    V[:, 5] = np.inf
    d_output[:, 3] = np.inf
    mask = np.ones((100, Lk), dtype=bool)
    mask[3] = False

    dQ, _, _ = mla.scaled_dot_product_attention_backward(Q, K, V, d_output, mask=mask)

    # Query 3 attends no key, so it contributes nothing, even though its
    # d_output and the values it would have weighted are infinite.
    assert np.all(dQ[:, 3] == 0)


@pytest.mark.parametrize("Lk", [50, ROWS_SCHEME_MAX_KEYS[np.float64] + 1], ids=["rows", "streamed"])
def test_attention_backward_infinite_d_output(Lk, rng):
    # The streamed scheme takes D from d_output and the output (see the
    # docstring). So an entry that the formula makes NaN (inf - inf) can be
    # infinite there, but the finite entries are the formula's. The 100
    # query rows fill the block of 96 rows that the scheme limit assumes.
    Q, K, V = random_qkv(rng, (2, 100, 8), (2, Lk, 8), (2, Lk, 8))
    d_output = rng.standard_normal((2, 100, 8))
    d_output[0, 3, 2] = np.inf

    gradients = mla.scaled_dot_product_attention_backward(Q, K, V, d_output)

    with np.errstate(all="ignore"):
        expected = reference.scaled_dot_product_attention_backward(Q, K, V, d_output)
    for name, got, want in zip(("dQ", "dK", "dV"), gradients, expected):
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want), err_msg=name)
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-12, err_msg=name)
        if Lk == 50:
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 8), (0, 8), (0, 5)),
        ((0, 8), (4, 8), (4, 5)),
        ((2, 3, 8), (2, 0, 8), (2, 0, 5)),
        ((0, 3, 8), (4, 8), (4, 5)),
        ((3, 0), (4, 0), (4, 5)),
        ((3, 8), (4, 8), (4, 0)),
    ],
    ids=attention_id,
)
def test_attention_backward_empty(shapes, rng):
    Q, K, V = random_qkv(rng, *shapes)
    output_shape = np.broadcast_shapes(Q.shape[:-2], K.shape[:-2], V.shape[:-2]) + (
        Q.shape[-2],
        V.shape[-1],
    )
    d_output = rng.standard_normal(output_shape)

    dQ, dK, dV = mla.scaled_dot_product_attention_backward(Q, K, V, d_output, scale=1.0)

    expected = reference.scaled_dot_product_attention_backward(
        Q, K, V, d_output, scale=1.0
    )
    for gradient, expected_gradient in zip((dQ, dK, dV), expected):
        assert gradient.shape == expected_gradient.shape
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "layout", ["F", "transposed", "negative", "strided", "unaligned"]
)
def test_attention_backward_memory_layouts(layout, rng):
    Q, K, V = random_qkv(rng, (2, 100, 12), (2, 140, 12), (2, 140, 7))
    d_output = rng.standard_normal((2, 100, 7))
    expected = reference.scaled_dot_product_attention_backward(
        Q, K, V, d_output, causal=True
    )
    before = [to_layout(a, layout) for a in (Q, K, V, d_output)]
    arrays = [a.copy() if a.flags.owndata else a for a in before]

    gradients = mla.scaled_dot_product_attention_backward(*arrays, causal=True)

    for name, gradient, expected_gradient in zip(
        ("dQ", "dK", "dV"), gradients, expected
    ):
        assert gradient.flags.c_contiguous, name
        assert_close(
            gradient,
            expected_gradient,
            np.float64,
            "reduction",
            inner=260,
            layout=f"{layout} {name}",
        )
    for name, old, new in zip(("Q", "K", "V", "d_output"), before, arrays):
        assert_unchanged(old, new, name)


def test_attention_backward_broadcast_d_output(rng):
    Q, K, V = random_qkv(rng, (2, 30, 8), (2, 40, 8), (2, 40, 4))
    d_output = np.broadcast_to(rng.standard_normal((1, 1, 4)), (2, 30, 4))

    assert_gradients_close(Q, K, V, d_output, np.float64, causal=True)


# Threads: each work item is computed by one thread in a fixed order.

THREAD_CASES = {
    "heads": ((4, 300, 64), (4, 500, 64), (4, 500, 48), "none"),
    "one-head-long": ((1, 700, 32), (1, 900, 32), (1, 900, 32), "random"),
    "shared-kv": ((6, 250, 32), (250, 32), (250, 16), "keys"),
}


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", list(THREAD_CASES))
def test_attention_one_two_threads_identical(case, dtype, causal, rng):
    q_shape, k_shape, v_shape, mask_kind = THREAD_CASES[case]
    Q, K, V = random_qkv(rng, q_shape, k_shape, v_shape, dtype)
    mask = make_mask(mask_kind, rng, 1, q_shape[-2], k_shape[-2])
    d_output = rng.standard_normal(q_shape[:-1] + v_shape[-1:]).astype(dtype)
    options = {"mask": mask, "causal": causal}
    original = mla.get_num_threads()

    results = []
    try:
        for threads in (1, 2):
            mla.set_num_threads(threads)
            results.append(
                (
                    *mla.scaled_dot_product_attention(Q, K, V, **options),
                    mla.scaled_dot_product_attention(
                        Q, K, V, return_weights=False, **options
                    ),
                    *mla.scaled_dot_product_attention_backward(
                        Q, K, V, d_output, **options
                    ),
                )
            )
    finally:
        mla.set_num_threads(original)

    names = ("output", "weights", "streamed", "dQ", "dK", "dV")
    for name, one, two in zip(names, *results):
        assert one.tobytes() == two.tobytes(), name


def test_attention_streamed_memory_bounded():
    # One head of 8192 x 8192 float32 weights would take 256 MiB; the
    # streaming kernel keeps a block of scores per thread. VmHWM, the peak
    # resident memory, is reset through /proc/self/clear_refs (Linux).
    clear_refs = "/proc/self/clear_refs"
    import os

    if not os.path.exists(clear_refs) or not os.access(clear_refs, os.W_OK):
        pytest.skip("no writable /proc/self/clear_refs to reset the peak memory")
    script = textwrap.dedent(
        """
        import numpy as np
        import mla

        def memory_kib(field):
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])

        rng = np.random.default_rng(0)
        Q, K, V = rng.standard_normal((3, 1, 8192, 16), dtype=np.float32)
        output = np.empty((1, 8192, 16), dtype=np.float32)
        mla.scaled_dot_product_attention(Q[:, :64], K[:, :64], V[:, :64])
        del output
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        before = memory_kib("VmRSS")
        output = mla.scaled_dot_product_attention(Q, K, V, return_weights=False)
        print(memory_kib("VmHWM") - before)
        """
    )

    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr
    peak_kib = int(completed.stdout.strip())
    # The output is 512 KiB; allow 16 MiB for scratch, threads and pages.
    assert peak_kib < 16 * 1024, f"peak grew by {peak_kib} KiB"


# Invalid arguments of the options.


@pytest.mark.parametrize(
    "mask, dtype_name",
    [
        (np.ones((4, 6)), "float64"),
        (np.ones((4, 6), dtype=np.int8), "int8"),
        ([[1, 0, 1, 1, 1, 1]], "int64"),
        (np.full((4, 6), "a"), "<U1"),
    ],
    ids=["float64", "int8", "int-list", "str"],
)
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_attention_mask_not_bool(mask, dtype_name, backward):
    Q, K, V = np.ones((4, 8)), np.ones((6, 8)), np.ones((6, 5))
    name = "scaled_dot_product_attention" + ("_backward" if backward else "")
    arrays = (Q, K, V, np.ones((4, 5))) if backward else (Q, K, V)

    with pytest.raises(TypeError, match=rf"^{name}: mask must be a boolean") as error:
        getattr(mla, name)(*arrays, mask=mask)

    assert dtype_name in str(error.value)


def test_attention_mask_ragged_list():
    Q, K, V = np.ones((2, 8)), np.ones((2, 8)), np.ones((2, 5))

    with pytest.raises(ValueError, match=r"^scaled_dot_product_attention: mask could"):
        mla.scaled_dot_product_attention(Q, K, V, mask=[[True], [True, False]])


@pytest.mark.parametrize(
    "mask_shape",
    [(6, 4), (4, 5), (3, 6), (2, 4, 6, 1), (5,)],
    ids=shape_id,
)
def test_attention_mask_shape_mismatch(mask_shape):
    Q, K, V = np.ones((2, 4, 8)), np.ones((2, 6, 8)), np.ones((2, 6, 5))

    with pytest.raises(ValueError, match=r"^scaled_dot_product_attention: ") as error:
        mla.scaled_dot_product_attention(Q, K, V, mask=np.ones(mask_shape, dtype=bool))

    message = str(error.value)
    assert "mask must broadcast to (Lq, Lk) = (4, 6)" in message
    assert f"mask={mask_shape}" in message


def test_attention_mask_batch_not_broadcast():
    Q, K, V = np.ones((2, 4, 8)), np.ones((2, 6, 8)), np.ones((2, 6, 5))
    mask = np.ones((3, 4, 6), dtype=bool)

    with pytest.raises(ValueError, match="do not broadcast") as error:
        mla.scaled_dot_product_attention(Q, K, V, mask=mask)

    assert "(3, 4, 6)" in str(error.value)


@pytest.mark.parametrize(
    "d_output_shape",
    [(4, 5), (2, 4, 6), (2, 5, 5), (1, 4, 5), (1, 2, 4, 5)],
    ids=shape_id,
)
def test_attention_backward_d_output_shape(d_output_shape):
    Q, K, V = np.ones((2, 4, 8)), np.ones((2, 6, 8)), np.ones((6, 5))

    with pytest.raises(
        ValueError,
        match=r"^scaled_dot_product_attention_backward: d_output must have the shape "
        r"of the output \(2, 4, 5\)",
    ) as error:
        mla.scaled_dot_product_attention_backward(Q, K, V, np.ones(d_output_shape))

    assert str(d_output_shape) in str(error.value)


@pytest.mark.parametrize(
    "scale",
    [np.nan, np.inf, -np.inf, 10**400, -(10**5000), np.longdouble("1e4000")],
    ids=["nan", "inf", "-inf", "10**400", "-10**5000", "longdouble-1e4000"],
)
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_attention_scale_not_finite(scale, backward):
    Q, K, V = np.ones((4, 8)), np.ones((6, 8)), np.ones((6, 5))
    name = "scaled_dot_product_attention" + ("_backward" if backward else "")
    arrays = (Q, K, V, np.ones((4, 5))) if backward else (Q, K, V)

    with pytest.raises(ValueError, match=rf"^{name}: scale must be finite; got"):
        getattr(mla, name)(*arrays, scale=scale)


def test_attention_scale_overflows_float32():
    Q, K, V = (np.ones(shape, dtype=np.float32) for shape in ((4, 8), (6, 8), (6, 5)))

    with pytest.raises(ValueError, match=r"finite in float32.*1e\+300"):
        mla.scaled_dot_product_attention(Q, K, V, scale=1e300)
    # In float64 the same scale is valid.
    output = mla.scaled_dot_product_attention(
        Q.astype(np.float64), K, V, scale=1e300, return_weights=False
    )
    assert output.dtype == np.float64


@pytest.mark.parametrize(
    "scale",
    [
        "0.5",
        [0.5],
        1j,
        np.complex64(1j),
        np.complex128(2),
        np.array(2 + 0j),
        np.array([0.5]),
        np.array("0.5"),
        np.ma.masked_array(0.5, mask=True),
    ],
    ids=repr,
)
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_attention_scale_not_number(scale, backward):
    # A NumPy complex would otherwise become a float with only a warning.
    Q, K, V = np.ones((4, 8)), np.ones((6, 8)), np.ones((6, 5))
    name = "scaled_dot_product_attention" + ("_backward" if backward else "")
    arrays = (Q, K, V, np.ones((4, 5))) if backward else (Q, K, V)

    with pytest.raises(TypeError, match=rf"^{name}: scale must be a real number or None; got"):
        getattr(mla, name)(*arrays, scale=scale)


def test_attention_scale_accepts_numpy_scalars(rng):
    Q, K, V = random_qkv(rng, (4, 8), (6, 8), (6, 5))

    by_float = mla.scaled_dot_product_attention(Q, K, V, scale=0.25)
    by_numpy = mla.scaled_dot_product_attention(Q, K, V, scale=np.float32(0.25))
    by_none = mla.scaled_dot_product_attention(Q, K, V, scale=None)
    by_default = mla.scaled_dot_product_attention(Q, K, V)

    np.testing.assert_array_equal(by_float[0], by_numpy[0])
    np.testing.assert_array_equal(by_none[0], by_default[0])


@pytest.mark.parametrize("option", ["causal", "return_weights"])
def test_attention_flag_without_truth_value(option):
    Q, K, V = np.ones((4, 8)), np.ones((6, 8)), np.ones((6, 5))

    with pytest.raises(
        TypeError, match=rf"{option} must be True or False; got numpy.ndarray"
    ):
        mla.scaled_dot_product_attention(Q, K, V, **{option: np.array([1, 0])})


# A string, number or list has a truth value, but reading causal="False" as
# True would silently change the result.
@pytest.mark.parametrize("value", ["False", "yes", 0, 1, 1.0, [True]])
@pytest.mark.parametrize("option", ["causal", "return_weights"])
def test_attention_flag_not_bool_rejected(option, value):
    Q, K, V = np.ones((4, 8)), np.ones((6, 8)), np.ones((6, 5))

    with pytest.raises(TypeError, match=rf"{option} must be True or False; got"):
        mla.scaled_dot_product_attention(Q, K, V, **{option: value})


def test_attention_backward_causal_not_bool_rejected():
    Q, K, V = np.ones((4, 8)), np.ones((6, 8)), np.ones((6, 5))

    with pytest.raises(TypeError, match="causal must be True or False; got str"):
        mla.scaled_dot_product_attention_backward(
            Q, K, V, np.ones((4, 5)), causal="False"
        )


def test_attention_flags_accept_numpy_bool(rng):
    Q, K, V = random_qkv(rng, (4, 8), (6, 8), (6, 5))

    by_bool = mla.scaled_dot_product_attention(Q, K, V, causal=True)
    by_numpy = mla.scaled_dot_product_attention(Q, K, V, causal=np.True_)
    output = mla.scaled_dot_product_attention(Q, K, V, return_weights=np.False_)

    np.testing.assert_array_equal(by_bool[0], by_numpy[0])
    assert isinstance(output, np.ndarray)


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_attention_options_keyword_only(backward):
    Q, K, V = np.ones((4, 8)), np.ones((6, 8)), np.ones((6, 5))
    name = "scaled_dot_product_attention" + ("_backward" if backward else "")
    arrays = (Q, K, V, np.ones((4, 5))) if backward else (Q, K, V)
    count = len(arrays)

    with pytest.raises(
        TypeError,
        match=rf"{name}\(\) takes {count} positional arguments but {count + 1} were "
        r"given; pass mask, causal and scale by keyword$",
    ):
        getattr(mla, name)(*arrays, np.ones((4, 6), dtype=bool))


def test_attention_streamed_returns_array(rng):
    Q, K, V = random_qkv(rng, (4, 8), (6, 8), (6, 5))

    output = mla.scaled_dot_product_attention(Q, K, V, return_weights=False)
    pair = mla.scaled_dot_product_attention(Q, K, V, return_weights=True)

    assert isinstance(output, np.ndarray)
    assert isinstance(pair, tuple)
    np.testing.assert_allclose(output, pair[0], rtol=1e-14)
