"""Time mla.matmul against np.matmul: ``python -m mla.bench matmul``.

The sweep covers square products of n = 8 to 2048 and the products of a
small multilayer perceptron on MNIST-sized data (784 inputs, 128 hidden
units, 10 outputs, batches of 256), including the transposed operands of
its backward pass, in float32 and float64, on 1 and 2 threads. For each
product it prints the median time of both libraries, their GFLOP/s (2 m n k
floating-point operations per product) and the fraction of the CPU's peak.
The last column is the ratio numpy time / mla time, so a ratio above 1
means that mla is faster.

Both libraries run on the same thread count: mla through
:func:`mla.set_num_threads`, NumPy's BLAS through threadpoolctl. The
samples of mla and NumPy alternate, so that a change in the machine's load
or clock speed affects both alike. On more than one thread, each sample
follows a pause (``--settle``) filled with untimed calls of the same
library, in which the idle worker threads of the library timed before stop
spinning. Without the pause, they take a core from the sample.

The peak is measured, not looked up: the best of many short runs of a loop
of 12 independent fused multiply-add chains on full SIMD vectors of the
selected kernel level, on one thread, right before and right after each
product is timed. That is the most floating-point work one core can issue
at the clock speed it runs at then; on a shared or virtual machine that
speed changes during a run. The peak of t threads is taken as t times that, which assumes that
every core reaches the same rate.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import mla
from mla._cli import check_plot_option
from mla import _core
from mla.bench import (
    _run_for,
    _thread_limits,
    add_settle_option,
    check_settle_option,
    format_seconds,
)

__all__ = ["Product", "main", "measure_peak", "paired_medians", "products"]

SQUARE_SIZES = (8, 32, 64, 128, 256, 512, 1024, 2048)
DTYPES = ("float32", "float64")



@dataclass
class Product:
    """One matrix product to time.

    ``make(rng, dtype)`` returns the operands ``(A, B)``; either may be a
    transposed view. ``n`` is the size of a square product, None otherwise.
    """

    label: str
    m: int
    k: int
    n_cols: int
    make: object
    n: object = None

    @property
    def flops(self):
        """Floating-point operations of one product: 2 m k n."""
        return 2.0 * self.m * self.k * self.n_cols


def _square(n):
    def make(rng, dtype):
        return (
            rng.standard_normal((n, n)).astype(dtype),
            rng.standard_normal((n, n)).astype(dtype),
        )

    return Product(f"({n} x {n}) @ ({n} x {n})", n, n, n, make, n)


def _plain(m, k, n):
    def make(rng, dtype):
        return (
            rng.standard_normal((m, k)).astype(dtype),
            rng.standard_normal((k, n)).astype(dtype),
        )

    return Product(f"({m} x {k}) @ ({k} x {n})", m, k, n, make)


def _transposed_a(m, k, n):
    # A is the transposed view of a C-ordered (k, m) array.
    def make(rng, dtype):
        return (
            rng.standard_normal((k, m)).astype(dtype).T,
            rng.standard_normal((k, n)).astype(dtype),
        )

    return Product(f"({m} x {k}) @ ({k} x {n}), A a .T view", m, k, n, make)


def _transposed_b(m, k, n):
    # B is the transposed view of a C-ordered (n, k) array.
    def make(rng, dtype):
        return (
            rng.standard_normal((m, k)).astype(dtype),
            rng.standard_normal((n, k)).astype(dtype).T,
        )

    return Product(f"({m} x {k}) @ ({k} x {n}), B a .T view", m, k, n, make)


def products(sizes=SQUARE_SIZES, mlp=True):
    """Return the products of the sweep: square ones first, then the MLP's.

    The MLP has layers 784 -> 128 -> 10 and batches of 256 rows: the forward
    products X W1 and H W2, and the backward products X^T dZ1 (the gradient
    of W1) and dZ2 W2^T (the error sent back to the hidden layer), whose
    first or second operand is a transposed view.
    """
    result = [_square(n) for n in sizes]
    if mlp:
        result += [
            _plain(256, 784, 128),
            _plain(256, 128, 10),
            _transposed_a(784, 256, 128),
            _transposed_b(256, 10, 128),
        ]
    return result


def _time_calls(func, number):
    start = time.perf_counter()
    for _ in range(number):
        func()
    return (time.perf_counter() - start) / number


def _calls_per_sample(func, min_seconds):
    """Return how many back-to-back calls of ``func`` last ``min_seconds``."""
    number = 1
    while _time_calls(func, number) * number < min_seconds:
        number *= 2
    return number


def paired_medians(first, second, repeat=7, min_seconds=2e-3, settle_seconds=0.0):
    """Return the median seconds per call of two functions timed in turns.

    Both are called once untimed. Each sample then times enough calls to
    last ``min_seconds``, and the samples of the two functions alternate,
    ``repeat`` of each. With ``settle_seconds``, each sample follows that
    long of untimed calls to the same function. By then the worker threads
    of the function timed before have gone idle: OpenBLAS's idle workers
    keep a core busy for about 2^28 clock cycles (0.1 s at 2.5 GHz) after
    each call, and OpenMP's for a shorter time, and a sample taken meanwhile
    would share its cores with them. Calls, not a sleep, fill the pause,
    because a virtual machine's idle CPU can take milliseconds to wake up.

    Returns
    -------
    tuple of (float, float, list of float, list of float)
        The two medians and the two lists of samples.

    Examples
    --------
    >>> a, b, _, _ = paired_medians(lambda: None, lambda: sum(range(50)), 3)
    >>> 0 < a < b
    True
    """
    functions = (first, second)
    numbers = []
    for func in functions:
        _run_for(func, settle_seconds)
        numbers.append(_calls_per_sample(func, min_seconds))
    samples = ([], [])
    for _ in range(repeat):
        for func, number, timings in zip(functions, numbers, samples):
            _run_for(func, settle_seconds)
            timings.append(_time_calls(func, number))
    return (
        statistics.median(samples[0]),
        statistics.median(samples[1]),
        samples[0],
        samples[1],
    )


def measure_peak(dtype, runs=30, iterations=100_000):
    """Return the peak FLOP/s of one core for ``dtype``, as measured here.

    Runs the loop of 12 independent fused multiply-add chains of the
    selected kernel level ``runs`` times (each about 0.2 ms on a 3 GHz core
    with AVX2) and returns the best rate. The runs that a busy machine did
    not interrupt give the best rate, so the best is the estimate.
    """
    code = "f" if np.dtype(dtype) == np.float32 else "d"
    best = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        flops = _core._gemm_peak_loop(code, iterations)
        elapsed = time.perf_counter() - start
        best = max(best, flops / elapsed)
    return best


def _cpu_model():
    """Return the CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _blas_description():
    """Return NumPy's BLAS library, as threadpoolctl reports it, or None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for pool in threadpool_info():
        if pool["user_api"] == "blas":
            text = pool["internal_api"]
            if pool.get("version"):
                text += f" {pool['version']}"
            if pool.get("architecture"):
                text += f", kernel {pool['architecture']}"
            return text
    return "not found by threadpoolctl"


@dataclass
class Row:
    """Timings of one product, dtype and thread count."""

    product: Product
    dtype: str
    threads: int
    mla: float
    numpy: float
    ratios: list = field(default_factory=list)
    mla_best: float = 0.0
    numpy_best: float = 0.0
    peak: float = 0.0
    agree: bool = True


def _run_product(product, dtype, threads, repeat, settle, rng):
    """Check and time one product with mla and NumPy on ``threads`` threads.

    ``settle`` is the pause before each sample when ``threads`` > 1.
    """
    A, B = product.make(rng, dtype)
    expected = np.matmul(A.astype(np.float64), B.astype(np.float64))
    got = mla.matmul(A, B)
    rtol = 1e-10 if dtype == "float64" else 1e-4
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    agree = bool(np.allclose(got, expected, rtol=rtol, atol=rtol * scale))
    peak_before = measure_peak(dtype)
    # Idle worker threads exist only with more than one thread.
    if threads == 1:
        settle = 0.0
    mla_seconds, numpy_seconds, mla_samples, numpy_samples = paired_medians(
        lambda: mla.matmul(A, B),
        lambda: np.matmul(A, B),
        repeat,
        settle_seconds=settle,
    )
    # Another process can hold the core through one series of runs.
    peak = max(peak_before, measure_peak(dtype)) * threads
    ratios = [n / m for m, n in zip(mla_samples, numpy_samples)]
    return Row(
        product,
        dtype,
        threads,
        mla_seconds,
        numpy_seconds,
        ratios,
        min(mla_samples),
        min(numpy_samples),
        peak,
        agree,
    )


def print_table(rows):
    """Print one line per row: times, GFLOP/s, % of peak and the ratios."""
    header = (
        f"{'product':<40}{'dtype':<9}{'thr':>3}"
        f"{'mla':>11}{'GFLOP/s':>9}{'%peak':>7}"
        f"{'numpy':>11}{'GFLOP/s':>9}{'%peak':>7}"
        f"{'numpy/mla':>11}{'range':>12}{'best':>7}"
    )
    print(header)
    group = None
    for row in rows:
        if group is not None and group != (row.dtype, row.threads):
            print()
        group = (row.dtype, row.threads)
        peak = row.peak
        mla_rate = row.product.flops / row.mla
        numpy_rate = row.product.flops / row.numpy
        label = row.product.label + ("" if row.agree else " (DIFFERS)")
        ratio = row.numpy / row.mla
        spread = f"{min(row.ratios):.2f}-{max(row.ratios):.2f}"
        best = row.numpy_best / row.mla_best
        print(
            f"{label:<40}{row.dtype:<9}{row.threads:>3}"
            f"{format_seconds(row.mla):>11}{mla_rate / 1e9:>9.1f}"
            f"{100 * mla_rate / peak:>6.0f}%"
            f"{format_seconds(row.numpy):>11}{numpy_rate / 1e9:>9.1f}"
            f"{100 * numpy_rate / peak:>6.0f}%"
            f"{ratio:>10.2f}x{spread:>12}{best:>6.2f}x"
        )


def save_plot(rows, path):
    """Save GFLOP/s against n of the square products, one panel per dtype.

    Solid lines are mla, dashed lines NumPy, one color per thread count;
    the dotted lines mark the highest peak measured for each thread count.
    """
    from matplotlib.figure import Figure

    dtypes = list(dict.fromkeys(row.dtype for row in rows))
    figure = Figure(figsize=(6 * len(dtypes), 4.5), layout="constrained")
    axes_list = figure.subplots(1, len(dtypes), squeeze=False)[0]
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for axes, dtype in zip(axes_list, dtypes):
        threads_seen = list(
            dict.fromkeys(row.threads for row in rows if row.dtype == dtype)
        )
        for index, threads in enumerate(threads_seen):
            color = colors[index % len(colors)]
            square = [
                row
                for row in rows
                if row.dtype == dtype
                and row.threads == threads
                and row.product.n is not None
            ]
            sizes = [row.product.n for row in square]
            axes.plot(
                sizes,
                [row.product.flops / row.mla / 1e9 for row in square],
                color=color,
                marker="o",
                label=f"mla, threads: {threads}",
            )
            axes.plot(
                sizes,
                [row.product.flops / row.numpy / 1e9 for row in square],
                color=color,
                marker="s",
                linestyle="--",
                label=f"np.matmul, threads: {threads}",
            )
            axes.axhline(
                max(row.peak for row in square) / 1e9,
                color=color,
                linestyle=":",
                linewidth=1,
            )
        axes.set_xscale("log", base=2)
        axes.set_xlabel("n (square n x n products)")
        axes.set_ylabel("GFLOP/s")
        axes.set_title(f"{dtype}: GFLOP/s (dotted: measured peak)")
        axes.legend(fontsize="small")
    figure.savefig(path, dpi=120)


def _parse_list(text, name, parser):
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        parser.error(f"{name} must be integers separated by commas, got {text!r}")
    if not values or min(values) < 1:
        parser.error(f"{name} must be positive integers, got {text!r}")
    return values


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m mla.bench matmul",
        description=(
            "Time mla.matmul against np.matmul on square and MLP-shaped "
            "products, with both libraries on the same thread count."
        ),
    )

    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SQUARE_SIZES)),
        metavar="N,N,...",
        help="sizes n of the square products (default: %(default)s)",
    )
    parser.add_argument(
        "--no-mlp", action="store_true", help="skip the MLP-shaped products"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64", "both"),
        default="both",
        help="element type of the operands (default: both)",
    )
    parser.add_argument(
        "--threads",
        default="1,2",
        metavar="T,T,...",
        help="thread counts of mla and of NumPy's BLAS (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=7,
        metavar="N",
        help="samples per library whose median is reported (default: 7)",
    )
    add_settle_option(parser, "before each sample")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="save a chart of GFLOP/s against n to FILE (needs matplotlib)",
    )
    args, extra = parser.parse_known_args(argv)
    names = [word for word in extra if not word.startswith("-")]
    if names:
        parser.error(
            f"the matmul sweep takes no function names; got {' '.join(names)}. "
            "To time matmul in the function table, name it after another "
            "function: python -m mla.bench softmax matmul"
        )
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    args.sizes = _parse_list(args.sizes, "--sizes", parser)
    args.threads = _parse_list(args.threads, "--threads", parser)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    check_settle_option(parser, args.settle)

    if args.plot is not None:
        check_plot_option(parser, args.plot, "bench")
    return args


def main(argv=None):
    """Run the matmul sweep and return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after ``matmul``; ``sys.argv[2:]`` when None.

    Returns
    -------
    int
        0 when every product agrees with NumPy, 1 otherwise.
    """
    if argv is None:
        argv = sys.argv[2:]
    args = _parse_args(argv)
    dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
    sweep = products(args.sizes, mlp=not args.no_mlp)

    config = _core._config()
    print(f"CPU: {_cpu_model()}, {os.cpu_count()} logical CPUs")
    print(
        f"mla {mla.__version__}: kernel level {config['kernel_level']}, "
        f"{config['compiler']}, OpenMP {'yes' if config['openmp'] else 'no'}"
    )
    blas = _blas_description()
    print(f"numpy {np.__version__}: BLAS {blas or 'unknown (no threadpoolctl)'}")
    if blas is None:
        print("threadpoolctl is not installed: NumPy's BLAS threads are not limited")

    print(
        "%peak: of the best of 60 runs of 12 independent FMA chains on "
        f"{config['kernel_level']} vectors on one core, run before and after "
        "each product; t threads: t times that"
    )
    print(
        f"times: median of {args.repeat} samples per library, the samples of mla "
        "and numpy alternating; range: lowest and highest numpy/mla of a pair; "
        "best: fastest numpy sample over fastest mla sample"
    )
    print(
        f"on several threads each sample follows {args.settle} s of untimed "
        "calls, so that the other library's idle threads have stopped spinning"
    )
    print()

    rng = np.random.default_rng(0)
    rows = []
    saved_threads = mla.get_num_threads()
    try:
        for threads in args.threads:
            mla.set_num_threads(threads)
            with _thread_limits(threads):
                for dtype in dtypes:
                    for product in sweep:
                        rows.append(
                            _run_product(
                                product, dtype, threads, args.repeat, args.settle, rng
                            )
                        )
    finally:
        mla.set_num_threads(saved_threads)

    rows.sort(key=lambda row: (row.dtype, row.threads))
    print_table(rows)
    print()
    for dtype in dtypes:
        core_peaks = [row.peak / row.threads for row in rows if row.dtype == dtype]
        print(
            f"peak {dtype}: {min(core_peaks) / 1e9:.1f} to "
            f"{max(core_peaks) / 1e9:.1f} GFLOP/s per core over the run"
        )
    if args.plot:
        save_plot(rows, args.plot)
        print(f"\nsaved the GFLOP/s chart to {args.plot}")

    differing = [row for row in rows if not row.agree]
    if differing:
        print(f"\n{len(differing)} products differ from numpy (marked DIFFERS)")
        return 1
    return 0
