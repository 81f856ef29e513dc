"""The optional compiled fast path (altlink/_speedups.c; docs/dependencies.md): everything
else is in pyproject.toml. Built with the sha256 of its source, which altlink/speedups.py
compares with the source shipped in the package before using it; ``optional``: where it
cannot be built (no compiler, no Python.h), the install goes on and altlink runs its Python."""
import hashlib
import os

from setuptools import Extension, setup

_SOURCE = os.path.join("altlink", "_speedups.c")
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), _SOURCE), "rb") as f:
    _SHA256 = hashlib.sha256(f.read()).hexdigest()

setup(ext_modules=[Extension(
    "altlink._speedups", [_SOURCE], optional=True,
    define_macros=[("ALTLINK_SPEEDUPS_SHA256", f'"{_SHA256}"')],
    extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
