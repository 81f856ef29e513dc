"""Decoding ``.altinstructions``: 12-byte entries from objects (through their relocations) and
from linked images (through the resolved relative offsets). docs/reference.md, section 1.
"""
from __future__ import annotations

import struct
from collections import namedtuple
from functools import partial
from itertools import repeat

from altlink import speedups
from altlink.elf import (
    ET_REL,
    R_AARCH64_PREL32,
    SHF_ALLOC,
    SHN_ABS,
    SHN_COMMON,
    SHN_LORESERVE,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_REL,
    SHT_RELA,
    STT_SECTION,
    ElfFile,
    Section,
    _cstr,
    reloc_name,
)
from altlink.errors import AltlinkError
from altlink.findings import Finding, finding
from altlink.values import Frozen, Value

ENTRY = struct.Struct("<iiHBB")
ENTRY_SIZE = ENTRY.size  # 12
TABLE_SECTION = ".altinstructions"
REPLACEMENT_SECTION = ".altinstr_replacement"
ABIS = ("linux-v4.17", "linux-v6.1", "xen-v4.17")
DEFAULT_ABI = "linux-v4.17"
# The profiles whose callback entries are marked by ``cap == NCAPS`` (docs/reference.md,
# section 1): they differ only in what their patcher does with a replacement's words.
NCAPS_MARKED = ("linux-v4.17", "xen-v4.17")
CB_BIT_V61 = 0x8000
ADDR_MASK = (1 << 64) - 1


class Place(namedtuple("Place", "section section_index offset address symbol addend",
                       defaults=(None, None, 0))):
    """Where an entry's site or replacement (or callback) is.

    In an object: a section (index and name) and an offset in it, or, for a relocation against
    an undefined symbol, only ``symbol``. In an image: also ``address``.
    ``symbol`` is the named symbol a relocation referred to (a callback), else None.
    """

    __slots__ = ()

    @property
    def defined(self) -> bool:
        return self.section_index != SHN_UNDEF

    def describe(self) -> str:
        if not self.defined:
            return self.symbol or "?"
        return f"{self.section}+{self.offset:#x}"


class Entry(namedtuple("Entry", "file index table_section table_offset site alt cap_raw "
                       "orig_len alt_len address", defaults=(None,))):
    """One table entry as read, before any profile interprets ``cap_raw``. (Named tuples:
    a kernel's tables have tens of thousands of entries, and a tuple is made at C speed.)
    ``address``: the entry's own address, in an image."""

    __slots__ = ()


class Profile(Frozen):
    """A table ABI profile (docs/reference.md, section 1): tells callbacks and capability numbers apart."""

    _fields = ("abi", "ncaps")
    abi: str
    ncaps: int | None

    def __init__(self, abi: str = DEFAULT_ABI, ncaps: int | None = None) -> None:
        _set = object.__setattr__
        _set(self, "abi", abi)
        _set(self, "ncaps", ncaps)

    def is_callback(self, cap_raw: int) -> bool:
        if self.abi == "linux-v6.1":
            return bool(cap_raw & CB_BIT_V61)
        return self.ncaps is not None and cap_raw == self.ncaps

    def cap(self, cap_raw: int) -> int | None:
        """The capability number an entry depends on; None for a v4.17 callback (always runs)."""
        if self.abi == "linux-v6.1":
            return cap_raw & ~CB_BIT_V61
        if self.is_callback(cap_raw):
            return None
        return cap_raw


class Table(Value):
    """The entries of one file, and what was wrong with its table."""

    _fields = ("path", "entries", "findings", "sections", "columns")
    path: str
    entries: list[Entry]
    findings: list[Finding]
    sections: list[Section]
    # An image's table read a column at a time (``read_image_table`` with numpy): the
    # entries' fields as arrays (``IMAGE_COLUMNS``), for checks over the whole table at once.
    columns: dict | None

    def __init__(self, path: str, entries: list[Entry], findings: list[Finding],
                 sections: list[Section], columns: dict | None = None) -> None:
        self.path = path
        self.entries = entries
        self.findings = findings
        self.sections = sections
        self.columns = columns

    @property
    def size(self) -> int:
        """The number of entries, without making them where they are not made yet."""
        got = self.__dict__["_entries"]
        return got.size if type(got) is _Unread else len(got)

    def entry(self, i: int) -> Entry:
        """Entry ``i`` (``entries[i]``), made alone where the entries are not made yet."""
        got = self.__dict__["_entries"]
        return got.one(i) if type(got) is _Unread else got[i]


