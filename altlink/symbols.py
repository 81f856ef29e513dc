"""Naming places by symbols: ``func+0x10`` for a section offset or an address.

Objects are named per section (symbol values are section offsets); images by address. Where
several symbols share an address the plain name wins over aliases (``__pi_``, ``__efistub_``,
``__kvm_nvhe_`` copies, local ``.L`` labels and ARM mapping symbols ``$x``/``$d`` are never
used).
"""
from __future__ import annotations

from bisect import bisect_right
from functools import cached_property
from itertools import repeat

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
        """The symbols defined in a section (not undefined, absolute or common). From the
        symbol table's columns (``column_index``) where the symbols are not decoded yet and
        numpy is loaded; else from the symbols (``address_index``, the reference)."""
        if self._columns_pay():
            got = column_index(self.elf)
            if got is not None:
                return got
        return address_index(self.elf)

    def _columns_pay(self) -> bool:
        return columns_pay(self.elf)

    def index_addresses(self) -> None:
        """Build the index that names addresses now (say, before a fork that both sides of
        would otherwise build it in)."""
        self._addr_index  # noqa: B018

    def at_address(self, addr: int) -> str | None:
        sym = self._addr_index.lookup(addr)
        return _fmt(sym.name, addr - sym.value) if sym else None

    def at_addresses(self, addrs) -> list[str | None]:
        """``at_address`` of each of ``addrs`` (a manifest's sites): the index searched
        for all at once, each symbol found once; or, for few addresses beside a large table
        not indexed yet, their symbols found in its columns (``column_lookup``)."""
        if "_addr_index" not in self.__dict__ and self._columns_pay() and \
                len(addrs) * LOOKUP_PER_SYMBOLS <= self.elf.symtab.size // 24:
            found = column_lookup(self.elf, addrs)
            if found is not None:
                return [None if s is None else _fmt(s.name, a - s.value)
                        for s, a in zip(found, addrs)]
        index = self._addr_index
        keys = index.keys
        pos = list(map(bisect_right, repeat(keys), addrs))
        names = {p: index.lookup(keys[p - 1]).name for p in set(pos) if p}
        return [None if not p else names[p] if a == keys[p - 1]
                else f"{names[p]}+{a - keys[p - 1]:#x}" for p, a in zip(pos, addrs)]

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
                got = found[addr] = best_label(self._symbols_at_value(addr))
                return got
        sym = self._addr_index.lookup(addr)
        return sym if sym is not None and sym.value == addr else None

    def _symbols_at_value(self, addr: int) -> list[Symbol]:
        """``ElfFile.symbols_at_value``; from the table's values column where the columns are
        made or pay (``VALUE_COLUMNS_FROM_SYMBOLS``: a kernel's table, one compare at C speed,
        where searching its bytes for the value's finds it in other fields too, 1 ms a
        lookup; the synthetic firmware's 18,000 symbols, 0.4 ms)."""
        elf = self.elf
        cols = SymtabColumns.columns(elf) if 0 <= addr < 1 << 64 and (
            getattr(elf, _COLUMNS, None) is not None or
            columns_pay(elf, VALUE_COLUMNS_FROM_SYMBOLS)) else None
        if cols is None:
            return elf.symbols_at_value(addr)
        return [elf.symbol(i) for i in cols.np.flatnonzero(cols.rec["value"] == addr).tolist()]

    def function_at_offset(self, shndx: int, offset: int) -> Symbol | None:
        sym = self._section_index(shndx).lookup(offset)
        return sym if sym is not None and sym.value == offset else None


def columns_pay(elf: ElfFile, from_symbols: int | None = None) -> bool:
    """Whether an index of the symbols is cheaper made from the table's columns
    (``SymtabColumns``): a large symbol table not decoded yet (its list of symbols would be
    made for the index alone), numpy loaded (a large image's check and link have it for
    ALT017). ``from_symbols``: the size from which it pays (``COLUMNS_FROM_SYMBOLS``)."""
    import sys

    sec = elf.symtab
    return elf._symbols is None and "numpy" in sys.modules and sec is not None \
        and sec.size >= (COLUMNS_FROM_SYMBOLS if from_symbols is None else from_symbols) * 24


# The addresses function_at looks up among the symbols of their value before it builds the
# index instead.
DIRECT_LOOKUPS = 16
# The symbols from which those lookups compare the table's column of values (made for the
# first, 0.1 ms for 18,000 symbols), where numpy is loaded, rather than search its bytes.
VALUE_COLUMNS_FROM_SYMBOLS = 2_000
# The symbols from which the index of addresses is made from the table's columns, when numpy
# is loaded (Debian's vmlinux: 155,000 symbols, 0.25 s and 65 MB to decode them and index
# them one by one; a tinyconfig kernel 33,000).
COLUMNS_FROM_SYMBOLS = 20_000


