"""Tests of the benchmark command, ``python -m mla.bench``.

They check the timing helpers, the command line and the output on small
cases. No test asserts on how long anything takes.
"""

import pytest

import mla
from mla import bench, bench_matmul, reference


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


def test_cases_name_mla_functions():
    for case in bench.CASES:
        assert callable(getattr(mla, case.function))
        assert callable(getattr(reference, case.function))


def test_bench_selected_functions_exit_zero(capsys):
    status = bench.main(
        ["softmax", "cross_entropy_loss", "--repeat", "1", "--no-torch"]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "softmax\n" in output
    assert "  (1000, 1000)" in output
    assert "cross_entropy_loss\n" in output
    assert "matmul" not in output
    assert "DIFFERS" not in output


def test_bench_float32_exit_zero(capsys):
    status = bench.main(
        ["softmax", "--repeat", "1", "--no-torch", "--dtype", "float32"]
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
    status = bench.main(["softmax", "--repeat", "1", "--no-torch", "--plot", str(path)])
    assert status == 0
    assert path.stat().st_size > 0
    assert f"saved the speed-up chart to {path}" in capsys.readouterr().out


def test_bench_rejects_unknown_function(capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["softmaxx"])
    assert raised.value.code == 2
    assert "unknown function softmaxx" in capsys.readouterr().err


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
        (["--settle", "-1"], "--settle must be at least 0, got -1.0"),
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
