"""The profile the named files' tables show, for a command without ``--abi``, from each
table's raw bytes: ``table.detect_abi`` needs only each entry's cap field (bit 15) and
``alt_len``, which are the same in an object and in an image, with no relocation applied. So
the entries are not read (``inputs.load``, ``read_table``): each file is read once, its
section headers checked as ``ElfFile.sections`` checks them, and its ``.altinstructions``
sections found by their names' offsets.

``detect_abi_paths`` gives the answer and the error ``detect_abi(inputs.load(paths))`` gives.
A file's own problem (unreadable, not ELF, damaged headers, a bad archive) is raised as
``inputs.load`` raises it, the first in the paths' order. Where a table is not as the
assembler or the linker writes it (an object table whose entries the reader could drop, a
relocation or symbol it would refuse), the answer is left to the reference, which reads every
table (and names a table's problem as it does).
"""
from __future__ import annotations

from array import array

from altlink import archive, elf
from altlink.elf import (
    BITCODE_MAGICS,
    ET_REL,
    R_AARCH64_PREL32,
    SHN_LORESERVE,
    SHT_DYNSYM,
    SHT_LLVM_CREL,
    SHT_NOBITS,
    SHT_NULL,
    SHT_REL,
    SHT_RELA,
    SHT_SYMTAB,
    ElfFile,
)
from altlink.inputs import is_lto
from altlink.table import ENTRY_SIZE, TABLE_SECTION, _pair_offsets

# What a file's entries show, as bits: a callback-marked entry (bit 15 of the cap field)
# without a replacement, one with a replacement, and an unmarked entry without one.
MARKED, MARKED_ALT, UNMARKED_CB = 1, 2, 4
# Each entry as 0 to 3: 1 where bit 15 is set (its cap field's high byte has 0x80), 2 where
# its alt_len is not 0.
_HIGH_BIT = bytes(int(b >= 0x80) for b in range(256))
_NOT_ZERO = bytes(2 * int(b != 0) for b in range(256))
_CLASS_BITS = (UNMARKED_CB, MARKED, 0, MARKED_ALT)  # by the entry's 0 to 3
_NAME = TABLE_SECTION.encode() + b"\0"
_RELOC_TYPES = (SHT_RELA, SHT_REL, SHT_LLVM_CREL)


class _Unsure(Exception):
    """A table the raw bytes cannot answer for as the reader would: the reference decides."""


def detect_abi_paths(paths: list[str], mapped: dict[str, list[ElfFile]] | None = None
                     ) -> str | None:
    """``table.detect_abi`` of the tables of ``inputs.load(paths)``: the same answer, and the
    same error for an unusable file, without reading the entries. ``mapped``, if given, gets
    the ELF files read on the way (not archives), by path, one for each time the path is
    named (``elf.map_elf``'s, their headers checked: for ``batch.check_paths``)."""
    shown = 0
    unsure = False
    for path in paths:
        try:
            shown |= _path_bits(path, mapped)
        except _Unsure:
            unsure = True  # a later file's own problem still comes first: go on
    if unsure:
        return detect_abi_reference(paths)
    return abi_of_bits(shown)


def detect_abi_reference(paths: list[str]) -> str | None:
    """The reference: every table read (``inputs.load``), then ``table.detect_abi``."""
    from altlink import inputs
    from altlink.table import detect_abi

    return detect_abi([i.table for i in inputs.load(paths)])


def abi_of_bits(shown: int) -> str | None:
    """``detect_abi``'s rule over the entries' bits: linux-v6.1 where callback-marked entries
    have no replacement and every entry without one is marked."""
    if shown & MARKED_ALT:
        return None
    return "linux-v6.1" if shown & MARKED and not shown & UNMARKED_CB else None