def detect_abi(tables: list[Table]) -> str | None:
    """The profile a table's own entries show, where ``--abi`` was not given: linux-v6.1
    when every entry without a replacement carries the 0x8000 callback bit (a linux-v4.17
    NCAPS never reaches it) and no entry with one does; None when nothing tells."""
    marked = unmarked = 0
    for t in tables:
        for e in t.entries:
            if e.cap_raw & CB_BIT_V61:
                if e.alt_len:
                    return None
                marked += 1
            elif e.alt_len == 0:
                unmarked += 1
    return "linux-v6.1" if marked and not unmarked else None


def table_sections(elf: ElfFile) -> list[Section]:
    return elf.sections_by_name.get(TABLE_SECTION, [])


def read_table(elf: ElfFile) -> Table:
    if elf.type == ET_REL:
        return read_object_table(elf)
    return read_image_table(elf)


def _size_finding(elf: ElfFile, sec: Section) -> Finding:
    return finding("ALT012", f"{sec.name} is {sec.size} bytes, not a multiple of {ENTRY_SIZE}; "
                   f"only the first {sec.size // ENTRY_SIZE} entries are read", elf.path,
                   f"section {sec.index} {sec.name}")


def _entsize_finding(elf: ElfFile, sec: Section) -> Finding | None:
    """sh_entsize is 0 (unspecified: what compilers and Linux write) or the entry's 12 bytes;
    anything else misleads a tool that steps through the table by it (objtool once wrote
    one that disagreed with the kernel's, Linux dc02368164bd)."""
    if sec.entsize in (0, ENTRY_SIZE):
        return None
    return finding("ALT012", f"sh_entsize of {sec.name} is {sec.entsize}, but an entry is "
                   f"{ENTRY_SIZE} bytes; set it to 0 or {ENTRY_SIZE}", elf.path,
                   f"section {sec.index} {sec.name}")


def _section_findings(elf: ElfFile, sec: Section) -> list[Finding]:
    """What is wrong with a table section itself: no contents, a size that is not whole
    entries, an entry size other than 12."""
    if sec.type == SHT_NOBITS:
        return [finding("ALT012", ".altinstructions has no contents (NOBITS)", elf.path,
                        f"section {sec.index} {sec.name}")]
    out = [_size_finding(elf, sec)] if sec.size % ENTRY_SIZE else []
    bad_entsize = _entsize_finding(elf, sec)
    if bad_entsize:
        out.append(bad_entsize)
    return out


