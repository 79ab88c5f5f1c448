"""Argument rules shared by every public function.

Every function converts array-likes the same way: real dtypes are computed in
float32 (float16, float32) or float64 (float64, integers, bool), mixed inputs
take the wider of the two, and complex, object, string, bytes, datetime and
void input raises TypeError. This file checks those rules, together with
wrong dimensions, untouched inputs and the keyword arguments, for each
function in one table.
"""

import numpy as np
import pytest
from conftest import (
    assert_close,
    assert_unchanged,
    compute_dtype,
    shape_id,
    to_layout,
)

import mla
from mla import reference

# Shape of every array argument of a small valid call, in positional order.
# softmax_cross_entropy is left out: its integer labels follow their own
# rules, tested in test_softmax_cross_entropy.py.
ARRAY_SHAPES = {
    "sigmoid": {"x": (3, 4)},
    "relu": {"x": (3, 4)},
    "sigmoid_derivative": {"x": (3, 4)},
    "relu_derivative": {"x": (3, 4)},
    "forward_layer": {"x": (4,), "W": (3, 4), "b": (3,)},
    "forward_layer_batch": {"X": (5, 4), "W": (3, 4), "b": (3,)},
    "dense_backward": {"d_out": (5, 3), "X": (5, 4), "W": (3, 4), "Z": (5, 3)},
    "simple_backprop": {
        "x": (4,),
        "y_true": (2,),
        "W1": (3, 4),
        "W2": (2, 3),
        "b1": (3,),
        "b2": (2,),
    },
    "matmul": {"A": (3, 4), "B": (4, 5)},
    "matmul_loop": {"A": (3, 4), "B": (4, 5)},
    "cosine_similarity": {"u": (6,), "v": (6,)},
    "cosine_similarity_matrix": {"X": (4, 6)},
    "linear_regression": {"X": (12, 2), "y": (12,)},
    "softmax": {"z": (3, 5)},
    "log_softmax": {"z": (3, 5)},
    "cross_entropy_loss": {"y_pred": (3, 4), "y_true": (3, 4)},
    "scaled_dot_product_attention": {"Q": (3, 4), "K": (5, 4), "V": (5, 2)},
    "scaled_dot_product_attention_backward": {
        "Q": (3, 4),
        "K": (5, 4),
        "V": (5, 2),
        "d_output": (3, 2),
    },
}

FUNCTION_NAMES = list(ARRAY_SHAPES)

# Options passed by keyword in every call of this file.
OPTIONS = {
    "forward_layer": {"activation": "sigmoid"},
    "forward_layer_batch": {"activation": "sigmoid"},
    "dense_backward": {"activation": "tanh"},
}

ARGUMENT_CASES = [
    (name, argument) for name, shapes in ARRAY_SHAPES.items() for argument in shapes
]

# Inputs that no function accepts, each with a pattern for its dtype's name.
REJECTED_INPUTS = {
    "complex128": (lambda shape: np.ones(shape, dtype=np.complex128), "complex128"),
    "complex64": (lambda shape: np.ones(shape, dtype=np.complex64), "complex64"),
    "object": (lambda shape: np.ones(shape, dtype=object), "object"),
    "None": (lambda shape: None, "object|None"),
    "str": (lambda shape: np.full(shape, "a"), r"<U1|str|unicode"),
    "bytes": (lambda shape: np.full(shape, b"a"), r"\|S1|S1|bytes"),
    "datetime64": (
        lambda shape: np.full(shape, np.datetime64("2024-01-01"), dtype="M8[D]"),
        "datetime64",
    ),
    "void": (lambda shape: np.zeros(shape, dtype="V8"), r"void|V8"),
}

# Inputs of the wrong dimension: (function, argument, shape).
WRONG_NDIM_CASES = [
    ("forward_layer", "x", (1, 4)),
    ("forward_layer", "W", (12,)),
    ("forward_layer", "b", (1, 3)),
    ("forward_layer_batch", "X", (4,)),
    ("forward_layer_batch", "W", (1, 3, 4)),
    ("forward_layer_batch", "b", (1, 3)),
    ("dense_backward", "d_out", (15,)),
    ("dense_backward", "X", (1, 5, 4)),
    ("dense_backward", "W", ()),
    ("dense_backward", "Z", (5, 3, 1)),
    ("simple_backprop", "x", (4, 1)),
    ("simple_backprop", "y_true", (2, 1)),
    ("simple_backprop", "W1", (12,)),
    ("simple_backprop", "W2", (1, 2, 3)),
    ("simple_backprop", "b1", (3, 1)),
    ("simple_backprop", "b2", ()),
    ("matmul", "A", ()),
    ("matmul", "B", ()),
    ("matmul_loop", "A", (4,)),
    ("matmul_loop", "B", (1, 4, 5)),
    ("cosine_similarity", "u", (6, 1)),
    ("cosine_similarity", "v", ()),
    ("cosine_similarity_matrix", "X", (6,)),
    ("cosine_similarity_matrix", "X", (1, 4, 6)),
    ("linear_regression", "X", (12, 2, 1)),
    ("linear_regression", "y", (12, 1, 1)),
    ("softmax", "z", ()),
    ("log_softmax", "z", ()),
    ("scaled_dot_product_attention", "Q", (4,)),
    ("scaled_dot_product_attention", "K", (4,)),
    ("scaled_dot_product_attention", "V", (2,)),
    ("scaled_dot_product_attention_backward", "Q", (4,)),
    ("scaled_dot_product_attention_backward", "K", (4,)),
    ("scaled_dot_product_attention_backward", "V", (2,)),
    ("scaled_dot_product_attention_backward", "d_output", (2,)),
]

