"""Time mla against its NumPy reference and PyTorch: ``python -m mla.bench``.

Each case runs one mla function on one input shape, and the same computation
with :mod:`mla.reference` (plain NumPy) and, when PyTorch can be imported,
with the matching PyTorch call on CPU tensors that share the NumPy buffers.
The table lists the median time of each and the ratios reference / mla and
torch / mla, so a ratio above 1 means that mla is faster.

The shapes come in two kinds. The article's own shapes (a 4 -> 8 layer, three
logits, a 4 x 8 attention) take microseconds, so their times are mostly the
cost of calling into each library. The larger shapes (a 512 x 512 product, a
(1000, 1000) softmax, a least squares fit on 100000 samples, and so on) show
the speed of the kernels themselves.

Before timing, each case checks that mla and the reference agree within a
loose tolerance (``rtol`` 1e-8 in float64, 1e-3 in float32, relative to the
largest reference value). That catches a fast but wrong kernel. It is not the
parity contract, which the test suite checks.

``python -m mla.bench matmul`` runs a separate sweep of matrix products
against ``np.matmul`` instead, with GFLOP/s and the fraction of the CPU's
peak (see :mod:`mla.bench_matmul`).

``python -m mla.bench attention`` runs the attention suite instead
(:mod:`mla.bench_attention`): 8 heads of float32 sequences of length 4 to
8192, causal and not, with the median time and the peak memory of mla's
streaming kernel, the NumPy composite and PyTorch.

When threadpoolctl is installed, the header names the BLAS library that NumPy
uses, its CPU kernel and its thread count, and ``--threads N`` limits BLAS and
OpenMP thread pools to N for the whole run. ``--threads`` also sets mla's and
PyTorch's own thread counts.

``python -m mla.bench MLP`` times training instead of one function: a
training step of ``mla.MLP`` on a (256, 784) batch through 784-256-128-10,
and one epoch over scikit-learn's digits, against the same network written
with NumPy operators and in PyTorch (see :mod:`mla.bench_training`).

All times are wall-clock medians. While other processes keep the cores busy, a
multithreaded kernel waits for its descheduled threads, and its times jump by
whole scheduler time slices. On such a machine, compare runs with
``--threads 1``.
"""

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import mla
from mla._cli import check_plot_option
from mla import reference
from mla.bench_training import TRAINING_CASES

__all__ = ["CASES", "Case", "format_seconds", "main", "median_time"]


# Default seconds of untimed calls before the samples of each implementation
# on several threads: see median_time.
SETTLE_SECONDS = 0.2

# Longest --settle accepted, so that a mistyped value cannot stall a run.
MAX_SETTLE_SECONDS = 60.0


def add_settle_option(parser, where):
    """Add ``--settle`` to ``parser``; ``where`` names when its calls run."""
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE_SECONDS,
        metavar="SECONDS",
        help=(
            f"seconds of untimed calls {where} on more than one thread, so "
            "that the idle threads of the library timed before stop "
            "spinning (default: %(default)s)"
        ),
    )


def check_settle_option(parser, seconds):
    """Exit through ``parser.error`` unless ``seconds`` is a valid ``--settle``."""
    if not 0 <= seconds <= MAX_SETTLE_SECONDS:
        parser.error(
            f"--settle must be from 0 to {MAX_SETTLE_SECONDS:g} seconds, got {seconds}"
        )


def _run_for(func, seconds):
    """Call ``func`` back to back, untimed, at least once and for about ``seconds``."""
    end = time.perf_counter() + seconds
    func()
    while time.perf_counter() < end:
        func()