def read_object_table(elf: ElfFile) -> Table:
    """Entries of a relocatable object, resolved through their PREL32 relocations:
    ``read_object_table_py``'s, with the relocations indexed by offset at once and an entry
    whose two relocations are PREL32 against good symbols resolved in place (the others, as
    the reference resolves them)."""
    entries: list[Entry] = []
    findings: list[Finding] = []
    secs = table_sections(elf)
    flags = {s.flags for s in secs}
    base = 0
    for sec in secs:
        findings += _section_findings(elf, sec)
        if sec.type == SHT_NOBITS:  # nothing to read (and no relocations)
            continue
        data = elf.section_data(sec)
        n = sec.size // ENTRY_SIZE
        rel_secs = elf.relocation_sections_for(sec)
        got = _entries_in_order(elf, sec, data, rel_secs, n, base)
        if got is not None:
            entries += got
            base += n
            continue
        relocs: dict = {}
        for rs in rel_secs:
            whole = {SHT_RELA: 24, SHT_REL: 16}.get(rs.type)
            if whole and rs.size % whole:  # a malformed table, not an unreadable file
                findings.append(finding(
                    "ALT012", f"{rs.name} is {rs.size} bytes, not a multiple of {whole}: the "
                    "table's relocations cannot be read", elf.path,
                    f"section {rs.index} {rs.name}"))
                continue
            rels = elf.relocations(rs)
            # The first relocation at an offset, as setdefault keeps it: the list reversed.
            these = dict(zip([r.offset for r in reversed(rels)], reversed(rels)))
            these.update(relocs)  # an earlier section's stays
            relocs = these
        targets: dict[int, tuple] = {}  # a table's relocations name few symbols
        get, path, name = relocs.get, elf.path, sec.name
        for i, (_, _, cap, orig_len, alt_len) in enumerate(
                ENTRY.iter_unpack(data[:n * ENTRY_SIZE])):
            off = i * ENTRY_SIZE
            rs_, ra = get(off), get(off + 4)
            if rs_ is not None and ra is not None and rs_.type == R_AARCH64_PREL32 \
                    and ra.type == R_AARCH64_PREL32:
                ts = targets.get(rs_.sym)
                if ts is None:
                    ts = targets[rs_.sym] = _target(elf, rs_.sym)
                ta = targets.get(ra.sym)
                if ta is None:
                    ta = targets[ra.sym] = _target(elf, ra.sym)
                if type(ts) is tuple and type(ta) is tuple:
                    entries.append(_new(Entry, (
                        path, base + i, name, off,
                        _new(Place, (ts[0], ts[1], ts[2] + rs_.addend, None, ts[3], rs_.addend)),
                        _new(Place, (ta[0], ta[1], ta[2] + ra.addend, None, ta[3], ra.addend)),
                        cap, orig_len, alt_len, None)))
                    continue
            site, site_problem = _resolve(elf, rs_, "site", targets)
            alt, alt_problem = _resolve(elf, ra, "replacement", targets)
            if site_problem or alt_problem:
                findings.extend(finding("ALT012", problem, path, f"{name} entry {base + i}",
                                        entry=base + i)
                                for problem in (site_problem, alt_problem) if problem)
                continue
            entries.append(_new(Entry, (path, base + i, name, off, site, alt, cap, orig_len,
                                        alt_len, None)))
        base += n
    findings += _table_flags_findings(elf, secs, flags)
    return Table(elf.path, entries, findings, secs)


def _table_flags_findings(elf: ElfFile, secs: list[Section], flags) -> list[Finding]:
    """ALT012 for an object's table sections themselves: flags that differ, or not allocated."""
    out = []
    if len(flags) > 1:
        out.append(finding("ALT012", "the .altinstructions sections of this object have "
                           "different flags", elf.path))
    if secs and not all(s.flags & SHF_ALLOC for s in secs):
        out.append(finding("ALT012", ".altinstructions is not allocated (flags \"a\" "
                           "expected): the table would not be loaded", elf.path,
                           f"section {secs[0].index} {secs[0].name}"))
    return out


def _entries_in_order(elf: ElfFile, sec: Section, data: bytes, rel_secs: list[Section],
                      n: int, base: int) -> list[Entry] | None:
    """A table's entries read from its relocations' columns, where the assembler wrote them
    as it does: one RELA section, two PREL32 relocations an entry, at the entry's two
    offsets in order, against symbols that are places. None otherwise (the caller reads the
    table entry by entry)."""
    if len(rel_secs) != 1 or rel_secs[0].type != SHT_RELA or rel_secs[0].size != 48 * n \
            or not n:
        return None
    rel = elf.section_data(rel_secs[0])
    sp = speedups.get()
    if sp is not None:
        sym = _symbol_bytes(elf)
        if sym is not None:
            got = sp.object_entries(data, rel, sym[0], sym[1], elf.sections, elf.path,
                                    sec.name, base, n, Entry, Place)
            if got is not None:
                return got
    words = memoryview(rel).cast("I")  # each relocation: offset (2 words), type, symbol, addend
    if words[0::6].tolist() != _pair_offsets(n) or any(words[1::6]) \
            or set(words[2::6].tolist()) != {R_AARCH64_PREL32}:
        return None
    syms = words[3::6].tolist()
    addends = memoryview(rel).cast("q")[2::3].tolist()
    targets = _targets(elf, set(syms))
    if any(type(t) is not tuple for t in targets.values()):
        return None
    # Each place from its symbol's target and its addend (the sites and the replacements in
    # turn); the entries a column at a time (``map`` and ``zip``, at C speed), the capability
    # and lengths from the table.
    places = [_new(Place, (t[0], t[1], t[2] + a, None, t[3], a))
              for t, a in zip(map(targets.__getitem__, syms), addends)]
    table = data[:n * ENTRY_SIZE]
    return list(map(_new_entry, zip(
        repeat(elf.path), range(base, base + n), repeat(sec.name),
        range(0, n * ENTRY_SIZE, ENTRY_SIZE), places[0::2], places[1::2],
        memoryview(table).cast("H")[4::6], table[10::12], table[11::12], repeat(None))))


