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
from dataclasses import dataclass

from altlink.elf import SHN_UNDEF, STT_FUNC, STT_GNU_IFUNC, ElfFile

SANITIZER_PREFIXES = ("__tsan_", "__asan_", "__sanitizer_cov_", "__sanitizer_", "__kasan_",
                      "__kcsan_", "__hwasan_", "__msan_")
MAX_FUNCTIONS = 4000  # functions visited per callback
MAX_DEPTH = 8  # calls followed for sanitizer hooks
SITE_DEPTH = 1  # alternative sites: in the callback and the functions it calls directly
# Bytes of code scanned per image, over all callbacks: function extents are symbol sizes, which
# a file may make overlap (each function sized to the end of .text makes the walk quadratic).
MAX_SCAN = 1 << 26


@dataclass(frozen=True)
class Reached:
    """One thing a callback reaches: a sanitizer hook or an alternative site."""

    callback: str
    what: str  # "hook" or "site"
    name: str  # the hook's name, or the site's function+offset
    path: tuple[str, ...]  # callback -> ... -> the function where it was found
    entry: int | None = None  # the alternative entry whose site it is


def _is_sanitizer(name: str) -> bool:
    return name.startswith(SANITIZER_PREFIXES)


class FunctionMap:
    """Function extents of an image from its symbol table (sized FUNC symbols; unsized ones
    end at the next function)."""

    def __init__(self, elf: ElfFile) -> None:
        funcs = {}
        for s in elf.symbols:
            if s.shndx == SHN_UNDEF or s.type not in (STT_FUNC, STT_GNU_IFUNC) or not s.name:
                continue
            cur = funcs.get(s.value)
            if cur is None or (s.size and not cur.size) or len(s.name) < len(cur.name):
                funcs[s.value] = s
        self.starts = sorted(funcs)
        self.syms = [funcs[a] for a in self.starts]
        self.elf = elf

    def extent(self, addr: int) -> tuple[int, int, str] | None:
        i = bisect_right(self.starts, addr) - 1
        if i < 0:
            return None
        s = self.syms[i]
        end = s.value + s.size if s.size else (
            self.starts[i + 1] if i + 1 < len(self.starts) else s.value + 4)
        if not s.value <= addr < end:
            return None
        return s.value, end, s.name

    def name_at(self, addr: int) -> str | None:
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and self.starts[i] == addr:
            return self.syms[i].name
        return None


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


def callback_reach(elf: ElfFile, callbacks: dict[str, int], sites: list[tuple[int, int, int]],
                   funcs: FunctionMap | None = None) -> list[Reached]:
    """What each callback (name -> address) reaches. ``sites`` are (address, length, entry)."""
    funcs = funcs or FunctionMap(elf)
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