def entry_bits(data, n: int) -> int:
    """The bits of the first ``n`` 12-byte entries in ``data``: their cap fields' high bytes
    and their alt_len, a column at a time."""
    if not n:
        return 0
    end = n * ENTRY_SIZE
    marked = int.from_bytes(data[9:end:ENTRY_SIZE].translate(_HIGH_BIT), "little")
    has_alt = int.from_bytes(data[11:end:ENTRY_SIZE].translate(_NOT_ZERO), "little")
    out = 0
    for c in set((marked | has_alt).to_bytes(n, "little")):
        out |= _CLASS_BITS[c]
    return out


def _path_bits(path: str, mapped: dict[str, list[ElfFile]] | None = None) -> int:
    """The bits of one named file's tables: as ``inputs._load_one`` reads it (an archive by
    member, LTO objects skipped), raising what it raises."""
    data = elf.map_file(path)
    head = data[:8]
    if head in (archive.MAGIC, archive.THIN_MAGIC):
        del data
        out = 0
        unsure = False
        for m in archive.members(path):
            data = archive.read_member(m)
            if is_lto(data) or data[:4] != b"\x7fELF":
                continue
            e, h = _checked(m.display, data)
            if is_lto(data, e):
                continue
            try:
                out |= _elf_bits(e, h)
            except _Unsure:
                unsure = True  # the archive's later members' own problems first
        if unsure:
            raise _Unsure
        return out
    if head[:4] in BITCODE_MAGICS:
        return 0
    e, h = _checked(path, data)
    if is_lto(head, e):
        return 0
    if mapped is not None:
        mapped.setdefault(path, []).append(e)
    return _elf_bits(e, h)


def _checked(path: str, data) -> tuple[ElfFile, _Headers | None]:
    """``elf.from_bytes``: the header and the section headers checked, raising what it
    raises; the section headers are not decoded where their columns show them fine (the
    columns are returned for the table's search; None where there are no section headers)."""
    e = elf.map_bytes(path, data)
    if e.shoff == 0:
        return e, None
    h = _Headers(e)
    if not h.fine():
        e.sections  # noqa: B018  (its error, as from_bytes raises it)
    return e, h


class _Headers:
    """The section header table as columns. ``_header_table`` raises what ``sections``
    raises first."""

    def __init__(self, e: ElfFile) -> None:
        self.shnum, self.shstrndx = e._header_table()
        raw = e.data[e.shoff:e.shoff + self.shnum * 64]
        words = memoryview(raw).cast("Q")
        halves = memoryview(raw).cast("I")
        self.name = halves[0::16].tolist()
        self.type = halves[1::16].tolist()
        self.offset = words[3::8].tolist()
        self.size = words[4::8].tolist()
        self.link = halves[10::16].tolist()
        self.info = halves[11::16].tolist()
        self.end = e.size

    def fine(self) -> bool:
        """Whether ``ElfFile.sections`` decodes them without an error: the name table and each
        section (but NOBITS and NULL) within the file."""
        end = self.end
        i = self.shstrndx
        if 0 < i < self.shnum and self.offset[i] + self.size[i] > end:
            return False
        if not self.shnum or max(map(int.__add__, self.offset, self.size)) <= end:
            return True
        return all(t == SHT_NOBITS or t == SHT_NULL or off + size <= end
                   for t, off, size in zip(self.type, self.offset, self.size))


def _elf_bits(e: ElfFile, h: _Headers | None) -> int:
    """The bits of one ELF file's table: an object's where its entries are all read by the
    reader (``table._entries_in_order``'s shape), an image's from its table's sections."""
    if e.type != ET_REL:
        return _image_bits(e)
    if h is None:
        return 0
    names = b""
    if 0 < h.shstrndx < h.shnum:
        off = h.offset[h.shstrndx]
        names = bytes(e.data[off:off + h.size[h.shstrndx]])
    at = _name_offsets(names)
    if not at:
        return 0
    found = [i for i, nm in enumerate(h.name) if nm in at]
    out = 0
    for i in found:
        if h.type[i] == SHT_NOBITS:
            continue
        if h.offset[i] + h.size[i] > h.end:  # of no type (unchecked): its read fails
            raise _Unsure
        n = h.size[i] // ENTRY_SIZE
        rels = [j for j, (t, info) in enumerate(zip(h.type, h.info))
                if info == i and t in _RELOC_TYPES]
        if not rels and not n:
            continue
        if len(rels) != 1 or h.type[rels[0]] != SHT_RELA or not n \
                or h.size[rels[0]] != 48 * n:
            raise _Unsure
        _in_order(e, h, h.offset[rels[0]], n)
        off = h.offset[i]
        out |= entry_bits(e.data[off:off + n * ENTRY_SIZE], n)
    return out