def address_index(elf: ElfFile) -> _Index:
    """The index of the addressable symbols (``addressable``), made from the decoded symbols:
    the reference for ``column_index``."""
    named, unnamed = _NAMED_TYPES, _UNNAMED_PREFIXES  # addressable, inline: 150,000
    return _Index([s for s in elf.symbols
                   if SHN_UNDEF < s.shndx < SHN_LORESERVE and s.type in named and s.name
                   and not s.name.startswith(unnamed)])


class _ColumnIndex(_Index):
    """``_Index`` over the values of the symbol table, each value's best symbol kept as its
    index in the table and decoded when a lookup answers with it (``ElfFile.symbol``)."""

    def __init__(self, elf: ElfFile, keys: list[int], best: list[int]) -> None:
        self.elf = elf
        self.keys = keys
        self.best = best
        self._decoded: dict[int, Symbol] = {}  # by position in keys

    @property
    def syms(self) -> list[Symbol]:  # for the tests: the same list as _Index's
        return [self.elf.symbol(i) for i in self.best]

    def lookup(self, value: int) -> Symbol | None:
        i = bisect_right(self.keys, value) - 1
        if i < 0:
            return None
        got = self._decoded.get(i)
        if got is None:
            got = self._decoded[i] = self.elf.symbol(self.best[i])
        return got


_COLUMNS = "_symtab_columns"  # where SymtabColumns.columns keeps an ElfFile's columns


class SymtabColumns:
    """An image's symbol table as numpy columns over its bytes, without decoding a symbol:
    ``rec`` (the entries: name, info, other, shndx, value, size), ``st_name`` and ``at`` (each
    name's offset, ``at`` clamped to the string table's end), ``inside`` (the offset is in the
    table), ``text`` (the string table's bytes, a NUL after them), ``size`` (its length),
    ``typ`` and ``bind``, ``strtab`` itself. ``columns`` gives None where the table is not one this reads (an
    extended section index, a string table not all ASCII: its lengths in bytes would not be
    its names' lengths in characters)."""

    def __init__(self, np, rec, strtab: bytes) -> None:
        self.np = np
        self.rec = rec
        self.st_name = rec["name"].astype(np.int64)
        self.strtab = strtab
        self.size = size = len(strtab)
        self.inside = self.st_name < size
        # the string table with a NUL after it: a name read past its end stops there
        self.text = np.frombuffer(strtab + b"\0" * 16, dtype=np.uint8)
        self.at = np.where(self.inside, self.st_name, size)
        self.typ = rec["info"] & 0xF
        self.bind = rec["info"] >> 4
        self._nuls = None

    @classmethod
    def columns(cls, elf: ElfFile) -> SymtabColumns | None:
        """The columns of the image's table, made once for each ``ElfFile`` (the checks of an
        image ask for them from several places)."""
        got = getattr(elf, _COLUMNS, False)
        if got is False:
            got = cls._make(elf)
            setattr(elf, _COLUMNS, got)
        return got

    @classmethod
    def _make(cls, elf: ElfFile) -> SymtabColumns | None:
        from altlink.branches import _numpy

        np = _numpy()
        sec = elf.symtab
        if sec is None or sec.entsize not in (0, 24) or sec.size % 24 or not sec.size:
            return None
        strtab = elf.section_data(elf.section(sec.link)) if sec.link else b""
        if not strtab.isascii():
            return None
        rec = np.frombuffer(elf.section_data(sec), dtype=np.dtype(
            [("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"),
             ("value", "<u8"), ("size", "<u8")]))
        if (rec["shndx"] == 0xFFFF).any():  # SHN_XINDEX
            return None
        return cls(np, rec, strtab)

    def starts(self, where, prefix: str, skip: int = 0):
        """Which of the names at offsets ``where`` start with ``prefix`` (its first ``skip``
        bytes known to match)."""
        np, text, size = self.np, self.text, self.size
        m = np.ones(len(where), dtype=bool)
        for k, ch in enumerate(prefix.encode()[skip:], skip):
            m &= text[np.minimum(where + k, size)] == ch
        return m

    def named(self):
        """Which symbols have a name (not empty, not past the string table)."""
        return self.inside & (self.text[self.at] != 0)

    def name_lengths(self, idx):
        """The lengths of the names of the symbols ``idx`` (named ones)."""
        np = self.np
        if self._nuls is None:
            self._nuls = np.flatnonzero(self.text[:self.size + 1] == 0)
        st = self.st_name[idx]
        return self._nuls[np.searchsorted(self._nuls, st)] - st


# Addresses named at once (``Symbolizer.at_addresses``) are looked up among the symbols of
# their nearest values (``column_lookup``) where they are at most this fraction of the table's
# symbols, instead of the index of every value being made: the test kernel's manifest names
# 1,017 sites beside 41,216 symbols (5.7 ms, where the index takes 15 ms).
LOOKUP_PER_SYMBOLS = 16


