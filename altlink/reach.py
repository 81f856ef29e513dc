"""ALT014: what an alternative callback reaches while code is half-patched.

A callback runs in the middle of patching: if it (or what it calls) is instrumented, the
sanitizer runtime runs on half-patched text (Linux a2c0b0fbe014, d35652a5fc99: hangs and false
reports at boot); if it contains alternative sites itself, it may run code that is being
rewritten. This module follows the callback's direct calls and branches in a linked image,
through the symbol table's function extents, and reports both.
"""
from __future__ import annotations

import struct
from bisect import bisect_right

from altlink.elf import SHN_UNDEF, STT_FUNC, STT_GNU_IFUNC, ElfFile, Symbol
from altlink.symbols import SymtabColumns, columns_pay
from altlink.values import Frozen

SANITIZER_PREFIXES = ("__tsan_", "__asan_", "__sanitizer_cov_", "__sanitizer_", "__kasan_",
                      "__kcsan_", "__hwasan_", "__msan_")
MAX_FUNCTIONS = 4000  # functions visited per callback
MAX_DEPTH = 8  # calls followed for sanitizer hooks
SITE_DEPTH = 1  # alternative sites: in the callback and the functions it calls directly
# Bytes of code scanned per image, over all callbacks: function extents are symbol sizes, which
# a file may make overlap (each function sized to the end of .text makes the walk quadratic).
MAX_SCAN = 1 << 26


class Reached(Frozen):
    """One thing a callback reaches: a sanitizer hook or an alternative site. (A value class
    written out, ``values.Frozen``: no dataclass made at every link's import.)"""

    _fields = ("callback", "what", "name", "path", "entry")
    callback: str
    what: str  # "hook" or "site"
    name: str  # the hook's name, or the site's function+offset
    path: tuple[str, ...]  # callback -> ... -> the function where it was found
    entry: int | None  # the alternative entry whose site it is

    def __init__(self, callback: str, what: str, name: str, path: tuple[str, ...],
                 entry: int | None = None) -> None:
        _set = object.__setattr__
        _set(self, "callback", callback)
        _set(self, "what", what)
        _set(self, "name", name)
        _set(self, "path", path)
        _set(self, "entry", entry)


def _is_sanitizer(name: str) -> bool:
    return name.startswith(SANITIZER_PREFIXES)


# The symbols from which ``FunctionMap`` is made from the table's columns where numpy is loaded:
# a walk decodes only the few functions it reaches, where the reference decodes and sorts them
# all (the synthetic firmware's 18,000 symbols: 0.7 ms against 9 ms).
FUNCTION_COLUMNS_FROM_SYMBOLS = 2_000


class FunctionMap:
    """Function extents of an image from its symbol table (sized FUNC symbols; unsized ones
    end at the next function). Of the functions at one address: in table order, one sized
    where the one kept is not, or one with a shorter name, replaces it.

    ``columns`` (None: where it pays, ``FUNCTION_COLUMNS_FROM_SYMBOLS``: a table of some
    thousands of symbols not decoded yet, numpy loaded) makes the map from the table's
    columns (``function_columns``) and decodes a symbol only when a walk reaches it; else
    from the decoded symbols (the reference the tests compare with)."""

    def __init__(self, elf: ElfFile, columns: bool | None = None) -> None:
        self.elf = elf
        if columns is None:
            columns = columns_pay(elf, FUNCTION_COLUMNS_FROM_SYMBOLS)
        got = function_columns(elf) if columns else None
        if got is not None:
            self.starts, self._best = got
            self._syms: list | None = None
            self._decoded: dict[int, Symbol] = {}
            return
        funcs = {}
        for s in elf.symbols:
            if s.shndx == SHN_UNDEF or s.type not in (STT_FUNC, STT_GNU_IFUNC) or not s.name:
                continue
            cur = funcs.get(s.value)
            if cur is None or (s.size and not cur.size) or len(s.name) < len(cur.name):
                funcs[s.value] = s
        self.starts = sorted(funcs)
        self._syms = [funcs[a] for a in self.starts]

    @property
    def syms(self) -> list[Symbol]:
        """The function kept at each of ``starts``."""
        if self._syms is None:
            return [self._sym(i) for i in range(len(self.starts))]
        return self._syms

    def _sym(self, i: int) -> Symbol:
        if self._syms is not None:
            return self._syms[i]
        got = self._decoded.get(i)
        if got is None:
            got = self._decoded[i] = self.elf.symbol(self._best[i])
        return got

    def extent(self, addr: int) -> tuple[int, int, str] | None:
        i = bisect_right(self.starts, addr) - 1
        if i < 0:
            return None
        s = self._sym(i)
        end = s.value + s.size if s.size else (
            self.starts[i + 1] if i + 1 < len(self.starts) else s.value + 4)
        if not s.value <= addr < end:
            return None
        return s.value, end, s.name

    def name_at(self, addr: int) -> str | None:
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and self.starts[i] == addr:
            return self._sym(i).name
        return None


