"""Sizes whose products overflow: every function raises, never wraps.

For each entry of ``cases.CASES`` the calls here declare sizes that no
memory holds, built from the signature:

- one named dimension of 2**44 with the others 0, so the arrays are empty
  but a product of their dimensions (or a copy of a 1-D argument, which is
  then a zero-stride view of 2**44 elements) is enormous;
- each pair of named dimensions at 2**32 with the others 0, whose product
  overflows 64 bits;
- for ``BATCH`` functions, batch dimensions that broadcast to 2**64
  matrices;
- for ``SHAPE`` functions, empty arrays with dimensions 2**28 and 2**30
  around the 0.

Calls that NumPy cannot build (a single array of 2**64 elements) are left
out, and so are calls of zero-stride views alone, which are valid.

Each call must return a result of the reference's shape (an empty one,
mostly) or raise ValueError or MemoryError (LinAlgError for a singular
regression). A wrapped size would instead crash, hang or return a wrong
shape. A call that runs longer than ``CALL_TIMEOUT`` seconds ends the run
with the threads' stacks.
"""

import faulthandler
import itertools
import sys
import warnings

import numpy as np
import pytest
from cases import BATCH, CASES, FULL_BATCH, SHAPE, dimension_names

HUGE = 2**44
OVERFLOWING = 2**32

# A kernel that runs over a 2**44-element view instead of rejecting it
# would take hours, while every correct call here takes under a second.
CALL_TIMEOUT = 60

ACCEPTED_ERRORS = (ValueError, MemoryError, np.linalg.LinAlgError)


def build_array(shape, dtype=np.float64):
    """Return an empty array of ``shape``, or a zero-stride view if it has no 0.

    Returns None when NumPy cannot represent the shape at all (its byte
    count overflows 63 bits even with the zero left out).
    """
    try:
        if 0 in shape:
            return np.empty(shape, dtype=dtype)
        base = np.zeros(1, dtype=dtype)
        return np.lib.stride_tricks.as_strided(base, shape=shape, strides=(0,) * len(shape))
    except ValueError:
        return None


def shapes_for(signature, dims, shared=(), batches=None):
    batches = batches or {}
    # np.broadcast_shapes rejects a broadcast of 2**64 elements, which
    # the batch scenario declares on purpose.
    rank = max(map(len, batches.values()), default=0)
    full = tuple(
        max(batch[position - rank + len(batch)] if position >= rank - len(batch) else 1
            for batch in batches.values())
        for position in range(rank)
    )
    shapes = []
    for index, array in enumerate(signature):
        shape = []
        for entry in array.shape:
            if entry == SHAPE:
                shape.extend(shared)
            elif entry == BATCH:
                shape.extend(batches.get(index, ()))
            elif entry == FULL_BATCH:
                shape.extend(full)
            elif isinstance(entry, str):
                shape.append(dims[entry])
            else:
                shape.append(entry)
        shapes.append(tuple(shape))
    return shapes


def size_scenarios(case):
    """Yield ``(label, shapes)`` of the oversized calls of a function."""
    signature = case.signatures[0]
    names = dimension_names(signature)
    uses = {entry for array in signature for entry in array.shape}

    for name in names:
        dims = {other: 0 for other in names}
        dims[name] = HUGE
        yield f"{name}=2**44", shapes_for(signature, dims, shared=(0,))
    for first, second in itertools.combinations(names, 2):
        dims = {other: 0 for other in names}
        dims[first] = dims[second] = OVERFLOWING
        yield f"{first}*{second}=2**64", shapes_for(signature, dims, shared=(0,))
    users = [i for i, array in enumerate(signature) if BATCH in array.shape]
    if len(users) > 1:
        batches = {i: (1, 1) for i in users}
        batches[users[0]] = (OVERFLOWING, 1)
        batches[users[1]] = (1, OVERFLOWING)
        dims = {other: 0 for other in names}
        yield "batch=2**64", shapes_for(signature, dims, batches=batches)
    if SHAPE in uses:
        dims = {other: 3 for other in names}
        yield "empty 2**28x0x2**30", shapes_for(signature, dims, shared=(2**28, 0, 2**30))


def build_arrays(case, shapes):
    """Return the arrays of an oversized call: class labels as int64."""
    return [
        build_array(shape, np.int64 if spec.classes is not None else np.float64)
        for spec, shape in zip(case.signatures[0], shapes)
    ]


def runnable(case, shapes):
    """Return True if NumPy can build every array and one of them is empty.

    A call of zero-stride views alone is left out. Its arguments fit, so
    the kernel would run over all of their elements, which is slow but
    correct.
    """
    arrays = build_arrays(case, shapes)
    if any(array is None for array in arrays):
        return False
    return any(array.size == 0 for array in arrays)


SCENARIOS = [
    pytest.param(case, shapes, id=f"{case.name}-{label}")
    for case in CASES
    for label, shapes in size_scenarios(case)
    if runnable(case, shapes)
]


def result_shapes(result):
    if isinstance(result, dict):
        return {key: np.shape(value) for key, value in result.items()}
    if isinstance(result, tuple):
        return tuple(np.shape(value) for value in result)
    return np.shape(result)


@pytest.mark.parametrize("case, shapes", SCENARIOS)
def test_oversized_call_raises_or_fits(case, shapes):
    arrays = build_arrays(case, shapes)
    kwargs = dict(case.defaults)
    kwargs.pop("out", None)

    faulthandler.dump_traceback_later(CALL_TIMEOUT, exit=True, file=sys.__stderr__)
    try:
        result = case.function(*arrays, **kwargs)
    except ACCEPTED_ERRORS:
        return
    finally:
        faulthandler.cancel_dump_traceback_later()

    options = {k: v for k, v in kwargs.items() if k not in case.reference_skips}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.expect is not None:
            expected = case.expect(arrays, options)
        else:
            expected = case.reference(*arrays, **options)
    assert result_shapes(result) == result_shapes(expected)
