"""Fuzz the wrapper layer with hostile argument lists, for a bounded time.

Hypothesis draws a function from ``cases.CASES`` and a valid call of it,
then makes up to three changes. A change replaces an argument or option by
a hostile value, drops an argument, adds a positional argument or an unknown
or repeated keyword, or makes ``out=`` alias an input. Hostile values are
wrong types, nested and ragged lists, object arrays, 0-d arrays, exotic
dtypes, zero-stride views that declare terabytes, zero-size arrays whose
dimensions multiply past 2**64, overlapping views, read-only, misaligned and
byte-swapped buffers, and objects whose ``__array__``, ``__index__`` or
``__float__`` raise.

Every call must either return a result of the reference's shape (``out``
itself when given) and leave its inputs unchanged, or raise TypeError,
ValueError (AxisError included), MemoryError, LinAlgError, or the error of a
hostile object's own method. A crash ends the process and fails the run. A
call that runs longer than ``CALL_TIMEOUT`` seconds dumps the stacks and
ends the process too.

``MLA_FUZZ_SECONDS`` bounds the run (5 s in a plain ``pytest``, 20 s in
the sanitized run of ``.ci/run``). Batches of ``BATCH_EXAMPLES`` examples start until it has
passed, so the run ends at most one batch later. Batch ``i`` runs with
hypothesis seed ``MLA_FUZZ_SEED + i``. The seed, a random one unless set, is
printed with the run's figures and in a failure's message, and setting it
replays the run.
"""

import contextlib
import faulthandler
import os
import random
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

try:
    import resource
except ImportError:  # the module exists on Unix only
    resource = None

import numpy as np
from cases import CASES_BY_NAME, compute_dtype, dtype_arrays, env_number, reference_arrays
from conftest import to_layout
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from strategies import random_call

FUZZ_SECONDS = env_number("MLA_FUZZ_SECONDS", 5.0)
FUZZ_SEED = env_number("MLA_FUZZ_SEED", 0)
BATCH_EXAMPLES = 50

# Address space that the fuzzed calls may add to the process (see
# address_space_limit).
ADDRESS_SPACE_HEADROOM = 2 * 2**30

# A valid call of a fuzzed size takes a fraction of a second, so a call
# still running after this long is taken as a hang.
CALL_TIMEOUT = 120


class HostileError(Exception):
    """The error of the hostile objects' own methods, which mla must pass on."""


class RaisingArray:
    """An object whose ``__array__`` raises."""

    def __array__(self, dtype=None, copy=None):
        raise HostileError("__array__")


class WrongArray:
    """An object whose ``__array__`` returns a list, not an array."""

    def __array__(self, dtype=None, copy=None):
        return [1.0, 2.0]


class RaisingIndex:
    """An integer-like object whose ``__index__`` raises."""

    def __index__(self):
        raise HostileError("__index__")


class RaisingFloat:
    """A number-like object whose ``__float__`` raises."""

    def __float__(self):
        raise HostileError("__float__")


class LyingSequence:
    """A sequence that claims three items but has only one."""

    def __len__(self):
        return 3

    def __getitem__(self, index):
        if index > 0:
            raise IndexError(index)
        return 1.0


ALLOWED_ERRORS = (TypeError, ValueError, MemoryError, np.linalg.LinAlgError, HostileError)

# Sizes of the zero-stride views, whose element count is far past any
# memory: 2**42 elements or more, on both dimensions, so that no valid call
# can use such a view without allocating an array just as large. At most
# 2**29 each, so that the byte count of a float64 view stays below the
# 2**63 that NumPy accepts: a 2**30 x 2**30 float64 view made NumPy itself
# raise while the fuzz drew its arguments.
HUGE = st.integers(2**21, 2**29)


def zero_stride_view(dtype, rows, columns):
    """Return a 2-D view of one element that declares rows x columns."""
    base = np.ones(1, dtype=dtype)
    return np.lib.stride_tricks.as_strided(base, shape=(rows, columns), strides=(0, 0))


def zero_size_array(dtype, sizes):
    """Return an empty array with one 0 among huge dimensions.

    NumPy accepts it as long as the nonzero dimensions times the item size
    fit in 63 bits. A kernel that multiplies some of them with other
    arguments' dimensions can still overflow 64 bits.
    """
    itemsize = np.dtype(dtype).itemsize
    kept = []
    total = itemsize
    for size in sizes:
        if total * size < 2**63:
            kept.append(size)
            total *= size
    position = len(kept) // 2
    return np.empty(tuple(kept[:position]) + (0,) + tuple(kept[position:]), dtype=dtype)


