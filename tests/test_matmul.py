"""Tests for matmul (np.matmul semantics) and matmul_loop (the 2-D baseline)."""

import re

import numpy as np
import pytest
from conftest import (
    FLOAT_DTYPES,
    LAYOUTS,
    assert_close,
    assert_unchanged,
    dtype_id,
    shape_id,
    to_float64,
    to_layout,
)

import mla
from mla import reference

# (m, k, n) around the SIMD widths (4, 6, 8, 16), the register blocks and the
# cache blocks (64, 128, 256), plus degenerate and skinny products.
SQUARE_SIZES = [
    (1, 1, 1),
    (3, 5, 7),
    (4, 4, 4),
    (5, 5, 5),
    (6, 6, 6),
    (7, 9, 8),
    (8, 8, 8),
    (9, 3, 10),
    (15, 16, 17),
    (16, 16, 16),
    (33, 31, 17),
    (63, 64, 65),
    (64, 64, 64),
    (65, 1, 63),
    (1, 300, 1),
    (127, 128, 129),
    (128, 128, 128),
    (255, 256, 257),
    (257, 255, 6),
    (300, 257, 129),
]

# (shape of A, shape of B): 1-D promotion, broadcasting and empty dimensions.
PROMOTION_SHAPES = [
    ((5,), (5,)),
    ((1,), (1,)),
    ((0,), (0,)),
    ((4,), (4, 6)),
    ((3, 4), (4,)),
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((2, 1, 3, 4), (5, 4, 6)),
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)),
    ((1, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (1, 3, 4, 2)),
    ((3, 0), (0, 4)),
    ((0, 4), (4, 5)),
    ((3, 4), (4, 0)),
    ((0, 3, 4), (4, 5)),
    ((2, 3, 0), (2, 0, 5)),
    ((0,), (0, 3)),
    ((17,), (17, 9)),
]


def pair_id(pair):
    first, second = pair
    return f"{shape_id(first)}@{shape_id(second)}"


def random_operands(rng, a_shape, b_shape, dtype=np.float64):
    A = rng.standard_normal(a_shape).astype(dtype)
    B = rng.standard_normal(b_shape).astype(dtype)
    return A, B


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", SQUARE_SIZES, ids=shape_id)
def test_matmul_matches_numpy(sizes, dtype, rng):
    m, k, n = sizes
    A, B = random_operands(rng, (m, k), (k, n), dtype)

    result = mla.matmul(A, B)

    expected = np.matmul(*to_float64(A, B))
    assert_close(result, expected, dtype, "reduction", inner=k)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shapes", PROMOTION_SHAPES, ids=pair_id)
def test_matmul_promotion_and_broadcast(shapes, dtype, rng):
    A, B = random_operands(rng, *shapes, dtype)
    inner = shapes[1][0] if len(shapes[1]) == 1 else shapes[1][-2]

    result = mla.matmul(A, B)

    expected = np.matmul(*to_float64(A, B))
    assert np.shape(result) == expected.shape
    assert np.asarray(result).dtype == dtype
    assert_close(np.asarray(result), expected, dtype, "reduction", inner=inner)


def test_matmul_vector_dot_is_zero_dimensional():
    u = np.array([1.0, 2.0, 3.0])
    v = np.array([4.0, -5.0, 6.0])

    result = mla.matmul(u, v)

    assert np.ndim(result) == 0
    assert float(result) == 12.0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_matmul_zero_inner_dimension_zeros(dtype):
    A = np.ones((3, 0), dtype=dtype)
    B = np.ones((0, 4), dtype=dtype)

    result = mla.matmul(A, B)

    assert result.dtype == dtype
    np.testing.assert_array_equal(result, np.zeros((3, 4)))


