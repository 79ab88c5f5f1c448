"""The attention suite of the benchmark: ``python -m mla.bench attention``.

It times ``mla.scaled_dot_product_attention(Q, K, V, causal=...,
return_weights=False)`` on 8 heads of float32 ``Q``, ``K`` and ``V`` of
shape ``(8, L, d)``, for ``(L, d)`` in ``ATTENTION_SHAPES``, without and with
the causal mask, against

- the NumPy composite, ``mla.reference.scaled_dot_product_attention``,
  which stores the ``(8, L, L)`` scores and their exponentials;
- ``torch.nn.functional.scaled_dot_product_attention`` with ``is_causal``,
  when PyTorch can be imported, on the same data viewed as
  ``(1, 8, L, d)``: PyTorch's fused CPU kernel takes 4-D input only, and
  3-D input falls back to a composite that stores the scores.

A backward row follows each forward row. It times
``mla.scaled_dot_product_attention_backward`` against the NumPy
composite ``mla.reference.scaled_dot_product_attention_backward``, which
stores several ``(8, L, L)`` arrays, and PyTorch autograd through
``scaled_dot_product_attention``. PyTorch's time includes the forward pass
that autograd needs. mla's backward runs a streaming forward pass of its
own, so both times include one.

It prints the median time of each, the ratios NumPy / mla and torch / mla
(above 1: mla is faster) and the peak memory of one call of each.

Peak memory is the growth of the process's peak resident set size (VmHWM
in /proc/self/status) during one call, after the peak is reset through
/proc/self/clear_refs (Linux 4.0 and later). It counts every page that the
call touched while not resident: NumPy's temporaries, mla's C scratch,
PyTorch's buffers and the returned output, but not the inputs, which are
resident before the call. Before each call glibc's malloc_trim returns
freed heap pages to the system, so that reused memory counts too. Without
glibc, memory that the allocator kept from earlier calls is not counted,
so small peaks are lower bounds. Where clear_refs is not writable, the
memory columns show "-".
"""

import ctypes
import ctypes.util
import functools
import gc
import os
import statistics
import time

import numpy as np

import mla
from mla import reference
from mla.bench import _results_agree, format_seconds, median_time

__all__ = ["ATTENTION_HEADS", "ATTENTION_SHAPES", "peak_memory", "run_suite"]

ATTENTION_HEADS = 8

# (L, d): sequence length of queries and keys, and head dimension.
ATTENTION_SHAPES = ((4, 8), (512, 64), (2048, 64), (8192, 64))

_CLEAR_REFS = "/proc/self/clear_refs"


