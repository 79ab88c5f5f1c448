"""Run each section of the tutorial article with mla and with NumPy.

``python -m mla`` works through the sections of "Linear Algebra: Practical
Applications in ML" (Craig Johnston, CC BY 4.0) in the article's order: the
forward pass, batch processing, backpropagation, loops versus vectorized code,
cosine similarity, linear regression, softmax with cross-entropy, and
attention. Each section computes its result twice, once with mla's C kernels
and once with :mod:`mla.reference` (plain NumPy). It prints both results and
their largest absolute difference, checks that difference against the float64
tolerance, and prints the speed-up of mla over NumPy as the ratio of the median
times of repeated runs.

The random inputs are the article's: the generator is seeded with 42 and the
arrays are drawn in the order that the article's code draws them, including
its second seeding before linear regression. Some numbers printed in the
article were not produced by its code. Where they differ, the section prints
the article's number beside the value that the code computes.

The exit status is 0 when every section agrees with NumPy and 1 otherwise.
"""

import argparse
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

import mla
from mla import reference
from mla.bench import format_seconds, median_time

__all__ = [
    "ATOL",
    "RTOL",
    "SECTIONS",
    "Check",
    "SectionResult",
    "check",
    "draw_article_inputs",
    "main",
]

# Float64 tolerance for products, reductions and solves. The article's problems
# are small and well conditioned, so no section needs a looser bound.
RTOL = 1e-10

# Absolute floor for entries that are zero or close to it, such as the
# gradients that relu switches off.
ATOL = 1e-12

# Width of the label column in the printed report.
LABEL_WIDTH = 16

# The toy word embeddings of the article's cosine similarity example.
EMBEDDINGS = {
    "king": np.array([0.5, 0.3, 0.8, 0.1]),
    "queen": np.array([0.5, 0.3, 0.7, 0.2]),
    "man": np.array([0.2, 0.8, 0.3, 0.1]),
    "woman": np.array([0.2, 0.8, 0.2, 0.2]),
    "apple": np.array([0.9, 0.1, 0.1, 0.9]),
}

# The word pairs that the article compares, in its order.
WORD_PAIRS = [
    (first, second)
    for first in ("king", "man", "apple")
    for second in ("queen", "woman")
]

# Numbers that the article prints but that its code does not compute. The tour
# prints each one beside the value that the code computes.
ARTICLE_OUTPUT = np.array([0.35614618, 0.73024462])
ARTICLE_SIMILARITIES = np.array([0.982, 0.689, 0.768, 0.976, 0.530, 0.434])
ARTICLE_WEIGHTS = np.array([2.00829775, 1.49156997, -1.04276556, 0.48395358])
ARTICLE_PROBABILITIES = np.array([0.58593206, 0.21561427, 0.19845367])
ARTICLE_LOSS = 0.5346
ARTICLE_ATTENTION_ROW0 = np.array([0.16839267, 0.27889959, 0.27789434, 0.2748134])


@dataclass
class Check:
    """Outcome of comparing one mla result with its NumPy reference."""

    name: str
    max_abs_diff: float
    passed: bool


@dataclass
class SectionResult:
    """Outcome of one section: its title, its checks and any error raised."""

    title: str
    checks: list = field(default_factory=list)
    error: str = ""

    @property
    def passed(self):
        """True when the section raised nothing and every check passed."""
        if self.error:
            return False
        return bool(self.checks) and all(item.passed for item in self.checks)


def check(got, expected, name="result", rtol=RTOL, atol=ATOL):
    """Compare an mla result with the reference result.

    Parameters
    ----------
    got, expected : array_like
        The mla result and the reference result.
    name : str, optional
        Label of the compared quantity in the report.
    rtol, atol : float, optional
        Tolerances of :func:`numpy.allclose`.

    Returns
    -------
    Check
        The largest absolute difference and whether the two agree. Results of
        different shapes never agree, and their difference is infinite.

    Examples
    --------
    >>> check([1.0, 2.0], [1.0, 2.0 + 1e-14]).passed
    True
    >>> check([1.0, 2.0], [1.0, 2.1]).passed
    False
    """
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        return Check(name, float("inf"), False)
    if got.size == 0:
        return Check(name, 0.0, True)
    got = got.astype(np.float64)
    expected = expected.astype(np.float64)

    # Equal infinities and NaN in both count as equal, as in np.allclose with
    # equal_nan. A NaN on one side only makes the difference NaN.
    with np.errstate(invalid="ignore"):
        same = (got == expected) | (np.isnan(got) & np.isnan(expected))
        diff = np.where(same, 0.0, np.abs(got - expected))
    max_abs_diff = float(np.max(diff))
    passed = bool(np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True))
    return Check(name, max_abs_diff, passed)