def _symbol_bytes(elf: ElfFile) -> tuple[bytes, bytes] | None:
    """The symbol table's bytes and its string table's, as ``_targets`` reads them, for the
    extension; None where ``_targets`` would not read the symbols' bytes, or reading them
    raises (the Python then reads the table, with its errors)."""
    sec = elf.symtab if elf._symbols is None else None
    if sec is None or sec.link >= len(elf.sections):
        return None
    try:
        if elf._strtab is None:
            elf._strtab = elf.section_data(elf.sections[sec.link]) if sec.link else b""
        return elf.section_data(sec), elf._strtab
    except AltlinkError:
        return None


_OFFSET_LISTS: dict[int, list[int]] = {}


def _pair_offsets(n: int) -> list[int]:
    """0, 4, 12, 16, ...: the offsets of a table's n entries' two fields, in order."""
    got = _OFFSET_LISTS.get(n)
    if got is None:
        got = _OFFSET_LISTS[n] = [o for i in range(n) for o in (12 * i, 12 * i + 4)]
    return got


def read_object_table_py(elf: ElfFile) -> Table:
    """The reference for ``read_object_table``: each entry's two places resolved by
    ``_resolve``, each relocation indexed on its own."""
    entries: list[Entry] = []
    findings: list[Finding] = []
    secs = table_sections(elf)
    flags = {s.flags for s in secs}
    base = 0
    for sec in secs:
        findings += _section_findings(elf, sec)
        if sec.type == SHT_NOBITS:  # nothing to read (and no relocations)
            continue
        data = elf.section_data(sec)
        relocs = {}
        for rs in elf.relocation_sections_for(sec):
            whole = {SHT_RELA: 24, SHT_REL: 16}.get(rs.type)
            if whole and rs.size % whole:  # a malformed table, not an unreadable file
                findings.append(finding(
                    "ALT012", f"{rs.name} is {rs.size} bytes, not a multiple of {whole}: the "
                    "table's relocations cannot be read", elf.path,
                    f"section {rs.index} {rs.name}"))
                continue
            for r in elf.relocations(rs):
                relocs.setdefault(r.offset, r)
        n = sec.size // ENTRY_SIZE
        targets: dict[int, tuple] = {}  # a table's relocations name few symbols
        get, path, name = relocs.get, elf.path, sec.name
        for i, (_, _, cap, orig_len, alt_len) in enumerate(
                ENTRY.iter_unpack(data[:n * ENTRY_SIZE])):
            off = i * ENTRY_SIZE
            site, site_problem = _resolve(elf, get(off), "site", targets)
            alt, alt_problem = _resolve(elf, get(off + 4), "replacement", targets)
            if site_problem or alt_problem:
                findings.extend(finding("ALT012", problem, path, f"{name} entry {base + i}",
                                        entry=base + i)
                                for problem in (site_problem, alt_problem) if problem)
                continue
            entries.append(_new(Entry, (path, base + i, name, off, site, alt, cap, orig_len,
                                        alt_len, None)))
        base += n
    findings += _table_flags_findings(elf, secs, flags)
    return Table(elf.path, entries, findings, secs)


_new = tuple.__new__  # a named tuple made at C speed, every field given
_new_entry = partial(_new, Entry)


