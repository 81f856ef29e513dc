"""Nested images: an ELF image embedded in a linked image, with its own alternative table.

Linux embeds its vDSO, a whole ELF file, between the symbols ``vdso_start`` and ``vdso_end``
and patches it at boot (``apply_alternatives_vdso``), in place, as bytes of the kernel's
image. Its entries belong to the outer image's manifest and patching: a site of the embedded
image has an address and a file offset in that image, and, where the embedded file lies in the
outer one, an address and a file offset in the outer image too (the outer address of a byte is
the start symbol's address plus the byte's offset in the embedded file, as the kernel reads
it).
"""
from __future__ import annotations

from dataclasses import dataclass

from altlink.elf import ElfFile, from_bytes
from altlink.errors import AltlinkError

# The symbol pairs each profile looks for (both Linux profiles: the arm64 vDSO). The compat
# vDSO (vdso32_start) is an AArch32 image with no alternatives: not looked for.
PROFILE_PAIRS: tuple[tuple[str, str], ...] = (("vdso_start", "vdso_end"),)
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Nested:
    """One embedded image: where it is in the outer image, and its ELF."""

    start: str  # the symbols that bound it
    end: str
    address: int  # outer address of its first byte
    file_offset: int  # outer file offset of its first byte
    size: int  # end - start
    elf: ElfFile

    def outer_address(self, inner_offset: int) -> int:
        return self.address + inner_offset

    def outer_file_offset(self, inner_offset: int) -> int:
        return self.file_offset + inner_offset


def parse_pair(text: str) -> tuple[str, str]:
    """``START,END`` as the user gives it (``--nested``)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise AltlinkError(f"--nested {text!r}: expected START_SYMBOL,END_SYMBOL")
    return parts[0], parts[1]


def _address(elf: ElfFile, name: str) -> int | None:
    found = [s for s in elf.find_symbols(name) if s.shndx != 0]
    return found[0].value if found else None


def find(elf: ElfFile, data, pairs=(), defaults: bool = True) -> list[Nested]:
    """The embedded images of ``elf`` (whose file contents are ``data``): those bounded by
    ``pairs`` (the user's: an error when a symbol is missing or no ELF image lies there),
    then those of the profile's pairs (skipped when absent)."""
    out: list[Nested] = []
    wanted = [(p, True) for p in pairs]
    if defaults:
        wanted += [(p, False) for p in PROFILE_PAIRS if p not in pairs]
    for (start, end), required in wanted:
        a, b = _address(elf, start), _address(elf, end)
        if a is None or b is None:
            if required:
                missing = start if a is None else end
                raise AltlinkError(f"{elf.path}: --nested {start},{end}: no symbol {missing} "
                                   "in the image")
            continue
        where = f"{elf.path}: the image embedded between {start} and {end}"
        off = elf.file_offset(a) if b > a else None
        sec = elf.section_at(a) if b > a else None
        if off is None or sec is None or sec.type == 8 or b > sec.addr + sec.size:
            if required:
                raise AltlinkError(f"{where} ({a:#x}..{b:#x}) is not in the file's contents")
            continue
        blob = bytes(data[off:off + b - a])
        if blob[:4] != ELF_MAGIC:
            if required:
                raise AltlinkError(f"{where} is not an ELF file")
            continue
        try:
            inner = from_bytes(f"{elf.path}[{start}]", blob)
        except AltlinkError:
            if required:
                raise
            continue  # not an AArch64 ELF64 image: not one altlink patches
        out.append(Nested(start, end, a, off, b - a, inner))
    return out