def median_time(func, repeat=7, min_seconds=2e-3, settle_seconds=0.0):
    """Return the median wall-clock time of one call of ``func``, in seconds.

    Untimed calls run first, one or ``settle_seconds`` of them. Each sample
    then times enough
    back-to-back calls to last at least
    ``min_seconds``, so that the resolution of :func:`time.perf_counter`
    does not distort calls of a microsecond. The number of calls per sample
    grows 1, 2, 5, 10, 20, ... until a sample is long enough, and that first
    long enough sample is one of the ``repeat`` samples.

    Parameters
    ----------
    func : callable
        Called with no arguments. Its result is discarded.
    repeat : int, optional
        Number of samples whose median is returned.
    min_seconds : float, optional
        Minimum duration of one sample.
    settle_seconds : float, optional
        Seconds of untimed calls before the first sample. On several
        threads they let the worker threads of the library timed before go
        idle: OpenBLAS's idle workers keep a core busy for about 2^28 clock
        cycles (0.1 s at 2.5 GHz) after each call, and a sample taken
        meanwhile shares its cores with them.

    Returns
    -------
    float
        Median seconds per call.

    Examples
    --------
    >>> seconds = median_time(lambda: sum(range(100)), repeat=3)
    >>> 0 < seconds < 1
    True
    """
    # The first call pays for cold caches and page faults that later calls
    # do not.
    _run_for(func, settle_seconds)
    number = 1
    steps = (2, 2.5, 2)
    step = 0
    while True:
        elapsed = _time_calls(func, number)
        if elapsed >= min_seconds:
            break
        number = int(number * steps[step % 3])
        step += 1

    samples = [elapsed / number]
    for _ in range(repeat - 1):
        samples.append(_time_calls(func, number) / number)
    return statistics.median(samples)


def _time_calls(func, number):
    """Return the seconds taken by ``number`` back-to-back calls of ``func``."""
    start = time.perf_counter()
    for _ in range(number):
        func()
    return time.perf_counter() - start


def format_seconds(seconds):
    """Format a duration with three significant digits and a unit.

    Examples
    --------
    >>> format_seconds(0.0123)
    '12.3 ms'
    >>> format_seconds(4.5e-7)
    '450 ns'
    """
    unit, scale = "ns", 1e-9
    for candidate, candidate_scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= candidate_scale:
            unit, scale = candidate, candidate_scale
            break
    value = seconds / scale
    if value >= 100:
        return f"{value:.0f} {unit}"
    if value >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


@dataclass
class Case:
    """One benchmark: an mla function on one input shape.

    ``make_args(rng, dtype)`` returns the positional arguments, shared by mla,
    the reference and PyTorch (arrays become tensors for PyTorch).
    ``options`` are keyword arguments for mla and the reference only.
    ``torch_call`` takes the converted arguments, or is None where PyTorch
    has no matching operation.
    """

    function: str
    shape: str
    make_args: object
    torch_call: object = None
    options: dict = field(default_factory=dict)


def _normal(rng, dtype, *shape):
    return rng.standard_normal(shape).astype(dtype)


def _elementwise_args(rng, dtype):
    return (_normal(rng, dtype, 1000, 1000),)


def _layer_args(n_in, n_out):
    def make_args(rng, dtype):
        return (
            _normal(rng, dtype, n_in),
            _normal(rng, dtype, n_out, n_in) / math.sqrt(n_in),
            _normal(rng, dtype, n_out),
        )

    return make_args


def _batch_layer_args(batch, n_in, n_out):
    def make_args(rng, dtype):
        return (
            _normal(rng, dtype, batch, n_in),
            _normal(rng, dtype, n_out, n_in) / math.sqrt(n_in),
            _normal(rng, dtype, n_out),
        )

    return make_args


def _backprop_args(n_in, n_hidden, n_out):
    def make_args(rng, dtype):
        return (
            _normal(rng, dtype, n_in),
            rng.uniform(size=n_out).astype(dtype),
            _normal(rng, dtype, n_hidden, n_in) / math.sqrt(n_in),
            _normal(rng, dtype, n_out, n_hidden) / math.sqrt(n_hidden),
            np.zeros(n_hidden, dtype=dtype),
            np.zeros(n_out, dtype=dtype),
        )

    return make_args


