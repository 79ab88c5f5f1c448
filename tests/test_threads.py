"""Tests for concurrent calls, the thread count and the forced kernel levels."""

import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import mla

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def kernel_calls(rng):
    """Return ``{name: (function, args)}`` with inputs large enough to thread."""
    x = rng.standard_normal(20000)
    X = rng.standard_normal((150, 70))
    W = rng.standard_normal((60, 70))
    b = rng.standard_normal(60)
    A = rng.standard_normal((130, 90))
    B = rng.standard_normal((90, 110))
    Q = rng.standard_normal((2, 40, 16))
    K = rng.standard_normal((2, 50, 16))
    V = rng.standard_normal((2, 50, 8))
    probabilities = mla.softmax(rng.standard_normal((200, 30)))
    labels = np.eye(30)[rng.integers(0, 30, 200)]

    return {
        "sigmoid": (mla.sigmoid, (x,)),
        "relu": (mla.relu, (x,)),
        "sigmoid_derivative": (mla.sigmoid_derivative, (x,)),
        "relu_derivative": (mla.relu_derivative, (x,)),
        "forward_layer": (mla.forward_layer, (X[0], W, b)),
        "forward_layer_batch": (mla.forward_layer_batch, (X, W, b)),
        "dense_backward": (
            mla.dense_backward,
            (A[:, :60], X[:130], W, A[:, 30:], "tanh"),
        ),
        "simple_backprop": (
            mla.simple_backprop,
            (X[0], b[:5], W, W[:5, :60], b, b[:5]),
        ),
        "matmul": (mla.matmul, (A, B)),
        "matmul_loop": (mla.matmul_loop, (A[:40], B[:, :40])),
        "cosine_similarity": (mla.cosine_similarity, (x, x[::-1])),
        "cosine_similarity_matrix": (mla.cosine_similarity_matrix, (X,)),
        "linear_regression": (mla.linear_regression, (X, X[:, 0] * 2 + 1)),
        "softmax": (mla.softmax, (X,)),
        "log_softmax": (mla.log_softmax, (X,)),
        "softmax_cross_entropy": (
            mla.softmax_cross_entropy,
            (X, rng.integers(0, 70, 150), True),
        ),
        "cross_entropy_loss": (mla.cross_entropy_loss, (probabilities, labels)),
        "scaled_dot_product_attention": (mla.scaled_dot_product_attention, (Q, K, V)),
        "scaled_dot_product_attention_backward": (
            mla.scaled_dot_product_attention_backward,
            (Q, K, V, Q[..., :8]),
        ),
    }


