"""Tests of the digits training script, ``python -m mla.train_digits``.

They train on scikit-learn's bundled digits set (no download). No test
asserts on how long anything takes.
"""

import re

import numpy as np
import pytest

from mla import train_digits

pytest.importorskip("sklearn")


def test_train_digits_reaches_accuracy(capsys):
    status = train_digits.main(["--no-progress"])

    output = capsys.readouterr()
    assert status == 0
    assert output.err == ""
    assert "network 64 -> 128 -> 10, relu, sgd" in output.out
    match = re.search(r"test accuracy (\d\.\d+) \((\d+) of 450 correct\)", output.out)
    assert match is not None, output.out
    assert float(match.group(1)) >= 0.96


def test_train_digits_is_repeatable(capsys):
    arguments = ["--no-progress", "--epochs", "3", "--seed", "5"]
    train_digits.main(arguments)
    first = capsys.readouterr().out
    train_digits.main(arguments)
    second = capsys.readouterr().out

    def accuracy_line(text):
        return next(line for line in text.splitlines() if "test accuracy" in line)

    assert accuracy_line(first) == accuracy_line(second)


def test_train_digits_progress_bar_on_stderr(capsys):
    pytest.importorskip("tqdm")

    train_digits.main(["--epochs", "2", "--hidden", "16"])

    output = capsys.readouterr()
    assert "epoch 2/2" in output.err
    assert "loss=" in output.err


def test_train_digits_saves_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "digits.png"

    status = train_digits.main(
        ["--no-progress", "--epochs", "2", "--hidden", "8", "--plot", str(path)]
    )

    assert status == 0
    assert path.stat().st_size > 0
    assert f"saved the loss curve and misclassified digits to {path}" in (
        capsys.readouterr().out
    )


def test_load_data_split_and_scale():
    X_train, X_test, y_train, y_test = train_digits.load_data(seed=0)

    assert X_train.shape == (1347, 64)
    assert X_test.shape == (450, 64)
    assert X_train.dtype == np.float32
    assert 0.0 <= X_train.min()
    assert X_train.max() <= 1.0
    # Stratified: every class is in the test set in about its share.
    assert np.bincount(y_test, minlength=10).min() >= 40


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--lr", "0"], "--lr must be greater than 0, got 0.0"),
        (["--hidden", "16", "0"], "--hidden sizes must be at least 1, got [16, 0]"),
        (
            ["--plot", "/nonexistent-folder/digits.png"],
            "--plot: folder /nonexistent-folder does not exist",
        ),
    ],
    ids=["epochs", "batch-size", "lr", "hidden", "plot-folder"],
)
def test_train_digits_rejects_invalid_options(arguments, message, capsys):
    with pytest.raises(SystemExit) as error:
        train_digits.main(arguments)

    assert error.value.code == 2
    assert message in capsys.readouterr().err