def _dense_backward_args(batch, n_in, n_out):
    def make_args(rng, dtype):
        X = _normal(rng, dtype, batch, n_in)
        W = _normal(rng, dtype, n_out, n_in) / math.sqrt(n_in)
        return (_normal(rng, dtype, batch, n_out), X, W, X @ W.T)

    return make_args


def _pair_args(*shapes):
    def make_args(rng, dtype):
        return tuple(_normal(rng, dtype, *shape) for shape in shapes)

    return make_args


def _regression_args(n_samples, n_features):
    def make_args(rng, dtype):
        X = _normal(rng, dtype, n_samples, n_features)
        weights = _normal(rng, dtype, n_features)
        noise = 0.5 * _normal(rng, dtype, n_samples)
        return X, (X @ weights + 2.0 + noise).astype(dtype)

    return make_args


def _cross_entropy_args(*shape):
    def make_args(rng, dtype):
        y_pred = reference.softmax(_normal(rng, dtype, *shape))
        labels = rng.integers(0, shape[-1], size=shape[:-1])
        y_true = np.zeros(shape, dtype=dtype)
        np.put_along_axis(y_true, labels[..., None], 1.0, axis=-1)
        return y_pred, y_true

    return make_args


def _class_index_args(batch, classes):
    def make_args(rng, dtype):
        logits = 3 * _normal(rng, dtype, batch, classes)
        return logits, rng.integers(0, classes, size=batch)

    return make_args


def _class_probability_args(batch, classes):
    def make_args(rng, dtype):
        logits = 3 * _normal(rng, dtype, batch, classes)
        return logits, reference.softmax(_normal(rng, dtype, batch, classes))

    return make_args


