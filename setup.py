"""The optional compiled fast paths (docs/dependencies.md): ``altlink/_speedups.c`` (making an
object's record) and ``altlink/_postlink.c`` (a link's work after its linker); everything else
is in pyproject.toml. Each is built with the sha256 of its source, which altlink/speedups.py
compares with the source shipped in the package before using it; ``optional``: where one
cannot be built (no compiler, no Python.h), the install goes on and altlink runs its Python."""
import hashlib
import os

from setuptools import Extension, setup

_HERE = os.path.dirname(os.path.abspath(__file__))


def _extension(name: str, macro: str) -> Extension:
    source = os.path.join("altlink", f"{name}.c")
    with open(os.path.join(_HERE, source), "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    return Extension(
        f"altlink.{name}", [source], optional=True, define_macros=[(macro, f'"{sha256}"')],
        extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"])


setup(ext_modules=[_extension("_speedups", "ALTLINK_SPEEDUPS_SHA256"),
                   _extension("_postlink", "ALTLINK_SOURCE_SHA256")])
