"""Argument checks shared by mla's command-line programs."""

import importlib.util
import os


def check_plot_option(parser, path, extra):
    """Exit through ``parser.error`` unless a chart can be saved to ``path``.

    The programs check ``--plot FILE`` before their long work, so that a
    missing folder or a missing matplotlib is reported at once, not after
    the run. ``extra`` names the optional dependency group that installs
    matplotlib (``bench`` or ``train``).
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"--plot: folder {folder} does not exist")
    if importlib.util.find_spec("matplotlib") is None:
        parser.error(
            f"--plot needs matplotlib; install it with pip install 'mla[{extra}]'"
        )
