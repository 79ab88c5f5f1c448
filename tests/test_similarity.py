"""Tests for cosine_similarity and cosine_similarity_matrix."""

import itertools

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

# The toy word embeddings of the article.
EMBEDDINGS = {
    "king": np.array([0.5, 0.3, 0.8, 0.1]),
    "queen": np.array([0.5, 0.3, 0.7, 0.2]),
    "man": np.array([0.2, 0.8, 0.3, 0.1]),
    "woman": np.array([0.2, 0.8, 0.2, 0.2]),
    "apple": np.array([0.9, 0.1, 0.1, 0.9]),
}

VECTOR_LENGTHS = [0, 1, 3, 4, 7, 8, 9, 16, 17, 33, 64, 65, 1000, 4099]

MATRIX_SHAPES = [
    (0, 4),
    (3, 0),
    (0, 0),
    (1, 1),
    (2, 3),
    (5, 4),
    (8, 8),
    (17, 33),
    (64, 65),
    (130, 7),
    (7, 130),
]


@pytest.mark.parametrize(
    "first, second",
    list(itertools.combinations(EMBEDDINGS, 2)),
    ids=lambda word: word,
)
def test_cosine_similarity_article_embeddings(first, second):
    u, v = EMBEDDINGS[first], EMBEDDINGS[second]

    result = mla.cosine_similarity(u, v)

    assert type(result) is float
    expected = reference.cosine_similarity(u, v)
    assert_close(result, expected, np.float64, "reduction", inner=4)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("length", VECTOR_LENGTHS, ids=lambda n: f"length{n}")
def test_cosine_similarity_matches_reference(length, dtype, rng):
    u = rng.standard_normal(length).astype(dtype)
    v = rng.standard_normal(length).astype(dtype)

    result = mla.cosine_similarity(u, v)

    assert type(result) is float
    expected = reference.cosine_similarity(*to_float64(u, v))
    assert_close(result, expected, dtype, "reduction", inner=length)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cosine_similarity_memory_layouts(layout, rng):
    u = to_layout(rng.standard_normal(37), layout)
    v = to_layout(rng.standard_normal(37), layout)

    result = mla.cosine_similarity(u, v)

    expected = reference.cosine_similarity(u, v)
    assert_close(result, expected, np.float64, "reduction", inner=37, layout=layout)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cosine_similarity_parallel_vectors_one(dtype, rng):
    u = rng.standard_normal(50).astype(dtype)

    same = mla.cosine_similarity(u, 3 * u)
    opposite = mla.cosine_similarity(u, -u)

    rtol = TOLERANCES[(np.dtype(dtype).name, "reduction")]["rtol"]
    assert same == pytest.approx(1.0, rel=rtol)
    assert opposite == pytest.approx(-1.0, rel=rtol)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "u, v",
    [
        ([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]),
        ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([-0.0, 0.0], [1.0, 1.0]),
        ([], []),
    ],
    ids=["zero-first", "zero-second", "both-zero", "negative-zero", "length0"],
)
def test_cosine_similarity_zero_vector(u, v, dtype):
    result = mla.cosine_similarity(np.array(u, dtype=dtype), np.array(v, dtype=dtype))

    assert type(result) is float
    assert result == 0.0


@pytest.mark.parametrize(
    "dtype, scale",
    [
        (np.float64, 1e200),
        (np.float64, 1e-200),
        (np.float64, 1e300),
        (np.float64, 1e-310),
        (np.float32, 1e30),
        (np.float32, 1e-30),
        (np.float32, 3e38),
    ],
    ids=[
        "float64-1e200",
        "float64-1e-200",
        "float64-1e300",
        "float64-1e-310",
        "float32-1e30",
        "float32-1e-30",
        "float32-3e38",
    ],
)
def test_cosine_similarity_extreme_magnitudes(dtype, scale, rng):
    # The naive sums of squares overflow (or underflow to zero) although the
    # cosine is representable, so the expected value comes from unscaled inputs.
    u = rng.uniform(-1, 1, 40)
    v = rng.uniform(-1, 1, 40)
    u_scaled = (u * scale).astype(dtype)
    v_scaled = (v * scale).astype(dtype)
    expected = reference.cosine_similarity(
        u_scaled.astype(np.float64) / scale, v_scaled.astype(np.float64) / scale
    )

    result = mla.cosine_similarity(u_scaled, v_scaled)

    assert_close(result, expected, dtype, "reduction", inner=40)


