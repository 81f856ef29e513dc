"""The immediate branches of a section's code (B, BL, B.cond, BC.cond, CB(N)Z, TB(N)Z) that
land in given address ranges: the word scan behind ALT017 (a branch into a replacement).

A kernel's text is millions of words, of which a fifth are branches, and the few that matter
are those into a replacement. Four implementations give the same answer:

- :func:`into_ranges_py`, the reference: one word at a time, each decoded by ``insn``.
- :func:`into_ranges_np`, the same scan over the whole section at C speed with numpy (the
  opcode masks, the displacements and the range lookup are array operations); a Python loop
  only for the branches it finds in a range.
- :func:`into_ranges_bytes`, without numpy: the branches found by their opcode byte at C
  speed, each of them decoded in Python (for code too small to be worth numpy's import).
- :func:`into_ranges_c`, the whole scan in the optional extension (``altlink.speedups``).

:func:`into_ranges` picks the compiled one where the extension is used; else by size: numpy
takes longer to import than the reference takes over a small image (docs/performance.md,
"ALT017").
"""
from __future__ import annotations

import os
import struct
from _thread import allocate_lock  # (threading.Lock, without threading: 0.7 ms a run)
from bisect import bisect_right

from altlink import insn, speedups

# Words of code from which the numpy scan is used: its import costs about what the reference
# takes over this many words. Once numpy is imported (``preload``: a check or link whose
# inputs hold that much code, over many objects), from far fewer: its own cost per section.
NUMPY_FROM_WORDS = 200_000
NUMPY_LOADED_FROM_WORDS = 256


def maybe_branch(w: int) -> bool:
    """A cheap filter for the immediate branches (B, BL, B.cond, BC.cond, CB(N)Z, TB(N)Z)."""
    return ((w & 0x7C000000) == 0x14000000 or (w & 0xFF000000) == 0x54000000
            or (w & 0x7E000000) in (0x34000000, 0x36000000))


def into_ranges(data, addr: int, starts: list[int], ends: list[int]) -> list[tuple[int, int, int]]:
    """(pc, word, target) of every immediate branch of ``data`` (code at ``addr``) whose
    target is in a range: ``starts`` sorted, and a target ``t`` is in a range when the last
    range starting at or before ``t`` ends after it (``ends[i]`` for that ``i``)."""
    return scanner(len(data))(data, addr, starts, ends)


def scanner(code_bytes: int):
    """The implementation for this much code, in one section or over all that one check
    scans: the compiled one where the extension is used (``altlink.speedups``), at any size;
    else numpy (once imported, quicker on any but the smallest section) or the bytes' scan."""
    if compiled():
        return into_ranges_c
    return _python_scanner(code_bytes)


def _python_scanner(code_bytes: int):
    import sys

    words = code_bytes // 4
    if words >= NUMPY_FROM_WORDS or (words >= NUMPY_LOADED_FROM_WORDS and "numpy" in sys.modules):
        return into_ranges_np
    return into_ranges_bytes


def preload(code_bytes: int) -> None:
    """numpy imported now when the scans of this much code, over all the inputs of a command,
    are quicker with it (Linux objects keep their replacements in .text, which an object's
    check then scans whole). Before any fork: the forked copies share it. An image's commands
    want it for its symbols' index too; the objects' scans want it only where they are not
    compiled (``compiled``)."""
    if code_bytes // 4 >= NUMPY_FROM_WORDS:
        _import_numpy()


def compiled() -> bool:
    """Whether the scans are compiled (the extension is used): they need no numpy then."""
    return speedups.get() is not None


# The entries of a link from which its cross-check compares them as arrays, with numpy
# (``crosscheck.ARRAYS_FROM_ENTRIES``).
NUMPY_FROM_ENTRIES = 2_000