def overlapping_view(values):
    """Return a 2-D view whose rows overlap: row i starts one element on."""
    flat = np.ascontiguousarray(values, dtype=np.float64).ravel()
    if flat.size < 2:
        flat = np.ones(4)
    columns = flat.size // 2 + 1
    rows = flat.size - columns + 1
    return np.lib.stride_tricks.as_strided(
        flat, shape=(rows, columns), strides=(8, 8), writeable=False
    )


def nested(depth):
    value = 1.0
    for _ in range(depth):
        value = [value]
    return value


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.complex_numbers(),
    st.text(max_size=4),
    st.binary(max_size=4),
)

NESTED_LISTS = st.recursive(
    st.one_of(st.floats(), st.integers(-5, 5), st.none(), st.text(max_size=1)),
    lambda children: st.lists(children, max_size=3),
    max_leaves=12,
)

EXOTIC_DTYPES = (
    "complex64",
    "complex128",
    "clongdouble",
    "longdouble",
    "object",
    "U3",
    "S3",
    "V8",
    "M8[s]",
    "m8[s]",
    "i1,f8",
)


def is_small(value):
    """Return True for a real ndarray whose copies and lists stay small.

    The huge views and empty arrays that earlier changes leave must not be
    copied or listed: an empty array of shape (2**25, 0, 2**20) makes a
    list of 2**25 empty lists. Object arrays may hold ragged rows that
    cannot be copied into another layout.
    """
    return (
        isinstance(value, np.ndarray)
        and value.dtype.kind in "biuf"
        and value.size <= 4096
        and all(size <= 4096 for size in value.shape)
    )


def made_by(factories):
    """Return a strategy of fresh objects, each made by one of the factories."""
    return st.sampled_from(factories).map(lambda make: make())


@st.composite
def hostile_values(draw, valid):
    """Draw a hostile stand-in for an argument whose valid value is ``valid``."""
    kind = draw(
        st.sampled_from(
            (
                "scalar",
                "nested list",
                "deep list",
                "container",
                "object array",
                "0-d array",
                "numpy scalar",
                "exotic dtype",
                "zero-stride view",
                "zero-size huge",
                "overlapping view",
                "layout",
                "read-only",
                "buffer",
                "hostile object",
            )
        )
    )
    # A huge array left by an earlier change would make the copies below
    # as huge, so it is replaced by a small one.
    if not is_small(valid):
        valid = np.ones(3)
    shape = valid.shape
    if kind == "scalar":
        return draw(SCALARS)
    if kind == "nested list":
        return draw(NESTED_LISTS)
    if kind == "deep list":
        return nested(draw(st.integers(30, 80)))
    if kind == "container":
        return draw(made_by((dict, set, lambda: (1.0, 2.0), lambda: range(3), lambda: iter([1.0]))))
    if kind == "object array":
        return draw(
            made_by(
                (
                    lambda: np.array([1.0, None], dtype=object),
                    lambda: np.array([np.ones(2), np.ones(3)], dtype=object),
                    lambda: np.full(shape, 1.5, dtype=object),
                    lambda: np.empty(shape, dtype=object),
                )
            )
        )
    if kind == "0-d array":
        value = draw(st.floats(-10, 10))
        dtype = draw(st.sampled_from(("f8", "f4", "i8", "?", "U3", "S3", "O", "c8", "masked")))
        if dtype == "masked":
            return np.ma.masked_array(value, mask=draw(st.booleans()))
        return np.array(value).astype(dtype)
    if kind == "numpy scalar":
        return draw(
            made_by(
                (
                    lambda: np.float32(1.5),
                    lambda: np.float64(-2.0),
                    lambda: np.int8(3),
                    lambda: np.uint64(2**64 - 1),
                    lambda: np.bool_(True),
                    lambda: np.complex64(1j),
                    lambda: np.clongdouble(2),
                    lambda: np.timedelta64(1),
                    lambda: np.str_("1"),
                    # An int whose str() raises (over 4300 digits).
                    lambda: 10**5000,
                )
            )
        )
    if kind == "exotic dtype":
        return np.zeros(shape, dtype=draw(st.sampled_from(EXOTIC_DTYPES)))
    if kind == "zero-stride view":
        dtype = draw(st.sampled_from(("f8", "f4", "u1", "?")))
        return zero_stride_view(dtype, draw(HUGE), draw(HUGE))
    if kind == "zero-size huge":
        dtype = draw(st.sampled_from(("f8", "f4", "u1")))
        sizes = draw(st.lists(st.integers(2**20, 2**40), min_size=1, max_size=3))
        return zero_size_array(dtype, sizes)
    if kind == "overlapping view":
        return overlapping_view(valid)
    if kind == "layout":
        layout = draw(st.sampled_from(("unaligned", "byteswapped", "negative", "F")))
        return to_layout(valid, layout)
    if kind == "read-only":
        frozen = valid.copy()
        frozen.setflags(write=False)
        return frozen
    if kind == "buffer":
        return draw(
            made_by(
                (
                    lambda: bytearray(b"\x00\x01\x02"),
                    lambda: memoryview(b"abcd"),
                    lambda: memoryview(np.ones(3)),
                )
            )
        )
    return draw(made_by((RaisingArray, WrongArray, RaisingIndex, RaisingFloat, LyingSequence)))