def _resolve(elf: ElfFile, r, what: str, targets: dict[int, tuple]
             ) -> tuple[Place | None, str | None]:
    if r is None:
        return None, f"no relocation for the {what} offset (an absolute offset in an object " \
                     "cannot be resolved)"
    if r.type != R_AARCH64_PREL32:
        return None, f"{what} relocation is {reloc_name(r.type)}, expected R_AARCH64_PREL32"
    target = targets.get(r.sym)
    if target is None:
        target = targets[r.sym] = _target(elf, r.sym)
    if isinstance(target, str):
        return None, f"{what} {target}"
    secname, shndx, value, named = target
    return _new(Place, (secname, shndx, value + r.addend, None, named, r.addend)), None


def _targets(elf: ElfFile, indexes) -> dict[int, tuple | str]:
    """``_target`` of each symbol index, by index, read from the symbols' bytes: a name is
    decoded only where the place keeps it (not a section's symbol: most of a table's
    relocations name ``.text`` and ``.altinstr_replacement``). A symbol that is not a place
    (``_target``'s errors), or a table ``ElfFile.symbol`` does not read so, through
    ``_target``."""
    out: dict[int, tuple | str] = {}
    sec = elf.symtab if elf._symbols is None else None
    if sec is None or sec.link >= len(elf.sections):
        return {i: _target(elf, i) for i in indexes}
    secs = elf.sections
    nsecs = min(len(secs), SHN_LORESERVE)
    unpack = _SYM_FIELDS.unpack_from
    data = strtab = None
    for i in indexes:
        if 0 <= i and (i + 1) * 24 <= sec.size:
            if data is None:  # (as ``symbol`` reads them, with their errors)
                if elf._strtab is None:
                    elf._strtab = elf.section_data(secs[sec.link]) if sec.link else b""
                strtab = elf._strtab
                data = elf.section_data(sec)
            name, info, shndx, value = unpack(data, i * 24)
            if shndx < nsecs:
                if shndx == SHN_UNDEF:
                    out[i] = "", SHN_UNDEF, 0, _cstr(strtab, name) or None
                else:
                    out[i] = secs[shndx].name, shndx, value, \
                        None if info & 0xF == STT_SECTION else (_cstr(strtab, name) or None)
                continue
        out[i] = _target(elf, i)
    return out


# (a symbol's st_name, st_info, st_shndx and st_value: ``elf._SYM`` but st_other, st_size)
_SYM_FIELDS = struct.Struct("<IBxHQ8x")


def _target(elf: ElfFile, index: int) -> tuple | str:
    """What a table relocation's symbol resolves to: (section name, index, value, symbol
    name) or, for a symbol that cannot be a place, what is wrong with it."""
    try:
        sym = elf.symbol(index)
    except IndexError:
        return f"relocation refers to symbol index {index}, past the symbol table"
    if sym.shndx == SHN_UNDEF:
        return "", SHN_UNDEF, 0, sym.name or None
    if sym.shndx in (SHN_ABS, SHN_COMMON) or sym.shndx >= SHN_LORESERVE:
        return f"relocation is against {sym.name or 'a symbol'} in a special section " \
               f"({sym.shndx:#x}), not code"
    if sym.shndx >= len(elf.sections):
        return f"relocation is against a symbol in section {sym.shndx}, which does not exist"
    sec = elf.sections[sym.shndx]
    named = None if sym.type == STT_SECTION else (sym.name or None)
    return sec.name, sec.index, sym.value, named


START_SYMBOL, END_SYMBOL = "__alt_instructions", "__alt_instructions_end"


def _bound(elf: ElfFile, name: str) -> int | None | str:
    """The value of a table-bounding symbol; None where there is none; a string saying what
    is wrong where there are several that disagree."""
    values = {s.value for s in elf.find_symbols(name) if s.shndx != SHN_UNDEF}
    if len(values) > 1:
        return f"{name} is defined {len(values)} times with different values"
    return values.pop() if values else None