def draw_article_inputs():
    """Draw every random input of the article in the order its code draws them.

    ``RandomState(42)`` yields the same stream as ``np.random.seed(42)``
    followed by ``np.random.randn``, without touching NumPy's global
    generator. The article seeds with 42 once at the start and again before
    linear regression.

    Returns
    -------
    types.SimpleNamespace
        ``layers`` (three ``(W, b)`` pairs of the 4 -> 8 -> 6 -> 2 network),
        ``x``, ``X_batch`` (100, 4), the backprop weights ``W1_small`` (3, 2)
        and ``W2_small`` (1, 3), the matrices ``A`` and ``B`` (100, 100), the
        regression data ``X`` (100, 3), ``y`` (100,) and ``true_weights``, and
        the attention inputs ``Q``, ``K``, ``V`` (4, 8).
    """
    rng = np.random.RandomState(42)
    inputs = SimpleNamespace()

    # Forward pass: a 4 -> 8 -> 6 -> 2 network with zero biases.
    inputs.layers = []
    for n_out, n_in in ((8, 4), (6, 8), (2, 6)):
        inputs.layers.append((rng.randn(n_out, n_in) * 0.5, np.zeros(n_out)))
    inputs.x = np.array([1.0, 2.0, 3.0, 4.0])

    # Batch processing, then the small network of the backprop example.
    inputs.X_batch = rng.randn(100, 4)
    inputs.W1_small = rng.randn(3, 2)
    inputs.W2_small = rng.randn(1, 3)

    # Loops versus vectorized code.
    inputs.A = rng.randn(100, 100)
    inputs.B = rng.randn(100, 100)

    # Linear regression starts again from seed 42.
    rng = np.random.RandomState(42)
    inputs.X = rng.randn(100, 3)
    inputs.true_weights = np.array([2.0, 1.5, -1.0, 0.5])
    X_bias = np.column_stack([np.ones(100), inputs.X])
    inputs.y = X_bias @ inputs.true_weights + rng.randn(100) * 0.5

    # Attention continues from the same stream.
    inputs.Q = rng.randn(4, 8)
    inputs.K = rng.randn(4, 8)
    inputs.V = rng.randn(4, 8)
    return inputs


def _print_row(label, value=""):
    """Print a labelled row, indenting continuation lines under the value."""
    if isinstance(value, np.ndarray):
        text = np.array2string(value)
    else:
        text = str(value)
    lines = text.split("\n")
    print(f"    {label:<{LABEL_WIDTH}}{lines[0]}".rstrip())
    for line in lines[1:]:
        print(" " * (4 + LABEL_WIDTH) + line)


def _print_parity(checks, rtol=RTOL):
    """Print the largest difference over a section's checks and the verdict."""
    # np.max, unlike max(), returns NaN when any difference is NaN.
    max_abs_diff = float(np.max([item.max_abs_diff for item in checks]))
    verdict = "pass" if all(item.passed for item in checks) else "FAIL"
    _print_row("max |diff|", f"{max_abs_diff:.1e} (rtol {rtol:.0e}): {verdict}")
    for item in checks:
        if not item.passed:
            _print_row("", f"{item.name} differs by {item.max_abs_diff:.1e}")


def _print_speedup(timer, run_mla, run_numpy):
    """Time both callables and print their medians and the speed-up."""
    if timer is None:
        return
    mla_seconds = timer(run_mla)
    numpy_seconds = timer(run_numpy)
    _print_row(
        "time",
        f"mla {format_seconds(mla_seconds)}, numpy {format_seconds(numpy_seconds)}, "
        f"speed-up {numpy_seconds / mla_seconds:.1f}x",
    )


def _print_article_note(printed, computed):
    """Print a number from the article beside the value its code computes."""
    _print_row("note", f"the article prints  {printed}")
    _print_row("", f"its code computes   {computed}")


