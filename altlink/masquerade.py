"""altlink under a tool's own name, as ccache is often used: a symbolic link to ``altlink``
named as the linker (``aarch64-linux-gnu-ld``, ``ld.lld``, or the compiler driver that links,
``aarch64-linux-gnu-gcc``), in a directory put first in ``PATH``, makes every run of that
tool a run of ``altlink link -- TOOL ...``, where TOOL is the next program of that name in
``PATH``. For builds that take a tool's path, not a command (EDK2's ``DLINK_PATH``, a Bazel
toolchain's tool paths, a vendor SDK's fixed names), or that cannot be edited at all. The
options come from the environment (``ALTLINK_ABI``, ``ALTLINK_CAP_TABLE``, ...), as they can
for the launcher form.

A run of the tool by a program altlink runs (a wrapper script that finds its linker in
``PATH``, which leads back here) is the next such tool in ``PATH``, unchanged:
``ALTLINK_UNDER`` in the environment says that altlink runs above, and which tools it ran.
"""
from __future__ import annotations

import os
import sys

from altlink.filekind import COMPILED_SUFFIXES

# Set in the environment of whatever altlink runs: the tools it ran under a tool's name (none
# where it ran as itself), which a run of altlink under a tool's name below it passes over,
# running the next one unchanged (no second check of one link, no loop through PATH).
UNDER = "ALTLINK_UNDER"


def words(argv: list[str]) -> list[str] | int | None:
    """``altlink``'s arguments for a process started as ``argv``: None where it runs as
    itself (``altlink``, ``python -m altlink``); under another name, ``link -- TOOL ARGS``
    (TOOL found in ``PATH``), or an exit status where it ran the tool unchanged or found none
    (its one-line message written). Marks the environment for what altlink runs."""
    name = os.path.basename(argv[0]) if argv else ""
    under = os.environ.get(UNDER)
    if not name or name.startswith("altlink") or name == "__main__.py" or name == "-c":
        os.environ[UNDER] = under or ""
        return None
    ran = under.split(os.pathsep) if under else []
    real = find_tool(name, [argv[0], *ran], os.environ.get("PATH", os.defpath))
    if real is None:
        sys.stderr.write(f"altlink: {argv[0]}: altlink runs as {name} and finds no other "
                         f"{name} in PATH to run\n")
        return 3  # as a linker that cannot be run
    os.environ[UNDER] = os.pathsep.join([*ran, real])
    if under is not None or _unchanged(argv[1:]):  # the tool itself, at once
        from altlink import launcher

        launcher.exec_unchanged([real, *argv[1:]])
        sys.stderr.write(f"altlink: {real}: cannot run it\n")
        return 3
    return ["link", "--", real, *argv[1:]]


def _unchanged(args: list[str]) -> bool:
    """Whether a command runs the tool unchanged however altlink reads it, so that it may be
    handed over before altlink's command line is imported: a probe (``--version``,
    ``-print-prog-name=ld``), or a compiler driver's compile of sources that does not link
    (``-c``, ``-S``, ``-E``): what each compile of a build gives altlink under the driver's
    name. (A linker's ``-c`` is its MRI script, and a link names no source.)"""
    from altlink import launcher

    if launcher.is_probe(args):
        return True
    return not launcher.links(["", *args]) and any(a.endswith(COMPILED_SUFFIXES) for a in args)


def run() -> None:
    """The ``altlink`` command: ``words``, then ``cli.run`` (the command line's imports only
    where altlink is not handing its process to the tool it runs as)."""
    got = words(sys.argv)
    if type(got) is int:
        sys.stderr.flush()
        os._exit(got)
    from altlink import cli

    cli.run(got)


def find_tool(name: str, passed: list[str], path: str) -> str | None:
    """The first ``name`` in ``path`` that is none of the files ``passed`` (altlink under
    that name, as a symbolic or hard link to it, and the tools run already)."""
    skip = set()
    for p in passed:
        try:
            st = os.stat(p)
        except OSError:
            continue
        skip.add((st.st_dev, st.st_ino))
    for d in path.split(os.pathsep):
        cand = os.path.join(d or ".", name)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in skip or not os.path.isfile(cand) or \
                not os.access(cand, os.X_OK):
            continue
        return os.path.abspath(cand)
    return None