def image_table_sections(elf: ElfFile) -> tuple[list[Section], list[Finding]]:
    """Where an image's table is: its ``.altinstructions`` output section, or, where a linker
    script merged that into another output section, the bytes between ``__alt_instructions``
    and ``__alt_instructions_end`` (as a section named after the start symbol, inside the one
    that holds them). Symbols that disagree with the section, or that do not bound whole
    entries, are ALT012."""
    secs = table_sections(elf)
    start, end = _bound(elf, START_SYMBOL), _bound(elf, END_SYMBOL)
    where = f"symbols {START_SYMBOL}/{END_SYMBOL}"
    bad = [b for b in (start, end) if isinstance(b, str)]
    if bad:
        return secs, [finding("ALT012", "; ".join(bad), elf.path, where)]
    if start is None and end is None:
        return secs, []
    if start is None or end is None:
        have, missing = (START_SYMBOL, END_SYMBOL) if end is None else (END_SYMBOL,
                                                                         START_SYMBOL)
        if secs:
            return secs, []  # the section is the table; a lone symbol bounds nothing
        return [], [finding("ALT012", f"{have} is defined but {missing} is not: the table "
                            "cannot be bounded", elf.path, where)]
    if secs:
        lo = min(s.addr for s in secs)
        hi = max(s.addr + s.size for s in secs)
        if (start, end) != (lo, hi):
            return secs, [finding(
                "ALT012", f"{START_SYMBOL}..{END_SYMBOL} is {start:#x}..{end:#x}, but the "
                f".altinstructions section is {lo:#x}..{hi:#x}: the runtime reads the table "
                "between the symbols", elf.path, where)]
        return secs, []
    if end < start or (end - start) % ENTRY_SIZE:
        return [], [finding("ALT012", f"{START_SYMBOL}..{END_SYMBOL} is {start:#x}..{end:#x}, "
                            f"{end - start} bytes: not whole {ENTRY_SIZE}-byte entries",
                            elf.path, where)]
    if end == start:
        return [], []
    holder = elf.section_at(start)
    if holder is None or start + (end - start) > holder.addr + holder.size:
        return [], [finding("ALT012", f"{START_SYMBOL}..{END_SYMBOL} ({start:#x}..{end:#x}) is "
                            "not inside one section of the image", elf.path, where)]
    region = holder._replace(name=START_SYMBOL, addr=start,
                             offset=holder.offset + (start - holder.addr), size=end - start,
                             entsize=0)
    return [region], []


# The entries from which an image's table is read a column at a time, when numpy is loaded.
COLUMNS_FROM_ENTRIES = 256


def read_image_table(elf: ElfFile, columns: bool = True) -> Table:
    """Entries of a linked image: the relative offsets are already resolved. With numpy
    loaded, a large table is read a column at a time (``_image_entries_np``); ``columns=False``
    reads it entry by entry (the reference)."""
    entries: list[Entry] = []
    secs, findings = image_table_sections(elf)
    parts: list[_SectionRows] = []  # read as columns, their entries not made yet
    cols: list[dict] | None = []
    for sec in secs:
        findings += _section_findings(elf, sec)
        if sec.type == SHT_NOBITS:  # nothing to read
            continue
        data = elf.section_data(sec)
        n = sec.size // ENTRY_SIZE
        path, name, base = elf.path, sec.name, sec.addr
        got = _image_entries_np(elf, sec, data, n, len(entries) + sum(p.n for p in parts)) \
            if columns else None
        if got is not None:
            rows, outside, c = got
            for index, site, site_in, alt, alt_in in outside:  # a place outside the image
                what = [f"{w} offset points outside the image ({a:#x})"
                        for w, a, inside in (("site", site, site_in), ("replacement", alt, alt_in))
                        if not inside]
                findings.append(finding("ALT012", "; ".join(what), path, f"{name} entry {index}",
                                        entry=index))
            parts.append(rows)
            if cols is not None:
                cols.append(c)
            continue
        cols = None
        for p in parts:  # the entries before this section's, made now
            entries += p.all()
        parts = []
        for i, (orig_rel, alt_rel, cap, orig_len, alt_len) in enumerate(
                ENTRY.iter_unpack(data[:n * ENTRY_SIZE])):
            off = i * ENTRY_SIZE
            addr = base + off
            # 64-bit address arithmetic, as the runtime's: below 0 wraps to the top.
            site = _image_place(elf, (addr + orig_rel) & ADDR_MASK)
            alt = _image_place(elf, (addr + 4 + alt_rel) & ADDR_MASK)
            if not (site.section_index and alt.section_index):
                outside = [f"{what} offset points outside the image ({p.address:#x})"
                           for what, p in (("site", site), ("replacement", alt)) if not p.defined]
                findings.append(finding("ALT012", "; ".join(outside), path,
                                        f"{name} entry {len(entries)}", entry=len(entries)))
            entries.append(_new(Entry, (path, len(entries), name, off, site, alt, cap, orig_len,
                                        alt_len, addr)))
    columns_read = None
    if cols:
        import numpy as np

        # (one table section's, as a firmware's: its arrays, not copies of them)
        columns_read = cols[0] if len(cols) == 1 else \
            {k: np.concatenate([c[k] for c in cols]) for k in IMAGE_COLUMNS}
    if parts and not entries:  # all read as columns: the entries made when asked for
        return Table(elf.path, _Unread(parts), findings, secs, columns_read)  # type: ignore
    for p in parts:
        entries += p.all()
    return Table(elf.path, entries, findings, secs, columns_read)


