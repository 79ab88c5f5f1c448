"""Train mla.MLP on handwritten digits: ``python -m mla.train_digits``.

The data is scikit-learn's bundled copy of the UCI optical handwritten digits
(1797 images of 8 x 8 pixels with values 0 to 16, ten classes), loaded with
``sklearn.datasets.load_digits`` from the installed package, with no
download. Pixels are scaled to [0, 1], a stratified quarter of the images is
held out for testing, and a network 64 -> 128 -> 10 (relu) is trained with
SGD with momentum. The script prints the training time and the test
accuracy, and ``--plot FILE`` saves the training loss per epoch beside a few
misclassified test digits.

The seed fixes the split, the initial weights and the shuffling, so a run is
repeatable on one machine.
"""

import argparse
import importlib.util
import sys
import time

import numpy as np

import mla
from mla._cli import check_plot_option

__all__ = ["load_data", "main", "save_plot"]

# Misclassified test digits drawn by --plot, at most.
PLOT_DIGITS = 8


def load_data(seed, test_size=0.25, dtype=np.float32):
    """Return ``(X_train, X_test, y_train, y_test)`` of the digits set.

    Pixels are divided by 16, so features lie in [0, 1]. The split is
    stratified by class and drawn with ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.data / 16.0).astype(dtype)
    return train_test_split(
        X, digits.target, test_size=test_size, random_state=seed, stratify=digits.target
    )


def save_plot(path, model, X_test, y_test, predictions):
    """Save the training loss and a few misclassified test digits to ``path``.

    The figure is drawn without pyplot, so it needs no display.
    """
    from matplotlib.figure import Figure

    wrong = np.flatnonzero(predictions != y_test)[:PLOT_DIGITS]
    figure = Figure(figsize=(11, 3.6), layout="constrained")
    loss_area, digits_area = figure.subfigures(1, 2, width_ratios=[1, 1.6])

    axes = loss_area.subplots()
    epochs = np.arange(1, len(model.loss_history) + 1)
    axes.plot(epochs, model.loss_history, marker="o", markersize=3)
    axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("mean training loss (cross-entropy)")
    axes.set_title("training loss")

    digit_axes = digits_area.subplots(2, PLOT_DIGITS // 2).ravel()
    for position, axes in enumerate(digit_axes):
        axes.set_axis_off()
        if position < len(wrong):
            index = wrong[position]
            axes.imshow(X_test[index].reshape(8, 8), cmap="gray_r")
            axes.set_title(
                f"true {y_test[index]}, got {predictions[index]}", fontsize=9
            )
    title = f"misclassified test digits ({np.sum(predictions != y_test)} in all)"
    if len(wrong) == 0:
        title = "no misclassified test digits"
    digits_area.suptitle(title)
    figure.savefig(path, dpi=100)


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m mla.train_digits",
        description=(
            "Train an mla.MLP on scikit-learn's bundled 8x8 handwritten digits "
            "and print the test accuracy."
        ),
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=30,
        help="passes over the training set (default: 30)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        metavar="N",
        help="samples per training step (default: 32)",
    )
    parser.add_argument(
        "--lr", type=float, default=0.05, help="learning rate (default: 0.05)"
    )
    parser.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=[128],
        metavar="UNITS",
        help="width of each hidden layer (default: 128)",
    )
    parser.add_argument(
        "--activation",
        choices=("relu", "sigmoid", "tanh"),
        default="relu",
        help="activation of the hidden layers (default: relu)",
    )
    parser.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default="sgd",
        help="sgd (momentum 0.9) or adam (default: sgd)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the split, the initial weights and the shuffling (default: 0)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="precision of the network (default: float32)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="save the loss curve and misclassified digits to FILE (needs matplotlib)",
    )
    args = parser.parse_args(argv)

    for name in ("epochs", "batch_size"):
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not args.lr > 0:
        parser.error(f"--lr must be greater than 0, got {args.lr}")
    if min(args.hidden) < 1:
        parser.error(f"--hidden sizes must be at least 1, got {args.hidden}")
    if importlib.util.find_spec("sklearn") is None:
        parser.error(
            "the digits data set comes with scikit-learn, which is not installed; "
            "install it with pip install 'mla[train]'"
        )
    if args.plot is not None:
        check_plot_option(parser, args.plot, "train")
    return args


def main(argv=None):
    """Train on the digits, print the test accuracy and return 0.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name; ``sys.argv[1:]``
        when None.
    """
    args = _parse_args(argv)
    dtype = np.dtype(args.dtype)
    X_train, X_test, y_train, y_test = load_data(args.seed, dtype=dtype)
    sizes = [X_train.shape[1], *args.hidden, 10]
    model = mla.MLP(
        sizes, args.activation, seed=args.seed, dtype=dtype, optimizer=args.optimizer
    )
    print(
        f"digits: {len(X_train)} training and {len(X_test)} test images of 8x8 pixels"
    )
    print(
        f"network {' -> '.join(map(str, sizes))}, {args.activation}, "
        f"{args.optimizer}, lr {args.lr}, batch {args.batch_size}, "
        f"{args.epochs} epochs, {dtype.name}, seed {args.seed}, "
        f"mla threads {mla.get_num_threads()}"
    )

    start = time.perf_counter()
    model.fit(
        X_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - start

    predictions = model.predict(X_test)
    accuracy = float(np.mean(predictions == y_test))
    print(
        f"training time {seconds:.2f} s, final training loss {model.loss_history[-1]:.4f}"
    )
    print(
        f"test accuracy {accuracy:.4f} "
        f"({np.sum(predictions == y_test)} of {len(y_test)} correct)"
    )

    if args.plot:
        save_plot(args.plot, model, X_test, y_test, predictions)
        print(f"saved the loss curve and misclassified digits to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