@st.composite
def aliasing_out(draw, args):
    """Draw an out= that shares memory with an input."""
    arrays = [a for a in args if is_small(a) and a.size > 0]
    if not arrays:
        return None
    array = arrays[draw(st.integers(0, len(arrays) - 1))]
    views = ("same", "transposed", "reversed", "overlapping")
    if array.ndim == 0:
        # A 0-d array has no axis to reverse.
        views = ("same", "transposed", "overlapping")
    view = draw(st.sampled_from(views))
    if view == "same":
        return array
    if view == "transposed":
        return array.T
    if view == "reversed":
        return array[::-1]
    return overlapping_view(array)


FUNCTION_NAMES = st.sampled_from(list(CASES_BY_NAME))
SEEDS = st.integers(0, 2**32 - 1)
CHANGES = st.sampled_from(
    (
        "hostile argument",
        "hostile option",
        "missing argument",
        "extra argument",
        "unknown keyword",
        "keyword argument",
        "list argument",
        "aliasing out",
    )
)


def draw_fuzzed_call(data):
    """Draw ``(case, args, kwargs, changes)``: a valid call, then changes."""
    case = CASES_BY_NAME[data.draw(FUNCTION_NAMES, label="function")]
    rng = np.random.default_rng(data.draw(SEEDS, label="seed of the valid call"))
    args, kwargs = random_call(case, rng, max_size=9, budget=2000)
    option_names = list(case.defaults)
    names = [array.name for array in case.signatures[0]]
    changes = []

    for _ in range(data.draw(st.integers(0, 3))):
        change = data.draw(CHANGES, label="change")
        changes.append(change)
        if change == "hostile argument" and args:
            index = data.draw(st.integers(0, len(args) - 1))
            args[index] = data.draw(hostile_values(args[index]))
        elif change == "hostile option" and option_names:
            name = data.draw(st.sampled_from(option_names))
            kwargs[name] = data.draw(hostile_values(kwargs.get(name)))
        elif change == "missing argument" and args:
            args.pop(data.draw(st.integers(0, len(args) - 1)))
        elif change == "extra argument":
            extra = st.lists(SCALARS, min_size=1, max_size=len(option_names) + 2)
            args.extend(data.draw(extra))
        elif change == "unknown keyword":
            kwargs[data.draw(st.sampled_from(("unknown", "axes", "dtype", "x_", "")))] = 1
        elif change == "keyword argument" and 0 < len(args) <= len(names):
            # By keyword: valid for the last positional argument, a repeat
            # for the others.
            index = data.draw(st.integers(0, len(args) - 1))
            kwargs[names[index]] = args[index]
            if index == len(args) - 1:
                args.pop()
        elif change == "list argument" and args:
            index = data.draw(st.integers(0, len(args) - 1))
            if is_small(args[index]):
                args[index] = args[index].tolist()
        elif change == "aliasing out" and "out" in option_names:
            kwargs["out"] = data.draw(aliasing_out(args))
    return case, args, kwargs, changes


def result_shapes(result):
    if isinstance(result, dict):
        return {key: np.shape(value) for key, value in result.items()}
    if isinstance(result, tuple):
        return tuple(np.shape(value) for value in result)
    return np.shape(result)


def reference_result(case, args, kwargs):
    """Return the reference's result on copies in mla's compute dtype.

    The call is one that mla accepted, so every argument is there once,
    positional or keyword. The compute dtype (not float64) keeps an empty
    float32 array with huge dimensions within NumPy's size limit. Returns
    None when the system is singular or the reference runs out of the
    memory that ``address_space_limit`` leaves.
    """
    signature = case.signatures[0]
    names = [array.name for array in signature] + list(case.defaults)
    values = dict(zip(names, args))
    values.update(kwargs)
    arrays = [np.asarray(values[array.name]) for array in signature]
    dtype = compute_dtype(*(a.dtype for a in dtype_arrays(signature, arrays)))
    options = {
        name: values[name]
        for name in case.defaults
        if name in values and name not in case.reference_skips
    }
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            arrays = reference_arrays(signature, arrays, dtype)
            if case.expect is not None:
                return case.expect(arrays, options)
            return case.reference(*arrays, **options)
        except (np.linalg.LinAlgError, MemoryError):
            return None


