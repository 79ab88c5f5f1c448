"""Tests of the benchmark command, ``python -m mla.bench``.

They check the timing helpers, the command line and the output on small
cases. No test asserts on how long anything takes.
"""

import pytest

import mla
from mla import bench, reference


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


def test_bench_attention_suite_small_shapes(capsys):
    status = bench.main(
        [
            "attention",
            "--attention-shape", "4", "8",
            "--attention-shape", "130", "16",
            "--repeat", "1",
            "--no-torch",
        ]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "attention: 8 heads, float32" in output
    rows = [line for line in output.splitlines() if line.startswith(("(4", "(130"))]
    assert [row.split()[:3] for row in rows] == [
        ["(4,", "8)", "no"],
        ["(4,", "8)", "yes"],
        ["(130,", "16)", "no"],
        ["(130,", "16)", "yes"],
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
            "--dtype", "float64",
        ]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "float64" in output
    assert "numpy" not in output.split("attention:")[1]


def test_bench_peak_memory_counts_allocation():
    import numpy as np

    from mla import bench_attention

    result, peak = bench_attention.peak_memory(lambda: np.ones(32 * 2**20 // 8))
    assert result.nbytes == 32 * 2**20
    if peak is None:
        pytest.skip("no writable /proc/self/clear_refs")
    assert 30 * 2**20 < peak < 64 * 2**20


def test_bench_rejects_empty_attention_shape(capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["attention", "--attention-shape", "0", "64"])
    assert raised.value.code == 2
    assert "--attention-shape needs L and D of at least 1" in capsys.readouterr().err
