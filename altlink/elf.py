"""ELF reading for altlink: headers, sections, symbols and relocations of AArch64 ELF64 files.

Plain ``struct`` decoding over one read-only mapping of the file: this is the hot path (a
kernel has a thousand modules and a 270 MB vmlinux), so nothing is parsed until asked for and
everything parsed is cached. Every size and offset taken from the file is checked against the
file before it is used; a file altlink cannot read raises :class:`AltlinkError` with a one-line
message naming the file and the place.
"""
from __future__ import annotations

import mmap
import os
import struct
from bisect import bisect_right
from collections import namedtuple
from functools import cached_property, partial
from itertools import accumulate

from altlink import speedups
from altlink.errors import AltlinkError
from altlink.filekind import BITCODE_MAGICS, EM_AARCH64  # noqa: F401 - elf's names too
from altlink.values import Frozen

ET_REL, ET_EXEC, ET_DYN = 1, 2, 3
ET_NAMES = {ET_REL: "relocatable object", ET_EXEC: "executable", ET_DYN: "shared object"}

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 0, 1, 2, 3, 4
SHT_NOBITS, SHT_REL, SHT_DYNSYM = 8, 9, 11
SHT_GROUP = 17
SHT_SYMTAB_SHNDX = 18
SHT_RELR = 19
SHT_LLVM_CREL = 0x40000014  # CREL compact relocations (a format altlink does not read)

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHF_COMPRESSED = 0x800

SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON, SHN_XINDEX = 0, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF

STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4
STT_GNU_IFUNC = 10
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2

PT_LOAD = 1

R_AARCH64_NONE = 0
R_AARCH64_ABS64 = 257
R_AARCH64_PREL32 = 261
R_AARCH64_PREL64 = 260

RELOC_NAMES = {
    0: "R_AARCH64_NONE", 257: "R_AARCH64_ABS64", 258: "R_AARCH64_ABS32", 259: "R_AARCH64_ABS16",
    260: "R_AARCH64_PREL64", 261: "R_AARCH64_PREL32", 262: "R_AARCH64_PREL16",
    274: "R_AARCH64_ADR_PREL_LO21", 275: "R_AARCH64_ADR_PREL_PG_HI21",
    276: "R_AARCH64_ADR_PREL_PG_HI21_NC", 277: "R_AARCH64_ADD_ABS_LO12_NC",
    273: "R_AARCH64_LD_PREL_LO19", 279: "R_AARCH64_TSTBR14", 280: "R_AARCH64_CONDBR19",
    282: "R_AARCH64_JUMP26", 283: "R_AARCH64_CALL26",
}

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_REL = struct.Struct("<QQ")

# Bounds on counts taken from a file: generous for any real kernel, small enough that a hostile
# header cannot make altlink allocate or loop without end.
MAX_SECTIONS = 1 << 20
MAX_SEGMENTS = 1 << 16


def reloc_name(rtype: int) -> str:
    return RELOC_NAMES.get(rtype, f"relocation type {rtype}")


class Section(namedtuple("Section", "index name type flags addr offset size link info align "
                         "entsize")):
    """One section header (a named tuple: a kernel module has dozens, made for every file).
    (``collections.namedtuple``, as every named tuple of the modules a check imports: not
    ``typing.NamedTuple``, whose module is 2 ms of the import.)"""

    __slots__ = ()

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)

    @property
    def alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)


class Segment(Frozen):
    """One program header."""

    _fields = ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int

    def __init__(self, type: int, flags: int, offset: int, vaddr: int, paddr: int,
                 filesz: int, memsz: int, align: int) -> None:
        _set = object.__setattr__
        _set(self, "type", type)
        _set(self, "flags", flags)
        _set(self, "offset", offset)
        _set(self, "vaddr", vaddr)
        _set(self, "paddr", paddr)
        _set(self, "filesz", filesz)
        _set(self, "memsz", memsz)
        _set(self, "align", align)


class Symbol(namedtuple("Symbol", "index name value size type bind shndx")):
    """One symbol table entry. A named tuple, not a dataclass: a vmlinux has 150,000 of them
    and this is the hot path."""

    __slots__ = ()

    @property
    def defined(self) -> bool:
        return self.shndx != SHN_UNDEF


class Reloc(namedtuple("Reloc", "offset type sym addend")):
    """One relocation (a named tuple: modules carry tens of thousands)."""

    __slots__ = ()


