"""Tests for softmax and cross_entropy_loss."""

import math

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
    ulp_distance,
)

import mla
from mla import reference

# Shapes of 1 to 4 dimensions whose axis lengths straddle the SIMD widths.
SOFTMAX_SHAPES = [
    (1,),
    (3,),
    (8,),
    (17,),
    (1000,),
    (1, 1),
    (3, 5),
    (16, 9),
    (4, 33),
    (2, 3, 4),
    (5, 1, 17),
    (2, 3, 4, 5),
    (3, 1, 8, 2),
]

SOFTMAX_CASES = [
    (shape, axis) for shape in SOFTMAX_SHAPES for axis in range(-len(shape), len(shape))
]


def case_id(case):
    shape, axis = case
    return f"{shape_id(shape)}-axis{axis}"


def reference_softmax(z, axis=-1):
    """Return the float64 reference softmax, ignoring NumPy's NaN warnings."""
    with np.errstate(invalid="ignore"):
        return reference.softmax(to_float64(z), axis=axis)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", SOFTMAX_CASES, ids=case_id)
def test_softmax_every_axis(case, dtype, rng):
    shape, axis = case
    z = (rng.standard_normal(shape) * 3).astype(dtype)

    result = mla.softmax(z, axis=axis)

    expected = reference_softmax(z, axis)
    assert_close(result, expected, dtype, "reduction", inner=shape[axis])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_default_last_axis(dtype, rng):
    z = rng.standard_normal((4, 6, 5)).astype(dtype)

    result = mla.softmax(z)

    assert_close(result, reference_softmax(z), dtype, "reduction", inner=5)


def test_softmax_axis_positional(rng):
    z = rng.standard_normal((4, 6))

    result = mla.softmax(z, 0)

    assert_close(result, reference_softmax(z, 0), np.float64, "reduction", inner=4)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_softmax_memory_layouts(layout, axis, rng):
    z = to_layout(rng.standard_normal((6, 13, 5)) * 3, layout)

    result = mla.softmax(z, axis=axis)

    expected = reference_softmax(z, axis)
    assert_close(
        result,
        expected,
        np.float64,
        "reduction",
        inner=z.shape[axis],
        layout=f"{layout}, axis {axis}",
    )


def test_softmax_article_logits():
    # The article prints [0.58593206 0.21561427 0.19845367], which is not the
    # softmax of these logits.
    result = mla.softmax(np.array([2.0, 1.0, 0.5]))

    np.testing.assert_allclose(
        result, [0.62853172, 0.2312239, 0.14024438], rtol=0, atol=1e-8
    )


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_sums_to_one(dtype, axis, rng):
    z = (rng.standard_normal((37, 29)) * 5).astype(dtype)

    result = mla.softmax(z, axis=axis)

    sums = np.sum(result.astype(np.float64), axis=axis)
    rtol = 1e-12 if dtype is np.float64 else 1e-5
    np.testing.assert_allclose(sums, 1.0, rtol=rtol)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_positive_infinity_rows(dtype):
    z = np.array(
        [[1.0, np.inf, 2.0], [1.0, 2.0, 3.0], [np.inf, np.inf, 0.0]], dtype=dtype
    )

    result = mla.softmax(z)

    expected = reference_softmax(z)
    assert np.all(np.isnan(result[0]))
    assert np.all(np.isnan(result[2]))
    assert_close(result, expected, dtype, "reduction", inner=3)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_all_negative_infinity(dtype):
    z = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 0.0]], dtype=dtype)

    result = mla.softmax(z)

    assert np.all(np.isnan(result[0]))
    np.testing.assert_array_equal(result[1], np.array([0.5, 0.0, 0.5], dtype=dtype))
    assert_close(result, reference_softmax(z), dtype, "reduction", inner=3)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_nan_propagates(dtype, axis):
    z = np.zeros((4, 9), dtype=dtype)
    z[2, 5] = np.nan

    result = mla.softmax(z, axis=axis)

    expected = reference_softmax(z, axis)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    assert_close(result, expected, dtype, "reduction", inner=z.shape[axis])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)

    result = mla.softmax(z)

    expected = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    assert_close(result, expected, dtype, "reduction", inner=3)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_long_rows(dtype, rng):
    z = (rng.standard_normal((3, 4099)) * 10).astype(dtype)

    result = mla.softmax(z)

    assert_close(result, reference_softmax(z), dtype, "reduction", inner=4099)


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((3,), 1),
        ((3,), -2),
        ((2, 3), 2),
        ((2, 3), -3),
        ((2, 3, 4), 7),
        ((3,), 2**70),
        ((3,), -(2**70)),
    ],
    ids=lambda value: shape_id(value) if isinstance(value, tuple) else str(value),
)
def test_softmax_axis_out_of_range(shape, axis):
    with pytest.raises(np.exceptions.AxisError, match=r"^softmax: ") as error:
        mla.softmax(np.ones(shape), axis=axis)

    assert str(axis) in str(error.value)


