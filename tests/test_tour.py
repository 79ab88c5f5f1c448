"""Tests of the tour of the article's sections, ``python -m mla``."""

import os
import subprocess
import sys

import numpy as np
import pytest

import mla
from mla import tour


def _subprocess_environment():
    """Return the environment with this test's mla first on PYTHONPATH.

    The subprocess then imports the same mla as the tests, whether it is
    installed or built in place.
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(mla.__file__)))
    environment = dict(os.environ)
    paths = [package_parent]
    if environment.get("PYTHONPATH"):
        paths.append(environment["PYTHONPATH"])
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def _run_module(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "mla", *arguments],
        capture_output=True,
        text=True,
        env=_subprocess_environment(),
        timeout=300,
    )


@pytest.fixture(scope="module")
def tour_run():
    """Run ``python -m mla`` once, with few timing samples, for the module."""
    return _run_module("--repeat", "3")


def test_tour_exits_zero(tour_run):
    assert tour_run.returncode == 0, tour_run.stdout + tour_run.stderr


def test_tour_writes_nothing_to_stderr(tour_run):
    assert tour_run.stderr == ""


def test_tour_prints_correct_softmax(tour_run):
    assert "softmax mla     [0.62853172 0.2312239  0.14024438]" in tour_run.stdout
    assert "softmax numpy   [0.62853172 0.2312239  0.14024438]" in tour_run.stdout


def test_tour_prints_correct_loss(tour_run):
    assert "loss mla        0.46436878" in tour_run.stdout


def test_tour_prints_article_disagreements(tour_run):
    assert "the article prints  [0.58593206 0.21561427 0.19845367]" in tour_run.stdout
    assert "its code computes   [0.62853172 0.2312239  0.14024438]" in tour_run.stdout
    assert "its code computes   [0.1265973  0.73495305]" in tour_run.stdout


def test_tour_runs_sections_in_article_order(tour_run):
    positions = []
    for number, (title, _) in enumerate(tour.SECTIONS, start=1):
        heading = f"{number}/8 {title}\n"
        assert heading in tour_run.stdout
        positions.append(tour_run.stdout.index(heading))
    assert positions == sorted(positions)


def test_tour_passes_all_eight_sections(tour_run):
    assert len(tour.SECTIONS) == 8
    assert tour_run.stdout.count("(rtol 1e-10): pass\n") == 8
    assert "FAIL" not in tour_run.stdout
    assert "pass: all 8 sections agree with NumPy" in tour_run.stdout


def test_tour_prints_speedups(tour_run):
    # Seven sections print one speed-up of mla over NumPy in their time row.
    # The loops section times four implementations and adds a speed-up row.
    assert tour_run.stdout.count("speed-up") == 8


def test_tour_help_lists_options():
    completed = _run_module("--help")
    assert completed.returncode == 0
    assert "--no-timing" in completed.stdout
    assert "--repeat" in completed.stdout


def test_tour_rejects_zero_repeat():
    completed = _run_module("--repeat", "0")
    assert completed.returncode == 2
    assert "--repeat must be at least 1, got 0" in completed.stderr


def test_check_accepts_rounding_difference():
    result = tour.check(np.array([0.5, 2.0]), np.array([0.5, 2.0 + 1e-14]))
    assert result.passed
    assert result.max_abs_diff == pytest.approx(1e-14, rel=0.1)


def test_check_rejects_wrong_result():
    wrong = np.array([0.58593206, 0.21561427, 0.19845367])
    correct = np.array([0.62853172, 0.2312239, 0.14024438])
    result = tour.check(wrong, correct, "probabilities")
    assert not result.passed
    assert result.max_abs_diff == pytest.approx(0.05820929)
    assert result.name == "probabilities"


def test_check_rejects_wrong_shape():
    result = tour.check(np.zeros((2, 1)), np.zeros(2))
    assert not result.passed
    assert result.max_abs_diff == float("inf")


def test_check_rejects_nan_against_number():
    result = tour.check(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))
    assert not result.passed
    assert np.isnan(result.max_abs_diff)


def test_check_accepts_matching_nan_and_infinity():
    values = np.array([np.nan, np.inf, -np.inf, 1.0])
    result = tour.check(values, values.copy())
    assert result.passed
    assert result.max_abs_diff == 0.0


def test_tour_fails_on_wrong_softmax(monkeypatch, capsys):
    def uniform_softmax(z, axis=-1):
        return np.full(np.shape(z), 1.0 / np.shape(z)[axis])

    monkeypatch.setattr(mla, "softmax", uniform_softmax)
    status = tour.main(["--no-timing"])
    output = capsys.readouterr().out
    assert status == 1
    assert "FAIL: 1 of 8 sections disagree with NumPy:" in output
    assert "    softmax and cross-entropy, 3 classes" in output.split("FAIL: 1")[1]
    assert "probabilities differs by" in output


def test_tour_fails_when_section_raises(monkeypatch, capsys):
    def broken_regression(X, y, regularization=0.0):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(mla, "linear_regression", broken_regression)
    status = tour.main(["--no-timing"])
    output = capsys.readouterr().out
    assert status == 1
    assert "error           RuntimeError: broken on purpose" in output
    assert (
        "    linear regression, 100 samples, 3 features" in output.split("FAIL: 1")[1]
    )


def test_tour_without_timing_exits_zero(capsys):
    status = tour.main(["--no-timing"])
    output = capsys.readouterr().out
    assert status == 0
    assert "time " not in output


def test_article_inputs_match_global_seed():
    # The article draws from np.random after np.random.seed(42). The tour must
    # get the same arrays without touching the global generator.
    saved_state = np.random.get_state()
    try:
        np.random.seed(42)
        layers = [np.random.randn(8, 4) * 0.5]
        layers.append(np.random.randn(6, 8) * 0.5)
        layers.append(np.random.randn(2, 6) * 0.5)
        X_batch = np.random.randn(100, 4)
        W1_small = np.random.randn(3, 2)
        W2_small = np.random.randn(1, 3)
        A = np.random.randn(100, 100)
        B = np.random.randn(100, 100)
        np.random.seed(42)
        X = np.random.randn(100, 3)
        noise = np.random.randn(100) * 0.5
        Q = np.random.randn(4, 8)
        K = np.random.randn(4, 8)
        V = np.random.randn(4, 8)
        state_before = np.random.get_state()

        inputs = tour.draw_article_inputs()
        state_after = np.random.get_state()
        np.testing.assert_array_equal(state_after[1], state_before[1])
        assert state_after[2] == state_before[2]
    finally:
        np.random.set_state(saved_state)

    for (W, b), expected in zip(inputs.layers, layers, strict=True):
        np.testing.assert_array_equal(W, expected)
        np.testing.assert_array_equal(b, np.zeros(len(expected)))
    np.testing.assert_array_equal(inputs.X_batch, X_batch)
    np.testing.assert_array_equal(inputs.W1_small, W1_small)
    np.testing.assert_array_equal(inputs.W2_small, W2_small)
    np.testing.assert_array_equal(inputs.A, A)
    np.testing.assert_array_equal(inputs.B, B)
    np.testing.assert_array_equal(inputs.X, X)
    X_bias = np.column_stack([np.ones(100), X])
    np.testing.assert_array_equal(inputs.y, X_bias @ inputs.true_weights + noise)
    np.testing.assert_array_equal(inputs.Q, Q)
    np.testing.assert_array_equal(inputs.K, K)
    np.testing.assert_array_equal(inputs.V, V)


def test_tour_closed_pipe_exits_quietly():
    # "python -m mla | head" closes stdout early. Closing it before the tour
    # writes anything makes every write fail; the tour must stop without a
    # traceback or an "Exception ignored" report.
    process = subprocess.Popen(
        [sys.executable, "-m", "mla", "--no-timing"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_subprocess_environment(),
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    process.stderr.close()
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    assert process.returncode == 1
