"""Tests of the benchmark command, ``python -m mla.bench``.

They check the timing helpers, the command line and the output on small
cases. No test asserts on how long anything takes.
"""

import importlib.util
import time

import numpy as np
import pytest

import mla
from mla import bench, bench_matmul, bench_training, reference


def test_format_seconds_picks_unit():
    assert bench.format_seconds(2.5) == "2.50 s"
    assert bench.format_seconds(0.0123) == "12.3 ms"
    assert bench.format_seconds(4.5e-7) == "450 ns"
    assert bench.format_seconds(1.5e-5) == "15.0 us"


def test_median_time_calls_function():
    calls = []
    seconds = bench.median_time(lambda: calls.append(1), repeat=3, min_seconds=1e-4)
    assert seconds > 0
    # The first long enough sample and two more each make at least one call.
    assert len(calls) >= 3


def test_median_time_settles_before_samples():
    starts = []
    bench.median_time(
        lambda: starts.append(time.perf_counter()),
        repeat=1,
        min_seconds=1e-4,
        settle_seconds=0.05,
    )
    # The untimed calls go on until 0.05 s after the first one began.
    assert starts[-1] - starts[0] >= 0.05
    assert len(starts) > 2


def test_bench_settle_option_prints_pause(capsys):
    status = bench.main(
        ["relu", "--repeat", "1", "--no-torch", "--threads", "2", "--settle", "0.01"]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "each implementation's samples follow 0.01 s of untimed calls" in output


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e12"])
def test_bench_rejects_bad_settle(value, capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["--settle", value])
    assert raised.value.code == 2
    message = capsys.readouterr().err
    assert f"--settle must be from 0 to 60 seconds, got {float(value)}" in message


def test_cases_name_mla_functions():
    for case in bench.CASES:
        assert callable(getattr(mla, case.function))
        assert callable(getattr(reference, case.function))


def test_bench_selected_functions_exit_zero(capsys):
    status = bench.main(
        ["softmax", "cross_entropy_loss", "--repeat", "1", "--no-torch", "--settle", "0"]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "softmax\n" in output
    assert "  (1000, 1000)" in output
    assert "cross_entropy_loss\n" in output
    assert "matmul" not in output
    assert "DIFFERS" not in output
    assert output.rstrip().endswith("reference: the NumPy version in mla.reference")


def test_bench_legend_names_the_python_loop(capsys):
    status = bench.main(["matmul_loop", "--repeat", "1", "--no-torch", "--settle", "0"])
    output = capsys.readouterr().out
    assert status == 0
    assert output.rstrip().endswith("except for matmul_loop: a Python triple loop")


def test_bench_float32_exit_zero(capsys):
    status = bench.main(
        ["softmax", "--repeat", "1", "--no-torch", "--dtype", "float32", "--settle",
         "0"]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "dtype float32" in output


def test_bench_threads_option_limits_then_restores(capsys):
    before = mla.get_num_threads()
    status = bench.main(["relu", "--repeat", "1", "--no-torch", "--threads", "1"])
    output = capsys.readouterr().out
    assert status == 0
    assert "mla threads 1" in output
    assert mla.get_num_threads() == before


def test_bench_saves_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "speedups.png"
    status = bench.main(
        ["softmax", "--repeat", "1", "--no-torch", "--settle", "0", "--plot", str(path)]
    )
    assert status == 0
    assert path.stat().st_size > 0
    assert f"saved the speed-up chart to {path}" in capsys.readouterr().out


def test_bench_rejects_unknown_function(capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["softmaxx"])
    assert raised.value.code == 2
    assert "unknown function softmaxx" in capsys.readouterr().err


def test_bench_matmul_sweep_rejects_function_names(capsys):
    # A first name of matmul selects the sweep, which takes options only.
    with pytest.raises(SystemExit) as raised:
        bench.main(["matmul", "softmax"])
    assert raised.value.code == 2
    message = capsys.readouterr().err
    assert "the matmul sweep takes no function names; got softmax" in message
    assert "python -m mla.bench softmax matmul" in message


def test_bench_matmul_sweep_rejects_unknown_option(capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["matmul", "--bogus"])
    assert raised.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_bench_rejects_zero_threads(capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["--threads", "0"])
    assert raised.value.code == 2
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err


def test_bench_plot_missing_folder_fails_early(capsys):
    with pytest.raises(SystemExit) as error:
        bench.main(["softmax", "--plot", "/nonexistent-folder/chart.png"])
    assert error.value.code == 2
    assert "--plot: folder /nonexistent-folder does not exist" in capsys.readouterr().err


def test_bench_plot_without_matplotlib_fails_early(tmp_path, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec

    def find_spec_without_matplotlib(name, *args, **kwargs):
        if name == "matplotlib":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec_without_matplotlib)
    with pytest.raises(SystemExit) as error:
        bench.main(["softmax", "--plot", str(tmp_path / "chart.png")])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert "--plot needs matplotlib; install it with pip install 'mla[bench]'" in message


def test_bench_training_cases_exit_zero(capsys):
    status = bench.main(
        ["MLP", "--repeat", "1", "--no-torch", "--dtype", "float32", "--settle", "0"]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "MLP\n" in output
    assert "  step (256, 784) 784-256-128-10" in output
    assert "DIFFERS" not in output
    if importlib.util.find_spec("sklearn") is None:
        assert "skipped MLP epoch digits 64-128-10: needs scikit-learn" in output
    else:
        assert "  epoch digits 64-128-10" in output


def test_bench_training_case_with_torch(capsys):
    pytest.importorskip("torch")
    status = bench.main(["MLP", "--repeat", "1", "--threads", "1"])
    output = capsys.readouterr().out
    step_line = next(line for line in output.splitlines() if "step (256, 784)" in line)
    assert status == 0
    # Columns: mla, reference, torch, ref/mla, torch/mla; no "-" for torch.
    assert step_line.split()[-1].endswith("x")
    assert " - " not in step_line


def test_numpy_mlp_matches_mla_gradients():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6))
    y = rng.integers(0, 3, size=20)
    model = mla.MLP([6, 8, 5, 3], seed=0, dtype=np.float64)
    numpy_model = bench_training.NumpyMLP(model.weights, model.biases)

    loss, gradients = model.loss_and_gradients(X, y)
    numpy_loss, numpy_gradients = numpy_model.loss_and_gradients(X, y)

    assert loss == pytest.approx(numpy_loss, rel=1e-12)
    for pair, numpy_pair in zip(gradients, numpy_gradients):
        for gradient, numpy_gradient in zip(pair, numpy_pair):
            np.testing.assert_allclose(gradient, numpy_gradient, rtol=1e-10, atol=1e-14)


def test_numpy_mlp_step_matches_mla_sgd():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((16, 4))
    y = rng.integers(0, 3, size=16)
    model = mla.MLP([4, 6, 3], seed=0, dtype=np.float64)
    numpy_model = bench_training.NumpyMLP(model.weights, model.biases)

    for _ in range(3):
        model.step(model.loss_and_gradients(X, y)[1], lr=0.1)
        numpy_model.step(numpy_model.loss_and_gradients(X, y)[1], lr=0.1)

    for W, numpy_W in zip(model.weights, numpy_model.weights):
        np.testing.assert_allclose(W, numpy_W, rtol=1e-10)


def test_bench_cases_keep_float32():
    rng = np.random.default_rng(0)
    for case in bench.CASES:
        for arg in case.make_args(rng, np.dtype(np.float32)):
            if isinstance(arg, np.ndarray) and arg.dtype.kind == "f":
                assert arg.dtype == np.float32, f"{case.function} {case.shape}"


def test_bench_matmul_sweep_exit_zero(capsys):
    status = bench.main(
        ["matmul", "--sizes", "8,33", "--repeat", "1", "--threads", "1,2",
         "--settle", "0"]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "(33 x 33) @ (33 x 33)" in output
    assert "(256 x 784) @ (784 x 128)" in output
    assert "(784 x 256) @ (256 x 128), A a .T view" in output
    assert "peak float64: " in output
    assert "peak float32: " in output
    assert "GFLOP/s per core over the run" in output
    assert "DIFFERS" not in output


def test_bench_matmul_rows_per_thread_count(capsys):
    status = bench.main(
        ["matmul", "--sizes", "16", "--no-mlp", "--repeat", "1", "--dtype",
         "float32", "--threads", "1,2", "--settle", "0.01"]
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("(16 x 16)")]
    assert status == 0
    assert len(rows) == 2
    assert rows[0].split()[7:9] == ["float32", "1"]
    assert rows[1].split()[7:9] == ["float32", "2"]


def test_bench_matmul_restores_threads(capsys):
    before = mla.get_num_threads()
    bench.main(
        ["matmul", "--sizes", "8", "--no-mlp", "--repeat", "1", "--threads", "3",
         "--settle", "0"]
    )
    capsys.readouterr()
    assert mla.get_num_threads() == before


def test_bench_matmul_saves_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "gflops.png"
    status = bench.main(
        ["matmul", "--sizes", "8,16", "--no-mlp", "--repeat", "1", "--threads", "1",
         "--plot", str(path)]
    )
    assert status == 0
    assert path.stat().st_size > 0
    assert f"saved the GFLOP/s chart to {path}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sizes", "8,x"], "--sizes must be integers separated by commas"),
        (["--sizes", "0"], "--sizes must be positive integers"),
        (["--threads", "0"], "--threads must be positive integers"),
        (["--repeat", "0"], "--repeat must be at least 1, got 0"),
        (["--settle", "-1"], "--settle must be from 0 to 60 seconds, got -1.0"),
        (["--settle", "nan"], "--settle must be from 0 to 60 seconds, got nan"),
    ],
)
def test_bench_matmul_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["matmul", *argv])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_paired_medians_alternate_samples():
    calls = []
    first, second, first_samples, second_samples = bench_matmul.paired_medians(
        lambda: calls.append("a"), lambda: calls.append("b"), repeat=3,
        min_seconds=1e-5,
    )
    assert len(first_samples) == 3
    assert len(second_samples) == 3
    assert first > 0
    assert second > 0
    assert "a" in calls
    assert "b" in calls