def _forward_network(lib, x, layers, forward):
    """Run ``x`` through relu, relu, sigmoid layers with ``lib``'s forward."""
    (W1, b1), (W2, b2), (W3, b3) = layers
    layer = getattr(lib, forward)
    h1 = layer(x, W1, b1, activation="relu")
    h2 = layer(h1, W2, b2, activation="relu")
    return h1, h2, layer(h2, W3, b3, activation="sigmoid")


def section_forward_pass(inputs, timer):
    """Run one sample through the 4 -> 8 -> 6 -> 2 network."""
    checks = []

    mla_h1, mla_h2, mla_y = _forward_network(
        mla, inputs.x, inputs.layers, "forward_layer"
    )
    ref_h1, ref_h2, ref_y = _forward_network(
        reference, inputs.x, inputs.layers, "forward_layer"
    )
    checks.append(check(mla_h1, ref_h1, "h1"))
    checks.append(check(mla_h2, ref_h2, "h2"))
    checks.append(check(mla_y, ref_y, "output"))

    _print_row(
        "shapes",
        f"x {inputs.x.shape} -> h1 {mla_h1.shape} -> h2 {mla_h2.shape} "
        f"-> y {mla_y.shape}",
    )
    _print_row("output mla", mla_y)
    _print_row("output numpy", ref_y)
    _print_parity(checks)
    _print_speedup(
        timer,
        lambda: _forward_network(mla, inputs.x, inputs.layers, "forward_layer"),
        lambda: _forward_network(reference, inputs.x, inputs.layers, "forward_layer"),
    )
    _print_article_note(ARTICLE_OUTPUT, ref_y)
    return checks


def section_batch_forward(inputs, timer):
    """Run 100 samples through the network at once, one product per layer."""
    checks = []
    X = inputs.X_batch

    mla_Y = _forward_network(mla, X, inputs.layers, "forward_layer_batch")[-1]
    ref_Y = _forward_network(reference, X, inputs.layers, "forward_layer_batch")[-1]
    checks.append(check(mla_Y, ref_Y, "Y"))

    _print_row("shapes", f"X {X.shape} -> Y {mla_Y.shape}")
    _print_row("Y[:3] mla", mla_Y[:3])
    _print_row("Y[:3] numpy", ref_Y[:3])
    _print_parity(checks)
    _print_speedup(
        timer,
        lambda: _forward_network(mla, X, inputs.layers, "forward_layer_batch"),
        lambda: _forward_network(reference, X, inputs.layers, "forward_layer_batch"),
    )
    return checks


def section_backprop(inputs, timer):
    """Compute the squared-error gradients of the 2 -> 3 -> 1 network."""
    checks = []
    args = (
        np.array([1.0, 2.0]),
        np.array([1.0]),
        inputs.W1_small,
        inputs.W2_small,
        np.zeros(3),
        np.zeros(1),
    )

    mla_grads = mla.simple_backprop(*args)
    ref_grads = reference.simple_backprop(*args)
    for name in ("dW1", "dW2", "db1", "db2"):
        checks.append(check(mla_grads[name], ref_grads[name], name))

    for name in ("dW1", "dW2", "db1", "db2"):
        _print_row(f"{name} mla", mla_grads[name])
        _print_row(f"{name} numpy", ref_grads[name])
    _print_parity(checks)
    _print_speedup(
        timer,
        lambda: mla.simple_backprop(*args),
        lambda: reference.simple_backprop(*args),
    )
    return checks


