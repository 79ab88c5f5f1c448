"""Build the C extension ``mla._core``.

The kernels are portable C11 built with ``-O3`` and no ``-march`` flag: the
SIMD variants carry per-function target attributes and are chosen at import.
OpenMP is used when the compiler accepts ``-fopenmp``; without it the
kernels run on one thread.
"""

import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
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


def usable_cpus():
    """Return the number of CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def compile_in_parallel(compiler, jobs):
    """Make ``compiler.compile`` run up to ``jobs`` compiler processes at once.

    setuptools compiles the sources of one extension one after another,
    and mla's extension has about thirty. The replacement does what
    ``CCompiler.compile`` does, one source per worker thread. Only the Unix
    compiler class is changed: it implements ``_compile``, the one-source
    step, where others (MSVC) override ``compile`` as a whole and inherit
    an empty ``_compile``.
    """
    steps = ("_setup_compile", "_get_cc_args", "_compile")
    if compiler.compiler_type != "unix" or jobs <= 1:
        return
    if not all(hasattr(compiler, step) for step in steps):
        return

    def compile(sources, output_dir=None, macros=None, include_dirs=None,
                debug=False, extra_preargs=None, extra_postargs=None,
                depends=None):
        macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs
        )
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

        def compile_one(obj):
            source, ext = build[obj]
            compiler._compile(obj, source, ext, cc_args, extra_postargs, pp_opts)

        with ThreadPoolExecutor(jobs) as pool:
            # list() re-raises the first compiler error.
            list(pool.map(compile_one, [obj for obj in objects if obj in build]))
        return objects

    compiler.compile = compile


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
        compile_in_parallel(self.compiler, usable_cpus())
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