def assert_same_result(actual, expected, label):
    """Assert bit-identical results of any form (array, float, tuple, dict)."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), label
        for key in expected:
            assert_same_result(actual[key], expected[key], f"{label} {key}")
    elif isinstance(expected, tuple):
        assert len(actual) == len(expected), label
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_same_result(a, e, f"{label} item {index}")
    else:
        assert np.array_equal(actual, expected, equal_nan=True), label


@pytest.fixture
def restore_threads():
    """Restore the thread count that a test changes."""
    original = mla.get_num_threads()
    yield original
    mla.set_num_threads(original)


def test_threads_same_inputs_concurrently(rng):
    calls = kernel_calls(rng)
    serial = {name: function(*args) for name, (function, args) in calls.items()}
    jobs = [name for name in calls for _ in range(6)]

    def run(name):
        function, args = calls[name]
        return name, function(*args)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs))

    assert len(results) == len(jobs)
    for name, result in results:
        assert_same_result(result, serial[name], f"{name} in a thread")


def test_threads_different_inputs_concurrently():
    seeds = list(range(8))
    serial = {}
    for seed in seeds:
        calls = kernel_calls(np.random.default_rng(seed))
        serial[seed] = {name: f(*args) for name, (f, args) in calls.items()}

    def run(seed):
        calls = kernel_calls(np.random.default_rng(seed))
        return seed, {name: f(*args) for name, (f, args) in calls.items()}

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, seeds * 2))

    assert len(results) == 2 * len(seeds)
    for seed, outputs in results:
        for name, result in outputs.items():
            assert_same_result(result, serial[seed][name], f"{name} seed {seed}")


def test_threads_inputs_unchanged_concurrently(rng):
    calls = kernel_calls(rng)
    copies = {
        name: [np.array(a, copy=True) for a in args]
        for name, (_, args) in calls.items()
    }

    def run(name):
        function, args = calls[name]
        return function(*args)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, list(calls) * 4))

    for name, (_, args) in calls.items():
        for index, (before, after) in enumerate(zip(copies[name], args)):
            np.testing.assert_array_equal(
                after, before, err_msg=f"{name} argument {index} modified"
            )


def test_num_threads_round_trip(restore_threads):
    assert restore_threads >= 1

    mla.set_num_threads(2)
    assert mla.get_num_threads() == 2

    mla.set_num_threads(1)
    assert mla.get_num_threads() == 1


@pytest.mark.parametrize("count", [0, -1, -100])
def test_set_num_threads_not_positive(count, restore_threads):
    with pytest.raises(ValueError, match=r"^set_num_threads: ") as error:
        mla.set_num_threads(count)

    assert str(count) in str(error.value)
    assert mla.get_num_threads() == restore_threads


@pytest.mark.parametrize("count", [1.5, "2", True, False], ids=repr)
def test_set_num_threads_not_integer(count, restore_threads):
    with pytest.raises(TypeError, match="^set_num_threads: n must be an integer or None"):
        mla.set_num_threads(count)

    assert mla.get_num_threads() == restore_threads


def test_set_num_threads_none_restores_default(restore_threads):
    mla._core._reset_num_threads()
    default = mla.get_num_threads()
    mla.set_num_threads(default + 1)

    mla.set_num_threads(None)

    assert mla.get_num_threads() == default


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((300, 257), (257, 129)),
        ((4, 130, 70), (70, 90)),
        ((1000, 64), (64, 3)),
        ((1000, 300), (300,)),
    ],
    ids=lambda shape: "x".join(map(str, shape)),
)
def test_matmul_one_two_threads_identical(a_shape, b_shape, dtype, restore_threads):
    rng = np.random.default_rng(3)
    A = rng.standard_normal(a_shape).astype(dtype)
    B = rng.standard_normal(b_shape).astype(dtype)

    mla.set_num_threads(1)
    one_thread = mla.matmul(A, B)
    mla.set_num_threads(2)
    two_threads = mla.matmul(A, B)

    assert np.array_equal(one_thread, two_threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
def test_forward_layer_one_two_threads_identical(dtype, restore_threads):
    # 700 outputs of 300 inputs: a matrix-vector product that two threads
    # share in units of 256 rows.
    rng = np.random.default_rng(4)
    x = rng.standard_normal(300).astype(dtype)
    W = rng.standard_normal((700, 300)).astype(dtype)
    b = rng.standard_normal(700).astype(dtype)

    mla.set_num_threads(1)
    one_thread = mla.forward_layer(x, W, b, "sigmoid")
    mla.set_num_threads(2)
    two_threads = mla.forward_layer(x, W, b, "sigmoid")

    assert np.array_equal(one_thread, two_threads)


@pytest.mark.parametrize("dtype", ["f", "d"])
def test_gemm_grid_equal_row_units_per_thread(gemm_kernel_level, dtype):
    # Each thread gets as many row units of C as the others, so none waits
    # at a K slice's barrier while another computes an extra unit.
    from mla import _core

    for threads in (2, 3, 4):
        for m in range(1, 3000, 37):
            row_units, col_units, row_panels = _core._gemm_grid(dtype, m, 2048, threads)
            assert col_units >= 1
            if row_units > threads and row_units < row_panels:
                assert row_units % threads == 0, (m, threads, row_units)


def test_show_config_reports_simd_and_threads(capfd, restore_threads):
    mla.set_num_threads(3)

    mla.show_config()

    captured = capfd.readouterr()
    output = (captured.out + captured.err).lower()
    assert any(level in output for level in ("generic", "avx2", "avx512"))
    thread_lines = [line for line in output.splitlines() if "thread" in line]
    assert any("3" in line for line in thread_lines), output


def cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


# Script for a fresh interpreter started with a forced kernel level. It
# compares each kernel with the reference on sizes around the SIMD widths and
# exits with status 0 only if every check passed.
PARITY_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import mla
    from mla import reference

    rng = np.random.default_rng(11)
    checks = 0

    def check(name, actual, expected, dtype, inner):
        global checks
        rtol, atol = (1e-10, 1e-14) if dtype == np.float64 else (1e-4, 1e-6)
        np.testing.assert_allclose(
            np.asarray(actual, dtype=np.float64), expected,
            rtol=rtol, atol=atol * max(inner, 1), equal_nan=True,
            err_msg=f"{name} {np.dtype(dtype).name} inner={inner}",
        )
        checks += 1

    for dtype in (np.float32, np.float64):
        for n in (1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 130, 257):
            x = (rng.standard_normal(n) * 4).astype(dtype)
            x64 = x.astype(np.float64)
            for name in ("sigmoid", "relu", "sigmoid_derivative",
                         "relu_derivative"):
                actual = getattr(mla, name)(x)
                assert actual.dtype == dtype, name
                expected = getattr(reference, name)(x64)
                check(name, actual, expected, dtype, 1)

            A = rng.standard_normal((n + 2, n)).astype(dtype)
            B = rng.standard_normal((n, n + 5)).astype(dtype)
            A64, B64 = A.astype(np.float64), B.astype(np.float64)
            check("matmul", mla.matmul(A, B), A64 @ B64, dtype, n)
            check("matmul strided", mla.matmul(A[::-1], B.T.copy().T),
                  A64[::-1] @ B64, dtype, n)
            check("forward_layer_batch",
                  mla.forward_layer_batch(A, B.T, B[0], activation="sigmoid"),
                  reference.forward_layer_batch(A64, B64.T, B64[0], "sigmoid"),
                  dtype, n)
            check("cosine_similarity", mla.cosine_similarity(A[0], A[1]),
                  reference.cosine_similarity(A64[0], A64[1]), dtype, n)
            check("cosine_similarity_matrix", mla.cosine_similarity_matrix(A),
                  reference.cosine_similarity_matrix(A64), dtype, n)
            check("softmax", mla.softmax(A, axis=-1),
                  reference.softmax(A64, axis=-1), dtype, n)
            check("softmax axis 0", mla.softmax(A, axis=0),
                  reference.softmax(A64, axis=0), dtype, n)
            output, weights = mla.scaled_dot_product_attention(A, A, B.T[:n + 2])
            expected_output, expected_weights = (
                reference.scaled_dot_product_attention(A64, A64, B64.T[:n + 2])
            )
            check("attention weights", weights, expected_weights, dtype, n)
            check("attention output", output, expected_output, dtype, n * n)
            streamed = mla.scaled_dot_product_attention(
                A, A, B.T[:n + 2], causal=True, return_weights=False
            )
            expected_streamed = reference.scaled_dot_product_attention(
                A64, A64, B64.T[:n + 2], causal=True, return_weights=False
            )
            check("attention streamed", streamed, expected_streamed, dtype, n * n)
            gradients = mla.scaled_dot_product_attention_backward(
                A, A, B.T[:n + 2], B.T[:n + 2], causal=True
            )
            expected_gradients = reference.scaled_dot_product_attention_backward(
                A64, A64, B64.T[:n + 2], B64.T[:n + 2], causal=True
            )
            check("attention dK", gradients[1], expected_gradients[1], dtype, n * n)

    print("checks", checks)
    mla.show_config()
    """
)