def prefetch(code_bytes: int, entries: int = 0):
    """numpy imported in a thread while the caller waits on something else (the link, on its
    linker), when the Python's scan of this much code would use it, or the cross-check of
    this many entries (``NUMPY_FROM_ENTRIES``): the thread to join, or None. Even where the
    scan is compiled: an image with that much code has the symbols whose index numpy makes
    from their columns (``symbols.columns_pay``), and a table it reads a column at a time."""
    import sys

    if (_python_scanner(code_bytes) is not into_ranges_np and entries < NUMPY_FROM_ENTRIES) or \
            "numpy" in sys.modules:
        return None
    import threading

    t = threading.Thread(target=_import_numpy, name="altlink-numpy", daemon=True)
    t.start()
    return t


def _import_numpy() -> None:
    try:
        _numpy()
    except ImportError:
        pass  # the scan itself reports it


_numpy_lock = allocate_lock()


def _numpy():
    """numpy, imported with OpenBLAS held to one thread: the scans use no linear algebra, and
    the threads OpenBLAS starts with numpy cost a third of its import's CPU time (0.12 s to
    0.08 s). The variable is read when the library loads; the process's environment is left
    as it was."""
    import sys

    with _numpy_lock:  # a thread that finds numpy half imported by another waits for it
        if "numpy" in sys.modules:
            import numpy
            return numpy
        old = os.environ.get("OPENBLAS_NUM_THREADS")
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        try:
            import numpy
        finally:
            if old is None:
                del os.environ["OPENBLAS_NUM_THREADS"]
            else:
                os.environ["OPENBLAS_NUM_THREADS"] = old
    return numpy


def into_ranges_py(data, addr: int, starts: list[int], ends: list[int]) -> list[tuple]:
    """The reference: :func:`into_ranges`, a word at a time."""
    if not starts:
        return []
    lo, hi = starts[0], max(ends)
    n = len(data) // 4
    out = []
    for i, word in enumerate(struct.unpack_from(f"<{n}I", data)):
        if not maybe_branch(word):
            continue
        pc = addr + 4 * i
        tgt = insn.target(word, pc)
        if tgt is None or not lo <= tgt < hi:
            continue
        j = bisect_right(starts, tgt) - 1
        if j >= 0 and tgt < ends[j]:
            out.append((pc, word, tgt))
    return out


def into_ranges_c(data, addr: int, starts: list[int], ends: list[int]) -> list[tuple]:
    """:func:`into_ranges` compiled (``_speedups.into_ranges``: one loop over the words, each
    branch's target and range found in C), the Python's scan for this size where it declines
    (an address or range that is not a 64-bit address)."""
    got = speedups.get().into_ranges(data, addr, starts, ends)
    if got is None:
        return _python_scanner(len(data))(data, addr, starts, ends)
    return got


def into_ranges_bytes(data, addr: int, starts: list[int], ends: list[int]) -> list[tuple]:
    """:func:`into_ranges` without numpy: the words whose opcode byte is a branch's are found
    at C speed (``bytes.translate``, then ``find``), and only those are decoded, as the
    reference decodes them."""
    if not starts:
        return []
    lo, hi = starts[0], max(ends)
    n = len(data) // 4
    marks = bytes(data[3:4 * n:4]).translate(_IS_BRANCH)
    out = []
    find, unpack_from, target = marks.find, _WORD.unpack_from, insn.target
    i = find(1)
    while i >= 0:
        word = unpack_from(data, 4 * i)[0]
        pc = addr + 4 * i
        tgt = target(word, pc)
        if tgt is not None and lo <= tgt < hi:
            j = bisect_right(starts, tgt) - 1
            if j >= 0 and tgt < ends[j]:
                out.append((pc, word, tgt))
        i = find(1, i + 1)
    return out


_WORD = struct.Struct("<I")