def _memory_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def _release_free_memory():
    """Return the C heap's free pages to the system, where glibc can."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    malloc_trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if malloc_trim is not None:
        malloc_trim(ctypes.c_size_t(0))


def peak_memory(func):
    """Call ``func`` once and return its result and peak memory growth.

    Returns
    -------
    result : object
        What ``func`` returned.
    peak_bytes : int or None
        Growth of the peak resident set size during the call, or None where
        /proc/self/clear_refs cannot reset the peak.
    """
    gc.collect()
    if not os.access(_CLEAR_REFS, os.W_OK):
        return func(), None
    _release_free_memory()
    with open(_CLEAR_REFS, "w") as clear_refs:
        clear_refs.write("5")
    before = _memory_kib("VmRSS")
    result = func()
    peak = _memory_kib("VmHWM") - before
    return result, max(peak, 0) * 1024


def suite_median_time(func, repeat, settle_seconds=0.0):
    """Return the median seconds of ``func``, with fewer samples for slow calls.

    A first call is timed. If it took half a second or more, the median of
    ``min(repeat, 3)`` further single calls is returned; otherwise
    ``median_time(func, repeat, settle_seconds=settle_seconds)`` decides.
    """
    start = time.perf_counter()
    func()
    first = time.perf_counter() - start
    if first < 0.5:
        return median_time(func, repeat=repeat, settle_seconds=settle_seconds)
    samples = []
    for _ in range(min(repeat, 3)):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _format_mib(size):
    if size is None:
        return "-"
    return f"{size / 2**20:.1f}"


def _format_time(seconds):
    return "failed" if seconds is None else format_seconds(seconds)


def _format_ratio(numerator, denominator):
    if numerator is None or denominator is None:
        return "-"
    return f"{numerator / denominator:.2f}x"


def _implementations(torch, with_reference):
    """Return ``{name: call(Q, K, V, causal)}`` of each timed forward."""

    def mla_call(Q, K, V, causal):
        return mla.scaled_dot_product_attention(
            Q, K, V, causal=causal, return_weights=False
        )

    calls = {"mla": mla_call}
    if with_reference:

        def numpy_call(Q, K, V, causal):
            return reference.scaled_dot_product_attention(
                Q, K, V, causal=causal, return_weights=False
            )

        calls["numpy"] = numpy_call
    if torch is not None:

        def torch_call(Q, K, V, causal):
            return torch.nn.functional.scaled_dot_product_attention(
                Q, K, V, is_causal=causal
            )

        calls["torch"] = torch_call
    return calls


def _backward_implementations(torch, with_reference):
    """Return ``{name: call(Q, K, V, d_output, causal)}`` of each timed backward."""

    def mla_call(Q, K, V, d_output, causal):
        return mla.scaled_dot_product_attention_backward(
            Q, K, V, d_output, causal=causal
        )

    calls = {"mla": mla_call}
    if with_reference:

        def numpy_call(Q, K, V, d_output, causal):
            return reference.scaled_dot_product_attention_backward(
                Q, K, V, d_output, causal=causal
            )

        calls["numpy"] = numpy_call
    if torch is not None:

        def torch_call(Q, K, V, d_output, causal):
            inputs = [x.detach().requires_grad_() for x in (Q, K, V)]
            output = torch.nn.functional.scaled_dot_product_attention(
                *inputs, is_causal=causal
            )
            return torch.autograd.grad(output, inputs, d_output)

        calls["torch"] = torch_call
    return calls


def _as_arrays(result, shape):
    """Return a result (an array or a tuple of them) as NumPy arrays of ``shape``."""
    if isinstance(result, (tuple, list)):
        return tuple(np.asarray(part).reshape(shape) for part in result)
    return np.asarray(result).reshape(shape)


def _measure_row(calls, arguments, shape, repeat, failures, case, settle_seconds):
    """Run each call once for its result and peak memory, then time it.

    Returns ``(seconds, peaks, outputs)``, dictionaries keyed by name. A call
    of another implementation than mla that runs out of memory gets None
    and a line in ``failures``.
    """
    seconds, peaks, outputs = {}, {}, {}
    for name, call in calls.items():
        run = functools.partial(call, *arguments[name])
        try:
            output, peaks[name] = peak_memory(run)
        except (MemoryError, RuntimeError) as error:
            # PyTorch raises RuntimeError when an allocation fails.
            if name == "mla":
                raise
            failures.append(f"{name}, {case}: {error}")
            seconds[name] = peaks[name] = None
            continue
        outputs[name] = _as_arrays(output, shape)
        del output
        seconds[name] = suite_median_time(run, repeat, settle_seconds)
    return seconds, peaks, outputs


def run_suite(shapes, dtype, repeat, torch, with_reference=True, settle_seconds=0.0):
    """Time and measure each attention case, print the table, return agreement.

    Parameters
    ----------
    shapes : sequence of (int, int)
        ``(L, d)`` pairs; each runs on ``ATTENTION_HEADS`` heads.
    dtype : numpy.dtype
        Element type of the inputs.
    repeat : int
        Number of timing samples (at most 3 for calls of half a second or
        more).
    torch : module or None
        The torch module, or None to skip PyTorch.
    with_reference : bool
        Whether to run the NumPy composite, which needs memory for
        ``3 * heads * L * L`` elements or more.
    settle_seconds : float
        Untimed calls before the samples of each implementation (see
        :func:`mla.bench.median_time`).

    Returns
    -------
    bool
        True when mla's output agreed with every other implementation.
    """
    calls = _implementations(torch, with_reference)
    backward_calls = _backward_implementations(torch, with_reference)
    others = [name for name in calls if name != "mla"]
    memory_known = os.access(_CLEAR_REFS, os.W_OK)

    print(
        f"attention: {ATTENTION_HEADS} heads, {dtype}, Q, K, V of shape "
        f"({ATTENTION_HEADS}, L, d); mla with return_weights=False"
    )
    if memory_known:
        print("peak MiB: growth of the peak resident memory during one call")
    else:
        print("peak MiB: unknown, /proc/self/clear_refs is not writable")
    header = f"{'(L, d)':<12}{'causal':<8}{'pass':<10}"
    header += "".join(f"{name:>10}" for name in calls)
    header += "".join(f"{name + '/mla':>11}" for name in others)
    header += "".join(f"{'MiB ' + name:>11}" for name in calls)
    print(header)

    all_agree = True
    failures = []
    for length, depth in shapes:
        rng = np.random.default_rng(0)
        shape = (ATTENTION_HEADS, length, depth)
        Q, K, V, d_output = (
            rng.standard_normal(shape).astype(dtype) for _ in range(4)
        )
        inputs = {"mla": (Q, K, V), "numpy": (Q, K, V)}
        if torch is not None:
            inputs["torch"] = tuple(torch.from_numpy(a[None]) for a in (Q, K, V))
        d_outputs = {"mla": d_output, "numpy": d_output}
        if torch is not None:
            d_outputs["torch"] = torch.from_numpy(d_output[None])

        for causal in (False, True):
            case = f"({length}, {depth}), {causal=}"
            rows = (
                ("forward", calls, {n: (*inputs[n], causal) for n in calls}),
                (
                    "backward",
                    backward_calls,
                    {n: (*inputs[n], d_outputs[n], causal) for n in backward_calls},
                ),
            )
            for kind, row_calls, arguments in rows:
                seconds, peaks, outputs = _measure_row(
                    row_calls,
                    arguments,
                    shape,
                    repeat,
                    failures,
                    f"{kind} {case}",
                    settle_seconds,
                )
                agree = all(
                    _results_agree(outputs["mla"], outputs[name], dtype)
                    for name in others
                    if name in outputs
                )
                all_agree = all_agree and agree
                label = f"({length}, {depth})" + ("" if agree else " DIFFERS")
                row = f"{label:<12}{'yes' if causal else 'no':<8}{kind:<10}"
                row += "".join(f"{_format_time(seconds[n]):>10}" for n in row_calls)
                row += "".join(
                    f"{_format_ratio(seconds[n], seconds['mla']):>11}"
                    for n in others
                )
                row += "".join(f"{_format_mib(peaks[n]):>11}" for n in row_calls)
                print(row, flush=True)
                del outputs
    for failure in failures:
        print(f"failed: {failure}")
    return all_agree