def function_columns(elf: ElfFile) -> tuple[list[int], list[int]] | None:
    """``FunctionMap``'s choice made from the symbol table's columns with numpy: the sorted
    addresses of the functions and, for each, the index in the table of the symbol kept. An
    address with one candidate (nearly all) is decided at once; one with several (aliases) by
    the reference's rule, over its candidates in table order. None where the columns cannot
    be read (``SymtabColumns``)."""
    cols = SymtabColumns.columns(elf)
    if cols is None:
        return None
    np, rec = cols.np, cols.rec
    idx = np.flatnonzero((rec["shndx"] != SHN_UNDEF) & cols.named()
                         & ((cols.typ == STT_FUNC) | (cols.typ == STT_GNU_IFUNC)))
    if not len(idx):
        return [], []
    values = rec["value"][idx]
    order = np.argsort(values, kind="stable")  # by address, table order among equals
    values, idx = values[order], idx[order]
    first = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    best = idx[first].tolist()
    many = np.flatnonzero(np.diff(np.append(first, len(values))) > 1)
    if len(many):
        sizes = rec["size"][idx]
        lengths = cols.name_lengths(idx)
        ends = np.append(first, len(values))
        for k in many.tolist():
            cur = first[k]
            for j in range(first[k] + 1, ends[k + 1]):
                if (sizes[j] and not sizes[cur]) or lengths[j] < lengths[cur]:
                    cur = j
            best[k] = int(idx[cur])
    return values[first].tolist(), best


def _calls(elf: ElfFile, start: int, end: int) -> list[int]:
    """Targets of the immediate B and BL instructions in [start, end)."""
    code = elf.read_addr(start, end - start)
    if not code:
        return []
    n = len(code) // 4
    out = []
    for i, w in enumerate(struct.unpack(f"<{n}I", code[:4 * n])):
        if (w & 0x7C000000) == 0x14000000:
            imm = w & 0x03FFFFFF
            if imm & 0x02000000:
                imm -= 1 << 26
            out.append(start + 4 * i + (imm << 2))
    return out


class _SortedSites:
    """Sites given as columns (numpy arrays of addresses, lengths and entries), sorted as
    ``sorted`` sorts their tuples; a slice's tuples made when asked for."""

    def __init__(self, addrs, lengths, entries) -> None:
        import numpy as np

        order = np.lexsort((entries, lengths, addrs))
        self.keys = addrs[order].tolist()
        self._lengths, self._entries = lengths[order], entries[order]

    def __getitem__(self, s: slice) -> list[tuple[int, int, int]]:
        return list(zip(self.keys[s], self._lengths[s].tolist(), self._entries[s].tolist()))


def callback_reach(elf: ElfFile, callbacks: dict[str, int], sites,
                   funcs: FunctionMap | None = None) -> list[Reached]:
    """What each callback (name -> address) reaches. ``sites`` are (address, length, entry)
    tuples, or three arrays of them (an image's table columns)."""
    funcs = funcs or FunctionMap(elf)
    if isinstance(sites, tuple):
        site_starts = _SortedSites(*sites)
        keys = site_starts.keys
    else:
        site_starts = sorted(sites)
        keys = [s[0] for s in site_starts]
    out: list[Reached] = []
    budget = MAX_SCAN
    for cb_name, cb_addr in sorted(callbacks.items()):
        seen: set[int] = set()
        stack = [(cb_addr, (cb_name,))]
        while stack and len(seen) < MAX_FUNCTIONS:
            addr, path = stack.pop()
            ext = funcs.extent(addr)
            if ext is None:
                continue
            start, end, name = ext
            if start in seen:
                continue
            seen.add(start)
            if _is_sanitizer(name):
                out.append(Reached(cb_name, "hook", name, path))
                continue
            depth = len(path) - 1
            if depth <= SITE_DEPTH:
                i = bisect_right(keys, end - 1)
                j = bisect_right(keys, start - 1)
                for a, _len, entry in site_starts[j:i]:
                    out.append(Reached(cb_name, "site", f"{name}+{a - start:#x}", path, entry))
            if depth >= MAX_DEPTH or end - start > budget:
                continue
            budget -= end - start
            for tgt in _calls(elf, start, end):
                if start <= tgt < end:
                    continue
                callee = funcs.name_at(tgt) or (funcs.extent(tgt) or (0, 0, ""))[2]
                if callee:
                    stack.append((tgt, path + (callee,)))
    return out
