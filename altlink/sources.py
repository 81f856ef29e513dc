"""Source lines for findings and manifests, from DWARF line tables through ``addr2line``.

binutils' addr2line reads relocatable objects correctly (``-j SECTION`` makes addresses
section-relative: a compiled object's line table is in section offsets), handles every DWARF
version the compilers emit, and answers thousands of addresses in one call. It runs only for
files that carry ``.debug_line`` and only when something needs a line.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections import defaultdict
from dataclasses import replace

from altlink.findings import Finding

ADDR2LINE = ("aarch64-linux-gnu-addr2line", "addr2line")


def _addr2line() -> str | None:
    for name in ADDR2LINE:
        path = shutil.which(name)
        if path:
            return path
    return None


def _has_line_table(path: str) -> bool:
    try:
        from altlink.elf import read_elf

        elf = read_elf(path)
    except Exception:  # an archive member or an unreadable file: no source lines
        return False
    try:
        return ".debug_line" in elf.sections_by_name
    finally:
        elf.close()


def _relative(name: str, base: str) -> str:
    if os.path.isabs(name):
        rel = os.path.relpath(name, base)
        if not rel.startswith(".." + os.sep + ".."):
            return rel
    return name


def lookup(path: str, section: str, offsets: list[int], base: str | None = None
           ) -> dict[int, str]:
    """``file:line`` for each offset of ``section`` (or address, with section ``""``)."""
    tool = _addr2line()
    if tool is None or not offsets or not _has_line_table(path):
        return {}
    cmd = [tool, "-e", path]
    if section:
        cmd += ["-j", section]
    uniq = sorted(set(offsets))
    try:
        proc = subprocess.run(cmd, input="".join(f"{o:#x}\n" for o in uniq).encode(),
                              capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return {}
    lines = proc.stdout.decode("utf-8", "replace").splitlines()  # file names are bytes
    out = {}
    base = base or os.getcwd()
    for off, line in zip(uniq, lines):
        name, _, num = line.rpartition(":")
        num = num.split(" ", 1)[0]
        if name and name != "??" and num.isdigit() and num != "0":
            out[off] = f"{_relative(name, base)}:{num}"
    return out


def attach(findings: list[Finding], base: str | None = None,
           paths: dict[str, str] | None = None) -> list[Finding]:
    """Findings with ``source`` filled in where the site's file has a line table. ``paths``
    maps a file as findings name it to where it is on disk (a link's temporary image)."""
    paths = paths or {}
    wanted: dict[tuple[str, str], list[int]] = defaultdict(list)
    for f in findings:
        if f.site is not None and f.source is None:
            wanted[(f.file, f.site[0])].append(f.site[1])
    if not wanted:
        return findings
    found = {key: lookup(paths.get(key[0], key[0]), key[1], offs, base)
             for key, offs in wanted.items()}
    out = []
    for f in findings:
        if f.site is not None and f.source is None:
            src = found.get((f.file, f.site[0]), {}).get(f.site[1])
            if src:
                f = replace(f, source=src)
        out.append(f)
    return out


def site_lines(path: str, addresses: list[int], base: str | None = None):
    """A ``lookup(address)`` for a manifest's sites in a linked image, all read in one call."""
    found = lookup(path, "", addresses, base)
    return found.get