@pytest.mark.parametrize("b_layout", LAYOUTS)
@pytest.mark.parametrize("a_layout", LAYOUTS)
def test_matmul_memory_layouts(a_layout, b_layout, rng):
    A, B = random_operands(rng, (37, 29), (29, 41))
    A = to_layout(A, a_layout)
    B = to_layout(B, b_layout)

    result = mla.matmul(A, B)

    assert_close(
        result,
        np.matmul(A, B),
        np.float64,
        "reduction",
        inner=29,
        layout=f"A {a_layout}, B {b_layout}",
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matmul_batched_memory_layouts(layout, dtype, rng):
    A, B = random_operands(rng, (3, 9, 10), (3, 10, 11), dtype)
    A = to_layout(A, layout)
    B = to_layout(B, layout)

    result = mla.matmul(A, B)

    expected = np.matmul(*to_float64(A, B))
    assert_close(result, expected, dtype, "reduction", inner=10, layout=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_matmul_large_memory_layouts(layout, rng):
    # Big enough to take the blocked, packed path.
    A, B = random_operands(rng, (131, 140), (140, 67))
    A = to_layout(A, layout)
    B = to_layout(B.T.copy(), layout).T

    result = mla.matmul(A, B)

    assert_close(
        result, np.matmul(A, B), np.float64, "reduction", inner=140, layout=layout
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_matmul_zero_stride_inputs(dtype, rng):
    # np.broadcast_to gives stride 0 along the repeated axis.
    row = rng.standard_normal(70).astype(dtype)
    column = rng.standard_normal((70, 1)).astype(dtype)
    A = np.broadcast_to(row, (130, 70))
    B = np.broadcast_to(column, (70, 90))

    result = mla.matmul(A, B)

    expected = np.matmul(*to_float64(A, B))
    assert_close(result, expected, dtype, "reduction", inner=70, layout="stride 0")


def test_matmul_mixed_precision_float64(rng):
    A, B = random_operands(rng, (6, 5), (5, 4))
    A32 = A.astype(np.float32)

    result = mla.matmul(A32, B)

    assert result.dtype == np.float64
    expected = np.matmul(A32.astype(np.float64), B)
    assert_close(result, expected, np.float64, "reduction", inner=5)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "shapes",
    [((4, 5), (5, 6)), ((2, 1, 3, 4), (5, 4, 6)), ((4,), (4, 3))],
    ids=pair_id,
)
def test_matmul_out_returns_out(shapes, dtype, rng):
    A, B = random_operands(rng, *shapes, dtype)
    expected = np.matmul(*to_float64(A, B))
    out = np.full(expected.shape, np.nan, dtype=dtype)

    result = mla.matmul(A, B, out=out)

    assert result is out
    assert_close(out, expected, dtype, "reduction", inner=shapes[1][-2])


def test_matmul_out_positional(rng):
    A, B = random_operands(rng, (4, 5), (5, 6))
    out = np.empty((4, 6))

    result = mla.matmul(A, B, out)

    assert result is out
    assert_close(out, A @ B, np.float64, "reduction", inner=5)


@pytest.mark.parametrize("layout", ["F", "negative", "strided"])
def test_matmul_out_strided(layout, rng):
    A, B = random_operands(rng, (9, 7), (7, 12))
    out = to_layout(np.zeros((9, 12)), layout)

    result = mla.matmul(A, B, out=out)

    assert result is out
    assert_close(out, A @ B, np.float64, "reduction", inner=7, layout=layout)


@pytest.mark.parametrize(
    "out_shape",
    [(4, 5), (6, 4), (1, 4, 6), (24,), ()],
    ids=shape_id,
)
def test_matmul_out_wrong_shape(out_shape, rng):
    A, B = random_operands(rng, (4, 5), (5, 6))
    out = np.zeros(out_shape)

    with pytest.raises(ValueError, match=r"^matmul: .*out") as error:
        mla.matmul(A, B, out=out)

    assert str(out_shape) in str(error.value)
    assert "(4, 6)" in str(error.value)
    np.testing.assert_array_equal(out, np.zeros(out_shape))


@pytest.mark.parametrize(
    "inputs, out_dtype",
    [
        (np.float64, np.float32),
        (np.float32, np.float64),
        (np.float64, np.int64),
        (np.float32, np.float16),
    ],
    ids=[
        "float64-into-float32",
        "float32-into-float64",
        "float64-into-int64",
        "float32-into-float16",
    ],
)
def test_matmul_out_wrong_dtype(inputs, out_dtype, rng):
    A, B = random_operands(rng, (4, 5), (5, 6), inputs)
    out = np.zeros((4, 6), dtype=out_dtype)

    with pytest.raises(TypeError, match=r"^matmul: .*out") as error:
        mla.matmul(A, B, out=out)

    assert np.dtype(out_dtype).name in str(error.value)


def test_matmul_out_not_array(rng):
    A, B = random_operands(rng, (2, 3), (3, 2))

    with pytest.raises(TypeError, match=r"^matmul: .*out"):
        mla.matmul(A, B, out=[[0.0, 0.0], [0.0, 0.0]])


def test_matmul_out_read_only(rng):
    A, B = random_operands(rng, (2, 3), (3, 2))
    out = np.zeros((2, 2))
    out.flags.writeable = False

    with pytest.raises((ValueError, TypeError), match=r"^matmul: .*out"):
        mla.matmul(A, B, out=out)


@pytest.mark.parametrize("alias", ["A", "B"])
@pytest.mark.parametrize("size", [5, 64, 129], ids=lambda size: f"{size}x{size}")
def test_matmul_out_aliases_input(alias, size, rng):
    A, B = random_operands(rng, (size, size), (size, size))
    expected = A @ B
    out = A if alias == "A" else B

    result = mla.matmul(A, B, out=out)

    assert result is out
    assert_close(out, expected, np.float64, "reduction", inner=size, layout=alias)


def test_matmul_out_aliases_transposed_input(rng):
    A = rng.standard_normal((40, 40))
    expected = A.T @ A

    mla.matmul(A.T, A, out=A)

    assert_close(A, expected, np.float64, "reduction", inner=40)


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((2, 3), (4, 5)),
        ((3,), (4,)),
        ((3,), (4, 5)),
        ((2, 3), (4,)),
        ((2, 3, 4), (3, 4, 5)),
        ((2, 2, 3), (5, 3, 4)),
    ],
    ids=lambda shape: shape_id(shape),
)
def test_matmul_shape_mismatch(a_shape, b_shape):
    A, B = np.ones(a_shape), np.ones(b_shape)

    with pytest.raises(ValueError, match=r"^matmul: ") as error:
        mla.matmul(A, B)

    message = str(error.value)
    assert str(a_shape) in message
    assert str(b_shape) in message


