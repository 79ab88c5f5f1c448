"""Run the tour of the article's sections: ``python -m mla``."""

import os
import sys

from mla.tour import main

try:
    status = main()
    sys.stdout.flush()
except BrokenPipeError:
    # The reader closed the pipe (``python -m mla | head``): stop quietly,
    # and keep Python from failing again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    status = 1
sys.exit(status)