def test_cosine_similarity_products_underflow():
    # u.u and v.v are near 2^-880, far from underflow, but u.v sums products
    # near 2^-1140 that underflow, while the cosine, about 2^-259, does not.
    u = np.array([2.0**-440, 2.0**-700])
    v = np.array([2.0**-700, 2.0**-440])

    result = mla.cosine_similarity(u, v)

    expected = reference.cosine_similarity(u * 2.0**440, v * 2.0**440)
    assert expected > 0
    # Relative: an absolute tolerance would accept 0.
    assert result == pytest.approx(expected, rel=1e-12, abs=0)


def test_cosine_similarity_different_magnitudes(rng):
    u = rng.standard_normal(20)
    v = rng.standard_normal(20)

    result = mla.cosine_similarity(u * 1e200, v * 1e-200)

    expected = reference.cosine_similarity(u, v)
    assert_close(result, expected, np.float64, "reduction", inner=20)


@pytest.mark.parametrize(
    "u, v",
    [
        ([np.nan, 1.0], [1.0, 1.0]),
        ([1.0, 1.0], [1.0, np.nan]),
        ([np.inf, 1.0], [1.0, 1.0]),
        # A non-finite entry wins over the zero-vector convention, as in
        # the reference formula.
        ([0.0, 0.0], [np.nan, 1.0]),
        ([np.nan, 0.0], [0.0, 0.0]),
        ([0.0, 0.0], [-np.inf, 1.0]),
    ],
    ids=["nan-first", "nan-second", "inf-first", "zero-nan", "nan-zero", "zero-inf"],
)
def test_cosine_similarity_nan_propagates(u, v):
    result = mla.cosine_similarity(np.array(u), np.array(v))

    assert type(result) is float
    assert np.isnan(result)


@pytest.mark.parametrize(
    "u_shape, v_shape",
    [((3,), (4,)), ((0,), (1,)), ((5,), (4,))],
    ids=shape_id,
)
def test_cosine_similarity_length_mismatch(u_shape, v_shape):
    with pytest.raises(ValueError, match=r"^cosine_similarity: ") as error:
        mla.cosine_similarity(np.ones(u_shape), np.ones(v_shape))

    assert str(u_shape) in str(error.value)
    assert str(v_shape) in str(error.value)


@pytest.mark.parametrize(
    "u_shape, v_shape",
    [((2, 3), (2, 3)), ((3,), (1, 3)), ((), ()), ((1, 4), (4,))],
    ids=shape_id,
)
def test_cosine_similarity_requires_vectors(u_shape, v_shape):
    with pytest.raises(ValueError, match=r"^cosine_similarity: "):
        mla.cosine_similarity(np.ones(u_shape), np.ones(v_shape))


def test_cosine_similarity_leaves_inputs_unchanged(rng):
    u = to_layout(rng.standard_normal(19), "strided")
    v = to_layout(rng.standard_normal(19), "negative")
    before = (u.copy(), v.copy())

    mla.cosine_similarity(u, v)

    assert_unchanged(before[0], u, "u")
    assert_unchanged(before[1], v, "v")