def _torch():
    """Return the torch module, or None when it cannot be imported."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _torch_layer(activation):
    """Return a PyTorch dense layer with ``activation``, as the mla signature."""

    def call(x, W, b):
        torch = _torch()
        z = torch.nn.functional.linear(x, W, b)
        if activation == "relu":
            return torch.relu(z)
        return torch.sigmoid(z)

    return call


def _torch_sigmoid_derivative(x):
    torch = _torch()
    s = torch.sigmoid(x)
    return s * (1 - s)


def _torch_relu_derivative(x):
    return (x > 0).to(x.dtype)


def _torch_cosine_similarity(u, v):
    torch = _torch()
    return torch.nn.functional.cosine_similarity(u, v, dim=0).item()


def _torch_cosine_similarity_matrix(X):
    torch = _torch()
    X_normalized = torch.nn.functional.normalize(X, dim=1)
    return X_normalized @ X_normalized.T


def _torch_linear_regression(X, y):
    torch = _torch()
    ones = torch.ones((X.shape[0], 1), dtype=X.dtype)
    X_bias = torch.cat([ones, X], dim=1)
    return torch.linalg.solve(X_bias.T @ X_bias, X_bias.T @ y)


def _torch_softmax(z):
    return _torch().softmax(z, dim=-1)


def _torch_log_softmax(z):
    return _torch().log_softmax(z, dim=-1)


def _torch_softmax_cross_entropy(logits, labels):
    torch = _torch()
    return torch.nn.functional.cross_entropy(logits, labels).item()


def _torch_softmax_cross_entropy_grad(logits, labels):
    # PyTorch computes the gradient by autograd, through a backward pass.
    torch = _torch()
    leaf = logits.detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(leaf, labels)
    loss.backward()
    return loss.item(), leaf.grad


def _torch_cosine_similarity_pairs(X, Y):
    torch = _torch()
    X_normalized = torch.nn.functional.normalize(X, dim=1)
    Y_normalized = torch.nn.functional.normalize(Y, dim=1)
    return X_normalized @ Y_normalized.T


def _torch_linear_regression_qr(X, y):
    torch = _torch()
    ones = torch.ones((X.shape[0], 1), dtype=X.dtype)
    q, r = torch.linalg.qr(torch.cat([ones, X], dim=1))
    return torch.linalg.solve_triangular(r, (q.T @ y)[:, None], upper=True)[:, 0]


def _torch_cross_entropy_loss(y_pred, y_true):
    torch = _torch()
    clipped = torch.clamp(y_pred, 1e-15, 1 - 1e-15)
    return -(y_true * torch.log(clipped)).sum().item()


def _torch_attention(Q, K, V):
    # NOTE: PyTorch returns only the output, while mla and the reference also
    # return the attention weights.
    torch = _torch()
    return torch.nn.functional.scaled_dot_product_attention(Q, K, V)


def _torch_attention_backward(Q, K, V, d_output):
    # NOTE: PyTorch's time includes the forward pass that autograd needs.
    # mla's backward kernel runs a forward pass of its own too.
    torch = _torch()
    tensors = [x.detach().requires_grad_() for x in (Q, K, V)]
    output = torch.nn.functional.scaled_dot_product_attention(*tensors)
    return torch.autograd.grad(output, tensors, d_output)


def _torch_function(name):
    """Return a caller of ``torch.<name>`` resolved at call time."""

    def call(*args):
        return getattr(_torch(), name)(*args)

    return call


# Each function on the article's shape first (where the article has one),
# then on shapes large enough to time the kernels rather than the call.
CASES = (
    Case("sigmoid", "(1000, 1000)", _elementwise_args, _torch_function("sigmoid")),
    Case("relu", "(1000, 1000)", _elementwise_args, _torch_function("relu")),
    Case(
        "sigmoid_derivative",
        "(1000, 1000)",
        _elementwise_args,
        _torch_sigmoid_derivative,
    ),
    Case("relu_derivative", "(1000, 1000)", _elementwise_args, _torch_relu_derivative),
    Case("forward_layer", "4 -> 8", _layer_args(4, 8), _torch_layer("relu")),
    Case(
        "forward_layer", "1024 -> 1024", _layer_args(1024, 1024), _torch_layer("relu")
    ),
    Case(
        "forward_layer_batch",
        "(100, 4) -> 8",
        _batch_layer_args(100, 4, 8),
        _torch_layer("relu"),
    ),
    Case(
        "forward_layer_batch",
        "(256, 784) -> 128",
        _batch_layer_args(256, 784, 128),
        _torch_layer("relu"),
    ),
    Case("simple_backprop", "2 -> 3 -> 1", _backprop_args(2, 3, 1)),
    Case("simple_backprop", "784 -> 128 -> 10", _backprop_args(784, 128, 10)),
    Case(
        "dense_backward",
        "(256, 784) -> 256",
        _dense_backward_args(256, 784, 256),
    ),
    Case(
        "matmul",
        "(100, 100) @ (100, 100)",
        _pair_args((100, 100), (100, 100)),
        _torch_function("matmul"),
    ),
    Case(
        "matmul",
        "(512, 512) @ (512, 512)",
        _pair_args((512, 512), (512, 512)),
        _torch_function("matmul"),
    ),
    Case(
        "matmul",
        "(64, 64, 64) @ (64, 64, 64)",
        _pair_args((64, 64, 64), (64, 64, 64)),
        _torch_function("matmul"),
    ),
    # The reference of matmul_loop is the Python triple loop.
    Case("matmul_loop", "(64, 64) @ (64, 64)", _pair_args((64, 64), (64, 64))),
    Case(
        "cosine_similarity", "4 and 4", _pair_args((4,), (4,)), _torch_cosine_similarity
    ),
    Case(
        "cosine_similarity",
        "1000000 and 1000000",
        _pair_args((1_000_000,), (1_000_000,)),
        _torch_cosine_similarity,
    ),
    Case(
        "cosine_similarity_matrix",
        "(5, 4)",
        _pair_args((5, 4)),
        _torch_cosine_similarity_matrix,
    ),
    Case(
        "cosine_similarity_matrix",
        "(2000, 300)",
        _pair_args((2000, 300)),
        _torch_cosine_similarity_matrix,
    ),
    Case(
        "cosine_similarity_matrix",
        "(2000, 300) and (500, 300)",
        _pair_args((2000, 300), (500, 300)),
        _torch_cosine_similarity_pairs,
    ),
    Case(
        "linear_regression",
        "(100, 3)",
        _regression_args(100, 3),
        _torch_linear_regression,
    ),
    Case(
        "linear_regression",
        "(100000, 50)",
        _regression_args(100_000, 50),
        _torch_linear_regression,
    ),
    Case(
        "linear_regression",
        "(100000, 50), method='qr'",
        _regression_args(100_000, 50),
        _torch_linear_regression_qr,
        options={"method": "qr"},
    ),
    Case("softmax", "(3,)", _pair_args((3,)), _torch_softmax),
    Case("softmax", "(1000, 1000)", _pair_args((1000, 1000)), _torch_softmax),
    Case("softmax", "(64, 32768)", _pair_args((64, 32768)), _torch_softmax),
    Case("log_softmax", "(1000, 1000)", _pair_args((1000, 1000)), _torch_log_softmax),
    Case("log_softmax", "(64, 32768)", _pair_args((64, 32768)), _torch_log_softmax),
    Case(
        "softmax_cross_entropy",
        "(4096, 1000) indices",
        _class_index_args(4096, 1000),
        _torch_softmax_cross_entropy,
    ),
    Case(
        "softmax_cross_entropy",
        "(4096, 1000) indices, grad",
        _class_index_args(4096, 1000),
        _torch_softmax_cross_entropy_grad,
        options={"return_grad": True},
    ),
    Case(
        "softmax_cross_entropy",
        "(4096, 1000) probabilities",
        _class_probability_args(4096, 1000),
        _torch_softmax_cross_entropy,
    ),
    Case(
        "cross_entropy_loss", "(3,)", _cross_entropy_args(3), _torch_cross_entropy_loss
    ),
    Case(
        "cross_entropy_loss",
        "(1000, 1000)",
        _cross_entropy_args(1000, 1000),
        _torch_cross_entropy_loss,
    ),
    Case(
        "scaled_dot_product_attention",
        "(4, 8)",
        _pair_args((4, 8), (4, 8), (4, 8)),
        _torch_attention,
    ),
    Case(
        "scaled_dot_product_attention",
        "(512, 64)",
        _pair_args((512, 64), (512, 64), (512, 64)),
        _torch_attention,
    ),
    Case(
        "scaled_dot_product_attention",
        "(16, 256, 64)",
        _pair_args((16, 256, 64), (16, 256, 64), (16, 256, 64)),
        _torch_attention,
    ),
    Case(
        "scaled_dot_product_attention_backward",
        "(8, 512, 64)",
        _pair_args((8, 512, 64), (8, 512, 64), (8, 512, 64), (8, 512, 64)),
        _torch_attention_backward,
    ),
)

FUNCTION_NAMES = tuple(
    dict.fromkeys(case.function for case in (*CASES, *TRAINING_CASES))
)

# Suites with their own table, run only when named (mla/bench_attention.py).
SUITES = ("attention",)


@dataclass
class Timing:
    """Median times of one case. ``torch`` is None where PyTorch was not timed."""

    case: Case
    mla: float
    reference: float
    torch: object
    agree: bool


def _results_agree(got, expected, dtype):
    """Return whether two results agree within the loose sanity tolerance."""
    if isinstance(expected, dict):
        return all(_results_agree(got[key], expected[key], dtype) for key in expected)
    if isinstance(expected, tuple):
        return all(
            _results_agree(part, expected_part, dtype)
            for part, expected_part in zip(got, expected, strict=True)
        )
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        return False
    rtol = 1e-8 if dtype == np.float64 else 1e-3
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    return bool(np.allclose(got, expected, rtol=rtol, atol=rtol * scale))


def run_case(case, dtype, repeat, torch, settle_seconds=0.0):
    """Check and time one case with mla, the reference and PyTorch.

    Parameters
    ----------
    case : Case
        The function and shape to time.
    dtype : numpy.dtype
        Element type of the inputs.
    repeat : int
        Number of timing samples whose median is reported.
    torch : module or None
        The torch module, or None to skip PyTorch.
    settle_seconds : float, optional
        Untimed calls before the samples of each implementation (see
        :func:`median_time`).

    Returns
    -------
    Timing
        The median seconds per call of each implementation.
    """
    rng = np.random.default_rng(0)
    args = case.make_args(rng, dtype)
    mla_function = getattr(mla, case.function)
    reference_function = getattr(reference, case.function)

    options = case.options
    agree = _results_agree(
        mla_function(*args, **options), reference_function(*args, **options), dtype
    )
    mla_seconds = median_time(
        lambda: mla_function(*args, **options),
        repeat=repeat,
        settle_seconds=settle_seconds,
    )
    reference_seconds = median_time(
        lambda: reference_function(*args, **options),
        repeat=repeat,
        settle_seconds=settle_seconds,
    )

    torch_seconds = None
    if torch is not None and case.torch_call is not None:
        torch_args = [
            torch.from_numpy(arg) if isinstance(arg, np.ndarray) else arg
            for arg in args
        ]
        torch_seconds = median_time(
            lambda: case.torch_call(*torch_args),
            repeat=repeat,
            settle_seconds=settle_seconds,
        )
    return Timing(case, mla_seconds, reference_seconds, torch_seconds, agree)


def run_training_case(case, dtype, repeat, torch, settle_seconds=0.0):
    """Check and time one training case, or return None where it cannot run.

    The check compares mla's loss and gradients with the NumPy network's on
    the same weights and batch, before the timed steps change the weights.
    ``settle_seconds`` is as in :func:`run_case`.
    """
    runners = case.make_runners(dtype, torch)
    if runners is None:
        return None
    agree = _results_agree(runners.result, runners.expected, dtype)
    mla_seconds = median_time(runners.mla, repeat, settle_seconds=settle_seconds)
    reference_seconds = median_time(
        runners.reference, repeat, settle_seconds=settle_seconds
    )
    torch_seconds = None
    if runners.torch is not None:
        torch_seconds = median_time(
            runners.torch, repeat, settle_seconds=settle_seconds
        )
    return Timing(case, mla_seconds, reference_seconds, torch_seconds, agree)


def _describe_threads(threads):
    """Print the thread pools of this process, as threadpoolctl reports them."""
    print(f"numpy {np.__version__}, mla threads {mla.get_num_threads()}")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        print("threadpoolctl is not installed: BLAS library and threads unknown")
        if threads is not None:
            print("--threads sets mla's and PyTorch's threads, but not BLAS threads")
        return
    for pool in threadpool_info():
        text = f"{pool['user_api']}: {pool['internal_api']}"
        if pool.get("version"):
            text += f" {pool['version']}"
        if pool.get("architecture"):
            text += f", kernel {pool['architecture']}"
        text += f", threads {pool['num_threads']}"
        text += f" ({os.path.basename(pool['filepath'])})"
        print(text)


def _thread_limits(threads):
    """Return a context that limits BLAS and OpenMP pools to ``threads``."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def _format_ratio(numerator, denominator):
    if numerator is None:
        return "-"
    return f"{numerator / denominator:.2f}x"