def section_loops(inputs, timer):
    """Multiply 100 x 100 matrices by Python loop, C loop, mla.matmul and NumPy."""
    checks = []
    A, B = inputs.A, inputs.B

    # The Python triple loop runs once, as in the article, because one run
    # already takes a large fraction of a second.
    start_python = time.perf_counter()
    python_C = reference.matmul_loop(A, B)
    python_seconds = time.perf_counter() - start_python
    loop_C = mla.matmul_loop(A, B)
    mla_C = mla.matmul(A, B)
    numpy_C = np.matmul(A, B)
    checks.append(check(python_C, numpy_C, "Python loop"))
    checks.append(check(loop_C, numpy_C, "mla.matmul_loop"))
    checks.append(check(mla_C, numpy_C, "mla.matmul"))

    _print_row("C[0, :4] mla", mla_C[0, :4])
    _print_row("C[0, :4] numpy", numpy_C[0, :4])
    _print_parity(checks)
    if timer is None:
        return checks

    _print_row(
        "time", f"{'Python loop':<16}{format_seconds(python_seconds):>10} (one run)"
    )
    times = {
        "mla.matmul_loop": timer(lambda: mla.matmul_loop(A, B)),
        "mla.matmul": timer(lambda: mla.matmul(A, B)),
        "np.matmul": timer(lambda: np.matmul(A, B)),
    }
    for name, seconds in times.items():
        ratio = python_seconds / seconds
        _print_row(
            "",
            f"{name:<16}{format_seconds(seconds):>10}, "
            f"{ratio:.0f}x faster than the Python loop",
        )
    speedup = times["np.matmul"] / times["mla.matmul"]
    _print_row("speed-up", f"mla.matmul vs np.matmul {speedup:.1f}x")
    return checks


def _cosine_similarities(lib):
    """Compute the article's six word-pair similarities and the full matrix."""
    pairs = np.array(
        [
            lib.cosine_similarity(EMBEDDINGS[first], EMBEDDINGS[second])
            for first, second in WORD_PAIRS
        ]
    )
    table = np.array(list(EMBEDDINGS.values()))
    return pairs, lib.cosine_similarity_matrix(table)


def section_cosine_similarity(inputs, timer):
    """Compare the toy word embeddings by cosine similarity, pair by pair."""
    checks = []

    mla_pairs, mla_matrix = _cosine_similarities(mla)
    ref_pairs, ref_matrix = _cosine_similarities(reference)
    checks.append(check(mla_pairs, ref_pairs, "pairs"))
    checks.append(check(mla_matrix, ref_matrix, "matrix"))

    label = "pairs"
    for index, (first, second) in enumerate(WORD_PAIRS):
        _print_row(
            label,
            f"{first + ' - ' + second:<14} mla {mla_pairs[index]:.6f}  "
            f"numpy {ref_pairs[index]:.6f}  article {ARTICLE_SIMILARITIES[index]:.3f}",
        )
        label = ""
    _print_row("matrix mla", mla_matrix)
    _print_parity(checks)
    _print_speedup(
        timer,
        lambda: _cosine_similarities(mla),
        lambda: _cosine_similarities(reference),
    )
    _print_article_note(
        np.array2string(ARTICLE_SIMILARITIES, precision=3, floatmode="fixed"),
        np.array2string(ref_pairs, precision=3, floatmode="fixed"),
    )
    return checks


def section_linear_regression(inputs, timer):
    """Fit a linear model to 100 noisy samples by the normal equations."""
    checks = []

    mla_weights = mla.linear_regression(inputs.X, inputs.y)
    ref_weights = reference.linear_regression(inputs.X, inputs.y)
    checks.append(check(mla_weights, ref_weights, "weights"))

    _print_row("true weights", inputs.true_weights)
    _print_row("fitted mla", mla_weights)
    _print_row("fitted numpy", ref_weights)
    _print_parity(checks)
    _print_speedup(
        timer,
        lambda: mla.linear_regression(inputs.X, inputs.y),
        lambda: reference.linear_regression(inputs.X, inputs.y),
    )
    _print_article_note(ARTICLE_WEIGHTS, ref_weights)
    return checks


def _classify(lib, logits, one_hot):
    """Return the softmax probabilities of ``logits`` and their cross-entropy."""
    probabilities = lib.softmax(logits)
    return probabilities, lib.cross_entropy_loss(probabilities, one_hot)


def section_softmax(inputs, timer):
    """Compute the softmax of three logits and its cross-entropy against class 0."""
    checks = []
    logits = np.array([2.0, 1.0, 0.5])
    one_hot = np.array([1.0, 0.0, 0.0])

    mla_probs, mla_loss = _classify(mla, logits, one_hot)
    ref_probs, ref_loss = _classify(reference, logits, one_hot)
    checks.append(check(mla_probs, ref_probs, "probabilities"))
    checks.append(check(mla_loss, ref_loss, "loss"))

    _print_row("logits", logits)
    _print_row("softmax mla", mla_probs)
    _print_row("softmax numpy", ref_probs)
    _print_row("sum mla", f"{float(np.sum(mla_probs)):.6f}")
    _print_row("loss mla", f"{mla_loss:.8f}")
    _print_row("loss numpy", f"{ref_loss:.8f}")
    _print_parity(checks)
    _print_speedup(
        timer,
        lambda: _classify(mla, logits, one_hot),
        lambda: _classify(reference, logits, one_hot),
    )
    _print_article_note(ARTICLE_PROBABILITIES, ref_probs)
    _print_article_note(f"loss {ARTICLE_LOSS:.4f}", f"loss {ref_loss:.4f}")
    return checks