@pytest.mark.parametrize("level", ["generic", "avx2", "avx512"])
def test_forced_kernel_level_matches_reference(level):
    flags = cpu_flags()
    if level == "avx2" and not {"avx2", "fma"} <= flags:
        pytest.skip("this CPU has no AVX2 with FMA")
    if level == "avx512" and "avx512f" not in flags:
        pytest.skip("this CPU has no AVX-512")
    environment = {**os.environ, "MLA_KERNEL": level}

    completed = subprocess.run(
        [sys.executable, "-W", "error", "-c", PARITY_SCRIPT],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr + completed.stdout
    assert "checks 450" in completed.stdout
    # show_config names the chosen level first, before any list of supported ones.
    chosen = re.search(
        r"level[^:\n]*:\s*(generic|avx2|avx512)\b", completed.stdout.lower()
    )
    assert chosen is not None, completed.stdout
    assert chosen.group(1) == level


# Children that cap their address space so that one 64 MiB worker stack
# (OMP_STACKSIZE) cannot fit but the products can. libgomp would end the
# process; mla runs them on fewer threads. cap() caps the child's address
# space at its current size plus 32 MiB, or extra MiB.
CAP = textwrap.dedent(
    """
    import resource
    import threading
    import numpy as np
    import mla

    def cap(extra=32):
        pages = int(open("/proc/self/statm").read().split()[0])
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = pages * resource.getpagesize() + extra * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    A = np.random.default_rng(0).standard_normal((400, 400))
    expected = A @ A
    """
)

# The cap comes before the first parallel region.
LIMITED_SCRIPT = CAP + textwrap.dedent(
    """
    mla.set_num_threads(2)
    cap()
    for _ in range(3):
        assert np.allclose(mla.matmul(A, A), expected)
        assert np.allclose(mla.softmax(A), np.exp(A) / np.exp(A).sum(-1, keepdims=True))
    print("done")
    """
)

# A team of 3, then of 2, which ends the pool's third worker; two more
# threads end, and glibc trims its cache of their stacks. Under the cap a
# team of 3 is then asked for again.
REGROWN_SCRIPT = CAP + textwrap.dedent(
    """
    mla.set_num_threads(3)
    assert np.allclose(mla.matmul(A, A), expected)
    mla.set_num_threads(2)
    assert np.allclose(mla.matmul(A, A), expected)
    for _ in range(2):
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
    cap()
    mla.set_num_threads(3)
    assert np.allclose(mla.matmul(A, A), expected)
    print("done")
    """
)

# Four Python threads make their first parallel calls at once, under a cap
# with room for about two more worker stacks: each thread's workers must
# start before the next thread looks for room.
CONCURRENT_SCRIPT = CAP + textwrap.dedent(
    """
    mla.set_num_threads(2)
    barrier = threading.Barrier(5)
    failures = []

    def work():
        barrier.wait()
        for _ in range(3):
            if not np.allclose(mla.matmul(A, A), expected):
                failures.append("matmul")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    cap(extra=140)
    barrier.wait()
    for thread in threads:
        thread.join()
    assert failures == [], failures
    print("done")
    """
)

needs_openmp_on_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not mla._core._config()["openmp"],
    reason="needs Linux and OpenMP",
)