# The opcode byte (bits 31:24) of each immediate branch: 1 B/BL (imm26), 2 B.cond, BC.cond,
# CB(N)Z (imm19 at bit 5), 3 TB(N)Z (imm14 at bit 5); as maybe_branch and insn.decode.
_KIND = bytearray(256)
for _b in range(256):
    if _b & 0x7C == 0x14:
        _KIND[_b] = 1
    elif _b == 0x54 or _b & 0x7E == 0x34:
        _KIND[_b] = 2
    elif _b & 0x7E == 0x36:
        _KIND[_b] = 3
_KIND = bytes(_KIND)
_IS_BRANCH = bytes(min(k, 1) for k in _KIND)  # 1 where maybe_branch holds


def into_ranges_np(data, addr: int, starts: list[int], ends: list[int]) -> list[tuple]:
    """:func:`into_ranges` over the whole section at once, with numpy. The displacements in
    32-bit arithmetic (sign-extended by shifts); the range lookup only for the branches whose
    target lands in a word some range touches (``_near``), where the code is not much smaller
    than the span of the ranges."""
    np = _numpy()

    if not starts:
        return []
    if starts[0] < 0 or max(ends) >= 1 << 64:  # not addresses: the reference handles any int
        return into_ranges_py(data, addr, starts, ends)
    n = len(data) // 4
    if n == 0:
        return []
    buf = np.frombuffer(data, dtype=np.uint8, count=4 * n)
    kinds = np.frombuffer(_KIND, dtype=np.uint8)[buf[3::4]]
    idx = np.flatnonzero(kinds)
    if not len(idx):
        return []
    kind = kinds[idx]
    w = np.frombuffer(data, dtype="<u4", count=n)[idx]
    s = w.view(np.int32)
    # imm26 at bit 0; imm19 and imm14 at bit 5; each sign-extended, in bytes
    off = np.where(kind == 1, (s << 6) >> 4,
                   np.where(kind == 2, ((s << 8) >> 13) << 2, ((s << 13) >> 18) << 2))
    pc = idx.astype(np.uint64) * np.uint64(4) + np.uint64(addr)
    tgt = pc + off.astype(np.int64).astype(np.uint64)  # modulo 2**64, as the hardware computes it
    near = _near(np, tgt, starts, ends, n)
    t = tgt if near is None else tgt[near]
    st = np.array(starts, dtype=np.uint64)
    en = np.array(ends, dtype=np.uint64)
    j = np.searchsorted(st, t, side="right").astype(np.int64) - 1
    sel = np.flatnonzero((j >= 0) & (t < en[np.maximum(j, 0)]))
    if near is not None:
        sel = near[sel]
    return list(zip(pc[sel].tolist(), w[sel].tolist(), tgt[sel].tolist()))


def _near(np, tgt, starts: list[int], ends: list[int], n: int):
    """The positions of the targets in ``tgt`` that land in a 4-byte word of
    ``[starts[0], max(ends))`` that some range touches (a map of those words): every target in
    a range among them. None where that map would be larger than 4 words a word of code."""
    lo, hi = starts[0], max(ends)
    if hi <= lo:
        return np.zeros(0, dtype=np.intp)
    span = ((hi - lo - 1) >> 2) + 1
    if span > max(4 * n, 1 << 16):
        return None
    st = np.array(starts, dtype=np.uint64)
    en = np.array(ends, dtype=np.uint64)
    real = en > st
    first = ((st[real] - np.uint64(lo)) >> np.uint64(2)).astype(np.int64)
    last = ((en[real] - np.uint64(lo + 1)) >> np.uint64(2)).astype(np.int64)
    lens = last - first + 1
    total = int(lens.sum())
    if total > 4 * span + 1024:
        return None
    touched = np.zeros(span, dtype=bool)
    touched[np.repeat(first - (np.cumsum(lens) - lens), lens) + np.arange(total)] = True
    word = tgt - np.uint64(lo)  # the word of the span each target is in, if any
    inside = word < np.uint64(hi - lo)
    word >>= np.uint64(2)
    word[~inside] = 0
    inside &= touched[word.view(np.int64)]
    return np.flatnonzero(inside)
