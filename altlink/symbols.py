"""Naming places by symbols: ``func+0x10`` for a section offset or an address.

Objects are named per section (symbol values are section offsets); images by address. Where
several symbols share an address the plain name wins over aliases (``__pi_``, ``__efistub_``,
``__kvm_nvhe_`` copies, local ``.L`` labels and ARM mapping symbols ``$x``/``$d`` are never
used).
"""
from __future__ import annotations

from bisect import bisect_right
from functools import cached_property

from altlink.elf import (
    SHN_LORESERVE,
    SHN_UNDEF,
    STB_GLOBAL,
    STB_WEAK,
    STT_FUNC,
    STT_GNU_IFUNC,
    STT_NOTYPE,
    STT_OBJECT,
    ElfFile,
    Symbol,
)

_ALIAS_PREFIXES = ("__pi_", "__efistub_", "__kvm_nvhe_", "__hyp_", "__pfx_", "__cfi_")
_NAMED_TYPES = (STT_FUNC, STT_NOTYPE, STT_OBJECT, STT_GNU_IFUNC)
# ARM mapping symbols ($x, $d), local labels (.L) and the assembler's fake labels (L0\x01).
_UNNAMED_PREFIXES = ("$", ".L", "L0\x01")


def is_label(sym: Symbol) -> bool:
    """A symbol worth naming a place by."""
    name = sym.name
    if not name or sym.type not in _NAMED_TYPES:
        return False
    return not name.startswith(_UNNAMED_PREFIXES)


def rank(sym: Symbol) -> tuple:
    """Smaller is better: functions, global, not an alias, then the shortest and first name."""
    alias = name_is_alias(sym.name)
    return (alias, sym.type != STT_FUNC and sym.type != STT_GNU_IFUNC,
            sym.bind not in (STB_GLOBAL, STB_WEAK), len(sym.name), sym.name)


def name_is_alias(name: str) -> bool:
    return name.startswith(_ALIAS_PREFIXES)


class _Index:
    def __init__(self, syms: list[Symbol]) -> None:
        best: dict[int, Symbol] = {}
        for s in syms:
            cur = best.setdefault(s.value, s)
            if cur is not s and rank(s) < rank(cur):
                best[s.value] = s
        self.keys = sorted(best)
        self.syms = [best[k] for k in self.keys]

    def lookup(self, value: int) -> Symbol | None:
        # The closest symbol at or before the place: a sized symbol that ends before it still
        # names it (as objdump does) when nothing closer exists.
        i = bisect_right(self.keys, value)
        return self.syms[i - 1] if i else None


class Symbolizer:
    """Names section offsets (objects) or addresses (images) of one ELF file."""

    def __init__(self, elf: ElfFile) -> None:
        self.elf = elf
        self._by_section: dict[int, _Index] = {}
        self._found: dict[int, Symbol | None] = {}  # function_at's answers without the index

    def _section_index(self, shndx: int) -> _Index:
        idx = self._by_section.get(shndx)
        if idx is None:
            idx = _Index([s for s in self.elf.symbols if s.shndx == shndx and is_label(s)])
            self._by_section[shndx] = idx
        return idx

    def at_offset(self, shndx: int, offset: int) -> str | None:
        sym = self._section_index(shndx).lookup(offset)
        return _fmt(sym.name, offset - sym.value) if sym else None

    @cached_property
    def _addr_index(self) -> _Index:
        """The symbols defined in a section (not undefined, absolute or common)."""
        named, unnamed = _NAMED_TYPES, _UNNAMED_PREFIXES  # addressable, inline: 150,000
        return _Index([s for s in self.elf.symbols
                       if SHN_UNDEF < s.shndx < SHN_LORESERVE and s.type in named and s.name
                       and not s.name.startswith(unnamed)])

    def index_addresses(self) -> None:
        """Build the index that names addresses now (say, before a fork that both sides of
        would otherwise build it in)."""
        self._addr_index  # noqa: B018

    def at_address(self, addr: int) -> str | None:
        sym = self._addr_index.lookup(addr)
        return _fmt(sym.name, addr - sym.value) if sym else None

    def function_at(self, addr: int) -> Symbol | None:
        """The best-named symbol that starts exactly at the address. For the first few
        addresses, found among the symbols of that value (a search of the values at C speed:
        a link's post-link checks ask this of its few callbacks, and indexing a kernel's
        symbols takes as long as a hundred searches); after that, from the index."""
        if "_addr_index" not in self.__dict__:
            found = self._found
            if addr in found:
                return found[addr]
            if len(found) < DIRECT_LOOKUPS:
                got = found[addr] = best_label(self.elf.symbols_at_value(addr))
                return got
        sym = self._addr_index.lookup(addr)
        return sym if sym is not None and sym.value == addr else None

    def function_at_offset(self, shndx: int, offset: int) -> Symbol | None:
        sym = self._section_index(shndx).lookup(offset)
        return sym if sym is not None and sym.value == offset else None


# The addresses function_at looks up among the symbols of their value before it builds the
# index instead.
DIRECT_LOOKUPS = 16


def addressable(s: Symbol) -> bool:
    """A symbol that names an address: what ``Symbolizer._addr_index`` indexes."""
    return SHN_UNDEF < s.shndx < SHN_LORESERVE and s.type in _NAMED_TYPES and bool(s.name) \
        and not s.name.startswith(_UNNAMED_PREFIXES)


def best_label(syms: list[Symbol]) -> Symbol | None:
    """Of the symbols of one value, in table order, the one the index keeps for it: the
    best by :func:`rank`, the first of equals."""
    best = None
    for s in syms:
        if addressable(s) and (best is None or rank(s) < rank(best)):
            best = s
    return best


def _fmt(name: str, delta: int) -> str:
    return name if delta == 0 else f"{name}+{delta:#x}"