@pytest.mark.parametrize("sign", [1, -1])
def test_softmax_axis_too_long_to_print(sign):
    # str() of an int over 4300 digits raises, so the message leaves it out.
    with pytest.raises(np.exceptions.AxisError, match=r"^softmax: ") as error:
        mla.softmax(np.ones((2, 3)), axis=sign * 10**5000)

    assert str(error.value).endswith("got an int too long to print")


@pytest.mark.parametrize("axis", ["0", 1.5, [0]], ids=repr)
def test_softmax_axis_not_integer(axis):
    with pytest.raises(TypeError, match=r"softmax"):
        mla.softmax(np.ones((2, 3)), axis=axis)


@pytest.mark.parametrize(
    "shape, axis",
    [((0,), 0), ((3, 0), -1), ((0, 5), 0), ((0, 5), -1), ((2, 0, 4), 1)],
    ids=lambda value: shape_id(value) if isinstance(value, tuple) else str(value),
)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_empty_axis(shape, axis, dtype):
    result = mla.softmax(np.ones(shape, dtype=dtype), axis=axis)

    assert result.shape == shape
    assert result.dtype == dtype


def test_softmax_zero_dimensional_rejected():
    with pytest.raises(ValueError, match=r"^softmax: "):
        mla.softmax(np.array(1.0))


def test_softmax_leaves_input_unchanged(rng):
    z = to_layout(rng.standard_normal((7, 9)), "strided")
    before = z.copy()

    mla.softmax(z, axis=0)

    assert_unchanged(before, z, "z")


def one_hot(rng, shape):
    """Return a one-hot float64 array whose last axis indexes the classes."""
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    return np.eye(shape[-1])[labels]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "shape", [(1,), (3,), (10, 5), (4, 3, 2), (64, 17), (3, 1000)], ids=shape_id
)
def test_cross_entropy_loss_matches_reference(shape, dtype, rng):
    y_pred = reference.softmax(rng.standard_normal(shape) * 2).astype(dtype)
    y_true = one_hot(rng, shape).astype(dtype)

    loss = mla.cross_entropy_loss(y_pred, y_true)

    assert type(loss) is float
    expected = reference.cross_entropy_loss(*to_float64(y_pred, y_true))
    assert_close(loss, expected, dtype, "reduction", inner=int(np.prod(shape)))


def test_cross_entropy_loss_article_example():
    # The article prints 0.5346, but the loss of the correct softmax is
    # -log(0.6285).
    probs = reference.softmax(np.array([2.0, 1.0, 0.5]))
    y_true = np.array([1, 0, 0])

    loss = mla.cross_entropy_loss(probs, y_true)

    assert loss == pytest.approx(0.46436, abs=1e-5)
    expected = reference.cross_entropy_loss(probs, y_true.astype(np.float64))
    assert_close(loss, expected, np.float64, "reduction", inner=3)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cross_entropy_loss_clips_probabilities(dtype):
    # log(0) would be -inf, so the clip to [1e-15, 1 - 1e-15] keeps the loss finite.
    y_pred = np.array([0.0, 1.0, 0.5, -0.25, 1.5], dtype=dtype)
    y_true = np.array([1.0, 1.0, 1.0, 0.5, 0.5], dtype=dtype)

    loss = mla.cross_entropy_loss(y_pred, y_true)

    expected = reference.cross_entropy_loss(
        np.array([0.0, 1.0, 0.5, -0.25, 1.5]), np.array([1.0, 1.0, 1.0, 0.5, 0.5])
    )
    assert np.isfinite(loss)
    assert_close(loss, expected, dtype, "reduction", inner=5)