@pytest.mark.parametrize("which", ["A", "B"])
def test_matmul_zero_dimensional_rejected(which):
    A = np.float64(2.0) if which == "A" else np.ones((2, 2))
    B = np.ones((2, 2)) if which == "A" else np.array(3.0)

    with pytest.raises(ValueError, match=r"^matmul: "):
        mla.matmul(A, B)


def test_matmul_leaves_inputs_unchanged(rng):
    A, B = random_operands(rng, (70, 33), (33, 65))
    A = to_layout(A, "strided")
    B = to_layout(B, "negative")
    before = (A.copy(), B.copy())

    mla.matmul(A, B)

    assert_unchanged(before[0], A, "A")
    assert_unchanged(before[1], B, "B")


def test_matmul_infinity_and_nan(rng):
    A = np.array([[1.0, np.inf], [np.nan, 1.0], [0.0, 1.0]])
    B = np.array([[1.0, 2.0], [3.0, 4.0]])

    result = mla.matmul(A, B)

    # Some OpenBLAS kernels (SkylakeX) raise the invalid flag on inf * 0.
    with np.errstate(invalid="ignore"):
        expected = np.matmul(A, B)
    np.testing.assert_array_equal(result, expected)


# The reference matmul_loop is a Python triple loop, so its shapes stay small.
LOOP_SIZES = [(0, 3, 2), (3, 0, 2), (3, 2, 0), (1, 1, 1), (3, 4, 5), (7, 1, 9)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", LOOP_SIZES, ids=shape_id)
def test_matmul_loop_matches_reference(sizes, dtype, rng):
    m, k, n = sizes
    A, B = random_operands(rng, (m, k), (k, n), dtype)

    result = mla.matmul_loop(A, B)

    expected = reference.matmul_loop(*to_float64(A, B))
    assert_close(result, expected, dtype, "reduction", inner=k)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "sizes", [(17, 33, 9), (64, 65, 66), (100, 100, 100)], ids=shape_id
)
def test_matmul_loop_matches_matmul(sizes, dtype, rng):
    m, k, n = sizes
    A, B = random_operands(rng, (m, k), (k, n), dtype)

    result = mla.matmul_loop(A, B)

    expected = np.matmul(*to_float64(A, B))
    assert_close(result, expected, dtype, "reduction", inner=k)
    assert_close(result, mla.matmul(A, B), dtype, "reduction", inner=k)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_matmul_loop_memory_layouts(layout, rng):
    A, B = random_operands(rng, (13, 11), (11, 7))
    A = to_layout(A, layout)
    B = to_layout(B, layout)

    result = mla.matmul_loop(A, B)

    assert_close(
        result, np.matmul(A, B), np.float64, "reduction", inner=11, layout=layout
    )


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((3,), (3, 2)), ((2, 3), (3,)), ((2, 3, 4), (4, 5)), ((3, 4), (1, 4, 5))],
    ids=lambda shape: shape_id(shape),
)
def test_matmul_loop_requires_two_dimensions(a_shape, b_shape):
    A, B = np.ones(a_shape), np.ones(b_shape)

    with pytest.raises(ValueError, match=r"^matmul_loop: ") as error:
        mla.matmul_loop(A, B)

    assert re.search(r"2-d|2d|two|ndim|dimension", str(error.value), re.IGNORECASE)


