"""Capability tables: Linux's ``arch/arm64/tools/cpucaps`` format, or the header made from it.

The text table is numbered as Linux's ``gen-cpucaps.awk`` numbers it: ``#`` starts a comment,
blank lines are skipped, every other line is one name matching ``[A-Za-z0-9_]+`` and the n-th
such line is capability n. A generated header (``#define ALT_CAP_<NAME> <n>`` ...
``#define ALT_NCAPS <count>``) is accepted as input too.
"""
from __future__ import annotations

import os

from altlink.errors import AltlinkError
from altlink.values import Frozen

# Linux's own generated header (arch/arm64/include/generated/asm/cpucaps.h) is read too:
# ``#define ARM64_<NAME> <n>`` and ``#define ARM64_NCAPS <count>``.
_LINUX_NAMES = {"ARM64_NCAPS": "ALT_NCAPS"}
_LINUX_NOT_CAPS = {"ARM64_NCAPS", "ARM64_CB_SHIFT", "ARM64_CB_BIT"}
# A name's characters (``[A-Za-z0-9_]``): a line that these strip to nothing is a name.
_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
# A ``#define NAME VALUE`` line, as ``re.match`` reads it with this pattern (``define_match``).
_DEFINE_PATTERN = r"\s*#\s*define\s+(\w+)\s+(\S+)"


def define_match(line: str) -> tuple[str, str] | None:
    r"""``re.match(_DEFINE_PATTERN, line).groups()``, or None where it does not match, read
    with str's own methods (``re``, with ``enum``, is 3 ms of each run that imports it: a
    kernel module's link reads Linux's generated header). Their whitespace is ``\s``'s, and
    ``isalnum`` and ``_`` are ``\w``'s (tests/test_startup.py compares them)."""
    rest = line.lstrip()
    if rest[:1] != "#":
        return None
    rest = rest[1:].lstrip()
    if rest[:6] != "define" or not rest[6:7].isspace():
        return None
    words = rest[6:].split(None, 2)  # the name, the value (\S+), what follows
    # (\w+ then \s+: the name's word is all word characters, else the pattern fails at the
    # first that is not, which is no space)
    if len(words) < 2 or not words[0].replace("_", "a").isalnum():
        return None
    return words[0], words[1]


class CapTable(Frozen):
    """A capability table: its names in number order, and the file it was read from."""

    _fields = ("names", "path")
    names: tuple[str, ...]
    path: str

    def __init__(self, names: tuple[str, ...], path: str = "") -> None:
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "path", path)

    @property
    def ncaps(self) -> int:
        return len(self.names)

    def name(self, cap: int) -> str | None:
        return self.names[cap] if 0 <= cap < len(self.names) else None

    def number(self, name: str) -> int | None:
        try:
            return self.names.index(name)
        except ValueError:
            return None


def parse_text(text: str, path: str = "<table>") -> CapTable:
    """Parse a cpucaps-style table; an error names the file and the line."""
    if _looks_like_header(text):
        return parse_header(text, path)
    names: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        if body.strip(_NAME_CHARS):  # (a character that is not a name's)
            raise AltlinkError(f"{path}:{lineno}: not a capability name: {body!r} "
                               "(one name of [A-Za-z0-9_] per line)")
        if body in seen:
            raise AltlinkError(f"{path}:{lineno}: capability {body} already defined on line "
                               f"{seen[body]}")
        seen[body] = lineno
        names.append(body)
    return CapTable(tuple(names), path)


def _looks_like_header(text: str) -> bool:
    if "define" not in text:  # (no line can match the pattern)
        return False
    for line in text.splitlines():
        m = define_match(line)
        if m and (m[0] in ("ALT_NCAPS", "ARM64_NCAPS") or m[0].startswith("ALT_CAP_")):
            return True
    return False


def parse_header(text: str, path: str = "<header>") -> CapTable:
    """Read back a header written by :func:`header` (or one with the same defines)."""
    numbered: dict[int, str] = {}
    ncaps = None
    for lineno, line in enumerate(text.splitlines(), 1):
        m = define_match(line)
        if not m:
            continue
        key, val = m
        key = _LINUX_NAMES.get(key, key)
        if key.startswith("ARM64_") and key not in _LINUX_NOT_CAPS:
            key = "ALT_CAP_" + key[len("ARM64_"):]
        if key != "ALT_NCAPS" and not key.startswith("ALT_CAP_"):
            continue
        try:
            n = int(val.rstrip("uUlL"), 0)
        except ValueError:
            raise AltlinkError(f"{path}:{lineno}: {key} is not a number: {val!r}") from None
        if key == "ALT_NCAPS":
            ncaps = n
        else:
            if n in numbered:
                raise AltlinkError(f"{path}:{lineno}: capability number {n} given twice")
            numbered[n] = key[len("ALT_CAP_"):]
    if ncaps is None:
        raise AltlinkError(f"{path}: no '#define ALT_NCAPS <count>' in the capability header")
    # The numbers must be exactly 0..NCAPS-1 (compared without listing 0..NCAPS-1: the count
    # is the file's, and may be huge).
    if ncaps != len(numbered) or any(not 0 <= i < ncaps for i in numbered):
        raise AltlinkError(f"{path}: ALT_NCAPS is {ncaps} but the header defines capability "
                           f"numbers {sorted(numbered)}")
    return CapTable(tuple(numbered[i] for i in range(ncaps)), path)


def load(path: str) -> CapTable:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read the capability table: {e.strerror}"
                           f"{_renamed_hint(path)}") from None
    except UnicodeDecodeError:
        raise AltlinkError(f"{path}: the capability table is not UTF-8 text") from None
    return parse_text(text, path)


# Linux's generated capability header: cpucaps.h in Linux 6.1, cpucap-defs.h in later kernels
# such as 6.12 (whose asm/cpucaps.h is a header of C code, not generated).
_LINUX_HEADERS = ("cpucaps.h", "cpucap-defs.h")


def _renamed_hint(path: str) -> str:
    """Where a missing Linux header has its other name beside it: which file to give."""
    folder, name = os.path.split(path)
    if name not in _LINUX_HEADERS:
        return ""
    other = _LINUX_HEADERS[1 - _LINUX_HEADERS.index(name)]
    if not os.path.isfile(os.path.join(folder, other)):
        return ""
    return (f" (this kernel generates {other}: --cap-table "
            f"{os.path.join(folder, other)})")


def header(table: CapTable, guard: str = "ALTLINK_CAPS_H") -> str:
    """The C header for a table: a define per capability, and ALT_NCAPS."""
    src = f" from {os.path.basename(table.path)}" if table.path else ""
    lines = [f"/* Generated by altlink{src}: do not edit. */",
             f"#ifndef {guard}", f"#define {guard}", ""]
    lines += [f"#define ALT_CAP_{name} {i}" for i, name in enumerate(table.names)]
    lines += ["", f"#define ALT_NCAPS {table.ncaps}", "", f"#endif /* {guard} */", ""]
    return "\n".join(lines)