class once:
    """``functools.cached_property`` without its lock (Python 3.11's takes one on every first
    read; 3.12 dropped it): the value is made on the first read and kept in the instance's
    ``__dict__``, where later reads find it. Two threads reading it first at once each make
    the same value. (An ELF file's headers, symbol table and indexes: made for thousands of
    objects, a few each.)"""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        got = obj.__dict__[self.name] = self.fn(obj)
        return got


class RelocMap:
    """Relocations of one section by offset. The offsets are indexed at C speed (a module's
    .text has thousands of relocations); a relocation is decoded only when asked for."""

    def __init__(self, elf: ElfFile, rel_sections: list[Section]) -> None:
        self._parts: list[tuple[bytes, dict[int, int]]] = []
        self._plain: dict[int, Reloc] = {}
        for rs in rel_sections:
            data = elf.section_data(rs) if rs.type == SHT_RELA else b""
            if rs.type == SHT_RELA and rs.size % _RELA.size == 0 and data:
                offsets = memoryview(data).cast("Q")[0::3]
                n = len(offsets)
                self._parts.append((data, dict(zip(offsets[::-1], range(n - 1, -1, -1)))))
            else:
                for r in elf.relocations(rs):
                    self._plain.setdefault(r.offset, r)

    def get(self, offset: int, default: Reloc | None = None) -> Reloc | None:
        for data, index in self._parts:
            i = index.get(offset)
            if i is not None:
                o, info, addend = _RELA.unpack_from(data, i * _RELA.size)
                return Reloc(o, info & 0xFFFFFFFF, info >> 32, addend)
        return self._plain.get(offset, default)

    def __contains__(self, offset: int) -> bool:
        return any(offset in index for _, index in self._parts) or offset in self._plain

    @cached_property
    def offsets(self):
        """Every relocated offset, for many membership tests (``in``) at C speed."""
        if len(self._parts) == 1 and not self._plain:
            return self._parts[0][1]
        return {*self._plain, *(o for _, index in self._parts for o in index)}


_UNREAD = object()  # (a value not read yet)
_new_symbol = partial(tuple.__new__, Symbol)  # Symbol(*fields), at C speed