def print_table(timings, show_torch):
    """Print the median times and ratios, grouped by function."""
    header = f"{'function / shape':<34}{'mla':>10}{'reference':>11}"
    if show_torch:
        header += f"{'torch':>10}"
    header += f"{'ref/mla':>9}"
    if show_torch:
        header += f"{'torch/mla':>10}"
    print(header)

    function = None
    for timing in timings:
        if timing.case.function != function:
            function = timing.case.function
            print(function)
        label = "  " + timing.case.shape
        if not timing.agree:
            label += " (DIFFERS)"
        row = (
            f"{label:<34}{format_seconds(timing.mla):>10}"
            f"{format_seconds(timing.reference):>11}"
        )
        if show_torch:
            torch_text = "-" if timing.torch is None else format_seconds(timing.torch)
            row += f"{torch_text:>10}"
        row += f"{_format_ratio(timing.reference, timing.mla):>9}"
        if show_torch:
            row += f"{_format_ratio(timing.torch, timing.mla):>10}"
        print(row)
    legend = "reference: the NumPy version in mla.reference"
    if any(timing.case.function == "matmul_loop" for timing in timings):
        legend += ", except for matmul_loop: a Python triple loop"
    print(legend)


def save_plot(timings, path, show_torch):
    """Save a horizontal bar chart of the speed-ups of mla to ``path``.

    The bars are reference time / mla time (and torch time / mla time) on a
    log axis, so bars right of 1 mean that mla is faster. The figure is drawn
    without pyplot, so it needs no display and leaves pyplot's state alone.
    """
    from matplotlib.figure import Figure

    labels = [f"{t.case.function} {t.case.shape}" for t in timings]
    positions = np.arange(len(timings))
    height = 0.4 if show_torch else 0.8

    figure = Figure(figsize=(9, 0.35 * len(timings) + 1.5), layout="constrained")
    axes = figure.subplots()
    # Bars grow from 1 (equal speed): rightwards where mla is faster.
    reference_ratios = np.array([t.reference / t.mla for t in timings])
    axes.barh(
        positions,
        reference_ratios - 1,
        left=1,
        height=height,
        label="NumPy reference / mla",
    )
    if show_torch:
        torch_ratios = np.array(
            [np.nan if t.torch is None else t.torch / t.mla for t in timings]
        )
        axes.barh(
            positions + height,
            torch_ratios - 1,
            left=1,
            height=height,
            label="PyTorch / mla",
        )
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yticks(positions + (height / 2 if show_torch else 0), labels)
    axes.invert_yaxis()
    axes.set_xlabel("speed-up of mla (median time of the other / median time of mla)")
    axes.set_title("Speed-up of mla per function and shape (right of 1: mla is faster)")
    axes.legend(loc="lower right")
    figure.savefig(path, dpi=120)


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m mla.bench",
        description=(
            "Print the median time of each mla function beside its NumPy "
            "reference and PyTorch (when installed), on the article's shapes "
            "and on larger ones."
        ),
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=(
            f"functions to time (default: all): {', '.join(FUNCTION_NAMES)}; "
            "'attention' runs the attention suite (8 heads, causal and not, "
            "median time and peak memory); a first NAME of matmul runs the "
            "matrix product sweep instead, whose options python -m mla.bench "
            "matmul --help lists"
        ),
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=7,
        metavar="N",
        help="number of timing samples whose median is reported (default: 7)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="limit BLAS, OpenMP, mla and PyTorch to N threads (default: no limit)",
    )
    add_settle_option(parser, "before the samples of each implementation")
    parser.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        help=(
            "element type of the inputs (default: float64, and float32 in "
            "the attention suite)"
        ),
    )
    parser.add_argument(
        "--attention-shape",
        type=int,
        nargs=2,
        action="append",
        metavar=("L", "D"),
        help=(
            "attention suite: sequence length L and head dimension D of one "
            "case; repeat the option for several (default: 4 8, 512 64, "
            "2048 64 and 8192 64)"
        ),
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help=(
            "attention suite: skip the NumPy composite, which stores the "
            "8 x L x L scores"
        ),
    )
    parser.add_argument(
        "--no-torch",
        action="store_true",
        help="skip PyTorch even when it is installed",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="save a bar chart of the speed-ups to FILE (needs matplotlib)",
    )
    args = parser.parse_args(argv)

    unknown = [name for name in args.names if name not in FUNCTION_NAMES + SUITES]
    if unknown:
        parser.error(
            f"unknown function {', '.join(unknown)}; "
            f"expected one of {', '.join(FUNCTION_NAMES + SUITES)}"
        )
    for length, depth in args.attention_shape or []:
        if length < 1 or depth < 1:
            parser.error(
                f"--attention-shape needs L and D of at least 1, got {length} {depth}"
            )
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    check_settle_option(parser, args.settle)
    if args.plot is not None and args.names and set(args.names) <= set(SUITES):
        parser.error("--plot draws the function table, which no named function runs")
    if args.plot is not None:
        check_plot_option(parser, args.plot, "bench")
    return args