def snapshot(values):
    """Copy the small ndarray arguments, to check later that they are unchanged."""
    copies = {}
    for index, value in enumerate(values):
        if isinstance(value, np.ndarray) and value.size <= 10**5 and value.dtype != object:
            copies[index] = value.copy()
    return copies


def check_out_values(case, args, kwargs, before, result):
    """Compare a result written to out= with the reference on the inputs' copies.

    out= may alias an input, so the reference must see the values from
    before the call. Arguments not copied (lists, huge arrays) are skipped.
    """
    originals = []
    for index, value in enumerate(args):
        if isinstance(value, np.ndarray) and index not in before:
            return
        originals.append(before.get(index, value))
    options = {key: value for key, value in kwargs.items() if key != "out"}
    expected = reference_result(case, originals, options)
    if expected is None:
        return
    scale = 1.0 + float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(
        result, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=f"{case.name} out="
    )


def fuzz_one(case, args, kwargs, labels, stats):
    """Call once and check the outcome; count it in ``stats``."""
    keyword_values = list(kwargs.values())
    before = snapshot(args + keyword_values)
    faulthandler.dump_traceback_later(CALL_TIMEOUT, exit=True, file=sys.__stderr__)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = case.function(*args, **kwargs)
    except ALLOWED_ERRORS as error:
        stats[type(error).__name__] += 1
        return
    finally:
        faulthandler.cancel_dump_traceback_later()
    stats["result"] += 1

    after = args + keyword_values
    out = kwargs.get("out")
    for index, old in before.items():
        new = after[index]
        if isinstance(out, np.ndarray) and np.shares_memory(new, out):
            # Writing out= writes this input too, through the shared memory.
            continue
        assert old.tobytes() == new.tobytes(), f"{case.name}: input {index} was modified"
    if out is not None:
        assert result is out, f"{case.name}: out= given but another array returned"
        check_out_values(case, args, kwargs, before, result)

    expected = reference_result(case, args, kwargs)
    if expected is None:
        return
    assert result_shapes(result) == result_shapes(expected), (
        f"{case.name} {labels}: result shapes {result_shapes(result)}, "
        f"reference {result_shapes(expected)}"
    )
    if isinstance(result, dict):
        parts = list(result.values())
    elif isinstance(result, tuple):
        parts = list(result)
    else:
        parts = [result]
    for part in parts:
        dtype = np.asarray(part).dtype
        assert dtype in (np.float32, np.float64), f"{case.name}: result dtype {dtype}"


@contextlib.contextmanager
def address_space_limit(headroom):
    """Cap this process's address space at its current size plus ``headroom``.

    A fuzzed call can be valid and still ask for an enormous result (an
    empty inner dimension between two huge ones, say), which malloc would
    grant on a large machine and the kernel would then fill. With the cap
    such a request raises MemoryError at once. Under the sanitizers, ASan's
    max_allocation_size_mb (set by .ci/sanitize) does the same, because
    ASan needs far more address space than any cap would leave.
    """
    statm = Path("/proc/self/statm")
    if resource is None or os.environ.get("MLA_SANITIZED") or not statm.exists():
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = int(statm.read_text().split()[0]) * resource.getpagesize() + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_fuzz_wrapper_layer(capsys):
    base_seed = FUZZ_SEED or random.randrange(1, 2**31)
    deadline = time.monotonic() + FUZZ_SECONDS
    stats = Counter()

    def body(data):
        fuzz_one(*draw_fuzzed_call(data), stats)

    batch = 0
    while time.monotonic() < deadline:
        run = seed(base_seed + batch)(
            settings(
                max_examples=BATCH_EXAMPLES,
                database=None,
                deadline=None,
                phases=(Phase.generate, Phase.shrink),
                suppress_health_check=list(HealthCheck),
            )(given(st.data())(body))
        )
        try:
            with address_space_limit(ADDRESS_SPACE_HEADROOM):
                run()
        except BaseException as error:
            error.add_note(f"MLA_FUZZ_SEED={base_seed}, batch {batch}")
            raise
        batch += 1

    total = sum(stats.values())
    summary = ", ".join(f"{name} {count}" for name, count in sorted(stats.items()))
    with capsys.disabled():
        print(
            f"\nfuzz: {total} calls in {FUZZ_SECONDS:g} s, seed {base_seed}: {summary}",
            file=sys.stderr,
        )
    assert total > 0
