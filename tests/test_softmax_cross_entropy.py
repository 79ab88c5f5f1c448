"""Tests for softmax_cross_entropy: indices, probabilities and the gradient."""

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

# (batch, classes), including one class, primes and rows past the SIMD widths.
SHAPES = [(1, 1), (1, 3), (3, 5), (7, 2), (16, 9), (64, 17), (5, 33), (3, 1000)]


def reference_loss(logits, labels, return_grad=False):
    """Return the float64 reference result, the labels kept as given."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        labels = labels.astype(np.float64)
    return reference.softmax_cross_entropy(to_float64(logits), labels, return_grad)


# Tolerance of batch * grad, whose entries are softmax - target and lie in
# [-1, 1]: a few roundings of the element type, relative and absolute.
GRAD_TOLERANCES = {
    np.dtype(np.float32): {"rtol": 2e-5, "atol": 2e-6},
    np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-15},
}


def assert_grad_close(grad, expected, dtype, layout="C"):
    """Assert that a gradient matches the reference, entry by entry."""
    dtype = np.dtype(dtype)
    assert grad.dtype == dtype, f"grad dtype {grad.dtype}, expected {dtype}"
    assert grad.shape == np.shape(expected)
    batch = grad.shape[0] if grad.ndim == 2 else 1
    np.testing.assert_allclose(
        grad.astype(np.float64) * batch,
        np.asarray(expected) * batch,
        equal_nan=True,
        err_msg=f"dtype={dtype}, shape={grad.shape}, layout={layout}",
        **GRAD_TOLERANCES[dtype],
    )


def random_labels(rng, batch, classes):
    return rng.integers(0, classes, size=batch)


def random_probabilities(rng, shape):
    return reference.softmax(rng.standard_normal(shape) * 2)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_indices_match_reference(shape, dtype, rng):
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    labels = random_labels(rng, *shape)

    loss = mla.softmax_cross_entropy(logits, labels)

    assert type(loss) is float
    expected = reference_loss(logits, labels)
    assert_close(loss, expected, dtype, "reduction", inner=shape[1])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_indices_gradient_matches_reference(shape, dtype, rng):
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    labels = random_labels(rng, *shape)

    loss, grad = mla.softmax_cross_entropy(logits, labels, return_grad=True)

    expected_loss, expected_grad = reference_loss(logits, labels, True)
    assert type(loss) is float
    assert grad.shape == shape
    assert_close(loss, expected_loss, dtype, "reduction", inner=shape[1])
    assert_grad_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_probabilities_match_reference(shape, dtype, rng):
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    probabilities = random_probabilities(rng, shape).astype(dtype)

    loss, grad = mla.softmax_cross_entropy(logits, probabilities, return_grad=True)

    expected_loss, expected_grad = reference_loss(logits, probabilities, True)
    assert_close(loss, expected_loss, dtype, "reduction", inner=shape[1])
    assert_grad_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_indices_equal_one_hot_probabilities(dtype, rng):
    logits = (rng.standard_normal((12, 7)) * 3).astype(dtype)
    labels = random_labels(rng, 12, 7)
    one_hot = np.eye(7, dtype=dtype)[labels]

    by_index = mla.softmax_cross_entropy(logits, labels, return_grad=True)
    by_probability = mla.softmax_cross_entropy(logits, one_hot, return_grad=True)

    assert_close(by_index[0], by_probability[0], dtype, "reduction", inner=7)
    assert_grad_close(by_index[1], by_probability[1], dtype)


def finite_difference_gradient(logits, labels, step=1e-6):
    """Return the central-difference gradient of the mla loss, in float64."""
    grad = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        plus = logits.copy()
        minus = logits.copy()
        plus[index] += step
        minus[index] -= step
        difference = mla.softmax_cross_entropy(
            plus, labels
        ) - mla.softmax_cross_entropy(minus, labels)
        grad[index] = difference / (2 * step)
    return grad


@pytest.mark.parametrize("form", ["indices", "probabilities", "unnormalized"])
def test_gradient_matches_finite_differences(form, rng):
    logits = rng.standard_normal((4, 5)) * 2
    if form == "indices":
        labels = random_labels(rng, 4, 5)
    elif form == "probabilities":
        labels = random_probabilities(rng, (4, 5))
    else:
        # Rows that do not sum to 1: the gradient is softmax * sum(p) - p.
        labels = rng.uniform(0, 2, size=(4, 5))

    _, grad = mla.softmax_cross_entropy(logits, labels, return_grad=True)

    numeric = finite_difference_gradient(logits, labels)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_gradient_finite_differences_one_sample(rng):
    logits = rng.standard_normal(6)

    _, grad = mla.softmax_cross_entropy(logits, 4, return_grad=True)

    numeric = finite_difference_gradient(logits, 4)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_one_sample_logits(dtype, rng):
    logits = rng.standard_normal(9).astype(dtype)
    probabilities = random_probabilities(rng, 9)

    by_index = mla.softmax_cross_entropy(logits, 3, return_grad=True)
    by_probability = mla.softmax_cross_entropy(logits, probabilities, return_grad=True)

    assert by_index[1].shape == (9,)
    assert by_index[1].dtype == dtype
    expected = reference_loss(logits, np.int64(3), True)
    assert_close(by_index[0], expected[0], dtype, "reduction", inner=9)
    assert_grad_close(by_index[1], expected[1], dtype)
    expected = reference_loss(logits, probabilities, True)
    assert_close(by_probability[0], expected[0], dtype, "reduction", inner=9)
    assert_grad_close(by_probability[1], expected[1], dtype)


def test_one_sample_equals_batch_of_one(rng):
    logits = rng.standard_normal(8)

    single = mla.softmax_cross_entropy(logits, 5, return_grad=True)
    batch = mla.softmax_cross_entropy(logits[None], [5], return_grad=True)

    assert single[0] == batch[0]
    np.testing.assert_array_equal(single[1], batch[1][0])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_huge_logits_stay_finite(dtype):
    logits = np.array(
        [[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype
    )
    labels = np.array([1, 2, 0])

    loss, grad = mla.softmax_cross_entropy(logits, labels, return_grad=True)

    # Row losses: 2e4, log(3) and log(2).
    expected = (2e4 + np.log(3) + np.log(2)) / 3
    assert loss == pytest.approx(expected, rel=1e-6)
    expected_grad = (
        np.array([[1.0, -1.0, 0.0], [1 / 3, 1 / 3, -2 / 3], [-0.5, 0.5, 0.0]]) / 3
    )
    assert_grad_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_negative_infinity_logit_not_the_label(dtype):
    logits = np.array([[0.0, -np.inf, 0.0]], dtype=dtype)

    loss, grad = mla.softmax_cross_entropy(logits, [0], return_grad=True)
    soft_loss = mla.softmax_cross_entropy(
        logits, np.array([[0.5, 0.0, 0.5]], dtype=dtype)
    )

    assert loss == pytest.approx(np.log(2), rel=1e-6)
    np.testing.assert_allclose(grad, [[-0.5, 0.0, 0.5]], rtol=1e-6)
    assert soft_loss == pytest.approx(np.log(2), rel=1e-6)


def test_negative_infinity_logit_of_the_label_gives_infinity():
    logits = np.array([[0.0, -np.inf, 0.0], [1.0, 2.0, 3.0]])

    loss = mla.softmax_cross_entropy(logits, [1, 0])

    assert loss == np.inf
    assert reference_loss(logits, np.array([1, 0])) == np.inf


# With the loss split into sum(p (max - z)) + sum(p) log S, an infinite
# probability at the largest logit gives inf * 0 = NaN, but its term is inf.
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    "probabilities, expected",
    [([np.inf, 0.0], np.inf), ([0.0, np.inf], np.inf), ([-np.inf, 0.5], -np.inf)],
    ids=["at-max", "below-max", "negative"],
)
def test_infinite_probability_gives_infinity(probabilities, expected, dtype):
    logits = np.array([[1.0, 0.0], [1.0, 2.0]], dtype=dtype)
    labels = np.array([probabilities, [0.5, 0.5]], dtype=dtype)

    loss = mla.softmax_cross_entropy(logits, labels)

    assert loss == expected
    with np.errstate(invalid="ignore"):
        assert reference_loss(logits, labels) == expected


@pytest.mark.parametrize(
    "row",
    [[1.0, np.nan, 0.0], [np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf]],
    ids=["nan", "positive-infinity", "all-negative-infinity"],
)
@pytest.mark.parametrize("form", ["indices", "probabilities"])
def test_non_finite_row_gives_nan(row, form):
    logits = np.array([row, [0.5, 1.0, 2.0]])
    labels = np.array([0, 2]) if form == "indices" else np.full((2, 3), 1 / 3)

    loss, grad = mla.softmax_cross_entropy(logits, labels, return_grad=True)

    assert np.isnan(loss)
    assert np.all(np.isnan(grad[0]))
    assert np.all(np.isfinite(grad[1]))
    with np.errstate(invalid="ignore"):
        expected_loss, expected_grad = reference_loss(logits, labels, True)
    assert np.isnan(expected_loss)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_memory_layouts(layout, rng):
    logits = to_layout(rng.standard_normal((9, 7)) * 3, layout)
    probabilities = to_layout(random_probabilities(rng, (9, 7)), layout)
    labels = to_layout(random_labels(rng, 9, 7), layout)

    by_index = mla.softmax_cross_entropy(logits, labels, return_grad=True)
    by_probability = mla.softmax_cross_entropy(logits, probabilities, return_grad=True)

    for result, expected in [
        (by_index, reference_loss(logits, np.asarray(labels), True)),
        (by_probability, reference_loss(logits, probabilities, True)),
    ]:
        assert_close(
            result[0], expected[0], np.float64, "reduction", inner=7, layout=layout
        )
        assert_grad_close(result[1], expected[1], np.float64, layout=layout)


@pytest.mark.parametrize(
    "label_dtype",
    [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64],
)
def test_label_integer_dtypes(label_dtype, rng):
    logits = rng.standard_normal((6, 4))
    labels = random_labels(rng, 6, 4)

    loss = mla.softmax_cross_entropy(logits, labels.astype(label_dtype))

    assert loss == mla.softmax_cross_entropy(logits, labels)


def test_labels_as_python_list(rng):
    logits = rng.standard_normal((3, 4))

    loss = mla.softmax_cross_entropy(logits.tolist(), [0, 3, 1])

    assert_close(
        loss,
        reference_loss(logits, np.array([0, 3, 1])),
        np.float64,
        "reduction",
        inner=4,
    )


@pytest.mark.parametrize(
    "logits_dtype, labels_dtype, expected_dtype",
    [
        (np.float32, np.float64, np.float32),
        (np.float64, np.float32, np.float64),
        (np.float16, np.float64, np.float32),
        (np.int64, np.float32, np.float64),
        (np.float32, np.bool_, np.float32),
    ],
    ids=str,
)
def test_computed_in_precision_of_logits(
    logits_dtype, labels_dtype, expected_dtype, rng
):
    logits = rng.integers(-3, 4, size=(5, 4)).astype(logits_dtype)
    labels = np.eye(4)[random_labels(rng, 5, 4)].astype(labels_dtype)

    loss, grad = mla.softmax_cross_entropy(logits, labels, return_grad=True)

    assert grad.dtype == expected_dtype
    expected = reference_loss(logits, labels.astype(np.float64), True)
    assert_close(loss, expected[0], expected_dtype, "reduction", inner=4)
    assert_grad_close(grad, expected[1], expected_dtype)


def test_loss_accumulates_in_double():
    # A float32 running sum of 1e5 equal row losses would be off by about 1e-3.
    logits = np.zeros((100_000, 3), dtype=np.float32)
    labels = np.zeros(100_000, dtype=np.int64)

    loss = mla.softmax_cross_entropy(logits, labels)

    assert loss == pytest.approx(np.log(3), rel=1e-6)


@pytest.mark.parametrize("return_grad", [False, True])
def test_empty_batch_gives_zero(return_grad):
    logits = np.ones((0, 5), dtype=np.float32)

    result = mla.softmax_cross_entropy(logits, np.zeros(0, dtype=np.int64), return_grad)

    if return_grad:
        loss, grad = result
        assert grad.shape == (0, 5)
        assert grad.dtype == np.float32
    else:
        loss = result
    assert type(loss) is float
    assert loss == 0.0
    assert reference_loss(logits, np.zeros(0, dtype=np.int64)) == 0.0


def test_empty_batch_with_probabilities():
    loss = mla.softmax_cross_entropy(np.ones((0, 5)), np.ones((0, 5)))

    assert loss == 0.0


@pytest.mark.parametrize(
    "labels, position, value",
    [
        ([0, 5, 1], "labels[1]", "5"),
        ([0, 1, -1], "labels[2]", "-1"),
        ([7, 9, 8], "labels[0]", "7"),
    ],
    ids=["too-large", "negative", "first"],
)
def test_index_out_of_range(labels, position, value):
    logits = np.zeros((3, 5))

    with pytest.raises(ValueError, match=r"^softmax_cross_entropy: ") as error:
        mla.softmax_cross_entropy(logits, labels)

    message = str(error.value)
    assert f"{position} = {value}" in message
    assert "5 classes" in message
    assert "0 to 4" in message


def test_index_out_of_range_one_sample():
    with pytest.raises(ValueError, match=r"class index labels = 3 is out of range"):
        mla.softmax_cross_entropy(np.zeros(3), 3)


def test_index_beyond_int64_rejected():
    labels = np.array([1, 2**63 + 5], dtype=np.uint64)

    with pytest.raises(ValueError, match=rf"labels\[1\] = {2**63 + 5} is out of range"):
        mla.softmax_cross_entropy(np.zeros((2, 4)), labels)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0.0, 2.0]),
        np.array([True, False]),
        np.array([0.5, 1.0], dtype=np.float32),
    ],
    ids=["float64", "bool", "float32"],
)
def test_non_integer_indices_rejected(labels):
    with pytest.raises(
        TypeError,
        match=r"^softmax_cross_entropy: labels of shape \(2,\) are class indices and must have an integer dtype",
    ):
        mla.softmax_cross_entropy(np.zeros((2, 3)), labels)


@pytest.mark.parametrize(
    "logits_shape, labels_shape",
    [
        ((3, 4), (4,)),
        ((3, 4), (3, 5)),
        ((3, 4), (4, 3)),
        ((3, 4), (3, 4, 1)),
        ((3, 4), ()),
        ((4,), (1, 4)),
        ((4,), (3,)),
    ],
    ids=shape_id,
)
def test_labels_shape_mismatch(logits_shape, labels_shape):
    labels = np.zeros(labels_shape, dtype=np.int64)
    if len(labels_shape) == len(logits_shape):
        labels = labels.astype(np.float64)

    with pytest.raises(ValueError, match=r"^softmax_cross_entropy: ") as error:
        mla.softmax_cross_entropy(np.zeros(logits_shape), labels)

    assert str(logits_shape) in str(error.value)
    assert str(labels_shape) in str(error.value)


@pytest.mark.parametrize("shape", [(), (2, 3, 4)], ids=shape_id)
def test_logits_wrong_ndim(shape):
    with pytest.raises(
        ValueError, match=r"^softmax_cross_entropy: logits must be 1-D or 2-D"
    ):
        mla.softmax_cross_entropy(np.zeros(shape), np.zeros(shape[:-1], dtype=np.int64))


@pytest.mark.parametrize("shape", [(3, 0), (0,), (0, 0)], ids=shape_id)
def test_no_classes_rejected(shape):
    with pytest.raises(ValueError, match=r"at least one class"):
        mla.softmax_cross_entropy(np.zeros(shape), np.zeros(shape[:-1], dtype=np.int64))


@pytest.mark.parametrize("flag", [1, "yes", None, 1.0], ids=repr)
def test_return_grad_must_be_bool(flag):
    with pytest.raises(
        TypeError, match=r"^softmax_cross_entropy: return_grad must be True or False"
    ):
        mla.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], return_grad=flag)


def test_return_grad_accepts_numpy_bool():
    result = mla.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], return_grad=np.True_)

    assert isinstance(result, tuple)


@pytest.mark.parametrize(
    "argument, value, pattern",
    [
        ("logits", np.ones((2, 3), dtype=np.complex128), "complex128"),
        ("labels", np.ones((2, 3), dtype=np.complex128), "complex128"),
        ("labels", np.array(["a", "b"]), "<U1"),
        ("labels", None, "None"),
        ("logits", None, "None"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_rejected_dtypes(argument, value, pattern):
    arguments = {"logits": np.zeros((2, 3)), "labels": np.array([0, 1])}
    arguments[argument] = value

    with pytest.raises(TypeError, match=rf"^softmax_cross_entropy: .*{pattern}"):
        mla.softmax_cross_entropy(**arguments)


def test_ragged_labels_rejected():
    with pytest.raises(
        ValueError, match=r"^softmax_cross_entropy: labels could not be converted"
    ):
        mla.softmax_cross_entropy(np.zeros((2, 3)), [[0, 1], [1]])


def test_keyword_arguments(rng):
    logits = rng.standard_normal((3, 4))

    by_keyword = mla.softmax_cross_entropy(
        labels=[1, 2, 3], logits=logits, return_grad=True
    )
    by_position = mla.softmax_cross_entropy(logits, [1, 2, 3], True)

    assert by_keyword[0] == by_position[0]
    np.testing.assert_array_equal(by_keyword[1], by_position[1])


def test_missing_and_extra_arguments():
    with pytest.raises(TypeError, match="softmax_cross_entropy"):
        mla.softmax_cross_entropy(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="softmax_cross_entropy"):
        mla.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], True, 1)
    with pytest.raises(TypeError, match="softmax_cross_entropy"):
        mla.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], grad=True)


def test_inputs_unchanged(rng):
    logits = to_layout(rng.standard_normal((5, 4)), "strided")
    probabilities = to_layout(random_probabilities(rng, (5, 4)), "strided")
    labels = to_layout(random_labels(rng, 5, 4), "strided")
    before = (logits.copy(), probabilities.copy(), labels.copy())

    mla.softmax_cross_entropy(logits, labels, return_grad=True)
    mla.softmax_cross_entropy(logits, probabilities, return_grad=True)

    assert_unchanged(before[0], logits, "logits")
    assert_unchanged(before[1], probabilities, "labels")
    assert_unchanged(before[2], labels, "labels")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_large_batch(dtype, rng):
    logits = (rng.standard_normal((600, 1000)) * 4).astype(dtype)
    labels = random_labels(rng, 600, 1000)

    loss, grad = mla.softmax_cross_entropy(logits, labels, return_grad=True)

    expected_loss, expected_grad = reference_loss(logits, labels, True)
    assert_close(loss, expected_loss, dtype, "reduction", inner=1000)
    assert_grad_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("form", ["indices", "probabilities"])
def test_rows_of_several_chunks(form, dtype, rng):
    # Rows longer than one chunk of the first pass (1024 elements).
    logits = (rng.standard_normal((5, 2500)) * 3).astype(dtype)
    logits[1, :1100] = -np.inf
    logits[2, 2400] = 30
    if form == "indices":
        labels = np.array([7, 1500, 2400, 2499, 1024])
    else:
        labels = random_probabilities(rng, (5, 2500)).astype(dtype)
        labels[1, :1100] = 0

    loss, grad = mla.softmax_cross_entropy(logits, labels, return_grad=True)

    expected_loss, expected_grad = reference_loss(logits, labels, True)
    assert np.isfinite(loss)
    assert_close(loss, expected_loss, dtype, "reduction", inner=2500)
    assert_grad_close(grad, expected_grad, dtype)


def test_label_in_chunk_of_negative_infinity():
    logits = np.zeros((1, 2500))
    logits[0, :1100] = -np.inf

    loss, grad = mla.softmax_cross_entropy(logits, [5], return_grad=True)

    assert loss == np.inf
    assert grad[0, 5] == -1.0
    np.testing.assert_allclose(grad[0, 1100:], 1 / 1400)


@pytest.mark.parametrize("form", ["indices", "probabilities"])
def test_thread_count_gives_identical_results(form, rng):
    logits = rng.standard_normal((3000, 50))
    if form == "indices":
        labels = random_labels(rng, 3000, 50)
    else:
        labels = random_probabilities(rng, (3000, 50))
    original = mla.get_num_threads()
    try:
        mla.set_num_threads(1)
        single = mla.softmax_cross_entropy(logits, labels, return_grad=True)
        mla.set_num_threads(2)
        double = mla.softmax_cross_entropy(logits, labels, return_grad=True)
    finally:
        mla.set_num_threads(original)

    assert single[0] == double[0]
    np.testing.assert_array_equal(single[1], double[1])


@pytest.mark.parametrize("form", ["indices", "probabilities"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_at_every_kernel_level(dtype, form, kernel_level, rng):
    logits = (rng.standard_normal((9, 1030)) * 3).astype(dtype)
    if form == "indices":
        labels = random_labels(rng, 9, 1030)
    else:
        labels = random_probabilities(rng, (9, 1030)).astype(dtype)

    loss, grad = mla.softmax_cross_entropy(logits, labels, return_grad=True)

    expected_loss, expected_grad = reference_loss(logits, labels, True)
    assert_close(
        loss, expected_loss, dtype, "reduction", inner=1030, layout=kernel_level
    )
    assert_grad_close(grad, expected_grad, dtype, layout=kernel_level)