def main(argv=None):
    """Run the benchmark and return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name; ``sys.argv[1:]``
        when None.

    Returns
    -------
    int
        0 when every case agrees with the reference, 1 otherwise. With a
        first argument of ``matmul``, the status of the matmul sweep.
    """
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["matmul"]:
        from mla import bench_matmul

        return bench_matmul.main(argv[1:])
    args = _parse_args(argv)
    dtype = np.dtype(args.dtype or "float64")
    functions = [name for name in args.names if name in FUNCTION_NAMES]
    run_table = bool(functions) or not args.names
    cases = [case for case in CASES if not functions or case.function in functions]
    training_cases = [
        case for case in TRAINING_CASES if not functions or case.function in functions
    ]
    torch = None if args.no_torch else _torch()
    timings = []
    suite_agrees = True

    # Thread counts set here are restored on return, so that calling main()
    # from Python leaves mla and PyTorch as they were.
    mla_threads = mla.get_num_threads()
    torch_threads = None if torch is None else torch.get_num_threads()
    if args.threads is not None:
        mla.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)

    try:
        with _thread_limits(args.threads):
            mla.show_config()
            _describe_threads(args.threads)
            if torch is not None:
                print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
            samples = "sample" if args.repeat == 1 else "samples"
            print(f"median of {args.repeat} {samples}")
            settle = args.settle if mla.get_num_threads() > 1 else 0.0
            if settle > 0:
                print(f"each implementation's samples follow {settle} s of untimed calls")
            if run_table:
                print(f"\ndtype {dtype}")
                for case in cases:
                    timings.append(
                        run_case(case, dtype, args.repeat, torch, settle)
                    )
                skipped = []
                for case in training_cases:
                    timing = run_training_case(
                        case, dtype, args.repeat, torch, settle
                    )
                    if timing is None:
                        skipped.append(case)
                    else:
                        timings.append(timing)
                print_table(timings, show_torch=torch is not None)
                for case in skipped:
                    print(f"skipped {case.function} {case.shape}: {case.skip_reason}")
            if "attention" in args.names:
                from mla import bench_attention

                print()
                suite_agrees = bench_attention.run_suite(
                    args.attention_shape or bench_attention.ATTENTION_SHAPES,
                    np.dtype(args.dtype or "float32"),
                    args.repeat,
                    torch,
                    with_reference=not args.no_reference,
                    settle_seconds=settle,
                )
    finally:
        mla.set_num_threads(mla_threads)
        if torch is not None:
            torch.set_num_threads(torch_threads)

    if args.plot:
        save_plot(timings, args.plot, show_torch=torch is not None)
        print(f"\nsaved the speed-up chart to {args.plot}")

    differing = [timing for timing in timings if not timing.agree]
    if differing:
        print(f"\n{len(differing)} cases differ from the reference (marked DIFFERS)")
    if not suite_agrees:
        print("\nattention: mla differs from another implementation (marked DIFFERS)")
    return 1 if differing or not suite_agrees else 0


if __name__ == "__main__":
    sys.exit(main())