def test_cross_entropy_loss_accumulates_in_double():
    # A float32 running sum of 1e6 equal terms is off by about 1e-3.
    y_pred = np.full(10**6, 0.3, dtype=np.float32)
    y_true = np.ones(10**6, dtype=np.float32)

    loss = mla.cross_entropy_loss(y_pred, y_true)

    expected = 10**6 * -np.log(np.float64(np.float32(0.3)))
    assert loss == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_loss_soft_labels(rng):
    y_pred = reference.softmax(rng.standard_normal((6, 4)))
    y_true = reference.softmax(rng.standard_normal((6, 4)))

    loss = mla.cross_entropy_loss(y_pred, y_true)

    expected = reference.cross_entropy_loss(y_pred, y_true)
    assert_close(loss, expected, np.float64, "reduction", inner=24)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cross_entropy_loss_memory_layouts(layout, rng):
    y_pred = to_layout(reference.softmax(rng.standard_normal((9, 7))), layout)
    y_true = to_layout(one_hot(rng, (9, 7)), layout)

    loss = mla.cross_entropy_loss(y_pred, y_true)

    expected = reference.cross_entropy_loss(y_pred, y_true)
    assert_close(loss, expected, np.float64, "reduction", inner=63, layout=layout)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cross_entropy_loss_log_within_one_ulp(dtype, kernel_level, rng):
    # One element per call, so the loss is -log(p) itself: probabilities
    # from 1e-15 to 1, and around sqrt(1/2), where the vectorized log splits
    # p into 2^e m.
    p = np.concatenate(
        [
            10 ** rng.uniform(-15, 0, 1500),
            rng.uniform(0.70, 0.72, 300),
            [1e-15, 0.5, 0.25, 0.7071067811865476, 0.70710677, 0.9999999],
        ]
    ).astype(dtype)
    weight = np.ones(1, dtype=dtype)

    losses = np.array(
        [mla.cross_entropy_loss(p[i : i + 1], weight) for i in range(p.size)]
    )

    expected = np.array([-math.log(v) for v in p.tolist()])
    distance = ulp_distance(losses.astype(dtype), expected.astype(dtype), dtype)
    worst = int(np.argmax(distance))
    assert distance[worst] <= 1, (
        f"{kernel_level}: -log({p[worst]!r}) off by {distance[worst]} ulp"
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_cross_entropy_loss_special_values(dtype, kernel_level):
    # Each special probability and weight sits at a chunk edge of a
    # 1030-element input, where the clip and the tail of the last chunk
    # meet it.
    probabilities = [np.nan, np.inf, -np.inf, -1.0, 0.0, 5e-324, 2.0, 1.0]
    weights = [1.0, 0.0, np.inf, np.nan]
    for value in probabilities:
        for weight in weights:
            for position in (0, 1023, 1024, 1029):
                y_pred = np.full(1030, 0.25, dtype=dtype)
                y_true = np.zeros(1030, dtype=dtype)
                y_true[5] = 1
                with np.errstate(over="ignore"):
                    y_pred[position] = value
                y_true[position] = weight

                loss = mla.cross_entropy_loss(y_pred, y_true)

                with np.errstate(invalid="ignore", divide="ignore"):
                    expected = reference.cross_entropy_loss(y_pred, y_true)
                case = f"p={value}, weight={weight} at {position}"
                assert np.isnan(loss) == np.isnan(expected), case
                if not np.isnan(expected):
                    assert loss == pytest.approx(expected, rel=1e-6), case


def test_cross_entropy_loss_thread_count_identical(rng):
    y_pred = rng.uniform(0, 1, (700, 900))
    y_true = rng.uniform(0, 1, (700, 900))
    original = mla.get_num_threads()
    try:
        mla.set_num_threads(1)
        single = mla.cross_entropy_loss(y_pred, y_true)
        mla.set_num_threads(2)
        double = mla.cross_entropy_loss(y_pred, y_true)
    finally:
        mla.set_num_threads(original)

    assert single == double
    expected = reference.cross_entropy_loss(y_pred, y_true)
    assert_close(single, expected, np.float64, "reduction", inner=630000)


@pytest.mark.parametrize("shape", [(0,), (3, 0)], ids=shape_id)
def test_cross_entropy_loss_empty_zero(shape):
    loss = mla.cross_entropy_loss(np.ones(shape), np.ones(shape))

    assert type(loss) is float
    assert loss == 0.0


def test_cross_entropy_loss_nan_propagates():
    loss = mla.cross_entropy_loss(np.array([0.5, np.nan]), np.array([1.0, 1.0]))

    assert np.isnan(loss)


@pytest.mark.parametrize(
    "pred_shape, true_shape",
    [((3,), (4,)), ((2, 3), (3, 2)), ((3,), (1, 3)), ((2, 3), (3,)), ((1,), ())],
    ids=shape_id,
)
def test_cross_entropy_loss_shape_mismatch(pred_shape, true_shape):
    with pytest.raises(ValueError, match=r"^cross_entropy_loss: ") as error:
        mla.cross_entropy_loss(np.full(pred_shape, 0.5), np.ones(true_shape))

    assert str(pred_shape) in str(error.value)
    assert str(true_shape) in str(error.value)


def test_cross_entropy_loss_leaves_inputs_unchanged():
    y_pred = np.array([0.0, 1.0, 0.5, 2.0])
    y_true = np.array([1.0, 0.0, 1.0, 0.0])
    before = (y_pred.copy(), y_true.copy())

    mla.cross_entropy_loss(y_pred, y_true)

    assert_unchanged(before[0], y_pred, "y_pred")
    assert_unchanged(before[1], y_true, "y_true")


def test_softmax_axis_bool_rejected():
    with pytest.raises(TypeError, match="^softmax: axis must be an integer; got bool"):
        mla.softmax(np.ones((2, 3)), axis=True)


def test_cross_entropy_empty_is_positive_zero():
    loss = mla.cross_entropy_loss([], [])
    assert loss == 0.0
    assert math.copysign(1.0, loss) == 1.0


def reference_log_softmax(z, axis=-1):
    """Return the float64 reference log-softmax, ignoring NaN warnings."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return reference.log_softmax(to_float64(z), axis=axis)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", SOFTMAX_CASES, ids=case_id)
def test_log_softmax_every_axis(case, dtype, rng):
    shape, axis = case
    z = (rng.standard_normal(shape) * 3).astype(dtype)

    result = mla.log_softmax(z, axis=axis)

    expected = reference_log_softmax(z, axis)
    assert_close(result, expected, dtype, "reduction", inner=shape[axis])


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_log_softmax_memory_layouts(layout, axis, rng):
    z = to_layout(rng.standard_normal((6, 13, 5)) * 3, layout)

    result = mla.log_softmax(z, axis=axis)

    assert_close(
        result,
        reference_log_softmax(z, axis),
        np.float64,
        "reduction",
        inner=z.shape[axis],
        layout=f"{layout}, axis {axis}",
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_log_softmax_default_last_axis(dtype, rng):
    z = rng.standard_normal((4, 6, 5)).astype(dtype)

    result = mla.log_softmax(z)

    assert_close(result, reference_log_softmax(z), dtype, "reduction", inner=5)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_log_softmax_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)

    result = mla.log_softmax(z)

    log2, log3 = np.log(2.0), np.log(3.0)
    expected = np.array(
        [[0.0, -2e4, -1e4], [-log3, -log3, -log3], [-log2, -log2, -2e4 - log2]]
    )
    assert_close(result, expected, dtype, "reduction", inner=3)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_log_softmax_finite_where_softmax_underflows(dtype):
    z = np.array([400.0, 0.0, -400.0], dtype=dtype)

    result = mla.log_softmax(z)

    # softmax(z)[2] is exp(-800), which is 0 in both float types.
    assert mla.softmax(z)[2] == 0
    np.testing.assert_array_equal(result, np.array([0.0, -400.0, -800.0], dtype=dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_log_softmax_matches_log_of_softmax(dtype, rng):
    z = (rng.standard_normal((7, 31)) * 2).astype(dtype)

    result = mla.log_softmax(z)

    expected = np.log(reference.softmax(to_float64(z)))
    assert_close(result, expected, dtype, "reduction", inner=31)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_log_softmax_non_finite_rows(dtype):
    z = np.array(
        [
            [1.0, np.inf, 2.0],
            [-np.inf, -np.inf, -np.inf],
            [1.0, np.nan, 0.0],
            [0.0, -np.inf, 0.0],
        ],
        dtype=dtype,
    )

    result = mla.log_softmax(z)

    assert np.all(np.isnan(result[:3]))
    log2 = np.log(2.0)
    np.testing.assert_allclose(result[3], [-log2, -np.inf, -log2], rtol=1e-6)
    assert_close(result, reference_log_softmax(z), dtype, "reduction", inner=3)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_log_softmax_nan_propagates_along_axis(dtype, axis):
    z = np.zeros((4, 9), dtype=dtype)
    z[2, 5] = np.nan

    result = mla.log_softmax(z, axis=axis)

    expected = reference_log_softmax(z, axis)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))


@pytest.mark.parametrize(
    "shape, axis",
    [((0,), 0), ((3, 0), -1), ((0, 5), 0), ((2, 0, 4), 1)],
    ids=lambda value: shape_id(value) if isinstance(value, tuple) else str(value),
)
def test_log_softmax_empty_axis(shape, axis):
    result = mla.log_softmax(np.ones(shape, dtype=np.float32), axis=axis)

    assert result.shape == shape
    assert result.dtype == np.float32


@pytest.mark.parametrize("axis", [2, -3, 2**70])
def test_log_softmax_axis_out_of_range(axis):
    with pytest.raises(np.exceptions.AxisError, match=r"^log_softmax: ") as error:
        mla.log_softmax(np.ones((2, 3)), axis=axis)

    assert str(axis) in str(error.value)


@pytest.mark.parametrize("axis", ["0", 1.5, True], ids=repr)
def test_log_softmax_axis_not_integer(axis):
    with pytest.raises(TypeError, match=r"^log_softmax: axis must be an integer"):
        mla.log_softmax(np.ones((2, 3)), axis=axis)


def test_log_softmax_zero_dimensional_rejected():
    with pytest.raises(ValueError, match=r"^log_softmax: "):
        mla.log_softmax(np.array(1.0))


def test_log_softmax_leaves_input_unchanged(rng):
    z = to_layout(rng.standard_normal((7, 9)), "strided")
    before = z.copy()

    mla.log_softmax(z, axis=0)

    assert_unchanged(before, z, "z")


# Rows longer than one chunk of the first pass (1024 elements), and column
# blocks (64 columns, up to 64 rows per chunk) with several chunks.
SOFTMAX_FUNCTIONS = {
    "softmax": (mla.softmax, reference_softmax),
    "log_softmax": (mla.log_softmax, reference_log_softmax),
}


@pytest.mark.parametrize("name", list(SOFTMAX_FUNCTIONS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "shape, axis",
    [((2, 3000), -1), ((300, 150), 0), ((130, 7, 3), 0), ((3, 200, 70), 1)],
    ids=lambda value: shape_id(value) if isinstance(value, tuple) else str(value),
)
def test_softmax_several_chunks(shape, axis, dtype, name, rng):
    function, expected_function = SOFTMAX_FUNCTIONS[name]
    z = (rng.standard_normal(shape) * 4).astype(dtype)

    result = function(z, axis=axis)

    expected = expected_function(z, axis)
    assert_close(result, expected, dtype, "reduction", inner=shape[axis])


@pytest.mark.parametrize("name", list(SOFTMAX_FUNCTIONS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_max_in_a_late_chunk(dtype, name, rng):
    # Early chunks are scaled down by exp(-110) relative to the max's chunk.
    function, expected_function = SOFTMAX_FUNCTIONS[name]
    z = (rng.standard_normal((2, 3000)) - 50).astype(dtype)
    z[0, 2900] = 60
    z[1, 1500] = 10

    result = function(z)

    assert_close(result, expected_function(z), dtype, "reduction", inner=3000)


@pytest.mark.parametrize("name", list(SOFTMAX_FUNCTIONS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_chunk_of_negative_infinity(dtype, name, rng):
    function, expected_function = SOFTMAX_FUNCTIONS[name]
    z = rng.standard_normal((3, 3000)).astype(dtype)
    z[0, :2048] = -np.inf
    z[1, 1024:] = -np.inf
    z[2, 5:2500] = -np.inf

    result = function(z)

    expected = expected_function(z)
    assert not np.any(np.isnan(result))
    assert_close(result, expected, dtype, "reduction", inner=3000)


@pytest.mark.parametrize("name", list(SOFTMAX_FUNCTIONS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_columns_chunk_of_negative_infinity(dtype, name, rng):
    function, expected_function = SOFTMAX_FUNCTIONS[name]
    z = rng.standard_normal((300, 80)).astype(dtype)
    z[:200, 3] = -np.inf
    z[64:, 70] = -np.inf

    result = function(z, axis=0)

    expected = expected_function(z, 0)
    assert not np.any(np.isnan(result))
    assert_close(result, expected, dtype, "reduction", inner=300)


@pytest.mark.parametrize("name", list(SOFTMAX_FUNCTIONS))
@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "positive-infinity"])
@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_non_finite_in_a_late_chunk(axis, value, name, rng):
    function, expected_function = SOFTMAX_FUNCTIONS[name]
    z = (
        rng.standard_normal((300, 3000))
        if axis == 1
        else rng.standard_normal((300, 90))
    )
    z[250, 75] = value
    z[4, 2] = -np.inf

    result = function(z, axis=axis)

    expected = expected_function(z, axis)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    assert np.isnan(result).sum() == z.shape[axis]
    assert_close(result, expected, np.float64, "reduction", inner=z.shape[axis])


@pytest.mark.parametrize("name", list(SOFTMAX_FUNCTIONS))
@pytest.mark.parametrize("value", [60.0, np.nan, np.inf], ids=["max", "nan", "positive-infinity"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_value_at_a_chunk_edge(dtype, value, name, rng):
    # A chunk's max is read in the loop over the vectors of the chunk
    # before it, and the elements past the last whole pair of vectors after
    # it. Row i contains the value at positions[i]; the last chunk has 952
    # elements.
    function, expected_function = SOFTMAX_FUNCTIONS[name]
    positions = [0, 1023, 1024, 1039, 2047, 2048, 2900, 2991, 2999]
    z = (rng.standard_normal((len(positions), 3000)) - 50).astype(dtype)
    z[np.arange(len(positions)), positions] = value

    result = function(z)

    expected = expected_function(z)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    assert_close(result, expected, dtype, "reduction", inner=3000)


@pytest.mark.parametrize("name", list(SOFTMAX_FUNCTIONS))
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_thread_count_gives_identical_results(axis, name, rng):
    function = SOFTMAX_FUNCTIONS[name][0]
    z = rng.standard_normal((400, 700))
    original = mla.get_num_threads()
    try:
        mla.set_num_threads(1)
        single = function(z, axis=axis)
        mla.set_num_threads(2)
        double = function(z, axis=axis)
    finally:
        mla.set_num_threads(original)

    np.testing.assert_array_equal(single, double)


@pytest.mark.parametrize("name", list(SOFTMAX_FUNCTIONS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_softmax_at_every_kernel_level(dtype, name, kernel_level, rng):
    # Row lengths around the vector widths and the 1024-element chunk, and
    # a leading axis, which runs the column kernels.
    function, expected_function = SOFTMAX_FUNCTIONS[name]
    for shape, axis in [((3, 1), -1), ((5, 17), -1), ((2, 1100), -1), ((70, 9), 0)]:
        z = (rng.standard_normal(shape) * 4).astype(dtype)
        z[0, 0] = -np.inf

        result = function(z, axis=axis)

        expected = expected_function(z, axis)
        assert_close(
            result,
            expected,
            dtype,
            "reduction",
            inner=shape[axis],
            layout=f"{kernel_level}, shape {shape}, axis {axis}",
        )