class ElfFile:
    """One AArch64 ELF64 little-endian file, mapped read-only; parsed lazily, cached."""

    def __init__(self, path: str, data) -> None:
        self.path = path
        self.data = data
        self.size = len(data)
        (ident, self.type, self.machine, _version, self.entry, self.phoff, self.shoff, _flags,
         _ehsize, self.phentsize, self.phnum, self.shentsize, shnum, self.shstrndx) = \
            _EHDR.unpack_from(data, 0)
        self.shnum = shnum
        self._symbols: list[Symbol] | None = None
        self._values: list[int] | None = None  # the symbols' values, for symbols_at_value
        self._one_symbol: dict[int, Symbol] = {}
        self._last_at: list[tuple[int, int, Section]] = []
        self._strtab: bytes | None = None
        self._section_data: dict[int, bytes] = {}
        self._name_table: bytes | None | object = _UNREAD  # ``_section_name_table``'s

    # -- errors ----------------------------------------------------------------------------
    def error(self, what: str) -> AltlinkError:
        return AltlinkError(f"{self.path}: {what}")

    # -- headers ---------------------------------------------------------------------------
    def _header_table(self) -> tuple[int, int]:
        """The number of section headers and the index of the section name table, checked
        against the file (the table is not empty: ``shoff`` is not 0)."""
        if self.shentsize != _SHDR.size:
            raise self.error(f"section header size {self.shentsize}, expected {_SHDR.size}")
        shnum, shstrndx = self.shnum, self.shstrndx
        if self.shoff > self.size or self.size - self.shoff < _SHDR.size:
            raise self.error(f"section header table at {self.shoff:#x} is past the end of the file")
        if shnum == 0:  # more than SHN_LORESERVE sections: the count is in section 0's size
            shnum = _SHDR.unpack_from(self.data, self.shoff)[5]
        if shstrndx == SHN_XINDEX:
            shstrndx = _SHDR.unpack_from(self.data, self.shoff)[6]
        if shnum > MAX_SECTIONS or self.shoff + shnum * _SHDR.size > self.size:
            raise self.error(f"section header table ({shnum} entries at {self.shoff:#x}) "
                             "runs past the end of the file")
        return shnum, shstrndx

    def _names_at(self, shstrndx: int, header: tuple) -> bytes:
        return self._bytes_at(header[4], header[5], f"section name table (section {shstrndx})")

    def may_have_section(self, name: str) -> bool:
        """False only when no section can be named ``name``: its bytes, ending with a NUL or
        the table, are nowhere in the section name table. A test of a few microseconds, before
        ``sections`` is decoded (True where the table cannot be read: ``sections`` says why)."""
        names = self._section_name_table()
        if names is None:
            return True
        key = name.encode("utf-8")
        return key + b"\0" in names or names.endswith(key)

    def may_have_section_prefix(self, prefix: str) -> bool:
        """``may_have_section`` for any name that starts with ``prefix``."""
        names = self._section_name_table()
        return names is None or prefix.encode("utf-8") in names

    def _section_name_table(self) -> bytes | None:
        """The section name table's bytes (empty where there is none), None where it cannot be
        read; read once (a file's module test and LTO test both ask)."""
        got = self._name_table
        if got is _UNREAD:
            got = self._name_table = self._read_section_name_table()
        return got  # type: ignore[return-value]

    def _read_section_name_table(self) -> bytes | None:
        if self.shoff == 0:
            return b""
        try:
            shnum, shstrndx = self._header_table()
            if not 0 < shstrndx < shnum:
                return b""
            return self._names_at(shstrndx, _SHDR.unpack_from(
                self.data, self.shoff + shstrndx * _SHDR.size))
        except (AltlinkError, struct.error):
            return None

    @once
    def sections(self) -> list[Section]:
        if self.shoff == 0:
            return []
        shnum, shstrndx = self._header_table()
        names = b""
        if 0 < shstrndx < shnum:
            names = self._names_at(shstrndx, _SHDR.unpack_from(
                self.data, self.shoff + shstrndx * _SHDR.size))
        strings = _section_names(names)  # a name inside another's tail: below
        sp = speedups.get()
        if sp is not None:
            got = sp.sections(self.data, self.shoff, shnum, names, strings, Section)
            if got is not None:
                return got
        return self._sections_py(shnum, names, strings)

    def _sections_py(self, shnum: int, names: bytes, strings: dict[int, str]
                     ) -> list[Section]:
        """``sections`` in Python, from the name table's bytes and its strings by offset (the
        reference for the extension's, ``altlink.speedups``, and what reads a file it does
        not)."""
        raw = list(_SHDR.iter_unpack(self.data[self.shoff:self.shoff + shnum * _SHDR.size]))
        out = []
        new = tuple.__new__
        end = self.size
        for i, (name, typ, flags, addr, off, size, link, info, align, entsize) in enumerate(raw):
            nm = strings.get(name)
            if nm is None:
                nm = _cstr(names, name)
            if typ != SHT_NOBITS and typ != SHT_NULL and (off > end or size > end - off):
                raise self.error(f"section {i} ({nm}) at {off:#x}+{size:#x} runs past the end "
                                 f"of the file ({end:#x} bytes)")
            out.append(new(Section, (i, nm, typ, flags, addr, off, size, link, info, align,
                                     entsize)))
        return out

    def code_size(self) -> int:
        """The bytes of its executable sections (``sections``' ``executable`` ones but NOBITS),
        from the section header table's flags, types and sizes alone: the names are not
        decoded where ``sections`` was not asked for yet (an estimate of the code a link's
        image will scan, made for thousands of objects whose records are kept)."""
        decoded = "sections" in self.__dict__
        sp = speedups.get()
        if self.shoff and (not decoded or sp is not None):
            try:
                shnum, _ = self._header_table()
            except AltlinkError:
                pass  # ``sections`` names the problem, below
            else:
                # (the extension's sum, from the same headers, where they are decoded too)
                got = sp.code_size(self.data, self.shoff, shnum) if sp is not None else None
                if got is not None:
                    return got
                if not decoded:
                    return sum(size for _n, typ, flags, _a, _o, size, *_ in
                               _SHDR.iter_unpack(self.data[self.shoff:
                                                           self.shoff + shnum * _SHDR.size])
                               if flags & SHF_EXECINSTR and typ != SHT_NOBITS)
        return sum(s.size for s in self.sections if s.executable and s.type != SHT_NOBITS)

    @once
    def segments(self) -> list[Segment]:
        if self.phoff == 0 or self.phnum == 0:
            return []
        if self.phentsize != _PHDR.size:
            raise self.error(f"program header size {self.phentsize}, expected {_PHDR.size}")
        if self.phnum > MAX_SEGMENTS or self.phoff + self.phnum * _PHDR.size > self.size:
            raise self.error(f"program headers ({self.phnum} at {self.phoff:#x}) run past the "
                             "end of the file")
        return [Segment(*p) for p in
                _PHDR.iter_unpack(self.data[self.phoff:self.phoff + self.phnum * _PHDR.size])]

    @once
    def sections_by_name(self) -> dict[str, list[Section]]:
        return self._index_sections()[0]

    def _index_sections(self) -> tuple[dict[str, list[Section]], Section | None,
                                       dict[int, list[Section]]]:
        """``sections_by_name``, ``symtab`` and ``_relocation_sections``, made in one pass
        over the sections and kept (each of them asks, whichever is read first).
        ``_index_sections_py`` is the reference, which the extension (``altlink.speedups``)
        leaves what it does not read."""
        sp = speedups.get()
        got = sp.index_sections(self.sections, self.type == ET_REL) if sp is not None else None
        if got is None:
            return self._index_sections_py()
        d = self.__dict__
        d["sections_by_name"], d["symtab"], d["_relocation_sections"] = got
        return got

    def _index_sections_py(self) -> tuple[dict[str, list[Section]], Section | None,
                                          dict[int, list[Section]]]:
        """The reference for ``_index_sections``."""
        by_name: dict[str, list[Section]] = {}
        rel: dict[int, list[Section]] = {}
        symtab = dynsym = None
        alloc_too = self.type == ET_REL  # (an image's allocated ones are its dynamic ones)
        for s in self.sections:
            got = by_name.get(s.name)
            if got is None:
                by_name[s.name] = [s]
            else:
                got.append(s)
            typ = s.type
            if typ == SHT_SYMTAB:
                if symtab is None:
                    symtab = s
            elif typ == SHT_DYNSYM:
                if dynsym is None:
                    dynsym = s
            elif typ in (SHT_RELA, SHT_REL, SHT_LLVM_CREL) and \
                    (alloc_too or not s.flags & SHF_ALLOC):
                got = rel.get(s.info)
                if got is None:
                    rel[s.info] = [s]
                else:
                    got.append(s)
        if symtab is None:  # a stripped shared library or image still has its dynamic one
            symtab = dynsym
        d = self.__dict__
        d["sections_by_name"], d["symtab"], d["_relocation_sections"] = by_name, symtab, rel
        return by_name, symtab, rel

    def sections_by_name_py(self) -> dict[str, list[Section]]:
        """The reference for ``sections_by_name``."""
        out: dict[str, list[Section]] = {}
        for s in self.sections:
            out.setdefault(s.name, []).append(s)
        return out

    def section(self, index: int) -> Section:
        if not 0 <= index < len(self.sections):
            raise self.error(f"section index {index} out of range")
        return self.sections[index]

    def section_data(self, sec: Section) -> bytes:
        """The section's bytes (empty for NOBITS); checked against the file, cached."""
        got = self._section_data.get(sec.index)
        if got is None:
            if sec.type == SHT_NOBITS:
                got = b""
            else:
                got = self._bytes_at(sec.offset, sec.size, f"section {sec.index} ({sec.name})")
            self._section_data[sec.index] = got
        return got

    def section_view(self, sec: Section):
        """The section's bytes as ``section_data`` gives them, for a read that needs no copy
        (a hash): the cached copy where there is one, else a view of the file's bytes, not
        kept (the section headers were checked against the file when read)."""
        got = self._section_data.get(sec.index)
        if got is not None or sec.type == SHT_NOBITS:
            return self.section_data(sec)
        if sec.offset > self.size or sec.size > self.size - sec.offset:
            return self.section_data(sec)  # its error
        return memoryview(self.data)[sec.offset:sec.offset + sec.size]

    def _bytes_at(self, off: int, size: int, what: str) -> bytes:
        if off > self.size or size > self.size - off:
            raise self.error(f"{what} at {off:#x}+{size:#x} runs past the end of the file")
        return bytes(self.data[off:off + size])

    # -- symbols ---------------------------------------------------------------------------
    @once
    def symtab(self) -> Section | None:
        """The symbol table; a stripped shared library or image still has its dynamic one
        (``_index_sections``)."""
        return self._index_sections()[1]

    def symtab_py(self) -> Section | None:
        """The reference for ``symtab``."""
        for s in self.sections:
            if s.type == SHT_SYMTAB:
                return s
        for s in self.sections:
            if s.type == SHT_DYNSYM:
                return s
        return None

    @property
    def symbols(self) -> list[Symbol]:
        if self._symbols is None:
            self._symbols = self._read_symbols(self.symtab) if self.symtab else []
        return self._symbols

    @once
    def _a64_code(self) -> frozenset[int]:
        """The indexes of the sections of A64 code that are not SHF_EXECINSTR: allocated,
        read-only PROGBITS sections in which the assembler put an ``$x`` mapping symbol (the
        AArch64 ELF ABI's mark of A64 instructions; LLVM may number it, ``$x.1``). Linux 6.12
        assembles ``.idmap.text`` as ``"a"``: code that runs only through the identity map,
        which its linker script puts in ``.rodata.text``, and whose alternatives it patches."""
        maybe = {s.index for s in self.sections if s.type == SHT_PROGBITS and s.alloc
                 and not s.flags & (SHF_EXECINSTR | SHF_WRITE)}
        if not maybe:
            return frozenset()
        return frozenset(s.shndx for s in self.symbols if s.shndx in maybe
                         and (s.name == "$x" or s.name.startswith("$x.")))

    def is_code(self, sec: Section) -> bool:
        """A section of A64 code: executable, or read-only and marked as A64 code
        (:attr:`_a64_code`)."""
        return sec.executable or sec.index in self._a64_code

    def _read_symbols(self, sec: Section, columns: bool = True) -> list[Symbol]:
        """The symbols, a column at a time (``_symbols_by_column``), else one at a time (the
        reference, which the tests compare it with)."""
        if sec.entsize not in (0, _SYM.size):
            raise self.error(f"symbol table entry size {sec.entsize}, expected {_SYM.size}")
        if sec.size % _SYM.size:
            raise self.error(f"symbol table size {sec.size:#x} is not a multiple of {_SYM.size}")
        strtab = self.section_data(self.section(sec.link)) if sec.link else b""
        data = self.section_data(sec)
        fast = _symbols_by_column(data, strtab) if data and columns else None
        if fast is not None:
            return fast
        shndx_ext = None
        out = []
        append = out.append
        find = strtab.find
        names = _string_table(strtab)
        new = tuple.__new__
        for i, (name, info, _other, shndx, value, size) in enumerate(_SYM.iter_unpack(data)):
            if shndx == SHN_XINDEX:
                if shndx_ext is None:
                    shndx_ext = self._xindex_table(sec)
                shndx = shndx_ext[i] if i < len(shndx_ext) else SHN_UNDEF
            nm = names.get(name)
            if nm is None:
                end = find(b"\0", name)
                nm = strtab[name:end if end >= 0 else len(strtab)].decode("utf-8", "replace") \
                    if name < len(strtab) else ""
                names[name] = nm
            append(new(Symbol, (i, nm, value, size, info & 0xF, info >> 4, shndx)))
        return out

    def _xindex_table(self, symtab: Section) -> list[int]:
        for s in self.sections:
            if s.type == SHT_SYMTAB_SHNDX and s.link == symtab.index:
                d = self.section_data(s)
                return list(struct.unpack(f"<{len(d) // 4}I", d[:len(d) // 4 * 4]))
        return []

    def symbol(self, index: int) -> Symbol:
        """One symbol by index; read on its own while the whole table is not needed (objects'
        relocations mostly name section symbols: the table need not be decoded for them)."""
        if self._symbols is not None:
            syms = self._symbols
            if not 0 <= index < len(syms):
                raise IndexError(index)
            return syms[index]
        got = self._one_symbol.get(index)
        if got is None:
            sec = self.symtab
            if sec is None or index < 0 or (index + 1) * _SYM.size > sec.size:
                raise IndexError(index)
            if self._strtab is None:
                self._strtab = self.section_data(self.section(sec.link)) if sec.link else b""
            name, info, _other, shndx, value, size = _SYM.unpack_from(
                self.section_data(sec), index * _SYM.size)
            if shndx == SHN_XINDEX:
                return self.symbols[index]
            got = _new_symbol((index, _cstr(self._strtab, name), value, size, info & 0xF,
                               info >> 4, shndx))
            self._one_symbol[index] = got
        return got

    def find_symbols(self, name: str) -> list[Symbol]:
        """The symbols named ``name``, without decoding the whole table: its occurrences in the
        string table (tails of longer names too, as linkers share them), then the entries whose
        ``st_name`` is one of them (a vmlinux has 150,000 symbols; a check asks for a few)."""
        if self._symbols is not None:
            return [s for s in self._symbols if s.name == name]
        sec = self.symtab
        if sec is None or not name or sec.size % _SYM.size:
            return []
        if self._strtab is None:
            self._strtab = self.section_data(self.section(sec.link)) if sec.link else b""
        strtab = self._strtab
        key = name.encode("utf-8") + b"\0"
        offsets = set()
        pos = strtab.find(key)
        while pos >= 0:
            offsets.add(pos)
            pos = strtab.find(key, pos + 1)
        if not offsets:
            return []
        # Each entry's st_name is its first four bytes: the entries that name one of the offsets
        # are found by searching the table for those bytes, at C speed, keeping the hits at an
        # entry's start (the same bytes elsewhere in an entry are values or sizes).
        data = self.section_data(sec)
        size = _SYM.size
        found = set()
        for off in offsets:
            pattern = off.to_bytes(4, "little")
            pos = data.find(pattern)
            while pos >= 0:
                if pos % size == 0:
                    found.add(pos // size)
                pos = data.find(pattern, pos + 1)
        return [self.symbol(i) for i in sorted(found)]

    def symbols_at_value(self, value: int) -> list[Symbol]:
        """The symbols whose value is ``value``, in table order (``list.index`` over the
        values, at C speed). While the table is not decoded, its entries whose value field
        holds those 8 bytes, found by searching the table for them (as ``find_symbols``);
        ``symbols_at_value_py`` is the reference."""
        sec = self.symtab
        if self._symbols is None and sec is not None and sec.size % _SYM.size == 0 \
                and 0 <= value < 1 << 64:
            data = self.section_data(sec)
            pattern = value.to_bytes(8, "little")
            out = []
            pos = data.find(pattern, 8)
            while pos >= 0:
                if pos % _SYM.size == 8:
                    out.append(self.symbol(pos // _SYM.size))
                    pos = data.find(pattern, pos + _SYM.size)
                else:
                    pos = data.find(pattern, pos + 1)
            return out
        return self.symbols_at_value_py(value)

    def symbols_at_value_py(self, value: int) -> list[Symbol]:
        """``symbols_at_value`` from the decoded symbols."""
        values = self._values
        if values is None:
            values = self._values = [s.value for s in self.symbols]
        out = []
        i = -1
        try:
            while True:
                i = values.index(value, i + 1)
                out.append(self._symbols[i])
        except ValueError:
            return out

    # -- relocations -----------------------------------------------------------------------
    def relocation_sections_for(self, target: Section) -> list[Section]:
        """The relocation sections that apply to ``target``, in their order (a list the
        caller does not change)."""
        got = self._relocation_sections.get(target.index)
        return got if got is not None else []

    @once
    def _relocation_sections(self) -> dict[int, list[Section]]:
        """``relocation_sections_for`` of every section that has any, found in one pass (a
        check asks it of an object's sections several times): ``_index_sections``."""
        return self._index_sections()[2]

    def relocation_sections_py(self) -> dict[int, list[Section]]:
        """The reference for ``_relocation_sections``."""
        out: dict[int, list[Section]] = {}
        for s in self.sections:
            if s.type in (SHT_RELA, SHT_REL, SHT_LLVM_CREL) \
                    and not (s.flags & SHF_ALLOC and self.type != ET_REL):
                out.setdefault(s.info, []).append(s)
        return out

    def relocations(self, sec: Section) -> list[Reloc]:
        """RELA or REL entries of one relocation section (REL addends read from the target)."""
        if sec.type == SHT_LLVM_CREL:
            raise self.error(f"section {sec.name}: CREL relocations are not supported; "
                             "assemble without --crel")
        data = self.section_data(sec)
        if sec.type == SHT_RELA:
            if sec.size % _RELA.size:
                raise self.error(f"section {sec.name}: size {sec.size:#x} is not a multiple of "
                                 f"{_RELA.size}")
            new = tuple.__new__
            return [new(Reloc, (o, i & 0xFFFFFFFF, i >> 32, a))
                    for o, i, a in _RELA.iter_unpack(data)]
        if sec.size % _REL.size:
            raise self.error(f"section {sec.name}: size {sec.size:#x} is not a multiple of "
                             f"{_REL.size}")
        target = self.section(sec.info)
        tdata = self.section_data(target)
        out = []
        for o, i in _REL.iter_unpack(data):
            rtype = i & 0xFFFFFFFF
            addend = 0
            if rtype in (R_AARCH64_PREL32,) and o + 4 <= len(tdata):
                addend = struct.unpack_from("<i", tdata, o)[0]
            elif rtype in (R_AARCH64_ABS64, R_AARCH64_PREL64) and o + 8 <= len(tdata):
                addend = struct.unpack_from("<q", tdata, o)[0]
            out.append(Reloc(o, rtype, i >> 32, addend))
        return out

    def reloc_map(self, target: Section) -> RelocMap:
        """The relocations that apply to ``target``, by offset (the first one at an offset)."""
        return RelocMap(self, self.relocation_sections_for(target))

    # -- addresses -------------------------------------------------------------------------
    @once
    def _alloc_index(self) -> tuple[list[int], list[Section]]:
        secs = sorted((s for s in self.sections if s.alloc and s.size), key=lambda s: s.addr)
        return [s.addr for s in secs], secs

    def section_at(self, addr: int) -> Section | None:
        """The allocated section holding the address (for linked images). The last answer is
        kept with the address range over which it holds: lookups come in runs."""
        for lo, hi, last in self._last_at:
            if lo <= addr < hi:
                return last
        starts, secs = self._alloc_index
        i = bisect_right(starts, addr) - 1
        # Sections may nest or overlap (e.g. TLS); walk back over a few candidates.
        for j in range(i, max(i - 4, -1), -1):
            sec = secs[j]
            if sec.addr <= addr < sec.addr + sec.size:
                if j == i:  # the first candidate: it holds up to the next section's start
                    end = sec.addr + sec.size
                    if i + 1 < len(starts):
                        end = min(end, starts[i + 1])
                    self._last_at = [(sec.addr, end, sec), *self._last_at[:3]]
                return sec
        return None

    def read_addr(self, addr: int, size: int) -> bytes | None:
        sec = self.section_at(addr)
        if sec is None or sec.type == SHT_NOBITS or addr + size > sec.addr + sec.size:
            return None
        off = addr - sec.addr
        return self.section_data(sec)[off:off + size]

    def file_offset(self, addr: int) -> int | None:
        sec = self.section_at(addr)
        if sec is None or sec.type == SHT_NOBITS:
            return None
        return sec.offset + addr - sec.addr

    def close(self) -> None:
        if isinstance(self.data, mmap.mmap):
            self._section_data.clear()
            self.data.close()


# The type (low 4 bits) and the binding (high 4 bits) of every st_info byte.
_INFO_TYPE = bytes(b & 0xF for b in range(256))
_INFO_BIND = bytes(b >> 4 for b in range(256))


def _symbols_by_column(data: bytes, strtab: bytes) -> list[Symbol] | None:
    """The symbol table decoded a column at a time, at C speed (a vmlinux has 150,000
    symbols): the same list as the loop of ``_read_symbols``. None where a symbol uses the
    extended section index table (SHN_XINDEX), which the loop reads."""
    n = len(data) // _SYM.size
    shndx = memoryview(data).cast("H")[3::12].tolist()
    if SHN_XINDEX in shndx:
        return None
    st_name = memoryview(data).cast("I")[0::6].tolist()
    q = memoryview(data).cast("Q")
    values, sizes = q[1::3].tolist(), q[2::3].tolist()
    info = data[4::24]
    names = _string_table(strtab)
    got = list(map(names.get, st_name))
    for i in [i for i, nm in enumerate(got) if nm is None]:  # a tail of a longer name
        off = st_name[i]
        if off < len(strtab):
            end = strtab.find(b"\0", off)
            got[i] = strtab[off:end if end >= 0 else len(strtab)].decode("utf-8", "replace")
        else:
            got[i] = ""
    return list(map(partial(tuple.__new__, Symbol),
                    zip(range(n), got, values, sizes, info.translate(_INFO_TYPE),
                        info.translate(_INFO_BIND), shndx)))


def _string_table(strtab: bytes) -> dict[int, str]:
    """Every string of a string table by the offset where it starts, split and decoded at C
    speed (names that share another's tail are looked up on their own)."""
    if strtab.isascii():  # byte offsets are character offsets: all at C speed
        parts = strtab.decode("ascii").split("\0")
        out = dict(zip(accumulate(map((1).__add__, map(len, parts)), initial=0), parts))
        out[0] = ""
        return out
    out: dict[int, str] = {0: ""}
    pos = 0
    for part in strtab.split(b"\0"):
        if part:
            out[pos] = part.decode("utf-8", "replace")
        pos += len(part) + 1
    return out


string_table = _string_table  # for the column readers of other modules

_NAME_TABLES: dict[bytes, dict[int, str]] = {}  # ``_section_names``'
_NAME_TABLES_MAX = 256  # tables kept, each of at most:
_NAME_TABLE_KEPT = 4096  # bytes


def _section_names(names: bytes) -> dict[int, str]:
    """``_string_table`` of a section name table, kept for the process by its bytes where it
    is small: the objects one compiler makes have a few such tables between them (a link's
    thousands of objects, each with its dozen names; a table of each function's own section
    is not kept, nor hashed). The dict is shared: its readers do not change it."""
    if len(names) > _NAME_TABLE_KEPT:
        return _string_table(names)
    got = _NAME_TABLES.get(names)
    if got is None:
        if len(_NAME_TABLES) >= _NAME_TABLES_MAX:
            _NAME_TABLES.clear()
        got = _NAME_TABLES[names] = _string_table(names)
    return got


def _cstr(table: bytes, off: int) -> str:
    if off >= len(table):
        return ""
    end = table.find(b"\0", off)
    if end < 0:
        end = len(table)
    return table[off:end].decode("utf-8", "replace")


def check_header(path: str, head: bytes) -> None:
    """Reject what altlink does not read, with the reason, before anything else is parsed."""
    if len(head) < 16 or head[:4] != b"\x7fELF":
        raise AltlinkError(f"{path}: not an ELF file")
    if head[4] != 2:
        raise AltlinkError(f"{path}: ELF32 (ILP32) files are not supported; altlink reads "
                           "AArch64 ELF64 only")
    if head[5] != 1:
        raise AltlinkError(f"{path}: big-endian ELF is not supported; altlink reads "
                           "little-endian AArch64 only")
    if len(head) < _EHDR.size:
        raise AltlinkError(f"{path}: truncated ELF header ({len(head)} bytes)")
    machine = struct.unpack_from("<H", head, 18)[0]
    if machine != EM_AARCH64:
        raise AltlinkError(f"{path}: ELF machine {machine} is not AArch64 (183)")
    etype = struct.unpack_from("<H", head, 16)[0]
    if etype not in ET_NAMES:
        raise AltlinkError(f"{path}: ELF type {etype} is not an object, executable or shared "
                           "object")


def read_elf(path: str) -> ElfFile:
    """Open and map an AArch64 ELF64 file; raises AltlinkError (exit 2) when it is not one."""
    return from_bytes(path, map_file(path))


def map_elf(path: str) -> ElfFile:
    """``read_elf`` but for the section headers, which are read and checked when first asked
    for (``sections``)."""
    return map_bytes(path, map_file(path))


def map_bytes(path: str, data) -> ElfFile:
    """``from_bytes`` but for the section headers, which are read and checked when first
    asked for (``sections``)."""
    check_header(path, data[:_EHDR.size])
    return ElfFile(path, data)


# Files up to this size are read rather than mapped: one read costs less than a mapping and
# its removal (a link reads thousands of small objects).
READ_BELOW = 1 << 18


def map_file(path: str) -> mmap.mmap | bytes:
    """A regular, non-empty file's bytes: mapped read-only, or read when it is small;
    AltlinkError (exit 2) naming it otherwise. A small one is read by the extension where
    it can (``altlink.speedups``: a larger one's file is opened there, and mapped here;
    ``map_file_py`` the reference)."""
    sp = speedups.get()
    got = sp.read_small(path, READ_BELOW) if sp is not None else None
    if got is None:
        return map_file_py(path)
    if type(got) is bytes:
        return got
    try:
        return mmap.mmap(got, 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read: {e.strerror}") from None
    finally:
        os.close(got)


def map_file_py(path: str) -> mmap.mmap | bytes:
    """The reference for ``map_file``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise AltlinkError(f"{path}: cannot open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000):
            raise AltlinkError(f"{path}: not a regular file")
        if st.st_size == 0:
            raise AltlinkError(f"{path}: empty file, not an ELF file")
        if st.st_size < READ_BELOW:
            data = os.read(fd, st.st_size)
            while len(data) < st.st_size and (more := os.read(fd, st.st_size - len(data))):
                data += more
            return data
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read: {e.strerror}") from None
    finally:
        os.close(fd)


def from_bytes(path: str, data: bytes) -> ElfFile:
    """An ELF file held in memory (an archive member, a mapped file); ``path`` names it in
    messages."""
    check_header(path, data[:_EHDR.size])
    elf = ElfFile(path, data)
    elf.sections  # noqa: B018  (validate the section headers now, with the file's name)
    return elf