def test_cosine_similarity_matrix_article_embeddings():
    X = np.stack(list(EMBEDDINGS.values()))

    result = mla.cosine_similarity_matrix(X)

    expected = reference.cosine_similarity_matrix(X)
    assert_close(result, expected, np.float64, "reduction", inner=4)
    for i, j in itertools.product(range(len(X)), repeat=2):
        pair_value = mla.cosine_similarity(X[i], X[j])
        assert result[i, j] == pytest.approx(pair_value, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", MATRIX_SHAPES, ids=shape_id)
def test_cosine_similarity_matrix_matches_reference(shape, dtype, rng):
    X = rng.standard_normal(shape).astype(dtype)

    result = mla.cosine_similarity_matrix(X)

    assert result.shape == (shape[0], shape[0])
    expected = reference.cosine_similarity_matrix(to_float64(X))
    assert_close(result, expected, dtype, "reduction", inner=shape[1])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cosine_similarity_matrix_symmetric_unit_diagonal(dtype, rng):
    X = rng.standard_normal((45, 23)).astype(dtype)

    result = mla.cosine_similarity_matrix(X)

    tolerance = TOLERANCES[(np.dtype(dtype).name, "reduction")]
    atol = tolerance["atol_per_inner"] * 23
    np.testing.assert_allclose(result, result.T, rtol=tolerance["rtol"], atol=atol)
    np.testing.assert_allclose(
        np.diagonal(result), np.ones(45), rtol=tolerance["rtol"], atol=atol
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cosine_similarity_matrix_zero_rows(dtype, rng):
    X = rng.standard_normal((6, 9)).astype(dtype)
    X[[1, 4]] = 0.0

    result = mla.cosine_similarity_matrix(X)

    np.testing.assert_array_equal(result[[1, 4], :], np.zeros((2, 6)))
    np.testing.assert_array_equal(result[:, [1, 4]], np.zeros((6, 2)))
    nonzero = [0, 2, 3, 5]
    np.testing.assert_allclose(np.diagonal(result)[nonzero], 1.0, rtol=1e-4)
    expected = reference.cosine_similarity_matrix(to_float64(X))
    assert_close(result, expected, dtype, "reduction", inner=9)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cosine_similarity_matrix_zero_columns(dtype):
    result = mla.cosine_similarity_matrix(np.zeros((3, 0), dtype=dtype))

    assert result.dtype == dtype
    np.testing.assert_array_equal(result, np.zeros((3, 3)))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cosine_similarity_matrix_memory_layouts(layout, rng):
    X = to_layout(rng.standard_normal((21, 13)), layout)

    result = mla.cosine_similarity_matrix(X)

    expected = reference.cosine_similarity_matrix(X)
    assert_close(result, expected, np.float64, "reduction", inner=13, layout=layout)


@pytest.mark.parametrize(
    "dtype, scale",
    [(np.float64, 1e200), (np.float64, 1e-200), (np.float32, 1e30)],
    ids=["float64-1e200", "float64-1e-200", "float32-1e30"],
)
def test_cosine_similarity_matrix_extreme_magnitudes(dtype, scale, rng):
    X = rng.uniform(-1, 1, (7, 30))
    X_scaled = (X * scale).astype(dtype)
    expected = reference.cosine_similarity_matrix(X_scaled.astype(np.float64) / scale)

    result = mla.cosine_similarity_matrix(X_scaled)

    assert_close(result, expected, dtype, "reduction", inner=30)


def test_cosine_similarity_matrix_rows_across_scaling_bounds(rng):
    # Rows whose largest magnitude is inside [2^-400, 2^400] are normalized
    # as they are, the others after dividing by that magnitude.
    X = rng.uniform(-1, 1, (6, 30))
    X[:, 0] = 1.0
    X[4, 5] = 0.0
    exponents = np.array([399.0, 401.0, -399.0, -401.0, 0.0, 1000.0])
    X_scaled = X * np.exp2(exponents)[:, None]
    # A subnormal entry beside entries near 1 counts as zero.
    X_scaled[4, 5] = 1e-320
    expected = reference.cosine_similarity_matrix(X)

    result = mla.cosine_similarity_matrix(X_scaled)

    assert_close(result, expected, np.float64, "reduction", inner=30)


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4), ()], ids=shape_id)
def test_cosine_similarity_matrix_requires_matrix(shape):
    with pytest.raises(ValueError, match=r"^cosine_similarity_matrix: ") as error:
        mla.cosine_similarity_matrix(np.ones(shape))

    assert str(shape) in str(error.value) or "ndim" in str(error.value)