# The columns of an image's table read with numpy (``Table.columns``), each an array of its
# entries' values: their own address, their site's and replacement's address, section index
# (0: outside every section, as ``Place.section_index``) and offset in it, and the fields.
IMAGE_COLUMNS = ("address", "site_addr", "site_sec", "site_off", "alt_addr", "alt_sec",
                 "alt_off", "cap", "orig_len", "alt_len")


def _image_entries_np(elf: ElfFile, sec: Section, data: bytes, n: int, first: int):
    """The loop of ``read_image_table`` over one table section, a column at a time with
    numpy (each place's section found as ``ElfFile.section_at`` finds it, for all at once):
    (its entries, made when first asked for (``_SectionRows``), the positions of those with
    a place outside the image and those places (address, in a section), the columns
    ``IMAGE_COLUMNS`` names). None where numpy is not loaded, the table is small, or an
    address would pass 2**64 (the loop decides)."""
    import sys

    np = sys.modules.get("numpy")
    starts, secs = elf._alloc_index
    if np is None or n < COLUMNS_FROM_ENTRIES or sec.addr + n * ENTRY_SIZE >= 1 << 64 \
            or any(s.addr + s.size >= 1 << 64 for s in secs):
        return None
    rows = np.frombuffer(data, dtype=np.dtype([("site", "<i4"), ("alt", "<i4"), ("cap", "<u2"),
                                               ("orig_len", "u1"), ("alt_len", "u1")]),
                         count=n)
    addr = np.arange(n, dtype=np.uint64) * np.uint64(ENTRY_SIZE) + np.uint64(sec.addr)
    # 64-bit address arithmetic, as the runtime's: below 0 wraps to the top.
    site = addr + rows["site"].astype(np.int64).astype(np.uint64)
    alt = addr + np.uint64(4) + rows["alt"].astype(np.int64).astype(np.uint64)
    lo = np.array(starts, dtype=np.uint64)
    hi = np.array([s.addr + s.size for s in secs], dtype=np.uint64)
    sec_index = np.array([s.index for s in secs] + [SHN_UNDEF], dtype=np.int64)

    def places(at):
        found = np.full(n, -1, dtype=np.int64)
        if len(secs):
            i = np.searchsorted(lo, at, side="right").astype(np.int64) - 1
            for k in range(4):  # section_at's walk back over sections that nest or overlap
                j = np.maximum(i - k, 0)
                hit = (found < 0) & (i - k >= 0) & (lo[j] <= at) & (at < hi[j])
                found[hit] = j[hit]
                if k == 0 and hit.all():  # (each in the last section that starts before it)
                    break
        offsets = np.where(found >= 0, at - lo[np.maximum(found, 0)], 0).astype(np.uint64) \
            if len(secs) else np.zeros(n, dtype=np.uint64)
        return found, offsets

    site_in, site_off = places(site)
    alt_in, alt_off = places(alt)
    cols = {"address": addr, "site_addr": site, "site_sec": sec_index[site_in],
            "site_off": site_off, "alt_addr": alt, "alt_sec": sec_index[alt_in],
            "alt_off": alt_off, "cap": rows["cap"].astype(np.int64),
            "orig_len": rows["orig_len"].astype(np.int64),
            "alt_len": rows["alt_len"].astype(np.int64)}
    bad = np.flatnonzero((site_in < 0) | (alt_in < 0))
    outside = list(zip((bad + first).tolist(), site[bad].tolist(), (site_in[bad] >= 0).tolist(),
                       alt[bad].tolist(), (alt_in[bad] >= 0).tolist()))
    return _SectionRows(elf.path, sec.name, first, n, secs, cols, site_in, alt_in), outside, cols


