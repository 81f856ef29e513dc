"""What a GNU linker script adds to a link: the files of its ``INPUT`` and ``GROUP`` commands
(``AS_NEEDED`` lists too, and ``-lNAME``), and the scripts it ``INCLUDE``s.

Only those commands are read; the rest of the script is the linker's. Names are resolved as
GNU ld does: a file name as given (relative to the current directory), else in the ``-L``
directories; an ``INCLUDE``d script in the current directory, the including script's, then the
``-L`` directories. A name that resolves to nothing is left to the linker to report.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable

MAX_DEPTH = 16  # INCLUDE nesting, as a guard against a script that includes itself
MAX_SIZE = 16 << 20  # a linker script is text of a few kilobytes; more is not one

_PUNCT = str.maketrans({c: f" {c} " for c in "(),;"})


class Found:
    """``inputs``: in the order the scripts name them; ``scripts``: every script read, the
    first too. (Read before the linker starts: no dataclass, whose import is 8 ms.)"""

    __slots__ = ("inputs", "scripts")

    def __init__(self) -> None:
        self.inputs: list[str] = []
        self.scripts: list[str] = []


def without_comments(text: str) -> str:
    """The script with each comment (``/*`` to the first ``*/`` after it, or to the end) a
    space."""
    parts: list[str] = []
    pos = 0
    while True:
        i = text.find("/*", pos)
        if i < 0:
            parts.append(text[pos:])
            break
        parts.append(text[pos:i])
        parts.append(" ")
        j = text.find("*/", i + 2)
        if j < 0:
            break
        pos = j + 2
    return "".join(parts)


def tokens(text: str) -> list[str]:
    """The script's words: comments out, quoted strings whole (without their quotes), the
    punctuation ``( ) , ;`` a word each. Read with ``str`` methods, not ``re`` (whose import
    would delay the linker's start by 2 ms: the scripts of firmware links INCLUDE one);
    ``tokens_re`` is the reference."""
    segs = without_comments(text).split('"')
    out: list[str] = []
    last = len(segs) - 1
    for k, seg in enumerate(segs):
        if k % 2 and k < last:  # between two quotes: one word
            out.append(seg)
        else:  # outside them (or after a quote that is never closed, which is no word)
            out += seg.translate(_PUNCT).split()
    return out


def tokens_re(text: str) -> list[str]:
    """``tokens`` by regular expressions (the reference the tests compare with)."""
    import re

    text = re.sub(r"/\*.*?(?:\*/|\Z)", " ", text, flags=re.S)
    return [t[1:-1] if t.startswith('"') else t
            for t in re.findall(r'"[^"]*"|[(),;]|[^\s(),;"]+', text)]


def scan(path: str, lib_dirs: list[str], find_lib: Callable[[str], str | None],
         found: Found | None = None, depth: int = 0) -> Found:
    """The inputs the script at ``path`` adds, and the scripts read; ``find_lib`` resolves a
    ``-lNAME`` as the command line's libraries are."""
    found = found if found is not None else Found()
    if depth > MAX_DEPTH or path in found.scripts:
        return found
    text = _read(path)
    if text is None:
        return found
    found.scripts.append(path)
    if "INCLUDE" not in text and "INPUT" not in text and "GROUP" not in text:
        return found  # none of the three can be a token (most scripts: 12 KB, 1 ms less)
    toks = tokens(text)
    i = 0
    while i < len(toks):
        t = toks[i]
        if t == "INCLUDE" and i + 1 < len(toks):
            inc = resolve(toks[i + 1], [os.path.dirname(path), *lib_dirs])
            if inc is not None:
                scan(inc, lib_dirs, find_lib, found, depth + 1)
            i += 2
            continue
        if t in ("INPUT", "GROUP") and i + 1 < len(toks) and toks[i + 1] == "(":
            i = _files(toks, i + 2, lib_dirs, find_lib, found.inputs)
            continue
        i += 1
    return found


def assigned(path: str, out: dict[str, str]) -> None:
    """The symbols that the script at ``path`` assigns (``NAME = EXPR;``, inside ``PROVIDE``,
    ``PROVIDE_HIDDEN`` and ``HIDDEN`` too) put in ``out``, each with ``path`` where ``out``
    does not have it yet. The scripts it ``INCLUDE``s are ``scan``'s (``Found.scripts``): each
    is asked for on its own. Read wide on purpose: a name that reads as assigned where the
    linker would not define it only has its check moved to the linked image (see
    ``linkcmd.LinkCommand.defined_by_link``), and a link that uses an undefined symbol fails
    in the linker anyway."""
    import re  # (only when a callback is defined nowhere in the link set)

    text = _read(path)
    if text is None:
        return
    for m in re.finditer(_ASSIGNMENT, without_comments(text)):
        name = m.group(1).strip('"')
        if name not in _NOT_SYMBOLS:
            out.setdefault(name, path)


# A name then "=" (not "==", nor the end of "+=", "<=", "!=" and the like), the name not the
# end of a longer word or of a quoted string.
_ASSIGNMENT = r'(?<![\w.$"])("[^"\n]+"|[A-Za-z_.$][\w.$]*)\s*=(?!=)'
# The location counter; MEMORY's attributes (ORIGIN = ..., LENGTH = ...).
_NOT_SYMBOLS = frozenset({".", "ORIGIN", "org", "o", "LENGTH", "len", "l"})


def _files(toks: list[str], i: int, lib_dirs: list[str], find_lib, out: list[str]) -> int:
    """The names of an INPUT/GROUP list from ``toks[i]`` to its closing parenthesis (an
    AS_NEEDED list inside included); the index after it."""
    level = 1
    while i < len(toks) and level:
        t = toks[i]
        i += 1
        if t == "(":
            level += 1
        elif t == ")":
            level -= 1
        elif t in (",", ";", "AS_NEEDED"):
            continue
        else:
            got = find_lib(t[2:]) if t.startswith("-l") else \
                resolve(t[1:] if t.startswith("=") else t, lib_dirs)
            if got is not None and got not in out:
                out.append(got)
    return i


def resolve(name: str, dirs: list[str]) -> str | None:
    """``name`` as given (from the current directory), else in the first of ``dirs``."""
    if os.path.isfile(name):
        return name
    if os.path.isabs(name):
        return None
    for d in dirs:
        cand = os.path.join(d, name)
        if os.path.isfile(cand):
            return cand
    return None


# The bytes of the pipes read (``altlink check -T <(...)``: read once, as nothing else reads
# them; a link never reads a pipe, see ``linkcmd._is_pipe``), until ``forget_pipes``.
_PIPES: dict[str, bytes] = {}


def forget_pipes() -> None:
    """The pipes' bytes read so far forgotten: the same path (``/dev/fd/63``) names another
    pipe in the next command."""
    _PIPES.clear()


def _read(path: str) -> str | None:
    data = _PIPES.get(path)
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_SIZE + 1)
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    _PIPES[path] = data
        except OSError:
            return None
    if len(data) > MAX_SIZE or b"\0" in data[:4096]:
        return None  # binary, or too big to be a script
    return data.decode("utf-8", "replace")
