"""The raw binary of a linked image: exactly what ``objcopy -O binary`` writes.

objcopy writes every allocated section with contents (not NOBITS, not empty) at its load
address (LMA) relative to the lowest one, gaps filled with zeros. The LMA is BFD's
(``_bfd_elf_make_section_from_shdr``): from the first segment that holds the section, by
file offset (``p_paddr + sh_offset - p_offset``); the virtual address where no segment holds
it, or where every ``p_paddr`` is zero and there is more than one loadable segment (linkers
that do not fill in ``p_paddr``).
"""
from __future__ import annotations

from altlink.elf import PT_LOAD, SHT_NOBITS, ElfFile, Section, Segment
from altlink.errors import AltlinkError
from altlink.values import Frozen

# A raw image this large means a linker script with far-apart regions (a kernel Image is tens
# of MiB); the bound keeps a moved section address from allocating gigabytes (it is built in
# memory, and the patcher holds a few copies).
MAX_BIN = 1 << 28


class RawLayout(Frozen):
    """Where the raw binary's bytes come from (``layout``). (A value class written out,
    ``values.Frozen``: the link's process writes the raw binary, and ``dataclasses`` is
    7 ms of imports.)"""

    _fields = ("base", "size", "sections")
    base: int  # the load address of byte 0 of the binary
    size: int
    sections: tuple[tuple[Section, int], ...]  # (section, its LMA)

    def __init__(self, base: int, size: int, sections: tuple[tuple[Section, int], ...]) -> None:
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "sections", sections)

    def offset_of(self, addr: int, elf: ElfFile) -> int | None:
        """Offset in the binary of a virtual address, or None where it is not in the file."""
        for sec, lma in self.sections:
            if sec.addr <= addr < sec.addr + sec.size:
                return lma - self.base + addr - sec.addr
        return None


PT_TLS = 7
SHF_TLS = 0x400


def lma_of(elf: ElfFile, sec: Section) -> int:
    segs = elf.segments
    if all(seg.paddr == 0 for seg in segs) and \
            sum(1 for seg in segs if seg.type == PT_LOAD and seg.memsz) > 1:
        return sec.addr
    tls = bool(sec.flags & SHF_TLS)
    for seg in segs:
        if seg.type == (PT_TLS if tls else PT_LOAD) and _in_segment(sec, seg):
            if sec.type == SHT_NOBITS:
                return seg.paddr + sec.addr - seg.vaddr
            return seg.paddr + sec.offset - seg.offset
    return sec.addr


def _in_segment(sec: Section, seg: Segment) -> bool:
    """ELF_SECTION_IN_SEGMENT of binutils (checking addresses, not strict)."""
    if sec.type != SHT_NOBITS and not (
            sec.offset >= seg.offset and sec.offset - seg.offset + sec.size <= seg.filesz):
        return False
    return sec.addr >= seg.vaddr and sec.addr - seg.vaddr + sec.size <= seg.memsz


def layout(elf: ElfFile) -> RawLayout:
    secs = [(s, lma_of(elf, s)) for s in elf.sections
            if s.alloc and s.type != SHT_NOBITS and s.size > 0]
    if not secs:
        return RawLayout(0, 0, ())
    base = min(lma for _, lma in secs)
    end = max(lma + s.size for s, lma in secs)
    if end - base > MAX_BIN:
        raise AltlinkError(f"{elf.path}: the raw binary would be {end - base:#x} bytes "
                           f"(load addresses {base:#x}..{end:#x}); split the regions")
    return RawLayout(base, end - base, tuple(sorted(secs, key=lambda t: t[1])))


def raw_binary(elf: ElfFile, lay: RawLayout | None = None) -> bytes:
    lay = lay or layout(elf)
    out = bytearray(lay.size)
    for sec, lma in lay.sections:
        off = lma - lay.base
        out[off:off + sec.size] = elf.section_data(sec)
    return bytes(out)


def raw_pieces(elf: ElfFile, lay: RawLayout | None = None) -> list | None:
    """``raw_binary``'s bytes as pieces in their order, to be written and hashed one by one
    (a link's writer: no copy of the whole made, in fresh memory twice over): each section's
    bytes (``section_view``: the file's, not copied where they were not read yet) and the
    zeros between. None where sections overlap (``raw_binary`` then writes the later one's
    bytes over the earlier's)."""
    lay = lay or layout(elf)
    out: list = []
    at = 0
    for sec, lma in lay.sections:
        off = lma - lay.base
        if off < at:
            return None
        if off > at:
            out.append(bytes(off - at))
        out.append(elf.section_view(sec))
        at = off + sec.size
    if at < lay.size:  # (not where the sections are in order without overlap: the last ends it)
        out.append(bytes(lay.size - at))
    return out