# Input dtypes per case: the first array gets the first dtype and every other
# array the second.
DTYPE_CASES = {
    "float32": (np.float32, np.float32),
    "float64": (np.float64, np.float64),
    "float16": (np.float16, np.float16),
    "int64": (np.int64, np.int64),
    "int32": (np.int32, np.int32),
    "uint8": (np.uint8, np.uint8),
    "bool": (np.bool_, np.bool_),
    "float32-float64": (np.float32, np.float64),
    "float64-float32": (np.float64, np.float32),
    "float16-float32": (np.float16, np.float32),
    "int64-float32": (np.int64, np.float32),
    "bool-float32": (np.bool_, np.float32),
}


def integer_valued_arrays(name, rng, nonnegative=False):
    """Return float64 arrays of small integers, exact in every tested dtype."""
    low = 0 if nonnegative else -3
    arrays = []
    for shape in ARRAY_SHAPES[name].values():
        arrays.append(rng.integers(low, 4, size=shape).astype(np.float64))
    return arrays


def call(name, arrays, **options):
    return getattr(mla, name)(*arrays, **{**OPTIONS.get(name, {}), **options})


def call_reference(name, arrays):
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    return getattr(reference, name)(*arrays, **OPTIONS.get(name, {}))


def gram_condition(X):
    X_bias = np.column_stack([np.ones(len(X)), X])
    return float(np.linalg.cond(X_bias.T @ X_bias))


def assert_result_close(name, result, expected, dtype, arrays):
    """Compare any result form (array, float, tuple or dict) with the reference."""
    condition = None
    if name == "linear_regression":
        condition = gram_condition(np.asarray(arrays[0], dtype=np.float64))
    if isinstance(expected, dict):
        assert isinstance(result, dict)
        assert set(result) == set(expected)
        pairs = [(result[key], expected[key], key) for key in sorted(expected)]
    elif isinstance(expected, tuple):
        assert isinstance(result, tuple)
        assert len(result) == len(expected)
        pairs = [(r, e, f"item {i}") for i, (r, e) in enumerate(zip(result, expected))]
    else:
        pairs = [(result, expected, "result")]

    for actual, reference_value, label in pairs:
        if isinstance(reference_value, float):
            assert type(actual) is float, f"{name} {label}: {type(actual)}"
        else:
            assert isinstance(actual, np.ndarray), f"{name} {label}: {type(actual)}"
        assert_close(
            actual,
            reference_value,
            dtype,
            "reduction",
            inner=16,
            condition=condition,
            layout=f"{name} {label}",
        )


@pytest.mark.parametrize("rejected", list(REJECTED_INPUTS))
@pytest.mark.parametrize("name, argument", ARGUMENT_CASES, ids=lambda value: str(value))
def test_rejected_dtype_raises_type_error(name, argument, rejected, rng):
    make_input, dtype_pattern = REJECTED_INPUTS[rejected]
    arrays = dict(zip(ARRAY_SHAPES[name], integer_valued_arrays(name, rng, True)))
    arrays[argument] = make_input(ARRAY_SHAPES[name][argument])

    with pytest.raises(TypeError, match=rf"^{name}: .*({dtype_pattern})"):
        call(name, list(arrays.values()))


@pytest.mark.parametrize(
    "name, argument, shape",
    WRONG_NDIM_CASES,
    ids=lambda value: shape_id(value) if isinstance(value, tuple) else value,
)
def test_wrong_ndim_raises_value_error(name, argument, shape, rng):
    arrays = dict(zip(ARRAY_SHAPES[name], integer_valued_arrays(name, rng, True)))
    arrays[argument] = np.ones(shape)

    with pytest.raises(ValueError, match=rf"^{name}: "):
        call(name, list(arrays.values()))


