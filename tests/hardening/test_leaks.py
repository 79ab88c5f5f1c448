"""Reference and memory leaks of every registered function.

Each function of ``cases.CASES`` is called ``MLA_LEAK_CALLS`` times (1000
in a plain ``pytest``, 20 in the sanitized run of ``.ci/run``) on valid
calls and on each of its invalid calls, after a warm-up that fills the
interpreter's and NumPy's caches. Across those calls these must stay flat:

- ``sys.getallocatedblocks()``, the interpreter's live memory blocks, and
  the number of objects the garbage collector tracks: a leaked new object
  keeps at least one block alive per call;
- the memory that ``tracemalloc`` traces, which includes NumPy's array
  data;
- the blocks that mla's C kernels allocate (``_core._live_allocations``),
  which neither of the above traces;
- the reference count of every array argument: a reference leaked to an
  existing object allocates nothing, so only its count shows it. (Small
  integers and strings are shared with the rest of the interpreter, so
  their counts move for other reasons and are not checked.)

The tolerance is a tenth of a block or object per call, 4 traced bytes per
call, and nothing for the scratch blocks and reference counts, so one
leaked object per call fails every check that sees it. A second test calls
each function on large inputs and checks that the process's resident memory
grows by at most 4 MiB, over enough calls (20 to 2000) that leaking its
largest input copy or result array each call would add 32 MiB.
"""

import gc
import os
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from cases import CASES, CASES_BY_NAME, env_number, fixed_call, invalid_calls, large_call
from conftest import to_layout

import mla

CALLS = env_number("MLA_LEAK_CALLS", 1000)
WARMUP_CALLS = 100

# Under .ci/sanitize the interpreter allocates through malloc, and the
# traced memory keeps growing for about a thousand calls before it settles
# (by up to 35 KB, measured), with or without a leak. There the calls run
# for their error paths under ASan, and only the exact counts (C scratch
# blocks, reference counts) are checked; the normal build checks the rest.
SANITIZED = bool(os.environ.get("MLA_SANITIZED"))

# Resident memory that a run of large calls may add, and what a leak of one
# result or input copy per call must add at least.
RSS_TOLERANCE = 4 * 2**20
RSS_LEAK = 32 * 2**20

# Valid calls with the plainest options, then with random ones (out= for
# matmul, other axes and activations).
VALID_LABELS = ("valid", "valid-options-1", "valid-options-2", "valid-options-3")
# Valid calls of the other signatures (1-D operands of matmul, probability
# labels of softmax_cross_entropy), with the plainest options.
SIGNATURE_LABEL = "valid-signature-"

LEAK_CASES = [
    pytest.param(case.name, label, id=f"{case.name}-{label}")
    for case in CASES
    for label in VALID_LABELS[: 4 if case.options else 1]
    + tuple(f"{SIGNATURE_LABEL}{i}" for i in range(1, len(case.signatures)))
    + tuple(call.label for call in invalid_calls(case))
]


def find_call(name, label):
    """Return ``(args, kwargs, error)`` of a registered call by its label."""
    case = CASES_BY_NAME[name]
    if label in VALID_LABELS:
        option_seed = VALID_LABELS.index(label) or None
        args, kwargs = fixed_call(case, option_seed=option_seed)
        return args, kwargs, None
    if label.startswith(SIGNATURE_LABEL):
        index = int(label[len(SIGNATURE_LABEL) :])
        args, kwargs = fixed_call(case, signature_index=index)
        return args, kwargs, None
    for call in invalid_calls(case):
        if call.label == label:
            return list(call.args), call.kwargs, call.error
    raise LookupError(label)


def repeat(function, args, kwargs, error, count):
    if error is None:
        for _ in range(count):
            function(*args, **kwargs)
        return
    for _ in range(count):
        try:
            function(*args, **kwargs)
        except error:
            pass
        else:
            raise AssertionError(f"no {error.__name__} raised")


def counters(arguments):
    gc.collect()
    values = {
        "allocated blocks": sys.getallocatedblocks(),
        "gc objects": len(gc.get_objects()),
        "traced bytes": tracemalloc.get_traced_memory()[0],
        "C scratch blocks": mla._core._live_allocations(),
    }
    for index, argument in enumerate(arguments):
        if isinstance(argument, np.ndarray):
            values[f"references to argument {index}"] = sys.getrefcount(argument)
    return values


@pytest.mark.parametrize("name, label", LEAK_CASES)
def test_leak_free_repeated_calls(name, label):
    function = CASES_BY_NAME[name].function
    args, kwargs, error = find_call(name, label)
    arguments = list(args) + list(kwargs.values())
    tolerance = {"C scratch blocks": 0}
    if not SANITIZED:
        tolerance["allocated blocks"] = CALLS // 10
        tolerance["gc objects"] = CALLS // 10
        tolerance["traced bytes"] = 4 * CALLS
    for index, argument in enumerate(arguments):
        if isinstance(argument, np.ndarray):
            tolerance[f"references to argument {index}"] = 0

    tracemalloc.start()
    repeat(function, args, kwargs, error, WARMUP_CALLS)
    # Frozen objects are skipped by the collections of counters(), which
    # then take a millisecond, not the tens that pytest's heap would cost.
    gc.collect()
    gc.freeze()
    try:
        before = counters(arguments)
        repeat(function, args, kwargs, error, CALLS)
        after = counters(arguments)
    finally:
        gc.unfreeze()
        tracemalloc.stop()

    for counter, limit in tolerance.items():
        growth = after[counter] - before[counter]
        assert growth <= limit, f"{counter} grew by {growth} over {CALLS} calls"


def resident_bytes():
    """Return the resident memory of this process, from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def large_arguments(case):
    """Return a large valid call whose arrays need converting copies.

    The arrays are in the negative-stride layout, so that arguments the
    kernels need C-contiguous are copied on each call.
    """
    args, kwargs = large_call(case)
    return [to_layout(array, "negative") for array in args], kwargs


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
@pytest.mark.skipif(
    SANITIZED, reason="AddressSanitizer holds freed memory in quarantine"
)
@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_resident_memory_flat_large_inputs(name):
    case = CASES_BY_NAME[name]
    args, kwargs = large_arguments(case)
    result = case.function(*args, **kwargs)
    arrays = list(args)
    if isinstance(result, dict):
        arrays += list(result.values())
    elif isinstance(result, tuple):
        arrays += list(result)
    elif isinstance(result, np.ndarray):
        arrays.append(result)
    largest = max(1, max(array.nbytes for array in arrays))
    count = int(np.clip(RSS_LEAK // largest, 20, 2000))

    repeat(case.function, args, kwargs, None, 10)
    gc.collect()
    before = resident_bytes()
    repeat(case.function, args, kwargs, None, count)
    gc.collect()
    growth = resident_bytes() - before

    assert growth <= RSS_TOLERANCE, f"resident memory grew by {growth} bytes over {count} calls"