def _addressable_columns(cols: SymtabColumns):
    """Which symbols of the table's columns are ``addressable``, and the first two bytes of
    each name."""
    np, rec, at, text, size = cols.np, cols.rec, cols.at, cols.text, cols.size
    shndx = rec["shndx"]
    c0, c1 = text[at], text[np.minimum(at + 1, size)]
    named = np.zeros(16, dtype=bool)
    named[list(_NAMED_TYPES)] = True
    keep = (shndx > SHN_UNDEF) & (shndx < SHN_LORESERVE) & cols.inside & (c0 != 0) \
        & named[cols.typ]
    for prefix in _UNNAMED_PREFIXES:
        keep &= ~cols.starts(at, prefix)
    return keep, c0, c1


def column_lookup(elf: ElfFile, addrs) -> list[Symbol | None] | None:
    """For each address, the symbol the index of addresses would give (``_Index.lookup``:
    the best of the nearest value at or before it), from the symbol table's columns without
    indexing every value: the addressable symbols' values sorted, each address's nearest one
    searched, and only the symbols of those values decoded and ranked (``best_label``). None
    where the columns are not read (``SymtabColumns``) or an address is not a 64-bit one."""
    cols = SymtabColumns.columns(elf)
    if cols is None or not all(0 <= a < 1 << 64 for a in addrs):
        return None
    np = cols.np
    idx = np.flatnonzero(_addressable_columns(cols)[0])
    values = cols.rec["value"][idx]
    order = np.argsort(values)
    values, idx = values[order], idx[order].tolist()
    ends = np.searchsorted(values, np.array(addrs, dtype=np.uint64), side="right").tolist()
    best: dict[int, Symbol | None] = {0: None}  # by the end of its value's run in ``values``
    found = sorted(set(ends) - {0})
    starts = np.searchsorted(values, values[np.array(found, dtype=np.int64) - 1], side="left")
    symbol = elf.symbol
    for end, start in zip(found, starts.tolist()):
        best[end] = best_label([symbol(i) for i in sorted(idx[start:end])])  # table order
    return list(map(best.__getitem__, ends))


def column_index(elf: ElfFile) -> _Index | None:
    """``address_index`` made from the symbol table's columns with numpy, without decoding a
    symbol: which are addressable, and each value's best by ``rank`` (the name's bytes read in
    the string table; names compared as text only where all else ties). None where the table
    is not one this reads (``SymtabColumns``), for ``address_index``."""
    if not all(p.startswith("__") for p in _ALIAS_PREFIXES):
        return None  # (the aliases are told apart below by their "__" first)
    cols = SymtabColumns.columns(elf)
    if cols is None:
        return None
    np, rec, at, starts = cols.np, cols.rec, cols.at, cols.starts
    typ, bind = cols.typ, cols.bind
    keep, c0, c1 = _addressable_columns(cols)
    idx = np.flatnonzero(keep)
    if not len(idx):
        return _ColumnIndex(elf, [], [])
    # the aliases' prefixes all start with "__": only those names are read further
    under = np.flatnonzero((c0[idx] == 95) & (c1[idx] == 95))
    alias = np.zeros(len(idx), dtype=bool)
    where = at[idx[under]]
    hits = np.zeros(len(under), dtype=bool)
    for prefix in _ALIAS_PREFIXES:
        hits |= starts(where, prefix, 2)
    alias[under] = hits
    length = cols.name_lengths(idx)
    notfunc = (typ[idx] != STT_FUNC) & (typ[idx] != STT_GNU_IFUNC)
    local = (bind[idx] != STB_GLOBAL) & (bind[idx] != STB_WEAK)
    values = rec["value"][idx]
    order = np.lexsort((idx, length, local, notfunc, alias, values))
    values, idx = values[order], idx[order]
    ranks = np.stack([alias[order], notfunc[order], local[order], length[order]])
    first = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    best = idx[first]
    # where the second of a value ties with its first on all but the name, the names decide
    nxt = first + 1
    ok = nxt < len(values)
    tied = first[ok][(values[nxt[ok]] == values[first[ok]])
                     & (ranks[:, nxt[ok]] == ranks[:, first[ok]]).all(axis=0)]
    if len(tied):
        pos = np.searchsorted(first, tied).tolist()
        best = best.tolist()
        for k, f in zip(pos, tied.tolist()):
            g = f
            while g + 1 < len(values) and values[g + 1] == values[f] \
                    and (ranks[:, g + 1] == ranks[:, f]).all():
                g += 1
            names = [(elf.symbol(int(i)).name, int(i)) for i in idx[f:g + 1]]
            best[k] = min(names)[1]
    else:
        best = best.tolist()
    return _ColumnIndex(elf, values[first].tolist(), best)


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