@needs_openmp_on_linux
@pytest.mark.skipif(
    bool(os.environ.get("MLA_SANITIZED")),
    reason="ASan reserves far more address space than the cap leaves",
)
@pytest.mark.parametrize(
    "script",
    [LIMITED_SCRIPT, REGROWN_SCRIPT, CONCURRENT_SCRIPT],
    ids=["first", "regrown", "concurrent"],
)
@pytest.mark.parametrize(
    "stack",
    [{"OMP_STACKSIZE": "64M"}, {"OMP_STACKSIZE": "abc", "GOMP_STACKSIZE": "64M"}],
    ids=["OMP_STACKSIZE", "invalid-then-GOMP_STACKSIZE"],
)
def test_thread_limit_runs_on_fewer_threads(script, stack):
    # libgomp reads GOMP_STACKSIZE when OMP_STACKSIZE is invalid.
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **stack}
    if "GOMP_STACKSIZE" not in stack:
        environment.pop("GOMP_STACKSIZE", None)

    assert _run_child(script, environment) == "done\n"


# Children forked while another thread makes the process's first parallel
# call, which starts 255 threads to see whether a team of 256 can start.
FORK_SCRIPT = textwrap.dedent(
    """
    import os
    import signal
    import threading
    import time
    import numpy as np
    import mla

    A = np.random.default_rng(0).standard_normal((300, 300))
    expected = A @ A
    mla.set_num_threads(256)
    first = threading.Thread(target=lambda: mla.matmul(A, A))
    children = []
    first.start()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        pid = os.fork()
        if pid == 0:
            signal.alarm(10)
            mla.set_num_threads(2)
            os._exit(0 if np.allclose(mla.matmul(A, A), expected) else 3)
        children.append(pid)
    first.join()
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    print(sorted(set(codes)))
    """
)


@needs_openmp_on_linux
def test_fork_during_first_parallel_call():
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}

    assert _run_child(FORK_SCRIPT, environment) == "[0]\n"


# Start of the child scripts of the placement tests: allowed(task) returns
# the CPU list that a thread of the child may run on.
PLACEMENT_PRELUDE = textwrap.dedent(
    """
    import os
    import numpy as np
    import mla

    def allowed(task):
        with open(f"/proc/self/task/{task}/status") as status:
            for line in status:
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":")[1].strip()

    mla.set_num_threads(2)
    A = np.random.default_rng(0).standard_normal((300, 300))
    """
)