class _SectionRows:
    """One table section's entries read as columns (``_image_entries_np``): made as
    ``Entry`` objects all at once (``all``), or one (``one``), when asked for."""

    def __init__(self, path: str, name: str, first: int, n: int, secs: list, cols: dict,
                 site_in, alt_in) -> None:
        self.path, self.name, self.first, self.n = path, name, first, n
        self.names = [s.name for s in secs] + [""]  # [-1]: outside every section
        self.indexes = [s.index for s in secs] + [SHN_UNDEF]
        self.cols, self.site_in, self.alt_in = cols, site_in, alt_in

    def _places(self, found, offsets, at) -> list[Place]:
        which = found.tolist()
        return list(map(partial(_new, Place), zip(
            map(self.names.__getitem__, which), map(self.indexes.__getitem__, which),
            offsets.tolist(), at.tolist(), repeat(None), repeat(0))))

    def all(self) -> list[Entry]:
        c, n = self.cols, self.n
        return list(map(partial(_new, Entry), zip(
            repeat(self.path), range(self.first, self.first + n), repeat(self.name),
            range(0, n * ENTRY_SIZE, ENTRY_SIZE),
            self._places(self.site_in, c["site_off"], c["site_addr"]),
            self._places(self.alt_in, c["alt_off"], c["alt_addr"]), c["cap"].tolist(),
            c["orig_len"].tolist(), c["alt_len"].tolist(), c["address"].tolist())))

    def one(self, i: int) -> Entry:
        """The entry at position ``i`` of the table (of this section's)."""
        k, c = i - self.first, self.cols
        s, a = int(self.site_in[k]), int(self.alt_in[k])
        site = _new(Place, (self.names[s], self.indexes[s], int(c["site_off"][k]),
                            int(c["site_addr"][k]), None, 0))
        alt = _new(Place, (self.names[a], self.indexes[a], int(c["alt_off"][k]),
                           int(c["alt_addr"][k]), None, 0))
        return _new(Entry, (self.path, i, self.name, k * ENTRY_SIZE, site, alt,
                            int(c["cap"][k]), int(c["orig_len"][k]), int(c["alt_len"][k]),
                            int(c["address"][k])))


class _Unread:
    """A table's entries not made yet (``Table.entries`` makes them when first asked for):
    the table sections' rows (``_SectionRows``), and the entries made one by one before
    (``Table.entry``), which the whole list reuses."""

    def __init__(self, parts: list[_SectionRows]) -> None:
        self.parts = parts
        self.size = sum(p.n for p in parts)
        self.made: dict[int, Entry] = {}

    def all(self) -> list[Entry]:
        out = [e for p in self.parts for e in p.all()]
        for i, e in self.made.items():
            out[i] = e
        return out

    def one(self, i: int) -> Entry:
        got = self.made.get(i)
        if got is None:
            if not 0 <= i < self.size:
                raise IndexError(i)
            part = next(p for p in self.parts if i < p.first + p.n)
            got = self.made[i] = part.one(i)
        return got


def _entries_get(table: Table) -> list[Entry]:
    got = table.__dict__["_entries"]
    if type(got) is _Unread:
        got = table.__dict__["_entries"] = got.all()
    return got


def _entries_set(table: Table, value) -> None:
    table.__dict__["_entries"] = value


# A table's entries: a list, made when first asked for where the table was read as columns
# (``read_image_table``); ``Table.size`` and ``Table.entry`` do not make them all.
Table.entries = property(_entries_get, _entries_set)  # type: ignore[assignment]


def _image_place(elf: ElfFile, addr: int) -> Place:
    sec = elf.section_at(addr)
    if sec is None:
        return _new(Place, ("", SHN_UNDEF, 0, addr, None, 0))
    return _new(Place, (sec.name, sec.index, addr - sec.addr, addr, None, 0))
