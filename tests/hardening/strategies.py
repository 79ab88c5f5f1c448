"""Hypothesis strategies that draw calls of the functions in ``cases.py``."""

import functools

import numpy as np
from cases import (
    DOMAINS,
    NOTABLE_SIZES,
    RandomDraw,
    class_labels,
    draw_dims,
    draw_shapes,
)
from conftest import LAYOUTS, to_layout
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Input dtypes, float64 and float32 most often. Hypothesis shrinks towards
# the first.
DTYPES = tuple(
    np.dtype(name)
    for name in (
        "float64",
        "float32",
        "float64",
        "float32",
        "float16",
        "int64",
        "int32",
        "uint8",
        "bool",
    )
)

# Largest size of one dimension, and of the product of a call's named
# dimensions (which bounds the reference's matrix products).
MAX_SIZE = 300
MAX_PRODUCT = 30_000

SPECIAL_VALUES = (np.nan, np.inf, -np.inf)


@functools.lru_cache(maxsize=4096)
def integers_between(lo, hi):
    """Return the integers in [lo, hi], mixed with the notable sizes there.

    Strategies are cached because building one per draw would take most of
    the fuzz target's time.
    """
    notable = [size for size in NOTABLE_SIZES if lo <= size <= hi]
    strategy = st.integers(lo, hi)
    if notable:
        strategy = st.one_of(strategy, st.sampled_from(notable))
    return strategy


@functools.lru_cache(maxsize=4096)
def one_of_options(options, types):
    """Return sampled_from(options); ``types`` keeps (0, 1) and (False, True) apart."""
    return st.sampled_from(options)


class HypothesisDraw:
    """The ``draw`` interface of ``cases.py``, backed by hypothesis data.

    Integers come from the whole range or, half of the time, from the sizes
    around SIMD widths and cache blocks that fall in it.
    """

    def __init__(self, data):
        self.data = data

    def integer(self, lo, hi):
        return self.data.draw(integers_between(lo, hi))

    def choice(self, options):
        options = tuple(options)
        return self.data.draw(one_of_options(options, tuple(map(type, options))))


def elements(dtype, domain):
    """Return the element strategy of a dtype within a value domain."""
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        bound = int(domain.bound) if domain.bound is not None else info.max
        return st.integers(max(int(info.min), -bound), min(int(info.max), bound))
    width = 8 * dtype.itemsize
    if domain.integers:
        return st.integers(-int(domain.bound), int(domain.bound)).map(float)
    if domain.bound is None:
        return st.floats(width=width)
    return st.floats(-domain.bound, domain.bound, width=width)


def draw_labels(data, classes, shape):
    """Draw integer class labels in [0, classes) in any memory layout."""
    dtype = data.draw(st.sampled_from((np.dtype("int64"), np.dtype("int32"))))
    labels = hnp.arrays(dtype, shape, elements=st.integers(0, max(classes - 1, 0)))
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    return to_layout(data.draw(labels), layout)


def draw_array(data, domain_name, shape):
    """Draw an array of any supported dtype, layout and domain value."""
    domain = DOMAINS[domain_name]
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    array = data.draw(hnp.arrays(dtype, shape, elements=elements(dtype, domain)))

    # A few NaN and infinities at drawn positions, where the domain has them.
    if domain.specials and dtype.kind == "f" and array.size:
        positions = data.draw(
            st.lists(st.integers(0, array.size - 1), max_size=2), label="specials"
        )
        for position in positions:
            array.flat[position] = data.draw(st.sampled_from(SPECIAL_VALUES))

    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    return to_layout(array, layout)


def draw_call(data, case, max_size=MAX_SIZE, budget=MAX_PRODUCT):
    """Draw a valid call of ``case``: ``(signature, dims, arrays, options)``."""
    draw = HypothesisDraw(data)
    signature = draw.choice(case.signatures)
    dims = draw_dims(case, signature, draw, max_size, budget=budget)
    shapes = draw_shapes(signature, dims, draw)
    arrays = [
        draw_labels(data, dims[array.classes], shape)
        if array.classes is not None
        else draw_array(data, array.values or case.values, shape)
        for array, shape in zip(signature, shapes)
    ]
    options = case.options(draw, dims, arrays) if case.options else {}
    return signature, dims, arrays, options


def random_call(case, rng, max_size, budget):
    """Return a valid call ``(args, kwargs)`` drawn with a NumPy generator.

    The fuzz target builds its starting calls this way: far faster than
    drawing every size and value through hypothesis, which then only draws
    the seed and the changes.
    """
    draw = RandomDraw(rng)
    signature = draw.choice(case.signatures)
    dims = draw_dims(case, signature, draw, max_size, budget=budget)
    shapes = draw_shapes(signature, dims, draw)
    args = []
    for array, shape in zip(signature, shapes):
        if array.classes is not None:
            args.append(class_labels(array, shape, dims, rng))
            continue
        dtype = draw.choice(DTYPES)
        values = rng.standard_normal(shape) * 4
        if dtype.kind in "iub":
            values = np.round(values)
            if dtype.kind != "i":
                values = np.abs(values)
        array = values.astype(dtype)
        args.append(to_layout(array, draw.choice(LAYOUTS)))
    kwargs = case.options(draw, dims, args) if case.options else {}
    return args, kwargs