AVOID_SCRIPT = PLACEMENT_PRELUDE + textwrap.dedent(
    """
    assert np.allclose(mla.matmul(A, A), A @ A)
    main = os.getpid()
    print("main", allowed(main))
    for task in sorted(int(t) for t in os.listdir("/proc/self/task")):
        if task != main:
            print("other", allowed(task))
    """
)

NARROWED_SCRIPT = PLACEMENT_PRELUDE + textwrap.dedent(
    """
    cpus = sorted(os.sched_getaffinity(0))
    # The workers start on the first CPU, then the caller moves to the last.
    for first, then in (([cpus[0]], [cpus[-1]]), (cpus, [cpus[-1]])):
        os.sched_setaffinity(0, set(first))
        assert np.allclose(mla.matmul(A, A), A @ A)
        assert os.sched_getaffinity(0) == set(first)
        os.sched_setaffinity(0, set(then))
        assert np.allclose(mla.matmul(A, A), A @ A)
        assert os.sched_getaffinity(0) == set(then)
        for task in os.listdir("/proc/self/task"):
            print(allowed(int(task)))
    """
)

needs_placement = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="worker placement needs Linux and at least two CPUs",
)


def _run_child(script, environment):
    """Run ``python -c script`` with ``environment``; return its standard output."""
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def _run_placement_child(script, thread_limit=None):
    """Run a placement script in a child without OpenBLAS threads or binding."""
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    for name in ("OMP_PROC_BIND", "OMP_PLACES", "OMP_THREAD_LIMIT"):
        environment.pop(name, None)
    if thread_limit is not None:
        environment["OMP_THREAD_LIMIT"] = thread_limit
    return _run_child(script, environment)


def _cpu_count(cpu_list):
    """Return the number of CPUs in a list such as ``0-3,6``."""
    count = 0
    for part in cpu_list.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


@needs_placement
def test_parallel_workers_avoid_callers_cpu():
    # The workers of a 2-thread product are kept off the calling thread's
    # CPU, so that a sleeping worker never wakes queued behind the caller.
    output = _run_placement_child(AVOID_SCRIPT)

    lines = output.split()
    main_cpus = _cpu_count(lines[1])
    others = [_cpu_count(cpus) for cpus in lines[3::2]]
    assert main_cpus >= 2
    assert main_cpus - 1 in others, output


@needs_placement
@pytest.mark.parametrize("limit", [None, "1"], ids=["no-limit", "thread-limit-1"])
def test_parallel_workers_follow_narrowed_caller(limit):
    # The caller's own mask is never changed, also when OpenMP gives a
    # smaller team than requested, and once the caller narrows its mask to
    # one CPU the workers get that mask too.
    output = _run_placement_child(NARROWED_SCRIPT, thread_limit=limit)

    last_cpu = str(max(os.sched_getaffinity(0)))
    assert set(output.split()) == {last_cpu}, output


def test_num_threads_environment_default():
    environment = {**os.environ, "MLA_NUM_THREADS": "3"}
    environment.pop("OMP_NUM_THREADS", None)

    output = _run_child("import mla; print(mla.get_num_threads())", environment)

    assert output.strip() == "3"


@pytest.mark.parametrize("count", [2**70, 10**5000], ids=["2**70", "10**5000"])
def test_set_num_threads_huge_value_rejected(count, restore_threads):
    # The message leaves the value out: str() of 10**5000 raises.
    with pytest.raises(ValueError, match=r"set_num_threads: n must be between 1") as error:
        mla.set_num_threads(count)

    assert "beyond the range of a C long" in str(error.value)
    assert mla.get_num_threads() == restore_threads


def _matmul_corner(size):
    a = np.ones((size, size))
    return float(mla.matmul(a, a)[0, 0])


def test_forked_child_after_parallel_matmul():
    # libgomp's threads do not survive fork(); the child must fall back to
    # one thread instead of waiting for them forever.
    import multiprocessing
    import warnings

    mla.set_num_threads(2)
    try:
        assert _matmul_corner(400) == 400.0
        context = multiprocessing.get_context("fork")
        with warnings.catch_warnings():
            # Python 3.12 warns about forking a process that has threads.
            warnings.simplefilter("ignore", DeprecationWarning)
            with context.Pool(2) as pool:
                results = pool.map_async(_matmul_corner, [400, 400]).get(timeout=60)
    finally:
        mla._core._reset_num_threads()
    assert results == [400.0, 400.0]
