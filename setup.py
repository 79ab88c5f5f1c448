"""Build the C extension ``mla._core``.

The kernels are portable C11 built with ``-O3`` and no ``-march`` flag: the
SIMD variants carry per-function target attributes and are chosen at import.
OpenMP is used when the compiler accepts ``-fopenmp``; without it the
kernels run on one thread.
"""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
SOURCES = sorted(str(p.relative_to(HERE)) for p in (HERE / "csrc").glob("*.c"))
HEADERS = sorted(str(p.relative_to(HERE)) for p in (HERE / "csrc").glob("*.h"))
WARNINGS = ["-Wall", "-Wextra", "-Wno-unknown-pragmas"]


def compiler_accepts(compiler, flag):
    """Return True if ``compiler`` compiles and links a program with ``flag``."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=[flag])
            compiler.link_executable(
                objects, "probe", output_dir=tmp, extra_postargs=[flag]
            )
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """Add OpenMP when the compiler supports it, and the GCC/Clang flags."""

    def build_extensions(self):
        unix = self.compiler.compiler_type == "unix"
        openmp = unix and compiler_accepts(self.compiler, "-fopenmp")
        for ext in self.extensions:
            if unix:
                ext.extra_compile_args += ["-O3", "-std=c11", *WARNINGS]
                # Linking libm binds exp and expf to their current glibc
                # versions. Unlinked, they bind to the 2.2.5 versions, whose
                # error-handling wrapper made expf about twice as slow.
                ext.libraries.append("m")
                if os.environ.get("MLA_WERROR"):
                    ext.extra_compile_args.append("-Werror")
            if openmp:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
                ext.define_macros.append(("MLA_HAVE_OPENMP", "1"))
            else:
                print("mla: building without OpenMP", file=sys.stderr)
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "mla._core",
            sources=SOURCES,
            depends=HEADERS,
            include_dirs=[np.get_include(), "csrc"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION")],
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