def test_cosine_similarity_matrix_leaves_input_unchanged(rng):
    X = to_layout(rng.standard_normal((11, 6)), "strided")
    before = X.copy()

    mla.cosine_similarity_matrix(X)

    assert_unchanged(before, X, "X")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cosine_similarity_parallel_within_unit_interval(dtype, rng):
    # Rounding can push u.v / (|u| |v|) just past 1; arccos then gives NaN.
    for _ in range(200):
        u = rng.standard_normal(rng.integers(1, 50)).astype(dtype)
        assert -1.0 <= mla.cosine_similarity(u, u) <= 1.0
        assert -1.0 <= mla.cosine_similarity(u, -3 * u) <= 1.0
        matrix = mla.cosine_similarity_matrix(np.stack([u, 2 * u, -u]))
        assert np.all(np.abs(matrix) <= 1.0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("n", [1, 191, 193, 400], ids=lambda n: f"n{n}")
def test_cosine_similarity_matrix_exactly_symmetric(n, dtype, rng):
    # One triangle is computed, in blocks of 192 rows, and mirrored.
    X = rng.standard_normal((n, 37)).astype(dtype)

    result = mla.cosine_similarity_matrix(X)

    np.testing.assert_array_equal(result, result.T)
    expected = reference.cosine_similarity_matrix(to_float64(X))
    assert_close(result, expected, dtype, "reduction", inner=37)


# (rows of X, rows of Y, columns of both)
PAIR_SHAPES = [
    (1, 1, 1),
    (3, 5, 4),
    (17, 2, 9),
    (0, 4, 3),
    (4, 0, 3),
    (5, 6, 0),
    (230, 70, 33),
]


def pair_id(shape):
    return "x".join(str(size) for size in shape)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", PAIR_SHAPES, ids=pair_id)
def test_cosine_similarity_matrix_pairs_match_reference(shape, dtype, rng):
    n, m, d = shape
    X = rng.standard_normal((n, d)).astype(dtype)
    Y = rng.standard_normal((m, d)).astype(dtype)

    result = mla.cosine_similarity_matrix(X, Y)

    assert result.shape == (n, m)
    assert result.dtype == dtype
    expected = reference.cosine_similarity_matrix(*to_float64(X, Y))
    assert_close(result, expected, dtype, "reduction", inner=d)


def test_cosine_similarity_matrix_pairs_agree_with_vector_version(rng):
    X = rng.standard_normal((4, 6))
    Y = rng.standard_normal((3, 6))

    result = mla.cosine_similarity_matrix(X, Y)

    for i, j in itertools.product(range(4), range(3)):
        assert result[i, j] == pytest.approx(
            mla.cosine_similarity(X[i], Y[j]), rel=1e-12, abs=1e-15
        )


def test_cosine_similarity_matrix_y_none_or_same_object(rng):
    X = rng.standard_normal((9, 5))

    by_default = mla.cosine_similarity_matrix(X)
    with_none = mla.cosine_similarity_matrix(X, None)
    with_itself = mla.cosine_similarity_matrix(X, Y=X)
    with_copy = mla.cosine_similarity_matrix(X, X.copy())

    np.testing.assert_array_equal(with_none, by_default)
    np.testing.assert_array_equal(with_itself, by_default)
    assert_close(with_copy, by_default, np.float64, "reduction", inner=5)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cosine_similarity_matrix_pairs_zero_and_nan_rows(dtype, rng):
    X = rng.standard_normal((4, 7)).astype(dtype)
    Y = rng.standard_normal((5, 7)).astype(dtype)
    X[1] = 0
    Y[3] = 0
    Y[4, 2] = np.nan

    result = mla.cosine_similarity_matrix(X, Y)

    np.testing.assert_array_equal(result[1, :4], np.zeros(4))
    np.testing.assert_array_equal(result[:, 3], np.zeros(4))
    assert np.all(np.isnan(result[[0, 2, 3], 4]))
    assert np.all(np.abs(result[~np.isnan(result)]) <= 1.0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cosine_similarity_matrix_pairs_memory_layouts(layout, rng):
    X = to_layout(rng.standard_normal((21, 13)), layout)
    Y = to_layout(rng.standard_normal((8, 13)), layout)

    result = mla.cosine_similarity_matrix(X, Y)

    expected = reference.cosine_similarity_matrix(X, Y)
    assert_close(result, expected, np.float64, "reduction", inner=13, layout=layout)


@pytest.mark.parametrize(
    "x_dtype, y_dtype, expected",
    [
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.int64, np.float32, np.float64),
        (np.float16, np.float32, np.float32),
    ],
    ids=str,
)
def test_cosine_similarity_matrix_pairs_dtype_rule(x_dtype, y_dtype, expected, rng):
    X = rng.integers(-3, 4, (4, 5)).astype(x_dtype)
    Y = rng.integers(-3, 4, (3, 5)).astype(y_dtype)

    result = mla.cosine_similarity_matrix(X, Y)

    assert result.dtype == expected


@pytest.mark.parametrize(
    "x_shape, y_shape",
    [((3, 4), (3, 5)), ((3, 4), (4,)), ((3, 4), (2, 3, 4))],
    ids=shape_id,
)
def test_cosine_similarity_matrix_pairs_shape_errors(x_shape, y_shape):
    with pytest.raises(ValueError, match=r"^cosine_similarity_matrix: ") as error:
        mla.cosine_similarity_matrix(np.ones(x_shape), np.ones(y_shape))

    assert str(y_shape) in str(error.value)


def test_cosine_similarity_matrix_y_rejected_dtype():
    with pytest.raises(TypeError, match=r"^cosine_similarity_matrix: Y .*complex128"):
        mla.cosine_similarity_matrix(np.ones((2, 3)), np.ones((2, 3), dtype=complex))


def test_cosine_similarity_matrix_pairs_leave_inputs_unchanged(rng):
    X = to_layout(rng.standard_normal((11, 6)), "strided")
    Y = to_layout(rng.standard_normal((7, 6)), "negative")
    before = (X.copy(), Y.copy())

    mla.cosine_similarity_matrix(X, Y)

    assert_unchanged(before[0], X, "X")
    assert_unchanged(before[1], Y, "Y")