def test_matmul_loop_shape_mismatch():
    with pytest.raises(ValueError, match=r"^matmul_loop: ") as error:
        mla.matmul_loop(np.ones((2, 3)), np.ones((4, 5)))

    assert "(2, 3)" in str(error.value)
    assert "(4, 5)" in str(error.value)


def test_matmul_empty_out_accepted():
    out = np.empty((0, 2, 2))
    result = mla.matmul(np.ones((0, 2, 3)), np.ones((3, 2)), out=out)
    assert result is out


def test_matmul_out_overlapping_elements_rejected():
    buffer = np.zeros(16)
    out = np.lib.stride_tricks.as_strided(buffer, shape=(3, 3), strides=(8, 8))
    with pytest.raises(ValueError, match="^matmul: out must not have overlapping"):
        mla.matmul(np.eye(3), np.eye(3), out=out)


def test_matmul_out_transposed_view_accepted(rng):
    a = rng.standard_normal((5, 4))
    b = rng.standard_normal((4, 6))
    out = np.empty((6, 5)).T
    result = mla.matmul(a, b, out=out)
    assert result is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def test_matmul_out_readonly_message():
    out = np.empty((2, 2))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="^matmul: out must be writeable$"):
        mla.matmul(np.eye(2), np.eye(2), out=out)


def test_matmul_batch_count_overflow_rejected():
    base = np.zeros(1)
    a = np.lib.stride_tricks.as_strided(base, (2**32, 1, 1, 1), (0, 0, 0, 0))
    b = np.lib.stride_tricks.as_strided(base, (1, 2**32, 1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="^matmul: the broadcast batch"):
        mla.matmul(a, b)
