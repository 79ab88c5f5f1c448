"""mla: C kernels for the linear algebra of machine learning.

Every function takes NumPy arrays (or anything ``numpy.asarray`` accepts)
and runs a kernel written in C. Real input is computed in its own precision:
float32 stays float32, float64 stays float64, integers, bools and long
double become float64, and float16 is computed and returned as float32. ``mla.reference`` contains the
same functions in plain NumPy.

Environment variables read at import:

``MLA_KERNEL``
    ``generic``, ``avx2`` or ``avx512``: force one SIMD level of the kernels
    instead of the best one this CPU supports.
``MLA_NUM_THREADS``
    default thread count of the kernels (else OpenMP's default, which
    ``OMP_NUM_THREADS`` and threadpoolctl control).
"""

import os as _os

from mla import _core
from mla._core import (
    cosine_similarity,
    cosine_similarity_matrix,
    cross_entropy_loss,
    dense_backward,
    forward_layer,
    forward_layer_batch,
    get_num_threads,
    linear_regression,
    log_softmax,
    matmul,
    matmul_loop,
    relu,
    relu_derivative,
    scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
    set_num_threads,
    sigmoid,
    sigmoid_derivative,
    simple_backprop,
    softmax,
    softmax_cross_entropy,
)
from mla import _docstrings, reference
from mla.mlp import MLP

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "cosine_similarity",
    "cosine_similarity_matrix",
    "cross_entropy_loss",
    "dense_backward",
    "forward_layer",
    "forward_layer_batch",
    "get_num_threads",
    "linear_regression",
    "log_softmax",
    "matmul",
    "matmul_loop",
    "reference",
    "relu",
    "relu_derivative",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_backward",
    "set_num_threads",
    "show_config",
    "sigmoid",
    "sigmoid_derivative",
    "simple_backprop",
    "softmax",
    "softmax_cross_entropy",
]


def _apply_environment():
    level = _os.environ.get("MLA_KERNEL", "").strip().lower()
    if level:
        try:
            _core._set_kernel_level(level)
        except ValueError as exc:
            raise ImportError(f"mla: invalid MLA_KERNEL={level!r}: {exc}") from None

    threads = _os.environ.get("MLA_NUM_THREADS", "").strip()
    if threads:
        try:
            set_num_threads(int(threads))
        except ValueError:
            raise ImportError(
                "mla: MLA_NUM_THREADS must be an integer between 1 and 4096; "
                f"got {threads!r}"
            ) from None


def show_config():
    """Print how mla was built and what it runs on.

    Prints the compiler, whether OpenMP is enabled, the SIMD level in use
    (and those this CPU supports) and the thread count of the kernels.

    Examples
    --------
    >>> import mla
    >>> mla.show_config()  # doctest: +SKIP
    mla 0.1.0
      compiler:          gcc 12.2.0
      openmp:            yes
      kernel level:      avx2 (supported: generic, avx2)
      threads:           2
    """
    config = _core._config()
    print(f"mla {__version__}")
    print(f"  compiler:          {config['compiler']}")
    print(f"  openmp:            {'yes' if config['openmp'] else 'no'}")
    supported = ", ".join(config["supported_levels"])
    print(f"  kernel level:      {config['kernel_level']} (supported: {supported})")
    print(f"  threads:           {config['num_threads']}")


_apply_environment()
_docstrings.attach(_core)