def section_attention(inputs, timer):
    """Compute scaled dot-product attention over 4 positions of dimension 8."""
    checks = []
    Q, K, V = inputs.Q, inputs.K, inputs.V

    mla_output, mla_weights = mla.scaled_dot_product_attention(Q, K, V)
    ref_output, ref_weights = reference.scaled_dot_product_attention(Q, K, V)
    checks.append(check(mla_weights, ref_weights, "weights"))
    checks.append(check(mla_output, ref_output, "output"))

    _print_row("shapes", f"Q {Q.shape} -> output {mla_output.shape}")
    _print_row("weights mla", mla_weights)
    _print_row("weights numpy", ref_weights)
    _print_parity(checks)
    _print_speedup(
        timer,
        lambda: mla.scaled_dot_product_attention(Q, K, V),
        lambda: reference.scaled_dot_product_attention(Q, K, V),
    )
    _print_article_note(
        f"weights[0] {ARTICLE_ATTENTION_ROW0}", f"weights[0] {ref_weights[0]}"
    )
    return checks


# The sections in the article's order, with their titles. Each function takes
# the inputs and a timer (None to skip timing), prints its report and returns
# its list of checks.
SECTIONS = (
    ("forward pass, network 4 -> 8 -> 6 -> 2", section_forward_pass),
    ("batch forward pass, 100 samples", section_batch_forward),
    ("backpropagation, network 2 -> 3 -> 1", section_backprop),
    ("loops versus vectorized code, 100 x 100 matmul", section_loops),
    ("cosine similarity, toy word embeddings", section_cosine_similarity),
    ("linear regression, 100 samples, 3 features", section_linear_regression),
    ("softmax and cross-entropy, 3 classes", section_softmax),
    ("attention, sequence length 4, dimension 8", section_attention),
)


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m mla",
        description=(
            "Run each section of the article 'Linear Algebra: Practical "
            "Applications in ML' with mla and with NumPy, print both results, "
            "their largest difference and the speed-up. Exits with status 1 if "
            "any section disagrees."
        ),
    )
    parser.add_argument(
        "--no-timing",
        action="store_true",
        help="check results only and skip the timings",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=7,
        metavar="N",
        help="number of timing samples whose median is reported (default: 7)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    return args


def main(argv=None):
    """Run every section and return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name; ``sys.argv[1:]``
        when None.

    Returns
    -------
    int
        0 when every section agrees with the NumPy reference, 1 otherwise.
    """
    args = _parse_args(argv)
    timer = None
    if not args.no_timing:

        def timer(func):
            return median_time(func, repeat=args.repeat)

    inputs = draw_article_inputs()
    results = []
    print("mla tour: 'Linear Algebra: Practical Applications in ML', section by")
    print("section, computed by mla (C kernels) and mla.reference (NumPy) in float64")
    if timer is not None:
        print("The article's inputs are tiny, so the timings below mostly measure")
        print("per-call overhead; python -m mla.bench times larger shapes too.")
    with np.printoptions(precision=8, suppress=True):
        for number, (title, section) in enumerate(SECTIONS, start=1):
            print()
            print(f"{number}/{len(SECTIONS)} {title}")
            result = SectionResult(title)
            try:
                result.checks = section(inputs, timer)
            except Exception as error:
                # Report the error as a failed section and go on with the rest.
                result.error = f"{type(error).__name__}: {error}"
                _print_row("error", result.error)
            results.append(result)

    print()
    failed = [result for result in results if not result.passed]
    if failed:
        print(f"FAIL: {len(failed)} of {len(results)} sections disagree with NumPy:")
        for result in failed:
            print(f"    {result.title}")
        return 1
    print(f"pass: all {len(results)} sections agree with NumPy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