def _name_offsets(names: bytes) -> set[int]:
    """The offsets in a section name table at which a name reads ``.altinstructions`` (a
    tail of ``.rela.altinstructions`` too). Offset 0 is left to the reference (which reads
    it as the empty name)."""
    out = set()
    pos = names.find(_NAME)
    while pos >= 0:
        out.add(pos)
        pos = names.find(_NAME, pos + 1)
    if names.endswith(_NAME[:-1]):  # the last name, without its NUL
        out.add(len(names) - len(_NAME) + 1)
    if 0 in out:
        raise _Unsure
    return out


def _in_order(e: ElfFile, h: _Headers, rel_off: int, n: int) -> None:
    """_Unsure unless the table's relocations are as the assembler writes them and as
    ``table._entries_in_order`` reads every entry: two PREL32 an entry at its two offsets,
    against symbols that are places (``table._target``)."""
    rel = memoryview(e.data[rel_off:rel_off + 48 * n]).cast("I")
    offsets, high, types_ = _shape(n)
    if rel[0::6].tobytes() != offsets or rel[1::6].tobytes() != high \
            or rel[2::6].tobytes() != types_:
        raise _Unsure
    # The symbol table ``ElfFile.symbol`` reads: the first SHT_SYMTAB, else SHT_DYNSYM.
    types = h.type
    tab = types.index(SHT_SYMTAB) if SHT_SYMTAB in types else \
        types.index(SHT_DYNSYM) if SHT_DYNSYM in types else None
    if tab is None or h.link[tab] >= h.shnum:  # no table; ``section(link)`` fails
        raise _Unsure
    names = h.link[tab]  # its string table, read with the first symbol (of no type: unchecked)
    if names and h.type[names] != SHT_NOBITS and h.offset[names] + h.size[names] > h.end:
        raise _Unsure
    sym_off, sym_size, shnum = h.offset[tab], h.size[tab], h.shnum
    data = e.data
    for s in set(rel[3::6].tolist()):
        if (s + 1) * 24 > sym_size:
            raise _Unsure
        p = sym_off + 24 * s + 6
        shndx = data[p] | data[p + 1] << 8
        if shndx and (shndx >= SHN_LORESERVE or shndx >= shnum):
            raise _Unsure


_SHAPES: dict[int, tuple[bytes, bytes, bytes]] = {}


def _shape(n: int) -> tuple[bytes, bytes, bytes]:
    """The relocations of a table of ``n`` entries as the assembler writes them, three of
    their 32-bit columns: the offsets (``table._pair_offsets``), their high halves (0) and
    the types (PREL32)."""
    got = _SHAPES.get(n)
    if got is None:
        got = _SHAPES[n] = (array("I", _pair_offsets(n)).tobytes(), bytes(8 * n),
                            array("I", [R_AARCH64_PREL32] * (2 * n)).tobytes())
    return got


def _image_bits(e: ElfFile) -> int:
    """An image's table: every entry of the sections ``table.image_table_sections`` names
    (``read_image_table`` reads them all, in or outside the image)."""
    from altlink.table import image_table_sections

    try:
        secs, _findings = image_table_sections(e)
        out = 0
        for sec in secs:
            if sec.type == SHT_NOBITS:
                continue
            data = e.section_data(sec)
            out |= entry_bits(data, len(data) // ENTRY_SIZE)
        return out
    except Exception:  # noqa: BLE001 - the table's problem, as the reference names it
        raise _Unsure from None