@pytest.mark.parametrize("case", list(DTYPE_CASES))
@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_dtype_rule_result_dtype(name, case, rng):
    first_dtype, other_dtype = DTYPE_CASES[case]
    nonnegative = first_dtype is np.uint8 or first_dtype is np.bool_
    values = integer_valued_arrays(name, rng, nonnegative)
    if first_dtype is np.bool_ or other_dtype is np.bool_:
        values = [np.abs(v) % 2 for v in values]
    dtypes = [first_dtype] + [other_dtype] * (len(values) - 1)
    arrays = [v.astype(dtype) for v, dtype in zip(values, dtypes)]
    if name == "linear_regression" and arrays[0].dtype == np.bool_:
        # Random 0/1 columns can repeat, so fix three rows to make the design full rank.
        arrays[0][:3] = [[1, 0], [0, 1], [0, 0]]
    expected_dtype = compute_dtype(*dtypes)

    result = call(name, arrays)

    expected = call_reference(name, arrays)
    assert_result_close(name, result, expected, expected_dtype, arrays)


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_python_lists_accepted(name, rng):
    arrays = integer_valued_arrays(name, rng)
    lists = [a.tolist() for a in arrays]

    result = call(name, lists)

    expected = call_reference(name, arrays)
    assert_result_close(name, result, expected, np.float64, arrays)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64], ids=str)
@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_inputs_never_modified(name, dtype, rng):
    values = integer_valued_arrays(name, rng)
    arrays = [to_layout(v.astype(dtype), "strided") for v in values]
    before = [a.copy() for a in arrays]

    call(name, arrays)

    for argument, old, new in zip(ARRAY_SHAPES[name], before, arrays):
        assert_unchanged(old, new, f"{name} argument {argument}")


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_results_are_new_arrays(name, rng):
    arrays = integer_valued_arrays(name, rng)

    result = call(name, arrays)

    if isinstance(result, dict):
        outputs = list(result.values())
    elif isinstance(result, tuple):
        outputs = list(result)
    else:
        outputs = [result]
    for output in outputs:
        for argument, array in zip(ARRAY_SHAPES[name], arrays):
            assert not np.shares_memory(output, array), f"{name} returned {argument}"


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_missing_argument_type_error(name, rng):
    arrays = integer_valued_arrays(name, rng)

    with pytest.raises(TypeError, match=name):
        getattr(mla, name)(*arrays[:-1])


EXTRA_POSITIONAL = {
    "forward_layer": ["relu", 1],
    "forward_layer_batch": ["relu", 1],
    "dense_backward": ["relu", True],
    "matmul": [None, 1],
    "cosine_similarity_matrix": [None, 1],
    "linear_regression": [0.0, "normal", 1],
    "softmax": [-1, 1],
    "log_softmax": [-1, 1],
}


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_extra_argument_type_error(name, rng):
    arrays = integer_valued_arrays(name, rng)
    extra = EXTRA_POSITIONAL.get(name, [1])
    accepted = len(arrays) + len(extra) - 1
    noun = "argument" if accepted == 1 else "arguments"

    with pytest.raises(
        TypeError, match=rf"^{name}\(\) takes (at most )?{accepted} positional {noun}\b"
    ):
        getattr(mla, name)(*arrays, *extra)


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_unknown_keyword_type_error(name, rng):
    arrays = integer_valued_arrays(name, rng)

    with pytest.raises(TypeError, match=name):
        getattr(mla, name)(*arrays, unknown_option=1)


@pytest.mark.parametrize(
    "name, option, value",
    [
        ("forward_layer", "activation", "relu"),
        ("forward_layer_batch", "activation", "relu"),
        ("dense_backward", "activation", "relu"),
        ("matmul", "out", None),
        ("linear_regression", "regularization", 0.0),
        ("softmax", "axis", -1),
        ("log_softmax", "axis", -1),
        ("cosine_similarity_matrix", "Y", None),
    ],
    ids=lambda value: str(value),
)
def test_option_given_twice_type_error(name, option, value, rng):
    arrays = integer_valued_arrays(name, rng)

    with pytest.raises(TypeError, match=name):
        getattr(mla, name)(*arrays, value, **{option: value})


@pytest.mark.parametrize(
    "name, option, value",
    [
        ("forward_layer", "activation", "linear"),
        ("forward_layer_batch", "activation", None),
        ("dense_backward", "activation", "sigmoid"),
        ("linear_regression", "regularization", 0.5),
        ("softmax", "axis", 0),
        ("log_softmax", "axis", 0),
    ],
    ids=lambda value: str(value),
)
def test_option_keyword_equals_positional(name, option, value, rng):
    arrays = integer_valued_arrays(name, rng)

    by_keyword = getattr(mla, name)(*arrays, **{option: value})
    by_position = getattr(mla, name)(*arrays, value)

    if isinstance(by_keyword, tuple):
        assert len(by_keyword) == len(by_position)
        for keyword_item, position_item in zip(by_keyword, by_position):
            np.testing.assert_array_equal(keyword_item, position_item)
    else:
        np.testing.assert_array_equal(by_keyword, by_position)


def test_public_functions_exported():
    missing = [
        name for name in FUNCTION_NAMES if not callable(getattr(mla, name, None))
    ]
    assert missing == []
    for name in ("show_config", "set_num_threads", "get_num_threads"):
        assert callable(getattr(mla, name, None)), name
