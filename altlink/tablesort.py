"""``--sort-table``: the linked image's table sorted by site address, its relative offsets
rewritten in place."""
from __future__ import annotations

from altlink.errors import AltlinkError
from altlink.linkset import Input
from altlink.table import ENTRY, ENTRY_SIZE, Entry


def sort_table(path: str, image: Input, name: str | None = None) -> None:
    """Sort the image's table by site address, rewriting the relative offsets in place.

    The sort is stable, so entries for the same site keep their order (the later one still
    wins). It is refused (AltlinkError) where it would change the meaning of the table: two
    overlapping sites whose entries it would reorder, or a table that relocations still
    describe (``--emit-relocs``). ``name`` is how messages call the image.
    """
    name = name or path
    entries = image.table.entries
    if not entries:
        return
    if len(image.table.sections) != 1:
        raise AltlinkError(f"{name}: --sort-table needs exactly one .altinstructions section, "
                           f"the image has {len(image.table.sections)}")
    sec = image.table.sections[0]
    if image.elf.relocation_sections_for(sec):
        raise AltlinkError(f"{name}: --sort-table refused: relocations describe "
                           ".altinstructions (--emit-relocs?) and would no longer match it")
    order = sorted(entries, key=lambda e: (e.site.address, e.index))
    active: list[Entry] = []  # earlier in sorted order, still overlapping the current site
    for e in order:
        active = [a for a in active if a.site.address + a.orig_len > e.site.address]
        for a in active:
            if a.index > e.index and a.site.address < e.site.address:
                raise AltlinkError(
                    f"{name}: --sort-table refused: entries {e.index} (site "
                    f"{e.site.address:#x}, {e.orig_len} bytes) and {a.index} (site "
                    f"{a.site.address:#x}, {a.orig_len} bytes) patch overlapping sites, and "
                    "sorting would change which one is applied last; fix the overlap (ALT010) "
                    "or link without --sort-table")
        active.append(e)
    out = bytearray()
    for i, e in enumerate(order):
        addr = sec.addr + i * ENTRY_SIZE
        rel = (_rel32(e.site.address, addr), _rel32(e.alt.address, addr + 4))
        if None in rel:  # only an entry reported outside the image (ALT012) can be this far
            raise AltlinkError(f"{name}: --sort-table refused: entry {e.index} (site "
                               f"{e.site.address:#x}, replacement {e.alt.address:#x}) is out "
                               f"of reach of a 32-bit offset from its new place {addr:#x}")
        out += ENTRY.pack(*rel, e.cap_raw, e.orig_len, e.alt_len)
    image.elf.close()
    with open(path, "r+b") as f:
        f.seek(sec.offset)
        f.write(out)


def _rel32(target: int, field: int) -> int | None:
    """The s32 offset from ``field`` to ``target`` in 64-bit address arithmetic, or None."""
    rel = (target - field + (1 << 63)) % (1 << 64) - (1 << 63)
    return rel if -(1 << 31) <= rel < 1 << 31 else None