def test_bench_attention_suite_small_shapes(capsys):
    status = bench.main(
        [
            "attention",
            "--attention-shape", "4", "8",
            "--attention-shape", "130", "16",
            "--repeat", "1",
            "--no-torch",
            "--settle", "0",
        ]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "attention: 8 heads, float32" in output
    rows = [line for line in output.splitlines() if line.startswith(("(4", "(130"))]
    assert [row.split()[:4] for row in rows] == [
        ["(4,", "8)", "no", "forward"],
        ["(4,", "8)", "no", "backward"],
        ["(4,", "8)", "yes", "forward"],
        ["(4,", "8)", "yes", "backward"],
        ["(130,", "16)", "no", "forward"],
        ["(130,", "16)", "no", "backward"],
        ["(130,", "16)", "yes", "forward"],
        ["(130,", "16)", "yes", "backward"],
    ]
    assert "DIFFERS" not in output
    # The suite alone does not run the function table.
    assert "function / shape" not in output


def test_bench_attention_suite_without_reference(capsys):
    status = bench.main(
        [
            "attention",
            "--attention-shape", "64", "8",
            "--repeat", "1",
            "--no-torch",
            "--no-reference",
            "--settle", "0",
            "--dtype", "float64",
        ]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "float64" in output
    assert "numpy" not in output.split("attention:")[1]


def test_bench_peak_memory_counts_allocation():
    from mla import bench_attention

    # 96 MiB is above glibc's largest mmap threshold (32 MiB), so the pages
    # are new even after earlier tests leave freed memory in the heap.
    size = 96 * 2**20
    result, peak = bench_attention.peak_memory(lambda: np.ones(size // 8))
    assert result.nbytes == size
    if peak is None:
        pytest.skip("no writable /proc/self/clear_refs")
    assert size - 2**20 < peak < 2 * size


def test_bench_rejects_empty_attention_shape(capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["attention", "--attention-shape", "0", "64"])
    assert raised.value.code == 2
    assert "--attention-shape needs L and D of at least 1" in capsys.readouterr().err
